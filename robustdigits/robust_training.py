"""Fast adversarial training, torch-native, with a guard against catastrophic overfitting.

Every step trains on adversarial examples of the model as it is (Madry et al.'s min-max),
made by one of four adversaries in pixel space (ε in [0, 1] pixels):

- ``fgsm-rs``: FGSM from a random start, step 1.25 ε (Wong, Rice & Kolter 2020);
- ``n-fgsm``: FGSM from a 2 ε-wide start, step ε, not projected (de Jorge et al. 2022);
- ``pgd``: PGD-``attack_steps`` from a random start, step 2.5 ε / steps (Madry et al. 2018);
- ``trades``: clean cross-entropy + β · KL(clean ‖ adversarial), the adversary PGD on the
  KL (Zhang et al. 2019).

ε can grow linearly from 0 over the first ``eps_ramp_epochs``; the learning rate follows a
cyclic (one-cycle) schedule, 0 → ``lr`` at 2/5 of training → 0, as Wong et al., or stays
constant. After each epoch a PGD attack on ``guard_images`` training images held out of
training measures robustness; the checkpoint keeps the weights of the best epoch, and a
fall of more than :data:`COLLAPSE_DROP` points below the best is reported as a collapse
(catastrophic overfitting: FGSM training's robustness can vanish within an epoch).

The checkpoint is an ordinary one (``build_model`` gives the kept weights) with the
adversarial config, the recipe's name, the guard's history and, until training finishes,
the last epoch's state to resume from.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attacks.linf import fgsm_rs, n_fgsm, pgd, pgd_correct, trades_adversary
from .checkpoints import load_checkpoint, save_checkpoint
from .checks import check_choice, check_int, check_number
from .config import ModelSpec, TrainConfig
from .data.datasets import MNISTData
from .data.loader import TensorLoader, epoch_generator
from .data.pixels import PixelInput
from .devices import fast_layout
from .errors import CheckpointError, ConfigError, DivergedError
from .evaluation import EvalResult, evaluate
from .fileio import exclusive
from .training import TrainEvent, empty_metrics

METHODS = ("fgsm-rs", "n-fgsm", "pgd", "trades")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cyclic", "constant")
COLLAPSE_DROP = 20.0  # points of held-out PGD accuracy below the best epoch that count as a collapse


@dataclass(frozen=True)
class AdversarialConfig:
    """How the adversary is made and the optimizer driven; saved in the checkpoint."""

    method: str = "fgsm-rs"
    eps: float = 0.3  # L∞ radius in pixels
    eps_ramp_epochs: int = 0  # ε grows linearly from 0 to eps over this many epochs (per step)
    attack_steps: int = 10  # pgd and trades only
    step_size: float | None = None  # α; None: 1.25 ε (fgsm-rs), ε (n-fgsm), 2.5 ε / steps (pgd, trades)
    trades_beta: float = 6.0
    optimizer: str = "adam"
    schedule: str = "cyclic"  # cyclic: lr 0 → peak at 2/5 of the steps → 0; constant: lr throughout
    guard_images: int = 1000  # training images held out for the guard (0: no guard)
    guard_steps: int = 10  # PGD steps of the guard's attack (step ε / 4, one random start)

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_number("eps", self.eps, 0.0, 1.0)
        check_int("eps_ramp_epochs", self.eps_ramp_epochs, 0)
        check_int("attack_steps", self.attack_steps, 1)
        if self.step_size is not None:
            check_number("step_size", self.step_size, 0.0, 1.0, low_open=True)
        check_number("trades_beta", self.trades_beta, 0.0, 1e3)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("guard_images", self.guard_images, 0)
        check_int("guard_steps", self.guard_steps, 1)

    def alpha(self, eps: float) -> float:
        if self.step_size is not None:
            return self.step_size
        if self.method == "fgsm-rs":
            return 1.25 * eps
        if self.method == "n-fgsm":
            return eps
        return 2.5 * eps / self.attack_steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recipe:
    """A robust training fixed in every setting: ``train --recipe NAME`` reproduces it."""

    name: str
    description: str
    model: ModelSpec
    train: TrainConfig
    adversarial: AdversarialConfig


RECIPES: dict[str, Recipe] = {
    "robust": Recipe(
        "robust",
        "Wong et al.'s net at twice the width, PGD-5 adversarial training at ε = 0.3 (ramped over 2 epochs), Adam "
        "with a one-cycle learning rate, 12 epochs of batch 100",
        ModelSpec("wong", {"width": 2}),
        TrainConfig(epochs=12, batch_size=100, lr=2e-3, momentum=0.0, seed=1, log_interval=20),
        AdversarialConfig(method="pgd", eps=0.3, eps_ramp_epochs=2, attack_steps=5, optimizer="adam",
                          schedule="cyclic"),
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]


@dataclass(frozen=True)
class GuardCheck:
    """The guard's measure after one epoch."""

    epoch: int  # 1-based
    robust_accuracy: float  # percent of held-out training images PGD did not fool
    clean_accuracy: float
    eps: float  # the ε it attacked with (the training ε)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Guard:
    """Keeps the best epoch's weights by held-out PGD accuracy and names a collapse."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
                 batch_size: int = 500) -> None:
        self.images, self.labels = images, labels
        self.eps, self.steps, self.batch_size = eps, steps, batch_size
        self.history: list[GuardCheck] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0

    @property
    def best(self) -> GuardCheck | None:
        return max(self.history, key=lambda c: c.robust_accuracy, default=None)

    def check(self, net: nn.Module, epoch: int) -> str | None:
        """Measure ``net`` (one of ours, taking normalized input) after ``epoch``; keep its
        weights if best; a note when robustness collapsed (more than COLLAPSE_DROP points
        below the best)."""
        robust, clean = pgd_accuracy(PixelInput(net), self.images, self.labels, self.eps, steps=self.steps,
                                     batch_size=self.batch_size)
        best = self.best
        self.history.append(GuardCheck(epoch, robust, clean, self.eps))
        if best is None or robust > best.robust_accuracy:
            self.best_state = copy.deepcopy(net.state_dict())
            self.best_epoch = epoch
            return None
        if robust < best.robust_accuracy - COLLAPSE_DROP:
            return (f"robustness collapsed at epoch {epoch}: held-out PGD accuracy {robust:.1f}% after "
                    f"{best.robust_accuracy:.1f}% at epoch {best.epoch} (catastrophic overfitting); keeping epoch "
                    f"{best.epoch}'s weights")
        return None


def pgd_accuracy(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, eps: float, *, steps: int = 10,
                 restarts: int = 1, batch_size: int = 500) -> tuple[float, float]:
    """(robust, clean) accuracy in percent of ``model`` (taking pixels) in eval mode under
    PGD-``steps`` with step ε / 4; robust counts only images also classified correctly clean."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = torch.cat([model(pixels[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]
                               for i in range(0, len(pixels), batch_size)])
        robust = clean & pgd_correct(model, pixels, labels, eps, steps=steps, alpha=eps / 4, restarts=restarts,
                                     batch_size=batch_size) if eps > 0 else clean
    finally:
        model.train(was_training)
    n = max(len(pixels), 1)
    return 100.0 * int(robust.sum()) / n, 100.0 * int(clean.sum()) / n


@dataclass
class AdversarialResult:
    model: nn.Module  # the kept (best-guard) weights, taking normalized input, in eval mode
    metrics: dict[str, list[Any]]
    final: EvalResult  # clean test accuracy of the kept weights
    checkpoint: Path | None
    guard: list[GuardCheck] = field(default_factory=list)
    best_epoch: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # training time (guard and test evaluations included)


def lr_at(config: TrainConfig, adv: AdversarialConfig, step: int, total: int) -> float:
    """The learning rate of ``step`` (0-based) of ``total``: one-cycle or constant."""
    if adv.schedule == "constant":
        return config.lr
    t, peak = (step + 0.5) / total, 0.4
    return config.lr * (t / peak if t <= peak else (1 - t) / (1 - peak))


def eps_at(adv: AdversarialConfig, step: int, steps_per_epoch: int) -> float:
    ramp = adv.eps_ramp_epochs * steps_per_epoch
    return adv.eps if step >= ramp else adv.eps * (step + 1) / ramp


def _adversarial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv: AdversarialConfig,
                      eps: float) -> torch.Tensor:
    if eps == 0:  # natural training through the same loop (ε = 0 makes every adversary the identity)
        return F.cross_entropy(model(x), y)
    alpha = adv.alpha(eps)
    if adv.method == "trades":
        x_adv = trades_adversary(model, x, eps, steps=adv.attack_steps, alpha=alpha)
        logits = model(torch.cat([x, x_adv]))
        clean, noisy = logits[:len(x)], logits[len(x):]
        kl = F.kl_div(F.log_softmax(noisy, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
        return F.cross_entropy(clean, y) + adv.trades_beta * kl
    if adv.method == "fgsm-rs":
        x_adv = fgsm_rs(model, x, y, eps, alpha)
    elif adv.method == "n-fgsm":
        x_adv = n_fgsm(model, x, y, eps, alpha)
    else:
        x_adv = pgd(model, x, y, eps, steps=adv.attack_steps, alpha=alpha)
    return F.cross_entropy(model(x_adv), y)


def train_adversarial(spec: ModelSpec, config: TrainConfig, adv: AdversarialConfig, data: MNISTData, *,
                      device: torch.device, checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
                      recipe: str | None = None, progress: Callable[[TrainEvent], None] | None = None,
                      notes: Callable[[str], None] | None = None) -> AdversarialResult:
    """Adversarially train ``spec`` on ``data``'s training split less the guard's images.

    ``config`` gives the epochs (or steps), batch size, peak learning rate, SGD momentum and
    seed; ``adv`` the adversary and schedule. The checkpoint is written after every epoch;
    ``resume=True`` continues an interrupted run of the same settings. ``notes`` receives
    the guard's collapse messages as they happen.
    """
    if checkpoint is None:
        return _train(spec, config, adv, data, device=device, checkpoint=None, resume=False, recipe=recipe,
                      progress=progress, notes=notes)
    with exclusive(checkpoint, "checkpoint"):
        return _train(spec, config, adv, data, device=device, checkpoint=Path(checkpoint), resume=resume,
                      recipe=recipe, progress=progress, notes=notes)


def split_guard(data: MNISTData, adv: AdversarialConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, guard indices): a seeded random ``guard_images`` of the training split."""
    n = len(data.train_labels)
    if adv.guard_images >= n:
        raise ConfigError(f"guard_images must be below the {n:,} training images, got {adv.guard_images:,}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[adv.guard_images:].sort().values, order[:adv.guard_images].sort().values


def _pixels(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.unsqueeze(1).float().div(255).to(device).contiguous(memory_format=fast_layout(device))


def _train(spec: ModelSpec, config: TrainConfig, adv: AdversarialConfig, data: MNISTData, *, device: torch.device,
           checkpoint: Path | None, resume: bool, recipe: str | None,
           progress: Callable[[TrainEvent], None] | None, notes: Callable[[str], None] | None) -> AdversarialResult:
    import time

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    net = spec.build().to(device).to(memory_format=fast_layout(device))
    model = PixelInput(net)
    if adv.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    train_idx, guard_idx = split_guard(data, adv, config.seed)
    x_all = _pixels(data.train_images[train_idx], device)
    y_all = data.train_labels[train_idx].to(device)
    guard = Guard(_pixels(data.train_images[guard_idx], device), data.train_labels[guard_idx].to(device),
                  adv.eps, adv.guard_steps) if adv.guard_images else None
    test_loader = TensorLoader(data.test_images, data.test_labels, batch_size=config.test_batch_size,
                               shuffle=False, device=device)
    n = len(y_all)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = config.total_steps(n)
    metrics = empty_metrics()
    metrics.update({"train_clean_loss": [], "guard_robust_accuracy": [], "guard_clean_accuracy": []})
    said: list[str] = []
    epoch = step = 0
    if resume and checkpoint is not None and checkpoint.exists():
        epoch, step, metrics, said = _resume(checkpoint, spec, config, adv, data, net, optimizer, guard)

    while step < total:
        net.train()
        order = torch.randperm(n, generator=epoch_generator(config.seed, epoch)).to(device)
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            x, y = x_all[idx], y_all[idx]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, adv, step, total)
            eps = eps_at(adv, step, steps_per_epoch)
            loss = _adversarial_loss(model, x, y, adv, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            logged = step % config.log_interval == 0
            value = clean_value = None
            if logged:
                value = loss.item()
                if not math.isfinite(value):
                    raise DivergedError(f"adversarial training diverged at step {step:,} (loss {value}); lower the "
                                        f"learning rate (lr {config.lr})")
                with torch.no_grad():
                    clean_value = F.cross_entropy(model(x), y).item()
                metrics["train_step"].append(step)
                metrics["train_examples"].append(step * config.batch_size)
                metrics["train_loss"].append(value)
                metrics["train_clean_loss"].append(clean_value)
            step += 1
            if progress:
                progress(TrainEvent("step", epoch, step, total, value, steps_per_epoch=steps_per_epoch,
                                    clean_loss=clean_value))
            if step >= total:
                break
        epoch += 1
        note = guard.check(net, epoch) if guard is not None else None
        if guard is not None:
            metrics["guard_robust_accuracy"].append(guard.history[-1].robust_accuracy)
            metrics["guard_clean_accuracy"].append(guard.history[-1].clean_accuracy)
        if note:
            said.append(note)
            if notes:
                notes(note)
        result = evaluate(net, test_loader)
        for key, value_ in (("test_epoch", epoch), ("test_step", step), ("test_examples", step * config.batch_size),
                            ("test_loss", result.loss), ("test_accuracy", result.accuracy)):
            metrics[key].append(value_)
        if checkpoint is not None:
            _save(checkpoint, spec, config, adv, data, net, optimizer, metrics, epoch, step, total, guard, said,
                  recipe)
        if progress:
            progress(TrainEvent("epoch", epoch - 1, step, total, evaluation=result, steps_per_epoch=steps_per_epoch,
                                guard_accuracy=guard.history[-1].robust_accuracy if guard else None))

    if guard is not None and guard.best_state is not None:
        net.load_state_dict(guard.best_state)
    net.eval()
    final = evaluate(net, test_loader)
    return AdversarialResult(net, metrics, final, checkpoint, guard.history if guard else [],
                             guard.best_epoch if guard else epoch, said, time.perf_counter() - started)


def _save(path: Path, spec: ModelSpec, config: TrainConfig, adv: AdversarialConfig, data: MNISTData, net: nn.Module,
          optimizer: torch.optim.Optimizer, metrics: dict[str, list[Any]], epoch: int, step: int, total: int,
          guard: Guard | None, said: list[str], recipe: str | None) -> None:
    complete = step >= total
    kept = guard.best_state if guard is not None and guard.best_state is not None else net.state_dict()
    info: dict[str, Any] = {
        "config": adv.to_dict(), "recipe": recipe, "best_epoch": guard.best_epoch if guard else epoch,
        "guard": [c.to_dict() for c in guard.history] if guard else [], "notes": list(said),
    }
    if not complete:  # what resuming needs; a finished run keeps only the chosen weights
        info["resume"] = {"model_state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                          "optimizer_state": optimizer.state_dict(),
                          "rng_state": torch.get_rng_state()}
    save_checkpoint(path, model_spec=spec, train_config=config, dataset=data.info, model=net, optimizer=None,
                    metrics=metrics, epoch=epoch, step=step, complete=complete, adversarial=info,
                    model_state={k: v.detach().cpu() for k, v in kept.items()})


def _resume(path: Path, spec: ModelSpec, config: TrainConfig, adv: AdversarialConfig, data: MNISTData,
            net: nn.Module, optimizer: torch.optim.Optimizer,
            guard: Guard | None) -> tuple[int, int, dict[str, list[Any]], list[str]]:
    ckpt = load_checkpoint(path)
    info = ckpt.adversarial
    if (info is None or ckpt.model_spec != spec or ckpt.train_config != config
            or info.get("config") != adv.to_dict() or ckpt.dataset.sha256 != data.info.sha256):
        raise CheckpointError(f"{path} holds another training (network, settings, adversary or data); resume it "
                              "with the options it was trained with, or start a new run")
    state = info.get("resume")
    if ckpt.complete or state is None:
        raise CheckpointError(f"{path} is finished; nothing to resume (pass --overwrite to train it again)")
    net.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    torch.set_rng_state(state["rng_state"])
    if guard is not None:
        guard.history = [GuardCheck(**c) for c in info["guard"]]
        guard.best_epoch = int(info["best_epoch"])
        guard.best_state = ckpt.model_state
    return ckpt.epoch, ckpt.step, ckpt.metrics, list(info.get("notes", []))
