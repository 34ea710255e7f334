"""Shared pieces of the command line: user errors become exit code 2 and one line."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer

from profemu.config import parse_set_value
from profemu.errors import ConfigError, ProfemuError

__all__ = ["LineFormatter", "fail", "parse_count", "parse_overrides", "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])


class LineFormatter(logging.Formatter):
    """Log records as the command line prints them: the message, a warning (or worse) as a
    ``warning: ...`` line, like the Python warnings the commands show."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING and not text.startswith(("warning:", "error:")):
            text = f"warning: {text}"
        return text


def fail(message: str, code: int = 2) -> None:
    """Print one ``error:`` line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn profemu errors and missing files into exit code 2 with one line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProfemuError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return wrapper  # type: ignore[return-value]


def parse_count(option: str, text: str | int, *, minimum: int = 1) -> int:
    """A whole number given as ``4000``, ``100_000`` or ``1e5`` (the forms users type).

    Raises:
        ConfigError: not a whole number, or below ``minimum`` (the message names the option).
    """
    raw = str(text).strip().replace("_", "")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{option} {str(text)!r}: not a number; pass a whole number >= {minimum}.") from None
    if not value.is_integer():  # also NaN and infinities
        raise ConfigError(f"{option} {str(text)!r}: not a whole number; pass a whole number >= {minimum}.")
    if value < minimum:
        raise ConfigError(f"{option} {str(text)!r}: below {minimum}; pass a whole number >= {minimum}.")
    return int(value)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--set`` items ``key=value`` into ``{dotted.key: value}``.

    Values are read by :func:`profemu.config.parse_set_value`: ``8`` is an int, ``[64, 64]``
    a list, ``1e-3`` a float, ``true``/``false`` booleans and ``on``/``off`` strings.

    Raises:
        ConfigError: an item without ``=``, an empty key or a value that is not valid.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted config key, e.g. --set data.pca_components=8."
            )
        out[key] = parse_set_value(raw, key=key)
    return out
