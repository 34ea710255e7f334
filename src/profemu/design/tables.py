"""Suggestion files: one column per parameter plus the scores (:func:`write_suggestion_csv`), and
the layout of a CAMELS ``CosmoAstroSeed_*.txt`` parameter table (:func:`write_like_table`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profemu._files import atomic_write_text
from profemu.design.selection import Suggestion
from profemu.errors import DataError, FormatError

__all__ = ["DesignTable", "check_new_file", "like_columns", "read_design_table", "write_like_table", "write_suggestion_csv"]


def check_new_file(path: str | Path, force: bool, inputs: Mapping[str, Path | str | None] | None = None) -> Path:
    """``path`` as a Path, if a new file may be written there.

    Args:
        path: The output file.
        force: Whether an existing file may be replaced.
        inputs: ``{what: path}`` of the files and folders the command reads; the output may
            be none of them (nor inside one), even with ``force``.

    Raises:
        DataError: it is an input, exists (and ``force`` is False), is a folder, or its
            folder is missing.
    """
    from profemu._files import check_output

    path = check_output(path, force=force, inputs=inputs)
    if not path.parent.is_dir():
        raise DataError(f"--out {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first.")
    return path


def _num(value: float) -> str:
    return format(float(value), ".10g")


def write_suggestion_csv(suggestion: Suggestion, path: str | Path, *, force: bool = False) -> Path:
    """Write the points as CSV: one column per parameter (linear units), ``score``, ``gain``.

    With a pool, an ``index`` column (row of the pool) comes first. Written atomically;
    an existing file is only replaced with ``force``.

    Raises:
        DataError: ``path`` exists (without ``force``), is a folder, or its folder is missing.
    """
    path = check_new_file(Path(path), force)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = (["index"] if suggestion.index is not None else []) + list(suggestion.param_names) + ["score", "gain"]
    writer.writerow(head)
    for i in range(len(suggestion)):
        row = [str(int(suggestion.index[i]))] if suggestion.index is not None else []
        row += [_num(suggestion.points[nm][i]) for nm in suggestion.param_names]
        row += [format(float(suggestion.score[i]), ".6g"), format(float(suggestion.gain[i]), ".6g")]
        writer.writerow(row)
    return atomic_write_text(path, buf.getvalue())


@dataclass(frozen=True)
class DesignTable:
    """A CAMELS ``CosmoAstroSeed_*.txt`` parameter table.

    Attributes:
        path: The file read.
        header: The header line as written (``#Name p1 ... seed``).
        param_names: Parameter column names, in the table's order.
        names: [n] simulation names (e.g. ``SB35_0``).
        values: [n, p] parameter values.
        seeds: [n] initial-condition seeds.
    """

    path: Path
    header: str
    param_names: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray
    seeds: np.ndarray


def read_design_table(path: str | Path) -> DesignTable:
    """Read a CAMELS parameter table: header ``#Name p1 ... pK seed``, rows ``NAME v1 ... vK seed``.

    Raises:
        FormatError: missing file, no such header, a row with the wrong number of
            columns or a non-numeric value (the message gives the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"--like {str(path)!r}: file not found; pass a CosmoAstroSeed_*.txt parameter table.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"--like {str(path)!r}: not a text file; expected a CosmoAstroSeed_*.txt table.") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines or not lines[0][1].lstrip().startswith("#"):
        raise FormatError(f"--like {str(path)!r}: the first line must be the header '#Name p1 ... seed'.")
    header = lines[0][1].strip()
    tokens = header.lstrip("#").split()
    if len(tokens) < 3 or tokens[0].lower() != "name" or tokens[-1].lower() != "seed":
        raise FormatError(
            f"--like {str(path)!r}: header {header[:60]!r} is not '#Name p1 ... seed' (a CAMELS parameter table)."
        )
    params = tuple(tokens[1:-1])
    names: list[str] = []
    values: list[list[float]] = []
    seeds: list[int] = []
    for lineno, line in lines[1:]:
        if line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != len(params) + 2:
            raise FormatError(
                f"--like {str(path)!r}, line {lineno}: {len(parts)} columns, the header names {len(params) + 2}."
            )
        try:
            row = [float(v) for v in parts[1:-1]]
            seed = int(parts[-1])
        except ValueError:
            raise FormatError(f"--like {str(path)!r}, line {lineno}: a parameter or seed is not a number.") from None
        names.append(parts[0])
        values.append(row)
        seeds.append(seed)
    if not names:
        raise FormatError(f"--like {str(path)!r}: no simulation rows after the header.")
    return DesignTable(path, header, params, tuple(names), np.array(values), np.array(seeds, dtype=np.int64))


def _new_names(names: Sequence[str], n: int) -> list[str]:
    """``n`` names continuing the numbering of ``names`` (``SB35_2047`` -> ``SB35_2048``, ...)."""
    pattern = re.compile(r"^(.*?)(\d+)$")
    last = pattern.match(names[-1])
    prefix = last.group(1) if last else "NEW_"
    numbers = [int(m.group(2)) for nm in names if (m := pattern.match(nm)) and m.group(1) == prefix]
    start = max(numbers) + 1 if numbers else 0
    taken = set(names)
    out: list[str] = []
    k = start
    while len(out) < n:
        cand = f"{prefix}{k}"
        if cand not in taken:
            out.append(cand)
        k += 1
    return out


def write_like_table(
    suggestion: Suggestion,
    like: str | Path | DesignTable,
    path: str | Path,
    *,
    values: Mapping[str, float] | None = None,
    force: bool = False,
) -> Path:
    """Write the points in the layout of a CAMELS parameter table (name, parameters, seed).

    Columns follow the table's header; names continue its numbering and seeds continue
    after its largest seed, so neither collides with an existing simulation. Every
    column of the table must be an emulator parameter or be given in ``values`` (e.g.
    the ``--fix`` values of parameters the emulator does not have); every emulator
    parameter must be a column of the table. Written atomically.

    Args:
        suggestion: The points to write.
        like: The table (or its path) whose layout to copy.
        path: Output file.
        values: ``{column: value}`` for table columns the emulator lacks.
        force: Replace an existing ``path``.

    Raises:
        DataError: unmatched names, ``path`` is the table itself (even with ``force``), or
            ``path`` exists without ``force``.
        FormatError: an unreadable table.
    """
    table = like if isinstance(like, DesignTable) else read_design_table(like)
    extra = like_columns(table, suggestion.param_names, values)
    path = check_new_file(Path(path), force, {"--like table": table.path})
    n = len(suggestion)
    new_names = _new_names(table.names, n)
    first_seed = int(table.seeds.max()) + 1
    width = max(len(s) for s in (*table.names, *new_names)) + 1
    lines = [table.header]
    for i in range(n):
        row = [
            format(float(suggestion.points[nm][i] if nm in suggestion.points else extra[nm]), ".6g")
            for nm in table.param_names
        ]
        lines.append(f"{new_names[i]:>{width}} " + " ".join(row) + f" {first_seed + i}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def like_columns(
    table: DesignTable, param_names: Sequence[str], values: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Check that every column of ``table`` is an emulator parameter or given in ``values``.

    Args:
        table: The parameter table.
        param_names: The emulator's parameter names.
        values: ``{column: value}`` for table columns the emulator lacks.

    Returns:
        ``values`` as floats.

    Raises:
        DataError: an emulator parameter the table lacks, a table column neither the
            emulator nor ``values`` covers, or a name in ``values`` the table lacks.
    """
    extra = {str(k): float(v) for k, v in (values or {}).items()}
    missing_in_table = [nm for nm in param_names if nm not in table.param_names]
    if missing_in_table:
        raise DataError(
            f"--like {str(table.path)!r}: the emulator's parameter(s) {missing_in_table} are not columns of the "
            f"table ({', '.join(table.param_names[:8])}{', ...' if len(table.param_names) > 8 else ''}); names must "
            "match exactly: train the emulator with the table's parameter names, or write a plain CSV without --like."
        )
    unknown_extra = [nm for nm in extra if nm not in table.param_names]
    if unknown_extra:
        raise DataError(f"--fix: {unknown_extra} are neither emulator parameters nor columns of {str(table.path)!r}.")
    uncovered = [nm for nm in table.param_names if nm not in param_names and nm not in extra]
    if uncovered:
        raise DataError(
            f"--like {str(table.path)!r}: the table's column(s) {uncovered} are not parameters of the emulator; "
            "give their values for the new simulations with --fix NAME=VALUE (one per column)."
        )
    return extra
