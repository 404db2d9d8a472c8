"""The one place uint8 MNIST images become model input.

Pixels are float32 (N, 1, 28, 28) in [0, 1], the space ART classifiers, attacks and
distances use; normalized input z = (pixel − μ) / σ is what the networks take (the
study's ``ToTensor`` + ``Normalize``).
"""

from __future__ import annotations

import numpy as np
import torch

MNIST_MEAN = 0.1307  # the study's normalization (mean and std of MNIST's pixels / 255)
MNIST_STD = 0.3081


def to_pixels(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1], as NumPy (ART's currency)."""
    a = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return (a[:, None] / 255.0).astype(np.float32)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) → normalized float32 (N, 1, 28, 28), the same ops as ToTensor + Normalize."""
    return images.unsqueeze(1).float().div(255).sub(MNIST_MEAN).div(MNIST_STD)


def pixels_from_normalized(z: torch.Tensor) -> torch.Tensor:
    """Normalized input → pixel scale [0, 1] (not clipped)."""
    return z * MNIST_STD + MNIST_MEAN


class PixelInput(torch.nn.Module):
    """``model`` (which takes normalized input, as all ours do) as a model of pixels in
    [0, 1]: the normalization moves inside, so attacks and their ε live in pixel space
    (what AutoAttack and the published MNIST numbers assume)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - MNIST_MEAN) / MNIST_STD)
