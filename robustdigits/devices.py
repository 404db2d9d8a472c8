"""Resolve the ``--device`` choice once, at the edge."""

from __future__ import annotations

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


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
