"""A newcomer's first hour: P(k) defaults, short messages, bounded sizes, readable CSV errors."""

from __future__ import annotations

import csv
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu._files import read_npy
from profemu.emulator.tables import csv_chunks, fiducial_pk_ratio, name_list
from profemu.errors import ConfigError, DataError, FormatError
from tests.reliability.catalogue import error_line, invoke


@pytest.fixture(scope="module")
def pk_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A tiny run on the sb35 mock universe, whose emulator takes P(k) on its k bins."""
    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.folder import DataSource
    from profemu.runs.training import train_emulator

    root = tmp_path_factory.mktemp("pk_run")
    dataset = make_mock_universe(n=96, seed=2, n_r=6).dataset.select_fields(["rho"])
    assert dataset.pk_ratio is not None
    path = dataset.save(root / "pk.npz")
    cfg = Config().updated({"model.hidden": [16], "train.members": 2, "train.epochs": 2, "train.batch_size": 32,
                            "train.patience": 0, "optim.warmup_epochs": 1, "data.test_fraction": 0.0,
                            "train.cv_folds": 0, "train.log_every": 100})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = train_emulator(dataset, cfg, run_dir=root / "run", source=DataSource(str(path)))
    return root / "run", out.emulator


def _csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows.tolist())
    return path


def _inputs(emu: Any, n: int = 3) -> tuple[list[str], np.ndarray]:
    lo = np.array([emu.training_box[nm][0] for nm in emu.param_names], dtype=float)
    hi = np.array([emu.training_box[nm][1] for nm in emu.param_names], dtype=float)
    params = lo + (hi - lo) * np.linspace(0.3, 0.7, n)[:, None]
    mass = np.full((n, 1), float(np.mean(emu.training_box["log10_mass"])))
    return [*emu.param_names, "log10_mass"], np.hstack([params, mass])


# ---------------------------------------------------------------- 4. P(k) defaults
def test_predict_without_pk_columns_assumes_the_training_centre(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, emu = pk_run
    header, values = _inputs(emu)
    inp = _csv(tmp_path / "pts.csv", header, values)
    out = tmp_path / "pred.npz"
    result = invoke(["predict", str(run), "--input", str(inp), "--out", str(out)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr.count("gives no P(k) suppression (pk_ratio_<j> columns); assuming") == 1, result.stderr
    centre = fiducial_pk_ratio(emu)
    assert centre is not None and centre.shape == (len(emu.transforms.k),)
    np.testing.assert_allclose(centre, emu.transforms.input_stats["pk"][0])
    expected = emu.predict(values[:, :-1], values[:, -1], np.tile(centre, (len(values), 1)), on_extrapolation="ignore")
    with np.load(out) as z:
        np.testing.assert_allclose(z["rho_mean"], expected["rho"].mean, rtol=1e-6)
    # --pk-ratio FILE: one value per k bin, in one row
    pk_file = tmp_path / "pk.txt"
    pk = np.linspace(0.8, 0.95, centre.size)
    pk_file.write_text(" ".join(repr(float(v)) for v in pk) + "\n")
    out2 = tmp_path / "pred2.npz"
    result = invoke(["predict", str(run), "--input", str(inp), "--out", str(out2), "--pk-ratio", str(pk_file)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    expected = emu.predict(values[:, :-1], values[:, -1], pk, on_extrapolation="ignore")
    with np.load(out2) as z:
        np.testing.assert_allclose(z["rho_mean"], expected["rho"].mean, rtol=1e-6)
    pk_file.write_text("0.9 0.9\n")
    assert "give " in error_line(invoke(["predict", str(run), "--input", str(inp), "--out",
                                         str(tmp_path / "p3.csv"), "--pk-ratio", str(pk_file)]))


def test_a_redshift_column_is_checked_against_a_single_training_redshift(pk_run: tuple[Path, Any],
                                                                          tmp_path: Path) -> None:
    """An emulator trained at one redshift predicts there only: a redshift column at another value is
    refused (as the API refuses the argument), one at the training redshift is accepted."""
    run, emu = pk_run
    z0 = emu.input_spec.training_redshift
    assert z0 is not None
    header, values = _inputs(emu, n=2)
    for z, ok in ((z0, True), (z0 + 0.5, False)):
        inp = _csv(tmp_path / f"z{z}.csv", [*header, "redshift"], np.hstack([values, np.full((2, 1), z)]))
        result = invoke(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / f"z{z}.csv.out.csv")])
        if ok:
            assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        else:
            line = error_line(result)
            assert "trained at the single redshift" in line and "column" in line, line


def test_a_csv_saved_with_a_byte_order_mark_reads_like_plain_utf8(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    """Spreadsheets' "CSV UTF-8" starts the file with a byte-order mark; the first column keeps its name."""
    run, emu = pk_run
    header, values = _inputs(emu, n=2)
    plain = _csv(tmp_path / "plain.csv", header, values)
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    for name, inp in (("plain", plain), ("marked", marked)):
        result = invoke(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / f"{name}.npz")])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    with np.load(tmp_path / "plain.npz") as a, np.load(tmp_path / "marked.npz") as b:
        np.testing.assert_array_equal(a["rho_mean"], b["rho_mean"])


def test_missing_columns_message_stays_short(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, emu = pk_run
    inp = _csv(tmp_path / "mass.csv", ["log10_mass"], np.array([[13.0]]))
    line = error_line(invoke(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / "o.csv")]))
    assert len(line) < 700, len(line)
    assert f"{len(emu.param_names)} missing column(s)" in line and f"and {len(emu.param_names) - 10} more" in line
    assert name_list(list("abcdefghijkl")) == "a, b, c, d, e, f, g, h, i, j and 2 more"


def test_suggest_assumes_the_training_centre_of_pk(pk_run: tuple[Path, Any], tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from profemu.design import suggest

    run, emu = pk_run
    with caplog.at_level("INFO", logger="profemu.design"):
        result = suggest(emu, 2, candidates=32, mass_points=1)
    assert len(result) == 2 and "assuming the centre of the training set's P(k)" in caplog.text
    cli = invoke(["suggest", str(run), "--n", "2", "--candidates", "32", "--mass-points", "1",
                  "--out", str(tmp_path / "next.csv")])
    assert cli.exit_code == 0, (cli.stdout, cli.stderr, cli.exception)
    assert cli.stderr.count("assuming the centre of the training set's P(k)") == 1, cli.stderr
    assert cli.stderr.count("scored ") <= 3, cli.stderr
    quiet = invoke(["--quiet", "suggest", str(run), "--n", "2", "--candidates", "32", "--mass-points", "1",
                    "--out", str(tmp_path / "next2.csv")])
    assert quiet.exit_code == 0 and "scored" not in quiet.stderr, quiet.stderr


def test_list_inputs_columns_are_aligned(pk_run: tuple[Path, Any]) -> None:
    run, emu = pk_run
    result = invoke(["predict", str(run), "--list-inputs"])
    assert result.exit_code == 0, result.stdout
    rows = [ln for ln in result.stdout.splitlines() if ln.startswith("  ")]
    starts = {ln.index("training range") for ln in rows if "training range" in ln}
    assert max(len(nm) for nm in emu.param_names) > 14
    assert len(rows) == len(emu.param_names) + 1 + len(emu.transforms.k) and len(starts) == 1, result.stdout
    # the header is one line to copy, however many columns (114 here), each name one CSV field
    from profemu.emulator.tables import required_columns

    header = next(ln for ln in result.stdout.splitlines() if ln.startswith(emu.param_names[0]))
    assert next(csv.reader([header])) == required_columns(emu), header


# ---------------------------------------------------------------- 5. sizes, seeds, encodings
@pytest.mark.parametrize(("args", "needle"), [
    (["--candidates", "1e9"], "suggest with candidates=1000000000"),
    (["--mass-points", "1e6"], "mass_points=1000000"),
    (["--seed", "-1"], "--seed -1: seeds are whole numbers >= 0"),
    (["--candidates", "abc"], "--candidates 'abc': not a number"),
])
def test_suggest_refuses_huge_or_invalid_requests_in_one_line(pk_run: tuple[Path, Any], tmp_path: Path,
                                                             args: list[str], needle: str) -> None:
    run, _ = pk_run
    line = error_line(invoke(["suggest", str(run), "--n", "2", "--out", str(tmp_path / "x.csv"), *args]))
    assert needle in line, line
    if needle.startswith(("suggest", "mass_points")):
        assert "of memory, above the limit of" in line, line
    assert not (tmp_path / "x.csv").exists()


def test_suggest_api_refuses_a_negative_seed(pk_run: tuple[Path, Any]) -> None:
    from profemu.design import suggest

    with pytest.raises(ConfigError, match="seed: -1; seeds are whole numbers >= 0"):
        suggest(pk_run[1], 2, candidates=16, seed=-1)


def test_csv_in_another_encoding_or_with_a_huge_field_is_one_line(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, emu = pk_run
    header, values = _inputs(emu, 2)
    text = ",".join(header) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in values) + "\n"
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(text.encode("utf-16"))
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(("# caf\u00e9\n" + text).encode("latin-1"))
    huge = tmp_path / "huge.csv"
    huge.write_text(text + '"' + "9" * (200 * 1024) + '"' + ",1" * (len(header) - 1) + "\n")
    for path, needle in ((utf16, "UTF-16"), (latin, "not UTF-8 text"), (huge, "holds a field over 128 KB")):
        line = error_line(invoke(["predict", str(run), "--input", str(path), "--out", str(tmp_path / "o.csv")]))
        assert needle in line, line
        if path is not huge:
            assert "save it as UTF-8" in line, line
    with pytest.raises(FormatError, match="UTF-16"):
        next(csv_chunks(utf16, 10))


def test_predict_reads_a_large_csv_in_chunks(pk_run: tuple[Path, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from profemu.emulator import tables

    run, emu = pk_run
    header, values = _inputs(emu, 7)
    inp = _csv(tmp_path / "many.csv", header, values)
    seen: list[int] = []
    original = tables.csv_chunks

    def spy(path: Path, rows: int, **kwargs: Any) -> Any:
        for chunk in original(path, rows, **kwargs):
            seen.append(len(chunk["log10_mass"]))
            yield chunk

    monkeypatch.setattr(tables, "csv_chunks", spy)
    out = tmp_path / "many_pred.csv"
    result = invoke(["predict", str(run), "--input", str(inp), "--out", str(out), "--chunk-rows", "3"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert seen == [3, 3, 1]
    assert len(out.read_text().splitlines()) == 8


def test_row_numbers_of_later_chunks_count_from_the_file(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, emu = pk_run
    header, values = _inputs(emu, 7)
    values[5, header.index("log10_mass")] = np.nan
    inp = _csv(tmp_path / "nan.csv", header, values)
    line = error_line(invoke(["predict", str(run), "--input", str(inp), "--out", str(tmp_path / "o.csv"),
                              "--chunk-rows", "2"]))
    assert "log10_mass: nan at row 5" in line, line


def test_a_npy_header_claiming_a_huge_array_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "cov.npy"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)
    with pytest.raises(FormatError, match=r"declares shape \(1000000, 1000000\) of float64, 8 TB, above the limit"):
        read_npy(path, what="--covariance")
    np.save(tmp_path / "ok.npy", np.eye(2))
    np.testing.assert_array_equal(read_npy(tmp_path / "ok.npy"), np.eye(2))
    (tmp_path / "short.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-8])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        read_npy(tmp_path / "short.npy")


def test_stale_temporaries_of_a_killed_predict_are_removed(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    import os

    run, emu = pk_run
    header, values = _inputs(emu, 2)
    inp = _csv(tmp_path / "pts.csv", header, values)
    stale = tmp_path / ".pts_pred.csv.abc123.tmp"
    stale.write_text("half")
    os.utime(stale, (1, 1))  # older than this process: a killed writer's
    result = invoke(["predict", str(run), "--input", str(inp)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert not stale.exists() and (tmp_path / "pts_pred.csv").exists()


def test_dataset_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="empty"):
        from profemu.data.dataset import ProfileDataset

        ProfileDataset(params=np.zeros((0, 2)), param_names=("a", "b"), log10_mass=np.zeros(0),
                       radius=np.array([0.1, 1.0]), profiles={"rho": np.zeros((0, 2))})


def test_evaluate_without_a_test_split_names_the_splits_there_are(pk_run: tuple[Path, Any]) -> None:
    """A run that kept no test rows (and has no cross-validation): evaluate's default split is empty,
    and the message says it was the default and which splits or options work."""
    run, _ = pk_run
    line = error_line(invoke(["evaluate", str(run)]))
    assert "evaluate (default split 'test')" in line and "--split train" in line and "--data FILE" in line, line
    line = error_line(invoke(["evaluate", str(run), "--split", "test"]))
    assert line.startswith("error: --split test: the run's test split is empty"), line


def test_an_npz_input_with_param_names_is_read_by_name(pk_run: tuple[Path, Any], tmp_path: Path) -> None:
    run, emu = pk_run
    _, values = _inputs(emu)
    names = list(emu.param_names)
    params, mass = values[:, :-1], values[:, -1]
    # the columns in another order, named: the same predictions as in the emulator's order
    order = [1, 0, *range(2, len(names))]
    np.savez(tmp_path / "ordered.npz", params=params, log10_mass=mass)
    np.savez(tmp_path / "swapped.npz", params=params[:, order], param_names=np.array(names)[order],
             log10_mass=mass)
    for name in ("ordered", "swapped"):
        result = invoke(["predict", str(run), "--input", str(tmp_path / f"{name}.npz"),
                         "--out", str(tmp_path / f"{name}_pred.npz")])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    with np.load(tmp_path / "ordered_pred.npz") as a, np.load(tmp_path / "swapped_pred.npz") as b:
        np.testing.assert_array_equal(a["rho_mean"], b["rho_mean"])
    # names that are not the emulator's: refused with the names
    bad = np.array(names)
    bad[0] = "Omega_x"
    np.savez(tmp_path / "misnamed.npz", params=params, param_names=bad, log10_mass=mass)
    line = error_line(invoke(["predict", str(run), "--input", str(tmp_path / "misnamed.npz"),
                              "--out", str(tmp_path / "misnamed_pred.npz")]))
    assert "param_names" in line and "Omega_x" in line and names[0] in line, line


def test_predict_refuses_stray_pk_columns_complex_values_and_says_why_text_fails(pk_run: tuple[Path, Any],
                                                                                 tmp_path: Path) -> None:
    run, emu = pk_run
    header, values = _inputs(emu)
    stray = _csv(tmp_path / "stray.csv", [*header, "pk_ratio_999"], np.hstack([values, np.ones((len(values), 1))]))
    line = error_line(invoke(["predict", str(run), "--input", str(stray), "--out", str(tmp_path / "a.csv")]))
    assert "pk_ratio_999 are not inputs of this emulator" in line and "pk_ratio_0..pk_ratio_78" in line, line
    np.savez(tmp_path / "complex.npz", params=values[:, :-1].astype(complex), log10_mass=values[:, -1])
    line = error_line(invoke(["predict", str(run), "--input", str(tmp_path / "complex.npz"),
                              "--out", str(tmp_path / "b.npz")]))
    assert "params holds complex128 values; give real numbers" in line, line
    text = tmp_path / "text.csv"
    text.write_text(",".join([*header, "comment"]) + "\n" + ",".join([*map(repr, values[0].tolist()), "hi"]) + "\n")
    line = error_line(invoke(["predict", str(run), "--input", str(text), "--out", str(tmp_path / "c.csv")]))
    assert "column 'comment': 'hi' is not a number" in line and "drop a text column" in line, line


def test_list_inputs_header_keeps_a_name_with_a_comma_one_field(tmp_path: Path) -> None:
    """A parameter named with a comma is one quoted field of the printed header, and that header,
    pasted as the first line of an input table, predicts."""
    import dataclasses

    from profemu.data.mock import make_mock_universe

    ds = make_mock_universe(n=60, seed=2, param_set="lh6", with_pk=False, n_r=6).dataset.select_fields(["rho"])
    names = [f"{name}, fiducial" if name == "Omega_m" else name for name in ds.param_names]
    renamed = dataclasses.replace(ds, param_names=tuple(names),
                                  log_params=tuple(f"{n}, fiducial" if n == "Omega_m" else n for n in ds.log_params))
    data = renamed.save(tmp_path / "comma.npz")
    trained = invoke(["--quiet", "train", "--data", str(data), "--out", str(tmp_path / "run"), "--members", "2",
                      "--set", "train.epochs=2", "--set", "model.hidden=[8]", "--set", "train.cv_folds=0",
                      "--set", "train.extrapolation_variance=off", "--test-fraction", "0"])
    assert trained.exit_code == 0, trained.stderr
    listed = invoke(["predict", str(tmp_path / "run"), "--list-inputs"])
    assert listed.exit_code == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith('"Omega_m, fiducial"'))
    header = next(csv.reader([line]))
    assert header == [*names, "log10_mass"], line
    table = tmp_path / "inputs.csv"
    table.write_text(line + "\n" + ",".join(f"{v:.6g}" for v in [*ds.params[0], ds.log10_mass[0]]) + "\n")
    predicted = invoke(["predict", str(tmp_path / "run"), "--input", str(table), "--out", str(tmp_path / "p.csv")])
    assert predicted.exit_code == 0, predicted.stderr
    with open(tmp_path / "p.csv", newline="") as fh:
        assert next(csv.reader(fh))[:len(names)] == names  # the output's header quotes it as well
