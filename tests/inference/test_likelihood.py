"""profemu.inference.likelihood: the Gaussian log likelihood against numpy, amplitude
marginalisation, gradients, the prior box, fixed parameters and radius interpolation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal

from profemu.errors import DataError
from profemu.inference import Observation, make_log_posterior
from tests.inference.helpers import FIELDS, linear_case, numpy_model
from tests.reliability import TinyRun


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
    mean, var = numpy_model(emu, full, obs.log10_mass)
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
    mean, var = numpy_model(emu, post.space.full_vector(theta), obs.log10_mass)
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

    emu, obs, _ = linear_case()
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


def test_an_observation_outside_the_training_redshifts_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A redshift outside the emulator's training redshifts is flagged as a mass outside its range is."""
    import logging
    from types import SimpleNamespace

    from profemu.inference.likelihood import _warn_mass_outside_training

    emu = SimpleNamespace(training_box={"log10_mass": (12.0, 14.0), "redshift": (0.0, 1.0)},
                          input_spec=SimpleNamespace(uses_redshift=True))
    with caplog.at_level(logging.WARNING, logger="profemu.inference"):
        _warn_mass_outside_training(emu, SimpleNamespace(log10_mass=np.array([13.0]), redshift=0.5))
        assert not caplog.records
        _warn_mass_outside_training(emu, SimpleNamespace(log10_mass=np.array([13.0]), redshift=3.0))
    assert [r.getMessage() for r in caplog.records] == [
        "observation: redshift [3.0] outside the training range [0, 1]; the prediction there is an extrapolation"]
