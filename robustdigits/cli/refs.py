"""Models named on the command line: a variant name (trained first where missing, saying so) or a checkpoint file."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.progress import (
    TaskID,
)

from ..checkpoints import Checkpoint
from ..data.datasets import MNISTData
from ..data.fetch import sha256_file
from ..errors import CheckpointError
from ..grid.cells import ModelRef
from ..studies.ablation import (
    AblationConfig,
    trained_checkpoint,
)
from ..training import TrainEvent
from ..variants import Variant, get_variant, variant_names
from .app import (
    console,
    err_console,
    make_progress,
)


def _dropout_text(v: Variant) -> str:
    return "0.5 built in" if v.model.name == "tutorial" else str(v.model.kwargs.get("dropout", "none"))


def model_tag(ref: str) -> str:
    """A variant's name, or a checkpoint file's stem and content hash: two files that share
    a name never share a results folder."""
    return ref if ref in variant_names() else f"{Path(ref).stem}-{sha256_file(Path(ref))[:8]}"


def check_model_ref(ref: str) -> None:
    """A variant name or an existing checkpoint path; checked before any data loads."""
    if ref not in variant_names() and not Path(ref).exists():
        raise CheckpointError(f"{ref!r} not found: no such checkpoint file ({Path(ref).resolve()}) and no variant "
                              f"of that name ({', '.join(variant_names())})")


def note_unfinished(ckpt: Checkpoint) -> None:
    if not ckpt.complete:
        err_console.print(f"note: {ckpt.path} is unfinished (step {ckpt.step:,} of {ckpt.total_steps:,})")


def load_checkpoint_for(ref: str, data: MNISTData, checkpoints: Path, device: torch.device,
                        seed: int = 1) -> Checkpoint:
    """A variant name (its checkpoint for ``seed``, trained first if needed, saying so) or a checkpoint file."""

    def announce(path: Path) -> None:
        v = get_variant(ref)
        console.print(f"[yellow]{ref} names the ablation's variant '{v.label}' ({v.model.name} network, "
                      f"momentum {v.momentum:g}, dropout {_dropout_text(v)}), which has no finished checkpoint on "
                      f"{data.info.name} data: training it now with the ablation's settings (seed {seed}, "
                      f"{AblationConfig().train_config(v, 1).total_steps(data.info.n_train):,} SGD steps) into "
                      f"{path}. To attack a model of your own, pass its checkpoint file instead.[/]")

    with make_progress() as progress:
        bars: dict[int, TaskID] = {}

        def show(variant: Variant, seed: int, event: TrainEvent) -> None:
            if seed not in bars:
                bars[seed] = progress.add_task(f"train {variant.name}", total=event.total_steps, info="")
            progress.update(bars[seed], completed=event.step)

        ckpt = trained_checkpoint(ref, data, checkpoints=checkpoints, device=device, seed=seed, announce=announce,
                                  progress=show)
    note_unfinished(ckpt)
    return ckpt


def load_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> tuple[str, torch.nn.Module]:
    return model_tag(ref), load_checkpoint_for(ref, data, checkpoints, device).build_model(device)


def grid_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> ModelRef:
    """A model of a grid of cells: its checkpoint file and that file's content hash."""
    path = load_checkpoint_for(ref, data, checkpoints, device).path.absolute()
    info = {"variant": ref, "seed": 1} if ref in variant_names() else {"file": str(path)}
    return ModelRef(model_tag(ref), str(path), sha256_file(path), info)
