"""Tests of profemu.baselines on small smooth synthetic problems (and a CAMELS smoke test)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from profemu.baselines import (
    Baseline,
    GPBaseline,
    PCAGPBaseline,
    PCAMLPBaseline,
    PCARBFBaseline,
    gp_neg_log_marginal_likelihood,
)
from profemu.baselines.gp import _GPFit
from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError
from profemu.metrics import evaluate, evaluate_predictions
from profemu.runs.compare import compare, format_table

N_R = 8


def _smooth_dataset(n: int, seed: int, *, holes: bool = True, noise_dex: float = 0.0) -> ProfileDataset:
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
    if noise_dex:
        log_rho = log_rho + noise_dex * rng.standard_normal(log_rho.shape)
        log_temp = log_temp + noise_dex * rng.standard_normal(log_temp.shape)
    rho, temp = 10.0**log_rho, 10.0**log_temp
    if holes:
        rho[rng.random(rho.shape) < 0.03] = 0.0  # masked entries (not > 0)
        rho[rho.min(axis=1) == 0.0, -1] = 10.0 ** log_rho[rho.min(axis=1) == 0.0, -1]
    noise = {f: np.full((n, N_R), noise_dex) for f in ("rho", "temp")} if noise_dex else None
    return ProfileDataset(
        params=np.column_stack([omega, a_agn, slope]), param_names=("Omega_m", "A_AGN", "slope"),
        log10_mass=log10_mass, radius=np.logspace(-2, 0, N_R), profiles={"rho": rho, "temp": temp},
        log_params=("A_AGN",), groups=np.arange(n) // 2, noise=noise,
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
    # the GPs are cubic in N: fit them on 100 rows to keep the test fast
    small = train.subset(np.arange(100))
    return {
        "gp": GPBaseline().fit(small),
        "pca_gp": PCAGPBaseline(n_components=3, seed=0).fit(small),
        "rbf": PCARBFBaseline().fit(train),
        "mlp": PCAMLPBaseline(hidden=(32, 32), max_iter=400, cv_folds=3).fit(train),
    }


@pytest.mark.parametrize(("which", "factor"), [("gp", 0.1), ("pca_gp", 0.1), ("rbf", 0.1), ("mlp", 0.35)])
def test_baseline_beats_constant_by_wide_margin(
    which: str, factor: float, fitted: dict[str, Baseline], train: ProfileDataset,
    test_set: ProfileDataset,
) -> None:
    baseline = fitted[which]
    assert isinstance(baseline, Baseline)
    assert baseline.fit_seconds > 0
    score = evaluate(baseline, test_set)["overall"]
    const = evaluate(_ConstantPredictor(train), test_set)["overall"]
    assert score["frac_err_median"] < factor * const["frac_err_median"]
    assert score["rmse_dex"] < 1.5 * factor * const["rmse_dex"]
    pred = baseline.predict(test_set.params, test_set.log10_mass)
    assert set(pred) == {"rho", "temp"}
    for mean, var in pred.values():
        assert mean.shape == var.shape == (test_set.n, N_R)
        assert np.isfinite(mean).all() and np.isfinite(var).all() and (var > 0).all()
    # the predicted uncertainty is of the right order: coverage is not absurd
    assert 0.3 < score["coverage_95"] <= 1.0


def test_gp_variance_grows_away_from_data(fitted: dict[str, Baseline], train: ProfileDataset) -> None:
    for which in ("gp", "pca_gp"):
        gp = fitted[which]
        inside = gp.predict(train.params[:5], train.log10_mass[:5])["rho"][1]
        far_params = train.params[:5] * np.array([4.0, 30.0, 5.0])
        outside = gp.predict(far_params, train.log10_mass[:5] + 3.0)["rho"][1]
        assert outside.mean() > 3.0 * inside.mean(), which


def test_log_marginal_likelihood_matches_scikit_learn(rng: np.random.Generator) -> None:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    x = rng.normal(size=(40, 3))
    y = np.column_stack([np.sin(x[:, 0]) + 0.1 * rng.normal(size=40), x[:, 1] * x[:, 2]])
    kernel = ConstantKernel(1.7) * RBF(np.array([0.8, 1.5, 3.0])) + WhiteKernel(0.05)
    reference = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=False).fit(x, y)
    for cols in ([0], [0, 1]):  # one output, and two outputs sharing the kernel
        ref = GaussianProcessRegressor(kernel, optimizer=None).fit(x, y[:, cols])
        value, grad = ref.log_marginal_likelihood(ref.kernel_.theta, eval_gradient=True)
        ours, our_grad = gp_neg_log_marginal_likelihood(ref.kernel_.theta, x, y[:, cols])
        assert -ours == pytest.approx(value, rel=1e-10)
        np.testing.assert_allclose(-our_grad, grad, rtol=1e-7, atol=1e-9)
    # the conditioned GP predicts scikit-learn's mean and variance (which includes the white noise)
    theta = reference.kernel_.theta
    fit = _GPFit.condition(theta, x, y, np.ones(y.shape, dtype=bool), np.zeros(2), np.ones(2), 0.0)
    fit.calibration = np.ones(2)
    xt = rng.normal(size=(7, 3))
    mean, latent, nugget = fit.predict(xt)
    ref_mean, ref_std = reference.predict(xt, return_std=True)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(latent + nugget, ref_std**2, rtol=1e-7)
    # a kernel matrix that is not positive definite is reported as an infinite cost
    assert gp_neg_log_marginal_likelihood(np.log([1e14, 1e3, 1e3, 1e3, 1e-30]),
                                          np.vstack([x, x]), np.tile(y[:, :1], (2, 1)))[0] == np.inf


def test_leave_one_out_calibration_against_brute_force(rng: np.random.Generator) -> None:
    from scipy.linalg import cho_solve, cholesky

    x = rng.normal(size=(25, 2))
    y = np.column_stack([np.cos(x[:, 0]) + 0.3 * rng.normal(size=25), x[:, 1] ** 2])
    theta = np.log([1.3, 0.9, 1.4, 0.1])
    fit = _GPFit.condition(theta, x, y, np.ones(y.shape, dtype=bool), np.zeros(2), np.ones(2), 0.0)
    z2 = np.zeros(2)
    for i in range(25):  # refit without row i with the same hyper-parameters
        keep = np.arange(25) != i
        d2 = ((x[keep][:, None, :] - x[keep][None, :, :]) / np.exp(theta[1:3])) ** 2
        k = 1.3 * np.exp(-0.5 * d2.sum(-1)) + (0.1 + 1e-10) * np.eye(24)
        ks = 1.3 * np.exp(-0.5 * (((x[keep] - x[i]) / np.exp(theta[1:3])) ** 2).sum(-1))
        chol = cholesky(k, lower=True)
        mean = ks @ cho_solve((chol, True), y[keep])
        var = 1.3 + 0.1 + 1e-10 - ks @ cho_solve((chol, True), ks)
        z2 += (y[i] - mean) ** 2 / var
    np.testing.assert_allclose(fit.calibration, z2 / 25, rtol=1e-6)


def test_gp_starts_report_and_one_summary_line(train: ProfileDataset, caplog) -> None:
    small = train.subset(np.arange(60))
    gp = GPBaseline(n_restarts=2, seed=1)
    with caplog.at_level(logging.INFO, logger="profemu.baselines"):
        gp.fit(small)
    report = gp.fit_report
    assert len(report["starts"]) == 4 and report["kernels"] == 1
    assert report["best_log_ml"][0] == pytest.approx(max(s["log_ml"] for s in report["starts"]))
    assert sum("start" in r.getMessage() for r in caplog.records) == 4  # progress, one per start
    assert "slope" not in report["irrelevant_inputs"]  # it shapes the density profile
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.baselines"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PCAGPBaseline(n_components=3, maxiter=1).fit(small)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1
    assert problems[0].startswith("pca_gp (3 kernels): of 6 starts, 6 hit the iteration limit "
                                  "(maxiter=1);")
    assert not caught  # no per-fit warnings from scipy or scikit-learn


def test_gp_search_on_a_subset_then_refine_on_all_rows(train: ProfileDataset, caplog) -> None:
    small = train.subset(np.arange(80))
    gp = GPBaseline(search_rows=30).fit(small)
    starts = gp.fit_report["starts"]
    # two starts on 30 rows, then the best refined on all 80
    assert [s["refinement"] for s in starts] == [False, False, True]
    design = gp._design
    ((_, fit),) = gp._fits
    y = design.y - design.y.mean(axis=0)
    # the reported log marginal likelihood is that of all 80 rows at the final hyper-parameters
    value, _ = gp_neg_log_marginal_likelihood(fit.theta, design.x, y)
    assert gp.fit_report["best_log_ml"][0] == pytest.approx(-value, rel=1e-9)
    assert starts[-1]["log_ml"] == pytest.approx(-value, rel=1e-9)
    # and it is as good as searching on all rows from the start (within 0.5 of ~-400)
    direct = GPBaseline(search_rows=None).fit(small).fit_report["best_log_ml"][0]
    assert -value > direct - 0.5
    with caplog.at_level(logging.WARNING, logger="profemu.baselines"):
        GPBaseline(search_rows=30, refine_maxiter=1).fit(small)
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "gp (1 kernel): of 1 refinements on all rows, 1 hit the iteration limit (refine_maxiter=1)"]


def test_declared_noise_is_left_to_the_evaluation() -> None:
    """With declared noise the predicted variance is that of the mean profile; coverage of noisy
    held-out targets (var + noise^2) is then close to nominal."""
    noisy = _smooth_dataset(150, seed=5, holes=False, noise_dex=0.05)
    held = _smooth_dataset(200, seed=6, holes=False, noise_dex=0.05)
    silent = ProfileDataset(params=noisy.params, param_names=noisy.param_names,
                            log10_mass=noisy.log10_mass, radius=noisy.radius,
                            profiles=noisy.profiles, log_params=noisy.log_params,
                            groups=noisy.groups)
    with_noise = GPBaseline().fit(noisy)
    without = GPBaseline().fit(silent)
    a = with_noise.predict(held.params, held.log10_mass)["rho"][1]
    b = without.predict(held.params, held.log10_mass)["rho"][1]
    # the same GP (same hyper-parameters): only the declared 0.05^2 dex^2 leaves the variance
    # (all of it, or 99% of the calibrated white noise where that is smaller)
    assert np.all(b - a > 0.5 * 0.05**2) and np.all(b - a <= 0.05**2 * (1 + 1e-9))
    cov = evaluate(with_noise, held)["overall"]["coverage_68"]
    assert 0.58 < cov < 0.78
    rbf = PCARBFBaseline().fit(noisy)
    assert 0.55 < evaluate(rbf, held)["overall"]["coverage_68"] < 0.8


def test_fields_subset_and_input_errors(train: ProfileDataset) -> None:
    rbf = PCARBFBaseline(cv_folds=3).fit(train, fields=["temp"])
    assert set(rbf.predict(train.params[:3], 12.0)) == {"temp"}
    assert rbf.fields == ("temp",)
    with pytest.raises(DataError, match="params"):
        rbf.predict(train.params[:, :2], train.log10_mass)
    with pytest.raises(DataError, match="A_AGN"):
        rbf.predict(train.params * np.array([1.0, -1.0, 1.0]), train.log10_mass)
    with pytest.raises(DataError, match="slope"):
        rbf.predict(train.params * np.array([1.0, 1.0, np.nan]), train.log10_mass)
    with pytest.raises(DataError, match="not in the dataset"):
        PCARBFBaseline().fit(train, fields=["pressure"])
    with pytest.raises(DataError, match="not fitted"):
        PCARBFBaseline().predict(train.params, train.log10_mass)
    with pytest.raises(ConfigError, match="smoothing"):
        PCARBFBaseline(smoothing=-1.0)
    with pytest.raises(ConfigError, match="cv_folds"):
        PCARBFBaseline(cv_folds=8).fit(train.subset(np.arange(10)))
    with pytest.raises(ConfigError, match="max_train"):
        GPBaseline(max_train=2)
    with pytest.raises(ConfigError, match="length_scale_bounds"):
        GPBaseline(length_scale_bounds=(1.0, 0.1))
    with pytest.raises(ConfigError, match="hidden"):
        PCAMLPBaseline(hidden=())


def test_pk_components_and_redshift_inputs() -> None:
    from profemu.data.mock import make_mock_universe

    ds = make_mock_universe(120, seed=4, n_r=6).dataset.select_fields(["pth"])
    z = np.random.default_rng(0).uniform(0.0, 1.0, ds.n)
    ds = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                        radius=ds.radius, profiles=ds.profiles, radius_unit=ds.radius_unit,
                        log_params=ds.log_params, pk_ratio=ds.pk_ratio, k=ds.k, redshift=z,
                        groups=ds.groups)
    rbf = PCARBFBaseline(cv_folds=2).fit(ds)
    design = rbf._design
    assert design.input_names[-6:] == ("log10_mass", "pk_pc1", "pk_pc2", "pk_pc3", "pk_pc4", "redshift")
    pcs = design.x[:, 36:40]  # the P(k) block enters as 4 standardised principal components
    np.testing.assert_allclose(pcs.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(pcs.std(axis=0), 1.0, rtol=1e-10)
    pred = rbf.predict(ds.params[:3], ds.log10_mass[:3], ds.pk_ratio[:3], z[:3])["pth"]
    assert pred[0].shape == (3, 6) and np.isfinite(pred[0]).all()
    with pytest.raises(DataError, match="pk_ratio"):
        rbf.predict(ds.params[:3], ds.log10_mass[:3], None, z[:3])
    with pytest.raises(DataError, match="redshift"):
        rbf.predict(ds.params[:3], ds.log10_mass[:3], ds.pk_ratio[:3])
    # a training row is predicted far better than by the training mean
    score = evaluate(rbf, ds)["overall"]["frac_err_median"]
    assert score < 0.2 * evaluate(_ConstantPredictor(ds), ds)["overall"]["frac_err_median"]


def test_pca_component_choice(train: ProfileDataset) -> None:
    fixed = PCARBFBaseline(n_components=2, cv_folds=2).fit(train)
    assert fixed.components == 2
    auto = PCARBFBaseline(cv_folds=2, explained_variance=0.999).fit(train)
    assert 2 <= auto.components <= 2 * N_R
    assert auto.explained >= 0.999 or auto.components == auto.max_components
    capped = PCARBFBaseline(cv_folds=2, explained_variance=1.0, max_components=3).fit(train)
    assert capped.components == 3 and capped.explained < 1.0
    assert GPBaseline().fit(train.subset(np.arange(30))).components is None  # radial columns


def test_gp_subsamples_large_training_sets_with_a_warning(train: ProfileDataset) -> None:
    gp = PCAGPBaseline(n_components=1, max_train=40, seed=3)
    with pytest.warns(UserWarning, match="subsampling 40 of 150"):
        gp.fit(train.subset(np.arange(150)), fields=["temp"])
    assert gp.n_train_used == 40
    pred = gp.predict(train.params[:4], train.log10_mass[:4])["temp"]
    assert np.isfinite(pred[0]).all()


def test_mlp_counts_networks_stopped_at_the_limit(train: ProfileDataset, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="profemu.baselines"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PCAMLPBaseline(hidden=(8,), max_iter=2, cv_folds=2).fit(train)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["pca_mlp: 3 of 3 networks stopped at max_iter=2 before early stopping"]
    assert not caught


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


def test_the_baselines_do_not_log_the_runs_normalisation(caplog: pytest.LogCaptureFixture) -> None:
    """The classic recipe's plain log10 is not the run's choice: fitting a baseline logs no
    'self-similar normalisation' line at INFO (it would contradict the run's own line)."""
    import logging

    from profemu.baselines import PCARBFBaseline
    from profemu.data.mock import make_mock_universe

    ds = make_mock_universe(n=60, seed=5, param_set="lh6", with_pk=False, n_r=6).dataset
    with caplog.at_level(logging.INFO):
        PCARBFBaseline().fit(ds)
    assert not [r for r in caplog.records if "self-similar normalisation" in r.getMessage()
                and r.levelno >= logging.INFO]
