"""Tests of the metrics logger and the training-curve figure."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from profemu.train.logging import MetricsLogger, plot_curves


def fake_history(n: int = 6) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / (e + 1),
            "train_data": 0.8 / (e + 1),
            "train_monotonic": 0.0,
            "train_loss_members": [1.0, 2.0],
            "val_loss": float("nan") if e == 2 else np.float32(1.2 / (e + 1)),
            "grad_norm": np.float64(0.5),
            "learning_rate": 1e-3,
            "skipped_steps": np.int64(e),
            "dropout": True,
            "val_failures": {3: [1, 2]},
        }
        for e in range(n)
    ]


def test_metrics_jsonl_and_tensorboard(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        for entry in fake_history():
            logger(entry)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and logger.history == lines
    assert lines[2]["val_loss"] is None  # NaN is written as null, never as invalid JSON
    assert lines[1]["val_loss"] == np.float32(0.6).item()
    assert lines[3]["skipped_steps"] == 3 and isinstance(lines[3]["skipped_steps"], int)
    assert lines[0]["train_loss_members"] == [1.0, 2.0]
    assert lines[0]["val_failures"] == {"3": [1, 2]}
    if not logger.note:
        scalars = _tensorboard_scalars(tmp_path / "tensorboard")
        assert scalars["train_loss"] == [(e, pytest.approx(1.0 / (e + 1))) for e in range(6)]
        assert [step for step, _ in scalars["val_loss"]] == [0, 1, 3, 4, 5]  # the NaN of epoch 2 is left out
        assert scalars["skipped_steps"][3] == (3, 3.0)
        assert "dropout" not in scalars and "train_loss_members" not in scalars


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` read back from the TensorBoard event files in ``folder``
    (TFRecord framing: length, its CRC, the serialised Event, its CRC)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    out = plot_curves(fake_history(), tmp_path / "sub" / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curves([], tmp_path / "empty.png").is_file()


def test_plot_curves_replaces_the_figure_atomically(tmp_path: Path, monkeypatch) -> None:
    """A drawing that fails half-way (full disk, interrupt) keeps the previous figure whole."""
    from matplotlib.figure import Figure

    path = plot_curves(fake_history(), tmp_path / "curves.png")
    before = path.read_bytes()

    def half_written(self, fh, **kwargs) -> None:
        fh.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_written)
    try:
        plot_curves(fake_history(3), path)
    except KeyboardInterrupt:
        pass
    else:  # pragma: no cover
        raise AssertionError("the interrupt was swallowed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
