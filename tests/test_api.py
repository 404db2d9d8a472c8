"""The public helpers: pixels in one call, a variant by name from any folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import robustdigits
from robustdigits.errors import CheckpointError, ConfigError


def test_load_pixels_gives_art_ready_arrays():
    x, y = robustdigits.load_pixels("train", "embedded")
    assert x.shape == (8000, 1, 28, 28) and x.dtype == np.float32 and 0.0 == x.min() and x.max() == 1.0
    assert y.shape == (8000,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    x_test, _ = robustdigits.load_pixels()  # the test split of --data auto: embedded without full MNIST
    assert x_test.shape == (2000, 1, 28, 28)


def test_load_pixels_names_a_bad_split():
    with pytest.raises(ConfigError, match="unknown split 'valid'; choose one of: train, test"):
        robustdigits.load_pixels("valid")


def test_load_variant_not_trained_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as error:
        robustdigits.load_variant("textbook")
    message = str(error.value)
    assert "variant 'textbook' (seed 1) has no checkpoint on embedded data (/" in message  # an absolute path
    assert "train it with 'robustdigits ablate --variants textbook'" in message
    with pytest.raises(ConfigError, match="unknown variant 'lenet'"):
        robustdigits.load_variant("lenet")


def test_load_variant_finds_an_ablation_checkpoint_from_any_folder(tmp_path, monkeypatch, small_data):
    from robustdigits.studies import ablation
    from robustdigits.studies.ablation import AblationConfig, run_ablation
    from robustdigits.variants import get_variant

    monkeypatch.setattr(ablation, "study_steps", lambda epochs, batch: 10)  # a tiny budget
    run_ablation(small_data, AblationConfig(), device=torch.device("cpu"),
                 checkpoints=robustdigits.api.default_checkpoints(), variants=[get_variant("tutorial")])
    monkeypatch.chdir(tmp_path)
    model = robustdigits.load_variant("tutorial", "embedded")
    assert not model.training and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    classifier = robustdigits.make_classifier(model)
    assert classifier.predict(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)


def test_the_attack_is_robustdigits_attacks_and_a_users_own_attacks_module_is_untouched(tmp_path):
    """The repository's attacks/ folder is installed as robustdigits.attacks: outside the
    checkout there is no top-level ``attacks`` module, and a user's own ``attacks.py`` is
    the one ``import attacks`` finds, beside ours."""
    import subprocess
    import sys

    (tmp_path / "attacks.py").write_text("MINE = True\n")
    code = ("import importlib.util, attacks; from robustdigits import RegularizedGradientDescent as A; "
            "from robustdigits.attacks import RegularizedGradientDescent as B; from art.attacks import EvasionAttack; "
            "print(attacks.MINE, A is B, issubclass(A, EvasionAttack), A.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True", "robustdigits.attacks.regularized_gd"]
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    found = subprocess.run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('attacks'))"],
                           cwd=elsewhere, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "None"
