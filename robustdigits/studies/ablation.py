"""The study's ablation: train its nine variants and set our accuracy beside its own."""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import Checkpoint, checkpoint_dir, checkpoint_path, load_checkpoint
from ..checks import check_choice, check_int
from ..config import TrainConfig, study_steps
from ..data.datasets import DatasetInfo, MNISTData
from ..errors import CheckpointError
from ..fileio import exclusive
from ..grid.executor import Task, context, run_tasks, step_progress, workers_for
from ..grid.train_cells import TrainCell, read_record, write_record
from ..report.plots import plot_loss_curve
from ..report.tables import machine_info, machine_line, write_report
from ..training import TrainEvent, TrainResult, train
from ..variants import VARIANTS, Variant, get_variant, variant_names

BUDGETS = ("steps", "epochs")


@dataclass(frozen=True)
class AblationConfig:
    budget: str = "steps"  # "steps": the study's SGD steps (3 × 60,000 / 64); "epochs": 3 passes
    epochs: int = 3  # the study's epochs; with budget "steps", converted to steps
    seeds: int = 1  # each variant is trained with seeds 1..seeds
    base: TrainConfig = TrainConfig()  # batch size, lr, seed 1, ...; momentum set per variant

    def __post_init__(self) -> None:
        check_choice("budget", self.budget, BUDGETS)
        check_int("epochs", self.epochs, 1)
        check_int("seeds", self.seeds, 1)

    @property
    def checkpoint_tag(self) -> str:
        """"" for the study's budget (2,813 steps), else what differs ("epochs5", "steps4688"):
        checkpoints of different budgets never share a file name."""
        if self.budget == "epochs":
            return f"epochs{self.epochs}"
        return "" if self.epochs == 3 else f"steps{study_steps(self.epochs, self.base.batch_size)}"

    def train_config(self, variant: Variant, seed: int) -> TrainConfig:
        steps = study_steps(self.epochs, self.base.batch_size) if self.budget == "steps" else None
        return dataclasses.replace(self.base, epochs=self.epochs, steps=steps,
                                   momentum=variant.momentum, seed=self.base.seed + seed - 1)


@dataclass
class VariantResult:
    variant: Variant
    runs: list[TrainResult]

    @property
    def accuracies(self) -> list[float]:
        return [r.final.accuracy for r in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.accuracies) if len(self.runs) > 1 else None


def variant_cell(variant: Variant, seed: int, config: AblationConfig, data: MNISTData,
                 checkpoints: str | os.PathLike[str]) -> TrainCell:
    """The training cell of ``variant`` for ``seed``: its checkpoint in the cache's layout."""
    tc = config.train_config(variant, seed)
    identity = {"kind": "variant", "variant": variant.name, "model": {"name": variant.model.name,
                "kwargs": dict(variant.model.kwargs)}, "train": tc.to_dict(), "data": data.info.sha256}
    path = checkpoint_path(checkpoints, data.info, variant.name, seed, config.checkpoint_tag)
    return TrainCell(variant.name, seed, identity, str(path))


def variant_finished(cell: TrainCell, data: MNISTData, config: AblationConfig) -> bool:
    """Whether the cache holds the cell finished. A file in its place that is another
    training, or whose record names another cell, is refused by name; a finished
    checkpoint from before training cells gets its record now."""
    path = Path(cell.path)
    if not path.is_file():
        return False
    ckpt = load_checkpoint(path)
    check_is_variant(ckpt, get_variant(cell.name), cell.seed, data.info, config)
    record = read_record(cell)
    if not ckpt.complete:
        return False
    if record is None:
        write_record(cell, seconds=None, machine={}, accuracy=ckpt.metrics["test_accuracy"][-1],
                     loss=ckpt.metrics["test_loss"][-1])
    return True


def variant_task(cell: TrainCell, config: AblationConfig, fresh: bool) -> Task:
    train_config = config.train_config(get_variant(cell.name), cell.seed)
    return Task(cell.key, "train", cell.label, train_variant, (cell.name, train_config.to_dict(), fresh), cell.path,
                writes=True)


def train_variant(name: str, train_config: dict[str, Any], fresh: bool, *, path: str) -> dict[str, Any]:
    """A variant's training cell in a worker (or here): the data and device from the task's context."""
    ctx = context()
    assert ctx.data is not None, "a training cell runs with the grid's data in its context"
    result = _train_one(get_variant(name), TrainConfig(**train_config), ctx.data, Path(path), device=ctx.device,
                        fresh=fresh, progress=step_progress)
    return {"accuracy": result.final.accuracy, "loss": result.final.loss, "machine": machine_info(ctx.device)}


def finish_training_cell(cell: TrainCell, result: dict[str, Any], seconds: float) -> None:
    """Record a training cell a worker finished."""
    write_record(cell, seconds=seconds, machine=result["machine"], accuracy=result["accuracy"], loss=result["loss"])


def run_ablation(
    data: MNISTData,
    config: AblationConfig,
    *,
    device: torch.device,
    checkpoints: str | os.PathLike[str],
    variants: Sequence[Variant] = VARIANTS,
    fresh: bool = False,
    progress: Callable[[str, TrainEvent], None] | None = None,
    only_seeds: Sequence[int] | None = None,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    done: Callable[[TrainCell, float | None], None] | None = None,
) -> list[VariantResult]:
    """Train every variant for every seed (1..``config.seeds``, or ``only_seeds``), each
    run a training cell of the executor (``jobs`` local workers, or Ray). A complete
    checkpoint with the same config and data is reused and an incomplete one resumed.

    ``fresh`` retrains into ``<name>.fresh.pt`` and replaces the finished checkpoint
    only when the new one is complete, so an interrupted fresh run loses nothing.
    The checkpoint folder is locked for the run: a second process on it is refused.
    ``progress(label, event)`` gets the steps of runs trained in this process (``jobs``
    1); ``done(cell, seconds)`` each finished cell (seconds None: reused).
    """
    seeds = list(only_seeds or range(1, config.seeds + 1))
    cells = [variant_cell(v, seed, config, data, checkpoints) for v in variants for seed in seeds]
    with exclusive(checkpoint_dir(checkpoints, data.info), "checkpoint folder"):
        pending = [c for c in cells if fresh or not variant_finished(c, data, config)]
        for cell in cells:
            if cell not in pending and done:
                done(cell, None)
        by_key = {c.key: c for c in pending}

        def finished(task: Task, result: dict[str, Any], seconds: float) -> list[Task]:
            finish_training_cell(by_key[task.key], result, seconds)
            if done:
                done(by_key[task.key], seconds)
            return []

        run_tasks([variant_task(c, config, fresh) for c in pending], finished=finished, data=data, device=device,
                  executor=executor, jobs=workers_for(jobs, executor, len(pending)), address=address,
                  progress=progress)
        results: list[VariantResult] = []
        for v in variants:  # finished checkpoints are read back: the weights, metrics and final evaluation
            runs = [train(v.model, config.train_config(v, seed), data, device=device, checkpoint=c.path, resume=True)
                    for seed, c in zip(seeds, cells[len(results) * len(seeds):])]
            results.append(VariantResult(v, runs))
    return results


def _train_one(variant: Variant, train_config: TrainConfig, data: MNISTData, path: Path, *, device: torch.device,
               fresh: bool, progress: Callable[[TrainEvent], None]) -> TrainResult:
    if not (fresh and path.exists()):
        return train(variant.model, train_config, data, device=device, checkpoint=path, resume=True,
                     progress=progress)
    work = path.with_name(f"{path.stem}.fresh.pt")
    work.unlink(missing_ok=True)  # a fresh run interrupted earlier starts over
    result = train(variant.model, train_config, data, device=device, checkpoint=work, progress=progress)
    os.replace(work, path)
    return dataclasses.replace(result, checkpoint=path)


COLUMNS = ["variant", "network", "momentum", "dropout", "published acc. (%)", "our acc. (%)",
           "± std", "difference", "test loss", "steps", "epochs"]
SUMMARY_COLUMNS = ["variant", "published acc. (%)", "our acc. (%)", "± std", "difference"]  # the terminal's


def table_rows(results: list[VariantResult], n_train: int) -> list[list[Any]]:
    """COLUMNS for each variant; epochs are passes over ``n_train`` images (2,813 steps of 64
    are 22.5 passes over 8,000), not the epoch counter, which counts a started pass."""
    rows = []
    for r in results:
        v, run = r.variant, r.runs[0]
        rows.append([
            v.name, v.model.name, v.momentum, _dropout(v),
            v.published_accuracy, r.mean, r.std, r.mean - v.published_accuracy,
            statistics.fmean(x.final.loss for x in r.runs), run.metrics["test_step"][-1],
            round(run.metrics["test_examples"][-1] / n_train, 2),
        ])
    return rows


def _dropout(v: Variant) -> str:
    if v.model.name == "tutorial":
        return "0.5 (built in)"
    return str(v.model.kwargs.get("dropout", "none"))


def write_ablation_report(
    results: list[VariantResult],
    config: AblationConfig,
    data: MNISTData,
    out_dir: str | os.PathLike[str],
    device: torch.device,
    settings: dict[str, Any] | None = None,
    workers: str = "",
) -> list[Path]:
    """``ablation.md/.csv/.json`` and ``loss_<variant>.png`` (seed 1) in ``out_dir``;
    ``settings`` (what identifies the run) is kept in the JSON; ``workers`` says what
    trained the runs (e.g. "2 local workers × 1 torch thread")."""
    machine = machine_info(device)
    steps = config.train_config(VARIANTS[0], 1).total_steps(data.info.n_train)
    budget = (f"the study's {steps:,} SGD steps (3 epochs of 60,000 at batch {config.base.batch_size})"
              if config.budget == "steps" else f"{config.epochs} epochs ({steps:,} SGD steps)")
    notes = [
        f"Dataset: {data.info.short}.",
        f"Budget: {budget}; batch {config.base.batch_size}, lr {config.base.lr}, "
        f"seeds {', '.join(str(config.base.seed + s) for s in range(config.seeds))}"
        + (" (mean ± sample std over seeds)" if config.seeds > 1 else "") + ".",
        f"Machine: {machine_line(machine)}" + (f"; the runs trained here by {workers}" if workers else "") + ".",
        "Published: the study's test accuracy on full MNIST (10,000 test images).",
    ]
    rows = table_rows(results, data.info.n_train)
    records = [
        {"variant": r.variant.name, "label": r.variant.label, "model": r.variant.model.name,
         "model_kwargs": r.variant.model.kwargs, "momentum": r.variant.momentum,
         "published_accuracy": r.variant.published_accuracy, "accuracies": r.accuracies,
         "mean_accuracy": r.mean, "std_accuracy": r.std,
         "test_losses": [x.final.loss for x in r.runs],
         # named in the checkpoint cache, not by where that cache was on the machine that ran it
         "checkpoints": ["/".join(Path(x.checkpoint).parts[-2:]) if x.checkpoint else None for x in r.runs],
         "train_config": config.train_config(r.variant, 1).to_dict()}
        for r in results
    ]
    meta = {"settings": settings, "dataset": dataclasses.asdict(data.info), "budget": config.budget, "steps": steps,
            "seeds": config.seeds, "machine": machine, "workers": workers}
    paths = write_report(out_dir, "ablation", title="MNIST ablation: the study's numbers beside ours",
                         notes=notes, columns=COLUMNS, rows=rows, records=records, meta=meta)
    for r in results:
        paths.append(plot_loss_curve(r.runs[0].metrics, Path(out_dir) / f"loss_{r.variant.name}.png",
                                     title=f"{r.variant.label} ({data.info.name} data)"))
    return paths


def needs_training(ref: str, data: MNISTData, checkpoints: str | os.PathLike[str], seed: int = 1) -> bool:
    """Whether ``ref`` is a variant whose checkpoint for ``seed`` on ``data`` is missing or unfinished."""
    if ref not in variant_names():
        return False
    path = checkpoint_path(checkpoints, data.info, ref, seed)
    return not path.is_file() or not load_checkpoint(path).complete


def trained_checkpoint(
    ref: str,
    data: MNISTData,
    *,
    checkpoints: str | os.PathLike[str],
    device: torch.device,
    seed: int = 1,
    announce: Callable[[Path], None] | None = None,
    progress: Callable[[str, TrainEvent], None] | None = None,
) -> Checkpoint:
    """``ref`` is a checkpoint file, or a variant name: its checkpoint for ``seed`` on
    ``data``, trained (or finished) first with the ablation's settings, after
    ``announce(path)`` lets the caller say so."""
    if needs_training(ref, data, checkpoints, seed):
        if announce:
            announce(checkpoint_path(checkpoints, data.info, ref, seed).absolute())
        run_ablation(data, AblationConfig(), device=device, checkpoints=checkpoints,
                     variants=[get_variant(ref)], progress=progress, only_seeds=[seed])
    return resolve_checkpoint(ref, data.info, checkpoints, seed)


def check_is_variant(ckpt: Checkpoint, variant: Variant, seed: int, dataset: DatasetInfo,
                     config: AblationConfig | None = None) -> None:
    """A checkpoint found in a variant's place must be that variant: its network and
    arguments, the ablation's training settings for ``seed``, and ``dataset``. Anything else
    (a file copied or trained there by hand) is refused by name, never used as the variant."""
    expected = (config or AblationConfig()).train_config(variant, seed)
    wrong = []
    if ckpt.model_spec != variant.model:
        wrong.append(f"network {ckpt.model_spec.name} {ckpt.model_spec.kwargs or ''}".rstrip() + " (expected "
                     f"{variant.model.name} {variant.model.kwargs or ''}".rstrip() + ")")
    if ckpt.train_config != expected:
        differ = [k for k, v in expected.to_dict().items() if ckpt.train_config.to_dict().get(k) != v]
        wrong.append("training settings " + ", ".join(f"{k} {ckpt.train_config.to_dict().get(k)} (expected "
                                                     f"{expected.to_dict()[k]})" for k in differ))
    if ckpt.dataset.sha256 != dataset.sha256:
        wrong.append(f"{ckpt.dataset.name} data (expected {dataset.name})")
    if wrong:
        raise CheckpointError(f"{ckpt.path} sits in variant {variant.name!r}'s place (seed {seed}) but holds "
                              f"{'; '.join(wrong)}: it is not that variant; move it away and run 'robustdigits "
                              f"ablate --variants {variant.name}' (a model of your own is passed by its file)")


def resolve_checkpoint(ref: str, dataset: DatasetInfo, root: str | os.PathLike[str], seed: int = 1) -> Checkpoint:
    """``ref`` is a checkpoint path, or a variant name trained by ``ablate`` on ``dataset``
    (its checkpoint for ``seed``). A variant's checkpoint must be finished; a file may be
    unfinished (its ``complete`` field says so)."""
    if ref in variant_names():
        path = checkpoint_path(root, dataset, ref, seed).absolute()
        if not path.is_file():
            raise CheckpointError(
                f"variant {ref!r} (seed {seed}) has no checkpoint on {dataset.name} data ({path}); train it with "
                f"'robustdigits ablate --variants {ref}'" + (f" --seeds {seed}" if seed > 1 else "")
                + " (a model from 'robustdigits train' is a file: pass its path instead)")
        ckpt = load_checkpoint(path)
        check_is_variant(ckpt, get_variant(ref), seed, dataset)
        if not ckpt.complete:
            raise CheckpointError(f"variant {ref!r}'s checkpoint {path} is unfinished (step {ckpt.step:,} "
                                  f"of {ckpt.total_steps:,}); finish it with 'robustdigits ablate --variants {ref}'")
        return ckpt
    if Path(ref).exists():
        return load_checkpoint(ref)
    raise CheckpointError(f"{ref!r} not found: no such checkpoint file ({Path(ref).resolve()}) and no variant of "
                          f"that name ({', '.join(variant_names())})")
