"""Checkpoints: model and optimizer state with everything needed to trust them.

A checkpoint is a dict of plain values and tensors, so the safe tensor-only
unpickler reads it (``weights_only=True``); it is written atomically.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelSpec, TrainConfig
from .data.datasets import DatasetInfo
from .data.fetch import default_data_dir
from .devices import fast_layout
from .errors import CheckpointError
from .fileio import atomic_path

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "model", "train_config", "model_state", "dataset", "metrics")


@dataclass
class Checkpoint:
    path: Path
    model_spec: ModelSpec
    train_config: TrainConfig
    dataset: DatasetInfo
    metrics: dict[str, list[Any]]
    epoch: int  # completed epochs
    step: int  # completed SGD steps
    complete: bool  # training reached its budget
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: torch.Tensor | None
    adversarial: dict[str, Any] | None = None  # adversarial training: config, recipe, guard history

    @property
    def total_steps(self) -> int:
        """The SGD steps of its training budget."""
        return self.train_config.total_steps(self.dataset.n_train)

    def build_model(self, device: torch.device | str = "cpu") -> nn.Module:
        """The trained model on ``device``, in eval mode."""
        try:
            model = self.model_spec.build()
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{self.path}: its model arguments {self.model_spec.kwargs} do not build a "
                                  f"{self.model_spec.name!r} model ({e}); train it again") from e
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as e:
            raise CheckpointError(
                f"{self.path}: its weights do not fit the {self.model_spec.name!r} architecture "
                f"{self.model_spec.kwargs}; it was written for another model"
            ) from e
        device = torch.device(device)
        return model.to(device).to(memory_format=fast_layout(device)).eval()


FULL_BELOW = 1 << 20  # bytes free under which a failed torch.save is taken for a full disk


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model_spec: ModelSpec,
    train_config: TrainConfig,
    dataset: DatasetInfo,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    metrics: dict[str, list[Any]],
    epoch: int,
    step: int,
    complete: bool,
    rng_state: torch.Tensor | None = None,
    adversarial: dict[str, Any] | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write atomically; ``model_state`` (default: ``model``'s) is the weights kept, which
    adversarial training chooses by its guard; ``adversarial`` is stored as it is."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model": {"name": model_spec.name, "kwargs": dict(model_spec.kwargs)},
        "train_config": train_config.to_dict(),
        "dataset": asdict(dataset),
        "metrics": metrics,
        "epoch": epoch,
        "step": step,
        "complete": complete,
        "model_state": model_state if model_state is not None else
        {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "rng_state": rng_state,
    }
    if adversarial is not None:
        payload["adversarial"] = adversarial
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:  # a file object: the archive is named "archive", not after the temporary
                torch.save(payload, f)  # file, so the same training writes the same bytes (and content hash)
        except RuntimeError as e:  # torch reports a failed write as RuntimeError, whatever its cause
            if shutil.disk_usage(tmp.parent).free >= FULL_BELOW:
                raise  # not a full disk: a bug, shown with its traceback
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from e
    return Path(path)


def default_checkpoints() -> Path:
    """``$ROBUSTDIGITS_CHECKPOINTS``, else ``checkpoints/`` in the data cache
    (``~/.cache/robustdigits/checkpoints``): an absolute place, so a variant trained once
    is found by name from any working folder."""
    env = os.environ.get("ROBUSTDIGITS_CHECKPOINTS")
    return Path(env).expanduser().absolute() if env else default_data_dir().expanduser().absolute() / "checkpoints"


def checkpoint_dir(root: str | os.PathLike[str], dataset: DatasetInfo) -> Path:
    """Variant checkpoints are kept per dataset, so runs on different data never collide."""
    return Path(root) / f"{dataset.name}-{dataset.sha256[:12]}"


def checkpoint_path(root: str | os.PathLike[str], dataset: DatasetInfo, variant: str, seed: int = 1,
                    budget: str = "") -> Path:
    """Where ``ablate`` keeps variant ``variant``'s checkpoint for ``seed`` on ``dataset``;
    ``budget`` tags a training budget other than the study's steps (e.g. ``"epochs3"``), so
    one file name never holds two different trainings."""
    return checkpoint_dir(root, dataset) / f"{variant}{'-' + budget if budget else ''}-seed{seed}.pt"


_NOT_OURS = "pass a checkpoint written by 'robustdigits train' or 'ablate'"


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path.resolve()} is a folder, not a checkpoint file; {_NOT_OURS}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path.resolve()} not found; {_NOT_OURS}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad zip/pickle data
        raise CheckpointError(
            f"{path} is not a readable robustdigits checkpoint ({type(e).__name__}): it is another kind of "
            f"file or a damaged one; {_NOT_OURS}"
        ) from e
    if not isinstance(raw, dict) or any(k not in raw for k in _REQUIRED):
        raise CheckpointError(f"{path} is not a robustdigits checkpoint (missing fields); {_NOT_OURS}")
    version = raw["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} has an unknown checkpoint format {version!r}; {_NOT_OURS}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this robustdigits reads "
            f"({FORMAT_VERSION}); upgrade robustdigits"
        )
    try:
        return Checkpoint(
            path=path,
            model_spec=ModelSpec(raw["model"]["name"], dict(raw["model"]["kwargs"])),
            train_config=TrainConfig(**raw["train_config"]),
            dataset=DatasetInfo(**raw["dataset"]),
            metrics=raw["metrics"],
            epoch=int(raw.get("epoch", 0)),
            step=int(raw.get("step", 0)),
            complete=bool(raw.get("complete", False)),
            model_state=raw["model_state"],
            optimizer_state=raw.get("optimizer_state"),
            rng_state=raw.get("rng_state"),
            adversarial=raw.get("adversarial"),
        )
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} has invalid fields ({e}); train it again") from e
