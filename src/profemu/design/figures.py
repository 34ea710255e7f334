"""Figures of the design: the suggested points over the training simulations, and the sensitivities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from profemu.design.derivatives import Sensitivity, top_parameters
from profemu.design.selection import Suggestion
from profemu.errors import ConfigError, DataError

__all__ = ["sensitivity_figure", "suggestion_figure"]


# ---------------------------------------------------------------------- figure
def suggestion_figure(
    suggestion: Suggestion,
    *,
    design: Any = None,
    parameters: Sequence[str] | None = None,
    sensitivity: Any = None,
) -> Any:
    """The suggested points over the training design in two parameters, coloured by score.

    Args:
        suggestion: From :func:`suggest`.
        design: The training design: an [n, p] array (columns ``param_names``), a
            ``{name: values}`` mapping or a :class:`~profemu.data.dataset.ProfileDataset`
            (optional).
        parameters: The two parameters on the axes; default: the two most important free
            parameters by ``sensitivity`` (:func:`profemu.design.derivatives.top_parameters`), or
            the first two free ones.
        sensitivity: A :class:`~profemu.design.derivatives.Sensitivity` to rank the parameters.

    Returns:
        A :class:`matplotlib.figure.Figure` on an Agg canvas (the global backend is untouched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = suggestion.param_names
    free = [nm for nm in names if nm not in suggestion.fixed]
    if parameters is None:
        if sensitivity is not None:
            from profemu.design.derivatives import top_parameters

            parameters = top_parameters(sensitivity, k=2, among=free or names)
        else:
            parameters = (free + list(names))[:2]
    parameters = list(parameters)
    if len(parameters) != 2 or any(p not in names for p in parameters):
        raise ConfigError(f"parameters: expected two of {list(names)}, got {parameters!r}.")
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    px, py = parameters
    if design is not None:
        dx, dy = _design_columns(design, names, px, py)
        ax.scatter(dx, dy, s=6, c="0.7", label="training design", zorder=1)
    sc = ax.scatter(
        suggestion.points[px], suggestion.points[py], c=suggestion.score, cmap="viridis", s=28,
        edgecolors="k", linewidths=0.4, label="suggested", zorder=2,
    )
    fig.colorbar(sc, ax=ax, label="epistemic variance [dex²]")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for set_scale, axis, nm in ((ax.set_xscale, ax.xaxis, px), (ax.set_yscale, ax.yaxis, py)):
        if nm in suggestion.log_params:
            set_scale("log")
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
    ax.set_xlabel(px)
    ax.set_ylabel(py)
    ax.set_title(f"{len(suggestion)} suggested simulations")
    ax.legend(loc="best", fontsize=8)
    return fig


def _design_columns(design: Any, names: Sequence[str], px: str, py: str) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(design, "params") and hasattr(design, "param_names"):
        cols = list(design.param_names)
        arr = np.asarray(design.params)
        return arr[:, cols.index(px)], arr[:, cols.index(py)]
    if isinstance(design, Mapping):
        return np.asarray(design[px]), np.asarray(design[py])
    arr = np.asarray(design, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataError(f"design: expected an array [n, {len(names)}], got shape {arr.shape}.")
    return arr[:, list(names).index(px)], arr[:, list(names).index(py)]


def sensitivity_figure(sens: Sensitivity, *, top: int = 4, scaled: bool = False) -> Any:
    """One panel per field: ``d log10 y / d theta`` vs radius for the ``top`` parameters.

    The other parameters are summarised by a grey band: the largest ``|d log10 y / d
    theta|`` among them at each radius. With ``scaled`` every curve is multiplied by the
    parameter's box width (the change across the prior, dex).

    Returns:
        A :class:`matplotlib.figure.Figure` on an Agg canvas (the global backend is untouched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_f = len(sens.field_names)
    top = max(1, min(int(top), len(sens.param_names)))
    best = top_parameters(sens, k=top)
    rest = [j for j, nm in enumerate(sens.param_names) if nm not in best]
    fig = Figure(figsize=(4.2 * n_f, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, n_f, i + 1) for i in range(n_f)]
    factor = sens.width if scaled else np.ones_like(sens.width)
    where = "centre of the box" if sens.at == "centre" else f"mean over {sens.n_points} box points"
    for f, ax in enumerate(axes):
        g = sens.gradient[f] * factor  # [n_r, p]
        if rest:
            env = np.abs(g[:, rest]).max(axis=1)
            ax.fill_between(sens.radius, -env, env, color="0.85", label=f"other {len(rest)} (max |·|)")
        for nm in best:
            j = sens.param_names.index(nm)
            label = f"log10 {nm}" if nm in sens.log_params else nm
            ax.plot(sens.radius, g[:, j], lw=1.6, label=label)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(f"radius [{sens.radius_unit}]")
        ax.set_title(sens.field_names[f])
        if f == 0:
            ax.set_ylabel("Δ log10 y across the prior [dex]" if scaled else "d log10 y / d θ")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    fig.suptitle(f"Sensitivity at the {where}", fontsize=10)
    return fig
