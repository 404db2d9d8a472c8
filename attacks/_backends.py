"""What an input-gradient attack needs from a model: logits and the gradient of the
summed loss with respect to the input. Two backends serve the same loop.

- :class:`TorchBackend`: a ``PyTorchClassifier`` whose preprocessing is all PyTorch; the
  whole loop stays in torch on its device, gradients by ``torch.autograd.grad`` (no
  ``.grad`` left on the model), eval mode for the attack and the caller's mode restored.
- :class:`EstimatorBackend`: any ART classifier with loss gradients, through ``predict``
  and ``loss_gradient``. ART's losses may be averaged or summed over the batch; the
  backend measures which (the gradient of a sample given twice is the single-sample
  gradient under a sum, half of it under a mean) and refuses an estimator that is neither.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from robustdigits.errors import ConfigError

# On the CPU, oneDNN's convolutions lose to PyTorch's native ones at tiny batches and win
# from 16 up (measured on the study's LeNet, 2-core x86_64: 1.7x faster without oneDNN at
# batch 10, 1.8x slower at batch 16), so attacks turn oneDNN off at batches this small.
_NATIVE_CONV_MAX_BATCH = 10


@contextlib.contextmanager
def small_batch_convolutions(device: torch.device, batch: int) -> Iterator[None]:
    """Native convolutions for tiny CPU batches (see _NATIVE_CONV_MAX_BATCH); restored after."""
    if device.type != "cpu" or batch > _NATIVE_CONV_MAX_BATCH:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns about TF32 on Intel GPUs here
        with torch.backends.mkldnn.flags(enabled=False):
            yield


class Backend(Protocol):
    device: torch.device

    def tensor(self, a: np.ndarray) -> torch.Tensor: ...

    def session(self) -> contextlib.AbstractContextManager[None]: ...

    def logits_and_grad(self, x: torch.Tensor, y: torch.Tensor, *, with_grad: bool
                        ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def uses_torch_path(estimator: Any) -> bool:
    from art.estimators.classification import PyTorchClassifier

    return isinstance(estimator, PyTorchClassifier) and bool(estimator.all_framework_preprocessing)


class TorchBackend:
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.device = torch.device(estimator.device)

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, copy=True)).to(self.device)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        model = self.estimator.model
        was_training = model.training
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)

    def logits_and_grad(self, x: torch.Tensor, y: torch.Tensor, *, with_grad: bool
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.set_grad_enabled(with_grad):
            xg = x.detach().requires_grad_(with_grad)
            z, _ = self.estimator._apply_preprocessing(xg, y=None, fit=False, no_grad=not with_grad)
            logits = self.estimator.model(z)
            if not with_grad:
                return logits.detach(), None
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
        return logits.detach(), grad


class EstimatorBackend:
    device = torch.device("cpu")

    def __init__(self, estimator: Any, *, probe: np.ndarray) -> None:
        self.estimator = estimator
        self.eye = np.eye(estimator.nb_classes, dtype=np.float32)
        self.summed = self._measure_reduction(probe) if len(probe) else True

    def tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, copy=True))

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def logits_and_grad(self, x: torch.Tensor, y: torch.Tensor, *, with_grad: bool
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        xn = x.numpy()
        scores = np.asarray(self.estimator.predict(xn, batch_size=len(xn)), dtype=np.float32)
        logits = _as_logits(torch.from_numpy(scores))
        if not with_grad:
            return logits, None
        grad = np.asarray(self.estimator.loss_gradient(xn, self.eye[y.numpy()]), dtype=np.float32)
        return logits, torch.from_numpy(grad if self.summed else grad * len(xn))

    def _measure_reduction(self, probe: np.ndarray) -> bool:
        """True for a summed loss, False for a mean (the gradient is then scaled by the batch)."""
        twice = np.concatenate([probe[:1], probe[:1]])
        for label in range(self.estimator.nb_classes):
            one = np.asarray(self.estimator.loss_gradient(probe[:1], self.eye[[label]]), dtype=np.float64)
            if np.abs(one).max() < 1e-12:
                continue  # no signal for this label: try another
            pair = np.asarray(self.estimator.loss_gradient(twice, self.eye[[label, label]]), dtype=np.float64)
            if np.allclose(pair[0], one, rtol=1e-3, atol=1e-9):
                return True
            if np.allclose(pair[0], one / 2, rtol=1e-3, atol=1e-9):
                return False
            break
        raise ConfigError(f"{type(self.estimator).__name__}'s loss_gradient is neither a sum nor a mean over the batch "
                          "(measured); give it a loss with reduction 'sum' or 'mean'")


def _as_logits(scores: torch.Tensor) -> torch.Tensor:
    """Estimators may predict probabilities or logits; return something whose softmax
    is the class probabilities."""
    is_prob = bool((scores >= 0).all() and torch.allclose(scores.sum(1), torch.ones(len(scores)), atol=1e-4))
    return scores.clamp_min(1e-12).log() if is_prob else scores
