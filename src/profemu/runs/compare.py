"""A run's emulator against the classic baselines, on the run's own split: :func:`compare_run`.

The baselines are fitted on the run's training rows and every method is scored on
its test rows with the same metrics (:func:`profemu.baselines.compare`); the
fractional error per radius of each method is added for the report, and everything
is written to ``RUN/compare.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError
from profemu.run import RunFolder

__all__ = ["compare_run"]


def compare_run(
    run: RunFolder,
    emulator: Any,
    baselines: Sequence[Any],
    *,
    dataset: ProfileDataset | None = None,
) -> dict[str, Any]:
    """Fit ``baselines`` on the run's train split, score them and ``emulator`` on its test split.

    Args:
        run: The run folder (its ``split.json`` and, without ``dataset``, ``data.json``).
        emulator: The run's Emulator.
        baselines: Unfitted baselines (e.g. ``PCAGPBaseline()``, ``PCARBFBaseline()``).
        dataset: The run's full dataset (reloaded from ``data.json`` when None).

    Returns:
        The record written to ``compare.json``: ``rows`` (one per method, see
        :func:`profemu.baselines.compare`), ``per_radius`` (method -> field ->
        ``frac_err_median`` / ``frac_err_p68`` per radius, fractions), ``radius``,
        ``radius_unit`` and ``baseline_settings``.

    Raises:
        DataError: the run has an empty test split.
    """
    from profemu.baselines import compare
    from profemu.evaluate import predict_dataset
    from profemu.report import frac_error_by_radius

    fields = list(emulator.field_names)
    ds = (dataset if dataset is not None else run.dataset()).select_fields(fields)
    train_rows = run.split_rows("train", ds.n)
    test_rows = run.split_rows("test", ds.n)
    if test_rows.size == 0:
        raise DataError("compare: the run has an empty test split; train with --test-fraction > 0.")
    train, test = ds.subset(train_rows), ds.subset(test_rows)
    rows = compare(emulator, baselines, train, test, emulator_fit_seconds=emulator.metadata.get("fit_seconds"))
    per_radius: dict[str, dict[str, dict[str, Any]]] = {}
    for name, predictor in [("profemu", emulator), *((b.name, b) for b in baselines)]:
        per_radius[name] = {}
        for f, (mean, _) in predict_dataset(predictor, test).items():
            med, p68 = frac_error_by_radius(mean, test.log10_profile(f), test.mask[f])
            per_radius[name][f] = {"frac_err_median": med, "frac_err_p68": p68}
    record = {
        "rows": rows,
        "radius": test.radius,
        "radius_unit": test.radius_unit,
        "per_radius": per_radius,
        "baseline_settings": {"baselines": [b.name for b in baselines], "n_train": train.n, "n_test": test.n,
                              "gp_max_train": next((getattr(b, "max_train", None) for b in baselines
                                                    if hasattr(b, "max_train")), None)},
    }
    run.write_json("compare.json", record)
    return record
