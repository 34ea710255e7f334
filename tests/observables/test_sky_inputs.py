"""Sky-side inputs of the forward model: beam tables that end early (Gaussian tail), apertures in
the wrong unit or below the beam, tSZ response limits shared by the reader and the API, and the
measurement-file layouts and covariance messages."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from profemu.errors import ConfigError, FormatError
from profemu.observables import ForwardModel, cap_from_profile, read_cap_measurement, read_response
from profemu.observables.act import TABLE_LAYOUTS
from profemu.observables.beam import extend_beam_tail
from profemu.observables.units import ARCMIN_RAD, RESPONSE_MAX_K, tsz_response_nonrelativistic

RADII = np.geomspace(1e-3, 15.0, 200)
PROFILE = 1e-26 * (1.0 + (RADII / 0.1) ** 2) ** -1.5  # beta model, g/cm^3
APERTURES = np.array([0.5, 1.0, 2.0, 4.0, 8.0])


def gaussian_table(fwhm_arcmin: float, ell_max: float, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = 0, step, ..., ell_max and B_ℓ = exp(-ℓ(ℓ+1) σ² / 2) of a Gaussian beam."""
    sigma = fwhm_arcmin * ARCMIN_RAD / np.sqrt(8.0 * np.log(2.0))
    ell = np.arange(0.0, ell_max + step / 2, step)
    return ell, np.exp(-0.5 * ell * (ell + 1.0) * sigma**2)


def cap(ell: np.ndarray, bl: np.ndarray, apertures: np.ndarray = APERTURES) -> np.ndarray:
    return np.asarray(cap_from_profile(RADII, PROFILE, kind="ksz", redshift=0.7, apertures_arcmin=apertures,
                                       beam_ell=ell, beam_bl=bl))


@pytest.mark.parametrize(("fwhm", "ell_end", "b_end"), [(1.0, 30000.0, 1.04e-3), (5.0, 4000.0, 0.047)])
def test_short_beam_table_gets_a_gaussian_tail(fwhm: float, ell_end: float, b_end: float,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A Gaussian beam tabulated only to ℓ_end (B there = b_end > 1e-3) gives the CAPs of the same
    beam tabulated until B < 1e-6 within 1e-4 (the fitted tail is the Gaussian's), and says so."""
    full = gaussian_table(fwhm, 12.0 * 60.0 * 180.0 / np.pi / fwhm)
    short = gaussian_table(fwhm, ell_end)
    assert short[1][-1] == pytest.approx(b_end, rel=0.02)
    with caplog.at_level(logging.INFO, logger="profemu.observables"):
        got = cap(*short)
    np.testing.assert_allclose(got, cap(*full), rtol=1e-4)
    lines = [r.getMessage() for r in caplog.records if "Gaussian tail" in r.getMessage()]
    assert len(lines) == 1 and f"ends at ℓ = {ell_end:g}" in lines[0]
    assert f"FWHM {fwhm:.4g} arcmin" in lines[0]
    ell, bl, note = extend_beam_tail(*short)
    assert ell[-1] > ell_end and bl[-1] < 1e-6 * 1.01 and np.all(np.diff(ell) > 0) and note == lines[0]
    model = ForwardModel.build(kind="ksz", redshift=0.7, apertures_arcmin=APERTURES, beam_ell=short[0],
                               beam_bl=short[1])
    assert model.angular.beam_note == note


def test_beam_tables_that_cannot_be_extended_are_refused() -> None:
    ell, bl = gaussian_table(1.0, 30000.0)
    rising = bl.copy()
    rising[-3:] = bl[-3] * np.array([1.0, 1.2, 1.5])  # not decreasing near its end
    with pytest.raises(ConfigError, match=r"^beam_bl: the beam table ends at ℓ = 30000 .* not strictly decreasing"):
        cap(ell, rising)
    ell2 = np.arange(0.0, 3001.0)
    lorentz = 1.0 / (1.0 + (ell2 / 500.0) ** 2)  # falls as a power law: not a Gaussian beam's tail
    with pytest.raises(ConfigError, match=r"^beam_bl: .* is not a Gaussian beam's tail .* largest residual"):
        cap(ell2, lorentz)
    with pytest.raises(ConfigError, match=r"^beam_ell: the beam table ends at ℓ = 1000 with B_ℓ / B_0 = 0.9"):
        cap(*gaussian_table(1.0, 1000.0))  # ends before half power


def test_apertures_below_the_beam_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    """Degrees given as arcmin (0.01..0.1 with a 1' beam) are accepted with one warning naming them."""
    ell, bl = gaussian_table(1.0, 50000.0)
    with caplog.at_level(logging.WARNING, logger="profemu.observables"):
        ForwardModel.build(kind="ksz", redshift=0.7, apertures_arcmin=[0.01, 0.02, 0.1, 1.0], beam_ell=ell,
                           beam_bl=bl)
    warned = [r.getMessage() for r in caplog.records if "quarter of the beam FWHM" in r.getMessage()]
    assert len(warned) == 1 and "0.01, 0.02, 0.1 arcmin" in warned[0] and "degrees" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="profemu.observables"):
        ForwardModel.build(kind="ksz", redshift=0.7, apertures_arcmin=[0.5, 1.0], beam_ell=ell, beam_bl=bl)
    assert not [r for r in caplog.records if "quarter of the beam FWHM" in r.getMessage()]


def test_apertures_in_radians_or_degrees_are_named() -> None:
    ell, bl = gaussian_table(1.0, 50000.0)
    with pytest.raises(ConfigError, match=r"^apertures_arcmin: smallest disk radius 0.00029 is below 0.01 arcmin "
                                          r"and looks like radians \(0.00029 rad = 0.9969 arcmin\) or degrees"):
        cap(ell, bl, np.array([0.00029, 0.00058]))


def test_response_limit_is_shared_by_the_reader_and_the_api(tmp_path: Path) -> None:
    """A 545 GHz band (f T_CMB = +15.26 K per y) is accepted by read_response and the API alike;
    a table in mK per y (above RESPONSE_MAX_K = 100) is refused by both, naming the limit."""
    assert tsz_response_nonrelativistic(545.0) == pytest.approx(15.26, abs=0.01)
    assert tsz_response_nonrelativistic(353.0) == pytest.approx(6.107, abs=0.001)
    ell = np.arange(0.0, 60001.0, 50.0)
    path = tmp_path / "r545.txt"
    np.savetxt(path, np.column_stack([ell, np.full_like(ell, 15.26), np.zeros_like(ell)]))
    resp = read_response(path)
    beam = gaussian_table(5.0, 20000.0)
    kw = {"kind": "tsz", "redshift": 0.7, "apertures_arcmin": [2.0, 4.0], "beam_ell": beam[0], "beam_bl": beam[1]}
    pressure = 1e-12 * (1.0 + (RADII / 0.1) ** 2) ** -1.5
    by_table = cap_from_profile(RADII, pressure, response_ell=resp.ell, response=resp.values, **kw)
    by_freq = cap_from_profile(RADII, pressure, frequency_ghz=545.0, **kw)
    np.testing.assert_allclose(by_table, by_freq, rtol=2e-4)  # 15.26 vs 15.2574 K per y
    np.savetxt(path, np.column_stack([ell, np.full_like(ell, 15.26e3), np.zeros_like(ell)]))
    with pytest.raises(FormatError, match=rf"max \|R\| = 1.526e\+04, above RESPONSE_MAX_K = {RESPONSE_MAX_K:g} K_CMB"):
        read_response(path)
    with pytest.raises(ConfigError, match=rf"is above RESPONSE_MAX_K = {RESPONSE_MAX_K:g} K_CMB per unit y"):
        cap_from_profile(RADII, pressure, response_ell=ell, response=np.full_like(ell, 15.26e3), **kw)


# ------------------------------------------------------------------ measurement files
THETA = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
VALUES = np.array([-0.26, -1.54, -3.27, -4.25, -4.74])
SIGMA = 0.1 * np.abs(VALUES) + 0.05
COV = np.outer(SIGMA, SIGMA) * 0.5 ** np.abs(np.subtract.outer(np.arange(5), np.arange(5)))


def test_comma_separated_values_and_npy_covariance(tmp_path: Path) -> None:
    """A CSV with a header line and a .npy covariance read as the whitespace text pair does."""
    csv_path, txt_path = tmp_path / "v.csv", tmp_path / "v.txt"
    table = np.column_stack([THETA, VALUES, SIGMA])
    csv_path.write_text("theta_arcmin,value,error\n" + "".join(",".join(repr(float(x)) for x in r) + "\n"
                                                                for r in table))
    np.savetxt(txt_path, table, header="theta T_CAP err")
    np.save(tmp_path / "c.npy", COV)
    np.savetxt(tmp_path / "c.txt", COV)
    ref = read_cap_measurement(txt_path, tmp_path / "c.txt", kind="tsz", units="muK_arcmin2")
    got = read_cap_measurement(csv_path, tmp_path / "c.npy", kind="tsz", units="muK_arcmin2")
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-15)
    np.testing.assert_allclose(got.covariance, ref.covariance, rtol=1e-15)
    np.testing.assert_allclose(got.apertures_arcmin, THETA)


def test_measurement_messages(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "v.txt", np.column_stack([THETA, VALUES, SIGMA]))
    np.savetxt(tmp_path / "c.txt", COV)
    (tmp_path / "bad.txt").write_text("theta;value;error\n0.5;1;2\n")
    with pytest.raises(FormatError) as info:
        read_cap_measurement(tmp_path / "bad.txt", tmp_path / "c.txt", kind="tsz", units="muK_arcmin2")
    assert TABLE_LAYOUTS in str(info.value) and "original" not in str(info.value)
    bad = COV.copy()
    bad[0, 1] = bad[1, 0] = 3.0 * np.sqrt(COV[0, 0] * COV[1, 1])  # correlation 3: not positive definite
    np.savetxt(tmp_path / "npd.txt", bad)
    smallest = np.linalg.eigvalsh(bad).min()
    with pytest.raises(FormatError, match=rf"covariance is not positive definite \(smallest eigenvalue "
                                          rf"{smallest:.3g}, largest") as info:
        read_cap_measurement(tmp_path / "v.txt", tmp_path / "npd.txt", kind="tsz", units="muK_arcmin2")
    assert "damaged" not in str(info.value)
    asym = COV.copy()
    asym[0, 1] *= 1.5
    np.savetxt(tmp_path / "asym.txt", asym)
    with pytest.raises(FormatError, match=r"covariance is not symmetric \(max \|C - C\^T\| = ") as info:
        read_cap_measurement(tmp_path / "v.txt", tmp_path / "asym.txt", kind="tsz", units="muK_arcmin2")
    assert "damaged" not in str(info.value)
    nan = np.column_stack([THETA, np.where(np.arange(5) == 1, np.nan, VALUES), SIGMA])
    np.savetxt(tmp_path / "nan.txt", nan)
    with pytest.raises(FormatError, match=r"has the non-finite value nan at data row 1, column 1 \(1 in total\); "
                                          r"every value must be a finite number") as info:
        read_cap_measurement(tmp_path / "nan.txt", tmp_path / "c.txt", kind="tsz", units="muK_arcmin2")
    assert "damaged" not in str(info.value)
