"""Assemble ``BENCHMARKS.md`` from every result file in ``benchmarks/results``.

Each section is rendered by its module's ``markdown(results)`` and headed by the
provenance of its numbers (commit, mode, date, machine), so modules can be rerun
separately and the document still says where every number came from.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER",
    "MODULE_ORDER",
    "build_document",
    "fmt",
    "load_results",
    "provenance_line",
    "table",
    "write_document",
]

#: Order of the sections; other result files follow alphabetically.
MODULE_ORDER: tuple[str, ...] = (
    "accuracy", "smallsuite", "stability", "speed", "demo", "scaling", "soak", "inference", "design",
    "design_hard", "extrapolation", "extrapolation_band", "observables", "train_speed", "relevance_cost", "blend",
)

HEADER = """# Benchmarks

Every number on this page comes from a run of the benchmark suite in
[`benchmarks/`](benchmarks/); nothing is typed in by hand. Regenerate it with

```bash
python -m benchmarks                 # full suite (writes benchmarks/results/*.json, this file)
python -m benchmarks --quick         # smaller sizes, a few minutes
python -m benchmarks --only speed    # rerun one module; the other sections are kept
```

Each section states the commit, the mode (quick or full) and the machine it was
measured on. Absolute speeds depend on the machine and on its load; speeds are
therefore compared as ratios measured in the same run on the same machine (for
example profemu's training loop against a minimal hand-written loop), and
targets are reported as measured value, target and PASS/MISS.
"""


def fmt(value: Any, digits: int = 3) -> str:
    """Format a number for a table: ``digits`` significant digits, thousands separators."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        if magnitude >= digits - 1:
            return f"{round(value):,}"
        return f"{value:.{max(0, digits - 1 - magnitude)}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; cells are formatted with :func:`fmt` unless already strings."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |")
    return "\n".join(lines)


def provenance_line(record: dict[str, Any]) -> str:
    """One italic line: commit, mode, date, machine and wall time of a result record."""
    m = record.get("machine", {})
    machine = (
        f"{m.get('cpu_model', 'unknown CPU')}, {m.get('usable_cores', '?')} usable of "
        f"{m.get('logical_cores', '?')} cores, {m.get('ram_gib', '?')} GiB RAM, {m.get('os', '?')}; "
        f"Python {m.get('python', '?')}, JAX {m.get('jax', '?')} ({m.get('jax_backend', '?')}), "
        f"numpy {m.get('numpy', '?')}"
    )
    wall = record.get("wall_seconds")
    wall_text = f", suite time {wall:.0f} s" if isinstance(wall, int | float) else ""
    return (
        f"*Measured at commit `{record.get('commit', 'unknown')}`, {record.get('mode', '?')} mode, "
        f"{record.get('date', '?')}{wall_text}, on {machine}.*"
    )


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """``{name: record}`` for every ``results_dir/<name>.json``, in section order."""
    found: dict[str, dict[str, Any]] = {}
    if not results_dir.is_dir():
        return found
    for path in sorted(results_dir.glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            found[path.stem] = {"error": f"unreadable result file {path.name}: {exc}"}
    order = [n for n in MODULE_ORDER if n in found] + sorted(
        n for n in found if n not in MODULE_ORDER
    )
    return {n: found[n] for n in order}


def _section(name: str, record: dict[str, Any], links_base: str) -> str:
    body: str
    if "error" in record and "results" not in record:
        body = f"## {name.capitalize()}\n\n{record['error']}\n"
    else:
        results = dict(record.get("results", {}))
        results["_links_base"] = links_base
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            body = module.markdown(results).strip() + "\n"
        except ModuleNotFoundError:
            body = (
                f"## {name.capitalize()}\n\n(benchmarks/{name}.py is absent; raw results are in "
                f"`benchmarks/results/{name}.json`.)\n"
            )
        except Exception as exc:  # a broken renderer must not lose the other sections
            body = f"## {name.capitalize()}\n\nCould not render this section: {type(exc).__name__}: {exc}\n"
    lines = body.splitlines()
    prov = provenance_line(record)
    if lines and lines[0].startswith("## "):
        return "\n".join([lines[0], "", prov, *lines[1:]]) + "\n"
    return "\n".join([f"## {name.capitalize()}", "", prov, "", *lines]) + "\n"


def build_document(results_dir: Path, markdown_path: Path) -> str:
    """The text of BENCHMARKS.md from every result in ``results_dir``.

    Args:
        results_dir: Folder of ``<name>.json`` result records.
        markdown_path: Where the document will be written (figure links are made
            relative to its folder).
    """
    out_dir = results_dir.parent
    links_base = os.path.relpath(out_dir, markdown_path.parent).replace(os.sep, "/")
    records = load_results(results_dir)
    parts = [HEADER]
    if not records:
        parts.append("\nNo results yet: run `python -m benchmarks`.\n")
    for name, record in records.items():
        parts.append("\n" + _section(name, record, links_base))
    return "".join(parts).rstrip() + "\n"


def write_document(results_dir: Path, markdown_path: Path) -> Path:
    """Write :func:`build_document` to ``markdown_path`` and return the path."""
    markdown_path.write_text(build_document(results_dir, markdown_path))
    return markdown_path
