"""Real faults end in one line, never a traceback, and leave nothing half-written: a
really full disk (a small tmpfs mounted for the test), names too long, attack settings
whose iterates stop being finite, reports that must stay standard JSON."""

from __future__ import annotations

import gc
import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from robustdigits.attacks import RegularizedGradientDescent

from robustdigits.art_bridge import make_classifier
from robustdigits.checkpoints import save_checkpoint
from robustdigits.cli import main
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.errors import ConfigError, DivergedError, OutputError
from robustdigits.fileio import json_text
from robustdigits.grid.cells import CellResult, CellSpec, CellStore
from robustdigits.report.tables import write_report
from tests.test_reliability import one_line_error

CPU = torch.device("cpu")


@pytest.fixture()
def small_disk(tmp_path) -> Iterator[Path]:
    """A real 256 KB file system (tmpfs): writes past it fail with ENOSPC, as on a full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield mount
    finally:
        gc.collect()  # torch may keep the failed file open until its writer is collected
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def test_a_checkpoint_on_a_full_disk_is_one_error_and_leaves_nothing(small_disk, trained, data):
    target = small_disk / "model.pt"
    target.write_bytes(b"the previous checkpoint")
    with pytest.raises(OutputError, match=rf"cannot write {target} \(No space left on device\); free some space or "
                                          "write elsewhere"):
        save_checkpoint(target, model_spec=ModelSpec("textbook"), train_config=TrainConfig(steps=5), dataset=data.info,
                        model=ModelSpec("textbook").build(), optimizer=None, metrics={}, epoch=0, step=0,
                        complete=False)
    assert sorted(p.name for p in small_disk.iterdir()) == ["model.pt"]
    assert target.read_bytes() == b"the previous checkpoint"


def test_train_onto_a_full_disk_exits_1_in_one_line(small_disk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--model", "textbook", "--steps", "3", "--threads", "1",
                                       "--checkpoint", str(small_disk / "t.pt")])
    assert "No space left on device" in one_line_error(result)
    assert list(small_disk.iterdir()) == []


def test_a_cell_on_a_full_disk_is_one_error_and_leaves_nothing(small_disk):
    rng = np.random.default_rng(0)
    n = 200  # 200 noisy 28×28 float images do not compress below 256 KB
    from robustdigits.grid.cells import SAMPLE_FIELDS

    samples = {name: np.zeros(n, dtype=kind) for name, kind in SAMPLE_FIELDS.items()}
    samples["x_adv"] = rng.random((n, 1, 28, 28), dtype=np.float32)
    spec = CellSpec("d" * 64, "embedded", "m", "h" * 64, "fgsm", {"eps": 0.3}, f"first:{n}")
    store = CellStore(small_disk / "cells")
    with pytest.raises(OutputError, match=r"cannot write cell .* \(No space left on device\); free some space"):
        store.save(CellResult(spec, samples, 1.0, {}))
    assert list((small_disk / "cells").iterdir()) == []


@pytest.mark.parametrize(("out", "message"), [
    ("x" * 300, "is longer than the 255 bytes the file system takes; choose a shorter one"),
    ("/".join(["x" * 200] * 25), "bytes long, more than the 4,096 the system takes; choose a shorter one"),
])
def test_an_over_long_out_folder_is_one_line(tmp_path, monkeypatch, out, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["attack", "--steps", "2", "--out", out])
    assert message in one_line_error(result)


@pytest.fixture()
def classifier(trained):
    return make_classifier(trained.model.eval(), CPU)


def test_iterates_that_stop_being_finite_stop_the_attack_in_one_line(classifier, data):
    x = data.test_images[:4].float().div(255).unsqueeze(1).numpy()
    attack = RegularizedGradientDescent(classifier, learning_rate=1e38, penalty=1e38, clip=False, max_iter=20,
                                        init="reference")
    with pytest.raises(DivergedError, match=r"the attack's iterates stopped being finite by step \d+ \(learning_rate "
                                            r"1e\+38, penalty 1e\+38, clip False\): lower learning_rate or penalty"):
        attack.generate(x, y=np.ones(4, dtype=np.int64))


def test_noise_beyond_float32_is_refused(classifier, data):
    x = data.test_images[:2].float().div(255).unsqueeze(1).numpy()
    with pytest.raises(ConfigError, match="noise_mean 1e\\+300 and noise_std 0.3 give starting points beyond float32"):
        RegularizedGradientDescent(classifier, noise_mean=1e300, max_iter=2).generate(x, y=np.ones(2, dtype=np.int64))


@pytest.mark.parametrize("targeted", [True, False])
def test_an_empty_batch_gives_an_empty_result(classifier, targeted):
    attack = RegularizedGradientDescent(classifier, targeted=targeted, max_iter=3, init="reference")
    out = attack.generate(np.zeros((0, 1, 28, 28), dtype=np.float32),
                          y=np.zeros(0, dtype=np.int64) if targeted else None)
    assert out.shape == (0, 1, 28, 28) and attack.success_step_.shape == (0,)


def test_the_cli_stops_a_diverging_attack_in_one_line_and_writes_no_json(tmp_path, monkeypatch, trained, data):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model_spec=ModelSpec("textbook"), train_config=TrainConfig(steps=600, momentum=0.5),
                    dataset=data.info, model=trained.model, optimizer=None, metrics={}, epoch=1, step=600,
                    complete=True)
    result = CliRunner().invoke(main, ["attack", "--model", str(path), "--eta", "1e38", "--lam", "1e38", "--no-clip",
                                       "--steps", "5", "--out", "o"])
    assert "the attack's iterates stopped being finite" in one_line_error(result)
    assert not list(tmp_path.glob("o/**/results.json"))


def test_reports_are_standard_json_with_null_for_what_is_not_a_number(tmp_path):
    text = json_text({"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": {"d": np.float64("nan")}})
    assert json.loads(text) == {"a": None, "b": [1.0, None, None], "c": {"d": None}}
    write_report(tmp_path, "r", title="t", notes=[], columns=["x"], rows=[[math.nan]], records=[{"x": math.nan}],
                 meta={})
    raw = (tmp_path / "r.json").read_text()
    assert "NaN" not in raw and json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
