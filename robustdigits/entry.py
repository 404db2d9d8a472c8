"""The ``robustdigits`` console script: Ctrl-C while the heavy imports load (torch, ART)
exits 130 with one line, like Ctrl-C anywhere else, instead of a traceback."""

from __future__ import annotations

import sys


def run(prog_name: str | None = None) -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting; nothing was written\n")
        sys.exit(130)
    main(prog_name=prog_name)
