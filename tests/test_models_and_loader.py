"""Model shapes, parameter counts, registry errors; loader normalization and order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustdigits.data.loader import TensorLoader
from robustdigits.data.pixels import MNIST_MEAN, MNIST_STD, normalize
from robustdigits.models import LeNet, count_parameters, get_model, list_models

CPU = torch.device("cpu")


@pytest.mark.parametrize(("name", "kwargs", "params"), [
    ("tutorial", {}, 21_840),
    ("textbook", {}, 431_080),
    ("textbook", {"dropout": 0.5}, 431_080),
    ("improved", {}, 431_080 + 2 * (20 + 50 + 500)),
])
def test_output_shape_and_parameter_count(name, kwargs, params):
    model = get_model(name, **kwargs).eval()
    assert count_parameters(model) == params
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_models_return_logits_not_probabilities():
    torch.manual_seed(0)
    for name in list_models():
        out = get_model(name).eval()(torch.randn(4, 1, 28, 28))
        assert not torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-3)


def test_textbook_has_no_nonlinearity_after_conv1_and_conv2():
    kinds = [type(m).__name__ for m in LeNet().features]
    assert kinds == ["Conv2d", "Identity", "Identity", "MaxPool2d", "Conv2d", "Identity", "Identity",
                     "MaxPool2d", "Conv2d", "Identity", "ReLU", "Conv2d"]


def test_improved_normalizes_conv1_to_conv3_but_not_the_logits():
    layers = list(get_model("improved", dropout=0.1).features)
    bn_after = [type(layers[i - 1]).__name__ for i, m in enumerate(layers) if isinstance(m, nn.BatchNorm2d)]
    assert bn_after == ["Conv2d"] * 3
    assert isinstance(layers[-1], nn.Conv2d) and sum(isinstance(m, nn.Dropout2d) for m in layers) == 2


def test_registry_unknown_name_lists_choices():
    with pytest.raises(ValueError, match=r"unknown model 'lenet5' \(did you mean 'lenet-relu'\?\); choose one of: "
                                         r"improved, lenet-relu, textbook, tutorial, wong"):
        get_model("lenet5")


@pytest.mark.parametrize(("value", "error", "match"), [
    (1.0, ValueError, r"dropout must be in \[0.0, 1.0\), got 1.0"),
    (-0.1, ValueError, r"dropout must be in \[0.0, 1.0\)"),
    (float("nan"), ValueError, r"dropout must be finite"),
    (True, TypeError, r"dropout must be a number"),
    ("0.1", TypeError, r"dropout must be a number"),
])
def test_dropout_is_validated(value, error, match):
    with pytest.raises(error, match=match):
        get_model("textbook", dropout=value)


def test_normalize_matches_torchvision_to_tensor_and_normalize(data):
    from PIL import Image
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    ours = normalize(data.test_images[:8])
    theirs = torch.stack([pipeline(Image.fromarray(img.numpy(), mode="L")) for img in data.test_images[:8]])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_shuffled_epochs_cover_every_image_once_and_differ(small_data):
    loader = TensorLoader(small_data.train_images, small_data.train_labels, batch_size=64, shuffle=True,
                          device=CPU, seed=1)
    epochs = [torch.cat([y for _, y in loader.epoch(e)]) for e in (0, 1, 0)]
    assert all(torch.equal(e.sort().values, small_data.train_labels.sort().values) for e in epochs)
    assert not torch.equal(epochs[0], epochs[1])
    assert torch.equal(epochs[0], epochs[2])  # an epoch's order depends only on (seed, epoch)


def test_unshuffled_loader_keeps_order_and_last_batch(small_data):
    loader = TensorLoader(small_data.test_images, small_data.test_labels, batch_size=64, shuffle=False, device=CPU)
    batches = list(loader)
    assert len(loader) == 4 and [len(y) for _, y in batches] == [64, 64, 64, 8]
    assert torch.equal(torch.cat([y for _, y in batches]), small_data.test_labels)
    assert batches[0][0].shape == (64, 1, 28, 28) and batches[0][0].dtype == torch.float32
