"""The study's regularized, targeted gradient descent on the input, as an ART attack."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from robustdigits.checks import check_choice, check_flag, check_int, check_number
from robustdigits.errors import ConfigError, DivergedError

from ._backends import Backend, EstimatorBackend, TorchBackend, small_batch_convolutions, uses_torch_path

logger = logging.getLogger(__name__)

INITS = ("noise", "reference")


class RegularizedGradientDescent(EvasionAttack):
    r"""Regularized targeted gradient descent on the input (the MNIST study's attack)::

        x ← x − η · ( ∇ₓ Σᵢ CE(f(xᵢ), tᵢ) + λ · (x − x_ref) )

    CE on the estimator's logits, summed over the batch so a sample's result never
    depends on its batch. ``targeted=False`` ascends the loss of the true (or
    predicted) label. The penalty is λ/2 · ‖x − x_ref‖². The update runs in the
    estimator's input space; :meth:`from_normalized` converts the study's η, λ and
    noise (given on z = (x − μ)/σ) for an estimator with ``preprocessing=(μ, σ)``.

    Keyword arguments (defaults are the study's): ``learning_rate`` η = 0.1,
    ``penalty`` λ = 0.05, ``max_iter`` = 10,000, ``init`` ``"noise"`` (N(``noise_mean``
    0.5, ``noise_std`` 0.3)) or ``"reference"``, ``seed`` (of the noise), ``clip`` = True
    (False: the study; the output is clipped anyway, as ART requires), ``early_stop``
    (stop a sample at this target probability), ``keep_best`` (return the successful
    iterate closest in L2 to ``x_ref``), ``targeted`` = True, ``batch_size`` = 128,
    ``verbose``.

    A ``PyTorchClassifier`` with all-PyTorch preprocessing runs the loop in torch on its
    device (no ``.grad`` left on the model, its mode restored); any other estimator goes
    through ``predict`` and ``loss_gradient``, its loss reduction (sum or mean) measured.

    ``early_stop`` and ``keep_best`` need ``init="reference"``: from noise, the starting
    point itself may already be read as the target, and it would be kept as a "success"
    that looks nothing like the reference.

    ``generate(x, y)``: ``x`` float (N, C, H, W) within ``clip_values``; ``y`` (N,) class
    indices or (N, classes) one-hot. Returns float32 (N, C, H, W). Afterwards
    ``success_step_`` (N,) holds, per sample, the step from which the model read the
    target at every later step of the sample's run (0 = the starting point; −1 if the
    last iterate is not adversarial), so noise that happens to be read as the target and
    then is not again never counts; ``steps_used_`` (N,) holds the gradient steps each
    sample ran (fewer than ``max_iter`` after an early stop).

    Example::

        attack = RegularizedGradientDescent(classifier, max_iter=500, init="reference")
        x_adv = attack.generate(x_test, y=(y_test + 1) % 10)
    """

    attack_params = EvasionAttack.attack_params + [
        "learning_rate", "penalty", "max_iter", "init", "noise_mean", "noise_std", "seed", "clip",
        "early_stop", "keep_best", "targeted", "batch_size", "verbose",
    ]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(self, estimator: Any, *, learning_rate: float = 0.1, penalty: float = 0.05, max_iter: int = 10_000,
                 init: str = "noise", noise_mean: float = 0.5, noise_std: float = 0.3, seed: int | None = None,
                 clip: bool = True, early_stop: float | None = None, keep_best: bool = False, targeted: bool = True,
                 batch_size: int = 128, verbose: bool = False) -> None:
        super().__init__(estimator=estimator)
        self.learning_rate, self.penalty, self.max_iter, self.init = learning_rate, penalty, max_iter, init
        self.noise_mean, self.noise_std, self.seed, self.clip = noise_mean, noise_std, seed, clip
        self.early_stop, self.keep_best, self._targeted = early_stop, keep_best, targeted
        self.batch_size, self.verbose = batch_size, verbose
        self.success_step_: np.ndarray = np.empty(0, dtype=np.int64)
        self.steps_used_: np.ndarray = np.empty(0, dtype=np.int64)
        self._check_params()

    @classmethod
    def from_normalized(cls, estimator: Any, *, mean: float, std: float, learning_rate: float = 0.1,
                        penalty: float = 0.05, noise_mean: float = 0.5, noise_std: float = 0.3,
                        **kwargs: Any) -> RegularizedGradientDescent:
        """The attack with η, λ and the noise given in normalized units z = (x − mean)/std,
        for an estimator that takes x and applies ``preprocessing=(mean, std)`` itself:
        x ← x − ησ²∇ₓL − ηλ(x − x_ref)."""
        return cls(estimator, learning_rate=learning_rate * std**2, penalty=penalty / std**2,
                   noise_mean=mean + std * noise_mean, noise_std=std * noise_std, **kwargs)

    def _check_params(self) -> None:
        super()._check_params()
        check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_number("penalty", self.penalty, 0.0)
        check_int("max_iter", self.max_iter, 0)
        check_choice("init", self.init, INITS)
        check_number("noise_mean", self.noise_mean)
        check_number("noise_std", self.noise_std, 0.0)
        if self.seed is not None:
            check_int("seed", self.seed, 0)
        if self.early_stop is not None:
            check_number("early_stop", self.early_stop, 0.0, 1.0, low_open=True)
        for name in ("clip", "keep_best", "targeted", "verbose"):
            check_flag(name, getattr(self, name))
        check_int("batch_size", self.batch_size, 1)
        if self.init == "noise" and (self.early_stop is not None or self.keep_best):
            raise ConfigError("early_stop and keep_best need init='reference' (--init reference): from noise the "
                              "starting point may already be read as the target and would count as a success")

    # ------------------------------------------------------------------ attack

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for the reference images ``x``; ``y`` as in the class doc
        (untargeted: ``None`` uses the predictions). Keyword ``progress``: a callable given
        the number of steps just run. Keyword ``observe``: a callable given ``(step,
        iterate)`` after every step, the iterate as NumPy (batch, C, H, W) (to watch the
        attack, as the demo does; it slows the loop). Other keywords are ignored, as in ART."""
        progress: Callable[[int], None] | None = kwargs.get("progress")
        observe: Callable[[int, np.ndarray], None] | None = kwargs.get("observe")
        x_ref = self._check_x(x)
        if not len(x_ref):  # nothing to attack: no prediction asked of the estimator either
            self.success_step_, self.steps_used_ = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
            return x_ref
        labels = self._labels(x_ref, y)
        x_init = self._initial(x_ref)
        backend: Backend = TorchBackend(self.estimator) if uses_torch_path(self.estimator) else \
            EstimatorBackend(self.estimator, probe=x_ref[:1])
        out = np.empty_like(x_ref)
        first = np.full(len(x_ref), -1, dtype=np.int64)
        used = np.zeros(len(x_ref), dtype=np.int64)
        with backend.session():
            for start in range(0, len(x_ref), self.batch_size):
                batch = slice(start, start + self.batch_size)
                if self.verbose:
                    logger.info("attacking samples %d-%d of %d", start, start + len(x_ref[batch]), len(x_ref))
                with small_batch_convolutions(backend.device, len(x_ref[batch])):
                    out[batch], first[batch], used[batch] = self._run(backend, x_init[batch], x_ref[batch],
                                                                      labels[batch], progress, observe)
        self.success_step_, self.steps_used_ = first, used
        if self.estimator.clip_values is not None:
            out = np.clip(out, *self.estimator.clip_values)
        return out.astype(np.float32)

    def _run(self, backend: Backend, x0: np.ndarray, x_ref: np.ndarray, labels: np.ndarray,
             progress: Callable[[int], None] | None,
             observe: Callable[[int, np.ndarray], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The one loop. While every sample is active the whole batch is updated in place
        (no gather/scatter); after an early stop only the active rows are."""
        x, ref, y = (backend.tensor(a) for a in (x0, x_ref, labels))
        tracker = _Tracker(ref, y, self)
        bounds = None
        if self.clip and self.estimator.clip_values is not None:
            bounds = tuple(backend.tensor(np.asarray(v, dtype=np.float32)) for v in self.estimator.clip_values)
        step = 0
        for step in range(self.max_iter + 1):
            every = self.early_stop is None or bool(tracker.active.all())
            idx = None if every else tracker.active.nonzero().squeeze(1)
            if idx is not None and len(idx) == 0:
                break
            xa, ya, refa = (x, y, ref) if idx is None else (x[idx], y[idx], ref[idx])
            logits, grad = backend.logits_and_grad(xa, ya, with_grad=step < self.max_iter)
            tracker.observe(step, idx, xa, logits)
            if grad is None:
                break
            new = xa - self.learning_rate * ((grad if self.targeted else -grad) + self.penalty * (xa - refa))
            # Checked every few steps and after the loop: a NaN stays NaN, and the check costs as much as the
            # bookkeeping of a step at small batches (an iterate clipped back from ±inf is finite again).
            if (step + 1) % _FINITE_EVERY == 0:
                self._check_finite(new, step + 1)
            if bounds is not None:
                new = torch.minimum(torch.maximum(new, bounds[0]), bounds[1])
            if self.early_stop is not None:  # samples that just stopped keep their iterate
                keep = tracker.active if idx is None else tracker.active[idx]
                new = torch.where(keep.view(-1, *[1] * (x.dim() - 1)), new, xa)
            if idx is None:
                x = new
            else:
                x[idx] = new
            if progress:
                progress(1)
            if observe:
                observe(step + 1, x.detach().cpu().numpy())
        if progress and step < self.max_iter:
            progress(self.max_iter - step)
        self._check_finite(x, step)  # however the loop ended (an early stop, say)
        return tracker.result(x).cpu().numpy(), tracker.first.cpu().numpy(), tracker.last.cpu().numpy()

    def _check_finite(self, x: torch.Tensor, step: int) -> None:
        if not bool(torch.isfinite(x).all()):
            raise DivergedError(f"the attack's iterates stopped being finite by step {step} (learning_rate "
                                f"{self.learning_rate:g}, penalty {self.penalty:g}, clip {self.clip}): lower "
                                "learning_rate or penalty (--eta, --lam), or keep the iterates clipped")

    # ------------------------------------------------------------------ inputs

    def _check_x(self, x: Any) -> np.ndarray:
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise ConfigError(f"x must hold floating-point pixels, got dtype {a.dtype}; scale uint8 images to "
                              "[0, 1] first (robustdigits.pixels.to_pixels)")
        shape = tuple(self.estimator.input_shape)
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape:
            raise ConfigError(f"x must have shape (N, {', '.join(map(str, shape))}), got {a.shape}")
        if not np.isfinite(a).all():
            raise ConfigError("x holds NaN or infinite values; pass finite pixels")
        clip = self.estimator.clip_values
        lo, hi = (None, None) if clip is None else (float(np.min(clip[0])), float(np.max(clip[1])))
        if lo is not None and hi is not None and len(a) and (a.min() < lo - 1e-6 or a.max() > hi + 1e-6):
            raise ConfigError(f"x holds values in [{a.min():g}, {a.max():g}], outside the estimator's clip_values "
                              f"({lo:g}, {hi:g}); scale it to that range (0-255 images: divide by 255)")
        return np.array(a, dtype=np.float32, copy=True)

    def _labels(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        classes = self.estimator.nb_classes
        if y is None:
            if self.targeted:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            return np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        a = np.asarray(y)
        if a.ndim == 2:
            if a.shape[1] != classes:
                raise ConfigError(f"y is one-hot with {a.shape[1]} columns; the estimator has {classes} classes")
            a = a.argmax(axis=1)
        if a.ndim != 1 or a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
            raise ConfigError(f"y must be class indices (N,) or one-hot (N, {classes}), got shape {np.shape(y)}")
        if len(a) != len(x):
            raise ConfigError(f"y has {len(a)} labels for {len(x)} samples")
        if len(a) and (a.min() < 0 or a.max() >= classes):
            raise ConfigError(f"y holds labels in [{a.min()}, {a.max()}]; classes are 0..{classes - 1}")
        return a.astype(np.int64)

    def _initial(self, x_ref: np.ndarray) -> np.ndarray:
        if self.init == "reference":
            return x_ref.copy()
        rng = np.random.default_rng(self.seed)
        with np.errstate(over="ignore"):
            start = rng.normal(self.noise_mean, self.noise_std, size=x_ref.shape).astype(np.float32)
        if not np.isfinite(start).all():
            raise ConfigError(f"noise_mean {self.noise_mean:g} and noise_std {self.noise_std:g} give starting points "
                              "beyond float32; use noise of the pixels' scale (defaults 0.5 and 0.3)")
        return start

    def _uses_torch_path(self) -> bool:
        return uses_torch_path(self.estimator)


_FINITE_EVERY = 25  # steps between checks that the iterates are finite


class _Tracker:
    """Per-sample bookkeeping: the step from which the target is held, the last step
    observed, the closest success, early stop. ``idx=None`` means every sample of the batch."""

    def __init__(self, x_ref: torch.Tensor, labels: torch.Tensor, attack: RegularizedGradientDescent) -> None:
        n = len(x_ref)
        self.ref, self.labels, self.attack = x_ref, labels, attack
        self.active = torch.ones(n, dtype=torch.bool, device=x_ref.device)
        self.first = torch.full((n,), -1, dtype=torch.int64, device=x_ref.device)
        self.last = torch.zeros((n,), dtype=torch.int64, device=x_ref.device)
        self.best = torch.zeros_like(x_ref) if attack.keep_best else x_ref
        self.best_dist = torch.full((n,), float("inf"), device=x_ref.device)

    def observe(self, step: int, idx: torch.Tensor | None, x: torch.Tensor, logits: torch.Tensor) -> None:
        at: Any = slice(None) if idx is None else idx
        probs = logits.softmax(1)
        target = self.labels[at]
        ok = probs.argmax(1) == target if self.attack.targeted else probs.argmax(1) != target
        held = self.first[at]  # start of the current run of adversarial steps, -1 when not adversarial now
        self.first[at] = torch.where(ok, torch.where(held < 0, step, held), -1)
        self.last[at] = step
        if self.attack.keep_best:
            dist = (x - self.ref[at]).flatten(1).norm(dim=1)
            better = ok & (dist < self.best_dist[at])
            self.best_dist[at] = torch.where(better, dist, self.best_dist[at])
            rows = better.nonzero().squeeze(1) if idx is None else idx[better]
            self.best[rows] = x[better]
        if self.attack.early_stop is not None:
            conf = probs.gather(1, target[:, None]).squeeze(1) if self.attack.targeted else probs.max(1).values
            stop = ok & (conf >= self.attack.early_stop)
            self.active[at] = self.active[at] & ~stop

    def result(self, x_last: torch.Tensor) -> torch.Tensor:
        if not self.attack.keep_best:
            return x_last
        found = torch.isfinite(self.best_dist).view(-1, *[1] * (x_last.dim() - 1))
        return torch.where(found, self.best, x_last)
