"""The click group, its consoles, the shared options, tables and progress bars: what every command uses."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
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
from ..checks import did_you_mean
from ..data.datasets import MNISTData, auto_data_switched, load_mnist
from ..devices import DEVICE_CHOICES, resolve_device
from ..errors import ConfigError, ConfigTypeError, RobustDigitsError
from ..grid.cells import CellSpec
from ..grid.executor import DEFAULT_JOBS, EXECUTORS, Tally, cores
from ..report.tables import fmt
from ..targets import check_target
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


COMPUTE_COMMANDS = ("train", "evaluate", "ablate", "attack", "bench", "robustness", "autoattack",
                    "convergence")


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
        click.option("--device", type=Choice(DEVICE_CHOICES), default="auto", show_default=True,
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


def executor_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--executor, --jobs and --address, shared by the commands that run cells (training runs, attacks)."""
    options = [
        click.option("--executor", type=Choice(EXECUTORS), default="local", show_default=True,
                     help="local: cells on this machine, in --jobs worker processes; ray: each cell a Ray task "
                          "(pip install -e '.[ray]'), on this machine or the cluster at --address."),
        click.option("--jobs", type=int, default=None,
                     help="Local worker processes, each with cores / jobs torch threads; 1: the cells one after "
                          f"another in this process with --threads  [default: {DEFAULT_JOBS}, at most the cores]"),
        click.option("--address", default=None,
                     help="A running Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray instance."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def grid_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--cells and --fresh, then the executor's options, shared by the commands that run attack cells."""
    options = [
        click.option("--cells", type=click.Path(file_okay=False, path_type=Path), default=CELLS, show_default=True,
                     help="Store of finished cells (one folder per cell, named by the hash of its settings); "
                          "finished cells are reused, so an interrupted run resumes."),
        click.option("--fresh", is_flag=True, help="Recompute every cell even where it is stored."),
    ]
    func = executor_options(func)
    for option in reversed(options):
        func = option(func)
    return func


def setup(data: str, download: bool, device: str, threads: int | None) -> tuple[MNISTData, torch.device]:
    """The data and device of a command; it says nothing until ``announce``, after the
    command's own checks, so an error is never preceded by lines about work not done."""
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    loaded = load_mnist(data, download=download)
    before = auto_data_switched(loaded.info) if data == "auto" else None
    if before is not None:
        _NOTES.append(f"[yellow]note: --data auto now means {loaded.info.name} data (it meant {before} data before): "
                      f"checkpoints trained on {before} data do not apply, so a command that needs a variant trains "
                      f"it on {loaded.info.name} data first, saying so"
                      + (f"; pass --data {before} to keep using the {before} data and its checkpoints"
                         if before in ("embedded", "mnist") else "") + "[/]")
    return loaded, dev


_NOTES: list[str] = []  # said by announce, after the command's own checks


def announce(data: MNISTData, device: torch.device) -> None:
    console.print(f"[bold]data[/]: {data.info.short}\n[bold]device[/]: {device}")
    while _NOTES:
        err_console.print(_NOTES.pop(0))


class Choice(click.Choice):
    """click's Choice, with "did you mean" for a close typo."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            raise click.BadParameter(e.message + did_you_mean(value, [str(c) for c in self.choices]), ctx,
                                     param) from None


class TargetType(click.ParamType):
    """A target of the targeted attacks: a mode (next-digit, …) or a digit 0-9; a bad one is
    a usage error (exit 2), like any other bad option value."""

    name = "target"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return check_target(value)
        except ConfigError as e:
            self.fail(str(e), param, ctx)


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Option values checked by the library (configs, model names) before any work are
    usage errors too: exit 2, naming the option (``lr must be …`` → ``--lr``)."""
    try:
        yield
    except (ConfigError, ConfigTypeError) as e:
        ctx = click.get_current_context()
        words = str(e).split(" ", 2)  # "lr must be …", or "unknown variant 'x' …"
        word = words[1] if words[0] == "unknown" and len(words) > 1 else words[0]
        names = {opt for p in ctx.command.params for opt in p.opts}
        options = [o for o in (f"--{word.replace('_', '-')}", f"--{word.replace('_', '-')}s") if o in names]
        where = f" for '{options[0]}'" if options else ""
        raise click.UsageError(f"Invalid value{where}: {e}", ctx) from e


def render(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], keep: Sequence[str] | None = None,
           styles: Sequence[str | None] | None = None) -> None:
    """A report table in the terminal: the same columns and values the files hold
    (``keep`` selects some of them by name). No value is ever cut or split: a column is as
    wide as its widest value and headers wrap; where the terminal is still too narrow,
    columns are left out from the right (never the first two) and a line names them."""
    chosen = [columns.index(c) for c in keep] if keep else list(range(len(columns)))
    cells = [[fmt(row[i]) for i in chosen] for row in rows]

    def width(k: int, wrap_header: bool = True) -> int:
        header = str(columns[chosen[k]])
        return max([max(map(len, header.split() or [""])) if wrap_header else len(header),
                    *(len(r[k]) for r in cells)])

    def fits(shown: list[int], wrap_header: bool) -> bool:
        return sum(width(k, wrap_header) + 3 for k in shown) + 1 <= console.width

    shown = list(range(len(chosen)))
    wrap = not fits(shown, wrap_header=False)  # headers on one line where they fit
    while len(shown) > 2 and not fits(shown, wrap_header=True):
        shown.pop()
    table = Table(title=title)
    for k in shown:
        i = chosen[k]
        numeric = bool(rows) and isinstance(rows[0][i], (int, float))
        table.add_column(columns[i], justify="right" if numeric else "left", width=width(k, wrap))
    for n, row_cells in enumerate(cells):
        table.add_row(*(row_cells[k] for k in shown), style=styles[n] if styles else None)
    console.print(table)
    if len(shown) < len(chosen):
        left = ", ".join(str(columns[chosen[k]]) for k in range(len(chosen)) if k not in shown)
        console.print(f"[dim]{left}: not shown at this width ({console.width} columns); every column is in the "
                      "report's .md, .csv and .json[/]")


def log_line(text: str) -> None:
    """A line per finished unit (epoch, run, cell) when output goes to a file or a pipe,
    where progress bars are not drawn until the end."""
    if not console.is_terminal:
        console.print(text)


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
            if event.clean_loss is not None:
                self.progress.update(self.task, info=f"adversarial loss {event.loss:.4f}, clean {event.clean_loss:.4f}")
            elif event.loss is not None:
                self.progress.update(self.task, info=f"loss {event.loss:.4f}")
        elif self.task is not None and event.evaluation is not None:
            guard = "" if event.guard_accuracy is None else f", held-out PGD acc {event.guard_accuracy:.1f}%"
            self.progress.update(self.task, info=f"test acc {event.evaluation.accuracy:.2f}%{guard}")
            log_line(f"epoch {event.epoch + 1}: step {event.step:,} of {event.total_steps:,}, test acc "
                     f"{event.evaluation.accuracy:.2f}%{guard}")


def cell_progress(progress: Progress, total: int, label: str) -> Callable[[CellSpec, bool], None]:
    """A bar over cells; its ETA follows only the cells computed now."""
    task = progress.add_task(label, total=total, info="")
    counts = {"reused": 0}

    def done(spec: CellSpec, computed: bool) -> None:
        if not computed:
            counts["reused"] += 1
        progress.update(task, advance=1, info=f"{spec.model}: {spec.attack} ({counts['reused']} reused)")
        finished = int(progress.tasks[task].completed)
        log_line(f"cell {finished}/{total}: {spec.model} {spec.attack} ({'computed' if computed else 'reused'})")

    return done


def grid_progress(progress: Progress, tally: Tally, label: str,
                  spent: dict[str, float]) -> Callable[[str, str, float | None], None]:
    """A bar over a grid's cells of every kind: done / total by kind and the time left at
    the measured pace; ``spent`` sums the computed cells' seconds per kind."""
    task = progress.add_task(label, total=tally.total, info="")

    def done(kind: str, what: str, seconds: float | None) -> None:
        tally.add(kind, seconds)
        if seconds is not None:
            spent[kind] = spent.get(kind, 0.0) + seconds
        progress.update(task, completed=tally.finished, info=tally.line())
        log_line(f"cell {tally.finished}/{tally.total}: {kind} {what} "
                 f"({'reused' if seconds is None else f'{seconds:.1f} s'}; {tally.line()})")

    return done


def step_bars(progress: Progress) -> Callable[[str, TrainEvent], None]:
    """A bar per training cell run in this process, over its steps (the last one shown)."""
    bars: dict[str, TaskID] = {}

    def show(label: str, event: TrainEvent) -> None:
        if label not in bars:
            for bar in bars.values():
                progress.update(bar, visible=False)
            bars[label] = progress.add_task(f"  train {label}", total=event.total_steps, info="")
        progress.update(bars[label], completed=event.step)
        if event.evaluation is not None:
            progress.update(bars[label], info=f"test acc {event.evaluation.accuracy:.2f}%")

    return show


def workers_text(executor: str, jobs: int) -> str:
    """What runs a command's cells, for its report: "2 local workers × 1 torch thread"."""
    if executor == "ray":
        return "Ray tasks (1 CPU each)"
    if jobs == 1:
        return f"this process ({torch.get_num_threads()} torch thread{'s' if torch.get_num_threads() > 1 else ''})"
    threads = max(1, cores() // jobs)
    return f"{jobs} local workers × {threads} torch thread{'s' if threads > 1 else ''}"


def radii(text: str, option: str = "--autoattack") -> tuple[float, ...]:
    """Comma-separated radii ("" is none), or a usage error naming the option."""
    if not text.strip():
        return ()
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise click.UsageError(f"Invalid value for '{option}': {text!r} is not a comma-separated list of numbers; "
                               f"e.g. {option} 0.1,0.2,0.3") from None
