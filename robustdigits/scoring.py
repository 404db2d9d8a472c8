"""One way to score every attack (foolbox's criteria): success and perturbation size."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def is_adversarial(predictions: np.ndarray, labels: np.ndarray, targets: np.ndarray | None) -> np.ndarray:
    """Targeted: predicted as the target. Untargeted (``targets=None``): not predicted as
    the true label. Arrays (N,) of class indices; returns bool (N,)."""
    if targets is not None:
        return predictions == targets
    return predictions != labels


def already_target(clean_pred: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Images a targeted attack cannot claim: the model already reads them as the target
    (bool (N,); none for untargeted attacks, whose targets are -1). They are left out of its
    success rate and distances, and counted apart."""
    return (np.asarray(targets) >= 0) & (np.asarray(clean_pred) == np.asarray(targets))


def robust(clean_pred: np.ndarray, adv_pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Robust: classified correctly on the clean image and on the adversarial one (bool (N,))."""
    return (np.asarray(clean_pred) == np.asarray(labels)) & (np.asarray(adv_pred) == np.asarray(labels))


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample L2 and L∞ distance in pixel units ([0, 1] scale), each (N,)."""
    delta = (x_adv - x).reshape(len(x), -1).astype(np.float64)
    return np.linalg.norm(delta, axis=1), np.abs(delta).max(axis=1, initial=0.0)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate, in percent (Wilson 1927): honest at small n
    and at rates near 0 or 100, where the normal approximation is not."""
    if n == 0:
        return 0.0, 100.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else 100.0 * max(0.0, centre - half)  # exact ends, not 99.999…
    high = 100.0 if successes == n else 100.0 * min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Score:
    n: int  # images scored: all, less those left out
    success_rate: float  # percent of the n images
    ci_low: float  # 95% Wilson interval of success_rate, percent
    ci_high: float
    median_l2: float | None  # over successful samples; None when none succeeded
    mean_l2: float | None
    median_linf: float | None
    mean_linf: float | None
    left_out: int = 0  # targeted: images already read as the target (not in n)


def summarize(success: np.ndarray, l2: np.ndarray, linf: np.ndarray, left_out: np.ndarray | None = None) -> Score:
    """Success rate (with its Wilson interval) and distances over the successes, of the
    images not ``left_out`` (bool (N,): for a targeted attack, :func:`already_target`)."""
    keep = np.ones(len(success), dtype=bool) if left_out is None else ~np.asarray(left_out, dtype=bool)
    ok = np.asarray(success, dtype=bool)[keep]
    l2, linf = np.asarray(l2)[keep], np.asarray(linf)[keep]

    def stat(f: Callable[[np.ndarray], Any], a: np.ndarray) -> float | None:
        return float(f(a[ok])) if ok.any() else None

    low, high = wilson_interval(int(ok.sum()), len(ok))
    return Score(n=len(ok), success_rate=100.0 * float(ok.mean()) if len(ok) else 0.0, ci_low=low, ci_high=high,
                 median_l2=stat(np.median, l2), mean_l2=stat(np.mean, l2),
                 median_linf=stat(np.median, linf), mean_linf=stat(np.mean, linf),
                 left_out=int(len(keep) - keep.sum()))


@dataclass(frozen=True)
class PairedDifference:
    """``b − a`` over units measured under both (seeds on the same images), in the
    measures' units: the mean difference, its 95% t interval, and the effect size."""

    n: int
    mean: float
    ci_low: float | None  # None with fewer than 2 pairs
    ci_high: float | None
    sd: float | None  # sample std of the differences
    effect_size: float | None  # Cohen's d_z: mean / sd of the differences (None when sd is 0 or unknown)
    favours_b: int  # pairs where b > a

    @property
    def verdict(self) -> str:
        """What the interval supports, never "no effect" from overlap: an interval that
        includes 0 says the data cannot tell, not that there is no effect."""
        if self.ci_low is None or self.ci_high is None:
            return "too few seeds"
        if self.sd == 0:
            return "equal on every seed" if self.mean == 0 else ("b higher" if self.mean > 0 else "b lower")
        if self.ci_low > 0:
            return "b higher"
        if self.ci_high < 0:
            return "b lower"
        return f"undetermined (interval spans {self.ci_low:+.1f} to {self.ci_high:+.1f})"


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Paired ``b − a`` (``a[i]`` and ``b[i]`` measured with the same seed) with a Student-t
    interval on the mean difference: the seed is the unit, so its variance counts."""
    from scipy import stats

    if len(a) != len(b) or not a:
        raise ValueError(f"a and b must pair up one value per seed, got {len(a)} and {len(b)}")
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n, mean = len(d), float(d.mean())
    favours = int(np.sum(d > 0))
    if n < 2:
        return PairedDifference(n, mean, None, None, None, None, favours)
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(n, mean, mean - half, mean + half, sd, mean / sd if sd > 0 else None, favours)
