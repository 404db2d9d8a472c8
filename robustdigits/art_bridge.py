"""Wrap a robustdigits model as an ART classifier that takes pixels in [0, 1]."""

from __future__ import annotations

import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from .data.pixels import MNIST_MEAN, MNIST_STD


def make_classifier(model: nn.Module, device: torch.device,
                    optimizer: torch.optim.Optimizer | None = None) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` on pixels (N, 1, 28, 28) in [0, 1]: it normalizes
    with the study's mean and std itself, so attacks and their distances live in
    pixel space. The model should already be on ``device``; ``optimizer`` lets ART
    train it (adversarial training)."""
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing=(MNIST_MEAN, MNIST_STD),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )
