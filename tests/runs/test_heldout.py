"""The extrapolation variance's held-out training on its own thread: errors reach the run, a failed
run stops it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import profemu.runs.heldout as heldout
import profemu.runs.training as training
from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.errors import DataError
from profemu.runs.training import train_emulator
from profemu.train.setup import prepare

_CFG = {"train.epochs": 4, "train.members": 2, "model.hidden": [16], "data.input_relevance": "off",
        "train.cv_folds": 3, "train.extrapolation_variance": "on"}


def _dataset(n: int = 160) -> Any:
    return make_mock_universe(n=n, seed=5, param_set="lh6", with_pk=False, n_r=6).dataset


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "profemu-held-out-training"]


def _count_held_out_epochs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The epochs the held-out training runs, recorded as it runs (``heldout.fit`` wrapped)."""
    epochs: list[int] = []
    real_fit = heldout.fit

    def counted(*args: Any, callbacks: Any = (), **kwargs: Any) -> Any:
        def count(entry: dict[str, Any]) -> Any:
            epochs.append(int(entry["epoch"]))
            return any(c(entry) for c in callbacks)
        return real_fit(*args, callbacks=[count], **kwargs)

    monkeypatch.setattr(heldout, "fit", counted)
    return epochs

def test_it_trains_the_rows_below_the_median_mass_and_its_error_reaches_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset()
    cfg = Config().updated({**_CFG, "data.val_fraction": 0.0})
    prep = prepare(ds, cfg)
    job = heldout.HeldOutTraining(prep, cfg, (len(prep.split.train), 64))
    rows = heldout.training_rows(prep)
    mass = ds.log10_mass[rows]
    assert job.rows.n == int(np.sum(mass <= np.quantile(mass, 0.5)))
    assert float(job.rows.log10_mass.max()) <= float(np.quantile(mass, 0.5))
    assert job.trained_on(job.rows) and not job.trained_on(ds.subset(rows))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DataError("rows: broken on purpose.")

    monkeypatch.setattr(heldout, "train_held_out", broken)
    job.start()
    job.start()  # once
    with pytest.raises(DataError, match="broken on purpose"):
        job.result()


def test_a_failed_run_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "usable_cores", lambda: 2)
    epochs: list[int] = []

    def fail_in_the_folds(entry: dict[str, Any]) -> None:
        epochs.append(int(entry["epoch"]))
        if entry.get("stage") == "cv" and entry["epoch"] >= 1:
            raise RuntimeError("interrupted on purpose")

    held_out_epochs = _count_held_out_epochs(monkeypatch)
    cfg = Config().updated({**_CFG, "train.epochs": 400})
    with pytest.raises(RuntimeError, match="on purpose"):
        train_emulator(_dataset(), cfg, progress=fail_in_the_folds)
    assert not [t for t in _threads() if t.is_alive()]  # the failed run waited for it
    assert epochs == [0, 1]
    assert held_out_epochs and len(held_out_epochs) < 100  # stopped after its current epoch, not after 400


def test_an_interruption_after_the_folds_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C after the training (here in the GP blend, before the held-out rows are scored) also
    stops the thread: the run never returns or raises with the thread still training."""
    monkeypatch.setattr(training, "usable_cores", lambda: 2)
    held_out_epochs = _count_held_out_epochs(monkeypatch)
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_attach_blend", interrupted)
    cfg = Config().updated({**_CFG, "train.epochs": 3000, "train.warm_refit_epochs": 1})
    with pytest.raises(KeyboardInterrupt):
        train_emulator(_dataset(), cfg)
    assert not [t for t in _threads() if t.is_alive()]
    assert held_out_epochs and len(held_out_epochs) < 3000  # stopped, not trained to the end


def test_an_interruption_while_waiting_for_its_result_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _dataset()
    cfg = Config().updated({**_CFG, "data.val_fraction": 0.0})
    prep = prepare(ds, cfg)
    job = heldout.HeldOutTraining(prep, cfg, (len(prep.split.train), 64))
    release = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return None, None

    monkeypatch.setattr(heldout, "train_held_out", slow)
    job.start()
    real_wait = job._done.wait
    calls: list[int] = []

    def interrupted_wait(timeout: float | None = None) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C while result() waits
        release.set()
        return real_wait(timeout)

    monkeypatch.setattr(job._done, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        job.result()
    assert job._stop.is_set() and len(calls) == 2  # cancelled, and waited for the thread
    assert job._thread is not None and not job._thread.is_alive()

def test_a_training_error_in_the_thread_keeps_the_emulator_without_the_term(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    monkeypatch.setattr(training, "usable_cores", lambda: 2)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DataError("rows: broken on purpose.")

    monkeypatch.setattr(heldout, "train_held_out", broken)
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        out = train_emulator(_dataset(), Config().updated(_CFG))
    assert "extrapolation" not in out.emulator.metadata
    assert any("broken on purpose" in r.getMessage() and "kept" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_beside_the_thread_exits_with_130(tmp_path: Any) -> None:
    """Ctrl-C (and Ctrl-C again while it stops) while the held-out training runs beside the
    cross-validation: the command stops the thread and exits with 130 and one error line, not with
    SIGABRT from XLA on a dying thread."""
    import re
    import signal
    import subprocess
    import sys
    import time

    data = _dataset(300).save(tmp_path / "mock.npz")
    log = tmp_path / "train.log"
    with open(log, "w") as fh:
        # the child takes Ctrl-C as a terminal's foreground process does (a test runner may ignore it)
        start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "sys.argv = ['profemu', *sys.argv[1:]]; runpy.run_module('profemu', run_name='__main__')")
        proc = subprocess.Popen(
            [sys.executable, "-c", start, "train", "--data", str(data), "--out", str(tmp_path / "run"),
             "--set", "train.epochs=20000", "--members", "2"], stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if re.search(r"runs beside the cross-validation on a thread of its own", log.read_text()):
                # Ctrl-C, again every 2 s as a user would: Python drops a KeyboardInterrupt that lands in
                # a finalizer ("Exception ignored in ..."), rarely, on a loaded machine; until the command
                # has answered (it then exits; a Ctrl-C in its teardown would end it by the signal)
                answer_by = time.monotonic() + 120
                first = True
                while time.monotonic() < answer_by:
                    time.sleep(0.5 if first else 2.0)
                    first = False
                    if proc.poll() is not None or "error: interrupted" in log.read_text():
                        break
                    proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.2)
        rc = proc.wait(timeout=240)
    text = log.read_text()
    assert rc == 130, (rc, text[-2000:])
    assert text.rstrip().endswith("error: interrupted") and "terminate called" not in text


def test_on_part_of_a_hybrid_runs_rows_it_keeps_the_runs_grid_and_compiles_nothing() -> None:
    """The rows below the median mass span less R_Δ, so a grid in r / R_Δ fitted on them has fewer
    points; the held-out training keeps the run's, and runs the folds' compiled epoch."""
    from profemu.data.mock import make_hard_mock
    from profemu.train import loop
    from profemu.train.cv import cross_validate, program_rows
    from profemu.train.setup import fit_transforms, transforms_config

    ds = make_hard_mock(120, seed=1, n_r=8).dataset.select_fields(["rho"])
    cfg = Config().updated({**_CFG, "data.val_fraction": 0.0, "train.epochs": 2, "train.members": 3})  # 3 folds
    prep = prepare(ds, cfg)
    assert prep.transforms.hybrid_r_delta is not None
    job = heldout.HeldOutTraining(prep, cfg, program_rows(prep, cfg, 3))
    own = fit_transforms(job.rows, transforms_config(cfg), input_weights=prep.transforms.param_weights)
    assert own.scaled_radius.size < prep.transforms.scaled_radius.size  # what the rows alone would draw on
    cross_validate(prep, cfg, 3)
    before = sum(loop._TRACES.values())
    part, _ = heldout.train_held_out(job.rows, prep, cfg, program_rows(prep, cfg, 3), epochs=2)
    assert sum(loop._TRACES.values()) == before
    np.testing.assert_array_equal(part.transforms.scaled_radius, prep.transforms.scaled_radius)
    assert part.transforms.hybrid_r_delta == prep.transforms.hybrid_r_delta
    assert part.transforms.input_stats["log10_mass"][0] != prep.transforms.input_stats["log10_mass"][0]  # own box
