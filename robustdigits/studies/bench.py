"""Our attack beside ART's on every model variant, scored the same way, as a grid of cells.

Each (model, attack) and each point of the FGSM/PGD ε-sweeps is a cell
(:mod:`robustdigits.cells`): computed once, stored with its per-sample results, and
scored from those files alone, so an interrupted benchmark resumes with the cells it
had not finished and the tables can be recomputed without running an attack.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checks import check_choice, check_int, check_number
from ..config import MAX_SEED
from ..data.datasets import MNISTData
from ..errors import DataError
from ..fileio import json_text, write_text_atomic
from ..grid.cells import CellResult, CellSpec, CellStore, ModelRef, machines_note
from ..grid.runner import run_grid
from ..report.plots import plot_curves
from ..report.tables import machine_info, machine_line, write_report
from ..scoring import Score, already_target, summarize
from ..targets import check_target

ATTACKS = ("rgd", "fgsm", "pgd", "cw", "deepfool")
TARGETED = {"rgd": True, "fgsm": True, "pgd": True, "cw": True, "deepfool": False}  # DeepFool has no targets
SLOW = ("cw", "deepfool")  # ART's NumPy-heavy attacks: 0.06-0.22 s an image on a 2-core CPU


@dataclass(frozen=True)
class BenchConfig:
    n: int = 1000  # the first n test images
    n_slow: int = 100  # C&W and DeepFool attack a stratified subset of this many of those n
    target: str = "next-digit"  # targets of the targeted attacks
    seed: int = 0
    batch_size: int = 128
    eps: float = 0.3  # L∞ budget of FGSM and PGD (pixels)
    pgd_steps: int = 40  # PGD iterations, step eps / 10
    cw_steps: int = 10  # C&W iterations per binary-search step (ART's default)
    cw_search: int = 3  # C&W binary-search steps (ART's default 10 costs ~1 s per image on a CPU)
    cw_const: float = 10.0  # C&W initial constant (ART's 0.01 reaches no target in this budget)
    cw_learning_rate: float = 0.1  # ART's default 0.01
    deepfool_steps: int = 50  # ART's default 100; it converges in a few
    rgd_steps: int = 200  # our attack: max steps, from the reference, stopping at target p >= 0.5
    sweep: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # ε of the robustness curves
    sweep_pgd_steps: int = 20
    attacks: tuple[str, ...] = field(default=ATTACKS)

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("n_slow", self.n_slow, 1)
        check_target(self.target)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("batch_size", self.batch_size, 1)
        check_number("eps", self.eps, 0.0, 1.0, low_open=True)
        check_int("rgd_steps", self.rgd_steps, 1)
        for name in self.attacks:
            check_choice("attack", name, ATTACKS)


def attack_params(name: str, config: BenchConfig, *, targeted: bool, eps: float | None = None,
                  pgd_steps: int | None = None, eps_step: float | None = None) -> dict[str, Any]:
    """Every setting of attack ``name`` in the benchmark: what a cell's hash covers."""
    p: dict[str, Any] = {"targeted": targeted, "batch_size": config.batch_size, "seed": config.seed,
                         "target": config.target if targeted else None}
    eps = config.eps if eps is None else eps
    if name == "rgd":
        p.update(steps=config.rgd_steps, eta=0.1, lam=0.05, early_stop=0.5, keep_best=True)
    elif name == "fgsm":
        p.update(eps=eps)
    elif name == "pgd":
        p.update(eps=eps, eps_step=eps / 10 if eps_step is None else eps_step,
                 steps=config.pgd_steps if pgd_steps is None else pgd_steps, restarts=0)
    elif name == "cw":
        p.update(steps=config.cw_steps, search=config.cw_search, const=config.cw_const,
                 learning_rate=config.cw_learning_rate)
    elif name == "deepfool":
        p.update(steps=config.deepfool_steps)
    return p


def _spec(model: ModelRef, data: MNISTData, attack: str, params: dict[str, Any], selection: str) -> CellSpec:
    return CellSpec(data_sha256=data.info.sha256, data_name=data.info.name, model=model.name,
                    model_sha256=model.sha256, attack=attack, params=params, selection=selection,
                    model_info=model.info, checkpoint=model.checkpoint)


@dataclass(frozen=True)
class BenchCells:
    """The benchmark's grid: per model, one cell per attack and one per (sweep attack, ε > 0)."""

    attacks: dict[tuple[str, str], CellSpec]  # (model, attack) -> cell
    sweeps: dict[tuple[str, str, float], CellSpec]  # (model, fgsm|pgd, ε) -> cell

    @property
    def all(self) -> list[CellSpec]:
        return [*self.attacks.values(), *self.sweeps.values()]


def bench_cells(models: Sequence[ModelRef], data: MNISTData, config: BenchConfig) -> BenchCells:
    n = min(config.n, data.info.n_test)
    everything, slow = f"first:{n}", f"stratified:{min(config.n_slow, n)}:{n}"
    attacks, sweeps = {}, {}
    for m in models:
        for a in config.attacks:
            attacks[(m.name, a)] = _spec(m, data, a, attack_params(a, config, targeted=TARGETED[a]),
                                         slow if a in SLOW else everything)
        for a in ("fgsm", "pgd"):
            for eps in config.sweep:
                if eps > 0:
                    params = attack_params(a, config, targeted=False, eps=eps, pgd_steps=config.sweep_pgd_steps,
                                           eps_step=eps / 8)
                    sweeps[(m.name, a, eps)] = _spec(m, data, a, params, everything)
    return BenchCells(attacks, sweeps)


@dataclass
class BenchRow:
    model: str
    attack: str
    targeted: bool
    clean_accuracy: float  # percent, on the same n images
    score: Score
    seconds_per_image: float
    cell: str = ""  # the cell's key: its per-sample results are <cells>/<key>/samples.npz


@dataclass
class BenchResult:
    rows: list[BenchRow]
    sweep: dict[str, dict[str, list[float]]]  # attack -> model -> robust accuracy (%) per ε
    sweep_ci: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)  # 95% Wilson


def bench_result(cells: BenchCells, results: dict[str, CellResult], config: BenchConfig) -> BenchResult:
    """The tables and curves, from the cells' per-sample results alone (``results`` by key)."""
    rows = []
    for (model, attack), spec in cells.attacks.items():
        r = results[spec.key]
        s = r.samples
        rows.append(BenchRow(model, attack, TARGETED[attack], r.rate("clean")[0],
                             summarize(s["success"], s["l2"], s["linf"], already_target(s["clean_pred"], s["target"])),
                             r.seconds / max(r.n, 1), spec.key))
    sweep: dict[str, dict[str, list[float]]] = {"fgsm": {}, "pgd": {}}
    sweep_ci: dict[str, dict[str, list[tuple[float, float]]]] = {"fgsm": {}, "pgd": {}}
    models = list(dict.fromkeys(m for m, _, _ in cells.sweeps))
    for attack in ("fgsm", "pgd"):
        for model in models:
            points = []
            for eps in config.sweep:
                if eps > 0:
                    points.append(results[cells.sweeps[(model, attack, eps)].key].rate("robust"))
                else:  # no attack: the clean accuracy on the same images (from any of the ε cells)
                    first = next(k for k in cells.sweeps if k[:2] == (model, attack))
                    points.append(results[cells.sweeps[first].key].rate("clean"))
            sweep[attack][model] = [p[0] for p in points]
            sweep_ci[attack][model] = [(p[1], p[2]) for p in points]
    return BenchResult(rows, sweep, sweep_ci)


def run_bench(models: Sequence[ModelRef], data: MNISTData, config: BenchConfig, store: CellStore, *,
              device: torch.device, executor: str = "local", jobs: int | None = None, address: str | None = None,
              fresh: bool = False, done: Callable[[CellSpec, bool], None] | None = None
              ) -> tuple[BenchCells, BenchResult]:
    """Run the benchmark's cells that ``store`` lacks (all of them with ``fresh``), then
    score everything from the stored per-sample results."""
    cells = bench_cells(models, data, config)
    results = run_grid(cells.all, store, data, device=device, executor=executor, jobs=jobs, address=address,
                       fresh=fresh, done=done)
    return cells, bench_result(cells, {r.spec.key: r for r in results}, config)


COLUMNS = ["model", "attack", "mode", "n", "already target", "clean acc. (%)", "success (%)", "95% CI", "median L2",
           "mean L2", "median L∞", "mean L∞", "ms / image"]


def table_rows(result: BenchResult) -> list[list[Any]]:
    return [[r.model, r.attack, "targeted" if r.targeted else "untargeted", r.score.n,
             r.score.left_out if r.targeted else None, r.clean_accuracy,
             r.score.success_rate, f"{r.score.ci_low:.1f}–{r.score.ci_high:.1f}", r.score.median_l2, r.score.mean_l2,
             r.score.median_linf, r.score.mean_linf, 1000 * r.seconds_per_image] for r in result.rows]


def write_bench_report(result: BenchResult, config: BenchConfig, data: MNISTData, out_dir: str | os.PathLike[str],
                       device: torch.device, settings: dict[str, Any] | None = None,
                       cells: BenchCells | None = None, store: CellStore | None = None) -> list[Path]:
    """``bench.md/.csv/.json``, ``bench_<fgsm|pgd>_sweep.png`` and (given the cells)
    ``grid.json`` in ``out_dir``; ``settings`` (what identifies the run) is kept in the JSON.
    ``grid.json`` names every cell and the store (relative to ``out_dir``), so :func:`load_bench` recomputes the
    tables from the per-sample files without running anything."""
    machine = machine_info(device)
    n = min(config.n, data.info.n_test)
    notes = [
        f"Dataset: {data.info.short}; the first {n:,} test images, of which C&W and DeepFool attack a stratified "
        f"subset of {min(config.n_slow, n):,} (column n). Machine: {machine_line(machine)}; ms / image is each "
        "cell's own time, measured when it ran (a reused cell keeps its time and machine, in its cell.json). "
        + (machines_note([store.load(s) for s in cells.all], machine) if cells is not None and store is not None
           else ""),
        f"Targeted attacks aim at '{config.target}' and succeed when the model predicts the target; images the "
        "model already reads as the target are left out of their n, rate and distances and counted apart (column "
        "'already target'). Untargeted ones (DeepFool) succeed when it does not predict the true label. Success "
        "is over the n images, with its 95% Wilson interval; clean accuracy is over every attacked image; distances "
        "are in pixel units ([0, 1]) over successful images.",
        f"Settings: {dataclasses.asdict(config)}.",
    ]
    records = [dataclasses.asdict(r) for r in result.rows]
    meta = {"settings": settings, "dataset": dataclasses.asdict(data.info), "config": dataclasses.asdict(config),
            "machine": machine, "sweep_eps": list(config.sweep), "sweep_robust_accuracy": result.sweep,
            "sweep_robust_accuracy_ci95": result.sweep_ci}
    paths = write_report(out_dir, "bench", title="Attacks on every model variant", notes=notes, columns=COLUMNS,
                         rows=table_rows(result), records=records, meta=meta)
    for attack, curves in result.sweep.items():
        if curves:
            paths.append(plot_curves(config.sweep, curves, Path(out_dir) / f"bench_{attack}_sweep.png",
                                     title=f"Untargeted {attack.upper()} (L∞) on {n:,} {data.info.name} test images",
                                     xlabel="ε (pixels)", ylabel="robust accuracy (%)",
                                     bands=result.sweep_ci.get(attack)))
    if cells is not None and store is not None:
        cells_at = os.path.relpath(store.root.absolute(), Path(out_dir).absolute())  # relative: the pair can move
        grid = {"config": dataclasses.asdict(config), "cells": cells_at,
                "attacks": [{"model": m, "attack": a, "key": s.key, "spec": s.to_dict(location=False)}
                            for (m, a), s in cells.attacks.items()],
                "sweeps": [{"model": m, "attack": a, "eps": e, "key": s.key, "spec": s.to_dict(location=False)}
                           for (m, a, e), s in cells.sweeps.items()]}
        paths.append(write_text_atomic(Path(out_dir) / "grid.json", json_text(grid, indent=1)))
    return paths


def load_bench(out_dir: str | os.PathLike[str], cells_root: str | os.PathLike[str] | None = None
               ) -> tuple[BenchConfig, BenchCells, BenchResult]:
    """A benchmark's tables recomputed from its ``grid.json`` and the stored cells alone."""
    path = Path(out_dir) / "grid.json"
    try:
        grid = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is missing or unreadable ({e}); run 'robustdigits bench' first") from e
    raw = grid["config"]
    config = BenchConfig(**{**raw, "sweep": tuple(raw["sweep"]), "attacks": tuple(raw["attacks"])})
    cells = BenchCells({(c["model"], c["attack"]): CellSpec.from_dict(c["spec"]) for c in grid["attacks"]},
                       {(c["model"], c["attack"], c["eps"]): CellSpec.from_dict(c["spec"]) for c in grid["sweeps"]})
    store = CellStore(cells_root if cells_root is not None else Path(out_dir) / grid["cells"])
    missing = [s.key for s in cells.all if not store.has(s)]
    if missing:
        raise DataError(f"{len(missing)} of the benchmark's cells are not in {store.root} (e.g. {missing[0]}); "
                        "rerun the same 'robustdigits bench' command to compute them")
    return config, cells, bench_result(cells, {s.key: store.load(s) for s in cells.all}, config)
