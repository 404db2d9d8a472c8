"""Writing files safely: atomically, with ordinary permissions, checked before long work.

- :func:`atomic_path` writes to a temporary file in the same folder and renames it
  onto the target, so a reader never sees a half-written file. Temporary names carry
  the writer's pid: one left by a killed process is removed by the next write.
- :func:`check_writable_dir` answers "can results go there?" before any computation,
  so a read-only, full or misnamed folder is reported in one line before, not after,
  an hour of work.
- :func:`exclusive` is a lock on a file or folder: two processes never write the same
  checkpoint at once (the second is refused with :class:`BusyError`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import BusyError, OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask once (os.umask can only be read by setting it)
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` files left in ``folder`` by processes that died."""
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            m = _TMP.match(entry.name)
            if m and m["name"] == name and not pid_alive(int(m["pid"])):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def _output_error(path: Path, e: OSError) -> OutputError:
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        fix = "free some space or write elsewhere"
    elif e.errno == errno.ENAMETOOLONG:
        fix = "choose a shorter name"
    else:
        fix = "choose a folder you can write to"
    return OutputError(f"cannot write {path} ({reason}); {fix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception (Ctrl-C included) the temporary file is removed and ``path``
    keeps its previous content. An ``OSError`` (full disk, read-only folder) becomes
    an :class:`OutputError` naming the file.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as e:
        raise _output_error(target, e) from e
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _output_error(target, e) from e
        raise


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` atomically through ``write(file_object)``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def check_writable_dir(folder: str | os.PathLike[str], option: str, *, shown: Path | None = None) -> Path:
    """Prove that files can be written in ``folder`` (which need not exist yet: its
    nearest existing ancestor is probed, and nothing is left behind); else an
    :class:`OutputError` naming ``option`` (e.g. ``"--out"``) and ``shown`` (default ``folder``)."""
    path = Path(folder)
    shown = shown or path
    _check_name_lengths(path, option)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {shown}: {existing} is a file, not a folder; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as e:
        raise OutputError(f"{option} {shown}: cannot write there ({e.strerror or e}); "
                          "choose a folder you can write to") from e
    return path


def _check_name_lengths(path: Path, option: str) -> None:
    too_long = [part for part in path.parts if len(part.encode()) > _name_max(path)]
    if too_long:
        raise OutputError(f"{option}: the name {too_long[0][:40]}… is longer than the {_name_max(path)} bytes the "
                          "file system takes; choose a shorter one")
    whole = len(str(path.absolute()).encode())
    if whole >= _path_max(path):
        raise OutputError(f"{option}: the path {str(path)[:40]}… is {whole:,} bytes long, more than the "
                          f"{_path_max(path):,} the system takes; choose a shorter one")


def _path_max(path: Path) -> int:
    try:
        return os.pathconf(path.anchor or ".", "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def _name_max(path: Path) -> int:
    """The longest file name the file system of ``path`` (or of the working folder) takes."""
    try:
        return os.pathconf(path.anchor or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_writable_file(path: str | os.PathLike[str], option: str) -> Path:
    """:func:`check_writable_dir` for the folder of ``path``, which must not be a folder itself."""
    target = Path(path)
    _check_name_lengths(target, option)
    if target.is_dir():
        raise OutputError(f"{option} {target} is a folder; give a file path such as {target / 'model.pt'}")
    check_writable_dir(target.parent, option, shown=target)
    return target


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive lock named after ``path`` (a hidden ``.<name>.lock`` beside it,
    removed on release) while the block runs. The lock dies with the process, so a
    killed run never leaves it held."""
    target = Path(path)
    lock = target.parent / f".{target.name}.lock"
    while True:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as e:
            raise _output_error(lock, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(f"{what} {target} is being written by another robustdigits process; "
                            "wait for it to finish or choose another path") from None
        try:  # the holder before us may have removed the file we locked: then lock the new one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def json_text(obj: Any, *, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> str:
    """Standard JSON (RFC 8259) of ``obj``, ending in a newline: a non-finite float (NaN,
    ±inf, which JSON has no word for) is written as ``null``, never as bare ``NaN``."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(obj), indent=indent, default=default, allow_nan=False) + "\n"
