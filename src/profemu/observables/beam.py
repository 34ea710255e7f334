"""Beam and band response in harmonic space, and the Hankel transforms of radial maps.

A radially symmetric flat-sky map T(θ) has the 2D Fourier transform

    T̃(ℓ) = 2π ∫_0^∞ T(θ) J0(ℓθ) θ dθ,    T(θ) = (1 / 2π) ∫_0^∞ T̃(ℓ) J0(ℓθ) ℓ dℓ,

and convolving it with a symmetric beam (and a band response) multiplies T̃ by
B_ℓ R(ℓ). Here both transforms are fixed quadratures written as matrices (precomputed
once with scipy's J0 on fixed grids), so any chain of them is a matrix product that JAX
can apply, differentiate and batch:

* θ → ℓ (:func:`hankel_forward_matrix`): trapezoid in ln θ on a log-spaced θ grid (map
  taken constant inside the first node), suited to cuspy profiles;
* ℓ → θ (:func:`hankel_inverse_matrix`): trapezoid in ℓ on a uniform ℓ grid from 0.

The forward model itself (:mod:`profemu.observables.cap`) never transforms the map: it
transforms the CAP filter instead (one 1D integral per aperture, see
:func:`profemu.observables.cap.beam_convolved_filter`), which is exact by symmetry of the
beam and free of the ringing a truncated map would cause. These matrices are the
general tool (beam-convolved maps, tests).

Angles are in radians, ℓ is the flat-sky multipole (wavenumber in rad⁻¹).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import j0

from profemu.errors import ConfigError
from profemu.observables._checks import as_1d

__all__ = [
    "BEAM_FLOOR",
    "BEAM_TOLERANCE",
    "RESPONSE_BEAM_LEVEL",
    "beam_ell_max",
    "beam_fwhm_arcmin",
    "ell_grid",
    "extend_beam_tail",
    "gaussian_beam",
    "hankel_forward_matrix",
    "hankel_inverse_matrix",
    "harmonic_window",
    "log_trapezoid_weights",
    "trapezoid_weights",
]

BEAM_TOLERANCE = 1e-3
"""A beam table must fall below this fraction of B_0 before it ends (else ConfigError)."""
BEAM_FLOOR = 1e-6
"""The ℓ grid stops where the beam has fallen below this fraction of B_0 (or at the table's end)."""
BEAM_NORM_TOLERANCE = 1e-2
"""|B_0 − 1| allowed for the first value of a beam table (it must be normalised)."""
RESPONSE_BEAM_LEVEL = 1e-2
"""A response table must reach the ℓ where the beam has fallen to this fraction of B_0."""
TAIL_FIT_DECADES = 1.0
"""A beam table ending above :data:`BEAM_TOLERANCE` is extended with a Gaussian fitted to the rows
of its last fall by this many decades of B (B_end <= B <= 10^this B_end)."""
TAIL_MAX_START = 0.5
"""A table is extended only when it has fallen below this fraction of B_0 (its half-power point)."""
TAIL_FIT_MAX_RESIDUAL = 0.05
"""Largest |ln B − Gaussian fit| over the fitted rows [in ln B] for the tail to count as a beam's."""
TAIL_MIN_ROWS = 3
"""Fewest table rows the tail fit takes."""

logger = logging.getLogger("profemu.observables")


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Trapezoid weights w so that ∫ g dx ≈ Σ w_i g(x_i) on the increasing nodes x [n]."""
    x = np.asarray(x, dtype=float)
    w = np.zeros_like(x)
    dx = np.diff(x)
    w[:-1] += dx / 2.0
    w[1:] += dx / 2.0
    return w


def log_trapezoid_weights(theta: np.ndarray) -> np.ndarray:
    """Weights c so that ∫_0^{θ_max} g(θ) θ dθ ≈ Σ c_k g(θ_k) on increasing θ > 0 [n].

    Trapezoid in ln θ of g θ², plus g(θ_0) θ_0² / 2 for the disk inside the first node.
    """
    theta = np.asarray(theta, dtype=float)
    c = trapezoid_weights(np.log(theta)) * theta**2
    c[0] += theta[0] ** 2 / 2.0
    return c


def ell_grid(ell_max: float, d_ell: float = 10.0) -> np.ndarray:
    """Uniform multipoles 0, Δℓ, ..., ≥ ℓ_max (shape [n_ell])."""
    n = int(np.ceil(ell_max / d_ell)) + 1
    return np.arange(n, dtype=float) * d_ell


def gaussian_beam(ell: Any, fwhm_arcmin: float) -> Any:
    """Flat-sky Gaussian beam B_ℓ = exp(-ℓ² σ² / 2), σ = FWHM / √(8 ln 2) [rad]; shape of ``ell``.

    Its real-space profile is exp(-θ² / 2σ²) / (2π σ²) (unit integral).
    """
    sigma = fwhm_arcmin * np.pi / (180.0 * 60.0) / np.sqrt(8.0 * np.log(2.0))
    return np.exp(-0.5 * (np.asarray(ell, dtype=float) * sigma) ** 2)


def hankel_forward_matrix(theta_rad: np.ndarray, ell: np.ndarray) -> np.ndarray:
    """H [n_ell, n_theta] with T̃(ℓ_a) ≈ Σ_k H_ak T(θ_k) = 2π ∫ T J0(ℓθ) θ dθ.

    ``theta_rad`` [n_theta] should be log-spaced and reach beyond where the map vanishes;
    resolve the oscillation of J0 (Δθ ℓ_max ≲ 1).
    """
    theta = np.asarray(theta_rad, dtype=float)
    return 2.0 * np.pi * j0(np.outer(ell, theta)) * log_trapezoid_weights(theta)[None, :]


def hankel_inverse_matrix(ell: np.ndarray, theta_rad: np.ndarray) -> np.ndarray:
    """G [n_theta, n_ell] with T(θ_k) ≈ Σ_a G_ka T̃(ℓ_a) = (1/2π) ∫ T̃ J0(ℓθ) ℓ dℓ (trapezoid in ℓ)."""
    ell = np.asarray(ell, dtype=float)
    return j0(np.outer(theta_rad, ell)) * (trapezoid_weights(ell) * ell / (2.0 * np.pi))[None, :]


def _check_table(name_x: str, x: Any, name_y: str, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xs = as_1d(name_x, x, error=ConfigError, increasing=True, min_size=2,
               fix="pass the table sorted by ℓ")
    ys = as_1d(name_y, y, error=ConfigError, min_size=2)
    if xs is None or ys is None:
        raise ConfigError(f"{name_x}, {name_y}: must be concrete arrays (not traced); "
                          "the harmonic window is precomputed with numpy.")
    if xs.shape != ys.shape:
        raise ConfigError(f"{name_y}: has {ys.size} values but {name_x} has {xs.size}; pass one "
                          "value per multipole.")
    if xs[0] < 0:
        raise ConfigError(f"{name_x}: first multipole {xs[0]:.6g} < 0; multipoles must be >= 0.")
    return xs, ys


def beam_ell_max(beam_ell: Any, beam_bl: Any, *, tolerance: float = BEAM_TOLERANCE,
                 floor: float = BEAM_FLOOR) -> float:
    """The ℓ up to which the harmonic integrals run for this beam table.

    Checks that the table starts at ℓ <= 1, has B_0 > 0 and falls below ``tolerance`` × B_0
    before it ends (ConfigError otherwise); returns the first ℓ where |B_ℓ| < ``floor`` × B_0,
    or the table's last ℓ.
    """
    ell, bl = _check_table("beam_ell", beam_ell, "beam_bl", beam_bl)
    if ell[0] > 1.0:
        raise ConfigError(f"beam_ell: the beam table starts at ℓ = {ell[0]:.6g}; it must start at "
                          "ℓ <= 1 (B_0 sets the normalisation): prepend ℓ = 0 with B_0.")
    b0 = bl[0]
    if not b0 > 0:
        raise ConfigError(f"beam_bl: B at ℓ = {ell[0]:.6g} is {b0:.6g}; a beam must be > 0 at ℓ = 0 "
                          "(usually normalised to B_0 = 1).")
    if abs(b0 - 1.0) > BEAM_NORM_TOLERANCE:
        raise ConfigError(f"beam_bl: B at ℓ = {ell[0]:.6g} is {b0:.6g}, but the beam must be normalised "
                          "(B_0 = 1: it multiplies the map's harmonic transform); divide the table by its "
                          "first value.")
    small = np.flatnonzero(np.abs(bl) < tolerance * b0)
    if small.size == 0:
        raise ConfigError(f"beam_ell: the beam table ends at ℓ = {ell[-1]:.6g} with B_ℓ / B_0 = "
                          f"{bl[-1] / b0:.3g} > {tolerance:g}; extend beam_ell/beam_bl to multipoles "
                          f"where the beam has fallen below {tolerance:g} B_0.")
    below = np.flatnonzero(np.abs(bl) < floor * b0)
    return float(ell[below[0]]) if below.size else float(ell[-1])


def extend_beam_tail(beam_ell: Any, beam_bl: Any, *, tolerance: float = BEAM_TOLERANCE,
                     floor: float = BEAM_FLOOR) -> tuple[np.ndarray, np.ndarray, str]:
    """The beam table, extended with a Gaussian tail when it ends before B_ℓ < ``tolerance`` B_0.

    A table that ends at (ℓ_e, B_e) with B_e >= ``tolerance`` (e.g. a 1′ beam tabulated to
    ℓ = 30000, B = 1.04e-3, or a 5′ beam to ℓ = 4000, B = 0.047) gets a Gaussian tail
    B(ℓ) = B_e exp(−σ² [ℓ(ℓ+1) − ℓ_e(ℓ_e+1)] / 2), continuous at ℓ_e, with σ from a least-squares
    line of ln B against ℓ(ℓ+1) over the rows of the table's last decade of B
    (B_e <= B <= 10 B_e, at least 3 rows). The tail is tabulated with the spacing of the table's
    last rows up to where it falls below ``floor`` B_0, and a log line gives where it starts and
    its FWHM = σ √(8 ln 2).

    Args:
        beam_ell, beam_bl: The beam table, ℓ from 0 and B_ℓ (B_0 = 1), shape [n_b] each.
        tolerance: B_ℓ / B_0 the table must reach, else it is extended.
        floor: B_ℓ / B_0 where the tail stops.

    Returns:
        ``(ell [n], bl [n], note)``: the table unchanged and ``""`` when it reaches
        ``tolerance``; else the extended table (n > n_b) and a one-line note of the tail.

    Raises:
        ConfigError: the table to extend has not fallen below half of B_0, is not strictly
            decreasing over its last decade, or its last decade is not Gaussian-like (fitted
            σ² <= 0, or a residual above 0.05 in ln B): such a table must be extended by hand.
    """
    ell, bl = _check_table("beam_ell", beam_ell, "beam_bl", beam_bl)
    b0 = bl[0]
    if not b0 > 0 or np.any(np.abs(bl) < tolerance * b0):
        return ell, bl, ""  # beam_ell_max reports a bad B_0; a table that reaches the tolerance is kept
    e_end, b_end = ell[-1], bl[-1] / b0
    ends = f"the beam table ends at ℓ = {e_end:.6g} with B_ℓ / B_0 = {b_end:.3g} > {tolerance:g}"
    fix = f"extend beam_ell/beam_bl to multipoles where the beam has fallen below {tolerance:g} B_0"
    if b_end > TAIL_MAX_START:
        raise ConfigError(f"beam_ell: {ends}; {fix} (a table that has fallen below half of B_0 gets a fitted "
                          "Gaussian tail; this one has not).")
    rows = np.flatnonzero(bl / b0 <= 10.0**TAIL_FIT_DECADES * b_end)
    first = min(int(rows[0]), ell.size - TAIL_MIN_ROWS)
    if first < 1:
        raise ConfigError(f"beam_ell: {ends} and has only {ell.size} rows, too few to fit a Gaussian tail; {fix}.")
    e_fit, b_fit = ell[first:], bl[first:] / b0
    rising = np.flatnonzero((np.diff(b_fit) >= 0) | (b_fit[1:] <= 0))
    if rising.size or b_fit[0] <= 0:
        i = first + (int(rising[0]) + 1 if rising.size else 1)
        raise ConfigError(f"beam_bl: {ends}, and it is not strictly decreasing and positive near its end "
                          f"(B = {bl[i - 1]:.4g} at ℓ = {ell[i - 1]:.6g}, then {bl[i]:.4g} at ℓ = {ell[i]:.6g}), so "
                          f"no Gaussian tail can be fitted; {fix}.")
    x = e_fit * (e_fit + 1.0)
    slope, intercept = np.polyfit(x, np.log(b_fit), 1)
    residual = float(np.max(np.abs(np.log(b_fit) - (slope * x + intercept))))
    if not slope < 0 or residual > TAIL_FIT_MAX_RESIDUAL:
        raise ConfigError(f"beam_bl: {ends}, and its last decade (ℓ = {e_fit[0]:.6g} to {e_end:.6g}) is not a "
                          f"Gaussian beam's tail (ln B against ℓ(ℓ+1): slope {slope:.3g}, largest residual "
                          f"{residual:.3g} > {TAIL_FIT_MAX_RESIDUAL:g}), so it cannot be extended; {fix}.")
    sigma2 = -2.0 * slope
    fwhm_arcmin = float(np.sqrt(sigma2 * 8.0 * np.log(2.0)) * 180.0 * 60.0 / np.pi)
    x_stop = e_end * (e_end + 1.0) + 2.0 * np.log(b_end / floor) / sigma2
    e_stop = 0.5 * (-1.0 + np.sqrt(1.0 + 4.0 * x_stop))  # where the tail reaches floor x B_0
    step = max(float(np.median(np.diff(e_fit))), (e_stop - e_end) / 200_000)  # at most 2e5 tail rows
    n_new = max(int(np.ceil((e_stop - e_end) / step)), 1)
    e_new = e_end + step * np.arange(1, n_new + 1)
    b_new = bl[-1] * np.exp(-0.5 * sigma2 * (e_new * (e_new + 1.0) - e_end * (e_end + 1.0)))
    note = (f"beam table ends at ℓ = {e_end:.6g} with B = {b_end:.3g}: extended from there with a Gaussian tail of "
            f"FWHM {fwhm_arcmin:.4g} arcmin (fitted to ℓ = {e_fit[0]:.6g} to {e_end:.6g}) up to ℓ = {e_new[-1]:.6g}")
    return np.concatenate([ell, e_new]), np.concatenate([bl, b_new]), note


def beam_fwhm_arcmin(beam_ell: Any, beam_bl: Any) -> float:
    """Full width at half maximum [arcmin] of the Gaussian beam with the table's half-power ℓ.

    The table's ℓ_½ (where B_ℓ first falls to B_0 / 2, linear between rows) gives
    FWHM = 4 ln 2 / ℓ_½ [rad] for B_ℓ = exp(−ℓ² σ² / 2) (:func:`gaussian_beam`); a measure
    of the beam's size for any table (e.g. how far the beam spreads a filter's edge).
    """
    ell, bl = _check_table("beam_ell", beam_ell, "beam_bl", beam_bl)
    half = np.flatnonzero(bl <= 0.5 * bl[0])
    if half.size == 0 or half[0] == 0:
        raise ConfigError(f"beam_bl: the beam table never falls to half of B_0 (ends at ℓ = {ell[-1]:.6g}); "
                          "extend it to the multipoles where the beam falls off.")
    i = half[0]
    t = (bl[i - 1] - 0.5 * bl[0]) / (bl[i - 1] - bl[i])
    ell_half = ell[i - 1] + t * (ell[i] - ell[i - 1])
    return float(4.0 * np.log(2.0) / ell_half * 180.0 * 60.0 / np.pi)


def harmonic_window(ell: np.ndarray, beam_ell: Any, beam_bl: Any, response_ell: Any = None,
                    response: Any = None, *, response_ell_min: float | None = None) -> np.ndarray:
    """B_ℓ R(ℓ) on the multipoles ``ell`` [n_ell]: both tables linearly interpolated.

    Beyond the beam table the window is 0; outside the response table R is held at its end
    values. Without a response, R = 1.

    Args:
        ell: Multipoles [n_ell], >= 0.
        beam_ell, beam_bl: Beam table (ℓ, B_ℓ), shape [n_b] each; must cover the multipoles
            the beam passes (see :func:`beam_ell_max`).
        response_ell, response: Optional response table (ℓ, R(ℓ)) [n_resp] (tSZ: K_CMB per unit
            y); it must reach the ℓ where the beam has fallen to 1e-2 B_0, and start at
            ℓ <= ``response_ell_min`` when given.
        response_ell_min: Largest allowed first multipole of the response table.

    Returns:
        The window, shape [n_ell].
    """
    ell_b, bl = _check_table("beam_ell", beam_ell, "beam_bl", beam_bl)
    beam_ell_max(ell_b, bl)
    window = np.interp(ell, ell_b, bl, right=0.0)
    if (response_ell is None) != (response is None):
        raise ConfigError("response_ell, response: pass both (the response table) or neither.")
    if response is not None:
        ell_r, resp = _check_table("response_ell", response_ell, "response", response)
        high = np.flatnonzero(np.abs(bl) < RESPONSE_BEAM_LEVEL * bl[0])
        ell_needed = float(ell_b[high[0]])
        if ell_r[-1] < ell_needed:
            raise ConfigError(f"response_ell: the response table ends at ℓ = {ell_r[-1]:.6g}, below "
                              f"ℓ = {ell_needed:.6g} where the beam is still {RESPONSE_BEAM_LEVEL:g} "
                              "B_0; extend the response table to higher ℓ.")
        if response_ell_min is not None and ell_r[0] > response_ell_min:
            raise ConfigError(f"response_ell: the response table starts at ℓ = {ell_r[0]:.6g}, above "
                              f"ℓ = {response_ell_min:.6g} = 1 / (outer ring radius of the largest "
                              "aperture); extend the response table to lower ℓ.")
        window = window * np.interp(ell, ell_r, resp)
    return window
