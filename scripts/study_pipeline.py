"""Train a variant the way the study's script did, to tell our pipeline's effect apart
from the variant's own: torchvision's MNIST Dataset (ToTensor + Normalize) through a
``DataLoader(batch_size=64, shuffle=True)`` after ``torch.manual_seed(seed)``, NCHW
layout, 3 epochs (938 batches each, the last one partial), SGD lr 0.01. Needs full
MNIST in the data cache (``robustdigits data fetch``). Prints and writes
``reports/runs/mnist/study_pipeline.md/.csv/.json`` (``--out reports/mnist`` regenerates the
committed one).

    python scripts/study_pipeline.py --variants textbook-dropout0.5,textbook-momentum-dropout0.5 --seeds 1
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from experiment_args import experiment_args
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from robustdigits.data.datasets import default_data_dir
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD
from robustdigits.report.tables import machine_info, machine_line, write_report
from robustdigits.variants import get_variant


def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return 100.0 * correct / total


def main() -> None:
    args = experiment_args(__doc__, seeds=1, out="reports/runs/mnist",
                           variants="textbook-dropout0.5,textbook-momentum-dropout0.5")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    root = str(default_data_dir())
    train_set = datasets.MNIST(root, train=True, transform=tf)
    test_loader = DataLoader(datasets.MNIST(root, train=False, transform=tf), batch_size=1000)
    rows, records = [], []
    start = time.perf_counter()
    for name in args.variants.split(","):
        variant = get_variant(name)
        accs = []
        for seed in range(1, args.seeds + 1):
            torch.manual_seed(seed)
            model = variant.model.build()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=variant.momentum)
            loader = DataLoader(train_set, batch_size=64, shuffle=True)
            for _ in range(3):
                model.train()
                for x, y in loader:
                    opt.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
            accs.append(accuracy(model, test_loader))
            print(f"{name} seed {seed}: {accs[-1]:.2f}%", flush=True)
        rows.append([name, variant.published_accuracy, ", ".join(f"{a:.2f}" for a in accs),
                     sum(accs) / len(accs)])
        records.append({"variant": name, "published_accuracy": variant.published_accuracy, "accuracies": accs})
    seconds = time.perf_counter() - start
    machine = machine_info(torch.device("cpu"))
    notes = ["The study's pipeline (torchvision Dataset + DataLoader, NCHW, 3 epochs = 2,814 steps) on full MNIST, "
             f"seeds 1..{args.seeds} through torch.manual_seed.",
             f"Machine: {machine_line(machine)}; {seconds:.0f} s in all.",
             f"Command: python scripts/study_pipeline.py --variants {args.variants} --seeds {args.seeds} "
             f"--threads {args.threads}"]
    for path in write_report(args.out, "study_pipeline", title="Variants trained with the study's own pipeline",
                             notes=notes, columns=["variant", "published acc. (%)", "accuracies (%)", "mean (%)"],
                             rows=rows, records=records, meta={"machine": machine, "seconds": seconds}):
        print("wrote", path)


if __name__ == "__main__":
    main()
