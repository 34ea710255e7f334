"""The self-contained HTML report of a training run.

:func:`write_report` reads a run folder (:class:`profemu.runs.folder.RunFolder`: the
configuration, the data source, the split, the per-epoch metrics, the held-out
evaluation, the saved Emulator and, once ``profemu compare`` has run, ``compare.json``)
and turns it into ``report.html``: one file, images
embedded as base64 PNG, every piece of text HTML-escaped. Sections (each skipped
with a note when its inputs are absent):

* training curves, one panel per loss component (``metrics.jsonl``);
* predicted vs true profiles with 68%/95% bands for a few held-out examples per field;
* fractional error vs radius (median and 68th percentile) per field, and per
  baseline when ``compare.json`` holds per-radius errors;
* calibration: observed vs nominal coverage of the central predictive intervals;
* the comparison table with the baselines (``compare.json``);
* the held-out metrics table, the data summary and the configuration.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas,
so the global matplotlib backend is never touched.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError, FormatError
from profemu.metrics import frac_error_by_radius
from profemu.runs.folder import RunFolder
from profemu.runs.tables import COMPARISON_COLUMNS, comparison_table, metrics_table

__all__ = ["write_report"]





# ---------------------------------------------------------------------- numbers
# ---------------------------------------------------------------------- figures
def _figure(n_panels: int, *, ncols: int = 3, size: tuple[float, float] = (4.2, 3.2)) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    width, height = size[0] * ncols, size[1] * nrows
    fig = Figure(figsize=(width, height), dpi=96)
    # fixed margins in inches: much cheaper than a layout engine for many small panels
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.25 / width, bottom=0.7 / height,
                        top=1 - 0.45 / height, wspace=0.45, hspace=0.6)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _png(fig: Any) -> str:
    """The figure as a base64 PNG string (Agg canvas; the global backend is untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_NOT_CURVES = frozenset({
    "epoch", "steps", "step", "seconds", "time", "elapsed", "active_members", "skipped_steps",
    "rollbacks", "val_failures", "dropout", "seed",
})


def _loss_components(history: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Numeric history keys grouped by component: ``{"loss": ["train_loss", "val_loss"], ...}``.

    Bookkeeping keys (epoch, timings, counters) and keys that stay constant for the whole
    run (e.g. a physics term with weight 0) are left out.
    """
    values: dict[str, list[float]] = {}
    for entry in history:
        for k, v in entry.items():
            if k in _NOT_CURVES or isinstance(v, bool) or not isinstance(v, int | float):
                continue
            values.setdefault(k, []).append(float(v))
    groups: dict[str, list[str]] = {}
    for k, vs in values.items():
        finite = [v for v in vs if math.isfinite(v)]
        if not finite or all(v == finite[0] for v in finite):  # nothing to see in a constant
            continue
        base = k
        for prefix in ("train_", "val_", "train/", "val/"):
            if k.startswith(prefix):
                base = k[len(prefix):]
                break
        groups.setdefault(base, []).append(k)
    return groups


def _curves_figure(history: Sequence[Mapping[str, Any]]) -> str | None:
    """One panel per loss component; with cross-validation, each fold thin and the refit thick."""
    groups = _loss_components(history)
    if not groups:
        return None
    stages = list(dict.fromkeys(str(e.get("stage", "")) for e in history))
    fig, axes = _figure(len(groups), ncols=3, size=(4.4, 3.2))
    for ax, (component, keys) in zip(axes, groups.items(), strict=True):
        positive = True
        for key in keys:
            for si, stage in enumerate(stages):
                pts = [(e.get("epoch", i), e[key]) for i, e in enumerate(history)
                       if str(e.get("stage", "")) == stage and isinstance(e.get(key), int | float)
                       and math.isfinite(e[key])]
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                positive &= min(ys) > 0
                final = stage in ("", "refit")
                label = key if len(stages) == 1 else f"{key} ({stage})" if final or si == 0 else None
                ax.plot(xs, ys, label=label, lw=1.5 if final else 0.8, alpha=1.0 if final else 0.5,
                        ls="-" if key.startswith("train") else "--")
        if positive and ax.lines:
            ys_all = np.concatenate([ln.get_ydata() for ln in ax.lines])
            if ys_all.max() / ys_all.min() > 20:
                ax.set_yscale("log")
        ax.set_title(component, fontsize=11)
        ax.set_xlabel("epoch", fontsize=10)
        if ax.lines:
            ax.legend(fontsize=7)
    return _png(fig)


def _profiles_figure(
    emu_pred: Mapping[str, Any], test: ProfileDataset, rows: np.ndarray, radius_unit: str
) -> str:
    fields = list(emu_pred)
    n_ex = len(rows)
    fig, axes = _figure(len(fields) * n_ex, ncols=min(n_ex, 3), size=(4.2, 3.4))
    r = test.radius
    for fi, field in enumerate(fields):
        pred = emu_pred[field]
        true = test.log10_profile(field)
        for ei, i in enumerate(rows):
            ax = axes[fi * n_ex + ei]
            mu, sd = pred.mean[i], np.sqrt(pred.var[i])
            ax.fill_between(r, mu - 1.96 * sd, mu + 1.96 * sd, color="C0", alpha=0.18, lw=0, label="95%")
            ax.fill_between(r, mu - 0.9945 * sd, mu + 0.9945 * sd, color="C0", alpha=0.35, lw=0, label="68%")
            ax.plot(r, mu, color="C0", lw=1.3, label="predicted")
            m = test.mask[field][i]
            err = None if test.noise is None or field not in test.noise else test.noise[field][i][m]
            ax.errorbar(r[m], true[i][m], yerr=err, fmt="o", ms=2.5, color="k", lw=0.8, label="true")
            ax.set_xscale("log")
            ax.set_title(f"{field}, log10 M = {test.log10_mass[i]:.2f}", fontsize=10)
            ax.tick_params(labelsize=9)
            unit = test.units.get(field, "")
            ax.set_ylabel(f"log10 {field}" + (f" [{unit}]" if unit else ""), fontsize=9)
            ax.set_xlabel(f"r [{radius_unit}]", fontsize=9)
            if fi == 0 and ei == 0:
                ax.legend(fontsize=8)
    return _png(fig)


def _frac_error_figure(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray | None]]],
    radius: np.ndarray,
    radius_unit: str,
    noise_floor: Mapping[str, np.ndarray] | None = None,
) -> str:
    """``curves``: field -> method -> (median [n_r], p68 [n_r] or None); ``noise_floor``:
    field -> the median error a perfect emulator shows against the noisy targets [n_r]."""
    fields = list(curves)
    fig, axes = _figure(len(fields), ncols=2, size=(5.6, 4.0))
    for ax, field in zip(axes, fields, strict=True):
        for ci, (method, (med, p68)) in enumerate(curves[field].items()):
            color = f"C{ci}"
            ax.plot(radius, 100 * np.asarray(med, float), color=color, lw=1.6, label=f"{method} median")
            if p68 is not None:
                ax.plot(radius, 100 * np.asarray(p68, float), color=color, lw=1.0, ls="--",
                        label=f"{method} 68th pct")
        floor = None if noise_floor is None else noise_floor.get(field)
        if floor is not None and np.isfinite(floor).any():
            ax.plot(radius, 100 * np.asarray(floor, float), color="0.35", lw=1.2, ls=":",
                    label="noise floor (median)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"r [{radius_unit}]", fontsize=10)
        ax.set_ylabel("fractional error [%]", fontsize=10)
        ax.set_title(field, fontsize=11)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=8)
    return _png(fig)


def _calibration_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    fig, axes = _figure(1, size=(4.2, 3.8))
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="ideal")
    for name, (levels, observed) in curves.items():
        ax.plot(levels, observed, marker="o", ms=3, lw=1.2, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    return _png(fig)


# ---------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
img{max-width:100%;height:auto}.note{color:#555;font-style:italic}h3{font-size:1.1em;margin-top:1.2em}
nav a{margin-right:1em}
"""

_SECTIONS = (
    ("metrics", "Accuracy (cross-validation and test)"),
    ("training-curves", "Training curves"),
    ("profiles", "Predicted vs true profiles"),
    ("fractional-error", "Fractional error vs radius"),
    ("calibration", "Calibration"),
    ("comparison", "Comparison with baselines"),
    ("physics", "Physics in the emulator"),
    ("sensitivity", "Sensitivity and the next simulations"),
    ("data", "Data"),
    ("config", "Configuration"),
)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


_COMPARISON_COLUMNS = tuple(c for c in COMPARISON_COLUMNS if c[0] != "predict_time_ratio")


def _held_out(run: RunFolder, emulator: Any, dataset: ProfileDataset) -> tuple[ProfileDataset, Any, str]:
    """The run's held-out rows and their predictions, and what they are.

    The test split when there is one; else the cross-validation's out-of-fold predictions
    (each row predicted by the ensemble that did not see its simulation), with the variance
    scale of the run; else every row, predicted by the final Emulator (in-sample).
    """
    from types import SimpleNamespace

    ds = dataset.select_fields([f for f in emulator.field_names if f in dataset.fields])
    try:
        rows = run.split_rows("test", ds.n)
    except DataError:
        rows = np.zeros(0, int)
    oof = run.out_of_fold(ds.n, emulator.field_names) if rows.size == 0 else None
    if oof is not None and oof.predictions:
        scale = emulator.variance_scale
        pred = {f: SimpleNamespace(mean=m, var=scale * v) for f, (m, v) in oof.predictions.items()}
        return ds.subset(oof.rows), pred, "cross-validation (out-of-fold predictions, by simulation)"
    label = "the test split"
    if rows.size == 0:
        rows, label = np.arange(ds.n), "all rows (in-sample: the run has no test split and no cross-validation)"
    test = ds.subset(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = emulator.predict(test.params, test.log10_mass, test.pk_ratio, test.redshift, on_extrapolation="ignore")
    return test, pred, label


def _noise_floor(test: ProfileDataset) -> dict[str, np.ndarray]:
    """Per field and radius, the median error a perfect emulator shows against the noisy targets."""
    from profemu.metrics import noise_floor_quantile

    out = {}
    for f in test.fields:
        if test.noise is None or f not in test.noise:
            continue
        floor = np.full(test.n_r, np.nan)
        for j in range(test.n_r):
            valid = test.mask[f][:, j]
            if valid.any():
                floor[j] = float(noise_floor_quantile(test.noise[f][valid, j], [0.5])[0])
        out[f] = floor
    return out


def _physics_text(emulator: Any) -> str:
    """What the physics in the structure is for this Emulator, in a few lines."""
    t = emulator.transforms
    cfg = emulator.model_config
    lines = []
    ss = t.self_similar
    lines.append(ss.describe(t.param_names, t.field_names, t.units) if ss is not None else
                 "self-similar normalisation: off (plain log10 profiles)")
    if cfg.kind == "physics":
        head = (f"power law in mass by construction, |slope| <= {cfg.slope_bound:g}"
                + (f", curvature <= {cfg.curvature_bound:g}" if cfg.mass_order == 2 else "")
                if cfg.mass_head == "power_law" else "mass as a trunk input")
        lines.append(f"network: physics core {list(cfg.hidden)}, {head}, interactions: {cfg.interaction}")
    else:
        lines.append(f"network: MLP {list(cfg.hidden)}")
    lines.append(f"monotone fields: {list(t.monotone_fields) or 'none'}"
                 + (" (built non-increasing by the monotone head)" if cfg.monotone_head else ""))
    if t.pk_pca is not None:
        lines.append(f"P(k) suppression: {t.pk_pca['components'].shape[0]} principal components of "
                     f"{t.pk_pca['components'].shape[1]} k bins")
    lines.append(f"ensemble: {emulator.members} members, variance scale {emulator.variance_scale:.3g} "
                 f"({emulator.metadata.get('variance_scale_fitted_on', 'not calibrated')})")
    return "\n".join(lines)


def _sensitivity_and_design(emulator: Any, train: ProfileDataset | None) -> str:
    """The sensitivity figure and table, and 20 suggested next simulations over the design."""
    from profemu.design import suggest, suggestion_figure
    from profemu.design.derivatives import sensitivity, sensitivity_figure

    sens = sensitivity(emulator, at="box", n_points=32, seed=0)
    ranked = sens.ranked()
    html_ = _note("d log10 profile / d parameter per radius (log10 for log-sampled parameters), averaged over "
                  "the training box: which parameters the data can constrain.")
    html_ += _img(_png(sensitivity_figure(sens, top=4)), "sensitivity")
    html_ += _table(["parameter", "RMS change of log10 profile across the prior [dex]"],
                    [[name, f"{value:.3g}"] for name, value in ranked])
    nxt = suggest(emulator, 20, candidates=5_000, seed=0)
    html_ += _note("Where to run the next 20 simulations (largest ensemble disagreement, chosen as a diverse batch; "
                   "`profemu suggest` writes them as a table): over the training design in the two most "
                   "important parameters.")
    html_ += _img(_png(suggestion_figure(nxt, design=train, sensitivity=sens)), "suggested simulations")
    return html_


def write_report(run_dir: str | Path, *, dataset: ProfileDataset | None = None,
                 n_examples: int = 6) -> Path:
    """Write ``run_dir/report.html``, a self-contained summary of a training run.

    Args:
        run_dir: A run folder written by ``profemu train`` (or
            :func:`profemu.runs.training.train_emulator` with ``run_dir``).
        dataset: The run's full dataset (the held-out rows are taken with ``split.json``);
            reloaded from ``data.json`` when None. Without data, the profile, error and
            calibration sections say why they are missing.
        n_examples: Held-out examples plotted per field.

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: ``run_dir`` is not a run folder.
    """
    run = RunFolder.open(run_dir, require_emulator=False)
    notes: dict[str, str] = {}
    parts: dict[str, str] = {}

    # --- training curves
    history = run.history()
    curves = _curves_figure(history) if history else None
    parts["training-curves"] = (_img(curves, "training curves") if curves else
                                _note("No training metrics (metrics.jsonl is missing or empty)."))

    # --- emulator and held-out predictions
    emulator = None
    try:
        emulator = run.emulator()
    except (FormatError, DataError) as exc:
        notes["emulator"] = f"The saved emulator could not be loaded: {exc}"
    if dataset is None and emulator is not None:
        try:
            dataset = run.dataset()
        except Exception as exc:  # the data may have moved; the report is still useful
            notes["data"] = f"The run's data could not be reloaded ({exc}); pass dataset= to include them."
    test = pred = None
    held_out = ""
    if emulator is not None and dataset is not None:
        try:
            test, pred, held_out = _held_out(run, emulator, dataset)
        except Exception as exc:
            notes["data"] = f"Predictions on the held-out data failed: {exc}"

    missing = notes.get("emulator") or notes.get("data") or "No emulator or data available."
    radius_unit = dataset.radius_unit if dataset is not None else ""
    comparison = run.comparison()

    if test is not None and pred is not None:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(test.n, size=min(n_examples, test.n), replace=False))
        parts["profiles"] = (
            _note(f"{len(rows)} held-out examples per field from {held_out}; shaded: central 68% and 95% "
                  "predictive intervals; points: the data (with their noise where known).")
            + _img(_profiles_figure(pred, test, rows, radius_unit), "predicted vs true profiles")
        )
        err_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]] = {}
        for field, p in pred.items():
            err_curves[field] = {"profemu": frac_error_by_radius(p.mean, test.log10_profile(field),
                                                                  test.mask[field])}
        for method, per_field in dict((comparison or {}).get("per_radius", {})).items():
            if method == "profemu":
                continue
            for field, d in dict(per_field).items():
                if field in err_curves and d.get("frac_err_median") is not None:
                    med = np.array([np.nan if v is None else v for v in d["frac_err_median"]], float)
                    p68 = d.get("frac_err_p68")
                    p68a = None if p68 is None else np.array([np.nan if v is None else v for v in p68], float)
                    if med.shape == test.radius.shape:
                        err_curves[field][method] = (med, p68a)
        parts["fractional-error"] = (
            _note(f"Fractional error |10^(pred - true) - 1| on {held_out}: solid median, dashed 68th "
                  "percentile; dotted: the median error a perfect emulator would show against these noisy targets.")
            + _img(_frac_error_figure(err_curves, test.radius, radius_unit, _noise_floor(test)),
                   "fractional error vs radius")
        )
        from profemu.metrics import calibration_curve

        cal: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for field, p in pred.items():
            noise = None if test.noise is None else test.noise.get(field)
            cal[field] = calibration_curve(p.mean, p.var, test.log10_profile(field), test.mask[field], noise)
        parts["calibration"] = (
            _note(f"Fraction of the entries of {held_out} inside the central predictive interval of each "
                  "nominal probability (known target noise added to the predictive variance). "
                  "Above the diagonal: intervals too wide; below: too narrow.")
            + _img(_calibration_figure(cal), "calibration")
        )
    else:
        for key in ("profiles", "fractional-error", "calibration"):
            parts[key] = _note(missing)

    # --- comparison
    if comparison and comparison.get("rows"):
        parts["comparison"] = _table(*comparison_table(comparison["rows"], columns=_COMPARISON_COLUMNS))
        if comparison.get("baseline_settings"):
            parts["comparison"] += _note(f"Baseline settings: {comparison['baseline_settings']}")
    else:
        parts["comparison"] = _note(
            f"No comparison yet: run `profemu compare {run.path}` to train the PCA+GP and PCA+RBF "
            "baselines on this run's training split and score them on its test split."
        )

    # --- metrics
    legend = ("Fractional errors in percent of the linear profile; coverage of the central 68%/95% "
              "predictive intervals; the noise floor is the error a perfect emulator would show against "
              "the noisy targets.")
    metrics_html = ""
    cv = run.cross_validation()
    if cv:
        header, rows_ = metrics_table(cv["metrics"])
        spread = cv.get("spread_over_folds", {})
        spread_text = ", ".join(f"{k} {100 * v['mean']:.2f} ± {100 * v['std']:.2f}%" for k, v in spread.items()
                                if k.startswith("frac_err") and v.get("mean") is not None)
        metrics_html += (f"<h3>Cross-validation estimate ({cv['folds']} folds by simulation)</h3>"
                         + _table(header, rows_)
                         + _note(f"These are cross-validation estimates: every row was predicted by an ensemble "
                                 f"trained on the other folds' simulations; the Emulator itself was then refitted "
                                 f"on all {cv['n_rows']} rows for {cv['refit_epochs']} epochs. Spread over the "
                                 f"folds (mean ± std): {spread_text}."))
    evaluation = run.evaluation()
    if evaluation:
        header, rows_ = metrics_table(evaluation)
        metrics_html += "<h3>Test split (never seen in training)</h3>" + _table(header, rows_)
    parts["metrics"] = (metrics_html + _note(legend)) if metrics_html else _note(
        f"No cross-validation or test metrics: run `profemu evaluate {run.path}`.")

    # --- physics and sensitivity
    parts["physics"] = (f"<pre>{_e(_physics_text(emulator))}</pre>" if emulator is not None else _note(missing))
    parts["sensitivity"] = _note(missing)
    if emulator is not None:
        try:
            train_rows = run.split_rows("train", dataset.n) if dataset is not None else None
            train = None if train_rows is None else dataset.subset(train_rows)
            parts["sensitivity"] = _sensitivity_and_design(emulator, train)
        except Exception as exc:  # JAX missing or a failure: the rest of the report still stands
            parts["sensitivity"] = _note(f"Sensitivity and suggestions could not be computed: {exc}")

    # --- data and config
    data_text = dataset.summary() if dataset is not None else notes.get("data", "The data were not loaded.")
    source = None
    try:
        source = run.source()
    except FormatError:
        pass
    if source is not None:
        data_text = f"source: {source.path} (format {source.format}, options {dict(source.options)})\n" + data_text
    selection = (dataset.meta.get("camels_selection") if dataset is not None else None) or {}
    if isinstance(selection, dict) and selection.get("summary"):
        data_text += "\n" + str(selection["summary"])
    parts["data"] = f"<pre>{_e(data_text)}</pre>"
    cfg_file = run.path / "config.yaml"
    parts["config"] = (f"<pre>{_e(cfg_file.read_text())}</pre>" if cfg_file.is_file()
                       else _note("No config.yaml in the run folder."))

    if emulator is not None:
        kind = "physics-core" if emulator.model_config.kind == "physics" else "MLP"
        origin = "" if source is None else f" on {Path(source.path).name}"
        title = f"profemu report: {kind} emulator of {', '.join(emulator.field_names)}{origin}"
    else:
        title = f"profemu report: {run.path.resolve().name}"
    summary = _e(repr(emulator)) if emulator is not None else _e(notes.get("emulator", "no emulator"))
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name in _SECTIONS)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{parts[sid]}</section>' for sid, name in _SECTIONS)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p><code>{summary}</code><br>"
        f"run folder: <code>{_e(run.path.resolve())}</code>; written {_e(stamp)}</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )
    return run.write_text("report.html", doc)
