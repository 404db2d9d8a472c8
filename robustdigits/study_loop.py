"""The study's own attack loop, as written: kept only as the reference our attack is
tested against (faithfulness, ``tests/test_attack.py``) and timed against
(``benchmarks/attack_throughput.py``). Not for use: see ``attacks.RegularizedGradientDescent``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def study_attack(
    model: nn.Module,
    x_ref: torch.Tensor,
    target: torch.Tensor,
    noise: torch.Tensor,
    *,
    eta: float = 0.1,
    lam: float = 0.05,
    steps: int = 10_000,
    log: Callable[[str], None] = lambda line: None,
) -> torch.Tensor:
    """One image (1, 1, 28, 28) in normalized units, no clipping. Like the study, it
    never detaches ``x``: each backward pass walks back through every earlier update,
    so a step costs more the longer the run (and parameter ``.grad`` accumulates)."""
    x = noise.clone().requires_grad_(True)
    for step in range(steps):
        x.retain_grad()
        loss = F.nll_loss(F.log_softmax(model(x), dim=1), target)
        log(f"step {step}: loss {loss.item():.6f}")
        loss.backward(retain_graph=True)
        assert x.grad is not None
        x = x - eta * (x.grad + lam * (x - x_ref))
    return x.detach()
