"""Properties that hold for any input (hypothesis): the attack's invariants and the IDX
reader's promise that bad bytes only ever raise the project's data error."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent

from robustdigits.art_bridge import make_classifier
from robustdigits.data.datasets import IDX_FILES, load_idx, write_idx
from robustdigits.data.pixels import to_pixels
from robustdigits.errors import DataError

CPU = torch.device("cpu")
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def classifier(trained):
    return make_classifier(trained.model.eval(), CPU)


@pytest.fixture(scope="module")
def pool(data):
    return to_pixels(data.test_images[:64]), data.test_labels[:64].numpy()


@FEW
@given(start=st.integers(0, 56), n=st.integers(1, 8), steps=st.integers(0, 3), seed=st.integers(0, 2**32),
       init=st.sampled_from(["noise", "reference"]), clip=st.booleans(), targeted=st.booleans(),
       lr=st.floats(1e-3, 5.0), batch=st.integers(1, 9))
def test_attack_invariants(classifier, pool, start, n, steps, seed, init, clip, targeted, lr, batch):
    x, labels = pool[0][start:start + n], pool[1][start:start + n]
    y = (labels + 1) % 10 if targeted else labels
    before = x.copy()
    attack = RegularizedGradientDescent(classifier, max_iter=steps, seed=seed, init=init, clip=clip,
                                        targeted=targeted, learning_rate=lr, batch_size=batch)
    out = attack.generate(x, y)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0  # within clip_values, clipped iterates or not
    assert np.array_equal(x, before)  # the input is untouched
    again = RegularizedGradientDescent(classifier, max_iter=steps, seed=seed, init=init, clip=clip,
                                       targeted=targeted, learning_rate=lr, batch_size=n).generate(x, y)
    # Any internal batch size, and a rerun with the same seed, give the same result: with at
    # most 3 steps the float summation order of another batch cannot flip a max-pool tie.
    np.testing.assert_allclose(out, again, rtol=0, atol=1e-5)
    assert np.all((attack.success_step_ >= -1) & (attack.success_step_ <= steps))


def _valid_folder(folder: Path) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / IDX_FILES["train_images"], rng.integers(0, 256, (3, 28, 28)))
    write_idx(folder / IDX_FILES["train_labels"], rng.integers(0, 10, 3))
    write_idx(folder / IDX_FILES["test_images"], rng.integers(0, 256, (2, 28, 28)))
    write_idx(folder / IDX_FILES["test_labels"], rng.integers(0, 10, 2))


idx_like = st.one_of(
    st.binary(max_size=64),
    # a plausible header (magic, dimensions) followed by arbitrary bytes: reaches deeper checks
    st.builds(lambda code, dims, body: bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">i", d) for d in dims)
              + body,
              st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]),
              st.lists(st.integers(-2, 40), min_size=0, max_size=4), st.binary(max_size=3200)),
)


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(sorted(IDX_FILES)), payload=idx_like, gz=st.booleans())
def test_any_bytes_load_or_raise_the_data_error(which, payload, gz):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _valid_folder(folder)
        (folder / IDX_FILES[which]).unlink()
        if gz:
            import gzip

            (folder / f"{IDX_FILES[which]}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / IDX_FILES[which]).write_bytes(payload)
        try:
            loaded = load_idx(folder)
        except DataError:
            return
        assert loaded.train_images.dtype == torch.uint8 and tuple(loaded.train_images.shape[1:]) == (28, 28)
        assert len(loaded.train_images) == len(loaded.train_labels)
