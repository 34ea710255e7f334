"""Tests of profemu.runs.training and profemu.runs.folder: one training set-up, one run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.errors import DataError
from profemu.runs.folder import RunFolder
from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def test_run_folder_holds_everything_and_reads_back(run: TinyRun) -> None:
    folder = RunFolder.open(run.run_dir)
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"config.yaml", "data.json", "split.json", "emulator", "checkpoints", "metrics.jsonl", "curves.png",
            "evaluation.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    cfg = folder.config()
    assert cfg.train.members == 2 and cfg.data.fields == ("rho", "pth")
    assert len(folder.history()) == cfg.train.epochs
    assert folder.source().path == str(run.data_path)
    rows = {name: folder.split_rows(name, run.dataset.n) for name in ("train", "val", "test")}
    assert sum(r.size for r in rows.values()) == run.dataset.n
    groups = [set(run.dataset.groups[r]) for r in rows.values()]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    emu = folder.emulator()
    x, m = run.dataset.params[:4], run.dataset.log10_mass[:4]
    np.testing.assert_array_equal(emu.predict(x, m)["rho"].mean, run.emulator.predict(x, m)["rho"].mean)
    assert folder.evaluation()["fields"].keys() == {"rho", "pth"}


def test_run_folder_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        RunFolder.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a run folder"):
        RunFolder.open(tmp_path / "empty")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="no saved emulator"):
        RunFolder.open(tmp_path / "half")
    assert RunFolder.open(tmp_path / "half", require_emulator=False).is_training_run()


def test_the_emulator_is_calibrated_on_the_validation_split(run: TinyRun) -> None:
    emu = run.emulator
    assert emu.metadata["variance_scale_fitted_on"] == "validation split"
    assert emu.variance_scale != 1.0 and np.isfinite(emu.variance_scale)
    assert emu.metadata["n_train"] == len(RunFolder(run.run_dir).split_rows("train"))
