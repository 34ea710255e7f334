"""profemu.inference.fisher: the Fisher matrix on linear-Gaussian posteriors (closed form)
and against the score covariance of the tiny run's own model."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.inference import Observation, find_map, fisher_matrix, make_log_posterior
from tests.inference.helpers import FIELDS, analytic, linear_case
from tests.reliability import TinyRun


def test_fisher_at_the_map_is_the_linear_gaussian_posterior_covariance() -> None:
    emu, obs, truth = linear_case()
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive")
    best = find_map(post, starts=3)
    _, cov = analytic(emu, obs, truth[3])
    fisher = fisher_matrix(post, best.theta)
    np.testing.assert_allclose(fisher.covariance, cov, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(fisher.errors, np.sqrt(np.diag(cov)), rtol=1e-3)
    c = best.values["c"]
    assert fisher.errors_physical[2] == pytest.approx(np.log(10) * c * fisher.errors[2], rel=1e-6)


def test_fisher_with_the_box_prior_is_the_gaussian_prior_posterior() -> None:
    emu, obs, truth = linear_case(seed=1)
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
    emu, obs, truth = linear_case(seed=2)
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
    theta = post.space.lower + 0.1 * (post.space.upper - post.space.lower)  # where the variance varies most
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
    # the variance term is not negligible here: well over the tolerance, so dropping it fails the check above
    assert np.abs(mean_only / scale - reference / scale).max() > 0.12
