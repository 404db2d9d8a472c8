"""The page (``robustdigits report``) from any folder of reports: the committed study, or the
user's own runs in the layout every command writes to (``reports/runs/``); a damaged report
is named, never shown as "not run yet"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustdigits.cli import main
from robustdigits.errors import ReportError
from robustdigits.report.page import build_index, find_reports

REPORTS = Path(__file__).resolve().parents[1] / "reports"


@pytest.fixture()
def runs(tmp_path, monkeypatch) -> Path:
    """A reports/runs folder as the commands lay it out: the committed reports copied into
    the folders ablate, attack and bench name by their settings, plus per-cell results."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "reports" / "runs"
    shutil.copytree(REPORTS / "embedded", root / "embedded" / "ablation",
                    ignore=shutil.ignore_patterns("attack", "split_hardness.*"))
    shutil.copytree(REPORTS / "mnist" / "attack" / "textbook-momentum",
                    root / "mnist" / "attack" / "textbook-momentum" / "next-digit-10000steps-noise-1a2b3c4d")
    shutil.copytree(REPORTS / "embedded" / "attack" / "textbook-momentum",
                    root / "embedded" / "attack" / "textbook-momentum" / "next-digit-200steps-noise-0f0f0f0f")
    (root / "mnist" / "bench-5e6f7a8b").mkdir(parents=True)
    for name in ("bench.json", "bench_pgd_sweep.png"):
        shutil.copy(REPORTS / "mnist" / name, root / "mnist" / "bench-5e6f7a8b" / name)
    (root / "cells" / "abc").mkdir(parents=True)
    (root / "cells" / "abc" / "cell.json").write_text("{}")  # a cell, not a report: never read as one
    return root


def test_a_page_of_runs_shows_every_run_it_found_and_lists_them(runs):
    result = CliRunner().invoke(main, ["report", "--reports", "reports/runs"])
    assert result.exit_code == 0, result.output
    found = [line for line in result.output.splitlines() if line.startswith("found ")]
    assert found == [
        "found ablation: reports/runs/embedded/ablation (embedded data)",
        "found attack: reports/runs/embedded/attack/textbook-momentum/next-digit-200steps-noise-0f0f0f0f "
        "(embedded data)",
        "found attack: reports/runs/mnist/attack/textbook-momentum/next-digit-10000steps-noise-1a2b3c4d "
        "(mnist data)",
        "found bench: reports/runs/mnist/bench-5e6f7a8b (mnist data)",
    ]
    page = (runs / "index.html").read_text()
    for table_id in ("table-ablation-embedded", "table-attack", "table-attack-2", "table-bench"):
        assert f'id="{table_id}"' in page, table_id
    # full MNIST's attack comes first, each under the folder it came from
    assert page.index("mnist/attack/textbook-momentum/next-digit-10000steps") < \
        page.index("embedded/attack/textbook-momentum/next-digit-200steps")
    assert 'src="embedded/ablation/loss_tutorial.png"' in page and 'src="mnist/bench-5e6f7a8b/bench_pgd_sweep.png"' \
        in page


def test_a_missing_section_of_a_page_of_runs_names_the_plain_command_never_out(runs):
    page = build_index(runs)
    assert "robustdigits robustness, then robustdigits report --reports reports/runs" in page
    assert "robustdigits ablate --data mnist, then robustdigits report --reports reports/runs" in page
    assert "--out" not in page and "--overwrite" not in page


def test_the_studys_page_leaves_out_the_users_runs(tmp_path):
    root = tmp_path / "reports"
    shutil.copytree(REPORTS / "embedded", root / "embedded")
    shutil.copytree(REPORTS / "mnist", root / "runs" / "mnist" / "bench-1")
    assert [(f.kind, f.path.relative_to(root).as_posix()) for f in find_reports(root)] == [
        ("ablation", "embedded/ablation.json"), ("attack", "embedded/attack/textbook-momentum/results.json")]
    page = build_index(root)
    assert "robustdigits ablate --data mnist --out reports/mnist --overwrite" in page  # the committed layout's hint


@pytest.mark.parametrize(("content", "why"), [
    ("{", "not JSON"),
    ("[1, 2]", "not a robustdigits report"),
    ('{"meta": {}, "table": {"columns": ["a", "b"], "rows": [[1]]}}', "not a robustdigits report"),
    ('{"table": {"columns": [], "rows": []}}', "not a robustdigits report"),
])
def test_a_damaged_report_is_named_with_exit_1(runs, content, why):
    damaged = runs / "embedded" / "ablation" / "ablation.json"
    damaged.write_text(content)
    with pytest.raises(ReportError, match=why):
        find_reports(runs)
    result = CliRunner().invoke(main, ["report", "--reports", "reports/runs"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {damaged.absolute()} is damaged") and result.output.count("\n") == 1
    assert "rerun the command that wrote it, or move it away" in result.output
    assert not (runs / "index.html").exists()


def test_a_report_in_bytes_that_are_not_text_is_named(runs):
    damaged = runs / "mnist" / "bench-5e6f7a8b" / "bench.json"
    damaged.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReportError, match="is damaged .not UTF-8 text"):
        find_reports(runs)


def test_an_empty_folder_of_runs_says_it_found_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports" / "runs").mkdir(parents=True)
    result = CliRunner().invoke(main, ["report", "--reports", "reports/runs"])
    assert result.exit_code == 0 and "found no report under" in result.output
    assert json.dumps("not run yet")[1:-1] in (tmp_path / "reports" / "runs" / "index.html").read_text()


def test_a_markdown_table_in_a_note_is_drawn_as_a_table_and_escaped():
    from robustdigits.report.page import note_html

    note = ("Published anchors at ε = 0.3 (<their README>):\n\n| model | robust (%) |\n|---|---|\n"
            "| TRADES | 92.81 |\n| ours <b> | 91.10 |")
    assert note_html(note) == (
        '<p class="note">Published anchors at ε = 0.3 (&lt;their README&gt;):</p>'
        '<table class="note"><thead><tr><th scope="col">model</th><th scope="col">robust (%)</th></tr></thead>'
        "<tbody><tr><td>TRADES</td><td>92.81</td></tr><tr><td>ours &lt;b&gt;</td><td>91.10</td></tr></tbody></table>")
    assert note_html("one paragraph | with a bar") == '<p class="note">one paragraph | with a bar</p>'
