"""Cross-validation by simulation, then a refit on every row.

On a suite of a few hundred simulations every row matters: holding 10% out for early
stopping and 10% for a test leaves the emulator 80% of the data. Here the error is
estimated instead by K-fold cross-validation by simulation (groups), and the final
Emulator learns from every row:

1. the training rows are dealt into ``K`` folds by simulation
   (:func:`profemu.data.split.group_kfold`, stratified in mass);
2. for each fold an ensemble is trained on the other folds (transforms fitted on them
   only) with early stopping on the fold, which it then predicts: the *out-of-fold*
   predictions of every row;
3. the variance scale is fitted on the pooled out-of-fold predictions
   (:func:`profemu.metrics.fit_variance_scale`), and the cross-validated metrics are
   scored on them with that scale (one number fitted on thousands of entries);
4. the epoch count of the refit is the median over folds and members of the best epoch;
5. the final ensemble is trained on all the rows for that many epochs.

:class:`CrossValidation` keeps the estimates (pooled metrics, their spread over the
folds, the out-of-fold predictions) for ``cv.json``, the report and ``profemu compare``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator.covariance import (
    ResidualCovariance,
    estimate_for_dataset,
    prediction_residuals,
)
from profemu.errors import DataError
from profemu.metrics import evaluate_predictions, fit_variance_scale
from profemu.train.builder import fit_and_predict, fold_problems, fold_rows
from profemu.train.setup import Prepared, prepare

__all__ = ["CV_AUTO_MAX_GROUPS", "CrossValidation", "cross_validate", "fit_residual_covariance", "folds_for"]

logger = logging.getLogger(__name__)

#: ``train.cv_folds = None`` cross-validates suites of up to this many simulations.
CV_AUTO_MAX_GROUPS = 3000
_AUTO_FOLDS = 5


def folds_for(dataset: ProfileDataset, config: Config) -> int:
    """The number of cross-validation folds of a run (0 = a validation split instead)."""
    k = config.train.cv_folds
    n_groups = int(np.unique(dataset.groups).size) if dataset.groups is not None else dataset.n
    if k is None:
        k = _AUTO_FOLDS if n_groups <= CV_AUTO_MAX_GROUPS else 0
    if k and n_groups < k:
        raise DataError(f"train.cv_folds: {k} folds but the data hold {n_groups} simulations; lower it.")
    return int(k)


@dataclass
class CrossValidation:
    """The estimates of a K-fold cross-validation by simulation.

    Attributes:
        folds: Number of folds.
        rows: Dataset rows in the order of the out-of-fold predictions [n].
        fold_of_row: Fold of each of those rows [n].
        predictions: ``{field: (mean, var)}`` out-of-fold log10 predictions [n, n_r]
            (``var`` without the variance scale).
        variance_scale: Scale fitted on the pooled out-of-fold predictions (1 without
            calibration).
        metrics: :func:`~profemu.metrics.evaluate_predictions` of the out-of-fold
            predictions (variance scaled): the cross-validated error of the Emulator.
        fold_metrics: The same per fold (``overall`` only).
        best_epochs: Per fold, each member's best epoch (0-based; -1 = never improved).
        refit_epochs: Epochs of the refit on every row.
        fit_seconds: Per fold.
    """

    folds: int
    rows: np.ndarray
    fold_of_row: np.ndarray
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    variance_scale: float
    metrics: dict[str, Any]
    fold_metrics: list[dict[str, Any]]
    best_epochs: list[list[int]]
    refit_epochs: int
    fit_seconds: list[float] = field(default_factory=list)

    def residual_covariance(self, dataset: ProfileDataset, *, subtract_noise: bool = True,
                            method: str | None = None) -> ResidualCovariance:
        """The emulator-error covariance between fields, radii and mass bins from the out-of-fold residuals.

        Args:
            dataset: The cross-validated run's dataset (rows indexed by :attr:`rows`).
            subtract_noise: Remove the known stacking noise from the per-row covariance.
            method: Description stored with the estimate.

        Raises:
            DataError: it cannot be estimated (e.g. one halo per simulation: no pairs).
        """
        fields = tuple(self.predictions)
        truth = dataset.subset(self.rows)
        return estimate_for_dataset(
            truth, prediction_residuals(truth, self.predictions, fields), fields, subtract_noise=subtract_noise,
            meta={"method": method or f"out-of-fold residuals of a {self.folds}-fold cross-validation by simulation",
                  "n_rows": int(truth.n)},
        )

    def summary(self) -> dict[str, Any]:
        """JSON-safe record (``cv.json``): metrics, their spread over folds, epochs, scale."""
        keys = ("frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "coverage_68", "coverage_95")
        spread = {}
        for k in keys:
            values = np.array([m.get(k, np.nan) for m in self.fold_metrics], dtype=float)
            spread[k] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)),
                         "min": float(np.nanmin(values)), "max": float(np.nanmax(values))}
        return {
            "estimate": "cross-validation by simulation: out-of-fold predictions of models trained on the other folds",
            "folds": self.folds,
            "n_rows": int(self.rows.size),
            "metrics": self.metrics,
            "fold_metrics": self.fold_metrics,
            "spread_over_folds": spread,
            "variance_scale": self.variance_scale,
            "best_epochs": self.best_epochs,
            "refit_epochs": self.refit_epochs,
            "fit_seconds": self.fit_seconds,
            "rows": self.rows.tolist(),
            "fold_of_row": self.fold_of_row.tolist(),
        }


def cross_validate(
    prepared: Prepared,
    config: Config,
    folds: int,
    *,
    callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
) -> CrossValidation:
    """K-fold cross-validation by simulation on the training rows of ``prepared``.

    Args:
        prepared: The run's data: ``split.train`` are the rows to cross-validate (the
            test rows, if any, are never touched).
        config: The run configuration.
        folds: ``K >= 2``.
        callbacks: Called with every epoch's history entry (with ``stage`` = ``"cv k/K"``).

    Returns:
        The :class:`CrossValidation`.
    """
    ds = prepared.dataset
    pool = np.asarray(prepared.split.train)
    parts: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    rows: list[np.ndarray] = []
    fold_of_row: list[np.ndarray] = []
    best_epochs: list[list[int]] = []
    fold_metrics: list[dict[str, Any]] = []
    seconds: list[float] = []
    problems = fold_problems(prepared, config, folds)
    pad_to = fold_rows(prepared, problems)  # every fold and the refit: one compiled epoch
    for k, fold in enumerate(problems):
        stage = f"cv {k + 1}/{folds}"
        logger.info("cross-validation fold %d/%d: training on %d rows, early stopping on %d", k + 1, folds,
                    len(fold.split.train), len(fold.split.val))
        done = fit_and_predict(fold, config, callbacks=[lambda e, s=stage, c=c: c({**e, "stage": s})
                                                         for c in callbacks], pad_to=pad_to)
        seconds.append(done.seconds)
        parts.append(done.predictions)
        rows.append(done.rows)
        fold_of_row.append(np.full(done.rows.size, k))
        best_epochs.append([int(e) for e in done.result.best_epoch])
        fold_metrics.append(evaluate_predictions(done.predictions, ds.subset(done.rows))["overall"])
        logger.info("cross-validation fold %d/%d: median fractional error %.2f%%, best epochs %s (%.0f s)",
                    k + 1, folds, 100 * fold_metrics[-1]["frac_err_median"], best_epochs[-1], seconds[-1])
    order = np.concatenate(rows)
    predictions = {f: (np.concatenate([p[f][0] for p in parts]), np.concatenate([p[f][1] for p in parts]))
                   for f in parts[0]}
    truth = ds.subset(order)
    scale = fit_variance_scale(predictions, truth) if config.train.calibrate else 1.0
    metrics = evaluate_predictions({f: (m, scale * v) for f, (m, v) in predictions.items()}, truth)
    epochs = [e + 1 for member in best_epochs for e in member if e >= 0]
    refit = int(np.clip(np.median(epochs) if epochs else config.train.epochs, 1, config.train.epochs))
    logger.info("cross-validation: median fractional error %.2f%% (folds %s), variance scale %.3g; refit on all "
                "%d rows for %d epochs", 100 * metrics["overall"]["frac_err_median"],
                ", ".join(f"{100 * m['frac_err_median']:.2f}%" for m in fold_metrics), scale, pool.size, refit)
    return CrossValidation(folds, order, np.concatenate(fold_of_row), predictions, float(scale), metrics,
                           fold_metrics, best_epochs, refit, seconds)


def fit_residual_covariance(dataset: ProfileDataset, config: Config | None = None, *, k: int = 5, seed: int = 0,
                            subtract_noise: bool = True) -> ResidualCovariance:
    """The residual covariance of an emulator of ``dataset`` from a K-fold cross-validation by simulation.

    Every row of ``dataset`` is cross-validated (no test or validation split), exactly as a
    training run with ``train.cv_folds = k`` does; use it for an emulator trained without one.

    Args:
        dataset: Training data with ``groups`` (and ``noise`` to subtract).
        config: Training configuration of the fold emulators (use the final emulator's).
        k: Folds (>= 2).
        seed: Fold seed (``data.split_seed``).
        subtract_noise: Remove the known stacking noise from C_row (the likelihood adds
            the observation's own errors separately).
    """
    cfg = (config or Config()).updated({"data.test_fraction": 0.0, "data.val_fraction": 0.0,
                                        "data.split_seed": seed, "train.cv_folds": k})
    result = cross_validate(prepare(dataset, cfg), cfg, k)
    return result.residual_covariance(dataset, subtract_noise=subtract_noise,
                                      method=f"{k}-fold cross-validation by simulation (fold seed {seed})")
