"""What the terminal shows: tables that fit without cutting a number, progress that counts
finished work after a resume, a line per finished unit when output goes to a file."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from robustdigits.cli import app, main

REPORTS = Path(__file__).resolve().parents[1] / "reports"


@pytest.mark.parametrize(("report", "width", "all_shown"), [
    ("mnist/bench.json", 120, False), ("mnist/bench.json", 80, False), ("mnist/bench.json", 200, True),
    ("robustness.json", 160, False),
    ("robustness.json", 250, True), ("mnist/ablation.json", 80, False), ("mnist/ablation.json", 200, True),
])
def test_a_table_never_cuts_or_splits_a_value_and_names_the_columns_it_leaves_out(monkeypatch, report, width,
                                                                                   all_shown):
    table = json.loads((REPORTS / report).read_text())["table"]
    out = io.StringIO()
    monkeypatch.setattr(app, "console", Console(file=out, width=width, force_terminal=False))
    app.render("t", table["columns"], table["rows"])
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    lines = text.splitlines()
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == len(table["rows"])
    for line, row in zip(body, table["rows"]):
        shown = [cell.strip() for cell in line.strip("│").split("│")]
        assert shown == [app.fmt(v) for v in row[:len(shown)]]  # whole values, in order, from the first column
        assert len(shown) == len(row) if all_shown else 2 <= len(shown) < len(row)
    if not all_shown:
        left = table["columns"][len(shown):]
        assert f"{', '.join(left)}: not shown at this width ({width} columns); every column is in the report's " \
            ".md, .csv and .json" in " ".join(text.split())


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(tmp_path / "no-mnist-here"))
    monkeypatch.setenv("ROBUSTDIGITS_CHECKPOINTS", str(tmp_path / "checkpoints"))
    import robustdigits.studies.ablation

    monkeypatch.setattr(robustdigits.studies.ablation, "study_steps", lambda epochs, batch: 20)  # a tiny budget
    return CliRunner()


def test_after_a_resume_the_run_count_includes_the_reused_runs_and_each_run_gets_a_line(runner):
    first = runner.invoke(main, ["ablate", "--variants", "tutorial", "--threads", "1"])
    assert first.exit_code == 0, first.output
    assert "run 1 of 1 done: tutorial seed 1, test acc" in first.output  # not a terminal: a line per run
    result = runner.invoke(main, ["ablate", "--variants", "tutorial,textbook", "--threads", "1"])
    assert result.exit_code == 0, result.output
    done = [line for line in result.output.splitlines() if line.startswith("run ")]
    assert len(done) == 1 and done[0].startswith("run 2 of 2 done: textbook seed 1, test acc"), result.output


def test_train_logs_a_line_per_epoch_when_not_on_a_terminal(runner):
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "260", "--batch-size", "64",
                                  "--threads", "1"])
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.output.splitlines() if re.match(r"epoch \d+: ", line)]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2", "epoch 3"]
    assert epochs[-1].startswith("epoch 3: step 260 of 260, test acc")


def small_idx_cache(cache: Path) -> None:
    """Four IDX files in the data cache's folder: other data than the embedded subset."""
    from robustdigits.data.datasets import load_embedded, write_idx

    data = load_embedded()
    raw = cache / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", data.train_images[:256])
    write_idx(raw / "train-labels-idx1-ubyte", data.train_labels[:256])
    write_idx(raw / "t10k-images-idx3-ubyte", data.test_images[:64])
    write_idx(raw / "t10k-labels-idx1-ubyte", data.test_labels[:64])


def test_when_data_auto_changes_dataset_it_is_said_once_after_the_commands_checks(runner, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(cache))
    first = runner.invoke(main, ["evaluate", "tutorial"])  # the embedded subset, as always: nothing to say
    assert "note: --data auto now means" not in first.output
    small_idx_cache(cache)
    args = ["train", "--model", "tutorial", "--steps", "3", "--threads", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert ("note: --data auto now means idx data (it meant embedded data before): checkpoints trained on embedded "
            "data do not apply, so a command that needs a variant trains it on idx data first, saying so; pass --data "
            "embedded to keep using the embedded data and its checkpoints") in " ".join(result.output.split())
    assert (cache / "last-auto-data.txt").read_text() == "idx\n"
    again = runner.invoke(main, [*args, "--overwrite"])
    assert again.exit_code == 0 and "note: --data auto" not in again.output  # once


def test_a_data_cache_named_with_a_tilde_is_expanded(monkeypatch, tmp_path):
    from robustdigits.data.fetch import default_data_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ROBUSTDIGITS_DATA", "~/mnist-cache")
    assert default_data_dir() == tmp_path / "mnist-cache"
