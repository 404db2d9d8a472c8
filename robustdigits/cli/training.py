"""Commands that train and measure networks: ``train``, ``evaluate``, ``ablate``."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..checkpoints import Checkpoint, default_checkpoints, load_checkpoint
from ..config import ModelSpec, TrainConfig
from ..data.datasets import MNISTData
from ..data.loader import TensorLoader
from ..errors import CheckpointError
from ..evaluation import COLUMNS as EVAL_COLUMNS
from ..evaluation import evaluate as evaluate_model
from ..fileio import check_writable_dir, check_writable_file
from ..grid.executor import Tally, check_executor
from ..grid.train_cells import TrainCell, read_record, write_record
from ..models import list_models
from ..report.plots import plot_loss_curve
from ..report.tables import check_replaceable, machine_info, settings_hash
from ..robust_training import (
    METHODS,
    OPTIMIZERS,
    RECIPES,
    SCHEDULES,
    AdversarialConfig,
    get_recipe,
    train_adversarial,
)
from ..studies.ablation import (
    BUDGETS,
    AblationConfig,
    resolve_checkpoint,
    run_ablation,
    write_ablation_report,
)
from ..studies.ablation import COLUMNS as ABLATION_COLUMNS
from ..studies.ablation import SUMMARY_COLUMNS as ABLATION_SUMMARY
from ..studies.ablation import table_rows as ablation_rows
from ..training import COLUMNS as TRAIN_COLUMNS
from ..training import TrainEvent
from ..training import train as train_model
from ..variants import VARIANTS, Variant, get_variant
from .app import (
    CHECKPOINTS_HELP,
    CONTEXT,
    RUNS,
    VARIANT_NAMES,
    Choice,
    EpochBars,
    announce,
    console,
    data_options,
    err_console,
    executor_options,
    handle_errors,
    log_line,
    main,
    make_progress,
    output_options,
    render,
    setup,
    step_bars,
    usage_errors,
    workers_text,
)
from .refs import (
    check_model_ref,
    note_unfinished,
)


@main.command(context_settings=CONTEXT)
@click.option("--model", type=Choice(list_models()), default="textbook", show_default=True)
@click.option("--dropout", type=float, default=None,
              help="Dropout p (default: the model's; tutorial 0.5, others none).")
@click.option("--width", type=int, default=None, help="The wong net's width multiplier (default 1).")
@click.option("--epochs", type=int, default=3, show_default=True, help="Passes over the training split.")
@click.option("--steps", type=int, default=None, help="Exact number of SGD steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--test-batch-size", type=int, default=1000, show_default=True)
@click.option("--lr", type=float, default=0.01, show_default=True, help="Learning rate (the peak one with --schedule "
              "cyclic).")
@click.option("--momentum", type=float, default=0.5, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--log-interval", type=int, default=10, show_default=True, help="Steps between recorded losses.")
@click.option("--adversarial", type=Choice(METHODS), default=None,
              help="Adversarial training: train on fgsm-rs, n-fgsm, pgd or trades examples of the model as it "
                   "learns (torch-native, in pixel space).")
@click.option("--eps", type=float, default=0.3, show_default=True, help="With --adversarial: L∞ radius in pixels.")
@click.option("--eps-ramp", type=int, default=0, show_default=True,
              help="With --adversarial: epochs over which ε grows linearly from 0.")
@click.option("--attack-steps", type=int, default=10, show_default=True, help="With --adversarial pgd or trades.")
@click.option("--step-size", type=float, default=None,
              help="With --adversarial: the adversary's step  [default: 1.25 ε fgsm-rs, ε n-fgsm, 2.5 ε / steps "
                   "pgd and trades]")
@click.option("--trades-beta", type=float, default=6.0, show_default=True)
@click.option("--optimizer", type=Choice(OPTIMIZERS), default="sgd", show_default=True,
              help="With --adversarial: sgd (with --momentum) or adam.")
@click.option("--schedule", type=Choice(SCHEDULES), default="constant", show_default=True,
              help="With --adversarial: cyclic is one-cycle, 0 → --lr at 2/5 of the steps → 0 (Wong et al.).")
@click.option("--guard-images", type=int, default=1000, show_default=True,
              help="With --adversarial: training images held out to watch robustness after each epoch (0: none); "
                   "the best epoch's weights are kept.")
@click.option("--recipe", type=Choice(list(RECIPES)), default=None,
              help="Train a named recipe with every setting fixed (robust: the README's robust network).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Where to save  [default: <checkpoints>/train/<dataset>-<hash>/<model>[-dropout<p>]-<settings>.pt, "
                   "e.g. ~/.cache/robustdigits/checkpoints/train/mnist-1e35582d42a9/textbook-lr0.01-m0.5-bs64-epochs3-"
                   "seed1.pt; never an ablation variant's place]")
@click.option("--resume", is_flag=True, help="Continue the run saved in --checkpoint.")
@click.option("--overwrite", is_flag=True, help="Train again where a checkpoint of these settings exists (a finished "
              "one is otherwise reported, not retrained).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the loss-curve PNG  [default: reports/runs/<dataset>/train]")
@data_options
@handle_errors
def train(model: str, dropout: float | None, width: int | None, epochs: int, steps: int | None, batch_size: int,
          test_batch_size: int, lr: float, momentum: float, seed: int, log_interval: int, adversarial: str | None,
          eps: float, eps_ramp: int, attack_steps: int, step_size: float | None, trades_beta: float, optimizer: str,
          schedule: str, guard_images: int, recipe: str | None, checkpoint: Path | None, resume: bool,
          overwrite: bool, out: Path | None, **common: Any) -> None:
    """Train one network with SGD (the defaults are the study's), or adversarially.

    \b
    Examples:
      robustdigits train --model textbook --momentum 0.5 --dropout 0.1 --epochs 3
      robustdigits train --model wong --adversarial fgsm-rs --eps 0.3 --optimizer adam --lr 0.005 \\
          --schedule cyclic --batch-size 100 --epochs 10
      robustdigits train --recipe robust
    """
    ctx = click.get_current_context()
    adv: AdversarialConfig | None = None
    with usage_errors():
        if recipe is not None:
            given = [f"--{name.replace('_', '-')}" for name in RECIPE_FIXES
                     if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
            if given:
                raise click.UsageError(f"--recipe {recipe} fixes every training setting; drop {', '.join(given)}")
            chosen = get_recipe(recipe)
            spec, config, adv = chosen.model, chosen.train, chosen.adversarial
        else:
            kwargs: dict[str, Any] = {} if dropout is None else {"dropout": dropout}
            if width is not None:
                kwargs["width"] = width
            spec = ModelSpec(model, kwargs)
            try:
                spec.build()  # checks the dropout and width before any data loads
            except TypeError as e:
                raise click.UsageError(f"the {model} model takes no such option ({e}); leave it out") from e
            config = TrainConfig(epochs=epochs, steps=steps, batch_size=batch_size, test_batch_size=test_batch_size,
                                 lr=lr, momentum=momentum, seed=seed, log_interval=log_interval)
            adversarial_only = [f"--{name.replace('_', '-')}" for name in ADVERSARIAL_OPTIONS
                                if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
            if adversarial is not None:
                adv = AdversarialConfig(method=adversarial, eps=eps, eps_ramp_epochs=eps_ramp,
                                        attack_steps=attack_steps, step_size=step_size, trades_beta=trades_beta,
                                        optimizer=optimizer, schedule=schedule, guard_images=guard_images)
            elif adversarial_only:
                raise click.UsageError(f"{', '.join(adversarial_only)} only apply to adversarial training; add "
                                       "--adversarial {" + ",".join(METHODS) + "} or drop them")
    name = run_name(spec, config, adv, recipe)
    root = default_checkpoints()
    if checkpoint is not None:
        refuse_variant_slot(checkpoint.absolute(), root)
        if resume and not checkpoint.exists():
            raise CheckpointError(f"nothing to resume: checkpoint {checkpoint.resolve()} not found; drop --resume to "
                                  "start a new run")
        check_writable_file(checkpoint.absolute(), "--checkpoint")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    # named by the data too: the same settings on other data are another run
    path = (checkpoint or root / "train" / f"{data.info.name}-{data.info.sha256[:12]}" / f"{name}.pt").absolute()
    if resume and not path.exists():
        raise CheckpointError(f"nothing to resume: checkpoint {path} not found; drop --resume to start a new run")
    if path.exists() and not (resume or overwrite):
        done = finished_run(path, spec, config, data, adv)
        console.print(f"already trained: {path} ({done.step:,} steps on {data.info.name} data, test accuracy "
                      f"{done.metrics['test_accuracy'][-1]:.2f}%); pass --overwrite to train it again")
        return
    check_writable_file(path, "--checkpoint")
    out = out or check_writable_dir(RUNS / data.info.name / "train", "--out")
    announce(data, device)
    identity = {"kind": "train", "model": {"name": spec.name, "kwargs": dict(spec.kwargs)}, "train": config.to_dict(),
                "adversarial": None if adv is None else adv.to_dict(), "recipe": recipe, "data": data.info.sha256}
    cell = TrainCell(name, config.seed, identity, str(path))  # a training cell: its record is written beside it
    started = time.perf_counter()
    if adv is not None:
        if recipe is not None:
            console.print(f"recipe {recipe}: {get_recipe(recipe).description}")
        with make_progress() as progress:
            adv_result = train_adversarial(spec, config, adv, data, device=device, checkpoint=path, resume=resume,
                                           recipe=recipe, progress=EpochBars(progress),
                                           notes=lambda note: err_console.print(f"[yellow]{note}[/]"))
        metrics = adv_result.metrics
        write_record(cell, seconds=time.perf_counter() - started, machine=machine_info(device),
                     accuracy=adv_result.final.accuracy, loss=adv_result.final.loss)
        plot = plot_loss_curve(metrics, out / f"loss_{path.stem}.png", title=f"{name} ({data.info.name} data)")
        guard = metrics["guard_robust_accuracy"] or [None] * len(metrics["test_epoch"])
        rows = [[*row, g] for row, g in zip(epoch_rows(metrics), guard)]
        render(f"{name}: {metrics['test_step'][-1]:,} steps, {adv.method} at ε = {adv.eps:g}",
               [*TRAIN_COLUMNS, f"held-out PGD-{adv.guard_steps} accuracy (%)"], rows)
        console.print(f"kept epoch {adv_result.best_epoch} (best held-out robustness): test accuracy "
                      f"{adv_result.final.accuracy:.2f}%; trained in {adv_result.seconds / 60:.1f} min\n"
                      f"checkpoint: {path}\nloss curve: {plot}\n"
                      f"next: robustdigits autoattack {path} --eps 0.3")
        return
    with make_progress() as progress:
        result = train_model(spec, config, data, device=device, checkpoint=path, resume=resume, overwrite=overwrite,
                             progress=EpochBars(progress))
    write_record(cell, seconds=time.perf_counter() - started, machine=machine_info(device),
                 accuracy=result.final.accuracy, loss=result.final.loss)
    plot = plot_loss_curve(result.metrics, out / f"loss_{path.stem}.png", title=f"{name} ({data.info.name} data)")
    render(f"{name}: {result.metrics['test_step'][-1]:,} steps", TRAIN_COLUMNS, epoch_rows(result.metrics))
    console.print(f"checkpoint: {path}\nloss curve: {plot}")


def epoch_rows(metrics: dict[str, list[Any]]) -> list[list[Any]]:
    """The per-epoch table of a run, from its metrics (the rows of TRAIN_COLUMNS)."""
    return [list(row) for row in zip(*(metrics[k] for k in ("test_epoch", "test_step", "test_loss", "test_accuracy")))]


ADVERSARIAL_OPTIONS = ("eps", "eps_ramp", "attack_steps", "step_size", "trades_beta", "optimizer", "schedule",
                       "guard_images")
RECIPE_FIXES = ("model", "dropout", "width", "epochs", "steps", "batch_size", "lr", "momentum", "seed",
                "adversarial", *ADVERSARIAL_OPTIONS)


def run_name(spec: ModelSpec, config: TrainConfig, adv: AdversarialConfig | None, recipe: str | None) -> str:
    """A training's file stem: the recipe's name, else the network and its settings (an
    adversarial one adds its method, ε and a hash of the rest)."""
    if recipe is not None:
        return f"recipe-{recipe}"
    name = spec.name + "".join(f"-{k}{v:g}" for k, v in sorted(spec.kwargs.items()))
    budget = f"steps{config.steps}" if config.steps is not None else f"epochs{config.epochs}"
    momentum = "" if adv is not None and adv.optimizer == "adam" else f"-m{config.momentum:g}"
    name += f"-lr{config.lr:g}{momentum}-bs{config.batch_size}-{budget}-seed{config.seed}"
    if adv is not None:
        name += f"-{adv.method}-eps{adv.eps:g}-{settings_hash(adv.to_dict())}"
    return name


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
    check_model_ref(model_ref, "CHECKPOINT")
    data, device = setup(**common)
    ckpt = resolve_checkpoint(model_ref, data.info, checkpoints or default_checkpoints())
    announce(data, device)
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


def refuse_variant_slot(path: Path, root: Path) -> None:
    """``train`` never writes a variant's place, ``<checkpoints>/<dataset>-<hash>/…``: that
    holds what ``ablate`` trained, so a variant's name always means that variant."""
    try:
        inside = path.resolve().relative_to(root.resolve())
    except ValueError:
        return
    if len(inside.parts) == 2 and re.fullmatch(r"[\w.]+-[0-9a-f]{12}", inside.parts[0]):
        raise click.UsageError(f"Invalid value for '--checkpoint': {path} is a variant's place in the checkpoint "
                               f"cache ({root / inside.parts[0]}), where 'ablate' keeps each variant; save "
                               f"elsewhere, or leave --checkpoint out to save under {root / 'train'}")


def finished_run(path: Path, spec: ModelSpec, config: TrainConfig, data: MNISTData,
                 adv: AdversarialConfig | None = None) -> Checkpoint:
    """The finished checkpoint of this very run (same network, settings and data), or a
    CheckpointError saying what to do with the one at ``path``."""
    ckpt = load_checkpoint(path)
    # what decides the weights (how often losses are logged or the test batch size does not)
    def weights(c: TrainConfig) -> dict[str, Any]:
        return {k: v for k, v in c.to_dict().items() if k not in ("log_interval", "test_batch_size")}

    trained_adv = (ckpt.adversarial or {}).get("config")
    same = (ckpt.model_spec == spec and weights(ckpt.train_config) == weights(config)
            and ckpt.dataset.sha256 == data.info.sha256 and trained_adv == (adv.to_dict() if adv else None))
    if not same:
        raise CheckpointError(f"checkpoint {path} exists and was trained with other settings or data; pass "
                              "--overwrite to replace it, or --checkpoint to save elsewhere")
    if not ckpt.complete:
        raise CheckpointError(f"checkpoint {path} is unfinished (step {ckpt.step:,} of {ckpt.total_steps:,}); pass "
                              "--resume to continue it or --overwrite to start again")
    return ckpt


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
@click.option("--budget", type=Choice(BUDGETS), default="steps", show_default=True,
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
@executor_options
@data_options
@handle_errors
def ablate(budget: str, epochs: int, seeds: int, variants: str, out: Path | None, overwrite: bool,
           checkpoints: Path | None, fresh: bool, executor: str, jobs: int | None, address: str | None,
           **common: Any) -> None:
    """Train the study's nine variants and put our accuracy beside the published one.

    Writes ablation.md/.csv/.json and loss_<variant>.png to a folder named by the
    settings (see --out). Each run is a training cell: finished checkpoints are reused
    and unfinished ones resumed, so an interrupted run picks up where it stopped, and
    --jobs N trains N runs at once in worker processes (--executor ray: on a cluster).

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
    with usage_errors():
        chosen = VARIANTS if variants == "all" else tuple(get_variant(v.strip()) for v in variants.split(","))
        config = AblationConfig(budget=budget, epochs=epochs, seeds=seeds)
    jobs = check_executor(executor, jobs, address)
    checkpoints = checkpoints or default_checkpoints()
    if out is not None:
        check_writable_dir(out, "--out")
    check_writable_dir(checkpoints, "--checkpoints")
    data, device = setup(**common)
    settings = ablation_settings(config, chosen, data)
    if out is not None:
        check_replaceable(out, "ablation", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / ablation_folder(config, chosen), "--out")
    announce(data, device)
    runs = len(chosen) * seeds
    tally = Tally({"train": runs}, slots=jobs)
    with make_progress() as progress:
        overall = progress.add_task(f"ablation: {runs} runs ({len(chosen)} variants × {seeds} seeds)", total=runs,
                                    info="")
        run_bars = step_bars(progress)

        def show(label: str, event: TrainEvent) -> None:  # the steps of a run trained in this process
            run_bars(label, event)
            progress.update(overall, completed=tally.finished + event.step / event.total_steps)

        def finished(cell: TrainCell, seconds: float | None) -> None:
            tally.add("train", seconds)
            progress.update(overall, completed=tally.finished, info=tally.line())
            if seconds is not None:
                record = read_record(cell) or {}
                log_line(f"run {tally.finished} of {runs} done: {cell.label}, test acc "
                         f"{record.get('test_accuracy', float('nan')):.2f}% ({seconds:.0f} s; {tally.line()})")

        results = run_ablation(data, config, device=device, checkpoints=checkpoints, variants=chosen,
                               fresh=fresh, progress=show, executor=executor, jobs=jobs, address=address,
                               done=finished)
        progress.update(overall, completed=runs, info="done")
    paths = write_ablation_report(results, config, data, out, device, settings=settings,
                                  workers=workers_text(executor, jobs))
    render(f"Ablation on {data.info.name} data ({budget} budget) beside the study's full-MNIST numbers",
           ABLATION_COLUMNS, ablation_rows(results, data.info.n_train), keep=ABLATION_SUMMARY)
    console.print("wrote " + ", ".join(str(p) for p in paths[:3]) + f" and {len(paths) - 3} loss curves")
