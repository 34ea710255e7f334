"""Cost and quality of the input-relevance fit (:mod:`profemu.train.relevance`).

``data.input_relevance: auto`` fits an ARD Gaussian process once per run and turns its
length scales into input weights. This section times that fit and checks that the cheap
fit (:func:`profemu.train.relevance.fit_relevance`: the 5 leading PCA components of the
standardised log10 profiles, one start, at most 60 L-BFGS-B iterations with ``ftol``
1e-5, one BLAS thread) gives weights, and an emulator, as good as the previous fit
(:class:`profemu.baselines.GPBaseline` on all radial columns, two starts of up to 300
iterations, ``ftol`` 1e-7, BLAS's default threads), reproduced here by
:func:`previous_ard_weights`.

Data: the 35-parameter hard mock (:func:`profemu.data.mock.make_hard_mock`, the CAMELS
SB35 table when ``../shared/data/camels_sb35`` has it, ``rho`` on 30 radii); training
mock seed ``s`` for seed ``s``, and a held-out mock of 1,000 rows (seed ``10,000 + s``)
whose noiseless truth scores the emulators.

What is measured
    * **cost** on 600 rows (500 fitted): wall time, starts, L-BFGS-B evaluations, rows,
      output columns of both fits, and the seconds per marginal-likelihood evaluation
      (N = 500, 36 inputs) for 30 columns and 5 components, with BLAS's default threads
      and one thread, on the machine as found and (full mode) with one busy-looping process
      per core beside it: the cause of the 30-210 s the previous fit took on a loaded
      machine.
    * **weights**: Spearman rank correlation of the length scales (parameters) of the
      two fits on the same rows, the parameters each gives a weight >= 0.05, and, as the
      scale of what is noise, the rank correlation of the previous fit with itself on
      another seeded choice of 500 of the 600 rows.
    * **emulator**: :func:`profemu.runs.training.train_emulator` with defaults except
      ``train.cv_folds: 0`` (a 10% validation split) and ``train.seed`` = ``data.split_seed``
      = ``s``, with the new weights, the previous weights and no weighting
      (``data.input_relevance: off``); median fractional error of the predicted median
      profile against the noiseless truth of the held-out mock. Sizes 600 (quick: 2
      seeds) and 300, 600, 2,000 (full: 4 seeds).
    * **training time**: the whole ``train_emulator`` of 600 rows with ``train.epochs: 2``
      (5-fold cross-validation and refit, relevance fitted once; target <= 20 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from benchmarks.common import REPO_ROOT, status

__all__ = ["TARGETS", "markdown", "previous_ard_weights", "run"]

TARGETS: dict[str, float] = {"train600_seconds": 20.0}
SHARED = Path(os.environ.get("PROFEMU_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SB35 = SHARED / "camels_sb35" / "Info_IllustrisTNG_L50n512_35params.csv"
TEST_ROWS = 1000
logger = logging.getLogger("profemu.benchmarks.relevance_cost")


def _note(message: str) -> None:
    print(f"[relevance_cost] {message}", flush=True)


def _hard(n: int, seed: int) -> tuple[Any, np.ndarray]:
    """``n`` rows of the hard mock (rho) and their noiseless truth [n, n_r] [Msun kpc^-3]."""
    from profemu.data.mock import make_hard_mock

    universe = make_hard_mock(n, seed=seed, parameter_table=SB35 if SB35.is_file() else None)
    return universe.dataset.select_fields(["rho"]), np.asarray(universe.truth["rho"])


def previous_ard_weights(ds: Any, fields: tuple[str, ...], *, seed: int = 0, max_rows: int = 500
                         ) -> tuple[np.ndarray, dict[str, float]]:
    """The previous relevance fit: ``GPBaseline`` on all radial columns of up to ``max_rows``
    seeded rows (two starts, up to 300 iterations each, ``ftol`` 1e-7, default BLAS threads).

    Returns:
        ``(weights [p], length scales by input name)``, like :func:`profemu.train.relevance.ard_weights`.
    """
    fit = _previous_fit(ds, fields, seed=seed, max_rows=max_rows)
    return fit["weights"], fit["length_scales"]


def _previous_fit(ds: Any, fields: tuple[str, ...], *, seed: int, max_rows: int) -> dict[str, Any]:
    from profemu.baselines import GPBaseline

    t0 = time.perf_counter()
    rows = np.arange(ds.n)
    if ds.n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(ds.n, max_rows, replace=False))
    gp = GPBaseline(seed=seed, max_train=max_rows, search_rows=max_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(ds.subset(rows), fields=fields)
    scales = gp.length_scales
    ell = np.array([scales[name] for name in ds.param_names])
    starts = gp.fit_report["starts"]
    return {"weights": np.clip(ell.min() / ell, 1e-6, 1.0), "length_scales": scales,
            "seconds": time.perf_counter() - t0, "rows": int(rows.size),
            "columns": int(len(fields) * ds.n_r), "starts": len(starts),
            "evaluations": int(sum(s["evaluations"] for s in starts)),
            "optimiser_seconds": float(sum(s["seconds"] for s in starts))}


def _new_fit(ds: Any, fields: tuple[str, ...], *, seed: int, max_rows: int = 500) -> dict[str, Any]:
    from profemu.train.relevance import fit_relevance

    fit = fit_relevance(ds, fields, seed=seed, max_rows=max_rows)
    return {"weights": fit.weights, "length_scales": fit.length_scales, "seconds": fit.seconds,
            "rows": fit.rows, "columns": fit.columns, "components": fit.components,
            "explained": fit.explained, "starts": fit.starts, "evaluations": fit.evaluations,
            "status": fit.status}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.log(a), np.log(b)).statistic)


def _kept(names: tuple[str, ...], weights: np.ndarray) -> list[str]:
    order = np.argsort(-weights, kind="stable")
    return [names[j] for j in order if weights[j] >= 0.05]


# ------------------------------------------------------------------ cost per evaluation
def _evaluation_seconds(x: np.ndarray, y: np.ndarray, threads: int | None, repeats: int = 7) -> float:
    """Median seconds of one marginal likelihood + gradient evaluation (BLAS ``threads``; None = default)."""
    from threadpoolctl import threadpool_limits

    from profemu.baselines.gp import gp_neg_log_marginal_likelihood

    theta = np.log(np.r_[1.0, np.full(x.shape[1], 3.0), 1e-2])
    ctx = contextlib.nullcontext() if threads is None else threadpool_limits(limits=threads, user_api="blas")
    with ctx:
        gp_neg_log_marginal_likelihood(theta, x, y)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            gp_neg_log_marginal_likelihood(theta, x, y)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _per_evaluation(ds: Any, *, loaded: bool) -> dict[str, Any]:
    """Seconds per evaluation at N = 500: 30 columns / 5 components x default / one BLAS thread."""
    from profemu.baselines.base import _Design
    from profemu.train.relevance import _components

    rows = np.sort(np.random.default_rng(0).choice(ds.n, 500, replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = _Design(ds.subset(rows), ("rho",), pca=False)
    x, cols = design.x, design.target - design.target.mean(axis=0)
    pcs, _ = _components(design.target, 5)
    out: dict[str, Any] = {"rows": 500, "inputs": int(x.shape[1])}
    out["load_average_1min"] = os.getloadavg()[0]
    settings = [("machine as found", False)] + ([(f"+{os.cpu_count()} busy processes", True)] if loaded else [])
    for label, busy in settings:
        burners = []
        if busy:  # one busy-looping process per core, ended by its own id below
            burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                       for _ in range(os.cpu_count() or 1)]
            time.sleep(0.5)
        try:
            for name, y in (("30 columns", cols), ("5 components", pcs)):
                for threads in (None, 1):
                    key = f"{label}, {name}, {'default' if threads is None else 1} BLAS thread(s)"
                    out[key] = _evaluation_seconds(x, y, threads)
        finally:
            for proc in burners:
                proc.kill()
                proc.wait()
    return out


# ------------------------------------------------------------------ emulator quality
def _emulator_error(ds: Any, test: Any, truth: np.ndarray, seed: int, relevance: str) -> dict[str, Any]:
    """Median fractional error against ``truth`` of ``train_emulator`` (``train.cv_folds: 0``)
    with the ``relevance`` weights: ``new``, ``previous`` or ``off``."""
    from profemu.config import Config
    from profemu.runs.training import train_emulator
    from profemu.train import relevance as relevance_module
    from profemu.train import setup as train_setup

    relevance_module._CACHE.clear()
    config = Config().updated({"train.cv_folds": 0, "train.seed": seed, "data.split_seed": seed,
                               "data.input_relevance": "off" if relevance == "off" else "ard"})
    patch = (mock.patch.object(train_setup, "ard_weights", previous_ard_weights) if relevance == "previous"
             else contextlib.nullcontext())
    t0 = time.perf_counter()
    with patch:
        result = train_emulator(ds, config)
    seconds = time.perf_counter() - t0
    # the held-out rows fill the same box; its corners lie just outside the training rows' range
    mean = result.emulator.predict(test.params, test.log10_mass, on_extrapolation="ignore")["rho"].mean
    frac = np.abs(np.expm1((np.asarray(mean) - np.log10(truth)) * np.log(10.0)))
    return {"frac_err_median": float(np.median(frac)), "seconds": seconds}


def _train_seconds() -> dict[str, Any]:
    """The whole ``train_emulator`` of 600 hard-mock rows with ``train.epochs: 2`` (CV + refit)."""
    from profemu.config import Config
    from profemu.runs.training import train_emulator
    from profemu.train import relevance as relevance_module

    relevance_module._CACHE.clear()
    ds, _ = _hard(600, 0)
    t0 = time.perf_counter()
    train_emulator(ds, Config().updated({"train.epochs": 2}))
    return {"rows": 600, "seconds": time.perf_counter() - t0}


def run(*, quick: bool, out_dir: Path | None = None, smoke: bool = False) -> dict[str, Any]:
    """Cost of both fits, their weights, and the emulators trained with them.

    Args:
        quick: 600 rows and 2 seeds for the emulator comparison, no loaded-machine timing.
        out_dir: Unused (no figures).
        smoke: 300 rows, 1 seed, no per-evaluation timing (seconds; numbers are meaningless).

    Returns:
        JSON-safe results (see the module docstring).
    """
    del out_dir
    results: dict[str, Any] = {"quick": quick, "smoke": smoke}
    ds, _ = _hard(600, 0)
    fields = ("rho",)
    _note("previous fit (GPBaseline, all columns, two starts) on 500 of 600 rows ...")
    old = _previous_fit(ds, fields, seed=0, max_rows=500)
    _note("new fit (5 PCA components, one start, one BLAS thread) ...")
    new = _new_fit(ds, fields, seed=0)
    other = _previous_fit(ds, fields, seed=1, max_rows=500)
    names = tuple(ds.param_names)
    results["cost"] = {
        "load_average_1min": os.getloadavg()[0],
        "previous": {k: v for k, v in old.items() if k not in ("weights", "length_scales")},
        "new": {k: v for k, v in new.items() if k not in ("weights", "length_scales")},
    }
    results["weights"] = {
        "spearman_new_vs_previous": _spearman(new["weights"], old["weights"]),
        "spearman_previous_seed1_vs_seed0": _spearman(other["weights"], old["weights"]),
        "kept_previous": _kept(names, old["weights"]),
        "kept_new": _kept(names, new["weights"]),
        "kept_previous_seed1": _kept(names, other["weights"]),
        "acting": sorted(ds.meta.get("acting_parameters", {})),
    }
    _note(f"cost: {results['cost']}; weights: {results['weights']}")
    if not smoke:
        _note("seconds per marginal-likelihood evaluation ...")
        results["per_evaluation"] = _per_evaluation(ds, loaded=not quick)
        _note(f"per evaluation: {results['per_evaluation']}")
    sizes, seeds = ((300,), (0,)) if smoke else ((600,), (0, 1)) if quick else ((600, 300, 2000), (0, 1, 2, 3))
    results["emulator"] = {}
    for n in sizes:
        entry: dict[str, Any] = {"rows": n, "seeds": list(seeds), "new": [], "previous": [], "off": []}
        for seed in seeds:
            train, _ = _hard(n, seed)
            test, truth = _hard(TEST_ROWS, 10_000 + seed)
            for variant in ("new", "previous", "off"):
                r = _emulator_error(train, test, truth, seed, variant)
                entry[variant].append(r)
                _note(f"{n} rows, seed {seed}, relevance {variant}: {r}")
        results["emulator"][str(n)] = entry
    _note("600 rows, train.epochs 2, whole train_emulator ...")
    results["train600"] = _train_seconds()
    _note(f"train600: {results['train600']}")
    return results


def _pct(values: list[dict[str, Any]]) -> str:
    errs = [100 * v["frac_err_median"] for v in values]
    return f"{statistics.fmean(errs):.2f}% ({', '.join(f'{e:.2f}' for e in errs)})"


def markdown(results: dict[str, Any]) -> str:
    """The relevance-cost section of BENCHMARKS.md."""
    cost = results.get("cost", {})
    old, new = cost.get("previous", {}), cost.get("new", {})
    load = cost.get("load_average_1min")
    lines = ["## Input relevance: cost of the ARD GP fit and the emulator it gives", "",
             "Hard mock, 35 parameters, rho, 600 rows (500 fitted). Previous: `GPBaseline` on all radial "
             "columns, two starts, default BLAS threads. New: `profemu.train.relevance.fit_relevance` "
             "(5 leading PCA components, one start, <= 60 L-BFGS-B iterations, ftol 1e-5, one BLAS thread)."
             + ("" if load is None else f" 1-minute load average after both fits: {load:.1f}."), "",
             "| fit | rows | outputs | starts | evaluations | seconds |", "|---|---|---|---|---|---|"]
    if old:
        lines.append(f"| previous | {old['rows']} | {old['columns']} columns | {old['starts']} | "
                     f"{old['evaluations']} | {old['seconds']:.1f} |")
    if new:
        lines.append(f"| new | {new['rows']} | {new['components']} components ({100 * new['explained']:.1f}% of "
                     f"{new['columns']} columns) | {new['starts']} | {new['evaluations']} | {new['seconds']:.1f} |")
    per = results.get("per_evaluation")
    if per:
        lines += ["", f"Seconds per marginal likelihood + gradient at N = {per['rows']}, {per['inputs']} inputs:", "",
                  "| setting | ms |", "|---|---|"]
        lines += [f"| {k} | {1e3 * v:.1f} |" for k, v in per.items()
                  if k not in ("rows", "inputs", "load_average_1min")]
        lines.append(f"\n(1-minute load average before: {per.get('load_average_1min', float('nan')):.1f} on "
                     f"{os.cpu_count()} cores.)")
    w = results.get("weights", {})
    if w:
        lines += ["", f"Weights: rank correlation new vs previous {w['spearman_new_vs_previous']:.3f} (previous "
                  f"vs itself on another choice of 500 rows: {w['spearman_previous_seed1_vs_seed0']:.3f}); "
                  f"weight >= 0.05: previous {len(w['kept_previous'])} ({', '.join(w['kept_previous'])}), "
                  f"new {len(w['kept_new'])} ({', '.join(w['kept_new'])})."]
    emu = results.get("emulator", {})
    if emu:
        lines += ["", "Emulator (`train.cv_folds: 0`, otherwise defaults): median fractional error against the "
                  "noiseless truth of 1,000 held-out rows, mean over seeds (each seed):", "",
                  "| rows | new | previous | off |", "|---|---|---|---|"]
        for n, e in emu.items():
            lines.append(f"| {n} | {_pct(e['new'])} | {_pct(e['previous'])} | {_pct(e['off'])} |")
    t = results.get("train600")
    if t:
        lines += ["", f"Whole `train_emulator`, 600 rows, `train.epochs: 2`: {t['seconds']:.1f} s (target <= "
                  f"{TARGETS['train600_seconds']:.0f} s: "
                  f"{status(t['seconds'], TARGETS['train600_seconds'], higher_is_better=False)})."]
    return "\n".join(lines) + "\n"
