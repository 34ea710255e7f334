"""profemu: physics-informed neural emulators of cosmological halo radial profiles.

The public API is re-exported here; see ``docs/architecture.md`` for how the
pieces fit together.
"""

from __future__ import annotations

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator import Emulator
from profemu.errors import ConfigError, DataError, ExtrapolationError, FormatError, ProfemuError

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "Emulator",
    "ExtrapolationError",
    "FormatError",
    "ProfemuError",
    "ProfileDataset",
    "__version__",
]
