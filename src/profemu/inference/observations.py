"""Observed profiles for a likelihood: :class:`Observation` and its CSV reader.

An observation is a set of stacked radial profiles of one object (one simulation, one
survey stack): ``B`` halo-mass bins x ``F`` fields x ``R`` radii, kept in log10 with
either per-element 1-sigma errors in dex or a full covariance of the log10 values.

Linear values and errors convert as ``log10(value)`` and ``err / (value ln 10)`` (the
first-order error of log10). The radii are the observation's own; the likelihood
interpolates the emulator's prediction onto them (log10 profile linear in log radius),
so the data and their covariance are used exactly as given. Observed radii outside the
emulator's grid cannot be predicted; they are left out with a logged message (and
:class:`~profemu.errors.DataError` when no radius is left).

CSV format (what ``profemu infer --observed`` reads)::

    radius,rho,rho_err,pth,pth_err
    0.01,3.1e7,2.0e6,4.2e-2,3.0e-3
    ...

``radius`` in the emulator's radius unit; per field a column ``<field>`` (linear units,
as in the training data) and ``<field>_err`` (1 sigma, linear). An optional column
``log10_mass`` gives the mass bin of each row (several bins in one file); otherwise the
mass is passed separately. ``_err`` columns may be left out when a full covariance of
the log10 values is given instead.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import read_npy
from profemu.errors import DataError, FormatError

__all__ = ["Observation", "load_covariance", "read_observation"]

logger = logging.getLogger("profemu.inference")

_LN10 = float(np.log(10.0))
_MAX_CSV_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class Observation:
    """Observed log10 profiles of ``B`` mass bins, ``F`` fields and ``R`` radii.

    Attributes:
        fields: Field names (a subset of the emulator's), length ``F``.
        radius: Observed radii [R], strictly increasing and positive, in ``radius_unit``.
        log10_mass: log10(M / Msun) of each mass bin [B].
        log10_profile: log10 of the observed profiles [B, F, R] (entries outside ``mask``
            are ignored and may be NaN).
        log10_err: 1-sigma errors of ``log10_profile`` [B, F, R] in dex, or None when
            ``covariance`` is given.
        covariance: Full covariance of the log10 values [D, D] in dex², ``D = B*F*R``,
            flattened in (bin, field, radius) order (rows/columns of masked entries are
            ignored), or None.
        mask: Usable entries [B, F, R] (bool).
        radius_unit: Unit of ``radius`` (checked against the emulator's when non-empty).
        redshift: Redshift of the observation, when the emulator takes one.
        pk_ratio: P_hydro/P_dmo [n_k] (or [B, n_k]) when the emulator takes P(k).

    Raises:
        DataError: on inconsistent shapes, non-finite or non-positive errors, a covariance
            that is not symmetric positive definite; the message names the field.
    """

    fields: tuple[str, ...]
    radius: np.ndarray
    log10_mass: np.ndarray
    log10_profile: np.ndarray
    log10_err: np.ndarray | None = None
    covariance: np.ndarray | None = None
    mask: np.ndarray | None = None
    radius_unit: str = ""
    redshift: float | None = None
    pk_ratio: np.ndarray | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(str(f) for f in self.fields)
        if not fields or len(set(fields)) != len(fields):
            raise DataError(f"fields: need at least one unique field name, got {list(fields)}.")
        radius = np.array(self.radius, dtype=float).reshape(-1)
        if radius.size < 1 or not np.all(np.isfinite(radius)) or np.any(radius <= 0):
            raise DataError("radius: observed radii must be finite and > 0.")
        if np.any(np.diff(radius) <= 0):
            j = int(np.flatnonzero(np.diff(radius) <= 0)[0]) + 1
            raise DataError(
                f"radius: not strictly increasing at position {j} ({radius[j - 1]} then {radius[j]}); "
                "sort the rows by radius and merge duplicates."
            )
        mass = np.atleast_1d(np.array(self.log10_mass, dtype=float)).reshape(-1)
        if not np.all(np.isfinite(mass)) or np.any((mass < 0) | (mass > 20)):
            raise DataError(
                f"log10_mass: {mass.tolist()} is not a list of log10(M/Msun) values (e.g. 13.5)."
            )
        shape = (mass.size, len(fields), radius.size)
        values = np.array(self.log10_profile, dtype=float)
        if values.shape != shape:
            raise DataError(
                f"log10_profile: shape {values.shape}, expected (bins, fields, radii) = {shape}."
            )
        mask = np.isfinite(values) if self.mask is None else np.array(self.mask, dtype=bool)
        if mask.shape != shape:
            raise DataError(f"mask: shape {mask.shape}, expected {shape}.")
        if not mask.any():
            raise DataError("mask: no usable entry in the observation.")
        if not np.all(np.isfinite(values[mask])):
            raise DataError("log10_profile: non-finite value at an unmasked entry; mask it or fix it.")
        err = None
        cov = None
        if self.covariance is not None:
            cov = np.array(self.covariance, dtype=float)
            d = int(np.prod(shape))
            if cov.shape != (d, d):
                raise DataError(
                    f"covariance: shape {cov.shape}, expected ({d}, {d}) = (bins*fields*radii)² in "
                    f"(bin, field, radius) order for {shape[0]} bin(s), fields {list(fields)} and "
                    f"{shape[2]} radii."
                )
            sub = cov[np.ix_(mask.reshape(-1), mask.reshape(-1))]
            _check_covariance(sub, "covariance")
        elif self.log10_err is not None:
            err = np.array(self.log10_err, dtype=float)
            if err.shape != shape:
                raise DataError(f"log10_err: shape {err.shape}, expected {shape}.")
            bad = mask & ~(np.isfinite(err) & (err > 0))
            if bad.any():
                b, f, r = np.argwhere(bad)[0]
                raise DataError(
                    f"errors of {fields[f]!r}: value {err[b, f, r]} at radius {radius[r]:g} "
                    f"(bin {b}) is not > 0; every 1-sigma error must be finite and positive."
                )
        else:
            raise DataError("Observation: give log10_err (per-element errors) or covariance.")
        pk = None if self.pk_ratio is None else np.array(self.pk_ratio, dtype=float)
        if pk is not None and not np.all(np.isfinite(pk)):
            raise DataError("pk_ratio: non-finite values.")
        z = None if self.redshift is None else float(self.redshift)
        if z is not None and not (np.isfinite(z) and z >= 0):
            raise DataError(f"redshift: {self.redshift!r} must be finite and >= 0.")
        for name, value in (("fields", fields), ("radius", radius), ("log10_mass", mass),
                            ("log10_profile", values), ("log10_err", err), ("covariance", cov),
                            ("mask", mask), ("pk_ratio", pk), ("redshift", z),
                            ("radius_unit", str(self.radius_unit or ""))):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            put(self, name, value)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int, int]:
        """(bins, fields, radii)."""
        return self.log10_profile.shape  # type: ignore[return-value]

    def covariance_matrix(self) -> np.ndarray:
        """The observation covariance [D, D] of the log10 values (diagonal from the errors)."""
        if self.covariance is not None:
            return np.array(self.covariance)
        assert self.log10_err is not None
        return np.diag(np.where(self.mask, self.log10_err, 1.0).reshape(-1) ** 2)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_profiles(
        cls,
        radius: Any,
        profiles: Mapping[str, Any],
        log10_mass: Any,
        errors: Mapping[str, Any] | None = None,
        *,
        covariance: Any = None,
        radius_unit: str = "",
        redshift: float | None = None,
        pk_ratio: Any = None,
    ) -> Observation:
        """An observation from linear profiles and linear 1-sigma errors.

        Args:
            radius: Radii [R] in the emulator's radius unit.
            profiles: Field -> linear values, [R] (one bin) or [B, R]; must be > 0.
            log10_mass: Scalar or [B] log10(M / Msun).
            errors: Field -> linear 1-sigma errors (same shapes), > 0; converted to dex
                as ``err / (value ln 10)``. Not needed when ``covariance`` is given.
            covariance: Full covariance of the log10 values [D, D] (dex²), ``D = B*F*R``
                in (bin, field, radius) order.
            radius_unit: Unit of ``radius``.
            redshift: Redshift, when the emulator takes one.
            pk_ratio: P(k) suppression, when the emulator takes one.

        Raises:
            DataError: non-positive values or errors (the message names the field).
        """
        fields = tuple(profiles)
        mass = np.atleast_1d(np.asarray(log10_mass, dtype=float))
        r = np.asarray(radius, dtype=float).reshape(-1)
        vals = []
        errs = []
        for f in fields:
            v = np.array(profiles[f], dtype=float)
            v = v.reshape(1, -1) if v.ndim == 1 else v
            if v.shape != (mass.size, r.size):
                raise DataError(f"{f}: shape {v.shape}, expected ({mass.size}, {r.size}) (bins, radii).")
            bad = ~(np.isfinite(v) & (v > 0))
            if bad.any():
                b, j = np.argwhere(bad)[0]
                raise DataError(
                    f"{f}: value {v[b, j]} at radius {r[j]:g} is not > 0; profiles are fitted in "
                    "log10, so every value must be finite and positive (drop that radius)."
                )
            vals.append(np.log10(v))
            if covariance is None:
                if errors is None or f not in errors:
                    raise DataError(f"{f}_err: missing; give the 1-sigma error of every field or a covariance.")
                e = np.array(errors[f], dtype=float)
                e = e.reshape(1, -1) if e.ndim == 1 else e
                if e.shape != v.shape:
                    raise DataError(f"{f}_err: shape {e.shape}, expected {v.shape}.")
                bad = ~(np.isfinite(e) & (e > 0))
                if bad.any():
                    b, j = np.argwhere(bad)[0]
                    raise DataError(
                        f"{f}_err: value {e[b, j]} at radius {r[j]:g} is not > 0; 1-sigma errors "
                        "must be finite and positive."
                    )
                errs.append(e / (v * _LN10))
        return cls(
            fields=fields, radius=r, log10_mass=mass, log10_profile=np.stack(vals, axis=1),
            log10_err=np.stack(errs, axis=1) if covariance is None else None,
            covariance=covariance, radius_unit=radius_unit, redshift=redshift, pk_ratio=pk_ratio,
        )

    @classmethod
    def from_dataset(cls, dataset: Any, rows: Sequence[int], fields: Sequence[str] | None = None) -> Observation:
        """The rows of a :class:`~profemu.data.dataset.ProfileDataset` as one observation.

        Each row is one mass bin (e.g. the mass bins of one simulation); the errors are
        the dataset's known noise [dex] (``dataset.noise``), and masked entries stay masked.

        Args:
            dataset: The dataset (must carry ``noise`` for the chosen fields).
            rows: Row indices, one per mass bin.
            fields: Fields to use (default: every field of the dataset).

        Raises:
            DataError: no noise for a field, or rows with different parameters' redshift.
        """
        rows = np.asarray(rows, dtype=int).reshape(-1)
        fields = tuple(fields or dataset.fields)
        if dataset.noise is None or any(f not in dataset.noise for f in fields):
            raise DataError("dataset.noise: the dataset has no known noise for every field; build the "
                            "Observation from profiles and errors instead.")
        values = np.stack([np.log10(np.where(dataset.mask[f][rows], dataset.profiles[f][rows], 1.0))
                           for f in fields], axis=1)
        err = np.stack([dataset.noise[f][rows] for f in fields], axis=1)
        mask = np.stack([dataset.mask[f][rows] for f in fields], axis=1) & (err > 0)
        err = np.where(mask, err, 1.0)
        z = None
        if dataset.redshift is not None:
            z = float(dataset.redshift[rows[0]])
        pk = None if dataset.pk_ratio is None else dataset.pk_ratio[rows]
        return cls(fields=fields, radius=dataset.radius, log10_mass=dataset.log10_mass[rows],
                   log10_profile=values, log10_err=err, mask=mask, radius_unit=dataset.radius_unit,
                   redshift=z, pk_ratio=pk)


def _check_covariance(cov: np.ndarray, name: str) -> None:
    """Finite, symmetric and positive definite, else DataError naming ``name``."""
    if not np.all(np.isfinite(cov)):
        raise DataError(f"{name}: non-finite entries; a covariance must be finite.")
    scale = max(float(np.max(np.abs(cov))), 1e-300)
    if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-10 * scale):
        raise DataError(f"{name}: not symmetric (max |C - C^T| = {np.max(np.abs(cov - cov.T)):.3g}).")
    eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))
    if eig.min() <= 1e-12 * max(eig.max(), 1e-300):
        raise DataError(
            f"{name}: not positive definite (smallest eigenvalue {eig.min():.3g}, largest "
            f"{eig.max():.3g}); a covariance of log10 values must be symmetric positive definite."
        )


def load_covariance(path: str | Path) -> np.ndarray:
    """Read a covariance of log10 values from a ``.npy`` file (``allow_pickle=False``).

    Raises:
        FormatError: the file is missing, not a numeric .npy array, or not 2-D square.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: covariance file not found; pass a .npy file of the log10 covariance.")
    cov = read_npy(path, what="covariance")
    if not isinstance(cov, np.ndarray) or cov.dtype.kind not in "iuf" or cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise FormatError(
            f"{path}: expected a square numeric matrix, got {getattr(cov, 'dtype', '?')} "
            f"{getattr(cov, 'shape', '?')}."
        )
    return cov.astype(float)


def _parse_float(text: str, column: str, line: int, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}: column {column!r}, line {line}: {text!r} is not a number.") from None


def read_observation(
    path: str | Path,
    *,
    fields: Sequence[str],
    log10_mass: float | Sequence[float] | None = None,
    covariance: Any = None,
    radius_unit: str = "",
    redshift: float | None = None,
    pk_ratio: Any = None,
) -> Observation:
    """Read observed profiles from a CSV file (format in the module docstring).

    Args:
        path: The CSV file.
        fields: Fields to read; columns ``<field>`` (and ``<field>_err`` unless a
            ``covariance`` is given) must exist. Fields of the emulator absent from the
            file are simply not used when ``fields`` is built from the file's columns.
        log10_mass: Mass of the bin (scalar), required unless the file has a
            ``log10_mass`` column (several bins, one block of rows each, same radii).
        covariance: Full covariance of the log10 values [D, D] (or a path to a .npy file).
        radius_unit: The radius unit (the emulator's).
        redshift: Redshift, when the emulator takes one.
        pk_ratio: P(k) suppression, when the emulator takes one.

    Raises:
        DataError: missing columns, non-numeric or non-positive values, non-positive
            errors, inconsistent bins (the message names the column and line).
        FormatError: the file is not a readable text CSV.
    """
    path = Path(path)
    header, rows = _read_csv_table(path)
    cov = load_covariance(covariance) if isinstance(covariance, str | Path) else covariance
    fields = tuple(fields)
    _check_columns(path, header, rows, ["radius", *fields, *([] if cov is not None else [f"{f}_err" for f in fields])])
    col = {name: j for j, name in enumerate(header)}

    def column(name: str) -> np.ndarray:
        return np.array([_parse_float(row[col[name]], name, i, path) for i, row in enumerate(rows, start=2)])

    radius = column("radius")
    masses, bins = _mass_bins(path, column if "log10_mass" in col else None, log10_mass, radius.size)
    blocks = [np.flatnonzero(masses == b) for b in bins]
    r0 = _common_radii(path, radius, blocks)
    order = np.argsort(r0, kind="stable")
    profiles, errors = _field_blocks(path, column, fields, blocks, order, with_errors=cov is None)
    if cov is not None and not np.array_equal(order, np.arange(order.size)):
        raise DataError(f"{path}: with a covariance, rows must be sorted by increasing radius.")
    return Observation.from_profiles(
        r0[order], profiles, np.array(bins), errors or None, covariance=cov,
        radius_unit=radius_unit, redshift=redshift, pk_ratio=pk_ratio,
    )


def _read_csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and data rows of a CSV file (blank and ``#`` comment lines skipped), cells stripped."""
    if not path.is_file():
        raise FormatError(f"{path}: observation file not found.")
    if path.stat().st_size > _MAX_CSV_BYTES:
        raise FormatError(f"{path}: implausibly large observation file; refusing to read it.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text CSV file.") from None
    reader = csv.reader(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header line 'radius,<field>,<field>_err,...'.") from None
    rows = [[c.strip() for c in row] for row in reader]
    if not rows:
        raise DataError(f"{path}: no data rows below the header.")
    if len(set(header)) != len(header):
        raise DataError(f"{path}: duplicate column names in the header {header}.")
    return header, rows


def _check_columns(path: Path, header: list[str], rows: list[list[str]], needed: list[str]) -> None:
    """Every ``needed`` column is in the header and every row has one value per column."""
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; the file needs 'radius' and, per field, '<field>' "
            f"and '<field>_err' (columns found: {header})."
        )
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {i} has {len(row)} values for {len(header)} columns.")


def _mass_bins(
    path: Path,
    mass_column: Callable[[str], np.ndarray] | None,
    log10_mass: float | Sequence[float] | None,
    n_rows: int,
) -> tuple[np.ndarray, list[float]]:
    """The mass of every row and the distinct mass bins (file order), from the file's
    ``log10_mass`` column (``mass_column`` reads it; None: the file has none) or ``log10_mass``."""
    from profemu.emulator.inputs import check_log10_mass

    if mass_column is not None:
        masses = mass_column("log10_mass")
        if log10_mass is not None:
            raise DataError(f"{path}: has a log10_mass column; do not pass log10_mass as well.")
        check_log10_mass(masses, name=f"{path}: log10_mass column")
        return masses, list(dict.fromkeys(masses.tolist()))
    if log10_mass is None:
        raise DataError(
            "log10_mass: missing; pass the halo mass of the observed bin (e.g. --log10-mass 13.5) "
            "or add a log10_mass column."
        )
    if np.ndim(log10_mass) != 0:
        raise DataError("log10_mass: one value for a file without a log10_mass column.")
    check_log10_mass(log10_mass, name="log10_mass (--log10-mass)")
    return np.full(n_rows, float(log10_mass)), [float(log10_mass)]


def _common_radii(path: Path, radius: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """The radii of the first mass bin, after checking every bin lists the same finite positive radii."""
    for blk in blocks:
        values, counts = np.unique(radius[blk], return_counts=True)
        if (counts > 1).any():
            raise DataError(f"{path}: the radius {values[counts > 1][0]:g} appears {counts.max()} times in one mass bin "
                            "(rows with the same log10_mass); give each bin its own log10_mass, or drop the "
                            "repeated rows.")
    r0 = radius[blocks[0]]
    if any(blk.size != r0.size or not np.allclose(radius[blk], r0) for blk in blocks):
        raise DataError(f"{path}: every mass bin must list the same radii in the same order.")
    if not np.all(np.isfinite(r0)) or np.any(r0 <= 0):
        raise DataError(f"{path}: column 'radius' must hold finite positive radii.")
    return r0


def _field_blocks(
    path: Path,
    column: Callable[[str], np.ndarray],
    fields: tuple[str, ...],
    blocks: list[np.ndarray],
    order: np.ndarray,
    *,
    with_errors: bool,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per field the checked linear values (and, ``with_errors``, 1-sigma errors), [bins, radii] in ``order``."""
    profiles: dict[str, np.ndarray] = {}
    errors: dict[str, np.ndarray] = {}
    for f in fields:
        v = column(f)
        if np.any(~np.isfinite(v) | (v <= 0)):
            j = int(np.flatnonzero(~np.isfinite(v) | (v <= 0))[0])
            raise DataError(
                f"{path}: column {f!r}, line {j + 2}: value {v[j]} is not > 0; profiles are fitted in "
                "log10, so values must be positive (drop that row)."
            )
        profiles[f] = np.stack([v[blk][order] for blk in blocks])
        if with_errors:
            e = column(f"{f}_err")
            if np.any(~np.isfinite(e) | (e <= 0)):
                j = int(np.flatnonzero(~np.isfinite(e) | (e <= 0))[0])
                raise DataError(
                    f"{path}: column '{f}_err', line {j + 2}: value {e[j]} is not > 0; 1-sigma errors "
                    "must be positive."
                )
            errors[f] = np.stack([e[blk][order] for blk in blocks])
    return profiles, errors
