"""The one check of user inputs to an emulator: :func:`check_inputs`.

Everything that predicts from raw inputs (the Emulator's numpy path, the baselines,
the command line) validates them here, once, and gets plain 2-D float64 arrays back;
the transforms and the network then only compute. Errors are one line that names the
input, the offending value and the fix:

* shapes (per-example rows, broadcasting one row or one mass over many), a dict of
  parameters by name (unknown and missing names listed);
* finite and representable in float32 (``1e300`` overflows the network's float32);
* numbers only: complex values, strings, ragged lists are refused;
* log-sampled parameters > 0; ``log10_mass`` in a physical range, with a hint when it
  looks like a linear mass;
* physically possible cosmologies, parameters found by role (the aliases of
  :data:`profemu.data.selfsimilar.ALIASES`, plus ``sigma_8``): Ω_m > 0, Ω_b > 0, h > 0,
  σ_8 >= 0, Ω_b <= Ω_m; P(k) ratios in (0, :data:`PK_RATIO_MAX`]; redshift in
  [0, :data:`REDSHIFT_MAX`]; each message names the column and the row;
* ``pk_ratio`` iff the emulator uses P(k); ``redshift`` must be the training redshift
  when the emulator was trained at one redshift, or absent when it has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.data.selfsimilar import ALIASES
from profemu.errors import DataError

__all__ = [
    "LOG10_MASS_RANGE",
    "PK_RATIO_MAX",
    "REDSHIFT_MAX",
    "InputSpec",
    "Inputs",
    "check_inputs",
    "check_log10_mass",
    "parameter_roles",
    "redshift_input",
]

#: Physically possible log10(M / Msun) of a halo; outside it the input is a mistake.
LOG10_MASS_RANGE = (6.0, 17.0)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Largest P_hydro/P_dmo a P(k) suppression input may take (baryons suppress P(k) by tens of per cent).
PK_RATIO_MAX = 10.0
#: Largest redshift an input may take.
REDSHIFT_MAX = 20.0
#: Parameter roles checked for physical values: the aliases of the self-similar scales, and sigma_8.
_ROLES: dict[str, tuple[str, ...]] = {**ALIASES, "sigma_8": ("sigma_8", "sigma8", "s8", "sigma_8_0")}
#: Role -> (symbol, whether zero is allowed).
_ROLE_RULES = {"omega_m": ("Omega_m", False), "omega_b": ("Omega_b", False), "h": ("h", False),
               "sigma_8": ("sigma_8", True)}


@dataclass(frozen=True)
class InputSpec:
    """What an emulator reads.

    Attributes:
        param_names: Parameter columns, in order.
        log_params: Parameters that must be > 0 (log-sampled).
        n_k: Width of ``pk_ratio`` (0 = P(k) not used).
        uses_redshift: Redshift is an input of the model (it varied in training).
        training_redshift: The single training redshift when it did not vary (else None).
        log10_mass_box: (min, max) of the training log10 masses (for messages).
        redshift_column: Index of the parameter column read as the redshift (``z``), or None.
        column_redshift: The single value of that column when it did not vary in training.
    """

    param_names: tuple[str, ...]
    log_params: tuple[str, ...] = ()
    n_k: int = 0
    uses_redshift: bool = False
    training_redshift: float | None = None
    log10_mass_box: tuple[float, float] | None = None
    redshift_column: int | None = None
    column_redshift: float | None = None

    @classmethod
    def from_transforms(cls, t: Any) -> InputSpec:
        """The spec of fitted :class:`~profemu.data.transforms.Transforms`."""
        box = t.input_box()
        z = box.get("redshift")
        uses_z = "redshift" in t.input_stats
        mass = box.get("log10_mass")
        ss = getattr(t, "self_similar", None)
        if z is None and not uses_z and ss is not None and ss.redshift_value is not None:
            z = (ss.redshift_value, ss.redshift_value)  # one redshift, known only from meta["redshift"]
        j = t.redshift_column
        z_col = None if j is None else box.get(t.param_names[j])
        return cls(
            param_names=tuple(t.param_names),
            log_params=tuple(t.log_params),
            n_k=0 if t.k is None else len(t.k),
            uses_redshift=uses_z,
            training_redshift=None if (z is None or uses_z) else float(z[0]),
            log10_mass_box=None if mass is None else (float(mass[0]), float(mass[1])),
            redshift_column=j,
            column_redshift=None if z_col is None or float(z_col[1]) > float(z_col[0]) else float(z_col[0]),
        )


@dataclass(frozen=True)
class Inputs:
    """Validated raw inputs, ``n`` rows.

    Attributes:
        params: [n, p] linear parameter values.
        log10_mass: [n] log10(M / Msun).
        pk_ratio: [n, n_k] or None.
        redshift: [n] or None.
        single: The caller passed one example (results drop the row axis).
    """

    params: np.ndarray
    log10_mass: np.ndarray
    pk_ratio: np.ndarray | None
    redshift: np.ndarray | None
    single: bool

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.params.shape[0])


def _numbers(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 array; DataError for complex, text, objects or ragged lists."""
    try:
        arr = np.asarray(value)
    except ValueError:
        raise DataError(f"{name}: ragged input (rows of different lengths); pass a rectangular array.") from None
    if arr.dtype == object:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name}: ragged or non-numeric input; pass a rectangular array of numbers.") from None
    if np.iscomplexobj(arr):
        raise DataError(f"{name}: complex values are not allowed; pass real numbers.")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected numbers, got {arr.dtype.kind!r}-type values such as "
                        f"{arr.reshape(-1)[:1].tolist()}; pass numeric arrays.")
    return arr.astype(np.float64)


def _finite(arr: np.ndarray, name: str, columns: Sequence[str] | None = None) -> None:
    bad = ~np.isfinite(arr) | (np.abs(arr) > _FLOAT32_MAX)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {idx[0]}" + (f", column {columns[idx[1]]!r}" if columns is not None and len(idx) > 1 else
                                   f", column {idx[1]}" if len(idx) > 1 else "")
        raise DataError(
            f"{name}: {float(arr[idx]):.6g} at {where} is not a finite float32 number (|x| <= 3.4e38); fix the input."
        )


def _rows(arr: np.ndarray, n: int, name: str) -> np.ndarray:
    if arr.shape[0] == n:
        return arr
    if arr.shape[0] == 1:
        return np.repeat(arr, n, axis=0)
    raise DataError(f"{name}: {arr.shape[0]} rows for {n} examples; pass one row or {n}.")


def _mass_check(m: np.ndarray, spec: InputSpec) -> None:
    check_log10_mass(m, spec.log10_mass_box)


def check_log10_mass(m: Any, box: tuple[float, float] | None = None, name: str = "log10_mass") -> None:
    """Refuse log10 halo masses that are not finite or not in :data:`LOG10_MASS_RANGE`, with a
    hint for a linear mass (``1e13`` for ``13``) or a negative one; ``box``: the training range
    quoted in the message; ``name``: the field or option named in it."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if not np.isfinite(m).all():
        raise DataError(f"{name}: {float(m[~np.isfinite(m)][0])} is not a number; pass log10(M/Msun), e.g. 13.5.")
    lo, hi = LOG10_MASS_RANGE
    bad = (m < lo) | (m > hi)
    if not bad.any():
        return
    v = float(m[bad][0])
    box_text = "" if box is None else f" (training range {box[0]:.3g}..{box[1]:.3g})"
    if v > hi and 6 < math.log10(v) < 17:
        hint = f"; did you pass M instead of log10 M? log10({v:.4g}) = {math.log10(v):.3f}"
    elif v < 0:
        hint = "; a log10 mass in Msun is positive (did you pass log10 of M in units of 1e10 Msun or a sign error?)"
    else:
        hint = ""
    raise DataError(
        f"{name}: {v:.6g} is not a halo mass (log10(M/Msun) must lie in [{lo:g}, {hi:g}]){box_text}{hint}."
    )


def parameter_roles(names: Sequence[str]) -> dict[str, int]:
    """``{role: column}`` of the parameters found among ``names`` (case-insensitive aliases).

    Roles are ``omega_m``, ``omega_b``, ``h`` (:data:`profemu.data.selfsimilar.ALIASES`) and
    ``sigma_8``; a role whose parameter is absent is left out.
    """
    lower = [n.lower() for n in names]
    out: dict[str, int] = {}
    for role, aliases in _ROLES.items():
        for alias in aliases:
            if alias in lower:
                out[role] = lower.index(alias)
                break
    return out


def _first_bad(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _physical_check(p: np.ndarray, names: Sequence[str]) -> None:
    """Refuse impossible cosmologies (Ω_m, Ω_b, h <= 0, σ_8 < 0, Ω_b > Ω_m), naming the column and row."""
    roles = parameter_roles(names)
    for role, j in roles.items():
        symbol, zero_ok = _ROLE_RULES[role]
        col = p[:, j]
        bad = col < 0 if zero_ok else col <= 0
        if bad.any():
            i = _first_bad(bad)
            need = ">= 0" if zero_ok else "> 0"
            raise DataError(f"params[{names[j]!r}]: {col[i]:.6g} at row {i} is impossible ({symbol} must be {need}); "
                            "fix the input.")
    if "omega_m" in roles and "omega_b" in roles:
        om, ob = p[:, roles["omega_m"]], p[:, roles["omega_b"]]
        bad = ob > om
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"params[{names[roles['omega_b']]!r}]: {ob[i]:.6g} at row {i} exceeds "
                f"{names[roles['omega_m']]} = {om[i]:.6g} (baryons are part of the matter, Omega_b <= Omega_m); "
                "fix the input."
            )


def _pk_check(pk: np.ndarray) -> None:
    bad = (pk <= 0) | (pk > PK_RATIO_MAX)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"pk_ratio: {pk[i, j]:.6g} at row {i}, k bin {j} (column pk_ratio_{j}) is impossible; "
                        f"P_hydro/P_dmo must lie in (0, {PK_RATIO_MAX:g}]. Fix the input.")


def _redshift_check(z: np.ndarray, what: str = "redshift", role: str = "") -> None:
    """``z`` in [0, REDSHIFT_MAX]; ``what`` names it in the message, ``role`` says why a column is one."""
    bad = (z < 0) | (z > REDSHIFT_MAX)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{what}: {z[i]:.6g} at row {i} is outside [0, {REDSHIFT_MAX:g}]; {role}redshifts of halo "
                        "profiles are >= 0 and at most 20. Fix the input.")


def _differs(z: Any, reference: Any) -> np.ndarray:
    """Where redshift ``z`` is not ``reference`` (relative tolerance 1e-6 of 1 + z)."""
    return np.abs(z - reference) > 1e-6 * (1.0 + np.abs(reference))


def redshift_input(spec: InputSpec, redshift: Any, n: int) -> np.ndarray | None:
    """``redshift`` [n] checked against ``spec`` (None when the model does not take it)."""
    z = None
    if redshift is not None:
        z = np.atleast_1d(_numbers(redshift, "redshift"))
        if z.ndim != 1:
            raise DataError(f"redshift: expected a scalar or a 1-D array, got shape {z.shape}.")
        z = _rows(z[:, None], n, "redshift")[:, 0]
        _finite(z, "redshift")
        _redshift_check(z)
        if not spec.uses_redshift:
            if spec.training_redshift is None and spec.redshift_column is not None:
                raise DataError(f"redshift: this emulator reads the redshift from its parameter column "
                                f"{spec.param_names[spec.redshift_column]!r}; give it there and drop the redshift argument (or column).")
            if spec.training_redshift is None:
                raise DataError("redshift: this emulator was trained without a redshift; drop the redshift argument "
                                "(or column).")
            off = _differs(z, spec.training_redshift)
            if off.any():
                raise DataError(
                    f"redshift: {float(z[off][0]):.6g}, but this emulator was trained at the single redshift "
                    f"{spec.training_redshift:.6g} and cannot predict at another one; drop the redshift argument "
                    "(or column)."
                )
            z = None
    elif spec.uses_redshift:
        raise DataError("redshift: this emulator takes the redshift as an input; pass redshift [n].")
    return z


def check_inputs(
    spec: InputSpec,
    params: Any,
    log10_mass: Any,
    pk_ratio: Any = None,
    redshift: Any = None,
) -> Inputs:
    """Validate raw inputs against ``spec`` and broadcast them to ``n`` rows.

    Args:
        spec: What the emulator reads.
        params: [n, p] or [p] linear values, or a mapping name -> value(s).
        log10_mass: [n] or scalar log10(M / Msun).
        pk_ratio: [n, n_k] or [n_k], iff ``spec.n_k > 0``.
        redshift: [n] or scalar; see the module docstring.

    Returns:
        The :class:`Inputs`.

    Raises:
        DataError: with the input, the value and the fix.
    """
    names = spec.param_names
    if isinstance(params, Mapping):
        unknown = [k for k in params if k not in names]
        missing = [k for k in names if k not in params]
        if unknown or missing:
            raise DataError(
                f"params: unknown {unknown} and missing {missing} parameter names; the emulator expects "
                f"exactly {list(names)}."
            )
        raw = [_numbers(params[k], f"params[{k!r}]") for k in names]
        scalars = all(c.ndim == 0 for c in raw)  # one example by name, like one row [p]
        cols = [np.atleast_1d(c) for c in raw]
        if len({c.shape for c in cols}) != 1 or cols[0].ndim != 1:
            raise DataError("params: every parameter needs the same number of values (scalars or 1-D).")
        params = np.concatenate(cols) if scalars else np.column_stack(cols)
    p = _numbers(params, "params")
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise DataError(
            f"params: expected {len(names)} parameters per example ({', '.join(names)}), got shape "
            f"{np.shape(params)}; pass an array [n, {len(names)}] or a dict by name."
        )
    m = np.atleast_1d(_numbers(log10_mass, "log10_mass"))
    if m.ndim != 1:
        raise DataError(f"log10_mass: expected a scalar or a 1-D array, got shape {m.shape}.")
    if p.shape[0] != m.shape[0] and 1 not in (p.shape[0], m.shape[0]):
        raise DataError(f"log10_mass: {m.shape[0]} values for {p.shape[0]} rows of params; pass one value per row "
                        "(or a single value, or a single row of params, to broadcast).")
    n = max(p.shape[0], m.shape[0])
    if p.shape[0] == 1 and m.shape[0] > 1:
        single = False
    p = _rows(p, n, "params")
    m = _rows(m[:, None], n, "log10_mass")[:, 0]
    _finite(m, "log10_mass")  # the mass first: a NaN mass is a mass error, whatever follows
    _finite(p, "params", names)
    _mass_check(m, spec)
    _physical_check(p, names)
    log_cols = [j for j, nm in enumerate(names) if nm in spec.log_params]
    if log_cols:
        sub = p[:, log_cols]
        if (sub <= 0).any():
            j = log_cols[int(np.flatnonzero((sub <= 0).any(axis=0))[0])]
            raise DataError(
                f"params[{names[j]!r}]: {p[:, j].min():.6g} <= 0, but the parameter is log-sampled and must be "
                "> 0; pass its linear value, not its log10."
            )
    pk = None
    if spec.n_k:
        if pk_ratio is None:
            raise DataError(f"pk_ratio: this emulator needs the P(k) suppression on {spec.n_k} k bins; pass pk_ratio.")
        pk = np.atleast_2d(_numbers(pk_ratio, "pk_ratio"))
        if pk.ndim != 2 or pk.shape[1] != spec.n_k:
            raise DataError(f"pk_ratio: expected shape [n, {spec.n_k}], got {np.shape(pk_ratio)}.")
        pk = _rows(pk, n, "pk_ratio")
        _finite(pk, "pk_ratio")
        _pk_check(pk)
    elif pk_ratio is not None:
        raise DataError("pk_ratio: this emulator was trained without P(k); do not pass pk_ratio.")
    z = redshift_input(spec, redshift, n)
    _redshift_column_check(spec, p, z)
    return Inputs(p, m, pk, z, single)


def _redshift_column_check(spec: InputSpec, p: np.ndarray, z: np.ndarray | None) -> None:
    """The parameter column read as the redshift: in [0, REDSHIFT_MAX], at its training value when it
    was constant, and equal to the redshift input when the emulator takes both."""
    if spec.redshift_column is None:
        return
    j, name = spec.redshift_column, spec.param_names[spec.redshift_column]
    col = p[:, j]
    _redshift_check(col, f"params[{name!r}]", "the column is the redshift, and ")
    if spec.column_redshift is not None:
        off = _differs(col, spec.column_redshift)
        if off.any():
            i = _first_bad(off)
            raise DataError(f"params[{name!r}]: {col[i]:.6g} at row {i}, but this emulator was trained at the single "
                            f"redshift {spec.column_redshift:.6g} and cannot predict at another one; pass "
                            f"{spec.column_redshift:.6g}.")
    if z is not None:
        off = _differs(col, z)
        if off.any():
            i = _first_bad(off)
            raise DataError(f"redshift: {z[i]:.6g} at row {i}, but the parameter column {name!r} (the redshift) says "
                            f"{col[i]:.6g}; pass the same redshift in both.")
