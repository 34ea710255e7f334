"""The Emulator a user points at: a run folder (``RUN/emulator``) or an emulator folder itself."""

from __future__ import annotations

from pathlib import Path

from profemu.emulator.core import Emulator
from profemu.emulator.files import MANIFEST
from profemu.errors import FormatError

__all__ = ["emulator_folder", "load_emulator"]


def emulator_folder(path: str | Path) -> Path:
    """The emulator folder of ``path``: ``path/emulator`` for a run folder, else ``path``.

    Raises:
        FormatError: ``path`` holds neither a run's emulator nor an emulator manifest.
    """
    p = Path(path)
    if (p / "emulator" / MANIFEST).is_file():
        return p / "emulator"
    if (p / MANIFEST).is_file():
        return p
    raise FormatError(f"{p}: neither a run folder (no emulator/{MANIFEST}) nor an emulator folder; "
                      "pass the --out folder of `profemu train` or an emulator folder.")


def load_emulator(path: str | Path) -> Emulator:
    """The validated Emulator of a run folder or an emulator folder (see :func:`emulator_folder`)."""
    return Emulator.load(emulator_folder(path))
