"""Checks 1-4, on the data alone: inputs, targets, mask coverage and the train/validation shift.

What each check fails on is tabulated in :mod:`profemu.diagnose`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.diagnose.check import _MAX_INPUT_Z, CHECK_NAMES, Check, _fmt, _names

__all__ = [
    "check_inputs",
    "check_mask_coverage",
    "check_targets",
    "input_columns",
    "train_val_shift",
]

_LOG10_MASS_RANGE = (8.0, 16.0)
_MIN_FIELD_COVERAGE = 0.5
_MIN_RADIUS_COVERAGE = 0.1
_MAX_TARGET_ROBUST_Z = 50.0
_MAX_FIELD_SPAN_DEX = 20.0
_KS_P = 1e-3
_KS_STAT = 0.2
_MAD_TO_SIGMA = 1.4826


# ------------------------------------------------------------------ 1-3: data only
def input_columns(ds: ProfileDataset) -> dict[str, np.ndarray]:
    """Every raw input as a named column, as the model sees it before scaling.

    Args:
        ds: A dataset.

    Returns:
        Name -> [n] float64: each parameter (log10 of ``log_params``), ``"log10_mass"``,
        ``"pk_ratio[k=…]"`` per wavenumber when present, ``"redshift"`` when present.
    """
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(ds.param_names):
        col = ds.params[:, j]
        cols[name] = np.log10(col) if name in ds.log_params else col
    cols["log10_mass"] = ds.log10_mass
    if ds.pk_ratio is not None and ds.k is not None:
        for j, k in enumerate(ds.k):
            cols[f"pk_ratio[k={k:.3g}]"] = ds.pk_ratio[:, j]
    if ds.redshift is not None:
        cols["redshift"] = ds.redshift
    return cols


def check_inputs(ds: ProfileDataset, config: Config | None = None) -> Check:
    """Check 1: inputs finite, log parameters positive, masses plausible, nothing badly scaled.

    The scaling test fits the configured input transforms on ``ds`` and flags any
    normalised input with |z| > 50: a column whose scale is ~0 (e.g. a robust scale of 0
    because most values are identical) divides its outliers into huge numbers.

    Args:
        ds: The dataset (fields already selected).
        config: Supplies ``data`` (scalers, floor, features); default ``Config()``.

    Returns:
        The :class:`Check`.
    """
    from profemu.data.transforms import Transforms

    name = CHECK_NAMES[0]
    config = config or Config()
    problems: list[str] = []
    advice: list[str] = []
    raw = {"params": ds.params, "log10_mass": ds.log10_mass, "pk_ratio": ds.pk_ratio, "redshift": ds.redshift}
    bad = [f"{k} ({int((~np.isfinite(v)).sum())} non-finite)" for k, v in raw.items()
           if v is not None and not np.isfinite(v).all()]
    if bad:
        problems.append("non-finite " + ", ".join(bad))
        advice.append("remove or fix the non-finite rows")
    log_cols = [ds.param_names.index(p) for p in ds.log_params]
    nonpos = [ds.param_names[j] for j in log_cols if (ds.params[:, j] <= 0).any()]
    if nonpos:
        problems.append(f"log parameters <= 0: {nonpos}")
        advice.append("pass linear values > 0 for log_params (not their log10)")
    lo, hi = _LOG10_MASS_RANGE
    outside = (ds.log10_mass < lo) | (ds.log10_mass > hi)
    if outside.any():
        problems.append(
            f"{int(outside.sum())} log10_mass outside [{lo:g}, {hi:g}] "
            f"(range {_fmt(ds.log10_mass.min())}..{_fmt(ds.log10_mass.max())})"
        )
        advice.append("log10_mass must be log10(M/Msun), e.g. 13.5 (not ln M, not M in 1e10 Msun/h)")
    columns = input_columns(ds)
    constant = [k for k, v in columns.items() if np.ptp(v) == 0]
    if ds.redshift is not None and "redshift" in constant:
        constant.remove("redshift")  # a constant redshift is dropped by the transforms
    if constant:
        problems.append(f"constant column(s) {_names(constant)}")
        advice.append("constant inputs carry no information: drop them from the dataset")

    # The scale of each standardised input, before any relevance weighting shrinks it.
    t = Transforms.fit(ds, config.updated({"data.input_relevance": "off"}).data)
    inputs = t.transform_inputs(ds.params, ds.log10_mass, ds.pk_ratio, ds.redshift)
    worst, worst_name = 0.0, ""
    for block, values in inputs.items():
        labels = _block_labels(block, t, np.asarray(values).shape[1])
        z = np.abs(np.asarray(values, dtype=np.float64))
        col_max = z.max(axis=0)
        j = int(np.argmax(col_max))
        if col_max[j] > worst:
            worst, worst_name = float(col_max[j]), labels[j]
        absurd = [labels[i] for i in np.flatnonzero(col_max > _MAX_INPUT_Z)]
        if absurd:
            problems.append(f"normalised |z| > {_MAX_INPUT_Z:g} in {_names(absurd)}")
            advice.append(
                f"{_names(absurd)} have a near-zero {config.data.input_scaler} scale with outliers: "
                "drop or fix the outlier rows, use data.input_scaler: standard, or declare the "
                "parameter in log_params if it spans decades"
            )
    value = f"max normalised |z| = {_fmt(worst)} ({worst_name}); log10_mass {_fmt(ds.log10_mass.min())}..{_fmt(ds.log10_mass.max())}"
    if problems:
        return Check(name, False, "; ".join(problems), "; ".join(advice) + ".")
    return Check(name, True, value)


def _block_labels(block: str, t: Any, width: int) -> list[str]:
    """Names of the ``width`` columns of one input block of ``t`` (:class:`Transforms`).

    Parameters read ``"log10 <name>"`` when declared in ``log_params``, P(k) columns
    ``"pk_ratio[k=…]"`` (``"P(k) component j"`` under PCA), other blocks their name.
    """
    if block == "params":
        return [f"log10 {p}" if p in t.log_params else p for p in t.param_names]
    if block == "pk" and t.k is not None:
        if t.pk_pca is not None:
            return [f"P(k) component {j}" for j in range(width)]
        return [f"pk_ratio[k={k:.3g}]" for k in t.k]
    if width == 1:
        return [block]
    return [f"{block}[{j}]" for j in range(width)]


def check_targets(ds: ProfileDataset) -> Check:
    """Check 2: enough finite positive target entries per field and no extreme dynamic range.

    Fails when a field has fewer than 50 % valid (finite, > 0, unmasked) entries, when a
    valid log10 entry lies more than 50 robust sigma (1.4826 MAD) from the median of its
    radius (a placeholder such as 1e-30 for "missing"), or when a field spans more than
    20 dex.

    Args:
        ds: The dataset (fields already selected).

    Returns:
        The :class:`Check`.
    """
    name = CHECK_NAMES[1]
    problems: list[str] = []
    advice: list[str] = []
    parts: list[str] = []
    for f in ds.fields:
        raw = ds.profiles[f]
        valid = ds.mask[f]
        coverage = float(valid.mean())
        n_nonfinite = int((~np.isfinite(raw)).sum())
        n_nonpos = int((np.isfinite(raw) & (raw <= 0)).sum())
        parts.append(f"{f}: {100 * coverage:.1f}% valid")
        if coverage < _MIN_FIELD_COVERAGE:
            problems.append(
                f"{f}: only {100 * coverage:.1f}% valid ({n_nonfinite} non-finite, {n_nonpos} <= 0)"
            )
            advice.append(
                f"field {f!r} is mostly missing: drop it (data.fields) or fix how it is computed; "
                "a model fitted to a few entries per row extrapolates the rest"
            )
        y = ds.log10_profile(f)
        if not valid.any():
            continue
        with np.errstate(all="ignore"):
            median = np.nanmedian(np.where(valid.any(axis=0), y, 0.0), axis=0)
            mad = _MAD_TO_SIGMA * np.nanmedian(np.abs(y - median), axis=0)
            z = np.abs(y - median) / np.maximum(mad, 1e-6)
        z = np.where(valid, z, 0.0)
        n_out = int((z > _MAX_TARGET_ROBUST_Z).sum())
        if n_out:
            i, j = np.unravel_index(int(np.argmax(z)), z.shape)
            problems.append(
                f"{f}: {n_out} entries > {_MAX_TARGET_ROBUST_Z:g} robust sigma from the median of "
                f"their radius (worst row {i}, radius {j}: log10 = {_fmt(y[i, j])} vs median {_fmt(median[j])})"
            )
            advice.append(
                f"field {f!r} has extreme outliers (placeholders such as 1e-30 or unit mix-ups?): "
                "mask them (mask=False) or fix them"
            )
        span = float(np.nanmax(y) - np.nanmin(y))
        if span > _MAX_FIELD_SPAN_DEX:
            problems.append(f"{f}: spans {span:.1f} dex")
            advice.append(f"field {f!r} spans more than {_MAX_FIELD_SPAN_DEX:g} dex: check its units")
    if problems:
        return Check(name, False, "; ".join(problems), "; ".join(advice) + ".")
    return Check(name, True, ", ".join(parts))


def check_mask_coverage(ds: ProfileDataset) -> Check:
    """Check 3: every radius of every field has at least 10 % valid entries.

    Args:
        ds: The dataset (fields already selected).

    Returns:
        The :class:`Check`; ``value`` names the worst-covered radius.
    """
    name = CHECK_NAMES[2]
    worst = (2.0, "", 0)
    sparse: list[str] = []
    for f in ds.fields:
        per_radius = ds.mask[f].mean(axis=0)
        j = int(np.argmin(per_radius))
        if per_radius[j] < worst[0]:
            worst = (float(per_radius[j]), f, j)
        for jj in np.flatnonzero(per_radius < _MIN_RADIUS_COVERAGE):
            sparse.append(f"{f} at r={_fmt(ds.radius[jj])} {ds.radius_unit} ({100 * per_radius[jj]:.1f}%)")
    cov, f, j = worst
    value = f"lowest coverage {100 * cov:.1f}% ({f} at r={_fmt(ds.radius[j])} {ds.radius_unit})"
    if sparse:
        return Check(
            name, False, f"{len(sparse)} radius bin(s) < {100 * _MIN_RADIUS_COVERAGE:.0f}% valid: {_names(sparse, 3)}",
            "Cut these radii from the grid (they are learnt from a handful of rows and extrapolated "
            "for the rest) or check why the profiles are empty there (resolution, empty outer bins).",
        )
    return Check(name, True, value)


# ------------------------------------------------------------------- 4: split shift
def train_val_shift(
    train: Mapping[str, Any],
    val: Mapping[str, Any],
    *,
    p_threshold: float = _KS_P,
    ks_threshold: float = _KS_STAT,
) -> Check:
    """Check 4 on named samples: two-sample KS test per input between training and validation.

    Args:
        train: Input name -> training values [n_train].
        val: Input name -> validation values [n_val] (same names).
        p_threshold: An input fails when its p-value is below this ...
        ks_threshold: ... and its KS statistic is above this (a large, significant shift).

    Returns:
        The :class:`Check`; ``value`` gives the largest KS statistic and its input.
    """
    from scipy.stats import ks_2samp

    name = CHECK_NAMES[3]
    n_val = min((np.asarray(v).size for v in val.values()), default=0)
    if n_val < 5:
        return Check(name, True, f"skipped: {n_val} validation row(s) are too few for a KS test",
                     "Set data.val_fraction so that the validation split has a few groups.")
    results = []
    for key, a in train.items():
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(val[key], dtype=np.float64)
        if np.ptp(np.concatenate([a, b])) == 0:
            continue
        res = ks_2samp(a, b)
        results.append((float(res.statistic), float(res.pvalue), key))
    if not results:
        return Check(name, True, "no varying inputs to compare")
    results.sort(reverse=True)
    shifted = [r for r in results if r[1] < p_threshold and r[0] > ks_threshold]
    if shifted:
        listed = _names([f"{k} (KS {s:.2f}, p {p:.1e})" for s, p, k in shifted], 3)
        return Check(
            name, False, f"validation inputs shifted: {listed}",
            "The validation groups do not look like the training groups, so early stopping and "
            "the validation loss measure extrapolation. Try another data.split_seed or a larger "
            "data.val_fraction, and check that the groups are not ordered or clustered in these "
            "inputs (e.g. a separate simulation suite held out as validation).",
        )
    s, p, k = results[0]
    return Check(name, True, f"max KS {s:.2f} ({k}, p {p:.2g}) over {len(results)} inputs")


def _shift_check(prep: Any) -> Check:
    """Check 4 on the prepared split (skipped without a validation split)."""
    if len(prep.split.val) == 0:
        return Check(CHECK_NAMES[3], True, "skipped: no validation split (data.val_fraction = 0)")
    return train_val_shift(_group_columns(prep.train), _group_columns(prep.val))


def _group_columns(ds: ProfileDataset) -> dict[str, np.ndarray]:
    """Input columns with one value per group where the input is constant within groups.

    Rows of one simulation share its parameters, so they are not independent draws; the
    KS test then sees one sample per simulation (rows where the input varies, e.g. mass).
    """
    columns = input_columns(ds)
    if ds.groups is None:
        return columns
    order = np.argsort(ds.groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(ds.groups[order]) != 0])
    out = {}
    for key, col in columns.items():
        sorted_col = col[order]
        first = sorted_col[starts]
        constant = np.array_equal(np.repeat(first, np.diff(np.r_[starts, col.size])), sorted_col)
        out[key] = first if constant else col
    return out
