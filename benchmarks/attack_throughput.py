"""Attack throughput: the study's one-image loop against our attack, and our torch
path against ART's ProjectedGradientDescent, side by side on one trained model.

Figures are image-steps per second (one step = one forward and one backward pass
per image). Run it alone: anything else on a 2-core machine skews torch timings.

    python benchmarks/attack_throughput.py [--checkpoint PATH] [--study-steps 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent
from common import parse
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent

from robustdigits.art_bridge import make_classifier
from robustdigits.checkpoints import load_checkpoint
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import load_embedded
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from robustdigits.report.tables import machine_info, machine_line
from robustdigits.studies.experiment import first_per_class
from robustdigits.study_loop import study_attack
from robustdigits.training import train


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: train TextbookNet for 600 steps first")
    parser.add_argument("--study-steps", type=int, default=1000)
    parser.add_argument("--ours-steps", type=int, default=1000, help="steps of our attack on the 10 study images")
    parser.add_argument("--large-n", type=int, default=1000)
    parser.add_argument("--large-steps", type=int, default=20)
    parser.add_argument("--pgd-batch", type=int, default=128)
    parser.add_argument("--pgd-steps", type=int, default=50)
    args, device = parse(parser)
    data = load_embedded()
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint).build_model(device)
        source = args.checkpoint
    else:
        model = train(ModelSpec("textbook"), TrainConfig(steps=600), data, device=device).model.eval()
        source = "TextbookNet, 600 SGD steps on the embedded data"
    classifier = make_classifier(model, device)
    labels = data.test_labels.numpy()
    idx = first_per_class(labels, 1)
    x10 = to_pixels(data.test_images[idx])
    t10 = (labels[idx] + 1) % 10
    print(f"machine: {machine_line(machine_info(device))}; run alone\nmodel: {source}\n")

    # 1. The study's loop as written: one image, per-step print (to stderr here), graph never detached.
    z_ref = torch.from_numpy((x10[7:8] - MNIST_MEAN) / MNIST_STD).to(device)
    noise = torch.normal(0.5, 0.3, size=z_ref.shape, generator=torch.Generator().manual_seed(0)).to(device)
    target = torch.tensor(t10[7:8], device=device)
    seconds = timed(lambda: study_attack(model, z_ref, target, noise, steps=args.study_steps,
                                         log=lambda line: print(line, file=sys.stderr)), device)
    study_rate = args.study_steps / seconds
    model.zero_grad(set_to_none=True)
    print(f"study loop, 1 image x {args.study_steps} steps:      {study_rate:>12,.0f} image-steps/s")
    # The same loop with oneDNN off (our attack turns it off for CPU batches <= 10): how much
    # of the gap is the convolution backend rather than batching and the detached update.
    with torch.backends.mkldnn.flags(enabled=False):
        seconds = timed(lambda: study_attack(model, z_ref, target, noise, steps=args.study_steps,
                                             log=lambda line: print(line, file=sys.stderr)), device)
    model.zero_grad(set_to_none=True)
    print(f"  the same, oneDNN off:                  {args.study_steps / seconds:>12,.0f} image-steps/s")

    # 2. Ours on the 10 study images (one batch) and on many images.
    def ours(x: np.ndarray, y: np.ndarray, steps: int) -> float:
        attack = RegularizedGradientDescent.from_normalized(classifier, mean=MNIST_MEAN, std=MNIST_STD,
                                                            max_iter=steps, seed=0, batch_size=len(x))
        return len(x) * steps / timed(lambda: attack.generate(x, y), device)

    rate10 = ours(x10, t10, args.ours_steps)
    print(f"ours, 10 images x {args.ours_steps} steps:           {rate10:>12,.0f} image-steps/s"
          f"  ({rate10 / study_rate:.1f}x the study loop)")
    n = min(args.large_n, len(labels))
    xn = to_pixels(data.test_images[:n])
    tn = (labels[:n] + 1) % 10
    rate_n = ours(xn, tn, args.large_steps)
    print(f"ours, {n} images x {args.large_steps} steps (one batch): {rate_n:>9,.0f} image-steps/s"
          f"  ({rate_n / study_rate:.1f}x the study loop)")

    # 3. Per step at the same batch size: our torch path against ART's PGD (both 1 forward + 1 backward).
    b = min(args.pgd_batch, n)
    ours_attack = RegularizedGradientDescent(classifier, max_iter=args.pgd_steps, init="reference", batch_size=b)
    pgd = ProjectedGradientDescent(classifier, eps=0.3, eps_step=0.01, max_iter=args.pgd_steps, targeted=True,
                                   batch_size=b, verbose=False)
    t_ours = timed(lambda: ours_attack.generate(xn[:b], tn[:b]), device)
    t_pgd = timed(lambda: pgd.generate(xn[:b], tn[:b]), device)
    print(f"\nper step at batch {b}: ours {1000 * t_ours / args.pgd_steps:.1f} ms, "
          f"ART PGD {1000 * t_pgd / args.pgd_steps:.1f} ms (PGD / ours = {t_pgd / t_ours:.2f})")


if __name__ == "__main__":
    main()
