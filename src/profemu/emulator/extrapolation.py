"""Uncertainty that grows outside the training box.

An ensemble trained on a box of inputs is calibrated inside it, but its members agree
with each other far more than with the truth outside it (measured on CAMELS LH TNG,
trained on log10 M200c = 11-12, tested on 12-12.3: 68% intervals held 44% of the
truth). This module adds a variance term that grows with the distance from the box:

    σ_ext²[n, j] = (a_j · d_n)^p        [dex²]

* ``d_n`` — the Euclidean distance of input ``n`` outside the training box, per column
  in standardised units: ``log10_mass`` in dex, each parameter in units of its training
  spread (the input scaler's scale, in log10 for log-sampled parameters), the redshift
  (the redshift input or a parameter column named ``z``) in units of Δz, each P(k) bin in units of its training spread (root mean square over
  the bins). ``d = 0`` inside the box.
* ``a_j`` [dex per unit distance] per output (field × radius) and one exponent ``p`` —
  fitted by :func:`fit_extrapolation_variance`: the training rows' highest-mass part is
  held out, an emulator is trained on the rest, and ``a``, ``p`` maximise the Gaussian
  likelihood of the held-out residuals (variance = the emulator's calibrated variance +
  the target noise + σ_ext²). Each output's amplitude stays within a factor
  :data:`FIELD_BAND` of its field's common amplitude (the one amplitude that fits all the
  field's radii best): fitted freely, neighbouring radii got amplitudes ten times apart, and
  beyond the data single radii held 9% of the truth in their 68% intervals while others
  held all of it.

Where the training rows span at least three redshifts (a parameter column named ``z``, measured
in Δz like the redshift input, or else the redshift input), the redshift gets its
own term, calibrated by holding out the highest third of the distinct redshifts instead: the
self-similar scaling in E(z) can make a step in redshift far safer, or not, than one in mass.
With one held-out redshift step the term's growth is fixed at linear in the distance
(:data:`P_UNRESOLVED`); on the mock universe trained at z <= 0.5 its 68% intervals at z = 1
are too wide (BENCHMARKS.md, "Extrapolation in halo mass", the redshift step)::

    σ_ext² = (a_j · d_rest)^p + (a_z,j · d_z)^p_z      d_rest² = d² - d_z²

The record lives in ``Emulator.metadata["extrapolation"]`` (JSON: ``a`` [D], ``p``,
optional ``redshift``: {``a`` [D], ``p``, ``input``}, and how they were fitted) and both prediction
paths add it (:func:`record_variance`).
"""

from __future__ import annotations

import itertools
import logging
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.data.selfsimilar import redshift_values
from profemu.errors import DataError, FormatError

__all__ = ["ExtrapolationTerms", "distance_outside", "extrapolation_variance", "fit_extrapolation_variance",
           "mass_holdout", "read_record", "record_variance", "redshift_holdout", "redshift_term_possible"]

log = logging.getLogger(__name__)

#: Exponents tried for ``p`` and log10 of the amplitudes tried for ``a`` [dex per unit distance].
P_GRID = np.round(np.arange(0.5, 3.01, 0.25), 2)
LOG10_A_GRID = np.linspace(-4.0, 1.0, 251)
#: Held-out distances spanning less than this factor (e.g. one redshift step) cannot tell the
#: exponent from the amplitude: ``p`` is then this value, an error growing linearly with the distance.
MIN_DISTANCE_RATIO = 1.5
P_UNRESOLVED = 2.0
#: An output's amplitude ``a_j`` stays within this factor of its field's common amplitude
#: (``inf``: every output's amplitude on its own).
#:
#: A profile's extrapolation error does not change tenfold from one radius to the next; an
#: amplitude fitted freely per radius fits the held-out rows' noise. On CAMELS LH TNG, trained on
#: 10^11-10^12 Msun, free amplitudes left single radii of 10^12-10^12.3 with 68% intervals that
#: held a tenth of the truth; BENCHMARKS.md, "Extrapolation variance per radius"
#: (``benchmarks/extrapolation_band.py``), compares the two on three training seeds.
FIELD_BAND = 3.0


def _column_bounds(transforms: Any, redshift_in_dz: bool = True,
                   ) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, bool]]:
    """``(name, block, lo, hi, scale, log)`` per input column, bounds in the scaled coordinates' units
    (``log``: the column is compared in log10). A parameter column holding the redshift
    (:func:`~profemu.data.selfsimilar.redshift_column`) is measured like the redshift input, in Δz:
    its training spread depends on which redshifts a fit saw, Δz does not (``redshift_in_dz`` False:
    in its training spread, as records of older versions were fitted)."""
    box = transforms.input_box()
    names = list(transforms.param_names)
    z_column = transforms.redshift_column if redshift_in_dz else None
    is_log = np.array([n in set(transforms.log_params) and i != z_column for i, n in enumerate(names)], bool)
    lo = np.array([float(box[n][0]) for n in names])
    hi = np.array([float(box[n][1]) for n in names])
    lo = np.where(is_log, np.log10(np.where(is_log, lo, 1.0)), lo)
    hi = np.where(is_log, np.log10(np.where(is_log, hi, 1.0)), hi)
    scale = np.asarray(transforms.input_stats["params"][1], float).copy()
    if z_column is not None:
        scale[z_column] = 1.0
    out = [(n, "params", lo[i:i + 1], hi[i:i + 1], scale[i:i + 1], bool(is_log[i])) for i, n in enumerate(names)]
    m_lo, m_hi = box["log10_mass"]
    out.append(("log10_mass", "log10_mass", np.array([float(m_lo)]), np.array([float(m_hi)]), np.ones(1), False))
    if "redshift" in box:
        z_lo, z_hi = box["redshift"]
        out.append(("redshift", "redshift", np.array([float(z_lo)]), np.array([float(z_hi)]), np.ones(1), False))
    if "pk_ratio" in box and "pk" in transforms.input_stats:
        k_lo, k_hi = (np.asarray(a, float) for a in box["pk_ratio"])
        out.append(("pk_ratio", "pk_ratio", k_lo, k_hi, np.asarray(transforms.input_stats["pk"][1], float), False))
    return out


@dataclass(frozen=True)
class _Box:
    """The training box of :func:`_column_bounds` ready for :func:`distance_outside`: the parameter
    columns' bounds as one array each, the tolerance already applied."""

    names: tuple[str, ...]  # the parameter columns
    log: np.ndarray  # [p] bool: compared in log10
    lo: np.ndarray  # [p] lower bounds minus the tolerance
    hi: np.ndarray  # [p] upper bounds plus the tolerance
    scale: np.ndarray  # [p]
    others: tuple[tuple[str, str, np.ndarray, np.ndarray, np.ndarray], ...]  # (name, block, lo, hi, scale)


def _with_tolerance(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` widened by a 1e-9 relative tolerance: a value rounded at the box's edge is inside."""
    tol = 1e-9 * (1.0 + np.abs(hi - lo))
    return lo - tol, hi + tol


def _cached_box(transforms: Any, redshift_in_dz: bool) -> _Box:
    """:func:`_column_bounds` as a :class:`_Box`, kept on the fitted transforms (fixed once fitted)
    after the first call."""
    cache = vars(transforms).setdefault("_column_bounds_cache", {})
    if redshift_in_dz not in cache:
        bounds = _column_bounds(transforms, redshift_in_dz)
        columns = [b for b in bounds if b[1] == "params"]
        lo, hi, scale = (np.concatenate([c[k] for c in columns]) if columns else np.zeros(0) for k in (2, 3, 4))
        lo, hi = _with_tolerance(lo, hi)
        others = tuple((name, block, *_with_tolerance(b_lo, b_hi), b_scale)
                       for name, block, b_lo, b_hi, b_scale, _ in bounds if block != "params")
        cache[redshift_in_dz] = _Box(tuple(c[0] for c in columns), np.array([c[5] for c in columns], bool),
                                     lo, hi, scale, others)
    return cache[redshift_in_dz]


def distance_outside(transforms: Any, inputs: Mapping[str, Any], xp: Any = np,
                     redshift_in_dz: bool = True) -> tuple[Any, dict[str, Any]]:
    """How far each input lies outside the training box, in standardised units.

    Args:
        transforms: The fitted :class:`~profemu.data.transforms.Transforms` (its box and scales).
        inputs: ``params`` [n, p] (linear), ``log10_mass`` [n], optional ``redshift`` [n]
            and ``pk_ratio`` [n, n_k] (None or absent: not measured).
        xp: ``numpy`` or ``jax.numpy``.
        redshift_in_dz: A parameter column holding the redshift in Δz (False: in its training
            spread, as for records written before that, :attr:`ExtrapolationTerms.redshift_in_dz`).

    A redshift given both as a parameter column and as the redshift input counts once in ``d2``.

    Returns:
        ``(d2, per_input)``: ``d2`` [n] the squared distance outside the box, and per input
        name its own distance [n] (dex for ``log10_mass``; training spreads for the
        parameters, Δz for a ``z`` column; Δz for ``redshift``; RMS training spreads over the k bins for
        ``pk_ratio``). Zero inside the box.
    """
    params = xp.asarray(inputs["params"])
    n = params.shape[0]
    values = {"params": params, "log10_mass": xp.reshape(xp.asarray(inputs["log10_mass"]), (n, 1))}
    if inputs.get("redshift") is not None:
        values["redshift"] = xp.reshape(xp.asarray(inputs["redshift"]), (n, 1))
    if inputs.get("pk_ratio") is not None:
        values["pk_ratio"] = xp.asarray(inputs["pk_ratio"])
    per_input: dict[str, Any] = {}
    twice = transforms.redshift_column is not None  # the redshift input repeats the column: not counted again
    box = _cached_box(transforms, redshift_in_dz)
    d2 = xp.zeros((n,), dtype=params.dtype)
    if box.names:  # the parameter columns at once: one set of array operations, not one per column
        x = xp.where(box.log, xp.log10(xp.maximum(params, 1e-300)), params) if box.log.any() else params
        excess = _excess(x, box.lo, box.hi, box.scale, params.dtype, xp)
        d2 = d2 + xp.sum(excess * excess, axis=1)
        for j, name in enumerate(box.names):
            per_input[name] = excess[:, j]  # one column: its RMS over the column is its own excess
    for name, block, lo, hi, scale in box.others:
        if block not in values:
            continue
        excess = _excess(values[block], lo, hi, scale, params.dtype, xp)
        sq = xp.mean(excess * excess, axis=1)
        if not (twice and block == "redshift"):
            d2 = d2 + sq
        per_input[name] = _safe_sqrt(sq, xp)
    return d2, per_input


def _excess(x: Any, lo: np.ndarray, hi: np.ndarray, scale: np.ndarray, dtype: Any, xp: Any) -> Any:
    """How far ``x`` [n, k] lies below ``lo`` or above ``hi`` [k] (bounds with their tolerance,
    :func:`_with_tolerance`), in units of ``scale`` [k]; zero inside."""
    lo_, hi_, s_ = (xp.asarray(v, dtype=dtype) for v in (lo, hi, scale))
    return (xp.maximum(lo_ - x, 0.0) + xp.maximum(x - hi_, 0.0)) / s_


def _safe_sqrt(x: Any, xp: Any) -> Any:
    """sqrt with a finite (zero) gradient at 0."""
    pos = x > 0
    return xp.where(pos, xp.sqrt(xp.where(pos, x, 1.0)), 0.0)


def extrapolation_variance(d2: Any, a: Any, p: float, xp: Any = np) -> Any:
    """σ_ext² = (a · d)^p [dex²], [n, D], from the squared distance ``d2`` [n] and ``a`` [D].

    Written as ``a^p · (d²)^(p/2)`` with a zero (finite) gradient at ``d = 0``.
    """
    pos = d2 > 0
    dp = xp.where(pos, xp.where(pos, d2, 1.0) ** (0.5 * p), 0.0)
    return dp[:, None] * xp.asarray(a, dtype=dp.dtype)[None, :] ** p


class ExtrapolationTerms(NamedTuple):
    """The fitted terms of a record: ``a`` [D] and ``p`` for the distance outside the box, and
    ``redshift`` = ``(a_z [D], p_z)`` for the redshift's own distance, or None (then the
    redshift counts in the first term's distance); ``redshift_input`` names the input that
    holds the redshift (``"redshift"``, or a parameter column such as ``"z"``); ``redshift_in_dz``:
    a redshift column's distance in Δz (False for records written before: in its training spread,
    as they were fitted; a record without ``field_band`` is one of those)."""

    a: np.ndarray
    p: float
    redshift: tuple[np.ndarray, float] | None = None
    redshift_input: str = "redshift"
    redshift_in_dz: bool = True


#: Largest amplitude a record may hold [dex per unit distance] (the fit's grid stops at 10).
A_MAX = 1e3
_REFIT = "retrain the emulator (profemu train) or refit the term (profemu.emulator.extrapolation.fit_extrapolation_variance)"


def _read_term(rec: Mapping[str, Any], width: int, where: str) -> tuple[np.ndarray, float]:
    missing = [k for k in ("a", "p") if k not in rec]
    if missing:
        raise FormatError(f"{where}: no {' or '.join(repr(k) for k in missing)}; it needs 'a' (a list of {width} "
                          f"numbers >= 0) and 'p' (a number in (0, 10]); {_REFIT}.")
    raw_a, raw_p = rec["a"], rec["p"]
    if not _is_real(raw_p):
        raise FormatError(f"{where}.p: {str(raw_p)[:40]} is not a number; it must be a number in (0, 10]; {_REFIT}.")
    items = list(raw_a) if isinstance(raw_a, list | tuple) or (isinstance(raw_a, np.ndarray) and raw_a.ndim == 1) \
        else None
    if items is None or not all(_is_real(x) for x in items):
        raise FormatError(f"{where}.a: must be a list of {width} numbers >= 0, got {str(raw_a)[:60]}; {_REFIT}.")
    try:
        a = np.asarray([float(x) for x in items], dtype=np.float64)
        p = float(raw_p)
    except OverflowError:
        raise FormatError(f"{where}: a number too large for a float; {_REFIT}.") from None
    if a.shape != (width,):
        raise FormatError(f"{where}.a: {a.shape[0]} numbers, needs {width} (one per output); {_REFIT}.")
    bad = ~np.isfinite(a) | (a < 0) | (a > A_MAX)
    if bad.any():
        j = int(np.argmax(bad))
        raise FormatError(f"{where}.a: {float(a[j])!r} at output {j} must be a finite number in [0, {A_MAX:g}]; "
                          f"{_REFIT}.")
    if not (np.isfinite(p) and 0 < p <= 10):
        raise FormatError(f"{where}.p: {p!r} must be in (0, 10]; {_REFIT}.")
    return a, p


def _is_real(x: Any) -> bool:
    """A real number (Python or numpy), not a bool or a string."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)


def read_record(metadata: Mapping[str, Any], width: int,
                inputs: Sequence[str] | None = None) -> ExtrapolationTerms | None:
    """The :class:`ExtrapolationTerms` of ``metadata["extrapolation"]``, or None when there is none.

    ``inputs``: the inputs that may hold the redshift (``"redshift"`` and the emulator's redshift
    column); the redshift term's ``input`` must be one of them.

    Raises:
        FormatError: the record is malformed (names the field and the fix).
    """
    rec = metadata.get("extrapolation")
    if rec is None:
        return None
    if not isinstance(rec, Mapping):
        raise FormatError(f"metadata.extrapolation: must be a mapping with 'a' and 'p'; {_REFIT}.")
    a, p = _read_term(rec, width, "metadata.extrapolation")
    in_dz = "field_band" in rec  # written since a redshift column is measured in Δz
    z = rec.get("redshift")
    if z is None:
        return ExtrapolationTerms(a, p, redshift_in_dz=in_dz)
    if not isinstance(z, Mapping):
        raise FormatError(f"metadata.extrapolation.redshift: must be a mapping with 'a' and 'p'; {_REFIT}.")
    name = z.get("input", "redshift")
    if not isinstance(name, str) or not name or (inputs is not None and name not in inputs):
        raise FormatError(f"metadata.extrapolation.redshift.input: {name!r} must name the redshift input "
                          "('redshift' or a parameter column such as 'z')"
                          + (f" among the emulator's inputs {list(inputs)}" if inputs is not None else "")
                          + f"; {_REFIT}.")
    return ExtrapolationTerms(a, p, _read_term(z, width, "metadata.extrapolation.redshift"), name, in_dz)


def record_variance(terms: ExtrapolationTerms, d2: Any, per_input: Mapping[str, Any], xp: Any = np) -> Any:
    """σ_ext² [n, D] of ``terms`` from :func:`distance_outside`'s ``(d2, per_input)`` (numpy or JAX)."""
    if terms.redshift is None or terms.redshift_input not in per_input:
        return extrapolation_variance(d2, terms.a, terms.p, xp)
    dz = per_input[terms.redshift_input]
    rest = xp.maximum(d2 - dz * dz, 0.0)
    a_z, p_z = terms.redshift
    return extrapolation_variance(rest, terms.a, terms.p, xp) + extrapolation_variance(dz * dz, a_z, p_z, xp)


def mass_holdout(ds: ProfileDataset, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`fit_extrapolation_variance` trains on and those it holds out: ``(inner, held)``,
    the rows above the mass quantile ``1 - fraction`` held out (indices into ``ds``).

    Raises:
        DataError: ``fraction`` outside (0, 1) or fewer than 2 rows on one side.
    """
    if not 0 < fraction < 1:
        raise DataError(f"fraction: {fraction!r} must be in (0, 1), e.g. 0.5 (the upper half in mass).")
    mass = np.asarray(ds.log10_mass, float)
    cut = float(np.quantile(mass, 1.0 - fraction))
    high = mass > cut
    if high.sum() < 2 or (~high).sum() < 2:
        raise DataError(f"fraction: {fraction} leaves {int(high.sum())} held-out and {int((~high).sum())} "
                        "training rows; need at least 2 of each (more distinct masses or another fraction).")
    return np.flatnonzero(~high), np.flatnonzero(high)


def _fit_grid(res: np.ndarray, v0: np.ndarray, d: np.ndarray,
              fields: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, float, float]:
    """Best ``(a [D], p, mean NLL)`` on the grids, NaN residuals ignored. ``res``, ``v0`` [n, D], ``d`` [n].

    ``fields``: the output columns of each field (None: every column on its own, amplitudes
    free). A field's columns take amplitudes within :data:`FIELD_BAND` of the field's common
    amplitude, the grid amplitude that fits all of them best (0: all of them 0).

    Distances that span less than :data:`MIN_DISTANCE_RATIO` (one held-out redshift) fix ``p`` at
    :data:`P_UNRESOLVED`: with one distance every ``p`` fits equally, and the first of the grid
    (0.5) would make the variance grow far too slowly beyond it."""
    free = fields is None or not np.isfinite(FIELD_BAND)  # an infinite band: every output on its own
    groups = [np.arange(j, j + 1) for j in range(res.shape[1])] if free else [np.asarray(g, int) for g in fields]
    valid = np.isfinite(res) & np.isfinite(v0) & (v0 > 0)
    r2 = np.where(valid, res, 0.0) ** 2
    v0 = np.where(valid, v0, 1.0)
    a_grid = np.concatenate([[0.0], 10.0 ** LOG10_A_GRID])
    best: tuple[np.ndarray, float, float] | None = None
    positive = d[d > 0]
    resolved = positive.size > 0 and positive.max() >= MIN_DISTANCE_RATIO * positive.min()
    for p in P_GRID if resolved else (P_UNRESOLVED,):
        ext = (a_grid[None, :] * d[:, None]) ** p  # [n, G]
        nll = np.zeros((res.shape[1], a_grid.size))
        for j in range(res.shape[1]):
            v = v0[:, j:j + 1] + ext
            nll[j] = np.sum(valid[:, j:j + 1] * (np.log(v) + r2[:, j:j + 1] / v), axis=0)
        pick = np.zeros(res.shape[1], int)
        for columns in groups:
            k = int(np.argmin(nll[columns].sum(axis=0)))
            common = a_grid[k]
            allowed = (a_grid >= common / FIELD_BAND) & (a_grid <= common * FIELD_BAND) if common > 0 else a_grid == 0
            pick[columns] = np.argmin(np.where(allowed[None, :], nll[columns], np.inf), axis=1)
            pick[columns[~valid[:, columns].any(axis=0)]] = k  # a radius never measured: the field's amplitude
        total = float(nll[np.arange(nll.shape[0]), pick].sum() / max(valid.sum(), 1))
        if best is None or total < best[2]:
            best = (a_grid[pick], float(p), total)
    assert best is not None
    return best


def _nll_without(res: np.ndarray, v0: np.ndarray) -> float:
    """Mean Gaussian NLL (without the constant) of the residuals with variance ``v0`` alone, NaNs
    ignored: :func:`_fit_grid`'s score at ``a = 0``, without its search."""
    valid = np.isfinite(res) & np.isfinite(v0)
    v = np.where(valid, v0, 1.0)
    terms = np.where(valid, np.log(v) + np.where(valid, res, 0.0) ** 2 / v, 0.0)
    return float(terms.sum() / max(valid.sum(), 1))


#: Distinct training redshifts needed for the redshift's own term (two stay in the held-out fit).
MIN_REDSHIFTS = 3


def redshift_holdout(ds: ProfileDataset) -> tuple[np.ndarray, np.ndarray, str, float] | str:
    """``(inner, held, input, cut)``: the rows below the highest third of the distinct redshifts, those
    at it (held out), the input holding the redshift (:func:`~profemu.data.selfsimilar.redshift_values`:
    a ``z`` parameter column, else the redshift input) and the highest redshift kept; or why there
    is no such split (a sentence).

    The cut is on the distinct values, so a suite with most rows at one redshift still holds out
    its highest ones."""
    found = redshift_values(ds.param_names, ds.params, ds.redshift)
    if found is None:
        return "the rows have no redshift"
    z, name = found
    distinct = np.unique(z)
    if distinct.size < MIN_REDSHIFTS:
        where = "the redshift input" if name == "redshift" else f"the parameter column {name!r}"
        return f"the rows span {distinct.size} redshift(s) in {where}, it needs {MIN_REDSHIFTS}"
    cut = float(distinct[-max(1, distinct.size // 3) - 1])
    high = z > cut
    if high.sum() < 2:
        return f"only {int(high.sum())} row(s) lie above z = {cut:.3g}; it needs 2"
    return np.flatnonzero(~high), np.flatnonzero(high), name, cut


def redshift_term_possible(ds: ProfileDataset) -> bool:
    """Whether the rows can calibrate the redshift's own term (at least :data:`MIN_REDSHIFTS`
    distinct redshifts, and 2 rows at the highest third of them)."""
    return isinstance(redshift_holdout(ds), tuple)


def _held_out_fit(fit: Callable[[ProfileDataset], Any], dataset: ProfileDataset, inner: np.ndarray,
                  held: np.ndarray, emulator: Any, which: str | None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Train on ``inner``, predict ``held``: residuals and variances [n, D], the distance [n]
    outside the inner box (``which``: one input's own distance, None: the whole distance) and
    each field's output columns."""
    from profemu.metrics import predict_dataset

    inner_emulator = fit(dataset.subset(inner))
    test = dataset.subset(held)
    fields = tuple(inner_emulator.field_names)
    if emulator is not None and tuple(emulator.field_names) != fields:
        raise DataError(f"emulator: predicts {emulator.field_names}, the held-out fit {fields}; pass the same fit.")
    pred = predict_dataset(inner_emulator, test)
    res = np.concatenate([np.where(test.mask[f], test.log10_profile(f), np.nan) - pred[f][0] for f in fields], 1)
    var = np.concatenate([pred[f][1] for f in fields], axis=1)
    if test.noise is not None:
        var = var + np.concatenate([np.asarray(test.noise.get(f, np.zeros_like(pred[f][1]))) ** 2
                                    for f in fields], axis=1)
    d2, per_input = distance_outside(inner_emulator.transforms, {
        "params": test.params, "log10_mass": test.log10_mass, "redshift": test.redshift, "pk_ratio": test.pk_ratio})
    if which is not None and which not in per_input:
        raise DataError(f"extrapolation variance: {which!r} is not an input of the emulator (inputs: "
                        f"{sorted(per_input)}); its own term cannot be fitted.")
    d = np.sqrt(d2) if which is None else np.asarray(per_input[which])
    widths = np.cumsum([0, *(pred[f][0].shape[1] for f in fields)])
    return res, var, d, [np.arange(lo, hi) for lo, hi in itertools.pairwise(widths)]


def fit_extrapolation_variance(
    fit: Callable[[ProfileDataset], Any],
    dataset: ProfileDataset,
    *,
    emulator: Any = None,
    fraction: float = 0.5,
    redshift: bool = True,
    mass: bool = True,
) -> dict[str, Any]:
    """Calibrate σ_ext² = (a·d)^p by holding out the training rows' highest masses (and redshifts).

    Args:
        fit: Trains an Emulator on a dataset, the same way the final one was trained
            (e.g. ``lambda rows: train_emulator(rows, cfg).emulator``).
        dataset: The training rows of the final Emulator.
        emulator: The final Emulator (optional): only checked to have the same outputs.
        fraction: Fraction of rows (by mass, highest first) held out; 0.5 holds out the
            upper of two equally filled mass bins.
        redshift: Also fit the redshift's own term when the rows span at least
            :data:`MIN_REDSHIFTS` redshifts (one more training, on the rows below the
            highest third of the distinct redshifts, scored on those above it).
        mass: Fit the term of the distance outside the box (held out by mass). False: the
            redshift's term alone (e.g. one narrow mass bin at several redshifts); the other
            term is zero, ``"mass_term": "not fitted"`` says so.

    Returns:
        The JSON record for ``Emulator.metadata["extrapolation"]``: ``a`` [D] (list, dex
        per unit distance; outputs in field-major order), ``p``, ``held_out_rows``,
        ``mass_cut`` [log10 Msun], ``distance_range`` of the held-out rows, the
        held-out mean NLL with and without the term, and ``field_band`` (the factor each
        output's amplitude stays within of its field's, both terms); with the redshift term also
        ``redshift``: {``a``, ``p``, ``held_out_rows``, ``redshift_cut``,
        ``distance_range``, ``nll_without``, ``nll_with``, ``input`` (``"redshift"`` or the
        parameter column holding the redshift)}.

    Raises:
        DataError: ``fraction`` outside (0, 1), too few rows on one side, ``fit`` returns an
            emulator of other outputs than ``emulator``, or (``mass`` False) no redshift term.
    """
    record: dict[str, Any] = {"field_band": FIELD_BAND}
    if mass:
        inner, held = mass_holdout(dataset, fraction)
        cut = float(np.max(np.asarray(dataset.log10_mass)[inner]))
        log.info("extrapolation variance: training on %d rows with log10 M <= %.3f, holding out %d above",
                 inner.size, cut, held.size)
        res, var, d, fields = _held_out_fit(fit, dataset, inner, held, emulator, None)
        a, p, nll = _fit_grid(res, var, d, fields)
        nll0 = _nll_without(res, var)
        log.info("extrapolation variance: p = %.2f, median a = %.3g dex per unit distance, held-out NLL %.3f -> "
                 "%.3f (distances %.2f-%.2f)", p, float(np.median(a)), nll0, nll, float(d.min()), float(d.max()))
        record.update({"a": [float(x) for x in a], "p": p, "held_out_rows": int(held.size), "mass_cut": cut,
                       "distance_range": [float(d.min()), float(d.max())], "nll_without": nll0, "nll_with": nll})
    split = redshift_holdout(dataset) if redshift or not mass else None
    if not mass and not isinstance(split, tuple):
        raise DataError(f"extrapolation variance: the redshift's own term cannot be fitted ({split}), and the mass "
                        "term was not asked for.")
    if isinstance(split, tuple):
        z_inner, z_held, z_input, z_cut = split
        where = "" if z_input == "redshift" else f" (the parameter column {z_input!r})"
        log.info("extrapolation variance in redshift%s: training on %d rows with z <= %.3g, holding out %d above",
                 where, z_inner.size, z_cut, z_held.size)
        res, var, dz, fields = _held_out_fit(fit, dataset, z_inner, z_held, emulator, z_input)
        a_z, p_z, nll_z = _fit_grid(res, var, dz, fields)
        nll_z0 = _nll_without(res, var)
        log.info("extrapolation variance in redshift: p = %.2f, median a = %.3g dex per unit z, held-out NLL "
                 "%.3f -> %.3f (Δz %.2f-%.2f)", p_z, float(np.median(a_z)), nll_z0, nll_z, float(dz.min()),
                 float(dz.max()))
        record["redshift"] = {"a": [float(x) for x in a_z], "p": p_z, "held_out_rows": int(z_held.size),
                              "redshift_cut": z_cut, "distance_range": [float(dz.min()), float(dz.max())],
                              "nll_without": nll_z0, "nll_with": nll_z, "input": z_input}
        if not mass:  # the distance in the other inputs carries no variance: a zero term
            record.update({"a": [0.0] * len(a_z), "p": P_UNRESOLVED, "mass_term": "not fitted"})
    elif split is not None:
        found = redshift_values(dataset.param_names, dataset.params, dataset.redshift)
        if found is not None and np.ptp(found[0]) > 0:
            log.info("extrapolation variance in redshift: not fitted on its own (%s); a redshift outside the box "
                     "counts in the mass-calibrated term", split)
    return record
