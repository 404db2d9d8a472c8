"""Where ``robustdigits attack`` spends its time, beside a plain torch loop, in one run.

The command as a user runs it (a subprocess, 100 images: ``--per-class 10``), timed at
``--steps 220`` and ``--steps 20``: the difference is 200 steps of 100 images with the
start-up, data loading and report writing taken out. Beside it, in this process: the
attack experiment alone (``run_experiment``, what the command calls), the report the
command writes (gallery, one PNG per image, tables), and a plain channels_last torch loop
doing the same arithmetic (forward, input gradient of the summed loss, detached update,
clip) at batch 100 and 128. Then the study's experiment as the command runs it (the first
image of each digit, ``--steps 2200`` minus ``--steps 200``) against the study's own loop
(``robustdigits.study_loop``, one image, ``--study-steps`` steps, printing each step's loss
as the study did). Medians over ``--rounds``. Run it alone: on 2 cores a second torch
process skews everything.

    python benchmarks/attack_command.py [--threads N] [--rounds 3] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import median_time, parse

from robustdigits.checkpoints import load_checkpoint
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import load_embedded
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from robustdigits.devices import fast_layout
from robustdigits.report.tables import machine_info, machine_line
from robustdigits.studies.experiment import AttackConfig, first_per_class, run_experiment, write_experiment_report
from robustdigits.study_loop import study_attack
from robustdigits.training import train

STEPS = (20, 220)  # the command at two budgets: their difference is 200 steps
IMAGES = 100  # --per-class 10



def command_seconds(checkpoint: Path, steps: int, threads: int, out: Path, per_class: int = 10
                    ) -> tuple[float, float]:
    """The command's wall time, and the time of its attack as it records it in results.json."""
    env = {**os.environ, "ROBUSTDIGITS_DATA": str(out / "no-data-cache")}
    folder = out / f"s{steps}-{per_class}"
    args = [sys.executable, "-m", "robustdigits", "attack", "--model", str(checkpoint), "--steps", str(steps),
            "--per-class", str(per_class), "--data", "embedded", "--threads", str(threads), "--out", str(folder),
            "--overwrite"]
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - start
    (results,) = folder.glob("*/results.json")
    return wall, json.loads(results.read_text())["meta"]["attack_seconds"]


def differenced(checkpoint: Path, threads: int, out: Path, rounds: int, per_class: int, budgets: tuple[int, int]
                ) -> tuple[float, float, dict[int, float]]:
    """Seconds that the extra steps cost, as the whole command's wall time and as its
    attack's own time: medians over ``rounds``, the two budgets interleaved."""
    runs: dict[int, list[tuple[float, float]]] = {s: [] for s in budgets}
    for _ in range(rounds):
        for s in budgets:
            runs[s].append(command_seconds(checkpoint, s, threads, out, per_class))
    wall = {s: statistics.median(w for w, _ in runs[s]) for s in budgets}
    loop = {s: statistics.median(a for _, a in runs[s]) for s in budgets}
    return wall[budgets[1]] - wall[budgets[0]], loop[budgets[1]] - loop[budgets[0]], wall


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    eta, lam = 0.1 * MNIST_STD**2, 0.05 / MNIST_STD**2  # the study's step, in pixel units
    ref = x.clone()
    for _ in range(steps):
        xg = x.detach().requires_grad_(True)
        logits = model((xg - MNIST_MEAN) / MNIST_STD)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
        x = (x - eta * (grad + lam * (x - ref))).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study-steps", type=int, default=300, help="steps of the study's own loop")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a TextbookNet checkpoint (default: 300 SGD steps on the embedded data, made here)")
    args, device = parse(parser)
    threads = torch.get_num_threads()
    data = load_embedded()
    work = Path(tempfile.mkdtemp(prefix="attack-command-"))
    checkpoint = args.checkpoint or work / "textbook.pt"
    if args.checkpoint is None:
        train(ModelSpec("textbook"), TrainConfig(steps=300, momentum=0.5), data, device=device, checkpoint=checkpoint)
    model = load_checkpoint(checkpoint).build_model(device)
    print(f"machine: {machine_line(machine_info(device))}; {args.rounds} rounds, medians", flush=True)

    wall_diff, loop_diff, command = differenced(checkpoint, threads, work, args.rounds, 10, STEPS)
    image_steps = IMAGES * (STEPS[1] - STEPS[0])

    config = AttackConfig(steps=STEPS[1] - STEPS[0], per_class=10)
    run_experiment(model, data, AttackConfig(steps=3, per_class=10), device=device)  # warm-up
    outcomes = []
    experiment = median_time(lambda: outcomes.append(run_experiment(model, data, config, device=device)), args.rounds)
    report = median_time(lambda: write_experiment_report(outcomes[-1], work / "report", model_name="textbook",
                                                         data=data, device=device), args.rounds)

    idx = first_per_class(data.test_labels.numpy(), 10)
    rates = {}
    for batch in (IMAGES, 128):
        chosen = idx if batch == IMAGES else np.arange(batch)
        x = torch.from_numpy(to_pixels(data.test_images[chosen])).to(device).contiguous(
            memory_format=fast_layout(device))
        y = ((data.test_labels[chosen] + 1) % 10).to(device)
        plain_loop(model, x, y, 3)  # warm-up
        seconds = median_time(lambda x=x, y=y: plain_loop(model, x, y, STEPS[1] - STEPS[0]), args.rounds)
        rates[batch] = batch * (STEPS[1] - STEPS[0]) / seconds

    base = rates[IMAGES]
    rows = [
        (f"robustdigits attack, --steps {STEPS[1]} minus --steps {STEPS[0]}: wall time", image_steps / wall_diff),
        ("  the same runs, their attack's own time (results.json attack_seconds)", image_steps / loop_diff),
        ("run_experiment, 200 steps (in process)", image_steps / experiment),
        (f"plain channels_last loop, batch {IMAGES}", rates[IMAGES]),
        ("plain channels_last loop, batch 128", rates[128]),
    ]
    print(f"{'what':<72} {'image-steps/s':>13} {'× plain@100':>11}")
    for name, rate in rows:
        print(f"{name:<72} {rate:>13,.0f} {rate / base:>11.2f}")
    print(f"whole command: --steps {STEPS[0]} {command[STEPS[0]]:.1f} s, --steps {STEPS[1]} {command[STEPS[1]]:.1f} s; "
          f"of which writing the report (gallery, {IMAGES} PNGs, tables): {report:.2f} s")

    # --- the study's experiment: 10 images, against the study's own loop ---
    wall10, loop10, _ = differenced(checkpoint, threads, work, args.rounds, 1, (200, 2200))
    idx10 = first_per_class(data.test_labels.numpy(), 1)
    x10 = to_pixels(data.test_images[idx10])
    z_ref = torch.from_numpy((x10[7:8] - MNIST_MEAN) / MNIST_STD)
    noise = torch.normal(0.5, 0.3, size=z_ref.shape, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([(int(data.test_labels[idx10[7]]) + 1) % 10])
    start = time.perf_counter()
    study_attack(model.requires_grad_(True), z_ref, target, noise, steps=args.study_steps,
                 log=lambda line: print(line, file=sys.stderr))
    study_rate = args.study_steps / (time.perf_counter() - start)
    print(f"\nthe study's own loop, 1 image x {args.study_steps} steps: {study_rate:,.0f} image-steps/s")
    for name, seconds in (("wall time", wall10), ("its attack's own time", loop10)):
        rate = 10 * 2000 / seconds
        print(f"the study's experiment, 10 images, --steps 2200 minus --steps 200, {name}: {rate:,.0f} "
              f"image-steps/s, {rate / study_rate:.0f}x the study's loop")


if __name__ == "__main__":
    main()
