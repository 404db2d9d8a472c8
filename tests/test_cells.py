"""Cells: hashed settings, atomic per-sample results, resume after a kill, Ray = local."""

from __future__ import annotations

import dataclasses
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

from robustdigits.cli import main
from robustdigits.config import ModelSpec, TrainConfig
from robustdigits.data.fetch import sha256_file
from robustdigits.grid.cells import CellResult, CellSpec, CellStore, ModelRef
from robustdigits.grid.runner import run_cell, run_grid
from robustdigits.studies.bench import BenchConfig, bench_cells, load_bench, run_bench
from robustdigits.training import train

CPU = torch.device("cpu")
SPEC = CellSpec(data_sha256="ab" * 32, data_name="embedded", model="tutorial", model_sha256="cd" * 32,
                attack="pgd", params={"targeted": False, "eps": 0.1, "eps_step": 0.0125, "steps": 20, "restarts": 0,
                                      "batch_size": 128, "seed": 0, "target": None},
                selection="first:100", model_info={"variant": "tutorial", "seed": 1}, checkpoint="/a/b.pt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_data) -> str:
    path = tmp_path_factory.mktemp("ck") / "tutorial.pt"
    train(ModelSpec("tutorial"), TrainConfig(steps=30), small_data, device=CPU, checkpoint=path)
    return str(path)


@pytest.fixture(scope="module")
def model_ref(checkpoint) -> ModelRef:
    return ModelRef("tutorial", checkpoint, sha256_file(Path(checkpoint)), {"variant": "tutorial", "seed": 1})


# --- the hash ------------------------------------------------------------------------------------------


def test_every_setting_changes_the_key_and_the_location_does_not():
    changed = [dataclasses.replace(SPEC, **{f.name: "other"}) for f in dataclasses.fields(SPEC)
               if f.name not in ("params", "model_info", "checkpoint")]
    changed += [dataclasses.replace(SPEC, params={**SPEC.params, k: "other"}) for k in SPEC.params]
    changed.append(dataclasses.replace(SPEC, model_info={"variant": "tutorial", "seed": 2}))
    keys = {s.key for s in changed}
    assert len(keys) == len(changed) and SPEC.key not in keys
    assert dataclasses.replace(SPEC, checkpoint="/elsewhere/b.pt").key == SPEC.key


def test_the_same_settings_give_the_same_key_in_a_new_process():
    code = ("import json, sys; from robustdigits.grid.cells import CellSpec; "
            "print(CellSpec.from_dict(json.loads(sys.argv[1])).key)")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(SPEC.to_dict())], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == SPEC.key and len(SPEC.key) == 20


# --- the store -----------------------------------------------------------------------------------------


def fake_result(spec: CellSpec, n: int = 5, seed: int = 0) -> CellResult:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n)
    adv = (label + rng.integers(0, 2, n)) % 10
    samples = {"index": np.arange(n), "label": label, "target": np.full(n, -1), "clean_pred": label,
               "adv_pred": adv, "success": adv != label, "l2": rng.random(n), "linf": rng.random(n),
               "steps": np.full(n, -1), "x_adv": rng.random((n, 1, 28, 28)).astype(np.float32)}
    return CellResult(spec, samples, 1.5, {"device": "cpu"})


def test_a_cell_round_trips_and_is_written_once(tmp_path):
    store = CellStore(tmp_path)
    first = fake_result(SPEC)
    assert not store.has(SPEC) and store.save(first)
    assert not store.save(fake_result(SPEC, seed=1))  # already there: never written twice
    loaded = store.load(SPEC)
    assert loaded.spec == SPEC and loaded.seconds == 1.5
    for name, array in first.samples.items():
        np.testing.assert_array_equal(loaded.samples[name], array)
    assert store.save(fake_result(SPEC, seed=1), replace=True)  # --fresh replaces it in one rename
    np.testing.assert_array_equal(store.load(SPEC).samples["l2"], fake_result(SPEC, seed=1).samples["l2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPEC.key]  # no temporaries left


def test_a_half_written_cell_of_a_dead_process_is_not_a_cell_and_is_removed(tmp_path):
    store = CellStore(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    half = tmp_path / f".{SPEC.key}.{dead}.tmp"
    half.mkdir()
    (half / "samples.npz").write_bytes(b"partial")
    assert not store.has(SPEC)
    other = dataclasses.replace(SPEC, selection="first:7")
    store.save(fake_result(other))
    assert not half.exists() and store.has(other)


def test_rates_carry_wilson_intervals_from_the_samples():
    r = fake_result(SPEC, n=10)
    r.samples["success"] = np.array([True] * 5 + [False] * 5)
    rate, low, high = r.rate("success")
    assert rate == 50.0 and low == pytest.approx(23.66, abs=0.01) and high == pytest.approx(76.34, abs=0.01)
    r.samples["adv_pred"] = r.samples["label"] + 1  # nothing survives
    assert r.rate("robust") == (0.0, 0.0, pytest.approx(27.75, abs=0.01))


# --- running a grid ------------------------------------------------------------------------------------


CONFIG = BenchConfig(n=12, n_slow=10, attacks=("rgd", "fgsm", "deepfool"), rgd_steps=20,
                     sweep=(0.0, 0.1, 0.2), sweep_pgd_steps=5)


def test_tables_are_recomputed_from_the_per_sample_files_alone(tmp_path, small_data, model_ref, runner_env):
    store = CellStore(tmp_path / "cells")
    cells, result = run_bench([model_ref], small_data, CONFIG, store, device=CPU)
    assert len(cells.all) == 3 + 2 * 2
    from robustdigits.studies.bench import write_bench_report

    write_bench_report(result, CONFIG, small_data, tmp_path / "out", CPU, cells=cells, store=store)
    _, _, again = load_bench(tmp_path / "out")
    assert again == result  # every row, score, interval and sweep point
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [r["score"]["success_rate"] for r in written["records"]] == [r.score.success_rate for r in result.rows]
    row = result.rows[0]
    samples = store.load(cells.attacks[("tutorial", "rgd")]).samples
    kept = samples["clean_pred"] != samples["target"]  # images already read as the target are counted apart
    assert row.score.n == kept.sum() and row.score.left_out == 12 - kept.sum()
    assert row.score.success_rate == pytest.approx(100 * samples["success"][kept].mean())
    assert np.all(samples["steps"] <= 20) and np.all(samples["steps"] >= 0)  # our attack reports its steps
    assert result.sweep["pgd"]["tutorial"][0] == result.rows[0].clean_accuracy
    low, high = result.sweep_ci["pgd"]["tutorial"][1]
    assert low <= result.sweep["pgd"]["tutorial"][1] <= high
    # the committed grid.json says nothing of where the checkpoint was on the machine that ran it
    grid_text = (tmp_path / "out" / "grid.json").read_text()
    assert model_ref.checkpoint not in grid_text and '"checkpoint"' not in grid_text
    assert "Every cell's time was measured on this run's machine (7 cells)." in \
        (tmp_path / "out" / "bench.md").read_text()


def test_reused_cells_name_the_machines_that_timed_them(tmp_path, small_data, model_ref):
    from robustdigits.grid.cells import machines_note
    from robustdigits.report.tables import machine_info

    store = CellStore(tmp_path / "cells")
    cells, _ = run_bench([model_ref], small_data, CONFIG, store, device=CPU)
    results = [store.load(s) for s in cells.all]
    other = {**results[0].machine, "machine": "aarch64", "cpu_count": 64}
    results[0] = CellResult(results[0].spec, results[0].samples, results[0].seconds, other)
    note = machines_note(results, machine_info(CPU))
    here = machine_info(CPU)
    assert note.startswith("Cells' times were measured where each cell was computed: 6 cells on x86_64 CPU") or \
        here["machine"] != "x86_64"
    assert "1 cell on aarch64 CPU, 64 cores" in note


@pytest.fixture()
def runner_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTDIGITS_CHECKPOINTS", str(tmp_path / "checkpoints"))


def test_a_grid_killed_midway_resumes_to_the_uninterrupted_result(tmp_path, checkpoint, runner_env):
    args = ["bench", "--models", checkpoint, "--attacks", "rgd,fgsm,pgd", "--n", "40", "--rgd-steps", "60",
            "--data", "embedded", "--threads", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robustdigits", *args, "--cells", "killed", "--out", "k"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "killed").glob("[0-9a-f]*"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list((tmp_path / "killed").glob("[0-9a-f]*")))
    assert 2 <= finished < 3 + 12, "the kill should land mid-grid"

    result = CliRunner().invoke(main, [*args, "--cells", "killed", "--out", "k"])
    assert result.exit_code == 0, result.output
    assert f"({finished} reused)" in result.output  # only the unfinished cells ran
    assert CliRunner().invoke(main, [*args, "--cells", "whole", "--out", "w"]).exit_code == 0
    grid = json.loads((tmp_path / "w" / "grid.json").read_text())
    keys = [c["key"] for c in grid["attacks"] + grid["sweeps"]]
    for key in keys:
        with np.load(tmp_path / "killed" / key / "samples.npz") as a, np.load(tmp_path / "whole" / key /
                                                                               "samples.npz") as b:
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{key} {name}")
    strip = [{k: v for k, v in r.items() if k != "seconds_per_image"}
             for r in json.loads((tmp_path / "k" / "bench.json").read_text())["records"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds_per_image"}
                     for r in json.loads((tmp_path / "w" / "bench.json").read_text())["records"]]


def test_fresh_recomputes_every_cell(tmp_path, small_data, model_ref):
    store = CellStore(tmp_path)
    config = dataclasses.replace(CONFIG, attacks=("fgsm",), sweep=(0.0,))
    computed: list[bool] = []
    run_bench([model_ref], small_data, config, store, device=CPU, done=lambda s, c: computed.append(c))
    run_bench([model_ref], small_data, config, store, device=CPU, done=lambda s, c: computed.append(c))
    run_bench([model_ref], small_data, config, store, device=CPU, fresh=True, done=lambda s, c: computed.append(c))
    assert computed == [True, False, True]


def test_ray_without_ray_says_how_to_install_it(tmp_path, small_data, model_ref, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    specs = bench_cells([model_ref], small_data, dataclasses.replace(CONFIG, attacks=("fgsm",), sweep=(0.0,))).all
    with pytest.raises(ValueError, match=r"--executor ray needs Ray, an optional extra: pip install -e '.\[ray\]'"):
        run_grid(specs, CellStore(tmp_path), small_data, device=CPU, executor="ray")


def test_ray_executor_gives_the_local_results(tmp_path, small_data, model_ref):
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    specs = bench_cells([model_ref], small_data, CONFIG).all
    local = run_grid(specs, CellStore(tmp_path / "local"), small_data, device=CPU)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        done: list[str] = []
        remote = run_grid(specs, CellStore(tmp_path / "ray"), small_data, device=CPU, executor="ray",
                          done=lambda s, c: done.append(s.key))
    finally:
        ray.shutdown()
    assert sorted(done) == sorted(s.key for s in specs)
    for a, b in zip(local, remote):
        assert a.spec == b.spec
        for name in a.samples:
            np.testing.assert_array_equal(a.samples[name], b.samples[name], err_msg=f"{a.spec.attack} {name}")


def test_a_cell_is_a_pure_function_of_its_spec(small_data, checkpoint, model_ref):
    spec = bench_cells([model_ref], small_data, CONFIG).attacks[("tutorial", "rgd")]
    from robustdigits.checkpoints import load_checkpoint

    model = load_checkpoint(checkpoint).build_model(CPU)
    images, labels = small_data.test_images.numpy(), small_data.test_labels.numpy()
    a, b = (run_cell(spec, images, labels, model, device=CPU) for _ in range(2))
    for name in a.samples:
        np.testing.assert_array_equal(a.samples[name], b.samples[name])
    assert a.samples["index"].tolist() == list(range(12)) and np.all(a.samples["target"] == (a.samples["label"] + 1)
                                                                     % 10)


def test_a_damaged_cell_is_named_with_the_fix(tmp_path):
    store = CellStore(tmp_path)
    store.save(fake_result(SPEC))
    (tmp_path / SPEC.key / "samples.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=rf"cell {tmp_path / SPEC.key} is unreadable .*; delete that folder or "
                                         "rerun with --fresh"):
        store.load(SPEC)


# --- carrying cells to another machine (grid.portable, 'robustdigits cells') ----------------------------


def test_exported_cells_import_into_a_fresh_store_and_a_grid_reuses_them(tmp_path, small_data, model_ref):
    """Export drops the images and nothing else; the other store's grid computes nothing and
    writes the same tables; the export names no path of the machine that ran it."""
    first = CellStore(tmp_path / "first")
    cells, result = run_bench([model_ref], small_data, CONFIG, first, device=CPU)
    carry = tmp_path / "carry"
    runner = CliRunner()
    out = runner.invoke(main, ["cells", "export", str(carry), "--cells", str(first.root)])
    assert out.exit_code == 0 and out.output.startswith("exported 7 cells to "), out.output
    assert sorted(p.suffix for p in carry.iterdir()) == [".json"] * 7 + [".npz"] * 7
    assert all(model_ref.checkpoint not in p.read_text() for p in carry.glob("*.json"))
    second = CellStore(tmp_path / "second")
    out = runner.invoke(main, ["cells", "import", str(carry), "--cells", str(second.root)])
    assert out.exit_code == 0 and out.output.strip() == f"imported 7 cells into {second.root} (0 already there)"
    for spec in cells.all:
        a, b = first.load(spec), second.load(spec)
        assert "x_adv" in a.samples and "x_adv" not in b.samples and b.seconds == a.seconds
        for name, array in b.samples.items():
            np.testing.assert_array_equal(array, a.samples[name])
    computed: list[bool] = []
    _, again = run_bench([model_ref], small_data, CONFIG, second, device=CPU,
                         done=lambda spec, fresh: computed.append(fresh))
    assert computed == [False] * 7 and again == result  # every cell reused, the same tables
    assert runner.invoke(main, ["cells", "import", str(carry), "--cells", str(second.root)]).output.strip() == \
        f"imported 0 cells into {second.root} (7 already there)"


@pytest.mark.parametrize(("damage", "message"), [
    ("rename", r"holds the cell \w+, not 0{20}: it was renamed or edited; export it again, or move it out"),
    ("npz", r"\.npz is unreadable \(.*\); export it again"),
    ("images", r"\.npz holds images, which an export never does; export it again"),
    ("fields", r"\.npz: a cell result lacks l2; export it again"),
    ("json", r"is not an exported cell \(.*\); export it again"),
])
def test_a_bad_export_is_named_and_imports_nothing(tmp_path, damage, message):
    from robustdigits.errors import DataError
    from robustdigits.grid.portable import export_cells, import_cells

    source = CellStore(tmp_path / "source")
    other = dataclasses.replace(SPEC, selection="first:7")
    source.save(fake_result(SPEC))
    source.save(fake_result(other))
    carry = tmp_path / "carry"
    assert export_cells(source, carry) == (2, 0)
    victim = carry / f"{SPEC.key}.json"
    if damage == "rename":
        victim.rename(carry / ("0" * 20 + ".json"))
        victim.with_suffix(".npz").rename(carry / ("0" * 20 + ".npz"))
    elif damage == "npz":
        victim.with_suffix(".npz").write_bytes(b"not a zip")
    elif damage in ("images", "fields"):
        samples = dict(fake_result(SPEC).samples)
        if damage == "fields":
            del samples["l2"], samples["x_adv"]
        np.savez(victim.with_suffix(".npz"), **samples)
    else:
        victim.write_text("{")
    target = CellStore(tmp_path / "target")
    with pytest.raises(DataError, match=message):
        import_cells(carry, target)
    assert not target.root.exists()  # every entry is checked before any is written


def test_importing_from_a_missing_or_empty_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["cells", "import", str(tmp_path / "nowhere"), "--cells", str(tmp_path / "c")])
    assert result.exit_code == 1 and "is not a folder of exported cells; pass the folder 'robustdigits cells " \
        "export' wrote" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["cells", "import", str(tmp_path / "empty"), "--cells", str(tmp_path / "c")])
    assert result.exit_code == 1 and "holds no exported cells" in result.output
