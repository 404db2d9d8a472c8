"""The options both experiment scripts take: --seeds, --threads (applied), --out, and
each script's own string options."""

from __future__ import annotations

import argparse

import torch


def experiment_args(doc: str | None, *, seeds: int, out: str, **options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in options.items():
        parser.add_argument(f"--{name}", default=default)
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default=out)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
