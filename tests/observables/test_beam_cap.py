"""Hankel transforms, beam convolution and the CAP filter against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import j1

from profemu.errors import ConfigError
from profemu.observables.beam import (
    ell_grid,
    gaussian_beam,
    hankel_forward_matrix,
    hankel_inverse_matrix,
    harmonic_window,
)
from profemu.observables.cap import (
    beam_convolved_filter,
    cap_filter,
    cap_gaussian,
    cap_harmonic_kernel,
    cap_of_radial_map,
    cap_weights,
)
from profemu.observables.units import ARCMIN_RAD

APERTURES = np.linspace(1.0, 6.0, 9) * ARCMIN_RAD
S_MAP = 1.0 * ARCMIN_RAD
FWHM = 1.6
S_BEAM = FWHM * ARCMIN_RAD / np.sqrt(8 * np.log(2))
THETA = np.geomspace(1e-3, 30.0, 600) * ARCMIN_RAD
ELL = ell_grid(40000.0, 10.0)


def gaussian_map(theta: np.ndarray, s: float) -> np.ndarray:
    return np.exp(-(theta**2) / (2 * s**2))


def test_hankel_pair_and_gaussian_beam() -> None:
    """T̃ of a Gaussian is 2π s² exp(-ℓ²s²/2); beam-convolved it is a Gaussian of summed variance."""
    t_ell = hankel_forward_matrix(THETA, ELL) @ gaussian_map(THETA, S_MAP)
    exact = 2 * np.pi * S_MAP**2 * np.exp(-(ELL**2) * S_MAP**2 / 2)
    assert np.max(np.abs(t_ell - exact)) < 1e-8 * exact[0]
    conv = hankel_inverse_matrix(ELL, THETA) @ (gaussian_beam(ELL, FWHM) * t_ell)
    s2 = S_MAP**2 + S_BEAM**2
    np.testing.assert_allclose(conv, S_MAP**2 / s2 * gaussian_map(THETA, np.sqrt(s2)), atol=1e-5)


def test_cap_of_beam_convolved_gaussian_is_analytic() -> None:
    """C @ T (filter convolved with the beam) = analytic CAP of the Gaussian of summed variance."""
    weights = cap_weights(THETA, ELL, APERTURES, gaussian_beam(ELL, FWHM))
    s2 = S_MAP**2 + S_BEAM**2
    exact = cap_gaussian(APERTURES, np.sqrt(s2), S_MAP**2 / s2)
    np.testing.assert_allclose(weights @ gaussian_map(THETA, S_MAP), exact, rtol=1e-7)


def test_cap_kernel_in_harmonic_space() -> None:
    """∫ dℓ K(ℓ) T̃(ℓ) = real-space CAP (no beam); K(ℓ) ~ ℓ θ_d² / 2 ... → 0 at ℓ = 0."""
    s = S_MAP
    for a in APERTURES[[0, 4, 8]]:
        got = quad(lambda ell, a=a: float(cap_harmonic_kernel(np.array([ell]), np.array([a]))[0, 0])
                   * 2 * np.pi * s**2 * np.exp(-(ell**2) * s**2 / 2), 0, 12 / s, limit=400)[0]
        assert got == pytest.approx(float(cap_gaussian(np.array([a]), s)[0]), rel=1e-8)
    k0 = cap_harmonic_kernel(np.array([0.0, 1.0]), APERTURES[:1])
    assert k0[0, 0] == 0.0 and k0[0, 1] == pytest.approx(2 * APERTURES[0] * j1(APERTURES[0])
                                                         - np.sqrt(2) * APERTURES[0] * j1(np.sqrt(2) * APERTURES[0]))


def test_real_space_filter_and_map_cap() -> None:
    theta = np.array([0.5, 1.0, 1.2, 1.6]) * ARCMIN_RAD
    np.testing.assert_array_equal(cap_filter(theta, np.array([1.1 * ARCMIN_RAD])), [[1.0, 1.0, -1.0, 0.0]])
    dense = np.linspace(1e-4, 30.0, 20000) * ARCMIN_RAD
    np.testing.assert_allclose(cap_of_radial_map(dense, gaussian_map(dense, S_MAP), APERTURES),
                               cap_gaussian(APERTURES, S_MAP), rtol=1e-6)
    # a constant map has zero CAP (equal areas)
    assert np.max(np.abs(cap_of_radial_map(dense, np.ones_like(dense), APERTURES))) < 1e-14


def test_filter_with_narrow_beam_is_the_top_hat() -> None:
    ell = ell_grid(5e5, 20.0)
    theta = np.array([0.3, 0.7, 1.2, 1.25, 2.0]) * ARCMIN_RAD
    wb = beam_convolved_filter(theta, ell, np.array([1.0 * ARCMIN_RAD]), gaussian_beam(ell, 0.1))
    np.testing.assert_allclose(wb[0], [1.0, 1.0, -1.0, -1.0, 0.0], atol=1e-3)


def test_window_checks() -> None:
    ell_b = np.arange(0.0, 5001.0)
    wide = gaussian_beam(ell_b, 10.0)  # falls below 1e-3 at ℓ ≈ 3000
    window = harmonic_window(np.array([0.0, 100.0, 9000.0]), ell_b, wide)
    assert window[0] == 1.0 and window[2] == 0.0
    with pytest.raises(ConfigError, match=r"^beam_ell: the beam table ends at ℓ = 5000 with B_ℓ / B_0 = "):
        harmonic_window(ELL, ell_b, gaussian_beam(ell_b, 1.6))
    with pytest.raises(ConfigError, match=r"^beam_ell: the beam table starts at ℓ = 10"):
        harmonic_window(ELL, ell_b[10:], wide[10:])
    with pytest.raises(ConfigError, match=r"^beam_ell: values must be strictly increasing"):
        harmonic_window(ELL, ell_b[::-1], wide[::-1])
    with pytest.raises(ConfigError, match=r"^response_ell: the response table ends at ℓ = 1000"):
        harmonic_window(ELL, ell_b, wide, np.array([0.0, 1000.0]), np.array([-2.8, -2.8]))
    with pytest.raises(ConfigError, match=r"^response_ell, response: pass both"):
        harmonic_window(ELL, ell_b, wide, None, np.array([-2.8, -2.8]))
