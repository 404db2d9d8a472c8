"""Draw a digit, see what a model reads, and watch the study's attack turn it into another.

A page served by Python's own ``http.server`` on the loopback interface only (no extra
dependency, works offline): the page (``demo.html``) posts the canvas as grey levels;
the server centres it as MNIST digits are centred, answers the model's probabilities,
and runs :class:`attacks.RegularizedGradientDescent` (from the drawing, toward the
target) returning the iterates it passes through. Bad input (an empty canvas, an
oversized or malformed request) is a 4xx answer whose JSON ``error`` the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..art_bridge import make_classifier
from ..attacks.regularized_gd import RegularizedGradientDescent
from ..checks import unknown
from ..data.pixels import MNIST_MEAN, MNIST_STD
from ..errors import ConfigError
from ..targets import check_target, target_classes

MAX_SIDE = 560  # the canvas the page sends is at most this many pixels a side
MAX_STEPS = 2000
FRAMES = 40  # iterates sent back for the page to play


class BadInputError(ValueError):
    """A request the page should explain to the user (a 4xx or 503 with this message)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def centre_digit(image: np.ndarray) -> np.ndarray:
    """A drawn digit (H, W) grey levels in [0, 1], white on black, as MNIST's are: its
    bounding box scaled to fit 20×20 and placed in 28×28 by its centre of mass."""
    ink = image > 0.1
    if not ink.any():
        raise BadInputError("the canvas is empty: draw a digit first")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = 20 / max(box.shape)
    h, w = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    small = functional.interpolate(torch.from_numpy(box).float()[None, None], size=(h, w), mode="area")[0, 0].numpy()
    out = np.zeros((28, 28), dtype=np.float32)
    total = small.sum()
    cy = (small.sum(axis=1) * np.arange(h)).sum() / total
    cx = (small.sum(axis=0) * np.arange(w)).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - h))
    left = int(np.clip(round(14 - cx), 0, 28 - w))
    out[top:top + h, left:left + w] = small
    return np.clip(out, 0.0, 1.0)


def parse_image(payload: Mapping[str, Any]) -> np.ndarray:
    """The request's ``image`` (a square list of grey levels in [0, 1]) as (H, W) float32."""
    raw = payload.get("image")
    if not isinstance(raw, list) or not raw:
        raise BadInputError("the request has no image: draw a digit or drop an image file")
    try:
        a = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise BadInputError("the image must be a list of numbers (grey levels in [0, 1])") from e
    side = int(round(np.sqrt(a.size)))
    if a.ndim != 1 or side * side != a.size or not 28 <= side <= MAX_SIDE:
        raise BadInputError(f"the image must be a square of 28 to {MAX_SIDE} pixels a side, sent row by row")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise BadInputError("the image's grey levels must be numbers in [0, 1]")
    return a.reshape(side, side)


@dataclass
class Demo:
    """The models the page can choose from (name → model on ``device``)."""

    models: dict[str, nn.Module]
    device: torch.device

    def __post_init__(self) -> None:
        self.classifiers = {name: make_classifier(m, self.device) for name, m in self.models.items()}

    def classifier(self, payload: Mapping[str, Any]) -> Any:
        name = payload.get("model") or next(iter(self.models))
        if not isinstance(name, str) or name not in self.models:
            raise BadInputError(str(unknown("model", name, list(self.models))))
        return self.classifiers[name]

    @staticmethod
    def probabilities(classifier: Any, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10) of pixels ``x`` (…, 28, 28)."""
        logits = classifier.predict(np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28))
        return torch.from_numpy(logits).softmax(1).numpy()

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        classifier = self.classifier(payload)
        x = centre_digit(parse_image(payload))
        probs = self.probabilities(classifier, x)[0]
        return {"pixels": x.ravel().round(4).tolist(), "probs": probs.round(5).tolist(),
                "predicted": int(probs.argmax())}

    @staticmethod
    def target(choice: object, predicted: int, probs: np.ndarray) -> int:
        """The target class: a digit 0-9, or a mode the command line takes (``next-digit``,
        ``previous-digit``, ``random``, ``least-likely``, ``"0"``–``"9"``) applied to the
        model's reading of the drawing."""
        if isinstance(choice, int) and not isinstance(choice, bool) and 0 <= choice <= 9:
            return choice
        try:
            mode = check_target(choice)
        except ConfigError as e:
            raise BadInputError(f"{e} (or a digit as a number)") from None
        return int(target_classes(mode, np.array([predicted]), logits=np.log(probs[None] + 1e-12))[0])

    def attack(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        classifier = self.classifier(payload)
        x = centre_digit(parse_image(payload))[None, None]
        probs = self.probabilities(classifier, x)[0]
        predicted = int(probs.argmax())
        target = self.target(payload.get("target", "next-digit"), predicted, probs)
        steps = payload.get("steps", 500)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise BadInputError(f"steps must be a whole number from 1 to {MAX_STEPS}")
        attack = RegularizedGradientDescent.from_normalized(classifier, mean=MNIST_MEAN, std=MNIST_STD,
                                                            max_iter=steps, init="reference", early_stop=0.5)
        seen: list[tuple[int, np.ndarray]] = [(0, x[0, 0].copy())]
        attack.generate(x, y=np.array([target]), observe=lambda step, it: seen.append((step, it[0, 0].copy())))
        every = max(1, -(-len(seen) // FRAMES))
        chosen = seen[::every] + ([seen[-1]] if (len(seen) - 1) % every else [])
        images = np.stack([image for _, image in chosen])
        probs = self.probabilities(classifier, images)  # every frame in one batch
        l2 = np.linalg.norm((images - x[0, 0]).reshape(len(images), -1), axis=1)
        frames = [{"step": step, "pixels": image.ravel().round(4).tolist(), "target_prob": float(p[target]),
                   "predicted": int(p.argmax()), "l2": float(d)}
                  for (step, image), p, d in zip(chosen, probs, l2)]
        return {"target": target, "start_prediction": predicted, "frames": frames,
                "reached": frames[-1]["predicted"] == target, "steps": chosen[-1][0]}


def page() -> bytes:
    return resources.files("robustdigits.web").joinpath("demo.html").read_bytes()
