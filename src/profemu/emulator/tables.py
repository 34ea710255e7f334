"""Tables of emulator inputs: CSV files read in bounded chunks, npz archives, P(k) defaults.

* :func:`csv_chunks` — the columns of a CSV with a header, ``rows`` rows at a time (a file
  of any length is never held whole). Text that is not UTF-8 (Latin-1, UTF-16), a field
  over :data:`MAX_FIELD_BYTES`, a duplicate column, a short line or a cell that is not a
  number each end in one line naming the file, the line and the fix.
* :func:`read_table` — every column of a CSV, or the arrays of an npz (no pickle).
* :func:`required_columns` — the columns ``profemu predict`` needs, in order.
* :func:`fiducial_pk_ratio` / :func:`read_pk_ratio` — the P(k) suppression assumed for
  inputs that do not give it: a file of one value per k bin, or by default the centre of
  the training set's P(k) (the P(k) scaler's centre, stored with the Emulator).
* :func:`prediction_arguments` — ``predict()`` arguments from named columns or npz arrays.
* :func:`name_list` — at most :data:`NAMES_SHOWN` names and how many more (one-line messages).
"""

from __future__ import annotations

import csv
import logging
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu.errors import DataError, FormatError

__all__ = [
    "MAX_FIELD_BYTES",
    "NAMES_SHOWN",
    "csv_chunks",
    "describe_values",
    "fiducial_pk_ratio",
    "name_list",
    "prediction_arguments",
    "read_pk_ratio",
    "read_table",
    "required_columns",
]

logger = logging.getLogger(__name__)

#: Largest CSV field accepted [bytes] (a number is a few dozen bytes; more is not a table of numbers).
MAX_FIELD_BYTES = 128 * 1024
#: Names listed in one message before "and N more".
NAMES_SHOWN = 10
_SAVE_AS_UTF8 = "save it as UTF-8 (CSV UTF-8 in a spreadsheet's Save As) and try again"


def describe_values(values: np.ndarray) -> str:
    """``79 values from 0.834 to 1`` (one value is written as it is): short enough for one log line."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 1:
        return f"{v[0]:.4g}"
    return f"{v.size} values from {v.min():.4g} to {v.max():.4g}"


def name_list(names: Sequence[str], limit: int = NAMES_SHOWN) -> str:
    """``a, b, c`` with at most ``limit`` names, then ``and N more``."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_text(path: Path, option: str) -> None:
    """Refuse UTF-16/32 text (byte-order mark or NUL bytes) before the CSV reader sees it."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise FormatError(f"{option} {str(path)!r}: the file is UTF-16 (or another wide encoding) text, not UTF-8; "
                          f"{_SAVE_AS_UTF8}.")


def _reader(fh: Any, path: Path, option: str) -> Iterator[list[str]]:
    """Rows of ``csv.reader``, with encoding and field-size errors as one line each."""
    old = csv.field_size_limit()
    try:
        csv.field_size_limit(MAX_FIELD_BYTES)
        reader = csv.reader(fh)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise FormatError(f"{option} {str(path)!r}: byte {exc.start} of a line is not UTF-8 text (the file "
                                  f"is probably Latin-1 or Windows-1252); {_SAVE_AS_UTF8}.") from None
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise FormatError(f"{option} {str(path)!r}: line {reader.line_num} holds a field over "
                                      f"{MAX_FIELD_BYTES // 1024} KB (an unclosed quote?); a table of inputs holds "
                                      "numbers: fix the line.") from None
                raise FormatError(f"{option} {str(path)!r}: line {reader.line_num}: not a valid CSV line ({exc}); "
                                  "fix the line.") from None
            yield row
    finally:
        csv.field_size_limit(old)


def csv_chunks(path: Path, rows: int, *, option: str = "--input") -> Iterator[dict[str, np.ndarray]]:
    """The columns of a CSV with a header, at most ``rows`` rows at a time (header order).

    Blank lines are skipped. Every chunk has every column.

    Raises:
        DataError: an empty file, no data rows, a duplicate column, a line with another
            number of values or a cell that is not a number.
        FormatError: text that is not UTF-8, a field over :data:`MAX_FIELD_BYTES`.
    """
    if rows < 1:
        raise DataError(f"rows: {rows} < 1; pass a positive number of rows.")
    _check_text(path, option)
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as fh:
        reader = _reader(fh, path, option)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{option} {str(path)!r}: empty file; the first line must name the columns.") from None
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise DataError(f"{option} {str(path)!r}: column(s) {name_list(dupes)} appear more than once in "
                            "the header.")
        columns: dict[str, array[float]] = {h: array("d") for h in header}
        count = total = 0
        for line, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{option} {str(path)!r}: line {line} has {len(row)} values for {len(header)} "
                                "columns.")
            for h, cell in zip(header, row, strict=True):
                try:
                    columns[h].append(float(cell))
                except ValueError:
                    shown = cell if len(cell) <= 40 else cell[:37] + "..."
                    raise DataError(f"{option} {str(path)!r}: line {line}, column {h!r}: {shown!r} is not a "
                                    "number; every column is read as numbers: fix the cell, or drop a text column "
                                    "(a comment, a label).") from None
            count += 1
            if count == rows:
                yield {h: np.frombuffer(v, dtype=np.float64).copy() for h, v in columns.items()}
                total += count
                count = 0
                columns = {h: array("d") for h in header}
    if not header or total + count == 0:
        raise DataError(f"{option} {str(path)!r}: no data rows after the header.")
    if count:
        yield {h: np.frombuffer(v, dtype=np.float64).copy() for h, v in columns.items()}


def read_table(path: Path, *, option: str = "--input") -> dict[str, np.ndarray]:
    """Every column of a CSV with a header (header order), or the arrays of an npz (no pickle).

    Raises:
        DataError: a missing file, another suffix, or a bad table (see :func:`csv_chunks`).
    """
    if not path.is_file():
        raise DataError(f"{option} {str(path)!r}: file does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from profemu._files import read_npz

        return read_npz(path, what=f"{option} archive")
    if suffix != ".csv":
        raise DataError(f"{option} {str(path)!r}: expected a .csv (with a header) or a .npz file.")
    parts = list(csv_chunks(path, 1 << 20, option=option))
    return {h: np.concatenate([p[h] for p in parts]) for h in parts[0]}


def _n_k(emulator: Any) -> int:
    k = getattr(emulator.transforms, "k", None)
    return 0 if k is None else len(k)


def _needs_redshift(emulator: Any) -> bool:
    return "redshift" in getattr(emulator.transforms, "input_stats", {})


def required_columns(emulator: Any) -> list[str]:
    """The CSV columns ``profemu predict`` needs for ``emulator``, in order (P(k) may be defaulted)."""
    return [*emulator.param_names, "log10_mass", *(f"pk_ratio_{j}" for j in range(_n_k(emulator))),
            *(["redshift"] if _needs_redshift(emulator) else [])]


def fiducial_pk_ratio(emulator: Any) -> np.ndarray | None:
    """The P(k) suppression [n_k] assumed by default: the centre of the training set's P(k).

    The centre of the fitted P(k) input scaler (the training rows' median with the robust
    scaler, their mean with the standard one); None for emulators without P(k).
    """
    if not _n_k(emulator):
        return None
    stats = getattr(emulator.transforms, "input_stats", {})
    if "pk" not in stats:
        return None
    return np.asarray(stats["pk"][0], dtype=np.float64).reshape(-1).copy()


def read_pk_ratio(path: Path, n_k: int, *, option: str = "--pk-ratio") -> np.ndarray:
    """One P(k) suppression [n_k] from a text file: ``n_k`` numbers, in one row or one column.

    Raises:
        FormatError: not a text file of numbers, or another number of values.
    """
    if not path.is_file():
        raise FormatError(f"{option} {str(path)!r}: file not found.")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2, delimiter=None if path.suffix != ".csv" else ",")
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{option} {str(path)!r}: expected a text file of numbers (one value per k bin, in "
                          "one row or one column).") from None
    if 1 not in values.shape or values.size != n_k:
        raise FormatError(f"{option} {str(path)!r}: {values.size} value(s) in shape {values.shape}, but the "
                          f"emulator takes P(k) on {n_k} k bins; give {n_k} values in one row or one column.")
    return values.reshape(-1)


def _params_by_name(params: np.ndarray, given: np.ndarray | None, path: Path, names: list[str]) -> np.ndarray:
    """``params`` [n, p] with its columns in the emulator's order ``names``, where the npz names
    them (``param_names`` [p]: a dataset file names its columns); unnamed columns are taken in order."""
    if given is None:
        return params
    given_names = np.asarray(given)
    if given_names.ndim != 1 or given_names.dtype.kind not in "UO":
        raise DataError(f"--input {str(path)!r}: param_names must be a 1-D array of names, got "
                        f"{given_names.dtype} of shape {given_names.shape}.")
    listed = [str(x) for x in given_names.tolist()]
    if params.ndim != 2 or params.shape[1] != len(listed):
        raise DataError(f"--input {str(path)!r}: params has shape {params.shape} but param_names names "
                        f"{len(listed)} column(s); give one name per column.")
    missing, unknown = [n for n in names if n not in listed], [n for n in listed if n not in names]
    if missing or unknown or len(set(listed)) != len(listed):
        raise DataError(f"--input {str(path)!r}: param_names {name_list(listed)} are not the emulator's parameters "
                        f"{name_list(names)} (missing {name_list(missing)}, unknown {name_list(unknown)}); name each "
                        "column once, with the emulator's names.")
    if listed != names:
        logger.info("predict: %s names its params columns in another order than the emulator; taken by name",
                    path.name)
    return params[:, [listed.index(n) for n in names]]


def _npz_arguments(table: Mapping[str, np.ndarray], path: Path, names: list[str], n_k: int, needs_z: bool,
                   pk_default: np.ndarray | None) -> dict[str, Any]:
    """``predict()`` arguments of the npz layout (``params`` [n, p], ``log10_mass`` [n], ...)."""
    required = ["params", "log10_mass"] + (["pk_ratio"] if n_k and pk_default is None else []) + \
        (["redshift"] if needs_z else [])
    for key in ("params", "log10_mass", "pk_ratio", "redshift"):
        if key in table and np.asarray(table[key]).dtype.kind not in "iuf":
            raise DataError(f"--input {str(path)!r}: {key} holds {np.asarray(table[key]).dtype} values; give real "
                            "numbers (float or int).")
    missing = [k for k in required if k not in table]
    if missing:
        raise DataError(f"--input {str(path)!r}: missing array(s) {missing}; the npz needs {required} "
                        f"(params columns in the order {name_list(names)}).")
    params = _params_by_name(np.asarray(table["params"], dtype=np.float64), table.get("param_names"), path, names)
    pk = table.get("pk_ratio") if n_k else None
    if n_k and pk is None:
        pk = pk_default
    args = {"params": params, "log10_mass": table["log10_mass"], "pk_ratio": pk,
            "redshift": table.get("redshift")}  # given to an emulator without the input: checked there
    echo: dict[str, np.ndarray] = {}
    if params.ndim == 2 and params.shape[1] == len(names):
        echo.update({n: params[:, j] for j, n in enumerate(names)})
    for key in ("log10_mass", "redshift"):
        value = args[key]
        if value is not None and np.ndim(value) == 1 and len(value) == params.shape[0]:
            echo[key] = np.asarray(value, dtype=np.float64)
    if pk is not None and np.ndim(pk) == 2 and np.shape(pk) == (params.shape[0], n_k):
        echo.update({f"pk_ratio_{j}": np.asarray(pk[:, j], dtype=np.float64) for j in range(n_k)})
    return {**args, "echo": echo}


def prediction_arguments(emulator: Any, table: Mapping[str, np.ndarray], path: Path,
                         pk_default: np.ndarray | None = None) -> dict[str, Any]:
    """``predict()`` arguments from named columns (CSV) or arrays (npz).

    Args:
        emulator: The Emulator.
        table: Columns by name, or the npz arrays (``params``, ``log10_mass``, ...).
        path: The input file (for messages).
        pk_default: P(k) suppression [n_k] for every row when the table gives none
            (None: the table must give it when the emulator uses P(k)).

    Returns:
        ``params``, ``log10_mass``, ``pk_ratio``, ``redshift`` (the predict() arguments) and
        ``echo``: ``{column name: [n] values}`` of the input, echoed in the output.

    Raises:
        DataError: missing columns (at most :data:`NAMES_SHOWN` named, with the count of the rest).
    """
    n_k, needs_z, names = _n_k(emulator), _needs_redshift(emulator), list(emulator.param_names)
    if "params" in table:
        return _npz_arguments(table, path, names, n_k, needs_z, pk_default)
    required = required_columns(emulator)
    pk_cols = [f"pk_ratio_{j}" for j in range(n_k)]
    stray = [c for c in table if c.startswith("pk_ratio") and c not in pk_cols]
    if stray:
        takes = f"P(k) on {n_k} k bins, columns pk_ratio_0..pk_ratio_{n_k - 1}" if n_k else "no P(k)"
        raise DataError(f"--input {str(path)!r}: column(s) {name_list(stray)} are not inputs of this emulator (it "
                        f"takes {takes}); rename or drop them.")
    default_pk = bool(n_k) and pk_default is not None and not any(c in table for c in pk_cols)
    needed = [c for c in required if not (default_pk and c in pk_cols)]
    missing = [c for c in needed if c not in table]
    if missing:
        unknown = [c for c in table if c not in required]
        hint = f"; unrecognised column(s) {name_list(unknown)}" if unknown else ""
        raise DataError(f"--input {str(path)!r}: {len(missing)} missing column(s): {name_list(missing)}{hint}. "
                        f"The header must name every one of: {name_list(needed)} (profemu predict RUN "
                        "--list-inputs lists them).")
    n = len(table["log10_mass"])
    if default_pk:
        pk = np.broadcast_to(np.asarray(pk_default, dtype=np.float64), (n, n_k))
    else:
        pk = np.column_stack([table[c] for c in pk_cols]) if n_k else None
    return {
        "params": np.column_stack([table[c] for c in names]),
        "log10_mass": table["log10_mass"],
        "pk_ratio": pk,
        # a redshift column given to an emulator that does not take the redshift is checked against
        # its training redshift (check_inputs), not dropped: predicting z = 1 from z = 0.5 is refused
        "redshift": table.get("redshift"),
        "echo": dict(table),
    }
