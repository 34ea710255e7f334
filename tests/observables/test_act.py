"""Readers of the ACT DR5 × CMASS files (need ../shared) and of the generic CAP format (no data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.errors import FormatError
from profemu.observables import (
    ACTCMASSData,
    CAPMeasurement,
    read_beam,
    read_cap_file,
    read_cap_measurement,
    read_response,
    write_cap_file,
)
from profemu.observables.act import ACT_FILES, read_halo_mass_distribution
from profemu.observables.units import SR_TO_ARCMIN2


@pytest.mark.camels
def test_act_files_in_muk_arcmin2(act_data: ACTCMASSData, act_dir: Path) -> None:
    raw = np.loadtxt(act_dir / ACT_FILES["ksz_values"])
    ksz, tsz = act_data.ksz, act_data.tsz
    np.testing.assert_allclose(ksz.apertures_arcmin, np.linspace(1.0, 6.0, 9))
    np.testing.assert_allclose(ksz.values, raw[:, 1] * SR_TO_ARCMIN2)
    assert ksz.values[0] == pytest.approx(0.229353, rel=1e-5)
    np.testing.assert_allclose(ksz.in_sr()[0], raw[:, 1])
    # the error column differs from √diag(cov) by up to 4% (README)
    assert np.max(np.abs(ksz.sigma / ksz.errors - 1)) < 0.04
    # README: a zero-signal model gives χ² ≈ 156 against the tSZ covariance
    assert tsz.chi2(np.zeros(9)) == pytest.approx(156.0, abs=0.5)
    assert ksz.chi2(ksz.values) == 0.0
    assert act_data.beam.ell[0] == 0 and act_data.beam.values[0] == pytest.approx(1.0)
    assert act_data.response.values[0] == pytest.approx(-2.7857403)
    assert act_data.response.ell.size == 50 and act_data.response.scatter is not None
    md = act_data.mass_distribution
    assert md.weights.sum() == pytest.approx(1.0)
    assert md.log10_mass_center[np.argmax(md.weights)] == pytest.approx(13.16, abs=0.01)
    np.testing.assert_allclose(act_data.dust.apertures_arcmin, ksz.apertures_arcmin)
    two_h = act_data.two_halo
    np.testing.assert_allclose(two_h.radius_mpc(0.7), two_h.radius_mpc_h / 0.7)
    assert two_h.pressure_erg_cm3[0] == pytest.approx(2.751490979892967716e-14)


@pytest.mark.camels
def test_act_bad_files(act_dir: Path, tmp_path: Path) -> None:
    values = act_dir / ACT_FILES["ksz_values"]
    cov = act_dir / ACT_FILES["ksz_covariance"]
    with pytest.raises(FormatError, match=r"has shape \(9, 9\), expected \(8, 8\)"):
        short = tmp_path / "short.txt"
        short.write_text("\n".join(values.read_text().splitlines()[:8]) + "\n")
        read_cap_measurement(short, cov, kind="ksz")
    with pytest.raises(FormatError, match=r"above any stacked CAP \(100000\); the numbers are likely in muK_arcmin2"):
        scaled = tmp_path / "arcmin.txt"
        np.savetxt(scaled, np.loadtxt(values) * [1.0, SR_TO_ARCMIN2, SR_TO_ARCMIN2])
        read_cap_measurement(scaled, cov, kind="ksz")
    with pytest.raises(FormatError, match=r"covariance is not positive definite"):
        bad = tmp_path / "cov.txt"
        np.savetxt(bad, -np.loadtxt(cov))
        read_cap_measurement(values, bad, kind="ksz")
    table = np.loadtxt(act_dir / ACT_FILES["beam"])
    beam = tmp_path / "beam.txt"
    with pytest.raises(FormatError, match=r"starts at ell = 2; the table must start at ell = 0 \(or 1\)"):
        np.savetxt(beam, table[2:])
        read_beam(beam)
    with pytest.raises(FormatError, match=r"has B = 100 at ell = 0; the beam must be normalised to B_0 = 1"):
        np.savetxt(beam, table * [1.0, 100.0])
        read_beam(beam)
    with pytest.raises(FormatError, match=r"ksz values: every \|T_CAP\| and error is below 0.0001 muK arcmin\^2 "
                                          r"after reading it in units='muK_arcmin2'.*likely in muK_sr"):
        read_cap_measurement(values, cov, kind="ksz", units="muK_arcmin2")
    # a third column (the beam's error) is ignored; a table from ell = 1 is accepted
    np.savetxt(beam, np.column_stack([table, 0.01 * table[:, 1]])[1:])
    np.testing.assert_array_equal(read_beam(beam).values, table[1:, 1])
    with pytest.raises(FormatError, match=r"column 2 invalid"):
        read_response(act_dir / ACT_FILES["response"], column=2)
    with pytest.raises(FormatError, match=r"not found"):
        read_cap_measurement(tmp_path / "missing.txt", cov, kind="ksz")


def test_generic_cap_format_roundtrip(tmp_path: Path) -> None:
    cov = np.array([[4.0, 1.0, 0.5], [1.0, 9.0, 2.0], [0.5, 2.0, 16.0]]) * 1e-2
    m = CAPMeasurement(kind="tsz", apertures_arcmin=np.array([1.0, 2.0, 3.0]),
                       values=np.array([-0.1, -0.3, -0.5]), covariance=cov, errors=np.sqrt(np.diag(cov)),
                       metadata={"survey": "mock"})
    path = write_cap_file(tmp_path / "m.txt", m, extra={"redshift": "0.55"})
    back = read_cap_file(path)
    assert back.kind == "tsz" and back.metadata["survey"] == "mock" and back.metadata["redshift"] == "0.55"
    np.testing.assert_array_equal(back.values, m.values)
    np.testing.assert_array_equal(back.covariance, m.covariance)
    # the same file written in μK sr reads back in μK arcmin²
    text = path.read_text().replace("# units: muK_arcmin2", "# units: muK_sr")
    rows = [ln for ln in text.splitlines() if not ln.startswith("#")]
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    scaled = []
    for row in rows:
        x = np.array(row.split(), dtype=float)
        x[1] /= SR_TO_ARCMIN2
        x[2:] /= SR_TO_ARCMIN2**2
        scaled.append(" ".join(f"{v:.17g}" for v in x))
    sr_path = tmp_path / "sr.txt"
    sr_path.write_text("\n".join(head + scaled) + "\n")
    np.testing.assert_allclose(read_cap_file(sr_path).values, m.values, rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1 2 3\n", r"must start with '# profemu-cap 1'"),
        ("# profemu-cap 1\n# kind: sz\n# units: muK_sr\n1 0.1 1\n", r"needs '# kind: ksz\|tsz'"),
        ("# profemu-cap 1\n# kind: ksz\n# units: muK_arcmin2\n1 0.1 1 0\n", r"has 4 columns for 1 apertures"),
        ("# profemu-cap 1\n# kind: ksz\n# units: muK_arcmin2\n2 0.1 1 0\n1 0.1 0 1\n",
         r"column 1 is not strictly increasing"),
        ("# profemu-cap 1\n# kind: ksz\n# units: muK_arcmin2\n1 0.1 1 2\n2 0.1 2 1\n",
         r"covariance is not positive definite"),
    ],
)
def test_generic_cap_format_errors(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match=pattern) as info:
        read_cap_file(path)
    assert "\n" not in str(info.value)


def test_mass_distribution_reader(tmp_path: Path) -> None:
    path = tmp_path / "md.csv"
    path.write_text("# comment\nlog10_mass_lo,log10_mass_hi,log10_mass_center,weight\n12,13,12.5,1\n13,14,13.5,3\n")
    md = read_halo_mass_distribution(path)
    np.testing.assert_allclose(md.weights, [0.25, 0.75])
    path.write_text("log10_mass_lo,log10_mass_hi,log10_mass_center,weight\n12,13,12.5,-1\n")
    with pytest.raises(FormatError, match=r"weights must be finite, >= 0 and not all 0"):
        read_halo_mass_distribution(path)
    # weights whose sum overflows keep their ratios
    path.write_text("log10_mass_lo,log10_mass_hi,log10_mass_center,weight\n12,13,12.5,1e308\n13,14,13.5,1.5e308\n")
    np.testing.assert_allclose(read_halo_mass_distribution(path).weights, [0.4, 0.6])
