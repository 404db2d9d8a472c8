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

from .config import TrainConfig, study_steps
from .datasets import DatasetInfo, MNISTData
from .plots import plot_loss_curve
from .reports import machine_info, machine_line, write_report
from .training import TrainEvent, TrainResult, train
from .variants import VARIANTS, Variant, get_variant

BUDGETS = ("steps", "epochs")


@dataclass(frozen=True)
class AblationConfig:
    budget: str = "steps"  # "steps": the study's SGD steps (3 × 60,000 / 64); "epochs": 3 passes
    epochs: int = 3  # the study's epochs; with budget "steps", converted to steps
    seeds: int = 1  # each variant is trained with seeds 1..seeds
    base: TrainConfig = TrainConfig()  # batch size, lr, seed 1, ...; momentum set per variant

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be an int >= 1, got {self.seeds!r}")

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


def checkpoint_dir(root: str | os.PathLike[str], dataset: DatasetInfo) -> Path:
    """Checkpoints are kept per dataset, so runs on different data never collide."""
    return Path(root) / f"{dataset.name}-{dataset.sha256[:12]}"


def checkpoint_path(root: str | os.PathLike[str], dataset: DatasetInfo, variant: str, seed: int = 1) -> Path:
    return checkpoint_dir(root, dataset) / f"{variant}-seed{seed}.pt"


def run_ablation(
    data: MNISTData,
    config: AblationConfig,
    *,
    device: torch.device,
    checkpoints: str | os.PathLike[str],
    variants: Sequence[Variant] = VARIANTS,
    fresh: bool = False,
    progress: Callable[[Variant, int, TrainEvent], None] | None = None,
) -> list[VariantResult]:
    """Train every variant for every seed. A complete checkpoint with the same
    config and data is reused and an incomplete one resumed, unless ``fresh``."""
    results = []
    for variant in variants:
        runs = []
        for seed in range(1, config.seeds + 1):
            path = checkpoint_path(checkpoints, data.info, variant.name, seed)
            if fresh and path.exists():
                path.unlink()

            def report(event: TrainEvent, variant: Variant = variant, seed: int = seed) -> None:
                if progress:
                    progress(variant, seed, event)

            runs.append(train(variant.model, config.train_config(variant, seed), data, device=device,
                              checkpoint=path, resume=True, progress=report))
        results.append(VariantResult(variant, runs))
    return results


COLUMNS = ["variant", "network", "momentum", "dropout", "published acc. (%)", "our acc. (%)",
           "± std", "difference", "test loss", "steps", "epochs"]


def table_rows(results: list[VariantResult]) -> list[list[Any]]:
    rows = []
    for r in results:
        v, run = r.variant, r.runs[0]
        rows.append([
            v.name, v.model.name, v.momentum, _dropout(v),
            v.published_accuracy, r.mean, r.std, r.mean - v.published_accuracy,
            statistics.fmean(x.final.loss for x in r.runs), run.metrics["test_step"][-1],
            run.metrics["test_epoch"][-1],
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
) -> list[Path]:
    """``ablation.md/.csv/.json`` and ``loss_<variant>.png`` (seed 1) in ``out_dir``."""
    machine = machine_info(device)
    steps = config.train_config(VARIANTS[0], 1).total_steps(data.info.n_train)
    budget = (f"the study's {steps:,} SGD steps (3 epochs of 60,000 at batch {config.base.batch_size})"
              if config.budget == "steps" else f"{config.epochs} epochs ({steps:,} SGD steps)")
    notes = [
        f"Dataset: {data.info.short}.",
        f"Budget: {budget}; batch {config.base.batch_size}, lr {config.base.lr}, "
        f"seeds {', '.join(str(config.base.seed + s) for s in range(config.seeds))}"
        + (" (mean ± sample std over seeds)" if config.seeds > 1 else "") + ".",
        f"Machine: {machine_line(machine)}.",
        "Published: the study's test accuracy on full MNIST (10,000 test images).",
    ]
    rows = table_rows(results)
    records = [
        {"variant": r.variant.name, "label": r.variant.label, "model": r.variant.model.name,
         "model_kwargs": r.variant.model.kwargs, "momentum": r.variant.momentum,
         "published_accuracy": r.variant.published_accuracy, "accuracies": r.accuracies,
         "mean_accuracy": r.mean, "std_accuracy": r.std,
         "test_losses": [x.final.loss for x in r.runs],
         "checkpoints": [str(x.checkpoint) for x in r.runs],
         "train_config": config.train_config(r.variant, 1).to_dict()}
        for r in results
    ]
    meta = {"dataset": dataclasses.asdict(data.info), "budget": config.budget, "steps": steps,
            "seeds": config.seeds, "machine": machine}
    paths = write_report(out_dir, "ablation", title="MNIST ablation: the study's numbers beside ours",
                         notes=notes, columns=COLUMNS, rows=rows, records=records, meta=meta)
    for r in results:
        paths.append(plot_loss_curve(r.runs[0].metrics, Path(out_dir) / f"loss_{r.variant.name}.png",
                                     title=f"{r.variant.label} ({data.info.name} data)"))
    return paths


def ensure_variant(
    name: str,
    data: MNISTData,
    *,
    checkpoints: str | os.PathLike[str],
    device: torch.device,
    progress: Callable[[Variant, int, TrainEvent], None] | None = None,
) -> Path:
    """The seed-1 checkpoint of variant ``name`` on ``data``, trained first (with the
    ablation's defaults) when it does not exist yet."""
    path = checkpoint_path(checkpoints, data.info, name)
    if not path.is_file():
        run_ablation(data, AblationConfig(), device=device, checkpoints=checkpoints,
                     variants=[get_variant(name)], progress=progress)
    return path
