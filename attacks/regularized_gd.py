"""The study's regularized, targeted gradient descent on the input, as an ART attack."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.attacks.attack import EvasionAttack
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from art.utils import check_and_transform_label_format

logger = logging.getLogger(__name__)

INITS = ("noise", "reference")
# On the CPU, oneDNN's convolutions lose to PyTorch's native ones at tiny batches and win
# from 16 up (measured on the study's LeNet, 2-core x86_64: 1.7x faster without oneDNN at
# batch 10, 1.8x slower at batch 16), so the torch path turns oneDNN off at batches this small.
_NATIVE_CONV_MAX_BATCH = 10


class RegularizedGradientDescent(EvasionAttack):
    r"""Regularized targeted gradient descent on the input (the MNIST study's attack).

    Starting from noise (or from the reference image), every step moves the input
    toward the target class while a quadratic penalty keeps it near the reference::

        x ← x − η · ( ∇ₓ Σᵢ CE(f(xᵢ), tᵢ) + λ · (x − x_ref) )

    with CE the cross-entropy on the estimator's logits (the study's NLL of
    log-softmax), summed over the batch so that a sample's result never depends on
    its batch. ``targeted=False`` ascends the loss of the true (or predicted) label
    instead: ``x ← x + η ∇ₓ CE(f(x), y) − ηλ(x − x_ref)``. Distance: the penalty is
    the squared L2 distance to ``x_ref``, λ/2 · ‖x − x_ref‖².

    The update runs in the estimator's input space. For an estimator that takes
    pixels x ∈ [0, 1] and normalizes them itself (``preprocessing=(μ, σ)``), the
    study's update on z = (x − μ)/σ is, in pixels, x ← x − ησ²∇ₓL − ηλ(x − x_ref):
    :meth:`from_normalized` converts the study's η, λ and noise to that space.

    Arguments (all keyword-only after ``estimator``):
        estimator: an ART classifier with loss gradients. A ``PyTorchClassifier``
            whose preprocessing is all PyTorch runs the whole loop in torch on its
            device; any other goes through ``estimator.loss_gradient``.
        learning_rate (η): step size. Default 0.1.
        penalty (λ): weight of the pull toward ``x_ref``. Default 0.05.
        max_iter: number of steps. Default 10,000.
        init: ``"noise"`` (the study's: N(noise_mean, noise_std) of the input's shape)
            or ``"reference"`` (start from ``x_ref``). Default ``"noise"``.
        noise_mean, noise_std: of the initial noise. Default 0.5 and 0.3.
        seed: seed of the initial noise (``None``: fresh entropy). Default ``None``.
        clip: clip every iterate to the estimator's ``clip_values``. Default ``True``;
            ``False`` reproduces the study (the returned array is clipped anyway, as
            ART requires).
        early_stop: stop a sample once it is classified as its target with at least
            this probability (untargeted: misclassified with this top probability).
            ``None`` (default) runs all ``max_iter`` steps.
        keep_best: return, per sample, the successful iterate closest (L2) to ``x_ref``;
            samples that never succeed return their last iterate. Default ``False``.
        targeted: default ``True``; ``y`` are then the target classes.
        batch_size: samples attacked at once. Default 128.
        verbose: log each batch. Default ``False``.

    Shapes: ``generate(x, y)`` takes ``x`` (N, C, H, W) reference images and ``y``
    (N,) indices or (N, classes) one-hot targets; returns float32 (N, C, H, W).
    After a call, ``success_step_`` (N,) holds the first step at which each sample
    was adversarial (−1: never).

    Example::

        classifier = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                       nb_classes=10, clip_values=(0, 1), preprocessing=(0.1307, 0.3081))
        attack = RegularizedGradientDescent(classifier, max_iter=500, init="reference")
        x_adv = attack.generate(x_test, y=(y_test + 1) % 10)
    """

    attack_params = EvasionAttack.attack_params + [
        "learning_rate", "penalty", "max_iter", "init", "noise_mean", "noise_std", "seed", "clip",
        "early_stop", "keep_best", "targeted", "batch_size", "verbose",
    ]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(
        self,
        estimator: Any,
        *,
        learning_rate: float = 0.1,
        penalty: float = 0.05,
        max_iter: int = 10_000,
        init: str = "noise",
        noise_mean: float = 0.5,
        noise_std: float = 0.3,
        seed: int | None = None,
        clip: bool = True,
        early_stop: float | None = None,
        keep_best: bool = False,
        targeted: bool = True,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator=estimator)
        self.learning_rate = learning_rate
        self.penalty = penalty
        self.max_iter = max_iter
        self.init = init
        self.noise_mean = noise_mean
        self.noise_std = noise_std
        self.seed = seed
        self.clip = clip
        self.early_stop = early_stop
        self.keep_best = keep_best
        self._targeted = targeted
        self.batch_size = batch_size
        self.verbose = verbose
        self.success_step_: np.ndarray = np.empty(0, dtype=np.int64)
        self._check_params()

    @classmethod
    def from_normalized(cls, estimator: Any, *, mean: float, std: float, learning_rate: float = 0.1,
                        penalty: float = 0.05, noise_mean: float = 0.5, noise_std: float = 0.3,
                        **kwargs: Any) -> RegularizedGradientDescent:
        """The attack with η, λ and the noise given in normalized units z = (x − mean)/std,
        for an estimator that takes x and applies ``preprocessing=(mean, std)`` itself."""
        return cls(estimator, learning_rate=learning_rate * std**2, penalty=penalty / std**2,
                   noise_mean=mean + std * noise_mean, noise_std=std * noise_std, **kwargs)

    # ------------------------------------------------------------------ validation

    def _check_params(self) -> None:
        super()._check_params()
        _number("learning_rate", self.learning_rate, positive=True)
        _number("penalty", self.penalty)
        _integer("max_iter", self.max_iter, minimum=0)
        if not isinstance(self.init, str):
            raise TypeError(f"init must be a str, one of {INITS}, got {self.init!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        _number("noise_mean", self.noise_mean, signed=True)
        _number("noise_std", self.noise_std)
        if self.seed is not None:
            _integer("seed", self.seed, minimum=0)
        _flag("clip", self.clip)
        if self.early_stop is not None:
            _number("early_stop", self.early_stop, positive=True)
            if self.early_stop > 1:
                raise ValueError(f"early_stop must be a probability in (0, 1] or None, got {self.early_stop}")
        _flag("keep_best", self.keep_best)
        _flag("targeted", self.targeted)
        _integer("batch_size", self.batch_size, minimum=1)
        _flag("verbose", self.verbose)

    # ------------------------------------------------------------------ attack

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Adversarial examples for the reference images ``x``.

        ``y``: target classes (targeted) or true labels (untargeted; predictions are
        used when ``None``). Keyword ``progress``: a callable given the number of
        steps just run, for progress bars. Other keywords are ignored, as in ART.
        """
        progress: Callable[[int], None] | None = kwargs.get("progress")
        x_ref = np.array(x, dtype=np.float32, copy=True)
        labels = self._labels(x_ref, y)
        x_init = self._initial(x_ref)
        run = self._run_torch if self._uses_torch_path() else self._run_estimator
        device = getattr(self.estimator, "device", torch.device("cpu"))
        out = np.empty_like(x_ref)
        first = np.full(len(x_ref), -1, dtype=np.int64)
        for start in range(0, len(x_ref), self.batch_size):
            batch = slice(start, start + self.batch_size)
            if self.verbose:
                end = min(start + self.batch_size, len(x_ref))
                logger.info("attacking samples %d-%d of %d", start, end, len(x_ref))
            with _small_batch_convolutions(device, len(x_ref[batch])):
                out[batch], first[batch] = run(x_init[batch], x_ref[batch], labels[batch], progress)
        self.success_step_ = first
        if self.estimator.clip_values is not None:
            out = np.clip(out, *self.estimator.clip_values)
        return out.astype(np.float32)

    def _labels(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        if y is None:
            if self.targeted:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            return np.argmax(self.estimator.predict(x, batch_size=self.batch_size), axis=1)
        labels = check_and_transform_label_format(np.asarray(y), nb_classes=self.estimator.nb_classes)
        if len(labels) != len(x):
            raise ValueError(f"y has {len(labels)} labels for {len(x)} samples")
        return np.argmax(labels, axis=1)

    def _initial(self, x_ref: np.ndarray) -> np.ndarray:
        if self.init == "reference":
            return x_ref.copy()
        rng = np.random.default_rng(self.seed)
        return rng.normal(self.noise_mean, self.noise_std, size=x_ref.shape).astype(np.float32)

    def _uses_torch_path(self) -> bool:
        from art.estimators.classification import PyTorchClassifier

        return isinstance(self.estimator, PyTorchClassifier) and bool(self.estimator.all_framework_preprocessing)

    def _bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The estimator's clip_values as tensors, made once per batch; None when not clipping."""
        if not self.clip or self.estimator.clip_values is None:
            return None
        lo, hi = (torch.as_tensor(np.asarray(v), dtype=like.dtype, device=like.device)
                  for v in self.estimator.clip_values)
        return lo, hi

    def _step(self, x: torch.Tensor, x_ref: torch.Tensor, grad: torch.Tensor,
              bounds: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        direction = grad if self.targeted else -grad
        x = x - self.learning_rate * (direction + self.penalty * (x - x_ref))
        return x if bounds is None else torch.minimum(torch.maximum(x, bounds[0]), bounds[1])

    def _run_torch(self, x0: np.ndarray, x_ref: np.ndarray, labels: np.ndarray,
                   progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
        """The whole loop on the estimator's device: gradients by autograd.grad, so no
        ``.grad`` is left on the model; its train/eval mode is restored."""
        model = self.estimator.model
        was_training = model.training
        model.eval()
        try:
            return self._torch_loop(x0, x_ref, labels, progress)
        finally:
            model.train(was_training)

    def _torch_loop(self, x0: np.ndarray, x_ref: np.ndarray, labels: np.ndarray,
                    progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
        est = self.estimator
        x = torch.from_numpy(x0).to(est.device, copy=True)
        ref = torch.from_numpy(x_ref).to(est.device)
        y = torch.from_numpy(labels).to(est.device)
        tracker = _Tracker(ref, y, self)
        bounds = self._bounds(x)
        for step in range(self.max_iter + 1):
            idx = tracker.active.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            xa = x[idx].requires_grad_(True)
            x_pre, _ = est._apply_preprocessing(xa, y=None, fit=False, no_grad=False)
            logits = est.model(x_pre)
            tracker.observe(step, idx, xa.detach(), logits.detach())
            if step == self.max_iter:
                break
            loss = F.cross_entropy(logits, y[idx], reduction="sum")
            (grad,) = torch.autograd.grad(loss, xa)
            keep = tracker.active[idx].view(-1, *[1] * (x.dim() - 1))
            x[idx] = torch.where(keep, self._step(xa.detach(), ref[idx], grad, bounds), xa.detach())
            if progress:
                progress(1)
        if progress and step < self.max_iter:
            progress(self.max_iter - step)
        return tracker.result(x).cpu().numpy(), tracker.first.cpu().numpy()

    def _run_estimator(self, x0: np.ndarray, x_ref: np.ndarray, labels: np.ndarray,
                       progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray]:
        """The same loop through ``estimator.predict`` and ``estimator.loss_gradient``."""
        est = self.estimator
        # ART's losses are averaged over the batch: scale back to a sum.
        summed = getattr(getattr(est, "_loss", None), "reduction", "mean") == "sum"
        x = torch.from_numpy(x0.copy())
        ref = torch.from_numpy(x_ref)
        y = torch.from_numpy(labels)
        one_hot = np.eye(est.nb_classes, dtype=np.float32)[labels]
        tracker = _Tracker(ref, y, self)
        bounds = self._bounds(x)
        for step in range(self.max_iter + 1):
            idx = tracker.active.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            xa = x[idx]
            scores = torch.from_numpy(np.asarray(est.predict(xa.numpy(), batch_size=len(idx)), dtype=np.float32))
            tracker.observe(step, idx, xa, _as_logits(scores))
            if step == self.max_iter:
                break
            grad = torch.from_numpy(np.asarray(est.loss_gradient(xa.numpy(), one_hot[idx.numpy()]), dtype=np.float32))
            grad = grad if summed else grad * len(idx)
            keep = tracker.active[idx].view(-1, *[1] * (x.dim() - 1))
            x[idx] = torch.where(keep, self._step(xa, ref[idx], grad, bounds), xa)
            if progress:
                progress(1)
        if progress and step < self.max_iter:
            progress(self.max_iter - step)
        return tracker.result(x).numpy(), tracker.first.numpy()


@contextlib.contextmanager
def _small_batch_convolutions(device: torch.device, batch: int) -> Iterator[None]:
    """Native convolutions for tiny CPU batches (see _NATIVE_CONV_MAX_BATCH); restored after."""
    if device.type != "cpu" or batch > _NATIVE_CONV_MAX_BATCH:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about TF32 on Intel GPUs here
        with torch.backends.mkldnn.flags(enabled=False):
            yield


class _Tracker:
    """Per-sample bookkeeping: first successful step, closest success, early stop."""

    def __init__(self, x_ref: torch.Tensor, labels: torch.Tensor, attack: RegularizedGradientDescent) -> None:
        n = len(x_ref)
        self.ref, self.labels, self.attack = x_ref, labels, attack
        self.active = torch.ones(n, dtype=torch.bool, device=x_ref.device)
        self.first = torch.full((n,), -1, dtype=torch.int64, device=x_ref.device)
        self.best = torch.zeros_like(x_ref)
        self.best_dist = torch.full((n,), float("inf"), device=x_ref.device)

    def observe(self, step: int, idx: torch.Tensor, x: torch.Tensor, logits: torch.Tensor) -> None:
        probs = logits.softmax(1)
        pred = probs.argmax(1)
        target = self.labels[idx]
        ok = pred == target if self.attack.targeted else pred != target
        self.first[idx] = torch.where(ok & (self.first[idx] < 0), step, self.first[idx])
        if self.attack.keep_best:
            dist = (x - self.ref[idx]).flatten(1).norm(dim=1)
            better = ok & (dist < self.best_dist[idx])
            self.best_dist[idx] = torch.where(better, dist, self.best_dist[idx])
            self.best[idx[better]] = x[better]
        if self.attack.early_stop is not None:
            conf = probs.gather(1, target[:, None]).squeeze(1) if self.attack.targeted else probs.max(1).values
            self.active[idx[ok & (conf >= self.attack.early_stop)]] = False

    def result(self, x_last: torch.Tensor) -> torch.Tensor:
        if not self.attack.keep_best:
            return x_last
        found = torch.isfinite(self.best_dist).view(-1, *[1] * (x_last.dim() - 1))
        return torch.where(found, self.best, x_last)


def _as_logits(scores: torch.Tensor) -> torch.Tensor:
    """Estimators may predict probabilities or logits; return something whose softmax
    is the class probabilities."""
    is_prob = bool((scores >= 0).all() and torch.allclose(scores.sum(1), torch.ones(len(scores)), atol=1e-4))
    return scores.clamp_min(1e-12).log() if is_prob else scores


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def _integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _number(name: str, value: object, positive: bool = False, signed: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if not signed and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
