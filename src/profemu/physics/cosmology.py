"""Flat ΛCDM background: E(z), the critical and mean densities.

Every function takes numpy or ``jax.numpy`` arrays (``xp``) and is differentiable.
Units: Msun, physical Mpc; ``h`` is H0 / (100 km/s/Mpc).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from profemu.physics.constants import RHO_CRIT0_H2

__all__ = ["e2", "rho_crit", "rho_mean_matter", "rho_reference"]


def e2(z: Any, omega_m: Any, xp: Any = np) -> Any:
    """E(z)^2 = H(z)^2 / H0^2 of flat ΛCDM: Ω_m (1 + z)^3 + 1 - Ω_m."""
    return omega_m * (1.0 + z) ** 3 + 1.0 - omega_m


def rho_crit(z: Any, h: Any, omega_m: Any, xp: Any = np) -> Any:
    """Critical density ρ_crit(z) = 3 H(z)^2 / (8 π G) [Msun Mpc^-3, physical].

    E.g. 2.775e11 h^2 Msun Mpc^-3 at z = 0.
    """
    return RHO_CRIT0_H2 * h**2 * e2(z, omega_m, xp)


def rho_mean_matter(z: Any, h: Any, omega_m: Any, xp: Any = np) -> Any:
    """Mean matter density Ω_m ρ_crit0 (1 + z)^3 [Msun Mpc^-3, physical]."""
    return RHO_CRIT0_H2 * h**2 * omega_m * (1.0 + z) ** 3


def rho_reference(z: Any, h: Any, omega_m: Any, reference: str, xp: Any = np) -> Any:
    """The reference density of a mass definition: ``"critical"`` or ``"mean"`` (matter)."""
    if reference == "critical":
        return rho_crit(z, h, omega_m, xp)
    return rho_mean_matter(z, h, omega_m, xp)
