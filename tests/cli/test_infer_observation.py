"""``profemu infer RUN --observation SPEC.yaml``: the files it writes (as one unit) and what it refuses;
one test on the real ACT DR5 x CMASS files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.cli import app
from profemu.observables import ForwardModel, PopulationModel
from tests.conftest import SHARED_DATA, require_shared
from tests.helpers import error_line
from tests.observables.synthetic import (
    APERTURES,
    DUST,
    TRUTH,
    gaussian_beam,
    mass_distribution,
    measurement,
    write_beam,
    write_mass_distribution,
    write_measurement,
)
from tests.reliability import TinyRun, tiny_run

SAMPLER = "chains: 2\nwarmup: 30\ndraws: 30\nmax_tree_depth: 4\n"
FIX = "fix: {Omega_m: 0.3, sigma_8: 0.8, A_SN2: 1.1, A_AGN2: 1.0}\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture(scope="module")
def spec(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tSZ + dust measurement made from the tiny emulator itself, and its spec (relative paths)."""
    d = tmp_path_factory.mktemp("spec")
    ell, bl = gaussian_beam()
    fm = ForwardModel.build(kind="tsz", redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                            omega_m=0.3, h=0.6711, frequency_ghz=150.0)
    values = PopulationModel.build(run.emulator, fm, mass_distribution()).predict(TRUTH).mean[0] + 0.8 * DUST
    write_measurement(d / "tsz.cap", measurement("tsz", values))
    write_beam(d / "beam.txt")
    write_mass_distribution(d / "masses.csv")
    (d / "dust.csv").write_text("theta_arcmin,dust_muK_arcmin2\n" + "".join(
        f"{a!r},{v!r}\n" for a, v in zip(APERTURES.tolist(), DUST.tolist(), strict=True)))
    path = d / "spec.yaml"
    path.write_text("observable: tsz\nmeasured: tsz.cap\nbeam: beam.txt\nfrequency_ghz: 150\nredshift: 0.55\n"
                    "mass_distribution: masses.csv\ntemplate: dust.csv\n" + FIX + SAMPLER)
    return path


@pytest.fixture(scope="module")
def act_dir() -> Path:
    """The ACT DR5 x CMASS directory; skips with a reason outside CI when absent, fails in CI."""
    return require_shared(SHARED_DATA / "act_cmass", "ACT x CMASS data")


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def check_fit_folder(out: Path, names: tuple[str, ...]) -> dict[str, Any]:
    assert sorted(p.name for p in out.iterdir()) == ["cap_fit.png", "samples.csv", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary["parameters"]) == names
    for entry in summary["parameters"].values():
        assert np.isfinite(entry["r_hat"]) and entry["r_hat"] > 0.9
    fit = summary["map_fit"]
    assert fit["chi2"] >= 0 and 0 <= fit["p_value"] <= 1 and fit["n_data"] == 9
    header = (out / "samples.csv").read_text().splitlines()[0]
    assert header == ",".join(names)
    assert (out / "cap_fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return summary


def test_infer_observation_end_to_end(run: TinyRun, spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit"
    result = invoke("infer", run.run_dir, "--observation", spec, "--out", out, "--allow-unconverged")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    summary = check_fit_folder(out, ("A_SN1", "A_AGN1", "A_dust_tsz"))
    assert "MAP chi2 =" in result.stdout
    # made from the model at the truth: the MAP fits it (chi2 far below the 9 data points)
    assert summary["map_fit"]["chi2"] < 3.0
    assert summary["map"]["A_dust_tsz"] == pytest.approx(0.8, abs=0.3)
    assert summary["observations"][0]["mass_bins"][0]["outside_dex"] == 0.0
    # a second run into the same folder is refused without --force; nothing is touched
    before = (out / "summary.json").read_text()
    error_line(invoke("infer", run.run_dir, "--observation", spec, "--out", out), "not empty", "--force")
    assert (out / "summary.json").read_text() == before


def test_infer_needs_exactly_one_observation(run: TinyRun, spec: Path, tmp_path: Path) -> None:
    error_line(invoke("infer", run.run_dir, "--out", tmp_path / "o"), "--observed, --observation", "exactly one")
    error_line(invoke("infer", run.run_dir, "--observation", spec, "--observed", spec, "--out", tmp_path / "o"),
               "exactly one")
    error_line(invoke("infer", run.run_dir, "--observation", spec, "--out", spec.parent), "holds or is inside", "--force does not")
    bad = spec.parent / "bad.yaml"
    bad.write_text(spec.read_text() + "bogus: 1\n")
    error_line(invoke("infer", run.run_dir, "--observation", bad, "--out", tmp_path / "o"), "unknown key", "bogus")
    assert not (tmp_path / "o").exists()


@pytest.mark.camels
def test_infer_on_the_real_act_files(run: TinyRun, act_dir: Path, tmp_path: Path) -> None:
    """kSZ + tSZ of ACT DR5 x CMASS (files as published, μK sr) with the real beam, response,
    two-halo table, dust template and CMASS mass distribution: every file is read and the fit runs."""
    spec = tmp_path / "act.yaml"
    a = {k: act_dir / v for k, v in {
        "kv": "cmass_f150_diskring_ksz_varweight_measured.txt", "kc": "cmass_f150_cov_diskring_ksz_varweight_bootstrap.txt",
        "tv": "cmass_f150_diskring_tsz_varweight_measured.txt", "tc": "cmass_f150_cov_diskring_tsz_varweight_bootstrap.txt",
        "beam": "act_planck_dr5.01_s08s18_f150_daynight_beam.txt",
        "resp": "act_planck_dr5.01_s08s18_AA_f150_daynight_response_tsz.txt",
        "m": "cmass_halo_mass_distribution.csv", "dust": "dust_f150_muK_arcmin2.csv",
        "twoh": "twohalo_cmass_average.txt"}.items()}
    common = f"beam: {a['beam']}, redshift: 0.55, mass_distribution: {a['m']}, two_halo: {a['twoh']}"
    spec.write_text(
        "observations:\n"
        f"  - {{observable: ksz, measured: {a['kv']}, covariance: {a['kc']}, {common}, two_halo_free: true}}\n"
        f"  - {{observable: tsz, measured: {a['tv']}, covariance: {a['tc']}, response: {a['resp']}, {common},"
        f" template: {a['dust']}}}\n" + FIX + SAMPLER)
    out = tmp_path / "fit"
    result = invoke("infer", run.run_dir, "--observation", spec, "--out", out, "--allow-unconverged")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary["parameters"]) == ("A_SN1", "A_AGN1", "A_2h_ksz", "A_dust_tsz")
    assert summary["map_fit"]["n_data"] == 18
    assert [o["observable"] for o in summary["observations"]] == ["ksz", "tsz"]
    assert summary["observations"][0]["apertures_arcmin"] == pytest.approx(APERTURES.tolist())
