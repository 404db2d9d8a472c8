"""Training throughput: our device-resident loader against the study's pipeline.

The study fed its networks through a torchvision MNIST Dataset (PIL image per sample,
ToTensor + Normalize) and a DataLoader at batch 64. We keep the whole normalized split
as one tensor and slice batches from a permutation. Both train the same model with
the same SGD on the same device here, in alternating rounds, and we print images/s
and the ratio. Run it alone: anything else on a 2-core machine skews torch timings.

    python benchmarks/train_throughput.py [--steps 150] [--rounds 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import parse
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from robustdigits.data.datasets import load_embedded, write_idx
from robustdigits.data.loader import TensorLoader
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD
from robustdigits.models import get_model
from robustdigits.report.tables import machine_info, machine_line


def study_loader(root: Path, data) -> DataLoader:  # type: ignore[no-untyped-def]
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", data.train_images.numpy())
    write_idx(raw / "train-labels-idx1-ubyte", data.train_labels.numpy())
    write_idx(raw / "t10k-images-idx3-ubyte", data.test_images.numpy())
    write_idx(raw / "t10k-labels-idx1-ubyte", data.test_labels.numpy())
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    return DataLoader(dataset, batch_size=64, shuffle=True)  # the study's CPU settings


def timed_steps(model, optimizer, batches, steps: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    """Seconds for ``steps`` SGD steps drawn from the iterator factory ``batches``."""
    model.train()
    done = 0
    start = time.perf_counter()
    while done < steps:
        for x, y in batches():
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="SGD steps per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args, device = parse(parser)
    data = load_embedded()
    print(f"machine: {machine_line(machine_info(device))}; run alone")
    print(f"data: {data.info.short}; batch 64, {args.steps} steps per run, median of {args.rounds} rounds\n")
    print(f"{'model':<10} {'ours (img/s)':>13} {'study (img/s)':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        study = study_loader(Path(tmp), data)
        ours = TensorLoader(data.train_images, data.train_labels, batch_size=64, shuffle=True, device=device, seed=1)
        for name in ("tutorial", "textbook", "improved"):
            torch.manual_seed(1)
            model = get_model(name).to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
            timed_steps(model, optimizer, lambda: iter(study), 10, device)  # warm-up
            t_ours, t_study = [], []
            for r in range(args.rounds):
                t_ours.append(timed_steps(model, optimizer, lambda r=r: ours.epoch(r), args.steps, device))
                t_study.append(timed_steps(model, optimizer, lambda: iter(study), args.steps, device))
            ips_ours = args.steps * 64 / statistics.median(t_ours)
            ips_study = args.steps * 64 / statistics.median(t_study)
            print(f"{name:<10} {ips_ours:>13,.0f} {ips_study:>14,.0f} {ips_ours / ips_study:>6.2f}x")


if __name__ == "__main__":
    main()
