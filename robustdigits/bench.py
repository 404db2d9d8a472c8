"""Our attack beside ART's on every model variant, scored the same way."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import CarliniL2Method, DeepFool, FastGradientMethod, ProjectedGradientDescent

from attacks.regularized_gd import RegularizedGradientDescent

from .art_bridge import make_classifier
from .checks import check_choice, check_int, check_number
from .config import MAX_SEED
from .datasets import MNISTData, proportional_counts
from .pixels import MNIST_MEAN, MNIST_STD, to_pixels
from .plots import plot_curves
from .reports import machine_info, machine_line, write_report
from .scoring import Score, is_adversarial, perturbation_norms, summarize
from .targets import check_target, target_classes

ATTACKS = ("rgd", "fgsm", "pgd", "cw", "deepfool")
TARGETED = {"rgd": True, "fgsm": True, "pgd": True, "cw": True, "deepfool": False}  # DeepFool has no targets
SLOW = ("cw", "deepfool")  # ART's NumPy-heavy attacks: 0.06-0.22 s an image on a 2-core CPU


@dataclass(frozen=True)
class BenchConfig:
    n: int = 1000  # the first n test images
    n_slow: int = 100  # C&W and DeepFool attack a stratified subset of this many of those n
    target: str = "next-digit"  # targets of the targeted attacks
    seed: int = 0
    batch_size: int = 128
    eps: float = 0.3  # L∞ budget of FGSM and PGD (pixels)
    pgd_steps: int = 40  # PGD iterations, step eps / 10
    cw_steps: int = 10  # C&W iterations per binary-search step (ART's default)
    cw_search: int = 3  # C&W binary-search steps (ART's default 10 costs ~1 s per image on a CPU)
    cw_const: float = 10.0  # C&W initial constant (ART's 0.01 reaches no target in this budget)
    cw_learning_rate: float = 0.1  # ART's default 0.01
    deepfool_steps: int = 50  # ART's default 100; it converges in a few
    rgd_steps: int = 200  # our attack: max steps, from the reference, stopping at target p >= 0.5
    sweep: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)  # ε of the robustness curves
    sweep_pgd_steps: int = 20
    attacks: tuple[str, ...] = field(default=ATTACKS)

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("n_slow", self.n_slow, 1)
        check_target(self.target)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("batch_size", self.batch_size, 1)
        check_number("eps", self.eps, 0.0, 1.0, low_open=True)
        check_int("rgd_steps", self.rgd_steps, 1)
        for name in self.attacks:
            check_choice("attack", name, ATTACKS)


def make_attack(name: str, classifier: Any, config: BenchConfig) -> Any:
    """The attack ``name`` configured for the benchmark (targeted where it can be)."""
    bs = config.batch_size
    if name == "rgd":
        return RegularizedGradientDescent.from_normalized(
            classifier, mean=MNIST_MEAN, std=MNIST_STD, max_iter=config.rgd_steps, init="reference",
            early_stop=0.5, keep_best=True, batch_size=bs)
    if name == "fgsm":
        return FastGradientMethod(classifier, eps=config.eps, targeted=True, batch_size=bs)
    if name == "pgd":
        return ProjectedGradientDescent(classifier, eps=config.eps, eps_step=config.eps / 10,
                                        max_iter=config.pgd_steps, targeted=True, batch_size=bs, verbose=False)
    if name == "cw":
        return CarliniL2Method(classifier, targeted=True, max_iter=config.cw_steps,
                               binary_search_steps=config.cw_search, initial_const=config.cw_const,
                               learning_rate=config.cw_learning_rate, max_halving=2, max_doubling=2,
                               batch_size=bs, verbose=False)
    if name == "deepfool":
        return DeepFool(classifier, max_iter=config.deepfool_steps, batch_size=bs, verbose=False)
    raise ValueError(f"unknown attack {name!r}; choose from: {', '.join(ATTACKS)}")


@dataclass
class BenchRow:
    model: str
    attack: str
    targeted: bool
    clean_accuracy: float  # percent, on the same n images
    score: Score
    seconds_per_image: float


@dataclass
class BenchResult:
    rows: list[BenchRow]
    sweep: dict[str, dict[str, list[float]]]  # attack -> model -> robust accuracy per ε


def bench_model(name: str, model: torch.nn.Module, data: MNISTData, config: BenchConfig, *,
                device: torch.device, progress: Callable[[str], None] | None = None
                ) -> tuple[list[BenchRow], dict[str, list[float]]]:
    """Every attack on one model, then the FGSM and PGD ε-sweeps (untargeted).
    ``progress`` is called with a label each time one of them finishes."""
    classifier = make_classifier(model, device)
    n = min(config.n, len(data.test_labels))
    x_all = to_pixels(data.test_images[:n])
    labels_all = data.test_labels[:n].numpy()
    logits = classifier.predict(x_all, batch_size=config.batch_size)
    targets_all = target_classes(config.target, labels_all, logits, seed=config.seed)
    slow = stratified_subset(labels_all, min(config.n_slow, n))
    rows = []
    for attack_name in config.attacks:
        chosen = slow if attack_name in SLOW else np.arange(n)
        x, labels, targets = x_all[chosen], labels_all[chosen], targets_all[chosen]
        clean = 100.0 * float((logits[chosen].argmax(1) == labels).mean())
        targeted = TARGETED[attack_name]
        attack = make_attack(attack_name, classifier, config)
        start = time.perf_counter()
        x_adv = attack.generate(x, targets if targeted else labels)
        elapsed = time.perf_counter() - start
        pred = classifier.predict(x_adv, batch_size=config.batch_size).argmax(1)
        success = is_adversarial(pred, labels, targets if targeted else None)
        rows.append(BenchRow(name, attack_name, targeted, clean, summarize(success, *perturbation_norms(x, x_adv)),
                             elapsed / len(chosen)))
        if progress:
            progress(f"{name}: {attack_name} done")
    sweep = {}
    for attack_name in ("fgsm", "pgd"):
        sweep[attack_name] = [robust_accuracy(classifier, x_all, labels_all, attack_name, eps, config)
                              for eps in config.sweep]
        if progress:
            progress(f"{name}: {attack_name} ε-sweep done")
    return rows, sweep


def stratified_subset(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` images holding every class in proportion (largest remainder),
    each class's first images, in their original order."""
    classes, counts = np.unique(labels, return_counts=True)
    take = proportional_counts(counts, k)
    chosen = [np.flatnonzero(labels == c)[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def robust_accuracy(classifier: Any, x: np.ndarray, labels: np.ndarray, attack: str, eps: float,
                    config: BenchConfig) -> float:
    """Accuracy (percent) on untargeted FGSM or PGD examples with L∞ budget ``eps``."""
    if eps == 0:
        x_adv = x
    elif attack == "fgsm":
        x_adv = FastGradientMethod(classifier, eps=eps, batch_size=config.batch_size).generate(x, labels)
    else:
        x_adv = ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 8, max_iter=config.sweep_pgd_steps,
                                         batch_size=config.batch_size, verbose=False).generate(x, labels)
    return 100.0 * float((classifier.predict(x_adv, batch_size=config.batch_size).argmax(1) == labels).mean())


def run_bench(models: Sequence[tuple[str, torch.nn.Module]], data: MNISTData, config: BenchConfig, *,
              device: torch.device, progress: Callable[[str], None] | None = None) -> BenchResult:
    rows: list[BenchRow] = []
    sweep: dict[str, dict[str, list[float]]] = {"fgsm": {}, "pgd": {}}
    for name, model in models:
        model_rows, model_sweep = bench_model(name, model, data, config, device=device, progress=progress)
        rows += model_rows
        for attack, values in model_sweep.items():
            sweep[attack][name] = values
    return BenchResult(rows, sweep)


COLUMNS = ["model", "attack", "mode", "n", "clean acc. (%)", "success (%)", "95% CI", "median L2", "mean L2",
           "median L∞", "mean L∞", "ms / image"]


def table_rows(result: BenchResult) -> list[list[Any]]:
    return [[r.model, r.attack, "targeted" if r.targeted else "untargeted", r.score.n, r.clean_accuracy,
             r.score.success_rate, f"{r.score.ci_low:.1f}–{r.score.ci_high:.1f}", r.score.median_l2, r.score.mean_l2,
             r.score.median_linf, r.score.mean_linf, 1000 * r.seconds_per_image] for r in result.rows]


def write_bench_report(result: BenchResult, config: BenchConfig, data: MNISTData, out_dir: str | os.PathLike[str],
                       device: torch.device, settings: dict[str, Any] | None = None) -> list[Path]:
    """``bench.md/.csv/.json`` and ``bench_<fgsm|pgd>_sweep.png`` in ``out_dir``; ``settings``
    (what identifies the run) is kept in the JSON."""
    machine = machine_info(device)
    n = min(config.n, data.info.n_test)
    notes = [
        f"Dataset: {data.info.short}; the first {n:,} test images, of which C&W and DeepFool attack a stratified "
        f"subset of {min(config.n_slow, n):,} (column n). Machine: {machine_line(machine)}.",
        f"Targeted attacks aim at '{config.target}' and succeed when the model predicts the target; untargeted "
        "ones (DeepFool) succeed when it does not predict the true label. Success is over all n images, with its "
        "95% Wilson interval; distances are in pixel units ([0, 1]) over successful images.",
        f"Settings: {dataclasses.asdict(config)}.",
    ]
    records = [dataclasses.asdict(r) for r in result.rows]
    meta = {"settings": settings, "dataset": dataclasses.asdict(data.info), "config": dataclasses.asdict(config),
            "machine": machine,
            "sweep_eps": list(config.sweep), "sweep_robust_accuracy": result.sweep}
    paths = write_report(out_dir, "bench", title="Attacks on every model variant", notes=notes, columns=COLUMNS,
                         rows=table_rows(result), records=records, meta=meta)
    for attack, curves in result.sweep.items():
        if curves:
            paths.append(plot_curves(config.sweep, curves, Path(out_dir) / f"bench_{attack}_sweep.png",
                                     title=f"Untargeted {attack.upper()} (L∞) on {n:,} {data.info.name} test images",
                                     xlabel="ε (pixels)", ylabel="robust accuracy (%)"))
    return paths
