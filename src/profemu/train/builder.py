"""From trained weights to an Emulator, and the one K-fold "fit → build → predict" step.

:func:`build_emulator` turns the stacked member weights of a fit into a calibrated
:class:`~profemu.emulator.Emulator` (training run, cluster merge, cross-validation and
capacity choice all use it). :func:`fold_problems` deals the training rows of a prepared
run into K folds by simulation, each with transforms fitted on its own training rows,
and :func:`fit_and_predict` trains one fold and predicts its held-out rows: the capacity
choice (:mod:`profemu.train.select`) is a loop over these two functions. (The run's
cross-validation, :mod:`profemu.train.cv`, trains its folds together as one fit instead.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu._files import json_safe
from profemu.config import Config
from profemu.data.split import Split, group_kfold
from profemu.emulator import Emulator
from profemu.metrics import fit_variance_scale, predict_dataset
from profemu.train.loop import FitResult, fit, shared_rows
from profemu.train.setup import Prepared, fit_transforms, training_problem, transforms_config

__all__ = ["FoldFit", "build_emulator", "fit_and_predict", "fold_problems", "fold_rows"]


def build_emulator(prep: Prepared, config: Config, weights: Mapping[str, Any], *,
                   variance_scale: float | None = None, **metadata: Any) -> Emulator:
    """The Emulator of trained ``weights`` (stacked members), with its variance scale.

    Records the training-data fingerprint, config, units and data provenance (plus any
    ``metadata`` given). The variance scale is ``variance_scale`` when given (e.g. from
    cross-validation), else, with ``config.train.calibrate``, fitted on the validation rows.
    """
    record = {
        "training_data_fingerprint": prep.train.fingerprint(),
        "n_train": len(prep.split.train),
        "config": config.to_dict(),
        **json_safe(metadata),
        "radius_unit": prep.dataset.radius_unit,
        "units": dict(prep.dataset.units),
        "data_meta": json_safe(dict(prep.dataset.meta)),
    }
    emulator = Emulator(prep.transforms, config.model, weights, metadata=record)
    if variance_scale is not None:
        emulator.variance_scale = float(variance_scale)
        emulator.metadata["variance_scale_fitted_on"] = "cross-validation (out-of-fold predictions)"
    elif config.train.calibrate and len(prep.split.val):
        val = prep.val
        emulator.variance_scale = fit_variance_scale(predict_dataset(emulator, val), val)
        emulator.metadata["variance_scale_fitted_on"] = "validation split"
    return emulator


def fold_problems(prepared: Prepared, config: Config, folds: int) -> list[Prepared]:
    """The K folds by simulation of ``prepared.split.train``, each a :class:`Prepared`.

    Fold ``k`` trains on the other folds (its ``split.train``, transforms fitted on those
    rows only) and holds out fold ``k`` (its ``split.val``); the test rows are kept as they
    are and never touched. Folds are stratified in mass (:func:`~profemu.data.split.group_kfold`,
    seeded by ``data.split_seed``). The input relevance weights are not refitted per fold:
    every fold reuses ``prepared.transforms.param_weights``, fitted once on the run's
    training rows by :func:`~profemu.train.setup.prepare` (an ARD GP costs seconds to
    minutes). Those weights have seen the held-out fold's rows (a few numbers, one per
    parameter, that only shape the input metric; the network never fits held-out targets).
    """
    ds = prepared.dataset
    pool = np.asarray(prepared.split.train)
    weights = prepared.transforms.param_weights
    out = []
    for tr, te in group_kfold(ds.subset(pool), folds, seed=config.data.split_seed):
        split = Split(pool[tr], pool[te], np.asarray(prepared.split.test))
        out.append(Prepared(ds, split, fit_transforms(ds.subset(pool[tr]), transforms_config(config),
                                                      input_weights=weights)))
    return out


def fold_rows(prepared: Prepared, folds: Sequence[Prepared]) -> tuple[int, int]:
    """The ``pad_to`` of :func:`~profemu.train.loop.fit` shared by ``folds`` and the refit on
    every row of ``prepared.split.train``: (most training rows, most held-out rows)."""
    return shared_rows([len(prepared.split.train), *(len(f.split.train) for f in folds)],
                       [len(f.split.val) for f in folds])


@dataclass
class FoldFit:
    """One fold trained and its held-out rows predicted.

    Attributes:
        result: The fit (weights, history, best epochs).
        predictions: ``{field: (mean, var)}`` log10 predictions of ``rows`` [n, n_r],
            without a variance scale.
        rows: Dataset rows predicted (the fold's ``split.val``).
        seconds: Wall time of the fit [s].
    """

    result: FitResult
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    rows: np.ndarray
    seconds: float


def fit_and_predict(fold: Prepared, config: Config, *,
                    callbacks: Sequence[Callable[[dict[str, Any]], Any]] = (),
                    pad_to: tuple[int, int] | None = None) -> FoldFit:
    """Train on ``fold.split.train`` (early stopping on ``fold.split.val``) and predict ``fold.split.val``.

    ``pad_to`` (:func:`fold_rows`): the row counts every fold (and the refit) is padded to,
    so that they all run one compiled epoch.
    """
    t0 = time.perf_counter()
    result = fit(training_problem(fold, config), callbacks=list(callbacks), pad_to=pad_to)
    seconds = time.perf_counter() - t0
    emulator = build_emulator(fold, config.updated({"train.calibrate": False}), result.params)
    rows = np.asarray(fold.split.val)
    return FoldFit(result, predict_dataset(emulator, fold.dataset.subset(rows)), rows, seconds)
