"""Resolve the ``--device`` choice once, at the edge."""

from __future__ import annotations

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def fast_layout(device: torch.device) -> torch.memory_format:
    """The memory layout models run in on ``device``: channels_last on the CPU, where
    oneDNN's convolutions run these nets faster in it (benchmarks/speed.py measures it);
    elsewhere the default, since no other device was measured."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def resolve_device(choice: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without CUDA fails."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu")
        return torch.device(choice)
    raise ConfigError(f"unknown device {choice!r}; choose one of: auto, cpu, cuda")
