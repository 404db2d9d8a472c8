"""The study's nine trained variants and its published test accuracies."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import unknown
from .config import ModelSpec


@dataclass(frozen=True)
class Variant:
    name: str  # used on the command line and in file names
    label: str  # as the study's table words it
    model: ModelSpec
    momentum: float
    published_accuracy: float  # percent, the study's test accuracy on full MNIST


VARIANTS: tuple[Variant, ...] = (
    Variant("tutorial", "tutorial", ModelSpec("tutorial"), 0.5, 96.54),
    Variant("textbook", "textbook, plain", ModelSpec("textbook"), 0.0, 97.93),
    Variant("textbook-momentum", "textbook, momentum", ModelSpec("textbook"), 0.5, 98.42),
    Variant("textbook-dropout0.1", "textbook, dropout 0.1", ModelSpec("textbook", {"dropout": 0.1}), 0.0, 97.65),
    Variant("textbook-dropout0.5", "textbook, dropout 0.5", ModelSpec("textbook", {"dropout": 0.5}), 0.0, 96.10),
    Variant("textbook-momentum-dropout0.1", "textbook, momentum + dropout 0.1",
            ModelSpec("textbook", {"dropout": 0.1}), 0.5, 97.94),
    Variant("textbook-momentum-dropout0.5", "textbook, momentum + dropout 0.5",
            ModelSpec("textbook", {"dropout": 0.5}), 0.5, 97.42),
    Variant("improved", "improved", ModelSpec("improved"), 0.5, 98.76),
    Variant("improved-dropout", "improved + dropout", ModelSpec("improved", {"dropout": 0.1}), 0.5, 98.94),
)


def variant_names() -> list[str]:
    return [v.name for v in VARIANTS]


def get_variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise unknown("variant", name, variant_names())
