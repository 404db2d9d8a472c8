"""The whole study as one grid: training runs are cells, run here, by local workers or by Ray,
with the same results; dependencies, reuse, progress, Ctrl-C and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from robustdigits.checkpoints import load_checkpoint
from robustdigits.cli import main
from robustdigits.errors import ConfigError, DataError
from robustdigits.grid.cells import CellStore
from robustdigits.grid.executor import Tally, Task, check_address, check_executor, check_jobs, cores, run_tasks
from robustdigits.grid.train_cells import TRAIN_FORMAT, record_path
from robustdigits.studies.ablation import AblationConfig, run_ablation, variant_cell
from robustdigits.studies.robustness import RobustnessConfig
from robustdigits.studies.robustness_grid import run_study
from robustdigits.variants import get_variant

CPU = torch.device("cpu")
TINY_ABLATION = AblationConfig(budget="epochs", epochs=1)  # 10 steps per run on 640 images
TWO = [get_variant("tutorial"), get_variant("textbook-momentum")]
TINY_STUDY = RobustnessConfig(n=16, n_slow=6, seeds=1, eps=(0.1, 0.3), pgd_steps=3, rgd_steps=8, cw_steps=2,
                              cw_search=1, deepfool_steps=3, adversarial=())


def weights(results) -> list[torch.Tensor]:
    return [t for r in results for run in r.runs for t in run.model.state_dict().values()]


class TestTrainingCells:
    def test_two_workers_train_the_same_weights_as_one(self, tmp_path, small_data):
        done: list[tuple[str, float | None]] = []
        here = run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path / "one", variants=TWO,
                            done=lambda cell, s: done.append((cell.label, s)))
        workers = run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path / "two", variants=TWO,
                               jobs=2)
        for a, b in zip(weights(here), weights(workers)):  # one torch thread in each worker, as here
            assert torch.equal(a, b)
        assert sorted(label for label, _ in done) == ["textbook-momentum seed 1", "tutorial seed 1"]
        assert all(s is not None and s > 0 for _, s in done)

    def test_a_cell_records_its_key_seconds_and_metrics_and_is_reused(self, tmp_path, small_data):
        (result,) = run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1])
        cell = variant_cell(TWO[0], 1, TINY_ABLATION, small_data, tmp_path)
        record = json.loads(record_path(cell.path).read_text())
        assert record["key"] == cell.key and record["format"] == TRAIN_FORMAT and record["seconds"] > 0
        assert record["test_accuracy"] == result.runs[0].final.accuracy
        assert record["identity"]["train"]["epochs"] == 1 and record["identity"]["data"] == small_data.info.sha256
        before = Path(cell.path).stat().st_mtime_ns
        seconds: list[float | None] = []
        run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1],
                     done=lambda c, s: seconds.append(s))
        assert seconds == [None] and Path(cell.path).stat().st_mtime_ns == before  # reused, not written again

    def test_the_key_covers_every_setting_that_changes_the_weights(self, small_data, tmp_path):
        key = variant_cell(TWO[0], 1, TINY_ABLATION, small_data, tmp_path).key
        assert variant_cell(TWO[0], 2, TINY_ABLATION, small_data, tmp_path).key != key
        assert variant_cell(TWO[1], 1, TINY_ABLATION, small_data, tmp_path).key != key
        assert variant_cell(TWO[0], 1, AblationConfig(budget="epochs", epochs=2), small_data, tmp_path).key != key
        assert variant_cell(TWO[0], 1, TINY_ABLATION, small_data, tmp_path / "elsewhere").key == key  # not the place

    def test_a_checkpoint_from_before_training_cells_is_adopted_once(self, tmp_path, small_data):
        run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1])
        cell = variant_cell(TWO[0], 1, TINY_ABLATION, small_data, tmp_path)
        record_path(cell.path).unlink()  # as the cache was before training cells
        seconds: list[float | None] = []
        run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1],
                     done=lambda c, s: seconds.append(s))
        record = json.loads(record_path(cell.path).read_text())
        assert seconds == [None] and record["key"] == cell.key and record["seconds"] is None

    def test_a_record_of_a_newer_version_or_another_cell_is_refused_by_name(self, tmp_path, small_data):
        run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1])
        cell = variant_cell(TWO[0], 1, TINY_ABLATION, small_data, tmp_path)
        path = record_path(cell.path)
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "format": TRAIN_FORMAT + 1}))
        with pytest.raises(DataError, match=rf"written by a newer robustdigits \(training cell format "
                                            rf"{TRAIN_FORMAT + 1}; this one reads {TRAIN_FORMAT}\); upgrade"):
            run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1])
        path.write_text(json.dumps({**record, "key": "train-0123"}))
        with pytest.raises(DataError, match="records the training cell train-0123, not .*rerun with --fresh"):
            run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1])
        run_ablation(small_data, TINY_ABLATION, device=CPU, checkpoints=tmp_path, variants=TWO[:1], fresh=True)
        assert json.loads(path.read_text())["key"] == cell.key  # --fresh retrained it and wrote its record


class TestTheStudyAsOneGrid:
    def test_attacks_wait_for_their_training_and_a_second_run_reuses_everything(self, tmp_path, small_data):
        events: list[tuple[str, str, float | None]] = []

        def run(jobs: int, cells: str, log: list | None = None):
            return run_study(TWO, small_data, TINY_STUDY, CellStore(tmp_path / cells), checkpoints=tmp_path / "ck",
                             device=CPU, jobs=jobs, ablation=TINY_ABLATION,
                             done=(lambda *e: log.append(e)) if log is not None else None)

        rows, results = run(2, "cells", events)
        assert [r.row for r in rows] == ["tutorial", "textbook-momentum"]
        assert len(results) == 2 * 6  # clean, PGD × 2, ours, C&W, DeepFool per model
        kinds = [kind for kind, _, _ in events]
        assert kinds.count("train") == 2 and kinds.count("attack") == 12
        def row_of(label: str) -> str:  # "tutorial seed 1" (a training cell) or "tutorial: pgd" (an attack)
            return label.split(":")[0].split(" seed")[0]

        for row in ("tutorial", "textbook-momentum"):  # a model's attacks come after its training
            trained = next(k for k, e in enumerate(events) if e[0] == "train" and row_of(e[1]) == row)
            first_attack = next(k for k, e in enumerate(events) if e[0] == "attack" and row_of(e[1]) == row)
            assert trained < first_attack
        again: list[tuple[str, str, float | None]] = []
        rows_again, results_again = run(1, "cells", again)
        assert len(again) == 14 and all(seconds is None for _, _, seconds in again)  # nothing recomputed
        for a, b in zip(results, results_again):
            np.testing.assert_array_equal(a.samples["adv_pred"], b.samples["adv_pred"])
        _, here = run(1, "cells-here")  # the same grid in this process, on the trained checkpoints
        for a, b in zip(results, here):
            assert a.spec.key == b.spec.key
            np.testing.assert_array_equal(a.samples["x_adv"], b.samples["x_adv"])

    def test_ray_runs_training_and_attack_cells_with_the_local_results(self, tmp_path, small_data):
        ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
        _, local = run_study(TWO[:1], small_data, TINY_STUDY, CellStore(tmp_path / "local"),
                             checkpoints=tmp_path / "ck-local", device=CPU, ablation=TINY_ABLATION)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            _, remote = run_study(TWO[:1], small_data, TINY_STUDY, CellStore(tmp_path / "ray"),
                                  checkpoints=tmp_path / "ck-ray", device=CPU, executor="ray", ablation=TINY_ABLATION)
        finally:
            ray.shutdown()
        a = load_checkpoint(next((tmp_path / "ck-local").glob("*/*.pt"))).model_state
        b = load_checkpoint(next((tmp_path / "ck-ray").glob("*/*.pt"))).model_state
        assert all(torch.equal(a[k], b[k]) for k in a)  # the checkpoint came back from the Ray worker
        assert [r.spec.key for r in local] == [r.spec.key for r in remote]  # the same bytes: the same model hash
        for x, y in zip(local, remote):
            np.testing.assert_array_equal(x.samples["x_adv"], y.samples["x_adv"])


def _named(name: str, *, path: str) -> str:
    return name


class TestOrder:
    def test_a_free_slot_takes_the_lowest_rank_first_and_equals_in_the_order_they_came(self, small_data):
        """Training (rank -1) first, AutoAttack's cells (rank 1) last, even those a finished
        training hands over after them: an interrupted grid has finished the cheap cells."""
        def task(name: str, rank: int) -> Task:
            return Task(name, "train" if name == "train" else "attack", name, _named, (name,), "", rank=rank)

        order: list[str] = []

        def finished(t: Task, result: str, seconds: float) -> list[Task]:
            order.append(result)
            return [task("aa-2", 1), task("pgd-2", 0)] if result == "train" else []

        run_tasks([task("aa-1", 1), task("pgd-1", 0), task("train", -1), task("rgd-1", 0)], finished=finished,
                  data=small_data, device=CPU, jobs=1)
        assert order == ["train", "pgd-1", "rgd-1", "pgd-2", "aa-1", "aa-2"]

    def test_autoattack_cells_rank_last(self):
        from robustdigits.grid.cells import CellSpec
        from robustdigits.grid.runner import attack_task

        def spec(attack: str) -> CellSpec:
            return CellSpec("d", "mnist", "m", "s", attack, {}, "first:10")

        assert [attack_task(spec(a)).rank for a in ("autoattack", "pgd-torch", "fmn", "clean")] == [1, 0, 0, 0]


class TestProgress:
    def test_the_tally_counts_by_kind_and_estimates_the_time_left_from_measured_cells(self):
        tally = Tally({"train": 4, "attack": 10}, slots=2)
        assert tally.line() == "train 0/4, attack 0/10, time left unknown yet"
        tally.add("train", None)
        tally.add("train", 60.0)
        tally.add("attack", 2.0)
        assert tally.left_seconds() is not None
        # 2 training cells left at 60 s and 9 attack cells at 2 s, two at a time
        assert tally.left_seconds() == pytest.approx((2 * 60 + 9 * 2) / 2)
        assert tally.line() == "train 2/4 (1 reused), attack 1/10, about 69 s left"
        for _ in range(2):
            tally.add("train", 60.0)
        for _ in range(9):
            tally.add("attack", 2.0)
        assert tally.finished == tally.total == 14 and tally.line() == "train 4/4 (1 reused), attack 10/10"


class TestBadInput:
    @pytest.mark.parametrize("jobs", [0, -1, cores() + 1])
    def test_jobs_outside_the_cores_are_refused_with_the_range(self, jobs):
        with pytest.raises(ConfigError, match=rf"^--jobs {jobs} is not between 1 and this machine's {cores()} cores; "
                                              rf"pass --jobs 1 to {cores()}"):
            check_jobs(jobs, "local")

    def test_jobs_with_ray_and_an_address_without_ray_are_refused(self):
        with pytest.raises(ConfigError, match="--jobs 2 is for --executor local"):
            check_jobs(2, "ray")
        with pytest.raises(ConfigError, match="--address 10.0.0.1:6379 is a Ray cluster's; pass --executor ray"):
            check_executor("local", None, "10.0.0.1:6379")

    def test_a_ray_address_that_does_not_answer_is_named_at_once(self):
        import socket

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        start = time.perf_counter()
        with pytest.raises(ConfigError, match=rf"the Ray cluster at 127.0.0.1:{port} does not answer .*ray start "
                                              "--head"):
            check_address(f"127.0.0.1:{port}")
        assert time.perf_counter() - start < 5  # not Ray's minutes of retries
        with pytest.raises(ConfigError, match="'head' is not a Ray address; pass host:port"):
            check_address("head")

    @pytest.mark.parametrize("args, message", [
        (["ablate", "--jobs", "0"], "Error: --jobs 0 is not between 1 and this machine's"),
        (["robustness", "--jobs", str(cores() + 1)], f"Error: --jobs {cores() + 1} is not between 1"),
        (["reproduce", "--executor", "ray", "--address", "127.0.0.1:1"],
         "Error: the Ray cluster at 127.0.0.1:1 does not answer"),
    ])
    def test_the_commands_say_it_in_one_line_before_any_work(self, tmp_path, monkeypatch, args, message):
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert len(result.output.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_ctrl_c_stops_the_workers_and_keeps_every_finished_cell(tmp_path):
    """Two workers, six runs of 375 steps: SIGINT once the first run is recorded; the command
    stops at once, no worker is left running, and the next run reuses what had finished."""
    args = ["ablate", "--variants", "tutorial,textbook,textbook-momentum,textbook-dropout0.1,improved,improved-dropout",
            "--budget", "epochs", "--epochs", "3", "--data", "embedded", "--jobs", "2", "--out", "r",
            "--checkpoints", "ck"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell's background job (a CI step, 'cmd &') starts with SIGINT ignored, and Python then keeps it
    # ignored: give the command the terminal's default, as a Ctrl-C at a prompt would find it.
    proc = subprocess.Popen([sys.executable, "-m", "robustdigits", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.glob("ck/*/*.cell.json")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    assert proc.wait(timeout=60) == 130
    for _ in range(40):  # no worker of the group survives (an exited one may wait a moment to be reaped)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.25)
    else:
        pytest.fail("a worker process outlived the interrupted command")
    finished = {p.name for p in tmp_path.glob("ck/*/*.cell.json")}
    assert 1 <= len(finished) < 6, "the interrupt should land mid-grid"
    again = CliRunner().invoke(main, [*args[:-2], "--checkpoints", str(tmp_path / "ck"), "--out",
                                      str(tmp_path / "r2")])
    assert again.exit_code == 0, again.output
    assert f"({len(finished)} reused)" in again.output
