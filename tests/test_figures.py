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


# --- the robustness study's figures ------------------------------------------------------------------------


def test_each_row_reads_apart_by_family_colour_and_factor_style():
    from robustdigits.studies.robustness_figures import FAMILY_COLOURS, row_style

    textbook, momentum = row_style("textbook"), row_style("textbook-momentum-dropout0.5")
    assert textbook["color"] == momentum["color"] == FAMILY_COLOURS["textbook"]
    assert (textbook["linestyle"], textbook["marker"]) == ("--", None)  # momentum 0, no dropout
    assert (momentum["linestyle"], momentum["marker"]) == ("-", "s")  # momentum 0.5, dropout 0.5
    assert row_style("improved-dropout")["color"] == FAMILY_COLOURS["improved"]
    assert row_style("tutorial")["color"] != row_style("adv-rgd-untargeted")["color"]  # one colour each before
    adversarial = [row_style(r) for r in ("adv-pgd", "adv-rgd-untargeted", "adv-rgd-next-digit", "adv-recipe")]
    assert {s["color"] for s in adversarial} == {FAMILY_COLOURS["adversarial"]}
    assert len({s["linestyle"] for s in adversarial}) == 4
    every = ["tutorial", "textbook", "textbook-momentum", "textbook-dropout0.1", "textbook-dropout0.5",
             "textbook-momentum-dropout0.1", "textbook-momentum-dropout0.5", "improved", "improved-dropout"]
    assert len({tuple(sorted(row_style(r).items(), key=str)) for r in every}) == 9  # no two rows alike


def test_figures_redraws_a_report_from_its_json_with_the_legend_outside(tmp_path):
    from pathlib import Path

    from click.testing import CliRunner

    from robustdigits.cli import main

    report = Path(__file__).resolve().parents[1] / "reports" / "robustness.json"
    result = CliRunner().invoke(main, ["figures", str(report), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    l2 = imread(tmp_path / "robustness_l2.png")
    height, width = l2.shape[:2]
    assert width > 1.6 * height  # the axes and, to their right, the legend
    right = l2[: height // 2, int(width * 0.72):, :3]
    assert (right < 0.5).any()  # the legend's text is drawn right of the axes
    bad = tmp_path / "not-a-report.json"
    bad.write_text('{"records": []}')
    result = CliRunner().invoke(main, ["figures", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: {bad} is not a readable robustness report")


def test_the_linf_curve_is_the_worst_case_where_autoattack_ran(tmp_path, monkeypatch):
    from robustdigits.studies import robustness_figures as figures

    drawn = {}
    monkeypatch.setattr(figures, "plot_bands", lambda x, curves, path, **kw: drawn.update(
        {path.name: (tuple(x), curves, kw["title"])}) or path)
    record = {"model": "textbook", "clean_accuracy": [98.0], "l2_curve": [[98.0, 50.0]],
              "pgd_robust_accuracy": {"0.1": [62.0], "0.2": [4.0]}, "worst_case": {"0.1": [60.5]}}
    figures.robustness_figures([record], (0.1, 0.2), (0.0, 1.0), 100, 1000, tmp_path, autoattack=(0.1,))
    assert drawn["robustness_linf.png"] == ((0.0, 0.1), {"textbook": [[98.0, 60.5]]},
                                            "AutoAttack and PGD, per-image worst case (1,000 images per seed)")
    figures.robustness_figures([record], (0.1, 0.2), (0.0, 1.0), 100, 1000, tmp_path)
    assert drawn["robustness_linf.png"][:2] == ((0.0, 0.1, 0.2), {"textbook": [[98.0, 62.0, 4.0]]})
