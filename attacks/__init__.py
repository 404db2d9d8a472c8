"""ART-compatible attack classes, one per module."""

from .regularized_gd import RegularizedGradientDescent

__all__ = ["RegularizedGradientDescent"]
