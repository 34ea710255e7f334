"""Tests of the masked data terms."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from profemu.config import LossConfig
from profemu.errors import ConfigError
from profemu.losses.likelihood import (
    LOSSES,
    beta_nll,
    data_loss,
    gaussian_nll,
    gaussian_nll_elements,
    huber,
    masked_mean,
    mse,
    pinball,
)


@pytest.fixture
def arrays(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    mean = rng.normal(size=(7, 5)).astype(np.float32)
    var = rng.uniform(0.1, 2.0, size=(7, 5)).astype(np.float32)
    target = rng.normal(size=(7, 5)).astype(np.float32)
    mask = (rng.uniform(size=(7, 5)) > 0.3).astype(np.float32)
    return mean, var, target, mask


def test_gaussian_nll_matches_scipy(arrays: tuple[np.ndarray, ...]) -> None:
    mean, var, target, mask = arrays
    expected = -stats.norm.logpdf(target, mean, np.sqrt(var))
    np.testing.assert_allclose(gaussian_nll_elements(mean, var, target), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gaussian_nll(mean, var, target, mask), expected[mask > 0].mean(), rtol=1e-5)


def test_noise_var_is_added_only_with_use_target_noise(arrays: tuple[np.ndarray, ...]) -> None:
    mean, var, target, mask = arrays
    noise = np.full_like(var, 0.5)
    expected = -stats.norm.logpdf(target, mean, np.sqrt(var + noise))[mask > 0].mean()
    with_noise = data_loss(mean, var, target, mask, noise, LossConfig(likelihood="nll", use_target_noise=True))
    without = data_loss(mean, var, target, mask, noise, LossConfig(likelihood="nll", use_target_noise=False))
    np.testing.assert_allclose(with_noise, expected, rtol=1e-5)
    np.testing.assert_allclose(without, gaussian_nll(mean, var, target, mask), rtol=1e-6)
    assert not np.isclose(with_noise, without)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_masked_nan_targets_change_neither_value_nor_gradient(name: str, arrays: tuple[np.ndarray, ...]) -> None:
    mean, var, target, mask = arrays
    poisoned = np.where(mask > 0, target, np.nan).astype(np.float32)
    cfg = LossConfig(likelihood=name)

    def f(m: jax.Array, t: np.ndarray) -> jax.Array:
        return data_loss(m, var, t, mask, np.zeros_like(var), cfg)

    v1, g1 = jax.value_and_grad(f)(jnp.asarray(mean), target)
    v2, g2 = jax.value_and_grad(f)(jnp.asarray(mean), poisoned)
    assert np.isfinite(v2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)
    assert np.all(np.asarray(g2)[mask == 0] == 0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_empty_mask_gives_zero_and_extremes_stay_finite(name: str) -> None:
    cfg = LossConfig(likelihood=name)
    big = np.float32(3e38)
    mean = np.array([[big, -big, 0.0, 1e-30]], np.float32)
    var = np.array([[1e-30, big, 0.0, big]], np.float32)
    target = np.array([[-big, big, 1e30, -1e30]], np.float32)
    noise = np.array([[big, big, 0.0, 0.0]], np.float32)
    assert float(data_loss(mean, var, target, np.zeros_like(mean), noise, cfg)) == 0.0
    assert np.isfinite(float(data_loss(mean, var, target, np.ones_like(mean), noise, cfg)))


def test_beta_nll_weights_by_stopped_variance(arrays: tuple[np.ndarray, ...]) -> None:
    mean, var, target, mask = arrays
    np.testing.assert_allclose(beta_nll(mean, var, target, mask, beta=0.0), gaussian_nll(mean, var, target, mask))
    # d/dmean of beta-NLL = var^beta * d/dmean of NLL elementwise (the weight is not differentiated)
    g_beta = jax.grad(lambda m: beta_nll(m, var, target, mask, beta=1.0))(jnp.asarray(mean))
    g_nll = jax.grad(lambda m: gaussian_nll(m, var, target, mask))(jnp.asarray(mean))
    np.testing.assert_allclose(g_beta, var * g_nll, rtol=1e-5, atol=1e-7)
    g_var = jax.grad(lambda v: beta_nll(mean, v, target, mask, beta=1.0))(jnp.asarray(var))
    g_var_nll = jax.grad(lambda v: gaussian_nll(mean, v, target, mask))(jnp.asarray(var))
    np.testing.assert_allclose(g_var, var * g_var_nll, rtol=1e-5, atol=1e-7)


def test_mse_and_huber_match_references(arrays: tuple[np.ndarray, ...]) -> None:
    mean, _, target, mask = arrays
    np.testing.assert_allclose(mse(mean, target, mask), ((mean - target) ** 2)[mask > 0].mean(), rtol=1e-6)
    ref = optax.losses.huber_loss(mean, target, delta=0.3)
    np.testing.assert_allclose(huber(mean, target, mask, delta=0.3), np.asarray(ref)[mask > 0].mean(), rtol=1e-5)


def test_pinball_median_and_calibrated_quantiles(rng: np.random.Generator) -> None:
    mean = np.zeros((1, 4000), np.float32)
    target = rng.normal(size=(1, 4000)).astype(np.float32)
    mask = np.ones_like(target)
    np.testing.assert_allclose(
        pinball(mean, np.ones_like(mean), target, mask, quantiles=[0.5]), 0.5 * np.abs(target).mean(), rtol=1e-5
    )
    # for N(0, 1) data the pinball loss over (0.16, 0.84) is smallest near var = 1
    losses = [float(pinball(mean, np.full_like(mean, v), target, mask)) for v in (0.25, 1.0, 4.0)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_masked_mean_and_unknown_likelihood(arrays: tuple[np.ndarray, ...]) -> None:
    mean, var, target, mask = arrays
    np.testing.assert_allclose(masked_mean(jnp.asarray(mean), mask), mean[mask > 0].mean(), rtol=1e-6)
    cfg = dataclasses.replace(LossConfig(), likelihood="cauchy")  # bypasses validation, as a bad caller could
    with pytest.raises(ConfigError, match=r"loss\.likelihood"):
        data_loss(mean, var, target, mask, None, cfg)
