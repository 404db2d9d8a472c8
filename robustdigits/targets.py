"""Target classes for targeted attacks: one function shared by the CLI and the benchmark."""

from __future__ import annotations

import numpy as np

from .checks import unknown
from .errors import ConfigError

TARGET_MODES = ("next-digit", "previous-digit", "random", "least-likely")
NUM_CLASSES = 10


def target_classes(mode: str, labels: np.ndarray, logits: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Map true ``labels`` (N,) to target classes (N,) int64.

    ``next-digit``: (d + 1) mod 10 (the study's); ``previous-digit``: (d − 1) mod 10;
    ``random``: uniform over the nine other classes, from ``seed``; ``least-likely``:
    the class with the lowest logit (needs ``logits`` (N, 10)); ``"0"``–``"9"``: that
    digit for every sample (a sample already of that class keeps it as its target).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if mode == "next-digit":
        return (labels + 1) % NUM_CLASSES
    if mode == "previous-digit":
        return (labels - 1) % NUM_CLASSES
    if mode == "random":
        offsets = np.random.default_rng(seed).integers(1, NUM_CLASSES, size=len(labels))
        return (labels + offsets) % NUM_CLASSES
    if mode == "least-likely":
        if logits is None:
            raise ConfigError("target 'least-likely' needs the model's logits")
        return np.asarray(logits).argmin(axis=1).astype(np.int64)
    check_target(mode)
    return np.full(len(labels), int(mode), dtype=np.int64)


def check_target(mode: object) -> str:
    """``mode`` if it names a target mode or a digit, else a :class:`ConfigError`."""
    if isinstance(mode, str) and (mode in TARGET_MODES or (len(mode) == 1 and mode.isdigit())):
        return mode
    raise unknown("target", mode, TARGET_MODES, ", or a digit 0-9")
