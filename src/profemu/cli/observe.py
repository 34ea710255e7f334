"""Command line: ``profemu observe`` — predicted CAP kSZ/tSZ profiles of an emulator.

``profemu observe RUN --observable ksz|tsz --redshift Z --beam FILE [--response FILE]
--apertures 1,1.625,...,6 [--mass-distribution FILE | --log10-mass M] --at points.csv
--out cap.csv [--pk-ratio FILE] [--force]`` writes one row per (point, aperture): the point's
parameters, the aperture θ_d [arcmin], the mean CAP and its emulator standard deviation
[μK arcmin²] (the ensemble members' spread plus their own variance, propagated through the
forward model), and how far the mass bins lie outside the emulator's training range.

The distance D_A(z; Ω_m, h) and radii in units of R_Δ use each point's Ω_m and h when they are
emulator parameters (``--omega-m``/``--h`` are then refused), else ``--omega-m`` (0.3) and
``--h`` (0.6711). An emulator that takes P(k) gets ``--pk-ratio FILE``, or the training
set's centre (logged).
"""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from profemu.cli.common import user_errors
from profemu.errors import DataError, FormatError

__all__ = ["ObservableName", "parse_apertures", "read_points", "register"]

_PANEL = "Inference"


class ObservableName(StrEnum):
    """Valid ``--observable`` values: kSZ (gas density) or tSZ (thermal pressure)."""

    ksz = "ksz"
    tsz = "tsz"


def parse_apertures(text: str) -> np.ndarray:
    """``"1,1.625,2"`` → array [arcmin], > 0 and strictly increasing."""
    try:
        values = np.array([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise DataError(f"--apertures {text!r}: expected comma-separated numbers in arcmin, e.g. "
                        "1,1.625,2.25,2.875,3.5,4.125,4.75,5.375,6.") from None
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(np.diff(values) <= 0):
        raise DataError(f"--apertures {text!r}: need positive, strictly increasing disk radii in arcmin.")
    return values


def read_points(path: Path, names: tuple[str, ...]) -> np.ndarray:
    """CSV with a header of every emulator parameter name and one row per point → [n, p]."""
    if not path.is_file():
        raise FormatError(f"--at {str(path)!r}: file not found.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"--at {str(path)!r}: not a text CSV file.") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 2:
        raise DataError(f"--at {str(path)!r}: expected a header of parameter names and at least one row.")
    header = [h.strip() for h in rows[0]]
    missing = [n for n in names if n not in header]
    unknown = [h for h in header if h not in names]
    if missing or unknown:
        raise DataError(f"--at {str(path)!r}: columns must be the emulator's parameters {list(names)} "
                        f"(missing {missing}, unknown {unknown}).")
    out = np.empty((len(rows) - 1, len(names)))
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(f"--at {str(path)!r}: row {i + 1} has {len(row)} values for {len(header)} columns.")
        for h, v in zip(header, row, strict=True):
            try:
                out[i, names.index(h)] = float(v)
            except ValueError:
                raise DataError(f"--at {str(path)!r}: row {i + 1}, column {h!r}: {v!r} is not a number.") from None
    if not np.all(np.isfinite(out)):
        raise DataError(f"--at {str(path)!r}: every value must be finite.")
    return out


def _mass_distribution(path: Path | None, log10_mass: float | None) -> Any:
    from profemu.observables import read_halo_mass_distribution
    from profemu.observables.act import single_mass

    if (path is None) == (log10_mass is None):
        raise DataError("--mass-distribution, --log10-mass: give exactly one (a CSV of mass bins, e.g. "
                        "act_cmass/cmass_halo_mass_distribution.csv, or one log10(M/Msun)).")
    if path is not None:
        return read_halo_mass_distribution(path)
    return single_mass(float(log10_mass), what="--log10-mass")  # type: ignore[arg-type]


def _geometry(names: tuple[str, ...], points: np.ndarray, omega_m: float | None,
              h: float | None) -> tuple[int | None, int | None, float, float]:
    """Columns of Ω_m and h among the parameters (None: not a parameter) and the reference Ω_m, h
    of the forward model (the first point's, or --omega-m / --h, default 0.3 and 0.6711).

    Raises:
        DataError: --omega-m or --h given for an emulator that has that parameter.
    """
    from profemu.observables.population import cosmology_params
    from profemu.physics.constants import DEFAULT_H

    om_name, h_name = cosmology_params(names)
    for option, value, name in (("--omega-m", omega_m, om_name), ("--h", h, h_name)):
        if value is not None and name is not None:
            raise DataError(f"{option} {value:g}: the emulator has the parameter {name!r}, and each point's {name} "
                            f"(from --at) is used for D_A and R_Delta; drop {option}.")
    j_om = None if om_name is None else names.index(om_name)
    j_h = None if h_name is None else names.index(h_name)
    om0 = float(points[0, j_om]) if j_om is not None else (0.3 if omega_m is None else omega_m)
    h0 = float(points[0, j_h]) if j_h is not None else (DEFAULT_H if h is None else h)
    return j_om, j_h, om0, h0


def _read_pk_ratio(emulator: Any, path: Path | None) -> np.ndarray | None:
    """``--pk-ratio FILE`` for an emulator that takes P(k) (None: the model uses the training centre)."""
    n_k = int(getattr(emulator.input_spec, "n_k", 0) or 0)
    if path is None:
        return None
    if not n_k:
        raise DataError(f"--pk-ratio {str(path)!r}: this emulator was trained without P(k); drop the option.")
    from profemu.emulator.tables import read_pk_ratio

    return read_pk_ratio(path, n_k)


def _table(names: tuple[str, ...], points: np.ndarray, preds: list[Any], notes: tuple[str, ...]) -> str:
    buf = io.StringIO()
    for line in notes:
        buf.write(f"# {line}\n")
    outside = preds[0].mass_outside_dex
    buf.write("# mass bins outside the training range [dex]: " + ", ".join(f"{d:.3f}" for d in outside) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["point", *names, "theta_arcmin", "mean_muK_arcmin2", "std_muK_arcmin2"])
    for i, (p, pred) in enumerate(zip(points, preds, strict=True)):
        for th, m, s in zip(pred.apertures_arcmin, pred.mean[0], pred.std[0], strict=True):
            writer.writerow([i, *(repr(float(v)) for v in p), repr(float(th)), repr(float(m)), repr(float(s))])
    return buf.getvalue()


def register(app: typer.Typer) -> None:
    """Add ``observe`` to ``app``."""

    @app.command("observe", rich_help_panel=_PANEL)
    @user_errors
    def observe_cmd(
        run: Annotated[Path, typer.Argument(help="Run folder written by `profemu train` (or an emulator folder).")],
        observable: Annotated[ObservableName, typer.Option("--observable", help="ksz (gas density) or tsz (thermal pressure).")],
        redshift: Annotated[float, typer.Option("--redshift", help="Redshift of the haloes, e.g. 0.55 for CMASS.")],
        beam: Annotated[Path, typer.Option("--beam", help="Beam file: ell (from 0), B_ell (B_0 = 1).")],
        apertures: Annotated[str, typer.Option("--apertures", help="CAP disk radii (arcmin), comma-separated.")],
        at: Annotated[Path, typer.Option("--at", help="CSV: header of every parameter name, one row per point.")],
        out: Annotated[Path, typer.Option("--out", help="Output CSV (mean and std in muK arcmin^2).")],
        response: Annotated[Path | None, typer.Option(
            "--response", help="tSZ band response file (ell, R in K_CMB per y, ...); or give --frequency.")] = None,
        frequency: Annotated[float | None, typer.Option(
            "--frequency", help="tSZ without a response file: the band centre in GHz (non-relativistic f(nu)); "
                                "e.g. 150.")] = None,
        v_rms_kms: Annotated[float, typer.Option(
            "--v-rms-kms", help="kSZ: rms line-of-sight velocity of the sample [km/s] (313 for CMASS).")] = 313.0,
        mass_distribution: Annotated[Path | None, typer.Option(
            "--mass-distribution", help="CSV log10_mass_lo,log10_mass_hi,log10_mass_center,weight.")] = None,
        log10_mass: Annotated[float | None, typer.Option("--log10-mass", help="One halo mass instead.")] = None,
        h: Annotated[float | None, typer.Option(
            "--h", help="h of D_A and R_Delta when h is not an emulator parameter (default 0.6711, CAMELS); "
                        "refused when it is (each point's h is used).")] = None,
        omega_m: Annotated[float | None, typer.Option(
            "--omega-m", help="Omega_m of D_A and R_Delta when it is not an emulator parameter (default 0.3); "
                              "refused when it is (each point's Omega_m is used).")] = None,
        pk_ratio: Annotated[Path | None, typer.Option(
            "--pk-ratio", help="P(k) suppression of an emulator that takes P(k) (one value per k bin, a column or "
                               "a row); default: the training set's centre.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    ) -> None:
        """Predict stacked CAP kSZ/tSZ profiles (muK arcmin^2) at parameter points."""
        from profemu._files import atomic_write_text, check_output
        from profemu.emulator.locate import load_emulator
        from profemu.observables import ForwardModel, read_beam, read_response
        from profemu.observables.population import PopulationModel
        from profemu.runs.folder import read_inputs

        if (response is not None or frequency is not None) and observable != "tsz":
            raise DataError("--response, --frequency: the band applies to --observable tsz only (kSZ in "
                            "thermodynamic muK is the same at every frequency); drop them.")
        if observable == "tsz" and (response is None) == (frequency is None):
            raise DataError("--response, --frequency: tsz needs its band: give the band response file "
                            "(--response FILE) or the band centre (--frequency GHZ, e.g. 150), not both.")
        check_output(out, force=force, inputs={"run folder": run, **read_inputs(run), "beam file": beam,
                                               "response file": response,
                                               "mass distribution": mass_distribution, "points file": at,
                                               "P(k) file": pk_ratio})
        ap = parse_apertures(apertures)
        emulator = load_emulator(run)
        names = tuple(emulator.param_names)
        points = read_points(at, names)
        j_om, j_h, om0, h0 = _geometry(names, points, omega_m, h)
        pk = _read_pk_ratio(emulator, pk_ratio)
        masses = _mass_distribution(mass_distribution, log10_mass)
        b = read_beam(beam)
        r = read_response(response) if response is not None else None
        forward = ForwardModel.build(kind=observable.value, redshift=redshift, apertures_arcmin=ap, beam_ell=b.ell,
                                     beam_bl=b.values, response_ell=None if r is None else r.ell,
                                     response=None if r is None else r.values, omega_m=om0, h=h0,
                                     frequency_ghz=frequency, v_rms_kms=v_rms_kms)
        model = PopulationModel.build(emulator, forward, masses, pk_ratio=pk)
        preds = []
        for p in points:
            here = model
            if j_om is not None or j_h is not None:
                here = model.at_cosmology(om0 if j_om is None else float(p[j_om]), h0 if j_h is None else float(p[j_h]))
            preds.append(here.predict(p, on_extrapolation="warn"))
        atomic_write_text(out, _table(tuple(emulator.param_names), points, preds, model.notes))
        typer.echo(f"wrote {out} ({len(points)} point(s) x {ap.size} aperture(s), muK arcmin^2)")

