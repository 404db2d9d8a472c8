"""The click group, its consoles, the shared options, tables and progress bars: what every command uses."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .. import __version__
from ..data.datasets import MNISTData, load_mnist
from ..devices import DEVICE_CHOICES, resolve_device
from ..errors import RobustDigitsError
from ..grid.cells import CellSpec
from ..grid.runner import EXECUTORS
from ..report.tables import fmt
from ..training import TrainEvent
from ..variants import variant_names

# Redirected to a file, output keeps its full width instead of rich's 80 columns, and
# sentences never wrap mid-line.
REDIRECTED_WIDTH = 200


console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else REDIRECTED_WIDTH)


err_console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else REDIRECTED_WIDTH)


# Where commands write by default: a folder per run named by what it ran, under
# reports/runs/ (not tracked by git). The committed results in reports/<dataset>/ are only
# written when asked (--out, or 'robustdigits reproduce').
RUNS = Path("reports") / "runs"


CELLS = RUNS / "cells"


CHECKPOINTS_HELP = "Where variants' checkpoints live  [default: $ROBUSTDIGITS_CHECKPOINTS or " \
                   "~/.cache/robustdigits/checkpoints]"


COMPUTE_COMMANDS = ("train", "evaluate", "ablate", "attack", "bench", "robustness")


VARIANT_NAMES = variant_names()


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


INTERRUPT_HINTS = {
    "train": "rerun with --resume to continue from the last complete epoch",
    "ablate": "rerun the same command to continue: finished checkpoints are reused, unfinished ones resumed",
    "fetch": "the data cache is as it was; rerun 'robustdigits data fetch'",
}


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Errors raised on purpose (RobustDigitsError) become one line and exit 1; Ctrl-C
    and SIGTERM exit 130 with a hint. Anything else keeps its traceback: a bug must
    not look like a user's mistake."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RobustDigitsError as e:
            raise click.ClickException(str(e)) from e
        except KeyboardInterrupt:
            name = click.get_current_context().info_name or ""
            hint = INTERRUPT_HINTS.get(name, "no results of this run were written; earlier results are intact")
            err_console.print(f"interrupted: no half-written file was left; {hint}")
            raise SystemExit(130) from None

    return wrapper


class OneLineGroup(click.Group):
    """A click group whose usage errors are one line (``Error: … (see '… -h')``, exit 2),
    like every other error, and whose Ctrl-C before a command starts exits 130."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} -h')" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:  # Ctrl-C while click parsed the options
            click.echo("interrupted", err=True)
            sys.exit(130)
        if isinstance(code, int) and code:
            sys.exit(code)
        return code


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # a killed run cleans up exactly as an interrupted one


@click.group(cls=OneLineGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def main() -> None:
    """Train the classic MNIST networks, attack them, and see the result.

    Exit status: 0 done, 1 a bad input or a failure (one line saying what to do),
    2 a command-line usage error, 130 interrupted (Ctrl-C or SIGTERM).

    \b
    Example:
      robustdigits ablate          # the study's nine variants on the embedded data
      robustdigits attack          # its attack on the first test image of each digit
    """
    signal.signal(signal.SIGTERM, _sigterm)


def data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--data, --download, --device and --threads, shared by every command that computes."""
    options = [
        click.option("--data", default="auto", show_default=True,
                     help="auto (full MNIST from the data cache, $ROBUSTDIGITS_DATA or ~/.cache/robustdigits, "
                          "if there, else the embedded subset), mnist (the cache, or an error), embedded, "
                          "or a folder with the four MNIST IDX files."),
        click.option("--download", is_flag=True,
                     help="Fetch full MNIST into the cache (or the --data folder) first, as 'data fetch' does."),
        click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
                     help="auto picks CUDA when available."),
        click.option("--threads", type=click.IntRange(min=1, max=1024), default=None,
                     help="torch CPU threads (default: torch's own choice)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_options(out_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--out (helped by ``out_help``), --overwrite and --checkpoints, shared by the commands that
    write results of variants."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--out", type=click.Path(path_type=Path), default=None, help=out_help),
            click.option("--overwrite", is_flag=True, help="Let --out replace results of a run with other settings."),
            click.option("--checkpoints", type=click.Path(path_type=Path), default=None, help=CHECKPOINTS_HELP),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def grid_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--cells, --fresh, --executor and --address, shared by the commands that run cells."""
    options = [
        click.option("--cells", type=click.Path(file_okay=False, path_type=Path), default=CELLS, show_default=True,
                     help="Store of finished cells (one folder per cell, named by the hash of its settings); "
                          "finished cells are reused, so an interrupted run resumes."),
        click.option("--fresh", is_flag=True, help="Recompute every cell even where it is stored."),
        click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                     help="local: cells one after another here; ray: each cell a Ray task (pip install -e "
                          "'.[ray]'), on this machine or the cluster at --address."),
        click.option("--address", default=None,
                     help="A running Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def setup(data: str, download: bool, device: str, threads: int | None) -> tuple[MNISTData, torch.device]:
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    loaded = load_mnist(data, download=download)
    console.print(f"[bold]data[/]: {loaded.info.short}\n[bold]device[/]: {dev}")
    return loaded, dev


def render(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], keep: Sequence[str] | None = None,
           styles: Sequence[str | None] | None = None) -> None:
    """A report table in the terminal: the same columns and values the files hold
    (``keep`` selects some of them by name)."""
    chosen = [columns.index(c) for c in keep] if keep else list(range(len(columns)))
    table = Table(title=title)
    for i in chosen:
        table.add_column(columns[i], justify="right" if rows and isinstance(rows[0][i], (int, float)) else "left")
    for k, row in enumerate(rows):
        table.add_row(*(fmt(row[i]) for i in chosen), style=styles[k] if styles else None)
    console.print(table)


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)


class EpochBars:
    """Renders training events as one progress bar per epoch."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.epoch = -1

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "step":
            if self.task is None or event.epoch != self.epoch:
                self.epoch = event.epoch
                left = event.total_steps - (event.step - 1)
                self.task = self.progress.add_task(f"epoch {event.epoch + 1}", info="",
                                                   total=min(event.steps_per_epoch, left))
            self.progress.advance(self.task)
            if event.loss is not None:
                self.progress.update(self.task, info=f"loss {event.loss:.4f}")
        elif self.task is not None and event.evaluation is not None:
            self.progress.update(self.task, info=f"test acc {event.evaluation.accuracy:.2f}%")


def cell_progress(progress: Progress, total: int, label: str) -> Callable[[CellSpec, bool], None]:
    """A bar over cells; its ETA follows only the cells computed now."""
    task = progress.add_task(label, total=total, info="")
    counts = {"reused": 0}

    def done(spec: CellSpec, computed: bool) -> None:
        if not computed:
            counts["reused"] += 1
        progress.update(task, advance=1, info=f"{spec.model}: {spec.attack} ({counts['reused']} reused)")

    return done
