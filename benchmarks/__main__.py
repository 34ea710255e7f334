"""Command line of the benchmark suite: ``python -m benchmarks [--quick] [--only a,b]``.

Runs the selected modules (default: every one of accuracy, stability, speed, scaling, soak that
exists), saves each module's results with their provenance to
``<out-dir>/results/<name>.json`` and rewrites ``BENCHMARKS.md`` from all result
files present.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import BENCHMARKS_DIR, REPO_ROOT, git_commit, machine_info, utc_now
from benchmarks.markdown import MODULE_ORDER, write_document

__all__ = ["main", "run_module"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run profemu's benchmarks and rewrite BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes to check that the suite runs (seconds; numbers are meaningless)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated modules to run (default: {','.join(MODULE_ORDER)})",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=BENCHMARKS_DIR,
        help="folder for results/ and figures/ (default: benchmarks)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        help="document to rewrite (default: BENCHMARKS.md at the repository root)",
    )
    return parser.parse_args(argv)


def run_module(name: str, *, mode: str, out_dir: Path) -> dict[str, Any] | None:
    """Import ``benchmarks.<name>`` lazily, run it and save its result record.

    Args:
        name: Module name (``accuracy``, ``speed``, ``scaling`` or another).
        mode: ``"full"``, ``"quick"`` or ``"smoke"`` (smoke is passed only to modules
            whose ``run`` accepts a ``smoke`` keyword; others run in quick mode).
        out_dir: Folder for ``results/`` and ``figures/``.

    Returns:
        The saved record, or None when the module does not exist.
    """
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"benchmarks.{name}":
            print(f"[benchmarks] skipping {name}: benchmarks/{name}.py does not exist", flush=True)
            return None
        raise
    kwargs: dict[str, Any] = {"quick": mode != "full", "out_dir": out_dir}
    effective = mode
    if mode == "smoke":
        if "smoke" in inspect.signature(module.run).parameters:
            kwargs["smoke"] = True
        else:
            effective = "quick"
    print(f"[benchmarks] running {name} ({effective} mode)", flush=True)
    start = time.perf_counter()
    results = module.run(**kwargs)
    record = {
        "benchmark": name,
        "mode": effective,
        "commit": git_commit(),
        "date": utc_now(),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "machine": machine_info(),
        "results": results,
    }
    results_dir = out_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False, default=_json_default) + "\n")
    tmp.replace(path)
    print(f"[benchmarks] {name} done in {record['wall_seconds']} s -> {path}", flush=True)
    return record


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parse(argv)
    if args.quick and args.smoke:
        print("--quick and --smoke are exclusive; choose one.", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(MODULE_ORDER)
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        print(f"--only: {bad} are not module names; use e.g. --only speed,scaling", file=sys.stderr)
        return 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    out_dir = args.out_dir.resolve()
    for name in names:
        run_module(name, mode=mode, out_dir=out_dir)
    doc = write_document(out_dir / "results", args.markdown.resolve())
    print(f"[benchmarks] wrote {doc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
