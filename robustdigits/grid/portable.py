"""Finished cells without their adversarial images: a folder another machine reads back.

A cell's key names its data's and its model's SHA-256, so a cell computed on one machine is
valid on any other whose checkpoint has the same hash; the study's training is deterministic
on a given build of torch (``docs/robustness.md``), so a later session that retrains the
checkpoints can reuse an earlier session's cells. The store keeps each cell's adversarial
images (about 0.5 MB a cell of 1,000); an export keeps the per-image outcomes alone (a few
KB), as ``<key>.json`` (the spec without the checkpoint's path, the seconds, the machine)
and ``<key>.npz`` per cell, small enough to commit. ``import_cells`` checks every entry
(its spec hashes to its name, its arrays are a cell's, nothing pickled) and writes it into
a store, where the grid reuses it like a cell it computed; such a cell has no images.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..fileio import json_text, write_atomic, write_text_atomic
from .cells import CELL_FORMAT, IMAGES, CellResult, CellSpec, CellStore, check_samples, typed_samples


def export_cells(store: CellStore, dest: str | os.PathLike[str]) -> tuple[int, int]:
    """Every finished cell of ``store`` into ``dest`` without its images: (written, already
    there). Each cell is read through the store, so a damaged one is named, not copied."""
    dest = Path(dest)
    written = present = 0
    for spec in store.specs():
        key = spec.key
        if (dest / f"{key}.json").is_file() and (dest / f"{key}.npz").is_file():
            present += 1
            continue
        result = store.load(spec)  # checks the entry is what its key says
        arrays: dict[str, Any] = typed_samples(result.samples, leave_out=IMAGES)
        write_atomic(dest / f"{key}.npz", functools.partial(np.savez_compressed, **arrays))
        write_text_atomic(dest / f"{key}.json", json_text(
            {"spec": spec.to_dict(location=False), "key": key, "format": CELL_FORMAT, "n": result.n,
             "seconds": result.seconds, "machine": result.machine}))
        written += 1
    return written, present


def read_exported(path: Path) -> CellResult:
    """One exported cell (``<key>.json`` beside ``<key>.npz``), checked; a bad one is named
    with the fix."""
    key = path.name[:-len(".json")]
    fix = "export it again, or move it out of the folder"
    try:
        meta = json.loads(path.read_text())
        spec = CellSpec.from_dict(meta["spec"])
        seconds, machine = float(meta["seconds"]), dict(meta["machine"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not an exported cell ({type(e).__name__}: {e}); {fix}") from e
    if spec.key != key:  # an entry proves it is what its name says
        raise DataError(f"{path} holds the cell {spec.key}, not {key}: it was renamed or edited; {fix}")
    try:
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
            samples = {k: z[k] for k in z.files}
    except Exception as e:  # a missing file, a damaged zip or a pickled array raise several types
        raise DataError(f"{path.with_suffix('.npz')} is unreadable ({type(e).__name__}: {e}); {fix}") from e
    if IMAGES & set(samples):
        raise DataError(f"{path.with_suffix('.npz')} holds images, which an export never does; {fix}")
    try:
        check_samples(samples)
    except DataError as e:
        raise DataError(f"{path.with_suffix('.npz')}: {e}; {fix}") from e
    return CellResult(spec, samples, seconds, machine)


def import_cells(src: str | os.PathLike[str], store: CellStore) -> tuple[int, int]:
    """Every exported cell in ``src`` into ``store``: (imported, already there). Every entry
    is checked before any is written, so a bad folder changes nothing."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src} is not a folder of exported cells; pass the folder 'robustdigits cells export' "
                        "wrote")
    results = [read_exported(p) for p in sorted(src.glob("*.json"))]
    if not results:
        raise DataError(f"{src} holds no exported cells (no <key>.json); pass the folder 'robustdigits cells "
                        "export' wrote")
    imported = sum(store.save(r) for r in results)
    return imported, len(results) - imported
