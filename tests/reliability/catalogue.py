"""The error catalogue, produced by running the code: every user mistake, its message, its CLI line.

A :class:`Case` is one thing a user can get wrong, performed through the Python API
and/or the command line. :func:`run_case` performs it and records the real messages;
:func:`render` turns the recorded messages of every case into the table of
``docs/errors.md``. ``tools/errors_catalogue.py`` writes that table into the file, and
``tests/reliability/test_run_safety.py`` checks that the file holds exactly what the
code says now, so the catalogue is never edited by hand.

The cases themselves live with their tests: ``CASES`` in ``test_bad_inputs.py`` (data,
configuration, files) and ``SAFETY_CASES`` in ``test_run_safety.py`` (run folders,
resume, locks, predict output); :func:`all_cases` collects both.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from profemu.errors import ProfemuError
from tests.helpers import stderr_error_lines
from tests.reliability import TinyRun

__all__ = [
    "DOC", "Case", "Ctx", "Recorded", "all_cases", "doc_table", "error_line", "hold_lock", "invoke", "render",
    "run_case", "stop", "warning_line", "with_table",
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"

_HOLDER = textwrap.dedent("""
    import sys, time
    from profemu._lock import folder_lock
    with folder_lock(sys.argv[1], what="test"):
        print("ready", flush=True)
        time.sleep(float(sys.argv[2]))
""")
_HOLDERS: dict[str, subprocess.Popen[bytes]] = {}


def hold_lock(folder: Path, seconds: float = 600.0) -> subprocess.Popen[bytes]:
    """Start a process that takes ``folder``'s lock and sleeps (killed at exit at the latest)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != b"ready":
        proc.kill()
        raise RuntimeError(f"the lock holder did not start: {proc.stderr.read() if proc.stderr else b''!r}")
    atexit.register(stop, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a :func:`hold_lock` process (its lock stays behind, stale) and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@dataclass(frozen=True)
class Ctx:
    """What a case needs: the shared trained run and a folder for bad files."""

    run: TinyRun
    folder: Path

    @property
    def emu(self) -> Any:
        return self.run.emulator

    def params(self, n: int = 2) -> np.ndarray:
        """``n`` rows of valid parameters (the first training rows)."""
        return np.array(self.run.dataset.params[:n])

    def rewrite(self, name: str, **changes: Any) -> Path:
        """A copy of the run's npz with some arrays replaced (bypassing all validation)."""
        with np.load(self.run.data_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(changes)
        path = self.folder / name
        np.savez(path, **arrays)
        return path

    def write(self, name: str, content: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(content)
        return path

    def csv(self, name: str, header: list[str], rows: list[list[float]]) -> Path:
        lines = [",".join(header)] + [",".join(repr(float(v)) for v in row) for row in rows]
        return self.write(name, ("\n".join(lines) + "\n").encode())

    def good_csv_rows(self) -> tuple[list[str], list[list[float]]]:
        header = [*self.emu.param_names, "log10_mass"]  # redshift is constant: not an input
        ds = self.run.dataset
        rows = [[*ds.params[i], ds.log10_mass[i]] for i in range(2)]
        return header, rows

    def other_grid(self) -> Path:
        """A valid dataset with the same number of radii over another radial range."""
        from profemu.data.mock import make_mock_universe

        path = self.folder / "other_grid.npz"
        if not path.exists():
            make_mock_universe(n=24, seed=5, param_set="lh6", n_r=8, radius_range=(0.05, 3.0)).dataset.save(path)
        return path

    def other_data(self) -> Path:
        """Another valid dataset on the run's grid and parameters (another seed): B.npz."""
        from profemu.data.mock import make_mock_universe

        path = self.folder / "B.npz"
        if not path.exists():
            make_mock_universe(n=300, seed=4, param_set="lh6", n_r=8).dataset.save(path)
        return path

    def run_copy(self, name: str) -> Path:
        """A copy of the finished run (once per name)."""
        path = self.folder / name
        if not path.exists():
            shutil.copytree(self.run.run_dir, path)
        return path

    def config_file(self) -> Path:
        return self.run.run_dir / "config.yaml"

    def newer_emulator_run(self) -> Path:
        run = self.folder / "newer_run"
        if not run.exists():
            shutil.copytree(self.run.run_dir, run)
            manifest_path = run / "emulator" / "manifest.json"
            manifest = json.loads(manifest_path.read_text())
            manifest["format_version"] = 99
            manifest_path.write_text(json.dumps(manifest))  # the version is checked before the checksum
        return run

    def locked_run(self) -> Path:
        """A copy of the run whose lock a live process holds (started once)."""
        path = self.run_copy("locked_run")
        if str(path) not in _HOLDERS or _HOLDERS[str(path)].poll() is not None:
            _HOLDERS[str(path)] = hold_lock(path)
        return path


@dataclass(frozen=True)
class Case:
    """One row of the error catalogue.

    Attributes:
        id: Short name (also the anchor of the row in docs/errors.md).
        what: What the user did.
        error: The exception type the API raises.
        api_fragment: Stable part of the API message.
        api: Performs the mistake through the Python API (None: no API form).
        cli: Command-line arguments performing the same mistake (None: no CLI form).
        cli_fragment: Stable part of the CLI's ``error:`` line (``warning:`` line when
            ``cli_exit`` is 0).
        cli_exit: The exit code of the command line (2 for an error; 0 for a warning).
    """

    id: str
    what: str
    error: type[ProfemuError]
    api_fragment: str
    api: Callable[[Ctx], Any] | None
    cli: Callable[[Ctx], list[str]] | None
    cli_fragment: str = ""
    cli_exit: int = 2


@dataclass(frozen=True)
class Recorded:
    """The real messages of one case (paths, pids, hosts and times normalised)."""

    case: Case
    api: str | None
    cli: str | None


def invoke(args: list[str]) -> Any:
    """Run ``profemu ARGS`` in-process (warnings silenced), return typer's result."""
    from typer.testing import CliRunner

    from profemu.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result: Any) -> str:
    """The single ``error:`` line of a user error (exit code 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = stderr_error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def warning_line(result: Any) -> str:
    """The single ``warning:`` line of a command that succeeded with a warning."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1, result.stdout
    return warned[0]


def run_case(case: Case, ctx: Ctx) -> Recorded:
    """Perform ``case`` through the API and the CLI and record the messages."""
    api = cli = None
    if case.api is not None:
        try:
            case.api(ctx)
        except ProfemuError as exc:
            assert type(exc) is case.error, (case.id, type(exc), exc)
            api = str(exc)
        else:
            raise AssertionError(f"{case.id}: the API call raised nothing")
    if case.cli is not None:
        result = invoke(case.cli(ctx))
        cli = error_line(result) if case.cli_exit == 2 else warning_line(result)
    return Recorded(case, None if api is None else normalise(api, ctx), None if cli is None else normalise(cli, ctx))


def normalise(text: str, ctx: Ctx) -> str:
    """One line, with the session's paths, pids, hosts and times replaced by placeholders."""
    text = " ".join(text.split())
    pairs = [(ctx.run.data_path, "<data>"), (ctx.run.run_dir, "<run>"), (ctx.folder, "<tmp>")]
    for path, name in pairs:
        for form in dict.fromkeys((str(path.resolve()), str(path))):
            text = text.replace(form, name)
    text = re.sub(r"pid \d+ on host \S+ \(.*?, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)",
                  "pid <pid> on host <host> (<command>, since <time>)", text)
    # checksums of files written now and random run ids, and a limit that depends on the free memory
    text = re.sub(r"(SHA-256 |records |run id )[0-9a-f]{12}\b", r"\1<hash>", text)
    text = re.sub(r"above the limit of [\d.]+ [kMGT]B", "above the limit of <limit>", text)
    return text.replace(socket.gethostname(), "<host>").replace(f"pid {os.getpid()}", "pid <pid>")


def _code(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render(recorded: list[Recorded]) -> str:
    """The catalogue table (markdown) of the recorded cases."""
    lines = ["| id | what the user did | API: exception and message | CLI: exit code and the output line |",
             "|---|---|---|---|"]
    for r in recorded:
        c = r.case
        api = f"`{c.error.__name__}`: {_code(r.api)}" if r.api is not None else "(command line only)"
        if r.cli is None:
            cli = "(no command-line form)"
        else:
            cli = f"{c.cli_exit}: {_code(r.cli)}"
        lines.append(f"| `{c.id}` | {c.what.replace('|', chr(92) + '|')} | {api} | {cli} |")
    return "\n".join(lines) + "\n"


def all_cases() -> list[Case]:
    """Every case: the bad-input matrix, then the run-folder safety cases."""
    from tests.reliability.test_bad_inputs import CASES
    from tests.reliability.test_run_safety import SAFETY_CASES

    return [*CASES, *SAFETY_CASES]


def doc_table(text: str | None = None) -> str:
    """The generated part of docs/errors.md (between the catalogue markers)."""
    text = DOC.read_text() if text is None else text
    if START not in text or END not in text:
        raise AssertionError(f"{DOC}: the markers {START} / {END} are missing")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def with_table(table: str, text: str | None = None) -> str:
    """docs/errors.md with its generated part replaced by ``table``."""
    text = DOC.read_text() if text is None else text
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{START}\n{table}{END}{tail}"
