"""Adversarial training: the adversaries' balls, the guard, the gain in robustness, resume,
the recipe and the settings' errors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from robustdigits.attacks.linf import fgsm_rs, n_fgsm, pgd, trades_adversary

from robustdigits.checkpoints import load_checkpoint
from robustdigits.cli import main
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.datasets import MNISTData
from robustdigits.data.pixels import PixelInput
from robustdigits.errors import ConfigError
from robustdigits.models import count_parameters, get_model
from robustdigits.robust_training import (
    RECIPES,
    AdversarialConfig,
    Guard,
    Recipe,
    eps_at,
    lr_at,
    pgd_accuracy,
    train_adversarial,
)

CPU = torch.device("cpu")


def pixels_of(data: MNISTData, n: int, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = (data.test_images, data.test_labels) if split == "test" else (data.train_images,
                                                                                    data.train_labels)
    return images[:n].unsqueeze(1).float().div(255), labels[:n]


@pytest.fixture(scope="module")
def natural(data: MNISTData):
    """The wong net trained 300 steps of batch 100 on clean images (ε = 0: the same loop)."""
    return train_adversarial(ModelSpec("wong"), TrainConfig(steps=300, batch_size=100, lr=5e-3, seed=1),
                             AdversarialConfig(method="fgsm-rs", eps=0.0, guard_images=0), data, device=CPU)


@pytest.fixture(scope="module")
def robust(data: MNISTData):
    """The same net and budget with FGSM-RS at ε = 0.1."""
    return train_adversarial(ModelSpec("wong"), TrainConfig(steps=300, batch_size=100, lr=5e-3, seed=1),
                             AdversarialConfig(method="fgsm-rs", eps=0.1, guard_images=300), data, device=CPU)


class TestNetworks:
    def test_parameter_counts_as_documented(self):
        assert count_parameters(get_model("wong")) == 166_406
        assert count_parameters(get_model("wong", width=2)) == 662_786
        assert count_parameters(get_model("lenet-relu")) == 431_080

    def test_lenet_relu_has_relus_after_both_pooled_convolutions(self):
        kinds = [type(m).__name__ for m in get_model("lenet-relu").features]
        assert kinds.count("ReLU") == 3
        assert kinds[kinds.index("MaxPool2d") + 1] == "ReLU"

    @pytest.mark.parametrize("name", ["wong", "lenet-relu"])
    def test_logits_out(self, name):
        assert get_model(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


class TestAdversaries:
    @pytest.mark.parametrize("attack", ["fgsm_rs", "pgd", "trades"])
    def test_inside_the_ball_and_the_pixel_range(self, natural, data, attack):
        model = PixelInput(natural.model).eval()
        x, y = pixels_of(data, 64)
        eps = 0.2
        if attack == "fgsm_rs":
            adv = fgsm_rs(model, x, y, eps)
        elif attack == "pgd":
            adv = pgd(model, x, y, eps, steps=5, restarts=2)
        else:
            adv = trades_adversary(model, x, eps, steps=3)
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1

    def test_n_fgsm_may_leave_the_ball_but_not_the_pixel_range(self, natural, data):
        model = PixelInput(natural.model).eval()
        x, y = pixels_of(data, 64)
        adv = n_fgsm(model, x, y, 0.1)
        assert (adv - x).abs().max() <= 0.3 + 1e-6  # noise 2 ε + step ε
        assert (adv - x).abs().max() > 0.1
        assert adv.min() >= 0 and adv.max() <= 1

    def test_pgd_fools_a_natural_model_far_more_than_noise(self, natural, data):
        model = PixelInput(natural.model).eval()
        x, y = pixels_of(data, 200)
        with torch.no_grad():
            noisy = (model((x + torch.empty_like(x).uniform_(-0.2, 0.2)).clamp(0, 1)).argmax(1) == y).float().mean()
            attacked = (model(pgd(model, x, y, 0.2, steps=10)).argmax(1) == y).float().mean()
        assert attacked < noisy - 0.5, (attacked, noisy)

    def test_pgd_restarts_on_survivors_give_what_restarts_on_every_image_give(self, natural, data):
        """Later restarts run only on images no earlier one fooled: per image, the same result
        as restarting every image from the same random starts (the reference, written out)."""
        model = PixelInput(natural.model).eval()
        x, y = pixels_of(data, 200)
        eps, steps, restarts = 0.1, 8, 4
        torch.manual_seed(3)
        fooled = torch.zeros(len(x), dtype=torch.bool)
        best = x.clone()
        for _ in range(restarts):  # every image, every restart
            adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(x - eps, x + eps).clamp(0, 1)
            for _ in range(steps):
                adv = adv.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(adv), y), adv)
                adv = (adv + 2.5 * eps / steps * grad.sign()).clamp(x - eps, x + eps).clamp(0, 1)
            with torch.no_grad():
                wrong = model(adv).argmax(1) != y
            best[wrong & ~fooled] = adv.detach()[wrong & ~fooled]
            fooled |= wrong
        torch.manual_seed(3)
        ours = pgd(model, x, y, eps, steps=steps, restarts=restarts)
        with torch.no_grad():
            ours_wrong = model(ours).argmax(1) != y
        assert 0 < int(fooled.sum()) < len(x)  # some images survive the first restart: the subset path runs
        assert torch.equal(ours_wrong, fooled)
        assert torch.allclose(ours[fooled], best[fooled], atol=1e-6)

    @pytest.mark.parametrize("kwargs, message", [
        ({"eps": 1.5}, "eps must be in [0.0, 1.0], got 1.5"),
        ({"eps": 0.3, "alpha": 0.0}, "alpha must be > 0.0, got 0.0"),
    ])
    def test_bad_settings_are_named(self, kwargs, message):
        x = torch.zeros(2, 1, 28, 28)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            fgsm_rs(PixelInput(get_model("wong")), x, torch.zeros(2, dtype=torch.long), **kwargs)


class TestSchedules:
    def test_cyclic_rises_to_the_peak_at_two_fifths_and_falls_to_zero(self):
        config, adv = TrainConfig(steps=100, lr=0.01), AdversarialConfig(schedule="cyclic")
        rates = [lr_at(config, adv, s, 100) for s in range(100)]
        assert max(rates) == pytest.approx(0.01, rel=0.02)
        assert rates.index(max(rates)) in (39, 40)
        assert rates[0] < 0.001 and rates[-1] < 0.001

    def test_constant_is_constant(self):
        config = TrainConfig(steps=10, lr=0.01)
        assert {lr_at(config, AdversarialConfig(schedule="constant"), s, 10) for s in range(10)} == {0.01}

    def test_eps_ramps_linearly_then_holds(self):
        adv = AdversarialConfig(eps=0.3, eps_ramp_epochs=2)
        assert eps_at(adv, 0, 10) == pytest.approx(0.015)
        assert eps_at(adv, 9, 10) == pytest.approx(0.15)
        assert eps_at(adv, 19, 10) == pytest.approx(0.3)
        assert eps_at(adv, 50, 10) == 0.3


class TestGuard:
    def test_detects_a_forced_collapse_and_keeps_the_best_weights(self, robust, data):
        net = robust.model
        x, y = pixels_of(data, 300, split="train")
        guard = Guard(x, y, eps=0.1, steps=10)
        assert guard.check(net, 1) is None
        good = {k: v.clone() for k, v in net.state_dict().items()}
        before = guard.history[-1].robust_accuracy
        assert before > 40
        with torch.no_grad():  # the collapse, forced: the last layer's weights scrambled
            net.classifier[2].weight.copy_(torch.randn_like(net.classifier[2].weight))
        try:
            note = guard.check(net, 2)
            assert note is not None and "robustness collapsed at epoch 2" in note and "keeping epoch 1" in note
            assert guard.history[-1].robust_accuracy < before - 20
            assert guard.best_epoch == 1
            assert all(torch.equal(guard.best_state[k], good[k]) for k in good)
        finally:
            net.load_state_dict(good)


class TestRobustness:
    def test_fgsm_rs_training_beats_natural_training_under_pgd(self, natural, robust, data):
        """300 steps of batch 100 on the embedded data; PGD-10 at ε = 0.1 on 300 test images."""
        x, y = pixels_of(data, 300)
        natural_robust, natural_clean = pgd_accuracy(PixelInput(natural.model), x, y, 0.1, steps=10)
        robust_robust, robust_clean = pgd_accuracy(PixelInput(robust.model), x, y, 0.1, steps=10)
        assert robust_robust > natural_robust + 15, (robust_robust, natural_robust)
        assert robust_clean > 80 and natural_clean > 85

    def test_progress_shows_clean_and_adversarial_loss(self, small_data):
        events = []
        train_adversarial(ModelSpec("wong"), TrainConfig(steps=8, batch_size=64, lr=1e-3, log_interval=3),
                          AdversarialConfig(eps=0.1, guard_images=64), small_data, device=CPU,
                          progress=events.append)
        logged = [e for e in events if e.kind == "step" and e.loss is not None]
        assert len(logged) == 3 and all(e.clean_loss is not None and e.clean_loss > 0 for e in logged)
        assert [e.guard_accuracy is not None for e in events if e.kind == "epoch"] == [True]


class TestResume:
    def test_an_interrupted_run_resumes_to_the_same_weights(self, small_data, tmp_path):
        spec, config = ModelSpec("wong"), TrainConfig(epochs=3, batch_size=64, lr=2e-3, seed=3)
        adv = AdversarialConfig(method="pgd", eps=0.2, attack_steps=2, guard_images=64)
        whole = train_adversarial(spec, config, adv, small_data, device=CPU, checkpoint=tmp_path / "whole.pt")

        def stop(event):
            if event.kind == "step" and event.epoch == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_adversarial(spec, config, adv, small_data, device=CPU, checkpoint=tmp_path / "cut.pt",
                              progress=stop)
        assert load_checkpoint(tmp_path / "cut.pt").epoch == 2
        resumed = train_adversarial(spec, config, adv, small_data, device=CPU, checkpoint=tmp_path / "cut.pt",
                                    resume=True)
        for key, value in whole.model.state_dict().items():
            assert torch.equal(value, resumed.model.state_dict()[key]), key
        assert [c.robust_accuracy for c in whole.guard] == [c.robust_accuracy for c in resumed.guard]
        saved = load_checkpoint(tmp_path / "cut.pt")
        assert saved.complete and "resume" not in saved.adversarial  # a finished run keeps only its weights

    def test_resume_with_other_settings_is_refused(self, small_data, tmp_path):
        spec, config = ModelSpec("wong"), TrainConfig(steps=5, batch_size=64)
        train_adversarial(spec, config, AdversarialConfig(eps=0.1, guard_images=64), small_data, device=CPU,
                          checkpoint=tmp_path / "a.pt")
        from robustdigits.errors import CheckpointError
        with pytest.raises(CheckpointError, match="holds another training"):
            train_adversarial(spec, config, AdversarialConfig(eps=0.2, guard_images=64), small_data, device=CPU,
                              checkpoint=tmp_path / "a.pt", resume=True)


class TestRecipe:
    def test_the_recipe_is_stored_and_reloaded_with_the_checkpoint(self, monkeypatch, tmp_path):
        tiny = Recipe("robust", "a tiny stand-in", ModelSpec("wong"), TrainConfig(steps=6, batch_size=64, lr=1e-3),
                      AdversarialConfig(method="fgsm-rs", eps=0.1, guard_images=64))
        monkeypatch.setitem(RECIPES, "robust", tiny)
        path = tmp_path / "robust.pt"
        result = CliRunner().invoke(main, ["train", "--recipe", "robust", "--data", "embedded", "--checkpoint",
                                           str(path), "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "recipe robust: a tiny stand-in" in result.output
        ckpt = load_checkpoint(path)
        assert ckpt.adversarial["recipe"] == "robust"
        assert AdversarialConfig(**ckpt.adversarial["config"]) == tiny.adversarial
        assert ckpt.train_config == tiny.train and ckpt.model_spec == tiny.model
        assert ckpt.build_model()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
        again = CliRunner().invoke(main, ["train", "--recipe", "robust", "--data", "embedded", "--checkpoint",
                                          str(path), "--out", str(tmp_path)])
        assert again.exit_code == 0 and "already trained" in again.output

    def test_the_robustness_study_row_is_the_recipe(self, monkeypatch, tmp_path, small_data):
        from robustdigits.errors import CheckpointError
        from robustdigits.studies.adversarial import adversarial_checkpoint
        from robustdigits.studies.robustness import RobustnessConfig

        tiny = Recipe("robust", "a tiny stand-in", ModelSpec("wong"), TrainConfig(steps=4, batch_size=64, lr=1e-3),
                      AdversarialConfig(method="pgd", attack_steps=2, eps=0.1, guard_images=64))
        monkeypatch.setitem(RECIPES, "robust", tiny)
        said = []
        ckpt = adversarial_checkpoint("adv-recipe", small_data, tmp_path, RobustnessConfig(), device=CPU,
                                      announce=lambda row, path: said.append(row))
        assert said == ["adv-recipe"] and ckpt.adversarial["recipe"] == "robust" and ckpt.complete
        again = adversarial_checkpoint("adv-recipe", small_data, tmp_path, RobustnessConfig(), device=CPU,
                                       announce=lambda row, path: said.append(row))
        assert said == ["adv-recipe"] and again.path == ckpt.path  # found, not retrained
        monkeypatch.setitem(RECIPES, "robust", Recipe("robust", "other", tiny.model, tiny.train,
                                                      AdversarialConfig(eps=0.2, guard_images=64)))
        with pytest.raises(CheckpointError, match="is not the robust recipe on this data"):
            adversarial_checkpoint("adv-recipe", small_data, tmp_path, RobustnessConfig(), device=CPU)

    def test_the_shipped_recipe_is_fully_fixed(self):
        recipe = RECIPES["robust"]
        assert recipe.adversarial.eps == 0.3 and recipe.train.seed == 1
        assert recipe.model.name in ("wong", "lenet-relu")


class TestSettingsErrors:
    @pytest.mark.parametrize("args, message", [
        (["--adversarial", "pgdd"], "did you mean 'pgd'"),
        (["--adversarial", "pgd", "--eps", "1.5"], "eps must be in [0.0, 1.0], got 1.5"),
        (["--adversarial", "pgd", "--step-size", "0"], "step_size must be in (0.0, 1.0], got 0.0"),
        (["--eps", "0.2"], "--eps only apply to adversarial training; add --adversarial"),
        (["--recipe", "robust", "--lr", "0.1"], "--recipe robust fixes every training setting; drop --lr"),
        (["--recipe", "robustt"], "did you mean 'robust'"),
    ])
    def test_one_line_naming_the_fix(self, args, message, tmp_path):
        result = CliRunner().invoke(main, ["train", "--data", "embedded", "--checkpoint", str(tmp_path / "x.pt"),
                                           *args])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()), result.output
        assert not (tmp_path / "x.pt").exists()

    @pytest.mark.parametrize("kwargs, message", [
        ({"method": "fgsm"}, "unknown method 'fgsm'"),
        ({"eps": -0.1}, "eps must be in"),
        ({"step_size": -1.0}, "step_size must be in"),
        ({"guard_images": -1}, "guard_images must be >= 0"),
    ])
    def test_config_names_the_parameter(self, kwargs, message):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            AdversarialConfig(**kwargs)
