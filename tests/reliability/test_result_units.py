"""Commands that write several files write them as one unit.

* ``profemu demo`` builds its data, run and report in a hidden folder beside ``--out`` and
  moves it into place at the end: an interruption leaves no ``--out`` (or the earlier demo
  untouched), never a half-written demo that looks complete or new files beside old ones.
  Moving into an existing ``--out`` keeps its other files, takes the earlier run's lock,
  and puts the earlier files back when a step fails. Folders that killed demos left are
  removed by the next demo (only those of processes that no longer run).
* ``profemu compare`` writes ``RUN/compare.json`` and its table ``RUN/compare.md`` as a pair:
  the old table goes first, so the table of one comparison never stands beside the record
  of another.

An interruption is simulated by a function, called after the first file is written, that raises.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from profemu import _files
from profemu.cli import commands
from profemu.errors import DataError
from profemu.runs.compare import format_table
from tests.reliability import TinyRun, tiny_run
from tests.reliability.catalogue import error_line, invoke


class Killed(Exception):
    """Stands for a kill at the point where it is raised."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def digest(path: Path) -> str:
    """SHA-256 of every file name and content under ``path``."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def earlier_demo(run: TinyRun, out: Path) -> str:
    """``out`` holding an earlier demo (data.npz, run/) and a file of the user's; its digest."""
    out.mkdir()
    shutil.copy2(run.data_path, out / "data.npz")
    shutil.copytree(run.run_dir, out / "run")
    (out / "notes.txt").write_text("mine")
    return digest(out)


def leftovers(folder: Path) -> list[str]:
    """Hidden folders of a demo beside or inside ``folder``."""
    return sorted(p.name for p in (*folder.parent.iterdir(), *(folder.iterdir() if folder.is_dir() else ()))
                  if ".demo" in p.name)


def kill_after_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo stops after writing its data file, in the middle of its steps."""
    def train(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(commands, "_train", train)


# ---------------------------------------------------------------- demo
def test_an_interrupted_demo_leaves_no_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    kill_after_the_data(monkeypatch)
    result = invoke(["demo", "--out", str(out), "--quick"])
    assert isinstance(result.exception, Killed), (result.stdout, result.exception)
    assert not out.exists()
    assert leftovers(out) == []


def test_an_interrupted_demo_leaves_the_earlier_one_intact(run: TinyRun, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    before = earlier_demo(run, out)
    kill_after_the_data(monkeypatch)
    result = invoke(["demo", "--out", str(out), "--quick", "--force"])
    assert isinstance(result.exception, Killed), (result.stdout, result.exception)
    assert digest(out) == before
    assert leftovers(out) == []


def staged_demo(run: TinyRun, tmp_path: Path) -> Path:
    """A finished demo in a staging folder, as the demo's steps leave it."""
    stage = commands._demo_stage(tmp_path / "demo")
    (stage / "data.npz").write_bytes(b"new data")
    shutil.copytree(run.run_dir, stage / "run")
    (stage / "run" / "new.txt").write_text("new")
    return stage


def test_publishing_replaces_only_the_earlier_demo_and_puts_it_back_on_failure(
        run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    before = earlier_demo(run, out)
    quiet = Console(file=None, quiet=True)
    stage = staged_demo(run, tmp_path)
    rename = Path.rename

    def full_disk(self: Path, target: str | Path) -> Path:
        if Path(target) == out / "run" and self.parent == stage:  # the last step: the new run/ moves in
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", full_disk)
    with pytest.raises(DataError, match=r"cannot move the demo into .*No space left on device"):
        commands._publish_demo(quiet, stage, out, force=True)
    monkeypatch.undo()
    assert digest(out) == before  # the earlier demo is back, whole
    assert sorted(p.name for p in stage.iterdir()) == ["data.npz", "run"]  # the new one is kept for a retry

    commands._publish_demo(quiet, stage, out, force=True)
    assert (out / "data.npz").read_bytes() == b"new data" and (out / "run" / "new.txt").is_file()
    assert (out / "notes.txt").read_text() == "mine"
    assert not stage.exists() and leftovers(out) == []


def test_publishing_refuses_what_appeared_meanwhile_without_force(run: TinyRun, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    stage = staged_demo(run, tmp_path)
    before = earlier_demo(run, out)  # another demo finished first
    with pytest.raises(DataError, match="already exists; pass --force"):
        commands._publish_demo(Console(file=None, quiet=True), stage, out, force=False)
    assert digest(out) == before


def test_folders_of_killed_demos_are_removed_and_those_of_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    host = socket.gethostname()
    stale = [tmp_path / f".demo.demo-{host}-{dead.pid}-1", out / f".demo.old-{host}-{dead.pid}-2"]
    kept = [tmp_path / f".demo.demo-{host}-{os.getpid()}-3", tmp_path / f".demo.demo-elsewhere-{dead.pid}-4",
            tmp_path / f".other.demo-{host}-{dead.pid}-5"]
    for folder in (*stale, *kept):
        folder.mkdir()
        (folder / "x").write_text("x")
    commands._remove_stale_demo_folders(out)
    assert [p.exists() for p in stale] == [False, False]
    assert [p.exists() for p in kept] == [True, True, True]


@pytest.mark.slow
def test_demo_force_moves_a_whole_new_demo_in(run: TinyRun, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    earlier_demo(run, out)
    result = invoke(["demo", "--out", str(out), "--quick", "--force"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "--force: replaced the earlier demo's run/ and data.npz" in result.stdout
    assert (out / "notes.txt").read_text() == "mine" and leftovers(out) == []
    assert json.loads((out / "run" / "data.json").read_text())["path"] == str((out / "data.npz").resolve())
    report = (out / "run" / "report.html").read_text()
    assert str((out / "run").resolve()) in report and ".demo.demo-" not in report
    assert not any(b".demo.demo-" in p.read_bytes() for p in (out / "run").rglob("*") if p.is_file())
    result = invoke(["report", str(out / "run")])  # the run names its data where they are now
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "already exists; pass --force" in error_line(invoke(["demo", "--out", str(out), "--quick"]))


# ---------------------------------------------------------------- compare
def test_compare_never_leaves_the_table_of_one_comparison_beside_another_record(
        run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "R"
    shutil.copytree(run.run_dir, folder)  # data.json names the run's data file by its absolute path

    def pair() -> tuple[list[str], str | None]:
        record = json.loads((folder / "compare.json").read_text())
        md = folder / "compare.md"
        if md.exists():
            assert md.read_text() == format_table(record["rows"]) + "\n", "compare.md is not compare.json's table"
        return [r["method"] for r in record["rows"]], md.read_text() if md.exists() else None

    result = invoke(["compare", str(folder), "--no-gp"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    methods, text = pair()
    assert methods == ["profemu", "pca_rbf"] and text is not None

    atomic_write = _files.atomic_write

    def killed_before_the_table(path: Path, write: object) -> Path:
        if Path(path).name == "compare.md":
            raise Killed
        return atomic_write(path, write)  # type: ignore[arg-type]

    monkeypatch.setattr(_files, "atomic_write", killed_before_the_table)
    result = invoke(["compare", str(folder), "--gp-max-train", "5"])
    assert isinstance(result.exception, Killed), (result.stdout, result.exception)
    monkeypatch.undo()
    methods, text = pair()  # the new record was written; its table was not, and the old one is gone
    assert methods == ["profemu", "gp", "pca_rbf"] and text is None

    table = tmp_path / "table.md"  # --out: a copy of the table; the run's pair is written all the same
    result = invoke(["compare", str(folder), "--no-gp", "--out", str(table)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    methods, text = pair()
    assert methods == ["profemu", "pca_rbf"] and text == table.read_text()
