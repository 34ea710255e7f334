"""An emulator against the classic baselines on the same rows: :func:`compare` and :func:`compare_run`.

:func:`compare` fits baselines on a training set and scores every method on a test set
with the same metrics. :func:`compare_run` does it for a run folder, on the rows the run
itself was judged on:

* a run with a test split: the baselines are fitted on the training rows and every
  method is scored on the test rows;
* a cross-validated run (the default for suites of up to 3,000 simulations, which keeps
  no test split): the baselines are cross-validated on the **same folds by simulation**
  (``cv.json``) and scored on their out-of-fold predictions, side by side with the
  emulator's own out-of-fold predictions (``cv_predictions.npz``, with the run's variance
  scale).

Every record is written to ``RUN/compare.json`` with its table beside it in
``RUN/compare.md`` (:func:`write_comparison`: never the table of one comparison beside the
record of another); the fractional error per radius of each method is added for the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu.baselines import Baseline
from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError, FormatError
from profemu.metrics import evaluate_predictions, frac_error_by_radius, predict_dataset
from profemu.runs.folder import RunFolder
from profemu.runs.tables import comparison_table, markdown_table

__all__ = ["METRIC_KEYS", "compare", "compare_run", "format_table", "write_comparison"]

logger = logging.getLogger(__name__)

Prediction = dict[str, tuple[np.ndarray, np.ndarray]]

#: Pooled metrics of each method's row.
METRIC_KEYS = ("frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "nll", "coverage_68", "coverage_95")


def _timed_predict(predictor: Any, dataset: ProfileDataset) -> tuple[Prediction, float]:
    """Predict twice (the first call warms up JIT compilation); return the second and its time [s]."""
    predict_dataset(predictor, dataset)
    start = time.perf_counter()
    pred = predict_dataset(predictor, dataset)
    return pred, time.perf_counter() - start


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return float(a) / float(b)


def _row(name: str, pred: Prediction, truth: ProfileDataset, fit_seconds: float | None,
         predict_seconds: float | None, fields: Sequence[str] | None) -> dict[str, Any]:
    if fields is not None:
        pred = {f: pred[f] for f in fields if f in pred}
    overall = evaluate_predictions(pred, truth)["overall"]
    row: dict[str, Any] = {"method": name}
    row.update({k: overall[k] for k in METRIC_KEYS})
    row["fit_seconds"] = None if fit_seconds is None or not np.isfinite(fit_seconds) else float(fit_seconds)
    row["predict_seconds_per_1000"] = None if predict_seconds is None else 1000.0 * predict_seconds / truth.n
    row["n_test"] = truth.n
    return row


def _add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ref = rows[0]
    for row in rows:
        row["frac_err_ratio"] = _ratio(row["frac_err_median"], ref["frac_err_median"])
        row["predict_time_ratio"] = _ratio(row["predict_seconds_per_1000"], ref["predict_seconds_per_1000"])
    return rows


def compare(
    emulator_like: Any,
    baselines: Sequence[Baseline],
    train: ProfileDataset,
    test: ProfileDataset,
    *,
    emulator_fit_seconds: float | None = None,
    emulator_name: str = "profemu",
    fields: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Fit each baseline on ``train`` and score every method on ``test``.

    Args:
        emulator_like: A fitted predictor (``predict`` as the Emulator), scored first;
            None to compare baselines only (the first baseline is then the reference).
        baselines: Unfitted (or fitted: they are refitted) baselines.
        train: Training data for the baselines.
        test: Held-out data.
        emulator_fit_seconds: Training time of ``emulator_like``, reported as is.
        emulator_name: Label of the first row.
        fields: Fields the baselines fit (default: the emulator's predicted fields,
            else all of ``train``'s).

    Returns:
        One dict per method with ``method``, the pooled metrics :data:`METRIC_KEYS`,
        ``fit_seconds`` (wall time of the baseline's whole fit), ``predict_seconds_per_1000``,
        ``n_test``, ``frac_err_ratio`` and ``predict_time_ratio`` (relative to the first
        row; None where undefined). Prediction time is the wall time of one call on the
        whole test set, after one warm-up call. Each fit is announced on the log.
    """
    methods: list[tuple[str, Any, float | None]] = []
    if emulator_like is not None:
        methods.append((emulator_name, emulator_like, emulator_fit_seconds))
        if fields is None:
            fields = tuple(predict_dataset(emulator_like, test.subset(slice(0, 1))))
    for i, baseline in enumerate(baselines):
        name = getattr(baseline, "name", type(baseline).__name__)
        logger.info("compare: fitting %s (%d/%d) on %d training rows", name, i + 1, len(baselines), train.n)
        baseline.fit(train, fields=fields)
        logger.info("compare: %s fitted in %.1f s", name, float(baseline.fit_seconds))
        methods.append((name, baseline, float(baseline.fit_seconds)))
    if not methods:
        raise DataError("compare: nothing to compare; pass an emulator and/or baselines.")
    rows = []
    for name, predictor, fit_seconds in methods:
        pred, seconds = _timed_predict(predictor, test)
        rows.append(_row(name, pred, test, fit_seconds, seconds, fields))
    return _add_ratios(rows)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`compare` rows (fractional errors in percent), one line per method."""
    return markdown_table(*comparison_table(rows))


def _per_radius(named_predictions: Sequence[tuple[str, Prediction]], truth: ProfileDataset
                ) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, pred in named_predictions:
        out[name] = {}
        for f, (mean, _) in pred.items():
            med, p68 = frac_error_by_radius(mean, truth.log10_profile(f), truth.mask[f])
            out[name][f] = {"frac_err_median": med, "frac_err_p68": p68}
    return out


def _cross_validated(run: RunFolder, emulator: Any, baselines: Sequence[Baseline], ds: ProfileDataset,
                     folds: Sequence[int] | None) -> tuple[list[dict[str, Any]], ProfileDataset,
                                                           list[tuple[str, Prediction]], dict[str, Any]]:
    """Baselines cross-validated on the run's own folds, beside the emulator's out-of-fold predictions."""
    fields = list(emulator.field_names)
    oof = run.out_of_fold(ds.n, fields)
    if oof is None or not oof.predictions:
        raise DataError("compare: the run has neither a test split nor out-of-fold predictions "
                        "(cv_predictions.npz); train with --test-fraction > 0 or with cross-validation.")
    available = sorted(int(k) for k in np.unique(oof.fold))
    chosen = available if folds is None else sorted(set(int(k) for k in folds))
    unknown = [k for k in chosen if k not in available]
    if unknown:
        raise DataError(f"--folds: folds {unknown} are not folds of the run (it has {available}).")
    held = np.isin(oof.fold, chosen)
    rows_held = oof.rows[held]
    truth = ds.subset(rows_held)
    scale = float(emulator.variance_scale)
    emu_pred = {f: (m[held], scale * v[held]) for f, (m, v) in oof.predictions.items()}
    named: list[tuple[str, Prediction]] = [("profemu", emu_pred)]
    rows = [_row("profemu", emu_pred, truth, emulator.metadata.get("fit_seconds"), None, fields)]
    for b in baselines:
        parts, fit_seconds, predict_seconds = [], 0.0, 0.0
        for k in chosen:
            train = ds.subset(oof.rows[oof.fold != k])
            test = ds.subset(oof.rows[oof.fold == k])
            logger.info("compare: fitting %s on fold %d of %s (%d training rows, %d held out)", b.name, k,
                        available, train.n, test.n)
            b.fit(train, fields=fields)
            fit_seconds += float(b.fit_seconds)
            pred, seconds = _timed_predict(b, test)
            predict_seconds += seconds
            parts.append(pred)
        pred = {f: (np.concatenate([p[f][0] for p in parts]), np.concatenate([p[f][1] for p in parts]))
                for f in parts[0]}
        # rows of the chosen folds, in the order the emulator's predictions have them
        order = np.concatenate([np.flatnonzero(oof.fold[held] == k) for k in chosen])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        pred = {f: (m[inverse], v[inverse]) for f, (m, v) in pred.items()}
        named.append((b.name, pred))
        rows.append(_row(b.name, pred, truth, fit_seconds, predict_seconds, fields))
    estimate = {"estimate": "cross-validation by simulation: out-of-fold predictions on the run's own folds",
                "folds": chosen, "n_folds": len(available)}
    return _add_ratios(rows), truth, named, estimate


def compare_run(
    run: RunFolder,
    emulator: Any,
    baselines: Sequence[Baseline],
    *,
    dataset: ProfileDataset | None = None,
    folds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score the run's emulator and ``baselines`` on the rows the run was judged on.

    With a test split: baselines fitted on the run's training rows, every method scored on
    the test rows. Without one (a cross-validated run): baselines cross-validated on the
    run's own folds by simulation and scored out-of-fold, beside the emulator's
    out-of-fold predictions.

    Args:
        run: The run folder (its ``split.json``, ``cv.json``/``cv_predictions.npz`` and,
            without ``dataset``, ``data.json``).
        emulator: The run's Emulator.
        baselines: Unfitted baselines (e.g. ``GPBaseline()``, ``PCARBFBaseline()``).
        dataset: The run's full dataset (reloaded from ``data.json`` when None).
        folds: Cross-validated runs only: the folds to score (default: all of them); e.g.
            ``[0]`` fits each baseline once.

    Returns:
        The record written to ``compare.json`` (with its table in ``compare.md``, see
        :func:`write_comparison`): ``rows`` (one per method, see :func:`compare`),
        ``estimate`` (test split or cross-validation, with the folds), ``per_radius`` (method ->
        field -> ``frac_err_median`` / ``frac_err_p68`` per radius, fractions), ``radius``,
        ``radius_unit`` and ``baseline_settings``.

    Raises:
        DataError: the run has neither a test split nor out-of-fold predictions, or
            ``folds`` names folds the run does not have.
    """
    fields = list(emulator.field_names)
    ds = (dataset if dataset is not None else run.dataset()).select_fields(fields)
    test_rows = run.split_rows("test", ds.n)
    if test_rows.size:
        if folds is not None:
            raise DataError("--folds: the run has a test split, which is used instead of folds; drop --folds.")
        train, truth = ds.subset(run.split_rows("train", ds.n)), ds.subset(test_rows)
        rows = compare(emulator, baselines, train, truth, emulator_fit_seconds=emulator.metadata.get("fit_seconds"))
        named = [("profemu", predict_dataset(emulator, truth)),
                 *((b.name, predict_dataset(b, truth)) for b in baselines)]
        estimate: dict[str, Any] = {"estimate": "the run's test split"}
        n_train = train.n
    else:
        rows, truth, named, estimate = _cross_validated(run, emulator, baselines, ds, folds)
        n_train = None
        note = _blend_note(emulator)
        if note:
            estimate["note"] = note
    try:
        per_radius = _per_radius(named, truth)
    except (KeyError, ValueError) as exc:  # pragma: no cover - shapes are checked above
        raise FormatError(f"compare: predictions do not match the run's data ({exc}).") from None
    record = {
        "rows": rows,
        **estimate,
        "radius": truth.radius,
        "radius_unit": truth.radius_unit,
        "per_radius": per_radius,
        "baseline_settings": {"baselines": [b.name for b in baselines], "n_train": n_train, "n_test": truth.n,
                              "gp_max_train": next((getattr(b, "max_train", None) for b in baselines
                                                    if hasattr(b, "max_train")), None)},
    }
    write_comparison(run, record)
    return record


def _blend_note(emulator: Any) -> str | None:
    """What the ``profemu`` row of a cross-validated comparison is when the Emulator blends a GP:
    the networks' out-of-fold predictions, not the blend's (whose out-of-sample errors follow)."""
    blend = emulator.metadata.get("gp_blend") if isinstance(emulator.metadata, Mapping) else None
    report = blend.get("report") if isinstance(blend, Mapping) else None
    if not isinstance(report, Mapping) or not report.get("fields"):
        return None
    from profemu.emulator.blend import GPBlend

    return ("the profemu row is the cross-validation's networks alone (out of fold); the Emulator blends a GP "
            "into them (train.gp_blend), whose out-of-sample errors are: "
            + GPBlend.describe(report, tuple(report["fields"])))


def write_comparison(run: RunFolder, record: Mapping[str, Any]) -> Path:
    """Write ``RUN/compare.json`` and its table ``RUN/compare.md`` as a pair.

    The two files of a run folder cannot be renamed into place at once, so the old table
    goes first, then the record is written, then the new table (each atomically): a kill at
    any moment leaves the old pair, the old or the new record alone, or the new pair, never
    the table of one comparison beside the record of another.

    Args:
        run: The run folder.
        record: What :func:`compare_run` returns (its ``rows`` make the table).

    Returns:
        The path of ``compare.json``.
    """
    text = format_table(record["rows"]) + "\n"
    if record.get("note"):
        text += f"\nNote: {record['note']}.\n"
    (run.path / "compare.md").unlink(missing_ok=True)
    path = run.write_json("compare.json", record)
    run.write_text("compare.md", text)
    return path
