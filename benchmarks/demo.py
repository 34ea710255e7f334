"""`profemu demo` end to end: wall time on this machine and what its report shows.

Runs ``python -m profemu demo --out <tmp>`` (quick mode: ``--quick``) in a fresh process
from the installed package (a warm install: no compilation cache is kept between runs, so
the time includes JAX's compilation), and records the wall time, the peak memory of the
process, the step times it prints, and whether the report names the self-similar scaling
that was applied. Target: at most 180 s on 2 cores.

Module contract of the benchmark suite: ``run(*, quick, out_dir) -> dict`` and
``markdown(results) -> str``.
"""

from __future__ import annotations

import html as _html
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["TARGET_SECONDS", "markdown", "run"]

TARGET_SECONDS = 180.0


def run(*, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Time one ``profemu demo`` (``--quick`` in quick mode) in a subprocess."""
    del out_dir
    with tempfile.TemporaryDirectory(prefix="profemu-demo-") as tmp:
        args = [sys.executable, "-m", "profemu", "demo", "--out", str(Path(tmp) / "demo")]
        if quick:
            args.append("--quick")
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, env={**os.environ})
        seconds = time.perf_counter() - t0
        report = Path(tmp) / "demo" / "run" / "report.html"
        html = report.read_text(encoding="utf-8", errors="replace") if report.is_file() else ""
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    steps = [ln for ln in proc.stdout.splitlines() if re.match(r"\[\d/4\]", ln)]
    self_similar = re.search(r"self-similar normalisation: ([^<\n]+)", html + proc.stderr)
    return {
        "quick": quick,
        "exit_code": proc.returncode,
        "seconds": seconds,
        "peak_rss_mib": peak_mib,
        "steps": steps,
        "report_written": bool(html),
        "report_shows_self_similar": bool(html) and "self-similar" in html.lower(),
        "self_similar": _html.unescape(self_similar.group(1)).strip() if self_similar else None,
        "stderr_tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else [],
    }


def markdown(results: dict[str, Any]) -> str:
    """The demo section of BENCHMARKS.md."""
    ok = results["exit_code"] == 0 and results["seconds"] <= TARGET_SECONDS
    lines = [
        "## `profemu demo`",
        "",
        f"`python -m profemu demo{' --quick' if results['quick'] else ''}` in a fresh process (mock universe, "
        "3,000 rows; training, held-out evaluation, ARD GP and PCA+RBF comparison, HTML report): "
        f"exit code {results['exit_code']}, **{results['seconds']:.0f} s** wall (target <= {TARGET_SECONDS:.0f} s: "
        f"**{'PASS' if ok else 'MISS'}**), peak memory {results['peak_rss_mib']:.0f} MiB.",
        "",
        f"The report {'shows' if results['report_shows_self_similar'] else 'does NOT show'} the self-similar "
        "scaling that was applied"
        + (f": *{_html.unescape(results['self_similar'])}*." if results["self_similar"] else "."),
        "",
    ]
    if results["steps"]:
        lines += ["Steps it printed:", "", *[f"    {s}" for s in results["steps"]], ""]
    if results["stderr_tail"]:
        lines += ["Its last lines on stderr:", "", *[f"    {s}" for s in results["stderr_tail"]], ""]
    return "\n".join(lines)
