"""profemu.inference.sampling: NUTS on a batch of known posteriors, the MAP, and the
convergence check's message."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.inference import (
    ConvergenceError,
    Observation,
    Posterior,
    ess_bulk,
    find_map,
    make_log_posterior,
    parameter_space,
    sample_posterior_batch,
    split_rhat,
)
from tests.inference.helpers import FIELDS, analytic, linear_case
from tests.reliability import TinyRun


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


# ---------------------------------------------------------------- NUTS and MAP on a known posterior
def test_nuts_batch_recovers_the_linear_gaussian_posteriors() -> None:
    emu, obs, truth = linear_case()
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive")
    other_obs = Observation(fields=FIELDS, radius=obs.radius, log10_mass=obs.log10_mass,
                            log10_profile=obs.log10_profile + 0.05, log10_err=obs.log10_err, radius_unit="Mpc")
    other = post.with_observation(other_obs)
    assert other.structure == post.structure and other._core is post._core
    samples = sample_posterior_batch([post, other], chains=4, warmup=300, draws=600, seed=0, check=True)
    for lp, s in zip((post, other), samples, strict=True):
        mean, cov = analytic(emu, lp.observation, truth[3])
        std = np.sqrt(np.diag(cov))
        assert s.r_hat.max() < 1.02 and s.ess.min() > 300
        # Monte Carlo error of the mean is ~std/sqrt(ESS) < 0.06 std; of the std ~4%
        np.testing.assert_allclose(s.flat.mean(axis=0), mean, atol=0.12 * std.min())
        np.testing.assert_allclose(s.flat.std(axis=0), std, rtol=0.1)
        np.testing.assert_allclose(np.cov(s.flat.T), cov, atol=0.15 * np.outer(std, std).max())
        summary = s.summary()
        assert set(summary) == {"a", "b", "c"} and "log10" in summary["c"]
        assert summary["c"]["q50"] == pytest.approx(10 ** np.median(s.flat[:, 2]), rel=1e-6)


def test_map_is_the_linear_gaussian_posterior_mean() -> None:
    emu, obs, truth = linear_case()
    post = make_log_posterior(emu, obs, fix={"big": truth[3]}, model_covariance="predictive")
    best = find_map(post, starts=3)
    mean, cov = analytic(emu, obs, truth[3])
    np.testing.assert_allclose(best.theta, mean, atol=2e-3 * np.sqrt(np.diag(cov)).max() + 1e-4)
