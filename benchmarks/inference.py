"""Inference validation: simulation-based calibration, real held-out CAMELS simulations, cost.

* **SBC on the mock universe** (known truth). A mock universe (``lh6``: 6 parameters,
  4 mass bins per simulation, 24 radii, log-normal noise of 0.02 dex) is split by
  simulation (10% test simulations, split seed 0); the default ensemble (cross-validation
  by simulation, then a refit) is trained on the other simulations (quick mode: fewer
  epochs and members). Each held-out row (one mass bin, rho and pth) is
  observed with its known noise and its 6 parameters are inferred with NUTS (2 chains;
  once with the emulator's diagonal predictive variance added to the noise, once with
  the cross-validated covariance over fields and radii instead). Reported: coverage of
  the true parameters by the central 68% and 95% posterior intervals, per parameter
  and overall, and rank histograms. Truths lie in the training box, whose uniform
  prior (in sampling space) they were drawn from.
* **Real held-out CAMELS simulations.** CAMELS LH IllustrisTNG ``rho_mean`` and
  ``pth_mean``, mass bins 11-11.5 and 11.5-12. A seeded random set of simulations is
  held out (both bins); the default emulator is trained on all other simulations (5-fold
  cross-validation by simulation, then a refit on all), and the residual covariance
  (C_row, C_shared) comes from that cross-validation's out-of-fold residuals. For every held-out simulation the 6 LH parameters are inferred
  from rho and pth of both bins jointly, with the stacking noise std/sqrt(nprofs) as
  errors, once with the cross-validated model covariance between bins, fields and
  radii and once with the emulator's diagonal predictive variance (bins independent).
* **Cost.** One NUTS run (4 chains x 1,000 draws after 1,000 warm-up steps) for 6 and
  for 35 free parameters (mock ``lh6`` and ``sb35`` without P(k), default 5-member
  ensembles), and the time of one jitted log-posterior + gradient call.
* **Fisher vs posterior.** At each SBC row's posterior mean, ``sqrt(diag(F^-1))`` is
  compared with the posterior std, on the rows and parameters whose posterior is close
  to Gaussian and well inside the box: for both likelihoods, the likelihood's Fisher
  matrix alone and with the uniform box as a Gaussian prior of equal variance, and with
  the predictive variance also with its mean term alone.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy import CAMELS as _DEFAULT_CAMELS
from benchmarks.common import figure_link, save_figure, timeit

__all__ = ["markdown", "run"]

logger = logging.getLogger("profemu.benchmarks.inference")
FIELDS = ("rho", "pth")
#: The CAMELS table (``$PROFEMU_SHARED_DATA/camels_lh_tng.npz`` when that variable is set).
CAMELS = (Path(os.environ["PROFEMU_SHARED_DATA"]) / "camels_lh_tng.npz"
          if os.environ.get("PROFEMU_SHARED_DATA") else _DEFAULT_CAMELS)


def _num(x: float) -> float | None:
    """A JSON-safe float (None for NaN or infinity)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _quiet() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    for name in ("profemu.train", "profemu.runs.training", "profemu.data", "jax"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _train(dataset: Any, changes: dict[str, Any]) -> Any:
    from profemu.config import Config
    from profemu.runs.training import train_emulator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_emulator(dataset, Config().updated(changes))


def _inside(emulator: Any, params: np.ndarray) -> bool:
    box = emulator.training_box
    return all(box[n][0] <= v <= box[n][1] for n, v in zip(emulator.param_names, params, strict=True))


def _coverage(posteriors: list[Any], truths: np.ndarray) -> dict[str, Any]:
    """Central-interval coverage and normalised ranks of the truths (sampling space)."""
    flat = np.stack([p.flat for p in posteriors])  # [n, S, k]
    lo68, hi68 = np.quantile(flat, [0.16, 0.84], axis=1)
    lo95, hi95 = np.quantile(flat, [0.025, 0.975], axis=1)
    in68 = (truths >= lo68) & (truths <= hi68)
    in95 = (truths >= lo95) & (truths <= hi95)
    ranks = (flat < truths[:, None, :]).mean(axis=1)
    names = posteriors[0].names
    return {
        "n": len(posteriors),
        "per_parameter": {
            n: {"coverage_68": float(in68[:, j].mean()), "coverage_95": float(in95[:, j].mean())}
            for j, n in enumerate(names)
        },
        "overall": {"coverage_68": float(in68.mean()), "coverage_95": float(in95.mean())},
        "ranks": ranks.tolist(),
        "max_r_hat": _num(max(p.r_hat.max() for p in posteriors)),
        "min_ess": _num(min(p.ess.min() for p in posteriors)),
        "fraction_converged": float(np.mean([p.converged() for p in posteriors])),
        "divergences_total": int(sum(p.divergences for p in posteriors)),
    }


#: Posteriors per vectorised NUTS program: vmapped chains wait for the longest trajectory of the
#: batch, so small batches are faster on a CPU.
BATCH = 10
#: Most trajectory doublings per NUTS step in the many-posterior runs (127 leapfrog steps).
DEPTH = 7


def _sample_in_batches(posts: list[Any], batch: int, **kwargs: Any) -> list[Any]:
    from profemu.inference import sample_posterior_batch

    out: list[Any] = []
    for start in range(0, len(posts), batch):
        chunk = posts[start:start + batch]
        padded = chunk + [chunk[-1]] * (batch - len(chunk))  # same shapes: no recompilation
        out.extend(sample_posterior_batch(padded, max_tree_depth=DEPTH, **kwargs)[:len(chunk)])
        if len(out) % 25 < batch or len(out) == len(posts):
            logger.info("posteriors: %d/%d done", len(out), len(posts))
    return out


def _residual_covariance(emu: Any, train: Any, changes: dict[str, Any], *, k: int) -> tuple[float, str]:
    """Use the covariance the training's own cross-validation stored; estimate it only when absent."""
    from profemu.config import Config
    from profemu.inference import attach_residual_covariance, residual_covariance
    from profemu.train.cv import fit_residual_covariance

    if residual_covariance(emu) is not None:
        return 0.0, "the training's own cross-validation (out-of-fold residuals, stored with the emulator)"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = fit_residual_covariance(train, Config().updated(changes), k=k, seed=0)
    attach_residual_covariance(emu, estimate)
    return time.perf_counter() - t0, f"{k}-fold cross-validation by simulation on the training simulations"


def _fisher_vs_posterior(posts: list[Any], samples: list[Any], fisher_fn: Any) -> dict[str, Any]:
    """Fisher errors at the posterior mean / posterior std, where the posterior is near-Gaussian."""
    space = posts[0].space
    lo, hi = space.lower, space.upper
    ratios: dict[str, list[float]] = {n: [] for n in space.free}
    for post, s in zip(posts, samples, strict=True):
        mean, std = s.flat.mean(axis=0), s.flat.std(axis=0, ddof=1)
        skew = np.mean(((s.flat - mean) / std) ** 3, axis=0)
        try:
            fisher = fisher_fn(post, mean)
        except Exception:  # a mean outside the box cannot be differentiated
            continue
        for j, name in enumerate(space.free):
            gaussian = (mean[j] - 3 * std[j] > lo[j]) and (mean[j] + 3 * std[j] < hi[j]) and abs(skew[j]) < 0.3
            if gaussian:
                ratios[name].append(float(fisher.errors[j] / std[j]))
    return {
        n: {"n": len(v), "median_ratio": float(np.median(v)) if v else None,
            "p16": float(np.quantile(v, 0.16)) if v else None, "p84": float(np.quantile(v, 0.84)) if v else None,
            "within_20pct": float(np.mean(np.abs(np.asarray(v) - 1) < 0.2)) if v else None}
        for n, v in ratios.items()
    }


# ---------------------------------------------------------------------- SBC
def _sbc(quick: bool, smoke: bool, out_dir: Path) -> dict[str, Any]:
    from profemu.data.mock import make_mock_universe
    from profemu.inference import Observation, fisher_matrix, make_log_posterior

    n_rows = 400 if smoke else 2000 if quick else 4000
    n_obs = 10 if smoke else 100 if quick else 200
    changes: dict[str, Any] = {"data.fields": list(FIELDS), "data.test_fraction": 0.1}
    if smoke:
        changes.update({"train.epochs": 5, "train.members": 2, "train.cv_folds": 2})
    elif quick:
        changes.update({"train.epochs": 150, "train.members": 3})
    chains, warmup, draws = (2, 50, 50) if smoke else (2, 200, 250) if quick else (2, 300, 400)
    universe = make_mock_universe(n=n_rows, seed=0, param_set="lh6", noise_dex=0.02)
    ds = universe.dataset.select_fields(FIELDS)
    t0 = time.perf_counter()
    out = _train(ds, changes)
    train_seconds = time.perf_counter() - t0
    emu = out.emulator
    test_rows = np.asarray(out.prepared.split.test)
    inside = [int(r) for r in test_rows if _inside(emu, ds.params[r])]
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(inside, size=min(n_obs, len(inside)), replace=False))
    logger.info("SBC: emulator trained in %.0f s; inferring %d held-out rows", train_seconds, rows.size)
    cv_seconds, cv_source = _residual_covariance(emu, ds.subset(out.prepared.split.train), changes,
                                                 k=2 if smoke else 5)
    modes: dict[str, Any] = {}
    fisher: dict[str, Any] = {}
    nuts_seconds = 0.0
    for mode in ("predictive", "residual"):
        template = make_log_posterior(emu, Observation.from_dataset(ds, [rows[0]], FIELDS), model_covariance=mode)
        mode_posts = [template.with_observation(Observation.from_dataset(ds, [r], FIELDS)) for r in rows]
        t0 = time.perf_counter()
        mode_samples = _sample_in_batches(mode_posts, BATCH, chains=chains, warmup=warmup, draws=draws, seed=1)
        seconds = time.perf_counter() - t0
        truths = np.stack([template.space.to_sampling(ds.params[r]) for r in rows])
        modes[mode] = {**_coverage(mode_samples, truths), "seconds": seconds}
        if mode == "predictive":
            nuts_seconds = seconds
        fisher[mode] = _fisher_vs_posterior(mode_posts, mode_samples, fisher_matrix)
        fisher[f"{mode}, box prior"] = _fisher_vs_posterior(
            mode_posts, mode_samples, lambda p, m: fisher_matrix(p, m, include_box_prior=True))
        if mode == "predictive":
            fisher["predictive, mean term only"] = _fisher_vs_posterior(
                mode_posts, mode_samples, lambda p, m: fisher_matrix(p, m, include_variance=False))
    cov = modes["predictive"]
    figure = _rank_figure({m: np.asarray(c["ranks"]) for m, c in modes.items()}, template.space.free, out_dir)
    test_metrics = out.evaluation["overall"] if out.evaluation else {}
    return {
        "data": f"mock universe lh6, {n_rows} rows ({n_rows // 4} simulations x 4 mass bins), 24 radii, "
                "noise 0.02 dex, seed 0",
        "train_changes": changes,
        "train_seconds": train_seconds,
        "members": emu.members,
        "test_frac_err_median": test_metrics.get("frac_err_median"),
        "test_coverage_68": test_metrics.get("coverage_68"),
        "n_test_rows": int(test_rows.size),
        "n_inside_box": len(inside),
        "rows": rows.tolist(),
        "chains": chains, "warmup": warmup, "draws": draws, "seed": 1, "max_tree_depth": DEPTH,
        "nuts_seconds": nuts_seconds,
        "cv_seconds": cv_seconds,
        "residual_covariance_source": cv_source,
        "coverage": cov,
        "coverage_residual": modes["residual"],
        "fisher_vs_posterior_by_mode": fisher,
        "figure": figure,
    }


def _rank_figure(ranks: dict[str, np.ndarray], names: tuple[str, ...], out_dir: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(fig)
    labels = {"predictive": "diagonal predictive variance", "residual": "cross-validated covariance"}
    n, k = next(iter(ranks.values())).shape
    bins = 10
    expected = n / bins
    band = 2 * np.sqrt(expected * (1 - 1 / bins))
    for j in range(k):
        ax = fig.add_subplot(2, (k + 1) // 2, j + 1)
        ax.axhspan(expected - band, expected + band, color="0.85", zorder=0)
        ax.axhline(expected, color="k", lw=0.8)
        for c, (mode, r) in enumerate(ranks.items()):
            ax.hist(r[:, j], bins=bins, range=(0, 1), histtype="step", lw=1.5, color=f"C{c}",
                    label=labels.get(mode, mode))
        ax.set_title(names[j], fontsize=9)
        ax.set_xlabel("rank of truth", fontsize=8)
        if j == 0:
            ax.legend(fontsize=6, loc="lower center")
    fig.suptitle(f"SBC rank histograms ({n} held-out mock rows; grey: ±2σ band of a uniform histogram)",
                 fontsize=10)
    return save_figure(fig, out_dir, "inference_sbc_ranks")


# ---------------------------------------------------------------------- CAMELS
def _camels(quick: bool, smoke: bool, out_dir: Path) -> dict[str, Any]:
    from profemu.data.camels import load_camels_lh
    from profemu.inference import Observation, make_log_posterior, residual_covariance

    if not CAMELS.is_file():
        return {"skipped": f"CAMELS data not found at {CAMELS}"}
    ds = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=("11-11.5", "11.5-12"), verbose=False)
    sims = np.unique(ds.groups)
    both = [s for s in sims if np.sum(ds.groups == s) == 2]
    rng = np.random.default_rng(0)
    n_held = 10 if smoke else 55 if quick else 100
    held = np.sort(rng.choice(both, size=n_held, replace=False))
    is_held = np.isin(ds.groups, held)
    train = ds.subset(np.flatnonzero(~is_held))
    changes: dict[str, Any] = {"data.test_fraction": 0.0, "data.fields": list(FIELDS)}
    if smoke:
        changes.update({"train.epochs": 5, "train.members": 2, "train.cv_folds": 2})
    k_folds = 2 if smoke else 5
    chains, warmup, draws = (2, 50, 50) if smoke else (2, 200, 250) if quick else (2, 300, 500)
    t0 = time.perf_counter()
    out = _train(train, changes)
    train_seconds = time.perf_counter() - t0
    emu = out.emulator
    cv_seconds, cv_source = _residual_covariance(emu, train, changes, k=k_folds)
    estimate = residual_covariance(emu)
    n_r = ds.radius.size
    far = ds.radius > 0.2
    corr = estimate.correlation(2)
    k = len(FIELDS) * n_r
    between_bins = {
        f: float(np.mean(np.diag(corr[:k, k:])[i * n_r:(i + 1) * n_r][far]))
        for i, f in enumerate(FIELDS)
    }
    rho_pth = float(np.mean(np.diag(corr[:n_r, n_r:k])[far]))
    held_ok = [s for s in held if _inside(emu, ds.params[np.flatnonzero(ds.groups == s)[0]])]
    rows_of = {s: np.flatnonzero(ds.groups == s) for s in held_ok}
    logger.info("CAMELS: emulator %.0f s, residual covariance %.0f s; %d held-out simulations in the box",
                train_seconds, cv_seconds, len(held_ok))
    results: dict[str, Any] = {
        "data": "CAMELS LH IllustrisTNG rho_mean and pth_mean, mass bins 11-11.5 and 11.5-12, z = 0.537",
        "n_train_simulations": int(np.unique(train.groups).size),
        "n_held_out": int(n_held),
        "n_held_out_in_box": len(held_ok),
        "held_out_seed": 0,
        "train_changes": changes,
        "train_seconds": train_seconds,
        "cv_folds": k_folds,
        "cv_seconds": cv_seconds,
        "residual_covariance_source": cv_source,
        "residual_correlation_between_bins_r_gt_0.2": between_bins,
        "residual_correlation_rho_pth_same_bin_r_gt_0.2": rho_pth,
        "chains": chains, "warmup": warmup, "draws": draws, "seed": 2, "max_tree_depth": DEPTH,
        "modes": {},
    }
    truths = None
    for mode in ("residual", "predictive"):
        first = Observation.from_dataset(ds, rows_of[held_ok[0]], FIELDS)
        template = make_log_posterior(emu, first, model_covariance=mode)
        posts = [template.with_observation(Observation.from_dataset(ds, rows_of[s], FIELDS)) for s in held_ok]
        t0 = time.perf_counter()
        samples = _sample_in_batches(posts, BATCH, chains=chains, warmup=warmup, draws=draws, seed=2)
        seconds = time.perf_counter() - t0
        truths = np.stack([template.space.to_sampling(ds.params[rows_of[s][0]]) for s in held_ok])
        cov = _coverage(samples, truths)
        width = np.stack([s.flat.std(axis=0, ddof=1) for s in samples]) / template.space.prior_std
        cov["posterior_over_prior_std"] = {
            n: {"median": float(np.median(width[:, j])), "p16": float(np.quantile(width[:, j], 0.16)),
                "p84": float(np.quantile(width[:, j], 0.84))}
            for j, n in enumerate(template.space.free)
        }
        cov["seconds"] = seconds
        results["modes"][mode] = cov
    results["figure"] = _coverage_figure(results, out_dir)
    return results


def _coverage_figure(results: dict[str, Any], out_dir: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    modes = results["modes"]
    names = list(next(iter(modes.values()))["per_parameter"])
    x = np.arange(len(names) + 1)
    for i, (level, nominal) in enumerate((("coverage_68", 0.68), ("coverage_95", 0.95))):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, (mode, label) in enumerate((("residual", "cross-validated model covariance"),
                                           ("predictive", "diagonal predictive variance"))):
            vals = [modes[mode]["per_parameter"][n][level] for n in names] + [modes[mode]["overall"][level]]
            ax.bar(x + (j - 0.5) * 0.38, vals, width=0.38, label=label)
        ax.axhline(nominal, color="k", lw=1)
        ax.axhspan(nominal - 0.05, nominal + 0.05, color="0.85", zorder=0)
        ax.set_xticks(x, [*names, "all"], rotation=30, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{level.replace('coverage_', '')}% interval coverage", fontsize=9)
        if i == 0:
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"CAMELS TNG: {results['n_held_out_in_box']} held-out simulations, rho + pth of 2 mass bins",
                 fontsize=10)
    return save_figure(fig, out_dir, "inference_camels_coverage")


# ---------------------------------------------------------------------- cost
def _cost(quick: bool, smoke: bool) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from profemu.data.mock import make_mock_universe
    from profemu.inference import Observation, make_log_posterior, sample_posterior

    rows = []
    chains, warmup, draws = (4, 50, 50) if smoke else (4, 1000, 1000)
    for param_set in ("lh6", "sb35"):
        universe = make_mock_universe(n=400 if smoke else 1200, seed=5, param_set=param_set, with_pk=False)
        ds = universe.dataset.select_fields(FIELDS)
        changes: dict[str, Any] = {"data.fields": list(FIELDS), "train.epochs": 5 if smoke else 60}
        if smoke:
            changes["train.members"] = 2
        emu = _train(ds, changes).emulator
        post = make_log_posterior(emu, Observation.from_dataset(ds, [1], FIELDS), model_covariance="predictive")
        vg = jax.jit(jax.value_and_grad(post.fn))
        theta = jnp.asarray(post.space.to_sampling(ds.params[1]), dtype=jnp.float32)
        timing = timeit(lambda vg=vg, theta=theta: vg(theta), repeats=7, number=200)
        t0 = time.perf_counter()
        first = sample_posterior(post, chains=chains, warmup=warmup, draws=draws, seed=3, check=False)
        with_compile = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        again = sample_posterior(post, chains=chains, warmup=warmup, draws=draws, seed=4, check=False)
        compiled, compiled_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({
            "param_set": param_set,
            "free_parameters": post.space.dim,
            "members": emu.members,
            "data_points": int(post.data["n_used"]),
            "chains": chains, "warmup": warmup, "draws": draws,
            "nuts_seconds_with_compile": with_compile,
            "nuts_seconds_compiled": compiled,
            "nuts_cpu_seconds_compiled": compiled_cpu,
            "load_average_1min": os.getloadavg()[0],
            "mean_integration_steps": again.info["mean_integration_steps"],
            "max_r_hat": _num(max(first.r_hat.max(), again.r_hat.max())),
            "min_ess": _num(min(first.ess.min(), again.ess.min())),
            "logp_grad_us": timing.median * 1e6,
            "logp_grad_us_best": timing.best * 1e6,
        })
        logger.info("cost: %s done", param_set)
    return {"rows": rows}


def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Run the SBC, the CAMELS held-out inference and the cost measurements."""
    _quiet()
    t0 = time.perf_counter()
    results: dict[str, Any] = {"cost": _cost(quick, smoke)}
    results["sbc"] = _sbc(quick, smoke, out_dir)
    results["camels"] = _camels(quick, smoke, out_dir)
    results["seconds"] = time.perf_counter() - t0
    return results


# ---------------------------------------------------------------------- markdown
def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _source(part: dict[str, Any]) -> str:
    """Where a section's residual covariance came from, with its cost."""
    source = part.get("residual_covariance_source")
    if source is None:  # results written before the training stored its own estimate
        return f"5-fold cross-validation by simulation on the training simulations ({part['cv_seconds']:.0f} s)"
    return source + (f" ({part['cv_seconds']:.0f} s)" if part.get("cv_seconds") else ", no extra training")


def _flag(value: float, nominal: float) -> str:
    return f"{value:.3f}" + (" ✓" if abs(value - nominal) <= 0.05 else " ✗")


def markdown(results: dict[str, Any]) -> str:
    """The inference section of BENCHMARKS.md."""
    lines = ["## Inference: calibration of posteriors, real held-out simulations, cost", ""]
    sbc = results.get("sbc", {})
    if sbc:
        cov = sbc["coverage"]
        lines += [
            "### Simulation-based calibration on the mock universe", "",
            f"Data: {sbc['data']}; split by simulation (10% test simulations, split seed 0"
            + ("" if "residual_covariance_source" in sbc else ", 10% validation")
            + f"). Emulator: default MLP ensemble with {sbc['members']} members"
            f"{' (quick mode: ' + ', '.join(f'{k}={v}' for k, v in sbc['train_changes'].items() if k != 'data.fields') + ')' if len(sbc['train_changes']) > 1 else ''}"
            f", trained in {sbc['train_seconds']:.0f} s (held-out median fractional error "
            f"{100 * (sbc['test_frac_err_median'] or float('nan')):.1f}%). {cov['n']} held-out rows "
            f"(one mass bin each, rho and pth, 48 data points, known noise 0.02 dex; seeded choice among the "
            f"{sbc['n_inside_box']} test rows inside the training box); 6 free parameters; NUTS "
            f"{sbc['chains']} chains x {sbc['draws']} draws after {sbc['warmup']} warm-up steps (seed "
            f"{sbc['seed']}, tree depth <= {sbc.get('max_tree_depth', 10)}), emulator predictive variance added to the noise; {sbc['nuts_seconds']:.0f} s "
            f"for all rows. Convergence: max R-hat {_f(cov['max_r_hat'])}, min bulk ESS {_f(cov['min_ess'], 0)}, "
            f"{100 * cov['fraction_converged']:.0f}% of rows pass R-hat <= 1.05 and ESS >= 100, "
            f"{cov['divergences_total']} divergent transitions in total.", "",
            f"The same rows again with the cross-validated model covariance instead (C_row over fields and "
            f"radii from {_source(sbc)}): max R-hat "
            f"{_f(sbc['coverage_residual']['max_r_hat'])}, min ESS {_f(sbc['coverage_residual']['min_ess'], 0)}.",
            "",
            "| parameter | coverage 68%, predictive variance | 95% | coverage 68%, CV covariance | 95% |",
            "|---|---|---|---|---|",
        ]
        cres = sbc["coverage_residual"]
        for name, c in cov["per_parameter"].items():
            r = cres["per_parameter"][name]
            lines.append(f"| {name} | {_flag(c['coverage_68'], 0.68)} | {_flag(c['coverage_95'], 0.95)} | "
                         f"{_flag(r['coverage_68'], 0.68)} | {_flag(r['coverage_95'], 0.95)} |")
        o, ro = cov["overall"], cres["overall"]
        lines += [f"| **all** | **{_flag(o['coverage_68'], 0.68)}** | **{_flag(o['coverage_95'], 0.95)}** | "
                  f"**{_flag(ro['coverage_68'], 0.68)}** | **{_flag(ro['coverage_95'], 0.95)}** |", "",
                  "✓: within ±0.05 of nominal (the target). With n rows a coverage estimate has a binomial "
                  f"standard error of about {np.sqrt(0.68 * 0.32 / cov['n']):.3f} (68%) and "
                  f"{np.sqrt(0.95 * 0.05 / cov['n']):.3f} (95%) per parameter.", "",
                  figure_link(results, sbc["figure"], "SBC rank histograms"), ""]
        by_mode = sbc.get("fisher_vs_posterior_by_mode") or (
            {"predictive, mean term only": sbc["fisher_vs_posterior"]} if sbc.get("fisher_vs_posterior") else {})
        if by_mode:
            labels = {
                "predictive": "predictive variance; likelihood only (mean + variance terms)",
                "predictive, mean term only": "predictive variance; likelihood only, mean term J^T P J alone",
                "predictive, box prior": "predictive variance; with the box as a Gaussian prior",
                "residual": "CV covariance; likelihood only",
                "residual, box prior": "CV covariance; with the box as a Gaussian prior",
            }
            lines += [
                "**Fisher errors vs posterior std** (Fisher at the posterior mean of each row; only parameters "
                "whose posterior lies more than 3σ inside the box with |skewness| < 0.3). With the predictive "
                "variance, C depends on the parameters and the Fisher matrix has the second term "
                "1/2 tr(P dC_i P dC_j). *Likelihood only*: `fisher_matrix(post, theta)`; *with the box*: "
                "`include_box_prior=True` (the uniform box as a Gaussian of equal variance). Most parameters "
                "of one mock row are barely constrained (their posterior fills much of the box); the box cuts "
                "their degeneracies with the constrained ones, which the likelihood-only Fisher marginalises "
                "over without bound:", "",
                "| likelihood; Fisher | parameter | rows | median Fisher/posterior | 16–84% range | within ±20% |",
                "|---|---|---|---|---|---|",
            ]
            for mode, fv in by_mode.items():
                for name, f in fv.items():
                    if not f["n"]:
                        continue
                    lines.append(f"| {labels.get(mode, mode)} | {name} | {f['n']} | {f['median_ratio']:.2f} | "
                                 f"{f['p16']:.2f}–{f['p84']:.2f} | {100 * f['within_20pct']:.0f}% |")
            lines.append("")
    cam = results.get("camels", {})
    if cam and "skipped" in cam:
        lines += ["### Real held-out CAMELS simulations", "", f"Skipped: {cam['skipped']}", ""]
    elif cam:
        bb = cam["residual_correlation_between_bins_r_gt_0.2"]
        lines += [
            "### Real held-out CAMELS simulations", "",
            f"Data: {cam['data']}. {cam['n_held_out']} simulations held out (seeded, seed "
            f"{cam['held_out_seed']}; {cam['n_held_out_in_box']} have parameters inside the training box and are "
            f"used), the default emulator trained on the other {cam['n_train_simulations']} "
            f"({cam['train_seconds']:.0f} s); residual covariance from {_source(cam)}. Its correlation between the two "
            f"mass bins of one simulation beyond 0.2 Mpc: rho {bb['rho']:.2f}, pth {bb['pth']:.2f}; between rho "
            f"and pth of one bin: {cam['residual_correlation_rho_pth_same_bin_r_gt_0.2']:.2f}. Each held-out "
            "simulation: 6 free parameters from rho and pth of both bins (60 data points), errors = stacking "
            f"noise std/sqrt(nprofs); NUTS {cam['chains']} chains x {cam['draws']} draws after {cam['warmup']} "
            f"warm-up steps (seed {cam['seed']}, tree depth <= {cam.get('max_tree_depth', 10)}).", "",
            "| parameter | coverage 68%, model covariance | 95% | coverage 68%, diagonal predictive | 95% | "
            "posterior/prior std (median, 16–84%), model covariance |",
            "|---|---|---|---|---|---|",
        ]
        res, pred = cam["modes"]["residual"], cam["modes"]["predictive"]
        for name in res["per_parameter"]:
            r, p = res["per_parameter"][name], pred["per_parameter"][name]
            w = res["posterior_over_prior_std"][name]
            lines.append(
                f"| {name} | {_flag(r['coverage_68'], 0.68)} | {_flag(r['coverage_95'], 0.95)} | "
                f"{_flag(p['coverage_68'], 0.68)} | {_flag(p['coverage_95'], 0.95)} | "
                f"{w['median']:.2f} ({w['p16']:.2f}–{w['p84']:.2f}) |"
            )
        ro, po = res["overall"], pred["overall"]
        lines += [
            f"| **all** | **{_flag(ro['coverage_68'], 0.68)}** | **{_flag(ro['coverage_95'], 0.95)}** | "
            f"**{_flag(po['coverage_68'], 0.68)}** | **{_flag(po['coverage_95'], 0.95)}** | |", "",
            f"Convergence, model covariance: max R-hat {_f(res['max_r_hat'])}, min ESS {_f(res['min_ess'], 0)}, "
            f"{100 * res['fraction_converged']:.0f}% of simulations converged; diagonal: max R-hat "
            f"{_f(pred['max_r_hat'])}, min ESS {_f(pred['min_ess'], 0)}. Posterior/prior std: 1 = the data add "
            "nothing to the uniform prior (prior std = width/sqrt(12) in sampling space, log10 for the A_*).", "",
            figure_link(results, cam["figure"], "CAMELS coverage"), "",
        ]
    cost = results.get("cost", {})
    if cost:
        lines += [
            "### Cost", "",
            "One NUTS run on 2 cores (mock universes without P(k); default MLP ensembles; one mass bin of rho "
            "and pth); *with compile* includes JAX tracing and compilation of the sampler, *compiled* is a second "
            "run of the same posterior. Log-posterior + gradient: one jitted `value_and_grad` call, median of 7 "
            "repeats of 200 calls.", "",
            "| free parameters | members | data points | chains x draws (warm-up) | wall [s], with compile | "
            "wall [s], compiled | mean leapfrog steps | max R-hat | min ESS | log p + grad [µs] |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        loads = [r["load_average_1min"] for r in cost["rows"] if "load_average_1min" in r]
        if loads:
            lines[-4] += (f" The machine was shared: 1-minute load average {min(loads):.1f}–{max(loads):.1f} on "
                          "its 2 cores at the end of these runs, so wall times are upper bounds.")
        for r in cost["rows"]:
            lines.append(
                f"| {r['free_parameters']} | {r['members']} | {r['data_points']} | {r['chains']} x {r['draws']} "
                f"({r['warmup']}) | {r['nuts_seconds_with_compile']:.1f} | {r['nuts_seconds_compiled']:.1f} | "
                f"{r['mean_integration_steps']:.1f} | {_f(r['max_r_hat'])} | {_f(r['min_ess'], 0)} | "
                f"{r['logp_grad_us']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)
