"""Commands that attack networks: ``attack``, ``bench``, ``robustness``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..checkpoints import checkpoint_dir, checkpoint_path, default_checkpoints
from ..data.datasets import MNISTData
from ..fileio import check_writable_dir
from ..grid.cells import CellStore
from ..grid.executor import Tally, check_executor
from ..grid.minimum_norm import adv_lib_attacks
from ..grid.runner import autoattack_class
from ..report.tables import check_replaceable, settings_hash
from ..studies.adversarial import ADVERSARIAL, ADVERSARIAL_LABELS, check_adversarial
from ..studies.bench import ATTACKS, BenchConfig, bench_cells, run_bench, write_bench_report
from ..studies.bench import COLUMNS as BENCH_COLUMNS
from ..studies.bench import table_rows as bench_rows
from ..studies.experiment import COLUMNS as ATTACK_COLUMNS
from ..studies.experiment import AttackConfig, run_experiment, write_experiment_report
from ..studies.experiment import table_rows as attack_rows
from ..studies.robustness import AA_VERSIONS, MIN_NORM, SAMPLES, RobustnessConfig
from ..studies.robustness import columns as ROBUSTNESS_COLUMNS
from ..studies.robustness import table_rows as robustness_rows
from ..studies.robustness_grid import robustness_cell_count, run_study
from ..studies.robustness_report import cell_seconds, write_robustness_report
from ..targets import TARGET_MODES
from ..variants import VARIANTS, get_variant, variant_names
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
    grid_progress,
    handle_errors,
    main,
    make_progress,
    output_options,
    radii,
    render,
    setup,
    step_bars,
    usage_errors,
)
from .refs import (
    announce_training,
    check_model_ref,
    grid_model,
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
          jobs: int | None, address: str | None, **common: Any) -> None:
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
    jobs = check_executor(executor, jobs, address)
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
        grid, result = run_bench(loaded, data, config, store, device=device, executor=executor, jobs=jobs,
                                 address=address, fresh=fresh,
                                 done=cell_progress(progress, total, f"bench: {total} cells"))
    paths = write_bench_report(result, config, data, out, device, settings=settings, cells=grid, store=store)
    render(f"{len(loaded)} models × {len(chosen)} attacks on the first {min(n, data.info.n_test):,} "
           f"{data.info.name} test images", BENCH_COLUMNS, bench_rows(result))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def announce_rows(rows: Sequence[str], data: MNISTData, checkpoints: Path, config: RobustnessConfig) -> None:
    """Before the grid trains adversarially trained rows: which, and where."""
    todo = []
    for row in rows:
        path = checkpoint_path(checkpoints, data.info, row, 1)
        ckpt = check_adversarial(row, path, data, config)
        if ckpt is None or not ckpt.complete:
            todo.append(row)
    if todo:
        console.print(f"[yellow]first, training {len(todo)} adversarially trained row{'s' if len(todo) > 1 else ''} "
                      f"not yet trained on {data.info.name} data (seed 1): "
                      + "; ".join(f"{row}: {ADVERSARIAL_LABELS[row]}" for row in todo)
                      + f", into {checkpoint_dir(checkpoints, data.info)}[/]")


@main.command(context_settings=CONTEXT)
@click.option("--variants", default="all", show_default=True,
              help=f"Comma-separated variant names, or all: {', '.join(VARIANT_NAMES)}.")
@click.option("--seeds", type=click.IntRange(min=1, max=1000), default=3, show_default=True,
              help="The ablation's seeds 1..N of each variant (trained first where missing).")
@click.option("--n", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Attack N test images: the first N, or a seeded random N with --sample random.")
@click.option("--n-slow", type=click.IntRange(min=1), default=100, show_default=True,
              help="The minimum-norm attacks (C&W, DeepFool, and FMN, DDN with --min-norm converged) on a "
                   "stratified subset of this many.")
@click.option("--adversarial", default=",".join(ADVERSARIAL), show_default=True,
              help="Adversarially trained rows (seed 1), comma-separated, or none.")
@click.option("--autoattack", "aa_eps", default="", metavar="EPS",
              help="Comma-separated L∞ radii where AutoAttack runs too, on the same images (e.g. 0.1,0.2,0.3; "
                   "needs the robust extra): its robust accuracy, the per-image worst case with PGD, the gap.")
@click.option("--square", "square_eps", default="", metavar="EPS",
              help="Comma-separated L∞ radii of the black-box Square attack alone on the tutorial net and the "
                   "adversarial rows (needs the robust extra): Square beating PGD or AutoAttack flags gradient "
                   "masking.")
@click.option("--aa-version", type=Choice(AA_VERSIONS), default="standard", show_default=True,
              help="standard: APGD-CE, APGD-T, FAB-T, Square; apgd: APGD-CE (5 starts) + APGD-T (a quarter of the "
                   "cost on a natural LeNet at ε = 0.1); "
                   "mixed: standard on seed 1 and the adversarial rows, apgd on the other seeds.")
@click.option("--pgd-steps", type=click.IntRange(min=1), default=100, show_default=True,
              help="PGD's steps (of 2.5·ε/steps each).")
@click.option("--pgd-restarts", type=click.IntRange(min=1), default=5, show_default=True,
              help="PGD's random starts (a restart runs only on the images no earlier one fooled).")
@click.option("--sample", type=Choice(SAMPLES), default="first", show_default=True,
              help="first: the first --n test images; random: a seeded random --n, stratified by digit.")
@click.option("--min-norm", type=Choice(MIN_NORM), default="quick", show_default=True,
              help="quick: the study's attack, ART's C&W (3 × 10, not converged) and DeepFool; converged: also "
                   "adv-lib's FMN and DDN, its C&W (9 × 100) and our attack at the same steps (needs the minnorm "
                   "extra).")
@click.option("--mn-steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Steps of FMN, DDN and our untargeted attack with --min-norm converged.")
@output_options("Report folder  [default: reports/runs/<dataset>/robustness-<settings>]")
@grid_options
@data_options
@handle_errors
def robustness(variants: str, seeds: int, n: int, n_slow: int, adversarial: str, aa_eps: str, square_eps: str,
               aa_version: str, pgd_steps: int, pgd_restarts: int,
               sample: str, min_norm: str, mn_steps: int, out: Path | None, overwrite: bool, checkpoints: Path | None,
               cells: Path, fresh: bool, executor: str, jobs: int | None, address: str | None, **common: Any) -> None:
    """Does momentum, dropout or batch-norm change robustness? The variants, attacked.

    Per variant over --seeds seeds on the first --n test images (--sample random: a seeded
    random --n): clean accuracy, PGD robust accuracy at ε = 0.1, 0.2, 0.3 (the adversarial
    rows also at 0.4 and 0.5), AutoAttack where asked, the study's attack (next digit) and the
    smallest L2 over the minimum-norm attacks (--min-norm converged: FMN, DDN, C&W 9 × 100
    too), with 95% Wilson intervals; plus adversarially trained rows. Writes
    robustness.md/.csv/.json, robustness_min_norm.* (per attack), the contrasts over seeds
    and two curves (L2 and L∞). The study is one grid: every training run and every attack is a cell (see
    'bench -h'), run by --jobs local workers or Ray, an attack as soon as its model is
    trained; an interrupted run resumes.

    \b
    Example:
      robustdigits robustness --seeds 3 --n 1000
    """
    started = time.perf_counter()
    with usage_errors():
        chosen = VARIANTS if variants == "all" else tuple(get_variant(v.strip()) for v in variants.split(","))
        rows = () if adversarial in ("", "none") else tuple(a.strip() for a in adversarial.split(","))
        config = RobustnessConfig(n=n, n_slow=n_slow, seeds=seeds, adversarial=rows, autoattack=radii(aa_eps),
                                  aa_version=aa_version, sample=sample, min_norm=min_norm, mn_steps=mn_steps,
                                  pgd_steps=pgd_steps, pgd_restarts=pgd_restarts,
                                  square=radii(square_eps, "--square"))
    if config.autoattack or config.square:
        autoattack_class()  # a missing package is named before any work
    if config.min_norm == "converged":
        adv_lib_attacks()
    jobs = check_executor(executor, jobs, address)
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
    announce_rows(rows, data, checkpoints, config)
    store = CellStore(cells)
    trains = len(chosen) * seeds + len(rows)
    totals = {"train": trains}
    for kind in ("attack", "autoattack"):  # AutoAttack's cells, far slower, get their own pace
        totals[kind] = sum(robustness_cell_count(data, config, v.name, seed, kind) for v in chosen
                           for seed in range(1, seeds + 1)) + \
            sum(robustness_cell_count(data, config, row, 1, kind) for row in rows)
    tally = Tally({k: v for k, v in totals.items() if v}, slots=jobs)
    spent = {"train": 0.0, "attack": 0.0, "autoattack": 0.0}
    with make_progress() as progress:
        done = grid_progress(progress, tally, f"robustness: {tally.total} cells", spent)
        results, all_cells = run_study(chosen, data, config, store, checkpoints=checkpoints, device=device,
                                            executor=executor, jobs=jobs, address=address, fresh=fresh, done=done,
                                            progress=step_bars(progress))
    seconds: dict[str, Any] = {"training_cells": spent["train"], "attack_cells": spent["attack"] + spent["autoattack"],
                               "total": time.perf_counter() - started, "jobs": jobs, "executor": executor,
                               "per_attack": cell_seconds(all_cells)}
    paths, problems = write_robustness_report(results, config, data, out, device, seconds=seconds,
                                              settings=settings)
    render(f"Robustness on {'the first' if sample == 'first' else 'a seeded random'} {min(n, data.info.n_test):,} "
           f"{data.info.name} test images",
           ROBUSTNESS_COLUMNS(config), robustness_rows(results, config))
    for problem in problems:
        err_console.print(f"[red]sanity check: {problem}[/]")
    if not problems:
        console.print("sanity checks: all hold (robust ≤ clean, PGD monotone in ε, no attack at 0% on a non-robust "
                      "model)")
    console.print(f"wrote {', '.join(str(p) for p in paths)} in {seconds['total']:.0f} s")

