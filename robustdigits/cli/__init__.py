"""The ``robustdigits`` command line: thin click commands over the library, rendered with rich.
``app`` holds the group and what commands share; the commands live in modules by group."""

from . import attacking, cells, data, robust, site, training  # noqa: F401  (registers the commands on main)
from .app import main

__all__ = ["main"]
