"""Argument checks shared by every config and the attack: one style, one message shape.

``TypeError`` (as :class:`ConfigTypeError`) for a wrong type, ``ValueError`` (as
:class:`ConfigError`) for a wrong value; a ``bool`` is not an int; non-finite numbers
are refused. Each message starts with the parameter's name.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence

import numpy as np

from .errors import ConfigError, ConfigTypeError


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigTypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_number(name: str, value: object, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in [low, high] (or with open ends)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigTypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        if high is None:
            want = f"> {low}" if low_open else f">= {low}"
        elif low is None:
            want = f"< {high}" if high_open else f"<= {high}"
        else:
            want = f"in {left}{low}, {high}{right}"
        raise ConfigError(f"{name} must be {want}, got {value}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigTypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{name} must be a str, one of {', '.join(choices)}, got {value!r}")
    if value not in choices:
        raise unknown(name, value, choices)
    return value


def unknown(kind: str, value: object, choices: Sequence[str], more: str = "") -> ConfigError:
    """The one message for a name that is no choice: ``unknown variant 'textbok' (did you
    mean 'textbook'?); choose one of: …`` (``more`` is appended to the list)."""
    return ConfigError(f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose one of: "
                       f"{', '.join(choices)}{more}")


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'textbook'?)`` for a close typo of one of ``choices``, else ``""``."""
    if not isinstance(value, str):
        return ""
    choices = list(choices)
    close = [c for c in choices if value and c.startswith(value)][:1] or \
        difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
