"""Cells: one attack on one model over one image selection, stored under the hash of its settings.

A cell is a pure function of its :class:`CellSpec` (the data's content hash, the model's
checkpoint hash, the attack and every setting, the image selection). Its result is kept
per sample in ``<store>/<key>/samples.npz`` (test index, label, target, clean and
adversarial predictions, success, L2, L∞, steps, the adversarial images) beside
``cell.json`` (the spec, the seconds it took and the machine). Changing any setting
changes the key, so results of different settings never mix; a finished cell is
reused; a cell is written once, atomically (a folder renamed into place), so a crash
or Ctrl-C leaves either the whole cell or none of it.

Why NumPy's ``.npz`` and not parquet: the per-sample data is a few fixed-width columns and
a (N, 1, 28, 28) float array, which ``.npz`` holds natively and compressed with the
NumPy we already depend on; parquet would add pyarrow (~100 MB) to hold images as
nested lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, OutputError
from ..fileio import json_text, pid_alive, write_text_atomic
from ..report.tables import machine_line
from ..scoring import robust, wilson_interval

CELL_FORMAT = 1  # bump when a cell's computation changes, so old results are not reused
SAMPLE_FIELDS = {  # name -> dtype; every array has one row per attacked image
    "index": np.int64,  # into the test split
    "label": np.int64,
    "target": np.int64,  # -1 for untargeted attacks
    "clean_pred": np.int64,
    "adv_pred": np.int64,
    "success": np.bool_,  # targeted: adv_pred == target; untargeted: adv_pred != label
    "l2": np.float64,  # pixel units ([0, 1] scale)
    "linf": np.float64,
    "steps": np.int64,  # steps the attack ran for the sample, -1 where it does not report them
    "x_adv": np.float32,  # (N, 1, 28, 28) pixels; absent in a cell imported without images
}
IMAGES = frozenset({"x_adv"})  # what an export leaves out (grid.portable); no result reads it back
_TMP = re.compile(r"^\.(?P<key>[0-9a-f]+)\.(?P<pid>\d+)\.(tmp|old)$")


@dataclass(frozen=True)
class CellSpec:
    """What a cell computes. ``checkpoint`` says where to load the model from and is not
    part of its identity (the model's content hash is)."""

    data_sha256: str
    data_name: str
    model: str  # display name: a variant, or a checkpoint file's tag
    model_sha256: str
    attack: str
    params: dict[str, Any]  # every setting of the attack, JSON values
    selection: str  # "first:N" or "stratified:K:N" (K of the first N, every class in proportion)
    model_info: dict[str, Any] = field(default_factory=dict)  # e.g. {"variant": ..., "seed": ...}
    checkpoint: str = field(default="", compare=False)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        del d["checkpoint"]
        d["format"] = CELL_FORMAT
        return d

    @property
    def key(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def to_dict(self, location: bool = True) -> dict[str, Any]:
        """Its fields; ``location=False`` leaves out where the checkpoint was on the machine
        that ran it (for files others read, such as a committed ``grid.json``)."""
        d = asdict(self)
        if not location:
            del d["checkpoint"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        return cls(**d)


@dataclass(frozen=True)
class ModelRef:
    """A model of a grid: its display name, checkpoint file, the file's content hash, and
    what else identifies it (e.g. ``{"variant": ..., "seed": ...}``)."""

    name: str
    checkpoint: str
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    spec: CellSpec
    samples: dict[str, np.ndarray]  # SAMPLE_FIELDS
    seconds: float  # the attack's wall time
    machine: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.samples["index"])

    def rate(self, name: str) -> tuple[float, float, float]:
        """(percent, 95% Wilson low, high) of a boolean per-sample quantity over all images:
        ``success``, ``robust`` (read as the label clean and adversarial) or ``clean``."""
        s = self.samples
        hits = {"success": s["success"], "robust": robust(s["clean_pred"], s["adv_pred"], s["label"]),
                "clean": s["clean_pred"] == s["label"]}[name]
        k, n = int(np.sum(hits)), len(hits)
        low, high = wilson_interval(k, n)
        return (100.0 * k / n if n else 0.0), low, high


def typed_samples(samples: dict[str, np.ndarray], leave_out: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """The per-image arrays in their stored dtypes (those ``samples`` has, but ``leave_out``)."""
    return {k: np.asarray(samples[k], dtype=t) for k, t in SAMPLE_FIELDS.items() if k in samples and k not in leave_out}


def check_samples(samples: dict[str, np.ndarray]) -> None:
    """Every per-image field but the images (which an imported cell lacks), one row per image."""
    missing = set(SAMPLE_FIELDS) - IMAGES - set(samples)
    if missing:
        raise DataError(f"a cell result lacks {', '.join(sorted(missing))}")
    n = len(samples["index"])
    if any(len(samples[k]) != n for k in SAMPLE_FIELDS if k in samples):
        raise DataError("a cell result's per-sample arrays differ in length")


class CellStore:
    """Finished cells in ``root``, one folder each, named by the spec's key."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def folder(self, spec: CellSpec) -> Path:
        return self.root / spec.key

    def has(self, spec: CellSpec) -> bool:
        folder = self.folder(spec)
        return (folder / "cell.json").is_file() and (folder / "samples.npz").is_file()

    def specs(self) -> Iterator[CellSpec]:
        """The spec of every finished cell in the store (each named with the fix if unreadable)."""
        for meta_path in sorted(self.root.glob("*/cell.json")):
            try:
                yield CellSpec.from_dict(json.loads(meta_path.read_text())["spec"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(f"cell {meta_path.parent} is unreadable ({type(e).__name__}: {e}); delete that "
                                "folder or rerun with --fresh") from e

    def load(self, spec: CellSpec) -> CellResult:
        folder = self.folder(spec)
        try:
            meta = json.loads((folder / "cell.json").read_text())
            with np.load(folder / "samples.npz") as z:
                samples = {k: z[k] for k in z.files}
        except Exception as e:  # a damaged zip, pickle or JSON raises several types
            raise DataError(f"cell {folder} is unreadable ({type(e).__name__}: {e}); delete that folder or rerun "
                            "with --fresh") from e
        try:
            stored = CellSpec.from_dict(meta["spec"])
            seconds, machine = float(meta["seconds"]), dict(meta["machine"])
        except (TypeError, KeyError, ValueError) as e:  # JSON that parses but is not a cell's
            raise DataError(f"cell {folder} is unreadable (its cell.json is not a cell's: {type(e).__name__}: {e}); "
                            "delete that folder or rerun with --fresh") from e
        if stored.key != spec.key:  # an entry proves it is what its key says
            raise DataError(f"{folder} holds the cell {stored.key}, not {spec.key}: it was moved or edited; delete "
                            "that folder or rerun with --fresh")
        check_samples(samples)
        return CellResult(stored, samples, seconds, machine)

    def save(self, result: CellResult, *, replace: bool = False) -> bool:
        """Write a finished cell. Returns False (and writes nothing) when the cell is already
        there and ``replace`` is False: a cell is never written twice. ``replace`` swaps a
        new result in for an old one in one rename (``--fresh``)."""
        check_samples(result.samples)
        key = result.spec.key
        target = self.root / key
        if target.exists() and not replace:
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale()
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        except OSError as e:
            raise OutputError(f"cannot write cells to {self.root} ({e.strerror or e}); choose another --cells "
                              "folder") from e
        try:
            arrays: dict[str, Any] = typed_samples(result.samples)
            with open(tmp / "samples.npz", "wb") as f:
                np.savez_compressed(f, **arrays)
            meta = {"spec": result.spec.to_dict(), "key": key, "format": CELL_FORMAT, "n": result.n,
                    "seconds": result.seconds, "machine": result.machine}
            write_text_atomic(tmp / "cell.json", json_text(meta))
            with self._swap(target, replace) as old:
                if old is None and target.exists():  # another worker finished it first
                    return False
                os.rename(tmp, target)
            return True
        except OSError as e:  # a full disk while writing the samples: nothing half-written is left
            raise OutputError(f"cannot write cell {key} to {self.root} ({e.strerror or e}); free some space or "
                              "choose another --cells folder") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def _swap(self, target: Path, replace: bool) -> Iterator[Path | None]:
        old = None
        if replace and target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.rename(target, old)
        try:
            yield old
        except BaseException:
            if old is not None and not target.exists():
                os.rename(old, target)  # put the previous result back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _remove_stale(self) -> None:
        """Half-written cells of processes that died (a kill -9 mid-write)."""
        for entry in self.root.iterdir():
            m = _TMP.match(entry.name)
            if m and not pid_alive(int(m["pid"])):
                shutil.rmtree(entry, ignore_errors=True)


def machines_note(results: Iterable[CellResult], here: dict[str, Any]) -> str:
    """Which machines measured the cells' times: ``here`` (this run's) or, for cells reused
    from earlier runs, the machines each cell.json records."""
    counts = Counter(machine_line(r.machine) if r.machine else "unrecorded" for r in results)
    if not counts:
        return ""
    if set(counts) == {machine_line(here)}:
        return f"Every cell's time was measured on this run's machine ({sum(counts.values())} cells)."
    return "Cells' times were measured where each cell was computed: " + "; ".join(
        f"{n} cell{'s' if n > 1 else ''} on {line}" for line, n in counts.most_common()) + "."
