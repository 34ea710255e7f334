"""Input checks shared by the observables modules: one-line errors naming argument, value and fix.

Checks run only on concrete values (numpy arrays, Python numbers, concrete JAX arrays);
JAX tracers inside ``jit``/``grad`` are passed through unchecked.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from profemu.errors import ConfigError, DataError

__all__ = [
    "as_1d",
    "check_positive_scalar",
    "concrete",
    "is_jax",
]


def is_jax(*values: Any) -> bool:
    """True when any value is a JAX array or tracer (never imports JAX itself)."""
    if "jax" not in sys.modules:
        return False
    import jax

    return any(isinstance(v, jax.Array) for v in values)


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a float64 numpy array, or None when it is a JAX tracer (no check possible)."""
    if "jax" in sys.modules:
        from jax.core import Tracer

        if isinstance(value, Tracer):
            return None
    return np.asarray(value, dtype=float)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def as_1d(name: str, value: Any, *, error: type[DataError] | type[ConfigError] = DataError,
          positive: bool = False, increasing: bool = False, min_size: int = 1,
          fix: str = "") -> np.ndarray | None:
    """Check a 1-D table of finite numbers; returns it as float64 (None for a tracer).

    Args:
        name: Argument name used in the message.
        value: The values, shape [n].
        error: Exception class raised.
        positive: Require every value > 0.
        increasing: Require strictly increasing values.
        min_size: Minimum length.
        fix: How to fix it, appended to the messages.
    """
    arr = concrete(value)
    if arr is None:
        return None
    tail = f"; {fix}" if fix else ""
    if arr.ndim != 1:
        raise error(f"{name}: expected a 1-D array, got shape {arr.shape}{tail}.")
    if arr.size < min_size:
        raise error(f"{name}: expected at least {min_size} values, got {arr.size}{tail}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise error(f"{name}: non-finite value {arr[i]} at index {i} ({bad.size} in total); "
                    f"pass finite numbers{tail}.")
    if positive:
        bad = np.flatnonzero(arr <= 0)
        if bad.size:
            i = int(bad[0])
            raise error(f"{name}: value {_fmt(arr[i])} at index {i} is <= 0 ({bad.size} in total); "
                        f"values must be > 0{tail}.")
    if increasing and arr.size > 1:
        bad = np.flatnonzero(np.diff(arr) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise error(f"{name}: values must be strictly increasing, got {_fmt(arr[i])} after "
                        f"{_fmt(arr[i - 1])} at index {i}{tail}.")
    return arr


def check_positive_scalar(name: str, value: Any, *, upper: float | None = None,
                          fix: str = "") -> float | None:
    """Check a finite scalar > 0 (and <= ``upper``); ConfigError otherwise, None for a tracer."""
    arr = concrete(value)
    if arr is None:
        return None
    tail = f"; {fix}" if fix else ""
    if arr.ndim != 0:
        raise ConfigError(f"{name}: expected a scalar, got shape {arr.shape}{tail}.")
    x = float(arr)
    if not np.isfinite(x) or x <= 0 or (upper is not None and x > upper):
        rng = f"in (0, {upper}]" if upper is not None else "finite and > 0"
        raise ConfigError(f"{name}: got {x!r}, expected a number {rng}{tail}.")
    return x
