"""The public one-call helpers for Python users: pixels, a trained variant, an ART classifier.

    from robustdigits import load_pixels, load_variant, make_classifier

    x, y = load_pixels("test")                        # float32 (N, 1, 28, 28) in [0, 1], int64 (N,)
    model = load_variant("textbook-momentum", train=True)
    classifier = make_classifier(model)               # ART PyTorchClassifier on pixels
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from . import art_bridge
from .checkpoints import default_checkpoints
from .checks import check_choice, check_int
from .config import MAX_SEED
from .data.datasets import load_mnist
from .data.pixels import to_pixels
from .devices import resolve_device
from .studies.ablation import resolve_checkpoint, trained_checkpoint
from .variants import get_variant

logger = logging.getLogger(__name__)
SPLITS = ("train", "test")


def load_pixels(split: str = "test", data: str = "auto", *, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a split: x float32 (N, 1, 28, 28) pixels in [0, 1], y int64 (N,) labels.

    ``data`` is what ``--data`` takes: ``"auto"`` (full MNIST from the data cache when it
    is there, else the embedded subset), ``"mnist"``, ``"embedded"`` or a folder of IDX files.
    """
    check_choice("split", split, SPLITS)
    loaded = load_mnist(data, download=download)
    images, labels = (loaded.train_images, loaded.train_labels) if split == "train" else \
        (loaded.test_images, loaded.test_labels)
    return to_pixels(images), labels.numpy().astype(np.int64)


def load_variant(name: str, data: str = "auto", *, seed: int = 1, device: str | torch.device = "cpu",
                 train: bool = False, checkpoints: str | os.PathLike[str] | None = None,
                 announce: Callable[[str], None] | None = None) -> nn.Module:
    """The study's variant ``name`` (see ``robustdigits ablate -h``) trained on ``data`` with
    ``seed``, in eval mode on ``device``; it takes normalized input (see ``make_classifier``).

    Its checkpoint is looked up where ``robustdigits ablate`` keeps it (``checkpoints``,
    default ``$ROBUSTDIGITS_CHECKPOINTS`` or ``~/.cache/robustdigits/checkpoints``), so
    it is found from any working folder. Not trained yet: ``train=True`` trains it with
    the ablation's settings (logged at INFO, and ``announce`` is told where), else a
    ``CheckpointError`` says which command trains it.
    """
    get_variant(name)  # an unknown name fails before data loads
    check_int("seed", seed, 1, MAX_SEED)
    root = checkpoints if checkpoints is not None else default_checkpoints()
    loaded = load_mnist(data)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if train:
        def say(path: os.PathLike[str]) -> None:
            message = f"training variant {name} (seed {seed}) on {loaded.info.name} data into {path}"
            logger.info(message)
            if announce:
                announce(message)

        ckpt = trained_checkpoint(name, loaded, checkpoints=root, device=dev, seed=seed, announce=say)
    else:
        ckpt = resolve_checkpoint(name, loaded.info, root, seed)
    return ckpt.build_model(dev)


def make_classifier(model: nn.Module, device: str | torch.device | None = None) -> PyTorchClassifier:
    """An ART ``PyTorchClassifier`` on pixels (N, 1, 28, 28) in [0, 1] for ``model`` (it
    normalizes with MNIST's mean and std itself); ``device`` defaults to the model's."""
    if device is None:
        device = next(model.parameters()).device
    return art_bridge.make_classifier(model, device if isinstance(device, torch.device) else torch.device(device))
