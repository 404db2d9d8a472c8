"""The errors robustdigits raises on purpose, all derived from :class:`RobustDigitsError`.

The CLI turns these into one line and a non-zero exit; anything else keeps its
traceback, so a bug never looks like a user's mistake. Each also derives from the
built-in type a Python caller expects (``ValueError``, ``TypeError``), as ART's
parameter checks do.
"""

from __future__ import annotations


class RobustDigitsError(Exception):
    """Base of every error raised on purpose; the message names the problem and the fix."""


class ConfigError(RobustDigitsError, ValueError):
    """A parameter with a wrong value; the message names the parameter."""


class ConfigTypeError(RobustDigitsError, TypeError):
    """A parameter of the wrong type; the message names the parameter."""


class DataError(RobustDigitsError, ValueError):
    """Bad or missing data; the message names the file and the fix."""


class CheckpointError(RobustDigitsError, ValueError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


class OutputError(RobustDigitsError):
    """A result that cannot be written where it was asked to go."""


class BusyError(RobustDigitsError):
    """Another process is writing the same files."""


class DivergedError(RobustDigitsError):
    """Training produced a non-finite loss; the message says at which step."""


class ReportError(RobustDigitsError, ValueError):
    """A report file that cannot be read as one; the message names the file."""
