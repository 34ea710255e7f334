"""Tests of the mock universes (profemu.data.mock): shapes, determinism, and the physics
against independent formulas.

The constants here are independent (cgs) values, deliberately not imported from the
package under test.
"""

from __future__ import annotations

import numpy as np

__all__ = ["G_CGS", "KB_ERG", "KEV_ERG", "KPC_CM", "MPC_CM", "MP_G", "MSUN_G", "rho_crit_cgs"]

# Independent constants (cgs), deliberately not imported from the module under test.
G_CGS = 6.6743e-8  # cm^3 g^-1 s^-2
MSUN_G = 1.989e33
MPC_CM = 3.0857e24
KPC_CM = 3.0857e21
KEV_ERG = 1.602177e-9
KB_ERG = 1.380649e-16
MP_G = 1.672622e-24


def rho_crit_cgs(z: float, h: float, om: float) -> float:
    """3 H(z)^2 / (8 pi G) in g cm^-3."""
    hz = 100.0 * h * 1e5 / MPC_CM * np.sqrt(om * (1 + z) ** 3 + 1 - om)  # s^-1
    return 3 * hz**2 / (8 * np.pi * G_CGS)
