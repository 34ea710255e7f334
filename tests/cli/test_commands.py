"""The command line: help texts, one-line user errors with exit code 2, and a full run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.cli import app
from profemu.cli.commands import parse_overrides
from profemu.data.mock import make_mock_universe
from profemu.errors import ConfigError
from tests.helpers import stderr_error_lines

COMMANDS = ["train", "evaluate", "predict", "compare", "report", "mock", "diagnose", "demo"]
TINY = ["--members", "2", "--epochs", "3", "--set", "model.hidden=[16]", "--set", "train.batch_size=64",
        "--set", "train.log_every=1", "--set", "data.val_fraction=0.15", "--set", "data.test_fraction=0.2",
        "--set", "train.cv_folds=0"]


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles: str) -> str:
    """Exit code 2, no traceback, exactly one ``error:`` line on stderr naming the problem."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = stderr_error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mock.npz"
    # 40 simulations of 4 mass bins, the lh6 parameter set (no P(k)) to keep the inputs small
    make_mock_universe(160, seed=3, param_set="lh6", n_r=12).dataset.save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_file: Path) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("train", "--data", data_file, "--field", "rho,pth", "--out", run, *TINY)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    # plain progress lines (stdout is not a terminal) and the held-out table
    assert "epoch 1/3" in result.stdout and "epoch 3/3" in result.stdout
    assert "held-out" in result.stdout and str(run) in result.stdout
    # the library's progress lines reach stderr once each: the split, the compilation note
    assert result.stderr.count("compiling the training step") >= 1, result.stderr
    assert "training on " in result.stderr and "epoch 1:" not in result.stderr  # epochs: stdout only
    return run


def test_quiet_keeps_only_warnings_on_stderr(data_file: Path, tmp_path: Path) -> None:
    result = invoke("--quiet", "train", "--data", data_file, "--field", "rho", "--out", tmp_path / "q", *TINY)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "compiling" not in result.stderr and "training on " not in result.stderr
    # progress (the data summary, epochs) is not shown either; the results are
    assert "epoch 1/3" not in result.stdout and "ProfileDataset" not in result.stdout
    assert "cross-validation estimate" in result.stdout or "held-out" in result.stdout
    assert "run folder" in result.stdout


# ---------------------------------------------------------------------- help
@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "profemu", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert all(c in proc.stdout for c in COMMANDS)


# ---------------------------------------------------------------------- --set parsing
def test_parse_overrides_reads_yaml_values() -> None:
    out = parse_overrides(["data.pca_components=8", "model.hidden=[64, 32]", "optim.learning_rate=1e-3",
                           "model.heteroscedastic=false", "model.kind=physics"])
    assert out == {"data.pca_components": 8, "model.hidden": [64, 32], "optim.learning_rate": 1e-3,
                   "model.heteroscedastic": False, "model.kind": "physics"}


@pytest.mark.parametrize("item", ["data.pca_components", "=3", "model.hidden=[1,", "train.epochs="])
def test_parse_overrides_rejects_malformed_items(item: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides([item])


# ---------------------------------------------------------------------- user errors
def test_missing_data_file(tmp_path: Path) -> None:
    assert_user_error(invoke("train", "--data", tmp_path / "absent.npz", "--out", tmp_path / "r"), "absent.npz")


def test_unknown_field(data_file: Path, tmp_path: Path) -> None:
    assert_user_error(invoke("train", "--data", data_file, "--field", "density", "--out", tmp_path / "r"),
                      "'density'", "rho")


def test_unknown_key_in_config_file(data_file: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  hiden: [32]\n")
    assert_user_error(invoke("train", "--data", data_file, "--config", cfg, "--out", tmp_path / "r"), "hiden")


def test_out_of_range_config_value(data_file: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  learning_rate: -1.0\n")
    assert_user_error(invoke("train", "--data", data_file, "--config", cfg), "optim.learning_rate", "range")
    assert_user_error(invoke("train", "--data", data_file, "--members", "0"), "train.members")
    # a combination refused before the run folder is written
    cfg.write_text("loss:\n  likelihood: pinball\n  quantiles: []\n")
    out = tmp_path / "pinball"
    assert_user_error(invoke("train", "--data", data_file, "--config", cfg, "--out", out), "loss.quantiles: []")
    assert not out.exists()


def test_bad_set(data_file: Path, tmp_path: Path) -> None:
    assert_user_error(invoke("train", "--data", data_file, "--set", "model.width=3"), "model.width")
    assert_user_error(invoke("train", "--data", data_file, "--set", "epochs"), "--set", "epochs")


def test_camels_options_on_a_profemu_file(data_file: Path) -> None:
    assert_user_error(invoke("train", "--data", data_file, "--statistic", "median"), "--statistic")


def test_evaluate_a_data_file_instead_of_the_run_folder(data_file: Path) -> None:
    assert_user_error(invoke("evaluate", data_file), "is a file, not a folder", "--data")


def test_evaluate_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert_user_error(invoke("evaluate", tmp_path), "not a run folder")
    assert_user_error(invoke("report", tmp_path / "absent"), "does not exist")


def test_train_refuses_to_overwrite_a_run(run_dir: Path, data_file: Path) -> None:
    assert_user_error(invoke("train", "--data", data_file, "--out", run_dir), "--resume")


def test_predict_with_missing_parameter_column(run_dir: Path, tmp_path: Path) -> None:
    names = json.loads((run_dir / "emulator" / "manifest.json").read_text())["transforms"]["param_names"]
    bad = tmp_path / "in.csv"
    with open(bad, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Omega_m_typo", *names[1:], "log10_mass"])
        w.writerow([0.3, *([1.0] * (len(names) - 1)), 12.0])
    line = assert_user_error(invoke("predict", run_dir, "--input", bad), names[0], "Omega_m_typo")
    assert "missing column" in line


def test_emulator_from_a_newer_format_version(run_dir: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(run_dir, newer)
    manifest = newer / "emulator" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    assert_user_error(invoke("evaluate", newer), "format_version 99", "upgrade")
    assert_user_error(invoke("predict", newer, "--input", tmp_path / "x.csv"), "format_version")


# ---------------------------------------------------------------------- end to end
def test_train_evaluate_predict_report(run_dir: Path, data_file: Path, tmp_path: Path) -> None:
    from profemu.data.io import load_dataset
    from profemu.emulator import Emulator

    for name in ("config.yaml", "data.json", "split.json", "metrics.jsonl", "evaluation.json",
                 "emulator/manifest.json"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "data.json").read_text())["format"] == "profemu"

    # evaluate: re-scoring the test split from the run folder reproduces train's numbers
    out = tmp_path / "m.json"
    result = invoke("evaluate", run_dir, "--split", "test", "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    again = json.loads(out.read_text())
    first = json.loads((run_dir / "evaluation.json").read_text())
    assert set(again["fields"]) == {"rho", "pth"}
    assert again["overall"]["frac_err_median"] == pytest.approx(first["overall"]["frac_err_median"], rel=1e-6)
    result = invoke("evaluate", run_dir, "--split", "train", "--out", tmp_path / "t.json")
    assert result.exit_code == 0, result.stderr
    n_train = len(json.loads((run_dir / "split.json").read_text())["train_rows"])
    assert json.loads((tmp_path / "t.json").read_text())["overall"]["n_valid"] == n_train * 12 * 2
    assert "outside the training box" not in result.stdout + result.stderr  # rows it trained on
    # rows far above the training masses: the metrics are an extrapolation, and evaluate says so
    from profemu.data.dataset import ProfileDataset
    from profemu.data.io import save_dataset

    base = load_dataset(data_file)
    heavy = ProfileDataset(params=base.params, param_names=base.param_names, log10_mass=base.log10_mass + 1.0,
                           radius=base.radius, radius_unit=base.radius_unit, profiles=base.profiles, units=base.units,
                           groups=base.groups, redshift=base.redshift, meta=base.meta)
    result = invoke("evaluate", run_dir, "--data", save_dataset(heavy, tmp_path / "heavy.npz"), "--out",
                    tmp_path / "h.json")
    assert result.exit_code == 0, result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert f" of {base.n} rows lie more than 0.1 outside the training box (furthest in log10_mass 1" in text

    # predict: CSV in (columns in a shuffled order), CSV and npz out, same numbers as the API
    emu = Emulator.load(run_dir / "emulator")
    ds = load_dataset(data_file).subset(np.arange(5))
    cols = ["log10_mass", *reversed(emu.param_names)]
    inp = tmp_path / "inputs.csv"
    with open(inp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(ds.n):
            row = dict(zip(ds.param_names, ds.params[i], strict=True), log10_mass=ds.log10_mass[i])
            w.writerow([repr(float(row[c])) for c in cols])
    result = invoke("predict", run_dir, "--input", inp, "--out", tmp_path / "pred.csv")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    expected = emu.predict(ds.params, ds.log10_mass, on_extrapolation="ignore")
    with open(tmp_path / "pred.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    n_r = len(emu.radius)
    for field in ("rho", "pth"):
        mean = np.array([[float(r[f"{field}_mean_r{j}"]) for j in range(n_r)] for r in rows])
        std = np.array([[float(r[f"{field}_std_r{j}"]) for j in range(n_r)] for r in rows])
        np.testing.assert_allclose(mean, expected[field].mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std, np.sqrt(expected[field].var), rtol=1e-6, atol=1e-7)
    npz_in = tmp_path / "inputs.npz"
    np.savez(npz_in, params=ds.params, log10_mass=ds.log10_mass)
    result = invoke("predict", run_dir, "--input", npz_in, "--out", tmp_path / "pred.npz")
    assert result.exit_code == 0, result.stderr
    with np.load(tmp_path / "pred.npz", allow_pickle=False) as z:
        np.testing.assert_allclose(z["pth_mean"], expected["pth"].mean, rtol=1e-6)
        np.testing.assert_allclose(z["radius"], emu.radius)

    # report
    result = invoke("report", run_dir)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    html_text = (run_dir / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") >= 4
    assert "profemu compare" in html_text  # no compare.json yet: the report says how to make it


def test_mock_command_writes_a_loadable_dataset(tmp_path: Path) -> None:
    from profemu.data.io import load_dataset

    result = invoke("mock", "--out", tmp_path / "m.npz", "--n", "40", "--seed", "2", "--noise-dex", "0.05")
    assert result.exit_code == 0, result.stderr
    ds = load_dataset(tmp_path / "m.npz")
    assert ds.n == 40
    assert ds.noise is not None and np.allclose(ds.noise["rho"], 0.05)
    assert_user_error(invoke("mock", "--out", tmp_path / "b.npz", "--n", "0"), "n")


def test_diagnose_prints_the_checks_and_fails_on_a_failed_check(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import profemu.diagnose as diagnose

    seen = {}

    def fake(dataset, config, *, seed=0, quick=False):
        seen.update(fields=dataset.fields, cfg_fields=config.data.fields, seed=seed, quick=quick)
        return [diagnose.Check("inputs finite and in range", True, "max |z| = 3.1"),
                diagnose.Check("gradient norms", False, "norm 1e9", "lower optim.learning_rate")]

    monkeypatch.setattr(diagnose, "run_diagnostics", fake)
    result = invoke("diagnose", "--data", data_file, "--field", "pth", "--seed", "4", "--quick")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert seen == {"fields": ("rho", "pth", "temp"), "cfg_fields": ("pth",), "seed": 4, "quick": True}
    for text in ("inputs finite and in range", "gradient norms", "FAIL", "lower optim.learning_rate"):
        assert text in result.stdout
    monkeypatch.setattr(diagnose, "run_diagnostics", lambda *a, **k: fake(*a, **k)[:1])
    assert invoke("diagnose", "--data", data_file).exit_code == 0


def test_diagnose_without_the_module(data_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "profemu.diagnose", None)
    assert_user_error(invoke("diagnose", "--data", data_file), "diagnose")


def test_compare_writes_table_and_per_radius_errors(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = invoke("compare", run, "--no-gp")  # the GP is exercised by `demo --quick`
    assert result.exit_code == 0, (result.stdout, result.stderr)
    record = json.loads((run / "compare.json").read_text())
    assert [r["method"] for r in record["rows"]] == ["profemu", "pca_rbf"]
    assert record["rows"][0]["frac_err_median"] == pytest.approx(
        json.loads((run / "evaluation.json").read_text())["overall"]["frac_err_median"], rel=1e-6)
    assert set(record["per_radius"]["pca_rbf"]) == {"rho", "pth"}
    assert len(record["per_radius"]["pca_rbf"]["pth"]["frac_err_p68"]) == len(record["radius"])
    assert (run / "compare.md").read_text().startswith("| method")
    result = invoke("report", run)
    assert result.exit_code == 0, result.stderr
    html_text = (run / "report.html").read_text()
    assert "pca_rbf" in html_text and "profemu compare" not in html_text
    assert_user_error(invoke("compare", run, "--gp-max-train", "2"), "--gp-max-train")


@pytest.mark.slow
def test_demo_quick(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--quick")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    for name in ("data.npz", "run/emulator/manifest.json", "run/evaluation.json", "run/compare.json",
                 "run/compare.md", "run/report.html"):
        assert (out / name).is_file(), name
    methods = [r["method"] for r in json.loads((out / "run" / "compare.json").read_text())["rows"]]
    assert methods == ["profemu", "gp", "pca_rbf"]
    assert str(out / "run" / "report.html") in result.stdout
    assert_user_error(invoke("demo", "--out", out, "--quick"), "data.npz", "already exists; pass --force")


@pytest.mark.camels
def test_camels_table_options_reach_the_loader(camels_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import profemu.diagnose as diagnose

    seen = {}

    def fake(dataset, config, *, seed=0, quick=False):
        seen.update(fields=dataset.fields, n=dataset.n, mass=(dataset.log10_mass.min(), dataset.log10_mass.max()))
        return []

    monkeypatch.setattr(diagnose, "run_diagnostics", fake)
    result = invoke("diagnose", "--data", camels_path, "--field", "rho,pth", "--statistic", "median",
                    "--mass-bins", "11-11.5")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert seen["fields"] == ("rho", "pth")
    assert 11.0 < seen["mass"][0] and seen["mass"][1] < 11.5  # one mass bin only
    assert_user_error(invoke("diagnose", "--data", camels_path, "--mass-bins", "9-10"), "9-10")


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_predict_says_how_far_each_row_lies_outside_the_training_box(run_dir: Path, tmp_path: Path,
                                                                     layout: str) -> None:
    from profemu.emulator import Emulator

    emu = Emulator.load(run_dir / "emulator")
    box = emu.training_box
    x = [float(np.mean(box[n])) for n in emu.param_names]
    lo, hi = (float(v) for v in box["log10_mass"])
    table = tmp_path / "in.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*emu.param_names, "log10_mass"])
        w.writerow([*x, 0.5 * (lo + hi)])
        w.writerow([*x, hi + 0.5])
    out = tmp_path / f"out_{layout}.csv"
    result = invoke("predict", run_dir, "--input", table, "--out", out, "--format", layout)
    assert result.exit_code == 0, result.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_row = {}
    for i, r in enumerate(rows):
        by_row.setdefault(r.get("row", str(i)), r)
    inside, outside = by_row["0"], by_row["1"]
    assert float(inside["distance_outside"]) == 0.0 and inside["outside_inputs"] == ""
    assert float(outside["distance_outside"]) == pytest.approx(0.5, rel=1e-4)
    assert outside["outside_inputs"] == "log10_mass"


def test_the_one_line_warning_keeps_the_note_on_an_uncalibrated_variance() -> None:
    """The command's one warning line about inputs outside the box keeps the emulator's note that no
    variance covers the distance there (it drops the library's own closing sentence)."""
    from profemu.cli.commands import _short_warning

    base = "inputs outside the training box: log10_mass = 12.1 (1 of 2 rows) outside the training range [11.3, 11.4]"
    plain = _short_warning(base + "; predictions there are extrapolations.")
    bare = _short_warning(base + "; predictions there are extrapolations, and this emulator has no variance for the "
                          "distance outside the box (train.extrapolation_variance was off, or its training rows could "
                          "not calibrate it), so its intervals there are too narrow.")
    assert "log10_mass = 12.1 (1 of 2 rows)" in plain and "too narrow" not in plain
    assert bare.endswith("the emulator has no variance for the distance outside the box, so its intervals there are "
                         "too narrow."), bare


@pytest.mark.parametrize("command", [
    ["train", "--data", "d.npz", "--out", "o"], ["mock", "--out", "m.npz"], ["diagnose", "--data", "d.npz"],
    ["sweep", "--data", "d.npz", "--space", "s.yaml", "--out", "o"],
    ["infer", "run", "--observed", "o.csv", "--out", "o"]])
def test_a_negative_seed_is_refused_before_anything_runs(command: list[str], tmp_path: Path) -> None:
    result = invoke(*command, "--seed", "-1")
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "'--seed'" in result.stderr, result.stderr
    assert "greater than or equal to 0" in result.stderr or "x>=0" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
