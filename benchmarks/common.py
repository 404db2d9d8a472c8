"""What the benchmark scripts share: --threads and --device, parsed once; a median timer."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from robustdigits.devices import resolve_device


def parse(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, torch.device]:
    """Add --threads and --device to ``parser``, parse, apply the thread count."""
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, resolve_device(args.device)


def median_time(fn: Callable[[], object], rounds: int) -> float:
    """The median wall time of ``rounds`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
