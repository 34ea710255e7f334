"""The bad-input matrix: the data, configuration and file rows of docs/errors.md.

Each :class:`~tests.reliability.catalogue.Case` is one thing a user can get wrong. The
API call must raise the documented profemu exception with the documented message
fragment; the same mistake on the command line must end with exit code 2 and exactly
one ``error: ...`` line on stderr holding the CLI fragment. docs/errors.md is generated
from these cases (``tools/errors_catalogue.py``), so the catalogue cannot drift from
the code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.io import load_dataset
from profemu.emulator import Emulator
from profemu.errors import ConfigError, DataError, ExtrapolationError, FormatError
from profemu.metrics import evaluate
from tests.reliability import tiny_run
from tests.reliability.catalogue import DOC, Case, Ctx, error_line
from tests.reliability.catalogue import invoke as _invoke


def _predict_npz(ctx: Ctx, name: str, params: np.ndarray) -> list[str]:
    path = ctx.folder / name
    np.savez(path, params=params, log10_mass=np.full(len(params), 13.0), redshift=np.zeros(len(params)))
    return ["predict", str(ctx.run.run_dir), "--input", str(path), "--out", str(ctx.folder / f"{name}.csv")]


def _predict_csv(ctx: Ctx, name: str, header: list[str], rows: list[list[float]]) -> list[str]:
    path = ctx.csv(name, header, rows)
    return ["predict", str(ctx.run.run_dir), "--input", str(path), "--out", str(ctx.folder / f"{name}.out.csv")]


def _train(ctx: Ctx, data: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(ctx.folder / "never"), "--epochs", "1", *extra]


def _misnamed(ctx: Ctx) -> dict[str, Any]:
    named = dict(zip(ctx.emu.param_names, ctx.params(1)[0], strict=True))
    named["sigma8"] = named.pop("sigma_8")
    return named


def _misnamed_csv(ctx: Ctx) -> list[str]:
    header, rows = ctx.good_csv_rows()
    header[header.index("sigma_8")] = "sigma8"
    return _predict_csv(ctx, "misnamed.csv", header, rows)


def _nan_csv(ctx: Ctx) -> list[str]:
    header, rows = ctx.good_csv_rows()
    rows[1][1] = float("nan")
    return _predict_csv(ctx, "nan.csv", header, rows)


def _nonpositive_csv(ctx: Ctx) -> list[str]:
    header, rows = ctx.good_csv_rows()
    rows[0][header.index("A_SN1")] = 0.0
    return _predict_csv(ctx, "nonpositive.csv", header, rows)


def _with(ctx: Ctx, column: str, value: float, row: int = 0) -> np.ndarray:
    p = ctx.params()
    p[row, list(ctx.emu.param_names).index(column)] = value
    return p


def _dataset_kwargs(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    ds = ctx.run.dataset.subset(slice(0, 8))
    kwargs = {
        "params": ds.params, "param_names": ds.param_names, "log10_mass": ds.log10_mass,
        "radius": ds.radius, "profiles": dict(ds.profiles), "log_params": ds.log_params,
    }
    kwargs.update(changes)
    return kwargs


def _bad_params(ctx: Ctx, column: str, value: float) -> np.ndarray:
    with np.load(ctx.run.data_path, allow_pickle=False) as z:
        params = np.array(z["params"])
    params[3, list(ctx.emu.param_names).index(column)] = value
    return params


def _truncated(ctx: Ctx) -> Path:
    raw = ctx.run.data_path.read_bytes()
    return ctx.write("truncated.npz", raw[: len(raw) // 2])


def _reversed_radius(ctx: Ctx) -> Path:
    with np.load(ctx.run.data_path, allow_pickle=False) as z:
        return ctx.rewrite("reversed.npz", radius=z["radius"][::-1].copy(), profiles=z["profiles"][:, :, ::-1].copy(),
                           mask=z["mask"][:, :, ::-1].copy(), noise=z["noise"][:, :, ::-1].copy())


def _unknown_yaml(ctx: Ctx) -> Path:
    path = ctx.folder / "unknown.yaml"
    path.write_text("train:\n  epoch: 3\n")
    return path


def _outside_csv(ctx: Ctx) -> list[str]:
    header, rows = ctx.good_csv_rows()
    rows[0][header.index("Omega_m")] = 0.9
    return [*_predict_csv(ctx, "outside.csv", header, rows), "--force"]


def _extrapolate(ctx: Ctx) -> Any:
    return ctx.emu.predict(_with(ctx, "Omega_m", 0.9), [12.0, 13.0], redshift=0.0, on_extrapolation="error")


def _impossible_csv(ctx: Ctx, column: str, value: float) -> list[str]:
    header, rows = ctx.good_csv_rows()
    rows[1][header.index(column)] = value
    return _predict_csv(ctx, f"impossible_{column}.csv", header, rows)


def _pk_spec() -> Any:
    from profemu.emulator.inputs import InputSpec

    return InputSpec(param_names=("Omega_m", "Omega_b", "h", "sigma_8"), n_k=3, uses_redshift=True)


def _pk_inputs(**changes: Any) -> Any:
    from profemu.emulator.inputs import check_inputs

    args = {"params": [[0.3, 0.05, 0.7, 0.8]] * 2, "log10_mass": [12.0, 13.0],
            "pk_ratio": [[0.9, 0.95, 1.0]] * 2, "redshift": [0.0, 1.0], **changes}
    return check_inputs(_pk_spec(), args["params"], args["log10_mass"], args["pk_ratio"], args["redshift"])


CASES: list[Case] = [
    Case("param-count", "Passed 5 parameter columns to an emulator trained on 6", DataError,
         "params: expected 6 parameters per example",
         lambda c: c.emu.predict(c.params()[:, :5], [12.0, 13.0], redshift=0.0),
         lambda c: _predict_npz(c, "five.npz", c.params()[:, :5]),
         "params: expected 6 parameters per example"),
    Case("param-name", "Misnamed a parameter (``sigma8`` for ``sigma_8``)", DataError,
         "params: unknown ['sigma8'] and missing ['sigma_8'] parameter names",
         lambda c: c.emu.predict(_misnamed(c), 13.0, redshift=0.0),
         _misnamed_csv, "1 missing column(s): sigma_8; unrecognised column(s) sigma8"),
    Case("nan-input", "NaN or inf in the inputs of a prediction", DataError,
         "params: nan at row 1, column 'sigma_8' is not a finite float32 number",
         lambda c: c.emu.predict(_with(c, "sigma_8", np.nan, row=1), [12.0, 13.0], redshift=0.0),
         _nan_csv, "params: nan at row 1, column 'sigma_8' is not a finite float32 number"),
    Case("nan-dataset", "NaN or inf in a dataset's parameters", DataError,
         "params: non-finite value inf at row 3, column 0",
         lambda c: ProfileDataset(**_dataset_kwargs(c, params=_bad_params(c, "Omega_m", np.inf)[:8])),
         lambda c: _train(c, c.rewrite("inf_params.npz", params=_bad_params(c, "Omega_m", np.inf))),
         "params: non-finite value inf at row 3, column 0"),
    Case("log-nonpositive", "A value <= 0 for a log-distributed parameter (log10 needed) in a prediction",
         DataError, "params['A_SN1']: 0 <= 0, but the parameter is log-sampled and must be > 0",
         lambda c: c.emu.predict(_with(c, "A_SN1", 0.0), [12.0, 13.0], redshift=0.0),
         _nonpositive_csv, "params['A_SN1']: 0 <= 0, but the parameter is log-sampled and must be > 0"),
    Case("log-nonpositive-dataset", "A value <= 0 for a log-distributed parameter in a dataset", DataError,
         "params['A_SN1']: value -1.0 at row 3 is <= 0 but 'A_SN1' is declared log-distributed",
         lambda c: ProfileDataset(**_dataset_kwargs(c, params=_bad_params(c, "A_SN1", -1.0)[:8])),
         lambda c: _train(c, c.rewrite("neg_log.npz", params=_bad_params(c, "A_SN1", -1.0))),
         "params['A_SN1']: value -1.0 at row 3 is <= 0 but 'A_SN1' is declared log-distributed"),
    Case("radius-order", "Radii not strictly increasing", DataError,
         "radius: not strictly increasing at column 1",
         lambda c: ProfileDataset(**_dataset_kwargs(c, radius=c.run.dataset.radius[::-1])),
         lambda c: _train(c, _reversed_radius(c)), "radius: not strictly increasing at column 1"),
    Case("radius-grid", "Data on another radial grid than the emulator's (transforms, evaluate)", DataError,
         "radius: the dataset's radial grid (8 bins, 0.05..3 R200c) differs from the fitted one "
         "(8 bins, 0.02..4 R200c); rebin the profiles",
         lambda c: evaluate(c.emu, load_dataset(c.other_grid()).select_fields(["rho", "pth"])),
         lambda c: ["evaluate", str(c.run.run_dir), "--data", str(c.other_grid()), "--out",
                    str(c.folder / "never.json")],
         "radius: the dataset's radial grid (8 bins, 0.05..3 R200c) differs from the fitted one"),
    Case("radius-unit", "Data whose radii are in another unit than the emulator's (transforms, evaluate)",
         DataError, "radius_unit: the dataset's radii are in 'kpc' but the emulator's in 'R200c'; convert the "
                    "dataset's radii (and its radius_unit) to 'R200c'",
         lambda c: evaluate(c.emu, ProfileDataset(**_dataset_kwargs(c, radius_unit="kpc")).select_fields(["rho", "pth"])),
         None),
    Case("missing-file", "A data file that does not exist", FormatError, "file not found; check the path",
         lambda c: load_dataset(c.folder / "absent.npz"),
         lambda c: _train(c, c.folder / "absent.npz"), "file does not exist; pass the path of a dataset file"),
    Case("empty-file", "An empty (0-byte) data file", FormatError,
         "the file is empty (0 bytes); it was not written completely",
         lambda c: load_dataset(c.write("empty.npz", b"")),
         lambda c: _train(c, c.write("empty.npz", b"")),
         "the file is empty (0 bytes); it was not written completely"),
    Case("truncated-file", "A truncated data file (interrupted copy)", FormatError,
         "truncated or corrupt npz archive",
         lambda c: load_dataset(_truncated(c)),
         lambda c: _train(c, _truncated(c)), "truncated or corrupt npz archive"),
    Case("wrong-file-type", "A file of another type (e.g. a CSV renamed to .npz)", FormatError,
         "a text file; expected a dataset written by profemu",
         lambda c: load_dataset(c.write("text.npz", b"a,b\n1,2\n")),
         lambda c: _train(c, c.write("text.npz", b"a,b\n1,2\n")),
         "a text file; expected a dataset written by profemu"),
    Case("unknown-key", "An unknown config key (``--set train.epoch=3``)", ConfigError,
         "unknown config key 'train.epoch'; valid keys here:",
         lambda c: Config().updated({"train.epoch": 3}),
         lambda c: _train(c, c.run.data_path, "--set", "train.epoch=3"),
         "unknown config key 'train.epoch'; valid keys here:"),
    Case("unknown-yaml-key", "An unknown key in a YAML config file", ConfigError,
         "train: unknown key(s) ['epoch']; valid keys are",
         lambda c: Config.from_yaml(_unknown_yaml(c)),
         lambda c: _train(c, c.run.data_path, "--config", str(_unknown_yaml(c))),
         "train: unknown key(s) ['epoch']; valid keys are"),
    Case("config-range", "An out-of-range config value (0 ensemble members)", ConfigError,
         "train.members: value 0 is out of range; allowed [1, 1024]",
         lambda c: Config().updated({"train.members": 0}),
         lambda c: _train(c, c.run.data_path, "--members", "0"),
         "train.members: value 0 is out of range; allowed [1, 1024]"),
    Case("config-type", "A config value of the wrong type", ConfigError,
         "train.members: expected an integer, got 'many'",
         lambda c: Config().updated({"train.members": "many"}),
         lambda c: _train(c, c.run.data_path, "--set", "train.members=many"),
         "train.members: expected an integer, got 'many'"),
    Case("newer-format", "An Emulator folder written by a newer profemu (format_version 99)", FormatError,
         "format_version 99 is newer than this profemu supports; upgrade profemu to load it",
         lambda c: Emulator.load(c.newer_emulator_run() / "emulator"),
         lambda c: ["evaluate", str(c.newer_emulator_run())],
         "format_version 99 is newer than this profemu supports; upgrade profemu to load it"),
    Case("impossible-omega-m", "Passed Omega_m <= 0 (or Omega_b <= 0, h <= 0, sigma_8 < 0) to a prediction",
         DataError, "params['Omega_m']: -0.1 at row 1 is impossible (Omega_m must be > 0)",
         lambda c: c.emu.predict(_with(c, "Omega_m", -0.1, row=1), [12.0, 13.0], redshift=0.0),
         lambda c: _impossible_csv(c, "Omega_m", -0.1),
         "params['Omega_m']: -0.1 at row 1 is impossible (Omega_m must be > 0)"),
    Case("impossible-sigma-8", "Passed sigma_8 < 0 to a prediction", DataError,
         "params['sigma_8']: -0.5 at row 1 is impossible (sigma_8 must be >= 0)",
         lambda c: c.emu.predict(_with(c, "sigma_8", -0.5, row=1), [12.0, 13.0], redshift=0.0),
         lambda c: _impossible_csv(c, "sigma_8", -0.5),
         "params['sigma_8']: -0.5 at row 1 is impossible (sigma_8 must be >= 0)"),
    Case("omega-b-above-omega-m", "Passed Omega_b > Omega_m (more baryons than matter)", DataError,
         "params['Omega_b']: 0.4 at row 0 exceeds Omega_m = 0.3",
         lambda c: _pk_inputs(params=[[0.3, 0.4, 0.7, 0.8]] * 2), None),
    Case("impossible-pk-ratio", "Passed a P(k) ratio <= 0 or > 10", DataError,
         "pk_ratio: -0.2 at row 1, k bin 2 (column pk_ratio_2) is impossible",
         lambda c: _pk_inputs(pk_ratio=[[0.9, 0.95, 1.0], [0.9, 0.95, -0.2]]), None),
    Case("impossible-redshift", "Passed a redshift < 0 or > 20", DataError,
         "redshift: 25 at row 1 is outside [0, 20]",
         lambda c: _pk_inputs(redshift=[0.0, 25.0]), None),
    Case("nan-mass", "NaN in log10_mass of a prediction (reported as a mass error, whatever else is wrong)",
         DataError, "log10_mass: nan at row 1 is not a finite float32 number",
         lambda c: c.emu.predict(_with(c, "sigma_8", np.nan, row=0), [12.0, np.nan], redshift=0.0), None),
    Case("param-named-like-an-input", "Named a dataset parameter like an emulator input (`log10_mass`, "
         "`redshift`, `pk_ratio_<i>`)", DataError, "param_names: 'pk_ratio_0' is the name of an emulator input",
         lambda c: ProfileDataset(**_dataset_kwargs(c, param_names=("pk_ratio_0", *c.run.dataset.param_names[1:]))),
         None),
    Case("param-named-redshift", "Named a dataset parameter `redshift` (the name of the redshift input)", DataError,
         "param_names: 'redshift' is the name of the emulator's redshift input; pass the rows' redshifts as the "
         "dataset's redshift array",
         lambda c: ProfileDataset(**_dataset_kwargs(c, param_names=("redshift", *c.run.dataset.param_names[1:]))),
         None),
    Case("field-name-collision", "Named a dataset field like a reserved name (`radius`) or another field's "
         "column (`rho_err`)", DataError, "profiles: field name 'rho_err' collides with the '_err' column of field "
         "'rho'", lambda c: ProfileDataset(**_dataset_kwargs(c, profiles={
             "rho": c.run.dataset.subset(slice(0, 8)).profiles["rho"],
             "rho_err": c.run.dataset.subset(slice(0, 8)).profiles["pth"]})), None),
    Case("negative-pk-dataset", "A dataset with P_hydro/P_dmo <= 0", DataError,
         "pk_ratio: value -0.5 at row 0, column 1 is <= 0",
         lambda c: ProfileDataset(**_dataset_kwargs(c, pk_ratio=np.tile([1.0, -0.5], (8, 1)), k=[0.1, 1.0])),
         None),
    Case("redshift-dataset", "A dataset with a redshift outside [0, 20]", DataError,
         "redshift: value 30.0 at row 0 is outside [0, 20]",
         lambda c: ProfileDataset(**_dataset_kwargs(c, redshift=np.full(8, 30.0))), None),
    Case("extrapolation", "Inputs outside the training box with ``on_extrapolation='error'`` (the CLI predicts "
         "with the default 'warn': one warning line, exit code 0)", ExtrapolationError,
         "inputs outside the training box: Omega_m = 0.9 (1 of 2 rows) outside the training range [0.107, 0.498]",
         _extrapolate, _outside_csv,
         "inputs outside the training box: Omega_m = 0.9 (1 of ", cli_exit=0),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    return Ctx(tiny_run(tmp_path_factory.getbasetemp() / "tiny_run"), tmp_path_factory.mktemp("bad_inputs"))


_API = [c for c in CASES if c.api is not None]
_CLI = [c for c in CASES if c.cli is not None and c.cli_exit == 2]


@pytest.mark.parametrize("case", _API, ids=[c.id for c in _API])
def test_api(case: Case, ctx: Ctx) -> None:
    assert case.api is not None
    with pytest.raises(case.error) as info:
        case.api(ctx)
    assert type(info.value) is case.error
    assert case.api_fragment in str(info.value)


@pytest.mark.parametrize("case", _CLI, ids=[c.id for c in _CLI])
def test_cli(case: Case, ctx: Ctx) -> None:
    assert case.cli is not None
    line = error_line(_invoke(case.cli(ctx)))
    assert case.cli_fragment in line, line
    assert not (ctx.folder / "never").exists()  # nothing was trained


def test_extrapolation_in_cli_is_one_warning_line(ctx: Ctx) -> None:
    result = _invoke(_outside_csv(ctx))
    assert result.exit_code == 0, result.stderr
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "inputs outside the training box: Omega_m = 0.9 (1 of 2 rows) outside the training range [0.107, 0.498]" \
        in warned[0], warned



def test_the_cli_warning_counts_every_row_of_a_file_read_in_chunks(ctx: Ctx) -> None:
    """Six rows read two at a time, three of them outside: the one line counts 3 of 6 rows and shows
    their values and the training range itself (not the range widened by the tolerance)."""
    header, rows = ctx.good_csv_rows()
    rows = [list(r) for r in rows * 3]
    for i in (0, 3, 4):
        rows[i][header.index("Omega_m")] = 0.9 - 0.01 * i
    result = _invoke([*_predict_csv(ctx, "outside_chunks.csv", header, rows), "--force", "--chunk-rows", "2"])
    assert result.exit_code == 0, result.stderr
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "Omega_m = 0.86..0.9 (3 of 6 rows) outside the training range [0.107, 0.498]" \
        in warned[0], warned

def test_catalogue_quotes_every_message() -> None:
    text = " ".join(DOC.read_text().split())
    for case in CASES:
        assert f"`{case.id}`" in text, case.id
        assert case.api_fragment in text, (case.id, case.api_fragment)
        assert case.cli_fragment in text, (case.id, case.cli_fragment)


def test_real_entry_point_exit_code_and_single_line(ctx: Ctx) -> None:
    args = _train(ctx, ctx.write("empty.npz", b""))
    proc = subprocess.run([sys.executable, "-m", "profemu", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "the file is empty (0 bytes)" in lines[0]
