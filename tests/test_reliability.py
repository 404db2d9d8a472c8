"""The reliability catalogue (docs/reliability.md): every bad input and fault answered
with one line naming the problem and the fix, a non-zero exit, and nothing lost."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from robustdigits.attacks.regularized_gd import RegularizedGradientDescent

from robustdigits import fileio
from robustdigits.art_bridge import make_classifier
from robustdigits.checkpoints import checkpoint_dir, checkpoint_path, load_checkpoint
from robustdigits.cli import main
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.loader import TensorLoader
from robustdigits.data.pixels import to_pixels
from robustdigits.errors import CheckpointError, ConfigError, DataError, DivergedError, OutputError
from robustdigits.fileio import atomic_path, exclusive, write_text_atomic
from robustdigits.studies import ablation
from robustdigits.training import train

CPU = torch.device("cpu")
SHORT = TrainConfig(steps=8, batch_size=64)


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTDIGITS_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return CliRunner()


def one_line_error(result, exit_code: int = 1) -> str:
    """The single 'Error: …' line of a failed command (and nothing that looks like a traceback)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture()
def tiny_ckpt(small_data, tmp_path) -> Path:
    path = tmp_path / "tiny.pt"
    train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=path)
    return path


def edit_checkpoint(path: Path, **changes) -> None:
    raw = torch.load(path, weights_only=True)
    raw.update(changes)
    torch.save(raw, path)


@pytest.fixture()
def tiny_budget(monkeypatch):
    """The ablation's budget cut to 20 SGD steps, so CLI tests can run it."""
    monkeypatch.setattr(ablation, "study_steps", lambda epochs, batch: 20)


# --- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_path_that_is_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)


def test_empty_and_truncated_checkpoints(tiny_ckpt, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt is not a readable robustdigits checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "cut.pt").write_bytes(tiny_ckpt.read_bytes()[: tiny_ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a readable robustdigits checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match=r"not a readable robustdigits checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_format_version_as_a_string_is_unknown_not_newer(tiny_ckpt):
    edit_checkpoint(tiny_ckpt, format_version="1")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint format '1'"):
        load_checkpoint(tiny_ckpt)


def test_edited_model_arguments(tiny_ckpt):
    edit_checkpoint(tiny_ckpt, model={"name": "tutorial", "kwargs": {"width": 3}})
    with pytest.raises(CheckpointError, match=r"model arguments \{'width': 3\} do not build a 'tutorial' model"):
        load_checkpoint(tiny_ckpt).build_model()


@pytest.mark.parametrize("field", ["model_state", "rng_state"])
def test_resume_with_edited_state_is_refused(tiny_ckpt, small_data, field):
    edit_checkpoint(tiny_ckpt, step=4, complete=False,
                    **{field: {"conv1.weight": torch.zeros(1)} if field == "model_state" else torch.zeros(3)})
    config = TrainConfig(steps=8, batch_size=64)
    with pytest.raises(CheckpointError, match=r"its saved state does not fit a 'tutorial' run"):
        train(ModelSpec("tutorial"), config, small_data, device=CPU, checkpoint=tiny_ckpt, resume=True)


def test_unfinished_variant_is_not_used_by_name(runner, tmp_path, tiny_budget, monkeypatch):
    result = runner.invoke(main, ["ablate", "--variants", "tutorial", "--out", "r"])
    assert result.exit_code == 0, result.output
    path = next(Path("checkpoints").glob("embedded-*/tutorial-seed1.pt"))
    edit_checkpoint(path, complete=False, step=10)
    error = one_line_error(runner.invoke(main, ["evaluate", "tutorial"]))
    assert "variant 'tutorial'" in error and "is unfinished (step 10 of 20)" in error
    assert "robustdigits ablate --variants tutorial" in error
    # a file path is used as asked, with a note
    ok = runner.invoke(main, ["evaluate", str(path)])
    assert ok.exit_code == 0 and "is unfinished (step 10 of 20)" in ok.output


# --- training options and faults --------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "lr must be finite, got nan"),
    (["--lr", "inf"], "lr must be finite, got inf"),
    (["--lr", "1e308"], "lr must be in (0.0, 1000.0], got 1e+308"),
    (["--momentum", "nan"], "momentum must be finite, got nan"),
    (["--seed", str(2**70)], "seed must be <= 9223372036854775807"),
    (["--dropout", "1.5"], "dropout must be in [0.0, 1.0), got 1.5"),
])
def test_bad_training_options_are_refused_before_data_loads(runner, tmp_path, args, message):
    error = one_line_error(runner.invoke(main, ["train", "--steps", "5", *args]), exit_code=2)
    assert message in error and f"Invalid value for '{args[0]}'" in error
    assert not (tmp_path / "checkpoints").exists()


def test_threads_overflow_names_the_option(runner):
    result = runner.invoke(main, ["train", "--threads", str(2**70)])
    assert "--threads" in one_line_error(result, exit_code=2)


def test_divergence_stops_before_saving(small_data, tmp_path):
    with pytest.raises(DivergedError, match=r"training diverged .*lower the learning rate \(lr 1000.0\)"):
        train(ModelSpec("textbook"), TrainConfig(steps=40, lr=1000.0, log_interval=1), small_data, device=CPU,
              checkpoint=tmp_path / "nan.pt")
    assert not (tmp_path / "nan.pt").exists()


def test_resume_of_a_missing_checkpoint(runner):
    error = one_line_error(runner.invoke(main, ["train", "--steps", "5", "--checkpoint", "none.pt", "--resume"]))
    assert "nothing to resume: checkpoint" in error and "drop --resume to start a new run" in error


def test_two_runs_on_one_checkpoint(small_data, tmp_path, runner):
    from robustdigits.data.datasets import EMBEDDED_SHA256

    path = (tmp_path / "checkpoints" / "train" / f"embedded-{EMBEDDED_SHA256[:12]}" /
            "tutorial-lr0.01-m0.5-bs64-steps5-seed1.pt")  # train's default
    with exclusive(path, "checkpoint"):
        with pytest.raises(Exception, match=r"being written by another robustdigits process"):
            train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=path)
        error = one_line_error(runner.invoke(main, ["train", "--model", "tutorial", "--steps", "5"]))
        assert f"checkpoint {path} is being written by another robustdigits process" in error
    assert not path.exists()


def test_no_overwrite_is_checked_under_the_lock(small_data, tmp_path):
    path = tmp_path / "t.pt"
    train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"exists; pass --resume to continue it or --overwrite"):
        train(ModelSpec("tutorial"), SHORT, small_data, device=CPU, checkpoint=path, overwrite=False)
    assert path.read_bytes() == before


def test_two_ablations_on_one_checkpoint_folder(runner, data, tiny_budget, tmp_path):
    with exclusive(checkpoint_dir("checkpoints", data.info), "checkpoint folder"):
        error = one_line_error(runner.invoke(main, ["ablate", "--variants", "tutorial", "--out", "r"]))
    assert f"checkpoint folder {tmp_path}/checkpoints/embedded-" in error and "another robustdigits process" in error


def test_fresh_ablation_interrupted_keeps_the_finished_checkpoint(runner, data, tiny_budget, monkeypatch):
    assert runner.invoke(main, ["ablate", "--variants", "tutorial", "--out", "r"]).exit_code == 0
    path = checkpoint_path("checkpoints", data.info, "tutorial")
    before = path.read_bytes()
    real = ablation.train

    def interrupted(*args, **kwargs):
        kwargs["progress"] = lambda event: (_ for _ in ()).throw(KeyboardInterrupt) if event.step == 10 else None
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation, "train", interrupted)
    result = runner.invoke(main, ["ablate", "--variants", "tutorial", "--out", "r", "--fresh"])
    assert result.exit_code == 130 and "interrupted: no half-written file was left" in result.output
    assert path.read_bytes() == before and load_checkpoint(path).complete


def test_interrupted_ablation_resumes_to_the_uninterrupted_result(runner, tmp_path, tiny_budget, monkeypatch):
    # --jobs 1: the runs train in this process, where the interruption is patched in (workers:
    # tests/test_grid_executor.py's Ctrl-C test)
    args = ["ablate", "--variants", "tutorial,textbook", "--threads", "1", "--jobs", "1"]
    assert runner.invoke(main, [*args, "--out", "whole", "--checkpoints", "c1"]).exit_code == 0
    real = ablation.train
    calls = []

    def interrupted(variant_model, *a, **kwargs):
        calls.append(variant_model.name)
        if len(calls) == 2:
            kwargs["progress"] = lambda event: (_ for _ in ()).throw(KeyboardInterrupt) if event.step == 5 else None
        return real(variant_model, *a, **kwargs)

    monkeypatch.setattr(ablation, "train", interrupted)
    first = runner.invoke(main, [*args, "--out", "parts", "--checkpoints", "c2"])
    assert first.exit_code == 130 and "rerun the same command to continue" in first.output
    assert not (tmp_path / "parts").exists()  # no partial report
    kept = next((tmp_path / "c2").glob("embedded-*/tutorial-seed1.pt"))
    stamp = kept.stat().st_mtime_ns
    monkeypatch.setattr(ablation, "train", real)
    assert runner.invoke(main, [*args, "--out", "parts", "--checkpoints", "c2"]).exit_code == 0
    assert kept.stat().st_mtime_ns == stamp  # the finished variant was reused, not retrained
    whole = json.loads((tmp_path / "whole" / "ablation.json").read_text())["records"]
    parts = json.loads((tmp_path / "parts" / "ablation.json").read_text())["records"]
    assert [r["accuracies"] for r in parts] == [r["accuracies"] for r in whole]


# --- output folders ---------------------------------------------------------------------------------


def test_out_under_a_regular_file_is_refused_before_training(runner, tmp_path):
    (tmp_path / "afile").write_text("x")
    error = one_line_error(runner.invoke(main, ["train", "--steps", "5", "--out", "afile/sub"]))
    assert "--out afile/sub: afile is a file, not a folder; choose another path" in error
    error = one_line_error(runner.invoke(main, ["train", "--steps", "5", "--checkpoint", "afile/x.pt"]))
    assert f"--checkpoint {tmp_path}/afile/x.pt: {tmp_path}/afile is a file" in error
    assert not (tmp_path / "checkpoints").exists()


def test_checkpoint_that_is_a_folder_is_refused(runner, tmp_path):
    (tmp_path / "ckdir").mkdir()
    error = one_line_error(runner.invoke(main, ["train", "--steps", "5", "--checkpoint", "ckdir", "--overwrite"]))
    assert f"--checkpoint {tmp_path}/ckdir is a folder; give a file path such as {tmp_path}/ckdir/model.pt" in error


def test_overlong_name_is_refused(runner):
    error = one_line_error(runner.invoke(main, ["ablate", "--out", "x" * 300]))
    assert "is longer than the 255 bytes the file system takes" in error


def test_read_only_output_folder_is_refused_before_work(runner, monkeypatch, tmp_path):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.tempfile, "NamedTemporaryFile", read_only)
    error = one_line_error(runner.invoke(main, ["bench", "--out", "ro", "--n", "5"]))
    assert "--out ro: cannot write there (Read-only file system); choose a folder you can write to" in error


def test_full_disk_during_a_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_text("old")
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match=r"cannot write .*report.md \(No space left on device\); free some space"):
        write_text_atomic(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_temporaries_of_a_killed_writer_are_removed_and_files_get_normal_modes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".x.pt.{dead.stdout.strip()}.abc123.tmp"
    stale.write_bytes(b"half")
    with atomic_path(tmp_path / "x.pt") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o666 & ~umask


# --- attack and evaluation inputs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(trained):
    return make_classifier(trained.model.eval(), CPU)


@pytest.mark.parametrize("bad, message", [
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "x holds NaN or infinite values"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x), "x holds NaN or infinite values"),
    (lambda x: x[:, 0], r"x must have shape \(N, 1, 28, 28\), got \(4, 28, 28\)"),
    (lambda x: (x * 255).astype(np.uint8), "x must hold floating-point pixels, got dtype uint8"),
    (lambda x: x * 255, r"outside the estimator's clip_values \(0, 1\); .*divide by 255"),
])
def test_attack_refuses_bad_images(classifier, data, bad, message):
    x = to_pixels(data.test_images[:4])
    with pytest.raises(ConfigError, match=message):
        RegularizedGradientDescent(classifier, max_iter=1).generate(bad(x), np.zeros(4, dtype=np.int64))


@pytest.mark.parametrize("y, message", [
    (np.array([-1, 0, 1, 2]), r"y holds labels in \[-1, 2\]; classes are 0..9"),
    (np.array([10, 0, 1, 2]), r"y holds labels in \[0, 10\]"),
    (np.eye(11)[[0, 1, 2, 3]], "y is one-hot with 11 columns; the estimator has 10 classes"),
    (np.array([0, 1]), "y has 2 labels for 4 samples"),
    (np.array([0.5, 1, 2, 3]), r"y must be class indices"),
])
def test_attack_refuses_bad_labels(classifier, data, y, message):
    x = to_pixels(data.test_images[:4])
    with pytest.raises(ConfigError, match=message):
        RegularizedGradientDescent(classifier, max_iter=1).generate(x, y)


@pytest.mark.parametrize("images, labels, message", [
    (torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.int64), r"images must be a uint8 tensor \(N, 28, 28\)"),
    (torch.zeros(4, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), "images must be a uint8"),
    (torch.zeros(4, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 2, 12]), r"labels must be digits 0..9"),
    (torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4), "labels must be an integer tensor"),
    (torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), "4 images but 3 labels"),
])
def test_evaluation_refuses_bad_data(images, labels, message):
    with pytest.raises(DataError, match=message):
        TensorLoader(images, labels, batch_size=2, shuffle=False, device=CPU)


@pytest.mark.parametrize("args, message", [
    (["attack", "--eta", "0"], "eta must be > 0.0, got 0.0"),
    (["attack", "--lam", "-1"], "lam must be >= 0.0, got -1.0"),
    (["attack", "--eta", "nan"], "eta must be finite, got nan"),
    (["attack", "--target", "10"], "unknown target '10'"),
    (["attack", "--seed", str(2**70)], "seed must be <= 9223372036854775807"),
    (["attack", "--model", "nope.pt"], "'nope.pt' not found: no such checkpoint file"),
    (["bench", "--eps", "nan"], "eps must be finite, got nan"),
    (["bench", "--eps", "0"], "eps must be in (0.0, 1.0], got 0.0"),
    (["bench", "--models", "lenet"], "'lenet' not found"),
    (["bench", "--attacks", "jsma"], "unknown attack 'jsma'"),
    (["evaluate", "README.md"], "README.md is not a readable robustdigits checkpoint"),
    (["attack", "--model", "README.md"], "README.md is not a readable robustdigits checkpoint"),
    (["attack", "--model", "."], "is a folder, not a checkpoint file"),
    (["attack", "--steps", "0"], "Invalid value for '--steps': steps must be >= 1 from noise"),
    (["attack", "--target", "next"], "unknown target 'next' (did you mean 'next-digit'?)"),
    (["attack", "--model", "textbok-momentum"], "(did you mean 'textbook-momentum'?)"),
    (["attack", "--init", "refrence"], "'refrence' is not one of 'noise', 'reference'. (did you mean 'reference'?)"),
    (["bench", "--attacks", "pgdd"], "Invalid value for '--attacks': unknown attack 'pgdd' (did you mean 'pgd'?)"),
    (["bench", "--target", "nxt-digit"], "(did you mean 'next-digit'?)"),
    (["robustness", "--variants", "textbok"], "Invalid value for '--variants': unknown variant 'textbok' (did you"),
    (["data", "fetch", "--from", "nowhere.tgz"], "Invalid value for '--from': Path 'nowhere.tgz' does not exist."),
])
def test_bad_attack_and_bench_options_are_refused_before_anything_trains(runner, tmp_path, args, message):
    """A value the command line gets wrong is a usage error (exit 2); a file it names that is
    no checkpoint is a bad input (exit 1). Either way before any data loads or any training."""
    (tmp_path / "README.md").write_text("# not a checkpoint")
    result = runner.invoke(main, args)
    code = 1 if args[-1] in ("README.md", ".") else 2
    assert message in one_line_error(result, exit_code=code)
    assert "data:" not in result.output and "device:" not in result.output
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "reports").exists()


# --- interrupts, usage, bugs ----------------------------------------------------------------------------


@pytest.fixture()
def tutorial(runner):
    args = ["train", "--model", "tutorial", "--steps", "20", "--checkpoint", "checkpoints/tutorial.pt"]
    assert runner.invoke(main, args).exit_code == 0
    return "checkpoints/tutorial.pt"


@pytest.mark.parametrize("command", [
    ["attack", "--steps", "6", "--out", "o"],
    ["bench", "--n", "4", "--attacks", "fgsm", "--out", "o"],
])
def test_ctrl_c_in_attack_and_bench_keeps_earlier_results(runner, tmp_path, tutorial, command, monkeypatch):
    full = [*command[:1], "--model" if command[0] == "attack" else "--models", tutorial, *command[1:]]
    assert runner.invoke(main, full).exit_code == 0
    before = {p: p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()}
    from robustdigits.cli import attacking

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(attacking, "run_experiment" if command[0] == "attack" else "run_bench", interrupt)
    result = runner.invoke(main, full)
    assert result.exit_code == 130 and "earlier results are intact" in result.output
    assert {p: p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()} == before


def test_attack_folder_holds_only_this_runs_images(runner, tmp_path, tutorial):
    args = ["attack", "--model", tutorial, "--steps", "3", "--out", "o"]
    assert runner.invoke(main, [*args, "--per-class", "2"]).exit_code == 0
    assert runner.invoke(main, [*args, "--overwrite"]).exit_code == 0  # other settings: only when asked
    (folder,) = (tmp_path / "o").glob("tutorial-*")
    records = json.loads((folder / "results.json").read_text())["records"]
    images = sorted(p.name for p in folder.glob("adv_*.png"))
    assert images == sorted(f"adv_{r['test_index']}_{r['true']}to{r['target']}.png" for r in records)


def test_usage_errors_are_one_line_exit_2():
    result = CliRunner().invoke(main, ["attack", "--steps", "many"])
    error = one_line_error(result, exit_code=2)
    assert "Invalid value for '--steps': 'many' is not a valid integer" in error
    assert error.endswith("(see 'main attack -h')")


def test_an_unexpected_exception_keeps_its_traceback(runner, monkeypatch):
    from robustdigits.cli import app

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app, "load_mnist", bug)
    result = runner.invoke(main, ["train", "--steps", "5"])
    assert isinstance(result.exception, RuntimeError)  # not turned into a one-line user error


def test_ctrl_c_while_starting_exits_130(monkeypatch, capsys):
    import builtins

    from robustdigits import entry

    real_import = builtins.__import__

    def slow_torch(name, *args, **kwargs):
        if name == "cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", slow_torch)
    with pytest.raises(SystemExit) as exit_:
        entry.run()
    assert exit_.value.code == 130 and "interrupted while starting" in capsys.readouterr().err


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    env = {**os.environ, "ROBUSTDIGITS_DATA": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robustdigits", "train", "--model", "tutorial", "--epochs", "50",
                             "--threads", "1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    from robustdigits.data.datasets import EMBEDDED_SHA256

    path = (tmp_path / "cache" / "checkpoints" / "train" / f"embedded-{EMBEDDED_SHA256[:12]}" /
            "tutorial-lr0.01-m0.5-bs64-epochs50-seed1.pt")
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)  # the first epoch's checkpoint
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: no half-written file was left; rerun with --resume" in err
    assert load_checkpoint(path).epoch >= 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_overwrite_of_an_existing_checkpoint_passes_the_checks(runner, tutorial):
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "10", "--overwrite", "--checkpoint",
                                  tutorial])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tutorial).step == 10
