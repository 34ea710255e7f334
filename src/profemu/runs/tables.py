"""Tables of metrics and comparisons, one set of columns for the terminal, markdown and the report.

A column is ``(key, title, format)``: the key of a metrics or comparison record, the
column title with its unit, and a ``str.format`` pattern or ``"pct"`` (a fraction shown
in percent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COMPARISON_COLUMNS",
    "METHOD_LABELS",
    "METRIC_COLUMNS",
    "baseline_settings_table",
    "comparison_table",
    "fold_predictor",
    "format_cell",
    "markdown_table",
    "method_label",
    "metrics_table",
    "refit_description",
]

Column = tuple[str, str, str]

METRIC_COLUMNS: tuple[Column, ...] = (
    ("frac_err_median", "frac err median [%]", "pct"),
    ("frac_err_p68", "p68 [%]", "pct"),
    ("frac_err_p95", "p95 [%]", "pct"),
    ("rmse_dex", "RMSE [dex]", "{:.4f}"),
    ("nll", "NLL", "{:.3f}"),
    ("coverage_68", "cov 68", "{:.3f}"),
    ("coverage_95", "cov 95", "{:.3f}"),
    ("noise_floor_frac_median", "noise floor [%]", "pct"),
)
"""Columns of a held-out metrics table (per field, then overall)."""

COMPARISON_COLUMNS: tuple[Column, ...] = (
    ("method", "method", "{}"),
    *(c for c in METRIC_COLUMNS if c[0] != "noise_floor_frac_median"),
    ("fit_seconds", "fit [s]", "{:.3g}"),
    ("predict_seconds_per_1000", "predict [s/1000 rows]", "{:.3g}"),
    ("frac_err_ratio", "err / first", "{:.2f}"),
    ("predict_time_ratio", "time / first", "{:.3g}"),
)
"""Columns of a comparison of methods (one row per method, :func:`profemu.runs.compare.compare`)."""


METHOD_LABELS: Mapping[str, str] = {
    "profemu": "profemu",
    "gp": "ARD GP",
    "pca_gp": "PCA+GP",
    "pca_rbf": "PCA+RBF",
    "pca_mlp": "PCA+MLP",
}
"""Readable names of the methods, by the name the command line uses (``gp``, ``pca_rbf``, ...)."""

_SETTING_TITLES: Mapping[str, str] = {
    "baselines": "baselines",
    "n_train": "training rows",
    "n_test": "held-out rows",
    "gp_max_train": "ARD GP training rows at most (subsampled above)",
}


def method_label(name: Any, *, with_key: bool = False) -> str:
    """The readable name of method ``name`` (``"gp"`` -> ``"ARD GP"``); unknown names unchanged.

    Args:
        name: The method's command-line name.
        with_key: Append the command-line name in parentheses (``"ARD GP (gp)"``) when it differs.
    """
    key = str(name)
    label = METHOD_LABELS.get(key, key)
    return f"{label} ({key})" if with_key and label != key else label


def format_cell(value: Any, fmt: str) -> str:
    """``value`` formatted by ``fmt`` (``"pct"``: percent with two decimals); ``n/a`` if missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if not isinstance(value, int | float):
        return str(value)
    if fmt == "pct":
        return f"{100.0 * value:.2f}"
    return fmt.format(value)


def metrics_table(evaluation: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per field, then ``overall``) of a metrics dict, formatted.

    Args:
        evaluation: ``{"fields": {name: metrics}, "overall": metrics}`` from
            :func:`profemu.metrics.evaluate`.

    Returns:
        ``(header, rows)`` of strings; columns absent from every row are dropped.
    """
    entries: list[tuple[str, Mapping[str, Any]]] = list(dict(evaluation.get("fields", {})).items())
    if "overall" in evaluation:
        entries.append(("overall", evaluation["overall"]))
    cols = [c for c in METRIC_COLUMNS if any(c[0] in m for _, m in entries)]
    header = ["field", *(title for _, title, _ in cols)]
    rows = [[name, *(format_cell(m.get(key), fmt) for key, _, fmt in cols)] for name, m in entries]
    return header, rows


def comparison_table(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[Column] = COMPARISON_COLUMNS,
                     labels: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of :func:`profemu.runs.compare.compare` records (errors in percent).

    Args:
        rows: One record per method.
        columns: The columns to show.
        labels: Show the ``method`` column by readable name (:func:`method_label`).
    """
    header = [title for _, title, _ in columns]
    body = [[method_label(r.get(key)) if labels and key == "method" and r.get(key) is not None
             else format_cell(r.get(key), fmt) for key, _, fmt in columns] for r in rows]
    return header, body


def baseline_settings_table(settings: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (setting, value) of a comparison's ``baseline_settings``.

    The baselines are listed by readable and command-line name (``ARD GP (gp)``); a
    missing number (e.g. the training rows of a cross-validated comparison, which
    change per fold) is ``n/a``.
    """
    rows = []
    for key, value in settings.items():
        if isinstance(value, list | tuple):
            text = ", ".join(method_label(v, with_key=True) if key == "baselines" else str(v) for v in value)
        else:
            text = format_cell(value, "{}")
        rows.append([_SETTING_TITLES.get(key, key), text or "none"])
    return ["setting", "value"], rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def refit_description(cv: Mapping[str, Any]) -> str:
    """How the Emulator learnt from every row after a ``cv.json`` record's cross-validation, in words."""
    refit = cv.get("refit")
    if not (isinstance(refit, Mapping) and refit.get("continues_cv_networks")):
        return f"it was refitted on all {cv['n_rows']} rows for {cv['refit_epochs']} epochs"
    text = f"its members continued the folds' networks on all {cv['n_rows']} rows"
    first, epochs = refit.get("first_epoch"), refit.get("epochs")
    if isinstance(first, int) and isinstance(epochs, int):
        last = "last epoch" if epochs == 1 else f"last {epochs} epochs"
        text += f" for the {last} of their {first + epochs} (learning-rate schedule's tail)"
    return text


def fold_predictor(cv: Mapping[str, Any]) -> str:
    """What predicted each out-of-fold row of a ``cv.json`` record, in words."""
    n = cv.get("networks_per_fold")
    if n == 1:
        return "one network"
    return f"an ensemble of {n} networks" if isinstance(n, int) else "an ensemble"
