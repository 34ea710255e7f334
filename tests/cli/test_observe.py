"""``profemu observe``: CAP mean and std per point and aperture, and the outputs it refuses."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.cli import app
from profemu.observables import ForwardModel, PopulationModel
from tests.helpers import error_line
from tests.observables.synthetic import (
    APERTURES,
    gaussian_beam,
    mass_distribution,
    write_beam,
    write_mass_distribution,
)
from tests.reliability import TinyRun, tiny_run

POINTS = np.array([[0.3, 0.8, 1.2, 0.9, 1.1, 1.0], [0.25, 0.7, 0.5, 2.0, 0.8, 1.5]])
APS = ",".join(f"{a:g}" for a in APERTURES)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture(scope="module")
def inputs(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("observe_inputs")
    points = d / "points.csv"
    rows = [",".join(run.emulator.param_names)] + [",".join(repr(float(v)) for v in p) for p in POINTS]
    points.write_text("\n".join(rows) + "\n")
    return {"beam": write_beam(d / "beam.txt"), "masses": write_mass_distribution(d / "masses.csv"),
            "points": points}


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def observe(run: TinyRun, inputs: dict[str, Path], out: Path, *extra: Any) -> Any:
    return invoke("observe", run.run_dir, "--observable", "ksz", "--redshift", 0.55, "--beam", inputs["beam"],
                  "--apertures", APS, "--mass-distribution", inputs["masses"], "--at", inputs["points"],
                  "--out", out, *extra)


def test_observe_writes_mean_and_std(run: TinyRun, inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    result = observe(run, inputs, out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    rows = list(csv.DictReader(line for line in out.read_text().splitlines() if not line.startswith("#")))
    assert len(rows) == POINTS.shape[0] * APERTURES.size
    ell, bl = gaussian_beam()
    fm = ForwardModel.build(kind="ksz", redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                            omega_m=0.3, h=0.6711)
    model = PopulationModel.build(run.emulator, fm, mass_distribution())
    for i, p in enumerate(POINTS):
        ref = model.at_cosmology(p[0]).predict(p)  # the distance follows each point's Omega_m
        mine = [r for r in rows if int(r["point"]) == i]
        np.testing.assert_allclose([float(r["theta_arcmin"]) for r in mine], APERTURES)
        np.testing.assert_allclose([float(r["mean_muK_arcmin2"]) for r in mine], ref.mean[0], rtol=1e-12)
        np.testing.assert_allclose([float(r["std_muK_arcmin2"]) for r in mine], ref.std[0], rtol=1e-12)
        assert float(mine[0]["Omega_m"]) == p[0]
    assert all(float(r["std_muK_arcmin2"]) > 0 for r in rows)
    assert "# mass bins outside the training range [dex]: 0.000, 0.000, 0.000" in out.read_text()


def test_observe_refuses_to_overwrite(run: TinyRun, inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    out.write_text("keep me\n")
    error_line(observe(run, inputs, out), "already exists", "--force")
    assert out.read_text() == "keep me\n"
    assert observe(run, inputs, out, "--force").exit_code == 0
    before = inputs["points"].read_text()
    error_line(observe(run, inputs, inputs["points"], "--force"), "points file")
    assert inputs["points"].read_text() == before


@pytest.mark.parametrize(("change", "needles"), [
    ({"--apertures": "2,1"}, ("--apertures", "increasing")),
    ({"--response": "beam"}, ("--response", "tsz only")),
    ({"--mass-distribution": None}, ("--mass-distribution, --log10-mass", "exactly one")),
    ({"--redshift": -1}, ("redshift",)),
    ({"--observable": "tsz"}, ("--response, --frequency", "tsz needs its band")),
    ({"--frequency": 150}, ("--response, --frequency", "tsz only")),
    ({"--h": 67.11}, ("h: got 67.11", "pass h = 0.6711")),
])
def test_observe_bad_input(run: TinyRun, inputs: dict[str, Path], tmp_path: Path, change: dict[str, Any],
                           needles: tuple[str, ...]) -> None:
    args: dict[str, Any] = {"--observable": "ksz", "--redshift": 0.55, "--beam": inputs["beam"], "--apertures": APS,
                            "--mass-distribution": inputs["masses"], "--at": inputs["points"],
                            "--out": tmp_path / "cap.csv"}
    for key, value in change.items():
        args[key] = inputs["beam"] if value == "beam" else value
    flat = [x for k, v in args.items() if v is not None for x in (k, v)]
    error_line(invoke("observe", run.run_dir, *flat), *needles)
    assert not (tmp_path / "cap.csv").exists()


def test_observe_points_must_name_every_parameter(run: TinyRun, inputs: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "points.csv"
    bad.write_text("Omega_m,sigma_8\n0.3,0.8\n")
    args = ["observe", run.run_dir, "--observable", "ksz", "--redshift", 0.55, "--beam", inputs["beam"],
            "--apertures", APS, "--log10-mass", 13.0, "--at", bad, "--out", tmp_path / "cap.csv"]
    error_line(invoke(*args), "--at", "missing ['A_SN1'")


def test_observe_tsz_at_a_band_centre(run: TinyRun, inputs: dict[str, Path], tmp_path: Path) -> None:
    """--frequency sets the tSZ band: the CSV equals the forward model at that frequency and says so."""
    out = tmp_path / "tsz.csv"
    result = invoke("observe", run.run_dir, "--observable", "tsz", "--frequency", 90, "--redshift", 0.55,
                    "--beam", inputs["beam"], "--apertures", APS, "--mass-distribution", inputs["masses"],
                    "--at", inputs["points"], "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    text = out.read_text()
    assert "band: non-relativistic f(nu) T_CMB at 90 GHz" in text and "v_rms" not in text
    ell, bl = gaussian_beam()
    fm = ForwardModel.build(kind="tsz", redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                            omega_m=0.3, h=0.6711, frequency_ghz=90.0)
    ref = PopulationModel.build(run.emulator, fm, mass_distribution()).at_cosmology(POINTS[0, 0]).predict(POINTS[0])
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    np.testing.assert_allclose([float(r["mean_muK_arcmin2"]) for r in rows if r["point"] == "0"], ref.mean[0],
                               rtol=1e-12)


def _sb35_points(emulator: Any, path: Path, h_values: tuple[float, ...]) -> np.ndarray:
    from tests.observables.tiny_sb35 import centre_point

    points = np.array([centre_point(emulator, Omega_m=0.3, h=h) for h in h_values])
    rows = [",".join(emulator.param_names)] + [",".join(repr(float(v)) for v in p) for p in points]
    path.write_text("\n".join(rows) + "\n")
    return points


def _means(path: Path, point: int) -> np.ndarray:
    rows = list(csv.DictReader(line for line in path.read_text().splitlines() if not line.startswith("#")))
    return np.array([float(r["mean_muK_arcmin2"]) for r in rows if int(r["point"]) == point])


def test_observe_uses_each_points_h(inputs: dict[str, Path], tmp_path: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """An emulator with an h input: D_A and R200c use each point's h (0.6 and 0.865), the header
    says so, and --h is refused with one line."""
    from tests.observables.tiny_sb35 import tiny_sb35_run

    sb35 = tiny_sb35_run(tmp_path_factory.getbasetemp() / "tiny_sb35", with_pk=False)
    points = _sb35_points(sb35.emulator, tmp_path / "points.csv", (0.6, 0.865))
    out = tmp_path / "cap.csv"
    args = ["observe", sb35.run_dir, "--observable", "ksz", "--redshift", 0.55, "--beam", inputs["beam"],
            "--apertures", APS, "--mass-distribution", inputs["masses"], "--at", tmp_path / "points.csv"]
    result = invoke(*args, "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    ell, bl = gaussian_beam()
    fm = ForwardModel.build(kind="ksz", redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                            omega_m=0.3, h=0.6711)
    model = PopulationModel.build(sb35.emulator, fm, mass_distribution())
    j = sb35.emulator.param_names.index("h")
    for i, p in enumerate(points):
        ref = model.at_cosmology(0.3, p[j]).predict(p).mean[0]
        np.testing.assert_allclose(_means(out, i), ref, rtol=1e-12)
    assert abs(_means(out, 1)[0] / model.predict(points[1]).mean[0][0] - 1) > 0.03  # not the default h
    assert "h = each point's parameter 'h'" in out.read_text()
    error_line(invoke(*args, "--out", tmp_path / "other.csv", "--h", 0.674), "--h 0.674",
               "the emulator has the parameter 'h'", "drop --h")
    error_line(invoke(*args, "--out", tmp_path / "other.csv", "--omega-m", 0.3), "--omega-m 0.3",
               "the emulator has the parameter 'Omega_m'")


def test_observe_with_a_pk_emulator(inputs: dict[str, Path], tmp_path: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """An emulator with P(k) inputs: the training centre by default (logged), --pk-ratio FILE
    otherwise; --pk-ratio for an emulator without P(k) is refused."""
    from profemu.emulator.tables import fiducial_pk_ratio
    from tests.observables.tiny_sb35 import tiny_sb35_run

    root = tmp_path_factory.getbasetemp() / "tiny_sb35"
    sb35 = tiny_sb35_run(root, with_pk=True)
    points = _sb35_points(sb35.emulator, tmp_path / "points.csv", (0.7,))
    args = ["observe", sb35.run_dir, "--observable", "ksz", "--redshift", 0.55, "--beam", inputs["beam"],
            "--apertures", APS, "--mass-distribution", inputs["masses"], "--at", tmp_path / "points.csv"]
    result = invoke(*args, "--out", tmp_path / "default.csv")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "assuming the training set's centre" in result.stderr
    pk = np.asarray(sb35.dataset.pk_ratio[5], float)  # a training row's P(k): inside the box
    assert not np.allclose(pk, fiducial_pk_ratio(sb35.emulator))  # type: ignore[arg-type]
    np.savetxt(tmp_path / "pk.txt", pk)
    result = invoke(*args, "--out", tmp_path / "given.csv", "--pk-ratio", tmp_path / "pk.txt")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    ell, bl = gaussian_beam()
    fm = ForwardModel.build(kind="ksz", redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                            omega_m=0.3, h=0.7)
    for name, ratio in (("default.csv", None), ("given.csv", pk)):
        ref = PopulationModel.build(sb35.emulator, fm, mass_distribution(), pk_ratio=ratio).predict(points[0])
        np.testing.assert_allclose(_means(tmp_path / name, 0), ref.mean[0], rtol=1e-12)
    nopk = tiny_sb35_run(root, with_pk=False)
    error_line(invoke("observe", nopk.run_dir, *args[2:], "--out", tmp_path / "x.csv", "--pk-ratio",
                      tmp_path / "pk.txt"), "--pk-ratio", "trained without P(k)")
