"""``profemu infer`` and ``profemu fisher``: the files they write and the input they refuse."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.cli import app
from tests.helpers import error_line as shared_error_line
from tests.reliability import TinyRun, tiny_run

FIXED = ["--fix", "Omega_m=0.3", "--fix", "sigma_8=0.8", "--fix", "A_SN2=1.0", "--fix", "A_AGN2=1.0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result: Any, *needles: str) -> str:
    """Exit code 2, no traceback, exactly one ``error:`` line naming the problem."""
    line = shared_error_line(result, *needles)
    assert line.startswith("error: ")
    return line


def write_obs(path: Path, run: TinyRun, *, row: int = 0, radius_scale: float = 1.0,
              drop: str | None = None, change: tuple[str, int, float] | None = None,
              rename: dict[str, str] | None = None) -> Path:
    ds = run.dataset
    cols: dict[str, np.ndarray] = {"radius": ds.radius * radius_scale}
    for f in ("rho", "pth"):
        cols[f] = ds.profiles[f][row].copy()
        cols[f"{f}_err"] = 0.05 * cols[f]
    if change is not None:
        name, j, value = change
        cols[name][j] = value
    if drop is not None:
        del cols[drop]
    cols = {(rename or {}).get(k, k): v for k, v in cols.items()}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(cols))
        for j in range(ds.radius.size):
            writer.writerow([repr(float(cols[c][j])) for c in cols])
    return path


def test_infer_writes_samples_summary_and_corner(run: TinyRun, tmp_path: Path) -> None:
    obs = write_obs(tmp_path / "obs.csv", run)
    out = tmp_path / "post"
    result = invoke("infer", run.run_dir, "--observed", obs, "--log10-mass", run.dataset.log10_mass[0], *FIXED,
                    "--chains", 2, "--warmup", 100, "--draws", 150, "--allow-unconverged", "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    with (out / "samples.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["A_SN1", "A_AGN1"]
    values = np.array(rows[1:], dtype=float)
    assert values.shape == (2 * 150, 2)
    box = run.emulator.training_box
    for j, name in enumerate(rows[0]):
        assert box[name][0] * (1 - 1e-6) <= values[:, j].min() and values[:, j].max() <= box[name][1] * (1 + 1e-6)
    summary = json.loads((out / "summary.json").read_text())
    for j, name in enumerate(rows[0]):
        stats = summary["parameters"][name]
        assert set(stats) >= {"mean", "std", "q2.5", "q16", "q50", "q84", "q97.5", "r_hat", "ess"}
        assert stats["mean"] == pytest.approx(values[:, j].mean(), rel=1e-9)
        assert stats["q16"] <= stats["q50"] <= stats["q84"]
    assert summary["fixed"] == {"Omega_m": 0.3, "sigma_8": 0.8, "A_SN2": 1.0, "A_AGN2": 1.0}
    assert summary["observation"]["n_data"] == 2 * run.dataset.radius.size
    # the redshift it was predicted at: the tiny run's single training redshift
    assert summary["observation"]["redshift"] == pytest.approx(run.emulator.input_spec.training_redshift)
    assert "infer: fitting the field(s) ['rho', 'pth']" in result.stderr
    assert (out / "corner.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*")), "temporary files left behind"


def _cov(tmp: Path, kind: str, n: int) -> Path:
    path = tmp / f"cov_{kind}.npy"
    if kind == "shape":
        np.save(path, np.eye(n + 1) * 1e-4)
    elif kind == "not_psd":
        c = np.eye(n) * 1e-4
        c[0, 1] = c[1, 0] = 1e-3
        np.save(path, c)
    else:  # an object array: loading it would unpickle, which is refused
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


@pytest.mark.parametrize(("case", "needles"), [
    ("missing_column", ["missing column(s) ['pth_err']"]),
    ("negative_value", ["column 'rho', line 4", "is not > 0"]),
    ("zero_error", ["column 'pth_err', line 3", "is not > 0"]),
    ("no_overlap", ["do not overlap the emulator's grid"]),
    ("unknown_fix", ["unknown parameter name(s) ['Omega_x']"]),
    ("bad_fix", ["--fix 'Omega_m'", "NAME=VALUE"]),
    ("cov_shape", ["covariance: shape (17, 17)", "(16, 16)"]),
    ("cov_not_psd", ["covariance: not positive definite"]),
    ("cov_pickle", ["not a plain numeric array", "pickled objects are never loaded"]),
    ("no_mass", ["log10_mass: missing"]),
    ("nan_mass", ["log10_mass (--log10-mass): nan is not a number"]),
    ("linear_mass", ["log10_mass (--log10-mass): 1e+12 is not a halo mass", "did you pass M instead of log10 M?"]),
    ("empty_fields", ["--fields ','", "no field named"]),
    ("misnamed_field", ["['Pe', 'Pe_err'] are not the emulator's fields", "['pth'] would not be fitted",
                        "--fields rho"]),
    ("redshift_unused", ["--redshift 2", "is not a redshift input of it"]),
    ("pk_unused", ["--pk-ratio", "trained without P(k)"]),
    ("huge_draws", ["--draws 1000000000", "allowed 1 to 1,000,000"]),
    ("huge_chains", ["--chains 1000000", "allowed 1 to 1,024", "lower it"]),
    ("no_chains", ["--chains 0", "allowed 1 to 1,024", "raise it"]),
])
def test_infer_refuses_bad_input_with_one_line(run: TinyRun, tmp_path: Path, case: str, needles: list[str]) -> None:
    mass: list[Any] = ["--log10-mass", 12.0]
    extra: list[Any] = []
    kwargs: dict[str, Any] = {}
    if case == "missing_column":
        kwargs["drop"] = "pth_err"
    elif case == "negative_value":
        kwargs["change"] = ("rho", 2, -1.0)
    elif case == "zero_error":
        kwargs["change"] = ("pth_err", 1, 0.0)
    elif case == "no_overlap":
        kwargs["radius_scale"] = 1e3
    elif case == "unknown_fix":
        extra = ["--fix", "Omega_x=0.3"]
    elif case == "bad_fix":
        extra = ["--fix", "Omega_m"]
    elif case.startswith("cov_"):
        extra = ["--covariance", _cov(tmp_path, case[4:], 16)]
    elif case == "no_mass":
        mass = []
    elif case == "nan_mass":
        mass = ["--log10-mass", "nan"]
    elif case == "linear_mass":
        mass = ["--log10-mass", "1e12"]
    elif case == "empty_fields":
        extra = ["--fields", ","]
    elif case == "misnamed_field":  # a field spelled otherwise than the emulator's was silently not fitted
        kwargs["rename"] = {"pth": "Pe", "pth_err": "Pe_err"}
    elif case == "redshift_unused":
        extra = ["--redshift", "2"]
    elif case == "pk_unused":
        (tmp_path / "pk.txt").write_text("1.0\n")
        extra = ["--pk-ratio", tmp_path / "pk.txt"]
    elif case == "huge_draws":
        extra = ["--draws", "1000000000"]
    elif case == "huge_chains":
        extra = ["--chains", "1000000"]
    elif case == "no_chains":
        extra = ["--chains", "0"]
    obs = write_obs(tmp_path / "obs.csv", run, **kwargs)
    out = tmp_path / "out"
    result = invoke("infer", run.run_dir, "--observed", obs, *mass, *extra, "--out", out)
    error_line(result, *needles)
    assert not (out / "samples.csv").exists()


def test_fisher_writes_matrix_and_errors(run: TinyRun, tmp_path: Path) -> None:
    from profemu.inference import Observation, fisher_matrix, make_log_posterior

    obs_path = write_obs(tmp_path / "obs.csv", run)
    emu = run.emulator
    box = emu.training_box
    point = {n: float(np.sqrt(box[n][0] * box[n][1])) if n in emu.log_params else 0.5 * (box[n][0] + box[n][1])
             for n in emu.param_names}
    at = tmp_path / "point.csv"
    at.write_text(",".join(point) + "\n" + ",".join(repr(v) for v in point.values()) + "\n")
    out = tmp_path / "fisher"
    mass = run.dataset.log10_mass[0]
    result = invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                    "--fix", "Omega_m=" + repr(point["Omega_m"]), "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "data points for" not in result.stderr  # more data points than free parameters
    record = json.loads((out / "fisher.json").read_text())
    names = [n for n in emu.param_names if n != "Omega_m"]
    # one radius of one field: 1 data point for 5 free parameters, and errors wider than the box
    lines = obs_path.read_text().splitlines()
    one = tmp_path / "one_radius.csv"
    one.write_text("radius,rho,rho_err\n" + ",".join(lines[3].split(",")[:3]) + "\n")
    few = invoke("fisher", run.run_dir, "--at", at, "--observed", one, "--log10-mass", mass,
                 "--fix", "Omega_m=" + repr(point["Omega_m"]), "--out", tmp_path / "few")
    assert few.exit_code == 0, few.stderr
    assert "warning: 1 data points for 5 free parameters" in few.stderr
    assert "exceed the width of the training box" in " ".join(few.stderr.split())
    assert record["names"] == names
    from profemu.inference import read_observation

    obs = read_observation(obs_path, fields=["rho", "pth"], log10_mass=mass, radius_unit=emu.radius_unit)
    assert isinstance(obs, Observation)
    post = make_log_posterior(emu, obs, fix={"Omega_m": point["Omega_m"]})
    expected = fisher_matrix(post, {n: point[n] for n in names})
    np.testing.assert_allclose(np.array(record["fisher_matrix"]), expected.matrix, rtol=1e-6)
    np.testing.assert_allclose([record["marginal_errors"][n] for n in names], expected.errors_physical, rtol=1e-6)
    rows = list(csv.reader((out / "fisher_matrix.csv").read_text().splitlines()))
    assert rows[0] == ["parameter", *names] and len(rows) == 1 + len(names)
    boxed = invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                   "--fix", "Omega_m=" + repr(point["Omega_m"]), "--box-prior", "--out", tmp_path / "boxed")
    assert boxed.exit_code == 0, (boxed.stdout, boxed.stderr, boxed.exception)
    with_box = json.loads((tmp_path / "boxed" / "fisher.json").read_text())
    assert with_box["box_prior"] is True and record["box_prior"] is False
    expected_box = fisher_matrix(post, {n: point[n] for n in names}, include_box_prior=True)
    np.testing.assert_allclose(np.array(with_box["fisher_matrix"]), expected_box.matrix, rtol=1e-6)
    bad = tmp_path / "bad_point.csv"
    bad.write_text("Omega_m,foo\n0.3,1\n")
    error_line(invoke("fisher", run.run_dir, "--at", bad, "--observed", obs_path, "--log10-mass", mass,
                      "--out", tmp_path / "bad_out"), "unknown parameter name(s) ['foo']")
    before = (out / "fisher.json").read_text()
    error_line(invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                      "--out", out), "folder exists and is not empty; pass --force")
    error_line(invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                      "--out", run.run_dir, "--force"), "holds or is inside the run folder")
    assert (out / "fisher.json").read_text() == before and (run.run_dir / "emulator").is_dir()
    # --force replaces an earlier result, never a folder of the user's own files
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    error_line(invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                      "--fix", "Omega_m=" + repr(point["Omega_m"]), "--out", mine, "--force"),
               "holds notes.txt", "not an earlier result")
    assert (mine / "notes.txt").read_text() == "mine"
    again = invoke("fisher", run.run_dir, "--at", at, "--observed", obs_path, "--log10-mass", mass,
                   "--fix", "Omega_m=" + repr(point["Omega_m"]), "--out", out, "--force")
    assert again.exit_code == 0, (again.stdout, again.stderr, again.exception)


@pytest.mark.parametrize(("command", "options"), [
    ("infer", ["--observed", "--log10-mass", "--fix", "--covariance", "--out", "--model-covariance"]),
    ("fisher", ["--at", "--observed", "--out"]),
])
def test_help_lists_the_options(command: str, options: list[str]) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})  # no truncated names
    assert result.exit_code == 0, result.stdout
    for option in options:
        assert option in result.stdout


def test_a_parameter_line_with_an_undefined_r_hat() -> None:
    """A chain that never moved has no R-hat (null in summary.json): the summary line says n/a
    instead of failing after the files are written."""
    from profemu.cli.inference import parameter_line

    stats = {"q16": 1.0, "q50": 1.5, "q84": 2.0, "r_hat": None, "ess": float("nan")}
    line = parameter_line("A_SN1", stats)
    assert line.strip().startswith("A_SN1 = 1.5") and line.endswith("R-hat n/a  ESS n/a")
    assert parameter_line("A_SN1", {**stats, "r_hat": 1.0123, "ess": 412.4}).endswith("R-hat 1.012  ESS 412")


def test_a_posterior_pressing_against_the_training_box_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    """A parameter whose samples pile at an edge of the prior (the training box) gets one warning line;
    one spread over its range gets none (about 2% of a flat posterior lies within 2% of an edge)."""
    from types import SimpleNamespace

    from profemu.cli.inference import _warn_at_edges

    rng = np.random.default_rng(0)
    flat = np.column_stack([rng.uniform(0.1, 0.108, 2000), rng.uniform(-1.0, 1.0, 2000)])
    post = SimpleNamespace(names=("Omega_m", "A_SN1"),
                           space=SimpleNamespace(lower=np.array([0.1, -1.0]), upper=np.array([0.5, 1.0]),
                                                 is_log=(False, True)))
    _warn_at_edges(post, SimpleNamespace(flat=flat))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the posterior of Omega_m presses against the lower "
                                                   "edge of its prior range [0.1, 0.5]"), lines
