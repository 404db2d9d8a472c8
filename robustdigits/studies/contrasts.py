"""Effects of the ablation's factors on robustness, with the seed as the unit.

Every pair of variants of the LeNet family that differ in exactly one factor (momentum,
dropout, batch-norm) is a contrast; for each measure its paired difference over the seeds
both were trained with, on the same images (:func:`robustdigits.scoring.paired_difference`:
the mean, a Student-t 95% interval, Cohen's d_z, how many seeds favour it). An interval
that spans 0 means the seeds cannot tell, never "no effect". Intervals pooled over reused
images (Wilson) stay for one model's rate only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ReportError
from ..report.tables import write_report
from ..scoring import paired_difference
from ..variants import VARIANTS, Variant

COLUMNS = ["factor", "from (a)", "to (b)", "measure", "seeds", "mean b − a (points)", "95% CI", "d_z",
           "seeds favouring b", "the data say"]


def _factors(v: Variant) -> dict[str, Any]:
    return {"momentum": v.momentum, "dropout": v.model.kwargs.get("dropout", 0.0),
            "batch-norm": v.model.name == "improved"}


def one_factor_contrasts(variants: Sequence[Variant] = VARIANTS) -> list[tuple[str, Variant, Variant]]:
    """(factor, a, b) for every pair of LeNet-family variants that differ in one factor, b
    having the factor switched on (or the larger dropout)."""
    lenets = [v for v in variants if v.model.name in ("textbook", "improved")]
    out = []
    for i, a in enumerate(lenets):
        for b in lenets[i + 1:]:
            fa, fb = _factors(a), _factors(b)
            differ = [k for k in fa if fa[k] != fb[k]]
            if len(differ) != 1:
                continue
            factor = differ[0]
            if fa[factor] > fb[factor]:
                a, b = b, a
            label = f"dropout {_factors(a)['dropout']:g} → {_factors(b)['dropout']:g}" if factor == "dropout" \
                else factor
            out.append((label, a, b))
    return out


def contrast_rows(records: Sequence[dict[str, Any]], measures: dict[str, str]) -> list[list[Any]]:
    """Rows of :data:`COLUMNS` from a robustness report's records (per-seed values);
    ``measures`` maps a label to a record path (``clean_accuracy`` or ``pgd_robust_accuracy/0.1``)."""
    by_model = {r["model"]: r for r in records}
    rows = []
    for factor, a, b in one_factor_contrasts():
        if a.name not in by_model or b.name not in by_model:
            continue
        ra, rb = by_model[a.name], by_model[b.name]
        seeds = sorted(set(ra["seeds"]) & set(rb["seeds"]))
        for label, path in measures.items():
            va, vb = _values(ra, path), _values(rb, path)
            xa = [va[ra["seeds"].index(s)] for s in seeds]
            xb = [vb[rb["seeds"].index(s)] for s in seeds]
            d = paired_difference(xa, xb)
            ci = None if d.ci_low is None else f"{d.ci_low:+.1f} to {d.ci_high:+.1f}"
            rows.append([factor, a.name, b.name, label, d.n, d.mean, ci, d.effect_size, f"{d.favours_b} of {d.n}",
                         d.verdict])
    return rows


def _values(record: dict[str, Any], path: str) -> list[float]:
    value: Any = record
    for part in path.split("/"):
        value = value[part]
    return list(value)


def report_measures(meta: dict[str, Any]) -> dict[str, str]:
    """The measures contrasted: clean accuracy, PGD at each ε, and where AutoAttack ran, the
    per-image worst case of AutoAttack and PGD at each of its radii (the headline)."""
    eps = meta["config"]["eps"]
    return {"clean accuracy": "clean_accuracy",
            **{f"PGD ε = {e:g} robust accuracy": f"pgd_robust_accuracy/{e:g}" for e in eps},
            **{f"worst case ε = {e:g} robust accuracy": f"worst_case/{e:g}"
               for e in meta["config"].get("autoattack", ())}}


def write_contrasts(report: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """``robustness_contrasts.md/.csv/.json`` beside (or in ``out_dir``) a robustness report's JSON."""
    report = Path(report)
    try:
        payload = json.loads(report.read_text())
        records, meta = payload["records"], payload["meta"]
        measures = report_measures(meta)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{report} is not a readable robustness report ({type(e).__name__}: {e}); pass the "
                          "robustness.json that 'robustdigits robustness' wrote") from e
    rows = contrast_rows(records, measures)
    seeds = meta["config"]["seeds"]
    notes = [
        f"From {report.name}: every pair of LeNet-family variants that differs in one factor, measured with "
        f"seeds 1-{seeds} on the same test images. Per measure, the paired difference b − a over seeds: its mean, a "
        "Student-t 95% interval (the seed is the unit, so seed-to-seed variance counts), Cohen's d_z (mean / "
        "sd of the differences) and how many seeds favour b.",
        "An interval that spans 0 means these seeds cannot tell the sign; it is not evidence of no effect. "
        f"With {seeds} seeds the t interval is wide (t₀.₉₇₅ with {seeds - 1} degrees of freedom); more seeds "
        "narrow it.",
        "The robust accuracies come from the report's attack (see its notes); a weak attack biases every row up "
        "and can bias a difference either way.",
    ]
    meta_out = {"source": report.name, "source_settings": meta.get("settings"), "seeds": seeds,
                "measures": measures}
    records_out = [dict(zip(COLUMNS, row)) for row in rows]
    return write_report(Path(out_dir) if out_dir else report.parent, "robustness_contrasts",
                        title="What momentum, dropout and batch-norm do to robustness: paired over seeds",
                        notes=notes, columns=COLUMNS, rows=rows, records=records_out, meta=meta_out)
