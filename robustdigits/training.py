"""SGD training of a registered model, resumable and bit-reproducible on the CPU."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from .config import ModelSpec, TrainConfig
from .data.datasets import MNISTData
from .data.loader import TensorLoader
from .devices import fast_layout
from .errors import CheckpointError, DivergedError
from .evaluation import EvalResult, evaluate
from .fileio import exclusive

logger = logging.getLogger(__name__)


COLUMNS = ["epoch", "steps", "test loss", "test accuracy (%)"]  # a run's evaluations, from its metrics


@dataclass(frozen=True)
class TrainEvent:
    """Sent to the progress callback after every step (``kind="step"``) and after
    every evaluation (``kind="epoch"``)."""

    kind: str
    epoch: int  # 0-based epoch in progress
    step: int  # SGD steps completed
    total_steps: int
    loss: float | None = None  # training loss of this step (only computed when logged)
    evaluation: EvalResult | None = None
    steps_per_epoch: int = 0
    clean_loss: float | None = None  # adversarial training: the clean loss beside ``loss`` (the adversarial one)
    guard_accuracy: float | None = None  # adversarial training: held-out PGD accuracy after the epoch


ProgressCallback = Callable[[TrainEvent], None]


@dataclass
class TrainResult:
    model: torch.nn.Module
    metrics: dict[str, list[Any]]
    final: EvalResult
    checkpoint: Path | None
    resumed_from_step: int = 0
    history: list[EvalResult] = field(default_factory=list)


def empty_metrics() -> dict[str, list[Any]]:
    return {
        "train_step": [], "train_examples": [], "train_loss": [],
        "test_epoch": [], "test_step": [], "test_examples": [], "test_loss": [], "test_accuracy": [],
    }


def train(
    spec: ModelSpec,
    config: TrainConfig,
    data: MNISTData,
    *,
    device: torch.device,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = True,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``spec`` with ``config`` on ``data``; checkpoint after every epoch.

    With ``resume=True`` and an existing ``checkpoint`` written by the same model,
    config and dataset, training continues after its last complete epoch and gives
    the same weights as an uninterrupted run (on the CPU). ``overwrite=False`` refuses
    an existing checkpoint (checked under the lock, so two runs cannot both pass).
    The checkpoint is locked while training: a second process on it is refused.
    A non-finite loss stops training with :class:`DivergedError` before a diverged
    model is saved.
    """
    if checkpoint is None:
        return _train(spec, config, data, device=device, checkpoint=None, resume=False, progress=progress)
    with exclusive(checkpoint, "checkpoint"):
        if Path(checkpoint).exists() and not (resume or overwrite):
            raise CheckpointError(f"checkpoint {checkpoint} exists; pass --resume to continue it or --overwrite "
                                  "to replace it")
        return _train(spec, config, data, device=device, checkpoint=checkpoint, resume=resume, progress=progress)


def _train(spec: ModelSpec, config: TrainConfig, data: MNISTData, *, device: torch.device,
           checkpoint: str | os.PathLike[str] | None, resume: bool, progress: ProgressCallback | None) -> TrainResult:
    torch.manual_seed(config.seed)
    model = spec.build().to(device).to(memory_format=fast_layout(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    train_loader = TensorLoader(data.train_images, data.train_labels, batch_size=config.batch_size,
                                shuffle=True, device=device, seed=config.seed)
    test_loader = TensorLoader(data.test_images, data.test_labels, batch_size=config.test_batch_size,
                               shuffle=False, device=device)
    total = config.total_steps(train_loader.num_samples)
    metrics, start_epoch, step = empty_metrics(), 0, 0
    history: list[EvalResult] = []

    if resume and checkpoint is not None and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint)
        _check_resumable(ckpt, spec, config, data)
        try:
            model.load_state_dict(ckpt.model_state)
            if ckpt.optimizer_state is not None:
                optimizer.load_state_dict(ckpt.optimizer_state)
            if ckpt.rng_state is not None:
                torch.set_rng_state(ckpt.rng_state)
        except (RuntimeError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{ckpt.path}: its saved state does not fit a {spec.name!r} run "
                                  f"({type(e).__name__}); it was edited or damaged: start a new run") from e
        metrics, start_epoch, step = ckpt.metrics, ckpt.epoch, ckpt.step
        logger.info("resuming %s at epoch %d, step %d", checkpoint, start_epoch, step)
    resumed_from = step

    epoch = start_epoch
    while step < total:
        model.train()
        for x, y in train_loader.epoch(epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            logged = step % config.log_interval == 0
            value = loss.item() if logged else None  # the only host sync of a step, when logging
            if value is not None and not math.isfinite(value):
                raise DivergedError(f"training diverged at step {step:,} (loss {value}); lower the learning rate "
                                    f"(lr {config.lr})")
            if logged:
                metrics["train_step"].append(step)
                metrics["train_examples"].append(step * config.batch_size)
                metrics["train_loss"].append(value)
            step += 1
            if progress:
                progress(TrainEvent("step", epoch, step, total, value, steps_per_epoch=len(train_loader)))
            if step >= total:
                break
        result = evaluate(model, test_loader)
        if not math.isfinite(result.loss):
            raise DivergedError(f"training diverged by step {step:,} (test loss {result.loss}); lower the learning "
                                f"rate (lr {config.lr})")
        history.append(result)
        for key, value_ in (("test_epoch", epoch + 1), ("test_step", step),
                            ("test_examples", step * config.batch_size),
                            ("test_loss", result.loss), ("test_accuracy", result.accuracy)):
            metrics[key].append(value_)
        epoch += 1
        if checkpoint is not None:
            save_checkpoint(checkpoint, model_spec=spec, train_config=config, dataset=data.info,
                            model=model, optimizer=optimizer, metrics=metrics, epoch=epoch,
                            step=step, complete=step >= total, rng_state=torch.get_rng_state())
        if progress:
            progress(TrainEvent("epoch", epoch - 1, step, total, evaluation=result,
                                steps_per_epoch=len(train_loader)))

    final = history[-1] if history else evaluate(model, test_loader)
    model.eval()
    return TrainResult(model, metrics, final, Path(checkpoint) if checkpoint else None, resumed_from, history)


def _check_resumable(ckpt: Checkpoint, spec: ModelSpec, config: TrainConfig, data: MNISTData) -> None:
    if ckpt.model_spec != spec:
        raise CheckpointError(
            f"{ckpt.path} holds a {ckpt.model_spec.name!r} model {ckpt.model_spec.kwargs}, not "
            f"{spec.name!r} {spec.kwargs}; choose another checkpoint path, or start a new run"
        )
    if ckpt.train_config != config:
        raise CheckpointError(
            f"{ckpt.path} was trained with another config ({ckpt.train_config}); "
            "resume it with the options it was trained with, or start a new run"
        )
    if ckpt.dataset.sha256 != data.info.sha256:
        raise CheckpointError(
            f"{ckpt.path} was trained on {ckpt.dataset.description}, not on {data.info.description}; "
            "resume it on the same data, or start a new run"
        )


def seconds_per_step(spec: ModelSpec, config: TrainConfig, data: MNISTData, *, device: torch.device,
                     steps: int = 8) -> float:
    """This machine's pace for ``spec`` under ``config``: the median seconds of ``steps``
    timed SGD steps (after two untimed ones) on the first training images, for a rough
    estimate before a long run. Touches no checkpoint and leaves torch's RNG as it was."""
    import time

    with torch.random.fork_rng(devices=[]):
        model = spec.build().to(device).to(memory_format=fast_layout(device))
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
        loader = TensorLoader(data.train_images[:config.batch_size], data.train_labels[:config.batch_size],
                              batch_size=config.batch_size, shuffle=False, device=device)
        x, y = next(iter(loader))
        model.train()
        times = []
        for k in range(steps + 2):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            if k >= 2:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
