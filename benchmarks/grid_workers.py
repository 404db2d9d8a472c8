"""One 2-thread worker against two 1-thread workers, side by side in one run: the nine-variant
ablation (training cells) and a 30-cell attack grid (FGSM and PGD at five ε on three of the
ablation's networks), each on a fresh store; with ``--ray``, the same attack grid on a local
Ray instance of 1 CPU and of 2 CPUs. Both attack grids attack the first configuration's
networks; how far the second's weights and cells are from the first's is printed (2 threads
sum in another order than 1). Run it alone: two torch jobs at once on 2 cores time nothing.

    python benchmarks/grid_workers.py [--data embedded] [--epochs 3] [--n 500] [--ray]

``--epochs`` is the ablation's budget in the study's units (3: the study's 2,813 SGD steps
of 64 per run; 1: a third of them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robustdigits.data.datasets import load_mnist
from robustdigits.data.fetch import sha256_file
from robustdigits.grid.cells import CellSpec, CellStore, ModelRef
from robustdigits.grid.executor import cores
from robustdigits.grid.runner import run_grid
from robustdigits.report.tables import machine_info, machine_line
from robustdigits.studies.ablation import AblationConfig, run_ablation
from robustdigits.variants import VARIANTS

ATTACKED = ("tutorial", "textbook-momentum", "improved")
EPS = (0.05, 0.1, 0.15, 0.2, 0.3)


def attack_specs(models: list[ModelRef], data_sha: str, data_name: str, n: int) -> list[CellSpec]:
    specs = []
    for m in models:
        for attack in ("fgsm", "pgd"):
            for eps in EPS:
                params = {"targeted": False, "target": None, "batch_size": 128, "seed": 0, "eps": eps}
                if attack == "pgd":
                    params.update(eps_step=eps / 8, steps=20, restarts=0)
                specs.append(CellSpec(data_sha, data_name, m.name, m.sha256, attack, params, f"first:{n}",
                                      {"seed": 1}, m.checkpoint))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--epochs", type=int, default=3, help="the ablation's budget, in the study's epochs")
    parser.add_argument("--n", type=int, default=500, help="images per attack cell")
    parser.add_argument("--ray", action="store_true", help="also time the attack grid on Ray with 1 and 2 CPUs")
    args = parser.parse_args()
    device = torch.device("cpu")
    data = load_mnist(args.data)
    n = cores()
    configs = [("1 worker × 2 threads (in this process)", 1, n), ("2 workers × 1 thread", 2, 1)]  # (label, jobs,
    # torch threads here: the workers of jobs 2 set their own, cores // 2)
    print(f"data: {data.info.short}\nmachine: {machine_line(machine_info(device))}; {n} cores usable")
    config = AblationConfig(epochs=args.epochs)
    rows, accuracy, weights, cells = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        models: list[ModelRef] = []
        for label, jobs, threads in configs:
            torch.set_num_threads(threads)
            root = Path(tmp) / f"jobs{jobs}"
            start = time.perf_counter()
            results = run_ablation(data, config, device=device, checkpoints=root / "checkpoints", jobs=jobs)
            train_s = time.perf_counter() - start
            accuracy.append([r.runs[0].final.accuracy for r in results])
            weights.append([p for r in results for p in r.runs[0].model.state_dict().values()])
            if not models:  # both grids attack the first configuration's networks
                models = [ModelRef(r.variant.name, str(r.runs[0].checkpoint), sha256_file(r.runs[0].checkpoint))
                          for r in results if r.variant.name in ATTACKED]
            specs = attack_specs(models, data.info.sha256, data.info.name, args.n)
            start = time.perf_counter()
            cells.append(run_grid(specs, CellStore(root / "cells"), data, device=device, jobs=jobs))
            rows.append((label, train_s, time.perf_counter() - start, len(results), len(specs)))
        ray_rows = []
        if args.ray:
            import ray

            torch.set_num_threads(1)
            for cpus in (1, 2):
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                start = time.perf_counter()
                run_grid(specs, CellStore(Path(tmp) / f"ray{cpus}"), data, device=device, executor="ray")
                ray_rows.append((cpus, time.perf_counter() - start))
                ray.shutdown()
    weight_gap = max(float((a - b).abs().max()) for a, b in zip(weights[0], weights[1]))
    accuracy_gap = max(abs(a - b) for a, b in zip(*accuracy))
    differ = sum(int(np.sum(a.samples["adv_pred"] != b.samples["adv_pred"])) for a, b in zip(*cells))
    steps = config.train_config(VARIANTS[0], 1).total_steps(data.info.n_train)
    print(f"\nablation: {rows[0][3]} runs of {steps:,} SGD steps; attack grid: {rows[0][4]} cells on {args.n} images")
    print(f"{'configuration':42s} {'ablation':>10s} {'attack grid':>12s} {'both':>10s}")
    base = rows[0][1] + rows[0][2]
    for label, train_s, attack_s, _, _ in rows:
        both = train_s + attack_s
        print(f"{label:42s} {train_s:9.1f}s {attack_s:11.1f}s {both:9.1f}s  ({base / both:.2f}× the first)")
    print(f"2 threads vs 1 thread (float sums in another order): largest weight difference {weight_gap:.2e}, "
          f"test accuracy within {accuracy_gap:.2f} points; adversarial predictions that differ: {differ} of "
          f"{sum(c.n for c in cells[0]):,} (the tests check equal results at equal threads)")
    for cpus, seconds in ray_rows:
        print(f"Ray, {cpus} CPU{'s' if cpus > 1 else ''} (one task per CPU): attack grid {seconds:.1f} s"
              + (f" ({ray_rows[0][1] / seconds:.2f}× 1 CPU)" if cpus > 1 else ""))


if __name__ == "__main__":
    main()
