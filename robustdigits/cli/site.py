"""Commands that show the study: ``report`` (the page), ``reproduce`` (everything), ``demo`` (draw a digit)."""

from __future__ import annotations

import sys
import time
import webbrowser
from pathlib import Path
from typing import Any

import click

from ..checkpoints import default_checkpoints
from ..data.fetch import fetch_mnist
from ..devices import DEVICE_CHOICES
from ..errors import CheckpointError, ConfigError, DataError, OutputError
from ..fileio import check_writable_dir
from ..grid.executor import check_executor
from ..grid.minimum_norm import adv_lib_attacks
from ..grid.runner import autoattack_class
from ..report.page import find_reports, write_index
from ..studies.ablation import (
    needs_training,
    resolve_checkpoint,
)
from ..variants import variant_names
from ..web.demo import Demo
from ..web.server import make_server
from .app import (
    CHECKPOINTS_HELP,
    CONTEXT,
    Choice,
    announce,
    console,
    data_options,
    executor_options,
    handle_errors,
    main,
    setup,
)
from .attacking import attack, bench, robustness
from .refs import (
    check_model_ref,
    model_tag,
)
from .training import ablate


@main.command(context_settings=CONTEXT)
@click.option("--reports", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="The results folder; the page is written into it as index.html.")
@handle_errors
def report(reports: Path) -> None:
    """One static page of the study, from the results the other commands wrote.

    Reads the JSON tables and PNGs under REPORTS (no training, no attack) and writes
    REPORTS/index.html: opens from the file system, offline, printable. REPORTS is the
    committed study (reports/, leaving out your runs in reports/runs/) or any folder of
    runs, such as reports/runs, where every command writes by default.

    \b
    Example:
      robustdigits report && xdg-open reports/index.html
      robustdigits report --reports reports/runs    # the page of your own runs
    """
    if not reports.is_dir():
        raise OutputError(f"{reports.absolute()} does not exist; run a command first (they write to reports/runs/) "
                          "and pass --reports reports/runs, or 'robustdigits reproduce' for the whole study")
    check_writable_dir(reports, "--reports")
    found = find_reports(reports)
    for item in found:
        console.print(f"found {item.kind}: {item.path.parent} ({item.dataset} data)")
    if not found:
        console.print(f"found no report under {reports.absolute()}: the page says which command makes each section")
    path = write_index(reports, found=found)
    console.print(f"wrote {path.absolute()}; open it in a browser: file://{path.absolute()}")


STEPS = ("data", "ablation", "attack", "bench", "robustness", "report")


@main.command(context_settings=CONTEXT)
@click.option("--seeds", type=click.IntRange(min=1, max=1000), default=5, show_default=True,
              help="Seeds of the ablation and of the robustness study.")
@click.option("--device", type=Choice(DEVICE_CHOICES), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1, max=1024), default=None,
              help="torch CPU threads (default: torch's own choice).")
@executor_options
@click.pass_context
@handle_errors
def reproduce(ctx: click.Context, seeds: int, device: str, threads: int | None, executor: str, jobs: int | None,
              address: str | None) -> None:
    """The whole study in one command, into reports/: data, ablation, attack, benchmark,
    robustness, then the page (reports/index.html).

    Full MNIST where it can be fetched, else the embedded subset (said at the start).
    The robustness study runs on a seeded random 1,000 test images; its L∞ headline is
    AutoAttack at ε = 0.1, 0.2, 0.3 (standard on seed 1 and the adversarial rows, APGD-CE +
    APGD-T on the other seeds) with Square at 0.3, where the robust extra is installed, and
    its minimum-norm attacks are the converged ones (FMN, DDN, C&W 9 × 100) where the
    minnorm extra is; without them, PGD and the quick attacks alone (said at step 5).
    Resumable: finished checkpoints and cells are reused, so a second run redoes only
    what is missing. Every training run and attack is a cell: --jobs N runs N at once
    here, --executor ray --address auto across a Ray cluster. On a 2-core CPU with full
    MNIST this takes hours (see README); 'robustdigits ablate' alone is the quick start.

    \b
    Example:
      robustdigits reproduce
    """
    jobs = check_executor(executor, jobs, address)
    started = time.perf_counter()
    common = {"device": device, "threads": threads, "download": False}
    grid = {"executor": executor, "jobs": jobs, "address": address}

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
    ctx.invoke(ablate, seeds=seeds, out=out, overwrite=True, data=name, **common, **grid)
    step(3, "the study's attack")
    ctx.invoke(attack, out=out / "attack", overwrite=True, data=name, **common)
    step(4, "benchmark")
    ctx.invoke(bench, out=out, overwrite=True, data=name, **common, **grid)
    step(5, "robustness")
    try:
        adv_lib_attacks()
        min_norm = "converged"
    except ConfigError as e:
        console.print(f"[yellow]{e}: the minimum-norm columns use the quick attacks (ART's C&W 3 × 10)[/]")
        min_norm = "quick"
    try:
        autoattack_class()
        headline = {"aa_eps": "0.1,0.2,0.3", "aa_version": "mixed", "square_eps": "0.3"}
    except ConfigError as e:
        console.print(f"[yellow]{e}: the robustness study runs without AutoAttack and Square (PGD alone)[/]")
        headline = {}
    ctx.invoke(robustness, seeds=seeds, out=Path("reports") if name == "mnist" else out, overwrite=True, data=name,
               min_norm=min_norm, sample="random", **headline, **common, **grid)
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
    announce(data, dev)
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
