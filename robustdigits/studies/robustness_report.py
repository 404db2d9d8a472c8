"""The robustness study's report, from its rows: ``robustness.md/.csv/.json`` (notes saying
what every number rests on, the sanity checks, where every model falls to 0 %, the published
anchors), the minimum-norm table per attack, the contrasts over seeds and the two figures;
and the figures redrawn from a committed report's JSON alone."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.datasets import MNISTData
from ..errors import DataError
from ..grid.cells import CellResult
from ..grid.runner import select_indices
from ..report.tables import machine_info, machine_line, markdown_table, write_report
from .adversarial import ADVERSARIAL
from .contrasts import write_contrasts
from .robust_eval import ANCHORS, ANCHORS_SOURCE
from .robustness import (
    ANCHOR,
    CW_CONST,
    CW_LEARNING_RATE,
    FMN_ALPHA,
    GAP_FLAG,
    MIN_NORM_LABELS,
    MIN_NORM_ROLES,
    SQUARE_ROWS,
    RobustnessConfig,
    RowResult,
    columns,
    sanity_checks,
    strongest,
    table_rows,
    zero_radius,
)
from .robustness_figures import robustness_figures


def min_norm_note(config: RobustnessConfig, n: int) -> str:
    """What the minimum-norm columns rest on."""
    if config.min_norm == "converged":
        attacks = (f"adv-lib 0.2.8's FMN (initial step {FMN_ALPHA:g}) and DDN ({config.mn_steps} steps each), its "
                   f"C&W-L2 ({config.mn_cw_search} binary search steps × at most {config.mn_cw_steps} iterations from "
                   f"constant {CW_CONST:g} at rate {CW_LEARNING_RATE:g}), the study's attack untargeted at "
                   f"{config.mn_steps} steps (η = 0.1, λ = 0.05, keep-best) and toward the next digit (keep-best), "
                   f"and DeepFool ({config.deepfool_steps} steps); all untargeted but the next-digit one")
    else:
        attacks = (f"the study's attack toward the next digit (keep-best), ART's C&W-L2 (untargeted, "
                   f"{config.cw_search} binary search steps × {config.cw_steps} iterations: not converged; "
                   "--min-norm converged for FMN, DDN and C&W 9 × 100) and DeepFool")
    return (f"Minimum norm: on a stratified {min(config.n_slow, n)} of the images, per image the smallest L2 of a "
            f"misclassifying example over {attacks}; 0 where the clean image is misclassified, inf where no attack "
            "found one; the median over all seeds' images.")


def _found(distances: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.isfinite(distances)))


def _finite(value: float) -> float | None:
    return None if np.isinf(value) else value


def _pooled_median(row: RowResult, role: str | None = None) -> float:
    """The median L2 over every seed's images (``role``: one attack's; None: the per-image best)."""
    return float(np.median(np.concatenate([m.min_l2 if role is None else m.min_l2_by[role] for m in row.measures])))


def min_norm_columns(config: RobustnessConfig) -> list[str]:
    cols = ["model", "seeds", "images"]
    for role in MIN_NORM_ROLES[config.min_norm]:
        cols += [f"{MIN_NORM_LABELS[role]} median L2", f"{MIN_NORM_LABELS[role]} found (%)"]
    return cols + ["best median L2", "best found (%)"]


def min_norm_rows(rows: Sequence[RowResult], config: RobustnessConfig) -> list[list[Any]]:
    """Per row: each attack's pooled median L2 ("inf" where most images found none) and
    the share of images it found an example for, then the per-image best's."""
    def shown(value: float) -> float | str:
        return "inf" if np.isinf(value) else value

    out = []
    for r in rows:
        line: list[Any] = [r.row, len(r.seeds), len(r.measures[0].min_l2)]
        for role in MIN_NORM_ROLES[config.min_norm]:
            line += [shown(_pooled_median(r, role)), statistics.fmean(_found(m.min_l2_by[role]) for m in r.measures)]
        line += [shown(_pooled_median(r)), statistics.fmean(_found(m.min_l2) for m in r.measures)]
        out.append(line)
    return out


def l2_curve(distances: np.ndarray, budgets: Sequence[float]) -> list[float]:
    """Robust accuracy (%) at each L2 budget: images whose smallest adversarial is farther."""
    return [100.0 * float(np.mean(distances > b)) for b in budgets]


def zero_note(rows: Sequence[RowResult]) -> str:
    """Where every model falls to 0 %: proof that the attacks can break each one."""
    found = zero_radius(rows)
    reached = {row: e for row, e in found.items() if e is not None}
    missed = [row for row, e in found.items() if e is None]
    by_eps: dict[float, list[str]] = {}
    for row, e in reached.items():
        by_eps.setdefault(e, []).append(row)
    parts = [f"ε = {e:g}: {', '.join(names)}" for e, names in sorted(by_eps.items())]
    note = "Every model falls to 0 % robust accuracy (every seed, the strongest attack run) at " + "; ".join(parts)
    if missed:
        worst = {r.row: max(strongest(m)[max(m.pgd)] for m in r.measures) for r in rows if r.row in missed}
        note += ("" if parts else "no ε for any row") + "; not reached by " + ", ".join(
            f"{row} ({acc:.1f}% at its largest ε)" for row, acc in worst.items())
    return note + "."


def aa_version_note(config: RobustnessConfig) -> str:
    if config.aa_version == "mixed":
        return ("standard on seed 1 and the adversarially trained rows, APGD-CE + APGD-T (the standard version's "
                f"first two attacks, APGD-CE from 5 starts where standard runs 1) on seeds 2-{config.seeds}: standard "
                "on every seed did not fit this machine")
    return {"standard": "standard: APGD-CE, APGD-T, FAB-T, Square",
            "apgd": "APGD-CE from 5 random starts + APGD-T on the 9 other classes; the standard version without "
                    "FAB-T and Square, with 4 more APGD-CE starts"}[config.aa_version]


def anchors_note(rows: Sequence[RowResult], config: RobustnessConfig) -> list[str]:
    """The published MNIST defences at ε = 0.3 beside the study's adversarially trained rows."""
    ours = [r for r in rows if r.row in ADVERSARIAL and 0.3 in r.measures[0].pgd]
    if not ours:
        return []
    table = [[name, value, "AutoAttack standard, the authors' test images"] for name, value in ANCHORS]
    for r in ours:
        m = r.measures[0]
        table.append([f"{r.row} (this study)", m.worst.get(0.3, m.pgd[0.3]),
                      ("worst case of AutoAttack and PGD" if 0.3 in m.worst else f"PGD-{config.pgd_steps}×"
                       f"{config.pgd_restarts}") + f", {m.counts['clean'][1]:,} test images"])
    return [f"Published anchors at ε = 0.3 ({ANCHORS_SOURCE}) beside the adversarially trained rows:\n\n"
            + markdown_table(["model", "robust accuracy at ε = 0.3 (%)", "measured by"], table)]


def write_robustness_report(rows: Sequence[RowResult], config: RobustnessConfig, data: MNISTData,
                            out_dir: str | os.PathLike[str], device: torch.device, *, seconds: dict[str, Any],
                            settings: dict[str, Any] | None = None) -> tuple[list[Path], list[str]]:
    """``robustness.md/.csv/.json`` and the two curves' PNGs; returns the paths and the
    sanity-check problems (also written into the report)."""
    machine = machine_info(device)
    n = min(config.n, data.info.n_test)
    problems = sanity_checks(rows, config)
    notes = [
        f"Dataset: {data.info.short}; "
        + (f"the first {n:,} test images" if config.sample == "first" else
           f"{n:,} test images drawn at random (seed {config.sample_seed}), stratified by digit, the same for every "
           "row and seed (indices: `meta.indices`)")
        + " (column n), per seed. Variants: the ablation's "
        f"checkpoints, seeds 1-{config.seeds} (mean ± sample std over seeds); adversarially trained rows: seed 1. "
        "95% CI: the Wilson interval of the rate pooled over all seeds' images.",
        f"PGD: untargeted L∞, torch-native (robustdigits.attacks.linf.pgd), {config.pgd_steps} steps of "
        f"2.5·ε/{config.pgd_steps} from {config.pgd_restarts} random start(s), a restart only on the images no "
        "earlier one fooled"
        + (f"; the adversarially trained rows also at ε = {', '.join(f'{e:g}' for e in config.adv_extra_eps)}"
           if config.adversarial and config.adv_extra_eps else "")
        + ". The study's attack: toward the next digit, from the image, at most "
        f"{config.rgd_steps} steps of its η = 0.1, λ = 0.05, stopping at target probability 0.5 and keeping the "
        "closest success. Its success rate leaves out the images the model already reads as the next digit (a "
        "success it did not make; column 'already the target', summed over seeds); its median L2 is over every "
        "seed's successes pooled. Robust accuracy (PGD, AutoAttack) counts an image only if the model reads it "
        "right both clean and attacked.",
        *([f"AutoAttack ({aa_version_note(config)}; the authors' code, PyPI pyautoattack 0.2.0) at ε = "
           f"{', '.join(f'{e:g}' for e in config.all_autoattack())} on the same images, pixels in [0, 1] with the "
           "normalization inside the model: robust = classified correctly clean and under AutoAttack; the worst case "
           "also under PGD (and Square) at that ε (per image). A PGD − AutoAttack gap above "
           f"{GAP_FLAG:g} point is flagged in the sanity checks."] if config.autoattack else []),
        *([f"Square (the black-box attack alone, 5,000 queries, from AutoAttack's code) at ε = "
           f"{', '.join(f'{e:g}' for e in config.square)} on {', '.join(SQUARE_ROWS)}: it needs no gradient, so "
           f"Square leaving more than {GAP_FLAG:g} point less than PGD or AutoAttack flags gradient masking."]
          if config.square else []),
        min_norm_note(config, n) + " Per attack: robustness_min_norm.md.",
        f"Adversarial training: the textbook network with momentum 0.5, SGD lr 0.01, batch 64, {config.adv_epochs} "
        f"epochs; PGD with ε = {config.adv_eps:g}, {config.adv_pgd_steps} steps of 2.5·ε/{config.adv_pgd_steps}, 1 "
        "random start, every image adversarial; "
        f"the study's attack with {config.adv_rgd_steps} steps of η = 1, λ = 0.05 from the image on half of each "
        "batch. " + ANCHOR + (" adv-recipe is 'robustdigits train --recipe robust' (the wong net at twice the width, "
                              "PGD-5 adversarial training at ε = 0.3, 12 epochs; docs/robustness.md)."
                              if "adv-recipe" in config.adversarial else ""),
        f"Machine: {machine_line(machine)}. " + _time_note(seconds),
        zero_note(rows),
        "Sanity checks (robust accuracy never above clean, PGD never better at a larger ε, no attack at 0% on a "
        "non-robust model, PGD changing something, every model at 0% at some ε): "
        + ("all hold." if not problems else "; ".join(problems)),
        *anchors_note(rows, config),
    ]
    records = []
    for r in rows:
        records.append({
            "model": r.row, "label": r.label, "seeds": r.seeds,
            "clean_accuracy": [m.clean for m in r.measures],
            "pgd_robust_accuracy": {f"{e:g}": [m.pgd[e] for m in r.measures] for e in config.eps_of(r.row)},
            "rgd_success": [m.rgd_success for m in r.measures],
            "autoattack": {f"{e:g}": [m.aa[e] for m in r.measures] for e in config.autoattack_of(r.row)},
            "autoattack_version": [config.aa_version_of(seed) for seed in r.seeds] if config.autoattack else None,
            "worst_case": {f"{e:g}": [m.worst[e] for m in r.measures] for e in config.autoattack_of(r.row)},
            "zero_eps": zero_radius([r])[r.row],
            "square": {f"{e:g}": [m.square.get(e) for m in r.measures] for e in config.square},
            "rgd_median_l2": [m.rgd_median_l2 for m in r.measures],
            "rgd_median_l2_pooled": (float(np.median(np.concatenate([m.rgd_l2 for m in r.measures])))
                                     if any(len(m.rgd_l2) for m in r.measures) else None),
            "rgd_already_target": [m.rgd_already for m in r.measures],
            "min_l2": [[None if np.isinf(d) else float(d) for d in m.min_l2] for m in r.measures],  # None: none found
            "ci95": {k: list(r.pooled(k)) for k in r.measures[0].counts},
            "l2_curve": [l2_curve(m.min_l2, config.l2_budgets) for m in r.measures],
            "min_norm": {role: {"found": [_found(m.min_l2_by[role]) for m in r.measures],
                                "median_l2_pooled": _finite(_pooled_median(r, role)),
                                "l2_curve": [l2_curve(m.min_l2_by[role], config.l2_budgets) for m in r.measures]}
                         for role in MIN_NORM_ROLES[config.min_norm]},  # median None: infinite (most found none)
        })
    meta = {"settings": settings, "dataset": dataclasses.asdict(data.info),
            "indices": None if config.sample == "first" else
            select_indices(config.selection(data.info.n_test), data.test_labels.numpy()).tolist(),
            "config": dataclasses.asdict(config), "machine": machine, "seconds": seconds,
            "sanity_problems": problems, "anchor": ANCHOR, "anchors": [list(a) for a in ANCHORS],
            "anchors_source": ANCHORS_SOURCE}
    paths = write_report(out_dir, "robustness", title="Robustness of the study's variants", notes=notes,
                         columns=columns(config), rows=table_rows(rows, config), records=records, meta=meta)
    paths += write_report(out_dir, "robustness_min_norm", title="Minimum-norm L2, per attack and per image",
                          notes=[min_norm_note(config, n), "The median is over every seed's images pooled, inf where "
                                 "most of them found none; found: images with a misclassifying example (an image "
                                 "already misclassified counts, at 0), mean over seeds."],
                          columns=min_norm_columns(config), rows=min_norm_rows(rows, config),
                          records=[{"model": rec["model"], "min_norm": rec["min_norm"]} for rec in records],
                          meta={"config": dataclasses.asdict(config), "dataset": dataclasses.asdict(data.info)})
    if config.seeds > 1:
        paths += write_contrasts(paths[2])  # the factors' effects, paired over seeds
    return paths + robustness_figures(records, config.eps, config.l2_budgets, min(config.n_slow, n), n,
                                      out_dir, config.autoattack), problems


def redraw_figures(report: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Redraw a robustness report's figures from its JSON (beside it, or in ``out_dir``)."""
    path = Path(report)
    try:
        payload = json.loads(path.read_text())
        meta, records = payload["meta"], payload["records"]
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
        config = RobustnessConfig(**fields)
        n = min(config.n, int(meta["dataset"]["n_test"]))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path} is not a readable robustness report ({type(e).__name__}: {e}); pass the "
                        "robustness.json that 'robustdigits robustness' wrote") from e
    return robustness_figures(records, config.eps, config.l2_budgets, min(config.n_slow, n), n,
                              out_dir if out_dir is not None else path.parent, config.autoattack)


def _time_note(seconds: dict[str, Any]) -> str:
    """The run's wall time, and the seconds its computed cells took, summed per kind (with
    several workers the sums exceed the wall time)."""
    note = f"Wall time of this run: {seconds['total']:.0f} s"
    if "executor" in seconds:
        note += f" ({seconds['executor']} executor, {seconds['jobs']} job{'s' if seconds['jobs'] > 1 else ''})"
    sums = [f"{k.split('_')[0]} {seconds[k]:.0f} s" for k in ("training_cells", "attack_cells") if k in seconds]
    return note + ("; cells computed in it, seconds summed: " + ", ".join(sums) if sums else "") + "."


def cell_seconds(results: Sequence[CellResult]) -> dict[str, dict[str, float]]:
    """Per attack: cells, total and mean seconds (each as measured when the cell ran)."""
    out: dict[str, dict[str, float]] = {}
    for r in results:
        d = out.setdefault(r.spec.attack, {"cells": 0, "seconds": 0.0})
        d["cells"] += 1
        d["seconds"] += r.seconds
    for d in out.values():
        d["mean_seconds"] = d["seconds"] / d["cells"]
    return out
