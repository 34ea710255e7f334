"""Metrics on disk: ``metrics.jsonl``, optional TensorBoard scalars and ``curves.png``.

:class:`MetricsLogger` is a ``fit`` callback: ``fit(..., callbacks=[MetricsLogger(run_dir)])``.
A resumed run first calls :meth:`MetricsLogger.resume`, which keeps only the lines of the
epochs its checkpoint holds, so every (stage, epoch) appears once in the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from profemu._files import atomic_write, atomic_write_text

__all__ = ["MetricsLogger", "import_plotting", "plot_curves"]


def _clean(value: Any) -> Any:
    """JSON-safe numbers: non-finite floats become null; numpy scalars become Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return int(value)
    return number if math.isfinite(number) else None


class MetricsLogger:
    """Write each epoch's metrics to ``run_dir/metrics.jsonl`` and TensorBoard.

    The logged entries are also kept in :attr:`history` (for :func:`plot_curves`).
    TensorBoard event files go to ``run_dir/tensorboard`` when ``tensorboardX`` is
    installed (``pip install profemu[logging]``); otherwise only the JSON lines are
    written and :attr:`note` says why.

    Args:
        run_dir: Run folder (created if needed).
        tensorboard: Also write TensorBoard scalars when possible.
    """

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self.note = ""
        self.history: list[dict[str, Any]] = []
        self._writer: Any = None
        self._summary: Any = None
        if tensorboard:
            try:
                from tensorboardX.proto.summary_pb2 import Summary
                from tensorboardX.writer import FileWriter
            except ImportError:
                self.note = "tensorboardX is not installed: TensorBoard scalars are skipped."
            else:
                # its own thread writes and flushes the file (every 2 s): the training thread only queues
                # events, so a Ctrl-C there never leaves the writer's lock held (the exit then hung on it)
                self._writer = FileWriter(str(self.run_dir / "tensorboard"), flush_secs=2)
                self._summary = Summary

    def resume(self, keep: Callable[[Mapping[str, Any]], bool]) -> int:
        """Continue the file of an interrupted run: keep only the lines that ``keep`` accepts.

        A run killed after an epoch's line was written but before that epoch's checkpoint
        trains the epoch again when resumed; without this its line would appear twice. The
        kept lines (unchanged) are written to a temporary file that replaces
        ``metrics.jsonl`` atomically (a kill meanwhile leaves the old file), lines that are
        not JSON objects (cut short by the kill) are dropped, and :attr:`history` starts
        with the kept entries (so ``curves.png`` shows the whole run).

        Args:
            keep: Whether an entry (one parsed line) belongs to what the resumed run keeps.

        Returns:
            The number of lines dropped.
        """
        if not self.path.is_file():
            return 0
        text = self.path.read_text(errors="replace")
        kept: list[str] = []
        history: list[dict[str, Any]] = []
        dropped = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                entry = None
            if isinstance(entry, dict) and keep(entry):
                kept.append(line)
                history.append(entry)
            else:
                dropped += 1
        if dropped or not text.endswith("\n"):  # also ends a last line cut before its newline
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.history = history
        return dropped

    def log(self, entry: Mapping[str, Any]) -> None:
        """Append one epoch's dict (one JSON line) and its scalars to TensorBoard."""
        clean = _clean(dict(entry))
        self.history.append(clean)
        with self.path.open("a") as fh:
            fh.write(json.dumps(clean, allow_nan=False) + "\n")
        if self._writer is not None:  # one event per epoch holding every scalar (one per scalar costs 4x)
            values = [self._summary.Value(tag=key, simple_value=float(value)) for key, value in clean.items()
                      if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool)]
            self._writer.add_summary(self._summary(value=values), int(entry.get("epoch", 0)))

    def __call__(self, entry: Mapping[str, Any]) -> None:
        """Callback form of :meth:`log` (returns None, so it never stops training)."""
        self.log(entry)

    def close(self) -> None:
        """Close the TensorBoard writer (the JSON file is closed after every line)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _panels(history: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for entry in history:
        for key in entry:
            if key.startswith("train_") and not key.endswith("_members") and key not in keys:
                keys.append(key)
    return [*keys, "val_loss", "grad_norm", "learning_rate"]


def import_plotting() -> None:
    """Import what :func:`plot_curves` draws with (matplotlib's figure, Agg canvas and tickers).

    A fit that keeps curves calls it on a thread of its own at its first epoch, so the
    import (~0.4 s) overlaps the training instead of following it."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure
    import matplotlib.ticker  # noqa: F401


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Draw one panel per training loss component, validation loss, gradient norm and LR.

    Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so no global
    backend is changed (and it may run on a thread of its own). Panels whose values are
    all zero or missing are skipped. The file is replaced atomically: a reader never sees
    half an image.

    Args:
        history: ``FitResult.history`` (or the lines of ``metrics.jsonl``).
        path: Output image (e.g. ``run_dir/curves.png``).

    Returns:
        The written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    path = Path(path)
    stages = list(dict.fromkeys(str(e.get("stage", "")) for e in history))  # cv folds, then the refit
    series: dict[str, dict[str, tuple[list[Any], list[float]]]] = {}
    for key in _panels(history):
        lines = {}
        for stage in stages:
            xs, ys = [], []
            for entry in history:
                value = entry.get(key)
                if str(entry.get("stage", "")) == stage and isinstance(value, int | float) and \
                        not isinstance(value, bool) and math.isfinite(value):
                    xs.append(entry.get("epoch", len(xs)))
                    ys.append(float(value))
            if ys:
                lines[stage] = (xs, ys)
        if any(any(y != 0 for y in ys) for _, ys in lines.values()):
            series[key] = lines
    n = max(len(series), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    width, height = 4.0 * cols, 2.8 * rows
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    # fixed margins [inch] instead of a layout engine, which takes most of the drawing time
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.3 / height,
                        wspace=0.3, hspace=0.55)
    for i, (key, lines) in enumerate(series.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for stage, (xs, ys) in lines.items():
            refit = stage in ("", "refit")
            ax.plot(xs, ys, lw=1.4 if refit else 0.8, alpha=1.0 if refit else 0.45, label=stage or None,
                    color="C0" if refit else None)
        if all(y > 0 for _, ys in lines.values() for y in ys):
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())  # labels on the decades only
        if len(lines) > 1 and i == 0:
            ax.legend(fontsize=6, ncol=2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    if not series:
        fig.add_subplot(1, 1, 1).text(0.5, 0.5, "no finite metrics yet", ha="center", va="center")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=90))
