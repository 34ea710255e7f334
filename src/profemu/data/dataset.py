"""The :class:`ProfileDataset`: named inputs and radial profiles with a validity mask.

A dataset holds, for ``n`` examples (e.g. one halo-mass bin of one simulation):

========================  ===============  ==================================================
attribute                 shape            meaning
========================  ===============  ==================================================
``params``                [n, p] float64   simulation parameters, columns named by ``param_names``
``param_names``           (p,) str         unique names
``log_params``            subset of names  parameters that are log-distributed (stored linear,
                                           positive; transforms take their log10)
``log10_mass``            [n] float64      log10(M / Msun) of the halo (bin)
``radius``                [n_r] float64    radial bin centres, strictly increasing, ``radius_unit``
``profiles``              {field: [n,n_r]} raw (linear) profile values, e.g. ``rho``, ``pth``, ``temp``
``units``                 {field: str}     units of each field
``mask``                  {field: [n,n_r]} bool, True where the entry is usable (finite and > 0)
``pk_ratio`` (optional)   [n, n_k]         P_hydro(k)/P_dmo(k) on the grid ``k`` [h/Mpc]
``redshift`` (optional)   [n]              snapshot redshift
``groups`` (optional)     [n] int64        e.g. simulation id, for leakage-free splits
``noise`` (optional)      {field: [n,n_r]} standard error of log10 of the target [dex]
========================  ===============  ==================================================

Profiles are learnt in log10, so an entry is valid when it is finite and strictly
positive. Invalid entries are *kept* (never dropped or altered) and masked out of
every loss and metric. Construction validates everything and raises
:class:`~profemu.errors.DataError` with a message that names the field, the
offending row/column and the fix: also for ``meta["field_kinds"]`` naming a field that
does not exist. (A radius column of a fitted field with no valid entry in any training row
is refused when the transforms are fitted, :func:`check_radius_columns`.)
It logs one warning per field whose finite entries <= 0 are masked (a signed field
cannot be learnt in log10), one for an unreadable ``meta["mass_definition"]``, and one
line naming parameters that span more than :data:`LOG_SPAN_HINT` decades but are not in
``log_params``. Datasets derived from a checked one (:meth:`ProfileDataset.subset`,
:meth:`ProfileDataset.select_fields`) skip these dataset-wide checks.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import DEFAULT_MAX_READ_BYTES
from profemu.data.schema import dataset_arguments, write_dataset_file
from profemu.data.selfsimilar import DECLARED_KINDS, mass_definition_problem, redshift_column
from profemu.data.validation import (
    _F32_MAX,
    _as_float_array,
    _check_finite,
    _check_log10_representable,
    _integer_ids,
    _names,
)
from profemu.errors import DataError

__all__ = ["ProfileDataset", "check_radius_columns"]

logger = logging.getLogger(__name__)

#: True while :meth:`ProfileDataset._from_owned` builds a dataset from arrays nobody else holds.
_OWNED: ContextVar[bool] = ContextVar("profemu_dataset_owned", default=False)
#: True while a dataset is derived from a checked one (subset, select_fields): the dataset-wide
#: checks (empty radius columns, field_kinds, warnings) are not repeated.
_DERIVED: ContextVar[bool] = ContextVar("profemu_dataset_derived", default=False)
#: Decades [dex] a positive parameter not in ``log_params`` may span before the log suggests declaring it.
LOG_SPAN_HINT = 3.0


@contextmanager
def _derived() -> Iterator[None]:
    """Datasets built inside are derived from a checked one (:data:`_DERIVED`)."""
    token = _DERIVED.set(True)
    try:
        yield
    finally:
        _DERIVED.reset(token)


def _copied(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``meta`` (shallow if it holds objects that cannot be copied)."""
    try:
        return copy.deepcopy(dict(meta))
    except Exception:  # meta is free-form; it is validated as JSON only on save
        return dict(meta)


@dataclass(frozen=True, eq=False)
class ProfileDataset:
    """Named inputs and profile targets of ``n`` halos (or halo-mass bins).

    Args:
        params: Simulation parameters, shape [n, p].
        param_names: Names of the ``p`` parameter columns (unique).
        log10_mass: log10 of halo mass [Msun], shape [n].
        radius: Radial grid, shape [n_r], strictly increasing and positive.
        profiles: Mapping field name -> raw profile values, shape [n, n_r] each.
        units: Mapping field name -> unit string. Missing entries default to ``""``.
        radius_unit: Unit of ``radius`` (e.g. ``"Mpc"`` or ``"R200c"``).
        log_params: Names of log-distributed parameters (values must be > 0).
        mask: Optional mapping field -> bool [n, n_r]. Defaults to finite & > 0. A user
            mask may only remove entries; marking an invalid entry valid is an error.
        pk_ratio: Optional P_hydro/P_dmo, shape [n, n_k]; requires ``k``.
        k: Wavenumbers of ``pk_ratio`` [h/Mpc], shape [n_k], strictly increasing.
        redshift: Optional redshift per example, shape [n].
        groups: Optional integer group id per example (e.g. simulation id), shape [n].
        noise: Optional mapping field -> standard error of log10(profile) [dex], [n, n_r];
            must be finite and >= 0 where the mask is True.
        meta: Free-form provenance (JSON-serialisable strings and numbers).

    Raises:
        DataError: on any inconsistency; the message names the field and the fix.
    """

    params: np.ndarray
    param_names: tuple[str, ...]
    log10_mass: np.ndarray
    radius: np.ndarray
    profiles: Mapping[str, np.ndarray]
    units: Mapping[str, str] = field(default_factory=dict)
    radius_unit: str = "Mpc"
    log_params: tuple[str, ...] = ()
    mask: Mapping[str, np.ndarray] | None = None
    pk_ratio: np.ndarray | None = None
    k: np.ndarray | None = None
    redshift: np.ndarray | None = None
    groups: np.ndarray | None = None
    noise: Mapping[str, np.ndarray] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        copy = not _OWNED.get()  # the caller's arrays are copied, a reader's are taken over
        _check_mapping_arguments(self)
        params, names, log_params = _validated_params(self.params, self.param_names, self.log_params, copy)
        n = params.shape[0]
        log10_mass = _validated_log10_mass(self.log10_mass, n, copy)
        radius = _validated_radius(self.radius, copy)
        n_r = radius.shape[0]
        profiles = _validated_profiles(self.profiles, n, n_r, copy)
        units = _validated_units(self.units, self.radius_unit, profiles)
        mask = _validated_mask(self.mask, profiles, copy)
        pk_ratio, k = _validated_pk_ratio(self.pk_ratio, self.k, n, copy)
        redshift = _validated_redshift(self.redshift, n, copy)
        groups = None if self.groups is None else _integer_ids(self.groups, "groups", n)
        noise = _validated_noise(self.noise, profiles, mask, copy)
        _check_name_collisions(names, tuple(profiles))
        _check_redshift_column(params, names, redshift)
        if not _DERIVED.get():
            _check_meta_redshift(self.meta)
            _check_field_kinds(self.meta, tuple(profiles))
            _report_masked_nonpositive(profiles)
            _report_meta_and_params(self.meta, params, names, log_params)

        put(self, "params", params)
        put(self, "param_names", names)
        put(self, "log_params", log_params)
        put(self, "log10_mass", log10_mass)
        put(self, "radius", radius)
        put(self, "radius_unit", self.radius_unit)
        put(self, "profiles", profiles)
        put(self, "units", units)
        put(self, "mask", mask)
        put(self, "pk_ratio", pk_ratio)
        put(self, "k", k)
        put(self, "redshift", redshift)
        put(self, "groups", groups)
        put(self, "noise", noise)
        put(self, "meta", _copied(self.meta))
        for arr in (params, log10_mass, radius, pk_ratio, k, redshift, groups, *profiles.values(),
                    *mask.values(), *(noise or {}).values()):
            if arr is not None:
                arr.setflags(write=False)

    # ------------------------------------------------------------------ views
    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.params.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def n_r(self) -> int:
        """Number of radial bins."""
        return int(self.radius.shape[0])

    @property
    def n_k(self) -> int:
        """Number of P(k) bins (0 when there is no ``pk_ratio``)."""
        return 0 if self.pk_ratio is None else int(self.pk_ratio.shape[1])

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the profile fields, in order."""
        return tuple(self.profiles)

    def log10_profile(self, field: str) -> np.ndarray:
        """log10 of a field, [n, n_r], NaN where the mask is False (the stored values are untouched)."""
        arr = self.profiles[field]
        m = self.mask[field]
        out = np.full(arr.shape, np.nan)
        out[m] = np.log10(arr[m])
        return out

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> ProfileDataset:
        """Rows ``index`` (integer indices, boolean mask or slice) as a new dataset."""
        try:
            idx = np.arange(self.n)[index]
        except (IndexError, TypeError, ValueError) as exc:
            raise DataError(
                f"rows: invalid row selection ({exc}); pass integer row numbers in [0, {self.n}), a "
                f"bool mask of length {self.n} or a slice."
            ) from None
        def take(d: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
            return None if d is None else {k: v[idx] for k, v in d.items()}
        with _derived():
            return ProfileDataset(
                params=self.params[idx], param_names=self.param_names, log10_mass=self.log10_mass[idx],
                radius=self.radius, profiles=take(self.profiles), units=self.units,
                radius_unit=self.radius_unit, log_params=self.log_params, mask=take(self.mask),
                pk_ratio=None if self.pk_ratio is None else self.pk_ratio[idx], k=self.k,
                redshift=None if self.redshift is None else self.redshift[idx],
                groups=None if self.groups is None else self.groups[idx],
                noise=take(self.noise), meta=self.meta,
            )

    def select_fields(self, fields: Sequence[str]) -> ProfileDataset:
        """A dataset with only ``fields`` (in that order; each named once)."""
        fields = _names(fields, "fields")
        for f in fields:
            if f not in self.profiles:
                raise DataError(f"field {f!r} is not in this dataset; available fields: {list(self.fields)}.")
        def pick(d: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
            return None if d is None else {f: d[f] for f in fields if f in d}
        with _derived():
            return ProfileDataset(
                params=self.params, param_names=self.param_names, log10_mass=self.log10_mass,
                radius=self.radius, profiles=pick(self.profiles), units={f: self.units[f] for f in fields},
                radius_unit=self.radius_unit, log_params=self.log_params, mask=pick(self.mask),
                pk_ratio=self.pk_ratio, k=self.k, redshift=self.redshift, groups=self.groups,
                noise=pick(self.noise), meta=self.meta,
            )

    def fingerprint(self) -> str:
        """SHA-256 of every array and name: identifies the training data in an Emulator."""
        h = hashlib.sha256()
        h.update(repr((self.param_names, self.log_params, self.fields, self.radius_unit,
                       sorted(self.units.items()))).encode())
        arrays = [self.params, self.log10_mass, self.radius, self.pk_ratio, self.k, self.redshift,
                  self.groups]
        for f in self.fields:
            arrays += [self.profiles[f], self.mask[f], None if self.noise is None else self.noise.get(f)]
        for arr in arrays:
            h.update(b"-" if arr is None else np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def summary(self) -> str:
        """A short human-readable description (sizes, ranges, mask coverage)."""
        lines = [
            f"ProfileDataset: {self.n} examples, {len(self.param_names)} parameters, "
            f"{self.n_r} radii [{self.radius[0]:.4g} .. {self.radius[-1]:.4g} {self.radius_unit}], "
            f"{self.n_k} P(k) bins, fields {list(self.fields)}",
            f"  log10_mass: {self.log10_mass.min():.3f} .. {self.log10_mass.max():.3f}",
        ]
        if self.groups is not None:
            lines.append(f"  groups: {np.unique(self.groups).size} distinct")
        for f in self.fields:
            cov = self.mask[f].mean()
            lines.append(f"  {f} [{self.units[f]}]: {100 * cov:.2f}% valid entries"
                         + (", with per-element noise" if self.noise and f in self.noise else ""))
        return "\n".join(lines)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write to ``.npz`` or ``.h5``/``.hdf5`` (by suffix), atomically; see :mod:`profemu.data.schema`."""
        return write_dataset_file(self, path)

    @classmethod
    def load(cls, path: str | Path, *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> ProfileDataset:
        """Read a file written by :meth:`save` (npz or HDF5); no pickle is ever used.

        For every format (the CAMELS table too) use :func:`profemu.data.io.load_dataset`.
        ``max_bytes`` bounds the total size of the arrays read (checked before reading).
        The arrays read become the dataset's without copies (peak memory near the float64
        size of the data).
        """
        return cls._from_owned(**dataset_arguments(path, max_bytes=max_bytes))

    @classmethod
    def _from_owned(cls, **kwargs: Any) -> ProfileDataset:
        """A dataset that takes over the arrays of ``kwargs`` instead of copying them.

        For file readers only: the arrays must be fresh and held by nobody else (they are
        made read-only and become the dataset's); float64 arrays are kept as they are,
        other real-valued arrays converted once. Validation is the same as the constructor's.
        """
        token = _OWNED.set(True)
        try:
            return cls(**kwargs)
        finally:
            _OWNED.reset(token)


# ------------------------------------------------------------------ validation of each input block
def _check_mapping_arguments(ds: ProfileDataset) -> None:
    """``units``, ``mask``, ``noise`` and ``meta`` are mappings (or None)."""
    for name in ("units", "mask", "noise", "meta"):
        value = getattr(ds, name)
        if value is not None and not isinstance(value, Mapping):
            raise DataError(
                f"{name}: expected a mapping field name -> value (e.g. {{'rho': array}}), "
                f"got {type(value).__name__}; pass a dict keyed by field name."
            )


def _validated_params(
    params_in: Any, param_names: Any, log_params_in: Any, copy: bool = True
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """``params`` [n, p] (finite, n > 0), one name per column, and the log-distributed names (values > 0)."""
    params = _as_float_array(params_in, "params", 2, copy=copy)
    n, p = params.shape
    if n == 0:
        raise DataError("dataset: empty (0 rows); pass at least one example.")
    names = _names(param_names, "param_names")
    if len(names) != p:
        raise DataError(
            f"param_names: {len(names)} names for {p} parameter columns in params; "
            "give exactly one name per column."
        )
    _check_finite(params, "params", names)
    log_params = _names(log_params_in, "log_params")
    for nm in log_params:
        if nm not in names:
            raise DataError(
                f"log_params: {nm!r} is not a parameter name; valid names are {list(names)}."
            )
        col = params[:, names.index(nm)]
        if (col <= 0).any():
            row = int(np.argmax(col <= 0))
            raise DataError(
                f"params[{nm!r}]: value {col[row]} at row {row} is <= 0 but {nm!r} is declared "
                "log-distributed (log_params); remove it from log_params or fix the value."
            )
        _check_log10_representable(
            col, np.ones(n, dtype=bool), f"params[{nm!r}]",
            fix=f"{nm!r} is declared log-distributed (log_params): fix the value or change its unit",
        )
    return params, names, log_params


def _validated_log10_mass(value: Any, n: int, copy: bool = True) -> np.ndarray:
    """``log10_mass`` [n], finite and in [0, 20] (a log10 mass in Msun)."""
    log10_mass = _as_float_array(value, "log10_mass", 1, copy=copy)
    if log10_mass.shape[0] != n:
        raise DataError(f"log10_mass: {log10_mass.shape[0]} rows but params has {n}; shapes must match.")
    _check_finite(log10_mass, "log10_mass")
    if (log10_mass > 20).any() or (log10_mass < 0).any():
        row = int(np.argmax((log10_mass > 20) | (log10_mass < 0)))
        raise DataError(
            f"log10_mass: value {log10_mass[row]} at row {row} is not a log10 mass in Msun; "
            "pass log10(M/Msun) (e.g. 13.5), not the linear mass."
        )
    return log10_mass


def _validated_radius(value: Any, copy: bool = True) -> np.ndarray:
    """``radius`` [n_r], at least 2 finite, positive, strictly increasing radii."""
    radius = _as_float_array(value, "radius", 1, copy=copy)
    n_r = radius.shape[0]
    if n_r < 2:
        raise DataError(f"radius: {n_r} radial bin(s) ({radius.tolist()}); profiles need at least 2 radii.")
    _check_finite(radius, "radius")
    if (radius <= 0).any():
        j = int(np.argmax(radius <= 0))
        raise DataError(f"radius: value {radius[j]} at column {j} is <= 0; radii must be positive.")
    steps = np.diff(radius)
    if (steps <= 0).any():
        j = int(np.argmax(steps <= 0))
        raise DataError(
            f"radius: not strictly increasing at column {j + 1} ({radius[j]} then {radius[j + 1]}); "
            "sort the radial bins (and the profile columns with them) in increasing order."
        )
    return radius


def _validated_profiles(value: Any, n: int, n_r: int, copy: bool = True) -> dict[str, np.ndarray]:
    """``profiles``: at least one uniquely named field, each a float array [n, n_r]."""
    if not isinstance(value, Mapping) or len(value) == 0:
        raise DataError("profiles: need a mapping of at least one field name -> [n, n_r] array.")
    _names(list(value), "profiles")
    profiles: dict[str, np.ndarray] = {}
    for name, values in value.items():
        arr = _as_float_array(values, f"profiles[{name!r}]", 2, copy=copy)
        if arr.shape != (n, n_r):
            raise DataError(
                f"profiles[{name!r}]: shape {arr.shape} but expected ({n}, {n_r}) "
                "(rows of params, columns of radius); fix the array or the radial grid."
            )
        profiles[name] = arr
    return profiles


def _validated_units(value: Mapping[str, Any], radius_unit: Any, profiles: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A unit string per field (``""`` when not given); ``radius_unit`` is a string."""
    fields = tuple(profiles)
    for key, unit in dict(value).items():
        if key not in profiles:
            raise DataError(
                f"units: {key!r} is not a profile field; fields are {list(fields)}: drop or rename the entry."
            )
        if not isinstance(unit, str):
            raise DataError(f"units[{key!r}]: {unit!r} is not a string; pass the unit as text, e.g. 'Msun/kpc^3'.")
    units = {f: str(dict(value).get(f, "")) for f in fields}
    if not isinstance(radius_unit, str):
        raise DataError(f"radius_unit: {radius_unit!r} is not a string; pass e.g. 'Mpc' or 'R200c'.")
    return units


def _validated_mask(value: Mapping[str, Any] | None, profiles: Mapping[str, np.ndarray],
                    copy: bool = True) -> dict[str, np.ndarray]:
    """Per field the usable entries: finite and > 0, narrowed by a user mask; every row keeps one."""
    fields = tuple(profiles)
    mask: dict[str, np.ndarray] = {}
    user_mask = dict(value) if value is not None else {}
    for key in user_mask:
        if key not in profiles:
            raise DataError(
                f"mask: {key!r} is not a profile field; fields are {list(fields)}: drop or rename the entry."
            )
    for name, arr in profiles.items():
        valid = np.isfinite(arr) & (arr > 0)
        if name in user_mask:
            valid = _checked_user_mask(name, user_mask[name], arr, valid, copy)
        _check_log10_representable(
            arr, valid, f"profiles[{name!r}]",
            fix="profiles are learnt in log10: change the unit of the field or mask the entry (mask False)",
        )
        empty_rows = np.flatnonzero(~valid.any(axis=1))
        if empty_rows.size:
            i = int(empty_rows[0])
            raise DataError(
                f"profiles[{name!r}]: row {i} has no valid entry (every value is non-finite, "
                f"<= 0 or masked; {empty_rows.size} such rows); drop these rows before building "
                "the dataset or fix their values."
            )
        mask[name] = valid
    return mask


def _check_field_kinds(meta: Any, fields: tuple[str, ...]) -> None:
    """``meta["field_kinds"]``, when given, maps fields of the dataset to kinds of
    :data:`~profemu.data.selfsimilar.DECLARED_KINDS`."""
    if not isinstance(meta, Mapping) or meta.get("field_kinds") is None:
        return
    kinds = meta["field_kinds"]
    if not isinstance(kinds, Mapping):
        raise DataError(f"meta.field_kinds: {kinds!r} is not a mapping; pass a dict field -> kind, e.g. "
                        "{'rho': 'gas_density'}.")
    for key, kind in kinds.items():
        if key not in fields:
            raise DataError(f"meta.field_kinds: {key!r} is not a profile field; fields are {list(fields)}: rename "
                            "or drop the entry.")
        if kind not in DECLARED_KINDS:
            raise DataError(f"meta.field_kinds.{key}: {kind!r} is not a kind; use one of {sorted(DECLARED_KINDS)}.")


def check_radius_columns(ds: ProfileDataset, fields: Sequence[str], rows: str = "rows") -> None:
    """Every radius column of each of ``fields`` has a valid entry in some row of ``ds``.

    Args:
        ds: The dataset (e.g. the training rows).
        fields: The fields to check (those an emulator learns).
        rows: How the message names the rows (``"training rows"``).

    Raises:
        DataError: a field with radius columns that no row fills: the network would predict
            there with nothing to learn from.
    """
    for name in fields:
        empty = np.flatnonzero(~ds.mask[name].any(axis=0))
        if empty.size:
            shown = ", ".join(f"{int(j)} (r = {ds.radius[j]:.4g})" for j in empty[:4])
            more = f" and {empty.size - 4} more" if empty.size > 4 else ""
            raise DataError(
                f"profiles[{name!r}]: radius column(s) {shown}{more} [{ds.radius_unit}] have no valid entry in any "
                f"of the {ds.n} {rows} (every value non-finite, <= 0 or masked), so nothing there can be learnt; "
                "drop those radii (the columns of every field and of radius) or leave the field out (data.fields)."
            )


def _report_masked_nonpositive(profiles: Mapping[str, np.ndarray]) -> None:
    """One warning per field with finite entries <= 0 (masked: profiles are learnt in log10)."""
    for name, arr in profiles.items():
        count = int(np.count_nonzero(np.isfinite(arr) & (arr <= 0)))
        if count:
            logger.warning(
                "profiles[%r]: %d finite entries <= 0 (%.2f%% of its %d entries) are masked: profiles are learnt "
                "in log10, so only positive values count and a signed field (e.g. a velocity) cannot be emulated "
                "this way; drop the field, or pass a positive quantity (e.g. its magnitude) as another field",
                name, count, 100.0 * count / arr.size, arr.size)


def _report_meta_and_params(meta: Mapping[str, Any], params: np.ndarray, names: tuple[str, ...],
                            log_params: tuple[str, ...]) -> None:
    """A warning for an unreadable ``meta["mass_definition"]``; one info line naming the positive
    parameters that span more than :data:`LOG_SPAN_HINT` decades but are not in ``log_params``."""
    problem = mass_definition_problem(meta) if isinstance(meta, Mapping) else None
    if problem is not None:
        logger.warning("%s", problem)
    wide = []
    for j, name in enumerate(names):
        col = params[:, j]
        if name in log_params or not (col > 0).all():
            continue
        logs = np.log10(col)
        lo, hi = float(logs.min()), float(logs.max())
        span = hi - lo
        # log-uniform draws put the median of log10 near the middle of their range; uniform draws
        # from 0 (whose smallest values also span many decades) put it within a few tenths of the top
        if span > LOG_SPAN_HINT and abs(float(np.median(logs)) - 0.5 * (lo + hi)) < 0.25 * span:
            wide.append(f"{name!r} ({col.min():.3g}..{col.max():.3g}, {span:.1f} decades)")
    if wide:
        logger.info("parameters %s span more than %g decades but are not in log_params: if they were sampled "
                    "log-uniformly, declare them in log_params (the network then sees their log10)",
                    ", ".join(wide), LOG_SPAN_HINT)


def _checked_user_mask(name: str, value: Any, arr: np.ndarray, valid: np.ndarray, copy: bool = True) -> np.ndarray:
    """The user's bool mask of field ``name`` (a copy unless ``copy`` is False), which may only remove
    entries from ``valid``."""
    n, n_r = arr.shape
    m = np.asarray(value)
    if m.dtype != bool or m.shape != (n, n_r):
        raise DataError(
            f"mask[{name!r}]: expected a bool array of shape ({n}, {n_r}), "
            f"got {m.dtype} {m.shape}; pass True where the entry is usable, e.g. "
            f"np.isfinite(profiles[{name!r}])."
        )
    if (m & ~valid).any():
        i, j = np.argwhere(m & ~valid)[0]
        raise DataError(
            f"mask[{name!r}]: row {i}, column {j} is marked valid but the value "
            f"{arr[i, j]} is not finite and > 0; it cannot be learnt in log10. "
            "Mark it False."
        )
    return m.copy() if copy else m


def _validated_pk_ratio(pk_value: Any, k_value: Any, n: int,
                        copy: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``pk_ratio`` [n, n_k] (finite) and its grid ``k`` [n_k] (positive, increasing): both or neither."""
    if pk_value is None:
        if k_value is not None:
            raise DataError("k: given without pk_ratio; pass both or neither.")
        return None, None
    pk_ratio = _as_float_array(pk_value, "pk_ratio", 2, copy=copy)
    if pk_ratio.shape[0] != n:
        raise DataError(f"pk_ratio: {pk_ratio.shape[0]} rows but params has {n}; shapes must match.")
    _check_finite(pk_ratio, "pk_ratio")
    if (pk_ratio <= 0).any():
        i, j = (int(v) for v in np.argwhere(pk_ratio <= 0)[0])
        raise DataError(f"pk_ratio: value {pk_ratio[i, j]} at row {i}, column {j} is <= 0; P_hydro/P_dmo is a "
                        "ratio of powers and must be > 0: fix or remove these rows.")
    if k_value is None:
        raise DataError("k: pk_ratio was given without its wavenumber grid k; pass k [h/Mpc].")
    k = _as_float_array(k_value, "k", 1, copy=copy)
    if k.shape[0] != pk_ratio.shape[1]:
        raise DataError(
            f"k: {k.shape[0]} wavenumbers but pk_ratio has {pk_ratio.shape[1]} columns; they must match."
        )
    _check_finite(k, "k")
    bad_k = np.flatnonzero((k <= 0) | np.r_[False, np.diff(k) <= 0])
    if bad_k.size:
        j = int(bad_k[0])
        raise DataError(
            f"k: must be positive and strictly increasing (problem at column {j}: value {k[j]}"
            + (f" after {k[j - 1]}" if j else "") + "); sort k and pk_ratio's columns."
        )
    return pk_ratio, k


def _validated_redshift(value: Any, n: int, copy: bool = True) -> np.ndarray | None:
    """``redshift`` [n], finite and >= 0 (or None)."""
    if value is None:
        return None
    redshift = _as_float_array(value, "redshift", 1, copy=copy)
    if redshift.shape[0] != n:
        raise DataError(f"redshift: {redshift.shape[0]} rows but params has {n}; shapes must match.")
    _check_finite(redshift, "redshift")
    bad = (redshift < 0) | (redshift > REDSHIFT_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"redshift: value {redshift[i]} at row {i} is outside [0, {REDSHIFT_MAX:g}]; redshifts of "
                        "halo profiles are >= 0 and at most 20: fix or remove these rows.")
    return redshift


def _check_meta_redshift(meta: Any) -> None:
    """``meta["redshift"]`` (the snapshot redshift of rows without a redshift array), when given,
    is a number in [0, REDSHIFT_MAX]: the self-similar scales and the training box read it."""
    if not isinstance(meta, Mapping) or meta.get("redshift") is None:
        return
    z = meta["redshift"]
    if isinstance(z, bool) or not isinstance(z, int | float | np.integer | np.floating):
        raise DataError(f"meta.redshift: {z!r} is not a number; give the snapshot redshift as a number in "
                        f"[0, {REDSHIFT_MAX:g}], or remove it.")
    if not (np.isfinite(z) and 0.0 <= float(z) <= REDSHIFT_MAX):
        raise DataError(f"meta.redshift: {float(z)!r} is outside [0, {REDSHIFT_MAX:g}]; give the snapshot redshift "
                        "(>= 0), or remove it.")


def _check_redshift_column(params: np.ndarray, names: tuple[str, ...], redshift: np.ndarray | None) -> None:
    """A parameter column holding the redshift (``z``; :func:`~profemu.data.selfsimilar.redshift_column`)
    lies in [0, REDSHIFT_MAX] and, when the rows also carry a redshift array, equals it."""
    j = redshift_column(names)
    if j is None:
        return
    z = params[:, j]
    bad = (z < 0) | (z > REDSHIFT_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"params[{names[j]!r}]: value {z[i]} at row {i} is outside [0, {REDSHIFT_MAX:g}]; the column "
                        "is read as the redshift, and redshifts of halo profiles are >= 0 and at most 20: fix the "
                        "rows or rename the column if it is not a redshift.")
    if redshift is not None:
        off = np.abs(z - redshift) > 1e-6 * (1.0 + np.abs(redshift))
        if off.any():
            i = int(np.argmax(off))
            raise DataError(f"redshift: {redshift[i]:.6g} at row {i}, but the parameter column {names[j]!r} (read as "
                            f"the redshift) says {z[i]:.6g}; keep one of the two (or rename the column if it is not "
                            "a redshift).")


#: Largest redshift a dataset may hold.
REDSHIFT_MAX = 20.0
#: Names the inputs and outputs of an emulator use; no parameter or field may take them.
_INPUT_NAMES = ("log10_mass", "redshift", "pk_ratio", "k", "groups")
_FIELD_RESERVED = ("radius", "params", "log10_mass", "redshift", "pk_ratio", "k", "groups", "mask", "noise",
                   "fields", "inputs", "input_columns", "radius_unit", "row", "field", "mean", "std")
_PK_COLUMN = re.compile(r"pk_ratio_\d+$")
_FIELD_SUFFIXES = ("_err", "_mean", "_std", "_mask", "_noise")


def _check_name_collisions(names: tuple[str, ...], fields: tuple[str, ...]) -> None:
    """Refuse parameter and field names that collide with input or output names (or with each other).

    A parameter may not be called like an input column (``log10_mass``, ``redshift``,
    ``pk_ratio_<i>``, ...); a field may not be called like an array or column of the files
    profemu writes (``radius``, ``<field>_err``, ``<field>_mean``, ...) or like a parameter.
    """
    for nm in names:
        if nm == "redshift":
            raise DataError("param_names: 'redshift' is the name of the emulator's redshift input; pass the "
                            "rows' redshifts as the dataset's redshift array (the redshift input), or name the "
                            "column 'z' (a parameter that self-similar scaling reads as the redshift).")
        if nm in _INPUT_NAMES or _PK_COLUMN.match(nm):
            raise DataError(f"param_names: {nm!r} is the name of an emulator input (log10_mass, redshift, "
                            "pk_ratio_<i>); rename the parameter (e.g. to 'param_" + nm + "').")
    for f in fields:
        if f in _FIELD_RESERVED or _PK_COLUMN.match(f):
            raise DataError(f"profiles: field name {f!r} is reserved for the inputs or outputs of profemu files "
                            f"({', '.join(_FIELD_RESERVED[:4])}, ...); rename the field.")
        if f in names:
            raise DataError(f"profiles: field name {f!r} is also a parameter name; rename one of them.")
        for suffix in _FIELD_SUFFIXES:
            base = f[: -len(suffix)]
            if f.endswith(suffix) and base in fields:
                raise DataError(f"profiles: field name {f!r} collides with the {suffix!r} column of field "
                                f"{base!r}; rename the field.")


def _validated_noise(
    value: Mapping[str, Any] | None, profiles: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray],
    copy: bool = True,
) -> dict[str, np.ndarray] | None:
    """Per field (a subset of the profile fields) the standard error [dex] [n, n_r]: finite
    (also in float32) and >= 0 at valid entries (or None)."""
    if value is None:
        return None
    fields = tuple(profiles)
    noise = {}
    for name, values in dict(value).items():
        if name not in profiles:
            raise DataError(
                f"noise: {name!r} is not a profile field; fields are {list(fields)}: drop or rename "
                "the entry."
            )
        arr = _as_float_array(values, f"noise[{name!r}]", 2, copy=copy)
        n, n_r = profiles[name].shape
        if arr.shape != (n, n_r):
            raise DataError(
                f"noise[{name!r}]: shape {arr.shape} but expected ({n}, {n_r}), the shape of "
                f"profiles[{name!r}]; pass one standard error per profile entry."
            )
        bad = mask[name] & ~(np.isfinite(arr) & (arr >= 0) & (arr <= _F32_MAX))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(
                f"noise[{name!r}]: row {i}, column {j} is {arr[i, j]} at a valid entry; the "
                "standard error [dex] must be finite (also in float32) and >= 0 (or mask the entry)."
            )
        noise[name] = arr
    return noise
