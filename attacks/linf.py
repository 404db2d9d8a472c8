"""Torch-native L∞ attacks for adversarial training and strong evaluation.

Every function takes a ``model`` that maps *pixels* in [0, 1] (N, 1, 28, 28) to logits
(wrap a network that takes normalized input with ``robustdigits.data.pixels.PixelInput``),
works on the tensors' own device in one batch, and returns adversarial pixels within
``eps`` of ``x`` in L∞ and inside [0, 1]. No NumPy round trip, no ART: these run inside
a training loop. The model's mode (train/eval) is the caller's: training attacks the
model as it trains (Wong et al.), evaluation attacks it in eval mode.

- :func:`fgsm_rs`: FGSM from a uniform random start (Wong, Rice & Kolter 2020, "Fast is
  better than free"), step ``alpha`` (their MNIST setting: 1.25 ε), projected back to the ball.
- :func:`n_fgsm`: noise-augmented FGSM (de Jorge et al. 2022): a random start from a
  wider ``noise`` ball, a step ``alpha``, and *no* projection back to ε (only to the pixel
  range), which avoids catastrophic overfitting without a guard.
- :func:`pgd`: projected gradient ascent on the cross-entropy (Madry et al. 2018) from
  random starts; with ``restarts > 1`` each image keeps its best restart (misclassified
  first, then highest loss).
- :func:`trades_adversary`: the inner maximization of TRADES (Zhang et al. 2019): PGD on
  the KL divergence from the clean prediction, started at a small Gaussian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_int, check_number


def _check(eps: float, alpha: float) -> None:
    check_number("eps", eps, 0.0, 1.0)
    check_number("alpha", alpha, 0.0, None, low_open=True)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def _grad(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # called under no_grad too (an evaluation loop)
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None) -> torch.Tensor:
    """One FGSM step of size ``alpha`` (default 1.25 ε) from a uniform start in the ε-ball."""
    alpha = 1.25 * eps if alpha is None else alpha
    _check(eps, alpha)
    start = _project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    return _project(start + alpha * _grad(model, start, y).sign(), x, eps).detach()


def n_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
           noise: float | None = None) -> torch.Tensor:
    """N-FGSM: start uniform in the ``noise`` ball (default 2 ε), one step ``alpha``
    (default ε), clipped only to the pixel range (the perturbation may exceed ε)."""
    alpha = eps if alpha is None else alpha
    noise = 2 * eps if noise is None else noise
    _check(eps, alpha)
    check_number("noise", noise, 0.0, None)
    start = (x + torch.empty_like(x).uniform_(-noise, noise)).clamp_(0.0, 1.0)
    return (start + alpha * _grad(model, start, y).sign()).clamp_(0.0, 1.0).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
        alpha: float | None = None, restarts: int = 1, random_start: bool = True) -> torch.Tensor:
    """PGD-``steps`` with ``restarts`` random starts; the returned image is, per image, the
    first restart that fools the model, else the one with the highest final loss. A restart
    after the first runs only on the images no earlier one fooled (the others' results
    cannot change), from the same random start a full restart would give them."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    _check(eps, alpha)
    check_int("steps", steps, 1)
    check_int("restarts", restarts, 1)
    best = x.clone()
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        noise = torch.empty_like(x).uniform_(-eps, eps)  # drawn for every image: the same starts as ever
        todo = torch.nonzero(~fooled).squeeze(1)
        xs, ys = x[todo], y[todo]
        x_adv = _project(xs + noise[todo], xs, eps) if random_start else xs.clone()
        for _ in range(steps):
            x_adv = _project(x_adv + alpha * _grad(model, x_adv, ys).sign(), xs, eps)
        with torch.no_grad():
            logits = model(x_adv)
            loss = F.cross_entropy(logits, ys, reduction="none")
            wrong = logits.argmax(1) != ys
            better = wrong | (loss > best_loss[todo])
            best[todo[better]] = x_adv[better]
            best_loss[todo[better]] = loss[better]
            fooled[todo[wrong]] = True
        if bool(fooled.all()):
            break
    return best.detach()


def trades_adversary(model: nn.Module, x: torch.Tensor, eps: float, *, steps: int = 10,
                     alpha: float | None = None) -> torch.Tensor:
    """TRADES' inner maximization: PGD on KL(f(x) ‖ f(x')) from x + 0.001·N(0, 1)."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    _check(eps, alpha)
    check_int("steps", steps, 1)
    with torch.no_grad():
        clean = F.softmax(model(x), dim=1)
    x_adv = _project(x + 0.001 * torch.randn_like(x), x, eps)
    for _ in range(steps):
        with torch.enable_grad():
            x_adv = x_adv.detach().requires_grad_(True)
            loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), clean, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = _project(x_adv + alpha * grad.sign(), x, eps)
    return x_adv.detach()


def pgd_fooled_by_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int,
                       alpha: float | None = None) -> torch.Tensor:
    """One PGD run from a random start; (steps, N) bool: image n was misclassified at some
    iterate up to step s + 1 (the best iterate so far, as an evaluation counts any
    adversarial point it finds). For convergence plots over steps and restarts."""
    alpha = eps / 4 if alpha is None else alpha
    _check(eps, alpha)
    check_int("steps", steps, 1)
    x_adv = _project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    out = []
    for _ in range(steps):
        x_adv = _project(x_adv + alpha * _grad(model, x_adv, y).sign(), x, eps)
        with torch.no_grad():
            fooled = fooled | (model(x_adv).argmax(1) != y)
        out.append(fooled.clone())
    return torch.stack(out)


def pgd_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int,
                alpha: float | None = None, restarts: int = 1, batch_size: int = 500) -> torch.Tensor:
    """(N,) bool: the model still classifies image n correctly after :func:`pgd`, run in
    batches of ``batch_size`` (the clean prediction is the caller's to check)."""
    check_int("batch_size", batch_size, 1)
    right = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        adv = pgd(model, xb, yb, eps, steps=steps, alpha=alpha, restarts=restarts)
        with torch.no_grad():
            right.append(model(adv).argmax(1) == yb)
    return torch.cat(right) if right else torch.zeros(0, dtype=torch.bool, device=x.device)
