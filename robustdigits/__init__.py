"""robustdigits: train the classic MNIST networks, attack them, and see the result.

Module map, by layer; imports only point down (a module uses the ones below it):

- **command line**: ``cli`` (thin click commands, the only place that prints),
  ``entry`` and ``__main__`` (the console script).
- **public helpers**: ``api`` (``load_pixels``, ``load_variant``, ``make_classifier``,
  also importable from ``robustdigits`` itself).
- **workflows**: ``ablation`` (the study's nine variants; trains a variant when a
  command needs it), ``experiment`` (the study's attack experiment), ``bench`` (our
  attack beside ART's, as a grid of cells), ``robustness`` (the variants' robustness
  and adversarially trained rows), ``demo`` (the draw-a-digit page's server).
- **steps**: ``training`` (resumable SGD), ``evaluation`` (accuracy and loss),
  ``attacks.RegularizedGradientDescent`` (the study's attack, an ART EvasionAttack),
  ``art_bridge`` (a model as an ART classifier), ``scoring`` (success and distances),
  ``targets`` (target classes), ``plots`` and ``reports`` (figures and tables), ``html``
  (the one-page report), ``grid`` (running cells, locally or on Ray), ``cells`` (a
  cell's settings, hash and per-sample results, stored atomically), ``adversarial``
  (adversarial training with targeted attacks).
- **foundations**: ``datasets`` (embedded subset, IDX files, which data a command
  uses), ``fetch`` (full MNIST into the data cache, verified), ``loader`` (a
  device-resident batch loader), ``models`` (the registry of the three networks),
  ``variants`` (the study's nine rows and published numbers), ``config`` (frozen
  configs), ``checkpoints`` (atomic, versioned, and their names), ``fileio`` (atomic
  writes, locks, writability checks), ``pixels`` (uint8 → [0, 1] → normalized),
  ``checks`` (argument checks), ``errors`` (the project's error classes), ``devices``.
- ``study_loop``: the study's own attack loop as written, kept only for tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_pixels", "load_variant", "make_classifier"]


def __getattr__(name: str) -> Any:
    """The public helpers of ``robustdigits.api``, imported on first use (``import
    robustdigits`` stays light for the command line)."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'robustdigits' has no attribute {name!r}")
