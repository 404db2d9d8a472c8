"""What adversarial training costs, side by side in one run: each method's seconds per step
beside plain training of the same network, and beside what its passes should cost.

One step of natural training is one forward and one backward pass. FGSM-RS and N-FGSM add
one forward/backward to the input (2 passes in all), PGD-k adds k (k + 1), TRADES-k adds k
plus a clean forward. The column "per pass" divides each step by its passes: when it stays
near natural training's, the adversary costs no more than its passes (no NumPy or ART round
trips, no copies). All run through ``train_adversarial`` (ε = 0 is natural training through
the same loop) and, for the plain row, ``robustdigits.training.train`` (the study's SGD
loop), interleaved over rounds; each run's seconds per step are timed from its progress
events between its first and last step (setup and evaluations left out); the median over
rounds is shown. Run it alone.

    python benchmarks/adversarial_training.py [--threads N] [--model wong --width 2] [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import parse

from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import load_mnist
from robustdigits.report.tables import machine_info, machine_line
from robustdigits.robust_training import AdversarialConfig, train_adversarial
from robustdigits.training import train

METHODS = [  # label, adversarial config, passes per step
    ("natural (ε = 0, same loop)", AdversarialConfig(eps=0.0, guard_images=0), 1),
    ("fgsm-rs", AdversarialConfig(method="fgsm-rs", guard_images=0), 2),
    ("n-fgsm", AdversarialConfig(method="n-fgsm", guard_images=0), 2),
    ("pgd-5", AdversarialConfig(method="pgd", attack_steps=5, guard_images=0), 6),
    ("pgd-10", AdversarialConfig(method="pgd", attack_steps=10, guard_images=0), 11),
    ("trades-5", AdversarialConfig(method="trades", attack_steps=5, guard_images=0), 6),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="wong")
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="timed SGD steps per run (batch 100)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="auto")
    args, device = parse(parser)
    data = load_mnist(args.data)
    kwargs = {"width": args.width} if args.model == "wong" else {}
    spec = ModelSpec(args.model, kwargs)
    config = TrainConfig(steps=args.steps, batch_size=100, lr=1e-3, seed=1, test_batch_size=10_000)
    times: dict[str, list[float]] = {label: [] for label, _, _ in METHODS}
    plain = "plain train (the study's loop, SGD)"
    times[plain] = []

    def stepper(label: str):
        stamps: list[float] = []

        def on(event) -> None:
            if event.kind == "step":
                stamps.append(time.perf_counter())
                if event.step == event.total_steps:  # seconds per step between the first and last step
                    times[label].append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
        return on

    for _ in range(args.rounds):
        train(spec, config, data, device=device, progress=stepper(plain))
        for label, adv, _ in METHODS:
            train_adversarial(spec, config, adv, data, device=device, progress=stepper(label))
    per_step = {k: statistics.median(v) for k, v in times.items()}
    natural = per_step["natural (ε = 0, same loop)"]
    passes = {label: p for label, _, p in METHODS}
    passes[plain] = 1
    print(f"{spec.name} {spec.kwargs}, batch 100, {args.steps} steps × {args.rounds} rounds (median), "
          f"{data.info.name} data; {machine_line(machine_info(device))}")
    print(f"{'method':40s} {'ms/step':>8s} {'× natural':>10s} {'passes':>7s} {'ms/pass':>8s} "
          f"{'per pass × natural':>19s}")
    for label, seconds in per_step.items():
        p = passes[label]
        print(f"{label:40s} {1000 * seconds:8.1f} {seconds / natural:10.2f} {p:7d} {1000 * seconds / p:8.1f} "
              f"{seconds / p / natural:19.2f}")
    epoch_steps = 590  # 59,000 training images (1,000 held out for the guard) in batches of 100
    print(f"one epoch of full MNIST ({epoch_steps} steps): " + ", ".join(
        f"{label.split(' (')[0]} {seconds * epoch_steps:.0f} s" for label, seconds in per_step.items()))


if __name__ == "__main__":
    main()
