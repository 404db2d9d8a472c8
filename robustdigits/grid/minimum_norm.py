"""Minimum-norm L2 attacks from PyPI ``adv-lib`` 0.2.8 (Jérôme Rony's torch-native
implementations), as cells: FMN (Pintor et al. 2021), DDN (Rony et al. 2019) and C&W-L2
(Carlini & Wagner 2017) with a budget that converges.

Each runs on the model's device in batches, on pixels in [0, 1] with the normalization
inside the model, untargeted, and returns the adversarial pixels (the clean ones, or its
last iterate, where it found none: the cell scores what the model reads).

adv-lib is the optional extra ``minnorm``. It declares ``visdom`` (a plotting server its
attacks import for an optional callback), and visdom 0.2.4 is an sdist whose setup script
needs ``pkg_resources``, which setuptools 80 dropped: install with the build pinned,
``PIP_CONSTRAINT=.ci/build-constraints.txt pip install -e '.[minnorm]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.pixels import PixelInput
from ..errors import ConfigError

MIN_NORM_ATTACKS = ("fmn", "ddn", "cw-l2")
MINNORM_INSTALL = ("PIP_CONSTRAINT=.ci/build-constraints.txt pip install 'robustdigits[minnorm]' (PyPI adv-lib "
                   "0.2.8; its visdom dependency builds only with setuptools < 80, which the constraint pins)")


def adv_lib_attacks() -> Any:
    """``adv_lib.attacks``, or one line saying how to install it."""
    try:
        import adv_lib.attacks as attacks
    except ImportError as e:  # adv-lib itself, or visdom (imported by its attacks) when installed with --no-deps
        what = "is not installed" if (e.name or "adv_lib").startswith("adv_lib") else \
            f"lacks its dependency {e.name}"
        raise ConfigError(f"the minimum-norm attacks (fmn, ddn, cw-l2) need the adv-lib package, which {what}: "
                          f"{MINNORM_INSTALL}") from e
    return attacks


def minimum_norm(name: str, model: torch.nn.Module, x: np.ndarray, y: np.ndarray, p: dict[str, Any], *,
                 device: torch.device) -> np.ndarray:
    """adv-lib's ``name`` (fmn, ddn or cw-l2) untargeted at L2 on pixels ``x`` in [0, 1]
    against ``model`` (normalized input: the normalization is put inside), in batches of
    ``p["batch_size"]``: FMN (initial step ``p["alpha"]``) and DDN run ``p["steps"]`` steps,
    C&W ``p["search"]`` binary search steps of at most ``p["steps"]`` iterations (stopping
    early when the loss stalls) from constant ``p["const"]`` at learning rate
    ``p["learning_rate"]``."""
    attacks = adv_lib_attacks()
    if name not in MIN_NORM_ATTACKS:
        raise ConfigError(f"unknown minimum-norm attack {name!r}; choose from: {', '.join(MIN_NORM_ATTACKS)}")
    net = PixelInput(model).to(device).eval()
    out = []
    for start in range(0, len(x), p["batch_size"]):
        xb = torch.from_numpy(x[start:start + p["batch_size"]]).to(device)
        yb = torch.from_numpy(y[start:start + p["batch_size"]]).to(device)
        if name == "fmn":
            adv = attacks.fmn(net, xb, yb, norm=2, steps=p["steps"], α_init=p["alpha"])
        elif name == "ddn":
            adv = attacks.ddn(net, xb, yb, steps=p["steps"])
        else:
            adv = attacks.carlini_wagner_l2(net, xb, yb, binary_search_steps=p["search"],
                                            max_iterations=p["steps"], initial_const=p["const"],
                                            learning_rate=p["learning_rate"])
        out.append(adv.detach().cpu().numpy().astype(np.float32))
    return np.concatenate(out) if out else x.copy()
