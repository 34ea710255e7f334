"""Compensated aperture photometry (CAP): a disk minus the ring of equal area around it.

For a disk radius θ_d the filter is W(θ) = 1 for θ < θ_d, −1 for θ_d < θ < √2 θ_d, 0 beyond,
and T_CAP(θ_d) = ∫ W T_b dΩ [map units × sr], T_b the beam-convolved map.

Its 2D Fourier transform is W̃(ℓ) = (2π / ℓ) K(ℓ) with

    K(ℓ) = 2 θ_d J1(ℓ θ_d) − √2 θ_d J1(√2 ℓ θ_d)      (∫_0^a J0(ℓθ) θ dθ = a J1(ℓa) / ℓ),

so T_CAP = (1/2π) ∫ ℓ dℓ W̃ B_ℓ R_ℓ T̃ = ∫ dℓ K(ℓ) B_ℓ R_ℓ T̃(ℓ). Because the beam is symmetric,
the beam can be moved onto the filter: T_CAP = 2π ∫ T(θ) W_b(θ) θ dθ with the beam-convolved
filter

    W_b(θ) = ∫_0^{ℓ_max} K(ℓ) B_ℓ R_ℓ J0(ℓθ) dℓ        (1 inside θ_d, −1 in the ring when B = R = 1),

one 1D Hankel integral per aperture, precomputed on fixed θ and ℓ grids
(:func:`beam_convolved_filter`). T_CAP is then a weighted sum of the unconvolved map on the
θ grid (:func:`cap_weights`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import j0, j1

from profemu.observables.beam import log_trapezoid_weights, trapezoid_weights

__all__ = [
    "beam_convolved_filter",
    "cap_filter",
    "cap_gaussian",
    "cap_harmonic_kernel",
    "cap_of_radial_map",
    "cap_weights",
]

_SQRT2 = np.sqrt(2.0)


def cap_filter(theta_rad: np.ndarray, apertures_rad: np.ndarray) -> np.ndarray:
    """Real-space CAP filter W [n_ap, n_theta]: 1 in the disk, −1 in the ring, 0 outside."""
    theta = np.asarray(theta_rad, dtype=float)[None, :]
    a = np.asarray(apertures_rad, dtype=float)[:, None]
    return np.where(theta < a, 1.0, np.where(theta < _SQRT2 * a, -1.0, 0.0))


def cap_harmonic_kernel(ell: np.ndarray, apertures_rad: np.ndarray) -> np.ndarray:
    """K(ℓ) = 2 θ_d J1(ℓθ_d) − √2 θ_d J1(√2 ℓθ_d) [rad], shape [n_ap, n_ell].

    T_CAP = ∫ dℓ K(ℓ) T̃_b(ℓ), T̃_b the 2D Fourier transform of the beam-convolved map.
    """
    a = np.asarray(apertures_rad, dtype=float)[:, None]
    x = np.asarray(ell, dtype=float)[None, :] * a
    return 2.0 * a * j1(x) - _SQRT2 * a * j1(_SQRT2 * x)


def beam_convolved_filter(theta_rad: np.ndarray, ell: np.ndarray, apertures_rad: np.ndarray,
                          window: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """W_b(θ) = ∫ dℓ K(ℓ) window(ℓ) J0(ℓθ), trapezoid on the ℓ grid; shape [n_ap, n_theta].

    Args:
        theta_rad: Angles [rad], shape [n_theta].
        ell: Multipoles from 0, fine enough to resolve J0(ℓθ_max) J1(√2 ℓθ_d) (Δℓ (θ_max + √2 θ_d)
            ≲ 0.1), up to where the window vanishes, shape [n_ell].
        apertures_rad: Disk radii θ_d [rad], shape [n_ap].
        window: B_ℓ R(ℓ) on ``ell``, shape [n_ell].
        chunk: θ values per J0 block (memory).
    """
    theta = np.asarray(theta_rad, dtype=float)
    kernel = cap_harmonic_kernel(ell, apertures_rad) * (np.asarray(window) * trapezoid_weights(ell))
    out = np.empty((kernel.shape[0], theta.size))
    for start in range(0, theta.size, chunk):
        block = theta[start:start + chunk]
        out[:, start:start + chunk] = kernel @ j0(np.outer(ell, block))
    return out


def cap_weights(theta_rad: np.ndarray, ell: np.ndarray, apertures_rad: np.ndarray,
                window: np.ndarray) -> np.ndarray:
    """C [n_ap, n_theta] [sr]: T_CAP(θ_d) = Σ_k C_dk T(θ_k) for the unconvolved radial map T.

    ``theta_rad`` [n_theta] is log-spaced, from well inside the smallest beam scale to where
    W_b has vanished (√2 θ_d,max plus several beam widths); T is taken constant inside θ_0.
    """
    wb = beam_convolved_filter(theta_rad, ell, apertures_rad, window)
    return 2.0 * np.pi * wb * log_trapezoid_weights(theta_rad)[None, :]


def _cumulative_moment(theta: np.ndarray, values: np.ndarray, x: float) -> float:
    """∫_0^x T(θ) θ dθ for T piecewise linear on the nodes (constant inside θ_0, zero beyond)."""
    if x <= theta[0]:
        return values[0] * x**2 / 2.0
    total = values[0] * theta[0] ** 2 / 2.0
    k = min(int(np.searchsorted(theta, x)) - 1, theta.size - 2)
    lo, hi = theta[:-1], theta[1:]
    slope = np.diff(values) / np.diff(theta)

    def seg(a: np.ndarray, b: np.ndarray, t0: np.ndarray, v0: np.ndarray, s: np.ndarray) -> np.ndarray:
        return v0 * (b**2 - a**2) / 2.0 + s * ((b**3 - a**3) / 3.0 - t0 * (b**2 - a**2) / 2.0)

    total += float(np.sum(seg(lo[:k], hi[:k], lo[:k], values[:k], slope[:k])))
    b = min(x, theta[-1])
    total += float(seg(lo[k], b, lo[k], values[k], slope[k]))
    return total


def cap_of_radial_map(theta_rad: np.ndarray, values: np.ndarray, apertures_rad: np.ndarray) -> np.ndarray:
    """T_CAP [map units × sr], shape [n_ap], of a radial map given on nodes (no beam).

    The map is piecewise linear between the nodes ``theta_rad`` [n] (constant inside the first,
    zero beyond the last) and the disk and ring integrals are exact for it. Numpy only.
    """
    theta = np.asarray(theta_rad, dtype=float)
    vals = np.asarray(values, dtype=float)
    out = []
    for a in np.asarray(apertures_rad, dtype=float):
        disk = _cumulative_moment(theta, vals, a)
        outer = _cumulative_moment(theta, vals, _SQRT2 * a)
        out.append(2.0 * np.pi * (2.0 * disk - outer))
    return np.asarray(out)


def cap_gaussian(apertures_rad: np.ndarray, sigma_rad: float, amplitude: float = 1.0) -> np.ndarray:
    """Analytic T_CAP [sr × amplitude units] of T(θ) = A exp(−θ² / 2σ²), shape [n_ap].

    ∫_{θ<a} T dΩ = 2π σ² A (1 − exp(−a² / 2σ²)); T_CAP = 2 D(θ_d) − D(√2 θ_d).
    """
    a = np.asarray(apertures_rad, dtype=float)

    def disk(r: np.ndarray) -> np.ndarray:
        return 2.0 * np.pi * sigma_rad**2 * amplitude * -np.expm1(-(r**2) / (2.0 * sigma_rad**2))

    return 2.0 * disk(a) - disk(_SQRT2 * a)
