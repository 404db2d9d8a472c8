"""Shared fixtures: the embedded data and one small model trained once per session."""

from __future__ import annotations

import pytest
import torch

from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.datasets import MNISTData, load_embedded
from robustdigits.training import TrainResult, train

# On 2 cores torch's 2 OpenMP threads slow down 20-50x whenever another process
# uses a core; one thread is steady.
torch.set_num_threads(1)

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def data() -> MNISTData:
    return load_embedded()


@pytest.fixture(scope="session")
def trained(data: MNISTData) -> TrainResult:
    """TextbookNet with momentum after 600 SGD steps (about 25 s on one core)."""
    return train(ModelSpec("textbook"), TrainConfig(steps=600, momentum=0.5), data, device=CPU)


@pytest.fixture(scope="session")
def small_data(data: MNISTData) -> MNISTData:
    """The first 640 train and 200 test images: for tests that check mechanics, not accuracy."""
    return MNISTData(data.train_images[:640], data.train_labels[:640], data.test_images[:200],
                     data.test_labels[:200], data.info)
