"""Figures: the study's loss curve, attack galleries and robustness curves (PNG).

Uses matplotlib's object API (no pyplot state, no display needed); every file is
written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..fileio import atomic_path


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def plot_loss_curve(metrics: dict[str, list[Any]], path: str | os.PathLike[str], title: str) -> Path:
    """The study's figure: training loss against examples seen (line), test loss
    after each epoch (points)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.plot(metrics["train_examples"], metrics["train_loss"], color="tab:blue", lw=1, label="train loss")
    ax.scatter(metrics["test_examples"], metrics["test_loss"], color="tab:red", zorder=3, label="test loss")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def save_image(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """One (28, 28) image in [0, 1] as a grayscale PNG (values outside are clipped)."""
    fig = Figure(figsize=(1.4, 1.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=40)
    return Path(path)


def plot_gallery(
    references: np.ndarray,
    adversarials: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Rows of reference | adversarial | difference (images (N, 28, 28) in [0, 1]).
    ``labels[i]`` captions row i, e.g. ``"7 → 8 (pred 8, 0.99)"``."""
    n = len(references)
    fig = Figure(figsize=(4.8, 1.6 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        diff = adversarials[i] - references[i]
        bound = max(float(np.abs(diff).max()), 1e-6)
        panels = ((references[i], "gray", 0, 1, "reference"), (adversarials[i], "gray", 0, 1, "adversarial"),
                  (diff, "seismic", -bound, bound, f"difference (±{bound:.2f})"))
        for ax, (img, cmap, lo, hi, name) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 or name.startswith("difference"):
                ax.set_title(name, fontsize=8)
        axes[i][0].set_ylabel(labels[i], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    bands: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> Path:
    """One line per entry of ``curves`` over the common ``x``; ``bands`` (low, high) per
    point, e.g. 95% intervals, are shaded around each line."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, ys in curves.items():
        (line,) = ax.plot(x, ys, marker="o", ms=3, label=name)
        if bands and name in bands:
            ax.fill_between(x, [b[0] for b in bands[name]], [b[1] for b in bands[name]], color=line.get_color(),
                            alpha=0.15, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_bands(
    x: Sequence[float],
    runs: Mapping[str, Sequence[Sequence[float]]],
    path: str | os.PathLike[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Per entry of ``runs`` (one curve per seed), the mean over seeds as a line and the
    band between the lowest and highest seed."""
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    for name, curves in runs.items():
        a = np.asarray(curves, dtype=float)
        (line,) = ax.plot(x, a.mean(axis=0), marker="o" if len(x) < 12 else None, ms=3,
                          label=f"{name} ({len(a)} seed{'s' if len(a) > 1 else ''})")
        if len(a) > 1:
            ax.fill_between(x, a.min(axis=0), a.max(axis=0), color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    return _save(fig, path)
