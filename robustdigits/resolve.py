"""Turn a model reference (a checkpoint file or a variant name) into a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from .ablation import checkpoint_path
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint
from .datasets import DatasetInfo
from .variants import variant_names

DEFAULT_CHECKPOINTS = Path("checkpoints")


def resolve_checkpoint(
    ref: str, dataset: DatasetInfo, root: str | os.PathLike[str] = DEFAULT_CHECKPOINTS
) -> Checkpoint:
    """``ref`` is a checkpoint path, or a variant name trained by ``ablate`` on ``dataset``."""
    if ref in variant_names():
        path = checkpoint_path(root, dataset, ref)
        if not path.is_file():
            raise CheckpointError(
                f"variant {ref!r} has no checkpoint for {dataset.name} data ({path}); "
                "train it with 'robustdigits ablate'"
            )
        return load_checkpoint(path)
    if Path(ref).is_file():
        return load_checkpoint(ref)
    raise CheckpointError(f"{ref!r} is neither a checkpoint file nor a variant ({', '.join(variant_names())})")
