"""A mock universe of halo gas profiles with a known truth.

:func:`make_mock_universe` builds a :class:`~profemu.data.dataset.ProfileDataset`
shaped like the CAMELS tables (parameters sampled per *simulation* on a Latin
hypercube, several halo-mass bins per simulation, ``groups`` = simulation id)
together with the noiseless profiles it was drawn from, so an emulator can be
scored against the truth instead of against noise.

Physical model (all radii physical, flat ΛCDM, masses M200c in Msun, no h):

* Critical density ``rho_crit(z) = 2.77536627e11 h^2 E(z)^2`` [Msun Mpc^-3] with
  ``E(z)^2 = Omega_m (1+z)^3 + 1 - Omega_m``; ``R200c = (3 M200c / (4 pi 200
  rho_crit(z)))^(1/3)`` [Mpc]. Profiles live on a fixed grid ``x = r / R200c``.
* Thermal pressure: the generalised NFW fit of Battaglia et al. 2012 (ApJ 758,
  75; Table 1, "AGN feedback", Δ = 200)::

      P / P200c = P0 (x/xc)^gamma [1 + (x/xc)^alpha]^(-beta),  gamma = -0.3, alpha = 1
      A(M, z)   = A0 (M200c / 1e14 Msun)^alpha_m (1+z)^alpha_z
      P0:   A0 = 18.1,   alpha_m = 0.154,    alpha_z = -0.758
      xc:   A0 = 0.497,  alpha_m = -0.00865, alpha_z = 0.731
      beta: A0 = 4.35,   alpha_m = 0.0393,   alpha_z = 0.415

  with ``P200c = G M200c 200 rho_crit(z) f_b / (2 R200c)`` (``f_b = Omega_b /
  Omega_m``; self-similar, ∝ M^(2/3) E(z)^(8/3)), in keV cm^-3. Feedback
  rescales ``P0`` by ``q^0.8`` and ``xc`` by ``q^-0.5``, where ``q`` is the gas
  fraction relative to the fiducial model (below): stronger feedback lowers the
  inner pressure and widens the core, most at low mass. At fiducial parameters
  (every feedback factor = 1, ``sigma_8 = 0.8``) the pressure is Battaglia's fit.
* Gas density (baryon-correction-model style, Schneider & Teyssier 2015, JCAP
  12, 049): the gas fraction inside R200c is ``f_gas = f_b / (1 + (M_c /
  M200c)^beta_bcm)`` with ``log10 M_c`` and ``beta_bcm`` rising with the feedback
  strengths (fiducial ``log10 M_c = 13.2``, ``beta_bcm = 0.6``; ``log10 M_c`` moves by
  ``MockParameter.log10_mc`` per dex of each parameter, ``beta_bcm`` by 0.1 per dex of
  ``A_SN1`` and of ``A_SN2``). The halo gas follows ``rho_h ∝ (x/x_s)^-g (1 + x/x_s)^-(3-g)``,
  normalised so that the gas mass inside R200c (halo term plus background) is
  ``f_gas M200c``, on top of the mean cosmic baryon density ``Omega_b
  rho_crit0 (1+z)^3`` that it tends to far out; in Msun kpc^-3. Monotonically
  decreasing.
* Temperature ``T = P mu m_p / (rho k_B)`` with ``mu = 0.59``, in K: it rises
  in the core (the gas density is steeper than the pressure there) and falls
  outside, so it is not monotonic.
* Matter power suppression ``P_hydro/P_dmo(k) = 1 - A S(k) [1 - B R(k)]`` with
  sigmoids ``S = 1/(1 + (k_s/k)^2)``, ``R = 1/(1 + (k_r/k)^2)``, on 79 bins
  log-spaced in [0.01, 20] h/Mpc. The amplitude ``A`` grows with the gas
  fraction expelled from 10^13.5 Msun groups (the same ``M_c`` that lowers
  ``f_gas``), ``k_s`` falls as gas is pushed further out, and the ``B`` term is
  a partial recovery at high k; ``P_hydro/P_dmo -> 1`` at low k. Noiseless.
* Noise: every profile element is multiplied by ``10^(noise_dex N(0, 1))``
  (log-normal); ``dataset.noise[field] = noise_dex``; ``truth`` is noiseless.

Parameters: ``"sb35"`` has 35 named parameters like the CAMELS SB sets
(cosmology, the four CAMELS feedback amplitudes, and 26 further IllustrisTNG-like
physics parameters, a few with weak effects and most with none); ``"lh6"`` has
the six CAMELS LH parameters (Omega_b, h, n_s fixed to the CAMELS values) and no
P(k). Which parameters act is listed in :data:`MOCK_PARAMETERS`.

**Hard regime** (:func:`make_hard_mock`): a suite like the CAMELS SB35 single-halo
(zoom-in) sets that a neural emulator finds hardest. The 35 parameters take the names,
ranges and log flags of the CAMELS SB35 "Info" table when its path is given
(:func:`read_camels_parameter_table`; e.g. ``../shared/data/camels_sb35/``), else of
:data:`MOCK_PARAMETERS`; parameters are found by role through
:data:`PARAMETER_ALIASES` (``Omega0``/``Omega_m``, ``OmegaBaryon``/``Omega_b``,
``HubbleParam``/``h``, ...). Only Omega_m, sigma_8, three feedback parameters (with
interactions) and two weak ones act, plus Omega_b and h through the self-similar physics
(:data:`HARD_ROLES`); the other 26 are inert. One halo per row (log10 M200c in 11.5-14),
profiles on *physical* radii (0.01-2 Mpc, 30 bins), log-normal halo-to-halo scatter of
0.2-0.4 dex that grows towards the core and the outskirts, partly shared across radii
and between rho and pth (:func:`hard_mock_scatter`), recorded in ``dataset.noise``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import qmc

from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, FormatError
from profemu.physics.constants import K_B_KEV, M_P_G, MU
from profemu.physics.cosmology import rho_crit
from profemu.physics.halo import (
    MSUN_MPC3_TO_G_CM3,
    MSUN_MPC3_TO_MSUN_KPC3,
    battaglia_parameters,
    gas_fraction,
    gnfw_mass_integral,
    gnfw_pressure,
    mean_baryon_density,
    p200c,
    r200c,
)

__all__ = [
    "HARD_ROLES",
    "MOCK_PARAMETERS",
    "PARAMETER_ALIASES",
    "PARAM_SETS",
    "SB35_INFO_FILENAME",
    "MockParameter",
    "MockUniverse",
    "battaglia_parameters",
    "gas_fraction",
    "gnfw_pressure",
    "hard_mock_scatter",
    "hard_mock_truth",
    "make_hard_mock",
    "make_mock_universe",
    "mean_baryon_density",
    "mock_pk_ratio",
    "mock_truth",
    "p200c",
    "r200c",
    "read_camels_parameter_table",
    "rho_crit",
    "write_mock",
]

# Baryon-correction-model gas fraction and gas shape, fiducial values
_LOG10_MC0 = 13.2  # log10 M_c [Msun] at fiducial feedback
_BETA_BCM0 = 0.6
_X_S0 = 0.15  # gas scale radius / R200c
_GAMMA_G0 = 0.9  # inner log-slope of the gas density at fiducial feedback
# P(k) suppression
_LOG10_M_PK = 13.5  # group mass whose expelled gas sets the amplitude [Msun]
_PK_AMPLITUDE = 0.5
_K_S0 = 1.5  # h/Mpc
_K_R = 12.0  # h/Mpc
_PK_RECOVERY = 0.6

DEFAULT_K = np.geomspace(0.01, 20.0, 79)
"""Default P(k) grid: 79 bins log-spaced in [0.01, 20] h/Mpc."""


@dataclass(frozen=True)
class MockParameter:
    """One parameter of the mock universe.

    Attributes:
        name: Parameter name (CAMELS-like).
        lo: Lower bound of the prior box.
        hi: Upper bound of the prior box.
        is_log: Sampled uniformly in log10 (declared in ``log_params``).
        fiducial: Value at which its effect vanishes (the fiducial model).
        log10_mc: d log10 M_c / d log10(value / fiducial) (log params) or per unit
            of (value - fiducial) / (hi - lo) (linear params); 0 for no effect.
        role: ``"cosmology"``, ``"feedback"``, ``"weak"`` (small effect through
            M_c) or ``"nuisance"`` (no effect at all).
    """

    name: str
    lo: float
    hi: float
    is_log: bool
    fiducial: float
    log10_mc: float = 0.0
    role: str = "nuisance"


def _p(name: str, lo: float, hi: float, is_log: bool, fid: float, mc: float = 0.0,
       role: str = "nuisance") -> MockParameter:
    return MockParameter(name, lo, hi, is_log, fid, mc, role)


MOCK_PARAMETERS: tuple[MockParameter, ...] = (
    # cosmology (act through rho_crit, R200c, P200c, f_b and halo concentration)
    _p("Omega_m", 0.1, 0.5, False, 0.3, role="cosmology"),
    _p("sigma_8", 0.6, 1.0, False, 0.8, role="cosmology"),
    # CAMELS feedback amplitudes (TNG: WindEnergyIn1e51erg, RadioFeedbackFactor,
    # VariableWindVelFactor, RadioFeedbackReiorientationFactor)
    _p("A_SN1", 0.25, 4.0, True, 1.0, 0.25, "feedback"),  # SN wind energy per unit SFR
    _p("A_AGN1", 0.25, 4.0, True, 1.0, 0.45, "feedback"),  # AGN kinetic energy
    _p("A_SN2", 0.5, 2.0, True, 1.0, 0.35, "feedback"),  # SN wind speed
    _p("A_AGN2", 0.5, 2.0, True, 1.0, 0.30, "feedback"),  # AGN burstiness / ejection speed
    _p("Omega_b", 0.029, 0.069, False, 0.049, role="cosmology"),
    _p("h", 0.47, 0.87, False, 0.6711, role="cosmology"),
    _p("n_s", 0.8, 1.2, False, 0.9624, role="cosmology"),
    # further galaxy-formation parameters; a few act weakly through M_c
    _p("MaxSfrTimescale", 1.135, 4.54, True, 2.27, -0.02, "weak"),
    _p("FactorForSofterEQS", 0.1, 0.9, True, 0.3),
    _p("IMFslope", -2.8, -1.8, False, -2.3),
    _p("SNII_MinMass_Msun", 4.0, 12.0, False, 8.0),
    _p("ThermalWindFraction", 0.025, 0.4, True, 0.1),
    _p("VariableWindSpecMomentum", 0.0, 4000.0, False, 0.0),
    _p("WindFreeTravelDensFac", 0.005, 0.5, True, 0.05),
    _p("MinWindVel", 150.0, 550.0, False, 350.0),
    _p("WindEnergyReductionFactor", 0.0625, 1.0, True, 0.25, 0.03, "weak"),
    _p("WindEnergyReductionMetallicity", 0.0005, 0.008, True, 0.002),
    _p("WindEnergyReductionExponent", 1.0, 4.0, False, 2.0),
    _p("WindDumpFactor", 0.2, 1.0, False, 0.6),
    _p("SeedBlackHoleMass", 2.0e5, 3.2e6, True, 8.0e5),  # Msun/h
    _p("BlackHoleAccretionFactor", 0.25, 4.0, True, 1.0),
    _p("BlackHoleEddingtonFactor", 0.1, 10.0, True, 1.0),
    _p("BlackHoleFeedbackFactor", 0.025, 0.4, True, 0.1, 0.03, "weak"),
    _p("BlackHoleRadiativeEfficiency", 0.05, 0.8, True, 0.2),
    _p("QuasarThreshold", 2.0e-5, 0.2, True, 0.002, 0.01, "weak"),
    _p("QuasarThresholdPower", 0.0, 4.0, False, 2.0),
    _p("SNIaNormalisation", 0.5, 2.0, True, 1.0),
    _p("StellarMassLossFactor", 0.5, 2.0, True, 1.0),
    _p("UVBackgroundFactor", 0.5, 2.0, True, 1.0),
    _p("ReionizationRedshift", 6.0, 10.0, False, 7.5),
    _p("MetalCoolingFactor", 0.5, 2.0, True, 1.0),
    _p("SelfShieldingFactor", 0.5, 2.0, True, 1.0),
    _p("BlackHoleSeedHaloMass", 2.5e10, 2.0e11, True, 7.0e10),  # Msun/h
)
"""Every mock parameter with its prior box, fiducial value and effect."""

_BY_NAME: dict[str, MockParameter] = {p.name: p for p in MOCK_PARAMETERS}
PARAM_SETS: dict[str, tuple[str, ...]] = {
    "sb35": tuple(p.name for p in MOCK_PARAMETERS),
    "lh6": ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2"),
}
"""Parameter names (in column order) of each parameter set."""

FIELD_UNITS: dict[str, str] = {"rho": "Msun kpc^-3", "pth": "keV cm^-3", "temp": "K"}


def _theta_arrays(theta: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Every parameter of :data:`MOCK_PARAMETERS` as an array (fiducial where absent)."""
    unknown = [k for k in theta if k not in _BY_NAME]
    if unknown:
        raise ConfigError(
            f"theta: unknown mock parameter(s) {unknown}; valid names are {list(_BY_NAME)}."
        )
    out = {}
    for p in MOCK_PARAMETERS:
        val = np.asarray(theta.get(p.name, p.fiducial), dtype=float)
        if p.is_log and (val <= 0).any():
            raise ConfigError(f"theta[{p.name!r}]: must be > 0 (log-distributed parameter).")
        out[p.name] = val
    return out


def _feedback_state(th: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """log10 M_c [Msun] and beta_bcm from the named parameters (fiducial: 13.2, 0.6)."""
    log10_mc = np.asarray(_LOG10_MC0, dtype=float)
    for p in MOCK_PARAMETERS:
        if p.log10_mc == 0.0:
            continue
        if p.is_log:
            log10_mc = log10_mc + p.log10_mc * np.log10(th[p.name] / p.fiducial)
        else:
            log10_mc = log10_mc + p.log10_mc * (th[p.name] - p.fiducial) / (p.hi - p.lo)
    # supernova-driven winds steepen the mass dependence (act mostly on low masses)
    beta_bcm = _BETA_BCM0 + 0.1 * np.log10(th["A_SN1"]) + 0.1 * np.log10(th["A_SN2"])
    return log10_mc, beta_bcm


def mock_truth(theta: Mapping[str, ArrayLike], log10_mass: ArrayLike, *, x: ArrayLike,
               redshift: float = 0.0) -> dict[str, np.ndarray]:
    """Noiseless mock profiles of halos.

    Args:
        theta: Parameter name -> value, scalar or [n]; any name of
            :data:`MOCK_PARAMETERS` that is absent takes its fiducial value.
        log10_mass: log10(M200c / Msun), scalar or [n].
        x: Radii in units of R200c, [n_r].
        redshift: Redshift z >= 0.

    Returns:
        ``{"rho": gas density [Msun kpc^-3], "pth": thermal pressure [keV cm^-3],
        "temp": temperature [K]}``, each [n, n_r] (n = 1 for scalar inputs).

    Raises:
        ConfigError: on an unknown parameter name or a non-positive log parameter.
    """
    th = _theta_arrays(theta)
    log10_m = np.atleast_1d(np.asarray(log10_mass, dtype=float))
    n = np.broadcast_shapes(log10_m.shape, *(v.shape for v in th.values()))
    col = {k: np.broadcast_to(v, n)[:, None] for k, v in th.items()}
    m = 10.0 ** np.broadcast_to(log10_m, n)[:, None]
    xr = np.asarray(x, dtype=float)[None, :]
    z = float(redshift)
    om, h = col["Omega_m"], col["h"]

    log10_mc, beta_bcm = _feedback_state(col)
    s8 = col["sigma_8"] / 0.8
    return _halo_gas(m, xr, z, om, col["Omega_b"], h, log10_mc, beta_bcm,
                     xc_scale=s8**-0.2, x_s_scales=(s8**-0.3, (col["n_s"] / 0.9624) ** -0.2))


def _halo_gas(m: np.ndarray, xr: np.ndarray, z: float, om: np.ndarray, ob: np.ndarray,
              h: np.ndarray, log10_mc: np.ndarray, beta_bcm: np.ndarray, *,
              xc_scale: ArrayLike = 1.0, x_s_scales: tuple[ArrayLike, ...] = (),
              beta_scale: ArrayLike = 1.0, igm_temperature: float = 0.0) -> dict[str, np.ndarray]:
    """Gas density, pressure and temperature of halos of mass ``m`` [Msun] at ``xr`` = r/R200c.

    The physics shared by every regime: the baryon-correction gas fraction sets
    ``q = f_gas / f_gas(fiducial)``; the pressure is Battaglia's gNFW with ``P0 q^0.8``,
    ``xc q^-0.5 xc_scale`` and ``beta beta_scale``, plus ``rho_bg k_B T_igm / (mu m_p)``
    (zero by default); the density is the gNFW gas halo (scale ``0.15 q^-0.5`` times each of ``x_s_scales``,
    inner slope from ``q``) normalised to ``f_gas M200c`` inside R200c, plus the mean
    baryon density. Arrays broadcast as [n, 1] (per halo) against [.., n_r] (``xr``).
    """
    f_gas = gas_fraction(m, log10_mc, beta_bcm, ob, om)
    f_gas_fid = gas_fraction(m, _LOG10_MC0, _BETA_BCM0, ob, om)
    q = f_gas / f_gas_fid  # < 1 when feedback is stronger than fiducial

    # pressure: Battaglia et al. 2012 modulated by the gas content q (and the regime's scales)
    p0, xc, beta = battaglia_parameters(m, z)
    pressure = p200c(m, z, h, om, ob) * gnfw_pressure(xr, p0 * q**0.8, xc * q**-0.5 * xc_scale,
                                                      beta * beta_scale)

    # gas density: halo gNFW term normalised to f_gas M200c inside R200c, plus background
    x_s = _X_S0 * q**-0.5
    for factor in x_s_scales:  # one multiplication each: the same rounding in every regime
        x_s = x_s * factor
    g = np.clip(0.3 + (_GAMMA_G0 - 0.3) * q**0.7, 0.05, 1.5)
    radius_200 = r200c(m, z, h, om) * 1e3  # kpc
    rho_bg = mean_baryon_density(z, h, ob)
    m_bg = 4.0 / 3.0 * np.pi * radius_200**3 * rho_bg
    m_halo = np.maximum(f_gas * m - m_bg, 1e-3 * f_gas * m)
    norm = m_halo / (4.0 * np.pi * radius_200**3 * gnfw_mass_integral(np.ones(1), x_s, g))
    y = xr / x_s
    rho = norm * y**-g * (1.0 + y) ** (g - 3.0) + rho_bg

    rho_g_cm3 = rho / MSUN_MPC3_TO_MSUN_KPC3 * MSUN_MPC3_TO_G_CM3
    if igm_temperature > 0:  # photo-heated intergalactic gas: the pressure never falls below it
        rho_bg_g_cm3 = rho_bg / MSUN_MPC3_TO_MSUN_KPC3 * MSUN_MPC3_TO_G_CM3
        pressure = pressure + rho_bg_g_cm3 * K_B_KEV * igm_temperature / (MU * M_P_G)
    temp = pressure * MU * M_P_G / (rho_g_cm3 * K_B_KEV)
    return {"rho": rho, "pth": pressure, "temp": temp}


def mock_pk_ratio(theta: Mapping[str, ArrayLike], k: ArrayLike | None = None) -> np.ndarray:
    """Noiseless matter power suppression P_hydro(k) / P_dmo(k).

    ``1 - A S(k) [1 - B R(k)]`` with ``S = 1/(1 + (k_s/k)^2)``, ``R = 1/(1 + (k_r/k)^2)``,
    ``A = 0.5 e (f_b/0.16)^0.3`` where ``e = 1 - f_gas(10^13.5 Msun)/f_b`` is the
    gas fraction expelled from groups, ``k_s = 1.5 (M_c/M_c,fid)^(-1/3) A_AGN2^-0.2``
    h/Mpc, ``k_r = 12`` h/Mpc, ``B = 0.6``.

    Args:
        theta: Parameter name -> value, scalar or [n] (fiducial where absent).
        k: Wavenumbers [h/Mpc], [n_k]; default :data:`DEFAULT_K` (79 bins, 0.01–20).

    Returns:
        [n, n_k] ratio, ~1 at k << 1 h/Mpc, suppressed at k ~ 1–10 h/Mpc.
    """
    th = _theta_arrays(theta)
    n = np.broadcast_shapes((1,), *(v.shape for v in th.values()))
    col = {name: np.broadcast_to(v, n)[:, None] for name, v in th.items()}
    kk = (DEFAULT_K if k is None else np.asarray(k, dtype=float))[None, :]
    log10_mc, beta_bcm = _feedback_state(col)
    f_b = col["Omega_b"] / col["Omega_m"]
    expelled = 1.0 - gas_fraction(10.0**_LOG10_M_PK, log10_mc, beta_bcm, col["Omega_b"], col["Omega_m"]) / f_b
    amplitude = _PK_AMPLITUDE * expelled * (f_b / 0.16) ** 0.3
    k_s = _K_S0 * 10.0 ** (-(log10_mc - _LOG10_MC0) / 3.0) * col["A_AGN2"] ** -0.2
    rise = 1.0 / (1.0 + (k_s / kk) ** 2)
    recovery = 1.0 / (1.0 + (_K_R / kk) ** 2)
    return 1.0 - amplitude * rise * (1.0 - _PK_RECOVERY * recovery)


# ------------------------------------------------------------------ universe
@dataclass(frozen=True)
class MockUniverse:
    """A mock data set and the truth it was drawn from.

    Attributes:
        dataset: Noisy profiles as a :class:`ProfileDataset` (``groups`` = simulation id).
        truth: Field -> noiseless profiles [n, n_r], same units as ``dataset``.
        param_ranges: Parameter name -> ``(lo, hi, is_log)`` of the sampling box.
    """

    dataset: ProfileDataset
    truth: Mapping[str, np.ndarray]
    param_ranges: Mapping[str, tuple[float, float, bool]] = field(default_factory=dict)


def _check_args(n: int, noise_dex: float, n_r: int, param_set: str, redshift: float,
                n_mass_per_sim: int, log10_mass_range: tuple[float, float],
                radius_range: tuple[float, float], *, per_sim_name: str = "n_mass_per_sim",
                radius_unit: str = "R200c") -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"n: {n!r} is not a positive integer; pass the number of rows, e.g. n=4000.")
    if not np.isfinite(noise_dex) or noise_dex < 0:
        raise ConfigError(f"noise_dex: {noise_dex!r} must be finite and >= 0 (dex), e.g. 0.02.")
    if isinstance(n_r, bool) or not isinstance(n_r, int | np.integer) or n_r < 2:
        raise ConfigError(f"n_r: {n_r!r} must be an integer >= 2 (number of radial bins).")
    if param_set not in PARAM_SETS:
        raise ConfigError(f"param_set: {param_set!r} is unknown; choose one of {list(PARAM_SETS)}.")
    if not np.isfinite(redshift) or redshift < 0:
        raise ConfigError(f"redshift: {redshift!r} must be finite and >= 0.")
    if isinstance(n_mass_per_sim, bool) or not isinstance(n_mass_per_sim, int | np.integer) or n_mass_per_sim < 1:
        raise ConfigError(f"{per_sim_name}: {n_mass_per_sim!r} must be a positive integer.")
    lo, hi = log10_mass_range
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi <= 20):
        raise ConfigError(
            f"log10_mass_range: {log10_mass_range!r} must be (lo, hi) with 0 < lo < hi <= 20, "
            "in log10(M200c/Msun), e.g. (11, 15)."
        )
    rlo, rhi = radius_range
    if not (np.isfinite(rlo) and np.isfinite(rhi) and 0 < rlo < rhi):
        raise ConfigError(
            f"radius_range: {radius_range!r} must be (lo, hi) with 0 < lo < hi, in {radius_unit}."
        )


def _universe(specs: tuple[MockParameter, ...] | list[MockParameter], truth: dict[str, np.ndarray],
              **dataset_fields: Any) -> MockUniverse:
    """The :class:`MockUniverse` of a regime: dataset (names, log flags and units of ``specs``),
    read-only truth and the prior box."""
    dataset = ProfileDataset(param_names=tuple(p.name for p in specs), units=dict(FIELD_UNITS),
                             log_params=tuple(p.name for p in specs if p.is_log), **dataset_fields)
    for arr in truth.values():
        arr.setflags(write=False)
    ranges = {p.name: (float(p.lo), float(p.hi), bool(p.is_log)) for p in specs}
    return MockUniverse(dataset=dataset, truth=truth, param_ranges=ranges)


def _design(specs: tuple[MockParameter, ...] | list[MockParameter], n: int, n_mass_per_sim: int,
            log10_mass_range: tuple[float, float], ss_lhs: np.random.SeedSequence,
            ss_mass: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulation parameters on a Latin hypercube and the halo masses of each simulation.

    Returns:
        ``(sim_params [n_sims, p], sim_id [n], log10_mass [n])``: one row per halo; the
        ``n_mass_per_sim`` halos of a simulation fall one in each equal slice of
        ``log10_mass_range`` (uniform inside it); the last simulation is cut short when
        ``n`` is not a multiple of ``n_mass_per_sim``.
    """
    n_sims = -(-n // n_mass_per_sim)
    unit = qmc.LatinHypercube(d=len(specs), rng=np.random.default_rng(ss_lhs)).random(n_sims)
    lo = np.array([p.lo for p in specs])
    hi = np.array([p.hi for p in specs])
    is_log = np.array([p.is_log for p in specs])
    log_lo = np.log(np.where(is_log, lo, 1.0))  # log params have 0 < lo < hi
    log_hi = np.log(np.where(is_log, hi, 1.0))
    sim_params = np.where(is_log, np.exp(log_lo + unit * (log_hi - log_lo)), lo + unit * (hi - lo))

    sim_id = np.repeat(np.arange(n_sims), n_mass_per_sim)[:n]
    slot = np.tile(np.arange(n_mass_per_sim), n_sims)[:n]
    m_lo, m_hi = log10_mass_range
    width = (m_hi - m_lo) / n_mass_per_sim
    log10_mass = m_lo + (slot + np.random.default_rng(ss_mass).random(n)) * width
    return sim_params, sim_id, log10_mass


def make_mock_universe(
    n: int = 4000,
    *,
    seed: int = 0,
    noise_dex: float = 0.02,
    n_r: int = 24,
    with_pk: bool = True,
    param_set: str = "sb35",
    redshift: float = 0.0,
    n_mass_per_sim: int = 4,
    log10_mass_range: tuple[float, float] = (11.0, 15.0),
    radius_range: tuple[float, float] = (0.02, 4.0),
) -> MockUniverse:
    """Draw a CAMELS-like mock data set with a known noiseless truth.

    Parameters are drawn per simulation on a scrambled Latin hypercube (uniform in
    log10 for ``log_params``); each simulation holds ``n_mass_per_sim`` halo-mass
    rows, one drawn uniformly in each of ``n_mass_per_sim`` equal slices of
    ``log10_mass_range``, so rows of one simulation share their parameters (use
    ``groups`` for splits). Rows are ordered by simulation; the last simulation is
    cut short when ``n`` is not a multiple of ``n_mass_per_sim``.

    Args:
        n: Number of rows (halo-mass bins).
        seed: Seed of every random draw (same seed, same arrays).
        noise_dex: Standard deviation of the log-normal noise [dex] per element.
        n_r: Number of radii, log-spaced over ``radius_range`` [R200c].
        with_pk: Include ``pk_ratio`` on 79 k bins (``"sb35"`` only; ``"lh6"``
            mimics the CAMELS LH profile table, which has no P(k)).
        param_set: ``"sb35"`` (35 parameters) or ``"lh6"`` (6 CAMELS LH parameters).
        redshift: Redshift of every row.
        n_mass_per_sim: Halo-mass rows per simulation.
        log10_mass_range: Range of log10(M200c / Msun).
        radius_range: Smallest and largest radius [R200c].

    Returns:
        The :class:`MockUniverse` (fields ``rho`` [Msun kpc^-3], ``pth`` [keV cm^-3],
        ``temp`` [K]; radius unit ``"R200c"``).

    Raises:
        ConfigError: on an invalid argument (the message names it).
    """
    _check_args(n, noise_dex, n_r, param_set, redshift, n_mass_per_sim, log10_mass_range,
                radius_range)
    n = int(n)
    names = PARAM_SETS[param_set]
    specs = [_BY_NAME[nm] for nm in names]
    ss_lhs, ss_mass, ss_noise = np.random.SeedSequence(seed).spawn(3)

    sim_params, sim_id, log10_mass = _design(specs, n, n_mass_per_sim, log10_mass_range,
                                             ss_lhs, ss_mass)
    params = sim_params[sim_id]
    x = np.geomspace(radius_range[0], radius_range[1], n_r)
    theta = {nm: params[:, j] for j, nm in enumerate(names)}
    truth = mock_truth(theta, log10_mass, x=x, redshift=redshift)

    noise_rng = np.random.default_rng(ss_noise)
    profiles = {f: v * 10.0 ** (noise_dex * noise_rng.standard_normal(v.shape)) for f, v in truth.items()}
    include_pk = with_pk and param_set == "sb35"
    pk_ratio = mock_pk_ratio(theta) if include_pk else None

    meta: dict[str, Any] = {
        "source": "profemu.data.mock",
        "param_set": param_set,
        "seed": int(seed),
        "noise_dex": float(noise_dex),
        "redshift": float(redshift),
        "mass_definition": "M200c [Msun]",
        "n_mass_per_sim": int(n_mass_per_sim),
        "model": "pressure: Battaglia et al. 2012 (AGN, 200c) gNFW; gas: baryon-correction "
                 "gas fraction with gNFW shape plus mean baryon density; T = P mu m_p/(rho k_B)",
    }
    return _universe(
        specs,
        truth,
        params=params,
        log10_mass=log10_mass,
        radius=x,
        profiles=profiles,
        radius_unit="R200c",
        pk_ratio=pk_ratio,
        k=DEFAULT_K.copy() if include_pk else None,
        redshift=np.full(n, float(redshift)),
        groups=sim_id.astype(np.int64),
        noise={f: np.full((n, n_r), float(noise_dex)) for f in truth},
        meta=meta,
    )


# ------------------------------------------------------------------ hard regime
PARAMETER_ALIASES: dict[str, tuple[str, ...]] = {
    "omega_m": ("Omega0", "Omega_m", "OmegaMatter"),
    "sigma_8": ("sigma8", "sigma_8"),
    "omega_b": ("OmegaBaryon", "Omega_b"),
    "h": ("HubbleParam", "h"),
    "sn_energy": ("WindEnergyIn1e51erg", "A_SN1"),
    "agn_kinetic": ("RadioFeedbackFactor", "A_AGN1"),
    "sn_speed": ("VariableWindVelFactor", "A_SN2"),
    "agn_quasar": ("BlackHoleFeedbackFactor",),
    "agn_burst": ("RadioFeedbackReorientationFactor", "RadioFeedbackReiorientationFactor", "A_AGN2"),
}
"""Physical role -> the parameter names it goes by (CAMELS SB tables first, then the
built-in names), as :func:`hard_mock_truth` looks them up."""

HARD_ROLES: dict[str, str] = {
    "omega_m": "cosmology: rho_crit(z), R200c, f_b = Omega_b/Omega_m",
    "sigma_8": "cosmology: gas and pressure concentration (mass dependent)",
    "omega_b": "cosmology: f_b = Omega_b/Omega_m and the background density (self-similar only)",
    "h": "cosmology: rho_crit(z) = 2.775e11 h^2 E(z)^2 and R200c (self-similar only)",
    "sn_energy": "feedback: log10 M_c +0.30 per unit u, steeper mass dependence, "
                 "interacts with AGN and wind speed",
    "agn_kinetic": "feedback: log10 M_c +0.50 per unit u (interacts with SN energy), "
                   "steeper outer pressure",
    "sn_speed": "feedback: log10 M_c +0.20 per unit u, steeper mass dependence",
    "agn_quasar": "weak: log10 M_c +0.02 per unit u",
    "agn_burst": "weak: gas scale radius x (1 + 0.015 u)",
}
"""What each role of the hard mock does (``u`` = the parameter's offset from its fiducial
value in units of half its prior range, in log10 for log parameters: -1 .. 1). Every
parameter without a role is inert: it changes nothing."""

SB35_INFO_FILENAME = "Info_IllustrisTNG_L50n512_35params.csv"
"""Name of the CAMELS SB35 (IllustrisTNG) parameter table that :func:`make_hard_mock` reads."""

_INFO_COLUMNS = ("ParamName", "LogFlag", "FiducialVal", "MinVal", "MaxVal")
_HARD_FID = {"omega_m": 0.3, "sigma_8": 0.8, "omega_b": 0.049, "h": 0.6711}
_IGM_TEMPERATURE = 1.0e4  # K, floor of the pressure outside halos
# scatter of single halos about the median profile [dex]: (at x0, far from x0) per field
_HARD_SCATTER = {"rho": (0.20, 0.35), "pth": (0.22, 0.40)}
_SCATTER_X0 = 0.3  # r / R200c where the scatter is smallest
_SCATTER_WIDTH = 1.3  # dex in r / R200c over which it rises to its outer value
_AMPLITUDE_SHARE, _TILT_SHARE = 0.4, 0.3  # variance shares; the rest is per-radius
_AMPLITUDE_CORRELATION = 0.6  # between the rho and pth amplitudes of one halo

logger = logging.getLogger(__name__)


def read_camels_parameter_table(path: str | Path) -> tuple[MockParameter, ...]:
    """Read a CAMELS parameter "Info" table (e.g. ``Info_IllustrisTNG_L50n512_35params.csv``).

    The CSV has a header line naming at least ``ParamName``, ``LogFlag`` (1 = sampled
    uniformly in log), ``FiducialVal``, ``MinVal`` and ``MaxVal``, then one parameter per
    line (further columns such as ``Description`` are ignored; the description may
    contain commas).

    Args:
        path: The CSV file, or a folder holding exactly one ``Info_*.csv``.

    Returns:
        One :class:`MockParameter` per line, in file order (``role`` from
        :data:`PARAMETER_ALIASES` / :data:`HARD_ROLES`: ``"cosmology"``, ``"feedback"``,
        ``"weak"`` or ``"nuisance"``; ``log10_mc`` 0).

    Raises:
        FormatError: missing file or column, a non-numeric value, ``MinVal >= MaxVal``, a log
            parameter with ``MinVal <= 0``, or a duplicate name (the message names the line).
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("Info_*.csv"))
        if len(found) != 1:
            raise FormatError(f"parameter_table: {path} holds {len(found)} Info_*.csv files; "
                              "pass the path of the one to use.")
        path = found[0]
    if not path.is_file():
        raise FormatError(f"parameter_table: {path} not found; pass the CAMELS Info_*.csv file.")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise FormatError(f"parameter_table: {path} is empty.")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in _INFO_COLUMNS if c not in header]
    if missing:
        raise FormatError(f"parameter_table: {path.name} lacks column(s) {missing}; found {header}.")
    col = {c: header.index(c) for c in _INFO_COLUMNS}
    role_of = {name: role for role, names in PARAMETER_ALIASES.items() for name in names}
    out: list[MockParameter] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(col.values()):
            raise FormatError(f"parameter_table: {path.name} line {line_no} has {len(row)} fields; "
                              f"expected at least {max(col.values()) + 1}.")
        name = row[col["ParamName"]].strip()
        try:
            flag, fid, lo, hi = (float(row[col[c]]) for c in _INFO_COLUMNS[1:])
        except ValueError:
            raise FormatError(f"parameter_table: {path.name} line {line_no} ({name}): LogFlag, "
                              "FiducialVal, MinVal and MaxVal must be numbers.") from None
        is_log = flag == 1
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi) or (is_log and lo <= 0):
            raise FormatError(f"parameter_table: {path.name} line {line_no} ({name}): range "
                              f"[{lo}, {hi}] is not valid" + (" for a log parameter" if is_log else "")
                              + "; need MinVal < MaxVal (and MinVal > 0 when LogFlag = 1).")
        if any(p.name == name for p in out) or not name:
            raise FormatError(f"parameter_table: {path.name} line {line_no}: empty or duplicate "
                              f"name {name!r}.")
        role = role_of.get(name)
        kind = "nuisance" if role is None else HARD_ROLES[role].split(":")[0]
        out.append(MockParameter(name, lo, hi, is_log, fid, 0.0, kind))
    if not out:
        raise FormatError(f"parameter_table: {path.name} lists no parameter.")
    return tuple(out)


def _role_offsets(theta: Mapping[str, ArrayLike], specs: tuple[MockParameter, ...]
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(cosmological values, feedback offsets ``u``) by role; fiducial where absent."""
    by_name = {p.name: p for p in specs}
    unknown = [k for k in theta if k not in by_name]
    if unknown:
        raise ConfigError(f"theta: unknown parameter(s) {unknown}; valid names are {list(by_name)}.")
    cosmo: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    for role, names in PARAMETER_ALIASES.items():
        spec = next((by_name[nm] for nm in names if nm in by_name), None)
        value = None if spec is None else np.asarray(theta.get(spec.name, spec.fiducial), dtype=float)
        if spec is not None and spec.is_log and (value <= 0).any():
            raise ConfigError(f"theta[{spec.name!r}]: must be > 0 (log-distributed parameter).")
        if role in _HARD_FID:
            cosmo[role] = np.asarray(_HARD_FID[role] if value is None else value, dtype=float)
        elif value is None:
            offsets[role] = np.zeros(())
        elif spec is not None and spec.is_log:
            offsets[role] = np.log(value / spec.fiducial) / (0.5 * np.log(spec.hi / spec.lo))
        elif spec is not None:
            offsets[role] = (value - spec.fiducial) / (0.5 * (spec.hi - spec.lo))
    return cosmo, offsets


def hard_mock_truth(theta: Mapping[str, ArrayLike], log10_mass: ArrayLike, *, radius: ArrayLike,
                    redshift: float = 0.0, parameters: tuple[MockParameter, ...] | None = None
                    ) -> dict[str, np.ndarray]:
    """Noiseless median profiles of single halos in the hard regime, at physical radii.

    The physics of :func:`mock_truth` (Battaglia pressure, baryon-correction gas) with
    only the roles of :data:`HARD_ROLES` acting: ``log10 M_c = 13.2 + 0.5 u_agn + 0.3 u_sn
    + 0.2 u_wind + 0.25 u_agn u_sn - 0.15 u_sn u_wind + 0.02 u_quasar``, ``beta_bcm = 0.6 +
    0.15 u_sn + 0.1 u_wind - 0.05 u_agn``; ``sigma_8`` scales the pressure core by
    ``s^-0.3`` and the gas scale radius by ``s^-0.4 (M/1e13)^0.05`` (``s = sigma_8/0.8``);
    AGN steepens the outer pressure (``beta (1 + 0.04 u_agn)``); the pressure never falls
    below that of 10^4 K gas at the mean baryon density. Omega_m, Omega_b and h enter only
    through rho_crit(z), R200c, f_b and the background.

    Args:
        theta: Parameter name -> value (linear), scalar or [n]; names of ``parameters``;
            absent ones take their fiducial value.
        log10_mass: log10(M200c / Msun), scalar or [n].
        radius: Physical radii [Mpc], [n_r].
        redshift: Redshift z >= 0.
        parameters: The parameter list (default :data:`MOCK_PARAMETERS`).

    Returns:
        ``{"rho": [Msun kpc^-3], "pth": [keV cm^-3], "temp": [K]}``, each [n, n_r].

    Raises:
        ConfigError: an unknown parameter name or a non-positive log parameter.
    """
    specs = MOCK_PARAMETERS if parameters is None else tuple(parameters)
    cosmo, u = _role_offsets(theta, specs)
    log10_m = np.atleast_1d(np.asarray(log10_mass, dtype=float))
    n = np.broadcast_shapes(log10_m.shape, *(v.shape for v in (*cosmo.values(), *u.values())))
    c = {k: np.broadcast_to(v, n)[:, None] for k, v in cosmo.items()}
    f = {k: np.broadcast_to(v, n)[:, None] for k, v in u.items()}
    m = 10.0 ** np.broadcast_to(log10_m, n)[:, None]
    z = float(redshift)
    om, ob, h = c["omega_m"], c["omega_b"], c["h"]
    sn, agn, wind = f["sn_energy"], f["agn_kinetic"], f["sn_speed"]
    log10_mc = (_LOG10_MC0 + 0.5 * agn + 0.3 * sn + 0.2 * wind + 0.25 * agn * sn
                - 0.15 * sn * wind + 0.02 * f["agn_quasar"])
    beta_bcm = np.clip(_BETA_BCM0 + 0.15 * sn + 0.1 * wind - 0.05 * agn, 0.2, 1.5)
    s8 = c["sigma_8"] / 0.8
    xr = np.asarray(radius, dtype=float)[None, :] / r200c(m, z, h, om)
    return _halo_gas(m, xr, z, om, ob, h, log10_mc, beta_bcm, xc_scale=s8**-0.3,
                     x_s_scales=(s8**-0.4 * (m / 1e13) ** 0.05, 1.0 + 0.015 * f["agn_burst"]),
                     beta_scale=1.0 + 0.04 * agn, igm_temperature=_IGM_TEMPERATURE)


def hard_mock_scatter(x: ArrayLike) -> dict[str, np.ndarray]:
    """Halo-to-halo scatter of log10 profiles about the median in the hard regime [dex].

    ``sigma(x) = lo + (hi - lo) min(1, (log10(x / 0.3) / 1.3)^2)`` at ``x = r/R200c``, with
    (lo, hi) = (0.20, 0.35) dex for ``rho`` and (0.22, 0.40) for ``pth``: smallest around
    0.3 R200c, larger in the core and the outskirts. ``temp`` (= P mu m_p / (rho k_B)) has
    ``sqrt(s_P^2 + s_rho^2 - 2 * 0.4 * 0.6 s_P s_rho)`` (the shared amplitude term).

    Args:
        x: r / R200c, any shape.

    Returns:
        ``{"rho", "pth", "temp"}`` -> scatter [dex], shape of ``x``.
    """
    t = np.minimum(1.0, (np.log10(np.asarray(x, dtype=float) / _SCATTER_X0) / _SCATTER_WIDTH) ** 2)
    out = {fld: lo + (hi - lo) * t for fld, (lo, hi) in _HARD_SCATTER.items()}
    cov = _AMPLITUDE_SHARE * _AMPLITUDE_CORRELATION * out["rho"] * out["pth"]
    out["temp"] = np.sqrt(out["rho"] ** 2 + out["pth"] ** 2 - 2.0 * cov)
    return out


def _hard_deviations(x: np.ndarray, sigma: Mapping[str, np.ndarray], rng: np.random.Generator,
                     scale: float) -> dict[str, np.ndarray]:
    """Correlated log10 deviations [n, n_r] of rho and pth (temp follows from them).

    Per halo and field: ``sigma(r) [sqrt(0.4) A + sqrt(0.3) t(r) B + sqrt(1 - 0.4 - 0.3 t(r)^2)
    E(r)]`` with ``t = clip(log10(x/0.3)/1.3, -1, 1)``; ``A`` (an offset of the whole profile)
    is correlated 0.6 between rho and pth, ``B`` tilts the profile, ``E`` is independent
    per radius. The variance at every radius is exactly ``sigma(r)^2``.
    """
    n, n_r = x.shape
    t = np.clip(np.log10(x / _SCATTER_X0) / _SCATTER_WIDTH, -1.0, 1.0)
    amp = rng.standard_normal((2, n, 1))
    amp[1] = _AMPLITUDE_CORRELATION * amp[0] + np.sqrt(1 - _AMPLITUDE_CORRELATION**2) * amp[1]
    tilt = rng.standard_normal((2, n, 1))
    white = rng.standard_normal((2, n, n_r))
    out = {}
    for i, fld in enumerate(("rho", "pth")):
        unit = (np.sqrt(_AMPLITUDE_SHARE) * amp[i] + np.sqrt(_TILT_SHARE) * t * tilt[i]
                + np.sqrt(1.0 - _AMPLITUDE_SHARE - _TILT_SHARE * t**2) * white[i])
        out[fld] = scale * sigma[fld] * unit
    return out


def make_hard_mock(
    n: int = 600,
    *,
    seed: int = 0,
    parameter_table: str | Path | None = None,
    halos_per_sim: int = 1,
    n_r: int = 30,
    radius_range: tuple[float, float] = (0.01, 2.0),
    log10_mass_range: tuple[float, float] = (11.5, 14.0),
    redshift: float = 0.0,
    scatter_scale: float = 1.0,
) -> MockUniverse:
    """A hard mock universe like a CAMELS SB35 suite of single-halo (zoom-in) profiles.

    35 parameters with the names, ranges and log flags of the CAMELS SB35 table when
    ``parameter_table`` is given (:func:`read_camels_parameter_table`), else of the
    built-in list :data:`MOCK_PARAMETERS` (said in one log line). Only the roles of
    :data:`HARD_ROLES` act (:func:`hard_mock_truth`): Omega_m and sigma_8, three feedback
    parameters with interactions, two weak ones, and Omega_b and h through the
    self-similar physics; every other parameter is inert. Each row is one halo (``groups``
    = simulation id), log10 M200c uniform in ``log10_mass_range`` (one slice per halo of a
    simulation), profiles on physical radii [Mpc] scattered about the median by
    log-normal, radius-dependent scatter (:func:`hard_mock_scatter`, 0.2-0.4 dex: an offset
    of the whole profile shared in part by rho and pth, a tilt, and a per-radius term),
    recorded as ``dataset.noise``. ``truth`` is the noiseless median profile. No P(k).

    Args:
        n: Number of rows (halos), e.g. 300-2,000.
        seed: Seed of every random draw (same seed, same arrays).
        parameter_table: A CAMELS ``Info_*.csv`` (or its folder), e.g.
            ``../shared/data/camels_sb35/Info_IllustrisTNG_L50n512_35params.csv``.
        halos_per_sim: Halos per simulation (1 = zoom-in suite).
        n_r: Number of radii, log-spaced over ``radius_range``.
        radius_range: Smallest and largest radius [Mpc, physical].
        log10_mass_range: Range of log10(M200c / Msun).
        redshift: Redshift of every row.
        scatter_scale: Multiplies the scatter (1 = the declared 0.2-0.4 dex; 0 = noiseless).

    Returns:
        The :class:`MockUniverse` (fields ``rho`` [Msun kpc^-3], ``pth`` [keV cm^-3], ``temp``
        [K]; radius unit ``"Mpc"``); ``dataset.meta`` records the mass definition
        (``"200c"``), the redshift, the parameter source and which parameters act.

    Raises:
        ConfigError: an invalid argument (the message names it).
        FormatError: an unreadable parameter table.
    """
    _check_args(n, 0.0, n_r, "sb35", redshift, halos_per_sim, log10_mass_range, radius_range,
                per_sim_name="halos_per_sim", radius_unit="Mpc")
    if not np.isfinite(scatter_scale) or scatter_scale < 0:
        raise ConfigError(f"scatter_scale: {scatter_scale!r} must be finite and >= 0 (1 = declared).")
    if parameter_table is None:
        specs = MOCK_PARAMETERS
        source = "built-in list profemu.data.mock.MOCK_PARAMETERS"
        logger.info("make_hard_mock: no parameter table given; using the built-in 35-parameter list "
                    "(CAMELS-like names), not the CAMELS SB35 table")
    else:
        specs = read_camels_parameter_table(parameter_table)
        source = Path(parameter_table).name
    n = int(n)
    names = tuple(p.name for p in specs)
    ss_lhs, ss_mass, ss_noise = np.random.SeedSequence(seed).spawn(3)
    sim_params, sim_id, log10_mass = _design(specs, n, int(halos_per_sim), log10_mass_range,
                                             ss_lhs, ss_mass)
    params = sim_params[sim_id]
    radius = np.geomspace(radius_range[0], radius_range[1], n_r)
    theta = {nm: params[:, j] for j, nm in enumerate(names)}
    truth = hard_mock_truth(theta, log10_mass, radius=radius, redshift=redshift, parameters=specs)

    cosmo, _ = _role_offsets(theta, specs)
    h, om = (np.broadcast_to(cosmo[k], (n,))[:, None] for k in ("h", "omega_m"))
    x = radius[None, :] / r200c(10.0 ** log10_mass[:, None], redshift, h, om)  # r / R200c
    sigma = hard_mock_scatter(x)
    dev = _hard_deviations(x, sigma, np.random.default_rng(ss_noise), float(scatter_scale))
    profiles = {"rho": truth["rho"] * 10.0 ** dev["rho"], "pth": truth["pth"] * 10.0 ** dev["pth"]}
    profiles["temp"] = truth["temp"] * 10.0 ** (dev["pth"] - dev["rho"])  # T = P mu m_p / (rho k_B)

    roles = {}
    for role, names_of_role in PARAMETER_ALIASES.items():
        name = next((nm for nm in names_of_role if nm in names), None)
        if name is not None:
            roles[name] = HARD_ROLES[role]
    meta: dict[str, Any] = {
        "source": "profemu.data.mock.make_hard_mock",
        "regime": "hard",
        "parameter_source": source,
        "seed": int(seed),
        "mass_definition": "200c",
        "redshift": float(redshift),
        "halos_per_sim": int(halos_per_sim),
        "acting_parameters": roles,
        "inert_parameters": [nm for nm in names if nm not in roles],
        "scatter": "log-normal about the median, radius dependent (dataset.noise, dex): rho "
                   f"{_HARD_SCATTER['rho'][0]}-{_HARD_SCATTER['rho'][1]}, pth "
                   f"{_HARD_SCATTER['pth'][0]}-{_HARD_SCATTER['pth'][1]}, times {scatter_scale:g}",
        "model": "pressure: Battaglia et al. 2012 (AGN, 200c) gNFW + 1e4 K IGM floor; gas: "
                 "baryon-correction gas fraction with gNFW shape plus mean baryon density; "
                 "T = P mu m_p/(rho k_B); radii physical [Mpc]",
    }
    return _universe(
        specs,
        truth,
        params=params,
        log10_mass=log10_mass,
        radius=radius,
        profiles=profiles,
        radius_unit="Mpc",
        redshift=np.full(n, float(redshift)),
        groups=sim_id.astype(np.int64),
        noise={f: float(scatter_scale) * s for f, s in sigma.items()},
        meta=meta,
    )


def write_mock(path: str | Path, n: int = 4000, *, seed: int = 0, **kwargs: Any) -> Path:
    """Build a mock universe and save its noisy dataset to ``path`` (``.npz`` or ``.h5``).

    Args:
        path: Output file; the suffix picks the format (see :mod:`profemu.data.io`).
        n: Number of rows.
        seed: Random seed.
        **kwargs: Further keyword arguments of :func:`make_mock_universe`.

    Returns:
        The path written.
    """
    universe = make_mock_universe(n, seed=seed, **kwargs)
    return universe.dataset.save(path)
