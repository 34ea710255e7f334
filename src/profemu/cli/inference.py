"""Command-line commands for inference: ``profemu infer`` and ``profemu fisher``.

:func:`register` adds them to the main Typer app.

``profemu infer RUN --observed obs.csv --log10-mass M [--fix NAME=VALUE ...]
[--covariance cov.npy] --out DIR`` samples the posterior of the free parameters with
NUTS and writes ``DIR/samples.csv`` (one column per free parameter, physical values,
one row per draw), ``DIR/summary.json`` (per parameter: mean, std, 2.5/16/50/84/97.5%
quantiles, r_hat, ess; plus the MAP point, the options and the diagnostics) and
``DIR/corner.png``. ``profemu infer RUN --observation SPEC.yaml --out DIR [--force]`` fits stacked CAP kSZ/tSZ
measurements (the YAML keys are in :func:`profemu.inference.observables.read_observation_spec`
and ``docs/observables.md``) and writes ``samples.csv``, ``summary.json`` (per parameter r_hat,
the MAP χ² and p-value, the assumptions and the mass extrapolation) and ``cap_fit.png`` (data
against the posterior predictive band) into DIR as one unit.
``profemu fisher RUN --at point.csv --observed obs.csv ... --out DIR``
writes ``DIR/fisher.json`` and ``DIR/fisher_matrix.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from profemu.cli.common import LineFormatter, user_errors
from profemu.emulator.locate import load_emulator
from profemu.errors import DataError, FormatError
from profemu.runs.folder import read_inputs

__all__ = ["ModelCovarianceName", "infer_observation", "register"]

_PANEL = "Inference"
#: What ``infer`` writes into --out (profiles: corner.png; CAP measurements: cap_fit.png): --force
#: replaces a folder holding nothing else.
INFER_FILES = ("samples.csv", "summary.json", "corner.png", "cap_fit.png")
#: What ``fisher`` writes into --out.
FISHER_FILES = ("fisher.json", "fisher_matrix.csv")
logger = logging.getLogger(__name__)


class ModelCovarianceName(StrEnum):
    """Which emulator error enters the likelihood."""

    auto = "auto"
    predictive = "predictive"
    residual = "residual"
    none = "none"


def _parse_fix(items: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise DataError(f"--fix {item!r}: expected NAME=VALUE, e.g. --fix Omega_m=0.3.")
        try:
            out[name] = float(value)
        except ValueError:
            raise DataError(f"--fix {item!r}: {value!r} is not a number.") from None
    return out


def _csv_header(path: Path) -> list[str]:
    if not path.is_file():
        raise FormatError(f"{path}: observation file not found.")
    try:
        with path.open(newline="") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    return [h.strip() for h in next(csv.reader([line]))]
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text CSV file.") from None
    raise DataError(f"{path}: empty file; expected a header 'radius,<field>,<field>_err,...'.")


MAX_CHAINS = 1024
"""Most NUTS chains of one ``infer``."""
MAX_STEPS = 1_000_000
"""Most warm-up steps or draws per chain."""
MAX_SAMPLES = 50_000_000
"""Most samples kept (chains x draws): 400 MB per parameter in float64."""


def _observation(emulator: Any, observed: Path, log10_mass: float | None, covariance: Path | None,
                 fields: str | None, redshift: float | None, pk_ratio: Path | None = None) -> Any:
    from profemu.inference import read_observation

    _check_redshift(emulator, redshift)
    header = _csv_header(observed)
    if fields is not None:
        chosen = [f.strip() for f in fields.split(",") if f.strip()]
        if not chosen:
            raise DataError(f"--fields {fields!r}: no field named; give e.g. --fields "
                            f"{','.join(emulator.field_names)}.")
        unknown = [f for f in chosen if f not in emulator.field_names]
        if unknown:
            raise DataError(f"--fields: {unknown} are not fields of the emulator {list(emulator.field_names)}.")
    else:
        chosen = [f for f in emulator.field_names if f in header]
        if not chosen:
            raise DataError(
                f"{observed}: no column named after a field of the emulator {list(emulator.field_names)}; "
                "add columns '<field>' and '<field>_err' (columns found: " + ", ".join(header) + ")."
            )
        known = {"radius", "log10_mass", *chosen, *(f"{f}_err" for f in chosen)}
        other = [c for c in header if c not in known]
        if other:  # e.g. a field column spelled differently from the emulator's field: not fitted
            missing = [f for f in emulator.field_names if f not in chosen]
            raise DataError(
                f"{observed}: column(s) {other} are not the emulator's fields {list(emulator.field_names)} (or their "
                f"'<field>_err'){'; ' + str(missing) + ' would not be fitted' if missing else ''}: rename them, or "
                f"pass --fields {','.join(chosen)} to fit only those."
            )
        logger.info("infer: fitting the field(s) %s of %s", chosen, observed.name)
    return read_observation(observed, fields=chosen, log10_mass=log10_mass, covariance=covariance,
                            radius_unit=emulator.radius_unit, redshift=redshift,
                            pk_ratio=_pk_ratio(emulator, pk_ratio))


def _pk_ratio(emulator: Any, path: Path | None) -> np.ndarray | None:
    """The P(k) suppression the observation assumes: ``--pk-ratio FILE``, else the training centre (logged)."""
    from profemu.emulator.tables import describe_values, fiducial_pk_ratio, read_pk_ratio

    n_k = int(getattr(emulator.input_spec, "n_k", 0) or 0)
    if not n_k:
        if path is not None:
            raise DataError(f"--pk-ratio {str(path)!r}: this emulator was trained without P(k); drop the option.")
        return None
    if path is not None:
        return read_pk_ratio(path, n_k)
    pk = fiducial_pk_ratio(emulator)
    logging.getLogger("profemu.inference").info(
        "P(k) suppression not given (--pk-ratio FILE): assuming the training set's centre, %s", describe_values(pk))
    return pk


def _check_redshift(emulator: Any, redshift: float | None) -> None:
    """Refuse a --redshift the emulator cannot use (trained without one, or at one other redshift)."""
    spec = emulator.input_spec
    if redshift is None or spec.uses_redshift:
        return
    z0 = spec.training_redshift
    if z0 is None or abs(redshift - z0) > 1e-6 * (1.0 + abs(z0)):
        where = "without a redshift" if z0 is None else f"at the single redshift {z0:g}"
        raise DataError(f"--redshift {redshift:g}: this emulator was trained {where} and is not a redshift "
                        "input of it; drop the option.")


#: Share of the posterior samples within :data:`EDGE_BAND` of a prior edge above which the command
#: warns (a flat posterior puts about EDGE_BAND there).
EDGE_SHARE, EDGE_BAND = 0.15, 0.02


def _warn_at_edges(post: Any, samples: Any) -> None:
    """One warning line per free parameter whose posterior presses against an edge of its prior
    range (for emulator parameters the training box, which the emulator cannot leave)."""
    flat = np.asarray(samples.flat, dtype=float)
    lower, upper = np.asarray(post.space.lower, float), np.asarray(post.space.upper, float)
    for j, name in enumerate(post.names):
        lo, hi = lower[j], upper[j]
        band = EDGE_BAND * (hi - lo)
        for where, share in (("lower", float(np.mean(flat[:, j] < lo + band))),
                             ("upper", float(np.mean(flat[:, j] > hi - band)))):
            if share > EDGE_SHARE:
                log = " (log10)" if post.space.is_log[j] else ""
                typer.echo(f"warning: the posterior of {name} presses against the {where} edge of its prior range "
                           f"[{lo:.4g}, {hi:.4g}]{log} ({100 * share:.0f}% of the samples within {100 * EDGE_BAND:.0f}% "
                           "of it): the data may prefer a value outside it (for an emulator parameter, outside the "
                           "training box, where the emulator cannot follow).", err=True)


def _redshift_used(emulator: Any, redshift: float | None) -> float | None:
    """The redshift the observation was predicted at: the given one, or the emulator's single
    training redshift (None for an emulator trained without one)."""
    if redshift is not None:
        return float(redshift)
    z0 = emulator.input_spec.training_redshift
    return None if z0 is None else float(z0)


def _check_sampler(chains: int, warmup: int, draws: int) -> None:
    """Refuse sampler sizes that would exhaust memory before anything is compiled."""
    for name, value, most in (("--chains", chains, MAX_CHAINS), ("--warmup", warmup, MAX_STEPS),
                              ("--draws", draws, MAX_STEPS)):
        if not 1 <= value <= most:
            raise DataError(f"{name} {value}: allowed 1 to {most:,}; {'lower' if value > most else 'raise'} it.")
    if chains * draws > MAX_SAMPLES:
        raise DataError(f"--chains {chains} x --draws {draws} = {chains * draws:,} samples kept, above the limit "
                        f"of {MAX_SAMPLES:,}; lower one of them.")


@contextlib.contextmanager
def _progress_lines() -> Iterator[None]:
    """Show profemu.inference INFO/WARNING lines on stderr while a command runs (unless the
    command line's own handler on the ``profemu`` logger already shows them)."""
    if logging.getLogger("profemu").handlers:
        yield
        return
    logger = logging.getLogger("profemu.inference")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)



@user_errors
def infer_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `profemu train` (or an emulator folder).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (samples.csv, summary.json, corner.png "
                                      "or cap_fit.png).")],
    observed: Annotated[Path | None, typer.Option(
        "--observed", help="CSV: radius, <field>, <field>_err (linear, 1 sigma) [, log10_mass].")] = None,
    observation: Annotated[Path | None, typer.Option(
        "--observation", help="YAML spec of stacked CAP kSZ/tSZ measurements (see docs/observables.md); "
        "instead of --observed.")] = None,
    log10_mass: Annotated[float | None, typer.Option(
        "--log10-mass", help="log10(M/Msun) of the observed bin (unless the CSV has a log10_mass column).")] = None,
    fix: Annotated[list[str] | None, typer.Option(
        "--fix", help="Hold a parameter fixed: NAME=VALUE (repeatable).")] = None,
    covariance: Annotated[Path | None, typer.Option(
        "--covariance", help="Full covariance of the log10 values (.npy), replacing the _err columns.")] = None,
    fields: Annotated[str | None, typer.Option(
        "--fields", help="Comma-separated fields to fit (default: every emulator field in the CSV).")] = None,
    model_covariance: Annotated[ModelCovarianceName, typer.Option(
        "--model-covariance", help="Emulator error in the likelihood: auto (the stored cross-validated "
        "covariance if any, else predictive), predictive, residual or none.")] = ModelCovarianceName.auto,
    amplitude: Annotated[bool, typer.Option(
        "--amplitude/--no-amplitude", help="Marginalise over an overall amplitude of the observation.")] = False,
    amplitude_prior_dex: Annotated[float | None, typer.Option(
        "--amplitude-prior-dex", help="Gaussian prior width of that amplitude \\[dex] (default flat).")] = None,
    redshift: Annotated[float | None, typer.Option("--redshift", help="Redshift, if the emulator takes one.")] = None,
    pk_ratio: Annotated[Path | None, typer.Option(
        "--pk-ratio", help="P(k) suppression assumed (one value per k bin, a column or a row); default: "
        "the training set's centre.")] = None,
    chains: Annotated[int | None, typer.Option("--chains", help="NUTS chains (default 4, or the spec's).")] = None,
    warmup: Annotated[int | None, typer.Option(
        "--warmup", help="Warm-up steps per chain (default 1000, or the spec's).")] = None,
    draws: Annotated[int | None, typer.Option(
        "--draws", help="Draws kept per chain (default 1000, or the spec's).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed of the sampler (default 0).")] = None,
    allow_unconverged: Annotated[bool, typer.Option(
        "--allow-unconverged", help="Exit 0 even if R-hat > R_HAT_MAX (1.05) or ESS < ESS_MIN (100); the files are written anyway.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a non-empty --out folder (never one holding an input).")] = False,
) -> None:
    """Sample the posterior of the parameters given observed profiles or CAP measurements (NUTS)."""
    from profemu._files import atomic_write_text, check_result_folder, write_result_folder
    from profemu.inference import find_map, make_log_posterior, sample_posterior
    from profemu.inference.plots import corner_plot
    from profemu.inference.records import posterior_record
    from profemu.inference.sampling import ConvergenceError

    if (observed is None) == (observation is None):
        raise DataError("--observed, --observation: give exactly one (a CSV of 3D profiles, or a YAML spec "
                        "of CAP measurements).")
    emulator = load_emulator(run)
    fixed = _parse_fix(fix or [])
    if observation is not None:
        infer_observation(emulator, run, observation, out, fixed, {"chains": chains, "warmup": warmup,
                          "draws": draws, "seed": seed}, force=force, allow_unconverged=allow_unconverged,
                          pk_ratio=pk_ratio)
        return
    chains, warmup, draws, seed = (d if v is None else v for v, d in ((chains, 4), (warmup, 1000), (draws, 1000),
                                                                      (seed, 0)))
    _check_sampler(chains, warmup, draws)
    inputs = {"run folder": run, **read_inputs(run), "--observed": observed, "--covariance": covariance,
              "--pk-ratio": pk_ratio}
    check_result_folder(out, force=force, inputs=inputs, names=INFER_FILES)
    obs = _observation(emulator, observed, log10_mass, covariance, fields, redshift,  # type: ignore[arg-type]
                       pk_ratio)
    with _progress_lines():
        post = make_log_posterior(
            emulator, obs, fix=fixed, amplitude_nuisance=amplitude, amplitude_prior_dex=amplitude_prior_dex,
            model_covariance=model_covariance.value,
        )
        start = find_map(post, starts=4, seed=seed)
        samples = sample_posterior(post, chains=chains, warmup=warmup, draws=draws, seed=seed, check=False)
    converged = samples.converged()
    summary = posterior_record(post, samples, start, model_covariance=post.model_covariance,
                               amplitude_nuisance=post.amplitude_nuisance, observation={
                                   "file": str(observed), "fields": list(post.observation.fields),
                                   "log10_mass": post.observation.log10_mass.tolist(),
                                   "radius_used": post.observation.radius.tolist(),
                                   "radius_unit": emulator.radius_unit, "n_data": int(post.data["n_used"]),
                                   "redshift": _redshift_used(emulator, redshift),
                                   "covariance_file": None if covariance is None else str(covariance)},
                               emulator=str(run))
    labels = [f"log10 {n}" if lg else n for n, lg in zip(post.names, post.space.is_log, strict=True)]
    title = f"{post.data['n_used']:.0f} data points, {post.model_covariance} model error"
    write_result_folder(out, {
        "samples.csv": samples.to_csv,
        "summary.json": lambda p: atomic_write_text(p, json.dumps(summary, indent=1, allow_nan=False) + "\n"),
        "corner.png": lambda p: corner_plot(samples.flat, labels, p, title=title),
    }, force=force, inputs=inputs, names=INFER_FILES)
    for name, s in summary["parameters"].items():
        typer.echo(parameter_line(name, s))
    _warn_at_edges(post, samples)
    typer.echo(f"wrote {out / 'samples.csv'}, {out / 'summary.json'}, {out / 'corner.png'}")
    if not converged and not allow_unconverged:
        try:
            samples.check()
        except ConvergenceError as exc:
            raise ConvergenceError(f"{exc} (the files were written for inspection)") from None


def _number(value: Any, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``n/a`` (an undefined R-hat or ESS: a chain that never moved)."""
    return "n/a" if value is None or not math.isfinite(float(value)) else format(float(value), spec)


def parameter_line(name: str, s: Mapping[str, Any]) -> str:
    """One summary line of a sampled parameter: median, 68% interval, R-hat and ESS."""
    return (f"{name:>24} = {s['q50']:.4g}  (+{s['q84'] - s['q50']:.3g} / -{s['q50'] - s['q16']:.3g})"
            f"  R-hat {_number(s.get('r_hat'), '.3f')}  ESS {_number(s.get('ess'), '.0f')}")


@user_errors
def fisher_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `profemu train` (or an emulator folder).")],
    at: Annotated[Path, typer.Option(
        "--at", help="CSV with a header of parameter names and one row of (physical) values.")],
    observed: Annotated[Path, typer.Option(
        "--observed", help="CSV of the observation whose errors define the covariance.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (fisher.json, fisher_matrix.csv).")],
    log10_mass: Annotated[float | None, typer.Option("--log10-mass", help="log10(M/Msun) of the bin.")] = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="NAME=VALUE held fixed (repeatable).")] = None,
    covariance: Annotated[Path | None, typer.Option("--covariance", help="Covariance of log10 values (.npy).")] = None,
    fields: Annotated[str | None, typer.Option("--fields", help="Comma-separated fields.")] = None,
    model_covariance: Annotated[ModelCovarianceName, typer.Option(
        "--model-covariance", help="auto, predictive, residual or none.")] = ModelCovarianceName.auto,
    amplitude: Annotated[bool, typer.Option("--amplitude/--no-amplitude",
                                            help="Marginalise an overall amplitude.")] = False,
    redshift: Annotated[float | None, typer.Option("--redshift", help="Redshift, if needed.")] = None,
    pk_ratio: Annotated[Path | None, typer.Option(
        "--pk-ratio", help="P(k) suppression assumed (one value per k bin, a column or a row); default: "
        "the training set's centre.")] = None,
    box_prior: Annotated[bool, typer.Option(
        "--box-prior/--no-box-prior",
        help="Add the training box as a Gaussian prior of equal variance (width/sqrt(12)); without it the "
             "errors are the likelihood's alone.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a non-empty --out folder (never one holding an input).")] = False,
) -> None:
    """Fisher matrix and marginal errors of the free parameters at a point."""
    from profemu._files import atomic_write_text, check_result_folder, write_result_folder
    from profemu.inference import fisher_matrix, make_log_posterior
    from profemu.inference.records import fisher_record

    inputs = {"run folder": run, **read_inputs(run), "--at": at, "--observed": observed, "--covariance": covariance,
              "--pk-ratio": pk_ratio}
    check_result_folder(out, force=force, inputs=inputs, names=FISHER_FILES)
    emulator = load_emulator(run)
    fixed = _parse_fix(fix or [])
    point = _read_point(at, emulator.param_names)
    conflict = [n for n in point if n in fixed and not np.isclose(point[n], fixed[n])]
    if conflict:
        raise DataError(f"--at {at}: {conflict} are also given by --fix with another value; give each once.")
    obs = _observation(emulator, observed, log10_mass, covariance, fields, redshift, pk_ratio)
    with _progress_lines():
        post = make_log_posterior(emulator, obs, fix=fixed, amplitude_nuisance=amplitude,
                                  model_covariance=model_covariance.value)
    missing = [n for n in post.names if n not in point]
    if missing:
        raise DataError(f"--at {at}: no value for the free parameter(s) {missing}; add the columns or --fix them.")
    result = fisher_matrix(post, {n: point[n] for n in post.names}, include_box_prior=box_prior)
    record = fisher_record(post, result, model_covariance=post.model_covariance, box_prior=bool(box_prior))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["parameter", *post.names])
    for name, row in zip(post.names, result.matrix, strict=True):
        writer.writerow([name, *(repr(float(v)) for v in row)])
    write_result_folder(out, {
        "fisher.json": lambda p: atomic_write_text(p, json.dumps(record, indent=1, allow_nan=False) + "\n"),
        "fisher_matrix.csv": lambda p: atomic_write_text(p, buf.getvalue()),
    }, force=force, inputs=inputs)
    for name, err, err_s, lg in zip(post.names, result.errors_physical, result.errors, post.space.is_log, strict=True):
        extra = f"  ({err_s:.3g} dex)" if lg else ""
        typer.echo(f"{name:>24} = {result.values[name]:.4g} +- {err:.3g}{extra}")
    if not np.isfinite(result.condition) or result.condition > 1e10:
        typer.echo(f"warning: the Fisher matrix is nearly singular (condition number {result.condition:.3g}); "
                   "some parameter combinations are not constrained.", err=True)
    n_data, n_free = int(post.data["n_used"]), len(post.names)
    if n_data < n_free:
        typer.echo(f"warning: {n_data} data points for {n_free} free parameters: the Fisher errors describe a "
                   "degenerate problem; fix parameters (--fix) or add radii, fields or mass bins.", err=True)
    width = post.space.upper - post.space.lower  # the prior box in sampling space
    wide = [n for n, e, w in zip(post.names, result.errors, width, strict=True) if not e < w]
    if wide:
        typer.echo(f"warning: the Fisher errors of {wide} exceed the width of the training box: the data do not "
                   "constrain them there (the Gaussian approximation does not hold).", err=True)
    typer.echo(f"wrote {out / 'fisher.json'}, {out / 'fisher_matrix.csv'}")


def register(app: typer.Typer) -> None:
    """Add ``infer`` and ``fisher`` to ``app``."""
    app.command("infer", rich_help_panel=_PANEL)(infer_cmd)
    app.command("fisher", rich_help_panel=_PANEL)(fisher_cmd)


def _read_point(path: Path, names: Sequence[str]) -> dict[str, float]:
    """One-row CSV of parameter values (header = names)."""
    if not path.is_file():
        raise FormatError(f"{path}: point file not found.")
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and not r[0].lstrip().startswith("#")]
    if len(rows) != 2:
        raise DataError(f"{path}: expected a header of parameter names and exactly one row of values.")
    header, values = [h.strip() for h in rows[0]], rows[1]
    if len(values) != len(header):
        raise DataError(f"{path}: {len(values)} values for {len(header)} columns.")
    unknown = [h for h in header if h not in names]
    if unknown:
        raise DataError(f"{path}: unknown parameter name(s) {unknown}; the emulator's parameters are {list(names)}.")
    out = {}
    for h, v in zip(header, values, strict=True):
        try:
            out[h] = float(v)
        except ValueError:
            raise DataError(f"{path}: column {h!r}: {v!r} is not a number.") from None
    return out


def infer_observation(emulator: Any, run: Path, spec_path: Path, out: Path, fixed: dict[str, float],
                      sampler: dict[str, int | None], *, force: bool, allow_unconverged: bool,
                      pk_ratio: Path | None = None) -> None:
    """``profemu infer RUN --observation SPEC.yaml --out DIR``: MAP and NUTS on CAP measurements;
    writes samples.csv, summary.json and cap_fit.png into DIR as one unit."""
    import dataclasses

    from profemu._files import atomic_write_text, check_result_folder, write_result_folder
    from profemu.inference import find_map, sample_posterior
    from profemu.inference.observables import (
        build_terms,
        cap_chi2,
        describe_terms,
        make_cap_posterior,
        plot_cap_fit,
        posterior_predictive,
        read_observation_spec,
    )
    from profemu.inference.records import posterior_record
    from profemu.inference.sampling import ConvergenceError

    spec = read_observation_spec(spec_path)
    spec = dataclasses.replace(spec, fix={**spec.fix, **fixed})
    inputs = {"run folder": run, **read_inputs(run), "--observation": spec_path, "--pk-ratio": pk_ratio,
              **spec.input_files()}
    check_result_folder(out, force=force, inputs=inputs, names=INFER_FILES)
    settings = {k: (v if v is not None else spec.sampler[k]) for k, v in sampler.items()}
    _check_sampler(int(settings["chains"]), int(settings["warmup"]), int(settings["draws"]))
    with _progress_lines():
        post = make_cap_posterior(build_terms(emulator, spec, pk_ratio=pk_ratio), fix=spec.fix, bounds=spec.bounds,
                                  amplitude_bounds=spec.amplitude_bounds, geometry=spec.geometry)
        start = find_map(post, starts=4, seed=int(settings["seed"]))
        samples = sample_posterior(post, chains=int(settings["chains"]), warmup=int(settings["warmup"]),
                                   draws=int(settings["draws"]), seed=int(settings["seed"]), check=False,
                                   max_tree_depth=spec.sampler["max_tree_depth"])
        fit = cap_chi2(post, start.theta)
        predictive = posterior_predictive(post, samples.flat, seed=int(settings["seed"]))
    summary = posterior_record(
        post, samples, start, map_fit=fit,
        geometry=post.geometry,
        observations=describe_terms(post),
        covariance="data covariance + emulator covariance (linearised predictive variance), "
                   "measurements independent of each other",
        emulator=str(run), observation_spec=str(spec_path))
    title = f"MAP chi2 = {fit['chi2']:.2f} for {fit['n_data']} points, {fit['n_free']} free parameters"
    write_result_folder(out, {
        "samples.csv": samples.to_csv,
        "summary.json": lambda p: atomic_write_text(p, json.dumps(summary, indent=1, allow_nan=False) + "\n"),
        "cap_fit.png": lambda p: plot_cap_fit(post, predictive, start.theta, p, title=title),
    }, force=force, inputs=inputs, names=INFER_FILES)
    for name, s in summary["parameters"].items():
        typer.echo(parameter_line(name, s))
    _warn_at_edges(post, samples)
    p_value = "n/a" if fit["dof"] <= 0 else f"{fit['p_value']:.3g}"
    typer.echo(f"MAP chi2 = {fit['chi2']:.2f} ({fit['n_data']} points, {fit['dof']} dof, p = {p_value})")
    typer.echo(f"wrote {out / 'samples.csv'}, {out / 'summary.json'}, {out / 'cap_fit.png'}")
    if not samples.converged() and not allow_unconverged:
        try:
            samples.check()
        except ConvergenceError as exc:
            raise ConvergenceError(f"{exc} (the files were written for inspection)") from None
