"""Write docs/configuration.md from the configuration classes of ``profemu.config``.

One table per section (``data``, ``model``, ``loss``, ``loss.physics``, ``optim``,
``train``, ``train.curriculum[]``): every key with its type, default, allowed values
and description. Types and defaults come from the frozen dataclasses, choices from their
``Literal`` types, ranges and cross-field rules from the fields' metadata (the same
:class:`profemu.config.Range` objects ``validate()`` checks), descriptions from the
``Attributes:`` section of each class docstring. Nothing in the tables is typed by hand;
``tests/test_config.py`` fails when the file is stale.

Usage (from the repository root)::

    PYTHONPATH=src python tools/config_docs.py          # rewrite docs/configuration.md
    PYTHONPATH=src python tools/config_docs.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"


def _config() -> Any:
    """The ``profemu.config`` module (from ``src/`` when profemu is not installed)."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    import profemu.config

    return profemu.config


def sections() -> Iterator[tuple[str, type]]:
    """``(dotted name, dataclass)`` of every section, nested ones right after their parent."""
    cfg = _config()

    def walk(prefix: str, cls: type) -> Iterator[tuple[str, type]]:
        yield prefix, cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                yield from walk(f"{prefix}.{f.name}", tp)
            elif typing.get_origin(tp) is tuple and any(dataclasses.is_dataclass(a) for a in typing.get_args(tp)):
                yield from walk(f"{prefix}.{f.name}[]", typing.get_args(tp)[0])

    hints = typing.get_type_hints(cfg.Config)
    for f in dataclasses.fields(cfg.Config):
        yield from walk(f.name, hints[f.name])


def field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of ``cls``'s docstring."""
    out: dict[str, str] = {}
    current: str | None = None
    inside = False
    for line in (inspect.getdoc(cls) or "").splitlines():
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        entry = re.match(r"^    (\w+): ?(.*)$", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif line.startswith("        ") and current is not None:
            out[current] += " " + line.strip()
        elif line.strip():
            break  # the next docstring section
    return out


def summary(cls: type) -> str:
    """The first paragraph of ``cls``'s docstring, on one line."""
    return _markdown(" ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split()))


def _markdown(text: str) -> str:
    """reStructuredText roles and literals -> Markdown, safe inside a table cell."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return text.replace("|", "\\|")


def _value(value: Any) -> str:
    """A default as YAML-like flow text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, typing.Mapping):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def _sci(x: float) -> str:
    """``5e8`` style."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _type(tp: Any) -> str:
    cfg = _config()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin is Literal:
        return "choice"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "list of phases" if dataclasses.is_dataclass(args[0]) else f"list of {_type(args[0])}"
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if tp is cfg.FrozenMap:
        return "mapping field → float"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def _allowed(prefix: str, f: dataclasses.Field[Any], tp: Any) -> str:
    cfg = _config()
    inner = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
        typing.Union, types.UnionType) else [tp]
    base = inner[0]
    origin, args = typing.get_origin(base), typing.get_args(base)
    parts: list[str] = []
    if origin is Literal:
        parts.append(", ".join(f"`{a}`" for a in args))
    elif base is bool:
        parts.append("`true`, `false` (also `on`/`off`, `yes`/`no`)")
    elif base is cfg.FrozenMap:
        parts.append("finite numbers")
    elif dataclasses.is_dataclass(base):
        parts.append(f"see `{prefix}.{f.name}`")
    elif origin is tuple and args and dataclasses.is_dataclass(args[0]):
        parts.append(f"see `{prefix}.{f.name}[]`")
    rng = f.metadata.get("range")
    if rng is not None:
        parts.append(f"each in {rng}" if origin is tuple else str(rng))
    if f.metadata.get("rule"):
        parts.append(f.metadata["rule"])
    return _markdown("; ".join(parts)) if parts else "any"


def table(prefix: str, cls: type) -> str:
    """The Markdown table of one section."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    defaults = cls()
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
    if missing:
        raise ValueError(f"{cls.__name__}: no description of {missing} in the Attributes: section of its docstring")
    rows = ["| Key | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = getattr(defaults, f.name)
        shown = "see below" if dataclasses.is_dataclass(default) else f"`{_value(default)}`"
        rows.append(f"| `{prefix}.{f.name}` | {_markdown(_type(tp))} | {shown} | {_allowed(prefix, f, tp)} | "
                    f"{_markdown(docs[f.name])} |")
    return "\n".join(rows)


def render() -> str:
    """The whole text of docs/configuration.md."""
    cfg = _config()
    mib = cfg.MAX_YAML_BYTES / 2**20
    head = f"""<!-- Generated by tools/config_docs.py from src/profemu/config.py: do not edit by hand. -->
# Configuration

A run is configured by a YAML file (`profemu train --config cfg.yaml`), by
`--set KEY=VALUE` overrides (`--set model.hidden=[256,256] --set train.members=8`) and
by the command-line flags, applied in that order. Every key is listed below with its
type, default and allowed values; an unknown key, a value of the wrong type or one out
of range stops the run before anything is trained, with a one-line message that names
the key and the fix. `profemu` writes the resolved configuration of every run to its
`config.yaml`.

## How YAML is read

* Only `true` and `false` (any case) are booleans. `on`, `off`, `yes` and `no` are
  read as the words they are, so `data.input_relevance: off` or
  `train.auto_capacity: on` choose those options; a true/false key also accepts them.
* `1e-3` is a number (as in YAML 1.2). Integers may have at most
  {cfg.MAX_INT_DIGITS} digits.
* A key written twice in one mapping is an error (YAML would silently keep the last).
* Lists and mappings may nest at most {cfg.MAX_YAML_DEPTH} levels deep, and anchors and
  aliases (`&name`, `*name`) may expand to at most {cfg.MAX_YAML_VALUES:,} values.
* Tags such as `!!python/object` are refused: a configuration holds plain values only
  and reading one never runs code.
* A file must be UTF-8 text of at most {cfg.MAX_YAML_BYTES:,} bytes ({mib:g} MiB).

## Size limits

A network too large to fit in memory is refused before anything is compiled:
`model.hidden` may have at most {cfg.MAX_HIDDEN_LAYERS} layers of at most
{cfg.MAX_HIDDEN_WIDTH:,} units, an ensemble at most
{cfg.MAX_MEMBERS:,} members, and the estimated weights of the ensemble's hidden layers,
`train.members × Σ (w_i × w_(i+1) + w_i)` over consecutive widths of `model.hidden`,
at most {_sci(cfg.MAX_WEIGHTS)} (e.g. `model.hidden=[4096, 4096]` with
`train.members=1024` is about 1.7e10 weights and is refused).
"""
    parts = [head]
    for prefix, cls in sections():
        parts.append(f"## `{prefix}`\n\n{summary(cls)}\n\n{table(prefix, cls)}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or ``--check``) docs/configuration.md; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only compare; exit 1 when the file is stale.")
    parser.add_argument("--output", type=Path, default=DOC, help="The file to write or check (default: %(default)s).")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != text:
            print(f"{args.output} is stale; run: PYTHONPATH=src python tools/config_docs.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    from profemu._files import atomic_write_text

    atomic_write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
