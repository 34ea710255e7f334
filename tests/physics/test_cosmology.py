"""Flat ΛCDM distances against astropy, and their JAX derivatives against finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.physics.cosmology import angular_diameter_distance, comoving_distance


@pytest.mark.parametrize(("omega_m", "h"), [(0.3, 0.7), (0.1, 0.5), (0.5, 0.8), (0.3089, 0.6774)])
def test_distances_match_astropy(omega_m: float, h: float) -> None:
    cosmology = pytest.importorskip("astropy.cosmology")
    ref = cosmology.FlatLambdaCDM(H0=100 * h, Om0=omega_m, Tcmb0=0.0)  # no radiation, as documented
    z = np.array([1e-3, 0.1, 0.55, 1.0, 2.5, 6.0])
    np.testing.assert_allclose(angular_diameter_distance(z, omega_m, h),
                               ref.angular_diameter_distance(z).value, rtol=1e-8)
    np.testing.assert_allclose(comoving_distance(z, omega_m, h), ref.comoving_distance(z).value, rtol=1e-8)


def test_docstring_values_and_shapes() -> None:
    assert float(comoving_distance(0.55, 0.3, 0.7)) == pytest.approx(2049.86, rel=1e-5)
    assert float(angular_diameter_distance(0.55, 0.3, 0.7)) == pytest.approx(1322.49, rel=1e-5)
    assert angular_diameter_distance(np.ones((2, 3)), 0.3, 0.7).shape == (2, 3)
    # small-z limit: D_A ≈ c z / H0
    assert float(angular_diameter_distance(1e-5, 0.3, 0.7)) == pytest.approx(299792.458e-5 / 70.0, rel=1e-4)


def test_jax_distance_and_gradients() -> None:
    """float32 JAX equals numpy; ∂D_A/∂(Ω_m, h, z) equal finite differences of the numpy path."""
    np.testing.assert_allclose(float(angular_diameter_distance(0.55, 0.3, 0.7, xp=jnp)),
                               float(angular_diameter_distance(0.55, 0.3, 0.7)), rtol=1e-6)
    grads = jax.grad(lambda z, om, h: angular_diameter_distance(z, om, h, xp=jnp), argnums=(0, 1, 2))(
        0.55, 0.3, 0.7)
    eps = 1e-5
    for i, g in enumerate(grads):
        up, down = [0.55, 0.3, 0.7], [0.55, 0.3, 0.7]
        up[i] += eps
        down[i] -= eps
        fd = (float(angular_diameter_distance(*up)) - float(angular_diameter_distance(*down))) / (2 * eps)
        assert float(g) == pytest.approx(fd, rel=1e-4)
    # D_A ∝ 1/h exactly
    assert float(grads[2]) == pytest.approx(-float(angular_diameter_distance(0.55, 0.3, 0.7)) / 0.7, rel=1e-5)
