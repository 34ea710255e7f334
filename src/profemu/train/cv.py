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
   (:func:`profemu.evaluate.fit_variance_scale`), and the cross-validated metrics are
   scored on them with that scale (one number fitted on thousands of entries);
4. the epoch count of the refit is the median over folds and members of the best epoch;
5. the final ensemble is trained on all the rows for that many epochs.

:class:`CrossValidation` keeps the estimates (pooled metrics, their spread over the
folds, the out-of-fold predictions) for ``cv.json``, the report and ``profemu compare``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.split import Split, group_kfold
from profemu.data.transforms import Transforms
from profemu.errors import DataError
from profemu.train.setup import Prepared

__all__ = ["CV_AUTO_MAX_GROUPS", "CrossValidation", "cross_validate", "folds_for"]

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
        metrics: :func:`~profemu.evaluate.evaluate_predictions` of the out-of-fold
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
    from profemu.evaluate import evaluate_predictions, fit_variance_scale, predict_dataset
    from profemu.train.loop import fit
    from profemu.train.setup import training_problem
    from profemu.workflow import build_emulator

    ds = prepared.dataset
    pool = np.asarray(prepared.split.train)
    pool_ds = ds.subset(pool)
    parts: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    rows: list[np.ndarray] = []
    fold_of_row: list[np.ndarray] = []
    best_epochs: list[list[int]] = []
    fold_metrics: list[dict[str, Any]] = []
    seconds: list[float] = []
    for k, (tr, te) in enumerate(group_kfold(pool_ds, folds, seed=config.data.split_seed)):
        stage = f"cv {k + 1}/{folds}"
        train_rows, val_rows = pool[tr], pool[te]
        split = Split(train_rows, val_rows, np.asarray(prepared.split.test))
        fold = Prepared(ds, split, Transforms.fit(ds.subset(train_rows), config.data))
        logger.info("cross-validation fold %d/%d: training on %d rows, early stopping on %d", k + 1, folds,
                    train_rows.size, val_rows.size)
        t0 = time.perf_counter()
        result = fit(training_problem(fold, config),
                     callbacks=[lambda e, s=stage, c=c: c({**e, "stage": s}) for c in callbacks])
        seconds.append(time.perf_counter() - t0)
        emulator = build_emulator(fold, config.updated({"train.calibrate": False}), result.params)
        val = ds.subset(val_rows)
        pred = predict_dataset(emulator, val)
        parts.append(pred)
        rows.append(val_rows)
        fold_of_row.append(np.full(val_rows.size, k))
        best_epochs.append([int(e) for e in result.best_epoch])
        fold_metrics.append(evaluate_predictions(pred, val)["overall"])
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
