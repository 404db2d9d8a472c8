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
