"""Shared pieces of the benchmark suite: provenance, timing, child processes, figures.

* :func:`machine_info` and :func:`git_commit` say where and on what code a number
  was measured (stored beside every result).
* :func:`timeit` times a callable: one warm-up call first (JIT compilation, caches),
  then ``repeats`` timed runs of ``number`` calls each; JAX results are waited for
  with ``jax.block_until_ready`` so asynchronous dispatch does not hide the work.
* :func:`run_child` runs a workload in a fresh Python process under a hard
  timeout and records that process's peak resident memory (its ``VmHWM``), so
  memory is measured without the benchmark runner's own allocations. A child
  reports its numbers with :func:`emit_result`.
* :func:`new_figure` / :func:`save_figure` draw with ``matplotlib.figure.Figure``
  and the Agg canvas directly; the global matplotlib backend is never touched.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BENCHMARKS_DIR",
    "REPO_ROOT",
    "RESULT_MARKER",
    "ChildResult",
    "Timing",
    "available_memory_bytes",
    "emit_result",
    "figure_link",
    "git_commit",
    "limit_address_space",
    "machine_info",
    "new_figure",
    "peak_rss_self_bytes",
    "run_child",
    "save_figure",
    "status",
    "timeit",
    "utc_now",
]

#: The folder of this package (``<repo>/benchmarks``).
BENCHMARKS_DIR = Path(__file__).resolve().parent
#: The repository root (where ``BENCHMARKS.md`` lives).
REPO_ROOT = BENCHMARKS_DIR.parent
#: Prefix of the stdout line on which a child process reports its JSON result.
RESULT_MARKER = "BENCHMARK_RESULT "

# Files the suite itself writes; they do not make the working tree "dirty".
_OWN_OUTPUTS = ("BENCHMARKS.md", "benchmarks/results/", "benchmarks/figures/")


# ------------------------------------------------------------------ provenance
def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (e.g. ``2025-01-31T12:00:00Z``)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit(repo: Path = REPO_ROOT) -> str:
    """Short hash of ``HEAD`` plus ``-dirty`` when tracked or untracked files changed.

    The suite's own outputs (``BENCHMARKS.md``, ``benchmarks/results``,
    ``benchmarks/figures``) are ignored for the dirty flag. Returns ``"unknown"``
    outside a git checkout. Only read-only git commands are used.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        porcelain = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = [line[3:].strip() for line in porcelain.splitlines() if len(line) > 3]
    dirty = any(not path.startswith(_OWN_OUTPUTS) for path in changed)
    return f"{head}-dirty" if dirty else head


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info(*, with_jax: bool = True) -> dict[str, Any]:
    """What the numbers were measured on.

    Args:
        with_jax: Also import JAX to record its backend and first device.

    Returns:
        JSON-safe dict: ``cpu_model``, ``logical_cores``, ``usable_cores`` (this
        process's CPU affinity), ``ram_gib``, ``os``, ``python``, package versions
        (``numpy``, ``jax``, ``jaxlib``, ``flax``, ``optax``, ``scikit-learn``), and with
        JAX ``jax_backend`` and ``jax_device``.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    for pkg in ("numpy", "jax", "jaxlib", "flax", "optax", "scikit-learn"):
        info[pkg] = _version(pkg)
    if with_jax:
        try:
            import jax

            info["jax_backend"] = jax.default_backend()
            info["jax_device"] = str(jax.devices()[0].device_kind)
        except Exception as exc:  # record, never fail the suite on provenance
            info["jax_backend"] = f"unavailable ({type(exc).__name__})"
    return info


# ------------------------------------------------------------------ timing
@dataclass(frozen=True)
class Timing:
    """Seconds per call of a timed function.

    Attributes:
        best: Fastest repeat [s per call] (least disturbed by other load).
        median: Median over repeats [s per call].
        mean: Mean over repeats [s per call].
        repeats: Number of timed repeats.
        number: Calls per repeat.
        warmup_seconds: Duration of the warm-up call(s) [s] (includes compilation).
    """

    best: float
    median: float
    mean: float
    repeats: int
    number: int
    warmup_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields."""
        return asdict(self)


def _block(result: Any) -> None:
    # Only wait on JAX values when JAX is loaded: numpy-only timings stay JAX-free.
    if "jax" in sys.modules:
        import jax

        jax.block_until_ready(result)


def timeit(fn: Callable[[], Any], *, repeats: int = 7, number: int = 1, warmup: int = 1) -> Timing:
    """Time ``fn()`` like :mod:`timeit`, JAX-aware.

    Args:
        fn: Zero-argument callable; its result is waited for (``jax.block_until_ready``)
            inside the timed region.
        repeats: Timed repeats (>= 1); best and median are over these.
        number: Calls per repeat (raise it for calls of a few microseconds).
        warmup: Untimed calls first (JIT compilation, allocator and cache warm-up).

    Returns:
        A :class:`Timing` in seconds per call.
    """
    if repeats < 1 or number < 1 or warmup < 0:
        raise ValueError(f"timeit: repeats={repeats}, number={number} must be >= 1, warmup >= 0.")
    t0 = time.perf_counter()
    for _ in range(warmup):
        _block(fn())
    warm = time.perf_counter() - t0
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            out = fn()
        _block(out)
        per_call.append((time.perf_counter() - start) / number)
    return Timing(
        best=min(per_call),
        median=statistics.median(per_call),
        mean=statistics.fmean(per_call),
        repeats=repeats,
        number=number,
        warmup_seconds=warm,
    )


def status(value: float | None, target: float, *, higher_is_better: bool) -> str:
    """``"PASS"`` when ``value`` meets ``target``, ``"MISS"`` otherwise, ``"n/a"`` without a value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


# ------------------------------------------------------------------ child processes
@dataclass
class ChildResult:
    """Outcome of :func:`run_child`.

    Attributes:
        returncode: Exit status (negative: killed by that signal).
        seconds: Wall-clock duration of the child [s].
        peak_rss_bytes: Peak resident set size of the child (``ru_maxrss``) [bytes].
        timed_out: Whether the child was killed at the timeout.
        result: The JSON object the child printed with :func:`emit_result` (or None).
        stderr_tail: Last lines of the child's stderr (for error messages).
    """

    returncode: int
    seconds: float
    peak_rss_bytes: int
    timed_out: bool
    result: dict[str, Any] | None = None
    stderr_tail: str = ""
    args: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Finished in time with exit status 0 and a result."""
        return not self.timed_out and self.returncode == 0 and self.result is not None


def peak_rss_self_bytes() -> int | None:
    """This process's peak resident set size (``VmHWM`` of /proc/self/status) [bytes]."""
    return _vmhwm("self")


def emit_result(result: dict[str, Any]) -> None:
    """Print ``result`` (plus ``vmhwm_bytes``) as the child's result line for :func:`run_child`."""
    payload = {**result, "vmhwm_bytes": peak_rss_self_bytes()}
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _vmhwm(pid: int | str) -> int | None:
    """``VmHWM`` (peak resident set size) of a process from /proc [bytes], None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_child(
    args: Sequence[str],
    *,
    timeout_s: float,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> ChildResult:
    """Run ``python <args>`` in a new process group with a hard timeout; measure its peak RSS.

    The peak memory is the child's own ``VmHWM`` (high-water mark of its resident
    set), polled from ``/proc/<pid>/status`` while it runs and reported by the child
    itself through :func:`emit_result`; the larger of the two is kept. (The kernel's
    ``ru_maxrss`` of a child is not used: on Linux it includes the resident size of
    the parent at fork time, here a process with JAX loaded.) At the timeout the
    whole process group is killed with SIGKILL; the peak seen until then is kept.

    Args:
        args: Arguments after the interpreter, e.g. ``["-m", "benchmarks.scaling", "train", ...]``.
        timeout_s: Wall-clock limit [s].
        cwd: Working directory (default: the repository root, so ``-m benchmarks...`` works).
        env: Extra environment variables.

    Returns:
        A :class:`ChildResult`.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])]
    )
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    full_env.update(env or {})
    cmd = [sys.executable, *args]
    peak = 0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdout=out, stderr=err, start_new_session=True
        )
        timed_out = False
        while True:
            # read before reaping: /proc/<pid> disappears once the child is waited for
            peak = max(peak, _vmhwm(proc.pid) or 0)
            pid, wait_status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout_s:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pid, wait_status = os.waitpid(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                result = json.loads(line[len(RESULT_MARKER) :])
            except json.JSONDecodeError:
                result = None
            break
    if result is not None and isinstance(result.get("vmhwm_bytes"), int):
        peak = max(peak, result["vmhwm_bytes"])
    return ChildResult(
        returncode=proc.returncode,
        seconds=seconds,
        peak_rss_bytes=peak,
        timed_out=timed_out,
        result=result,
        stderr_tail="\n".join(stderr.strip().splitlines()[-15:]),
        args=list(args),
    )


def limit_address_space(limit_bytes: int) -> None:
    """Cap this process's address space (``RLIMIT_AS``), so that a workload that would
    exhaust a shared machine fails with MemoryError instead. Call it first thing in a
    child workload; not for JAX workloads, which reserve far more address space than
    they use."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (int(limit_bytes), int(limit_bytes)))


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo [bytes] (None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# ------------------------------------------------------------------ figures
def new_figure(width: float = 6.4, height: float = 4.2) -> tuple[Any, Any]:
    """A ``(Figure, Axes)`` pair on an Agg canvas (the global backend is untouched).

    Args:
        width: Figure width [inches].
        height: Figure height [inches].
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def save_figure(fig: Any, out_dir: Path, name: str) -> str:
    """Write ``fig`` as ``out_dir/figures/<name>.png`` (150 dpi).

    Returns:
        The path relative to ``out_dir`` (``"figures/<name>.png"``), as stored in results.
    """
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=150)
    return f"figures/{name}.png"


def figure_link(results: dict[str, Any], relative: str, caption: str) -> str:
    """A markdown image for a figure saved by :func:`save_figure`.

    The runner stores where the figures are relative to BENCHMARKS.md in
    ``results["_links_base"]`` before rendering; the default is ``benchmarks``.
    """
    base = str(results.get("_links_base", "benchmarks")).rstrip("/")
    path = f"{base}/{relative}" if base not in ("", ".") else relative
    return f"![{caption}]({path})"
