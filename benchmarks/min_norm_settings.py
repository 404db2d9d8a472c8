"""Which settings of adv-lib's minimum-norm attacks find examples on MNIST: FMN at three
initial steps, DDN, and C&W-L2 from adv-lib's default constant and rate and from ours, on
the same stratified images of two trained networks (the robustness study's seed-1
textbook-momentum and its PGD-trained row), side by side in one run. Prints, per attack,
its seconds, how many of the images it found a misclassifying example for, and the median
L2 over all of them (inf where most found none; 0 for an image already misclassified).
Needs the minnorm extra and the two checkpoints (``robustdigits robustness --data mnist``
trains them). Run it alone.

    python benchmarks/min_norm_settings.py [--images 100] [--steps 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from common import parse

from robustdigits.checkpoints import checkpoint_path, default_checkpoints, load_checkpoint
from robustdigits.data.datasets import load_mnist
from robustdigits.data.pixels import PixelInput, to_pixels
from robustdigits.grid.minimum_norm import adv_lib_attacks
from robustdigits.grid.runner import select_indices
from robustdigits.report.tables import machine_info, machine_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="a stratified subset of the first 1,000 test images")
    parser.add_argument("--steps", type=int, default=1000, help="FMN and DDN steps")
    parser.add_argument("--models", default="textbook-momentum,adv-pgd")
    args, device = parse(parser)
    attacks = adv_lib_attacks()
    data = load_mnist("mnist")
    index = select_indices(f"stratified:{args.images}:1000", data.test_labels.numpy())
    x = torch.from_numpy(to_pixels(data.test_images[index].numpy())).to(device)
    y = data.test_labels[index].to(device)
    print(f"{machine_line(machine_info(device))}; {len(index)} images; FMN and DDN {args.steps} steps")
    settings: list[tuple[str, Callable[[torch.nn.Module], torch.Tensor]]] = [
        *[(f"FMN, initial step {a:g}", lambda net, a=a: attacks.fmn(net, x, y, norm=2, steps=args.steps, α_init=a))
          for a in (1.0, 0.3, 0.1)],
        ("DDN", lambda net: attacks.ddn(net, x, y, steps=args.steps)),
        ("C&W 9 × 100, constant 0.001, rate 0.01 (adv-lib's)",
         lambda net: attacks.carlini_wagner_l2(net, x, y, binary_search_steps=9, max_iterations=100)),
        ("C&W 9 × 100, constant 0.1, rate 0.1 (ours)",
         lambda net: attacks.carlini_wagner_l2(net, x, y, binary_search_steps=9, max_iterations=100,
                                               initial_const=0.1, learning_rate=0.1)),
    ]
    print("| model | attack | seconds | found | median L2 |\n|---|---|---|---|---|")
    for name in args.models.split(","):
        path = checkpoint_path(default_checkpoints(), data.info, name, 1)
        net = PixelInput(load_checkpoint(path).build_model(device)).eval()
        with torch.no_grad():
            right = net(x).argmax(1) == y
        for tag, attack in settings:
            start = time.perf_counter()
            adv = attack(net)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                fooled = (net(adv).argmax(1) != y) & right
            distance = torch.where(fooled, (adv - x).flatten(1).norm(dim=1), torch.tensor(float("inf")))
            distance = torch.where(right, distance, torch.tensor(0.0))
            print(f"| {name} | {tag} | {seconds:.1f} | {int(torch.isfinite(distance).sum())} / {len(index)} | "
                  f"{float(distance.median()):.3f} |", flush=True)

if __name__ == "__main__":
    main()
