"""RegularizedGradientDescent: ART's contract, invariances, both paths, faithfulness to the study."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier
from art.exceptions import EstimatorError
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent
from torch import nn

from robustdigits.art_bridge import make_classifier
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from robustdigits.studies.experiment import AttackConfig, first_per_class, run_experiment
from robustdigits.study_loop import study_attack

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(trained) -> nn.Module:
    return trained.model.eval()


@pytest.fixture(scope="module")
def classifier(model) -> PyTorchClassifier:
    return make_classifier(model, CPU)


@pytest.fixture(scope="module")
def study_images(data) -> tuple[np.ndarray, np.ndarray]:
    """The first test image of each digit, in pixels, and their next-digit targets."""
    labels = data.test_labels.numpy()
    idx = first_per_class(labels, 1)
    return to_pixels(data.test_images[idx]), (labels[idx] + 1) % 10


@pytest.fixture(scope="module")
def batch64(data) -> tuple[np.ndarray, np.ndarray]:
    x = to_pixels(data.test_images[:64])
    return x, (data.test_labels[:64].numpy() + 1) % 10


# --- ART's contract -------------------------------------------------------------------------


@pytest.mark.parametrize(("param", "value", "error", "match"), [
    ("learning_rate", 0, ValueError, "learning_rate must be > 0"),
    ("learning_rate", "0.1", TypeError, "learning_rate must be a number"),
    ("learning_rate", True, TypeError, "learning_rate must be a number"),
    ("penalty", -0.1, ValueError, "penalty must be >= 0"),
    ("penalty", float("nan"), ValueError, "penalty must be finite"),
    ("max_iter", -1, ValueError, "max_iter must be >= 0"),
    ("max_iter", 10.0, TypeError, "max_iter must be an int"),
    ("max_iter", True, TypeError, "max_iter must be an int"),
    ("init", "zeros", ValueError, "unknown init 'zeros'; choose one of: noise, reference"),
    ("init", 0, TypeError, "init must be a str"),
    ("noise_mean", None, TypeError, "noise_mean must be a number"),
    ("noise_std", -1.0, ValueError, "noise_std must be >= 0"),
    ("seed", -3, ValueError, "seed must be >= 0"),
    ("seed", 1.5, TypeError, "seed must be an int"),
    ("clip", 1, TypeError, "clip must be a bool"),
    ("early_stop", 1.5, ValueError, r"early_stop must be in \(0.0, 1.0\], got 1.5"),
    ("early_stop", 0.0, ValueError, r"early_stop must be in \(0.0, 1.0\], got 0.0"),
    ("early_stop", False, TypeError, "early_stop must be a number"),
    ("keep_best", "yes", TypeError, "keep_best must be a bool"),
    ("targeted", None, TypeError, "targeted must be a bool"),
    ("batch_size", 0, ValueError, "batch_size must be >= 1"),
    ("batch_size", False, TypeError, "batch_size must be an int"),
    ("verbose", 0, TypeError, "verbose must be a bool"),
])
def test_every_invalid_parameter_is_named(classifier, param, value, error, match):
    with pytest.raises(error, match=match):
        RegularizedGradientDescent(classifier, **{param: value})
    attack = RegularizedGradientDescent(classifier)
    with pytest.raises(error, match=match):
        attack.set_params(**{param: value})


def test_attack_params_extend_arts_and_set_params_rejects_unknown(classifier):
    from art.attacks.attack import EvasionAttack

    attack = RegularizedGradientDescent(classifier)
    assert attack.attack_params[: len(EvasionAttack.attack_params)] == EvasionAttack.attack_params
    assert {"targeted", "batch_size", "verbose", "max_iter"} <= set(attack.attack_params)
    with pytest.raises(ValueError, match='The attribute "eps" cannot be set for this attack.'):
        attack.set_params(eps=0.3)
    attack.set_params(max_iter=7, targeted=False)
    assert attack.max_iter == 7 and attack.targeted is False
    assert "max_iter=7" in repr(attack) and repr(attack).startswith("RegularizedGradientDescent(")


def test_estimator_without_gradients_is_refused():
    black_box = BlackBoxClassifier(lambda x: np.ones((len(x), 10)) / 10, input_shape=(1, 28, 28), nb_classes=10)
    with pytest.raises(EstimatorError):
        RegularizedGradientDescent(black_box)


def test_keyword_only_construction(classifier):
    with pytest.raises(TypeError):
        RegularizedGradientDescent(classifier, 0.1)  # type: ignore[misc]


def test_targeted_without_y_raises_arts_message(classifier, study_images):
    with pytest.raises(ValueError, match="Target labels `y` need to be provided for a targeted attack."):
        RegularizedGradientDescent(classifier, max_iter=1).generate(study_images[0])


def test_output_is_float32_within_clip_values_and_input_untouched(classifier, study_images):
    x, targets = study_images
    x64 = x.astype(np.float64)
    before = x64.copy()
    out = RegularizedGradientDescent(classifier, max_iter=30, seed=0, clip=False).generate(x64, targets, mask=None,
                                                                                          unknown_kwarg=1)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(x64, before)


def test_one_hot_and_index_targets_agree(classifier, study_images):
    x, targets = study_images
    attack = RegularizedGradientDescent(classifier, max_iter=20, seed=3)
    np.testing.assert_array_equal(attack.generate(x, targets), attack.generate(x, np.eye(10)[targets]))


def test_same_seed_same_result_other_seed_differs(classifier, study_images):
    x, targets = study_images
    a = RegularizedGradientDescent(classifier, max_iter=20, seed=5).generate(x, targets)
    b = RegularizedGradientDescent(classifier, max_iter=20, seed=5).generate(x, targets)
    c = RegularizedGradientDescent(classifier, max_iter=20, seed=6).generate(x, targets)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


# --- invariances and paths ----------------------------------------------------------------------


@pytest.mark.parametrize("init", ["noise", "reference"])
def test_a_sample_alone_and_in_a_batch_of_64_agree(classifier, batch64, init):
    # The loss is summed, so the batch changes nothing but the order in which convolutions
    # add up (~1e-7). Over many steps a near-tie in a max-pool window can amplify that
    # (measured: 2e-4 after 25 steps on one of 64 images; 4.5e-5 after 20 steps from noise on
    # another session's CPU), so this test takes 10 steps.
    x, targets = batch64
    attack = RegularizedGradientDescent(classifier, max_iter=10, seed=11, init=init, batch_size=64)
    together = attack.generate(x, targets)
    alone = attack.generate(x[:1], targets[:1])  # row 0 draws the same noise either way
    np.testing.assert_allclose(alone[0], together[0], rtol=0, atol=1e-5)
    if init == "reference":
        alone = attack.generate(x[37:38], targets[37:38])
        np.testing.assert_allclose(alone[0], together[37], rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch_size, atol", [
    (16, 1e-5),  # the same convolution backend (oneDNN, channels_last) as batch 64: rounding only
    # Batches of at most 10 use native convolutions on the CPU (faster there, see
    # benchmarks/conv_backend.py): another algorithm, measured 1.4e-4 apart after 3 steps on
    # 146 of 50,176 pixels. A sample's result depends on its batch only through that choice.
    (7, 1e-3),
])
def test_internal_batch_size_does_not_change_results(classifier, batch64, batch_size, atol):
    x, targets = batch64
    big = RegularizedGradientDescent(classifier, max_iter=3, seed=1, batch_size=64).generate(x, targets)
    other = RegularizedGradientDescent(classifier, max_iter=3, seed=1, batch_size=batch_size).generate(x, targets)
    np.testing.assert_allclose(big, other, rtol=0, atol=atol)


@pytest.mark.parametrize("options", [
    {},
    {"init": "reference", "early_stop": 0.6, "keep_best": True},
    {"targeted": False, "init": "reference"},
])
def test_torch_path_and_estimator_path_agree(classifier, study_images, monkeypatch, options):
    # 8 images: ART averages the loss, we scale back by 8, which is exact in floating point.
    x, targets = study_images[0][:8], study_images[1][:8]
    y = targets if options.get("targeted", True) else (targets - 1) % 10
    torch_attack = RegularizedGradientDescent(classifier, max_iter=60, seed=2, **options)
    assert torch_attack._uses_torch_path()
    fast = torch_attack.generate(x, y)
    generic = RegularizedGradientDescent(classifier, max_iter=60, seed=2, **options)
    monkeypatch.setattr(generic, "_uses_torch_path", lambda: False)
    slow = generic.generate(x, y)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(torch_attack.success_step_, generic.success_step_)


def test_no_grad_left_on_the_model_and_mode_restored(classifier, study_images, model):
    model.zero_grad(set_to_none=True)
    model.train()
    onednn = torch.backends.mkldnn.enabled
    try:
        RegularizedGradientDescent(classifier, max_iter=5, seed=0).generate(*study_images)
        assert model.training
        assert all(p.grad is None for p in model.parameters())
        assert torch.backends.mkldnn.enabled == onednn  # turned off for the small batch, then restored
    finally:
        model.eval()


# --- faithfulness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 10, 60])
def test_matches_the_studys_loop_on_normalized_input(model, study_images, steps):
    """The study's loop and our attack on an estimator that takes normalized input."""
    x, targets = study_images
    seed = 4
    z_ref = torch.from_numpy((x[7:8] - MNIST_MEAN) / MNIST_STD)
    target = torch.from_numpy(targets[7:8])
    noise = np.random.default_rng(seed).normal(0.5, 0.3, size=z_ref.shape).astype(np.float32)
    study = study_attack(copy.deepcopy(model), z_ref, target, torch.from_numpy(noise), steps=steps).numpy()

    normalized = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10)
    ours = RegularizedGradientDescent(normalized, learning_rate=0.1, penalty=0.05, max_iter=steps, seed=seed,
                                      clip=False).generate(z_ref.numpy(), target.numpy())
    np.testing.assert_allclose(ours, study, rtol=0, atol=1e-5)

    # In pixel space with the estimator normalizing: x = σ z + μ, iterate by iterate.
    pixels = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                               preprocessing=(MNIST_MEAN, MNIST_STD))
    mapped = RegularizedGradientDescent.from_normalized(pixels, mean=MNIST_MEAN, std=MNIST_STD, max_iter=steps,
                                                        seed=seed, clip=False).generate(x[7:8], target.numpy())
    np.testing.assert_allclose(mapped, study * MNIST_STD + MNIST_MEAN, rtol=0, atol=1e-4)


def test_nine_of_ten_study_images_reach_the_next_digit(model, data):
    outcome = run_experiment(model, data, AttackConfig(steps=300), device=CPU)
    assert outcome.labels.tolist() == list(range(10))
    assert outcome.targets.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert (outcome.predicted == outcome.targets).sum() >= 9
    success = outcome.predicted == outcome.targets
    assert np.all(outcome.held_from[success] >= 0) and np.all(outcome.held_from[~success] == -1)
    assert np.all(outcome.steps_used == 300)  # no early stop: every sample runs every step


def test_early_stop_and_keep_best_from_noise_are_refused(classifier):
    for option in ({"early_stop": 0.5}, {"keep_best": True}):
        with pytest.raises(ValueError, match=r"early_stop and keep_best need init='reference'"):
            RegularizedGradientDescent(classifier, max_iter=10, **option)
    with pytest.raises(ValueError, match="--early-stop and --keep-best need --init reference"):
        AttackConfig(early_stop=0.9)


def test_success_step_is_where_the_target_is_held_to_the_end():
    """Read as the target at steps 0, 2, 3 but not 1: held from step 2, not 0 (the starting
    noise of the study's 7 was read as 8, then not). Not adversarial at the end: -1."""
    from robustdigits.attacks.regularized_gd import _Tracker

    attack = RegularizedGradientDescent.__new__(RegularizedGradientDescent)
    attack.targeted, attack.keep_best, attack.early_stop = True, False, None
    tracker = _Tracker(torch.zeros(2, 1, 2, 2), torch.tensor([1, 1]), attack)
    reads = [(1, 1), (0, 1), (1, 1), (1, 0)]  # predicted class per step, for the two samples
    for step, predicted in enumerate(reads):
        logits = torch.nn.functional.one_hot(torch.tensor(predicted), 2).float() * 5
        tracker.observe(step, None, torch.zeros(2, 1, 2, 2), logits)
    assert tracker.first.tolist() == [2, -1] and tracker.last.tolist() == [3, 3]


def test_early_stop_and_keep_best(classifier, study_images):
    x, targets = study_images
    stop = RegularizedGradientDescent(classifier, max_iter=300, init="reference", early_stop=0.5)
    out = stop.generate(x, targets)
    probs = torch.from_numpy(classifier.predict(out)).softmax(1).numpy()[np.arange(10), targets]
    reached = stop.success_step_ >= 0
    # read as the target before (or when) its probability reached 0.5, which stopped it
    assert np.all(stop.steps_used_[reached] >= stop.success_step_[reached])
    assert np.all(stop.steps_used_ <= 300) and np.any(stop.steps_used_ < 300)
    last = RegularizedGradientDescent(classifier, max_iter=300, init="reference").generate(x, targets)
    d_stop = np.linalg.norm((out - x).reshape(10, -1), axis=1)
    d_last = np.linalg.norm((last - x).reshape(10, -1), axis=1)
    # A sample stops at the first iterate with target probability >= 0.5: closer than running on.
    stopped = probs >= 0.5 - 1e-4
    assert stopped.sum() >= 8 and np.all(d_stop[stopped] < d_last[stopped])

    best = RegularizedGradientDescent(classifier, max_iter=300, init="reference", keep_best=True).generate(x, targets)
    pred = classifier.predict(best).argmax(1)
    d_best = np.linalg.norm((best - x).reshape(10, -1), axis=1)
    assert np.all(pred[reached] == targets[reached])
    assert np.all(d_best[reached] <= d_last[reached] + 1e-5) and np.any(d_best < d_last - 1e-3)
