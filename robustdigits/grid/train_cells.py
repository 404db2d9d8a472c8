"""Training cells: one training run (a model, a seed, a budget, a data set, adversarial or
not), keyed by the hash of everything that determines its weights.

The checkpoint cache is the training cells' store, in its existing layout
(``<checkpoints>/<data>-<sha>/<name>-seed<k>.pt``, readable by name): a cell's
checkpoint is written atomically after every epoch (so it resumes where it stopped) and
is finished once. Beside it, ``<name>-seed<k>.cell.json`` records the cell: its key,
what determined the weights, the seconds it took, the machine, and its final test
accuracy and loss (the metrics themselves are in the checkpoint). A checkpoint from
before training cells (no record) is accepted when its contents are what the cell says
(the study checks that) and gets its record then, with its seconds unknown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..fileio import json_text, write_text_atomic

TRAIN_FORMAT = 1  # bump when a training cell's computation changes, so old results are not reused


@dataclass(frozen=True)
class TrainCell:
    """What a training cell computes. ``path`` (where its checkpoint lives) is not part of
    its identity."""

    name: str  # display: the variant or adversarial row
    seed: int
    identity: dict[str, Any]  # everything that determines the weights, as JSON values
    path: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        text = json.dumps({"identity": self.identity, "format": TRAIN_FORMAT}, sort_keys=True)
        return "train-" + hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"


def record_path(checkpoint: str | Path) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.stem + ".cell.json")


def read_record(cell: TrainCell) -> dict[str, Any] | None:
    """The cell's record, None where there is none (a checkpoint from before training cells,
    or a run not finished). A record of another cell, or of a newer robustdigits, is refused."""
    path = record_path(cell.path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        fmt, key = int(record["format"]), str(record["key"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"training cell record {path} is unreadable ({type(e).__name__}); delete it (the "
                        "checkpoint beside it is checked again and kept) or rerun with --fresh") from e
    if fmt > TRAIN_FORMAT:
        raise DataError(f"{path} was written by a newer robustdigits (training cell format {fmt}; this one reads "
                        f"{TRAIN_FORMAT}); upgrade robustdigits, or pass another --checkpoints folder")
    if key != cell.key:
        raise DataError(f"{path} records the training cell {key}, not {cell.key} ({cell.label}): its checkpoint was "
                        "trained by another version or with other settings; rerun with --fresh to retrain it, or "
                        "pass another --checkpoints folder")
    return record


def write_record(cell: TrainCell, *, seconds: float | None, machine: dict[str, Any], accuracy: float,
                 loss: float) -> Path:
    """Written once the cell's checkpoint is finished (``seconds`` None: adopted, not timed here)."""
    record = {"key": cell.key, "format": TRAIN_FORMAT, "name": cell.name, "seed": cell.seed,
              "identity": cell.identity, "seconds": seconds, "machine": machine,
              "test_accuracy": accuracy, "test_loss": loss}
    return write_text_atomic(record_path(cell.path), json_text(record))
