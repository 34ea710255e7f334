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


def test_extrapolation_variance_is_automatic_above_100_rows_and_grows_outside_the_box(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    small = make_mock_universe(n=60, seed=2, param_set="lh6", with_pk=False, n_r=6).dataset
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        plain = train_emulator(small, Config().updated(_TINY)).emulator
    assert "extrapolation" not in plain.metadata  # auto: too few rows, and the log says why
    assert any("extrapolation variance: not fitted" in r.getMessage() for r in caplog.records)
    ds = make_mock_universe(n=120, seed=2, param_set="lh6", with_pk=False, n_r=6).dataset
    assert "extrapolation" not in train_emulator(
        ds, Config().updated({**_TINY, "train.extrapolation_variance": "off"})).emulator.metadata
    # one mass bin (0.1 dex wide): the upper half lies a few hundredths of a dex above the lower one,
    # too close to calibrate a variance that grows with the distance in mass: auto skips it and says so
    from profemu.data.dataset import ProfileDataset

    rng = np.random.default_rng(0)
    one_bin = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=rng.uniform(13.0, 13.1, ds.n),
                             radius=ds.radius, profiles=ds.profiles, units=ds.units, groups=ds.groups, meta=ds.meta)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        assert "extrapolation" not in train_emulator(one_bin, Config().updated(_TINY)).emulator.metadata
    assert any("extrapolation variance: not fitted (120 training rows whose upper half in mass lies a median 0.0"
               in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        emu = train_emulator(ds, Config().updated({**_TINY, "train.members": 4})).emulator
    assert any("one lighter training (3 members" in r.getMessage() for r in caplog.records)
    record = emu.metadata["extrapolation"]
    assert record["held_out_rows"] > 0
    hi = float(ds.log10_mass.max())
    inside = emu.predict(ds.params[:1], hi - 0.1, on_extrapolation="ignore")[emu.field_names[0]]
    outside = emu.predict(ds.params[:1], hi + 1.5, on_extrapolation="ignore")[emu.field_names[0]]
    assert np.all(outside.extrapolation >= inside.extrapolation) and np.any(outside.extrapolation > 0)
    assert float(np.max(outside.distance_outside)) == pytest.approx(1.5, abs=1e-5)  # mass, in dex


def test_after_cross_validation_the_held_out_fit_reuses_the_compiled_epoch(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    ds = make_mock_universe(n=160, seed=5, param_set="lh6", with_pk=False, n_r=6).dataset
    cfg = Config().updated({**_TINY, "train.cv_folds": 3, "train.extrapolation_variance": "on",
                            "train.warm_refit_epochs": 0})
    with caplog.at_level(logging.INFO, logger="profemu"):
        out = train_emulator(ds, cfg)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("compiling the training step" in m for m in messages) == 1, messages
    line = next(m for m in messages if "one more training of 2 members from new initial parameters" in m)
    assert f"{out.cross_validation['refit_epochs']} epochs, the folds' median best" in line
    assert out.emulator.metadata["extrapolation"]["held_out_rows"] > 0


def _held_out_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads the held-out trainings run on, recorded as they start."""
    import threading

    import profemu.runs.heldout as heldout

    threads: list[str] = []
    real_fit = heldout.fit

    def fit_in(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(heldout, "fit", fit_in)
    return threads


def test_beside_a_continuing_refit_the_held_out_fit_trains_on_a_second_thread_with_the_same_result(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import profemu.runs.heldout as heldout
    import profemu.runs.training as training

    ds = make_mock_universe(n=160, seed=5, param_set="lh6", with_pk=False, n_r=6).dataset
    cfg = Config().updated({**_TINY, "train.epochs": 4, "train.cv_folds": 3, "train.extrapolation_variance": "on"})
    monkeypatch.setattr(training, "usable_cores", lambda: 2)
    threads = _held_out_threads(monkeypatch)
    with caplog.at_level(logging.INFO, logger="profemu"):
        beside = train_emulator(ds, cfg)
    records = caplog.records
    assert beside.cross_validation["refit"]["continues_cv_networks"]
    # at most once (not at all where an earlier test in this process compiled the same program)
    assert sum("compiling the training step" in r.getMessage() for r in records) <= 1
    started = next(r for r in records if "runs beside the cross-validation" in r.getMessage())
    assert "whole schedule of 4 epochs" in started.getMessage()
    assert threads == [heldout.THREAD_NAME]
    assert not any(r.threadName == heldout.THREAD_NAME for r in records)  # no repeat of the run's own notes
    assert sum("self-similar normalisation" in r.getMessage() for r in records) == 1
    assert not any("one more training of" in r.getMessage() for r in records)
    monkeypatch.setattr(training, "usable_cores", lambda: 1)  # one core: the same training, after the refit
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu"):
        after = train_emulator(ds, cfg)
    line = next(r.getMessage() for r in caplog.records if "one more training of 2 members" in r.getMessage())
    assert "whole schedule of 4 epochs" in line
    assert not any("runs beside" in r.getMessage() for r in caplog.records)
    assert threads == [heldout.THREAD_NAME, "MainThread"]
    assert sum("self-similar normalisation" in r.getMessage() for r in caplog.records) == 1
    first, second = beside.emulator.metadata["extrapolation"], after.emulator.metadata["extrapolation"]
    assert first["held_out_rows"] == second["held_out_rows"] > 0
    np.testing.assert_allclose(first["a"], second["a"], rtol=1e-5)
    assert first["p"] == second["p"]
    assert first["nll_with"] == pytest.approx(second["nll_with"], rel=1e-5)


def test_at_three_redshifts_both_held_out_fits_train_beside_the_folds_with_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The redshift's own term has a held-out training too: it runs on a thread of its own beside
    the folds (as the mass term's does) and gives the numbers it gives after the refit."""

    import profemu.runs.heldout as heldout
    import profemu.runs.training as training
    from profemu.data.mock import make_mock_snapshots

    ds = make_mock_snapshots((0.0, 0.5, 1.0), 90, seed=5, param_set="lh6", with_pk=False, n_r=6)
    cfg = Config().updated({**_TINY, "train.epochs": 4, "train.cv_folds": 3, "train.extrapolation_variance": "on"})
    threads = _held_out_threads(monkeypatch)
    monkeypatch.setattr(training, "usable_cores", lambda: 2)
    beside = train_emulator(ds, cfg).emulator.metadata["extrapolation"]
    assert threads == [heldout.THREAD_NAME] * 2
    monkeypatch.setattr(training, "usable_cores", lambda: 1)
    after = train_emulator(ds, cfg).emulator.metadata["extrapolation"]
    assert threads[2:] == ["MainThread"] * 2
    for first, second in ((beside, after), (beside["redshift"], after["redshift"])):
        assert first["held_out_rows"] == second["held_out_rows"] > 0
        np.testing.assert_allclose(first["a"], second["a"], rtol=1e-5)
        assert first["p"] == second["p"]
        assert first["nll_with"] == pytest.approx(second["nll_with"], rel=1e-5)


def test_a_mass_split_that_cannot_be_held_out_keeps_the_emulator(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses
    import logging

    ds = make_mock_universe(n=120, seed=6, param_set="lh6", with_pk=False, n_r=6).dataset
    one_heavy = dataclasses.replace(ds, log10_mass=np.where(np.arange(ds.n) < ds.n - 1, 11.0, 12.0))
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        auto = train_emulator(one_heavy, Config().updated(_TINY)).emulator
    assert "extrapolation" not in auto.metadata
    assert any("lie above their median mass" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        forced = train_emulator(one_heavy, Config().updated({**_TINY, "train.extrapolation_variance": "on"}))
    assert "extrapolation" not in forced.emulator.metadata  # asked for, impossible: warned, emulator kept
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and "held-out" in warned[0].getMessage() and "kept" in warned[0].getMessage()


def test_the_live_curves_are_redrawn_on_wall_time_not_on_epochs(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import profemu.runs.training as training
    from profemu.train.logging import MetricsLogger

    now = [0.0]
    drawn: list[float] = []

    def draw(history: object, path: Path) -> None:  # a drawing that takes 4 s
        drawn.append(now[0])
        now[0] += 4.0

    monkeypatch.setattr(training, "plot_curves", draw)
    callback = training._live_curves(MetricsLogger(tmp_path), tmp_path / "curves.png", clock=lambda: now[0])
    for _ in range(200):  # an epoch every 0.1 s: 20 s, no drawing
        callback({"epoch": 0})
        now[0] += 0.1
    assert drawn == []
    while now[0] < 130.0:  # then one at 30 s, and after a 4 s drawing the next 40 s later
        callback({"epoch": 0})
        now[0] += 0.1
    assert len(drawn) == 3 and drawn[0] == pytest.approx(30.0, abs=0.2)
    assert drawn[1] - drawn[0] == pytest.approx(44.0, abs=0.2)  # 4 s drawing + 40 s (10x its time > 30 s)


def test_one_halo_mass_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Rows at one mass cannot teach the mass dependence: the run warns once and names the span."""
    import logging

    from profemu.data.dataset import ProfileDataset

    ds = make_mock_universe(n=40, seed=3, param_set="lh6", with_pk=False, n_r=6).dataset
    one = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=np.full(ds.n, 13.0),
                         radius=ds.radius, profiles=ds.profiles, units=ds.units, groups=ds.groups, meta=ds.meta)
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        train_emulator(one, Config().updated(_TINY))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("halo mass: the ") and "span 0.000 dex" in warned[0], warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        train_emulator(ds, Config().updated(_TINY))
    assert not [r for r in caplog.records if r.getMessage().startswith("halo mass:")]


def test_copied_simulations_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Rows of another simulation with exactly the same inputs (a copied simulation) would sit in other
    folds than their twins: the run warns once, naming two of them."""
    import logging

    from profemu.data.dataset import ProfileDataset

    ds = make_mock_universe(n=40, seed=4, param_set="lh6", with_pk=False, n_r=6).dataset
    take = np.r_[np.arange(ds.n), np.arange(5)]  # the first 5 rows again, as 5 new simulations
    groups = np.r_[ds.groups, np.asarray(ds.groups).max() + 1 + np.arange(5)]
    copied = ProfileDataset(params=ds.params[take], param_names=ds.param_names, log10_mass=ds.log10_mass[take],
                            radius=ds.radius, profiles={f: v[take] for f, v in ds.profiles.items()}, units=ds.units,
                            groups=groups, meta=ds.meta)
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        train_emulator(copied, Config().updated(_TINY))
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("inputs: ")]
    assert len(warned) == 1 and "10 training rows repeat the inputs" in warned[0], warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        train_emulator(ds, Config().updated(_TINY))
    assert not [r for r in caplog.records if r.getMessage().startswith("inputs: ")]
    # groups are optional: without them every row is its own simulation (and copies are still found)
    caplog.clear()
    ungrouped = ProfileDataset(params=copied.params, param_names=ds.param_names, log10_mass=copied.log10_mass,
                               radius=ds.radius, profiles=copied.profiles, units=ds.units, meta=ds.meta)
    assert ungrouped.groups is None
    with caplog.at_level(logging.WARNING, logger="profemu.runs.training"):
        out = train_emulator(ungrouped, Config().updated(_TINY))
    assert out.emulator is not None
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("inputs: ")]
    assert len(warned) == 1 and "10 training rows repeat the inputs" in warned[0], warned



def test_one_narrow_mass_bin_at_three_redshifts_gets_the_redshifts_term_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    """A CAMELS-like single mass bin observed at three redshifts cannot calibrate the term of the
    distance in mass, but can the redshift's own: auto fits that one alone and says so."""
    import logging

    from profemu.data.mock import make_mock_snapshots

    ds = make_mock_snapshots((0.0, 0.25, 0.5), 60, seed=2, param_set="lh6", with_pk=False, n_r=6,
                             log10_mass_range=(12.0, 12.05))
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        emu = train_emulator(ds, Config().updated({**_TINY, "data.fields": ["pth"]})).emulator
    assert any("the redshift's own term only" in r.getMessage() for r in caplog.records)
    record = emu.metadata["extrapolation"]
    assert record["mass_term"] == "not fitted" and record["redshift"]["input"] == "redshift"
    terms = emu.extrapolation
    assert terms is not None and np.all(terms.a == 0) and terms.redshift is not None
    x, m = ds.params[:1], np.array([12.02])
    higher_z = emu.predict(x, m, redshift=1.0, on_extrapolation="ignore")["pth"].extrapolation
    a_z, p_z = terms.redshift
    np.testing.assert_allclose(higher_z[0], (a_z * 0.5) ** p_z, rtol=1e-6, atol=1e-12)
    assert np.all(emu.predict(x, m + 1.0, redshift=0.25, on_extrapolation="ignore")["pth"].extrapolation == 0)


def test_a_run_folder_without_its_emulator_says_how_to_go_on(tmp_path: Path) -> None:
    """evaluate/predict on a run that did not finish: resume it where it has checkpoints, else train
    again with the same --out (which starts over): never a --resume that has nothing to resume."""
    from profemu.errors import DataError

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    with pytest.raises(DataError, match=r"stopped before its first checkpoint: train again with the same --out"):
        RunFolder.open(run, require_emulator=True)
    (run / "checkpoints" / "ckpt-000002.json").write_text("{}")
    with pytest.raises(DataError, match=r"resume it \(profemu train --resume"):
        RunFolder.open(run, require_emulator=True)
