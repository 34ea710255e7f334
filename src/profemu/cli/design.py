"""Command line of the simulation design: ``profemu suggest``.

:func:`register` adds the command to the main Typer app::

    profemu suggest RUN --n 50 --out next.csv
    profemu suggest RUN --n 50 --fields rho --radii 0.01,1 --fix Omega_m=0.3 --out next.csv
    profemu suggest RUN --n 50 --like CosmoAstroSeed_IllustrisTNG_L50n512_SB35.txt --out next.txt
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from profemu.cli.common import parse_count
from profemu.cli.common import user_errors as _user_errors
from profemu.errors import ConfigError, FormatError

__all__ = ["parse_fix", "parse_radii", "register"]


def parse_fix(items: Sequence[str] | None) -> dict[str, float]:
    """``["NAME=VALUE", ...]`` -> ``{name: value}``.

    Raises:
        ConfigError: an item without ``=``, a non-numeric value or a name given twice.
    """
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--fix {item!r}: expected NAME=VALUE, e.g. --fix Omega_m=0.3.")
        try:
            v = float(value)
        except ValueError:
            raise ConfigError(f"--fix {item!r}: {value.strip()!r} is not a number.") from None
        if not math.isfinite(v):
            raise ConfigError(f"--fix {item!r}: the value must be finite.")
        if name in out:
            raise ConfigError(f"--fix: {name!r} is given twice; pass each parameter once.")
        out[name] = v
    return out


def parse_radii(text: str | None) -> tuple[float, float] | None:
    """``"lo,hi"`` -> ``(lo, hi)`` (None stays None).

    Raises:
        ConfigError: not two numbers with ``lo < hi``.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--radii {text!r}: expected two numbers lo,hi (e.g. 0.01,1).") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"--radii {text!r}: expected lo < hi.")
    return lo, hi


def _fields(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [f.strip() for v in values for f in str(v).split(",") if f.strip()]


def _read_pk(path: Path | None) -> object:
    if path is None:
        return None
    import numpy as np

    if not path.is_file():
        raise FormatError(f"--pk-ratio {str(path)!r}: file not found.")
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"--pk-ratio {str(path)!r}: expected a text file of numbers (one value per k bin).") from None


def _inputs(run: Path, like: Path | None, pk_ratio: Path | None) -> dict[str, Path | None]:
    """What ``suggest`` reads: its --out may be none of these (nor inside the emulator)."""
    from profemu.runs.folder import read_inputs

    return {"--like table": like, "--pk-ratio file": pk_ratio, **read_inputs(run)}


def register(app: typer.Typer) -> None:
    """Add ``suggest`` to ``app``."""

    @app.command("suggest")
    @_user_errors
    def suggest_cmd(
        run: Annotated[Path, typer.Argument(help="Run folder of `profemu train` (or an emulator folder).")],
        n: Annotated[int, typer.Option("--n", help="Number of simulations to suggest.")],
        out: Annotated[Path, typer.Option("--out", help="Output file (.csv, or the --like table layout).")],
        fields: Annotated[list[str] | None, typer.Option(
            "--fields", help="Fields to score, comma-separated or repeated (default: all).")] = None,
        radii: Annotated[str | None, typer.Option(
            "--radii", help="Radial range lo,hi to score, in the emulator's radius unit (default: all).")] = None,
        fix: Annotated[list[str] | None, typer.Option(
            "--fix", help="Pin a parameter: NAME=VALUE (repeatable; user units). With --like also gives "
                          "table columns the emulator does not have.")] = None,
        candidates: Annotated[str, typer.Option("--candidates", help="Sobol candidates in the box, e.g. 100000 "
                                                "or 1e5.")] = "100000",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the candidate design (>= 0).")] = 0,
        mass_points: Annotated[str, typer.Option(
            "--mass-points", help="Halo masses the score averages over (spread over the training range).")] = "3",
        like: Annotated[Path | None, typer.Option(
            "--like", help="A CAMELS CosmoAstroSeed_*.txt table: write its layout (name, parameters, seed).")] = None,
        pk_ratio: Annotated[Path | None, typer.Option(
            "--pk-ratio", help="Text file of the P(k) suppression to assume, one value per k bin (emulators "
                               "with P(k) only; default: the centre of the training set's P(k)).")] = None,
        redshift: Annotated[float | None, typer.Option(
            "--redshift", help="Emulators with a redshift input: the redshift at which the new simulations "
                               "will be used.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    ) -> None:
        """Suggest where to run the next simulations: the points of largest epistemic variance, as a diverse batch."""
        from profemu.design import (
            check_new_file,
            like_columns,
            read_design_table,
            suggest,
            write_like_table,
            write_suggestion_csv,
        )
        from profemu.emulator.locate import load_emulator

        check_new_file(out, force, _inputs(run, like, pk_ratio))
        n_candidates = parse_count("--candidates", candidates)
        n_masses = parse_count("--mass-points", mass_points)
        if seed < 0:
            raise ConfigError(f"--seed {seed}: seeds are whole numbers >= 0; pass e.g. --seed 0.")
        fixed = parse_fix(fix)
        table = read_design_table(like) if like is not None else None
        emulator = load_emulator(run)
        emu_fix = {k: v for k, v in fixed.items() if k in emulator.param_names}
        extra = {k: v for k, v in fixed.items() if k not in emulator.param_names}
        if table is not None:
            like_columns(table, emulator.param_names, extra)
        elif extra:
            raise ConfigError(
                f"--fix: {sorted(extra)} are not parameters of the emulator; its parameters are "
                f"{list(emulator.param_names)}."
            )
        result = suggest(  # its progress lines reach stderr through the command line's log handler (--quiet)
            emulator, n, fields=_fields(fields), radii=parse_radii(radii), fix=emu_fix,
            candidates=n_candidates, seed=seed, mass_points=n_masses, pk_ratio=_read_pk(pk_ratio),
            redshift=redshift,
        )
        if table is not None:
            path = write_like_table(result, table, out, values=extra, force=force)
        else:
            path = write_suggestion_csv(result, out, force=force)
        typer.echo(
            f"{len(result)} simulation(s) suggested from {result.n_candidates} candidates in {result.seconds:.1f} s "
            f"(score: epistemic variance [dex²] over {', '.join(result.fields)}, "
            f"{result.radius[0]:.3g}-{result.radius[-1]:.3g} {result.radius_unit}, "
            f"log10_mass {result.log10_mass[0]:.2f}-{result.log10_mass[-1]:.2f}"
            + ("" if result.redshift is None else f", redshift {result.redshift:g}") + "; parameters in linear "
            f"units{', log-sampled: ' + ', '.join(result.log_params) if result.log_params else ''})"
        )
        cs = result.candidate_score
        typer.echo(
            f"score of the suggested points {result.score.min():.3g}..{result.score.max():.3g}; "
            f"candidates: median {cs['median']:.3g}, 95th percentile {cs['p95']:.3g}, max {cs['max']:.3g}"
        )
        typer.echo(f"written {path}")
