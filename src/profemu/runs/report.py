"""The self-contained HTML report of a training run.

:func:`write_report` reads a run folder (:class:`profemu.runs.folder.RunFolder`: the
configuration, the data source, the split, the per-epoch metrics, the held-out
evaluation, the saved Emulator and, once ``profemu compare`` has run, ``compare.json``)
and turns it into ``report.html``: one file, images embedded as base64 PNG, every piece
of text HTML-escaped, nothing fetched from the network. Science comes first, the
optimiser's internals last; each section says why when its inputs are absent:

* the held-out metrics (cross-validation and test split);
* residuals: prediction / truth - 1 against radius per field, the median and the
  central 68% / 95% of the held-out rows at each radius;
* predicted vs true profiles with 68%/95% predictive bands for a few held-out examples;
* fractional error vs radius (median and 68th percentile) per field, and per
  baseline when ``compare.json`` holds per-radius errors;
* calibration: observed vs nominal coverage of the central predictive intervals;
* the comparison table with the baselines and their settings (``compare.json``);
* the physics built into the emulator, the sensitivity of the profiles to each
  parameter and the suggested next simulations (computed independently: one failing
  does not hide the other);
* the training curves, one panel per loss component (``metrics.jsonl``);
* the data summary and the configuration.

The held-out rows are the test split, else the cross-validation's out-of-fold
predictions. Figures are drawn on :class:`matplotlib.figure.Figure` objects with the
Agg canvas, so the global matplotlib backend is never touched.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.data.layout import HYBRID_TRANSITION
from profemu.data.selfsimilar import parse_mass_definition
from profemu.errors import ConfigError, DataError, FormatError
from profemu.metrics import frac_error_by_radius
from profemu.runs.folder import RunFolder
from profemu.runs.tables import (
    COMPARISON_COLUMNS,
    baseline_settings_table,
    comparison_table,
    fold_predictor,
    method_label,
    metrics_table,
    refit_description,
)

logger = logging.getLogger(__name__)

__all__ = ["write_report"]

RESIDUAL_QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)
"""Quantiles of prediction / truth - 1 over the held-out rows: the 95% and 68% bands and the median."""


# ---------------------------------------------------------------------- numbers
def _residual_quantiles(mean: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Quantiles :data:`RESIDUAL_QUANTILES` [5, n_r] of ``10**(mean - true) - 1`` over the rows.

    Args:
        mean: Predicted log10 profiles [n, n_r].
        true: True log10 profiles [n, n_r].
        mask: Valid entries [n, n_r]; the others do not count.

    Returns:
        One row per quantile; NaN at radii without a valid entry.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.power(10.0, np.asarray(mean, float) - np.asarray(true, float)) - 1.0
    ratio = np.where(np.asarray(mask, bool) & np.isfinite(ratio), ratio, np.nan)
    out = np.full((len(RESIDUAL_QUANTILES), ratio.shape[1]), np.nan)
    have = ~np.isnan(ratio).all(axis=0)
    if have.any():
        out[:, have] = np.nanquantile(ratio[:, have], RESIDUAL_QUANTILES, axis=0)
    return out


def _mass_label(meta: Mapping[str, Any]) -> str:
    """``log10 M200c/Msun`` from the dataset's ``mass_definition``; ``log10 M/Msun`` without one."""
    parsed = parse_mass_definition(meta.get("mass_definition"))
    if parsed is None:
        return "log10 M/Msun"
    delta, reference, per_h = parsed
    unit = "(Msun/h)" if per_h else "Msun"
    return f"log10 M{delta:g}{'c' if reference == 'critical' else 'm'}/{unit}"


# ---------------------------------------------------------------------- figures
def _figure(n_panels: int, *, ncols: int = 3, size: tuple[float, float] = (4.2, 3.2),
            legend_rows: int = 0, right: float = 0.25) -> tuple[Any, list[Any]]:
    """A figure of ``n_panels`` axes on a grid, with ``legend_rows`` of figure legend above them.

    Args:
        n_panels: Number of axes.
        ncols: Panels per row (at most ``n_panels``).
        size: Width and height of one panel [inches].
        legend_rows: Rows of figure legend to make room for above the panels.
        right: Right margin [inches] (room for a legend outside the axes).
    """
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, math.ceil(n_panels / ncols))
    width, height = size[0] * ncols + right - 0.25, size[1] * nrows + 0.3 * legend_rows
    fig = Figure(figsize=(width, height), dpi=96)
    # fixed margins in inches: much cheaper than a layout engine for many small panels
    fig.subplots_adjust(left=0.95 / width, right=1 - right / width, bottom=0.7 / height,
                        top=1 - (0.45 + 0.3 * legend_rows) / height, wspace=0.45, hspace=0.6)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _figure_legend(fig: Any, handles: Sequence[Any], labels: Sequence[str], ncol: int) -> None:
    """One legend for every panel, above them (never over a curve)."""
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, ncol),
               fontsize=9, frameon=False, borderaxespad=0.3)


def _plain_log_ticks(ax: Any, *, suffix: str = "") -> None:
    """Major ticks of a log y axis at 1, 2, 5 x 10^k (denser on a short range), written plainly.

    ``3%`` or ``0.5%`` instead of matplotlib's ``3x10^0``; minor tick labels are removed.
    Call once the curves are drawn (the ticks are fixed to the current limits).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo, hi = ax.get_ylim()
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks: list[float] = []
    for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0), tuple(float(i) for i in range(1, 10))):
        ticks = [s * 10.0**e for e in decades for s in subs if lo <= s * 10.0**e <= hi]
        if len(ticks) >= 3:
            break
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _percent(v) if suffix == "%" else f"{v:.3g}{suffix}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def _percent(value: float) -> str:
    """A tick value in percent, written plainly: ``-50%``, ``2.5%``, ``1200%``."""
    return f"{value:.0f}%" if abs(value) >= 100 else f"{value:.3g}%"


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


def _curves_figure(history: Sequence[Mapping[str, Any]]) -> Any:
    """One panel per loss component; with cross-validation, each fold thin and the refit thick.

    Returns the Figure, or None when no component changes during the run."""
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
                _plain_log_ticks(ax)
        ax.set_title(component, fontsize=11)
        ax.set_xlabel("epoch", fontsize=10)
        if ax.lines:
            ax.legend(fontsize=7, loc="best", framealpha=0.85)
    return fig


def _profiles_figure(emu_pred: Mapping[str, Any], test: ProfileDataset, rows: np.ndarray,
                     radius_unit: str) -> Any:
    """Predicted (mean, 68%/95% bands) vs true log10 profiles of ``rows`` of ``test``, per field."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fields = list(emu_pred)
    n_ex = len(rows)
    fig, axes = _figure(len(fields) * n_ex, ncols=min(n_ex, 3), size=(4.2, 3.4), legend_rows=1)
    r = test.radius
    mass = _mass_label(test.meta)
    for fi, field in enumerate(fields):
        pred = emu_pred[field]
        true = test.log10_profile(field)
        unit = test.units.get(field, "")
        for ei, i in enumerate(rows):
            ax = axes[fi * n_ex + ei]
            mu, sd = pred.mean[i], np.sqrt(pred.var[i])
            ax.fill_between(r, mu - 1.96 * sd, mu + 1.96 * sd, color="C0", alpha=0.18, lw=0)
            ax.fill_between(r, mu - 0.9945 * sd, mu + 0.9945 * sd, color="C0", alpha=0.35, lw=0)
            ax.plot(r, mu, color="C0", lw=1.3)
            m = test.mask[field][i]
            err = None if test.noise is None or field not in test.noise else test.noise[field][i][m]
            ax.errorbar(r[m], true[i][m], yerr=err, fmt="o", ms=2.5, color="k", lw=0.8)
            ax.set_xscale("log")
            ax.set_title(f"{field}, {mass} = {test.log10_mass[i]:.2f}", fontsize=10)
            ax.tick_params(labelsize=9)
            ax.set_ylabel(f"log10 {field}" + (f" [{unit}]" if unit else ""), fontsize=9)
            ax.set_xlabel(f"r [{radius_unit}]", fontsize=9)
    handles = [Patch(color="C0", alpha=0.18, lw=0), Patch(color="C0", alpha=0.35, lw=0),
               Line2D([], [], color="C0", lw=1.3), Line2D([], [], color="k", marker="o", ms=3, ls="")]
    _figure_legend(fig, handles, ["95% predictive interval", "68% predictive interval", "predicted mean",
                                  "true (with its noise)"], ncol=4)
    return fig


def _residual_figure(bands: Mapping[str, np.ndarray], radius: np.ndarray, radius_unit: str,
                     noise_floor: Mapping[str, np.ndarray] | None = None) -> Any:
    """Per field, prediction / truth - 1 [%] against radius: median, 68% and 95% of the rows.

    ``bands``: field -> :func:`_residual_quantiles` [5, n_r]; ``noise_floor``: field -> the
    median error a perfect emulator shows against the noisy targets [n_r] (drawn as +-).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    fields = list(bands)
    fig, axes = _figure(len(fields), ncols=2, size=(5.6, 3.8), legend_rows=1)
    show_floor = False
    for ax, field in zip(axes, fields, strict=True):
        q = 100.0 * np.asarray(bands[field], float)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.fill_between(radius, q[0], q[4], color="C0", alpha=0.18, lw=0)
        ax.fill_between(radius, q[1], q[3], color="C0", alpha=0.38, lw=0)
        ax.plot(radius, q[2], color="C0", lw=1.6)
        floor = None if noise_floor is None else noise_floor.get(field)
        if floor is not None and np.isfinite(floor).any():
            show_floor = True
            for sign in (1.0, -1.0):
                ax.plot(radius, sign * 100.0 * np.asarray(floor, float), color="0.35", lw=1.1, ls=":")
        ax.set_xscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _percent(v)))
        ax.set_xlabel(f"r [{radius_unit}]", fontsize=10)
        ax.set_ylabel("prediction / truth - 1", fontsize=10)
        ax.set_title(field, fontsize=11)
        ax.tick_params(labelsize=9)
    handles = [Patch(color="C0", alpha=0.18, lw=0), Patch(color="C0", alpha=0.38, lw=0),
               Line2D([], [], color="C0", lw=1.6)]
    labels = ["95% of held-out rows", "68% of held-out rows", "median"]
    if show_floor:
        handles.append(Line2D([], [], color="0.35", lw=1.1, ls=":"))
        labels.append("± noise floor (median)")
    _figure_legend(fig, handles, labels, ncol=len(labels))
    return fig


def _frac_error_figure(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray | None]]],
    radius: np.ndarray,
    radius_unit: str,
    noise_floor: Mapping[str, np.ndarray] | None = None,
) -> Any:
    """``curves``: field -> method -> (median [n_r], p68 [n_r] or None); ``noise_floor``:
    field -> the median error a perfect emulator shows against the noisy targets [n_r]."""
    from matplotlib.lines import Line2D

    fields = list(curves)
    fig, axes = _figure(len(fields), ncols=2, size=(5.6, 4.0), legend_rows=2)
    colors: dict[str, str] = {}
    show_floor = False
    for ax, field in zip(axes, fields, strict=True):
        for method, (med, p68) in curves[field].items():
            color = colors.setdefault(method, f"C{len(colors)}")
            ax.plot(radius, 100 * np.asarray(med, float), color=color, lw=1.6)
            if p68 is not None:
                ax.plot(radius, 100 * np.asarray(p68, float), color=color, lw=1.0, ls="--")
        floor = None if noise_floor is None else noise_floor.get(field)
        if floor is not None and np.isfinite(floor).any():
            show_floor = True
            ax.plot(radius, 100 * np.asarray(floor, float), color="0.35", lw=1.2, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax, suffix="%")
        ax.set_xlabel(f"r [{radius_unit}]", fontsize=10)
        ax.set_ylabel("fractional error", fontsize=10)
        ax.set_title(field, fontsize=11)
        ax.tick_params(labelsize=9)
    # first legend row: the methods by colour; second row: the line styles
    top = [(Line2D([], [], color=c, lw=1.6), method_label(m)) for m, c in colors.items()]
    bottom = [(Line2D([], [], color="k", lw=1.6), "median (solid)"),
              (Line2D([], [], color="k", lw=1.0, ls="--"), "68th percentile (dashed)")]
    if show_floor:
        bottom.append((Line2D([], [], color="0.35", lw=1.2, ls=":"), "noise floor (median)"))
    ncol = max(len(top), len(bottom))
    blank = (Line2D([], [], alpha=0.0), "")
    top, bottom = top + [blank] * (ncol - len(top)), bottom + [blank] * (ncol - len(bottom))
    entries = [e for pair in zip(top, bottom, strict=True) for e in pair]  # the legend fills by column
    _figure_legend(fig, [h for h, _ in entries], [lb for _, lb in entries], ncol=ncol)
    return fig


def _calibration_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    """Observed vs nominal coverage per field; the legend right of the axes."""
    fig, axes = _figure(1, size=(4.2, 3.8), right=1.6)
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1, label="ideal")
    for name, (levels, observed) in curves.items():
        ax.plot(levels, observed, marker="o", ms=3, lw=1.2, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0)
    return fig


# ---------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.scroll{max-width:100%;overflow-x:auto}
pre{background:#f7f7f7;padding:.8em;font-size:.85em;max-width:100%;box-sizing:border-box;
white-space:pre-wrap;overflow-wrap:anywhere}
code{overflow-wrap:anywhere}ul.physics{max-width:100%;padding-left:1.3em}ul.physics li{margin:.2em 0}
img{max-width:100%;height:auto}.note{color:#555;font-style:italic}h3{font-size:1.1em;margin-top:1.2em}
nav a{margin-right:1em;white-space:nowrap}nav{line-height:1.9}
"""

SECTIONS = (
    ("metrics", "Accuracy (cross-validation and test)"),
    ("residuals", "Residuals vs radius"),
    ("profiles", "Predicted vs true profiles"),
    ("fractional-error", "Fractional error vs radius"),
    ("calibration", "Calibration"),
    ("comparison", "Comparison with baselines"),
    ("physics", "Physics in the emulator"),
    ("sensitivity", "Sensitivity to the parameters"),
    ("suggestions", "Suggested next simulations"),
    ("training-curves", "Training curves (optimiser internals)"),
    ("data", "Data"),
    ("config", "Configuration"),
)
"""``(id, title)`` of the report's sections, in page order: science first, the optimiser last."""


def _e(text: Any) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table (escaped cells) in a box that scrolls sideways if it is wider than the page."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(b64: str, alt: str) -> str:
    """An embedded PNG (base64 data URL: nothing is fetched)."""
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _note(text: str) -> str:
    """A note paragraph (escaped)."""
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


def _physics_lines(emulator: Any) -> list[str]:
    """What the physics in the structure is for this Emulator, one statement a line."""
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
    if cfg.monotone_head and t.monotone_fields:
        lines.append(f"monotone fields: {', '.join(t.monotone_fields)} (built non-increasing by the monotone head)")
    else:
        lines.append("monotone fields: none built in (model.monotone_head off)")
    if getattr(t, "hybrid_r_delta", None) is not None:
        lines.append(f"radial coordinate: hybrid (the profile inside {HYBRID_TRANSITION:g} R_Delta drawn on the "
                     "data's radii, outside it on r/R_Delta)")
    elif t.scaled_radius is not None:
        lines.append("radial coordinate: r/R_Delta (each profile drawn on r/R_Delta)")
    else:
        lines.append("radial coordinate: the data's radii")
    gas = tuple(getattr(t, "gas_fraction_fields", ()) or ())
    lines.append(f"gas-fraction bound: {', '.join(gas)} predicted with their gas inside R_Delta below f_b M_Delta"
                 if gas else "gas-fraction bound: not applied")
    ideal = dict(getattr(t, "ideal_gas", {}) or {})
    if ideal:
        lines.append("ideal-gas temperature: " + ", ".join(f"{temp} predicted as {p} / {d} times a learnt correction"
                                                          for temp, (p, d) in ideal.items()))
    if t.pk_pca is not None:
        lines.append(f"P(k) suppression: {t.pk_pca['components'].shape[0]} principal components of "
                     f"{t.pk_pca['components'].shape[1]} k bins")
    lines.append(f"ensemble: {emulator.members} members, variance scale {emulator.variance_scale:.3g} "
                 f"({emulator.metadata.get('variance_scale_fitted_on', 'not calibrated')})")
    return lines


# ---------------------------------------------------------------------- sections
def _metrics_part(run: RunFolder, emulator: Any = None) -> str:
    """The cross-validation and test-split metric tables, or how to get them (with the GP blend's own
    out-of-sample errors when the emulator blends one: the cross-validation table is the network's)."""
    legend = ("Fractional errors in percent of the linear profile; coverage of the central 68%/95% "
              "predictive intervals; the noise floor is the error a perfect emulator would show against "
              "the noisy targets.")
    out = ""
    cv = run.cross_validation()
    if cv:
        header, rows = metrics_table(cv["metrics"])
        spread = cv.get("spread_over_folds", {})
        spread_text = ", ".join(f"{k} {100 * v['mean']:.2f} ± {100 * v['std']:.2f}%" for k, v in spread.items()
                                if k.startswith("frac_err") and v.get("mean") is not None)
        out += (f"<h3>Cross-validation estimate ({cv['folds']} folds by simulation)</h3>"
                + _table(header, rows)
                + _note(f"These are cross-validation estimates: every row was predicted by "
                        f"{fold_predictor(cv)} trained on the other folds' simulations; then, for the Emulator "
                        f"itself, {refit_description(cv)}. Spread over the "
                        f"folds (mean ± std): {spread_text}."))
        blend = None if emulator is None else emulator.metadata.get("gp_blend", {}).get("report")
        if blend and blend.get("fields"):
            from profemu.emulator.blend import GPBlend

            out += _note("The Emulator blends a Gaussian process into the network's prediction "
                         "(train.gp_blend), so this table is the network's alone. The blend's out-of-sample "
                         f"errors: {GPBlend.describe(blend, tuple(blend['fields']))}.")
    evaluation = run.evaluation()
    if evaluation:
        header, rows = metrics_table(evaluation)
        out += "<h3>Test split (never seen in training)</h3>" + _table(header, rows)
    if not out:
        return _note(f"No cross-validation or test metrics: run `profemu evaluate {run.path}`.")
    return out + _note(legend)


def _baseline_curves(comparison: Mapping[str, Any] | None, fields: Sequence[str], n_r: int
                     ) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]]:
    """field -> baseline -> (median, p68) fractional errors per radius from ``compare.json``."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]] = {f: {} for f in fields}
    for method, per_field in dict((comparison or {}).get("per_radius", {})).items():
        if method == "profemu":
            continue
        for field, d in dict(per_field).items():
            if field in out and d.get("frac_err_median") is not None:
                med = np.array([np.nan if v is None else v for v in d["frac_err_median"]], float)
                p68 = d.get("frac_err_p68")
                p68a = None if p68 is None else np.array([np.nan if v is None else v for v in p68], float)
                if med.shape == (n_r,):
                    out[field][method] = (med, p68a)
    return out


def _held_out_parts(test: ProfileDataset, pred: Mapping[str, Any], held_out: str,
                    comparison: Mapping[str, Any] | None, n_examples: int, radius_unit: str) -> dict[str, str]:
    """The residual, profile, fractional-error and calibration sections from the held-out rows."""
    from profemu.metrics import calibration_curve

    parts: dict[str, str] = {}
    floor = _noise_floor(test)
    bands = {f: _residual_quantiles(p.mean, test.log10_profile(f), test.mask[f]) for f, p in pred.items()}
    parts["residuals"] = (
        _note(f"prediction / truth - 1 of the linear profile for the {test.n} rows of {held_out}: at each "
              "radius the median (line) and the central 68% and 95% of the rows (shaded); dotted: ± the median "
              "error a perfect emulator would show against these noisy targets.")
        + _img(_png(_residual_figure(bands, test.radius, radius_unit, floor)), "residuals vs radius"))
    rows = np.sort(np.random.default_rng(0).choice(test.n, size=min(n_examples, test.n), replace=False))
    parts["profiles"] = (
        _note(f"{len(rows)} held-out examples per field from {held_out}; shaded: central 68% and 95% "
              "predictive intervals; points: the data (with their noise where known).")
        + _img(_png(_profiles_figure(pred, test, rows, radius_unit)), "predicted vs true profiles"))
    err_curves = _baseline_curves(comparison, list(pred), test.n_r)
    for field, p in pred.items():
        ours = frac_error_by_radius(p.mean, test.log10_profile(field), test.mask[field])
        err_curves[field] = {"profemu": ours, **err_curves[field]}
    parts["fractional-error"] = (
        _note(f"Fractional error |10^(pred - true) - 1| on {held_out}: solid median, dashed 68th "
              "percentile; dotted: the median error a perfect emulator would show against these noisy targets.")
        + _img(_png(_frac_error_figure(err_curves, test.radius, radius_unit, floor)), "fractional error vs radius"))
    cal: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for field, p in pred.items():
        noise = None if test.noise is None else test.noise.get(field)
        cal[field] = calibration_curve(p.mean, p.var, test.log10_profile(field), test.mask[field], noise)
    parts["calibration"] = (
        _note(f"Fraction of the entries of {held_out} inside the central predictive interval of each "
              "nominal probability (known target noise added to the predictive variance). "
              "Above the diagonal: intervals too wide; below: too narrow.")
        + _img(_png(_calibration_figure(cal)), "calibration"))
    return parts


def _comparison_part(run: RunFolder, comparison: Mapping[str, Any] | None) -> str:
    """The comparison table and the baselines' settings, or how to make them."""
    if not (comparison and comparison.get("rows")):
        return _note(f"No comparison yet: run `profemu compare {run.path}` to train the ARD GP (gp) and "
                     "PCA+RBF (pca_rbf) baselines on this run's training split and score them on its test split.")
    out = _table(*comparison_table(comparison["rows"], columns=_COMPARISON_COLUMNS, labels=True))
    settings = comparison.get("baseline_settings")
    if isinstance(settings, Mapping) and settings:
        out += "<h3>Baseline settings</h3>" + _table(*baseline_settings_table(settings))
    return out


def _design_pk(emulator: Any, train: ProfileDataset | None) -> tuple[np.ndarray | None, str | None]:
    """The P(k) suppression the design steps assume, or why there is none.

    Returns:
        ``(None, None)`` when the emulator takes no P(k); ``(median, None)``, the median
        over the training rows per k bin, when it does; ``(None, reason)`` when the
        training rows (or their P(k)) are not available.
    """
    k = getattr(emulator.transforms, "k", None)
    if k is None:
        return None, None
    why = ("the run's training rows could not be loaded (its data or split.json are missing; pass dataset=)"
           if train is None or train.n == 0 else
           "the run's training rows have no P(k)" if train.pk_ratio is None else None)
    if why is not None:
        return None, (f"this emulator takes the P(k) suppression on {len(k)} k bins, which a simulation not yet "
                      f"run does not have; the report assumes the training rows' median P(k), but {why}")
    return np.median(np.asarray(train.pk_ratio, float), axis=0), None


def _design_redshift(emulator: Any, train: ProfileDataset | None) -> float | None:
    """The redshift the sensitivity and the suggestions are computed at for an emulator that takes
    the redshift as an input (the training rows' median, else the middle of the training range);
    None for one that does not (its training redshift is used)."""
    box = emulator.training_box.get("redshift")
    if box is None or not emulator.input_spec.uses_redshift or float(box[0]) == float(box[1]):
        return None
    if train is not None and train.redshift is not None:
        return float(np.median(np.asarray(train.redshift, float)))
    return 0.5 * (float(box[0]) + float(box[1]))


def _redshift_note(z: float | None) -> str:
    return "" if z is None else f" The redshift input is held at the training rows' median, z = {z:.3g}."


def _sensitivity_part(emulator: Any, pk: np.ndarray | None, top: int = 12,
                      redshift: float | None = None) -> tuple[str, Any]:
    """The sensitivity figure and the table of the ``top`` parameters, and the
    :class:`~profemu.design.Sensitivity` (None when it failed)."""
    from profemu.design import sensitivity, sensitivity_figure

    try:
        sens = sensitivity(emulator, at="box", n_points=32, seed=0, pk_ratio=pk, redshift=redshift)
        figure = _png(sensitivity_figure(sens, top=4))
    except Exception as exc:  # JAX missing or a failure: the rest of the report still stands
        return _note(f"The sensitivity could not be computed: {type(exc).__name__}: {exc}"), None
    held = ""
    if getattr(emulator.transforms, "k", None) is not None:
        held = (" The P(k) suppression is held at the training rows' median." if pk is not None
                else " The P(k) suppression is held at the centre of its training range.")
    out = _note("d log10 profile / d parameter per radius (log10 for log-sampled parameters), averaged over "
                "the training box: which parameters the data can constrain." + held + _redshift_note(redshift))
    out += _img(figure, "sensitivity")
    ranked = sens.ranked()
    out += _table(["parameter", "RMS change of log10 profile across the prior [dex]"],
                  [[name, f"{value:.3g}"] for name, value in ranked[:top]])
    if len(ranked) > top:
        out += _note(f"... and {len(ranked) - top} more parameters, each below {ranked[top][1]:.3g} dex.")
    return out, sens


def _suggestions_part(emulator: Any, train: ProfileDataset | None, sens: Any, pk: np.ndarray | None,
                      pk_reason: str | None, n: int = 20, redshift: float | None = None) -> str:
    """``n`` suggested next simulations over the training design, or precisely why they were skipped."""
    from profemu.design import suggest, suggestion_figure

    members = int(getattr(emulator, "members", 0))
    if members < 2:
        return _note(f"Suggestions skipped: they rank candidates by the disagreement of the ensemble's members, "
                     f"and this emulator has {members} member; train with train.members >= 2.")
    if pk_reason is not None:
        return _note(f"Suggestions skipped: {pk_reason}.")
    try:
        nxt = suggest(emulator, n, candidates=5_000, seed=0, pk_ratio=pk, redshift=redshift)
        figure = _png(suggestion_figure(nxt, design=train, sensitivity=sens))
    except (ConfigError, DataError) as exc:
        return _note(f"Suggestions skipped: {exc}")
    except Exception as exc:  # JAX missing or a failure: the rest of the report still stands
        return _note(f"The suggestions could not be computed: {type(exc).__name__}: {exc}")
    assumed = " Every candidate assumes the training rows' median P(k) suppression." if pk is not None else ""
    return (_note(f"Where to run the next {n} simulations (largest ensemble disagreement, chosen as a diverse "
                  "batch; `profemu suggest` writes them as a table), over the training design in the two most "
                  "important parameters." + assumed + _redshift_note(redshift))
            + _img(figure, "suggested simulations"))


def _design_parts(run: RunFolder, emulator: Any, dataset: ProfileDataset | None) -> dict[str, str]:
    """The sensitivity and suggestion sections, computed independently of each other."""
    train = None
    if dataset is not None:
        try:
            train = dataset.subset(run.split_rows("train", dataset.n))
        except DataError:
            train = None
    pk, pk_reason = _design_pk(emulator, train)
    z = _design_redshift(emulator, train)
    sensitivity_html, sens = _sensitivity_part(emulator, pk, redshift=z)
    return {"sensitivity": sensitivity_html,
            "suggestions": _suggestions_part(emulator, train, sens, pk, pk_reason, redshift=z)}


def _data_part(run: RunFolder, dataset: ProfileDataset | None, note: str | None, source: Any) -> str:
    """The data summary (source file, shapes, CAMELS selection)."""
    text = dataset.summary() if dataset is not None else (note or "The data were not loaded.")
    if source is not None:
        text = f"source: {source.path} (format {source.format}, options {dict(source.options)})\n" + text
    selection = (dataset.meta.get("camels_selection") if dataset is not None else None) or {}
    if isinstance(selection, dict) and selection.get("summary"):
        text += "\n" + str(selection["summary"])
    return f"<pre>{_e(text)}</pre>"


def _page(run: RunFolder, emulator: Any, source: Any, parts: Mapping[str, str], emulator_note: str | None) -> str:
    """The whole HTML document: title, summary line, navigation and the sections in order."""
    if emulator is not None:
        kind = "physics-core" if emulator.model_config.kind == "physics" else "MLP"
        origin = "" if source is None else f" on {Path(source.path).name}"
        title = f"profemu report: {kind} emulator of {', '.join(emulator.field_names)}{origin}"
    else:
        title = f"profemu report: {run.path.resolve().name}"
    summary = _e(repr(emulator)) if emulator is not None else _e(emulator_note or "no emulator")
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a> ' for sid, name in SECTIONS)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{parts[sid]}</section>' for sid, name in SECTIONS)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p><code>{summary}</code><br>"
        f"run folder: <code>{_e(run.path.resolve())}</code>; written {_e(stamp)}</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report(run_dir: str | Path, *, dataset: ProfileDataset | None = None,
                 n_examples: int = 6) -> Path:
    """Write ``run_dir/report.html``, a self-contained summary of a training run.

    Args:
        run_dir: A run folder written by ``profemu train`` (or
            :func:`profemu.runs.training.train_emulator` with ``run_dir``).
        dataset: The run's full dataset (the held-out rows are taken with ``split.json``);
            reloaded from ``data.json`` when None. Without data, the residual, profile,
            error and calibration sections say why they are missing.
        n_examples: Held-out examples plotted per field.

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: ``run_dir`` is not a run folder.
    """
    run = RunFolder.open(run_dir, require_emulator=False)
    notes: dict[str, str] = {}
    emulator = None
    try:
        emulator = run.emulator()
    except (FormatError, DataError) as exc:
        notes["emulator"] = f"The saved emulator could not be loaded: {exc}"
    if dataset is None:  # also for a run that did not finish: its data and training curves still tell
        try:
            dataset = run.dataset()
        except Exception as exc:  # the data may have moved; the report is still useful
            notes["data"] = f"The run's data could not be reloaded ({exc}); pass dataset= to include them."
    if emulator is None:
        logger.warning("report: %s; the report shows the run's data and training curves only",
                       notes.get("emulator", "the run has no emulator"))
    held: tuple[ProfileDataset, Any, str] | None = None
    if emulator is not None and dataset is not None:
        try:
            held = _held_out(run, emulator, dataset)
        except Exception as exc:
            notes["data"] = f"Predictions on the held-out data failed: {exc}"
    missing = notes.get("emulator") or notes.get("data") or "No emulator or data available."
    comparison = run.comparison()

    parts: dict[str, str] = {"metrics": _metrics_part(run, emulator)}
    if held is not None:
        radius_unit = dataset.radius_unit if dataset is not None else ""
        parts.update(_held_out_parts(*held, comparison, n_examples, radius_unit))
    else:
        parts.update({key: _note(missing) for key in ("residuals", "profiles", "fractional-error", "calibration")})
    parts["comparison"] = _comparison_part(run, comparison)
    if emulator is not None:
        parts["physics"] = ('<ul class="physics">' + "".join(f"<li>{_e(line)}</li>" for line in _physics_lines(emulator))
                            + "</ul>")
        parts.update(_design_parts(run, emulator, dataset))
    else:
        parts.update({key: _note(missing) for key in ("physics", "sensitivity", "suggestions")})
    history = run.history()
    curves = _curves_figure(history) if history else None
    parts["training-curves"] = (_img(_png(curves), "training curves") if curves is not None else
                                _note("No training metrics (metrics.jsonl is missing or empty)."))
    source = None
    try:
        source = run.source()
    except FormatError:
        pass
    parts["data"] = _data_part(run, dataset, notes.get("data"), source)
    cfg_file = run.path / "config.yaml"
    parts["config"] = (f"<pre>{_e(cfg_file.read_text())}</pre>" if cfg_file.is_file()
                       else _note("No config.yaml in the run folder."))
    return run.write_text("report.html", _page(run, emulator, source, parts, notes.get("emulator")))
