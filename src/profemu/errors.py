"""Exception types raised by profemu.

Every error a user can trigger with bad input derives from :class:`ProfemuError`
and carries a message that names the offending field and says how to fix it.
The command line turns these into exit code 2 and a single line.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "ExtrapolationError",
    "FolderLockedError",
    "FormatError",
    "ProfemuError",
    "TrainingError",
]


class ProfemuError(Exception):
    """Base class of every error profemu raises on purpose."""


class DataError(ProfemuError, ValueError):
    """Invalid data: wrong shapes, non-finite inputs, bad radii, unreadable files."""


class FormatError(DataError):
    """A file is not in a format profemu can read (wrong type, truncated, newer version)."""


class FolderLockedError(DataError):
    """A run (or sweep) folder is in use by another profemu process (its lock file is held)."""


class ConfigError(ProfemuError, ValueError):
    """Invalid configuration: unknown key, wrong type or out-of-range value."""


class ExtrapolationError(ProfemuError, ValueError):
    """Inputs outside the training box while ``on_extrapolation="error"``."""


class TrainingError(ProfemuError, RuntimeError):
    """Training could not produce a finite model (after all recovery attempts)."""
