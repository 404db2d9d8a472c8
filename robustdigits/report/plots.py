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
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.patches import Rectangle

from ..fileio import atomic_path


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def plot_loss_curve(metrics: dict[str, list[Any]], path: str | os.PathLike[str], title: str) -> Path:
    """The study's figure: training loss against examples seen (line), test loss
    after each epoch (points); adversarial training adds the clean training loss."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    adversarial = bool(metrics.get("train_clean_loss"))
    ax.plot(metrics["train_examples"], metrics["train_loss"], color="tab:blue", lw=1,
            label="train loss (adversarial)" if adversarial else "train loss")
    if adversarial:
        ax.plot(metrics["train_examples"], metrics["train_clean_loss"], color="tab:green", lw=1,
                label="train loss (clean)")
    ax.scatter(metrics["test_examples"], metrics["test_loss"], color="tab:red", zorder=3, label="test loss")
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def save_image(image: np.ndarray, path: str | os.PathLike[str], scale: int = 2) -> Path:
    """One (28, 28) image in [0, 1] as a grayscale PNG, each pixel ``scale``×``scale``
    (values outside are clipped). Written directly, without a figure: a hundred of them
    take milliseconds, not the seconds a figure each would."""
    pixels = np.kron(np.clip(image, 0, 1), np.ones((scale, scale)))
    with atomic_path(path) as tmp:
        imsave(tmp, pixels, cmap="gray", vmin=0, vmax=1, format="png")
    return Path(path)


_GAP = 4  # pixels between the panels of a gallery


def plot_gallery(
    references: np.ndarray,
    adversarials: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """Rows of reference | adversarial | difference (images (N, 28, 28) in [0, 1]), the
    difference in red/blue scaled to its own largest change (shown as ±bound).
    ``labels[i]`` captions row i, e.g. ``"7 → 8 (pred 8, 0.99)"``. The panels are laid out
    as one picture with one set of axes, so a gallery of 100 rows takes a second."""
    n, side = len(references), references.shape[-1]
    cell = side + _GAP
    canvas = np.ones((n * cell - _GAP, 3 * cell - _GAP, 3))
    bounds = []
    for i in range(n):
        diff = adversarials[i] - references[i]
        bound = max(float(np.abs(diff).max()), 1e-6)
        bounds.append(bound)
        top = i * cell
        for k, img in enumerate((references[i], adversarials[i])):
            canvas[top:top + side, k * cell:k * cell + side] = np.clip(img, 0, 1)[..., None]
        canvas[top:top + side, 2 * cell:2 * cell + side] = colormaps["seismic"]((diff / bound + 1) / 2)[..., :3]
    width = 4.0  # inches of pictures; the figure adds room for the captions and the titles
    height = width * canvas.shape[0] / canvas.shape[1]
    fig = Figure(figsize=(width + 0.8, height + 0.9))
    ax = fig.add_axes((0.8 / (width + 0.8), 0.0, width / (width + 0.8), height / (height + 0.9)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for k, name in enumerate(("reference", "adversarial", "difference")):
        ax.text(k * cell + side / 2, -6, name, ha="center", va="bottom", fontsize=8)  # above row 0's ±bound
    for i, (label, bound) in enumerate(zip(labels, bounds)):
        ax.text(-3, i * cell + side / 2, label, ha="right", va="center", rotation=90, fontsize=8)
        ax.text(2 * cell + side / 2, i * cell - 0.5, f"±{bound:.2f}", ha="center", va="bottom", fontsize=6)
        # a frame: white is "no change" in the difference, the page around it too
        ax.add_patch(Rectangle((2 * cell - 0.5, i * cell - 0.5), side, side, fill=False, lw=0.6))
    ax.set_title(title, fontsize=10, pad=30)
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
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Per entry of ``runs`` (one curve per seed), the mean over seeds as a line and the
    band between the lowest and highest seed. ``styles`` gives an entry's line (colour,
    linestyle, marker) so families and factors read apart; the legend sits outside the axes."""
    fig = Figure(figsize=(9.5, 4.8))
    ax = fig.add_subplot()
    for name, curves in runs.items():
        a = np.asarray(curves, dtype=float)
        style = dict((styles or {}).get(name, {}))
        if "marker" not in style:
            style["marker"] = "o" if len(x) < 12 else None
        (line,) = ax.plot(x, a.mean(axis=0), ms=4, markevery=max(1, len(x) // 8), lw=1.4,
                          label=f"{name} ({len(a)} seed{'s' if len(a) > 1 else ''})", **style)
        if len(a) > 1:
            ax.fill_between(x, a.min(axis=0), a.max(axis=0), color=line.get_color(), alpha=0.1, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.subplots_adjust(right=0.66)
    return _save(fig, path)


def plot_convergence(steps: Sequence[int], restarts: Sequence[int], grid: np.ndarray, path: str | os.PathLike[str],
                     *, title: str) -> Path:
    """Robust accuracy against PGD steps (log scale), one line per number of restarts: a
    converged attack shows flat lines that lie on each other."""
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    for r, row in zip(restarts, grid):
        ax.plot(steps, row, marker="o", ms=3, label=f"{r} restart{'s' if r > 1 else ''}")
    ax.set_xscale("log")
    ax.set_xticks(list(steps), [str(s) for s in steps])
    ax.set_xlabel("PGD steps (step ε / 4, best iterate)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.subplots_adjust(right=0.78)
    return _save(fig, path)
