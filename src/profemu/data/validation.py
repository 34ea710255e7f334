"""Checks shared by the dataset and its file readers: arrays, names and ids, with one-line errors.

Every check raises :class:`~profemu.errors.DataError` (or the subclass it is given) naming
the array, the first offending entry and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from profemu.errors import DataError

_F32_MAX = float(np.finfo(np.float32).max)
_BLOCK = 1 << 20  # elements per block of the float32 check


def _as_float_array(value: Any, name: str, ndim: int, *, copy: bool = True) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dimensions, or DataError.

    Integers and floats are accepted; booleans, complex numbers, text and objects are
    refused (converting them would silently change what the user meant).

    Args:
        value: The user's value.
        name: Its name, for the messages.
        ndim: The number of dimensions it must have.
        copy: Return a copy (the caller's array is never shared). False only for arrays
            nobody else holds (a file reader's): a float64 array is then returned as is,
            anything else converted once.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists, unconvertible objects, overflowing ints
        raise DataError(
            f"{name}: could not be converted to an array ({type(exc).__name__}: {exc}); pass a "
            "rectangular numeric array (every row of the same length)."
        ) from None
    first = _first(arr)
    if arr.dtype.kind == "c":
        raise DataError(
            f"{name}: complex values (dtype {arr.dtype}, first value {first}) are not accepted; "
            f"pass real numbers (np.real({name}) if the imaginary part is meant to be dropped)."
        )
    if arr.dtype.kind == "b":
        raise DataError(
            f"{name}: booleans (dtype bool, first value {first}) are not numbers here; pass numeric "
            f"values ({name}.astype(float) if True/False really mean 1/0)."
        )
    if arr.dtype.kind not in "iuf":
        raise DataError(
            f"{name}: wrong dtype {arr.dtype} (first value {first}; expected a real-valued numeric "
            f"array); convert it with np.asarray({name}, dtype=float)."
        )
    if arr.ndim != ndim:
        raise DataError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}; reshape it.")
    return arr.astype(np.float64, copy=copy)


def _first(arr: np.ndarray) -> str:
    """``repr`` of the first element (as a Python value, at most 40 characters), for messages."""
    if arr.size == 0:
        return "none"
    value = arr.reshape(-1)[0]
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _where(index: np.ndarray, columns: Sequence[str] | None = None) -> str:
    """``"row i"`` or ``"row i, column j ('name')"`` of an [n] or [n, m] index."""
    if len(index) == 1:
        return f"row {index[0]}"
    label = f" ({columns[index[1]]!r})" if columns is not None else ""
    return f"row {index[0]}, column {index[1]}{label}"


def _refuse(
    bad: np.ndarray, arr: np.ndarray, name: str, columns: Sequence[str] | None, *, what: str,
    problem: str | Callable[[float], str],
    fix: str,
) -> None:
    """Raise DataError at the first True of ``bad``, naming value, row (and column) and count."""
    if bad.any():
        idx = np.argwhere(bad)[0]
        value = arr[tuple(idx)]
        problem = problem(value) if callable(problem) else problem
        raise DataError(
            f"{name}: {what} {value} at {_where(idx, columns)}{' ' + problem if problem else ''} "
            f"({int(bad.sum())} in total); {fix}."
        )


def _check_finite(arr: np.ndarray, name: str, columns: Sequence[str] | None = None) -> None:
    """Every value finite in float64 and in float32 (the precision the models compute in)."""
    _refuse(~np.isfinite(arr), arr, name, columns, what="non-finite value", problem="",
            fix="inputs must be finite: fix or remove these rows before building the dataset")
    # two comparisons rather than np.abs: no float64 temporary the size of the array
    _refuse((arr > _F32_MAX) | (arr < -_F32_MAX), arr, name, columns, what="value",
            problem=f"overflows float32 (|x| > {_F32_MAX:.8g})",
            fix="float32 is the precision the emulator computes in: fix the value or change the unit "
                "of this input")


def _check_log10_representable(
    arr: np.ndarray, used: np.ndarray, name: str, columns: Sequence[str] | None = None, *,
    fix: str,
) -> None:
    """Values that will be learnt in log10: finite and > 0 in float32 where ``used``.

    The float32 copy is made a block of rows at a time (no copy of the whole array).
    """
    bad = np.zeros(arr.shape, dtype=bool)
    rows = max(1, _BLOCK // max(1, math.prod(arr.shape[1:])))
    for start in range(0, arr.shape[0] if arr.ndim else 1, rows):
        block = slice(start, start + rows) if arr.ndim else ...
        with np.errstate(over="ignore", under="ignore"):
            as32 = arr[block].astype(np.float32)
        bad[block] = used[block] & ~(np.isfinite(as32) & (as32 > 0))
    _refuse(
        bad, arr, name, columns, what="value",
        problem=lambda v: ("overflows float32 to inf" if abs(v) > 1 else "underflows float32 to 0")
        + ", so its log10 is not finite in the precision the emulator computes in",
        fix=fix,
    )


def _names(values: Any, what: str, error: type[DataError] = DataError) -> tuple[str, ...]:
    """A tuple of unique, non-empty strings, or ``error`` (a DataError) naming ``what``."""
    if isinstance(values, str | bytes):
        raise error(f"{what}: got a single string {values!r}; pass a list of names.")
    try:
        names = tuple(values)
    except TypeError:
        raise error(f"{what}: expected a list of names, got {type(values).__name__}.") from None
    seen: set[str] = set()
    for i, nm in enumerate(names):
        if not isinstance(nm, str):
            raise error(
                f"{what}: entry {i} is {nm!r} ({type(nm).__name__}), not a string; pass names as strings."
            )
        if not nm:
            raise error(f"{what}: entry {i} is an empty name; give every entry a name.")
        if nm in seen:
            raise error(
                f"{what}: duplicate name {nm!r} (entries {names.index(nm)} and {i}); every name must be "
                "unique: list each once (rename one if they are different quantities)."
            )
        seen.add(nm)
    return tuple(str(nm) for nm in names)


def _integer_ids(values: Any, name: str, n: int) -> np.ndarray:
    """Integer ids [n] as int64: integers, or floats with integral values; nothing truncated."""
    g = np.array(values, copy=True)
    if g.ndim != 1 or g.shape[0] != n:
        raise DataError(f"{name}: expected shape ({n},), got {g.shape}; one id per row.")
    hint = "pass integer ids (e.g. simulation numbers); map labels to integers with np.unique(labels, return_inverse=True)[1]"
    if g.dtype.kind == "f":
        bad = ~np.isfinite(g) | (g != np.round(g)) | (np.abs(g) >= 2.0**53)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{name}: value {g[i]} at row {i} is not an integer id (it would be truncated into "
                f"another id; {int(bad.sum())} such values); {hint}."
            )
        return g.astype(np.int64)
    if g.dtype.kind == "u" and g.size and int(g.max()) > np.iinfo(np.int64).max:
        i = int(np.argmax(g))
        raise DataError(f"{name}: value {g[i]} at row {i} does not fit in int64; {hint}.")
    if g.dtype.kind not in "iu":
        first = _first(g)
        raise DataError(f"{name}: wrong dtype {g.dtype} (first value {first}); {hint}.")
    return g.astype(np.int64)
