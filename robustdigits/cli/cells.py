"""The ``cells`` command group: finished cells without their images, carried between machines."""

from __future__ import annotations

from pathlib import Path

import click

from ..fileio import check_writable_dir
from ..grid.cells import CellStore
from ..grid.portable import export_cells, import_cells
from .app import CELLS, CONTEXT, console, handle_errors, main

CELLS_OPTION = click.option("--cells", type=click.Path(file_okay=False, path_type=Path), default=CELLS,
                            show_default=True, help="The store of finished cells the grid commands use.")


@main.group(context_settings=CONTEXT)
def cells() -> None:
    """Finished cells without their adversarial images: carry a run to another machine.

    A cell's key names its model's SHA-256, and the study's training is deterministic, so
    a machine that retrains the checkpoints reuses cells another one finished. 'export'
    writes each cell's per-image outcomes (a few KB; the store also keeps every adversarial
    image) to a folder; 'import' checks and adds them to a store.

    \b
    Example:
      robustdigits cells export reports/runs/carry --cells /tmp/cells
      robustdigits cells import reports/runs/carry --cells /tmp/cells   # on the next machine
    """


@cells.command("export", context_settings=CONTEXT)
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@CELLS_OPTION
@handle_errors
def export_command(dest: Path, cells: Path) -> None:
    """Write every finished cell of --cells into DEST, without its images."""
    check_writable_dir(dest, "DEST")
    written, present = export_cells(CellStore(cells), dest)
    size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    console.print(f"exported {written} cells to {dest} ({present} already there; the folder holds "
                  f"{size / 1e6:.1f} MB)")


@cells.command("import", context_settings=CONTEXT)
@click.argument("src", type=click.Path(path_type=Path))
@CELLS_OPTION
@handle_errors
def import_command(src: Path, cells: Path) -> None:
    """Check every cell exported to SRC and add it to --cells (cells already there are kept)."""
    check_writable_dir(cells, "--cells")
    imported, present = import_cells(src, CellStore(cells))
    console.print(f"imported {imported} cells into {cells} ({present} already there)")
