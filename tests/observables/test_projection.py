"""Line-of-sight projection against closed forms: Gaussian → Gaussian, power law → Beta function,
exactness for the piecewise-linear representation, continuations, JAX gradients, bad inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import beta

from profemu.errors import ConfigError, DataError, ProfemuError
from profemu.observables.projection import (
    extend_profile,
    log_radial_grid,
    project,
    projection_matrix,
    two_halo_on_grid,
)


def test_gaussian_projects_to_gaussian() -> None:
    """f = exp(-r²/2s²) → Σ = √(2π) s exp(-R²/2s²) for l_max ≫ s."""
    s = 0.3
    grid = log_radial_grid(1e-4, 20.0, 512)
    radii = np.geomspace(1e-3, 2 * s, 40)
    sigma = project(grid, np.exp(-(grid**2) / (2 * s**2)), radii, 10.0)
    exact = np.sqrt(2 * np.pi) * s * np.exp(-(radii**2) / (2 * s**2))
    np.testing.assert_allclose(sigma, exact, rtol=2e-3)


@pytest.mark.parametrize("slope", [2.0, 3.0, 4.0])
def test_power_law_projects_to_beta_function(slope: float) -> None:
    """f = r^-a (a > 1), l_max → ∞: Σ(R) = R^(1-a) B(1/2, (a-1)/2)."""
    grid = log_radial_grid(1e-5, 1e6, 1024)
    radii = np.geomspace(1e-3, 1.0, 25)
    sigma = project(grid, grid**-slope, radii, 1e5)
    exact = radii ** (1 - slope) * beta(0.5, (slope - 1) / 2)
    np.testing.assert_allclose(sigma, exact, rtol=1e-3)


def test_matrix_is_exact_for_piecewise_loglinear_profile() -> None:
    """W integrates f (linear in ln r between nodes, constant inside, zero outside) exactly."""
    grid = np.array([0.01, 0.03, 0.1, 0.2, 0.5, 1.0, 3.0])
    values = np.array([5.0, 4.0, 2.5, 1.0, 0.4, 0.2, 0.05])
    l_max = 2.0

    def f(r: float) -> float:
        if r > grid[-1]:
            return 0.0
        return float(np.interp(np.log(r), np.log(grid), values))

    radii = np.array([0.0, 0.005, 0.01, 0.05, 0.3, 1.5, 2.9])
    w = projection_matrix(grid, radii, l_max)
    for big_r, got in zip(radii, w @ values, strict=True):
        pts = [np.sqrt(max(r**2 - big_r**2, 0.0)) for r in grid if big_r < r]
        pts = sorted({p for p in pts if p < l_max})
        exact = 2 * quad(lambda ll, rr=big_r: f(np.hypot(ll, rr)), 0.0, l_max, points=pts or None,
                         limit=200, epsabs=1e-13, epsrel=1e-12)[0]
        assert got == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_jax_matrix_float32() -> None:
    """The JAX default (float32) matrix stays accurate: weights are formed without cancellation
    (float64 JAX = numpy and d/dR = finite differences: tests/observables/x64_checks.py)."""
    grid = log_radial_grid(1e-4, 20.0, 256)
    f = grid**-2.5 * np.exp(-grid)
    radii = np.geomspace(1e-3, 3.0, 30)
    w32 = np.asarray(jax.jit(lambda r: projection_matrix(grid, r, 10.0, xp=jnp))(
        jnp.asarray(radii, dtype=jnp.float32)))
    np.testing.assert_allclose(w32.astype(float) @ f, projection_matrix(grid, radii, 10.0) @ f, rtol=1e-5)
    g = jax.jit(jax.grad(lambda s: jnp.sum(project(grid, jnp.asarray(f), s * jnp.asarray(radii), 10.0,
                                                   xp=jnp))))(1.0)
    assert np.isfinite(float(g)) and float(g) < 0


def test_extend_profile_continuations() -> None:
    r = np.array([0.1, 0.2, 0.4, 0.8])
    f = np.array([8.0, 4.0, 1.0, 0.125])  # slopes -1 (first pair) and -3 (last pair)
    grid = np.array([0.025, 0.1, 0.3, 0.8, 1.6, 3.2])
    out = extend_profile(r, f, grid)
    np.testing.assert_allclose(out[[0, 1, 3]], [32.0, 8.0, 0.125])
    np.testing.assert_allclose(out[4:], 0.125 * (grid[4:] / 0.8) ** -3)
    assert out[2] == pytest.approx(np.exp(np.interp(np.log(0.3), np.log(r), np.log(f))))
    trunc = extend_profile(r, f, grid, continuation="truncate", truncation_radius_mpc=2.0)
    np.testing.assert_allclose(trunc, np.where(grid <= 2.0, out, 0.0))
    np.testing.assert_allclose(extend_profile(r, f, grid, continuation="truncate")[4:], 0.0)
    two_h = two_halo_on_grid(r, f, grid)
    assert two_h[0] == pytest.approx(8.0)  # constant inside the two-halo table
    # batched and JAX inputs
    batch = extend_profile(r, np.stack([f, 2 * f]), grid)
    np.testing.assert_allclose(batch[1], 2 * out)
    np.testing.assert_allclose(np.asarray(extend_profile(r, jnp.asarray(f), grid, xp=jnp)), out,
                               rtol=1e-5)


@pytest.mark.parametrize(
    ("radius", "profile", "exc", "pattern"),
    [
        ([-0.1, 0.2, 0.3], [1.0, 1.0, 1.0], DataError, r"^radius_mpc: value -0.1 at index 0 is <= 0"),
        ([0.1, 0.3, 0.2], [1.0, 1.0, 1.0], DataError, r"^radius_mpc: values must be strictly increasing"),
        ([0.1, 0.2, 0.3], [1.0, np.nan, 1.0], DataError, r"^profile: non-finite value nan at index 1"),
        ([0.1, 0.2, 0.3], [1.0, 0.0, 1.0], DataError, r"^profile: value 0 at index 1 is <= 0"),
        ([0.1, 0.2, 0.3], [1.0, 1.0], DataError, r"^profile: last axis has 2 values but radius_mpc has 3"),
    ],
)
def test_bad_tables(radius: list[float], profile: list[float], exc: type[ProfemuError], pattern: str) -> None:
    with pytest.raises(exc, match=pattern) as info:
        extend_profile(radius, profile, log_radial_grid())
    assert "\n" not in str(info.value)


def test_bad_options() -> None:
    r, f = [0.1, 0.2], [1.0, 0.5]
    with pytest.raises(ConfigError, match=r"^continuation: unknown value 'spline'"):
        extend_profile(r, f, log_radial_grid(), continuation="spline")
    with pytest.raises(ConfigError, match=r"^truncation_radius_mpc: only used with continuation='truncate'"):
        extend_profile(r, f, log_radial_grid(), truncation_radius_mpc=1.0)
    with pytest.raises(ConfigError, match=r"^radius_grid_mpc: values must be strictly increasing"):
        projection_matrix(np.array([1.0, 0.5]), np.array([0.1]), 1.0)
