"""The command line, through click's CliRunner: exit codes, output and files."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from robustdigits.cli import main

COMMANDS = sorted(main.commands)


@pytest.fixture()
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTDIGITS_DATA", str(tmp_path / "no-mnist-here"))
    monkeypatch.setenv("ROBUSTDIGITS_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return CliRunner()


def train_default(steps: int = 30, model: str = "tutorial", epochs: int | None = None, batch: int = 64) -> str:
    """Where 'train' saves by default: its own folder per dataset, the file named by every setting."""
    from robustdigits.data.datasets import EMBEDDED_SHA256

    budget = f"epochs{epochs}" if epochs else f"steps{steps}"
    return f"checkpoints/train/embedded-{EMBEDDED_SHA256[:12]}/{model}-lr0.01-m0.5-bs{batch}-{budget}-seed1.pt"


@pytest.mark.parametrize("command", [None, *COMMANDS])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_has_help_with_an_example(runner, command, flag):
    args = [flag] if command is None else [command, flag]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"Examples?:\n    robustdigits", result.output), result.output


def test_train_then_evaluate(runner, tmp_path):
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "30", "--log-interval", "5",
                                  "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "embedded MNIST subset" in result.output and "30 steps" in result.output
    path = tmp_path / train_default(30)
    assert path.is_file() and f"checkpoint: {path}" in result.output
    plot = tmp_path / "reports" / "runs" / "embedded" / "train" / f"loss_{path.stem}.png"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("checkpoints/embedded-*"))  # never where the ablation's variants live

    again = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "30"])  # the same run, logged coarser
    assert again.exit_code == 0 and f"already trained: {path} (30 steps on embedded data" in again.output

    ev = runner.invoke(main, ["evaluate", train_default(30)])
    assert ev.exit_code == 0, ev.output
    assert "per-digit accuracy" in ev.output and "test accuracy" in ev.output


def test_ablate_writes_reports_and_reuses_checkpoints(runner, tmp_path):
    args = ["ablate", "--variants", "tutorial,textbook-momentum", "--budget", "epochs", "--epochs", "1",
            "--out", "out", "--threads", "1"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "96.54" in result.output and "98.42" in result.output
    report = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert report["meta"]["dataset"]["name"] == "embedded" and report["meta"]["budget"] == "epochs"
    assert [r["variant"] for r in report["records"]] == ["tutorial", "textbook-momentum"]
    acc = report["records"][1]["mean_accuracy"]
    assert 50 < acc <= 100
    # checkpoints named in the cache, never by this machine's paths
    assert re.fullmatch(r"embedded-[0-9a-f]{12}/tutorial-epochs1-seed1\.pt", report["records"][0]["checkpoints"][0])
    assert str(tmp_path) not in (tmp_path / "out" / "ablation.json").read_text()
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert "| textbook-momentum | textbook | 0.50 | none | 98.42 |" in md
    assert "Dataset: embedded MNIST subset" in md and "Budget: 1 epochs (125 SGD steps)" in md
    csv_lines = (tmp_path / "out" / "ablation.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,network,momentum,dropout,published acc. (%),our acc. (%)")
    assert len(csv_lines) == 3
    assert (tmp_path / "out" / "loss_tutorial.png").is_file()

    # The checkpoints carry the budget in their name: the variant's name alone means the
    # study's budget, which this run did not train; a rerun reuses them.
    (path,) = (tmp_path / "checkpoints").glob("embedded-*/textbook-momentum-epochs1-seed1.pt")
    ev = runner.invoke(main, ["evaluate", str(path)])
    assert ev.exit_code == 0 and f"test accuracy {acc:.2f}%" in ev.output
    assert runner.invoke(main, ["evaluate", "textbook-momentum"]).exit_code == 1
    rerun = runner.invoke(main, args)
    assert rerun.exit_code == 0
    assert json.loads((tmp_path / "out" / "ablation.json").read_text())["records"][1]["mean_accuracy"] == acc

    # Another run's settings never replace these results unasked; the default folder is named by them.
    other = [a if a != "textbook-momentum" else "textbook" for a in args]
    other[2] = "tutorial,textbook"
    refused = runner.invoke(main, other)
    assert refused.exit_code == 1 and "holds the results of a run with other settings; pass --overwrite" in \
        refused.output
    assert [r["variant"] for r in json.loads((tmp_path / "out" / "ablation.json").read_text())["records"]] == \
        ["tutorial", "textbook-momentum"]
    default = runner.invoke(main, other[:-4] + ["--threads", "1"])
    assert default.exit_code == 0, default.output
    folder = tmp_path / "reports" / "runs" / "embedded" / "ablation-epochs1-tutorial+textbook"
    assert [r["variant"] for r in json.loads((folder / "ablation.json").read_text())["records"]] == \
        ["tutorial", "textbook"]
    assert runner.invoke(main, other + ["--overwrite"]).exit_code == 0


def test_bad_data_directory_is_one_line_and_nonzero(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["train", "--data", "empty", "--steps", "5"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no MNIST IDX files in empty")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "checkpoints").exists()


def test_unknown_variant_and_checkpoint(runner):
    result = runner.invoke(main, ["evaluate", "lenet"])
    assert result.exit_code == 2 and "'lenet' not found: no such checkpoint file" in result.output
    result = runner.invoke(main, ["evaluate", "textbook"])
    assert result.exit_code == 1 and "variant 'textbook' (seed 1) has no checkpoint on embedded data" in result.output
    assert "a model from 'robustdigits train' is a file: pass its path instead" in result.output
    result = runner.invoke(main, ["ablate", "--variants", "lenet"])
    assert result.exit_code == 2 and "Invalid value for '--variants': unknown variant 'lenet'; choose one of: " \
        "tutorial" in result.output


def test_invalid_option_value_names_it(runner):
    result = runner.invoke(main, ["train", "--lr", "0", "--steps", "5"])
    assert result.exit_code == 2 and "Invalid value for '--lr': lr must be in (0.0, 1000.0], got 0" in result.output


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "robustdigits", "--help"], capture_output=True, text=True, check=True)
    assert "Usage: python -m robustdigits" in out.stdout
    assert all(c in out.stdout for c in COMMANDS)


def test_commands_are_click_commands():
    assert all(isinstance(main.commands[c], click.Command) for c in COMMANDS)


@pytest.fixture()
def tutorial_checkpoint(runner, tmp_path):
    result = runner.invoke(main, ["train", "--model", "tutorial", "--steps", "60", "--threads", "1",
                                  "--checkpoint", "checkpoints/tutorial.pt"])
    assert result.exit_code == 0, result.output
    return "checkpoints/tutorial.pt"


def test_attack_writes_gallery_images_and_results(runner, tmp_path, tutorial_checkpoint):
    result = runner.invoke(main, ["attack", "--model", tutorial_checkpoint, "--steps", "40", "--init", "reference",
                                  "--target", "previous-digit", "--out", "atk"])
    assert result.exit_code == 0, result.output
    assert "reached the target:" in result.output and "target held from step" in result.output
    (folder,) = (tmp_path / "atk").glob("tutorial-*")  # the file's name and content hash
    records = json.loads((folder / "results.json").read_text())["records"]
    assert [r["true"] for r in records] == list(range(10))
    assert [r["target"] for r in records] == [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    for r in records:
        assert 0 < r["l2"] and 0 < r["linf"] <= 1 and 0 <= r["target_confidence"] <= 1
        assert r["success"] == (r["predicted"] == r["target"])
        assert (folder / f"adv_{r['test_index']}_{r['true']}to{r['target']}.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "gallery.png").stat().st_size > 10_000
    csv_lines = (folder / "results.csv").read_text().splitlines()
    assert csv_lines[0] == ("test index,true,target,predicted,target confidence,L2,L∞,target held from step,"
                            "steps run")
    assert len(csv_lines) == 11


def test_attack_rejects_bad_options(runner, tutorial_checkpoint):
    result = runner.invoke(main, ["attack", "--model", tutorial_checkpoint, "--target", "eleven"])
    assert result.exit_code == 2 and "unknown target 'eleven'" in result.output
    result = runner.invoke(main, ["attack", "--model", tutorial_checkpoint, "--eta", "0"])
    assert result.exit_code == 2 and "Invalid value for '--eta': eta must be > 0" in result.output
    result = runner.invoke(main, ["attack", "--model", tutorial_checkpoint, "--early-stop", "1.5"])
    assert result.exit_code == 2 and "--early-stop" in result.output


def test_bench_scores_every_attack_and_draws_sweeps(runner, tmp_path, tutorial_checkpoint):
    result = runner.invoke(main, ["bench", "--models", tutorial_checkpoint, "--n", "12", "--out", "b"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b" / "bench.json").read_text())
    rows = report["records"]
    assert [r["attack"] for r in rows] == ["rgd", "fgsm", "pgd", "cw", "deepfool"]
    assert [r["targeted"] for r in rows] == [True, True, True, True, False]
    for r in rows:
        assert r["model"].startswith("tutorial-") and r["score"]["n"] + r["score"]["left_out"] == 12
        assert 0 <= r["score"]["success_rate"] <= 100 and r["seconds_per_image"] > 0
    pgd = next(r for r in rows if r["attack"] == "pgd")["score"]
    assert pgd["success_rate"] == 0 or pgd["median_linf"] <= 0.3 + 1e-5  # PGD respects its L∞ budget
    sweep = report["meta"]["sweep_robust_accuracy"]
    name = rows[0]["model"]
    assert len(sweep["fgsm"][name]) == 7 and sweep["pgd"][name][0] == rows[0]["clean_accuracy"]
    assert sweep["pgd"][name][-1] <= sweep["pgd"][name][0]
    md = (tmp_path / "b" / "bench.md").read_text()
    assert f"| {name} | deepfool | untargeted |" in md
    for attack in ("fgsm", "pgd"):
        assert (tmp_path / "b" / f"bench_{attack}_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_trains_a_missing_variant_first(runner, tmp_path, monkeypatch):
    import robustdigits.studies.ablation

    monkeypatch.setattr(robustdigits.studies.ablation, "study_steps", lambda epochs, batch: 20)  # a tiny budget
    result = runner.invoke(main, ["bench", "--models", "tutorial", "--attacks", "fgsm", "--n", "5", "--out", "b"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert ("tutorial names the ablation's variant 'tutorial' (tutorial network, momentum 0.5, dropout 0.5 built "
            "in), which has no finished checkpoint on embedded data: training it now with the ablation's settings "
            "(seed 1, 20 SGD steps, roughly ") in said
    assert re.search(r"roughly \d+ s on this machine\) into " + re.escape(str(tmp_path / "checkpoints")), said)
    assert re.search(r"first, training 1 run not yet trained on embedded data \(20 SGD steps each, the ablation's "
                     r"settings\): tutorial; roughly \d+ s on this machine", said)
    again = runner.invoke(main, ["bench", "--models", "tutorial", "--attacks", "fgsm", "--n", "4", "--out", "b2"])
    assert again.exit_code == 0 and "first, training" not in again.output  # nothing left to train: nothing said
    assert list((tmp_path / "checkpoints").glob("embedded-*/tutorial-seed1.pt"))


def test_bench_rejects_unknown_attack(runner, tutorial_checkpoint):
    result = runner.invoke(main, ["bench", "--models", tutorial_checkpoint, "--attacks", "jsma"])
    assert result.exit_code == 2 and "Invalid value for '--attacks': unknown attack 'jsma'; choose one of: rgd, fgsm" \
        in result.output


def test_cuda_without_cuda_is_a_clear_error(runner, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = runner.invoke(main, ["train", "--device", "cuda", "--steps", "5"])
    assert result.exit_code == 1
    assert "device 'cuda' requested but CUDA is not available; use --device cpu" in result.output


def test_ctrl_c_exits_130_and_keeps_the_last_checkpoint(runner, tmp_path, monkeypatch):
    import robustdigits.training

    real_event = robustdigits.training.TrainEvent

    def interrupt_in_epoch_two(kind, epoch, *args, **kwargs):  # stands in for TrainEvent
        if kind == "step" and epoch == 1:
            raise KeyboardInterrupt
        return real_event(kind, epoch, *args, **kwargs)

    monkeypatch.setattr(robustdigits.training, "TrainEvent", interrupt_in_epoch_two)
    result = runner.invoke(main, ["train", "--model", "tutorial", "--epochs", "2", "--batch-size", "500"])
    assert result.exit_code == 130
    assert "interrupted: no half-written file was left" in result.output
    from robustdigits.checkpoints import load_checkpoint

    path = tmp_path / train_default(model="tutorial", epochs=2, batch=500)
    saved = load_checkpoint(path)
    assert (saved.epoch, saved.step, saved.complete) == (1, 16, False)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_report_demo_and_reproduce_refuse_bad_setups_in_one_line(runner, tmp_path, tutorial_checkpoint):
    import socket

    result = runner.invoke(main, ["report", "--reports", "nowhere"])
    assert result.exit_code == 1 and "nowhere does not exist; run a command first (they write to reports/runs/) " \
        "and pass --reports reports/runs" in result.output
    result = runner.invoke(main, ["demo"])  # nothing trained in this cache
    assert result.exit_code == 1 and "no variant is trained on embedded data yet; run 'robustdigits ablate'" in \
        result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["demo", "--model", tutorial_checkpoint, "--port", str(port)])
    assert result.exit_code == 1 and f"cannot serve on 127.0.0.1:{port}" in result.output
    assert "pass --port 0 for a free port" in result.output


def test_report_writes_a_page_of_what_there_is(runner, tmp_path):
    (tmp_path / "reports").mkdir()
    result = runner.invoke(main, ["report"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "reports" / "index.html").read_text()
    assert "robustdigits: the study on one page" in page and "robustdigits robustness --out reports" in page
    assert "http" not in page.replace("http-equiv", "")  # no external asset


def test_reproduce_runs_every_step_in_order_and_says_once_when_it_falls_back(runner, monkeypatch):
    from robustdigits.cli import site
    from robustdigits.errors import DataError

    def offline(*args, **kwargs):
        raise DataError("no source reachable")

    monkeypatch.setattr(site, "fetch_mnist", offline)
    calls = []
    for name in ("ablate", "attack", "bench", "robustness", "report"):
        monkeypatch.setattr(main.commands[name], "callback",
                            lambda name=name, **kwargs: calls.append((name, kwargs)))
    result = runner.invoke(main, ["reproduce", "--seeds", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert [c[0] for c in calls] == ["ablate", "attack", "bench", "robustness", "report"]
    assert result.output.count("the study runs on the embedded subset") == 1
    ablate, attack, bench, robustness, report = (c[1] for c in calls)
    assert ablate["seeds"] == 2 and ablate["data"] == "embedded" and str(ablate["out"]) == "reports/embedded"
    assert str(attack["out"]) == "reports/embedded/attack" and str(robustness["out"]) == "reports/embedded"
    assert bench["overwrite"] and robustness["seeds"] == 2 and str(report["reports"]) == "reports"
    assert "step 6 of 6: report" in result.output and "the study took" in result.output
    expected = "converged" if importlib.util.find_spec("adv_lib") else "quick"  # with the minnorm extra, or said
    assert robustness["min_norm"] == expected and robustness["sample"] == "random"
    if importlib.util.find_spec("pyautoattack"):  # the robust extra: AutoAttack is the headline
        assert (robustness["aa_eps"], robustness["aa_version"], robustness["square_eps"]) == \
            ("0.1,0.2,0.3", "mixed", "0.3")


@pytest.mark.parametrize("missing, chosen, said", [
    ("adv_lib.attacks", {"min_norm": "quick"},  # the minnorm extra
     ["need the adv-lib package, which is not installed", "the minimum-norm columns use the quick attacks"]),
    ("pyautoattack", {"aa_eps": "", "square_eps": ""},  # the robust extra
     ["the robustness study runs without AutoAttack and Square (PGD alone)"]),
])
def test_reproduce_says_when_an_extra_is_missing_and_runs_without_it(runner, monkeypatch, missing, chosen, said):
    import sys

    from robustdigits.cli import site

    monkeypatch.setitem(sys.modules, missing, None)  # as if the extra were not installed
    monkeypatch.setattr(site, "fetch_mnist", lambda *a, **k: None)
    calls = {}
    for name in ("ablate", "attack", "bench", "robustness", "report"):
        monkeypatch.setattr(main.commands[name], "callback", lambda name=name, **kwargs: calls.update({name: kwargs}))
    result = runner.invoke(main, ["reproduce", "--seeds", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert {k: calls["robustness"].get(k, "") for k in chosen} == chosen
    assert all(line in " ".join(result.output.split()) for line in said)
