"""Executors: the grid's cells (training runs and attacks) run here, in N local worker
processes, or as tasks on a Ray cluster, one scheduler for every kind.

A :class:`Task` is a call of a module-level function (workers import it by name) with
JSON-like arguments; it reads or writes one file, ``path``, which it gets as the
keyword ``path=``. :func:`run_tasks` keeps up to the executor's slots busy and hands
each finished task to the caller's ``finished`` callback in this process, which stores
the result and returns the tasks that were waiting for it (an attack cell waits for its
model's training cell): only this process writes the attack store, and a training cell
writes its own checkpoint (atomically, after every epoch).

``local`` with ``jobs=1`` runs each task in this process, with this process's torch
threads and per-step progress; ``jobs=N`` runs N spawned worker processes with
``cores // N`` torch threads each. ``ray`` runs each task as a Ray task (one CPU, or one
GPU on CUDA) that gets the data as a shared object and the file it reads as bytes, and
returns the file it writes as bytes, so workers on other machines need neither the data
cache nor the checkpoint folder. Ctrl-C stops the workers; every finished cell is kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import torch

from ..checks import unknown
from ..data.datasets import MNISTData
from ..errors import ConfigError
from ..fileio import write_atomic

EXECUTORS = ("local", "ray")
# Local workers when --jobs is not given (at most the cores): two 1-thread workers trained the
# nine-variant ablation 1.15x faster than one 2-thread process on a 2-core CPU and ran a
# 30-cell attack grid as fast (benchmarks/grid_workers.py; docs/benchmarks.md).
DEFAULT_JOBS = 2
RAY_HINT = "--executor ray needs Ray, an optional extra: pip install -e '.[ray]' (or pip install ray)"


@dataclass(frozen=True)
class Task:
    """One cell to compute: ``fn(*args, path=path)`` in a worker. ``writes``: the task
    writes ``path`` (a training cell's checkpoint, resumed from what is there); else it
    only reads it (an attack cell's model)."""

    key: str
    kind: str  # "train" or "attack": progress and time estimates are kept per kind
    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    path: str
    writes: bool = False
    rank: int = 0  # lower runs first among the tasks waiting (ties: in the order they came)


@dataclass
class Context:
    """What a task gets besides its arguments: the data, the device, and (in this process
    only) a progress hook for the steps of a training cell."""

    data: MNISTData | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: Callable[[str, Any], None] | None = None
    label: str = ""


_CONTEXT = Context()


def context() -> Context:
    """The running task's context (a module-level function reads its data and device here)."""
    return _CONTEXT


def step_progress(event: Any) -> None:
    """A training cell's per-step event, to the progress hook where there is one (``jobs=1``)."""
    if _CONTEXT.progress is not None:
        _CONTEXT.progress(_CONTEXT.label, event)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_jobs(jobs: int | None, executor: str) -> int:
    """``jobs`` for ``executor`` (None: ``DEFAULT_JOBS`` local workers, or Ray's own
    scheduling), or a one-line error naming the fix."""
    if executor not in EXECUTORS:
        raise unknown("executor", executor, EXECUTORS)
    if jobs is None:
        return 1 if executor == "ray" else min(DEFAULT_JOBS, cores())
    if executor == "ray" and jobs != 1:
        raise ConfigError(f"--jobs {jobs} is for --executor local; with --executor ray each cell is a task and the "
                          "cluster's CPUs decide how many run at once: drop --jobs")
    n = cores()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= n:
        raise ConfigError(f"--jobs {jobs} is not between 1 and this machine's {n} cores; pass --jobs 1 to {n} "
                          "(or --executor ray for more machines)")
    return jobs


def workers_for(jobs: int | None, executor: str, tasks: int) -> int:
    """The workers a grid of ``tasks`` independent cells needs: no more than its cells, so a
    lone cell runs in this process with all of its threads rather than in one worker of
    ``cores / jobs`` threads."""
    return max(1, min(check_jobs(jobs, executor), tasks))


def check_executor(executor: str, jobs: int | None, address: str | None) -> int:
    """The executor's options checked before any work (the jobs to run, see :func:`check_jobs`):
    ``address`` belongs to Ray and must answer."""
    jobs = check_jobs(jobs, executor)
    if address is not None and executor != "ray":
        raise ConfigError(f"--address {address} is a Ray cluster's; pass --executor ray with it, or drop --address")
    if executor == "ray":
        check_address(address)
    return jobs


def _call(fn: Callable[..., Any], args: tuple[Any, ...], path: str) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, path=path)
    return result, time.perf_counter() - start


# --- local worker processes --------------------------------------------------------------------------------------


def _init_worker(data: MNISTData, device: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _CONTEXT.data, _CONTEXT.device, _CONTEXT.progress = data, torch.device(device), None


class _Inline:
    """``jobs=1``: each task runs in this process when the scheduler waits for it."""

    slots = 1

    def __init__(self, data: MNISTData, device: torch.device, progress: Callable[[str, Any], None] | None) -> None:
        _CONTEXT.data, _CONTEXT.device, _CONTEXT.progress = data, device, progress
        self.pending: dict[int, Task] = {}

    def submit(self, task: Task) -> int:
        self.pending[id(task)] = task
        return id(task)

    def wait(self, handles: Sequence[int]) -> tuple[int, Any, float]:
        handle = handles[0]
        task = self.pending.pop(handle)
        _CONTEXT.label = task.label
        result, seconds = _call(task.fn, task.args, task.path)
        return handle, result, seconds

    def close(self, interrupted: bool) -> None:
        _CONTEXT.progress = None


class _Processes:
    """``jobs=N``: N spawned workers, ``cores // N`` torch threads each."""

    def __init__(self, jobs: int, data: MNISTData, device: torch.device) -> None:
        self.slots = jobs
        threads = max(1, cores() // jobs)
        self.pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(data, str(device), threads))

    def submit(self, task: Task) -> cf.Future[tuple[Any, float]]:
        return self.pool.submit(_call, task.fn, task.args, task.path)

    def wait(self, handles: Sequence[cf.Future[tuple[Any, float]]]) -> tuple[Any, Any, float]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        future = next(iter(done))
        result, seconds = future.result()  # a worker's exception is raised here, as it was raised there
        return future, result, seconds

    def close(self, interrupted: bool) -> None:
        if interrupted:  # stop the cells in flight now: their checkpoints are written atomically per epoch
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=not interrupted, cancel_futures=True)


# --- Ray ----------------------------------------------------------------------------------------------------------


def _ray_call(fn: Callable[..., Any], args: tuple[Any, ...], data: MNISTData, device: str, file: bytes | None,
              name: str, writes: bool) -> tuple[Any, float, bytes | None]:
    """One task in a Ray worker: the file it reads (or resumes) arrives as bytes, the file
    it writes goes back as bytes."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    _CONTEXT.data, _CONTEXT.device, _CONTEXT.progress = data, torch.device(device), None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if file is not None:
            path.write_bytes(file)
        result, seconds = _call(fn, args, str(path))
        return result, seconds, path.read_bytes() if writes and path.is_file() else None


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """A Ray address of the form ``host:port`` or ``ray://host:port`` must answer on its
    port within ``timeout`` seconds (Ray itself retries for minutes); ``auto`` and None
    are Ray's own to resolve."""
    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not a Ray address; pass host:port (the head's GCS port, "
                          "e.g. 10.0.0.1:6379), ray://host:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"the Ray cluster at {address} does not answer ({e.strerror or type(e).__name__}); start "
                          "it with 'ray start --head' on that machine, check the host and port, or drop --address "
                          "for a local Ray instance") from None


class _Ray:
    slots = 1 << 30  # Ray queues the tasks and runs as many as the cluster has CPUs for

    def __init__(self, address: str | None, data: MNISTData, device: torch.device) -> None:
        try:
            import ray
        except ImportError as e:
            raise ConfigError(RAY_HINT) from e
        self.ray = ray
        if not ray.is_initialized():
            check_address(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ConfigError(f"cannot reach {where} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                                  "start it with 'ray start --head', pass its address (ray://head:10001 or auto), or "
                                  "drop --address for a local instance") from e
        gpu = device.type == "cuda"
        self.task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=3)(_ray_call)
        self.data = ray.put(data)
        self.device = str(device)
        self.tasks: dict[Any, Task] = {}

    def submit(self, task: Task) -> Any:
        path = Path(task.path)
        file = path.read_bytes() if path.is_file() else None
        ref = self.task.remote(task.fn, task.args, self.data, self.device, file, path.name, task.writes)
        self.tasks[ref] = task
        return ref

    def wait(self, handles: Sequence[Any]) -> tuple[Any, Any, float]:
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        task = self.tasks.pop(ready[0])
        try:
            result, seconds, file = self.ray.get(ready[0])
        except self.ray.exceptions.RayTaskError as e:  # the worker's own exception, one line at the CLI
            raise e.as_instanceof_cause() from None
        if file is not None:
            write_atomic(task.path, lambda f: f.write(file))
        return ready[0], result, seconds

    def close(self, interrupted: bool) -> None:
        for ref in self.tasks:
            self.ray.cancel(ref, force=True)


# --- the scheduler ------------------------------------------------------------------------------------------------

Finished = Callable[[Task, Any, float], Iterable[Task]]


def run_tasks(tasks: Iterable[Task], *, finished: Finished, data: MNISTData, device: torch.device,
              executor: str = "local", jobs: int | None = None, address: str | None = None,
              progress: Callable[[str, Any], None] | None = None) -> None:
    """Run ``tasks`` and those ``finished`` returns as their dependencies finish, each key
    once, keeping the executor's slots busy; ``finished(task, result, seconds)`` runs here
    for every task, in the order they finish. ``progress(label, event)`` gets a training
    cell's steps where it runs in this process (``jobs=1``). A free slot takes the waiting
    task of lowest ``rank``, the earliest come among equals (the costliest cells last, so an
    interrupted grid has finished as many of the others as it could)."""
    jobs = check_jobs(jobs, executor)
    order = count()
    queue = [(t.rank, next(order), t) for t in tasks]
    heapq.heapify(queue)
    if not queue:
        return
    seen = {t.key for _, _, t in queue}
    pool: Any
    if executor == "ray":
        pool = _Ray(address, data, device)
    elif jobs == 1:
        pool = _Inline(data, device, progress)
    else:
        pool = _Processes(jobs, data, device)
    running: dict[Any, Task] = {}
    interrupted = True
    try:
        while queue or running:
            while queue and len(running) < pool.slots:
                task = heapq.heappop(queue)[2]
                running[pool.submit(task)] = task
            handle, result, seconds = pool.wait(list(running))
            task = running.pop(handle)
            for new in finished(task, result, seconds):
                if new.key not in seen:
                    seen.add(new.key)
                    heapq.heappush(queue, (new.rank, next(order), new))
        interrupted = False
    finally:
        pool.close(interrupted)


@dataclass
class Tally:
    """Cells done of the total, by kind, and an estimate of the time left from the
    seconds of the cells computed so far (per kind; a kind with none computed yet
    counts as unknown)."""

    totals: dict[str, int]
    slots: int = 1
    done: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float | None) -> None:
        """A cell of ``kind`` finished: computed in ``seconds``, or reused (None)."""
        self.done[kind] = self.done.get(kind, 0) + 1
        if seconds is None:
            self.reused[kind] = self.reused.get(kind, 0) + 1
        else:
            self.seconds.setdefault(kind, []).append(seconds)

    @property
    def finished(self) -> int:
        return sum(self.done.values())

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def left_seconds(self) -> float | None:
        """Seconds left at the measured pace, ``slots`` cells at a time; None while a kind
        with cells left has none measured."""
        left = 0.0
        for kind, total in self.totals.items():
            remaining = total - self.done.get(kind, 0)
            if remaining <= 0:
                continue
            measured = self.seconds.get(kind)
            if not measured:
                return None
            left += remaining * sum(measured) / len(measured)
        return left / max(1, min(self.slots, self.total - self.finished or 1))

    def line(self) -> str:
        parts = []
        for kind, total in self.totals.items():
            reused = self.reused.get(kind, 0)
            parts.append(f"{kind} {self.done.get(kind, 0)}/{total}" + (f" ({reused} reused)" if reused else ""))
        left = self.left_seconds()
        if self.finished < self.total:
            parts.append("time left unknown yet" if left is None else f"about {_duration(left)} left")
        return ", ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
