"""Active selection of simulations (``profemu suggest``) against random selection, retrospectively.

Pool-based study on a finished suite: the simulations already run play the role of
the simulations one could run next.

* Data: CAMELS LH IllustrisTNG (``../shared/data/camels_lh_tng.npz``), ``rho_mean`` and
  ``pth_mean``, the two complete mass bins (11-11.5 and 11.5-12: 2000 rows from 1000
  simulations); and a mock universe with a known noiseless truth (lh6 parameters, same
  layout: 1000 simulations x 2 halo masses, rho and pth), scored against the truth.
* Split by simulation: 20% of the simulations are a fixed test set
  (:func:`profemu.data.split.split_by_group`, seed 0, the same for every seed and
  strategy); the other 80% are the pool.
* Each seed ``s`` draws 100 starting simulations at random from the pool; then, in rounds,
  100 more are added, chosen by :func:`profemu.design.selection` restricted to the remaining
  pool (all mass bins of a chosen simulation come with it) or at random, up to 800 (the
  whole pool). Every round retrains the shipped default emulator (``Config()``: 5-member
  MLP ensemble; 10% of the training simulations for early stopping and calibration;
  ``train.seed = s``) through :func:`profemu.runs.training.train_emulator` and scores it on the
  fixed test set (fractional error pooled over both fields and all radii; median and
  95th percentile).
* Reported: the error per round for both strategies (median over seeds), and the number
  of simulations each strategy needs to reach the random strategy's error at the last
  round.

Also measured: the wall time and peak memory of one ``suggest`` call (100 points from
100,000 Sobol candidates, 3 masses, both fields, 15 radii) with the default emulator
trained on the 2,000 CAMELS rows, in a child process; and the sensitivity of that
emulator, whose two most important parameters are the axes of the suggestion figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import run_child, save_figure
from profemu.config import Config
from profemu.data.dataset import ProfileDataset

#: ``$PROFEMU_SHARED_DATA`` (as in the tests) or ``../shared/data`` beside the checkout.
SHARED_DATA = Path(os.environ.get("PROFEMU_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CAMELS = SHARED_DATA / "camels_lh_tng.npz"
FIELDS = ("rho", "pth")
STRATEGIES = ("active", "random")


def load_camels() -> ProfileDataset:
    """CAMELS LH TNG, rho and pth mean profiles, mass bins 11-11.5 and 11.5-12."""
    from profemu.data.camels import load_camels_lh

    return load_camels_lh(CAMELS, fields=FIELDS, statistic="mean", mass_bins=("11-11.5", "11.5-12"),
                          verbose=False)


def load_mock(n_sims: int = 1000, seed: int = 0) -> tuple[ProfileDataset, dict[str, np.ndarray]]:
    """The known-truth set: the lh6 mock universe, 2 halo masses per simulation, rho and pth.

    Returns:
        The noisy dataset and the noiseless truth ``{field: [n, n_r]}`` (linear values).
    """
    from profemu.data.mock import make_mock_universe

    uni = make_mock_universe(n=2 * n_sims, seed=seed, param_set="lh6", n_mass_per_sim=2)
    ds = uni.dataset.select_fields(list(FIELDS))
    return ds, {f: np.asarray(uni.truth[f]) for f in FIELDS}


def default_config(seed: int, **changes: Any) -> Config:
    """The shipped defaults; no test split inside (the study holds out its own test set)."""
    return Config().updated({"data.test_fraction": 0.0, "data.val_fraction": 0.1, "train.seed": seed,
                             "train.log_every": 10**6, **changes})


def _score(emulator: Any, test: ProfileDataset, truth: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    from profemu.metrics import evaluate, evaluate_predictions, predict_dataset

    if truth is None:
        m = evaluate(emulator, test)
    else:
        m = evaluate_predictions(predict_dataset(emulator, test), {f: np.log10(v) for f, v in truth.items()})
    keep = ("frac_err_median", "frac_err_p95", "rmse_dex")
    return {
        "overall": {k: m["overall"][k] for k in keep},
        "fields": {f: {k: v[k] for k in keep} for f, v in m["fields"].items()},
    }


def _edge(unit: np.ndarray) -> np.ndarray:
    """Distance of unit-box points from the box centre in the max norm (0 centre, 0.5 face)."""
    return np.abs(unit - 0.5).max(axis=1)


def retrospective(
    dataset: ProfileDataset,
    *,
    truth: Mapping[str, np.ndarray] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    start: int = 100,
    step: int = 100,
    stop: int = 800,
    test_fraction: float = 0.2,
    config_changes: Mapping[str, Any] | None = None,
    suggest_options: Mapping[str, Any] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Pool-based comparison of active (``suggest``) and random selection of simulations.

    Args:
        dataset: Rows with ``groups`` = simulation id.
        truth: Optional noiseless truth ``{field: [n, n_r]}`` (linear, aligned with the
            rows of ``dataset``); the test error is then against the truth.
        seeds: One run per seed (start draw, random picks, training seed).
        start: Simulations in the first training set.
        step: Simulations added per round.
        stop: Training-set size of the last round (at most the pool size).
        test_fraction: Fraction of the simulations in the fixed test set.
        config_changes: Dotted-key changes to the default config (e.g. for a smoke run).
        suggest_options: Keyword arguments of :func:`profemu.design.selection`.
        label: Name of the data set in progress lines.

    Returns:
        JSON-safe results: per seed and strategy the rounds (n, test errors, seconds).
    """
    from profemu.data.split import split_by_group
    from profemu.design import DesignSpace, suggest
    from profemu.runs.training import train_emulator

    if dataset.groups is None:
        raise ValueError("dataset: needs groups (simulation ids) for a split by simulation")
    split = split_by_group(dataset, val_fraction=0.0, test_fraction=test_fraction, seed=0)
    test = dataset.subset(split.test)
    test_truth = None if truth is None else {f: np.asarray(truth[f])[split.test] for f in dataset.fields}
    groups = dataset.groups
    pool_groups = np.unique(groups[split.train])
    first_row = {int(g): int(np.flatnonzero(groups == g)[0]) for g in pool_groups}
    stop = min(int(stop), pool_groups.size)
    sizes = list(range(int(start), stop + 1, int(step)))
    changes = dict(config_changes or {})
    opts = dict(suggest_options or {})
    # the whole suite's box in sampling space, to say where the picks lie
    is_log = np.array([nm in dataset.log_params for nm in dataset.param_names])
    space = DesignSpace(tuple(dataset.param_names), dataset.params.min(axis=0), dataset.params.max(axis=0), is_log)

    def train(selected: np.ndarray, seed: int) -> tuple[Any, float]:
        rows = np.flatnonzero(np.isin(groups, selected))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = train_emulator(dataset.subset(rows), default_config(seed, **changes), evaluate_test=False)
        return out.emulator, time.perf_counter() - t0

    runs = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 1])
        initial = rng.choice(pool_groups, size=sizes[0], replace=False)
        first_emu, first_s = train(initial, seed)
        first = {"n": int(sizes[0]), **_score(first_emu, test, test_truth), "train_seconds": first_s}
        run: dict[str, Any] = {"seed": int(seed), "strategies": {}}
        for strategy in STRATEGIES:
            pick_rng = np.random.default_rng([seed, 2])
            selected, emu = initial.copy(), first_emu
            rounds = [dict(first)]
            print(f"[design] {label} seed {seed} {strategy} n={sizes[0]}: median "
                  f"{first['overall']['frac_err_median']:.4f} p95 {first['overall']['frac_err_p95']:.4f}", flush=True)
            for n_next in sizes[1:]:
                remaining = np.setdiff1d(pool_groups, selected)
                k = n_next - selected.size
                t0 = time.perf_counter()
                if strategy == "random":
                    new = pick_rng.choice(remaining, size=k, replace=False)
                else:
                    pool = dataset.params[[first_row[int(g)] for g in remaining]]
                    sug = suggest(emu, k, pool=pool, seed=seed, **opts)
                    new = remaining[sug.index]
                pick_s = time.perf_counter() - t0
                lo, width = space.theta_lo, space.width
                unit = (space.to_theta(dataset.params[[first_row[int(g)] for g in new]]) - lo) / width
                selected = np.concatenate([selected, new])
                emu, train_s = train(selected, seed)
                entry = {"n": int(n_next), **_score(emu, test, test_truth), "train_seconds": train_s,
                         "pick_seconds": pick_s, "picked_edge_mean": float(_edge(unit).mean())}
                rounds.append(entry)
                print(f"[design] {label} seed {seed} {strategy} n={n_next}: median "
                      f"{entry['overall']['frac_err_median']:.4f} p95 {entry['overall']['frac_err_p95']:.4f} "
                      f"(train {train_s:.0f} s)", flush=True)
            run["strategies"][strategy] = rounds
        runs.append(run)
    floor = None
    if truth is None and test.noise is not None:
        from profemu.metrics import noise_floor_quantile

        noise = np.concatenate([test.noise[f][test.mask[f]] for f in test.fields if f in test.noise])
        q = noise_floor_quantile(noise, [0.5, 0.95])
        floor = {"median": float(q[0]), "p95": float(q[1])}
    pool_unit = (space.to_theta(dataset.params[[first_row[int(g)] for g in pool_groups]]) - space.theta_lo) / space.width
    return {
        "label": label,
        "n_rows": int(dataset.n),
        "n_simulations": int(np.unique(groups).size),
        "n_test_simulations": int(np.unique(groups[split.test]).size),
        "n_pool_simulations": int(pool_groups.size),
        "fields": list(dataset.fields),
        "sizes": sizes,
        "seeds": [int(s) for s in seeds],
        "known_truth": truth is not None,
        "pool_edge_mean": float(_edge(pool_unit).mean()),
        "test_noise_floor": floor,
        "runs": runs,
        "summary": summarise(runs, sizes),
    }


def summarise(runs: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """Median over seeds of each metric per round, and simulations needed to reach random's last error."""
    out: dict[str, Any] = {}
    for metric in ("frac_err_median", "frac_err_p95"):
        curves = {}
        for strategy in STRATEGIES:
            per_seed = np.array([[r["overall"][metric] for r in run["strategies"][strategy]] for run in runs])
            curves[strategy] = np.median(per_seed, axis=0).tolist()
        target = curves["random"][-1]
        needed = {}
        for strategy in STRATEGIES:
            hit = [n for n, v in zip(sizes, curves[strategy], strict=True) if v <= target]
            needed[strategy] = int(hit[0]) if hit else None
        out[metric] = {"median_over_seeds": curves, "random_last": target, "n_to_reach_random_last": needed}
    return out


# ------------------------------------------------------------------ cost of one call
def _worker_suggest(emulator_dir: str, n: int, candidates: int, out_json: str) -> None:
    from benchmarks.common import emit_result
    from profemu.design import load_emulator, suggest

    emu = load_emulator(emulator_dir)
    t0 = time.perf_counter()
    sug = suggest(emu, n, candidates=candidates, seed=0)
    seconds = time.perf_counter() - t0
    Path(out_json).write_text(json.dumps(sug.to_dict()))
    emit_result({"seconds": seconds, "n": n, "candidates": candidates, "rank": sug.rank,
                 "jax_imported": "jax" in sys.modules, "members": int(emu.members)})


def suggest_cost(dataset: ProfileDataset, *, n: int, candidates: int, config_changes: Mapping[str, Any],
                 work: Path) -> dict[str, Any]:
    """Train on every row of ``dataset``, then time ``suggest`` in a child process."""
    from profemu.design.derivatives import sensitivity, top_parameters
    from profemu.runs.training import train_emulator

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = train_emulator(dataset, default_config(0, **config_changes), evaluate_test=False)
    train_s = time.perf_counter() - t0
    emu_dir = work / "emulator"
    out.emulator.save(emu_dir)
    points_json = work / "suggestion.json"
    child = run_child(["-m", "benchmarks.design", "suggest", "--emulator", str(emu_dir), "--n", str(n),
                       "--candidates", str(candidates), "--out", str(points_json)], timeout_s=1800)
    if not child.ok:
        return {"error": child.stderr_tail or f"child exit status {child.returncode}"}
    sens_centre = sensitivity(out.emulator, at="centre")
    sens_box = sensitivity(out.emulator, at="box", n_points=64, seed=0)
    return {
        "training_rows": int(dataset.n),
        "fit_rows": len(out.prepared.split.train),
        "train_seconds": train_s,
        "suggest_seconds": child.result["seconds"],
        "child_seconds": child.seconds,
        "peak_rss_bytes": child.peak_rss_bytes,
        "rank": child.result["rank"],
        "members": child.result["members"],
        "jax_imported": child.result["jax_imported"],
        "n": n,
        "candidates": candidates,
        "mass_points": 3,
        "fields": list(dataset.fields),
        "n_radii": int(dataset.n_r),
        "suggestion": json.loads(points_json.read_text()),
        "sensitivity": {"centre": sens_centre.ranked(), "box": sens_box.ranked()},
        "top_parameters": list(top_parameters(sens_box, k=2)),
        "_sens_box": sens_box,
    }


# ------------------------------------------------------------------ figures
def figures_of_studies(results: Mapping[str, Any], out_dir: Path, name: str) -> dict[str, str]:
    """One row of panels (median, 95th percentile per round) per study in ``results``."""
    figs: dict[str, str] = {}
    studies = [(k, v) for k, v in results.items() if isinstance(v, dict) and "summary" in v]
    if studies:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.5, 3.6 * len(studies)), layout="constrained")
        FigureCanvasAgg(fig)
        for i, (_name, study) in enumerate(studies):
            for j, metric in enumerate(("frac_err_median", "frac_err_p95")):
                ax = fig.add_subplot(len(studies), 2, 2 * i + j + 1)
                sizes = study["sizes"]
                for strategy, colour in zip(STRATEGIES, ("C0", "C1"), strict=True):
                    for run in study["runs"]:
                        ys = [100 * r["overall"][metric] for r in run["strategies"][strategy]]
                        ax.plot(sizes, ys, color=colour, alpha=0.25, lw=0.8)
                    med = [100 * v for v in study["summary"][metric]["median_over_seeds"][strategy]]
                    ax.plot(sizes, med, color=colour, marker="o", lw=1.8, label=f"{strategy} (median of seeds)")
                ax.set_xlabel("training simulations")
                ax.set_ylabel(("median" if metric == "frac_err_median" else "95th percentile") + " frac. error [%]")
                ax.set_title(f"{study['label']}", fontsize=9)
                ax.legend(fontsize=7)
        figs["rounds"] = save_figure(fig, out_dir, name)
    return figs


def _figures(results: dict[str, Any], dataset: ProfileDataset | None, out_dir: Path) -> dict[str, str]:
    figs = figures_of_studies(results, out_dir, "design_active_vs_random")
    cost = results.get("suggest_cost")
    if isinstance(cost, dict) and "suggestion" in cost and dataset is not None:
        from profemu.design import Suggestion, suggestion_figure

        s = cost["suggestion"]
        names = tuple(s["points"])
        sug = Suggestion(
            points={k: np.asarray(v) for k, v in s["points"].items()}, score=np.asarray(s["score"]),
            gain=np.asarray(s["gain"]), index=None, param_names=names,
            log_params=tuple(n for n in names if n in dataset.log_params), fixed=dict(s["fixed"]),
            fields=tuple(s["fields"]), radius=np.asarray(s["radius"]), radius_unit=s["radius_unit"],
            log10_mass=np.asarray(s["log10_mass"]), n_candidates=int(s["n_candidates"]),
        )
        fig = suggestion_figure(sug, design=dataset, parameters=cost["top_parameters"])
        suffix = str(cost.get("data", "CAMELS")).lower()
        figs["suggestion"] = save_figure(fig, out_dir, f"design_suggestion_{suffix}")
        sens = cost.get("_sens_box")
        if sens is not None:
            from profemu.design.derivatives import sensitivity_figure

            figs["sensitivity"] = save_figure(sensitivity_figure(sens, top=4), out_dir, f"design_sensitivity_{suffix}")
    return figs


# ------------------------------------------------------------------ entry points
def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Retrospective study on CAMELS and on the mock (quick: 1 seed to 300; full: 3 seeds to 800)."""
    seeds = (0,) if quick or smoke else (0, 1, 2)
    stop = 300 if quick else 800
    results: dict[str, Any] = {"quick": bool(quick), "smoke": bool(smoke)}
    config_changes: dict[str, Any] = {}
    start, step = 100, 100
    cost_n, cost_candidates = 100, 100_000
    mock, truth = load_mock(n_sims=60 if smoke else 1000)
    if smoke:  # only checks that the pieces run: the mock, 2 rounds, a small suggest call
        config_changes = {"train.members": 2, "train.epochs": 2, "model.hidden": [16], "train.patience": 0}
        results["mock"] = retrospective(mock, truth=truth, seeds=seeds, start=20, step=20, stop=40,
                                        config_changes=config_changes, label="mock lh6 (known truth)")
        results["camels"] = {"skipped": "smoke mode"}
        cost_data, cost_label = mock, "mock"
        cost_n, cost_candidates = 10, 2_000
    else:
        results["mock"] = retrospective(mock, truth=truth, seeds=seeds, start=start, step=step, stop=stop,
                                        label="mock lh6 (known truth)")
        cost_data, cost_label = None, ""
        if CAMELS.is_file():
            cost_data, cost_label = load_camels(), "CAMELS"
            results["camels"] = retrospective(cost_data, seeds=seeds, start=start, step=step, stop=stop,
                                              label="CAMELS LH TNG")
        else:
            results["camels"] = {"skipped": f"CAMELS data not found at {CAMELS}"}
    if cost_data is not None:
        with tempfile.TemporaryDirectory() as tmp:
            results["suggest_cost"] = suggest_cost(cost_data, n=cost_n, candidates=cost_candidates,
                                                   config_changes=config_changes, work=Path(tmp))
            results["suggest_cost"]["data"] = cost_label
    results["figures"] = _figures(results, cost_data, out_dir)
    cost = results.get("suggest_cost")
    if isinstance(cost, dict):
        cost.pop("_sens_box", None)
        cost.pop("suggestion", None)
    return results


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def simulations_to_match(sizes: Sequence[int], curve: Sequence[float], target: float) -> float | None:
    """Training-set size at which ``curve`` first reaches ``target``, linear between rounds.

    Returns ``sizes[0]`` when the first round already reaches it, None when no round does.
    """
    for i, value in enumerate(curve):
        if value <= target:
            if i == 0:
                return float(sizes[0])
            hi, lo = curve[i - 1], value
            frac = (hi - target) / (hi - lo) if hi > lo else 1.0
            return float(sizes[i - 1] + frac * (sizes[i] - sizes[i - 1]))
    return None


def _study_section(study: Mapping[str, Any], title: str) -> list[str]:
    if "skipped" in study:
        return [f"### {title}", "", f"Skipped: {study['skipped']}", ""]
    sizes = study["sizes"]
    summ = study["summary"]
    lines = [f"### {title}", ""]
    lines.append(
        f"{study['n_simulations']} simulations ({study['n_rows']} rows, fields {', '.join(study['fields'])}); "
        f"fixed test set of {study['n_test_simulations']} simulations, pool of {study['n_pool_simulations']}; "
        f"seeds {', '.join(str(s) for s in study['seeds'])}; test error "
        + ("against the noiseless truth." if study["known_truth"] else "against the held-out simulations.")
        + (f" Noise floor of the test targets (a perfect emulator's error against them): median "
           f"{_pct(study['test_noise_floor']['median'])}, 95th percentile {_pct(study['test_noise_floor']['p95'])}."
           if study.get("test_noise_floor") else "")
    )
    lines.append("")
    lines.append(
        "The last two columns interpolate (linearly between rounds, on the medians over seeds) how many "
        "simulations active selection needs to match random selection's error at that round."
    )
    lines.append("")
    head = (["training simulations"] + [f"{s} median" for s in STRATEGIES] + [f"{s} p95" for s in STRATEGIES]
            + ["active, to match random median", "active, to match random p95"])
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    curves = {m: summ[m]["median_over_seeds"] for m in ("frac_err_median", "frac_err_p95")}
    for i, n in enumerate(sizes):
        cells = [str(n)]
        cells += [_pct(curves["frac_err_median"][s][i]) for s in STRATEGIES]
        cells += [_pct(curves["frac_err_p95"][s][i]) for s in STRATEGIES]
        for m in ("frac_err_median", "frac_err_p95"):
            need = simulations_to_match(sizes, curves[m]["active"], curves[m]["random"][i])
            cells.append("–" if need is None else f"{need:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for metric, name in (("frac_err_median", "median"), ("frac_err_p95", "95th-percentile")):
        need = summ[metric]["n_to_reach_random_last"]
        parts = [f"{s}: {need[s] if need[s] is not None else f'not within {sizes[-1]}'}" for s in STRATEGIES]
        lines.append(f"- Simulations needed to reach random selection's {name} error at {sizes[-1]} "
                     f"({_pct(summ[metric]['random_last'])}): " + "; ".join(parts) + "."
                     + (" At the last round both strategies hold the whole pool, so they coincide there."
                        if sizes[-1] >= study["n_pool_simulations"] else ""))
    wins = {m: sum(run["strategies"]["active"][i]["overall"][m] < run["strategies"]["random"][i]["overall"][m]
                   for run in study["runs"] for i in range(1, len(sizes) - 1))
            for m in ("frac_err_median", "frac_err_p95")}
    total = len(study["runs"]) * max(0, len(sizes) - 2)
    if total:
        lines.append(
            f"- Active selection has the lower error in {wins['frac_err_median']} of {total} (seed, round) "
            f"pairs for the median and {wins['frac_err_p95']} of {total} for the 95th percentile (rounds "
            f"{sizes[1]}-{sizes[-2]})."
        )
    edges = {s: float(np.mean([run["strategies"][s][1]["picked_edge_mean"] for run in study["runs"]]))
             for s in STRATEGIES}
    lines.append(
        f"- Where the first {sizes[1] - sizes[0]} picks lie (mean distance from the centre of the suite's box in "
        f"the max norm of its unit box: 0 = centre, 0.5 = a face; the pool's mean is "
        f"{study['pool_edge_mean']:.3f}): " + ", ".join(f"{s} {edges[s]:.3f}" for s in STRATEGIES) + "."
    )
    lines.append("")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md on active selection of simulations."""
    from benchmarks.common import figure_link

    lines = ["## Where to run the next simulations: active vs random selection", ""]
    any_study = next((v for k, v in results.items() if isinstance(v, dict) and "sizes" in v), None)
    sizes = any_study["sizes"] if any_study else [100, 200]
    first, step = sizes[0], (sizes[1] - sizes[0] if len(sizes) > 1 else 0)
    lines.append(
        "Retrospective, pool-based: the simulations of a finished suite stand for the ones one could run "
        "next. A fixed 20% of the simulations (split by simulation, seed 0) is the test set; each seed "
        f"starts from {first} random simulations of the pool and adds {step} per round, chosen by "
        "`profemu.design.selection` among the remaining pool (every mass bin of a chosen simulation comes "
        "with it) or at random; every round retrains the shipped default emulator (training seed = the "
        "seed). Errors are fractional errors of the profiles, pooled over rho and pth and all radii; "
        "table entries are medians over the seeds."
        + (f" Quick mode: one seed, up to {sizes[-1]} simulations." if results.get("quick") else "")
    )
    lines.append("")
    for key, title in (("camels", "CAMELS LH IllustrisTNG (rho_mean, pth_mean, mass bins 11-11.5 and 11.5-12)"),
                       ("mock", "Mock universe with a known truth (lh6 parameters)")):
        if key in results:
            lines += _study_section(results[key], title)
    figs = results.get("figures", {})
    if "rounds" in figs:
        lines += [figure_link(results, figs["rounds"], "test error per round, active vs random"), ""]
    cost = results.get("suggest_cost")
    if isinstance(cost, dict) and "error" not in cost:
        lines.append("### Cost of one `suggest` call")
        lines.append("")
        lines.append(
            f"Default {cost['members']}-member emulator trained on the {cost['training_rows']:,} "
            f"{cost.get('data', 'CAMELS')} rows "
            f"({cost['fit_rows']:,} fitted, the rest for early stopping and calibration); "
            f"`suggest(emulator, {cost['n']}, candidates={cost['candidates']:,})` with {cost['mass_points']} halo "
            f"masses, fields {', '.join(cost['fields'])} and all {cost['n_radii']} radii, in a fresh process: "
            f"**{cost['suggest_seconds']:.1f} s**, peak memory of the "
            f"process {cost['peak_rss_bytes'] / 2**20:.0f} MiB (JAX imported: "
            f"{'yes' if cost['jax_imported'] else 'no'}; compressed kernel features per candidate: {cost['rank']})."
        )
        lines.append("")
        ranked = ", ".join(f"{n} {v:.3f}" for n, v in cost["sensitivity"]["box"])
        lines.append(f"Parameter importance of that emulator (RMS change of log10 profile across the prior, dex, "
                     f"averaged over the box): {ranked}.")
        lines.append("")
        if "suggestion" in figs:
            lines += [figure_link(results, figs["suggestion"], "suggested simulations over the training design"), ""]
        if "sensitivity" in figs:
            lines += [figure_link(results, figs["sensitivity"], "sensitivity of that emulator"), ""]
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.design",
                                     description="Workloads of the design benchmark (run in child processes).")
    sub = parser.add_subparsers(dest="workload", required=True)
    sg = sub.add_parser("suggest", help="time one suggest call on a saved emulator")
    sg.add_argument("--emulator", required=True)
    sg.add_argument("--n", type=int, required=True)
    sg.add_argument("--candidates", type=int, required=True)
    sg.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    _worker_suggest(args.emulator, args.n, args.candidates, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
