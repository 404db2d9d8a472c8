"""Is the embedded test split harder than a random one of the same size?

The embedded split gives each digit's *last* images in MNIST's file order to the
test split (see ``robustdigits.data.datasets.stratified_split``). This trains one variant
with the study's budget on that fixed split and on random stratified splits of the
same sizes (8,000 / 2,000, the same digit counts), seeds 1..N each, and writes the
test accuracies to ``reports/runs/embedded/split_hardness.md/.csv/.json`` (``--out reports/embedded``
regenerates the committed one).

    python scripts/split_hardness.py --variant textbook-momentum --seeds 3 --threads 1
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import torch
from experiment_args import experiment_args

from robustdigits.data.datasets import DatasetInfo, MNISTData, content_sha256, load_embedded_arrays, stratified_split
from robustdigits.report.tables import machine_info, machine_line, write_report
from robustdigits.studies.ablation import AblationConfig
from robustdigits.training import train
from robustdigits.variants import get_variant

TEST_SIZE = 2000


def random_split(labels: np.ndarray, fixed_test: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random test images with the fixed split's count of every digit."""
    rng = np.random.default_rng(seed)
    test = []
    for digit in range(10):
        pool = np.flatnonzero(labels == digit)
        count = int((labels[fixed_test] == digit).sum())
        test.append(rng.choice(pool, size=count, replace=False))
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def make_data(images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
              name: str) -> MNISTData:
    t = torch.from_numpy
    info = DatasetInfo(name=name, description=f"embedded subset, {name} split", n_train=len(train_idx),
                       n_test=len(test_idx), sha256=content_sha256(images[train_idx], labels[train_idx],
                                                                   images[test_idx], labels[test_idx]))
    return MNISTData(t(images[train_idx]), t(labels[train_idx]), t(images[test_idx]), t(labels[test_idx]), info)


def main() -> None:
    args = experiment_args(__doc__, seeds=3, out="reports/runs/embedded", variant="textbook-momentum")
    variant = get_variant(args.variant)
    images, labels = load_embedded_arrays()
    fixed_train, fixed_test = stratified_split(labels, TEST_SIZE)
    config = AblationConfig()
    device = torch.device("cpu")
    start = time.perf_counter()
    accuracy: dict[str, list[float]] = {"fixed (last images of each digit)": [], "random (stratified)": []}
    for seed in range(1, args.seeds + 1):
        splits = {"fixed (last images of each digit)": (fixed_train, fixed_test),
                  "random (stratified)": random_split(labels, fixed_test, seed)}
        for split, (train_idx, test_idx) in splits.items():
            data = make_data(images, labels, train_idx, test_idx, split.split()[0])
            result = train(variant.model, config.train_config(variant, seed), data, device=device)
            accuracy[split].append(result.final.accuracy)
            print(f"{split}, seed {seed}: {result.final.accuracy:.2f}%", flush=True)
    seconds = time.perf_counter() - start
    columns = ["test split", "seeds", "accuracies (%)", "mean (%)", "± std"]
    rows = [[split, args.seeds, ", ".join(f"{a:.2f}" for a in accs), statistics.fmean(accs),
             statistics.stdev(accs) if len(accs) > 1 else None] for split, accs in accuracy.items()]
    machine = machine_info(device)
    notes = [f"Variant {variant.name}, the study's 2,813 SGD steps on 8,000 training images, 2,000 test images; "
             f"training seed k with random split k (numpy seed k) for k = 1..{args.seeds}.",
             f"Machine: {machine_line(machine)}; {seconds:.0f} s in all.",
             "Command: python scripts/split_hardness.py " + " ".join(
                 f"--{k} {v}" for k, v in vars(args).items() if k != "out")]
    meta = {"variant": variant.name, "train_config": dataclasses.asdict(config.train_config(variant, 1)),
            "machine": machine, "seconds": seconds}
    records = [{"split": split, "accuracies": accs} for split, accs in accuracy.items()]
    for path in write_report(args.out, "split_hardness", title="Embedded test split: fixed vs random",
                             notes=notes, columns=columns, rows=rows, records=records, meta=meta):
        print("wrote", path)


if __name__ == "__main__":
    main()
