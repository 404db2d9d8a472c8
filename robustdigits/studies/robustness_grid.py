"""The robustness study as one grid of cells: a training cell per variant and seed (the
ablation's) and per adversarially trained row, and each model's attack cells as soon as its
own training cell is done, run by the grid's executor (here, ``--jobs`` workers, or Ray)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import checkpoint_dir, checkpoint_path
from ..data.datasets import MNISTData
from ..data.fetch import sha256_file
from ..fileio import exclusive
from ..grid.cells import CellResult, CellStore, ModelRef
from ..grid.executor import Task, context, run_tasks
from ..grid.runner import attack_task
from ..grid.train_cells import TrainCell, read_record, write_record
from ..report.tables import machine_info
from ..variants import Variant
from .ablation import AblationConfig, finish_training_cell, variant_cell, variant_finished, variant_task
from .adversarial import adversarial_identity, check_adversarial, train_adversarial_row
from .robustness import RobustnessConfig, RowResult, cell_specs, rows_of

Done = Callable[[str, str, "float | None"], None]  # (kind, label, seconds; None: reused), per finished cell


def adversarial_cell(row: str, data: MNISTData, checkpoints: str | os.PathLike[str], config: RobustnessConfig
                     ) -> TrainCell:
    return TrainCell(row, 1, adversarial_identity(row, config, 1, data),
                     str(checkpoint_path(checkpoints, data.info, row, 1)))


def train_row(row: str, config: RobustnessConfig, *, path: str) -> dict[str, Any]:
    """An adversarially trained row's training cell in a worker (or here)."""
    ctx = context()
    assert ctx.data is not None, "a training cell runs with the grid's data in its context"
    ckpt = train_adversarial_row(row, Path(path), ctx.data, config, device=ctx.device)
    return {"accuracy": ckpt.metrics["test_accuracy"][-1], "loss": ckpt.metrics["test_loss"][-1],
            "machine": machine_info(ctx.device)}


def _row_finished(cell: TrainCell, data: MNISTData, config: RobustnessConfig) -> bool:
    ckpt = check_adversarial(cell.name, Path(cell.path), data, config, cell.seed)
    record = read_record(cell) if ckpt is not None else None
    if ckpt is None or not ckpt.complete:
        return False
    if record is None:
        write_record(cell, seconds=None, machine={}, accuracy=ckpt.metrics["test_accuracy"][-1],
                     loss=ckpt.metrics["test_loss"][-1])
    return True


def cell_kind(attack: str) -> str:
    """The progress kind of an attack cell: AutoAttack's cost an order of magnitude more than
    the others, so the time left is estimated from their own measured pace."""
    return "autoattack" if attack == "autoattack" else "attack"


def robustness_cell_count(data: MNISTData, config: RobustnessConfig, row: str = "", seed: int = 1,
                          kind: str | None = None) -> int:
    """Attack cells of a model of ``row`` and ``seed`` (of one progress ``kind``, or all)."""
    return sum(kind in (None, cell_kind(s.attack))
               for s in cell_specs(ModelRef(row, "", "", {"seed": seed}), data, config).values())


def run_study(variants: Sequence[Variant], data: MNISTData, config: RobustnessConfig, store: CellStore, *,
              checkpoints: str | os.PathLike[str], device: torch.device, executor: str = "local",
              jobs: int | None = None, address: str | None = None, fresh: bool = False, done: Done | None = None,
              progress: Callable[[str, Any], None] | None = None, ablation: AblationConfig | None = None
              ) -> tuple[list[RowResult], list[CellResult]]:
    """The whole study as one grid: a training cell per variant and seed (the ablation's)
    and per adversarially trained row, each model's attack cells as soon as its training
    cell is done (stored cells are reused; ``fresh`` recomputes the attack cells, not the
    training). Then the rows, in the order of ``variants`` and ``config.adversarial``.
    ``ablation`` is the variants' training (the study's by default)."""
    ablation = ablation or AblationConfig()
    trains: list[TrainCell] = [variant_cell(v, seed, ablation, data, checkpoints)
                               for v in variants for seed in range(1, config.seeds + 1)]
    trains += [adversarial_cell(row, data, checkpoints, config) for row in config.adversarial]
    by_key = {c.key: c for c in trains}
    models: dict[str, ModelRef] = {}

    def model_ready(cell: TrainCell) -> list[Task]:
        path = Path(cell.path).absolute()
        m = ModelRef(cell.name, str(path), sha256_file(path), {"seed": cell.seed})
        models[cell.key] = m
        tasks = []
        for spec in cell_specs(m, data, config).values():
            if fresh or not store.has(spec):
                tasks.append(attack_task(spec))
            elif done:
                done(cell_kind(spec.attack), f"{spec.model} seed {cell.seed}: {spec.attack}", None)
        return tasks

    def finished(task: Task, result: Any, seconds: float) -> list[Task]:
        if task.kind == "attack":
            store.save(result, replace=fresh)
            if done:
                done(cell_kind(result.spec.attack), task.label, seconds)
            return []
        cell = by_key[task.key]
        finish_training_cell(cell, result, seconds)
        if done:
            done("train", cell.label, seconds)
        return model_ready(cell)

    with exclusive(checkpoint_dir(checkpoints, data.info), "checkpoint folder"):
        tasks: list[Task] = []
        for cell in trains:
            is_variant = cell.identity["kind"] == "variant"
            ready = (variant_finished(cell, data, ablation) if is_variant else _row_finished(cell, data, config))
            if ready:
                if done:
                    done("train", cell.label, None)
                tasks += model_ready(cell)
            elif is_variant:
                tasks.append(variant_task(cell, ablation, False))
            else:
                tasks.append(Task(cell.key, "train", cell.label, train_row, (cell.name, config), cell.path,
                                  writes=True))
        tasks = [dataclasses.replace(t, rank=-1) if t.kind == "train" else t for t in tasks]  # training first
        run_tasks(tasks, finished=finished, data=data, device=device, executor=executor, jobs=jobs,
                  address=address, progress=progress)
    ordered = [models[c.key] for c in trains]
    specs = [cell_specs(m, data, config) for m in ordered]
    results = [store.load(s) for d in specs for s in d.values()]
    return rows_of(ordered, specs, results, config), results
