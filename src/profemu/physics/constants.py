"""Physical constants and unit conversions (CGS unless the name says otherwise).

Values are CODATA 2018 / IAU 2015 as used by astropy; ``tests/physics`` checks them
against ``astropy.constants`` and ``astropy.units``.
"""

from __future__ import annotations

import math

__all__ = [
    "C_KMS",
    "DEFAULT_H",
    "DEFAULT_OMEGA_B",
    "G_MPC_KMS2_MSUN",
    "H_PLANCK_ERG_S",
    "KEV_ERG",
    "KPC_CM",
    "K_B_ERG",
    "K_B_KEV",
    "MPC_CM",
    "MSUN_G",
    "MU",
    "M_E_C2_KEV",
    "M_P_G",
    "RHO_CRIT0_H2",
    "SIGMA_T_CM2",
    "T_CMB_K",
    "X_H",
]

G_MPC_KMS2_MSUN = 4.30091727e-9
"""Newton's constant [Mpc (km/s)^2 Msun^-1]."""
RHO_CRIT0_H2 = 3.0 * 100.0**2 / (8.0 * math.pi * G_MPC_KMS2_MSUN)
"""Critical density today over h^2 [Msun Mpc^-3] (= 3 H0^2 / (8 pi G), H0 = 100 h km/s/Mpc)."""
MSUN_G = 1.98841e33
"""Solar mass [g]."""
MPC_CM = 3.0856775814913673e24
"""Megaparsec [cm]."""
KPC_CM = MPC_CM / 1e3
"""Kiloparsec [cm]."""
KEV_ERG = 1.602176634e-9
"""Kiloelectronvolt [erg]."""
K_B_ERG = 1.380649e-16
"""Boltzmann constant [erg K^-1]."""
K_B_KEV = K_B_ERG / KEV_ERG
"""Boltzmann constant [keV K^-1] (8.617333e-8)."""
M_P_G = 1.67262192e-24
"""Proton mass [g]."""
MU = 0.59
"""Mean molecular weight of a fully ionised primordial plasma (the temperature scale)."""
C_KMS = 299792.458
"""Speed of light [km/s]."""
SIGMA_T_CM2 = 6.6524587321e-25
"""Thomson cross-section [cm^2]."""
M_E_C2_KEV = 510.99895
"""Electron rest energy m_e c^2 [keV]."""
T_CMB_K = 2.7255
"""CMB temperature today [K] (Fixsen 2009)."""
X_H = 0.76
"""Primordial hydrogen mass fraction."""
DEFAULT_OMEGA_B = 0.049
"""Ω_b when it is not a parameter (CAMELS, Planck-like)."""
DEFAULT_H = 0.6711
"""h when it is not a parameter (CAMELS); it only sets a constant factor of the scales."""
H_PLANCK_ERG_S = 6.62607015e-27
"""Planck constant [erg s] (exact in SI 2019)."""
