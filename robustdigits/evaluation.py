"""Accuracy and loss of a model on a split, per class too."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data.loader import TensorLoader

COLUMNS = ["digit", "correct", "images", "accuracy (%)"]  # the per-digit table


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy per image (the study's "average loss")
    accuracy: float  # percent
    correct: int
    total: int
    per_class_correct: list[int]
    per_class_total: list[int]

    @property
    def per_class_accuracy(self) -> list[float]:
        return [100.0 * c / t if t else float("nan") for c, t in zip(self.per_class_correct, self.per_class_total)]


@torch.no_grad()
def evaluate(model: nn.Module, loader: TensorLoader) -> EvalResult:
    """Evaluate in eval mode (the caller's mode is restored)."""
    was_training = model.training
    model.eval()
    loss_sum = 0.0
    correct = torch.zeros(10, dtype=torch.int64, device=loader.device)
    total = torch.zeros(10, dtype=torch.int64, device=loader.device)
    try:
        for x, y in loader.epoch():
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            hit = (logits.argmax(1) == y).long()
            correct += torch.bincount(y, weights=hit, minlength=10).long()
            total += torch.bincount(y, minlength=10)
    finally:
        model.train(was_training)
    n = int(total.sum())
    c = int(correct.sum())
    return EvalResult(
        loss=loss_sum / max(n, 1),
        accuracy=100.0 * c / max(n, 1),
        correct=c,
        total=n,
        per_class_correct=correct.tolist(),
        per_class_total=total.tolist(),
    )
