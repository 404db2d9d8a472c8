"""Frozen configs, saved inside every checkpoint and report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from .checks import check_int, check_number, unknown
from .models import get_model, list_models

STUDY_TRAIN_SIZE = 60_000  # the study trained on full MNIST
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer
MAX_LR = 1e3  # far above any rate SGD converges with here; larger overflows float32 in the first step


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name and its constructor arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"dropout": 0.1}

    def __post_init__(self) -> None:
        if self.name not in list_models():
            raise unknown("model", self.name, list_models())

    def build(self) -> nn.Module:
        """The model on the CPU (initialized from torch's global RNG)."""
        return get_model(self.name, **self.kwargs)


@dataclass(frozen=True)
class TrainConfig:
    """SGD training; the defaults are the study's."""

    epochs: int = 3  # passes over the training split; ignored when steps is set
    steps: int | None = None  # exact number of SGD steps (batches), overriding epochs
    batch_size: int = 64  # images per SGD step
    test_batch_size: int = 1000  # images per evaluation batch (no effect on results)
    lr: float = 0.01
    momentum: float = 0.5
    seed: int = 1  # model init, shuffling and dropout all flow from it
    log_interval: int = 10  # steps between recorded training losses

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1)
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("test_batch_size", self.test_batch_size, 1)
        check_number("lr", self.lr, 0.0, MAX_LR, low_open=True)
        check_number("momentum", self.momentum, 0.0, 1.0)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("log_interval", self.log_interval, 1)

    def total_steps(self, n_train: int) -> int:
        return self.steps if self.steps is not None else self.epochs * math.ceil(n_train / self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def study_steps(epochs: int = 3, batch_size: int = 64) -> int:
    """SGD steps of the study's budget: ``epochs`` passes over 60,000 images
    (3 × 60,000 / 64 = 2,812.5 → 2,813)."""
    return math.ceil(epochs * STUDY_TRAIN_SIZE / batch_size)
