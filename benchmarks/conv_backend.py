"""Which convolution backend and memory layout make one attack step fastest, per batch size.

One step = forward, gradient of the summed cross-entropy with respect to the input,
detached update: what our attack does. For each batch size it times TextbookNet in
NCHW and channels_last, with oneDNN on and off, and prints the fastest choice. The
attack's table (``attacks/_backends.py``) is set from this output. Run it alone.

    python benchmarks/conv_backend.py [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import parse

from robustdigits.models import get_model
from robustdigits.report.tables import machine_info, machine_line

BATCHES = (1, 2, 4, 8, 10, 16, 32, 64, 128, 256, 512, 1000)


def step_time(model: torch.nn.Module, batch: int, steps: int, rounds: int) -> float:
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def run() -> float:
        nonlocal x
        start = time.perf_counter()
        for _ in range(steps):
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
            x = (x - 0.01 * g).clamp(0, 1)
        return (time.perf_counter() - start) / steps

    run()  # warm-up
    return statistics.median(run() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args, device = parse(parser)
    print(f"machine: {machine_line(machine_info(device))}; run alone\n")
    model = get_model("textbook").eval().requires_grad_(False)
    print("| batch | NCHW oneDNN | NCHW native | channels_last oneDNN | channels_last native | fastest |")
    print("|---|---|---|---|---|---|")
    for batch in BATCHES:
        steps = max(3, 2000 // batch)
        times = {}
        for layout_name, layout in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
            m = model.to(memory_format=layout)
            for backend, enabled in (("oneDNN", True), ("native", False)):
                with torch.backends.mkldnn.flags(enabled=enabled):
                    times[f"{layout_name} {backend}"] = step_time(m, batch, steps, args.rounds)
        best = min(times, key=lambda k: times[k])
        cells = " | ".join(f"{1000 * t:.2f} ms" for t in times.values())
        print(f"| {batch} | {cells} | {best} |", flush=True)


if __name__ == "__main__":
    main()
