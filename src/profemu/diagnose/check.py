"""The :class:`Check` record, the names of the nine checks, and the plain-text table of results.

Shared by every check module of :mod:`profemu.diagnose`: the number formatting of their
messages and :func:`_guarded`, which turns a check that raises into a failed :class:`Check`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from profemu.errors import ProfemuError

__all__ = ["CHECK_NAMES", "Check", "format_checks"]

#: Names of the checks, in the order :func:`run_diagnostics` returns them.
CHECK_NAMES: tuple[str, ...] = (
    "inputs finite and in range",
    "targets finite and positive",
    "mask coverage",
    "train/validation shift",
    "overfit 8 examples",
    "synthetic truth recovery",
    "gradient norms",
    "activations bounded",
    "finite validation loss",
)

#: Largest normalised |input| (standardised units) before an input counts as absurdly
#: scaled (check 1) or a validation input as an extrapolation (check 9).
_MAX_INPUT_Z = 50.0


@dataclass(frozen=True)
class Check:
    """Outcome of one diagnostic.

    Attributes:
        name: One of :data:`CHECK_NAMES`.
        passed: Whether the check passed.
        value: What was measured, in words and numbers (e.g. ``"max |z| = 3.1 (pk_ratio)"``).
        advice: What to do next when it failed (empty or a short note when it passed).
    """

    name: str
    passed: bool
    value: str
    advice: str = ""


def format_checks(checks: Sequence[Check]) -> str:
    """A plain-text table of ``checks``: name, PASS/FAIL, value, and advice for failures.

    Args:
        checks: Output of :func:`run_diagnostics`.

    Returns:
        The table, one line per check (advice on an indented line below a failure), and a
        last line counting the failures.
    """
    width = max([len("check"), *(len(c.name) for c in checks)])
    lines = [f"{'check':<{width}}  result  value", f"{'-' * width}  ------  -----"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {'pass' if c.passed else 'FAIL':<6}  {c.value}")
        if not c.passed and c.advice:
            lines.append(f"{'':<{width}}  -> {c.advice}")
    failed = sum(not c.passed for c in checks)
    lines.append(f"{failed} of {len(checks)} check(s) failed" if failed else f"all {len(checks)} checks passed")
    return "\n".join(lines)


def _guarded(name: str, fn: Callable[..., Check], *args: Any, **kwargs: Any) -> Check:
    """``fn(*args, **kwargs)``, or a failed :class:`Check` named ``name`` when it raises."""
    try:
        return fn(*args, **kwargs)
    except ProfemuError as exc:
        return Check(name, False, f"could not run: {exc}", "Fix the error above and rerun.")
    except Exception as exc:  # one broken check must not hide the others
        return Check(name, False, f"could not run: {type(exc).__name__}: {exc}",
                     "This check itself failed; rerun with the same data in Python to see the traceback.")


def _fmt(x: float) -> str:
    """``x`` with 3 significant digits, as every check message writes numbers."""
    return f"{x:.3g}"


def _names(names: Sequence[str], limit: int = 4) -> str:
    """The first ``limit`` of ``names``, comma-separated, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
