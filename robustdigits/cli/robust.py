"""Commands that measure robustness as a reviewer would: ``autoattack``, ``convergence``, ``contrasts``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..checkpoints import default_checkpoints
from ..checks import check_int, check_number
from ..fileio import check_writable_dir
from ..grid.runner import autoattack_class
from ..report.plots import plot_convergence
from ..report.tables import check_replaceable, machine_info, machine_line, settings_hash, write_report
from ..studies.contrasts import write_contrasts
from ..studies.robust_eval import ATTACKS as ROBUST_ATTACKS
from ..studies.robust_eval import (
    CONVERGENCE_RESTARTS,
    CONVERGENCE_STEPS,
    RobustEvalConfig,
    pgd_convergence,
    robust_evaluation,
    sample_indices,
    write_robust_report,
)
from ..studies.robust_eval import columns as robust_columns
from ..studies.robust_eval import summary_rows as robust_rows
from ..studies.robustness_report import redraw_figures
from .app import (
    CONTEXT,
    RUNS,
    announce,
    console,
    data_options,
    err_console,
    handle_errors,
    log_line,
    main,
    make_progress,
    output_options,
    radii,
    render,
    setup,
    usage_errors,
)
from .refs import check_model_ref, load_checkpoint_for, model_tag


@main.command(context_settings=CONTEXT)
@click.argument("model_ref", metavar="MODEL")
@click.option("--eps", default="0.3", show_default=True, help="Comma-separated L∞ radii in pixels, e.g. 0.1,0.2,0.3.")
@click.option("--attacks", default="pgd,autoattack", show_default=True,
              help=f"Comma-separated: {', '.join(ROBUST_ATTACKS)} (apgd: APGD-CE from 5 starts + APGD-T only; "
                   "square: the black-box Square attack alone; transfer: PGD crafted on --source).")
@click.option("--source", "source_ref", default=None, metavar="MODEL",
              help="The transfer attack's source, a naturally trained checkpoint or variant name  "
                   "[default with transfer: textbook-momentum]")
@click.option("--images", type=int, default=1000, show_default=True,
              help="Seeded random test images, stratified by digit.")
@click.option("--sample-seed", type=int, default=0, show_default=True, help="Which random images.")
@click.option("--pgd-steps", type=int, default=100, show_default=True)
@click.option("--pgd-restarts", type=int, default=5, show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@output_options("Report folder  [default: reports/runs/<dataset>/autoattack-<model>-<settings hash>]")
@data_options
@handle_errors
def autoattack(model_ref: str, eps: str, attacks: str, source_ref: str | None, images: int, sample_seed: int,
               pgd_steps: int, pgd_restarts: int, batch_size: int, out: Path | None, overwrite: bool,
               checkpoints: Path | None, **common: Any) -> None:
    """L∞ robust accuracy under AutoAttack (the authors' code) beside strong PGD.

    MODEL is a checkpoint file or a variant name. Robust means right clean and under
    every attack run on the image; a PGD − AutoAttack gap above 1 point is flagged.
    Writes autoattack.md/.csv/.json; an interrupted run resumes AutoAttack from its
    state files in the report folder.

    \b
    Examples:
      robustdigits autoattack robust.pt --eps 0.1,0.2,0.3,0.4
      robustdigits autoattack textbook-momentum --eps 0.1 --attacks pgd,apgd --images 200
      robustdigits autoattack robust.pt --attacks pgd,transfer --source textbook-momentum
    """
    chosen = tuple(a.strip() for a in attacks.split(","))
    if "transfer" in chosen and source_ref is None:
        source_ref = "textbook-momentum"
    with usage_errors():
        config = RobustEvalConfig(eps=radii(eps, "--eps"), attacks=chosen, images=images, sample_seed=sample_seed,
                                  pgd_steps=pgd_steps, pgd_restarts=pgd_restarts, batch_size=batch_size,
                                  source=model_tag(source_ref) if source_ref and "transfer" in chosen else "")
    if any(a not in ("pgd", "transfer") for a in config.attacks):
        autoattack_class()  # a missing package is named before any data loads
    check_model_ref(model_ref, "MODEL")
    if config.source:
        check_model_ref(str(source_ref), "--source")
    if out is not None:
        check_writable_dir(out, "--out")
    data, device = setup(**common)
    checkpoints = checkpoints or default_checkpoints()
    ckpt = load_checkpoint_for(model_ref, data, checkpoints, device)
    source = load_checkpoint_for(str(source_ref), data, checkpoints, device).build_model(device) \
        if config.source else None
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
                                    state_dir=out / "state", progress=done, source=source)
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
    optimizer = f"{ckpt.step:,} SGD steps, lr {config.lr:g}, momentum {config.momentum:g}"
    row = ckpt.metrics.get("adversarial_training")  # the robustness study's adversarially trained rows
    if adv is None and row:
        return f"{net}, adversarially trained by the robustness study: {row[0]} ({optimizer})"
    if adv is None:
        return f"{net}, trained naturally ({optimizer})"
    return (f"{net}, adversarially trained with {adv['method']} at ε = {adv['eps']:g} ({ckpt.step:,} steps of "
            f"batch {config.batch_size}, {adv['optimizer']} at peak lr {config.lr:g}, {adv['schedule']} schedule; "
            f"kept epoch {ckpt.adversarial.get('best_epoch')} by held-out PGD)")


def report_options(writes: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """REPORT (a robustness.json, default the committed one) and --out, for the commands that re-read it."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help=f"Folder for {writes}  [default: beside REPORT]")(func)
        return click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                              default=Path("reports") / "robustness.json")(func)

    return decorate


@main.command(context_settings=CONTEXT)
@report_options("robustness_contrasts.md/.csv/.json")
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
@report_options("robustness_l2.png and robustness_linf.png")
@handle_errors
def figures(report: Path, out: Path | None) -> None:
    """Redraw a robustness report's figures from its JSON, without running an attack.

    Each row's line has its family's colour (tutorial, textbook, improved, adversarially
    trained) and its factors' style (momentum 0.5 solid, 0 dashed; dropout 0.1 circles,
    0.5 squares); the legend sits outside the axes.

    \b
    Example:
      robustdigits figures reports/robustness.json
    """
    if out is not None:
        check_writable_dir(out, "--out")
    paths = redraw_figures(report, out)
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
