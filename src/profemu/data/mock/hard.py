"""The hard mock: a CAMELS SB35-like suite of single halos at physical radii, with large scatter.

:func:`hard_mock_truth` is the median profile (the physics of
:func:`profemu.data.mock.mock_truth` with only the roles of
:data:`~profemu.data.mock.parameters.HARD_ROLES` acting), :func:`hard_mock_scatter` the
declared halo-to-halo scatter [dex], and :func:`make_hard_mock` draws the suite.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from profemu.data.mock.parameters import (
    HARD_ROLES,
    MOCK_PARAMETERS,
    PARAMETER_ALIASES,
    MockParameter,
    read_camels_parameter_table,
)
from profemu.data.mock.universe import (
    _BETA_BCM0,
    _LOG10_MC0,
    MockUniverse,
    _check_args,
    _design,
    _halo_gas,
    _universe,
)
from profemu.errors import ConfigError
from profemu.physics.halo import r200c

__all__ = ["hard_mock_scatter", "hard_mock_truth", "make_hard_mock"]

_HARD_FID = {"omega_m": 0.3, "sigma_8": 0.8, "omega_b": 0.049, "h": 0.6711}
_IGM_TEMPERATURE = 1.0e4  # K, floor of the pressure outside halos
# scatter of single halos about the median profile [dex]: (at x0, far from x0) per field
_HARD_SCATTER = {"rho": (0.20, 0.35), "pth": (0.22, 0.40)}
_SCATTER_X0 = 0.3  # r / R200c where the scatter is smallest
_SCATTER_WIDTH = 1.3  # dex in r / R200c over which it rises to its outer value
_AMPLITUDE_SHARE, _TILT_SHARE = 0.4, 0.3  # variance shares; the rest is per-radius
_AMPLITUDE_CORRELATION = 0.6  # between the rho and pth amplitudes of one halo

# the package's logger: its log lines keep the name they had before the split
logger = logging.getLogger("profemu.data.mock")


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
    specs, source = _hard_parameters(parameter_table)
    n = int(n)
    names = tuple(p.name for p in specs)
    ss_lhs, ss_mass, ss_noise = np.random.SeedSequence(seed).spawn(3)
    sim_params, sim_id, log10_mass = _design(specs, n, int(halos_per_sim), log10_mass_range,
                                             ss_lhs, ss_mass)
    params = sim_params[sim_id]
    radius = np.geomspace(radius_range[0], radius_range[1], n_r)
    theta = {nm: params[:, j] for j, nm in enumerate(names)}
    truth = hard_mock_truth(theta, log10_mass, radius=radius, redshift=redshift, parameters=specs)
    profiles, sigma = _scattered_profiles(truth, theta, specs, log10_mass, radius, redshift,
                                          np.random.default_rng(ss_noise), float(scatter_scale))
    meta = _hard_meta(names, source, seed=seed, redshift=redshift, halos_per_sim=halos_per_sim,
                      scatter_scale=scatter_scale)
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


def _hard_parameters(parameter_table: str | Path | None) -> tuple[tuple[MockParameter, ...], str]:
    """The parameters of the hard mock and where they come from (for ``meta``).

    Args:
        parameter_table: A CAMELS ``Info_*.csv`` (or its folder), or None for the built-in
            :data:`MOCK_PARAMETERS` (said in one log line).

    Returns:
        ``(parameters, source)``: the parameter list and the table's file name (or the
        built-in list's name).
    """
    if parameter_table is None:
        specs = MOCK_PARAMETERS
        source = "built-in list profemu.data.mock.MOCK_PARAMETERS"
        logger.info("make_hard_mock: no parameter table given; using the built-in 35-parameter list "
                    "(CAMELS-like names), not the CAMELS SB35 table")
    else:
        specs = read_camels_parameter_table(parameter_table)
        source = Path(parameter_table).name
    return specs, source


def _scattered_profiles(truth: Mapping[str, np.ndarray], theta: Mapping[str, np.ndarray],
                        specs: tuple[MockParameter, ...], log10_mass: np.ndarray,
                        radius: np.ndarray, redshift: float, rng: np.random.Generator,
                        scatter_scale: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Noisy profiles of the hard mock: ``truth`` scattered by :func:`hard_mock_scatter`.

    Args:
        truth: Field -> noiseless median profiles [n, n_r] (rho, pth, temp).
        theta: Parameter name -> value per row [n].
        specs: The parameter list ``theta`` is named by.
        log10_mass: log10(M200c / Msun), [n].
        radius: Physical radii [Mpc], [n_r].
        redshift: Redshift z >= 0.
        rng: Draws the deviations.
        scatter_scale: Multiplies the declared scatter.

    Returns:
        ``(profiles, sigma)``: field -> noisy profiles [n, n_r] (same units as ``truth``;
        ``temp`` = P mu m_p / (rho k_B) of the noisy ``pth`` and ``rho``) and field ->
        declared scatter [dex], [n, n_r], before ``scatter_scale``.
    """
    n = log10_mass.shape[0]
    cosmo, _ = _role_offsets(theta, specs)
    h, om = (np.broadcast_to(cosmo[k], (n,))[:, None] for k in ("h", "omega_m"))
    x = radius[None, :] / r200c(10.0 ** log10_mass[:, None], redshift, h, om)  # r / R200c
    sigma = hard_mock_scatter(x)
    dev = _hard_deviations(x, sigma, rng, scatter_scale)
    profiles = {"rho": truth["rho"] * 10.0 ** dev["rho"], "pth": truth["pth"] * 10.0 ** dev["pth"]}
    profiles["temp"] = truth["temp"] * 10.0 ** (dev["pth"] - dev["rho"])  # T = P mu m_p / (rho k_B)
    return profiles, sigma


def _hard_meta(names: tuple[str, ...], source: str, *, seed: int, redshift: float,
               halos_per_sim: int, scatter_scale: float) -> dict[str, Any]:
    """``dataset.meta`` of the hard mock: regime, parameter source, acting and inert parameters.

    Args:
        names: Parameter names, in column order.
        source: Where the parameter list came from.
        seed: Seed of the draws.
        redshift: Redshift of every row.
        halos_per_sim: Halos per simulation.
        scatter_scale: Multiplier of the declared scatter.

    Returns:
        The metadata dictionary (JSON-serialisable).
    """
    roles = {}
    for role, names_of_role in PARAMETER_ALIASES.items():
        name = next((nm for nm in names_of_role if nm in names), None)
        if name is not None:
            roles[name] = HARD_ROLES[role]
    return {
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
