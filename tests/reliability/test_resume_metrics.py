"""A resumed run writes each epoch's metrics once.

A run killed after an epoch's line of ``metrics.jsonl`` was written but before that
epoch's checkpoint trains the epoch again when resumed. The resumed run keeps only the
lines up to its checkpoint (rewritten atomically), so every (stage, epoch) appears once,
a line cut short by the kill is dropped, and the finished cross-validation's lines stay.
The kill is rebuilt by hand from a finished run: its newest checkpoint and its Emulator
are removed, and half a line is appended.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu._files import flatten_tree
from profemu.data.io import load_dataset
from profemu.runs.folder import DataSource
from profemu.runs.training import train_emulator
from tests.reliability import tiny_config

CUT_LINE = '{"epoch": 9, "train_loss": 0.1'  # what a kill in the middle of a write leaves


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from profemu.data.mock import make_mock_universe

    dataset = make_mock_universe(n=300, seed=3, param_set="lh6", n_r=8).dataset
    return Path(dataset.save(tmp_path_factory.mktemp("resume_metrics") / "mock.npz")).resolve()


def lines(run: Path) -> list[dict[str, Any]]:
    """The entries of ``metrics.jsonl`` (each line must be one JSON object)."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def kill_before_last_checkpoint(run: Path) -> int:
    """Leave ``run`` as a kill after the last epoch's metrics line, before its checkpoint, leaves;
    the epoch of the checkpoint that stays."""
    checkpoints = sorted((run / "checkpoints").glob("ckpt-*.json"))
    assert len(checkpoints) == 2, checkpoints
    newest = checkpoints[-1]
    newest.with_suffix(".npz").unlink()
    newest.unlink()
    shutil.rmtree(run / "emulator")
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write(CUT_LINE)
    return int(json.loads(checkpoints[0].read_text())["epoch"])


def train(data: Path, run: Path, resume: bool = False, **changes: Any) -> Any:
    return train_emulator(load_dataset(data), tiny_config(**changes), run_dir=run, source=DataSource(str(data)),
                          resume=resume)


def test_a_resumed_run_writes_each_epoch_once(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    settings = {"train.checkpoint_every": 2}
    train(data, run, **settings)
    finished = lines(run)
    epochs = [e["epoch"] for e in finished]
    assert epochs == list(range(len(epochs))) and len(epochs) > 4, epochs
    kept = kill_before_last_checkpoint(run)
    assert 0 < kept < len(epochs)

    outcome = train(data, run, resume=True, **settings)
    after = lines(run)  # every line parses: the cut line is gone
    assert [e["epoch"] for e in after] == epochs
    assert after[:kept] == finished[:kept]  # the lines up to the checkpoint are the killed run's
    assert len(outcome.history) == len(epochs)
    assert not list(run.glob(".metrics.jsonl.*"))  # no temporary file left


def test_a_resumed_refit_keeps_the_cross_validation_lines_once(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "CV"
    # 10 epochs: the refit continues the folds' networks for the schedule's last fifth, 2 epochs and checkpoints
    settings = {"train.cv_folds": 2, "data.test_fraction": 0.0, "train.checkpoint_every": 1, "train.epochs": 10}
    whole = train(data, run, **settings)
    finished = lines(run)
    stages = Counter(e.get("stage") for e in finished)
    assert set(stages) == {"cv", "refit"}, stages
    kill_before_last_checkpoint(run)

    resumed = train(data, run, resume=True, **settings)
    after = lines(run)
    # the refit (continuing the folds' networks) goes on where it stopped, to the same members
    assert resumed.cross_validation["refit"] == whole.cross_validation["refit"]
    assert resumed.cross_validation["refit"]["continues_cv_networks"]
    for name, value in flatten_tree(whole.emulator.weights).items():
        np.testing.assert_allclose(flatten_tree(resumed.emulator.weights)[name], value, rtol=1e-5, atol=1e-6)
    # the GP blend is weighted on the saved out-of-fold predictions: the resumed emulator keeps it
    assert whole.emulator.blend is not None and resumed.emulator.blend is not None
    np.testing.assert_allclose(resumed.emulator.blend.weight, whole.emulator.blend.weight)
    np.testing.assert_allclose(resumed.emulator.blend.alpha, whole.emulator.blend.alpha, rtol=1e-6, atol=1e-9)
    keys = Counter((e.get("stage"), e["epoch"]) for e in after)
    assert max(keys.values()) == 1, [k for k, v in keys.items() if v > 1]
    assert set(keys) == {(e.get("stage"), e["epoch"]) for e in finished}
    assert [e for e in after if e["stage"] != "refit"] == [e for e in finished if e["stage"] != "refit"]


def test_resume_keeps_the_chosen_lines_as_they_were_and_ends_a_cut_line(tmp_path: Path) -> None:
    from profemu.train.logging import MetricsLogger

    path = tmp_path / "metrics.jsonl"
    first, second, last = '{"epoch": 0, "train_loss": 1.0}', '{"epoch": 1,  "train_loss": 0.5}', '{"epoch": 2}'
    path.write_text(f"{first}\n{second}\n{last}")  # the last line whole, its newline cut off
    metrics = MetricsLogger(tmp_path, tensorboard=False)
    assert metrics.resume(lambda e: e["epoch"] < 3) == 0
    assert path.read_text() == f"{first}\n{second}\n{last}\n"  # kept as written, newline added
    metrics.log({"epoch": 3})
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]
    assert metrics.resume(lambda e: e["epoch"] < 1) == 3
    assert path.read_text() == f"{first}\n" and metrics.history == [{"epoch": 0, "train_loss": 1.0}]
