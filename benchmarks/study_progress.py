"""How far a long robustness run has got, and how long the rest will take: per kind of cell
(attack, AutoAttack version, ε, natural or adversarially trained row), the cells finished in
the cell store and their mean seconds as measured, the cells still to run, and an estimate
of their seconds from the finished ones of the same kind (else of the same attack and ε;
else any stored cell of the same attack and ε from earlier runs, on other models or images
of the same size; else of the same attack; "unknown" where none has run). Reads the store only; computes
nothing. The settings are the review's run of the study (docs/robustness.md); every variant
and row must be trained (the run trains them first).

    python benchmarks/study_progress.py [--cells reports/runs/cells] [--seeds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from robustdigits.checkpoints import checkpoint_path, default_checkpoints
from robustdigits.data.datasets import load_mnist
from robustdigits.data.fetch import sha256_file
from robustdigits.grid.cells import CellSpec, CellStore, ModelRef
from robustdigits.studies.adversarial import ADVERSARIAL
from robustdigits.studies.robustness import RobustnessConfig, cell_specs
from robustdigits.variants import VARIANTS


def kind(spec: CellSpec, adversarial: bool) -> tuple[str, ...]:
    """The cell's kind: what its cost depends on."""
    p = spec.params
    attack = spec.attack if spec.attack != "autoattack" else f"autoattack {p['version']}"
    return (attack, f"{p['eps']:g}" if "eps" in p else "", "adversarial" if adversarial else "natural")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="reports/runs/cells")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="one-thread workers, for the wall-time estimate")
    args = parser.parse_args()
    config = RobustnessConfig(seeds=args.seeds, sample="random", autoattack=(0.1, 0.2, 0.3), aa_version="mixed",
                              square=(0.3,), min_norm="converged")
    data = load_mnist("mnist")
    store = CellStore(Path(args.cells))
    models = [(v.name, seed) for v in VARIANTS for seed in range(1, args.seeds + 1)]
    models += [(row, 1) for row in config.adversarial]
    done: dict[tuple[str, ...], list[float]] = defaultdict(list)
    pending: dict[tuple[str, ...], int] = defaultdict(int)
    for name, seed in models:
        path = checkpoint_path(default_checkpoints(), data.info, name, seed)
        ref = ModelRef(name, str(path), sha256_file(path), {"seed": seed})
        for spec in cell_specs(ref, data, config).values():
            k = kind(spec, name in ADVERSARIAL)
            if store.has(spec):
                done[k].append(store.load(spec).seconds)
            else:
                pending[k] += 1

    earlier: dict[tuple[str, ...], list[float]] = defaultdict(list)  # every stored cell of 1,000 images
    for meta_path in store.root.glob("*/cell.json"):
        meta = json.loads(meta_path.read_text())
        spec = CellSpec.from_dict(meta["spec"])
        if meta["n"] == config.n and spec.data_sha256 == data.info.sha256:
            earlier[kind(spec, False)[:2]].append(float(meta["seconds"]))

    def estimate(k: tuple[str, ...]) -> float | None:
        for seconds in ([s for d, v in done.items() if d == k for s in v],
                        [s for d, v in done.items() if d[:2] == k[:2] for s in v], earlier.get(k[:2], []),
                        [s for d, v in done.items() if d[0] == k[0] for s in v]):
            if seconds:
                return statistics.fmean(seconds)
        return None

    print("| cell kind | ε | rows | finished | mean s | to run | estimated s |\n|---|---|---|---|---|---|---|")
    total_done, total_left, unknown = 0.0, 0.0, 0
    for k in sorted(set(done) | set(pending)):
        mean = statistics.fmean(done[k]) if done[k] else None
        guess = estimate(k)
        left = None if guess is None else guess * pending[k]
        total_done += sum(done[k])
        if left is None:
            unknown += pending[k]
        else:
            total_left += left
        print(f"| {k[0]} | {k[1]} | {k[2]} | {len(done[k])} | {'' if mean is None else f'{mean:.1f}'} | "
              f"{pending[k]} | {'unknown' if left is None and pending[k] else f'{left or 0:.0f}'} |")
    cells = sum(len(v) for v in done.values())
    print(f"\n{cells} of {cells + sum(pending.values())} attack cells finished, {total_done / 3600:.2f} h of "
          f"one-thread cells; the rest estimated at {total_left / 3600:.2f} h"
          + (f" plus {unknown} cells of kinds none has run yet" if unknown else "")
          + f", about {total_left / 3600 / args.workers:.1f} h on {args.workers} one-thread workers.")


if __name__ == "__main__":
    main()
