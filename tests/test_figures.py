"""The attack's pictures: each adversarial PNG holds the image's pixels exactly (each
2×2), and the gallery holds one row per image."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from robustdigits.report.plots import plot_gallery, save_image


def test_an_adversarial_png_holds_the_pixels_each_two_by_two(tmp_path):
    image = np.random.default_rng(0).random((28, 28)) * 1.4 - 0.2  # values outside [0, 1] are clipped
    read = imread(save_image(image, tmp_path / "a.png"))
    assert read.shape == (56, 56, 4)
    expected = np.kron(np.clip(image, 0, 1), np.ones((2, 2)))
    assert np.abs(read[..., 0] - expected).max() <= 2 / 255  # the grey colormap has 256 levels
    assert np.array_equal(read[..., 0], read[..., 1]) and np.array_equal(read[..., 1], read[..., 2])


def test_a_gallery_grows_by_rows_and_shows_the_difference_in_colour(tmp_path):
    rng = np.random.default_rng(1)
    refs = rng.random((12, 28, 28))
    advs = np.clip(refs + rng.normal(0, 0.3, refs.shape), 0, 1)
    one = imread(plot_gallery(refs[:1], advs[:1], ["0 → 1"], tmp_path / "g1.png", "t"))
    twelve = imread(plot_gallery(refs, advs, [f"{i} → {i + 1}" for i in range(12)], tmp_path / "g12.png", "t"))
    assert one.shape[1] == twelve.shape[1]  # the same width
    assert 8 < twelve.shape[0] / one.shape[0] < 12  # about a row's height per image (the margins are shared)
    rgb = twelve[..., :3]
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 0.5).any()  # red and blue differences, not only grey
