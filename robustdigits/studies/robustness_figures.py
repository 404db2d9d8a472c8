"""The robustness study's two figures, from a report's records alone: each row drawn in
its family's colour (tutorial, textbook, improved, adversarially trained) and its factors'
styles (momentum by line, dropout by marker), the legend outside the axes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report.plots import plot_bands
from ..variants import VARIANTS

FAMILY_COLOURS = {"tutorial": "#7f7f7f", "textbook": "#1f77b4", "improved": "#2ca02c", "adversarial": "#d62728"}
DROPOUT_MARKERS = {None: None, 0.1: "o", 0.5: "s"}
ADVERSARIAL_STYLES = {"adv-pgd": "-", "adv-rgd-untargeted": "--", "adv-rgd-next-digit": ":", "adv-recipe": "-."}


def row_style(row: str) -> dict[str, Any]:
    """A row's line in the figures: its family's colour (tutorial, textbook, improved,
    adversarially trained); momentum 0.5 solid and 0 dashed; dropout none, 0.1 (circles) or
    0.5 (squares); the adversarial rows by line style."""
    variant = next((v for v in VARIANTS if v.name == row), None)
    if variant is None:
        return {"color": FAMILY_COLOURS["adversarial"], "linestyle": ADVERSARIAL_STYLES.get(row, "-"), "marker": None}
    dropout = 0.5 if variant.model.name == "tutorial" else variant.model.kwargs.get("dropout")
    return {"color": FAMILY_COLOURS[variant.model.name], "linestyle": "-" if variant.momentum else "--",
            "marker": DROPOUT_MARKERS.get(dropout, "^")}


def robustness_figures(records: Sequence[dict[str, Any]], eps: Sequence[float], l2_budgets: Sequence[float],
                       n_slow: int, n: int, out_dir: str | os.PathLike[str],
                       autoattack: Sequence[float] = ()) -> list[Path]:
    """``robustness_l2.png`` and ``robustness_linf.png`` from a report's records alone (so a
    committed report's figures can be redrawn without running an attack): the L∞ curve is the
    per-image worst case of AutoAttack and PGD at the radii ``autoattack`` where AutoAttack
    ran, else PGD at ``eps``, on ``n`` images per seed; minimum-norm L2 at ``l2_budgets`` on
    ``n_slow``."""
    styles = {r["model"]: row_style(r["model"]) for r in records}
    l2 = {r["model"]: r["l2_curve"] for r in records}
    key, radii, what = ("worst_case", autoattack, "AutoAttack and PGD, per-image worst case") if autoattack else \
        ("pgd_robust_accuracy", eps, "PGD")
    linf = {r["model"]: [[c] + [r[key][f"{e:g}"][k] for e in radii]
                         for k, c in enumerate(r["clean_accuracy"])] for r in records}
    return [
        plot_bands(l2_budgets, l2, Path(out_dir) / "robustness_l2.png",
                   title=f"Minimum-norm robustness ({n_slow} images per seed)",
                   xlabel="L2 budget (pixels)", ylabel="robust accuracy (%)", styles=styles),
        plot_bands((0.0, *radii), linf, Path(out_dir) / "robustness_linf.png",
                   title=f"{what} ({n:,} images per seed)", xlabel="ε (L∞, pixels)",
                   ylabel="robust accuracy (%)", styles=styles),
    ]
