"""Statistics with the seed as the unit: paired differences and the ablation's contrasts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from robustdigits.cli import main
from robustdigits.scoring import paired_difference
from robustdigits.studies.contrasts import contrast_rows, one_factor_contrasts, report_measures

ROOT = Path(__file__).resolve().parents[1]


def _momentum_at_pgd_01(payload: dict) -> list[list]:
    """A robustness report's momentum contrasts of PGD ε = 0.1 robust accuracy."""
    rows = contrast_rows(payload["records"], report_measures(payload["meta"]))
    return [r for r in rows if r[0] == "momentum" and r[3] == "PGD ε = 0.1 robust accuracy"]


class TestPairedDifference:
    def test_recovers_a_known_effect_on_synthetic_seeds(self):
        seed_effect = np.random.default_rng(0).normal(0, 5, 8)  # seeds differ a lot; the pairing removes it
        a = 50 + seed_effect
        b = a + 2 + np.array([0.5, -0.5, 0.3, -0.3, 0.6, -0.6, 0.1, -0.1])  # the effect: 2 points, noise around it
        d = paired_difference(list(a), list(b))
        assert d.mean == pytest.approx(2.0)
        assert d.ci_low < 2 < d.ci_high and d.ci_high - d.ci_low < 1
        assert d.ci_low > 0 and d.verdict == "b higher"
        assert d.favours_b == 8 and d.effect_size > 2

    def test_the_interval_is_students_t_on_the_differences(self):
        d = paired_difference([1.0, 2.0, 3.0], [2.0, 2.5, 5.0])
        diffs = np.array([1.0, 0.5, 2.0])
        half = 4.302652729911275 * diffs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
        assert d.mean == pytest.approx(diffs.mean())
        assert (d.ci_low, d.ci_high) == pytest.approx((diffs.mean() - half, diffs.mean() + half))

    def test_an_interval_spanning_zero_is_never_called_no_effect(self):
        d = paired_difference([10.0, 12.0, 11.0], [12.0, 11.0, 13.0])
        assert d.ci_low < 0 < d.ci_high
        assert d.verdict.startswith("undetermined") and "no effect" not in d.verdict

    def test_edge_cases(self):
        assert paired_difference([1.0], [2.0]).verdict == "too few seeds"
        assert paired_difference([0.0, 0.0], [0.0, 0.0]).verdict == "equal on every seed"
        with pytest.raises(ValueError, match="one value per seed, got 2 and 3"):
            paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])


class TestContrasts:
    def test_every_pair_differs_in_exactly_one_factor(self):
        pairs = one_factor_contrasts()
        assert len(pairs) == 12
        assert all("tutorial" not in (a.name, b.name) for _, a, b in pairs)
        assert sum(f == "momentum" for f, _, _ in pairs) == 3
        assert sum(f == "batch-norm" for f, _, _ in pairs) == 2

    def test_the_committed_report_shows_the_momentum_effect_the_review_found(self):
        """The paired re-analysis of the committed report (reproduced 2026-12-03 under the grid, with the
        clean-correct rule): +0.9, +1.9 and +4.0 points at PGD ε = 0.1; 8 of 9 seed pairs favour momentum."""
        payload = json.loads((ROOT / "reports" / "robustness.json").read_text())
        momentum = _momentum_at_pgd_01(payload)
        assert [round(r[5], 1) for r in momentum] == [0.9, 1.9, 4.0]
        assert sum(int(r[8].split(" of ")[0]) for r in momentum) == 8

    def test_where_autoattack_ran_its_worst_case_is_contrasted_too(self):
        measures = report_measures({"config": {"eps": [0.1, 0.3], "autoattack": [0.1]}})
        assert measures == {"clean accuracy": "clean_accuracy",
                            "PGD ε = 0.1 robust accuracy": "pgd_robust_accuracy/0.1",
                            "PGD ε = 0.3 robust accuracy": "pgd_robust_accuracy/0.3",
                            "worst case ε = 0.1 robust accuracy": "worst_case/0.1"}

    def test_a_damaged_report_is_named(self, tmp_path):
        bad = tmp_path / "robustness.json"
        bad.write_text("{}")
        result = CliRunner().invoke(main, ["contrasts", str(bad)])
        assert result.exit_code == 1
        assert "is not a readable robustness report" in result.output
        assert not (tmp_path / "robustness_contrasts.md").exists()


class TestTheReviewsRunSoFar:
    """reports/robust/review-natural/: what the review's run finished (2026-12-04), the nine
    variants' five seeds under PGD 100 × 5 on a seeded random 1,000 images, without AutoAttack."""

    REPORT = ROOT / "reports" / "robust" / "review-natural" / "robustness.json"

    def test_it_was_made_with_the_reviews_settings_but_autoattack(self):
        config = json.loads(self.REPORT.read_text())["meta"]["config"]
        assert (config["seeds"], config["n"], config["sample"]) == (5, 1000, "random")
        assert (config["pgd_steps"], config["pgd_restarts"], config["min_norm"]) == (100, 5, "converged")
        assert (config["autoattack"], config["adversarial"]) == ([], [])

    def test_its_momentum_contrasts_are_the_ones_the_readme_quotes(self):
        payload = json.loads(self.REPORT.read_text())
        momentum = _momentum_at_pgd_01(payload)
        assert [round(r[5], 1) for r in momentum] == [0.6, 1.7, 3.8]
        assert sum(int(r[8].split(" of ")[0]) for r in momentum) == 13
        readme = (ROOT / "README.md").read_text()
        assert "+0.6 (−1.9 to +3.1)" in readme and "+3.8 (+2.0 to +5.6)" in readme


class TestAutoAttackOverTheVariants:
    """reports/robust/review-aa-seed1/: AutoAttack (apgd) beside PGD 100 × 5 on seed 1 of every
    variant, retrained from scratch in a later session than reports/robust/review-natural/."""

    REPORT = ROOT / "reports" / "robust" / "review-aa-seed1" / "robustness.json"
    NATURAL = ROOT / "reports" / "robust" / "review-natural" / "robustness.json"

    def test_it_was_made_with_the_reviews_settings_and_autoattack_apgd(self):
        config = json.loads(self.REPORT.read_text())["meta"]["config"]
        assert (config["seeds"], config["n"], config["sample"], config["min_norm"]) == (1, 1000, "random", "converged")
        assert (config["autoattack"], config["aa_version"], config["pgd_steps"], config["pgd_restarts"]) == \
            ([0.1, 0.2, 0.3], "apgd", 100, 5)

    def test_retrained_checkpoints_give_the_five_seed_reports_seed_1_numbers_exactly(self):
        """Deterministic training and cells: every shared seed-1 measure is the same number."""
        natural = {r["model"]: r for r in json.loads(self.NATURAL.read_text())["records"]}
        records = json.loads(self.REPORT.read_text())["records"]
        assert len(records) == 9
        for r in records:
            n = natural[r["model"]]
            k = n["seeds"].index(1)
            assert r["clean_accuracy"] == [n["clean_accuracy"][k]], r["model"]
            assert r["pgd_robust_accuracy"] == {e: [v[k]] for e, v in n["pgd_robust_accuracy"].items()}, r["model"]
            assert r["rgd_success"] == [n["rgd_success"][k]] and r["min_l2"] == [n["min_l2"][k]], r["model"]

    def test_autoattack_is_the_worst_case_and_never_above_pgd(self):
        for r in json.loads(self.REPORT.read_text())["records"]:
            for eps in ("0.1", "0.2", "0.3"):
                assert r["worst_case"][eps] == r["autoattack"][eps], (r["model"], eps)
                assert r["autoattack"][eps][0] <= r["pgd_robust_accuracy"][eps][0], (r["model"], eps)

    def test_the_gaps_and_the_batch_norm_effect_are_the_ones_the_readme_quotes(self):
        records = {r["model"]: r for r in json.loads(self.REPORT.read_text())["records"]}

        def at(model: str, measure: str) -> float:
            return records[model][measure]["0.1"][0]

        gap = {m: round(at(m, "pgd_robust_accuracy") - at(m, "autoattack"), 1) for m in records}
        assert (gap["improved"], gap["improved-dropout"]) == (9.0, 5.8)
        assert (min(v for m, v in gap.items() if "improved" not in m),
                max(v for m, v in gap.items() if "improved" not in m)) == (0.7, 1.8)
        assert round(at("textbook-momentum", "autoattack") - at("improved", "autoattack"), 1) == 41.6
        assert round(at("textbook-momentum", "pgd_robust_accuracy") - at("improved", "pgd_robust_accuracy"), 1) == 34.0
        readme = " ".join((ROOT / "README.md").read_text().split())  # the words, whatever the line breaks
        assert "0.7–1.8 points above AutoAttack" in readme and "9.0 and 5.8 points" in readme
        assert "41.6 points under AutoAttack against PGD's 34.0" in readme

    def test_momentum_at_dropout_05_under_autoattack_over_five_seeds_is_what_the_readme_says(self):
        payload = json.loads((self.REPORT.parent.parent / "review-aa-momentum-dropout0.5" / "robustness.json")
                             .read_text())
        rows = {r[3]: r for r in contrast_rows(payload["records"], report_measures(payload["meta"]))
                if r[0] == "momentum"}
        assert set(rows) >= {"worst case ε = 0.1 robust accuracy", "worst case ε = 0.2 robust accuracy"}
        at_01, at_02 = rows["worst case ε = 0.1 robust accuracy"], rows["worst case ε = 0.2 robust accuracy"]
        assert (round(at_01[5], 2), at_01[6], at_01[8]) == (3.98, "+2.1 to +5.9", "5 of 5")
        assert (round(at_02[5], 2), at_02[6], at_02[8]) == (-0.56, "-0.6 to -0.5", "0 of 5")
        readme = " ".join((ROOT / "README.md").read_text().split())
        assert "+3.98 (+2.1 to +5.9) points at ε = 0.1, 5 of 5 seeds" in readme and "−0.56 (−0.6 to −0.5)" in readme

    def test_the_committed_cells_are_the_reports_per_image_outcomes(self, tmp_path):
        """reports/robust/cells (what 'cells export' wrote) imports cleanly, and its AutoAttack
        cells of the five-seed pair give the report's AutoAttack numbers, seed by seed."""
        from robustdigits.grid.cells import CellStore
        from robustdigits.grid.portable import import_cells, read_exported

        carry = ROOT / "reports" / "robust" / "cells"
        assert import_cells(carry, CellStore(tmp_path)) == (221, 0)
        payload = json.loads((self.REPORT.parent.parent / "review-aa-momentum-dropout0.5" / "robustness.json")
                             .read_text())
        found = 0
        for record in payload["records"]:
            for path in carry.glob("*.json"):
                cell = read_exported(path)
                spec = cell.spec
                if spec.attack != "autoattack" or spec.model != record["model"]:
                    continue
                s = cell.samples
                robust = 100.0 * float(np.mean((s["clean_pred"] == s["label"]) & (s["adv_pred"] == s["label"])))
                seed = spec.model_info["seed"]
                expected = record["autoattack"][f"{spec.params['eps']:g}"][record["seeds"].index(seed)]
                assert robust == pytest.approx(expected), (record["model"], seed, spec.params["eps"])
                found += 1
        assert found == 2 * 5 * 3
