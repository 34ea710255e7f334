"""profemu: physics-informed neural emulators of cosmological halo radial profiles.

The public API is flat::

    import profemu
    data = profemu.make_mock_universe(n=3000).dataset        # or profemu.ProfileDataset.load(...)
    out = profemu.train_emulator(data, profemu.Config(), run_dir="runs/demo")
    emu = profemu.Emulator.load("runs/demo/emulator")
    metrics = profemu.evaluate(emu, data)

Importing profemu does not import JAX; training and ``Emulator.predict_fn`` do. See
``docs/architecture.md`` for how the pieces fit together.
"""

from __future__ import annotations

import importlib
from typing import Any

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator import Emulator
from profemu.errors import (
    ConfigError,
    DataError,
    ExtrapolationError,
    FormatError,
    ProfemuError,
    TrainingError,
)

__version__ = "0.1.0"

# name -> module, imported on first use (keeps ``import profemu`` light).
_LAZY = {
    "train_emulator": "profemu.runs.training",
    "TrainResult": "profemu.runs.training",
    "HeldOutMetrics": "profemu.runs.training",
    "DataSource": "profemu.runs.folder",
    "RunFolder": "profemu.runs.folder",
    "evaluate": "profemu.metrics",
    "make_mock_universe": "profemu.data.mock",
    "load_camels_lh": "profemu.data.camels",
    "load_dataset": "profemu.data.io",
    "split_by_group": "profemu.data.split",
    "group_kfold": "profemu.data.split",
    "Transforms": "profemu.data.transforms",
    "GPBaseline": "profemu.baselines",
    "PCAGPBaseline": "profemu.baselines",
    "PCAMLPBaseline": "profemu.baselines",
    "make_hard_mock": "profemu.data.mock",
    "suggest": "profemu.design",
    "sensitivity": "profemu.design.derivatives",
    "PCARBFBaseline": "profemu.baselines",
    "run_diagnostics": "profemu.diagnose",
}

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "Emulator",
    "ExtrapolationError",
    "FormatError",
    "ProfemuError",
    "ProfileDataset",
    "TrainingError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'profemu' has no attribute {name!r}")
