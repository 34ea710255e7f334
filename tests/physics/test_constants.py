"""The constants of profemu.physics.constants against astropy.constants and astropy.units."""

from __future__ import annotations

import math

import pytest

from profemu.physics import constants as c


def test_constants_match_astropy() -> None:
    """The module uses CODATA 2018; astropy >= 7 uses CODATA 2022 (differences ≤ 4e-9)."""
    const = pytest.importorskip("astropy.constants")
    units = pytest.importorskip("astropy.units")
    assert c.SIGMA_T_CM2 == pytest.approx(const.sigma_T.cgs.value, rel=1e-8)
    assert c.M_E_C2_KEV == pytest.approx((const.m_e * const.c**2).to(units.keV).value, rel=1e-8)
    assert c.M_P_G == pytest.approx(const.m_p.cgs.value, rel=1e-8)
    assert c.K_B_ERG == pytest.approx(const.k_B.cgs.value, rel=1e-12)
    assert c.H_PLANCK_ERG_S == pytest.approx(const.h.cgs.value, rel=1e-12)
    assert c.C_KMS == pytest.approx(const.c.to(units.km / units.s).value, rel=1e-12)
    assert c.MPC_CM == pytest.approx((1 * units.Mpc).to(units.cm).value, rel=1e-12)
    assert c.MSUN_G == pytest.approx(const.M_sun.cgs.value, rel=1e-5)
    assert c.KEV_ERG == pytest.approx((1 * units.keV).to(units.erg).value, rel=1e-12)
    g = const.G.to(units.Mpc * units.km**2 / units.s**2 / units.Msun).value
    assert c.G_MPC_KMS2_MSUN == pytest.approx(g, rel=1e-5)
    assert math.isclose(c.RHO_CRIT0_H2, 2.775e11, rel_tol=1e-3)
