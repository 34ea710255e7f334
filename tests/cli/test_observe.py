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
