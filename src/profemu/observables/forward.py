"""The forward model: 3D gas profile → projected, beam-convolved CAP profile [μK arcmin²].

Everything after the 3D profile is linear in it. For a fixed kind, redshift, cosmology,
beam, response and aperture set, the CAP values are one matrix acting on the profile's
values on a fixed radial grid:

    CAP [n_ap] = A [n_ap, n_r] @ f(r_grid) [n_r],
    A = F(v_rms) · MPC_CM · C [n_ap, n_θ] @ W(D_A θ) [n_θ, n_r],

with W the exact line-of-sight projection matrix at R_k = D_A(z; Ω_m, h) θ_k
(:func:`profemu.observables.projection.projection_matrix`), C the CAP weights of the
beam- and response-convolved filter on a log θ grid (:class:`AngularFilter`, computed once
with scipy, independent of the cosmology) and F the kSZ or tSZ signal factor
(:mod:`profemu.observables.units`). When Ω_m or h are free, only W changes:
:meth:`ForwardModel.matrix_for` recomputes A with ``xp = jax.numpy`` (jit-able, differentiable).

The profile must be given on the model's grid (``radius_grid_mpc``, log-spaced from 1e-4 to
≥ √(l_max² + (D_A θ_max)²) Mpc, 512 points by default: 1e-4 to 20 Mpc for l_max = 10 Mpc),
taken piecewise linear in ln r between nodes. A tabulated profile (e.g. the 15 CAMELS radii) is first put on the grid by
:meth:`ForwardModel.profile_on_grid` (log-log interpolation with power-law continuations:
non-linear in the table, smooth, differentiable); :func:`cap_from_profile` does both.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.errors import ConfigError
from profemu.observables._checks import as_1d, check_positive_scalar, concrete, is_jax
from profemu.observables.beam import (
    beam_ell_max,
    beam_fwhm_arcmin,
    ell_grid,
    extend_beam_tail,
    harmonic_window,
)
from profemu.observables.cap import cap_weights
from profemu.observables.projection import (
    extend_profile,
    log_radial_grid,
    projection_matrix,
    two_halo_on_grid,
)
from profemu.observables.units import (
    ARCMIN_RAD,
    MUK_PER_K,
    RESPONSE_MAX_K,
    SR_TO_ARCMIN2,
    ksz_muk_per_g_cm2,
    response_scale_problem,
    tsz_response_nonrelativistic,
    tsz_y_per_erg_cm2,
)
from profemu.physics.constants import DEFAULT_H, MPC_CM
from profemu.physics.cosmology import angular_diameter_distance

__all__ = [
    "APERTURE_MAX_ARCMIN",
    "APERTURE_MIN_ARCMIN",
    "KINDS",
    "RESPONSE_MAX_K",
    "AngularFilter",
    "ForwardModel",
    "build_angular_filter",
    "cap_from_profile",
    "cap_matrix",
]

logger = logging.getLogger("profemu.observables")

KINDS = ("ksz", "tsz")
"""``"ksz"``: gas density ρ [g cm⁻³]; ``"tsz"``: thermal pressure P [erg cm⁻³]."""
THETA_MIN_ARCMIN = 1e-3
"""Innermost node of the θ grid [arcmin] (the map is taken constant inside it)."""
THETA_MARGIN_ARCMIN = 10.0
"""θ grid reaches √2 θ_d,max plus this margin [arcmin], or 3 beam FWHM when that is wider
(the filter's beam-smoothed edge)."""
APERTURE_MIN_ARCMIN = 0.01
"""Smallest accepted CAP disk radius [arcmin] (0.6″): smaller values are angles in radians or degrees."""
APERTURE_MAX_ARCMIN = 180.0
"""Largest accepted CAP disk radius [arcmin]: stacked halo profiles are measured out to tens of
arcmin, so a larger number is more likely arcsec; the filter is computed on the flat sky (a
disk's area off by θ²/12 of itself: 0.02% at this radius)."""
APERTURE_BEAM_FRACTION = 0.25
"""Apertures below this fraction of the beam FWHM are accepted with a warning (the beam washes them out)."""
N_THETA = 512
N_RADIUS = 512
R_MIN_MPC = 1e-4
R_MAX_MPC = 20.0
D_ELL = 10.0
D_A_BOUND_MPC = 3000.0
"""Angular-diameter distance the default radial grid is made for (any z for Ω_m >= 0.1, h >= 0.52)."""


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind: unknown value {kind!r}; valid choices are {list(KINDS)} "
                          "(ksz: gas density in g/cm^3, tsz: thermal pressure in erg/cm^3).")
    return str(kind)


@dataclass(frozen=True, eq=False)
class AngularFilter:
    """Cosmology-independent part of the forward model: beam, response and CAP filter on a θ grid.

    Attributes:
        kind: ``"ksz"`` or ``"tsz"``.
        apertures_arcmin: Disk radii θ_d [arcmin], shape [n_ap].
        theta_rad: Log-spaced angles [rad], shape [n_theta].
        weights: [n_ap, n_theta]; CAP [μK arcmin²] = weights @ map(θ), with the map in μK (kSZ)
            or in Compton y (tSZ: the response R(ℓ) [K/y] and 1e6 μK/K are inside).
        ell_max: Last multipole of the harmonic integral.
        response_note: How the tSZ response was applied (empty for kSZ).
        beam_note: How a beam table that ended early was extended (empty when it was not).
    """

    kind: str
    apertures_arcmin: np.ndarray
    theta_rad: np.ndarray
    weights: np.ndarray
    ell_max: float
    response_note: str
    beam_note: str = ""


def build_angular_filter(kind: str, apertures_arcmin: Any, beam_ell: Any, beam_bl: Any,
                         response_ell: Any = None, response: Any = None, *,
                         frequency_ghz: float | None = None, theta_min_arcmin: float = THETA_MIN_ARCMIN,
                         theta_max_arcmin: float | None = None, n_theta: int = N_THETA,
                         d_ell: float = D_ELL) -> AngularFilter:
    """Precompute the CAP weights of the beam- (and response-) convolved filter.

    Args:
        kind: ``"ksz"`` or ``"tsz"``.
        apertures_arcmin: Disk radii θ_d > 0 [arcmin], shape [n_ap].
        beam_ell, beam_bl: Beam table, ℓ from 0 and B_ℓ (B_0 = 1), shape [n_b] each.
        response_ell, response: tSZ band response table [K_CMB per unit y], shape [n_resp];
            must be None for kSZ.
        frequency_ghz: tSZ without a response table: the band's centre [GHz]; the response
            is then the non-relativistic f(ν) T_CMB there (-2.598 K per y at 150 GHz, -4.355
            at 90, +0.104 at 220: the sign flips at 217.5 GHz). tSZ needs exactly one of the
            response and the frequency; kSZ (thermodynamic μK) takes neither.
        theta_min_arcmin, theta_max_arcmin, n_theta: Log θ grid (default 1e-3′ to
            √2 θ_d,max plus 10′ or 3 beam FWHM, whichever is wider; 512 nodes).
        d_ell: Spacing of the uniform ℓ grid (from 0 to where the beam < 1e-6 B_0).

    Returns:
        The :class:`AngularFilter`.
    """
    kind = _check_kind(kind)
    ap = as_1d("apertures_arcmin", apertures_arcmin, error=ConfigError, positive=True,
               fix="disk radii in arcmin, e.g. [1, 1.625, ..., 6]")
    if ap is None:
        raise ConfigError("apertures_arcmin: must be concrete (not traced).")
    _check_aperture_unit(ap)
    ring_max = np.sqrt(2.0) * ap.max()
    beam_ell, beam_bl, beam_note = extend_beam_tail(beam_ell, beam_bl)
    if beam_note:
        logger.info("%s", beam_note)
    beam_ell_top = beam_ell_max(beam_ell, beam_bl)  # checks the beam table first
    fwhm = beam_fwhm_arcmin(beam_ell, beam_bl)
    _warn_small_apertures(ap, fwhm)
    margin = max(THETA_MARGIN_ARCMIN, 3.0 * fwhm)
    theta_max = ring_max + margin if theta_max_arcmin is None else theta_max_arcmin
    if not theta_min_arcmin < ap.min() or not theta_max >= ring_max:
        raise ConfigError(f"theta grid: need theta_min_arcmin ({theta_min_arcmin:g}) < smallest aperture "
                          f"({ap.min():g}) and theta_max_arcmin ({theta_max:g}) >= sqrt(2) x largest "
                          f"aperture ({ring_max:g}); widen the grid.")
    theta = np.geomspace(theta_min_arcmin, theta_max, int(n_theta)) * ARCMIN_RAD
    if kind == "ksz":
        if response is not None or response_ell is not None or frequency_ghz is not None:
            raise ConfigError("response, frequency_ghz: the band applies to kind='tsz' only (kSZ in "
                              "thermodynamic muK has the CMB spectrum at every frequency); drop them for kSZ.")
        scale, note = 1.0, ""
    elif (response is None) != (response_ell is None):
        raise ConfigError("response_ell, response: pass both (the response table) or neither.")
    elif response is None:
        if frequency_ghz is None:
            raise ConfigError("frequency_ghz: tSZ needs its band: give the band response table (response_ell, "
                              "response) or the band centre frequency_ghz (e.g. 150 for ACT f150; the tSZ "
                              "signal changes size and, above 217.5 GHz, sign with frequency).")
        nu = check_positive_scalar("frequency_ghz", frequency_ghz, upper=1000.0,
                                   fix="the band centre in GHz, e.g. 90, 150 or 220")
        scale = tsz_response_nonrelativistic(nu) * MUK_PER_K
        note = f"non-relativistic f(nu) T_CMB at {nu:g} GHz ({scale / MUK_PER_K:.4g} K per y; no band response table)"
    elif frequency_ghz is not None:
        raise ConfigError("frequency_ghz, response: give one of them (the response table already holds the band); "
                          "drop frequency_ghz.")
    else:
        resp = as_1d("response", response, error=ConfigError, min_size=2,
                     fix="the tSZ band response R(ell) in K_CMB per unit y, one value per multipole")
        if resp is None:
            raise ConfigError("response: must be a concrete array (not traced).")
        peak = float(np.max(np.abs(resp)))
        problem = response_scale_problem(peak)
        if problem:
            raise ConfigError(f"response: max |R| = {peak:.4g} is {problem}.")
        scale, note = MUK_PER_K, "band response table R(ell) applied in harmonic space"
    ell = ell_grid(beam_ell_top, d_ell)
    window = harmonic_window(ell, beam_ell, beam_bl, response_ell, response,
                             response_ell_min=1.0 / (ring_max * ARCMIN_RAD))
    weights = cap_weights(theta, ell, ap * ARCMIN_RAD, window) * (scale * SR_TO_ARCMIN2)
    return AngularFilter(kind=kind, apertures_arcmin=ap, theta_rad=theta, weights=weights,
                         ell_max=float(ell[-1]), response_note=note, beam_note=beam_note)


def _check_aperture_unit(apertures_arcmin: np.ndarray) -> None:
    """Refuse disk radii below :data:`APERTURE_MIN_ARCMIN` (angles in radians or degrees) or above
    :data:`APERTURE_MAX_ARCMIN` (arcsec, or beyond the flat sky of the filter)."""
    large = float(apertures_arcmin.max())
    if large > APERTURE_MAX_ARCMIN:
        raise ConfigError(
            f"apertures_arcmin: largest disk radius {large:.4g} arcmin is above {APERTURE_MAX_ARCMIN:g} arcmin "
            f"({APERTURE_MAX_ARCMIN / 60:g} deg), far beyond a halo's profile (arcsec given as arcmin? "
            f"{large:.4g} arcsec = {large / 60:.4g} arcmin); give the disk radii in arcmin, e.g. 1,1.625,...,6.")
    small = float(apertures_arcmin.min())
    if small < APERTURE_MIN_ARCMIN:
        raise ConfigError(
            f"apertures_arcmin: smallest disk radius {small:.4g} is below {APERTURE_MIN_ARCMIN:g} arcmin and looks "
            f"like radians ({small:.4g} rad = {small / ARCMIN_RAD:.4g} arcmin) or degrees ({small:.4g} deg = "
            f"{small * 60.0:.4g} arcmin); give the disk radii in arcmin, e.g. 1,1.625,...,6.")


def _warn_small_apertures(apertures_arcmin: np.ndarray, fwhm_arcmin: float) -> None:
    """One warning when disk radii lie below :data:`APERTURE_BEAM_FRACTION` of the beam's FWHM."""
    small = apertures_arcmin[apertures_arcmin < APERTURE_BEAM_FRACTION * fwhm_arcmin]
    if small.size:
        logger.warning("CAP disk radius(es) %s arcmin below a quarter of the beam FWHM (%.3g arcmin): the beam "
                       "washes them out (check the apertures are in arcmin, not degrees)",
                       ", ".join(f"{a:g}" for a in small), fwhm_arcmin)


_FILTER_CACHE: dict[str, AngularFilter] = {}
_MATRIX_CACHE: dict[tuple[Any, ...], np.ndarray] = {}
_CACHE_SIZE = 16


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _cached_angular_filter(kind: str, apertures_arcmin: Any, beam_ell: Any, beam_bl: Any,
                           response_ell: Any, response: Any,
                           frequency_ghz: float | None) -> tuple[str, AngularFilter]:
    """(content hash, filter): the angular part of :func:`cap_from_profile`, built once per input."""
    digest = hashlib.sha1(repr((kind, frequency_ghz)).encode())
    for item in (apertures_arcmin, beam_ell, beam_bl, response_ell, response):
        arr = None if item is None else concrete(item)
        digest.update(b"none" if arr is None else arr.tobytes() + repr(arr.shape).encode())
    key = digest.hexdigest()
    if key not in _FILTER_CACHE:
        _remember(_FILTER_CACHE, key, build_angular_filter(kind, apertures_arcmin, beam_ell, beam_bl,
                                                           response_ell, response, frequency_ghz=frequency_ghz))
    return key, _FILTER_CACHE[key]


def _signal_factor(kind: str, v_rms_kms: Any) -> Any:
    """μK per (g cm⁻²) for kSZ, y per (erg cm⁻²) for tSZ, times cm per Mpc (Σ is in [f] Mpc)."""
    return MPC_CM * (ksz_muk_per_g_cm2(v_rms_kms) if kind == "ksz" else tsz_y_per_erg_cm2())


H_RANGE = (0.2, 1.5)
"""Accepted h = H0 / (100 km/s/Mpc) (a value of H0 itself is refused)."""
Z_MAX = 20.0
"""Largest accepted redshift of the haloes."""
V_RMS_MAX_KMS = 3000.0
"""Largest accepted rms line-of-sight velocity [km/s] (a value in m/s is refused)."""


def _check_cosmology(redshift: Any, omega_m: Any, h: Any, v_rms_kms: Any, l_max_mpc: Any) -> None:
    check_positive_scalar("redshift", redshift, upper=Z_MAX, fix="the redshift of the stacked haloes, e.g. 0.55")
    check_positive_scalar("omega_m", omega_m, upper=1.0, fix="flat LCDM needs 0 < omega_m <= 1")
    hh = check_positive_scalar("h", h, fix="h = H0 / (100 km/s/Mpc), e.g. 0.6711")
    if hh is not None and not H_RANGE[0] <= hh <= H_RANGE[1]:
        raise ConfigError(f"h: got {hh!r}, expected h = H0 / (100 km/s/Mpc) in [{H_RANGE[0]:g}, {H_RANGE[1]:g}]"
                          + (f"; {hh!r} looks like H0 itself: pass h = {hh / 100:g}." if hh > 10 else "."))
    check_positive_scalar("v_rms_kms", v_rms_kms, upper=V_RMS_MAX_KMS,
                          fix="the rms line-of-sight velocity of the sample in km/s (not m/s), e.g. 313")
    check_positive_scalar("l_max_mpc", l_max_mpc, fix="the line-of-sight half-length, e.g. 10 Mpc")


def default_radius_grid(angular: AngularFilter, l_max_mpc: float, d_a_mpc: float | None = None,
                        n: int = N_RADIUS) -> np.ndarray:
    """Log grid of ``n`` radii from 1e-4 Mpc to max(20 Mpc, 1.05 √(l_max² + (D θ_max)²)),
    D = max(``d_a_mpc``, 3000 Mpc): it does not depend on the cosmology (so derivatives in Ω_m, h
    see one grid) and covers every line of sight for D_A <= 3000 Mpc (any z for Ω_m >= 0.1 and
    h >= 0.52; 20 Mpc for l_max = 10 Mpc and θ_d <= 6′); larger for a concrete larger D_A."""
    d = max(D_A_BOUND_MPC, d_a_mpc or 0.0)
    needed = float(np.hypot(l_max_mpc, d * angular.theta_rad[-1]))
    return log_radial_grid(R_MIN_MPC, max(R_MAX_MPC, 1.05 * needed), n)


def _matrix(angular: AngularFilter, grid: np.ndarray, redshift: Any, omega_m: Any, h: Any,
            v_rms_kms: Any, l_max_mpc: Any, xp: Any) -> Any:
    d_a = angular_diameter_distance(redshift, omega_m, h, xp)
    radii = d_a * xp.asarray(angular.theta_rad)
    c_r, c_l = concrete(radii), concrete(l_max_mpc)
    if c_r is not None and c_l is not None:
        needed = float(np.hypot(c_l, c_r[-1]))
        if grid[-1] < needed * (1.0 - 1e-12):
            raise ConfigError(f"radius_grid_mpc: ends at {grid[-1]:.6g} Mpc but the longest line of "
                              f"sight reaches sqrt(l_max^2 + (D_A theta_max)^2) = {needed:.6g} Mpc; "
                              "extend the grid (or leave radius_grid_mpc=None).")
    w = projection_matrix(grid, radii, l_max_mpc, xp)
    return (xp.asarray(angular.weights) * _signal_factor(angular.kind, v_rms_kms)) @ w


@dataclass(frozen=True, eq=False)
class ForwardModel:
    """CAP = ``matrix`` @ profile-on-grid, for a fixed kind, redshift, cosmology, beam, response
    and aperture set.

    Build with :meth:`build`. Apply with ``model(profile_on_grid)`` (numpy or JAX, batched over
    leading axes, jit/grad/vmap-safe); rebuild the matrix for another cosmology with
    :meth:`matrix_for` (``xp=jax.numpy`` to differentiate in Ω_m, h).

    Attributes:
        angular: The cosmology-independent :class:`AngularFilter`.
        radius_grid_mpc: Radii of the profile's nodes [Mpc, physical], shape [n_r].
        redshift, omega_m, h, v_rms_kms, l_max_mpc: The settings of ``matrix``.
        matrix: A [n_ap, n_r], μK arcmin² per unit profile (g cm⁻³ for kSZ, erg cm⁻³ for tSZ).
    """

    angular: AngularFilter
    radius_grid_mpc: np.ndarray
    redshift: float
    omega_m: float
    h: float
    v_rms_kms: float
    l_max_mpc: float
    matrix: np.ndarray

    @property
    def kind(self) -> str:
        return self.angular.kind

    @property
    def apertures_arcmin(self) -> np.ndarray:
        return self.angular.apertures_arcmin

    @classmethod
    def build(cls, *, kind: str, redshift: float, apertures_arcmin: Any, beam_ell: Any, beam_bl: Any,
              response_ell: Any = None, response: Any = None, omega_m: float = 0.3, h: float = DEFAULT_H,
              v_rms_kms: float = 313.0, l_max_mpc: float = 10.0, radius_grid_mpc: Any = None,
              n_theta: int = N_THETA, theta_max_arcmin: float | None = None,
              d_ell: float = D_ELL, frequency_ghz: float | None = None) -> ForwardModel:
        """Precompute the matrix (numpy, float64). Arguments as in :func:`cap_from_profile`;
        ``radius_grid_mpc`` [n_r] defaults to :func:`default_radius_grid`."""
        kind = _check_kind(kind)
        _check_cosmology(redshift, omega_m, h, v_rms_kms, l_max_mpc)
        angular = build_angular_filter(kind, apertures_arcmin, beam_ell, beam_bl, response_ell,
                                       response, frequency_ghz=frequency_ghz, n_theta=n_theta,
                                       theta_max_arcmin=theta_max_arcmin, d_ell=d_ell)
        if radius_grid_mpc is None:
            d_a = float(angular_diameter_distance(redshift, omega_m, h))
            grid = default_radius_grid(angular, l_max_mpc, d_a)
        else:
            grid = as_1d("radius_grid_mpc", radius_grid_mpc, error=ConfigError, positive=True,
                         increasing=True, min_size=2, fix="use log_radial_grid()")
            if grid is None:
                raise ConfigError("radius_grid_mpc: must be concrete (not traced).")
        matrix = _matrix(angular, grid, redshift, omega_m, h, v_rms_kms, l_max_mpc, np)
        return cls(angular=angular, radius_grid_mpc=grid, redshift=float(redshift),
                   omega_m=float(omega_m), h=float(h), v_rms_kms=float(v_rms_kms),
                   l_max_mpc=float(l_max_mpc), matrix=matrix)

    def matrix_for(self, omega_m: Any, h: Any, *, redshift: Any = None, v_rms_kms: Any = None,
                   xp: Any = np) -> Any:
        """A [n_ap, n_r] for another cosmology (and optionally redshift, v_rms); with
        ``xp=jax.numpy`` the arguments may be traced (jit, grad). Beyond the grid the profile is
        taken as zero (checked only for concrete arguments)."""
        z = self.redshift if redshift is None else redshift
        v = self.v_rms_kms if v_rms_kms is None else v_rms_kms
        _check_cosmology(z, omega_m, h, v, self.l_max_mpc)
        return _matrix(self.angular, self.radius_grid_mpc, z, omega_m, h, v, self.l_max_mpc, xp)

    def __call__(self, profile_on_grid: Any, matrix: Any = None) -> Any:
        """CAP [..., n_ap] μK arcmin² of profiles on the grid [..., n_r] (``matrix`` overrides A)."""
        a = self.matrix if matrix is None else matrix
        if is_jax(profile_on_grid, a):
            import jax.numpy as jnp

            return jnp.asarray(profile_on_grid) @ jnp.asarray(a).T
        return np.asarray(profile_on_grid, dtype=float) @ np.asarray(a).T

    def profile_on_grid(self, radius_mpc: Any, profile: Any, *, continuation: str = "powerlaw",
                        truncation_radius_mpc: float | None = None,
                        two_halo_radius_mpc: Any = None, two_halo_values: Any = None,
                        two_halo_amplitude: Any = 1.0) -> Any:
        """A tabulated profile [..., n] on the model's grid [..., n_r] (see
        :func:`profemu.observables.projection.extend_profile`), plus ``two_halo_amplitude`` ×
        the two-halo table (radii in physical Mpc) when given. JAX in → JAX out."""
        xp = _xp(profile, two_halo_amplitude)
        f = extend_profile(radius_mpc, profile, self.radius_grid_mpc, continuation=continuation,
                           truncation_radius_mpc=truncation_radius_mpc, xp=xp)
        if (two_halo_radius_mpc is None) != (two_halo_values is None):
            raise ConfigError("two_halo_radius_mpc, two_halo_values: pass both or neither.")
        if two_halo_values is not None:
            f = f + two_halo_amplitude * two_halo_on_grid(two_halo_radius_mpc, two_halo_values,
                                                          self.radius_grid_mpc, xp)
        return f

    def cap_from_table(self, radius_mpc: Any, profile: Any, **kwargs: Any) -> Any:
        """CAP [..., n_ap] μK arcmin² of a tabulated profile; ``kwargs`` of :meth:`profile_on_grid`."""
        return self(self.profile_on_grid(radius_mpc, profile, **kwargs))


def _xp(*values: Any) -> Any:
    if is_jax(*values):
        import jax.numpy as jnp

        return jnp
    return np


def cap_matrix(*, kind: str, redshift: float, apertures_arcmin: Any, beam_ell: Any, beam_bl: Any,
               response_ell: Any = None, response: Any = None, omega_m: float = 0.3, h: float = DEFAULT_H,
               v_rms_kms: float = 313.0, l_max_mpc: float = 10.0,
               radius_grid_mpc: Any = None, frequency_ghz: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The CAP matrix and its radial grid: ``(A [n_ap, n_r], radius_grid_mpc [n_r])``.

    CAP [μK arcmin²] = A @ f(radius_grid_mpc), f the 3D profile on the grid (g cm⁻³ for kSZ,
    erg cm⁻³ for tSZ), piecewise linear in ln r between nodes. See :class:`ForwardModel`.
    """
    model = ForwardModel.build(kind=kind, redshift=redshift, apertures_arcmin=apertures_arcmin,
                               beam_ell=beam_ell, beam_bl=beam_bl, response_ell=response_ell,
                               response=response, omega_m=omega_m, h=h, v_rms_kms=v_rms_kms,
                               l_max_mpc=l_max_mpc, radius_grid_mpc=radius_grid_mpc,
                               frequency_ghz=frequency_ghz)
    return model.matrix, model.radius_grid_mpc


def cap_from_profile(radius_mpc: Any, profile: Any, *, kind: str, redshift: Any, apertures_arcmin: Any,
                     beam_ell: Any, beam_bl: Any, response_ell: Any = None, response: Any = None,
                     omega_m: Any = 0.3, h: Any = DEFAULT_H, v_rms_kms: Any = 313.0,
                     l_max_mpc: float = 10.0, frequency_ghz: float | None = None) -> Any:
    """CAP profile [μK arcmin²] of one tabulated 3D gas profile.

    Projection Σ(R) = 2 ∫_0^{l_max} f(√(l² + R²)) dl at R = D_A(z) θ (flat ΛCDM, Ω_m, h);
    kSZ: ΔT = T_CMB (v_rms / c) σ_T (1 + X_H) / (2 m_p) Σ_ρ; tSZ: y = σ_T / (m_e c²)
    (2 + 2X_H) / (3 + 5X_H) Σ_P and ΔT = R(ℓ) y in harmonic space; beam B_ℓ; CAP filter (disk θ_d
    minus ring θ_d..√2 θ_d). The table is put on a 512-point log grid (1e-4 to ≥ 20 Mpc) by
    log-log interpolation, with the power law of its last two points beyond it and of its first
    two points inside it. Divide by :data:`~profemu.observables.units.SR_TO_ARCMIN2` for μK sr.

    Pure numpy for numpy inputs (float64); JAX arrays (``profile``, ``omega_m``, ``h``,
    ``redshift``, ``v_rms_kms``) give a JAX result that jit, grad and vmap go through. The
    angular part (beam, response, apertures: concrete arrays) is computed once and cached.

    Args:
        radius_mpc: Table radii [Mpc, physical], > 0, strictly increasing, shape [n].
        profile: Gas density ρ [g cm⁻³] (kind="ksz") or thermal pressure P [erg cm⁻³]
            (kind="tsz"), > 0, shape [..., n].
        kind: ``"ksz"`` or ``"tsz"``.
        redshift: Redshift of the haloes (> 0).
        apertures_arcmin: CAP disk radii θ_d [arcmin], > 0, shape [n_ap].
        beam_ell, beam_bl: Beam table ℓ (from 0) and B_ℓ, shape [n_b]; must fall below 1e-3 B_0.
        response_ell, response: tSZ band response table ℓ, R(ℓ) [K_CMB per unit y] (tSZ only).
        frequency_ghz: tSZ without a response table: the band centre [GHz], for the
            non-relativistic f(ν) T_CMB (-2.598 K per y at 150 GHz). tSZ needs exactly one of
            the two.
        omega_m, h: Flat ΛCDM parameters for D_A (h default 0.6711, CAMELS).
        v_rms_kms: rms line-of-sight velocity [km/s] (kSZ only; 313 for CMASS).
        l_max_mpc: Half-length of the line-of-sight integral [Mpc] (concrete).

    Returns:
        CAP values [μK arcmin²], shape [..., n_ap].
    """
    kind = _check_kind(kind)
    _check_cosmology(redshift, omega_m, h, v_rms_kms, l_max_mpc)
    if concrete(l_max_mpc) is None:
        raise ConfigError("l_max_mpc: must be a concrete number (it sets the radial grid).")
    key, angular = _cached_angular_filter(kind, apertures_arcmin, beam_ell, beam_bl, response_ell,
                                          response, frequency_ghz)
    z0, om0, h0 = (concrete(x) for x in (redshift, omega_m, h))
    d_a = (float(angular_diameter_distance(float(z0), float(om0), float(h0)))
           if z0 is not None and om0 is not None and h0 is not None else None)
    grid = default_radius_grid(angular, float(l_max_mpc), d_a)  # the same for any D_A <= 3000 Mpc
    xp = _xp(profile, redshift, omega_m, h, v_rms_kms)
    f = extend_profile(radius_mpc, profile, grid, xp=xp)
    if all(concrete(x) is not None for x in (redshift, omega_m, h, v_rms_kms)):
        # fixed cosmology: one cached (read-only) numpy matrix, whatever the profile's type
        z, om, hh, v = (float(np.asarray(x)) for x in (redshift, omega_m, h, v_rms_kms))
        mkey = (key, float(l_max_mpc), z, om, hh, v)
        if mkey not in _MATRIX_CACHE:
            matrix = _matrix(angular, grid, z, om, hh, v, float(l_max_mpc), np)
            matrix.setflags(write=False)
            _remember(_MATRIX_CACHE, mkey, matrix)
        a = xp.asarray(_MATRIX_CACHE[mkey])
    else:  # free cosmology: the matrix is rebuilt in JAX (differentiable in Ω_m, h, z, v_rms)
        a = _matrix(angular, grid, redshift, omega_m, h, v_rms_kms, l_max_mpc, xp)
    return f @ a.T
