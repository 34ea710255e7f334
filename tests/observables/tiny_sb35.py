"""Tiny trained runs on the 35-parameter mock universe (Omega_m and h are emulator inputs; radii in
R200c), with or without the 79 P(k) inputs, each built once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.reliability import TinyRun, tiny_config

__all__ = ["centre_point", "tiny_sb35_run"]

_CACHE: dict[bool, TinyRun] = {}


def tiny_sb35_run(root: Path, *, with_pk: bool) -> TinyRun:
    """Train (once per session and ``with_pk``, under ``root``; about 10 s) and return the run."""
    if with_pk not in _CACHE:
        from profemu.data.mock import make_mock_universe
        from profemu.runs.folder import DataSource
        from profemu.runs.training import train_emulator

        root.mkdir(parents=True, exist_ok=True)
        tag = "pk" if with_pk else "nopk"
        dataset = make_mock_universe(n=300, seed=3, param_set="sb35", n_r=8, with_pk=with_pk).dataset
        data_path = dataset.save(root / f"mock_sb35_{tag}.npz")
        run_dir = root / f"run_sb35_{tag}"
        outcome = train_emulator(dataset, tiny_config(), run_dir=run_dir, source=DataSource(str(data_path)))
        _CACHE[with_pk] = TinyRun(Path(data_path), run_dir, dataset, outcome.emulator)
    return _CACHE[with_pk]


def centre_point(emulator: Any, **values: float) -> np.ndarray:
    """The centre of the emulator's training box (geometric centre for log-sampled parameters) [p],
    with ``values`` (name=value) replacing some parameters."""
    point = []
    for name in emulator.param_names:
        lo, hi = emulator.training_box[name]
        point.append(values.get(name, np.sqrt(lo * hi) if name in emulator.log_params else 0.5 * (lo + hi)))
    return np.asarray(point, dtype=float)
