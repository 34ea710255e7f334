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

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profemu.design.space import (
    DEFAULT_LENGTH_SCALE,
    DEFAULT_NOISE,
    _check_fix,
    _extra_inputs,
    _mass_grid,
    _pool_array,
    _positive_int,
    _select_outputs,
    _variance_scale,
    candidate_points,
    design_space,
)
from profemu.errors import ConfigError, DataError

__all__ = ["Suggestion", "greedy_batch", "suggest"]

logger = logging.getLogger("profemu.design")


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
        redshift: Redshift of the profiles scored (None: an emulator without a redshift input).
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
    redshift: float | None = None

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


def _check_settings(emulator: Any, noise: Any, rank_tol: Any, seed: Any) -> None:
    """Refuse an emulator without an ensemble, a bad noise fraction, rank tolerance or seed."""
    if int(getattr(emulator, "members", 0)) < 2:
        raise ConfigError(
            f"emulator: suggest needs an ensemble (epistemic variance = disagreement of members); "
            f"this emulator has {getattr(emulator, 'members', 0)} member(s). Train with train.members >= 2."
        )
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise > 0):
        raise ConfigError(f"noise: expected a positive fraction of the mean score, got {noise!r}.")
    if not 0.0 <= float(rank_tol) < 1.0:
        raise ConfigError(f"rank_tol: expected a value in [0, 1), got {rank_tol!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise ConfigError(f"seed: {seed!r}; seeds are whole numbers >= 0, e.g. seed=0.")


def _candidate_rows(emulator: Any, space: Any, pool: Any, fix: Any, candidates: Any, seed: int,
                    sizes: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, float]]:
    """The candidate parameters [N, p] (the pool, or a Sobol design) and the pinned values.

    ``sizes`` is (masses, outputs per mass, chunk size): the request is refused before the
    candidates are drawn when its arrays would not fit (:func:`_check_size`).
    """
    masses, outputs, chunk_size = sizes
    if pool is not None:
        if fix:
            raise ConfigError("fix: cannot pin parameters of a given pool; filter the pool rows instead.")
        params = _pool_array(emulator, pool)
        _check_size(emulator, params.shape[0], masses, outputs, chunk_size)
        outside = int(np.sum(np.any((params < space.lo) | (params > space.hi), axis=1)))
        if outside:
            logger.info("%d of %d pool points lie outside the training box", outside, params.shape[0])
        return params, {}
    candidates = _positive_int("candidates", candidates)
    _check_size(emulator, candidates, masses, outputs, chunk_size)
    fixed = _check_fix(space, fix)
    return candidate_points(space, candidates, fix=fixed, seed=seed), fixed


def _check_size(emulator: Any, candidates: int, masses: int, outputs_per_mass: int, chunk_size: int) -> None:
    """Refuse, before allocating, a request whose arrays would not fit (the estimate and the limit).

    The estimate adds the candidates [N, p], their scores and compressed features
    [N, members x rank], the pilot's member predictions and its Gram matrix [D, D]
    (D = masses x fields x radii scored), and one chunk of member predictions.
    """
    from profemu._files import check_memory

    members = int(getattr(emulator, "members", 1))
    n_out = len(emulator.field_names) * len(emulator.radius)
    d = masses * outputs_per_mass
    pilot = min(candidates, 2048)
    rank = min(d, pilot * members)
    chunk_rows = max(1, chunk_size // max(masses, 1)) * masses
    total = (candidates * (len(emulator.param_names) + 2) * 8.0 + candidates * members * rank * 4.0
             + pilot * masses * members * (n_out * 16.0 + d * 8.0) + d * d * 8.0 + chunk_rows * members * n_out * 16.0)
    check_memory(f"suggest with candidates={candidates} and mass_points={masses} ({d} scored outputs per "
                 "candidate)", total, fix="lower candidates (--candidates) or mass_points (--mass-points)")


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
        report_every = max(1, -(-n_chunks // 3))  # at most three progress lines
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
def _scores(feats: _Features, params: np.ndarray, pk: np.ndarray | None, seed: int, rank_tol: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate's score [N] and compressed member-deviation features [N, r].

    The basis of the features comes from a pilot sample of up to 2,048 candidates.

    Raises:
        DataError: the members agree exactly everywhere (nothing to rank).
    """
    pilot_rows = np.random.default_rng(seed).permutation(params.shape[0])[: min(params.shape[0], 2048)]
    pilot_pk = None if pk is None else (pk if pk.shape[0] == 1 else pk[pilot_rows])
    score, features = feats.compute(params, feats.basis(params[pilot_rows], pilot_pk, rank_tol))
    if not float(score.mean()) > 0:
        raise DataError(
            "emulator: the ensemble members agree exactly at every candidate (epistemic variance 0); "
            "there is nothing to rank. Check that the members were trained from different seeds."
        )
    return score, features


def _local_kernel(space: Any, params: np.ndarray, fixed: Mapping[str, float], length_scale: float | None
                  ) -> tuple[np.ndarray | None, float | None]:
    """Unit-box coordinates of the free parameters [N, d] and the kernel length ``l`` (None: no local kernel).

    ``length_scale`` is a fraction of the RMS distance between two random points of the unit
    box, ``sqrt(d / 6)``.
    """
    if length_scale is None:
        return None, None
    if not (isinstance(length_scale, int | float) and math.isfinite(length_scale) and length_scale > 0):
        raise ConfigError(f"length_scale: expected a positive fraction, got {length_scale!r}.")
    free = np.array([nm not in fixed for nm in space.names]) & (space.width > 0)
    coords = ((space.to_theta(params) - space.theta_lo) / space.width)[:, free]
    return coords, float(length_scale) * math.sqrt(max(coords.shape[1], 1) / 6.0)


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
    _check_settings(emulator, noise, rank_tol, seed)
    space = design_space(emulator)
    f_idx, r_idx = _select_outputs(emulator, fields, radii)
    masses = _mass_grid(emulator, log10_mass, mass_points)
    params, fixed = _candidate_rows(emulator, space, pool, fix, candidates, seed,
                                    (masses.size, f_idx.size * r_idx.size, chunk_size))
    if n > params.shape[0]:
        raise ConfigError(f"n: {n} points requested from only {params.shape[0]} candidates; lower n or add candidates.")
    pk, z = _extra_inputs(emulator, params.shape[0] if pool is not None else None, pk_ratio, redshift)
    logger.info("scoring %d candidates on %d masses x %d fields x %d radii (%d members)",
                params.shape[0], masses.size, f_idx.size, r_idx.size, emulator.members)
    feats = _Features(emulator, f_idx, r_idx, masses, pk, z, chunk_size)
    score, features = _scores(feats, params, pk, seed, float(rank_tol))
    mean_score = float(score.mean())
    noise_abs = float(noise) * mean_score
    coords, ell = _local_kernel(space, params, fixed, length_scale)
    chosen, gain = greedy_batch(features, score, n, noise=noise_abs, coords=coords, length_scale=ell)
    points = {nm: params[chosen, j].copy() for j, nm in enumerate(space.names)}
    seconds = time.perf_counter() - t0
    logger.info("suggested %d points from %d candidates in %.1f s", n, params.shape[0], seconds)
    return Suggestion(
        points=points, score=score[chosen], gain=gain, index=chosen if pool is not None else None,
        param_names=space.names,
        log_params=tuple(nm for nm, lg in zip(space.names, space.is_log, strict=True) if lg),
        fixed=fixed,
        fields=tuple(emulator.field_names[i] for i in f_idx),
        radius=np.asarray(emulator.radius, dtype=np.float64)[r_idx],
        radius_unit=str(emulator.radius_unit),
        log10_mass=masses,
        redshift=None if z is None else float(z),
        n_candidates=int(params.shape[0]),
        candidate_score={"mean": mean_score, "median": float(np.median(score)),
                         "p95": float(np.quantile(score, 0.95)), "max": float(score.max())},
        noise=noise_abs, length_scale=ell, rank=int(features.shape[1]), seconds=seconds,
    )
