"""Speed on this machine, side by side in one run, as one table of ratios.

Training (TextbookNet, batch 64, SGD): our training loop (``robustdigits.training.train``,
timed per step from its progress events) against a plain eager torch loop over the
same tensors in NCHW and in channels_last, and the study's DataLoader pipeline.
Attack: one step of our attack's torch path (``RegularizedGradientDescent``) against a
plain torch loop doing the same arithmetic (forward, input gradient, detached update)
at batch sizes 10 to 1,000, both layouts; and the study's 10-image experiment against
the study's own loop. Run it alone: on 2 cores a second torch process skews everything.

    python benchmarks/speed.py [--threads N] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import median_time, parse
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent

from robustdigits.art_bridge import make_classifier
from robustdigits.checkpoints import load_checkpoint
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import load_embedded
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, normalize, to_pixels
from robustdigits.devices import fast_layout
from robustdigits.models import get_model
from robustdigits.report.tables import machine_info, machine_line
from robustdigits.studies.experiment import first_per_class
from robustdigits.study_loop import study_attack
from robustdigits.training import TrainEvent, train

CL = torch.channels_last



def plain_train(images: torch.Tensor, labels: torch.Tensor, steps: int, layout: torch.memory_format) -> float:
    """Seconds for ``steps`` plain eager SGD steps (TextbookNet, batch 64)."""
    torch.manual_seed(1)
    model = get_model("textbook").to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    x_all = images.contiguous(memory_format=layout)
    order = torch.randperm(len(labels))
    start = time.perf_counter()
    for k in range(steps):
        idx = order[k * 64:(k + 1) * 64]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x_all[idx]), labels[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def ours_train(data, steps: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per ``steps`` SGD steps of our loop, from its per-step events (no evaluation counted)."""
    stamps: list[float] = []

    def tick(event: TrainEvent) -> None:
        if event.kind == "step":
            stamps.append(time.perf_counter())

    train(ModelSpec("textbook"), TrainConfig(steps=steps + 10), data, device=torch.device("cpu"), progress=tick)
    return (stamps[-1] - stamps[9]) * steps / (len(stamps) - 10)  # the first 10 steps are warm-up


def study_train(data, steps: int) -> float:  # type: ignore[no-untyped-def]
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from robustdigits.data.datasets import write_idx

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, array in (("train-images-idx3-ubyte", data.train_images), ("train-labels-idx1-ubyte",
                            data.train_labels), ("t10k-images-idx3-ubyte", data.test_images),
                            ("t10k-labels-idx1-ubyte", data.test_labels)):
            write_idx(raw / name, array.numpy())
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
        loader = DataLoader(datasets.MNIST(tmp, train=True, transform=tf), batch_size=64, shuffle=True)
        torch.manual_seed(1)
        model = get_model("textbook")
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        start = time.perf_counter()
        for k, (x, y) in enumerate(loader):
            if k == steps:
                break
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - start


def plain_attack_step(model: torch.nn.Module, x: torch.Tensor, ref: torch.Tensor, y: torch.Tensor,
                      steps: int) -> float:
    """Seconds per step of the same arithmetic as our attack, written plainly."""
    lr, lam = 0.1 * MNIST_STD**2, 0.05 / MNIST_STD**2
    start = time.perf_counter()
    for _ in range(steps):
        xg = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model((xg - MNIST_MEAN) / MNIST_STD), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
        x = (x - lr * (grad + lam * (x - ref))).clamp(0, 1)
    return (time.perf_counter() - start) / steps


def ours_attack_step(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    attack = RegularizedGradientDescent.from_normalized(make_classifier(model, torch.device("cpu")), mean=MNIST_MEAN,
                                                        std=MNIST_STD, max_iter=steps, init="reference",
                                                        batch_size=len(x))
    attack.generate(x, y)  # warm-up
    start = time.perf_counter()
    attack.generate(x, y)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a TextbookNet checkpoint (default: 300 quick steps)")
    parser.add_argument("--train-steps", type=int, default=100,
                        help="timed SGD steps; with 10 warm-up steps they stay inside one epoch of the embedded "
                             "data (125 steps), so no evaluation falls inside the timed window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study-steps", type=int, default=300)
    args, device = parse(parser)
    if device.type != "cpu":
        sys.exit("this benchmark measures the CPU; run it with --device cpu")
    data = load_embedded()
    print(f"machine: {machine_line(machine_info(device))}; run alone", flush=True)
    rows: list[tuple[str, str, str]] = []

    # --- training ---
    images, labels = normalize(data.train_images), data.train_labels
    n = args.train_steps * 64
    nchw = torch.contiguous_format
    plain_nchw = median_time(lambda: plain_train(images, labels, args.train_steps, nchw), args.rounds)
    plain_cl = median_time(lambda: plain_train(images, labels, args.train_steps, CL), args.rounds)
    ours = statistics.median(ours_train(data, args.train_steps) for _ in range(args.rounds))
    study = median_time(lambda: study_train(data, args.train_steps), 1)
    rows += [("train, TextbookNet batch 64: plain eager NCHW", f"{n / plain_nchw:,.0f} img/s", ""),
             ("train: plain eager channels_last", f"{n / plain_cl:,.0f} img/s", ""),
             ("train: the study's DataLoader pipeline", f"{n / study:,.0f} img/s", ""),
             ("train: ours", f"{n / ours:,.0f} img/s",
              f"{plain_cl / ours:.2f}x plain channels_last, {study / ours:.2f}x the study")]
    print("\n".join(" | ".join(r) for r in rows), flush=True)

    # --- attack ---
    model = (load_checkpoint(args.checkpoint).build_model() if args.checkpoint else
             train(ModelSpec("textbook"), TrainConfig(steps=300), data, device=device).model.eval())
    model.requires_grad_(False)
    x_all = to_pixels(data.test_images[:1000])
    y_all = (data.test_labels[:1000].numpy() + 1) % 10
    # enough steps per batch size that set-up (input checks, copies) is amortized
    for batch, steps in ((10, 100), (128, 30), (1000, 20)):
        x, y = x_all[:batch], y_all[:batch]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        plain = {}
        for name, layout in (("NCHW", torch.contiguous_format), ("channels_last", CL)):
            m = model.to(memory_format=layout)
            plain_attack_step(m, xt, xt, yt, 2)  # warm-up
            plain[name] = statistics.median(plain_attack_step(m, xt, xt, yt, steps) for _ in range(args.rounds))
        best = min(plain.values())
        m = model.to(memory_format=fast_layout(torch.device("cpu")))  # as build_model gives it to the attack
        t_ours = statistics.median(ours_attack_step(m, x, y, steps) for _ in range(args.rounds))
        rows.append((f"attack step, batch {batch}: plain NCHW / channels_last",
                     f"{1000 * plain['NCHW']:.2f} / {1000 * plain['channels_last']:.2f} ms", ""))
        rows.append((f"attack step, batch {batch}: ours", f"{1000 * t_ours:.2f} ms "
                     f"({batch / t_ours:,.0f} image-steps/s)", f"{t_ours / best:.2f}x the faster plain loop's time"))
        print(" | ".join(rows[-1]), flush=True)

    # --- the study's 10-image experiment ---
    idx = first_per_class(data.test_labels.numpy(), 1)
    x10, t10 = to_pixels(data.test_images[idx]), (data.test_labels.numpy()[idx] + 1) % 10
    z_ref = torch.from_numpy((x10[7:8] - MNIST_MEAN) / MNIST_STD)
    noise = torch.normal(0.5, 0.3, size=z_ref.shape, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    study_attack(model.requires_grad_(True), z_ref, torch.from_numpy(t10[7:8]), noise, steps=args.study_steps,
                 log=lambda line: print(line, file=sys.stderr))
    study_rate = args.study_steps / (time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    t10_step = ours_attack_step(model, x10, t10, args.study_steps)
    rows.append((f"the study's loop, 1 image x {args.study_steps} steps", f"{study_rate:,.0f} image-steps/s", ""))
    rows.append((f"ours, the 10 study images x {args.study_steps} steps", f"{10 / t10_step:,.0f} image-steps/s",
                 f"{10 / t10_step / study_rate:.0f}x the study's loop"))
    print("\n| measured | value | ratio |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
