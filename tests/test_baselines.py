"""Tests of profemu.baselines on a small smooth synthetic problem (and a CAMELS smoke test)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from profemu.baselines import Baseline, PCAGPBaseline, PCARBFBaseline, compare, format_table
from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError
from profemu.evaluate import evaluate, evaluate_predictions

N_R = 8


def _smooth_dataset(n: int, seed: int, *, holes: bool = True) -> ProfileDataset:
    """Two fields, known smooth functions of 3 parameters (one log-distributed) and mass."""
    rng = np.random.default_rng(seed)
    omega = rng.uniform(0.1, 0.5, n)
    a_agn = 10.0 ** rng.uniform(-0.6, 0.6, n)  # log-distributed
    slope = rng.uniform(-1.0, 1.0, n)
    log10_mass = rng.uniform(11.0, 13.0, n)
    x = np.log10(np.logspace(-2, 0, N_R))[None, :]
    la = np.log10(a_agn)[:, None]
    log_rho = (3.0 + 2.0 * omega[:, None] - (1.8 + 0.3 * slope[:, None]) * x
               + 0.2 * np.sin(2.0 * la) * x**2 + 0.4 * (log10_mass[:, None] - 12.0))
    log_temp = 6.0 + 0.6 * (log10_mass[:, None] - 12.0) - 0.2 * x + 0.1 * la * (1 + x)
    rho, temp = 10.0**log_rho, 10.0**log_temp
    if holes:
        rho[rng.random(rho.shape) < 0.03] = 0.0  # masked entries (not > 0)
        rho[rho.min(axis=1) == 0.0, -1] = 10.0 ** log_rho[rho.min(axis=1) == 0.0, -1]
    return ProfileDataset(
        params=np.column_stack([omega, a_agn, slope]), param_names=("Omega_m", "A_AGN", "slope"),
        log10_mass=log10_mass, radius=np.logspace(-2, 0, N_R), profiles={"rho": rho, "temp": temp},
        log_params=("A_AGN",), groups=np.arange(n) // 2,
    )


class _ConstantPredictor:
    """Training mean of each log10 column: the bar every baseline must clear."""

    name = "constant"

    def __init__(self, train: ProfileDataset) -> None:
        self.means = {f: np.nanmean(train.log10_profile(f), axis=0) for f in train.fields}
        self.vars = {f: np.nanvar(train.log10_profile(f), axis=0) for f in train.fields}

    def predict(self, params, log10_mass, pk_ratio=None, redshift=None):
        n = np.asarray(params).shape[0]
        return {f: (np.tile(m, (n, 1)), np.tile(self.vars[f], (n, 1))) for f, m in self.means.items()}


@pytest.fixture(scope="module")
def train() -> ProfileDataset:
    return _smooth_dataset(150, seed=1)


@pytest.fixture(scope="module")
def test_set() -> ProfileDataset:
    return _smooth_dataset(60, seed=2, holes=False)


@pytest.fixture(scope="module")
def fitted(train: ProfileDataset) -> dict[str, Baseline]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn optimiser convergence notes on a tiny problem
        # the GP is cubic in N: fit it on 100 rows and 3 components to keep the test fast
        gp = PCAGPBaseline(n_components=3, seed=0).fit(train.subset(np.arange(100)))
        return {"gp": gp, "rbf": PCARBFBaseline().fit(train)}


@pytest.mark.parametrize("which", ["gp", "rbf"])
def test_baseline_beats_constant_by_wide_margin(
    which: str, fitted: dict[str, Baseline], train: ProfileDataset, test_set: ProfileDataset
) -> None:
    baseline = fitted[which]
    assert isinstance(baseline, Baseline)
    assert baseline.fit_seconds > 0
    score = evaluate(baseline, test_set)["overall"]
    const = evaluate(_ConstantPredictor(train), test_set)["overall"]
    assert score["frac_err_median"] < 0.1 * const["frac_err_median"]
    assert score["rmse_dex"] < 0.15 * const["rmse_dex"]
    pred = baseline.predict(test_set.params, test_set.log10_mass)
    assert set(pred) == {"rho", "temp"}
    for mean, var in pred.values():
        assert mean.shape == var.shape == (test_set.n, N_R)
        assert np.isfinite(mean).all() and np.isfinite(var).all() and (var > 0).all()
    # the predicted uncertainty is of the right order: coverage is not absurd
    assert 0.3 < score["coverage_95"] <= 1.0


def test_gp_variance_grows_away_from_data(fitted: dict[str, Baseline], train: ProfileDataset) -> None:
    gp = fitted["gp"]
    inside = gp.predict(train.params[:5], train.log10_mass[:5])["rho"][1]
    far_params = train.params[:5] * np.array([4.0, 30.0, 5.0])
    outside = gp.predict(far_params, train.log10_mass[:5] + 3.0)["rho"][1]
    assert outside.mean() > 3.0 * inside.mean()


def test_fields_subset_and_input_errors(train: ProfileDataset) -> None:
    rbf = PCARBFBaseline(cv_folds=3).fit(train, fields=["temp"])
    assert set(rbf.predict(train.params[:3], 12.0)) == {"temp"}
    with pytest.raises(DataError, match="params"):
        rbf.predict(train.params[:, :2], train.log10_mass)
    with pytest.raises(DataError, match="A_AGN"):
        rbf.predict(train.params * np.array([1.0, -1.0, 1.0]), train.log10_mass)
    with pytest.raises(DataError, match="not in the dataset"):
        PCARBFBaseline().fit(train, fields=["pressure"])
    with pytest.raises(DataError, match="not fitted"):
        PCARBFBaseline().predict(train.params, train.log10_mass)
    with pytest.raises(ConfigError, match="smoothing"):
        PCARBFBaseline(smoothing=-1.0)


def test_pca_component_choice(train: ProfileDataset) -> None:
    fixed = PCARBFBaseline(n_components=2, cv_folds=2).fit(train)
    assert fixed._pca.n_components == 2
    auto = PCARBFBaseline(cv_folds=2, explained_variance=0.999).fit(train)
    assert 2 <= auto._pca.n_components <= 2 * N_R
    assert auto._pca.explained >= 0.999 or auto._pca.n_components == auto.max_components
    capped = PCARBFBaseline(cv_folds=2, explained_variance=1.0, max_components=3).fit(train)
    assert capped._pca.n_components == 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gp_subsamples_large_training_sets_with_a_warning(train: ProfileDataset) -> None:
    gp = PCAGPBaseline(n_components=1, max_train=40, seed=3)
    with pytest.warns(UserWarning, match="subsampling 40 of 150"):
        gp.fit(train.subset(np.arange(150)), fields=["temp"])
    assert gp.n_train_used == 40
    pred = gp.predict(train.params[:4], train.log10_mass[:4])["temp"]
    assert np.isfinite(pred[0]).all()


def test_compare_rows_and_table(
    fitted: dict[str, Baseline], train: ProfileDataset, test_set: ProfileDataset
) -> None:
    reference = _ConstantPredictor(train)
    rows = compare(reference, [PCARBFBaseline(cv_folds=3)], train, test_set,
                   emulator_fit_seconds=1.5, emulator_name="constant")
    keys = {"method", "frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "nll",
            "coverage_68", "coverage_95", "fit_seconds", "predict_seconds_per_1000", "n_test",
            "frac_err_ratio", "predict_time_ratio"}
    assert [r["method"] for r in rows] == ["constant", "pca_rbf"]
    for row in rows:
        assert set(row) == keys
    assert rows[0]["frac_err_ratio"] == 1.0 and rows[0]["fit_seconds"] == 1.5
    assert rows[1]["frac_err_ratio"] < 0.1
    expected = evaluate_predictions(
        reference.predict(test_set.params, test_set.log10_mass), test_set)["overall"]
    assert rows[0]["frac_err_median"] == pytest.approx(expected["frac_err_median"])
    table = format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| constant |") and "pca_rbf" in lines[3]
    assert f"{100 * rows[1]['frac_err_median']:.2f}" in lines[3]


@pytest.mark.camels
def test_rbf_smoke_on_camels_density(camels_path: Path) -> None:
    d = np.load(camels_path, allow_pickle=False)
    keep = np.flatnonzero(~d["header_bin_mismatch"])[:300]
    rho = d["rho_mean"][keep].astype(np.float64)
    noise = d["rho_std"][keep].astype(np.float64) / np.sqrt(d["nprofs"][keep])[:, None]
    ds = ProfileDataset(
        params=d["params"][keep], param_names=tuple(str(s) for s in d["param_names"]),
        log10_mass=d["log10_mass_mean"][keep], radius=d["radius_mpc"], profiles={"rho": rho},
        log_params=("A_SN1", "A_AGN1", "A_SN2", "A_AGN2"), groups=d["sim_id"][keep],
        noise={"rho": np.nan_to_num(noise)},
    )
    is_test = np.isin(ds.groups, np.unique(ds.groups)[::5])  # whole simulations held out
    train, test = ds.subset(~is_test), ds.subset(is_test)
    rbf = PCARBFBaseline().fit(train)
    score = evaluate(rbf, test)["overall"]
    const = evaluate(_ConstantPredictor(train), test)["overall"]
    assert score["frac_err_median"] < 0.7 * const["frac_err_median"]
    assert score["error_to_noise_floor"] is not None and score["error_to_noise_floor"] >= 0.8
    assert 0.5 < score["coverage_95"] <= 1.0
