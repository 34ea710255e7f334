"""Scaling: training cost and memory against data size, and the GP baseline's cost.

profemu
    For each N (1k ... 64k rows; quick: up to 8k) a fresh child process draws a
    mock universe (35 parameters, log10 mass, 79 P(k) bins, 3 fields on 24 radii)
    and runs :func:`profemu.runs.training.train_emulator` with the default model
    configuration but one member, a fixed number of epochs and no early stopping
    (10 % of the simulations for validation, no test split). The epoch time is the
    median of fit's per-epoch ``seconds`` after the first (compiling) epoch and
    includes the validation pass. The child's peak resident memory comes from the
    kernel (``ru_maxrss``); the target is <= 2 GB for a training run on the largest N.
    A line ``epoch time = a + b N_train`` is fitted; linearity is the ratio of the
    per-row cost at the largest N to that at 4k rows (1k in quick mode).

GP baseline
    :class:`profemu.baselines.PCAGPBaseline` (one ARD Gaussian process per PCA
    coefficient, ``max_train = N``) fitted on the same kind of inputs, each fit in a
    child process with a hard 10-minute timeout (killed and recorded as "> 600 s")
    and an address-space cap. Sizes run in increasing order; a size is skipped
    when the power law fitted to the measured fits predicts more than the
    timeout or than the GP time budget left, so the suite's wall time stays bounded.
    An ``N^3`` law through the largest measured fit is reported, labelled as an
    extrapolation, with the N where it passes 10 minutes (and a free power law
    fitted to all measured fits, for comparison).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    available_memory_bytes,
    emit_result,
    figure_link,
    limit_address_space,
    new_figure,
    run_child,
    save_figure,
    status,
)

__all__ = ["GP_TIMEOUT_S", "MEMORY_TARGET_BYTES", "markdown", "run"]

#: Hard limit of one GP fit [s].
GP_TIMEOUT_S = 600.0
#: Peak memory target of a training run at the largest N [bytes].
MEMORY_TARGET_BYTES = 2_000_000_000
_TRAIN_TIMEOUT_S = 600.0
_GP_MEMORY_CAP_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class _Sizes:
    train_rows: tuple[int, ...]
    epochs: int
    gp_rows: tuple[int, ...]
    gp_budget_s: float  # wall time allowed for all GP fits together
    linearity_reference: int  # N whose per-row cost the largest N is compared with


_SIZES = {
    "full": _Sizes(
        (1000, 2000, 4000, 8000, 16000, 32000, 64000), 4, (125, 250, 500, 1000, 2000), 480.0, 4000
    ),
    "quick": _Sizes((1000, 2000, 4000, 8000), 3, (60, 120, 240), 90.0, 1000),
    "smoke": _Sizes((200, 400), 2, (20, 40), 60.0, 200),
}


# ------------------------------------------------------------------ child workloads
def _worker_train(rows: int, epochs: int, seed: int) -> None:
    import time

    start = time.perf_counter()
    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.training import train_emulator

    dataset = make_mock_universe(rows, seed=seed).dataset
    cfg = Config().updated(
        {
            "train.members": 1,
            "train.epochs": epochs,
            "train.patience": 0,
            "train.calibrate": False,
            "train.seed": seed,
            "train.log_every": 10**6,
            "data.val_fraction": 0.1,
            "data.test_fraction": 0.0,
            # one training's epochs: no cross-validation, GP blend or held-out extrapolation training
            # (each a separate cost of the default run, timed in the training-time section)
            "train.cv_folds": 0,
            "train.gp_blend": "off",
            "train.extrapolation_variance": "off",
        }
    )
    ready = time.perf_counter()
    outcome = train_emulator(dataset, cfg, evaluate_test=False)
    done = time.perf_counter()
    emit_result(
        {
            "rows": rows,
            "n_train": len(outcome.prepared.split.train),
            "n_val": len(outcome.prepared.split.val),
            "epoch_seconds": [float(h["seconds"]) for h in outcome.history],
            "fit_wall_s": done - ready,
            "setup_s": ready - start,
            "default_epochs": Config().train.epochs,
            "model": {"kind": cfg.model.kind, "hidden": list(cfg.model.hidden)},
        }
    )


def _worker_gp(rows: int, seed: int, memory_limit: int | None) -> None:
    if memory_limit:
        limit_address_space(memory_limit)
    from profemu.baselines import PCAGPBaseline
    from profemu.data.mock import make_mock_universe

    dataset = make_mock_universe(rows, seed=seed).dataset
    gp = PCAGPBaseline(max_train=rows, seed=seed).fit(dataset)
    emit_result(
        {
            "rows": rows,
            "fit_s": float(gp.fit_seconds),
            "n_train_used": int(gp.n_train_used),
            "components": len(gp._fits),
        }
    )


# ------------------------------------------------------------------ profemu training
def _train_runs(sizes: _Sizes) -> list[dict[str, Any]]:
    runs = []
    for rows in sizes.train_rows:
        child = run_child(
            [
                "-m",
                "benchmarks.scaling",
                "train",
                "--rows",
                str(rows),
                "--epochs",
                str(sizes.epochs),
            ],
            timeout_s=_TRAIN_TIMEOUT_S,
        )
        entry: dict[str, Any] = {
            "rows": rows,
            "peak_rss_bytes": child.peak_rss_bytes,
            "child_wall_s": child.seconds,
        }
        if not child.ok:
            entry["error"] = (
                "timed out"
                if child.timed_out
                else f"exit {child.returncode}: {child.stderr_tail[-800:]}"
            )
            print(f"[scaling] train N={rows}: FAILED ({entry['error'][:200]})", flush=True)
            runs.append(entry)
            continue
        res = child.result or {}
        epochs = res["epoch_seconds"]
        epoch_s = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
        entry.update(
            {
                "n_train": res["n_train"],
                "n_val": res["n_val"],
                "epoch_s": epoch_s,
                "first_epoch_s": epochs[0],
                "fit_wall_s": res["fit_wall_s"],
                "setup_s": res["setup_s"],
                "per_1k_rows_s": epoch_s / res["n_train"] * 1000.0,
                "model": res["model"],
                "default_epochs": res["default_epochs"],
                # the wall time of an uninterrupted default-length run, if no early stop happened
                "projected_full_fit_s": res["fit_wall_s"]
                + (res["default_epochs"] - len(epochs)) * epoch_s,
            }
        )
        print(
            f"[scaling] train N={rows}: {epoch_s:.3f} s/epoch, peak RSS "
            f"{child.peak_rss_bytes / 1e6:.0f} MB",
            flush=True,
        )
        runs.append(entry)
    return runs


def _train_summary(runs: list[dict[str, Any]], sizes: _Sizes) -> dict[str, Any]:
    good = [r for r in runs if "epoch_s" in r]
    summary: dict[str, Any] = {}
    if len(good) >= 2:
        n = np.array([r["n_train"] for r in good], dtype=float)
        t = np.array([r["epoch_s"] for r in good], dtype=float)
        slope, intercept = np.polyfit(n, t, 1)
        summary["line_s_per_1k_rows"] = float(slope * 1000.0)
        summary["line_intercept_s"] = float(intercept)
        ref = next((r for r in good if r["rows"] == sizes.linearity_reference), good[0])
        big = good[-1]
        summary["linearity_rows"] = [ref["rows"], big["rows"]]
        summary["linearity_ratio"] = big["per_1k_rows_s"] / ref["per_1k_rows_s"]
    largest = runs[-1] if runs else None
    if largest is not None:
        summary["memory_rows"] = largest["rows"]
        summary["peak_rss_bytes"] = largest["peak_rss_bytes"]
        summary["memory_target_bytes"] = MEMORY_TARGET_BYTES
        summary["memory_status"] = (
            status(largest["peak_rss_bytes"], MEMORY_TARGET_BYTES, higher_is_better=False)
            if "epoch_s" in largest
            else "n/a"
        )
    return summary


# ------------------------------------------------------------------ GP baseline
def _power_law(
    points: Sequence[tuple[float, float]], exponent: float | None = None
) -> tuple[float, float]:
    """Least-squares fit of log t = log c + b log N; returns (c, b). ``exponent`` fixes b."""
    logn = np.log([p[0] for p in points])
    logt = np.log([p[1] for p in points])
    if exponent is None and len(points) >= 2:
        b, logc = np.polyfit(logn, logt, 1)
    else:
        b = 3.0 if exponent is None else exponent
        logc = float(np.mean(logt - b * logn))
    return float(math.exp(logc)), float(b)


def _gp_runs(sizes: _Sizes) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    spent = 0.0
    stop_reason = ""
    avail = available_memory_bytes()
    cap = _GP_MEMORY_CAP_BYTES if avail is None else min(_GP_MEMORY_CAP_BYTES, int(0.6 * avail))
    for rows in sizes.gp_rows:
        measured = [(r["rows"], r["fit_s"]) for r in runs if r.get("status") == "ok"]
        left = sizes.gp_budget_s - spent
        predicted = None
        if measured:
            c, b = _power_law(measured)
            predicted = c * rows**b
        entry: dict[str, Any] = {"rows": rows, "predicted_s": predicted}
        if stop_reason:
            entry.update(status="not run", reason=stop_reason)
        elif predicted is not None and predicted > GP_TIMEOUT_S:
            entry.update(
                status="not run",
                reason=f"power law of the measured fits predicts {predicted:.0f} s "
                f"> the {GP_TIMEOUT_S:.0f} s limit",
            )
        elif predicted is not None and predicted > left:
            entry.update(
                status="not run",
                reason=f"predicted {predicted:.0f} s > GP time budget left "
                f"({left:.0f} s of {sizes.gp_budget_s:.0f} s)",
            )
        elif left < 1.0:
            entry.update(
                status="not run", reason=f"GP time budget ({sizes.gp_budget_s:.0f} s) spent"
            )
        if "status" in entry:
            stop_reason = stop_reason or entry["reason"]
            print(f"[scaling] GP N={rows}: not run ({entry['reason']})", flush=True)
            runs.append(entry)
            continue
        timeout = min(GP_TIMEOUT_S, left)
        child = run_child(
            ["-m", "benchmarks.scaling", "gp", "--rows", str(rows), "--memory-limit", str(cap)],
            timeout_s=timeout,
        )
        spent += child.seconds
        entry.update(peak_rss_bytes=child.peak_rss_bytes, child_wall_s=child.seconds)
        if child.ok:
            res = child.result or {}
            entry.update(
                status="ok",
                fit_s=res["fit_s"],
                components=res["components"],
                n_train_used=res["n_train_used"],
            )
            print(
                f"[scaling] GP N={rows}: {res['fit_s']:.1f} s ({res['components']} GPs)", flush=True
            )
        elif child.timed_out:
            limit = "limit" if timeout >= GP_TIMEOUT_S else "GP time budget left"
            entry.update(
                status="timeout",
                fit_s_lower_bound=child.seconds,
                reason=f"killed after {timeout:.0f} s ({limit})",
            )
            stop_reason = f"a smaller N already took > {timeout:.0f} s"
            print(f"[scaling] GP N={rows}: > {timeout:.0f} s (killed)", flush=True)
        else:
            memory = "MemoryError" in child.stderr_tail
            entry.update(
                status="failed",
                reason=(
                    f"address-space cap {cap / 1e9:.1f} GB reached"
                    if memory
                    else f"exit {child.returncode}: {child.stderr_tail[-600:]}"
                ),
            )
            stop_reason = f"a smaller N failed ({entry['reason'][:80]})"
            print(f"[scaling] GP N={rows}: failed ({entry['reason'][:200]})", flush=True)
        runs.append(entry)
    return runs


def _gp_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [(r["rows"], r["fit_s"]) for r in runs if r.get("status") == "ok"]
    out: dict[str, Any] = {"timeout_s": GP_TIMEOUT_S}
    if not measured:
        return out
    # anchored at the largest measured fit, the one closest to the asymptotic N^3 regime
    anchor = max(measured)
    c3, _ = _power_law([anchor], exponent=3.0)
    out["n3_anchor_rows"] = anchor[0]
    out["n3_coefficient_s"] = c3
    out["n3_rows_at_timeout"] = (GP_TIMEOUT_S / c3) ** (1.0 / 3.0)
    if len(measured) >= 2:
        c, b = _power_law(measured)
        out["fitted_exponent"] = b
        out["fitted_rows_at_timeout"] = (GP_TIMEOUT_S / c) ** (1.0 / b) if b > 0 else None
    return out


# ------------------------------------------------------------------ figure
def _figure(results: dict[str, Any], out_dir: Path) -> str:
    fig, ax = new_figure(7.0, 4.6)
    train = [r for r in results["profemu"] if "epoch_s" in r]
    if train:
        n = np.array([r["n_train"] for r in train], dtype=float)
        ax.plot(
            n,
            [r["epoch_s"] for r in train],
            "o-",
            color="tab:blue",
            label="profemu: one epoch (measured)",
        )
        ax.plot(
            n,
            [r["fit_wall_s"] for r in train],
            "s-",
            color="tab:cyan",
            label=f"profemu: {results['sizes']['epochs']}-epoch training run (measured)",
        )
        ax.plot(
            n,
            [r["projected_full_fit_s"] for r in train],
            "s--",
            color="tab:cyan",
            alpha=0.6,
            label=f"profemu: {train[0]['default_epochs']}-epoch run (projected, no early stop)",
        )
    gp = results["gp"]
    ok = [r for r in gp if r.get("status") == "ok"]
    if ok:
        ax.plot(
            [r["rows"] for r in ok],
            [r["fit_s"] for r in ok],
            "^-",
            color="tab:red",
            label="PCA+GP baseline fit (measured)",
        )
    for r in gp:
        if r.get("status") == "timeout":
            ax.plot(
                [r["rows"]],
                [r["fit_s_lower_bound"]],
                "^",
                color="tab:red",
                mfc="none",
                ms=10,
                label=f"GP killed at {r['fit_s_lower_bound']:.0f} s (lower bound)",
            )
    summary = results["gp_summary"]
    if "n3_coefficient_s" in summary:
        lo = summary["n3_anchor_rows"]
        hi = max(max(r["rows"] for r in gp), summary["n3_rows_at_timeout"]) * 1.3
        grid = np.geomspace(lo, hi, 50)
        ax.plot(
            grid,
            summary["n3_coefficient_s"] * grid**3,
            ":",
            color="tab:red",
            label=f"GP: N³ law through N = {summary['n3_anchor_rows']:,} (extrapolation)",
        )
    ax.axhline(GP_TIMEOUT_S, color="gray", lw=0.8, ls="--")
    ax.text(
        0.99,
        GP_TIMEOUT_S,
        "10 min",
        ha="right",
        va="bottom",
        fontsize=8,
        color="gray",
        transform=ax.get_yaxis_transform(),
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training rows N")
    ax.set_ylabel("wall time [s]")
    ax.set_title("Training cost against data size")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out_dir, "scaling_time")


# ------------------------------------------------------------------ entry points
def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Run the scaling benchmarks (every workload in a child process).

    Args:
        quick: Sizes up to 8k rows and small GP fits.
        out_dir: Folder whose ``figures/`` receives ``scaling_time.png``.
        smoke: Tiny sizes, only to check that everything runs (numbers meaningless).

    Returns:
        JSON-safe results: ``sizes``, ``profemu`` (one row per N), ``profemu_summary``
        (line fit, linearity, peak memory and its target), ``gp`` (one row per N),
        ``gp_summary`` (N³ extrapolation), ``figures``.
    """
    sizes = _SIZES["smoke" if smoke else "quick" if quick else "full"]
    train = _train_runs(sizes)
    gp = _gp_runs(sizes)
    results: dict[str, Any] = {
        "sizes": asdict(sizes),
        "profemu": train,
        "profemu_summary": _train_summary(train, sizes),
        "gp": gp,
        "gp_summary": _gp_summary(gp),
    }
    results["figures"] = {"time": _figure(results, Path(out_dir))}
    return results


def markdown(results: dict[str, Any]) -> str:
    """The Scaling section of BENCHMARKS.md."""
    from benchmarks.markdown import fmt, table

    s = results["sizes"]
    summ = results["profemu_summary"]
    train = results["profemu"]
    model = next((r["model"] for r in train if "model" in r), {})
    parts = ["## Scaling", ""]
    parts.append(
        f"**profemu training.** Mock universe (35 parameters, log10 mass, 79 P(k) bins, 3 fields); "
        f"default model ({model.get('kind', '?')}, hidden {model.get('hidden', '?')}), one member, "
        f"{s['epochs']} epochs, no early stopping, 10 % of the simulations for validation, one training (no "
        "cross-validation, GP blend or extrapolation-variance training: the training-time section times "
        "the default run with them). Each N runs "
        "in a fresh process; epoch time = median after the compiling first epoch (validation "
        "included); memory = the process's peak RSS. The projected column is the measured run plus "
        "the remaining epochs of a default-length run at the measured epoch time (an upper bound: "
        "early stopping usually ends sooner)."
    )
    parts.append("")
    rows = []
    for r in train:
        if "epoch_s" in r:
            rows.append(
                [
                    r["rows"],
                    r["n_train"],
                    fmt(r["epoch_s"]),
                    fmt(r["per_1k_rows_s"]),
                    fmt(r["first_epoch_s"]),
                    fmt(r["fit_wall_s"]),
                    fmt(r["projected_full_fit_s"]),
                    fmt(r["peak_rss_bytes"] / 1e6),
                ]
            )
        else:
            rows.append(
                [
                    r["rows"],
                    "–",
                    r.get("error", "failed")[:60],
                    "–",
                    "–",
                    "–",
                    "–",
                    fmt(r["peak_rss_bytes"] / 1e6),
                ]
            )
    parts.append(
        table(
            [
                "N rows",
                "train rows",
                "epoch [s]",
                "s per 1k rows",
                "first epoch [s]",
                f"{s['epochs']}-epoch run [s]",
                "default run, projected [s]",
                "peak RSS [MB]",
            ],
            rows,
        )
    )
    parts.append("")
    if "line_s_per_1k_rows" in summ:
        a, b = summ["linearity_rows"]
        parts.append(
            f"Line fit: epoch time ≈ {fmt(summ['line_intercept_s'])} s + {fmt(summ['line_s_per_1k_rows'])} s "
            f"per 1k training rows. Linearity: per-row cost at N = {b:,} / at N = {a:,} = "
            f"**{summ['linearity_ratio']:.2f}** (1 = perfectly linear; < 1 means fixed per-epoch costs "
            "are amortised)."
        )
        parts.append("")
    if "peak_rss_bytes" in summ:
        parts.append(
            table(
                ["peak memory of a training run", "measured", "target", "status"],
                [
                    [
                        f"N = {summ['memory_rows']:,} rows",
                        f"{summ['peak_rss_bytes'] / 1e9:.2f} GB",
                        f"≤ {summ['memory_target_bytes'] / 1e9:.0f} GB",
                        f"**{summ['memory_status']}**",
                    ]
                ],
            )
        )
        parts.append("")
    gp_sum = results["gp_summary"]
    parts.append(
        "**GP baseline.** `PCAGPBaseline` (ARD RBF + white noise per PCA coefficient, scikit-learn) on "
        f"the same inputs, each fit in a fresh process with a hard {gp_sum['timeout_s']:.0f} s timeout; "
        f"sizes are tried in increasing order within a {s['gp_budget_s']:.0f} s budget and skipped when "
        "the power law of the measured fits (N³ from a single fit) predicts more than the timeout or "
        "the budget left."
    )
    parts.append("")
    rows = []
    for r in results["gp"]:
        st = r.get("status")
        if st == "ok":
            time_cell = fmt(r["fit_s"])
        elif st == "timeout":
            time_cell = f"> {r['fit_s_lower_bound']:.0f} (killed)"
        else:
            time_cell = "not measured"
        pred = (
            f"{fmt(r['predicted_s'])} (extrapolated)" if r.get("predicted_s") is not None else "–"
        )
        mem = fmt(r["peak_rss_bytes"] / 1e6) if "peak_rss_bytes" in r else "–"
        rows.append([r["rows"], time_cell, pred, mem, r.get("reason", "")])
    parts.append(
        table(
            [
                "N rows",
                "fit time [s]",
                "power-law prediction before the run [s]",
                "peak RSS [MB]",
                "note",
            ],
            rows,
        )
    )
    if "n3_coefficient_s" in gp_sum:
        parts.append("")
        text = (
            f"**Extrapolation (not a measurement):** an N³ law through the largest measured GP fit "
            f"(N = {gp_sum['n3_anchor_rows']:,}), t ≈ {gp_sum['n3_coefficient_s']:.3g} s × N³, "
            "passes 10 minutes at "
            f"N ≈ {gp_sum['n3_rows_at_timeout']:,.0f} rows."
        )
        if gp_sum.get("fitted_exponent") is not None:
            text += (
                " For comparison, a free power law fitted to all measured fits has exponent "
                f"{gp_sum['fitted_exponent']:.2f} (at small N the optimiser's iteration count, "
                "which varies from fit to fit, weighs more than the N³ factorisation)"
            )
            if gp_sum.get("fitted_rows_at_timeout"):
                text += f" and passes 10 minutes at N ≈ {gp_sum['fitted_rows_at_timeout']:,.0f}"
            text += "."
        parts.append(text)
    fig = results.get("figures", {}).get("time")
    if fig:
        parts += ["", figure_link(results, fig, "wall time against training rows, log-log")]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------ child entry point
def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling",
        description="Workloads of the scaling benchmark (run in child processes).",
    )
    sub = parser.add_subparsers(dest="workload", required=True)
    tr = sub.add_parser("train", help="train profemu on a mock universe of --rows rows")
    tr.add_argument("--rows", type=int, required=True)
    tr.add_argument("--epochs", type=int, default=4)
    tr.add_argument("--seed", type=int, default=0)
    gp = sub.add_parser("gp", help="fit the PCA+GP baseline on --rows rows")
    gp.add_argument("--rows", type=int, required=True)
    gp.add_argument("--seed", type=int, default=0)
    gp.add_argument(
        "--memory-limit", type=int, default=0, help="address-space cap [bytes] (0 = none)"
    )
    args = parser.parse_args(argv)
    if args.workload == "train":
        _worker_train(args.rows, args.epochs, args.seed)
    else:
        _worker_gp(args.rows, args.seed, args.memory_limit)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
