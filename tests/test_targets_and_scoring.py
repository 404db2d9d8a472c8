"""Target mapping and the shared scoring of attacks."""

from __future__ import annotations

import numpy as np
import pytest

from robustdigits.grid.runner import stratified_subset
from robustdigits.scoring import already_target, is_adversarial, perturbation_norms, robust, summarize, wilson_interval
from robustdigits.targets import target_classes

LABELS = np.arange(10)


def test_next_and_previous_digit():
    assert target_classes("next-digit", LABELS).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert target_classes("previous-digit", LABELS).tolist() == [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_random_is_seeded_and_never_the_true_class():
    labels = np.repeat(LABELS, 100)
    a, b = target_classes("random", labels, seed=3), target_classes("random", labels, seed=3)
    assert np.array_equal(a, b) and not np.any(a == labels)
    assert set(a.tolist()) == set(range(10))
    assert not np.array_equal(a, target_classes("random", labels, seed=4))


def test_least_likely_uses_the_logits():
    logits = np.eye(10)[[3, 4]] * -5.0
    assert target_classes("least-likely", np.array([0, 1]), logits).tolist() == [3, 4]
    with pytest.raises(ValueError, match="needs the model's logits"):
        target_classes("least-likely", LABELS)


def test_fixed_digit_and_unknown_mode():
    assert target_classes("7", LABELS[:3]).tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match=r"unknown target 'eleven'; choose one of: next-digit"):
        target_classes("eleven", LABELS)
    with pytest.raises(ValueError, match="unknown target '12'"):
        target_classes("12", LABELS)


def test_is_adversarial_targeted_and_untargeted():
    pred, labels, targets = np.array([1, 2, 3]), np.array([0, 2, 2]), np.array([1, 3, 3])
    assert is_adversarial(pred, labels, targets).tolist() == [True, False, True]
    assert is_adversarial(pred, labels, None).tolist() == [True, False, True]
    assert is_adversarial(np.array([2]), np.array([1]), np.array([3])).tolist() == [False]


def test_norms_and_summary_count_only_successes():
    x = np.zeros((3, 1, 2, 2), np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0] = 0.3
    adv[0, 0, 1, 1] = 0.4
    adv[1] = 0.1
    l2, linf = perturbation_norms(x, adv)
    np.testing.assert_allclose(l2, [0.5, 0.2, 0.0], atol=1e-7)
    np.testing.assert_allclose(linf, [0.4, 0.1, 0.0], atol=1e-7)
    score = summarize(np.array([True, True, False]), l2, linf)
    assert score.success_rate == pytest.approx(200 / 3)
    assert score.median_l2 == pytest.approx(0.35) and score.mean_linf == pytest.approx(0.25)
    assert summarize(np.array([False]), l2[:1], linf[:1]).median_l2 is None


def test_a_targeted_success_the_model_did_not_make_is_left_out_and_counted_apart():
    # image 0 is already read as its target (1): its "success" is left out of n, the rate and the distances
    labels, targets = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])
    clean, adv = np.array([1, 1, 2, 3]), np.array([1, 2, 2, 4])
    left = already_target(clean, targets)
    assert left.tolist() == [True, False, False, False]
    assert not already_target(clean, np.full(4, -1)).any()  # untargeted attacks leave nothing out
    score = summarize(is_adversarial(adv, labels, targets), np.array([0.0, 1.0, 5.0, 2.0]), np.zeros(4), left)
    assert (score.n, score.left_out) == (3, 1)
    assert score.success_rate == pytest.approx(200 / 3) and score.median_l2 == pytest.approx(1.5)
    assert (score.ci_low, score.ci_high) == pytest.approx(wilson_interval(2, 3))
    everything = summarize(is_adversarial(adv, labels, targets), np.array([0.0, 1.0, 5.0, 2.0]), np.zeros(4))
    assert (everything.n, everything.success_rate, everything.median_l2) == (4, 75.0, 1.0)  # what the rule avoids


def test_robust_needs_the_clean_image_right_too():
    labels = np.array([3, 3, 3, 3])
    clean, adv = np.array([3, 5, 3, 5]), np.array([3, 3, 8, 5])  # the 2nd: wrong clean, "right" attacked
    assert robust(clean, adv, labels).tolist() == [True, False, False, False]


@pytest.mark.parametrize("k, n, low, high", [
    # the Wilson score formula with z = 1.96, evaluated separately (Wilson 1927; Agresti & Coull 1998)
    (0, 10, 0.0, 27.75),
    (10, 10, 72.25, 100.0),
    (5, 10, 23.66, 76.34),
    (81, 100, 72.22, 87.49),
])
def test_wilson_interval_on_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=0.01) and hi == pytest.approx(high, abs=0.01)
    assert lo <= 100 * k / n <= hi


def test_stratified_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(10), [98, 113, 103, 101, 98, 89, 96, 103, 97, 102])
    chosen = stratified_subset(labels, 100)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    counts = np.bincount(labels[chosen], minlength=10)
    assert counts.tolist() == [10, 11, 10, 10, 10, 9, 10, 10, 10, 10]
    assert np.all(np.diff(chosen) > 0)
