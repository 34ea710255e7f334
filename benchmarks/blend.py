"""Never worse than the GP on small suites: the network, the ARD GP and their blend against the truth.

Data: the 35-parameter hard mock (:func:`profemu.data.mock.make_hard_mock`, seed 0, the CAMELS
SB35 parameter table when ``../shared/data/camels_sb35`` has it), ``rho`` on 30 physical radii
with 0.2-0.35 dex single-halo scatter; N = 300, 600 and 2,000 haloes (one per simulation).
Split: 5-fold cross-validation by simulation (:func:`profemu.data.split.group_kfold`, seed 0,
stratified in mass); quick mode scores folds 0-2, full mode all five. Each fold's test haloes
are scored against their noiseless truth (median and 95th percentile of the fractional error
of the mean profile, pooled over the scored folds).

Methods (same training rows): ``profemu`` — the shipped ``Config()`` (on this suite
``train.gp_blend: auto`` blends the GP); ``network alone`` — the same with ``train.gp_blend:
off``; ``GP`` — :class:`profemu.baselines.GPBaseline` with its defaults (ARD RBF + white noise
shared by every radius, two starts). Wall times are one fit on this machine.

Time to accuracy: the same methods' held-out error against their wall time of one fit, per
size, on the hard mock (above) and on CAMELS LH TNG ``rho`` (``camels_lh_tng.npz``, mass bins
11-11.5 and 11.5-12, 6 parameters: the last 300 simulations of a seed-0 shuffle held out,
scored against their stacked profiles; training sets of 100, 200, 300, 600 and 1,400 rows (all 700 other
simulations) are the first simulations of the same shuffle, never a held-out one, and at 100-300 rows also of two more seeded shuffles
of the other 700 simulations (seeds 1 and 2): one draw of 50-150 simulations decides little, so
those sizes pool the held-out errors of the three training sets), in one figure.

Targets: profemu <= GP at every N (median and 95th), <= 0.9 x GP at 2,000 (median).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, figure_link, save_figure

__all__ = ["markdown", "run"]

SHARED = Path(os.environ.get("PROFEMU_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SB35 = SHARED / "camels_sb35" / "Info_IllustrisTNG_L50n512_35params.csv"
SIZES = (300, 600, 2000)
TNG_SIZES = (100, 200, 300, 600, 1400)
#: TNG training sets up to this many rows are drawn three times (seeds 0, 1, 2), their errors pooled.
TNG_DRAWN_SIZES = 300
TNG_DRAWS = 3
CAMELS = SHARED / "camels_lh_tng.npz"
METHODS = ("profemu", "network alone", "GP")
log = logging.getLogger(__name__)


def _note(message: str) -> None:
    print(f"[blend] {message}", flush=True)


def _errors(mean: np.ndarray, truth: np.ndarray) -> np.ndarray:
    e = np.abs(10.0 ** (mean - truth) - 1.0).ravel()
    return e[np.isfinite(e)]


def _fold(ds: Any, truth: np.ndarray | None, train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, Any]:
    from profemu.baselines import GPBaseline
    from profemu.config import Config
    from profemu.runs.training import train_emulator

    train, test = ds.subset(train_rows), ds.subset(test_rows)
    if truth is None:  # real data: score against the held-out profiles themselves
        truth = np.full((ds.n, ds.n_r), np.nan)
        truth[test_rows] = np.where(test.mask["rho"], np.log10(np.where(test.mask["rho"], test.profiles["rho"], 1.0)),
                                    np.nan)
    out: dict[str, Any] = {}
    for method, changes in (("profemu", {}), ("network alone", {"train.gp_blend": "off"})):
        t0 = time.perf_counter()
        emulator = train_emulator(train, Config().updated(changes)).emulator
        seconds = time.perf_counter() - t0
        mean = emulator.predict(test.params, test.log10_mass, on_extrapolation="ignore")["rho"].mean
        out[method] = {"errors": _errors(mean, truth[test_rows]), "seconds": seconds}
        if emulator.blend is not None:
            out[method]["weight"] = emulator.blend.report["fields"]["rho"]["weight"]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp = GPBaseline(seed=0).fit(train)
    seconds = time.perf_counter() - t0
    mean = gp.predict(test.params, test.log10_mass)["rho"][0]
    out["GP"] = {"errors": _errors(mean, truth[test_rows]), "seconds": seconds}
    return out


def run(*, quick: bool, out_dir: Path | None = None, smoke: bool = False) -> dict[str, Any]:
    """Every size and scored fold; ``smoke``: one fold of 300 haloes."""
    from profemu.data.mock import make_hard_mock
    from profemu.data.split import group_kfold

    sizes = (300,) if smoke else SIZES
    folds = (0,) if smoke else (0, 1, 2) if quick else (0, 1, 2, 3, 4)
    results: dict[str, Any] = {"folds": list(folds), "sizes": {}}
    for n in sizes:
        universe = make_hard_mock(n, seed=0, parameter_table=SB35 if SB35.is_file() else None)
        ds, truth = universe.dataset.select_fields(["rho"]), np.log10(universe.truth["rho"])
        splits = group_kfold(ds, 5, seed=0)
        pooled: dict[str, dict[str, Any]] = {m: {"errors": [], "seconds": [], "weights": []} for m in METHODS}
        for k in folds:
            _note(f"{n} haloes, fold {k} ...")
            res = _fold(ds, truth, *splits[k])
            for m in METHODS:
                pooled[m]["errors"].append(res[m]["errors"])
                pooled[m]["seconds"].append(res[m]["seconds"])
                if "weight" in res[m]:
                    pooled[m]["weights"].append(res[m]["weight"])
        block = {}
        for m in METHODS:
            e = np.concatenate(pooled[m]["errors"])
            block[m] = {"frac_err_median": float(np.median(e)), "frac_err_p95": float(np.percentile(e, 95)),
                        "fit_seconds": float(np.mean(pooled[m]["seconds"])),
                        "network_weights": pooled[m]["weights"]}
        results["sizes"][str(n)] = block
        _note(f"{n}: " + ", ".join(f"{m} {100 * block[m]['frac_err_median']:.2f}%" for m in METHODS))
    if CAMELS.is_file() and not smoke:
        results["tng"] = _tng()
    if out_dir is not None:
        results["figures"] = _figure(results, out_dir)
    return results


def _tng() -> dict[str, Any]:
    """CAMELS TNG rho: the last 300 simulations of a shuffled list held out; training sets of N rows
    are the first N/2 simulations of that list (draw 0) and, up to :data:`TNG_DRAWN_SIZES` rows, of
    seeded shuffles of the other simulations (draws 1, 2); the draws' errors are pooled."""
    from profemu.data.camels import load_camels_lh

    ds = load_camels_lh(CAMELS, fields=("rho",), statistic="mean", mass_bins=("11-11.5", "11.5-12"), verbose=False)
    sims = np.unique(ds.groups)
    np.random.default_rng(0).shuffle(sims)
    test_rows = np.flatnonzero(np.isin(ds.groups, sims[-300:]))
    out: dict[str, Any] = {"n_test": int(test_rows.size), "draws": {}}
    for n in TNG_SIZES:
        draws = TNG_DRAWS if n <= TNG_DRAWN_SIZES else 1
        pooled: dict[str, dict[str, list[Any]]] = {m: {"errors": [], "seconds": [], "weights": []} for m in METHODS}
        for draw in range(draws):
            _note(f"TNG rho, {n} training rows, draw {draw} ...")
            order = sims[:-300].copy()
            if draw:
                np.random.default_rng(draw).shuffle(order)
            if n // 2 > order.size:
                raise ValueError(f"TNG_SIZES: {n} rows need {n // 2} simulations, {order.size} are not held out")
            res = _fold(ds, None, np.flatnonzero(np.isin(ds.groups, order[: n // 2])), test_rows)
            for m in METHODS:
                pooled[m]["errors"].append(res[m]["errors"])
                pooled[m]["seconds"].append(res[m]["seconds"])
                if "weight" in res[m]:
                    pooled[m]["weights"].append(res[m]["weight"])
        out["draws"][str(n)] = draws
        out[str(n)] = {m: {"frac_err_median": float(np.median(np.concatenate(pooled[m]["errors"]))),
                           "frac_err_p95": float(np.percentile(np.concatenate(pooled[m]["errors"]), 95)),
                           "fit_seconds": float(np.mean(pooled[m]["seconds"])),
                           "network_weights": pooled[m]["weights"]} for m in METHODS}
    return out


def _figure(results: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Median error against fit time, one point per training size, per method (hard mock, TNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    panels = {"hard mock (35 parameters), vs the truth": results["sizes"]}
    if results.get("tng"):
        panels["CAMELS TNG rho (6 parameters), vs held-out profiles"] = {
            k: v for k, v in results["tng"].items() if k not in ("n_test", "draws")}
    fig = Figure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, sizes) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True):
        for j, m in enumerate(METHODS):
            t = [sizes[n][m]["fit_seconds"] for n in sizes]
            e = [100 * sizes[n][m]["frac_err_median"] for n in sizes]
            ax.plot(t, e, marker="o", color=f"C{j}", label=m)
            if m == "profemu":
                for n, x, y in zip(sizes, t, e, strict=True):
                    ax.annotate(f"{int(n):,} rows", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        times = [sizes[n][m]["fit_seconds"] for n in sizes for m in METHODS]
        # within a decade the minor ticks carry the only labels; across several they crowd
        ax.xaxis.set_minor_formatter(plain if max(times) < 10 * min(times) else NullFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("wall time of one fit [s] (this machine)")
        ax.set_ylabel("median fractional error [%]")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    return {"time_to_accuracy": save_figure(fig, out_dir, "blend_time_to_accuracy")}


def _table(size_label: str, sizes: dict[str, Any]) -> list[str]:
    """One row per (size, method): errors, the ratio to the GP, fit time and the blend's weights."""
    lines = [f"| {size_label} | method | median frac. err | 95th pct | / GP (median) | fit [s] | network weight |",
             "|---|---|---|---|---|---|---|"]
    for n, block in sizes.items():
        gp = block["GP"]["frac_err_median"]
        for m in METHODS:
            r = block[m]
            weights = ", ".join(f"{w:.2f}" for w in r["network_weights"]) or "–"
            lines.append(f"| {n} | {m} | {100 * r['frac_err_median']:.2f}% | {100 * r['frac_err_p95']:.1f}% | "
                         f"{r['frac_err_median'] / gp:.2f} | {r['fit_seconds']:.1f} | {weights} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md."""
    folds = results["folds"]
    lines = ["## Small suites: the network, the GP and their blend against the truth (hard mock)", "",
             f"35-parameter hard mock, rho, 5-fold cross-validation by simulation (seed 0), folds {folds} scored "
             "against the noiseless truth and pooled. `profemu` is the shipped default (`train.gp_blend: auto` "
             "blends an exact ARD GP on the network's inputs, weighted out of sample); `network alone` turns the "
             "blend off; `GP` is `GPBaseline` with its defaults. See `benchmarks/blend.py`.", ""]
    lines += _table("haloes", results["sizes"])
    lines += ["", "Targets: profemu <= GP at every size (median and 95th), <= 0.9 x GP at 2,000 haloes (median)."]
    tng = results.get("tng")
    if tng:
        drawn = sorted(int(n) for n, d in tng.get("draws", {}).items() if d > 1)
        lines += ["", f"CAMELS LH TNG rho (6 parameters; {tng['n_test']} rows of 300 held-out simulations, seed 0; "
                  "scored against their stacked profiles): the blend is automatic up to 300 training rows."
                  + (f" At {', '.join(map(str, drawn))} rows the numbers pool three training sets (draws 0-2 of "
                     "the other simulations; fit time: their mean)." if drawn else ""), ""]
        lines += _table("rows", {n: block for n, block in tng.items() if n not in ("n_test", "draws")})
    if results.get("figures", {}).get("time_to_accuracy"):
        lines += ["", figure_link(results, results["figures"]["time_to_accuracy"],
                                  "median error against the wall time of one fit, per training size")]
    lines.append("")
    return "\n".join(lines)
