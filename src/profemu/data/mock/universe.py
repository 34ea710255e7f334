"""The CAMELS-like mock universe: noiseless profiles and P(k) of a parameter set, and the draws.

:func:`mock_truth` and :func:`mock_pk_ratio` are the noiseless physics (profiles on
``x = r / R200c``; the model is described in :mod:`profemu.data.mock`);
:func:`make_mock_universe` samples parameters per simulation on a Latin hypercube, halo
masses per simulation, and log-normal noise; :func:`write_mock` saves the noisy dataset.
The helpers shared with the hard regime (:mod:`profemu.data.mock.hard`) live here too: the
gas and pressure of a halo (:func:`_halo_gas`), the argument checks, the design and the
:class:`MockUniverse` assembly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import qmc

from profemu.data.dataset import ProfileDataset
from profemu.data.mock.parameters import _BY_NAME, MOCK_PARAMETERS, PARAM_SETS, MockParameter
from profemu.errors import ConfigError
from profemu.physics.constants import K_B_KEV, M_P_G, MU
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
    "DEFAULT_K",
    "FIELD_UNITS",
    "MockUniverse",
    "make_mock_snapshots",
    "make_mock_universe",
    "mock_pk_ratio",
    "mock_truth",
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

FIELD_UNITS: dict[str, str] = {"rho": "Msun kpc^-3", "pth": "keV cm^-3", "temp": "K"}
"""Unit of each mock field: gas density, thermal pressure, temperature."""


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
    """Raise :class:`ConfigError` naming the first invalid argument of a mock generator."""
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


def make_mock_snapshots(redshifts: tuple[float, ...], n: int = 4000, **kwargs: Any) -> ProfileDataset:
    """The same mock suite observed at several redshifts, stacked into one dataset.

    Each snapshot is :func:`make_mock_universe` with the same ``n`` and ``kwargs`` (so the same
    seed: the same simulations, masses and noise draws) at one of ``redshifts``; ``redshift``
    is a per-row input [n * len(redshifts)] and ``groups`` are the simulations, shared across
    snapshots (a split by simulation holds out every snapshot of it). ``meta`` is the first
    snapshot's without its single ``redshift``.
    """
    if not redshifts:
        raise ConfigError("redshifts: pass at least one redshift, e.g. (0.0, 0.5).")
    parts = [make_mock_universe(n, redshift=float(z), **kwargs).dataset for z in redshifts]
    first = parts[0]
    masks = None if first.mask is None else {f: np.concatenate([p.mask[f] for p in parts]) for f in first.mask}
    noise = None if first.noise is None else {f: np.concatenate([p.noise[f] for p in parts]) for f in first.noise}
    return ProfileDataset(
        params=np.concatenate([p.params for p in parts]), param_names=first.param_names,
        log10_mass=np.concatenate([p.log10_mass for p in parts]), radius=first.radius,
        profiles={f: np.concatenate([p.profiles[f] for p in parts]) for f in first.profiles},
        units=first.units, radius_unit=first.radius_unit, log_params=first.log_params, mask=masks,
        pk_ratio=None if first.pk_ratio is None else np.concatenate([p.pk_ratio for p in parts]), k=first.k,
        redshift=np.concatenate([np.full(p.n, float(z)) for p, z in zip(parts, redshifts, strict=True)]),
        groups=np.concatenate([p.groups for p in parts]), noise=noise,
        meta={k: v for k, v in first.meta.items() if k != "redshift"})


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
