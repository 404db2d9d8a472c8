"""Every code block of the README and of docs/ runs as written: the Python examples are
executed, in order, from a folder outside the repository; every command line is parsed by
the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from robustdigits.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str, pages: list[Path] = PAGES) -> list[str]:
    return [body for page in pages for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def command_lines() -> list[list[str]]:
    """Each ``robustdigits …`` invocation in the README's shell blocks (after ``&&``, without
    comments), as an argument list."""
    found = []
    for body in blocks(""):
        for line in body.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and Path(words[0]).name == "robustdigits":
                    found.append(words[1:])
                elif words[:3] == ["python", "-m", "robustdigits"]:
                    found.append(words[3:])
    return found


def test_the_pages_have_the_examples_this_test_runs():
    assert len(blocks("python", [README])) >= 1 and len(blocks("python", [ROOT / "docs" / "art.md"])) >= 4
    assert len(command_lines()) >= 12


def all_commands(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found += all_commands(command) if isinstance(command, click.Group) else [command]
    return found


@pytest.mark.parametrize("args", command_lines(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_line_parses(args, monkeypatch):
    """Options and values the CLI accepts (click parses and converts them; the command
    itself is replaced by a no-op: running them all takes hours)."""
    for command in all_commands(main):
        monkeypatch.setattr(command, "callback", lambda **kwargs: None)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def test_every_python_example_runs_as_written_from_another_folder(tmp_path, monkeypatch, capsys):
    """A page's examples build on each other (x, y, the model), as a reader runs them, so
    each page runs in its own namespace. The variant is trained by the first example
    itself, as on a fresh machine (about a minute); later pages find it trained."""
    monkeypatch.chdir(tmp_path)
    for page in PAGES:
        namespace: dict[str, object] = {"__name__": "readme"}
        for k, code in enumerate(blocks("python", [page])):
            exec(compile(code, f"{page.name} python block {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    rates = [float(m) for m in re.findall(r"reached the next digit: (\d+)%", out)]
    assert rates and all(0 <= r <= 100 for r in rates), out
    assert re.search(r"ART adversarial_accuracy: 0\.\d\d", out), out
    assert not list(tmp_path.iterdir())  # nothing written to the working folder
