"""The study's three networks and a torchvision-style model registry.

Every model takes normalized images of shape (N, 1, 28, 28) and returns logits of
shape (N, 10). Ablations are constructor arguments, not copied classes::

    model = get_model("textbook", dropout=0.1)
    list_models()  # ['improved', 'lenet-relu', 'textbook', 'tutorial', 'wong']

Beside the study's three, two networks made for adversarial training: ``wong`` (Wong
et al. 2020's MNIST net) and ``lenet-relu`` (the textbook LeNet with ReLUs after its
first two convolutions, which the study's network lacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .checks import check_flag, check_int, check_number, unknown

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a model builder to the registry under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_REGISTRY)


def get_model(name: str, **config: Any) -> nn.Module:
    """Build the registered model ``name`` on the CPU with ``config`` as arguments."""
    if name not in _REGISTRY:
        raise unknown("model", name, list_models())
    return _REGISTRY[name](**config)


def _check_dropout(dropout: float) -> float:
    return check_number("dropout", dropout, 0.0, 1.0, high_open=True)


class TutorialNet(nn.Module):
    """The PyTorch MNIST example network (2 conv + 2 fc), 21,840 parameters.

    conv 1→10 (5×5), max-pool 2, relu; conv 10→20 (5×5), Dropout2d(p), max-pool 2,
    relu; flatten 320; fc 320→50, relu, dropout(p); fc 50→10. ``dropout`` is the
    example's built-in 0.5 by default.
    """

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        p = _check_dropout(dropout)
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(p)
        self.fc1 = nn.Linear(320, 50)
        self.fc_drop = nn.Dropout(p)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(torch.max_pool2d(self.conv1(x), 2))
        x = torch.relu(torch.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(self.fc_drop(x))


class LeNet(nn.Module):
    """The textbook all-convolutional LeNet (MatConvNet's), 431,080 parameters.

    conv 1→20 (5×5), max-pool 2; conv 20→50 (5×5), max-pool 2; conv 50→500 (4×4),
    relu; conv 500→10 (1×1); squeezed to (N, 10). As in the study there is no
    nonlinearity after conv1 and conv2.

    ``dropout=p`` puts a Dropout2d(p) after conv1 and after conv2 (before pooling).
    ``batchnorm=True`` is the study's improved network: a BatchNorm2d after conv1,
    conv2 and conv3, the layers followed by pooling or a relu. conv4 gets none: it
    produces the logits, nothing nonlinear follows it, and normalizing the logits
    per batch would make a sample's scores depend on its batch-mates in training and
    fix their scale, which cross-entropy needs to be free.
    """

    def __init__(self, dropout: float = 0.0, batchnorm: bool = False) -> None:
        super().__init__()
        p = _check_dropout(dropout)
        check_flag("batchnorm", batchnorm)

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()

        def drop() -> nn.Module:
            return nn.Dropout2d(p) if p > 0 else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(1, 20, kernel_size=5), norm(20), drop(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, kernel_size=5), norm(50), drop(), nn.MaxPool2d(2),
            nn.Conv2d(50, 500, kernel_size=4), norm(500), nn.ReLU(),
            nn.Conv2d(500, 10, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (N, 10, 1, 1) -> (N, 10)


@register_model("tutorial")
def tutorial(dropout: float = 0.5) -> nn.Module:
    return TutorialNet(dropout=dropout)


@register_model("textbook")
def textbook(dropout: float = 0.0) -> nn.Module:
    return LeNet(dropout=dropout, batchnorm=False)


@register_model("improved")
def improved(dropout: float = 0.0) -> nn.Module:
    return LeNet(dropout=dropout, batchnorm=True)


class WongNet(nn.Module):
    """Wong, Rice & Kolter (2020)'s MNIST network for fast adversarial training, 166,406
    parameters: conv 1→16 (4×4, stride 2, pad 1), relu; conv 16→32 (4×4, stride 2,
    pad 1), relu; flatten 1,568; fc 1,568→100, relu; fc 100→10. ``width`` multiplies the
    channels and the hidden units (``width=2``: 662,786 parameters)."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        w = check_int("width", width, 1, 16)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16 * w, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16 * w, 32 * w, kernel_size=4, stride=2, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Linear(32 * w * 7 * 7, 100 * w), nn.ReLU(), nn.Linear(100 * w, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class LeNetReLU(LeNet):
    """The textbook LeNet with a ReLU after conv1 and after conv2 (after their pooling),
    431,080 parameters, the same as the textbook net: without them conv1, its pool and
    conv2 compose to nearly one linear map, which limits what adversarial training can
    learn."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__(dropout=dropout, batchnorm=False)
        layers = list(self.features)
        # conv, norm, drop, pool | conv, norm, drop, pool | conv, norm, relu, conv: a relu after each pool
        self.features = nn.Sequential(*layers[:4], nn.ReLU(), *layers[4:8], nn.ReLU(), *layers[8:])


@register_model("wong")
def wong(width: int = 1) -> nn.Module:
    return WongNet(width=width)


@register_model("lenet-relu")
def lenet_relu(dropout: float = 0.0) -> nn.Module:
    return LeNetReLU(dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
