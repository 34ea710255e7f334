"""The design space of an emulator: its free parameters, their training box in sampling space
(log10 for log-sampled parameters), candidate points and the inputs besides the parameters.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_LENGTH_SCALE", "DEFAULT_NOISE", "DesignSpace", "candidate_points", "design_space"]

DEFAULT_NOISE = 0.05
"""Default noise term of the greedy conditioning, as a fraction of the mean candidate score."""
DEFAULT_LENGTH_SCALE = 0.35
"""Default reach of one simulation's information, as a fraction of the RMS distance between
two random points of the box (``sqrt(d / 6)`` in unit-box coordinates of ``d`` free
parameters). The typical spacing ``N^(-1/d)`` of a suite of N = 100-1000 simulations in
d = 6-35 parameters is 0.3-0.46 of that distance."""


# ---------------------------------------------------------------------- design space
@dataclass(frozen=True)
class DesignSpace:
    """The emulator's training box in the parameters' sampling space.

    Attributes:
        names: Parameter names, in the emulator's column order.
        lo: [p] lower bounds, linear user units.
        hi: [p] upper bounds, linear user units.
        is_log: [p] bool, True for parameters sampled uniformly in log10.
    """

    names: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    is_log: np.ndarray

    def to_theta(self, values: np.ndarray) -> np.ndarray:
        """Linear values [..., p] -> sampling space (log10 for log parameters)."""
        x = np.asarray(values, dtype=np.float64)
        return np.where(self.is_log, np.log10(np.where(self.is_log, x, 1.0)), x)

    def from_theta(self, theta: np.ndarray) -> np.ndarray:
        """Sampling space [..., p] -> linear values."""
        t = np.asarray(theta, dtype=np.float64)
        return np.where(self.is_log, 10.0 ** np.where(self.is_log, t, 0.0), t)

    @property
    def theta_lo(self) -> np.ndarray:
        """[p] lower bounds in sampling space."""
        return self.to_theta(self.lo)

    @property
    def theta_hi(self) -> np.ndarray:
        """[p] upper bounds in sampling space."""
        return self.to_theta(self.hi)

    @property
    def width(self) -> np.ndarray:
        """[p] widths of the box in sampling space (dex for log parameters)."""
        return self.theta_hi - self.theta_lo


def design_space(emulator: Any) -> DesignSpace:
    """The :class:`DesignSpace` of an emulator (its ``training_box`` and ``log_params``)."""
    box = emulator.training_box
    names = tuple(emulator.param_names)
    lo = np.array([float(box[n][0]) for n in names], dtype=np.float64)
    hi = np.array([float(box[n][1]) for n in names], dtype=np.float64)
    is_log = np.array([n in set(emulator.log_params) for n in names], dtype=bool)
    return DesignSpace(names, lo, hi, is_log)


def _check_fix(space: DesignSpace, fix: Mapping[str, float] | None) -> dict[str, float]:
    """Validated ``{name: linear value}``; every value inside the training box."""
    if not fix:
        return {}
    if not isinstance(fix, Mapping):
        raise ConfigError(f"fix: expected a mapping name -> value, got {type(fix).__name__}.")
    out: dict[str, float] = {}
    for name, value in fix.items():
        if name not in space.names:
            raise ConfigError(
                f"fix: {name!r} is not a parameter of the emulator; its parameters are {list(space.names)}."
            )
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"fix: {name}={value!r} is not a number; pass a value in the parameter's units.") from None
        j = space.names.index(name)
        tol = 1e-9 * (1.0 + abs(space.hi[j] - space.lo[j]))
        if not math.isfinite(v) or not space.lo[j] - tol <= v <= space.hi[j] + tol:
            raise ConfigError(
                f"fix: {name}={value!r} is outside the training box [{space.lo[j]:.6g}, {space.hi[j]:.6g}]; "
                "the emulator cannot judge simulations there. Pass a value inside the box."
            )
        out[name] = v
    if len(out) == len(space.names):
        raise ConfigError("fix: every parameter is fixed, so there is nothing to choose; leave at least one free.")
    return out


def candidate_points(
    emulator_or_space: Any,
    n: int,
    *,
    fix: Mapping[str, float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A scrambled Sobol design of ``n`` points in the training box, in linear user units.

    The free parameters are sampled uniformly in their sampling space (log10 for
    log-sampled parameters); fixed ones take their value in every row.

    Args:
        emulator_or_space: An Emulator or a :class:`DesignSpace`.
        n: Number of points (>= 1).
        fix: ``{name: value}`` of parameters to pin (linear units, inside the box).
        seed: Seed of the scrambling.

    Returns:
        [n, p] parameter values, columns in the emulator's ``param_names`` order.
    """
    from scipy.stats import qmc

    space = emulator_or_space if isinstance(emulator_or_space, DesignSpace) else design_space(emulator_or_space)
    n = _positive_int("candidates", n)
    fixed = _check_fix(space, fix)
    free = [j for j, nm in enumerate(space.names) if nm not in fixed]
    theta = np.empty((n, len(space.names)))
    for nm, v in fixed.items():
        j = space.names.index(nm)
        theta[:, j] = np.log10(v) if space.is_log[j] else v
    sampler = qmc.Sobol(d=len(free), scramble=True, rng=np.random.default_rng(seed))
    with warnings.catch_warnings():  # balance properties need a power of 2; any n is fine here
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol.*")
        unit = sampler.random(n)
    lo, width = space.theta_lo[free], space.width[free]
    theta[:, free] = lo + unit * width
    x = space.from_theta(theta)
    # keep the exact box edges and fixed values (no round-off outside the box)
    x = np.clip(x, space.lo, space.hi)
    for nm, v in fixed.items():
        x[:, space.names.index(nm)] = v
    return x


# ---------------------------------------------------------------------- helpers
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}.")
    return int(value)


def _variance_scale(emulator: Any) -> float:
    """The calibrated factor of the emulator's predictive variance (1 if it has none)."""
    return float(getattr(emulator, "variance_scale", 1.0))


def _select_outputs(
    emulator: Any, fields: Sequence[str] | str | None, radii: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the selected fields and radii."""
    names = tuple(emulator.field_names)
    if fields is None or (not isinstance(fields, str) and len(fields) == 0):
        f_idx = np.arange(len(names))
    else:
        wanted = [fields] if isinstance(fields, str) else list(fields)
        bad = [f for f in wanted if f not in names]
        if bad:
            raise ConfigError(f"fields: {bad} are not fields of the emulator; choose from {list(names)}.")
        if len(set(wanted)) != len(wanted):
            raise ConfigError(f"fields: duplicate entries in {wanted}; list each field once.")
        f_idx = np.array([names.index(f) for f in wanted])
    radius = np.asarray(emulator.radius, dtype=np.float64)
    if radii is None:
        r_idx = np.arange(radius.size)
    else:
        try:
            lo, hi = (float(v) for v in radii)
        except (TypeError, ValueError):
            raise ConfigError(f"radii: expected (lo, hi) in {emulator.radius_unit}, got {radii!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"radii: expected lo < hi, both finite, got ({lo}, {hi}).")
        r_idx = np.flatnonzero((radius >= lo * (1 - 1e-9)) & (radius <= hi * (1 + 1e-9)))
        if r_idx.size == 0:
            raise ConfigError(
                f"radii: no radius of the emulator lies in [{lo:.4g}, {hi:.4g}] {emulator.radius_unit}; "
                f"its radii run from {radius[0]:.4g} to {radius[-1]:.4g} {emulator.radius_unit}."
            )
    return f_idx, r_idx


def _mass_grid(emulator: Any, log10_mass: Any, mass_points: int) -> np.ndarray:
    """The halo masses the score averages over: midpoints of equal slices of the training range."""
    if log10_mass is not None:
        m = np.atleast_1d(np.asarray(log10_mass, dtype=np.float64))
        if m.ndim != 1 or m.size == 0 or not np.isfinite(m).all():
            raise ConfigError(f"log10_mass: expected a non-empty 1-D list of finite values, got {log10_mass!r}.")
        return m
    k = _positive_int("mass_points", mass_points)
    lo, hi = (float(v) for v in emulator.training_box["log10_mass"])
    return lo + (np.arange(k) + 0.5) * (hi - lo) / k


def _extra_inputs(emulator: Any, n_points: int | None, pk_ratio: Any, redshift: Any) -> tuple[Any, Any]:
    """P(k) suppression rows and redshift for the candidates (neither is a design variable)."""
    box = emulator.training_box
    k = getattr(emulator.transforms, "k", None)
    pk = None
    if k is not None:
        if pk_ratio is None:
            from profemu.emulator.tables import describe_values, fiducial_pk_ratio

            pk_ratio = fiducial_pk_ratio(emulator)
            if pk_ratio is None:
                raise ConfigError(
                    f"pk_ratio: this emulator takes P(k) suppression on {len(k)} k bins, which a new "
                    "simulation only yields once it has run; pass the pk_ratio [n_k] to assume for "
                    "every candidate (e.g. the suite's fiducial suppression)."
                )
            logger.info("suggest: assuming the centre of the training set's P(k) suppression, P_hydro/P_dmo = %s "
                        "on the k bins, for every candidate (pass pk_ratio, on the command line --pk-ratio "
                        "FILE, to choose another)", describe_values(pk_ratio))
        pk = np.asarray(pk_ratio, dtype=np.float64)
        if pk.ndim == 1:
            pk = pk[None, :]
        rows_ok = pk.shape[0] == 1 or (n_points is not None and pk.shape[0] == n_points)
        if pk.ndim != 2 or pk.shape[1] != len(k) or not rows_ok or not np.isfinite(pk).all():
            raise ConfigError(
                f"pk_ratio: expected {len(k)} finite values (or one row per pool point), got shape {pk.shape}."
            )
    elif pk_ratio is not None:
        raise ConfigError("pk_ratio: this emulator was trained without P(k); do not pass pk_ratio.")
    z = None
    if redshift is not None:
        z = float(redshift)
        if not math.isfinite(z) or z < 0:
            raise ConfigError(f"redshift: expected a finite value >= 0, got {redshift!r}.")
        if "redshift" in box:
            zlo, zhi = (float(v) for v in box["redshift"])
            if zlo < zhi and not zlo - 1e-9 <= z <= zhi + 1e-9:
                logger.warning("suggest: redshift %g is outside the training redshifts [%.4g, %.4g]: the scores "
                               "there are extrapolations of the emulator's variance", z, zlo, zhi)
    elif "redshift" in box:
        zlo, zhi = (float(v) for v in box["redshift"])
        if zlo != zhi:
            raise ConfigError(
                f"redshift: this emulator was trained on redshifts {zlo:.4g}..{zhi:.4g}; pass the "
                "redshift at which the new simulations will be used (redshift=..., --redshift)."
            )
        z = zlo
    return pk, z


def _pool_array(emulator: Any, pool: Any) -> np.ndarray:
    """A pool of candidate points as [N, p] linear values (array or dict by name)."""
    names = tuple(emulator.param_names)
    if isinstance(pool, Mapping):
        unknown = [k for k in pool if k not in names]
        missing = [k for k in names if k not in pool]
        if unknown or missing:
            raise DataError(
                f"pool: unknown {unknown} and missing {missing} parameter names; the emulator "
                f"expects exactly {list(names)}."
            )
        pool = np.column_stack([np.atleast_1d(np.asarray(pool[k], dtype=np.float64)) for k in names])
    try:
        arr = np.array(pool, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("pool: could not be converted to a float array [N, p].") from None
    if arr.ndim != 2 or arr.shape[1] != len(names) or arr.shape[0] == 0:
        raise DataError(
            f"pool: expected an array [N, {len(names)}] ({', '.join(names)}) with N >= 1, got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        i, j = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"pool: non-finite value at row {i}, column {j} ({names[j]}); points must be finite.")
    return arr
