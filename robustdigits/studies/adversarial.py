"""Adversarial training: ART's trainers for PGD and untargeted attacks, ours for targeted ones,
and the robustness study's adversarially trained rows (trained once, cached as checkpoints).

ART's ``AdversarialTrainer`` refuses targeted attacks ("currently not implemented");
:func:`targeted_adversarial_fit` is the same procedure (per batch, a ``ratio`` of the
images, chosen at random, replaced by fresh adversarial examples of the current model,
then one SGD step on the mixed batch with the true labels) with targets (by default the
next digit) in place of the labels given to the attack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from art.defences.trainer import AdversarialTrainer, AdversarialTrainerMadryPGD

from ..art_bridge import make_classifier
from ..attacks.regularized_gd import RegularizedGradientDescent
from ..checkpoints import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from ..checks import check_int, check_number
from ..config import ModelSpec, TrainConfig
from ..data.datasets import MNISTData
from ..data.loader import TensorLoader
from ..data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from ..errors import CheckpointError, ConfigError
from ..evaluation import evaluate
from ..robust_training import get_recipe, train_adversarial
from ..targets import check_target, target_classes
from ..training import TrainEvent

if TYPE_CHECKING:  # the study's config; imported for types only (robustness imports this module)
    from .robustness import RobustnessConfig

ADVERSARIAL = ("adv-pgd", "adv-rgd-untargeted", "adv-rgd-next-digit", "adv-recipe")
ADVERSARIAL_LABELS = {
    "adv-pgd": "PGD adversarial training (ART AdversarialTrainerMadryPGD, ε = 0.3)",
    "adv-recipe": "the robust recipe ('train --recipe robust': wong net ×2, PGD-5 at ε = 0.3, 12 epochs)",
    "adv-rgd-untargeted": "trained against the study's attack, untargeted (ART AdversarialTrainer)",
    "adv-rgd-next-digit": "trained against the study's attack, next digit (our targeted trainer)",
}

def targeted_adversarial_fit(classifier: Any, attack: Any, x: np.ndarray, y: np.ndarray, *, nb_epochs: int,
                             batch_size: int = 64, ratio: float = 0.5, target: str = "next-digit", seed: int = 0,
                             progress: Callable[[int], None] | None = None) -> None:
    """Train ``classifier`` (an ART classifier with an optimizer) on ``x``, ``y`` (class
    indices) for ``nb_epochs``, replacing ``ratio`` of every batch by ``attack``'s targeted
    adversarial examples toward ``target`` (see :mod:`robustdigits.targets`). ``progress``
    is given 1 per batch.

    Refused, with the parameter named: an untargeted attack (use ART's
    ``AdversarialTrainer``), an attack on another estimator (it would attack a stale
    model), a ratio outside (0, 1], labels that are not class indices of ``x``.
    """
    if not getattr(attack, "targeted", False):
        raise ConfigError("attack must be targeted here; for untargeted attacks use ART's "
                          "art.defences.trainer.AdversarialTrainer")
    if attack.estimator is not classifier:
        raise ConfigError("attack must attack the classifier being trained (attack.estimator is another "
                          "estimator, whose examples would go stale as training changes the model)")
    check_number("ratio", ratio, 0.0, 1.0, low_open=True)
    check_int("nb_epochs", nb_epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_target(target)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise ConfigError(f"y must be {len(x)} class indices (N,), got shape {y.shape} and dtype {y.dtype}")
    rng = np.random.default_rng(seed)
    order = np.arange(len(x))
    for _ in range(nb_epochs):
        rng.shuffle(order)
        for start in range(0, len(x), batch_size):
            chosen = order[start:start + batch_size]
            x_batch, y_batch = x[chosen].copy(), y[chosen]
            adv = rng.choice(len(chosen), size=int(np.ceil(ratio * len(chosen))), replace=False)
            logits = classifier.predict(x_batch[adv]) if target == "least-likely" else None
            targets = target_classes(target, y_batch[adv], logits, seed=int(rng.integers(2**31)))
            x_batch[adv] = attack.generate(x_batch[adv], y=targets)
            classifier.fit(x_batch, y_batch, nb_epochs=1, batch_size=len(chosen), verbose=False)
            if progress:
                progress(1)


def adversarial_settings(row: str, config: RobustnessConfig) -> dict[str, Any]:
    """What else decides an adversarially trained row's weights, kept in its checkpoint."""
    if row == "adv-pgd":
        return {"eps": config.adv_eps, "pgd_steps": config.adv_pgd_steps}
    return {"rgd_steps": config.adv_rgd_steps, "targeted": row == "adv-rgd-next-digit"}


def adversarial_setup(row: str, config: RobustnessConfig, seed: int) -> tuple[ModelSpec, TrainConfig]:
    """The network and training settings of an adversarially trained row."""
    if row == "adv-recipe":
        recipe = get_recipe("robust")
        return recipe.model, dataclasses.replace(recipe.train, seed=seed)
    return ModelSpec("textbook"), TrainConfig(epochs=config.adv_epochs, momentum=0.5, seed=seed)


def adversarial_identity(row: str, config: RobustnessConfig, seed: int, data: MNISTData) -> dict[str, Any]:
    """Everything that determines a row's weights: its training cell's identity."""
    spec, train_config = adversarial_setup(row, config, seed)
    settings = get_recipe("robust").adversarial.to_dict() if row == "adv-recipe" else adversarial_settings(row, config)
    return {"kind": "adversarial", "row": row, "model": {"name": spec.name, "kwargs": dict(spec.kwargs)},
            "train": train_config.to_dict(), "settings": settings, "data": data.info.sha256}


def check_adversarial(row: str, path: Path, data: MNISTData, config: RobustnessConfig, seed: int = 1
                      ) -> Checkpoint | None:
    """The row's checkpoint at ``path`` (None where there is none); a file there that is
    another training is refused by name. An unfinished recipe checkpoint is returned as it
    is (training resumes it)."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    spec, train_config = adversarial_setup(row, config, seed)
    if row == "adv-recipe":
        info = ckpt.adversarial or {}
        if (info.get("recipe") != "robust" or info.get("config") != get_recipe("robust").adversarial.to_dict()
                or ckpt.model_spec != spec or ckpt.train_config != train_config
                or ckpt.dataset.sha256 != data.info.sha256):
            raise CheckpointError(f"{path} sits in the place of the adversarially trained row 'adv-recipe' but is not "
                                  "the robust recipe on this data; move it away and rerun 'robustdigits "
                                  "robustness' to train it")
        return ckpt
    stored = ckpt.metrics.get("adversarial_settings", [None])[0]
    if (ckpt.model_spec != spec or ckpt.train_config != train_config or ckpt.dataset.sha256 != data.info.sha256
            or ckpt.metrics.get("adversarial_training") != [ADVERSARIAL_LABELS[row]]
            or (stored is not None and stored != adversarial_settings(row, config))):
        raise CheckpointError(f"{path} sits in the place of the adversarially trained row {row!r} but was "
                              "trained with other settings, data or network; move it away and rerun "
                              "'robustdigits robustness' to train it")
    return ckpt


def adversarial_checkpoint(row: str, data: MNISTData, root: str | os.PathLike[str], config: RobustnessConfig,
                           *, device: torch.device, seed: int = 1,
                           announce: Callable[[str, Path], None] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> Checkpoint:
    """The row's network (cached in the checkpoint folder like the ablation's variants;
    trained first when missing or, for the recipe, unfinished)."""
    path = checkpoint_path(root, data.info, row, seed)
    ckpt = check_adversarial(row, path, data, config, seed)
    if ckpt is not None and ckpt.complete:
        return ckpt
    if announce:
        announce(row, path.absolute())
    train_adversarial_row(row, path, data, config, device=device, seed=seed, progress=progress)
    return load_checkpoint(path)


def train_adversarial_row(row: str, path: Path, data: MNISTData, config: RobustnessConfig, *,
                          device: torch.device, seed: int = 1,
                          progress: Callable[[int, int], None] | None = None) -> Checkpoint:
    """Train the row into ``path`` (the recipe resumes an unfinished checkpoint there)."""
    spec, train_config = adversarial_setup(row, config, seed)
    if row == "adv-recipe":
        recipe = get_recipe("robust")

        def step(event: TrainEvent) -> None:
            if progress and event.kind == "step":
                progress(event.step, event.total_steps)

        train_adversarial(recipe.model, train_config, recipe.adversarial, data, device=device, checkpoint=path,
                          resume=True, recipe="robust", progress=step)
        return load_checkpoint(path)
    settings = adversarial_settings(row, config)
    torch.manual_seed(seed)
    np.random.seed(seed)  # ART's trainers shuffle with NumPy's global generator
    model = spec.build().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=train_config.lr, momentum=train_config.momentum)
    classifier = make_classifier(model, device, optimizer)
    x, y = to_pixels(data.train_images), data.train_labels.numpy()
    batches = config.adv_epochs * -(-len(x) // train_config.batch_size)
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if progress:
            progress(done[0], batches)

    if row == "adv-pgd":
        trainer = AdversarialTrainerMadryPGD(classifier, nb_epochs=config.adv_epochs,
                                             batch_size=train_config.batch_size, eps=config.adv_eps,
                                             eps_step=2.5 * config.adv_eps / config.adv_pgd_steps,
                                             max_iter=config.adv_pgd_steps, num_random_init=1)
        _count_batches(classifier, tick)
        with _quiet_art():
            trainer.fit(x, y)
    else:
        attack = RegularizedGradientDescent.from_normalized(
            classifier, mean=MNIST_MEAN, std=MNIST_STD, learning_rate=1.0, max_iter=config.adv_rgd_steps,
            init="reference", targeted=row == "adv-rgd-next-digit", batch_size=train_config.batch_size)
        if row == "adv-rgd-untargeted":
            _count_batches(classifier, tick)
            with _quiet_art():
                AdversarialTrainer(classifier, attacks=attack, ratio=0.5).fit(x, y, nb_epochs=config.adv_epochs,
                                                                             batch_size=train_config.batch_size)
        else:
            targeted_adversarial_fit(classifier, attack, x, y, nb_epochs=config.adv_epochs,
                                     batch_size=train_config.batch_size, ratio=0.5, seed=seed, progress=tick)
    model.eval()
    loader = TensorLoader(data.test_images, data.test_labels, batch_size=1000, shuffle=False, device=device)
    final = evaluate(model, loader)
    metrics: dict[str, list[Any]] = {"test_epoch": [config.adv_epochs], "test_step": [batches],
                                     "test_accuracy": [final.accuracy], "test_loss": [final.loss],
                                     "adversarial_training": [ADVERSARIAL_LABELS[row]],
                                     "adversarial_settings": [settings]}
    save_checkpoint(path, model_spec=spec, train_config=train_config, dataset=data.info, model=model,
                    optimizer=optimizer, metrics=metrics, epoch=config.adv_epochs, step=batches, complete=True)
    return load_checkpoint(path)


@contextlib.contextmanager
def _quiet_art() -> Iterator[None]:
    """ART's trainers draw tqdm bars on stderr; the library stays silent (progress goes
    through our callback). Logging keeps its own stream, and exceptions still propagate."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _count_batches(classifier: Any, tick: Callable[[int], None]) -> None:
    """Progress for ART's trainers, which fit one batch at a time: count those fits."""
    fit = classifier.fit

    def counted(*args: Any, **kwargs: Any) -> Any:
        out = fit(*args, **kwargs)
        tick(1)
        return out

    classifier.fit = counted


# --- the report ------------------------------------------------------------------------------------------
