"""Training stability on real CAMELS profiles: default settings over seeds, and a bad learning rate.

Data: CAMELS LH IllustrisTNG ``rho`` mean profiles, mass bins 11-11.5 and 11.5-12
(2000 rows, 1000 simulations), split by simulation with the default config
(10% validation, 10% test, split seed 0). Each run trains the default 5-member
ensemble with training seed ``s``; the last row uses ``optim.learning_rate = 1.0``
(500 times the default), the failure the reference user hit. Recorded: whether every
member's best validation loss is finite, skipped non-finite steps, rollbacks, the
returned parameters' finiteness, and held-out accuracy on the test simulations.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy import CAMELS, load
from profemu.config import Config
from profemu.runs.training import train_emulator

#: One training on a validation split with a test split held out (the shipped default trains
#: on every row after a cross-validation, which leaves no test split to score here).
SPLIT: dict[str, Any] = {"data.test_fraction": 0.1, "data.val_fraction": 0.1, "train.cv_folds": 0}
RUNS: list[tuple[str, dict[str, Any]]] = [(f"seed {s}", {"train.seed": s}) for s in range(5)]
RUNS.append(("seed 0, learning rate 1.0", {"train.seed": 0, "optim.learning_rate": 1.0}))


def run(*, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Train the default ensemble on CAMELS rho for each entry of ``RUNS`` (quick: 2 seeds + bad lr)."""
    if not CAMELS.is_file():
        return {"skipped": f"CAMELS data not found at {CAMELS}"}
    ds = load("rho")
    runs = [RUNS[0], RUNS[1], RUNS[-1]] if quick else RUNS
    rows = []
    for name, changes in runs:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = train_emulator(ds, Config().updated({**SPLIT, **changes}))
        best_val = out.history[-1].get("best_val_members", []) if out.history else []
        leaves = [np.asarray(v) for v in _leaves(out.emulator.weights)]
        metrics = out.evaluation["fields"]["rho"]
        rows.append({
            "run": name,
            "changes": changes,
            "seconds": time.perf_counter() - t0,
            "epochs": len(out.history),
            "best_val_members": best_val,
            "all_best_val_finite": bool(best_val) and all(v is not None and np.isfinite(v) for v in best_val),
            "params_finite": all(np.isfinite(a).all() for a in leaves),
            "skipped_steps": int(np.sum(out.counters.get("skipped_steps", 0))),
            "rollbacks": int(np.sum(out.counters.get("rollbacks", 0))),
            "test": {k: metrics[k] for k in ("frac_err_median", "frac_err_p68", "frac_err_p95", "coverage_68",
                                             "coverage_95", "noise_floor_frac_median")},
        })
    return {"rows": rows, "n_rows": ds.n}


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    return [tree]


def markdown(results: dict[str, Any]) -> str:
    """The stability section of BENCHMARKS.md."""
    if "skipped" in results:
        return f"## Training stability on CAMELS\n\nSkipped: {results['skipped']}\n"
    lines = [
        "## Training stability on CAMELS", "",
        "CAMELS LH IllustrisTNG `rho_mean`, mass bins 11-11.5 and 11.5-12 (2000 rows), split by "
        "simulation with the default config (10% validation, 10% test simulations, split seed 0); "
        "the default 5-member ensemble per training seed, and once with a learning rate of 1.0 "
        f"({1.0 / Config().optim.learning_rate:.0f}x the default). Held-out numbers are on the test simulations.", "",
        "| run | epochs | best val. loss finite (all members) | parameters finite | skipped steps | rollbacks "
        "| median frac. err | 95th pct | coverage 68% | coverage 95% | noise floor (median) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        t = r["test"]
        lines.append(
            f"| {r['run']} | {r['epochs']} | {'yes' if r['all_best_val_finite'] else 'NO'} | "
            f"{'yes' if r['params_finite'] else 'NO'} | {r['skipped_steps']} | {r['rollbacks']} | "
            f"{100 * t['frac_err_median']:.1f}% | {100 * t['frac_err_p95']:.1f}% | {t['coverage_68']:.3f} | "
            f"{t['coverage_95']:.3f} | {100 * t['noise_floor_frac_median']:.1f}% | {r['seconds']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)
