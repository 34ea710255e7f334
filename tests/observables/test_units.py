"""Signal and unit conversions against the hand calculation of the units module docstring."""

from __future__ import annotations

import math

import pytest

from profemu.observables import units


def test_hand_calculation() -> None:
    # n_e / ρ = 1.76 / (2 × 1.67262192e-24 g)
    assert units.ELECTRONS_PER_GRAM == pytest.approx(1.76 / (2 * 1.67262192e-24), rel=1e-12)
    assert units.ELECTRON_PRESSURE_FRACTION == pytest.approx(3.52 / 6.8, rel=1e-12)
    # 2.7255e6 μK × 313/299792.458 × 6.6524587321e-25 cm² × 5.26120e23 g⁻¹
    assert units.ksz_muk_per_g_cm2(313.0) == pytest.approx(995.95, rel=1e-5)
    assert units.ksz_muk_per_g_cm2(626.0) == pytest.approx(2 * 995.95, rel=1e-5)
    # 6.6524587321e-25 / (510.99895 × 1.602176634e-9) × 0.517647
    assert units.tsz_y_per_erg_cm2() == pytest.approx(4.20616e-19, rel=1e-5)
    assert units.tsz_fnu(150.0) == pytest.approx(-0.95333, abs=1e-5)
    assert units.tsz_response_nonrelativistic(150.0) == pytest.approx(-2.5983, abs=1e-4)
    assert abs(units.tsz_fnu(217.5074)) < 1e-5  # the tSZ null (217.5 GHz for T_CMB = 2.7255 K)


def test_solid_angle_conversion() -> None:
    assert units.SR_TO_ARCMIN2 == pytest.approx(1.18181e7, rel=1e-5)
    assert units.ARCMIN_RAD**2 * units.SR_TO_ARCMIN2 == pytest.approx(1.0)
    # first ACT kSZ point: 1.940692802507e-08 μK sr
    assert units.sr_to_arcmin2(1.940692802507e-08) == pytest.approx(0.229353, rel=1e-5)
    assert units.arcmin2_to_sr(units.sr_to_arcmin2(3.0)) == pytest.approx(3.0)
    assert math.isclose(units.SR_TO_ARCMIN2, (180 * 60 / math.pi) ** 2)
