"""Shared fixtures: the embedded data and one small model trained once per session."""

from __future__ import annotations

import pytest
import torch

from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import MNISTData, load_embedded
from robustdigits.training import TrainResult, train

# On 2 cores torch's 2 OpenMP threads slow down 20-50x whenever another process
# uses a core; one thread is steady.
torch.set_num_threads(1)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def offline_data_cache(tmp_path_factory, monkeypatch, request):
    """No test reads the user's data cache or reaches the network: each gets an empty
    cache, and the network sources of ``data fetch`` fail at once (tests marked
    ``network`` keep them)."""
    from robustdigits.data import fetch
    from robustdigits.data.datasets import DataError

    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(tmp_path_factory.mktemp("data-cache")))
    if request.node.get_closest_marker("network") is None:
        def off(staging):
            raise DataError("network sources are off in tests")

        monkeypatch.setattr(fetch, "_from_torchvision", off)
        monkeypatch.setattr(fetch, "_from_npm", off)


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
