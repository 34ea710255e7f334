"""Halo formulas: radii and self-similar scales of a mass definition, and the
Battaglia et al. (2012) / baryon-correction-model gas profiles.

Masses in Msun, radii in physical Mpc (``r200c``) and flat ΛCDM. :func:`r_delta` and
:func:`log10_selfsimilar_scales` take ``xp`` (numpy or ``jax.numpy``) and are
differentiable; the Battaglia-family functions are numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from profemu.physics.constants import (
    G_MPC_KMS2_MSUN,
    K_B_ERG,
    KEV_ERG,
    M_P_G,
    MPC_CM,
    MSUN_G,
    MU,
    RHO_CRIT0_H2,
)
from profemu.physics.cosmology import rho_crit, rho_reference

__all__ = [
    "battaglia_parameters",
    "enclosed_fraction_weights",
    "gas_fraction",
    "gnfw_mass_integral",
    "gnfw_pressure",
    "log10_selfsimilar_scales",
    "mean_baryon_density",
    "p200c",
    "r200c",
    "r_delta",
]

MSUN_MPC3_TO_G_CM3 = MSUN_G / MPC_CM**3
"""Msun Mpc^-3 -> g cm^-3."""
MSUN_MPC3_TO_MSUN_KPC3 = 1e-9
"""Msun Mpc^-3 -> Msun kpc^-3."""
PRESSURE_TO_KEV_CM3 = MSUN_G * 1e10 / MPC_CM**3 / KEV_ERG
"""Msun (km/s)^2 Mpc^-3 -> keV cm^-3."""

# Battaglia et al. 2012, Table 1, AGN feedback, Delta = 200: (A0, alpha_m, alpha_z)
B12_P0 = (18.1, 0.154, -0.758)
B12_XC = (0.497, -0.00865, 0.731)
B12_BETA = (4.35, 0.0393, 0.415)
B12_GAMMA = -0.3
B12_ALPHA = 1.0


def r_delta(mass: Any, z: Any, h: Any, omega_m: Any, delta: float = 200.0, reference: str = "critical",
            xp: Any = np) -> Any:
    """R_Δ [Mpc] of a halo of mass ``mass`` [Msun]: the radius enclosing Δ ρ_ref."""
    return (3.0 * mass / (4.0 * math.pi * delta * rho_reference(z, h, omega_m, reference, xp))) ** (1.0 / 3.0)


def log10_selfsimilar_scales(log10_mass: Any, z: Any, omega_m: Any, omega_b: Any, h: Any, *,
                             delta: float, reference: str, xp: Any = np) -> dict[str, Any]:
    """log10 of the self-similar density, pressure and temperature scales in base units.

    ρ_Δ = Δ f_b ρ_ref(z), P_Δ = G M_Δ Δ ρ_ref(z) f_b / (2 R_Δ), T_Δ = μ m_p G M_Δ / (2 k_B R_Δ).

    Args:
        log10_mass: log10(M_Δ / Msun), [n].
        z, omega_m, omega_b, h: Redshift and cosmology, [n] or scalars.
        delta: Overdensity Δ.
        reference: ``"critical"`` or ``"mean"``.
        xp: numpy or jax.numpy.

    Returns:
        ``{"density": [n] log10(Msun Mpc^-3), "pressure": [n] log10(Msun (km/s)^2 Mpc^-3),
        "temperature": [n] log10(K)}``.
    """
    log_rho_ref = xp.log10(rho_reference(z, h, omega_m, reference, xp))
    log_fb = xp.log10(omega_b / omega_m)
    # log10 R_Δ = (log10 M + log10(3 / (4 pi Δ)) - log10 ρ_ref) / 3
    log_r = (log10_mass + math.log10(3.0 / (4.0 * math.pi * delta)) - log_rho_ref) / 3.0
    log_gm_over_r = math.log10(G_MPC_KMS2_MSUN) + log10_mass - log_r  # (km/s)^2
    density = math.log10(delta) + log_fb + log_rho_ref
    pressure = log_gm_over_r + math.log10(delta / 2.0) + log_rho_ref + log_fb
    # μ m_p G M / (2 k_B R): (km/s)^2 -> (cm/s)^2 is 1e10
    temperature = log_gm_over_r + 10.0 + math.log10(MU * M_P_G / (2.0 * K_B_ERG))
    return {"density": density, "pressure": pressure, "temperature": temperature}


def r200c(m200c: ArrayLike, redshift: ArrayLike, h: ArrayLike, omega_m: ArrayLike) -> np.ndarray:
    """Radius enclosing 200 times the critical density.

    Args:
        m200c: Halo mass M200c [Msun] (broadcastable).
        redshift: Redshift.
        h: Dimensionless Hubble parameter.
        omega_m: Matter density parameter today.

    Returns:
        ``(3 M200c / (4 pi 200 rho_crit(z)))^(1/3)`` [Mpc, physical]; e.g. 0.957 Mpc
        for M200c = 1e14 Msun, h = 0.7, z = 0.
    """
    rc = rho_crit(np.asarray(redshift, dtype=float), np.asarray(h, dtype=float),
                  np.asarray(omega_m, dtype=float))
    return (3.0 * np.asarray(m200c, dtype=float) / (4.0 * np.pi * 200.0 * rc)) ** (1.0 / 3.0)


def p200c(m200c: ArrayLike, redshift: ArrayLike, h: ArrayLike, omega_m: ArrayLike,
          omega_b: ArrayLike) -> np.ndarray:
    """Self-similar pressure scale of Battaglia et al. 2012 (their eq. 10).

    Args:
        m200c: Halo mass M200c [Msun].
        redshift: Redshift.
        h: Dimensionless Hubble parameter.
        omega_m: Matter density parameter today.
        omega_b: Baryon density parameter today.

    Returns:
        ``G M200c 200 rho_crit(z) (Omega_b/Omega_m) / (2 R200c)`` [keV cm^-3]; it
        scales as M200c^(2/3) E(z)^(8/3).
    """
    m = np.asarray(m200c, dtype=float)
    rc = rho_crit(np.asarray(redshift, dtype=float), np.asarray(h, dtype=float),
                  np.asarray(omega_m, dtype=float))
    radius = r200c(m, redshift, h, omega_m)
    f_b = np.asarray(omega_b, dtype=float) / np.asarray(omega_m, dtype=float)
    return G_MPC_KMS2_MSUN * m * 200.0 * rc * f_b / (2.0 * radius) * PRESSURE_TO_KEV_CM3


def battaglia_parameters(m200c: ArrayLike, redshift: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Battaglia et al. 2012 (Table 1, AGN feedback, Δ = 200) gNFW parameters.

    Args:
        m200c: Halo mass M200c [Msun].
        redshift: Redshift.

    Returns:
        ``(P0, xc, beta)``, each ``A0 (M200c / 1e14 Msun)^alpha_m (1+z)^alpha_z``.
    """
    m = np.asarray(m200c, dtype=float) / 1e14
    zp1 = 1.0 + np.asarray(redshift, dtype=float)
    return tuple(a0 * m**am * zp1**az for a0, am, az in (B12_P0, B12_XC, B12_BETA))  # type: ignore[return-value]


def gnfw_pressure(x: ArrayLike, p0: ArrayLike, xc: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """Generalised NFW pressure shape ``P0 (x/xc)^-0.3 [1 + x/xc]^-beta`` (P / P200c).

    Args:
        x: r / R200c (broadcastable against the other arguments).
        p0: Amplitude P0.
        xc: Core radius in units of R200c.
        beta: Outer slope parameter.

    Returns:
        P / P200c (dimensionless), with Battaglia's gamma = -0.3 and alpha = 1.
    """
    y = np.asarray(x, dtype=float) / np.asarray(xc, dtype=float)
    return np.asarray(p0, dtype=float) * y**B12_GAMMA * (1.0 + y**B12_ALPHA) ** (-np.asarray(beta, dtype=float))


def gas_fraction(m200c: ArrayLike, log10_mc: ArrayLike, beta_bcm: ArrayLike, omega_b: ArrayLike,
                 omega_m: ArrayLike) -> np.ndarray:
    """Gas fraction inside R200c, ``f_b / (1 + (M_c / M200c)^beta_bcm)``.

    Args:
        m200c: Halo mass M200c [Msun].
        log10_mc: log10 of the characteristic mass M_c [Msun] below which gas is expelled.
        beta_bcm: Steepness of the mass dependence.
        omega_b: Baryon density parameter.
        omega_m: Matter density parameter.

    Returns:
        M_gas(< R200c) / M200c, always below Omega_b / Omega_m.
    """
    f_b = np.asarray(omega_b, dtype=float) / np.asarray(omega_m, dtype=float)
    ratio = 10.0 ** ((np.asarray(log10_mc, dtype=float) - np.log10(np.asarray(m200c, dtype=float)))
                     * np.asarray(beta_bcm, dtype=float))
    return f_b / (1.0 + ratio)


def mean_baryon_density(redshift: ArrayLike, h: ArrayLike, omega_b: ArrayLike) -> np.ndarray:
    """Mean cosmic baryon density ``Omega_b rho_crit0 (1+z)^3`` [Msun kpc^-3, physical]."""
    z = np.asarray(redshift, dtype=float)
    rho = np.asarray(omega_b, dtype=float) * RHO_CRIT0_H2 * np.asarray(h, dtype=float) ** 2 * (1 + z) ** 3
    return rho * MSUN_MPC3_TO_MSUN_KPC3


def gnfw_mass_integral(x: np.ndarray, x_s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``∫_0^x y'^2 (y'/x_s)^-g (1 + y'/x_s)^-(3-g) dy'`` in closed form.

    With t = y/(1+y), y = r/x_s, the integral is ``x_s^3 ∫_0^T t^(2-g)/(1-t) dt``
    = ``x_s^3 T^a / a 2F1(a, 1; a+1; T)`` with ``a = 3 - g``, ``T = y/(1+y)``.
    """
    y = x / x_s
    t = y / (1.0 + y)
    a = 3.0 - g
    from scipy.special import hyp2f1  # here, not at import: scipy.special takes 0.2 s to import

    return x_s**3 * t**a / a * hyp2f1(a, 1.0, a + 1.0, t)


def enclosed_fraction_weights(x: ArrayLike, x_max: float = 1.0) -> np.ndarray:
    """Quadrature weights ``w`` [n] with ``Σ_k w_k y(x_k) ≈ 3 ∫_0^x_max x² y(x) dx``.

    For a gas density in units of its self-similar scale, ``y = ρ / (Δ f_b ρ_ref)`` on radii
    ``x = r / R_Δ``, the sum is the gas mass inside ``x_max R_Δ`` over ``f_b M_Δ``: the
    fraction of the halo's share of the cosmic baryons that is gas (1 at the cosmic baryon
    fraction). The trapezoid rule in ln x on ``x³ y`` (which varies slowly for gas
    profiles between ``x^-1`` and ``x^-3``), the interval that crosses ``x_max`` in part,
    and ``y`` constant inside the innermost radius (a core: ``x_0³ y_0``).

    Args:
        x: Radii in units of R_Δ, strictly increasing and positive, [n].
        x_max: Outer radius of the enclosed mass [R_Δ]; at least ``x[0]``.

    Returns:
        Weights [n] (zero beyond ``x_max``).

    Raises:
        ValueError: a grid that is not positive and increasing, or ``x_max < x[0]``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 1 or (x <= 0).any() or (np.diff(x) <= 0).any():
        raise ValueError("enclosed_fraction_weights: x must be a positive, strictly increasing 1-D grid.")
    if x_max < x[0]:
        raise ValueError(f"enclosed_fraction_weights: x_max={x_max} lies inside the innermost radius {x[0]}.")
    w = np.zeros_like(x)
    w[0] = x[0] ** 3  # 3 ∫_0^x0 x² dx, a constant core
    lx = np.log(x)
    for k in range(x.size - 1):
        if x[k] >= x_max:
            break
        step = lx[k + 1] - lx[k]
        h = min(step, math.log(x_max) - lx[k])  # the part of the interval inside x_max
        # g = 3 x³ y linear in ln x across the interval, integrated from ln x_k to ln x_k + h
        w[k] += 3.0 * x[k] ** 3 * (h - h * h / (2.0 * step))
        w[k + 1] += 3.0 * x[k + 1] ** 3 * h * h / (2.0 * step)
    return w

