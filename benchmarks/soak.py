"""Soak test: many random predictions at the edges of the training box, many short trainings.

* Predictions: 10,000 input points (quick: 1,000) inside the training box of a tiny
  emulator trained on the 35-parameter mock universe with P(k): a quarter at corners
  (every input exactly at its training min or max), a quarter on faces (one input at
  min/max, the rest uniform), a quarter mixing exact bounds and uniform values per
  input, a quarter uniform inside. Each point goes through :meth:`Emulator.predict`
  (numpy, ``on_extrapolation="error"``, so the box edges must count as inside) and the
  jitted :attr:`Emulator.predict_fn` (JAX). Counted: non-finite means, non-finite or
  non-positive variances (must be 0), and the largest numpy/JAX difference.
* Trainings: 20 runs (quick: 4) with random training seeds of a 2-member MLP on the
  same split (one compilation, then cached), recording wall time, skipped steps,
  rollbacks, why training stopped and whether the returned parameters and their
  test-split predictions are finite.

Module contract of the benchmark suite: ``run(*, quick, out_dir) -> dict`` and
``markdown(results) -> str``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["markdown", "run"]

N_ROWS = 400
CHANGES: dict[str, Any] = {
    "model.hidden": [32, 32],
    "train.members": 2,
    "train.epochs": 15,
    "train.batch_size": 64,
    "train.patience": 0,
    "optim.warmup_epochs": 2,
    "data.fields": ["rho", "pth"],
    "data.test_fraction": 0.1,  # scored on held-out simulations
    "train.cv_folds": 0,
}


def _edge_points(lo: np.ndarray, hi: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in the box [lo, hi] (per input), a quarter each: corners, faces, mixed, interior."""
    d = lo.size
    quarter = n // 4
    u = rng.uniform(size=(n, d))
    u[:quarter] = rng.integers(0, 2, size=(quarter, d))  # corners
    face_rows = np.arange(quarter, 2 * quarter)
    u[face_rows, rng.integers(0, d, size=quarter)] = rng.integers(0, 2, size=quarter)  # faces
    mixed = slice(2 * quarter, 3 * quarter)
    pick = rng.integers(0, 3, size=(quarter, d))
    u[mixed] = np.where(
        pick == 0, 0.0, np.where(pick == 1, 1.0, u[mixed])
    )  # exact bounds and values
    x = lo + u * (hi - lo)
    return np.where(u == 0.0, lo, np.where(u == 1.0, hi, x))  # exactly min / max, no rounding


def _predictions(emulator: Any, n: int, seed: int) -> dict[str, Any]:
    import jax

    box = emulator.transforms.input_box()
    names = list(emulator.param_names)
    pk_lo, pk_hi = (np.asarray(a, float) for a in box["pk_ratio"])
    lo = np.concatenate([[float(box[k][0]) for k in [*names, "log10_mass"]], pk_lo])
    hi = np.concatenate([[float(box[k][1]) for k in [*names, "log10_mass"]], pk_hi])
    x = _edge_points(lo, hi, n, np.random.default_rng(seed))
    p = len(names)
    params, mass, pk = x[:, :p], x[:, p], x[:, p + 1 :]
    batch = 500
    jax_fn = jax.jit(emulator.predict_fn)
    bad_numpy = bad_jax = 0
    max_diff = 0.0
    t_numpy = t_jax = 0.0
    for start in range(0, n, batch):
        sl = slice(start, min(start + batch, n))
        t0 = time.perf_counter()
        pred = emulator.predict(
            params[sl], mass[sl], pk[sl], redshift=0.0, on_extrapolation="error"
        )
        t_numpy += time.perf_counter() - t0
        mean_np = np.stack([pred[f].mean for f in emulator.field_names], axis=1)
        var_np = np.stack([pred[f].var for f in emulator.field_names], axis=1)
        bad_numpy += int(
            np.sum(~np.all(np.isfinite(mean_np) & np.isfinite(var_np) & (var_np > 0), axis=(1, 2)))
        )
        rows = sl.stop - sl.start
        t0 = time.perf_counter()
        mean_j, var_j = jax_fn(params[sl], mass[sl], pk[sl], np.zeros(rows))
        mean_j, var_j = np.asarray(mean_j, float), np.asarray(var_j, float)
        t_jax += time.perf_counter() - t0
        bad_jax += int(
            np.sum(~np.all(np.isfinite(mean_j) & np.isfinite(var_j) & (var_j > 0), axis=(1, 2)))
        )
        if rows == batch or start == 0:
            max_diff = max(max_diff, float(np.nanmax(np.abs(mean_j - mean_np))))
    return {
        "n_points": n,
        "n_inputs": int(lo.size),
        "nonfinite_numpy": bad_numpy,
        "nonfinite_jax": bad_jax,
        "max_abs_diff_numpy_jax_dex": max_diff,
        "seconds_numpy": t_numpy,
        "seconds_jax_incl_compile": t_jax,
    }


def run(*, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Run the soak (the suite saves the returned results to ``results/soak.json``).

    Args:
        quick: 1,000 predictions and 4 trainings instead of 10,000 and 20.
        out_dir: The suite's output folder (unused: the soak draws no figures).

    Returns:
        ``{"quick", "machine", "predictions": {...}, "trainings": [per-run dicts],
        "summary": {...}}``.
    """
    import jax

    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.emulator import Emulator
    from profemu.train.loop import fit
    from profemu.train.setup import prepare, training_problem

    n_points, n_runs = (1_000, 4) if quick else (10_000, 20)
    cfg = Config().updated(CHANGES)
    ds = make_mock_universe(N_ROWS, seed=0, param_set="sb35").dataset
    prep = prepare(ds, cfg)
    t = prep.transforms
    problem, test = training_problem(prep, cfg), prep.test

    seeds = np.random.default_rng(2024).integers(0, 2**31 - 1, size=n_runs)
    trainings = []
    emulator = None
    for seed in seeds:
        t0 = time.perf_counter()
        result = fit(problem, seed=int(seed))
        seconds = time.perf_counter() - t0
        finite = all(
            np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(result.params)
        )
        emu = Emulator(t, cfg.model, result.params)
        pred = emu.predict(
            test.params, test.log10_mass, test.pk_ratio, test.redshift, on_extrapolation="ignore"
        )
        pred_finite = all(
            np.isfinite(p.mean).all() and np.all(np.isfinite(p.var) & (p.var > 0))
            for p in pred.values()
        )
        trainings.append(
            {
                "seed": int(seed),
                "seconds": seconds,
                "compilations": int(result.counters["compilations"]),
                "skipped_steps": int(np.sum(result.counters["skipped_steps"])),
                "rollbacks": int(np.sum(result.counters["rollbacks"])),
                "stopped_reason": result.stopped_reason,
                "best_val": [float(v) for v in result.best_val],
                "finite_parameters": bool(finite),
                "finite_test_predictions": bool(pred_finite),
            }
        )
        emulator = emulator or emu
    assert emulator is not None
    predictions = _predictions(emulator, n_points, seed=7)
    later = [r["seconds"] for r in trainings[1:]] or [trainings[0]["seconds"]]
    summary = {
        "nonfinite_inside_box": predictions["nonfinite_numpy"] + predictions["nonfinite_jax"],
        "runs": n_runs,
        "runs_with_nonfinite_parameters": sum(not r["finite_parameters"] for r in trainings),
        "runs_with_nonfinite_predictions": sum(not r["finite_test_predictions"] for r in trainings),
        "skipped_steps_total": sum(r["skipped_steps"] for r in trainings),
        "rollbacks_total": sum(r["rollbacks"] for r in trainings),
        "compilations_total": sum(r["compilations"] for r in trainings),
        "first_run_seconds": trainings[0]["seconds"],
        "median_run_seconds": float(np.median(later)),
        "total_seconds": float(sum(r["seconds"] for r in trainings)),
    }
    results = {
        "quick": quick,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "jax_backend": jax.default_backend(),
        },
        "setup": {
            "rows": N_ROWS,
            "param_set": "sb35",
            "n_train": len(prep.split.train),
            "config": CHANGES,
        },
        "predictions": predictions,
        "trainings": trainings,
        "summary": summary,
    }
    return results


def markdown(results: dict[str, Any]) -> str:
    """The soak section of BENCHMARKS.md."""
    p, s = results["predictions"], results["summary"]
    setup = results["setup"]
    lines = [
        "## Soak: edge-of-box predictions and repeated training",
        "",
        f"Mock universe ({setup['rows']} rows, {setup['param_set']}: 35 parameters + log10 mass + "
        f"P(k) on 79 bins; {setup['n_train']} training rows), a 2-member MLP "
        f"{setup['config']['model.hidden']}, {setup['config']['train.epochs']} epochs. "
        + ("Quick mode. " if results.get("quick") else "")
        + f"Backend: {results['machine']['jax_backend']}.",
        "",
        f"**Predictions** — {p['n_points']:,} points in the training box ({p['n_inputs']} inputs; a quarter "
        "each at corners, on faces, mixing exact bounds, and inside), through `Emulator.predict` (numpy) "
        "and the jitted `predict_fn` (JAX):",
        "",
        "| path | non-finite mean or var <= 0 | time [s] |",
        "|---|---|---|",
        f"| `Emulator.predict` (numpy) | {p['nonfinite_numpy']} | {p['seconds_numpy']:.2f} |",
        f"| `predict_fn` (JAX, incl. compile) | {p['nonfinite_jax']} | {p['seconds_jax_incl_compile']:.2f} |",
        "",
        f"Largest numpy/JAX difference of the mean: {p['max_abs_diff_numpy_jax_dex']:.2e} dex.",
        "",
        f"**Training** — {s['runs']} runs with random seeds: {s['runs_with_nonfinite_parameters']} with "
        f"non-finite parameters, {s['runs_with_nonfinite_predictions']} with non-finite test predictions, "
        f"{s['skipped_steps_total']} skipped steps and {s['rollbacks_total']} rollbacks in total, "
        f"{s['compilations_total']} compilation(s). First run {s['first_run_seconds']:.1f} s (includes "
        f"compiling), then median {s['median_run_seconds']:.1f} s per run.",
        "",
        "| seed | seconds | skipped steps | rollbacks | stopped | best val loss (members) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["trainings"]:
        best = ", ".join(f"{v:.3f}" for v in r["best_val"])
        lines.append(
            f"| {r['seed']} | {r['seconds']:.1f} | {r['skipped_steps']} | {r['rollbacks']} | "
            f"{r['stopped_reason']} | {best} |"
        )
    lines.append("")
    return "\n".join(lines)
