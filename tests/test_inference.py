"""profemu.inference: observations, likelihood, priors, covariance model, diagnostics, NUTS, MAP, Fisher.

Two emulators are used: the shared tiny run (a real 2-member ensemble on the lh6 mock
universe, whose numpy ``predict`` path is the independent reference of the JAX
likelihood), and a linear-Gaussian stand-in with the same interface, whose posterior is
known in closed form (the reference for NUTS, MAP and Fisher).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal

from profemu.errors import DataError, FormatError
from profemu.inference import (
    ConvergenceError,
    Observation,
    Posterior,
    ResidualCovariance,
    attach_residual_covariance,
    ess_bulk,
    estimate_residual_covariance,
    find_map,
    fisher_matrix,
    make_log_posterior,
    parameter_space,
    read_observation,
    residual_covariance,
    sample_posteriors,
    split_rhat,
)
from tests.reliability import TinyRun, tiny_run

FIELDS = ("rho", "pth")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def _numpy_model(emu: Any, params: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance [B*F*R] from the numpy prediction path (independent of predict_fn)."""
    pred = emu.predict(np.repeat(params[None], masses.size, axis=0), masses, on_extrapolation="ignore")
    mean = np.stack([np.atleast_2d(pred[f].mean) for f in FIELDS], axis=1)
    var = np.stack([np.atleast_2d(pred[f].var) for f in FIELDS], axis=1)
    return mean.reshape(-1), var.reshape(-1)


# ---------------------------------------------------------------- linear-Gaussian stand-in
class LinearEmulator:
    """The Emulator interface of a linear model: mean = G s(theta) + offset, constant variance.

    ``s`` = sampling coordinates (log10 for ``c``); wide training box, so the posterior
    is an untruncated Gaussian with precision G^T C^-1 G.
    """

    param_names = ("a", "b", "c", "big")
    log_params = ("c",)
    field_names = ("rho", "pth")
    radius_unit = "Mpc"
    members = 1

    def __init__(self, seed: int = 0, var: float = 1e-3) -> None:
        rng = np.random.default_rng(seed)
        self.radius = np.geomspace(0.05, 1.0, 6)
        self.gain = rng.normal(size=(2, 6, 4)) * np.array([1.0, 1.0, 1.0, 1e-3])
        self.offset = rng.normal(size=(2, 6))
        self.var = var
        self.metadata: dict[str, Any] = {}
        self.transforms = SimpleNamespace(k=None)
        self.training_box = {"a": (-20.0, 20.0), "b": (-20.0, 20.0), "c": (1e-4, 1e4), "big": (0.0, 4000.0),
                             "log10_mass": (12.0, 15.0)}

    def coords(self, params: np.ndarray) -> np.ndarray:
        p = np.asarray(params, dtype=float)
        return np.stack([p[..., 0], p[..., 1], np.log10(p[..., 2]), p[..., 3]], axis=-1)

    def mean(self, params: np.ndarray) -> np.ndarray:
        return np.einsum("frk,...k->...fr", self.gain, self.coords(params)) + self.offset

    @property
    def predict_fn(self) -> Any:
        import jax.numpy as jnp

        gain, offset, var = jnp.asarray(self.gain), jnp.asarray(self.offset), self.var

        def f(params: Any, log10_mass: Any, pk_ratio: Any = None, redshift: Any = None) -> Any:
            p = jnp.atleast_2d(params)
            s = jnp.stack([p[:, 0], p[:, 1], jnp.log10(p[:, 2]), p[:, 3]], axis=-1)
            mean = jnp.einsum("frk,nk->nfr", gain, s) + offset + 0.0 * jnp.atleast_1d(log10_mass)[:, None, None]
            return mean, jnp.full_like(mean, var)

        return f


def _linear_case(seed: int = 0, noise: float = 0.03) -> tuple[LinearEmulator, Observation, np.ndarray]:
    emu = LinearEmulator(seed)
    truth = np.array([0.5, -1.0, 3.0, 2000.0])
    rng = np.random.default_rng(seed + 100)
    d = emu.mean(truth) + rng.normal(size=(2, 6)) * np.sqrt(noise**2 + emu.var)
    obs = Observation(fields=FIELDS, radius=emu.radius, log10_mass=[13.0], log10_profile=d[None],
                      log10_err=np.full((1, 2, 6), noise), radius_unit="Mpc")
    return emu, obs, truth


def _analytic(emu: LinearEmulator, obs: Observation, fixed_big: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of (a, b, log10 c) with ``big`` fixed."""
    g = emu.gain.reshape(12, 4)
    resid = obs.log10_profile.reshape(-1) - emu.offset.reshape(-1) - g[:, 3] * fixed_big
    cinv = np.diag(1.0 / (obs.log10_err.reshape(-1) ** 2 + emu.var))
    prec = g[:, :3].T @ cinv @ g[:, :3]
    cov = np.linalg.inv(prec)
    return cov @ g[:, :3].T @ cinv @ resid, cov


# ---------------------------------------------------------------- observations
def test_observation_from_profiles_converts_to_log10(rng: np.random.Generator) -> None:
    r = np.geomspace(0.1, 1.0, 5)
    rho, err = rng.uniform(1, 10, 5), rng.uniform(0.05, 0.5, 5)
    obs = Observation.from_profiles(r, {"rho": rho}, 13.0, {"rho": err})
    np.testing.assert_allclose(obs.log10_profile[0, 0], np.log10(rho))
    np.testing.assert_allclose(obs.log10_err[0, 0], err / (rho * np.log(10)))
    assert obs.shape == (1, 1, 5)


@pytest.mark.parametrize(("values", "errors", "match"), [
    ([1.0, -2.0, 3.0], [0.1, 0.1, 0.1], "rho: value -2.0"),
    ([1.0, 2.0, 3.0], [0.1, 0.0, 0.1], "rho_err: value 0.0"),
    ([1.0, 2.0], [0.1, 0.1], "rho: shape"),
])
def test_observation_refuses_bad_values(values: list[float], errors: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        Observation.from_profiles([0.1, 0.2, 0.3], {"rho": values}, 13.0, {"rho": errors})


def test_observation_refuses_bad_covariance() -> None:
    r, v = [0.1, 0.2], {"rho": [1.0, 2.0]}
    with pytest.raises(DataError, match="not positive definite"):
        Observation.from_profiles(r, v, 13.0, covariance=np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(DataError, match=r"shape \(3, 3\)"):
        Observation.from_profiles(r, v, 13.0, covariance=np.eye(3))
    with pytest.raises(DataError, match="not symmetric"):
        Observation.from_profiles(r, v, 13.0, covariance=np.array([[1.0, 0.5], [0.1, 1.0]]))


def test_read_observation_csv_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text("radius,rho,rho_err,log10_mass\n0.2,4.0,0.4,13.0\n0.1,8.0,0.8,13.0\n"
                    "0.2,5.0,0.5,14.0\n0.1,9.0,0.9,14.0\n")
    obs = read_observation(path, fields=["rho"])
    np.testing.assert_allclose(obs.radius, [0.1, 0.2])  # sorted
    np.testing.assert_allclose(obs.log10_mass, [13.0, 14.0])
    np.testing.assert_allclose(obs.log10_profile[:, 0], np.log10([[8.0, 4.0], [9.0, 5.0]]))
    np.testing.assert_allclose(obs.log10_err[:, 0], 0.1 / np.log(10))
    bad = tmp_path / "bad.csv"
    bad.write_text("radius,rho\n0.1,1.0\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['rho_err'\]"):
        read_observation(bad, fields=["rho"], log10_mass=13.0)
    with pytest.raises(DataError, match="log10_mass: missing"):
        read_observation(bad, fields=["rho"], covariance=np.eye(1))


# ---------------------------------------------------------------- likelihood vs numpy
@pytest.mark.parametrize("kind", ["errors", "covariance"])
def test_log_likelihood_matches_numpy(run: TinyRun, kind: str) -> None:
    emu, ds = run.emulator, run.dataset
    rows = [0, 1]  # two mass bins of one simulation
    obs = Observation.from_dataset(ds, rows, FIELDS)
    if kind == "covariance":
        rng = np.random.default_rng(0)
        a = rng.normal(size=(obs.log10_err.size, obs.log10_err.size)) * 0.01
        cov = a @ a.T + np.diag(obs.log10_err.reshape(-1) ** 2)
        obs = Observation(fields=FIELDS, radius=obs.radius, log10_mass=obs.log10_mass,
                          log10_profile=obs.log10_profile, covariance=cov, radius_unit=obs.radius_unit)
    post = make_log_posterior(emu, obs, model_covariance="predictive")
    theta = post.space.center + 0.1 * (post.space.upper - post.space.lower)
    full = post.space.full_vector(theta)
    mean, var = _numpy_model(emu, full, obs.log10_mass)
    cov_total = obs.covariance_matrix() + np.diag(var)
    expected = multivariate_normal(mean=mean, cov=cov_total).logpdf(obs.log10_profile.reshape(-1))
    assert float(post.log_likelihood(theta)) == pytest.approx(expected, rel=1e-4, abs=1e-3)
    log_prior = -np.sum(np.log(post.space.upper - post.space.lower))
    assert float(post(theta)) == pytest.approx(expected + log_prior, rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("sigma_a", [None, 0.05])
def test_amplitude_marginalisation_matches_numeric_integral(run: TinyRun, sigma_a: float | None) -> None:
    emu, ds = run.emulator, run.dataset
    obs = Observation.from_dataset(ds, [4], FIELDS)
    post = make_log_posterior(emu, obs, model_covariance="predictive", amplitude_nuisance=True,
                              amplitude_prior_dex=sigma_a)
    theta = post.space.center
    mean, var = _numpy_model(emu, post.space.full_vector(theta), obs.log10_mass)
    d = obs.log10_profile.reshape(-1)
    cov = np.diag(obs.log10_err.reshape(-1) ** 2 + var)
    like = multivariate_normal(mean=np.zeros_like(d), cov=cov)

    def integrand(a: float) -> float:
        prior = 1.0 if sigma_a is None else np.exp(-0.5 * (a / sigma_a) ** 2) / (np.sqrt(2 * np.pi) * sigma_a)
        return np.exp(like.logpdf(d - mean - a) - ref) * prior

    ref = like.logpdf(d - mean)
    peak = float(np.sum((d - mean) / np.diag(cov)) / np.sum(1 / np.diag(cov)))
    value, _ = integrate.quad(integrand, peak - 1.0, peak + 1.0, points=[peak, 0.0], limit=200)
    expected = ref + np.log(value)
    assert float(post.log_likelihood(theta)) == pytest.approx(expected, abs=2e-3)


def test_gradient_finite_and_equals_finite_differences(run: TinyRun) -> None:
    import jax
    import jax.numpy as jnp

    post = make_log_posterior(run.emulator, Observation.from_dataset(run.dataset, [0, 1], FIELDS))
    theta = post.space.center + 0.05 * (post.space.upper - post.space.lower)
    grad = np.asarray(jax.jit(jax.grad(post.fn))(jnp.asarray(theta, dtype=jnp.float32)), dtype=float)
    assert np.all(np.isfinite(grad))
    h = 1e-3 * (post.space.upper - post.space.lower)
    numeric = np.array([
        (float(post(theta + h[j] * np.eye(post.space.dim)[j])) - float(post(theta - h[j] * np.eye(post.space.dim)[j])))
        / (2 * h[j]) for j in range(post.space.dim)
    ])
    np.testing.assert_allclose(grad, numeric, rtol=0.05, atol=0.02 * np.abs(numeric).max())


def test_gradient_finite_for_large_linear_parameters() -> None:
    """A linear parameter with values ~1e3 must not produce NaN through the log branch."""
    import jax
    import jax.numpy as jnp

    emu, obs, _ = _linear_case()
    post = make_log_posterior(emu, obs, model_covariance="predictive")
    grad = np.asarray(jax.grad(post.fn)(jnp.asarray(post.space.center, dtype=jnp.float32)))
    assert np.all(np.isfinite(grad))


# ---------------------------------------------------------------- priors, fixing, grids
def test_prior_is_minus_infinity_outside_the_box(run: TinyRun) -> None:
    post = make_log_posterior(run.emulator, Observation.from_dataset(run.dataset, [0], FIELDS))
    lo, hi = post.space.lower, post.space.upper
    assert np.isfinite(float(post(lo))) and np.isfinite(float(post(hi)))
    for j in range(post.space.dim):
        for edge, step in ((lo, -1e-3), (hi, 1e-3)):
            theta = edge.copy()
            theta[j] += step * (hi[j] - lo[j])
            assert float(post(theta)) == -np.inf
    box = run.emulator.training_box
    for j, name in enumerate(post.space.free):
        expected = np.log10(box[name]) if name in run.emulator.log_params else np.asarray(box[name])
        np.testing.assert_allclose([lo[j], hi[j]], expected, rtol=1e-6)


def test_fixed_parameters_are_fixed(run: TinyRun) -> None:
    emu, ds = run.emulator, run.dataset
    obs = Observation.from_dataset(ds, [0], FIELDS)
    fix = {"Omega_m": 0.3, "A_SN1": 1.5}
    post = make_log_posterior(emu, obs, fix=fix)
    assert post.names == ("sigma_8", "A_AGN1", "A_SN2", "A_AGN2")
    free = make_log_posterior(emu, obs)
    theta = post.space.center
    full = post.space.full_vector(theta)
    assert full[emu.param_names.index("Omega_m")] == 0.3 and full[emu.param_names.index("A_SN1")] == 1.5
    theta_all = free.space.to_sampling(full)
    assert float(post.log_likelihood(theta)) == pytest.approx(float(free.log_likelihood(theta_all)), rel=1e-6)
    # the prior of the fixed parameters (Omega_m, A_SN1: columns 0 and 2) drops out
    widths = free.space.upper - free.space.lower
    assert float(post(theta)) == pytest.approx(float(free(theta_all)) + np.log(widths[[0, 2]]).sum(), rel=1e-5)
    with pytest.raises(DataError, match=r"unknown parameter name\(s\) \['Omega_x'\]"):
        make_log_posterior(emu, obs, fix={"Omega_x": 0.3})
    with pytest.raises(DataError, match="outside the training range"):
        make_log_posterior(emu, obs, fix={"Omega_m": 5.0})


def test_prediction_is_interpolated_onto_observed_radii(run: TinyRun, caplog: pytest.LogCaptureFixture) -> None:
    emu, ds = run.emulator, run.dataset
    grid = emu.radius
    inner = grid[1:4] ** 0.7 * grid[2:5] ** 0.3  # between grid points, not at the log midpoint
    radius = np.concatenate([[grid[0] / 10], inner, [grid[-1] * 10]])
    values = {f: np.full(radius.size, 2.0) for f in FIELDS}
    obs = Observation.from_profiles(radius, values, ds.log10_mass[0], {f: np.full(radius.size, 0.1) for f in FIELDS},
                                    radius_unit=emu.radius_unit)
    with caplog.at_level(logging.WARNING, logger="profemu.inference"):
        post = make_log_posterior(emu, obs, model_covariance="none")
    assert "2 of 5 radii" in caplog.text
    np.testing.assert_allclose(post.observation.radius, radius[1:4])
    theta = post.space.center
    m, _ = post.model(theta)
    pred = emu.predict(post.space.full_vector(theta), ds.log10_mass[0])
    expected = np.concatenate([np.interp(np.log(radius[1:4]), np.log(grid), pred[f].mean) for f in FIELDS])
    np.testing.assert_allclose(np.asarray(m), expected, rtol=1e-5, atol=1e-5)
    far = Observation.from_profiles(grid[-1] * np.array([10.0, 20.0]), {"rho": [1.0, 1.0]}, 13.0,
                                    {"rho": [0.1, 0.1]})
    with pytest.raises(DataError, match="do not overlap the emulator's grid"):
        make_log_posterior(emu, far)


# ---------------------------------------------------------------- residual covariance
def test_residual_covariance_recovers_known_structure() -> None:
    rng = np.random.default_rng(0)
    k, n_sims = 6, 4000
    a = rng.normal(size=(k, k)) * 0.03
    shared = a @ a.T
    b = rng.normal(size=(k, k)) * 0.02
    own = b @ b.T
    noise = 0.04  # noise variance 1.6e-3, well above the tolerance below
    s = rng.multivariate_normal(np.zeros(k), shared, size=n_sims)
    rows = np.repeat(s, 2, axis=0) + rng.multivariate_normal(np.zeros(k), own, size=2 * n_sims)
    rows += noise * rng.standard_normal(rows.shape)
    groups = np.repeat(np.arange(n_sims), 2)
    est = estimate_residual_covariance(rows.reshape(-1, 2, 3), groups, fields=("rho", "pth"),
                                       radius=np.array([0.1, 0.2, 0.4]),
                                       noise=np.full((2 * n_sims, 2, 3), noise))
    scale = np.abs(shared + own).max()
    np.testing.assert_allclose(est.row, shared + own, atol=0.06 * scale)
    np.testing.assert_allclose(est.shared, shared, atol=0.06 * scale)
    assert est.n_groups == n_sims and est.n_pairs == n_sims
    two = est.for_bins(2)
    np.testing.assert_allclose(two[:k, k:], est.shared, atol=1e-10)
    np.testing.assert_allclose(two[:k, :k], est.row, atol=1e-10)
    assert np.linalg.eigvalsh(two).min() >= -1e-12
    back = ResidualCovariance.from_dict(est.to_dict())
    np.testing.assert_array_equal(back.row, est.row)


def test_residual_covariance_is_stored_validated_and_used(run: TinyRun, tmp_path: Path) -> None:
    import copy

    from profemu.emulator import Emulator

    emu = Emulator.load(run.run_dir / "emulator")
    n_r = emu.radius.size
    k = len(FIELDS) * n_r
    rng = np.random.default_rng(1)
    a = rng.normal(size=(k, k)) * 0.02
    est = ResidualCovariance(fields=FIELDS, radius=emu.radius, row=a @ a.T + 1e-4 * np.eye(k),
                             shared=0.5 * a @ a.T, n_groups=10, n_rows=20, n_pairs=10)
    attach_residual_covariance(emu, est)
    emu.save(tmp_path / "emu")
    loaded = Emulator.load(tmp_path / "emu")
    np.testing.assert_allclose(residual_covariance(loaded).row, est.row)
    obs = Observation.from_dataset(run.dataset, [0, 1], FIELDS)
    post = make_log_posterior(loaded, obs)
    assert post.model_covariance == "residual"
    theta = post.space.center
    mean, _ = _numpy_model(loaded, post.space.full_vector(theta), obs.log10_mass)
    cov = obs.covariance_matrix() + est.for_bins(2)
    expected = multivariate_normal(mean=mean, cov=cov).logpdf(obs.log10_profile.reshape(-1))
    assert float(post.log_likelihood(theta)) == pytest.approx(expected, rel=1e-4, abs=1e-3)
    for change in ({"row": [[float("nan")]]}, {"radius": [1.0, 2.0]}, {"shared": (np.triu(a) * 3).tolist()}):
        broken = copy.deepcopy(loaded)
        broken.metadata["residual_covariance"] = {**est.to_dict(), **change}
        with pytest.raises(FormatError, match="residual covariance"):
            residual_covariance(broken)
    with pytest.raises(DataError, match="carries no residual covariance"):
        make_log_posterior(run.emulator, obs, model_covariance="residual")


# ---------------------------------------------------------------- diagnostics
def test_rhat_and_ess_against_reference_values() -> None:
    from scipy.signal import lfilter

    rng = np.random.default_rng(0)
    iid = rng.standard_normal((4, 2000))
    assert split_rhat(iid) < 1.01
    assert ess_bulk(iid) == pytest.approx(8000, rel=0.1)
    for rho in (0.5, 0.9):  # AR(1): ESS = N (1 - rho) / (1 + rho)
        chains = lfilter([1.0], [1.0, -rho], rng.standard_normal((4, 50_000)), axis=1)
        assert ess_bulk(chains) == pytest.approx(chains.size * (1 - rho) / (1 + rho), rel=0.1)
    shifted = iid + np.array([0.0, 0.0, 0.0, 1.0])[:, None]
    assert split_rhat(shifted) > 1.05
    scaled = iid * np.array([1.0, 1.0, 1.0, 4.0])[:, None]  # same location, different spread: the tail R-hat
    assert split_rhat(scaled) > 1.05


def test_convergence_error_names_the_numbers(run: TinyRun) -> None:
    space = parameter_space(run.emulator)
    rng = np.random.default_rng(0)
    good = space.center + 0.01 * rng.standard_normal((4, 500, space.dim))
    bad = good.copy()
    bad[3, :, 0] += 0.5
    r_hat = np.array([split_rhat(bad[:, :, j]) for j in range(space.dim)])
    ess = np.array([ess_bulk(bad[:, :, j]) for j in range(space.dim)])
    post = Posterior(space=space, samples=bad, r_hat=r_hat, ess=ess, divergences=0, info={"warmup": 500, "draws": 500})
    assert not post.converged()
    with pytest.raises(ConvergenceError, match=r"Omega_m \(R-hat 1\.\d+, ESS \d+\).*warmup=1000, draws=1000"):
        post.check()


# ---------------------------------------------------------------- NUTS, MAP, Fisher on a known posterior
def test_nuts_map_and_fisher_recover_the_linear_gaussian_posterior() -> None:
    emu, obs, truth = _linear_case()
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive")
    other_obs = Observation(fields=FIELDS, radius=obs.radius, log10_mass=obs.log10_mass,
                            log10_profile=obs.log10_profile + 0.05, log10_err=obs.log10_err, radius_unit="Mpc")
    other = post.with_observation(other_obs)
    assert other.structure == post.structure and other._core is post._core
    samples = sample_posteriors([post, other], chains=4, warmup=300, draws=600, seed=0, check=True)
    for lp, s in zip((post, other), samples, strict=True):
        mean, cov = _analytic(emu, lp.observation, truth[3])
        std = np.sqrt(np.diag(cov))
        assert s.r_hat.max() < 1.02 and s.ess.min() > 300
        # Monte Carlo error of the mean is ~std/sqrt(ESS) < 0.06 std; of the std ~4%
        np.testing.assert_allclose(s.flat.mean(axis=0), mean, atol=0.12 * std.min())
        np.testing.assert_allclose(s.flat.std(axis=0), std, rtol=0.1)
        np.testing.assert_allclose(np.cov(s.flat.T), cov, atol=0.15 * np.outer(std, std).max())
        summary = s.summary()
        assert set(summary) == {"a", "b", "c"} and "log10" in summary["c"]
        assert summary["c"]["q50"] == pytest.approx(10 ** np.median(s.flat[:, 2]), rel=1e-6)
    best = find_map(post, starts=3)
    mean, cov = _analytic(emu, obs, truth[3])
    np.testing.assert_allclose(best.theta, mean, atol=2e-3 * np.sqrt(np.diag(cov)).max() + 1e-4)
    fisher = fisher_matrix(post, best.theta)
    np.testing.assert_allclose(fisher.covariance, cov, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(fisher.errors, np.sqrt(np.diag(cov)), rtol=1e-3)
    c = best.values["c"]
    assert fisher.errors_physical[2] == pytest.approx(np.log(10) * c * fisher.errors[2], rel=1e-6)


def test_fisher_with_the_box_prior_is_the_gaussian_prior_posterior() -> None:
    emu, obs, truth = _linear_case(seed=1)
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive")
    theta = emu.coords(truth)[:3]
    g = emu.gain.reshape(12, 4)[:, :3]
    cinv = np.diag(1.0 / (obs.log10_err.reshape(-1) ** 2 + emu.var))
    box_prec = 12.0 / (post.space.upper - post.space.lower) ** 2  # uniform box -> Gaussian of equal variance
    res = fisher_matrix(post, theta, include_box_prior=True)
    np.testing.assert_allclose(res.covariance, np.linalg.inv(g.T @ cinv @ g + np.diag(box_prec)), rtol=1e-3)
    plain = fisher_matrix(post, theta)
    assert np.all(res.errors < plain.errors)


def test_fisher_with_amplitude_nuisance_marginalises_it() -> None:
    emu, obs, truth = _linear_case(seed=2)
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive",
                              amplitude_nuisance=True, amplitude_prior_dex=0.1)
    theta = emu.coords(truth)[:3]
    res = fisher_matrix(post, theta)
    g = np.column_stack([emu.gain.reshape(12, 4)[:, :3], np.ones(12)])  # amplitude as a 4th parameter
    cinv = np.diag(1.0 / (obs.log10_err.reshape(-1) ** 2 + emu.var))
    full = g.T @ cinv @ g + np.diag([0, 0, 0, 1 / 0.1**2])
    np.testing.assert_allclose(res.covariance, np.linalg.inv(full)[:3, :3], rtol=1e-3)


@pytest.mark.parametrize("amplitude", [False, True])
def test_fisher_equals_the_score_covariance_with_parameter_dependent_variance(run: TinyRun, amplitude: bool) -> None:
    """F = E[s s^T] for data drawn from the model itself (independent Monte Carlo reference).

    Small observation errors make the emulator's predictive variance, which depends on
    the parameters, a large part of C, so the 1/2 tr(P dC P dC) term matters.
    """
    import jax
    import jax.numpy as jnp

    obs = Observation.from_dataset(run.dataset, [0, 1], FIELDS)
    obs = Observation(fields=FIELDS, radius=obs.radius, log10_mass=obs.log10_mass,
                      log10_profile=obs.log10_profile, log10_err=np.full_like(obs.log10_err, 0.003),
                      radius_unit=obs.radius_unit)
    post = make_log_posterior(run.emulator, obs, model_covariance="predictive", amplitude_nuisance=amplitude,
                              amplitude_prior_dex=0.05 if amplitude else None)
    theta = post.space.center + 0.1 * (post.space.upper - post.space.lower)
    mean, cov = (np.asarray(a, dtype=float) for a in post.model(jnp.asarray(theta, dtype=jnp.float32)))
    if amplitude:  # the marginal likelihood is that of N(m, C + sigma^2 w w^T)
        w = np.asarray(post.data["w"], dtype=float)
        cov = cov + 0.05**2 * np.outer(w, w)
    rng = np.random.default_rng(0)
    n = 8000
    draws = rng.multivariate_normal(mean, cov, size=n).astype(np.float32)
    data = {k: jnp.asarray(v) for k, v in post.data.items()}
    score = jax.jit(jax.vmap(jax.grad(lambda th, d: post._core(th, {**data, "d": d})[1]), in_axes=(None, 0)))
    s = np.asarray(score(jnp.asarray(theta, dtype=jnp.float32), jnp.asarray(draws)), dtype=float)
    reference = s.T @ s / n
    full = fisher_matrix(post, theta, include_prior=False).matrix
    mean_only = fisher_matrix(post, theta, include_prior=False, include_variance=False).matrix
    scale = np.sqrt(np.outer(np.diag(reference), np.diag(reference)))
    # Monte Carlo error of each element ~ sqrt(2/n) of this scale (1.6%)
    np.testing.assert_allclose(full / scale, reference / scale, atol=0.07)
    assert np.abs(mean_only / scale - reference / scale).max() > 0.2  # the variance term is not negligible here


def test_import_does_not_import_jax() -> None:
    code = "import sys, profemu, profemu.inference; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
