"""A store entry proves it is what its name says: a checkpoint in a variant's place is that
variant (network, settings, data), ``train`` never writes there and names its own runs by
their data, and a cell holds the spec of the key it is stored under."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from robustdigits.checkpoints import checkpoint_path
from robustdigits.cli import main
from robustdigits.data.datasets import load_embedded, write_idx
from robustdigits.errors import DataError
from robustdigits.grid.cells import CellStore
from robustdigits.studies import ablation
from tests.test_reliability import one_line_error


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTDIGITS_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setattr(ablation, "study_steps", lambda epochs, batch: 20)  # a tiny budget
    return CliRunner()


def slot(tmp_path, variant: str):
    return checkpoint_path(tmp_path / "checkpoints", load_embedded().info, variant, 1)


def trained_file(runner, tmp_path, *extra: str):
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "20", "--threads", "1", *extra])
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "checkpoints" / "train").glob("*/*.pt")
    return path


def test_train_never_writes_a_variants_place(runner, tmp_path):
    target = slot(tmp_path, "textbook-momentum")
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "20", "--checkpoint", str(target)])
    error = one_line_error(result, exit_code=2)
    assert f"Invalid value for '--checkpoint': {target} is a variant's place in the checkpoint cache" in error
    assert not target.exists()


@pytest.mark.parametrize("command", [["evaluate", "textbook-momentum"],
                                     ["bench", "--models", "textbook-momentum", "--attacks", "fgsm", "--n", "4"],
                                     ["attack", "--model", "textbook-momentum", "--steps", "2"]])
def test_a_checkpoint_copied_into_a_variants_place_is_refused_by_name(runner, tmp_path, command):
    target = slot(tmp_path, "textbook-momentum")
    target.parent.mkdir(parents=True)
    shutil.copy(trained_file(runner, tmp_path), target)
    error = one_line_error(runner.invoke(main, command))
    assert f"{target} sits in variant 'textbook-momentum''s place (seed 1) but holds network tutorial (expected " \
           "textbook)" in error
    assert "training settings steps 20 (expected" not in error  # the budget matches: only what differs is named
    assert "it is not that variant; move it away and run 'robustdigits ablate --variants textbook-momentum'" in error


def test_a_variant_trained_with_other_settings_is_refused_by_name(runner, tmp_path, monkeypatch):
    assert runner.invoke(main, ["ablate", "--variants", "textbook", "--threads", "1"]).exit_code == 0
    monkeypatch.setattr(ablation, "study_steps", lambda epochs, batch: 30)  # the ablation's budget changed since
    error = one_line_error(runner.invoke(main, ["evaluate", "textbook"]))
    assert "but holds training settings steps 20 (expected 30)" in error


def test_a_second_identical_train_reports_the_finished_run(runner, tmp_path):
    path = trained_file(runner, tmp_path)
    before = path.read_bytes()
    again = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "20", "--threads", "1"])
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())
    assert said.startswith(f"already trained: {path} (20 steps on embedded data, test accuracy ")
    assert said.endswith("%); pass --overwrite to train it again") and path.read_bytes() == before
    redo = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "20", "--threads", "1", "--overwrite"])
    assert redo.exit_code == 0 and "already trained" not in redo.output


def test_trains_of_the_same_settings_on_other_data_are_other_runs(runner, tmp_path):
    embedded = trained_file(runner, tmp_path)
    data = load_embedded()
    other = tmp_path / "fashion"
    other.mkdir()
    for name, array in [("train-images-idx3-ubyte", 255 - data.train_images[:512]),
                        ("train-labels-idx1-ubyte", data.train_labels[:512]),
                        ("t10k-images-idx3-ubyte", 255 - data.test_images[:128]),
                        ("t10k-labels-idx1-ubyte", data.test_labels[:128])]:
        write_idx(other / name, array)
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "20", "--threads", "1",
                                  "--data", str(other)])
    assert result.exit_code == 0, result.output
    paths = sorted((tmp_path / "checkpoints" / "train").glob("*/*.pt"))
    assert len(paths) == 2 and embedded in paths
    assert {p.parent.name.split("-")[0] for p in paths} == {"embedded", "idx"}


def test_a_cell_whose_spec_is_not_its_key_is_named(tmp_path):
    from robustdigits.grid.cells import CellSpec

    store = CellStore(tmp_path / "cells")
    spec = CellSpec("d" * 64, "embedded", "m", "h" * 64, "fgsm", {"eps": 0.3}, "first:4")
    other = CellSpec("d" * 64, "embedded", "m", "h" * 64, "fgsm", {"eps": 0.2}, "first:4")
    folder = store.root / spec.key
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({"spec": other.to_dict(), "seconds": 1.0, "machine": {}}))
    import numpy as np

    np.savez(folder / "samples.npz", index=np.arange(4))
    with pytest.raises(DataError, match=rf"{folder} holds the cell {other.key}, not {spec.key}"):
        store.load(spec)


@pytest.mark.parametrize("meta", ['[1]', '{"spec": 3, "seconds": 1, "machine": {}}', '{"spec": {"x": 1}}',
                                  '{"seconds": "fast"}'])
def test_a_cell_json_of_the_wrong_structure_is_named(tmp_path, meta):
    import numpy as np

    from robustdigits.grid.cells import CellSpec

    store = CellStore(tmp_path / "cells")
    spec = CellSpec("d" * 64, "embedded", "m", "h" * 64, "fgsm", {"eps": 0.3}, "first:4")
    folder = store.root / spec.key
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(meta)
    np.savez(folder / "samples.npz", index=np.arange(4))
    with pytest.raises(DataError, match=rf"cell {folder} is unreadable .*delete that folder or rerun with --fresh"):
        store.load(spec)


def test_a_checkpoint_in_an_adversarial_rows_place_must_be_that_row(runner, tmp_path, data):
    import torch

    from robustdigits.errors import CheckpointError
    from robustdigits.studies.adversarial import adversarial_checkpoint
    from robustdigits.studies.robustness import RobustnessConfig

    target = slot(tmp_path, "adv-pgd")
    target.parent.mkdir(parents=True)
    shutil.copy(trained_file(runner, tmp_path), target)  # a normally trained tutorial net
    with pytest.raises(CheckpointError, match=r"sits in the place of the adversarially trained row 'adv-pgd' but "
                                              "was trained with other settings, data or network"):
        adversarial_checkpoint("adv-pgd", data, tmp_path / "checkpoints", RobustnessConfig(),
                               device=torch.device("cpu"))
