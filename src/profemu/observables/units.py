"""Unit conversions of the kSZ and tSZ signals and of CAP values (μK sr ↔ μK arcmin²).

Constants come from :mod:`profemu.physics.constants` (CGS). Hand calculation of the
factors (X_H = 0.76, T_CMB = 2.7255 K, v_rms = 313 km/s):

* electrons per gram of gas, fully ionised H + He:
  n_e / ρ = X_H / m_p + 2 (1 - X_H) / (4 m_p) = (1 + X_H) / (2 m_p)
  = 1.76 / (2 × 1.67262192e-24 g) = 5.2612e23 g⁻¹;
* kSZ: ΔT / Σ_ρ = T_CMB (v_rms / c) σ_T (1 + X_H) / (2 m_p)
  = 2.7255e6 μK × (313 / 299792.458) × 6.6524587e-25 cm² × 5.2612e23 g⁻¹
  = 2.7255e6 × 1.04406e-3 × 6.6524587e-25 × 5.2612e23 = **995.95 μK per g cm⁻²**;
* electron share of the thermal pressure: P_e / P_th = n_e / (n_e + n_H + n_He)
  = [(1 + X_H) / 2] / [(3 + 5 X_H) / 4] = (2 + 2 X_H) / (3 + 5 X_H) = 3.52 / 6.8 = 0.517647;
* tSZ: y / Σ_P = σ_T / (m_e c²) (2 + 2 X_H) / (3 + 5 X_H)
  = 6.6524587e-25 cm² / (510.99895 keV × 1.602176634e-9 erg/keV) × 0.517647
  = 6.6524587e-25 / 8.18711e-7 × 0.517647 = **4.2062e-19 per erg cm⁻²**;
* non-relativistic tSZ spectrum at 150 GHz: x = hν / (k_B T_CMB) = 2.6413,
  f(x) = x coth(x / 2) - 4 = -0.95333, f T_CMB = **-2.5983 K per unit y**
  (the ACT f150 band response is -2.786 K at ℓ = 100: its tSZ-weighted band centre is lower);
  f T_CMB is 0 at 217.5 GHz (x = 3.8300), +6.107 K at 353 GHz and +15.26 K at 545 GHz;
* 1 sr = (180 × 60 / π)² arcmin² = **1.18181e7 arcmin²**.
"""

from __future__ import annotations

import math
from typing import Any

from profemu.physics.constants import (
    C_KMS,
    H_PLANCK_ERG_S,
    K_B_ERG,
    KEV_ERG,
    M_E_C2_KEV,
    M_P_G,
    SIGMA_T_CM2,
    T_CMB_K,
    X_H,
)

__all__ = [
    "ARCMIN_RAD",
    "ELECTRONS_PER_GRAM",
    "ELECTRON_PRESSURE_FRACTION",
    "MUK_PER_K",
    "RESPONSE_MAX_K",
    "SR_TO_ARCMIN2",
    "arcmin2_to_sr",
    "ksz_muk_per_g_cm2",
    "response_scale_problem",
    "sr_to_arcmin2",
    "tsz_fnu",
    "tsz_response_nonrelativistic",
    "tsz_y_per_erg_cm2",
]

ARCMIN_RAD = math.pi / (180.0 * 60.0)
"""One arcminute [rad] (2.9089e-4)."""
SR_TO_ARCMIN2 = (180.0 * 60.0 / math.pi) ** 2
"""Square arcminutes per steradian (1.18181e7)."""
MUK_PER_K = 1e6
"""μK per K."""
ELECTRONS_PER_GRAM = (1.0 + X_H) / (2.0 * M_P_G)
"""Free electrons per gram of fully ionised primordial gas, (1 + X_H) / (2 m_p) [g⁻¹] (5.2612e23)."""
ELECTRON_PRESSURE_FRACTION = (2.0 + 2.0 * X_H) / (3.0 + 5.0 * X_H)
"""Electron pressure over total thermal pressure, (2 + 2 X_H) / (3 + 5 X_H) (0.517647)."""
RESPONSE_MAX_K = 100.0
"""Largest |R(ℓ)| [K_CMB per unit y] accepted in a tSZ response table, by the reader and the API.

The non-relativistic f(ν) T_CMB is -2.598 K at 150 GHz, +6.107 K at 353 GHz, +15.26 K at
545 GHz and +30.2 K at 857 GHz; a table in mK or μK per y (≥ 1000 for any band away from the
217.5 GHz null) is refused."""


def response_scale_problem(peak: float) -> str | None:
    """Why a tSZ response table whose largest |R| is ``peak`` is not in K_CMB per unit y ("above
    RESPONSE_MAX_K ..., divide it by ..."), None when ``peak`` <= :data:`RESPONSE_MAX_K`."""
    if peak <= RESPONSE_MAX_K:
        return None
    return (f"above RESPONSE_MAX_K = {RESPONSE_MAX_K:g} K_CMB per unit y (f(nu) T_CMB is "
            "-2.6 K at 150 GHz, +6.1 at 353, +15.3 at 545); the table looks like mK or muK per y: divide it by 1e3 "
            "or 1e6")


def sr_to_arcmin2(value: Any) -> Any:
    """μK sr → μK arcmin² (multiply by 1.18181e7); arrays of any shape, numpy or JAX."""
    return value * SR_TO_ARCMIN2


def arcmin2_to_sr(value: Any) -> Any:
    """μK arcmin² → μK sr (divide by 1.18181e7); arrays of any shape, numpy or JAX."""
    return value / SR_TO_ARCMIN2


def ksz_muk_per_g_cm2(v_rms_kms: Any = 313.0) -> Any:
    """kSZ temperature per unit projected gas density [μK per (g cm⁻²)].

    ΔT = T_CMB (v_rms / c) σ_T (1 + X_H) / (2 m_p) Σ_ρ; 995.95 μK per g cm⁻² at
    v_rms = 313 km/s (hand calculation in the module docstring). Linear in ``v_rms_kms``
    [km/s], which may be a JAX array.
    """
    return T_CMB_K * MUK_PER_K * (v_rms_kms / C_KMS) * SIGMA_T_CM2 * ELECTRONS_PER_GRAM


def tsz_y_per_erg_cm2() -> float:
    """Compton y per unit projected thermal pressure [per (erg cm⁻²)].

    y = σ_T / (m_e c²) (2 + 2 X_H) / (3 + 5 X_H) Σ_P = 4.2062e-19 Σ_P [erg cm⁻²]: the
    electron pressure is the thermal pressure times (2 + 2 X_H) / (3 + 5 X_H).
    """
    return SIGMA_T_CM2 / (M_E_C2_KEV * KEV_ERG) * ELECTRON_PRESSURE_FRACTION


def tsz_fnu(frequency_ghz: float) -> float:
    """Non-relativistic tSZ spectral function f(x) = x coth(x/2) - 4, x = hν / (k_B T_CMB).

    -0.95333 at 150 GHz, 0 at 217.5 GHz (x = 3.8300); ΔT / T_CMB = f(x) y.
    """
    x = H_PLANCK_ERG_S * frequency_ghz * 1e9 / (K_B_ERG * T_CMB_K)
    return x / math.tanh(x / 2.0) - 4.0


def tsz_response_nonrelativistic(frequency_ghz: float = 150.0) -> float:
    """Single-frequency tSZ response f(x) T_CMB [K_CMB per unit y] (-2.5983 at 150 GHz)."""
    return tsz_fnu(frequency_ghz) * T_CMB_K
