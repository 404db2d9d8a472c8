"""Models named on the command line: a variant name (trained first where missing, saying so) or a checkpoint file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import torch

from ..checkpoints import Checkpoint, load_checkpoint
from ..checks import did_you_mean
from ..data.datasets import MNISTData
from ..data.fetch import sha256_file
from ..grid.cells import ModelRef
from ..studies.ablation import (
    AblationConfig,
    needs_training,
    trained_checkpoint,
)
from ..training import seconds_per_step
from ..variants import Variant, get_variant, variant_names
from .app import (
    console,
    err_console,
    make_progress,
    step_bars,
)


def _dropout_text(v: Variant) -> str:
    return "0.5 built in" if v.model.name == "tutorial" else str(v.model.kwargs.get("dropout", "none"))


def model_tag(ref: str) -> str:
    """A variant's name, or a checkpoint file's stem and content hash: two files that share
    a name never share a results folder."""
    return ref if ref in variant_names() else f"{Path(ref).stem}-{sha256_file(Path(ref))[:8]}"


def check_model_ref(ref: str, option: str = "--model") -> None:
    """A variant name or a readable checkpoint file, checked before any data loads: a name
    that is neither is a usage error (exit 2, with "did you mean"); a file that is no
    checkpoint of ours is a CheckpointError (exit 1)."""
    if ref in variant_names():
        return
    if not Path(ref).exists():
        raise click.UsageError(f"Invalid value for '{option}': {ref!r} not found: no such checkpoint file "
                               f"({Path(ref).resolve()}) and no variant of that name"
                               f"{did_you_mean(ref, variant_names())} ({', '.join(variant_names())})")
    load_checkpoint(ref)  # a folder, a README or a damaged file is named now, not after the data loads


def note_unfinished(ckpt: Checkpoint) -> None:
    if not ckpt.complete:
        err_console.print(f"note: {ckpt.path} is unfinished (step {ckpt.step:,} of {ckpt.total_steps:,})")


def load_checkpoint_for(ref: str, data: MNISTData, checkpoints: Path, device: torch.device,
                        seed: int = 1) -> Checkpoint:
    """A variant name (its checkpoint for ``seed``, trained first if needed, saying so) or a checkpoint file."""

    def announce(path: Path) -> None:
        v = get_variant(ref)
        train_config = AblationConfig().train_config(v, seed)
        total = train_config.total_steps(data.info.n_train)
        pace = seconds_per_step(v.model, train_config, data, device=device)
        console.print(f"[yellow]{ref} names the ablation's variant '{v.label}' ({v.model.name} network, "
                      f"momentum {v.momentum:g}, dropout {_dropout_text(v)}), which has no finished checkpoint on "
                      f"{data.info.name} data: training it now with the ablation's settings (seed {seed}, "
                      f"{total:,} SGD steps, roughly {_duration(total * pace)} on this machine) into "
                      f"{path}. To attack a model of your own, pass its checkpoint file instead.[/]")

    with make_progress() as progress:
        ckpt = trained_checkpoint(ref, data, checkpoints=checkpoints, device=device, seed=seed, announce=announce,
                                  progress=step_bars(progress))
    note_unfinished(ckpt)
    return ckpt


def load_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> tuple[str, torch.nn.Module]:
    return model_tag(ref), load_checkpoint_for(ref, data, checkpoints, device).build_model(device)


def grid_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> ModelRef:
    """A model of a grid of cells: its checkpoint file and that file's content hash."""
    path = load_checkpoint_for(ref, data, checkpoints, device).path.absolute()
    info = {"variant": ref, "seed": 1} if ref in variant_names() else {"file": str(path)}
    return ModelRef(model_tag(ref), str(path), sha256_file(path), info)


def announce_training(refs: Sequence[str], data: MNISTData, checkpoints: Path, device: torch.device,
                      seeds: Sequence[int] = (1,)) -> None:
    """Before a command trains the variants it needs: which, on which data, and roughly how
    long on this machine (each network's pace timed over a few SGD steps; evaluations not
    counted). Says nothing when everything is trained."""
    todo = [(ref, seed) for ref in refs for seed in seeds if needs_training(ref, data, checkpoints, seed)]
    if not todo:
        return
    config = AblationConfig()
    pace: dict[str, float] = {}
    seconds = 0.0
    for ref, seed in todo:
        variant = get_variant(ref)
        train_config = config.train_config(variant, seed)
        if variant.model.name not in pace:
            pace[variant.model.name] = seconds_per_step(variant.model, train_config, data, device=device)
        seconds += pace[variant.model.name] * train_config.total_steps(data.info.n_train)
    steps = config.train_config(get_variant(todo[0][0]), 1).total_steps(data.info.n_train)
    names = ", ".join(ref + (f" seed {seed}" if len(seeds) > 1 else "") for ref, seed in todo)
    console.print(f"[yellow]first, training {len(todo)} run{'s' if len(todo) > 1 else ''} not yet trained on "
                  f"{data.info.name} data ({steps:,} SGD steps each, the ablation's settings): {names}; roughly "
                  f"{_duration(seconds)} on this machine (its pace timed over a few steps of each network)[/]")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
