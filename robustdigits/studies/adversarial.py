"""Adversarial training: ART's trainers for PGD and untargeted attacks, ours for targeted ones.

ART's ``AdversarialTrainer`` refuses targeted attacks ("currently not implemented");
:func:`targeted_adversarial_fit` is the same procedure (per batch, a ``ratio`` of the
images, chosen at random, replaced by fresh adversarial examples of the current model,
then one SGD step on the mixed batch with the true labels) with targets (by default the
next digit) in place of the labels given to the attack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..checks import check_int, check_number
from ..errors import ConfigError
from ..targets import check_target, target_classes


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
