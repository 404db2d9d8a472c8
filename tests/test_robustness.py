"""The robustness study: its table and curves on a tiny grid, adversarial training, sanity checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import PyTorchClassifier
from robustdigits.attacks import RegularizedGradientDescent
from torch import nn

from robustdigits.art_bridge import make_classifier
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import MNISTData
from robustdigits.data.fetch import sha256_file
from robustdigits.data.pixels import to_pixels
from robustdigits.grid.cells import CellResult, CellStore, ModelRef
from robustdigits.studies.adversarial import adversarial_checkpoint, targeted_adversarial_fit
from robustdigits.studies.robustness import (
    ModelMeasures,
    RobustnessConfig,
    columns,
    min_l2,
    run_robustness,
    sanity_checks,
    table_rows,
)
from robustdigits.studies.robustness_report import l2_curve, write_robustness_report
from robustdigits.training import train

CPU = torch.device("cpu")
TINY = RobustnessConfig(n=24, n_slow=10, seeds=2, eps=(0.1, 0.2, 0.3), pgd_steps=5, rgd_steps=15, cw_steps=2,
                        cw_search=1, deepfool_steps=5, adversarial=())


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, small_data) -> list[ModelRef]:
    folder = tmp_path_factory.mktemp("models")
    models = []
    for row in ("tutorial", "improved"):
        for seed in (1, 2):
            path = folder / f"{row}-{seed}.pt"
            train(ModelSpec(row), TrainConfig(steps=40, seed=seed), small_data, device=CPU, checkpoint=path)
            models.append(ModelRef(row, str(path), sha256_file(path), {"seed": seed}))
    return models


def test_the_table_on_a_tiny_grid_has_every_column_and_honest_intervals(tmp_path, small_data, tiny_models):
    rows, results = run_robustness(tiny_models, small_data, TINY, CellStore(tmp_path / "cells"), device=CPU)
    assert [r.row for r in rows] == ["tutorial", "improved"] and [r.seeds for r in rows] == [[1, 2], [1, 2]]
    assert len(results) == 4 * (1 + 3 + 3)  # clean, PGD × 3, ours, C&W, DeepFool per model
    table = table_rows(rows, TINY)
    assert all(len(line) == len(columns(TINY)) for line in table)
    for r in rows:
        for key in ("clean", "pgd@0.1", "pgd@0.2", "pgd@0.3", "rgd"):
            low, high = r.pooled(key)
            hits = sum(m.counts[key][0] for m in r.measures)
            n = sum(m.counts[key][1] for m in r.measures)
            left_out = sum(m.rgd_already for m in r.measures) if key == "rgd" else 0  # already the next digit
            assert n == 2 * 24 - left_out and low <= 100 * hits / n <= high
        for m in r.measures:
            assert len(m.min_l2) == 10 and np.all(m.min_l2 >= 0)
            curve = l2_curve(m.min_l2, TINY.l2_budgets)
            assert all(a >= b for a, b in zip(curve, curve[1:]))  # robust accuracy falls as the budget grows
            assert curve[0] <= m.clean + 100 / 24 * 10  # within the subset's rounding of clean accuracy
            linf = [m.clean] + [m.pgd[e] for e in TINY.eps]
            assert all(a >= b for a, b in zip(linf, linf[1:]))
    paths, problems = write_robustness_report(rows, TINY, small_data, tmp_path / "out", CPU, seconds={"total": 1.0})
    assert {p.name for p in paths} == {"robustness.md", "robustness.csv", "robustness.json", "robustness_l2.png",
                                       "robustness_linf.png", "robustness_contrasts.md", "robustness_contrasts.csv",
                                       "robustness_contrasts.json", "robustness_min_norm.md",
                                       "robustness_min_norm.csv", "robustness_min_norm.json"}
    md = (tmp_path / "out" / "robustness.md").read_text()
    assert "| tutorial | 2 | 24 |" in md and "Sanity checks" in md
    # 40 training steps and 15 attack steps: the tutorial net is flagged, as it should be.
    assert problems == sanity_checks(rows, TINY) and all(p in md for p in problems)


def fake_cells(labels, rgd, cw, df, clean=None) -> dict[str, CellResult]:
    """Per-sample (adv_pred, l2) for three attacks on the same images."""
    n = len(labels)
    clean = labels if clean is None else clean

    def cell(preds_l2):
        preds, l2 = (np.asarray(a) for a in zip(*preds_l2))
        s = {"index": np.arange(n), "label": np.asarray(labels), "target": np.full(n, -1),
             "clean_pred": np.asarray(clean), "adv_pred": preds, "success": preds != labels, "l2": l2,
             "linf": l2, "steps": np.full(n, -1), "x_adv": np.zeros((n, 1, 28, 28), np.float32)}
        return CellResult(None, s, 0.0, {})  # type: ignore[arg-type]

    return {"rgd": cell(rgd), "cw": cell(cw), "deepfool": cell(df)}


class TestAutoAttackInTheStudy:
    """``robustness --autoattack``: AutoAttack cells on the PGD cells' images, robust only when
    right clean, the per-image worst case, the PGD − AA gap flagged, a seeded random sample."""

    def test_scoring_on_a_tiny_grid(self, tmp_path, small_data, tiny_models):
        pytest.importorskip("pyautoattack", reason="the robust extra is not installed (pip install -e '.[robust]')")
        from robustdigits.grid.runner import random_stratified

        config = dataclasses.replace(TINY, seeds=1, n=24, eps=(0.05, 0.1), autoattack=(0.05,), aa_version="apgd",
                                     sample="random", sample_seed=3, square=(0.05,))
        rows, results = run_robustness(tiny_models[:1], small_data, config, CellStore(tmp_path / "cells"), device=CPU)
        cells = {(r.spec.params.get("version") if r.spec.params.get("version") == "square" else r.spec.attack,
                  r.spec.params.get("eps")): r.samples for r in results}
        aa, pgd = cells[("autoattack", 0.05)], cells[("pgd-torch", 0.05)]
        expected = random_stratified(small_data.test_labels.numpy(), 24, 3)
        for c in (aa, pgd, cells[("clean", None)]):  # every row's cells attack the same seeded random images
            assert c["index"].tolist() == expected.tolist()
        assert aa["linf"].max() <= 0.05 + 1e-6  # inside the ball
        m = rows[0].measures[0]
        right = aa["clean_pred"] == aa["label"]
        robust = right & (aa["adv_pred"] == aa["label"])
        assert m.aa[0.05] == pytest.approx(100 * robust.mean())
        square = cells[("square", 0.05)]
        held = right & (square["adv_pred"] == square["label"])  # the tutorial row gets the black-box column
        assert square["index"].tolist() == expected.tolist() and m.square[0.05] == pytest.approx(100 * held.mean())
        worst = robust & (pgd["adv_pred"] == pgd["label"]) & held
        assert m.worst[0.05] == pytest.approx(100 * worst.mean())
        assert m.worst[0.05] <= min(m.aa[0.05], m.pgd[0.05]) and m.aa[0.05] <= m.clean
        assert m.aa[0.05] <= m.pgd[0.05]  # APGD never reports more robustness than 5-step PGD here
        assert 0 < m.pgd[0.05] < m.clean  # and the comparison is not between two zeros
        assert m.gap(0.05) == pytest.approx(m.pgd[0.05] - m.aa[0.05])
        table = table_rows(rows, config)
        assert len(table[0]) == len(columns(config)) and "AutoAttack ε=0.05 robust acc. (%)" in columns(config)
        assert dict(zip(columns(config), table[0]))["Square ε=0.05 robust acc. (%)"] == pytest.approx(m.square[0.05])
        from robustdigits.studies.robustness import cell_specs

        assert "square@0.05" not in cell_specs(ModelRef("improved", "", "", {"seed": 1}), small_data, config)

    def test_square_beating_the_gradient_attacks_is_flagged_as_masking(self):
        from robustdigits.studies.robustness import RowResult

        config = dataclasses.replace(TINY, eps=(0.1, 0.2, 0.3), autoattack=(0.3,), square=(0.3,))
        m = ModelMeasures(98.0, {0.1: 60.0, 0.2: 30.0, 0.3: 10.0, 0.5: 0.0}, 90.0, None, np.zeros(1), {},
                          aa={0.3: 9.5}, worst={0.3: 5.0}, square={0.3: 5.0})
        problems = sanity_checks([RowResult("adv-pgd", "a", [1], [m])], config)
        assert problems == ["adv-pgd seed 1: the black-box Square attack at ε=0.3 leaves 5.0%, 4.5 points below the "
                            "gradient attacks (flagged: gradient masking; trust the worst case)"]
        m.square[0.3] = 9.0
        assert sanity_checks([RowResult("adv-pgd", "a", [1], [m])], config) == []

    def test_a_gap_above_one_point_is_flagged(self):
        from robustdigits.studies.robustness import RowResult

        config = dataclasses.replace(TINY, eps=(0.1, 0.2, 0.3), autoattack=(0.3,))
        m = ModelMeasures(98.0, {0.1: 60.0, 0.2: 30.0, 0.3: 10.0, 0.5: 0.0}, 90.0, None, np.zeros(1), {},
                          aa={0.3: 8.5}, worst={0.3: 8.5})
        problems = sanity_checks([RowResult("textbook", "t", [1], [m])], config)
        assert problems == ["textbook seed 1: PGD at ε=0.3 reports 1.5 points more robustness than AutoAttack "
                            "(flagged: a weak attack or gradient masking; trust AutoAttack)"]
        m.aa[0.3] = 9.5
        assert sanity_checks([RowResult("textbook", "t", [1], [m])], config) == []

    @pytest.mark.parametrize("args, message", [
        (["--autoattack", "0.1,x"], "Invalid value for '--autoattack': '0.1,x' is not a comma-separated list of "
                                    "numbers; e.g. --autoattack 0.1,0.2,0.3"),
        (["--autoattack", "1.5"], "autoattack must be in (0.0, 1.0], got 1.5"),
        (["--aa-version", "fast"], "Invalid value for '--aa-version'"),
    ])
    def test_bad_input_is_one_line_exit_2(self, tmp_path, monkeypatch, args, message):
        from click.testing import CliRunner

        from robustdigits.cli import main

        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(main, ["robustness", *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not list(tmp_path.iterdir())

    def test_a_missing_package_is_named_before_any_work(self, tmp_path, monkeypatch):
        import sys

        from click.testing import CliRunner

        from robustdigits.cli import main

        monkeypatch.setitem(sys.modules, "pyautoattack", None)  # as if not installed
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(main, ["robustness", "--autoattack", "0.3"])
        assert result.exit_code == 1 and result.output.startswith(
            "Error: AutoAttack needs the pyautoattack package, which is not installed: pip install "
            "'robustdigits[robust]'"), result.output
        assert not list(tmp_path.iterdir())


def study_cells(labels, clean, pgd, targets, rgd, rgd_l2) -> dict[str, CellResult]:
    """A model's cells for :func:`measure` with one PGD ε (0.1): per image the clean and PGD
    predictions, and the next-digit attack's targets, predictions and L2."""
    n = len(labels)

    def cell(adv, target=None, l2=None):
        target = np.full(n, -1) if target is None else np.asarray(target)
        adv = np.asarray(adv)
        s = {"index": np.arange(n), "label": np.asarray(labels), "target": target, "clean_pred": np.asarray(clean),
             "adv_pred": adv, "success": adv == target if target[0] >= 0 else adv != np.asarray(labels),
             "l2": np.zeros(n) if l2 is None else np.asarray(l2, dtype=float), "linf": np.zeros(n),
             "steps": np.full(n, -1), "x_adv": np.zeros((n, 1, 28, 28), np.float32)}
        return CellResult(None, s, 0.0, {})  # type: ignore[arg-type]

    return {"clean": cell(clean), "pgd@0.1": cell(pgd), "rgd": cell(rgd, targets, rgd_l2), "cw": cell(clean),
            "deepfool": cell(clean)}


class TestScoringRules:
    """Robust needs clean-correct; the next-digit attack's success leaves out images already
    read as the target (counted apart); its median L2 is over every seed's successes pooled."""

    CONFIG = dataclasses.replace(TINY, eps=(0.1,), seeds=2)

    def test_robust_needs_a_right_clean_prediction(self):
        from robustdigits.studies.robustness import measure

        # image 1 is wrong clean (5) and "right" after PGD (3): not robust
        cells = study_cells([3, 3, 3, 3], clean=[3, 5, 3, 3], pgd=[3, 3, 8, 3], targets=[4] * 4, rgd=[4] * 4,
                            rgd_l2=[1.0] * 4)
        m = measure(cells, self.CONFIG)
        assert m.pgd[0.1] == 50.0 and m.counts["pgd@0.1"] == (2, 4) and m.clean == 75.0

    def test_images_already_read_as_the_target_are_left_out_and_counted_apart(self):
        from robustdigits.studies.robustness import measure

        # labels 0..3, next digits 1..4; image 0 is already read as 1: its "success" at L2 0 is not the attack's
        cells = study_cells([0, 1, 2, 3], clean=[1, 1, 2, 3], pgd=[1, 1, 2, 3], targets=[1, 2, 3, 4],
                            rgd=[1, 2, 2, 4], rgd_l2=[0.0, 1.0, 5.0, 2.0])
        m = measure(cells, self.CONFIG)
        assert m.rgd_already == 1 and m.counts["rgd"] == (2, 3)
        assert m.rgd_success == pytest.approx(200 / 3) and m.rgd_median_l2 == pytest.approx(1.5)

    def test_the_median_l2_is_over_every_seeds_successes_pooled(self):
        from robustdigits.studies.robustness import RowResult, measure

        seed1 = study_cells([0, 1, 2], clean=[0, 1, 2], pgd=[0, 1, 2], targets=[1, 2, 3], rgd=[1, 2, 3],
                            rgd_l2=[1.0, 2.0, 3.0])
        seed2 = study_cells([0, 1, 2], clean=[0, 1, 2], pgd=[0, 1, 2], targets=[1, 2, 3], rgd=[1, 0, 2],
                            rgd_l2=[10.0, 0.5, 0.5])
        row = RowResult("textbook", "t", [1, 2], [measure(seed1, self.CONFIG), measure(seed2, self.CONFIG)])
        assert [m.rgd_median_l2 for m in row.measures] == [2.0, 10.0]  # per seed: their mean would be 6.0
        line = dict(zip(columns(self.CONFIG), table_rows([row], self.CONFIG)[0]))
        assert line["its median L2"] == pytest.approx(2.5)  # median of 1, 2, 3, 10
        assert line["already the target"] == 0
        assert line["next-digit attack success (%)"] == pytest.approx((100 + 100 / 3) / 2)


class TestConvergedMinimumNorm:
    """``robustness --min-norm converged``: adv-lib's FMN, DDN and C&W (9 binary steps) and
    our attack untargeted at the same steps, per attack and per image."""

    CONFIG = dataclasses.replace(TINY, seeds=1, n=24, n_slow=12, min_norm="converged", mn_steps=60, mn_cw_steps=30)

    def test_per_attack_distances_and_the_per_image_best(self):
        from robustdigits.studies.robustness import MIN_NORM_ROLES, min_norm_distances

        labels, clean = [3, 5, 7, 1], [3, 5, 7, 2]  # the 4th is already misclassified: 0 for every attack
        cells = fake_cells(labels, rgd=[(4, 2.0), (6, 1.0), (7, 0.5), (1, 0.1)],
                           cw=[(4, 1.5), (5, 0.3), (7, 0.2), (1, 0.1)], df=[(9, 3.0), (2, 1.2), (7, 0.1), (1, 0.1)],
                           clean=clean)
        more = fake_cells(labels, rgd=[(4, 1.2), (5, 0.2), (1, 0.9), (1, 0.1)],
                          cw=[(3, 1.0), (6, 0.8), (7, 0.1), (1, 0.1)], df=[(3, 0.1), (3, 0.1), (3, 0.1), (1, 0.1)],
                          clean=clean)
        cells.update({"fmn": more["rgd"], "ddn": more["cw"], "rgd-mn": more["deepfool"]})
        by = min_norm_distances(cells, MIN_NORM_ROLES["converged"])
        np.testing.assert_array_equal(by["fmn"], [1.2, np.inf, 0.9, 0.0])
        np.testing.assert_array_equal(by["ddn"], [np.inf, 0.8, np.inf, 0.0])
        np.testing.assert_array_equal(by["rgd-mn"], [np.inf, 0.1, 0.1, 0.0])  # a 3 is no example of a 3
        np.testing.assert_array_equal(by["cw"], [1.5, np.inf, np.inf, 0.0])
        np.testing.assert_array_equal(min_l2(cells, MIN_NORM_ROLES["converged"]), [1.2, 0.1, 0.1, 0.0])
        np.testing.assert_array_equal(min_l2(cells), [1.5, 1.0, np.inf, 0.0])  # quick: our attack, C&W, DeepFool

    @pytest.fixture(scope="class")
    def fitted(self, tmp_path_factory, small_data) -> list[ModelRef]:
        """A textbook net right on most test images (300 steps), so distances are not all 0."""
        path = tmp_path_factory.mktemp("fitted") / "textbook-momentum.pt"
        train(ModelSpec("textbook"), TrainConfig(steps=300, momentum=0.5, seed=1), small_data, device=CPU,
              checkpoint=path)
        return [ModelRef("textbook-momentum", str(path), sha256_file(path), {"seed": 1})]

    def test_converged_attacks_on_a_tiny_grid_find_closer_examples_than_the_quick_c_and_w(self, tmp_path, small_data,
                                                                                           fitted):
        pytest.importorskip("adv_lib", reason="the minnorm extra is not installed "
                                              "(PIP_CONSTRAINT=.ci/build-constraints.txt pip install -e '.[minnorm]')")
        from robustdigits.studies.robustness import MIN_NORM_ROLES
        from robustdigits.studies.robustness_report import min_norm_columns

        store = CellStore(tmp_path / "cells")
        quick = dataclasses.replace(self.CONFIG, min_norm="quick")
        q_rows, _ = run_robustness(fitted, small_data, quick, store, device=CPU)
        rows, results = run_robustness(fitted, small_data, self.CONFIG, store, device=CPU)
        attacks = {r.spec.attack for r in results}
        assert {"fmn", "ddn", "cw-l2", "deepfool", "rgd"} <= attacks and "cw" not in attacks
        m, q = rows[0].measures[0], q_rows[0].measures[0]
        assert m.clean == q.clean and m.pgd == q.pgd  # the shared cells are the same cells
        for role in MIN_NORM_ROLES["converged"]:
            assert np.all(m.min_l2 <= m.min_l2_by[role])  # the best is the smallest any attack found
        assert np.isfinite(m.min_l2).all()  # together they find an example for every image
        best, quick_best = np.median(m.min_l2), np.median(q.min_l2)
        assert 0 < best < 0.8 * quick_best, (best, quick_best)  # closer than the quick attacks (measured 1.2 vs 2.4)
        x = small_data.test_images.numpy()
        for r in results:  # every example is a valid image
            if r.spec.attack in ("fmn", "ddn", "cw-l2"):
                assert r.samples["x_adv"].min() >= 0 and r.samples["x_adv"].max() <= 1
                assert r.samples["x_adv"].shape == (12, 1, 28, 28) and len(x) >= 12
        paths, _ = write_robustness_report(rows, self.CONFIG, small_data, tmp_path / "out", CPU,
                                           seconds={"total": 1.0})
        md = (tmp_path / "out" / "robustness_min_norm.md").read_text()
        assert "| FMN median L2 | FMN found (%) | DDN median L2 |" in md and "9 binary search steps × at most 30" in md
        line = md.splitlines()[-1].split("|")[1:-1]
        assert len(line) == len(min_norm_columns(self.CONFIG)) and line[0].strip() == "textbook-momentum"

    def test_a_missing_package_is_named_before_any_work(self, tmp_path, monkeypatch):
        import sys

        from click.testing import CliRunner

        from robustdigits.cli import main

        monkeypatch.setitem(sys.modules, "adv_lib.attacks", None)  # as if not installed
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(main, ["robustness", "--min-norm", "converged"])
        assert result.exit_code == 1 and result.output.startswith(
            "Error: the minimum-norm attacks (fmn, ddn, cw-l2) need the adv-lib package, which is not installed: "
            "PIP_CONSTRAINT=.ci/build-constraints.txt pip install 'robustdigits[minnorm]'"), result.output
        assert not list(tmp_path.iterdir())
        bad = CliRunner().invoke(main, ["robustness", "--min-norm", "best"])
        assert bad.exit_code == 2 and "Invalid value for '--min-norm'" in bad.output


def test_min_norm_takes_the_smallest_misclassifying_example():
    labels = [3, 5, 7, 1]
    cells = fake_cells(labels, rgd=[(4, 2.0), (6, 1.0), (7, 0.5), (1, 0.1)],
                       cw=[(4, 1.5), (5, 0.3), (7, 0.2), (1, 0.1)],
                       df=[(9, 3.0), (2, 1.2), (7, 0.1), (1, 0.1)], clean=[3, 5, 7, 2])
    np.testing.assert_array_equal(min_l2(cells), [1.5, 1.0, np.inf, 0.0])  # 3rd: none found; 4th: already wrong
    assert l2_curve(np.array([1.5, 1.0, np.inf, 0.0]), [0.0, 1.0, 2.0]) == [75.0, 50.0, 25.0]


def test_sanity_checks_flag_what_would_betray_a_broken_setting():
    from robustdigits.studies.robustness import RowResult

    def row(clean, pgd, rgd):
        m = ModelMeasures(clean, dict(zip((0.1, 0.2, 0.3), pgd)), rgd, None, np.zeros(1), {})
        return RowResult("textbook", "t", [1], [m])

    config = dataclasses.replace(TINY, eps=(0.1, 0.2, 0.3))
    assert sanity_checks([row(98.0, (60.0, 30.0, 0.0), 90.0)], config) == []
    problems = sanity_checks([row(90.0, (95.0, 40.0, 45.0), 0.0)], config)
    assert any("PGD ε=0.1 robust accuracy 95.0% above clean 90.0%" in p for p in problems)
    assert any("PGD at ε=0.3 (45.0%) better than at ε=0.2 (40.0%)" in p for p in problems)
    assert any("succeeds on 0% of a non-robust model" in p for p in problems)
    assert "textbook: no ε run brings it to 0% robust accuracy: the attacks may not work on it (or a larger ε is " \
        "needed)" in problems


def test_the_cells_of_a_model_follow_its_row_and_seed(small_data):
    """PGD is the torch-native one at the configured steps and restarts; the adversarial rows
    get the extra radii (PGD and AutoAttack); 'mixed' runs AutoAttack standard on seed 1 and
    APGD-CE + APGD-T on the others."""
    from robustdigits.studies.robustness import cell_specs

    config = RobustnessConfig(autoattack=(0.1, 0.3), aa_version="mixed", square=(0.3,))
    variant = {s: cell_specs(ModelRef("textbook", "", "h", {"seed": s}), small_data, config) for s in (1, 2)}
    adversarial = cell_specs(ModelRef("adv-recipe", "", "h", {"seed": 1}), small_data, config)
    pgd = variant[1]["pgd@0.1"]
    assert (pgd.attack, pgd.params["steps"], pgd.params["restarts"], pgd.params["eps_step"]) == \
        ("pgd-torch", 100, 5, pytest.approx(2.5 * 0.1 / 100))
    assert sorted(r for r in variant[1] if "@" in r) == ["aa@0.1", "aa@0.3", "pgd@0.1", "pgd@0.2", "pgd@0.3"]
    assert sorted(r for r in adversarial if "@" in r) == [
        "aa@0.1", "aa@0.3", "aa@0.4", "aa@0.5", "pgd@0.1", "pgd@0.2", "pgd@0.3", "pgd@0.4", "pgd@0.5", "square@0.3"]
    assert {variant[1]["aa@0.1"].params["version"], adversarial["aa@0.5"].params["version"]} == {"standard"}
    assert variant[2]["aa@0.1"].params["version"] == "apgd"
    assert config.all_eps() == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert RobustnessConfig(adversarial=()).all_eps() == (0.1, 0.2, 0.3)
    from robustdigits.studies.robustness_grid import robustness_cell_count  # the progress bar's totals, by kind

    assert [robustness_cell_count(small_data, config, row, 1, "autoattack") for row in ("textbook", "adv-recipe")] == \
        [2, 5]  # AutoAttack's cells (and Square's, AutoAttack's code) get their own pace in the time left
    assert robustness_cell_count(small_data, config, "adv-recipe", 1, "attack") == len(adversarial) - 5


def test_every_model_falls_to_zero_somewhere_or_is_named():
    """The check that the attacks work: per row the smallest ε where every seed is at 0 %
    under the strongest attack run there (AutoAttack's worst case beats PGD's number)."""
    from robustdigits.studies.robustness import RowResult, zero_radius
    from robustdigits.studies.robustness_report import zero_note

    natural = RowResult("textbook", "t", [1, 2], [
        ModelMeasures(98.0, {0.1: 60.0, 0.2: 1.0, 0.3: 0.0}, 90.0, None, np.zeros(1), {}),
        ModelMeasures(98.0, {0.1: 61.0, 0.2: 0.0, 0.3: 0.0}, 90.0, None, np.zeros(1), {})])
    adversarial = RowResult("adv-pgd", "a", [1], [
        ModelMeasures(90.0, {0.1: 80.0, 0.3: 40.0, 0.4: 0.5, 0.5: 0.2}, 5.0, None, np.zeros(1), {},
                      aa={0.4: 0.0, 0.5: 0.0}, worst={0.4: 0.0, 0.5: 0.0})])
    stubborn = RowResult("adv-recipe", "r", [1], [
        ModelMeasures(98.0, {0.1: 97.0, 0.3: 90.0, 0.5: 12.5}, 1.0, None, np.zeros(1), {})])
    assert zero_radius([natural, adversarial, stubborn]) == {"textbook": 0.3, "adv-pgd": 0.4, "adv-recipe": None}
    assert zero_note([natural, adversarial, stubborn]) == (
        "Every model falls to 0 % robust accuracy (every seed, the strongest attack run) at ε = 0.3: textbook; "
        "ε = 0.4: adv-pgd; not reached by adv-recipe (12.5% at its largest ε).")


# --- adversarial training ------------------------------------------------------------------------------


def pgd_robust_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    classifier = make_classifier(model, CPU)
    attack = ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 4, max_iter=10, verbose=False)
    return 100.0 * float((classifier.predict(attack.generate(x, y)).argmax(1) == y).mean())


def test_pgd_adversarial_training_raises_robust_accuracy(tmp_path, data):
    """One epoch on the 8,000 embedded images, seed 1, ε = 0.3 with 3 PGD steps: under PGD
    at ε = 0.2 the adversarially trained net keeps at least 10 points more accuracy than the
    normally trained one (measured with 2 threads: 24.0 % against 8.0 %, on 200 test images)."""
    subset = MNISTData(data.train_images, data.train_labels, data.test_images[:200], data.test_labels[:200],
                       data.info)
    config = dataclasses.replace(TINY, adv_epochs=1, adv_pgd_steps=3, adv_eps=0.3)
    robust = adversarial_checkpoint("adv-pgd", subset, tmp_path, config, device=CPU).build_model(CPU)
    normal = train(ModelSpec("textbook"), TrainConfig(epochs=1, momentum=0.5), subset, device=CPU).model.eval()
    x, y = to_pixels(subset.test_images), subset.test_labels.numpy()
    gained = pgd_robust_accuracy(robust, x, y, 0.2) - pgd_robust_accuracy(normal, x, y, 0.2)
    assert gained >= 10, gained


def art_classifier(model: nn.Module) -> PyTorchClassifier:
    return make_classifier(model, CPU, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5))


def test_our_trainer_takes_the_targeted_attack_art_refuses(small_data):
    torch.manual_seed(0)
    model = ModelSpec("tutorial").build()
    classifier = art_classifier(model)
    targeted = RegularizedGradientDescent(classifier, max_iter=2, init="reference", learning_rate=1.0)
    x, y = to_pixels(small_data.train_images[:128]), small_data.train_labels[:128].numpy()
    with pytest.raises(NotImplementedError, match="targeted attacks is currently not implemented"):
        AdversarialTrainer(classifier, attacks=targeted, ratio=0.5).fit(x, y, nb_epochs=1)
    before = [p.detach().clone() for p in model.parameters()]
    targeted_adversarial_fit(classifier, targeted, x, y, nb_epochs=1, batch_size=64)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("change, message", [
    ({"attack": "untargeted"}, "attack must be targeted here; for untargeted attacks use ART's"),
    ({"attack": "other"}, "attack must attack the classifier being trained"),
    ({"ratio": 0.0}, r"ratio must be in \(0.0, 1.0\], got 0.0"),
    ({"ratio": 1.5}, r"ratio must be in \(0.0, 1.0\], got 1.5"),
    ({"y": "one-hot"}, r"y must be 8 class indices \(N,\), got shape \(8, 10\)"),
    ({"target": "eleven"}, "unknown target 'eleven'"),
])
def test_our_trainer_refuses_what_it_cannot_do(small_data, change, message):
    model = ModelSpec("tutorial").build()
    classifier = art_classifier(model)
    kind = change.get("attack", "targeted")
    victim = art_classifier(ModelSpec("tutorial").build()) if kind == "other" else classifier
    attack = RegularizedGradientDescent(victim, max_iter=1, init="reference", targeted=kind != "untargeted")
    x, y = to_pixels(small_data.train_images[:8]), small_data.train_labels[:8].numpy()
    if change.get("y") == "one-hot":
        y = np.eye(10, dtype=np.int64)[y]
    with pytest.raises(ValueError, match=message):
        targeted_adversarial_fit(classifier, attack, x, y, nb_epochs=1, ratio=change.get("ratio", 0.5),
                                 target=change.get("target", "next-digit"))
