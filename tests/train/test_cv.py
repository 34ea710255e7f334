"""Cross-validation by simulation, then a refit on every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.cli import app
from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.runs.folder import DataSource, RunFolder
from profemu.runs.training import REFIT_TAIL, train_emulator

CFG = {"model.hidden": [16], "train.members": 2, "train.epochs": 8, "train.batch_size": 32, "train.patience": 3,
       "optim.warmup_epochs": 1, "data.fields": ["rho", "pth"], "train.cv_folds": 3, "train.log_every": 1,
       "train.extrapolation_variance": "off"}


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory):
    ds = make_mock_universe(n=160, seed=2, param_set="lh6", n_r=6).dataset
    folder = tmp_path_factory.mktemp("cv")
    data = ds.save(folder / "mock.npz")
    outcome = train_emulator(ds, Config().updated(CFG), run_dir=folder / "run", source=DataSource(str(data)))
    return ds, outcome, RunFolder.open(folder / "run")


def test_every_row_trains_the_final_emulator(cv_run) -> None:
    ds, outcome, run = cv_run
    assert len(outcome.prepared.split.train) == ds.n and len(outcome.prepared.split.val) == 0
    assert outcome.emulator.metadata["n_train"] == ds.n
    assert outcome.evaluation is None  # no test split by default: the CV estimate stands in
    assert run.split_rows("test").size == 0


def test_out_of_fold_predictions_cover_every_row_once_by_simulation(cv_run) -> None:
    ds, _, run = cv_run
    cv = run.cross_validation()
    rows, folds = np.asarray(cv["rows"]), np.asarray(cv["fold_of_row"])
    assert sorted(rows.tolist()) == list(range(ds.n))
    for k in range(3):  # no simulation on both sides of a fold
        inside = set(ds.groups[rows[folds == k]])
        outside = set(ds.groups[rows[folds != k]])
        assert inside and not inside & outside
    with np.load(run.path / "cv_predictions.npz") as z:
        assert z["rho_mean"].shape == (ds.n, ds.n_r) and np.array_equal(z["rows"], rows)


def test_refit_epochs_and_variance_scale_come_from_the_folds(cv_run) -> None:
    _, outcome, run = cv_run
    cv = run.cross_validation()
    best = [e + 1 for fold in cv["best_epochs"] for e in fold if e >= 0]
    assert cv["refit_epochs"] == int(np.clip(np.median(best), 1, CFG["train.epochs"]))
    # the 2 members continue 2 of the 3 folds' networks for the schedule's last epochs: its tail, a fifth
    # of the 8 (re-running most of a short schedule at a high rate would move them from what was calibrated)
    warm = min(Config().train.warm_refit_epochs, max(1, int(REFIT_TAIL * CFG["train.epochs"])))
    assert warm == 1
    assert cv["refit"] == {"continues_cv_networks": True, "first_epoch": CFG["train.epochs"] - warm, "epochs": warm}
    assert [h["epoch"] for h in outcome.history] == list(range(CFG["train.epochs"] - warm, CFG["train.epochs"]))
    assert outcome.emulator.variance_scale == pytest.approx(cv["variance_scale"])
    assert outcome.emulator.metadata["variance_scale_fitted_on"].startswith("cross-validation")
    assert outcome.emulator.metadata["cv"]["metrics"]["overall"] == cv["metrics"]["overall"]
    assert len(cv["fold_metrics"]) == 3 and cv["spread_over_folds"]["frac_err_median"]["std"] >= 0
    stages = {h.get("stage") for h in run.history()}
    assert stages == {"cv", "refit"}  # the folds train as one program


def test_the_folds_residual_covariance_is_stored_with_the_emulator(cv_run) -> None:
    from profemu.emulator import Emulator
    from profemu.inference import estimate_residual_covariance, residual_covariance

    ds, _, run = cv_run
    with np.load(run.path / "cv_predictions.npz") as z:
        rows = z["rows"]
        res = np.stack([np.log10(ds.profiles[f][rows]) - z[f"{f}_mean"] for f in ("rho", "pth")], axis=1)
    noise = np.stack([ds.noise[f][rows] for f in ("rho", "pth")], axis=1)
    expected = estimate_residual_covariance(res, ds.groups[rows], fields=("rho", "pth"), radius=ds.radius,
                                            noise=noise)
    stored = residual_covariance(Emulator.load(run.emulator_dir))  # saved, loaded and validated
    assert stored is not None and stored.fields == ("rho", "pth") and stored.n_rows == ds.n
    np.testing.assert_allclose(stored.row, expected.row, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(stored.shared, expected.shared, rtol=1e-6, atol=1e-12)


def test_one_halo_per_simulation_trains_without_a_residual_covariance(tmp_path: Path) -> None:
    from profemu.inference import residual_covariance

    ds = make_mock_universe(n=60, seed=3, param_set="lh6", n_r=6, n_mass_per_sim=1).dataset
    outcome = train_emulator(ds, Config().updated(CFG))
    assert residual_covariance(outcome.emulator) is None  # no pairs of rows of one simulation


def test_evaluate_shows_the_cross_validation_estimate(cv_run) -> None:
    _, _, run = cv_run
    result = CliRunner().invoke(app, ["evaluate", str(run.path)])
    assert result.exit_code == 0, result.stderr
    assert "cross-validation estimate (3 folds by simulation" in result.stdout
    assert "spread over folds" in result.stdout
    assert "continued the folds' networks on all 160 rows for the last epoch of their 8" in result.stdout
    # the table is the network's; an Emulator that blends a GP says so and gives the blend's errors
    blends = "gp_blend" in run.emulator().metadata
    assert blends  # 160 rows: train.gp_blend auto blends
    assert ("it blends a GP into the network's prediction" in result.stdout) == blends


def test_resume_reuses_the_finished_cross_validation(cv_run, caplog: pytest.LogCaptureFixture,
                                                     tmp_path: Path) -> None:
    import logging
    import shutil

    ds, outcome, run = cv_run
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        again = train_emulator(ds, Config().updated(CFG), run_dir=copy, resume=True)
    assert "reusing the finished cross-validation" in caplog.text
    assert again.cross_validation["refit_epochs"] == outcome.cross_validation["refit_epochs"]
    assert again.cross_validation["refit"] == outcome.cross_validation["refit"]  # trained as cv.json says




def test_without_warm_refit_epochs_the_refit_trains_anew_for_the_folds_best_epoch(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    ds = make_mock_universe(n=120, seed=4, param_set="lh6", n_r=6).dataset
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        out = train_emulator(ds, Config().updated({**CFG, "train.warm_refit_epochs": 0}))
    cv = out.cross_validation
    assert cv["refit"] == {"continues_cv_networks": False, "first_epoch": 0, "epochs": cv["refit_epochs"]}
    assert [h["epoch"] for h in out.history] == list(range(cv["refit_epochs"]))
    assert (f"refit: 2 members from new initial parameters on all 120 rows for {cv['refit_epochs']} epochs"
            in caplog.text and "(train.warm_refit_epochs: 0)" in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        more = train_emulator(ds, Config().updated({**CFG, "train.members": 4}))  # 4 members, 3 networks
    assert more.cross_validation["refit"]["continues_cv_networks"] is False
    assert "more members than networks to continue" in caplog.text
