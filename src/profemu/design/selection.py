"""Where to run the next simulations: batch selection from the ensemble's epistemic variance.

A deep ensemble knows where it is unsure: its members disagree. :func:`suggest` turns
that disagreement into a batch of parameter points at which new simulations are
expected to help the emulator most.

Score of a candidate parameter point ``x`` (the emulator's inputs besides the
parameters are averaged over, since they are not design variables of a simulation):

* the member means of log10 of the profiles are predicted on a grid of ``k`` halo
  masses (midpoints of ``k`` equal slices of the training range of ``log10_mass``), for
  the selected fields and radii: ``D = k * F_sel * R_sel`` outputs;
* ``u[m, d] = mean_m[d] - mean over members`` (``m = 1..M``) is member ``m``'s deviation;
* the **score** is the epistemic variance averaged over the ``D`` outputs,
  ``s(x) = v * sum_{m,d} u[m, d]^2 / (M D)`` [dex²], where ``v`` is the emulator's
  calibrated variance scale, so ``s`` is the epistemic part of
  :meth:`~profemu.emulator.Emulator.predict`'s variance averaged over the fields, the
  (log-spaced) radii and the mass range.

Batch (diversity): the ensemble also gives the epistemic covariance between two
candidates, ``K_ens(a, b) = v * sum_{m,d} u_a[m, d] u_b[m, d] / (M D)`` (so ``K_ens(x, x)
= s(x)``), a kernel whose feature vector is the flattened member deviations. Member
deviations are smooth functions of the parameters, correlated across the whole box, so
this kernel alone lets a few points "explain" a large region (with ``M`` members it has
little more than ``M - 1`` independent directions per output pattern). It is therefore
multiplied by a local squared-exponential kernel ``exp(-|x_a - x_b|^2 / (2 l^2))`` in the
unit box of the free parameters' sampling space (``length_scale``: ``l`` as a fraction of
the RMS distance between two random points of the box): a new simulation informs the
emulator near itself. The product is still a covariance (Schur product theorem), and
``K(x, x) = s(x)``.

The batch is chosen greedily: take the candidate of highest score, condition the
Gaussian with covariance ``K`` on a noisy observation there (noise variance ``noise``
times the mean candidate score), take the candidate of highest conditional variance,
and so on: the greedy maximiser of ``det(K_S + sigma^2 I)`` over batches ``S`` (a
determinantal, "MaxDet" selection). Candidates near an already chosen point whose member
deviations resemble its own lose their score, so the batch spreads out. Each step costs
one product of the ``[N, r]`` feature matrix with a vector plus ``O(N d)`` for the local
kernel (an incremental pivoted Cholesky).

Memory stays bounded for 10^5-10^6 candidates: predictions are made in chunks, and the
``D`` outputs are compressed onto the principal directions of the member deviations of a
pilot sample (keeping all but ``rank_tol`` of their energy); the energy a candidate has
outside those directions is kept on the kernel's diagonal, so scores stay exact.

Candidates are a scrambled Sobol sequence (seeded) in the emulator's training box in the
parameters' sampling space (log10 for log-sampled parameters), with ``fix`` pinning some
parameters; or, with ``pool``, a given set of points (e.g. simulations already run, for a
retrospective study). Points are returned in the user's linear units.

Files: :func:`write_suggestion_csv` writes one column per parameter plus the scores;
:func:`write_like_table` writes the layout of a CAMELS ``CosmoAstroSeed_*.txt`` parameter
table (name, parameters in the table's order, seed), ready for a simulation pipeline.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import atomic_write_text
from profemu.errors import ConfigError, DataError, FormatError

__all__ = [
    "DesignSpace",
    "DesignTable",
    "Suggestion",
    "candidate_points",
    "check_new_file",
    "design_space",
    "greedy_batch",
    "like_columns",
    "load_emulator",
    "read_design_table",
    "suggest",
    "suggestion_figure",
    "write_like_table",
    "write_suggestion_csv",
]

logger = logging.getLogger("profemu.design")

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


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class Suggestion:
    """Parameter points where new simulations are expected to help the emulator most.

    Attributes:
        points: ``{name: [n] values}`` in linear user units, in selection order (first =
            chosen first), names in the emulator's column order.
        score: [n] epistemic variance at each point [dex²], averaged over the selected
            fields, radii and mass grid (before conditioning on the other points).
        gain: [n] conditional score when the point was chosen [dex²]: its epistemic
            variance given (noisy) simulations at the points chosen before it.
        index: [n] rows of ``pool`` chosen (None without a pool).
        param_names: Parameter names (column order).
        log_params: Parameters sampled in log10.
        fixed: ``{name: value}`` pinned parameters.
        fields: Fields scored.
        radius: Radii scored [``radius_unit``].
        radius_unit: Unit of ``radius``.
        log10_mass: The mass grid the score averages over [log10 Msun].
        n_candidates: Number of candidates scored.
        candidate_score: Summary of the candidates' scores (``mean``, ``median``,
            ``p95``, ``max``) [dex²].
        noise: Absolute noise variance of the greedy conditioning [dex²].
        length_scale: Length of the local kernel in unit-box coordinates of the free
            parameters' sampling space (None: not used).
        rank: Width of the compressed feature vector per candidate.
        seconds: Wall time of the call [s].
    """

    points: dict[str, np.ndarray]
    score: np.ndarray
    gain: np.ndarray
    index: np.ndarray | None
    param_names: tuple[str, ...]
    log_params: tuple[str, ...]
    fixed: dict[str, float]
    fields: tuple[str, ...]
    radius: np.ndarray
    radius_unit: str
    log10_mass: np.ndarray
    n_candidates: int
    candidate_score: dict[str, float] = field(default_factory=dict)
    noise: float = 0.0
    length_scale: float | None = None
    rank: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @property
    def params(self) -> np.ndarray:
        """[n, p] the points as an array, columns in ``param_names`` order."""
        return np.column_stack([self.points[nm] for nm in self.param_names])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (points as lists)."""
        return {
            "points": {k: v.tolist() for k, v in self.points.items()},
            "score": self.score.tolist(),
            "gain": self.gain.tolist(),
            "index": None if self.index is None else self.index.tolist(),
            "fixed": dict(self.fixed),
            "fields": list(self.fields),
            "radius": self.radius.tolist(),
            "radius_unit": self.radius_unit,
            "log10_mass": self.log10_mass.tolist(),
            "n_candidates": self.n_candidates,
            "candidate_score": dict(self.candidate_score),
            "noise": self.noise,
            "length_scale": self.length_scale,
            "rank": self.rank,
            "seconds": self.seconds,
        }


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
            raise ConfigError(
                f"pk_ratio: this emulator takes P(k) suppression on {len(k)} k bins, which a new "
                "simulation only yields once it has run; pass the pk_ratio [n_k] to assume for "
                "every candidate (e.g. the suite's fiducial suppression)."
            )
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
    elif "redshift" in box:
        zlo, zhi = (float(v) for v in box["redshift"])
        if zlo != zhi:
            raise ConfigError(
                f"redshift: this emulator was trained on redshifts {zlo:.4g}..{zhi:.4g}; pass the "
                "redshift at which the new simulations will be used."
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


class _Features:
    """Chunked member deviations of candidates: exact scores and compressed kernel features."""

    def __init__(
        self,
        emulator: Any,
        f_idx: np.ndarray,
        r_idx: np.ndarray,
        masses: np.ndarray,
        pk: np.ndarray | None,
        redshift: float | None,
        chunk_size: int,
    ) -> None:
        self.emulator = emulator
        self.f_idx, self.r_idx, self.masses = f_idx, r_idx, masses
        self.pk, self.redshift = pk, redshift
        self.rows_per_chunk = max(1, int(chunk_size) // len(masses))
        self.members = int(emulator.members)
        self.outputs = len(masses) * len(f_idx) * len(r_idx)
        self.weight = _variance_scale(emulator) / (self.members * self.outputs)

    def deviations(self, params: np.ndarray, pk: np.ndarray | None) -> np.ndarray:
        """Member deviations [c, M, D] of log10 profiles, D ordered (mass, field, radius)."""
        c, k = params.shape[0], self.masses.size
        rows = np.repeat(params, k, axis=0)
        mass = np.tile(self.masses, c)
        pk_rows = None if pk is None else np.repeat(pk if pk.shape[0] == c else np.repeat(pk, c, 0), k, axis=0)
        z = None if self.redshift is None else np.full(c * k, self.redshift)
        means, _ = self.emulator.predict_members(rows, mass, pk_rows, z, on_extrapolation="ignore")
        m = means.shape[0]
        sel = means[:, :, self.f_idx][..., self.r_idx].reshape(m, c, -1)
        dev = sel - sel.mean(axis=0, keepdims=True)
        return np.transpose(dev, (1, 0, 2))

    def basis(self, params: np.ndarray, pk: np.ndarray | None, rank_tol: float) -> np.ndarray:
        """Orthonormal [D, r] principal directions of the member deviations of ``params``."""
        dev = self.deviations(params, pk)
        flat = dev.reshape(-1, dev.shape[-1])
        gram = flat.T @ flat
        evals, evecs = np.linalg.eigh(gram)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
        total = float(evals.sum())
        if total <= 0:
            return evecs[:, :1]
        kept = np.cumsum(evals) / total
        r = int(np.searchsorted(kept, 1.0 - rank_tol) + 1)
        return evecs[:, : min(r, evecs.shape[1])]

    def compute(
        self, params: np.ndarray, basis: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score [N] float64, features [N, M r] float32) of every candidate."""
        n = params.shape[0]
        r = basis.shape[1]
        score = np.empty(n)
        feats = np.empty((n, self.members * r), dtype=np.float32)
        scale = math.sqrt(self.weight)
        step = self.rows_per_chunk
        n_chunks = -(-n // step)
        report_every = max(1, n_chunks // 10)
        t0 = time.perf_counter()
        for i, start in enumerate(range(0, n, step)):
            stop = min(n, start + step)
            pk = None if self.pk is None else (self.pk if self.pk.shape[0] == 1 else self.pk[start:stop])
            dev = self.deviations(params[start:stop], pk)
            score[start:stop] = self.weight * np.einsum("cmd,cmd->c", dev, dev)
            feats[start:stop] = (scale * (dev @ basis)).reshape(stop - start, -1)
            if (i + 1) % report_every == 0 or stop == n:
                logger.info("scored %d/%d candidates (%.1f s)", stop, n, time.perf_counter() - t0)
        return score, feats


def greedy_batch(
    features: np.ndarray,
    score: np.ndarray,
    n: int,
    *,
    noise: float,
    coords: np.ndarray | None = None,
    length_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy batch of maximal conditional variance under the kernel ``features @ features.T``.

    The kernel is ``K = F F^T + diag(score - |F_c|^2)`` (the diagonal term keeps the
    exact scores when the features are a compression), i.e. ``K(c, c) = score[c]``.
    Step ``j`` takes the candidate ``a`` of largest posterior variance given noisy
    observations (noise variance ``noise``) at the ``j`` candidates taken before, then
    updates every posterior variance by an incremental (pivoted) Cholesky step: the
    greedy maximiser of ``det(K_S + noise I)``.

    With ``coords`` and ``length_scale`` the kernel is multiplied by the squared-exponential
    ``exp(-|x_a - x_b|^2 / (2 length_scale^2))`` (a product of positive semi-definite
    kernels, so still one): a simulation informs the emulator near itself, not across the
    whole box as the smooth member deviations alone would suggest.

    Args:
        features: [N, r] kernel features.
        score: [N] prior variances ``K(c, c)`` (>= ``|features[c]|^2``).
        n: Batch size (<= N).
        noise: Observation-noise variance (> 0), same units as ``score``.
        coords: Optional [N, d] coordinates of the candidates for the local kernel.
        length_scale: Length scale of the local kernel, in the units of ``coords``
            (None: no local kernel).

    Returns:
        ``(index [n], gain [n])``: chosen rows in order and their posterior variance
        when chosen.
    """
    feats = np.asarray(features)
    prior = np.asarray(score, dtype=np.float64)
    big_n = prior.shape[0]
    n = _positive_int("n", n)
    if n > big_n:
        raise ConfigError(f"n: {n} points requested from only {big_n} candidates; lower n or add candidates.")
    if not (math.isfinite(noise) and noise > 0):
        raise ConfigError(f"noise: expected a positive finite variance, got {noise!r}.")
    local = length_scale is not None
    if local:
        if coords is None or np.shape(coords)[0] != big_n:
            raise ConfigError("coords: the local kernel needs one coordinate row per candidate.")
        if not (math.isfinite(length_scale) and length_scale > 0):
            raise ConfigError(f"length_scale: expected a positive value, got {length_scale!r}.")
        xy = np.asarray(coords, dtype=np.float64)
    resid = prior.copy()
    chol = np.zeros((n, big_n), dtype=np.float32)  # row j: the j-th Cholesky column (contiguous)
    chosen = np.empty(n, dtype=np.int64)
    gain = np.empty(n)
    taken = np.zeros(big_n, dtype=bool)
    t0 = time.perf_counter()
    for j in range(n):
        masked = np.where(taken, -np.inf, resid)
        a = int(np.argmax(masked))
        chosen[j], gain[j] = a, resid[a]
        taken[a] = True
        cross = feats @ feats[a].astype(feats.dtype)
        col = cross.astype(np.float64)
        if local:
            col *= np.exp(-0.5 * np.sum((xy - xy[a]) ** 2, axis=1) / length_scale**2)
        if j:
            col -= chol[:j, a] @ chol[:j]
        col /= math.sqrt(max(resid[a], 0.0) + noise)
        chol[j] = col
        resid -= col**2
        np.maximum(resid, 0.0, out=resid)
        if (j + 1) % max(1, n // 5) == 0 or j + 1 == n:
            logger.info("selected %d/%d points (%.1f s)", j + 1, n, time.perf_counter() - t0)
    return chosen, gain


# ---------------------------------------------------------------------- suggest
def suggest(
    emulator: Any,
    n: int,
    *,
    fields: Sequence[str] | str | None = None,
    radii: Sequence[float] | None = None,
    fix: Mapping[str, float] | None = None,
    candidates: int = 100_000,
    seed: int = 0,
    pool: Any = None,
    mass_points: int = 3,
    log10_mass: Sequence[float] | None = None,
    pk_ratio: Any = None,
    redshift: float | None = None,
    noise: float = DEFAULT_NOISE,
    length_scale: float | None = DEFAULT_LENGTH_SCALE,
    rank_tol: float = 1e-6,
    chunk_size: int = 16_384,
) -> Suggestion:
    """Choose ``n`` parameter points where new simulations should help the emulator most.

    See the module docstring for the score and the batch selection.

    Args:
        emulator: A trained :class:`~profemu.emulator.Emulator` (at least 2 members).
        n: Number of points to suggest.
        fields: Fields to score (default: all the emulator predicts).
        radii: ``(lo, hi)`` radial range to score, in the emulator's ``radius_unit``
            (inclusive; default: every radius).
        fix: ``{name: value}`` parameters to pin (linear units, inside the training box);
            not allowed with ``pool``.
        candidates: Number of Sobol candidates in the box (ignored with ``pool``).
        seed: Seed of the Sobol scrambling.
        pool: Optional [N, p] array (or ``{name: [N]}``) of candidate points in linear
            units; the suggestion then holds their row ``index``. Points outside the
            training box are allowed (their extrapolation is part of their score).
        mass_points: Number of halo masses the score averages over (midpoints of equal
            slices of the training range of ``log10_mass``).
        log10_mass: Explicit mass grid [log10 Msun] instead of ``mass_points``.
        pk_ratio: P(k) suppression [n_k] assumed for every candidate (or [N, n_k] per
            pool row); required by, and only allowed for, emulators with P(k).
        redshift: Redshift of the profiles scored (default: the training redshift when
            it is a single value).
        noise: Noise variance of the greedy conditioning, as a fraction of the mean
            candidate score.
        length_scale: Reach of one simulation's information in the free parameters'
            sampling space, as a fraction of the RMS distance between two random points
            of the box; the ensemble covariance is multiplied by a squared-exponential
            kernel of that length (None: the ensemble covariance alone, whose long
            correlations let a few points "explain" a whole region).
        rank_tol: Fraction of the member-deviation energy the feature compression may drop.
        chunk_size: Rows (candidates x masses) predicted at once (bounds the memory).

    Returns:
        The :class:`Suggestion`, points in selection order.

    Raises:
        ConfigError: invalid ``n``, ``fields``, ``radii``, ``fix``, ``candidates`` or inputs.
        DataError: a malformed ``pool``.
    """
    t0 = time.perf_counter()
    n = _positive_int("n", n)
    if int(getattr(emulator, "members", 0)) < 2:
        raise ConfigError(
            f"emulator: suggest needs an ensemble (epistemic variance = disagreement of members); "
            f"this emulator has {getattr(emulator, 'members', 0)} member(s). Train with train.members >= 2."
        )
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise > 0):
        raise ConfigError(f"noise: expected a positive fraction of the mean score, got {noise!r}.")
    if not 0.0 <= float(rank_tol) < 1.0:
        raise ConfigError(f"rank_tol: expected a value in [0, 1), got {rank_tol!r}.")
    space = design_space(emulator)
    f_idx, r_idx = _select_outputs(emulator, fields, radii)
    masses = _mass_grid(emulator, log10_mass, mass_points)
    if pool is not None:
        if fix:
            raise ConfigError("fix: cannot pin parameters of a given pool; filter the pool rows instead.")
        params = _pool_array(emulator, pool)
        fixed: dict[str, float] = {}
    else:
        candidates = _positive_int("candidates", candidates)
        fixed = _check_fix(space, fix)
        params = candidate_points(space, candidates, fix=fixed, seed=seed)
    if n > params.shape[0]:
        raise ConfigError(f"n: {n} points requested from only {params.shape[0]} candidates; lower n or add candidates.")
    pk, z = _extra_inputs(emulator, params.shape[0] if pool is not None else None, pk_ratio, redshift)
    if pool is not None:
        outside = int(np.sum(np.any((params < space.lo) | (params > space.hi), axis=1)))
        if outside:
            logger.info("%d of %d pool points lie outside the training box", outside, params.shape[0])
    logger.info(
        "scoring %d candidates on %d masses x %d fields x %d radii (%d members)",
        params.shape[0], masses.size, f_idx.size, r_idx.size, emulator.members,
    )
    feats = _Features(emulator, f_idx, r_idx, masses, pk, z, chunk_size)
    pilot_rows = np.random.default_rng(seed).permutation(params.shape[0])[: min(params.shape[0], 2048)]
    pilot_pk = None if pk is None else (pk if pk.shape[0] == 1 else pk[pilot_rows])
    basis = feats.basis(params[pilot_rows], pilot_pk, float(rank_tol))
    score, features = feats.compute(params, basis)
    mean_score = float(score.mean())
    if not mean_score > 0:
        raise DataError(
            "emulator: the ensemble members agree exactly at every candidate (epistemic variance 0); "
            "there is nothing to rank. Check that the members were trained from different seeds."
        )
    noise_abs = float(noise) * mean_score
    coords, ell = None, None
    if length_scale is not None:
        if not (isinstance(length_scale, int | float) and math.isfinite(length_scale) and length_scale > 0):
            raise ConfigError(f"length_scale: expected a positive fraction, got {length_scale!r}.")
        free = np.array([nm not in fixed for nm in space.names]) & (space.width > 0)
        coords = ((space.to_theta(params) - space.theta_lo) / space.width)[:, free]
        ell = float(length_scale) * math.sqrt(max(coords.shape[1], 1) / 6.0)
    chosen, gain = greedy_batch(features, score, n, noise=noise_abs, coords=coords, length_scale=ell)
    points = {nm: params[chosen, j].copy() for j, nm in enumerate(space.names)}
    seconds = time.perf_counter() - t0
    logger.info("suggested %d points from %d candidates in %.1f s", n, params.shape[0], seconds)
    return Suggestion(
        points=points,
        score=score[chosen],
        gain=gain,
        index=chosen if pool is not None else None,
        param_names=space.names,
        log_params=tuple(nm for nm, lg in zip(space.names, space.is_log, strict=True) if lg),
        fixed=fixed,
        fields=tuple(emulator.field_names[i] for i in f_idx),
        radius=np.asarray(emulator.radius, dtype=np.float64)[r_idx],
        radius_unit=str(emulator.radius_unit),
        log10_mass=masses,
        n_candidates=int(params.shape[0]),
        candidate_score={
            "mean": mean_score,
            "median": float(np.median(score)),
            "p95": float(np.quantile(score, 0.95)),
            "max": float(score.max()),
        },
        noise=noise_abs,
        length_scale=ell,
        rank=int(features.shape[1]),
        seconds=seconds,
    )


# ---------------------------------------------------------------------- files
def load_emulator(path: str | Path) -> Any:
    """The Emulator of a run folder (``RUN/emulator``) or of an emulator folder itself.

    Raises:
        DataError: ``path`` holds neither.
    """
    from profemu.emulator import Emulator

    p = Path(path)
    if (p / "emulator" / "manifest.json").is_file():
        return Emulator.load(p / "emulator")
    if (p / "manifest.json").is_file():
        return Emulator.load(p)
    raise DataError(
        f"{str(p)!r} is neither a run folder with emulator/manifest.json nor an emulator folder; "
        "pass the --out folder of `profemu train`."
    )


def check_new_file(path: str | Path, force: bool) -> Path:
    """``path`` as a Path, if a new file may be written there.

    Raises:
        DataError: it exists (and ``force`` is False), is a folder, or its folder is missing.
    """
    path = Path(path)
    if path.exists() and not force:
        raise DataError(f"--out {str(path)!r} already exists; pass --force to replace it or choose another name.")
    if path.is_dir():
        raise DataError(f"--out {str(path)!r} is a folder; pass a file name.")
    if not path.parent.is_dir():
        raise DataError(f"--out {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first.")
    return path


def _num(value: float) -> str:
    return format(float(value), ".10g")


def write_suggestion_csv(suggestion: Suggestion, path: str | Path, *, force: bool = False) -> Path:
    """Write the points as CSV: one column per parameter (linear units), ``score``, ``gain``.

    With a pool, an ``index`` column (row of the pool) comes first. Written atomically;
    an existing file is only replaced with ``force``.

    Raises:
        DataError: ``path`` exists (without ``force``), is a folder, or its folder is missing.
    """
    path = check_new_file(Path(path), force)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = (["index"] if suggestion.index is not None else []) + list(suggestion.param_names) + ["score", "gain"]
    writer.writerow(head)
    for i in range(len(suggestion)):
        row = [str(int(suggestion.index[i]))] if suggestion.index is not None else []
        row += [_num(suggestion.points[nm][i]) for nm in suggestion.param_names]
        row += [format(float(suggestion.score[i]), ".6g"), format(float(suggestion.gain[i]), ".6g")]
        writer.writerow(row)
    return atomic_write_text(path, buf.getvalue())


@dataclass(frozen=True)
class DesignTable:
    """A CAMELS ``CosmoAstroSeed_*.txt`` parameter table.

    Attributes:
        path: The file read.
        header: The header line as written (``#Name p1 ... seed``).
        param_names: Parameter column names, in the table's order.
        names: [n] simulation names (e.g. ``SB35_0``).
        values: [n, p] parameter values.
        seeds: [n] initial-condition seeds.
    """

    path: Path
    header: str
    param_names: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray
    seeds: np.ndarray


def read_design_table(path: str | Path) -> DesignTable:
    """Read a CAMELS parameter table: header ``#Name p1 ... pK seed``, rows ``NAME v1 ... vK seed``.

    Raises:
        FormatError: missing file, no such header, a row with the wrong number of
            columns or a non-numeric value (the message gives the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"--like {str(path)!r}: file not found; pass a CosmoAstroSeed_*.txt parameter table.")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise FormatError(f"--like {str(path)!r}: not a text file; expected a CosmoAstroSeed_*.txt table.") from None
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines or not lines[0][1].lstrip().startswith("#"):
        raise FormatError(f"--like {str(path)!r}: the first line must be the header '#Name p1 ... seed'.")
    header = lines[0][1].strip()
    tokens = header.lstrip("#").split()
    if len(tokens) < 3 or tokens[0].lower() != "name" or tokens[-1].lower() != "seed":
        raise FormatError(
            f"--like {str(path)!r}: header {header[:60]!r} is not '#Name p1 ... seed' (a CAMELS parameter table)."
        )
    params = tuple(tokens[1:-1])
    names: list[str] = []
    values: list[list[float]] = []
    seeds: list[int] = []
    for lineno, line in lines[1:]:
        if line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != len(params) + 2:
            raise FormatError(
                f"--like {str(path)!r}, line {lineno}: {len(parts)} columns, the header names {len(params) + 2}."
            )
        try:
            row = [float(v) for v in parts[1:-1]]
            seed = int(parts[-1])
        except ValueError:
            raise FormatError(f"--like {str(path)!r}, line {lineno}: a parameter or seed is not a number.") from None
        names.append(parts[0])
        values.append(row)
        seeds.append(seed)
    if not names:
        raise FormatError(f"--like {str(path)!r}: no simulation rows after the header.")
    return DesignTable(path, header, params, tuple(names), np.array(values), np.array(seeds, dtype=np.int64))


def _new_names(names: Sequence[str], n: int) -> list[str]:
    """``n`` names continuing the numbering of ``names`` (``SB35_2047`` -> ``SB35_2048``, ...)."""
    pattern = re.compile(r"^(.*?)(\d+)$")
    last = pattern.match(names[-1])
    prefix = last.group(1) if last else "NEW_"
    numbers = [int(m.group(2)) for nm in names if (m := pattern.match(nm)) and m.group(1) == prefix]
    start = max(numbers) + 1 if numbers else 0
    taken = set(names)
    out: list[str] = []
    k = start
    while len(out) < n:
        cand = f"{prefix}{k}"
        if cand not in taken:
            out.append(cand)
        k += 1
    return out


def write_like_table(
    suggestion: Suggestion,
    like: str | Path | DesignTable,
    path: str | Path,
    *,
    values: Mapping[str, float] | None = None,
    force: bool = False,
) -> Path:
    """Write the points in the layout of a CAMELS parameter table (name, parameters, seed).

    Columns follow the table's header; names continue its numbering and seeds continue
    after its largest seed, so neither collides with an existing simulation. Every
    column of the table must be an emulator parameter or be given in ``values`` (e.g.
    the ``--fix`` values of parameters the emulator does not have); every emulator
    parameter must be a column of the table. Written atomically.

    Args:
        suggestion: The points to write.
        like: The table (or its path) whose layout to copy.
        path: Output file.
        values: ``{column: value}`` for table columns the emulator lacks.
        force: Replace an existing ``path``.

    Raises:
        DataError: unmatched names, or ``path`` exists without ``force``.
        FormatError: an unreadable table.
    """
    table = like if isinstance(like, DesignTable) else read_design_table(like)
    extra = like_columns(table, suggestion.param_names, values)
    path = check_new_file(Path(path), force)
    n = len(suggestion)
    new_names = _new_names(table.names, n)
    first_seed = int(table.seeds.max()) + 1
    width = max(len(s) for s in (*table.names, *new_names)) + 1
    lines = [table.header]
    for i in range(n):
        row = [
            format(float(suggestion.points[nm][i] if nm in suggestion.points else extra[nm]), ".6g")
            for nm in table.param_names
        ]
        lines.append(f"{new_names[i]:>{width}} " + " ".join(row) + f" {first_seed + i}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def like_columns(
    table: DesignTable, param_names: Sequence[str], values: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Check that every column of ``table`` is an emulator parameter or given in ``values``.

    Args:
        table: The parameter table.
        param_names: The emulator's parameter names.
        values: ``{column: value}`` for table columns the emulator lacks.

    Returns:
        ``values`` as floats.

    Raises:
        DataError: an emulator parameter the table lacks, a table column neither the
            emulator nor ``values`` covers, or a name in ``values`` the table lacks.
    """
    extra = {str(k): float(v) for k, v in (values or {}).items()}
    missing_in_table = [nm for nm in param_names if nm not in table.param_names]
    if missing_in_table:
        raise DataError(
            f"--like {str(table.path)!r}: the emulator's parameter(s) {missing_in_table} are not columns of the "
            f"table ({', '.join(table.param_names[:8])}{', ...' if len(table.param_names) > 8 else ''}); names must "
            "match exactly: train the emulator with the table's parameter names, or write a plain CSV without --like."
        )
    unknown_extra = [nm for nm in extra if nm not in table.param_names]
    if unknown_extra:
        raise DataError(f"--fix: {unknown_extra} are neither emulator parameters nor columns of {str(table.path)!r}.")
    uncovered = [nm for nm in table.param_names if nm not in param_names and nm not in extra]
    if uncovered:
        raise DataError(
            f"--like {str(table.path)!r}: the table's column(s) {uncovered} are not parameters of the emulator; "
            "give their values for the new simulations with --fix NAME=VALUE (one per column)."
        )
    return extra


# ---------------------------------------------------------------------- figure
def suggestion_figure(
    suggestion: Suggestion,
    *,
    design: Any = None,
    parameters: Sequence[str] | None = None,
    sensitivity: Any = None,
) -> Any:
    """The suggested points over the training design in two parameters, coloured by score.

    Args:
        suggestion: From :func:`suggest`.
        design: The training design: an [n, p] array (columns ``param_names``), a
            ``{name: values}`` mapping or a :class:`~profemu.data.dataset.ProfileDataset`
            (optional).
        parameters: The two parameters on the axes; default: the two most important free
            parameters by ``sensitivity`` (:func:`profemu.sensitivity.top_parameters`), or
            the first two free ones.
        sensitivity: A :class:`~profemu.sensitivity.Sensitivity` to rank the parameters.

    Returns:
        A :class:`matplotlib.figure.Figure` on an Agg canvas (the global backend is untouched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = suggestion.param_names
    free = [nm for nm in names if nm not in suggestion.fixed]
    if parameters is None:
        if sensitivity is not None:
            from profemu.sensitivity import top_parameters

            parameters = top_parameters(sensitivity, k=2, among=free or names)
        else:
            parameters = (free + list(names))[:2]
    parameters = list(parameters)
    if len(parameters) != 2 or any(p not in names for p in parameters):
        raise ConfigError(f"parameters: expected two of {list(names)}, got {parameters!r}.")
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    px, py = parameters
    if design is not None:
        dx, dy = _design_columns(design, names, px, py)
        ax.scatter(dx, dy, s=6, c="0.7", label="training design", zorder=1)
    sc = ax.scatter(
        suggestion.points[px], suggestion.points[py], c=suggestion.score, cmap="viridis", s=28,
        edgecolors="k", linewidths=0.4, label="suggested", zorder=2,
    )
    fig.colorbar(sc, ax=ax, label="epistemic variance [dex²]")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for set_scale, axis, nm in ((ax.set_xscale, ax.xaxis, px), (ax.set_yscale, ax.yaxis, py)):
        if nm in suggestion.log_params:
            set_scale("log")
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
    ax.set_xlabel(px)
    ax.set_ylabel(py)
    ax.set_title(f"{len(suggestion)} suggested simulations")
    ax.legend(loc="best", fontsize=8)
    return fig


def _design_columns(design: Any, names: Sequence[str], px: str, py: str) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(design, "params") and hasattr(design, "param_names"):
        cols = list(design.param_names)
        arr = np.asarray(design.params)
        return arr[:, cols.index(px)], arr[:, cols.index(py)]
    if isinstance(design, Mapping):
        return np.asarray(design[px]), np.asarray(design[py])
    arr = np.asarray(design, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataError(f"design: expected an array [n, {len(names)}], got shape {arr.shape}.")
    return arr[:, list(names).index(px)], arr[:, list(names).index(py)]
