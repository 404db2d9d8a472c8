"""The README's ART pipelines, each run for real."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.defences.preprocessor import SpatialSmoothing
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import PyTorchClassifier
from art.metrics import adversarial_accuracy
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent
from torch import nn

from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, to_pixels
from robustdigits.models import get_model


@pytest.fixture()
def pixels(data) -> tuple[np.ndarray, np.ndarray]:
    return to_pixels(data.test_images[:16]), data.test_labels[:16].numpy()


def classifier_for(model: nn.Module, **kwargs) -> PyTorchClassifier:
    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                             clip_values=(0.0, 1.0), preprocessing=(MNIST_MEAN, MNIST_STD), **kwargs)


def test_with_a_pytorch_classifier(trained, pixels):
    x, y = pixels
    classifier = classifier_for(trained.model)
    attack = RegularizedGradientDescent(classifier, max_iter=200, init="reference")
    x_adv = attack.generate(x, y=(y + 1) % 10)
    assert (classifier.predict(x_adv).argmax(1) == (y + 1) % 10).mean() >= 0.8


def test_with_a_preprocessing_defence(trained, pixels):
    # ART 1.20.1's FeatureSqueezing returns float64, which ART's own predict then feeds
    # to a float32 PyTorch model and fails; SpatialSmoothing keeps float32.
    x, y = pixels
    classifier = classifier_for(trained.model, preprocessing_defences=[SpatialSmoothing(window_size=3)])
    attack = RegularizedGradientDescent(classifier, max_iter=30, init="reference")
    assert not attack._uses_torch_path()  # numpy defences: through estimator.loss_gradient
    x_adv = attack.generate(x, y=(y + 1) % 10)
    assert x_adv.shape == x.shape and 0 <= x_adv.min() and x_adv.max() <= 1
    assert np.abs(x_adv - x).max() > 0.01


def test_in_arts_adversarial_trainer(data):
    torch.manual_seed(0)
    model = get_model("tutorial")
    classifier = classifier_for(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5))
    x = to_pixels(data.train_images[:128])
    y = data.train_labels[:128].numpy()
    before = [p.detach().clone() for p in model.parameters()]
    attack = RegularizedGradientDescent(classifier, targeted=False, max_iter=3, init="reference")
    AdversarialTrainer(classifier, attacks=attack, ratio=0.5).fit(x, y, nb_epochs=1, batch_size=64)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_targeted_attack_is_refused_by_adversarial_trainer(trained):
    classifier = classifier_for(trained.model)
    with pytest.raises(NotImplementedError, match="targeted attacks"):
        AdversarialTrainer(classifier, attacks=RegularizedGradientDescent(classifier)).fit(
            np.zeros((2, 1, 28, 28), np.float32), np.array([0, 1]), nb_epochs=1)


def test_in_arts_adversarial_accuracy(trained, pixels):
    x, y = pixels
    classifier = classifier_for(trained.model)
    clean = adversarial_accuracy(classifier, x, y, attack_crafter=RegularizedGradientDescent(
        classifier, targeted=False, max_iter=0, init="reference"))
    # Untargeted ascent of the cross-entropy starts slowly on confident predictions (its
    # gradient vanishes as p -> 1), hence the larger step.
    attacked = adversarial_accuracy(classifier, x, y, attack_crafter=RegularizedGradientDescent(
        classifier, targeted=False, learning_rate=1.0, max_iter=100, init="reference"))
    assert clean > 0.8 and attacked < clean
