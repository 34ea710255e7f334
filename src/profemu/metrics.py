"""Accuracy and calibration metrics of profile predictions, in log10 units.

Every predictor in profemu (the :class:`~profemu.emulator.Emulator` and the classic
baselines of :mod:`profemu.baselines`) returns, per field, a predictive mean and
variance of log10(profile) of shape [n, n_r]. This module scores them against a
:class:`~profemu.data.dataset.ProfileDataset` on valid (unmasked) entries only:

* fractional error ``|10^pred - 10^true| / 10^true = |10^(pred - true) - 1|``
  (median, 68th and 95th percentile), the RMSE in dex and the mean Gaussian
  negative log-likelihood per element;
* coverage of the central 68% / 95% predictive intervals;
* with known per-element target noise (``dataset.noise``, the standard error of
  log10 of the target in dex), the *noise floor*: the fractional error that a
  perfect, noiseless emulator would show against the noisy targets.

Everything is numpy (scipy is imported inside the functions that need it); nothing
here imports JAX. All returned numbers are
plain Python floats/ints (non-finite values become ``None``), so a metrics dict can
be written to JSON as is with :func:`write_metrics`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from profemu._files import atomic_write_text, json_safe
from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError

__all__ = [
    "Z_68",
    "Z_95",
    "Predictor",
    "calibration_curve",
    "evaluate",
    "evaluate_predictions",
    "fit_variance_scale",
    "frac_error_by_radius",
    "ml_variance_scale",
    "noise_floor_quantile",
    "predict_dataset",
    "profile_metrics",
    "write_metrics",
]

Z_68 = 0.9945
"""Half-width, in standard deviations, of the central 68% interval of a Gaussian."""
Z_95 = 1.96
"""Half-width, in standard deviations, of the central 95% interval of a Gaussian."""

_LOG_2PI = math.log(2.0 * math.pi)

Prediction = Mapping[str, tuple[np.ndarray, np.ndarray]]


class Predictor(Protocol):
    """Anything with the Emulator's ``predict`` signature (the Emulator and every baseline)."""

    def predict(
        self,
        params: np.ndarray,
        log10_mass: np.ndarray,
        pk_ratio: np.ndarray | None = None,
        redshift: np.ndarray | None = None,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Return ``{field: (mean_log10 [n, n_r], var_log10 [n, n_r])}``."""
        ...


# ---------------------------------------------------------------------- helpers
def _as_2d(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: could not be converted to a float array ({exc}).") from None
    if arr.ndim != 2:
        raise DataError(f"{name}: expected shape [n, n_r], got {arr.shape}.")
    if shape is not None and arr.shape != shape:
        raise DataError(f"{name}: shape {arr.shape} does not match the target's {shape}.")
    return arr


def _valid_entries(
    mean_log10: Any, var_log10: Any, true_log10: Any, mask: Any, noise_dex: Any | None, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes and return (mean, var, true, valid, noise) with ``valid`` = mask & finite truth."""
    true = _as_2d(true_log10, f"{what} true_log10")
    mean = _as_2d(mean_log10, f"{what} mean_log10", true.shape)
    var = _as_2d(var_log10, f"{what} var_log10", true.shape)
    m = np.asarray(mask)
    if m.shape != true.shape:
        raise DataError(f"{what} mask: shape {m.shape} does not match the target's {true.shape}.")
    valid = m.astype(bool) & np.isfinite(true)
    noise = None
    if noise_dex is not None:
        noise = _as_2d(noise_dex, f"{what} noise_dex", true.shape)
        bad = valid & ~(np.isfinite(noise) & (noise >= 0))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(
                f"{what} noise_dex: row {i}, column {j} is {noise[i, j]} at a valid entry; the noise "
                "must be finite and >= 0 [dex] (or mask the entry)."
            )
    bad = valid & ~(np.isfinite(mean) & np.isfinite(var) & (var > 0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{what} prediction: row {i}, column {j} has mean {mean[i, j]} and variance {var[i, j]}; "
            f"predictions must be finite with variance > 0 at every valid entry ({int(bad.sum())} "
            "bad entries). Check the predictor (non-finite weights, inputs outside its range)."
        )
    return mean, var, true, valid, noise


def noise_floor_quantile(noise_dex: np.ndarray, q: float | Sequence[float]) -> np.ndarray:
    """Exact quantiles of the fractional error a perfect emulator shows against noisy targets.

    A perfect, noiseless emulator predicts the true log10 profile; a target with
    Gaussian noise ``e ~ N(0, sigma_i)`` [dex] then shows the fractional error
    ``|10^e - 1|``. Pooling the elements ``i`` (as the metrics pool entries), the
    cumulative distribution of that error at ``t = 10^u - 1`` (``u >= 0``) is

        F(u) = mean_i [ Phi(u / sigma_i) - Phi(log10(2 - 10^u) / sigma_i) ],

    with the second term 0 once ``10^u >= 2``. ``F`` is solved for each quantile
    with a scalar root finder, so the result is exact (no Monte Carlo).

    Args:
        noise_dex: Per-element noise standard deviation [dex], any shape; entries
            must be finite and >= 0 (0 means a noiseless element).
        q: Quantile(s) in (0, 1).

    Returns:
        The fractional-error quantiles, shape of ``np.atleast_1d(q)``.
    """
    from scipy import optimize, special

    sigma = np.asarray(noise_dex, dtype=np.float64).ravel()
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if sigma.size == 0:
        return np.full(qs.shape, np.nan)
    noisy = sigma > 0
    frac_noiseless = 1.0 - noisy.mean()
    s = sigma[noisy]
    out = np.zeros(qs.shape)
    if s.size == 0:
        return out

    def cdf(u: float) -> float:
        upper = special.ndtr(u / s)
        lower = special.ndtr(math.log10(2.0 - 10.0**u) / s) if 10.0**u < 2.0 else 0.0
        return frac_noiseless + noisy.mean() * float(np.mean(upper - lower))

    u_max = 12.0 * float(s.max())
    for i, qi in enumerate(qs):
        if not 0.0 < qi < 1.0:
            raise DataError(f"q: quantile {qi} is not in (0, 1).")
        if cdf(0.0) >= qi:  # enough noiseless elements: the quantile is 0
            continue
        u = optimize.brentq(lambda u, qi=qi: cdf(u) - qi, 0.0, u_max, xtol=1e-12, rtol=1e-12)
        out[i] = 10.0**u - 1.0
    return out


def _quantile_or_nan(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else float("nan")


# ---------------------------------------------------------------------- metrics
def profile_metrics(
    mean_log10: np.ndarray,
    var_log10: np.ndarray,
    true_log10: np.ndarray,
    mask: np.ndarray,
    noise_dex: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy and calibration of one field's predictions over its valid entries.

    Args:
        mean_log10: Predicted mean of log10(profile), [n, n_r].
        var_log10: Predicted variance of log10(profile) [dex^2], [n, n_r], > 0 at
            valid entries.
        true_log10: Target log10(profile), [n, n_r]; NaN entries are treated as invalid.
        mask: bool [n, n_r], True where the target is usable. Entries with mask False
            are excluded from every number.
        noise_dex: Optional standard error of the target's log10 [dex], [n, n_r].

    Returns:
        A JSON-safe dict with

        * ``frac_err_median``, ``frac_err_p68``, ``frac_err_p95``: quantiles of the
          fractional error ``|10^(pred - true) - 1|``;
        * ``rmse_dex``: root mean square of ``pred - true`` [dex];
        * ``nll``: mean Gaussian negative log-likelihood per element in log10 units,
          ``0.5 * (log(2 pi v) + (pred - true)^2 / v)`` with ``v = var + noise^2``: the
          likelihood of the noisy held-out target, consistent with the coverage below
          (``v = var`` without ``noise_dex``);
        * ``coverage_68``, ``coverage_95``: fraction of entries with
          ``|pred - true| <= z * sqrt(var + noise^2)`` (z = 0.9945, 1.96); the noise
          term is 0 without ``noise_dex``. Against noisy held-out targets this is the
          honest interval;
        * ``per_radius``: ``{"frac_err_median", "rmse_dex", "coverage_68"}`` lists over
          the ``n_r`` radii (``None`` for a radius without valid entries);
        * ``n_valid``: number of valid entries.

        With ``noise_dex`` also

        * ``coverage_68_model``, ``coverage_95_model``, ``nll_model``: the same coverage
          and NLL with the model variance alone;
        * ``noise_floor_frac_median``, ``noise_floor_frac_p68``: exact quantiles (see
          :func:`noise_floor_quantile`) of the fractional error that a perfect,
          noiseless emulator would show against these noisy targets, pooled over
          the valid entries like ``frac_err_*``;
        * ``error_to_noise_floor``: ``frac_err_median / noise_floor_frac_median``
          (1 means "as good as the data allow"; ``None`` when the floor is 0).

    Raises:
        DataError: on mismatched shapes, negative/non-finite noise or a non-finite
            prediction (or variance <= 0) at a valid entry.
    """
    mean, var, true, valid, noise = _valid_entries(
        mean_log10, var_log10, true_log10, mask, noise_dex, "profile_metrics:"
    )
    err = np.where(valid, mean - true, 0.0)
    var_v = np.where(valid, var, 1.0)
    total_var = var_v if noise is None else var_v + np.where(valid, noise, 0.0) ** 2
    frac = np.abs(np.expm1(err * math.log(10.0)))
    inside_68 = np.abs(err) <= Z_68 * np.sqrt(total_var)
    inside_95 = np.abs(err) <= Z_95 * np.sqrt(total_var)

    e, f = err[valid], frac[valid]
    n_valid = int(valid.sum())
    nll = 0.5 * (_LOG_2PI + np.log(total_var[valid]) + e**2 / total_var[valid])

    out: dict[str, Any] = {
        "frac_err_median": _quantile_or_nan(f, 0.5),
        "frac_err_p68": _quantile_or_nan(f, 0.68),
        "frac_err_p95": _quantile_or_nan(f, 0.95),
        "rmse_dex": float(np.sqrt(_mean_or_nan(e**2))),
        "nll": _mean_or_nan(nll),
        "coverage_68": _mean_or_nan(inside_68[valid]),
        "coverage_95": _mean_or_nan(inside_95[valid]),
        "per_radius": _per_radius_metrics(err, frac, inside_68, valid),
        "n_valid": n_valid,
    }
    if noise is not None:
        out.update(_noise_metrics(e, var_v[valid], noise[valid], out["frac_err_median"]))
    return json_safe(out)


def _mean_or_nan(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _per_radius_metrics(
    err: np.ndarray, frac: np.ndarray, inside_68: np.ndarray, valid: np.ndarray
) -> dict[str, list[float]]:
    """``frac_err_median``, ``rmse_dex`` and ``coverage_68`` at each radius (NaN without valid entries)."""
    per_radius: dict[str, list[float]] = {"frac_err_median": [], "rmse_dex": [], "coverage_68": []}
    for j in range(valid.shape[1]):
        vj = valid[:, j]
        if vj.any():
            per_radius["frac_err_median"].append(float(np.median(frac[vj, j])))
            per_radius["rmse_dex"].append(float(np.sqrt(np.mean(err[vj, j] ** 2))))
            per_radius["coverage_68"].append(float(inside_68[vj, j].mean()))
        else:
            for key in per_radius:
                per_radius[key].append(float("nan"))
    return per_radius


def _noise_metrics(e: np.ndarray, var: np.ndarray, noise: np.ndarray, frac_err_median: float) -> dict[str, Any]:
    """Model-only coverage and NLL and the noise floor, from the valid entries' errors, variances and noise."""
    out: dict[str, Any] = {}
    sd = np.sqrt(var)
    out["coverage_68_model"] = _mean_or_nan(np.abs(e) <= Z_68 * sd)
    out["coverage_95_model"] = _mean_or_nan(np.abs(e) <= Z_95 * sd)
    out["nll_model"] = _mean_or_nan(0.5 * (_LOG_2PI + np.log(var) + e**2 / var))
    floor = noise_floor_quantile(noise, [0.5, 0.68])
    out["noise_floor_frac_median"] = float(floor[0])
    out["noise_floor_frac_p68"] = float(floor[1])
    out["error_to_noise_floor"] = frac_err_median / float(floor[0]) if floor[0] > 0 else float("nan")
    return out


def _truth_arrays(
    truth: ProfileDataset | Mapping[str, Any],
    field: str,
    noise: Mapping[str, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(true_log10, mask, noise_dex or None) of ``field`` from a dataset or a mapping."""
    if isinstance(truth, ProfileDataset):
        if field not in truth.fields:
            raise DataError(
                f"prediction field {field!r} is not in the dataset; its fields are {list(truth.fields)}. "
                "Evaluate on a dataset with the fields the predictor was trained on."
            )
        ds_noise = truth.noise.get(field) if truth.noise else None
        return truth.log10_profile(field), truth.mask[field], ds_noise
    if field not in truth:
        raise DataError(
            f"prediction field {field!r} is not in the truth mapping; its fields are {list(truth)}."
        )
    true = _as_2d(truth[field], f"truth[{field!r}]")
    return true, np.isfinite(true), None if noise is None else noise.get(field)


def evaluate_predictions(
    pred: Prediction,
    truth: ProfileDataset | Mapping[str, np.ndarray],
    *,
    noise_dex: Mapping[str, np.ndarray] | None = None,
    use_noise: bool = True,
) -> dict[str, Any]:
    """Metrics of every predicted field and of all fields pooled.

    Args:
        pred: ``{field: (mean_log10, var_log10)}``, each [n, n_r], as returned by a
            predictor's ``predict``. Only these fields are scored.
        truth: A :class:`ProfileDataset` (mask and ``noise`` taken from it) or a
            mapping ``{field: true_log10 [n, n_r]}`` with NaN marking invalid entries.
        noise_dex: Per-field noise [dex] when ``truth`` is a mapping (ignored for a
            dataset, which carries its own).
        use_noise: Use the target noise for coverage and the noise floor (set False
            to score against the targets as if they were exact).

    Returns:
        ``{"fields": {field: metrics}, "overall": metrics}``, each metrics dict as in
        :func:`profile_metrics`. ``overall`` pools the valid entries of all fields
        (its ``per_radius`` pools the fields at each radius). Noise keys appear in
        ``overall`` only when every field has noise.

    Raises:
        DataError: if ``pred`` is empty, names a field the truth lacks, or shapes differ.
    """
    if not pred:
        raise DataError("pred: no field predicted; pass {field: (mean_log10, var_log10)}.")
    fields_out: dict[str, Any] = {}
    stacks: dict[str, list[np.ndarray]] = {"mean": [], "var": [], "true": [], "mask": [], "noise": []}
    all_noise = use_noise
    for field, pair in pred.items():
        try:
            mean, var = pair
        except (TypeError, ValueError):
            raise DataError(
                f"pred[{field!r}]: expected a (mean_log10, var_log10) pair, got {type(pair).__name__}."
            ) from None
        true, mask, noise = _truth_arrays(truth, field, noise_dex)
        noise = noise if use_noise else None
        fields_out[field] = profile_metrics(mean, var, true, mask, noise)
        stacks["mean"].append(np.asarray(mean, dtype=np.float64))
        stacks["var"].append(np.asarray(var, dtype=np.float64))
        stacks["true"].append(true)
        stacks["mask"].append(np.asarray(mask, dtype=bool))
        if noise is None:
            all_noise = False
        else:
            stacks["noise"].append(np.asarray(noise, dtype=np.float64))
    shapes = {a.shape[1] for a in stacks["true"]}
    if len(shapes) > 1:
        raise DataError(f"pred: fields have different numbers of radii {sorted(shapes)}; cannot pool them.")
    overall = profile_metrics(
        np.concatenate(stacks["mean"]),
        np.concatenate(stacks["var"]),
        np.concatenate(stacks["true"]),
        np.concatenate(stacks["mask"]),
        np.concatenate(stacks["noise"]) if all_noise else None,
    )
    return {"fields": fields_out, "overall": overall}


def write_metrics(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Write a metrics dict to a JSON file (strict JSON: non-finite numbers become null).

    Args:
        metrics: Output of :func:`evaluate`, :func:`evaluate_predictions` or
            :func:`profile_metrics` (or any nested dict of numbers/lists/strings).
        path: Destination ``.json`` file; parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(metrics), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return path


def _subset(dataset: ProfileDataset, split: Any) -> ProfileDataset:
    """Rows ``split`` (integer indices or a boolean row mask) of ``dataset``."""
    if split is None:
        return dataset
    idx = np.asarray(split)
    if idx.dtype != bool and idx.dtype.kind not in "iu":
        raise DataError(f"split: expected row indices (int) or a boolean mask, got dtype {idx.dtype}.")
    try:
        rows = np.arange(dataset.n)[idx]
    except IndexError as exc:
        raise DataError(f"split: does not index a dataset of {dataset.n} rows ({exc}).") from None
    if rows.size == 0:
        raise DataError("split: selects no rows; pass the indices of at least one example.")
    return dataset.subset(rows)


def predict_dataset(predictor: Predictor, dataset: ProfileDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Call ``predictor.predict`` on the inputs of ``dataset`` and return numpy arrays.

    Held-out simulations routinely sit just outside the training box, so the
    extrapolation warning is not raised here (an Emulator set to ``"error"`` still raises).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="inputs outside the training box")
        out = predictor.predict(
            dataset.params, dataset.log10_mass, pk_ratio=dataset.pk_ratio, redshift=dataset.redshift
        )
    return {f: (np.asarray(m, dtype=np.float64), np.asarray(v, dtype=np.float64))
            for f, (m, v) in ((f, _mean_var(p)) for f, p in out.items())}


def _mean_var(prediction: Any) -> tuple[Any, Any]:
    """``(mean, var)`` of an Emulator's :class:`~profemu.emulator.Prediction` or of a ``(mean, var)`` pair."""
    if hasattr(prediction, "mean") and hasattr(prediction, "var"):
        return prediction.mean, prediction.var
    mean, var = prediction
    return mean, var


def evaluate(predictor: Predictor, dataset: ProfileDataset, *, split: Any = None) -> dict[str, Any]:
    """Predict the rows of ``dataset`` and score them (see :func:`evaluate_predictions`).

    Args:
        predictor: Any object with ``predict(params, log10_mass, pk_ratio=None,
            redshift=None) -> {field: (mean_log10, var_log10)}`` (an Emulator or a
            baseline). ``params`` are passed raw (linear), as stored in the dataset.
        dataset: The held-out data, with targets, mask and optional noise.
        split: Optional row indices (or a boolean row mask) to score, e.g. ``split.test``.

    Returns:
        ``{"fields": {field: metrics}, "overall": metrics}``, JSON-safe.

    Raises:
        DataError: ``dataset`` is on another radial or k grid than the predictor's
            transforms (checked when the predictor has ``transforms``).
    """
    ds = _subset(dataset, split)
    # an Emulator knows its grids: refuse data on another radial/k grid instead of scoring it
    check = getattr(getattr(predictor, "transforms", None), "check_compatible", None)
    if callable(check):
        check(ds)
    return evaluate_predictions(predict_dataset(predictor, ds), ds)


# ---------------------------------------------------------------------- calibration
def _pooled_residuals(
    pred: Prediction, truth: ProfileDataset, *, use_noise: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(err, model var, noise var) over the valid entries of all predicted fields, 1-D."""
    errs, vars_, noises = [], [], []
    for field, (mean, var) in pred.items():
        true, mask, noise = _truth_arrays(truth, field, None)
        m, v, t, valid, nz = _valid_entries(mean, var, true, mask, noise if use_noise else None, field)
        errs.append((m - t)[valid])
        vars_.append(v[valid])
        noises.append(np.zeros(int(valid.sum())) if nz is None else nz[valid] ** 2)
    return np.concatenate(errs), np.concatenate(vars_), np.concatenate(noises)


def fit_variance_scale(
    pred: Prediction, truth_dataset: ProfileDataset, *, use_noise: bool = True,
    known_var: Mapping[str, np.ndarray] | None = None,
) -> float:
    """Maximum-likelihood multiplicative scale of the predicted variance, fitted on validation data.

    Finds ``s`` maximising ``sum_i log N(true_i; mean_i, s * var_i + noise_i^2)`` over the
    valid entries of all predicted fields, a 1-D bounded optimisation in ``log s``
    (``scipy.optimize.minimize_scalar``, method ``"bounded"``). Without noise this is
    ``mean(err^2 / var)``. The known target noise is kept unscaled: only the model's
    own variance is recalibrated. Multiply future predicted variances by ``s``.

    Args:
        pred: ``{field: (mean_log10, var_log10)}`` on the rows of ``truth_dataset``.
        truth_dataset: Validation data (never the test set).
        use_noise: Include ``truth_dataset.noise`` in the likelihood.
        known_var: ``{field: [n, n_r]}`` more variance of the residuals [dex²] kept
            unscaled, like the noise (e.g. what a single network's error adds to the
            ensemble's, see :mod:`profemu.train.cv`).

    Returns:
        The scale ``s``, clipped to [1e-3, 1e3].

    Raises:
        DataError: if there is no valid entry or shapes do not match.
    """
    err, var, noise_var = _pooled_residuals(pred, truth_dataset, use_noise=use_noise)
    if err.size == 0:
        raise DataError("fit_variance_scale: no valid entry to fit on; pass validation data with targets.")
    if known_var is not None:  # the same valid entries: the model variance is > 0 wherever it is
        noise_var = noise_var + _pooled_residuals({f: (m, v + known_var[f]) for f, (m, v) in pred.items()},
                                                  truth_dataset, use_noise=False)[1] - var
    return ml_variance_scale(err, var, noise_var)


def ml_variance_scale(err: np.ndarray, var: np.ndarray, noise_var: np.ndarray | float = 0.0) -> float:
    """The ``s`` in [1e-3, 1e3] maximising ``sum_i log N(err_i; 0, s * var_i + noise_var_i)``.

    Args:
        err: Residuals [dex], any shape.
        var: Model variances [dex²], same shape.
        noise_var: Known noise variances [dex²], kept unscaled (broadcast).
    """
    from scipy import optimize

    def neg_log_lik(log_s: float) -> float:
        total = math.exp(log_s) * var + noise_var
        return float(0.5 * np.sum(np.log(total) + err**2 / total))

    res = optimize.minimize_scalar(neg_log_lik, bounds=(math.log(1e-3), math.log(1e3)), method="bounded",
                                   options={"xatol": 1e-8})
    return float(np.clip(math.exp(float(res.x)), 1e-3, 1e3))


def calibration_curve(
    mean: np.ndarray,
    var: np.ndarray,
    true: np.ndarray,
    mask: np.ndarray,
    noise: np.ndarray | None = None,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed coverage of central Gaussian intervals against the nominal level.

    For each level ``p`` the interval is ``|pred - true| <= z_p * sqrt(var + noise^2)``
    with ``z_p = Phi^-1((1 + p) / 2)``; a calibrated predictor gives ``observed ≈ p``.

    Args:
        mean: Predicted log10 means, [n, n_r] (any shape, matching the others).
        var: Predicted log10 variances [dex^2].
        true: Target log10 values (NaN = invalid).
        mask: bool, True where the target is usable.
        noise: Optional target noise [dex].
        levels: Nominal central probabilities in (0, 1); default 0.05, 0.10, ..., 0.95.

    Returns:
        ``(levels, observed)``, both float arrays of shape [len(levels)] (observed is
        NaN when there is no valid entry).
    """
    from scipy import special

    levels = np.linspace(0.05, 0.95, 19) if levels is None else np.asarray(levels, dtype=np.float64)
    if levels.ndim != 1 or ((levels <= 0) | (levels >= 1)).any():
        raise DataError("levels: expected a 1-D array of probabilities in (0, 1).")
    t = np.asarray(true, dtype=np.float64)
    shape2d = (t.size // t.shape[-1], t.shape[-1]) if t.ndim else (1, 1)
    def r(a: Any) -> np.ndarray:
        return np.asarray(a).reshape(shape2d)
    m, v, tt, valid, nz = _valid_entries(
        r(mean), r(var), r(t), r(mask), None if noise is None else r(noise), "calibration_curve:"
    )
    err = np.abs(m - tt)[valid]
    sd = np.sqrt(v[valid] + (0.0 if nz is None else nz[valid] ** 2))
    z = special.ndtri(0.5 * (1.0 + levels))
    if err.size == 0:
        return levels, np.full(levels.shape, np.nan)
    observed = np.array([(err <= zi * sd).mean() for zi in z])
    return levels, observed


def frac_error_by_radius(
    mean_log10: np.ndarray, true_log10: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median and 68th percentile of the fractional error at each radius.

    Args:
        mean_log10: Predicted log10 profile, [n, n_r].
        true_log10: Target log10 profile, [n, n_r] (NaN = invalid).
        mask: bool [n, n_r], True where the target is usable.

    Returns:
        ``(median, p68)``, each [n_r]; NaN at radii without a valid entry.
    """
    mean = np.asarray(mean_log10, dtype=np.float64)
    true = np.asarray(true_log10, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool) & np.isfinite(true) & np.isfinite(mean)
    frac = np.abs(np.expm1(np.where(valid, mean - true, 0.0) * math.log(10.0)))
    n_r = true.shape[1]
    med = np.full(n_r, np.nan)
    p68 = np.full(n_r, np.nan)
    for j in range(n_r):
        v = frac[valid[:, j], j]
        if v.size:
            med[j] = np.median(v)
            p68[j] = np.quantile(v, 0.68)
    return med, p68
