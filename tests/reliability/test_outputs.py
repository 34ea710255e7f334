"""Every writer protects what the user has: its inputs, existing files, folders that are not runs.

* An output that is one of the command's inputs (or a file of the run folder it reads) is
  refused even with ``--force``; an existing output only with ``--force``.
* A run folder binds its Emulator, its split and its data file: ``evaluate``, ``compare``
  and ``report`` refuse a mix with one line and take the folder's lock.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu._files import check_memory, check_output
from profemu.errors import DataError
from tests.reliability import TinyRun, tiny_run
from tests.reliability.catalogue import Ctx, error_line, hold_lock, invoke, stop


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture(scope="module")
def ctx(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    return Ctx(run, tmp_path_factory.mktemp("outputs"))


def digest(path: Path) -> str:
    """SHA-256 of a file, or of every file under a folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode() + p.read_bytes())
    return h.hexdigest()


def own_copy(ctx: Ctx, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the run whose data.json names a copy of its data file: (run, data file)."""
    data = tmp_path / "mydata.npz"
    shutil.copy2(ctx.run.data_path, data)
    run = tmp_path / "R"
    shutil.copytree(ctx.run.run_dir, run)
    record = json.loads((run / "data.json").read_text())
    record["path"] = str(data.resolve())
    (run / "data.json").write_text(json.dumps(record))
    return run, data


# ---------------------------------------------------------------- 1. outputs never replace inputs
def test_check_output_refuses_inputs_even_with_force_and_existing_files_without(tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    data.write_bytes(b"mine")
    with pytest.raises(DataError, match=r"is the --data file .*\(--force does not change that\)"):
        check_output(data, force=True, inputs={"--data file": data})
    run = tmp_path / "run"
    (run / "emulator").mkdir(parents=True)
    with pytest.raises(DataError, match="is inside the run's emulator folder"):
        check_output(run / "emulator" / "weights-1.npz", force=True, inputs={"run's emulator folder": run / "emulator"})
    with pytest.raises(DataError, match="already exists; pass --force"):
        check_output(data, force=False)
    assert check_output(data, force=True) == data
    assert check_output(run / "predictions.csv", force=False, inputs={"run's emulator folder": run / "emulator"})


def test_demo_never_replaces_a_users_data_file(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.npz").write_bytes(b"the user's own data")
    line = error_line(invoke(["demo", "--out", str(out), "--quick"]))
    assert "data.npz" in line and "already exists; pass --force" in line, line
    assert (out / "data.npz").read_bytes() == b"the user's own data"
    assert sorted(p.name for p in out.iterdir()) == ["data.npz"]


def test_demo_force_does_not_replace_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "run").mkdir(parents=True)
    (out / "run" / "notes.txt").write_text("mine")
    line = error_line(invoke(["demo", "--out", str(out), "--quick", "--force"]))
    assert "is not a profemu run folder" in line, line
    assert (out / "run" / "notes.txt").read_text() == "mine"


def test_evaluate_and_compare_never_write_over_the_data(ctx: Ctx, tmp_path: Path) -> None:
    run, data = own_copy(ctx, tmp_path)
    before = digest(data)
    line = error_line(invoke(["evaluate", str(run), "--data", str(data), "--out", str(data), "--force"]))
    assert "is the --data file" in line and "--force does not change that" in line, line
    line = error_line(invoke(["compare", str(run), "--out", str(data), "--force", "--no-gp"]))
    assert "is the run's data file" in line, line
    line = error_line(invoke(["evaluate", str(run), "--out", str(run / "split.json"), "--force"]))
    assert "is the run's split record" in line, line
    assert digest(data) == before


@pytest.mark.parametrize("command", ["evaluate", "predict", "predict --pk-ratio", "suggest", "observe"])
def test_no_output_replaces_the_runs_data_file_even_with_force(ctx: Ctx, tmp_path: Path, command: str) -> None:
    run, data = own_copy(ctx, tmp_path)
    before = digest(data)
    header, rows = ctx.good_csv_rows()
    points = tmp_path / "in.csv"
    points.write_text(",".join(header) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n")
    pk = tmp_path / "pk.csv"
    pk.write_text("1.0\n")
    args = {
        "evaluate": ["evaluate", str(run), "--split", "val", "--out", str(data), "--force"],
        "predict": ["predict", str(run), "--input", str(points), "--out", str(data), "--force"],
        "predict --pk-ratio": ["predict", str(run), "--input", str(points), "--pk-ratio", str(pk), "--out", str(pk),
                               "--force"],
        "suggest": ["suggest", str(run), "--n", "2", "--candidates", "64", "--out", str(data), "--force"],
        "observe": ["observe", str(run), "--at", str(points), "--observable", "ksz", "--apertures", "2",
                    "--redshift", "0.5", "--beam", str(tmp_path / "beam.txt"), "--mass-distribution",
                    str(tmp_path / "masses.csv"), "--out", str(data), "--force"],
    }[command]
    line = error_line(invoke(args))
    what = "--pk-ratio file" if command == "predict --pk-ratio" else "run's data file"
    assert f"is the {what}" in line and "--force does not change that" in line, line
    assert digest(data) == before and pk.read_text() == "1.0\n"


@pytest.mark.parametrize("command", ["evaluate", "compare", "mock", "suggest"])
def test_existing_outputs_are_kept_without_force(ctx: Ctx, tmp_path: Path, command: str) -> None:
    out = tmp_path / ("out.npz" if command == "mock" else "out.txt")
    out.write_text("keep me\n")
    args = {
        "evaluate": ["evaluate", str(ctx.run.run_dir), "--out", str(out)],
        "compare": ["compare", str(ctx.run.run_dir), "--out", str(out), "--no-gp"],
        "mock": ["mock", "--out", str(out), "--n", "10"],
        "suggest": ["suggest", str(ctx.run.run_dir), "--n", "2", "--out", str(out), "--candidates", "64"],
    }[command]
    line = error_line(invoke(args))
    assert f"--out {str(out)!r} already exists; pass --force" in line, line
    assert out.read_text() == "keep me\n"


def test_evaluate_force_replaces_an_existing_output(ctx: Ctx, tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    out.write_text("old\n")
    result = invoke(["evaluate", str(ctx.run.run_dir), "--out", str(out), "--force"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert json.loads(out.read_text())


def test_train_refuses_a_folder_that_is_not_a_run(ctx: Ctx, tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    (out / "data.json").write_text('{"mine": true}')
    before = digest(out)
    line = error_line(invoke(["train", "--data", str(ctx.run.data_path), "--out", str(out),
                              "--config", str(ctx.config_file())]))
    assert "is a folder that is not a profemu run folder and is not empty" in line and "data.json" in line, line
    assert digest(out) == before


def test_predict_never_writes_into_the_emulator_it_reads(ctx: Ctx, tmp_path: Path) -> None:
    run = tmp_path / "R"
    shutil.copytree(ctx.run.run_dir, run)
    weights = next((run / "emulator").glob("weights-*.npz"))
    header, rows = ctx.good_csv_rows()
    inp = ctx.csv("pred_in.csv", header, rows)
    before = digest(run / "emulator")
    line = error_line(invoke(["predict", str(run), "--input", str(inp), "--out",
                              str(weights.with_suffix(".npz")), "--force"]))
    assert "is the run's emulator folder" in line or "is inside the run's emulator folder" in line, line
    assert digest(run / "emulator") == before


def test_predict_says_a_missing_run_folder_first(ctx: Ctx, tmp_path: Path) -> None:
    header, rows = ctx.good_csv_rows()
    inp = ctx.csv("pts.csv", header, rows)
    existing = ctx.write("pts_pred.csv", b"x\n")
    assert existing.exists()
    line = error_line(invoke(["predict", str(tmp_path / "nothere"), "--input", str(inp)]))
    assert "does not exist" in line and "run folder" in line and "already exists" not in line, line


def test_suggest_never_writes_over_its_like_table(ctx: Ctx, tmp_path: Path) -> None:
    table = tmp_path / "CosmoAstroSeed.txt"
    table.write_text("#Name Omega_m sigma_8 seed\nSB_0 0.3 0.8 1\n")
    line = error_line(invoke(["suggest", str(ctx.run.run_dir), "--n", "2", "--like", str(table),
                              "--out", str(table), "--force"]))
    assert "is the --like table" in line, line
    assert table.read_text().startswith("#Name")


def test_mock_refuses_a_huge_request_before_allocating(tmp_path: Path) -> None:
    line = error_line(invoke(["mock", "--out", str(tmp_path / "m.npz"), "--n", "1e9"]))
    assert "--n 1000000000" in line and "of memory, above the limit of" in line and "smaller --n" in line, line
    assert "not a whole number" in error_line(invoke(["mock", "--out", str(tmp_path / "m.npz"), "--n", "2.5"]))
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(DataError, match="needs about 2 GB of memory, above the limit of 1 GB"):
        check_memory("x", 2e9, fix="less", limit_bytes=10**9)


# ---------------------------------------------------------------- 2. provenance and locks
def test_an_emulator_of_another_run_is_refused(ctx: Ctx, tmp_path: Path) -> None:
    run, _ = own_copy(ctx, tmp_path)
    split = json.loads((run / "split.json").read_text())
    assert split["run_id"] and split["train_fingerprint"] and split["data_sha256"]
    split["train_fingerprint"] = "0" * 64  # the split of another run: its emulator/ was copied in
    (run / "split.json").write_text(json.dumps(split))
    for args in (["evaluate", str(run)], ["compare", str(run), "--no-gp"], ["report", str(run)]):
        line = error_line(invoke(args))
        assert "is the Emulator of another run" in line, (args, line)
    assert not (run / "report.html").exists()


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda s: s.update(val_rows=[1.5]), "val_rows must be a list of whole row numbers"),
    (lambda s: s.update(val_rows=[-1]), "val_rows holds the row -1; rows are >= 0"),
    (lambda s: s.update(val_rows=s["val_rows"][:1] * 2), "val_rows lists a row more than once"),
    (lambda s: s.update(val_rows=s["train_rows"][:1]), "is in both val_rows and train_rows"),
])
def test_an_edited_split_record_is_refused(ctx: Ctx, tmp_path: Path, edit: Any, needle: str) -> None:
    run, _ = own_copy(ctx, tmp_path)
    split = json.loads((run / "split.json").read_text())
    assert split["val_rows"]
    edit(split)
    (run / "split.json").write_text(json.dumps(split))
    line = error_line(invoke(["evaluate", str(run), "--split", "val"]))
    assert needle in line and "damaged or was edited" in line, line


def test_a_data_file_replaced_in_place_is_refused(ctx: Ctx, tmp_path: Path) -> None:
    run, data = own_copy(ctx, tmp_path)
    shutil.copy2(ctx.other_data(), data)  # same grid and names, other rows
    for args in (["evaluate", str(run)], ["compare", str(run), "--no-gp"], ["report", str(run)]):
        line = error_line(invoke(args))
        assert "changed since the run was trained" in line and str(data.resolve()) in line, (args, line)


def test_evaluate_compare_and_report_take_the_run_lock(ctx: Ctx, tmp_path: Path) -> None:
    run, _ = own_copy(ctx, tmp_path)
    holder = hold_lock(run)
    try:
        for args in (["evaluate", str(run)], ["compare", str(run), "--no-gp"], ["report", str(run)]):
            line = error_line(invoke(args))
            assert "in use by another profemu process" in line and f"pid {holder.pid}" in line, (args, line)
    finally:
        stop(holder)
    assert not (run / "evaluation_test.json").exists() and np.all([not p.name.endswith(".tmp")
                                                                   for p in run.iterdir()])


def test_resume_refuses_checkpoints_copied_from_another_run(ctx: Ctx, tmp_path: Path) -> None:
    run, data = own_copy(ctx, tmp_path)
    split = json.loads((run / "split.json").read_text())
    marker = run / "checkpoints" / ".run_id"
    assert marker.read_text().strip() == split["run_id"]
    marker.write_text("f" * 32 + "\n")  # the checkpoints/ folder of another run, copied in
    before = digest(run)
    line = error_line(invoke(["train", "--data", str(data), "--out", str(run), "--resume",
                              "--config", str(run / "config.yaml")]))
    assert "checkpoints in" in line and "belong to another run (run id ffffffffffff" in line, line
    assert digest(run) == before


def test_demo_force_replaces_only_an_earlier_demo(ctx: Ctx, tmp_path: Path) -> None:
    from rich.console import Console

    from profemu.cli import commands

    out = tmp_path / "demo"
    out.mkdir()
    shutil.copy2(ctx.run.data_path, out / "data.npz")
    shutil.copytree(ctx.run.run_dir, out / "run")
    (out / "notes.txt").write_text("mine")
    (out / "data.npz").unlink()
    line = error_line(invoke(["demo", "--out", str(out), "--quick"]))
    assert "already holds a run/ folder; pass --force" in line, line
    commands._check_demo_out(out, True)
    stage = commands._demo_stage(out)  # a finished new demo (an empty run/ here), moved in
    (stage / "data.npz").write_bytes(b"new")
    (stage / "run").mkdir()
    commands._publish_demo(Console(file=None, quiet=True), stage, out, True)
    assert list((out / "run").iterdir()) == [] and (out / "notes.txt").read_text() == "mine"
