"""train_emulator: the run id binds the emulator to its run folder; the extrapolation variance is opt-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.runs.folder import RunFolder
from profemu.runs.training import train_emulator

_TINY = {"train.epochs": 3, "train.members": 2, "model.hidden": [16], "data.input_relevance": "off",
         "train.cv_folds": 0}


def test_the_emulator_carries_its_runs_id(tmp_path: Path) -> None:
    ds = make_mock_universe(n=64, seed=1, param_set="lh6", with_pk=False, n_r=6).dataset
    out = train_emulator(ds, Config().updated(_TINY), run_dir=tmp_path / "run")
    run_id = RunFolder.open(tmp_path / "run").run_id()
    assert run_id and out.emulator.metadata["run_id"] == run_id
    assert RunFolder.open(tmp_path / "run").emulator().metadata["run_id"] == run_id


def test_extrapolation_variance_is_fitted_when_asked_and_grows_outside_the_box() -> None:
    ds = make_mock_universe(n=96, seed=2, param_set="lh6", with_pk=False, n_r=6).dataset
    plain = train_emulator(ds, Config().updated(_TINY)).emulator
    assert "extrapolation" not in plain.metadata  # off by default
    emu = train_emulator(ds, Config().updated({**_TINY, "train.extrapolation_variance": True})).emulator
    record = emu.metadata["extrapolation"]
    assert record["held_out_rows"] > 0
    hi = float(ds.log10_mass.max())
    inside = emu.predict(ds.params[:1], hi - 0.1, on_extrapolation="ignore")[emu.field_names[0]]
    outside = emu.predict(ds.params[:1], hi + 1.5, on_extrapolation="ignore")[emu.field_names[0]]
    assert np.all(outside.extrapolation > inside.extrapolation)
    assert float(np.max(outside.distance_outside)) == pytest.approx(1.5, abs=1e-5)  # mass, in dex
