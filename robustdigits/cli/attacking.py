"""Commands that attack networks: ``attack``, ``bench``, ``robustness``, ``autoattack``, ``convergence``,
``contrasts``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import torch
from rich.progress import (
    TaskID,
)

from ..checkpoints import default_checkpoints
from ..checks import check_int, check_number
from ..data.datasets import MNISTData
from ..data.fetch import sha256_file
from ..fileio import check_writable_dir
from ..grid.cells import CellStore, ModelRef
from ..report.plots import plot_convergence
from ..report.tables import check_replaceable, machine_info, machine_line, settings_hash, write_report
from ..studies.adversarial import ADVERSARIAL, ADVERSARIAL_LABELS, adversarial_checkpoint
from ..studies.bench import ATTACKS, BenchConfig, bench_cells, run_bench, write_bench_report
from ..studies.bench import COLUMNS as BENCH_COLUMNS
from ..studies.bench import table_rows as bench_rows
from ..studies.contrasts import write_contrasts
from ..studies.experiment import COLUMNS as ATTACK_COLUMNS
from ..studies.experiment import AttackConfig, run_experiment, write_experiment_report
from ..studies.experiment import table_rows as attack_rows
from ..studies.robust_eval import ATTACKS as ROBUST_ATTACKS
from ..studies.robust_eval import (
    CONVERGENCE_RESTARTS,
    CONVERGENCE_STEPS,
    RobustEvalConfig,
    autoattack_class,
    pgd_convergence,
    robust_evaluation,
    sample_indices,
    write_robust_report,
)
from ..studies.robust_eval import columns as robust_columns
from ..studies.robust_eval import summary_rows as robust_rows
from ..studies.robustness import (
    RobustnessConfig,
    cell_seconds,
    run_robustness,
    write_robustness_report,
)
from ..studies.robustness import cell_specs as robustness_cells
from ..studies.robustness import columns as ROBUSTNESS_COLUMNS
from ..studies.robustness import table_rows as robustness_rows
from ..targets import TARGET_MODES
from ..variants import VARIANTS, Variant, get_variant, variant_names
from .app import (
    CONTEXT,
    RUNS,
    VARIANT_NAMES,
    Choice,
    TargetType,
    announce,
    cell_progress,
    console,
    data_options,
    err_console,
    grid_options,
    handle_errors,
    log_line,
    main,
    make_progress,
    output_options,
    render,
    setup,
    usage_errors,
)
from .refs import (
    announce_training,
    check_model_ref,
    grid_model,
    load_checkpoint_for,
    load_model,
    model_tag,
)


@main.command(context_settings=CONTEXT)
@click.option("--model", "model_ref", default="textbook-momentum", show_default=True,
              help=f"A variant name ({', '.join(VARIANT_NAMES)}) or a checkpoint file.")
@click.option("--target", type=TargetType(), default="next-digit", show_default=True,
              help=f"{', '.join(TARGET_MODES)}, or a digit 0-9.")
@click.option("--steps", type=click.IntRange(min=0), default=10_000, show_default=True)
@click.option("--eta", type=float, default=0.1, show_default=True, help="Step size, in normalized units (the study's).")
@click.option("--lam", type=float, default=0.05, show_default=True, help="Pull toward the reference image.")
@click.option("--init", type=Choice(["noise", "reference"]), default="noise", show_default=True,
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
    with usage_errors():
        config = AttackConfig(target=target, steps=steps, eta=eta, lam=lam, init=init, per_class=per_class,
                              seed=seed, clip=clip, early_stop=early_stop, keep_best=keep_best)
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
    announce(data, device)
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
@click.option("--target", type=TargetType(), default="next-digit", show_default=True,
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
    with usage_errors():
        config = BenchConfig(n=n, n_slow=n_slow, target=target, eps=eps, rgd_steps=rgd_steps, attacks=chosen)
    refs = variant_names() if models == "all" else [m.strip() for m in models.split(",")]
    for ref in refs:
        check_model_ref(ref, "--models")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    settings = {"command": "bench", "dataset": data.info.sha256, "models": [model_tag(r) for r in refs],
                "config": dataclasses.asdict(config)}
    if out is not None:
        check_replaceable(out, "bench", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / f"bench-{settings_hash(settings)}", "--out")
    check_writable_dir(cells, "--cells")
    announce(data, device)
    announce_training(refs, data, checkpoints or default_checkpoints(), device)
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
                              f"({ADVERSARIAL_LABELS[name]}"
                              f"{'' if name == 'adv-recipe' else f'; {config.adv_epochs} epochs'}) into {path}[/]")

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
    with usage_errors():
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
    announce(data, device)
    announce_training([v.name for v in chosen], data, checkpoints, device, seeds=range(1, seeds + 1))
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


def _radii(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise click.UsageError(f"Invalid value for '--eps': {text!r} is not a comma-separated list of numbers; "
                               "e.g. --eps 0.1,0.2,0.3") from None


@main.command(context_settings=CONTEXT)
@click.argument("model_ref", metavar="MODEL")
@click.option("--eps", default="0.3", show_default=True, help="Comma-separated L∞ radii in pixels, e.g. 0.1,0.2,0.3.")
@click.option("--attacks", default="pgd,autoattack", show_default=True,
              help=f"Comma-separated: {', '.join(ROBUST_ATTACKS)} (apgd: APGD-CE + APGD-T only; square: the "
                   "black-box Square attack alone).")
@click.option("--images", type=int, default=1000, show_default=True,
              help="Seeded random test images, stratified by digit.")
@click.option("--sample-seed", type=int, default=0, show_default=True, help="Which random images.")
@click.option("--pgd-steps", type=int, default=100, show_default=True)
@click.option("--pgd-restarts", type=int, default=5, show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@output_options("Report folder  [default: reports/runs/<dataset>/autoattack-<model>-<settings hash>]")
@data_options
@handle_errors
def autoattack(model_ref: str, eps: str, attacks: str, images: int, sample_seed: int, pgd_steps: int,
               pgd_restarts: int, batch_size: int, out: Path | None, overwrite: bool, checkpoints: Path | None,
               **common: Any) -> None:
    """L∞ robust accuracy under AutoAttack (the authors' code) beside strong PGD.

    MODEL is a checkpoint file or a variant name. Robust means right clean and under
    every attack run on the image; a PGD − AutoAttack gap above 1 point is flagged.
    Writes autoattack.md/.csv/.json; an interrupted run resumes AutoAttack from its
    state files in the report folder.

    \b
    Examples:
      robustdigits autoattack robust.pt --eps 0.1,0.2,0.3,0.4
      robustdigits autoattack textbook-momentum --eps 0.1 --attacks pgd,apgd --images 200
    """
    with usage_errors():
        config = RobustEvalConfig(eps=_radii(eps), attacks=tuple(a.strip() for a in attacks.split(",")),
                                  images=images, sample_seed=sample_seed, pgd_steps=pgd_steps,
                                  pgd_restarts=pgd_restarts, batch_size=batch_size)
    if any(a != "pgd" for a in config.attacks):
        autoattack_class()  # a missing package is named before any data loads
    check_model_ref(model_ref, "MODEL")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    checkpoints = checkpoints or default_checkpoints()
    ckpt = load_checkpoint_for(model_ref, data, checkpoints, device)
    tag = model_tag(model_ref)
    settings = {"command": "autoattack", "dataset": data.info.sha256, "model": tag, **config.to_dict()}
    if out is not None:
        check_replaceable(out, "autoattack", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / f"autoattack-{tag}-{settings_hash(settings)}", "--out")
    announce(data, device)
    with usage_errors():
        indices = sample_indices(data.test_labels.numpy(), config.images, config.sample_seed)
    pixels = data.test_images[indices].unsqueeze(1).float().div(255)
    labels = data.test_labels[indices]
    adversarial = ckpt.adversarial or {}
    model_info = {"name": tag, "network": ckpt.model_spec.name, "kwargs": ckpt.model_spec.kwargs,
                  "recipe": adversarial.get("recipe"), "adversarial": adversarial.get("config"),
                  "description": describe_training(ckpt)}
    started = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task(f"{tag}: {len(config.attacks)} attacks × {len(config.eps)} ε on {len(indices):,} "
                                 "images", total=len(config.attacks) * len(config.eps), info="")

        def done(attack: str, radius: float) -> None:
            progress.update(task, advance=1, info=f"{attack} at ε = {radius:g} done")
            log_line(f"{attack} at ε = {radius:g} done")

        results = robust_evaluation(ckpt.build_model(device), pixels, labels, config, device=device,
                                    state_dir=out / "state", progress=done)
    wall = time.perf_counter() - started
    machine = machine_info(device)
    paths = write_robust_report(results, config, model=model_info, dataset=dataclasses.asdict(data.info),
                                indices=indices, machine=machine, machine_text=machine_line(machine),
                                settings=settings, wall_seconds=wall, out=out)
    render(f"{tag}: L∞ robust accuracy on {len(indices):,} test images", robust_columns(config.attacks, config),
           robust_rows(results, config.attacks))
    for r in results:
        if r.flagged:
            err_console.print(f"[yellow]flagged: at ε = {r.eps:g} PGD reports {r.gap:.1f} points more robustness than "
                              "AutoAttack (a weak attack or masked gradients): trust AutoAttack[/]")
    console.print(f"{wall / 60:.1f} min; wrote " + ", ".join(str(p) for p in paths))


def describe_training(ckpt: Any) -> str:
    """One line on how a checkpoint was trained."""
    spec, config = ckpt.model_spec, ckpt.train_config
    net = spec.name + (f" {spec.kwargs}" if spec.kwargs else "")
    adv = (ckpt.adversarial or {}).get("config")
    if adv is None:
        return f"{net}, trained naturally ({ckpt.step:,} SGD steps, lr {config.lr:g}, momentum {config.momentum:g})"
    return (f"{net}, adversarially trained with {adv['method']} at ε = {adv['eps']:g} ({ckpt.step:,} steps of "
            f"batch {config.batch_size}, {adv['optimizer']} at peak lr {config.lr:g}, {adv['schedule']} schedule; "
            f"kept epoch {ckpt.adversarial.get('best_epoch')} by held-out PGD)")


@main.command(context_settings=CONTEXT)
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default=Path("reports") / "robustness.json")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for robustness_contrasts.md/.csv/.json  [default: beside REPORT]")
@handle_errors
def contrasts(report: Path, out: Path | None) -> None:
    """The factors' effects on robustness, paired over seeds, from a robustness report.

    Each pair of variants that differs in one factor (momentum, dropout, batch-norm):
    per measure, the mean difference over seeds with its t interval and effect size.
    'robustness' writes this itself; this command re-reads a report already written.

    \b
    Example:
      robustdigits contrasts reports/robustness.json
    """
    if out is not None:
        check_writable_dir(out, "--out")
    paths = write_contrasts(report, out)
    console.print(Path(paths[0]).read_text().split("\n| ", 1)[0].strip().split("\n")[0])
    console.print("wrote " + ", ".join(str(p) for p in paths))


@main.command(context_settings=CONTEXT)
@click.argument("model_ref", metavar="MODEL")
@click.option("--eps", type=float, default=0.3, show_default=True, help="L∞ radius in pixels.")
@click.option("--images", type=int, default=200, show_default=True,
              help="Seeded random test images, stratified by digit.")
@click.option("--sample-seed", type=int, default=0, show_default=True)
@output_options("Report folder  [default: reports/runs/<dataset>/convergence-<model>-<settings hash>]")
@data_options
@handle_errors
def convergence(model_ref: str, eps: float, images: int, sample_seed: int, out: Path | None, overwrite: bool,
                checkpoints: Path | None, **common: Any) -> None:
    """Has PGD converged? Robust accuracy against steps (1-200) × restarts (1-10).

    Ten PGD runs of 200 steps (step ε / 4) from random starts; r restarts of s steps
    fool an image if any of the first r runs did by step s. Flat lines that lie on
    each other mean more steps or restarts would not lower the number. Writes
    convergence.md/.csv/.json and convergence.png.

    \b
    Example:
      robustdigits convergence textbook-momentum --eps 0.1
    """
    with usage_errors():
        check_number("eps", eps, 0.0, 1.0, low_open=True)
        check_int("images", images, 1)
    check_model_ref(model_ref, "MODEL")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    ckpt = load_checkpoint_for(model_ref, data, checkpoints or default_checkpoints(), device)
    tag = model_tag(model_ref)
    settings = {"command": "convergence", "dataset": data.info.sha256, "model": tag, "eps": eps, "images": images,
                "sample_seed": sample_seed, "steps": list(CONVERGENCE_STEPS), "restarts": list(CONVERGENCE_RESTARTS)}
    if out is not None:
        check_replaceable(out, "convergence", settings, overwrite)
    out = out or check_writable_dir(RUNS / data.info.name / f"convergence-{tag}-{settings_hash(settings)}", "--out")
    announce(data, device)
    with usage_errors():
        indices = sample_indices(data.test_labels.numpy(), images, sample_seed)
    started = time.perf_counter()
    with make_progress() as progress:
        progress.add_task(f"{tag}: {max(CONVERGENCE_RESTARTS)} PGD runs of {max(CONVERGENCE_STEPS)} steps on "
                          f"{len(indices)} images at ε = {eps:g}", total=None, info="")
        grid = pgd_convergence(ckpt.build_model(device), data.test_images[indices].unsqueeze(1).float().div(255),
                               data.test_labels[indices], eps, device=device)
    seconds = time.perf_counter() - started
    machine = machine_info(device)
    columns = ["restarts", *[f"{s} steps (%)" for s in CONVERGENCE_STEPS]]
    rows = [[r, *row] for r, row in zip(CONVERGENCE_RESTARTS, grid.tolist())]
    notes = [f"Model: {tag}; {describe_training(ckpt)}.",
             f"PGD at ε = {eps:g} (L∞, pixels), step ε / 4, best iterate, on {len(indices)} seeded random test images "
             f"(seed {sample_seed}, stratified by digit); robust needs clean-correct. Ten runs of 200 steps from "
             "random starts: r restarts of s steps fool an image if any of the first r runs did by step s.",
             f"Machine: {machine_line(machine)}; {seconds:.0f} s."]
    paths = write_report(out, "convergence", title=f"Has PGD converged on {tag} at ε = {eps:g}?", notes=notes,
                         columns=columns, rows=rows, records=[dict(zip(columns, row)) for row in rows],
                         meta={"settings": settings, "indices": indices.tolist(), "machine": machine,
                               "seconds": seconds, "dataset": dataclasses.asdict(data.info)})
    paths.append(plot_convergence(CONVERGENCE_STEPS, CONVERGENCE_RESTARTS, grid, out / "convergence.png",
                                  title=f"{tag}: PGD at ε = {eps:g}, {len(indices)} images"))
    render(f"{tag}: robust accuracy (%) at ε = {eps:g} by PGD steps and restarts", columns, rows)
    console.print("wrote " + ", ".join(str(p) for p in paths))
