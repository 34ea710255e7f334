"""Reliability and security tests: faults, bad inputs, safe files, properties.

The modules share one tiny trained run (built once per test session by
:func:`tiny_run`), so the whole directory compiles as few models as possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TINY", "TinyRun", "tiny_config", "tiny_run"]

#: The tiny configuration of every training run in these tests.
TINY: dict[str, Any] = {
    "model.hidden": [16, 16],
    "train.members": 2,
    "train.epochs": 6,
    "train.batch_size": 32,
    "train.patience": 0,
    "train.log_every": 1,
    "optim.warmup_epochs": 1,
    "data.fields": ["rho", "pth"],
    # one validation split and a test split: the shared run exercises the held-out path
    # (cross-validation has its own tests)
    "data.test_fraction": 0.1,
    "train.cv_folds": 0,
    # the variance beyond the box has its own tests (tests/runs, tests/emulator)
    "train.extrapolation_variance": "off",
}


def tiny_config(**changes: Any) -> Any:
    """``Config()`` with :data:`TINY` and ``changes`` (dotted keys) applied."""
    from profemu.config import Config

    return Config().updated({**TINY, **changes})


@dataclass(frozen=True)
class TinyRun:
    """A finished training run folder on the 300-row lh6 mock universe.

    Attributes:
        data_path: The dataset file (``.npz``) the run was trained on.
        run_dir: The run folder (config.yaml, data.json, split.json, emulator/, checkpoints/).
        dataset: The dataset (300 rows, 8 radii, 6 parameters, no P(k)).
        emulator: The trained Emulator (2 members), as returned by training.
    """

    data_path: Path
    run_dir: Path
    dataset: Any
    emulator: Any


_CACHE: dict[str, TinyRun] = {}


def tiny_run(root: Path) -> TinyRun:
    """Train (once per session, under ``root``) and return the shared tiny run."""
    if "run" not in _CACHE:
        from profemu.data.mock import make_mock_universe
        from profemu.runs.folder import DataSource
        from profemu.runs.training import train_emulator

        root.mkdir(parents=True, exist_ok=True)
        dataset = make_mock_universe(n=300, seed=3, param_set="lh6", n_r=8).dataset
        data_path = dataset.save(root / "mock.npz")
        run_dir = root / "run"
        outcome = train_emulator(dataset, tiny_config(), run_dir=run_dir, source=DataSource(str(data_path)))
        _CACHE["run"] = TinyRun(Path(data_path), run_dir, dataset, outcome.emulator)
    return _CACHE["run"]
