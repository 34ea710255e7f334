"""Cross-validation by simulation, then a refit on every row.

On a suite of a few hundred simulations every row matters: holding 10% out for early
stopping and 10% for a test leaves the emulator 80% of the data. Here the error is
estimated instead by K-fold cross-validation by simulation (groups), and the final
Emulator learns from every row:

1. the training rows are dealt into ``K`` folds by simulation
   (:func:`profemu.data.split.group_kfold`, stratified in mass);
2. ``train.cv_members`` networks per fold (default one) train on the other folds with
   early stopping on the fold, which they then predict: the *out-of-fold* predictions of
   every row. Every fold's networks train together, as one compiled program on the run's
   arrays with per-network row masks (:func:`profemu.train.loop.fit` ``member_rows``), the
   very program the refit then runs; the folds share the run's transforms (input and
   target scalings fitted on every training row, the held-out fold included: a few means
   and spreads, never a target the network fits);
3. the variance scale is fitted on the pooled out-of-fold predictions
   (:func:`profemu.metrics.fit_variance_scale`), and the cross-validated metrics are
   scored on them with that scale (one number fitted on thousands of entries); with one
   network per fold they are a single network's, slightly pessimistic for the ensemble;
4. the folds' networks (each at its best epoch) are kept: the final ensemble's members
   continue them on all the rows for the last ``train.warm_refit_epochs`` epochs of their
   learning-rate schedule (:func:`profemu.runs.training.train_emulator`);
5. the median over the folds' networks of the best epoch is the epoch count of a refit from
   new initial parameters (``train.warm_refit_epochs = 0``, more members than networks) and
   then of the held-out training of the extrapolation variance
   (:mod:`profemu.runs.heldout`).

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

from profemu._files import flatten_tree, unflatten_tree
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.split import Split, group_kfold
from profemu.emulator import Emulator
from profemu.emulator.covariance import (
    ResidualCovariance,
    estimate_for_dataset,
    prediction_residuals,
)
from profemu.errors import DataError
from profemu.metrics import evaluate_predictions, fit_variance_scale, predict_dataset
from profemu.train.loop import fit, shared_rows
from profemu.train.setup import Prepared, prepare, training_problem

__all__ = ["CV_AUTO_MAX_GROUPS", "CrossValidation", "cross_validate", "fit_residual_covariance", "folds_for",
           "program_rows"]

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
        fit_seconds: Wall time of the folds' one program [s] (a one-element list).
        networks_per_fold: ``train.cv_members``: the out-of-fold predictions are the mean of
            this many networks.
        networks: The folds' networks, stacked [K x p, ...] fold by fold (each at its best
            epoch); the refit continues them (in memory, not in :meth:`summary`).
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
    networks_per_fold: int = 1
    networks: Any = None

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
            "networks_per_fold": self.networks_per_fold,
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


def _folds(prepared: Prepared, config: Config, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of :func:`cross_validate`: ``folds`` pairs (training, held-out) of positions in
    ``prepared.split.train`` (:func:`~profemu.data.split.group_kfold` by simulation, seed
    ``data.split_seed``)."""
    pool = np.asarray(prepared.split.train)
    return group_kfold(prepared.dataset.subset(pool), folds, seed=config.data.split_seed)


def _padding(n_train: int, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
    """Every training row; the largest held-out fold."""
    return shared_rows([n_train], [te.size for _, te in parts])


def program_rows(prepared: Prepared, config: Config, folds: int) -> tuple[int, int]:
    """The ``pad_to`` of :func:`~profemu.train.loop.fit` for the compiled epoch that the folds of
    :func:`cross_validate` and their refit share (every training row; the largest held-out fold):
    a fit padded to it runs that program without compiling another."""
    return _padding(len(prepared.split.train), _folds(prepared, config, folds))


def cross_validate(
    prepared: Prepared,
    config: Config,
    folds: int,
    *,
    callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
) -> CrossValidation:
    """K-fold cross-validation by simulation on the training rows of ``prepared``.

    The ``K x p`` networks of all folds (``p = train.cv_members``) train as one compiled
    program (the refit's when ``K x p = train.members``), each on its own rows with early
    stopping on its held-out fold.

    The out-of-fold prediction of a row is the mean of its fold's ``p`` networks, its
    variance theirs plus the final ensemble's spread, ``(1 - 1/M) s²`` (``s²`` the variance
    of all ``K x p`` networks' means at the row, ``M = train.members``). A mean of ``p``
    networks errs by about ``s² (1/p - 1/M)`` more (in the mean square) than the final
    ensemble of ``M``: that excess is kept out of the variance scale, as the target noise
    is (:func:`~profemu.metrics.fit_variance_scale` ``known_var``), and added to the stored
    variance, so the scale calibrates the final ensemble and the out-of-fold intervals are
    calibrated for the rows they describe. ``s²`` at a row comes from networks most of
    which trained on it: a lower bound of the spread at a new input.

    Args:
        prepared: The run's data: ``split.train`` are the rows to cross-validate (the
            test rows, if any, are never touched), with the run's transforms.
        config: The run configuration.
        folds: ``K >= 2``.
        callbacks: Called with every epoch's history entry (with ``stage`` = ``"cv"``).

    Returns:
        The :class:`CrossValidation`.
    """
    ds = prepared.dataset
    pool = np.asarray(prepared.split.train)
    per_fold, members = int(config.train.cv_members), int(config.train.members)
    parts = _folds(prepared, config, folds)
    none = np.zeros(0, dtype=int)
    whole = Prepared(ds, Split(pool, none, np.asarray(prepared.split.test)), prepared.transforms)
    problem = training_problem(whole, config)  # validates on its own training rows: each network on its fold
    networks = [(k, tr, te) for k, (tr, te) in enumerate(parts) for _ in range(per_fold)]
    logger.info("cross-validation: %d folds x %d network(s) trained together, each on %d-%d rows with early "
                "stopping on its held-out fold", folds, per_fold, min(tr.size for _, tr, _ in networks),
                max(tr.size for _, tr, _ in networks))
    t0 = time.perf_counter()
    result = fit(problem, members=len(networks), member_rows=[tr for _, tr, _ in networks],
                 member_val_rows=[te for _, _, te in networks],
                 pad_to=_padding(pool.size, parts),  # the refit's program (program_rows)
                 callbacks=[lambda e, c=c: c({**e, "stage": "cv"}) for c in callbacks])
    seconds = time.perf_counter() - t0
    flat = flatten_tree(result.params)
    network_predictions = [  # every network on every cross-validated row [networks][field] -> (mean, var)
        predict_dataset(Emulator(prepared.transforms, config.model,
                                 unflatten_tree({n: np.asarray(a)[[i]] for n, a in flat.items()})), ds.subset(pool))
        for i in range(len(networks))]
    excess = {}
    predictions_of: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    rows: list[np.ndarray] = []
    best_epochs: list[list[int]] = []
    for k, (_, te) in enumerate(parts):
        mine = range(k * per_fold, (k + 1) * per_fold)
        best_epochs.append([int(result.best_epoch[i]) for i in mine])
        rows.append(pool[te])
        predictions_of.append({})
        for f in network_predictions[0]:
            means = np.stack([p[f][0][te] for p in network_predictions])  # [networks, rows, radii]
            spread = means.var(axis=0, ddof=1) if len(networks) > 1 else np.zeros_like(means[0])
            own = np.stack([network_predictions[i][f][0][te] for i in mine])
            aleatoric = np.mean([network_predictions[i][f][1][te] for i in mine], axis=0)
            model = aleatoric + spread * (1.0 - 1.0 / members)  # as the final ensemble's variance
            predictions_of[-1][f] = (own.mean(axis=0), np.maximum(model, 1e-12))
            excess.setdefault(f, []).append(np.maximum(spread * (1.0 / per_fold - 1.0 / members), 0.0))
    order = np.concatenate(rows)
    fold_of_row = np.concatenate([np.full(r.size, k) for k, r in enumerate(rows)])
    predictions = {f: (np.concatenate([p[f][0] for p in predictions_of]),
                       np.concatenate([p[f][1] for p in predictions_of])) for f in predictions_of[0]}
    known = {f: np.concatenate(v) for f, v in excess.items()}
    truth = ds.subset(order)
    scale = fit_variance_scale(predictions, truth, known_var=known) if config.train.calibrate else 1.0
    # stored without the scale, as before: scale * var is the calibrated variance of these single-network rows
    predictions = {f: (m, v + known[f] / scale) for f, (m, v) in predictions.items()}
    fold_metrics = [evaluate_predictions({f: (m[fold_of_row == k], scale * v[fold_of_row == k])
                                          for f, (m, v) in predictions.items()}, ds.subset(r))["overall"]
                    for k, r in enumerate(rows)]
    for k, r in enumerate(rows):
        logger.info("cross-validation fold %d/%d: %d held-out rows, median fractional error %.2f%%, best epoch(s) %s",
                    k + 1, folds, r.size, 100 * fold_metrics[k]["frac_err_median"], best_epochs[k])
    metrics = evaluate_predictions({f: (m, scale * v) for f, (m, v) in predictions.items()}, truth)
    epochs = [e + 1 for member in best_epochs for e in member if e >= 0]
    refit = int(np.clip(np.median(epochs) if epochs else config.train.epochs, 1, config.train.epochs))
    logger.info("cross-validation: median fractional error %.2f%% (folds %s), variance scale %.3g (%.0f s); the "
                "folds' median best epoch %d", 100 * metrics["overall"]["frac_err_median"],
                ", ".join(f"{100 * m['frac_err_median']:.2f}%" for m in fold_metrics), scale, seconds, refit)
    return CrossValidation(folds, order, fold_of_row, predictions, float(scale), metrics,
                           fold_metrics, best_epochs, refit, [seconds], per_fold, result.params)


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
