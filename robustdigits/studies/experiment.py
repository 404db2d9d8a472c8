"""The study's attack experiment: turn the first test image of each digit into another."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..art_bridge import make_classifier
from ..attacks.regularized_gd import INITS, RegularizedGradientDescent
from ..checks import check_choice, check_flag, check_int, check_number
from ..config import MAX_SEED
from ..data.datasets import MNISTData
from ..data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from ..errors import ConfigError, DataError
from ..report.plots import plot_gallery, save_image
from ..report.tables import machine_info, machine_line, write_report
from ..scoring import perturbation_norms
from ..targets import check_target, target_classes


@dataclass(frozen=True)
class AttackConfig:
    """The study's defaults; η, λ and the noise are in its normalized units."""

    target: str = "next-digit"  # see robustdigits.targets
    steps: int = 10_000
    eta: float = 0.1  # step size (normalized units)
    lam: float = 0.05  # pull toward the reference
    init: str = "noise"  # "noise" (N(0.5, 0.3) normalized) or "reference"
    per_class: int = 1  # the first per_class test images of each digit
    seed: int = 0  # noise and random targets
    clip: bool = True  # clip iterates to [0, 1] pixels (False: the study)
    early_stop: float | None = None  # target probability that stops a sample
    keep_best: bool = False
    batch_size: int = 128

    def __post_init__(self) -> None:
        check_target(self.target)
        check_int("steps", self.steps, 0)
        if self.steps == 0 and self.init == "noise":
            raise ConfigError("steps must be >= 1 from noise: with 0 steps the starting noise itself would be scored "
                              "as the attack's result; pass --steps 1 or more, or --init reference")
        check_number("eta", self.eta, 0.0, low_open=True)
        check_number("lam", self.lam, 0.0)
        check_choice("init", self.init, INITS)
        check_int("per_class", self.per_class, 1)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_flag("clip", self.clip)
        if self.early_stop is not None:
            check_number("early_stop", self.early_stop, 0.0, 1.0, low_open=True)
        check_flag("keep_best", self.keep_best)
        check_int("batch_size", self.batch_size, 1)
        if self.init == "noise" and (self.early_stop is not None or self.keep_best):
            raise ConfigError("--early-stop and --keep-best need --init reference: from noise the starting point "
                              "may already be read as the target and would count as a success")


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each digit, digit by digit."""
    chosen = []
    for digit in range(10):
        found = np.flatnonzero(labels == digit)[:per_class]
        if len(found) < per_class:
            raise DataError(f"the test split has only {len(found)} images of digit {digit}; lower --per-class")
        chosen.append(found)
    return np.concatenate(chosen)


def build_attack(classifier: Any, config: AttackConfig) -> RegularizedGradientDescent:
    return RegularizedGradientDescent.from_normalized(
        classifier, mean=MNIST_MEAN, std=MNIST_STD, learning_rate=config.eta, penalty=config.lam,
        max_iter=config.steps, init=config.init, seed=config.seed, clip=config.clip,
        early_stop=config.early_stop, keep_best=config.keep_best, batch_size=config.batch_size,
    )


@dataclass
class AttackOutcome:
    config: AttackConfig
    indices: np.ndarray  # into the test split
    labels: np.ndarray
    targets: np.ndarray
    predicted: np.ndarray
    target_confidence: np.ndarray  # softmax probability of the target
    l2: np.ndarray  # pixel units
    linf: np.ndarray
    held_from: np.ndarray  # the step from which the target was read to the end, -1 not at the end
    steps_used: np.ndarray  # gradient steps run (fewer after an early stop)
    x_ref: np.ndarray  # (N, 1, 28, 28) pixels
    x_adv: np.ndarray
    seconds: float = 0.0  # wall time of the attack itself (generate), on the machine in the report

    def records(self) -> list[dict[str, Any]]:
        return [
            {"test_index": int(i), "true": int(t), "target": int(g), "predicted": int(p),
             "target_confidence": float(c), "l2": float(a), "linf": float(b), "held_from_step": int(s),
             "steps_used": int(u), "success": bool(p == g)}
            for i, t, g, p, c, a, b, s, u in zip(self.indices, self.labels, self.targets, self.predicted,
                                                  self.target_confidence, self.l2, self.linf, self.held_from,
                                                  self.steps_used)
        ]


def run_experiment(
    model: torch.nn.Module,
    data: MNISTData,
    config: AttackConfig,
    *,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> AttackOutcome:
    """Attack the first ``per_class`` test images of every digit toward their targets."""
    classifier = make_classifier(model, device)
    labels_all = data.test_labels.numpy()
    indices = first_per_class(labels_all, config.per_class)
    x_ref = to_pixels(data.test_images[indices])
    labels = labels_all[indices]
    logits = classifier.predict(x_ref) if config.target == "least-likely" else None
    targets = target_classes(config.target, labels, logits, seed=config.seed)
    attack = build_attack(classifier, config)
    start = time.perf_counter()
    x_adv = attack.generate(x_ref, targets, progress=progress)
    seconds = time.perf_counter() - start
    probs = torch.from_numpy(classifier.predict(x_adv)).softmax(1).numpy()
    l2, linf = perturbation_norms(x_ref, x_adv)
    return AttackOutcome(config, indices, labels, targets, probs.argmax(1),
                         probs[np.arange(len(targets)), targets], l2, linf, attack.success_step_, attack.steps_used_,
                         x_ref, x_adv, seconds)


COLUMNS = ["test index", "true", "target", "predicted", "target confidence", "L2", "L∞", "target held from step",
           "steps run"]
# What the report says the columns mean (the README says the same).
COLUMN_NOTES = ("Success: the image shown is read as the target. 'target held from step': the step from which the "
                "model read the target at every later step (0 is the starting point); '—' when the last step is not "
                "read as the target. 'steps run': gradient steps before the sample stopped.")


def table_rows(outcome: AttackOutcome) -> list[list[Any]]:
    """One row per attacked image, in COLUMNS' order (no held step reads "—")."""
    return [[r["test_index"], r["true"], r["target"], r["predicted"], r["target_confidence"], r["l2"], r["linf"],
             r["held_from_step"] if r["held_from_step"] >= 0 else "—", r["steps_used"]] for r in outcome.records()]


def write_experiment_report(outcome: AttackOutcome, out_dir: str | os.PathLike[str], *, model_name: str,
                            data: MNISTData, device: torch.device,
                            settings: dict[str, Any] | None = None) -> list[Path]:
    """``gallery.png``, ``adv_<index>_<true>to<target>.png`` and ``results.json/.csv/.md``."""
    out = Path(out_dir)
    records = outcome.records()
    current = {f"adv_{r['test_index']}_{r['true']}to{r['target']}.png" for r in records}
    for stale in out.glob("adv_*_*to*.png"):  # images of an earlier run that results.json would not describe
        if stale.name not in current:
            stale.unlink()
    captions = [f"{r['true']} → {r['target']}: pred {r['predicted']} ({r['target_confidence']:.2f})" for r in records]
    paths = [plot_gallery(outcome.x_ref[:, 0], outcome.x_adv[:, 0], captions, out / "gallery.png",
                          title=f"{model_name}: {outcome.config.target}, {outcome.config.steps:,} steps")]
    for r, image in zip(records, outcome.x_adv[:, 0]):
        paths.append(save_image(image, out / f"adv_{r['test_index']}_{r['true']}to{r['target']}.png"))
    rows = table_rows(outcome)
    success = sum(r["success"] for r in records)
    machine = machine_info(device)
    notes = [f"Model: {model_name}. Dataset: {data.info.short}.",
             f"Config: {dataclasses.asdict(outcome.config)} (η, λ and noise in normalized units).",
             f"Reached the target: {success} of {len(records)}. Distances in pixel units ([0, 1]).",
             COLUMN_NOTES,
             f"Machine: {machine_line(machine)}."]
    meta = {"settings": settings, "model": model_name, "dataset": dataclasses.asdict(data.info),
            "config": dataclasses.asdict(outcome.config), "machine": machine,
            "attack_seconds": outcome.seconds}  # the attack alone, on this machine
    paths += write_report(out, "results", title=f"Regularized gradient descent on {model_name}", notes=notes,
                          columns=COLUMNS, rows=rows, records=records, meta=meta)
    return paths
