"""Robust evaluation: the sample, the scoring rules, the per-image worst case, AutoAttack
against PGD, and the command's errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from robustdigits.cli import main
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import MNISTData
from robustdigits.errors import ConfigError
from robustdigits.robust_training import AdversarialConfig, train_adversarial
from robustdigits.studies.robust_eval import EpsResult, RobustEvalConfig, robust_evaluation, sample_indices

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(data: MNISTData) -> nn.Module:
    """The wong net after 150 clean steps of batch 100 (about 95 % clean on the embedded test split)."""
    return train_adversarial(ModelSpec("wong"), TrainConfig(steps=150, batch_size=100, lr=5e-3, seed=2),
                             AdversarialConfig(eps=0.0, guard_images=0), data, device=CPU).model


def pixels(data: MNISTData, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return data.test_images[idx].unsqueeze(1).float().div(255), data.test_labels[idx]


class TestSample:
    def test_seeded_stratified_and_the_same_for_every_model(self, data):
        labels = data.test_labels.numpy()
        a, b = sample_indices(labels, 500, seed=0), sample_indices(labels, 500, seed=0)
        assert np.array_equal(a, b) and len(set(a.tolist())) == 500
        assert not np.array_equal(a, sample_indices(labels, 500, seed=1))
        share = np.bincount(labels, minlength=10) / len(labels) * 500
        assert np.all(np.abs(np.bincount(labels[a], minlength=10) - share) < 1)  # largest remainder
        assert not np.array_equal(a, np.arange(500))  # not the first images

    def test_more_images_than_the_split_is_refused(self, data):
        with pytest.raises(ConfigError, match="images must be at most the 2,000 test images, got 5,000"):
            sample_indices(data.test_labels.numpy(), 5000, 0)


class TestScoring:
    def test_worst_case_is_per_image_over_every_attack_and_needs_clean_correct(self):
        clean = np.array([True, True, True, False])
        r = EpsResult(0.3, clean, {"pgd": np.array([True, True, False, False]),
                                   "autoattack": np.array([True, False, True, False])}, {})
        assert r.worst.tolist() == [True, False, False, False]
        assert r.accuracy() == 25.0 and r.accuracy("pgd") == 50.0
        assert r.gap == 0.0 and not r.flagged

    def test_a_gap_above_one_point_is_flagged(self):
        clean = np.ones(100, bool)
        pgd = np.ones(100, bool)
        aa = np.ones(100, bool)
        aa[:2] = False
        r = EpsResult(0.3, clean, {"pgd": pgd, "autoattack": aa}, {})
        assert r.gap == pytest.approx(2.0) and r.flagged
        aa[1] = True
        assert not EpsResult(0.3, clean, {"pgd": pgd, "autoattack": aa}, {}).flagged

    def test_robust_requires_a_correct_clean_prediction(self, data):
        class Constant(nn.Module):  # reads every image as a 3: no attack can change it
            def forward(self, x):
                out = torch.zeros(len(x), 10) + 0 * x.flatten(1).sum(1, keepdim=True)
                out[:, 3] = 1.0
                return out

        idx = sample_indices(data.test_labels.numpy(), 200, 0)
        x, y = pixels(data, idx)
        [r] = robust_evaluation(Constant(), x, y, RobustEvalConfig(attacks=("pgd",), pgd_steps=2, pgd_restarts=1),
                                device=CPU)
        assert r.accuracy("pgd") == pytest.approx(100.0 * float((y == 3).float().mean()))


class TestAutoAttack:
    def test_autoattack_never_reports_more_robustness_than_pgd(self, tiny, data):
        """AutoAttack standard and a one-restart 10-step PGD on the same 40 images at ε = 0.08."""
        pytest.importorskip("pyautoattack")
        idx = sample_indices(data.test_labels.numpy(), 40, 0)
        x, y = pixels(data, idx)
        config = RobustEvalConfig(eps=(0.08,), attacks=("pgd", "autoattack"), pgd_steps=10, pgd_restarts=1)
        [r] = robust_evaluation(tiny, x, y, config, device=CPU)
        assert 0 < r.accuracy("pgd") < 100 * float(r.clean.mean())  # a model that is neither broken nor immune
        assert r.accuracy("autoattack") <= r.accuracy("pgd")
        assert r.accuracy() <= min(r.accuracy("pgd"), r.accuracy("autoattack"))

    def test_the_apgd_version_pins_its_restarts_and_targets_the_standard_version_keeps_its_own(self, tiny):
        """What an apgd cell means does not follow pyautoattack's defaults: APGD-CE from 5 starts,
        APGD-T on 9 targets; the standard version runs APGD-CE once, then FAB-T and Square."""
        pytest.importorskip("pyautoattack")
        from robustdigits.grid.runner import build_autoattack
        apgd = build_autoattack(tiny, 0.1, "apgd", device=CPU, seed=0)
        assert apgd.attacks_to_run == ["apgd-ce", "apgd-t"]
        assert (apgd.apgd.n_restarts, apgd.apgd_targeted.n_target_classes, apgd.apgd.n_iter) == (5, 9, 100)
        standard = build_autoattack(tiny, 0.1, "standard", device=CPU, seed=0)
        assert standard.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
        assert (standard.apgd.n_restarts, standard.apgd_targeted.n_target_classes) == (1, 9)

    def test_every_model_falls_to_zero_at_a_large_eps(self, tiny, data):
        pytest.importorskip("pyautoattack")
        idx = sample_indices(data.test_labels.numpy(), 40, 0)
        x, y = pixels(data, idx)
        [r] = robust_evaluation(tiny, x, y, RobustEvalConfig(eps=(0.5,), attacks=("pgd", "apgd")), device=CPU)
        assert r.accuracy() == 0.0


class TestTransfer:
    def test_a_transfer_from_the_model_itself_is_its_white_box_pgd(self, tiny, data):
        """The same steps, restarts and seed on the same network: the same per-image outcome."""
        idx = sample_indices(data.test_labels.numpy(), 60, 0)
        x, y = pixels(data, idx)
        config = RobustEvalConfig(eps=(0.08,), attacks=("pgd", "transfer"), pgd_steps=5, pgd_restarts=2,
                                  source="itself")
        [r] = robust_evaluation(tiny, x, y, config, device=CPU, source=tiny)
        assert 0 < r.accuracy("pgd") < 100 * float(r.clean.mean())
        assert np.array_equal(r.robust["transfer"], r.robust["pgd"])

    def test_a_transfer_from_another_network_is_weaker_than_white_box(self, tiny, data):
        other = train_adversarial(ModelSpec("wong"), TrainConfig(steps=60, batch_size=100, lr=5e-3, seed=7),
                                  AdversarialConfig(eps=0.0, guard_images=0), data, device=CPU).model
        idx = sample_indices(data.test_labels.numpy(), 60, 0)
        x, y = pixels(data, idx)
        config = RobustEvalConfig(eps=(0.08,), attacks=("pgd", "transfer"), pgd_steps=5, pgd_restarts=1,
                                  source="other")
        [r] = robust_evaluation(tiny, x, y, config, device=CPU, source=other)
        assert r.accuracy("pgd") < r.accuracy("transfer") <= 100 * float(r.clean.mean())
        both = r.clean & r.robust["pgd"] & r.robust["transfer"]  # the worst case counts the transfer too
        assert r.accuracy() == pytest.approx(100 * float(both.mean()))

    def test_a_black_box_attack_beating_the_gradients_is_flagged_as_masking(self):
        clean = np.ones(100, bool)
        pgd, transfer = np.ones(100, bool), np.ones(100, bool)
        pgd[:10], transfer[:13] = False, False  # white box leaves 90 %, the transfer 87 %
        r = EpsResult(0.3, clean, {"pgd": pgd, "transfer": transfer}, {})
        assert r.masking == pytest.approx(3.0)
        assert r.check() == "masking: a black-box attack beats the gradients"
        transfer[10:13] = True
        assert EpsResult(0.3, clean, {"pgd": pgd, "transfer": transfer}, {}).check() == "ok"

    def test_without_a_source_it_is_refused_by_name(self):
        with pytest.raises(ConfigError, match="the transfer attack needs a source model: pass --source MODEL"):
            RobustEvalConfig(attacks=("pgd", "transfer"))


class TestCommand:
    def test_writes_the_report_with_the_images_named(self, tmp_path, tiny, data):
        pytest.importorskip("pyautoattack")
        from robustdigits.checkpoints import save_checkpoint
        from robustdigits.training import empty_metrics

        ckpt = save_checkpoint(tmp_path / "tiny.pt", model_spec=ModelSpec("wong"), train_config=TrainConfig(),
                               dataset=data.info, model=tiny, optimizer=None, metrics=empty_metrics(), epoch=1,
                               step=150, complete=True)
        out = tmp_path / "report"
        result = CliRunner().invoke(main, ["autoattack", str(ckpt), "--data", "embedded", "--eps", "0.05,0.5",
                                           "--attacks", "pgd,apgd", "--images", "30", "--pgd-steps", "5",
                                           "--pgd-restarts", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "autoattack.json").read_text())
        assert report["meta"]["indices"] == sample_indices(data.test_labels.numpy(), 30, 0).tolist()
        assert [r["eps"] for r in report["records"]] == [0.05, 0.5]
        assert report["records"][1]["worst_case_accuracy"] == 0.0
        assert "worst case (%)" in (out / "autoattack.md").read_text()
        assert not (out / "state").exists() or not any((out / "state").iterdir())

    def test_the_transfer_column_names_its_source(self, tmp_path, tiny, data):
        from robustdigits.checkpoints import save_checkpoint
        from robustdigits.training import empty_metrics

        ckpt = save_checkpoint(tmp_path / "tiny.pt", model_spec=ModelSpec("wong"), train_config=TrainConfig(),
                               dataset=data.info, model=tiny, optimizer=None, metrics=empty_metrics(), epoch=1,
                               step=150, complete=True)
        out = tmp_path / "report"
        result = CliRunner().invoke(main, ["autoattack", str(ckpt), "--data", "embedded", "--eps", "0.08,0.3",
                                           "--attacks", "pgd,transfer", "--source", str(ckpt), "--images", "30",
                                           "--pgd-steps", "3", "--pgd-restarts", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        report = json.loads((out / "autoattack.json").read_text())
        tag = report["meta"]["config"]["source"]
        assert tag.startswith("tiny-") and f"transfer from {tag} (%)" in (out / "autoattack.md").read_text()
        record = report["records"][0]
        assert record["robust_accuracy"]["transfer"] == record["robust_accuracy"]["pgd"]  # from itself
        text = " ".join((out / "autoattack.md").read_text().split())
        row = "; the worst case of pgd, transfer: not AutoAttack, an upper bound) |"
        assert "| this model (tiny-" in text and row in text  # beside the anchors, never an empty AutoAttack cell

    def test_the_report_says_how_the_model_was_trained(self):
        """A study row's checkpoint records its adversarial training in its metrics: never 'trained naturally'."""
        from types import SimpleNamespace

        from robustdigits.cli.robust import describe_training

        def ckpt(metrics):
            return SimpleNamespace(model_spec=ModelSpec("textbook"), train_config=TrainConfig(), adversarial=None,
                                   step=2814, metrics=metrics)

        assert describe_training(ckpt({"adversarial_training": ["PGD adversarial training (ε = 0.3)"]})) == (
            "textbook, adversarially trained by the robustness study: PGD adversarial training (ε = 0.3) (2,814 SGD "
            "steps, lr 0.01, momentum 0.5)")
        assert describe_training(ckpt({})).startswith("textbook, trained naturally (2,814 SGD steps")

    @pytest.mark.parametrize("args, message", [
        (["--eps", "0.3,x"], "'0.3,x' is not a comma-separated list of numbers"),
        (["--eps", "1.5"], "eps must be in (0.0, 1.0], got 1.5"),
        (["--attacks", "pgd,autoatack"], "unknown attack 'autoatack' (did you mean 'autoattack'?)"),
        (["--images", "0"], "images must be >= 1, got 0"),
    ])
    def test_bad_input_is_one_line_exit_2(self, args, message):
        result = CliRunner().invoke(main, ["autoattack", "textbook", "--data", "embedded", *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())

    def test_a_missing_package_names_the_install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "pyautoattack", None)
        result = CliRunner().invoke(main, ["autoattack", "textbook", "--data", "embedded"])
        assert result.exit_code == 1
        assert "pip install 'robustdigits[robust]'" in result.output
        assert len(result.output.strip().splitlines()) == 1


class TestConvergence:
    def test_more_steps_or_restarts_never_raise_robust_accuracy(self, tiny, data):
        from robustdigits.studies.robust_eval import pgd_convergence

        idx = sample_indices(data.test_labels.numpy(), 60, 0)
        x, y = pixels(data, idx)
        grid = pgd_convergence(tiny, x, y, 0.08, device=CPU, steps=(1, 3, 10), restarts=(1, 3))
        assert grid.shape == (2, 3)
        assert np.all(np.diff(grid, axis=1) <= 0) and np.all(grid[1] <= grid[0])
        with torch.no_grad():
            clean = 100 * float((tiny(((x - 0.1307) / 0.3081)).argmax(1) == y).float().mean())
        assert grid.max() <= clean and grid.min() < clean  # the attack does something, robust needs clean

    def test_fooled_once_stays_fooled(self, tiny, data):
        from robustdigits.attacks.linf import pgd_fooled_by_step

        from robustdigits.data.pixels import PixelInput

        x, y = pixels(data, np.arange(50))
        fooled = pgd_fooled_by_step(PixelInput(tiny).eval(), x, y, 0.1, steps=8)
        assert fooled.shape == (8, 50)
        assert torch.all(fooled[1:] >= fooled[:-1])

    @pytest.mark.parametrize("args, message", [(["--eps", "0"], "eps must be in (0.0, 1.0], got 0.0"),
                                               (["--images", "0"], "images must be >= 1, got 0")])
    def test_bad_input_is_one_line_exit_2(self, args, message):
        result = CliRunner().invoke(main, ["convergence", "textbook", "--data", "embedded", *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
