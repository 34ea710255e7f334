"""A corner plot of posterior draws (matplotlib ``Figure`` on the Agg canvas, no global state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from profemu._files import atomic_write

__all__ = ["corner_plot"]


def _levels(hist: np.ndarray, masses: Sequence[float]) -> list[float]:
    """Density thresholds enclosing ``masses`` of a 2-D histogram (highest-density regions)."""
    flat = np.sort(hist.ravel())[::-1]
    cum = np.cumsum(flat) / max(flat.sum(), 1e-300)
    out = []
    for m in sorted(masses, reverse=True):
        j = int(np.searchsorted(cum, m))
        out.append(float(flat[min(j, flat.size - 1)]))
    return sorted(set(out))


def corner_plot(
    samples: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    truths: Sequence[float] | None = None,
    title: str = "",
    bins: int = 30,
) -> Path:
    """Write a corner plot of ``samples`` to ``path`` (PNG, atomically).

    Args:
        samples: [n, k] draws.
        names: The ``k`` axis labels.
        path: Output file (.png).
        truths: Optional [k] reference values (drawn as lines).
        title: Figure title.
        bins: Histogram bins per axis.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(samples, dtype=float)
    k = x.shape[1]
    size = max(4.0, 1.6 * k)
    fig = Figure(figsize=(size, size), layout="constrained")
    FigureCanvasAgg(fig)
    lo = np.quantile(x, 0.002, axis=0)
    hi = np.quantile(x, 0.998, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    for i in range(k):
        for j in range(i + 1):
            ax = fig.add_subplot(k, k, i * k + j + 1)
            if i == j:
                ax.hist(x[:, i], bins=bins, range=(lo[i], hi[i]), color="C0", histtype="stepfilled", alpha=0.6)
                q = np.quantile(x[:, i], [0.16, 0.5, 0.84])
                for v in q:
                    ax.axvline(v, color="C0", lw=0.8, ls="--")
                ax.set_yticks([])
                ax.set_title(f"{names[i]} = {q[1]:.3g}$^{{+{q[2] - q[1]:.2g}}}_{{-{q[1] - q[0]:.2g}}}$", fontsize=7)
            else:
                hist, xe, ye = np.histogram2d(x[:, j], x[:, i], bins=bins, range=[[lo[j], hi[j]], [lo[i], hi[i]]])
                ax.imshow(hist.T, origin="lower", extent=(xe[0], xe[-1], ye[0], ye[-1]), aspect="auto",
                          cmap="Blues")
                levels = _levels(hist, (0.68, 0.95))
                if len(levels) >= 1 and hist.max() > 0:
                    xc, yc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
                    ax.contour(xc, yc, hist.T, levels=levels, colors="k", linewidths=0.6)
                if truths is not None:
                    ax.axvline(truths[j], color="C3", lw=0.8)
                    ax.axhline(truths[i], color="C3", lw=0.8)
                ax.set_ylim(lo[i], hi[i])
            ax.set_xlim(lo[j], hi[j])
            if truths is not None and i == j:
                ax.axvline(truths[i], color="C3", lw=0.8)
            ax.tick_params(labelsize=6)
            if i < k - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel(names[j], fontsize=7)
            if j > 0 or i == 0:
                ax.set_yticklabels([])
            else:
                ax.set_ylabel(names[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    payload = buf.getvalue()
    return atomic_write(Path(path), lambda fh: fh.write(payload))
