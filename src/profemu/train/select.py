"""Capacity and regularisation chosen from the data: :func:`choose_capacity`.

The defaults that suit 2,000 rows of 7 inputs are not those that suit 300 noisy halos of
35 parameters. With ``train.auto_capacity`` (``"on"``, or ``"auto"``: training sets of at
most :data:`AUTO_MAX_ROWS` rows; off by default, because on the hard mock universe input
relevance weighting alone did as well at a quarter of the cost) a few candidate
architectures are compared by group (simulation) cross-validation before the real training:

* the configured network;
* a narrow one (32x32) with weight decay 1e-3;
* the configured width with dropout 0.1 and weight decay 1e-3;
* the other kind (``mlp`` <-> ``physics``) at the configured width.

Each candidate trains 2 members on 3 folds (the transforms of a fold are shared by all
candidates); the one with the lowest out-of-fold median fractional error wins (the
Gaussian NLL breaks near-ties). PCA+RBF is scored on the same folds as a floor: the
choice is logged against it, and a warning says so when no candidate beats it.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.baselines import PCARBFBaseline
from profemu.config import Config
from profemu.metrics import evaluate_predictions, predict_dataset
from profemu.train.builder import fit_and_predict, fold_problems
from profemu.train.setup import Prepared

__all__ = ["AUTO_MAX_ROWS", "CapacityChoice", "candidates", "choose_capacity", "selects"]

logger = logging.getLogger(__name__)

#: ``train.auto_capacity = "auto"`` compares candidates on training sets of at most this many rows.
AUTO_MAX_ROWS = 1000
_FOLDS = 3
_MEMBERS = 2


@dataclass
class CapacityChoice:
    """What the comparison found (``selection.json``)."""

    chosen: str
    changes: dict[str, Any]
    scores: dict[str, dict[str, float]]
    pca_rbf: dict[str, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "changes": self.changes, "scores": self.scores, "pca_rbf": self.pca_rbf,
                "seconds": self.seconds, "folds": _FOLDS, "members": _MEMBERS,
                "criterion": "out-of-fold median fractional error (NLL breaks ties within 1%)"}


def selects(config: Config, n_train: int) -> bool:
    """Whether ``train.auto_capacity`` compares candidates for ``n_train`` training rows."""
    mode = config.train.auto_capacity
    return mode == "on" or (mode == "auto" and n_train <= AUTO_MAX_ROWS)


def candidates(config: Config) -> dict[str, dict[str, Any]]:
    """Name -> config changes of the candidates (see the module docstring)."""
    m = config.model
    other = "physics" if m.kind == "mlp" else "mlp"
    return {
        f"configured ({m.kind} {'x'.join(map(str, m.hidden))})": {},
        "narrow 32x32, weight decay 1e-3": {"model.hidden": [32, 32], "optim.weight_decay": 1e-3},
        f"{'x'.join(map(str, m.hidden))}, dropout 0.1, weight decay 1e-3": {
            "model.dropout": 0.1, "optim.weight_decay": 1e-3},
        f"{other} {'x'.join(map(str, m.hidden))}": {"model.kind": other},
    }


def choose_capacity(prepared: Prepared, config: Config) -> CapacityChoice:
    """Compare the :func:`candidates` by 3-fold CV on the training rows of ``prepared``."""
    t0 = time.perf_counter()
    ds = prepared.dataset
    quick = {"train.members": _MEMBERS, "train.cv_folds": 0, "train.calibrate": False}
    fold_data = fold_problems(prepared, config.updated(quick), _FOLDS)
    scores: dict[str, dict[str, float]] = {}
    changes_of = candidates(config)
    for name, changes in changes_of.items():
        cfg = config.updated({**quick, **changes})
        done = [fit_and_predict(fold, cfg) for fold in fold_data]
        metrics = _pooled([d.predictions for d in done], ds.subset(np.concatenate([d.rows for d in done])))
        scores[name] = metrics
        logger.info("capacity: %s: CV median fractional error %.2f%%, NLL %.3f", name,
                    100 * metrics["frac_err_median"], metrics["nll"])
    rbf_parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fold in fold_data:
            rbf_parts.append(predict_dataset(PCARBFBaseline().fit(fold.train), fold.val))
    rbf = _pooled(rbf_parts, ds.subset(np.concatenate([f.split.val for f in fold_data])))
    best_err = min(s["frac_err_median"] for s in scores.values())
    close = [n for n, s in scores.items() if s["frac_err_median"] <= 1.01 * best_err]
    chosen = min(close, key=lambda n: scores[n]["nll"])
    seconds = time.perf_counter() - t0
    verdict = "better than" if scores[chosen]["frac_err_median"] < rbf["frac_err_median"] else "NOT better than"
    log = logger.info if verdict == "better than" else logger.warning
    log("capacity: chose %s (CV median %.2f%%), %s PCA+RBF on the same folds (%.2f%%), in %.0f s", chosen,
        100 * scores[chosen]["frac_err_median"], verdict, 100 * rbf["frac_err_median"], seconds)
    return CapacityChoice(chosen, changes_of[chosen], scores, rbf, seconds)


def _pooled(parts: list[dict[str, Any]], truth: Any) -> dict[str, float]:
    pred = {f: (np.concatenate([p[f][0] for p in parts]), np.concatenate([p[f][1] for p in parts]))
            for f in parts[0]}
    overall = evaluate_predictions(pred, truth)["overall"]
    return {k: float(overall[k]) for k in ("frac_err_median", "frac_err_p95", "nll", "coverage_68")}
