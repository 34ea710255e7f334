"""Observables benchmark: the CAP likelihood's speed, NUTS on the ACT DR5 x CMASS kSZ, and
posterior coverage on synthetic CAP profiles of held-out CAMELS simulations.

* (a) one jitted evaluation of the log posterior (emulator at the 4 CMASS mass bins, mass
  average, forward model, 9x9 Cholesky) and of its value and gradient [ms per call];
* (b) NUTS with 4 free feedback parameters (Ω_m, σ_8 fixed; two-halo amplitude 1) on the
  f150 kSZ: wall time including compilation and R-hat;
* (c) coverage: for held-out simulations (split by simulation; the emulator never saw them)
  the kSZ CAP of their own ρ profiles (the 11-11.5 and 11.5-12 bins at their mean masses,
  weights 1/2) through the same forward model (D_A at the simulation's Omega_m), plus Gaussian noise with the ACT kSZ covariance
  scaled by ``NOISE_SCALE²`` (against the ACT covariance itself these low-mass CAPs have S/N
  ≈ 1, the CMASS stack ≈ 8: the posteriors would be the prior and coverage would test nothing);
  4 feedback parameters free, Ω_m and σ_8 fixed at the simulation's values; the 68%/95%
  central intervals of each marginal posterior are checked against the truth.

Data: ../shared/data/camels_lh_tng.npz (rho, mean profiles, all mass bins) and act_cmass/.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT

__all__ = ["markdown", "run"]

SHARED = REPO_ROOT.parent / "shared" / "data"
NOISE_SCALE = 0.05
"""The synthetic data's noise: the ACT kSZ covariance times NOISE_SCALE² (see the docstring)."""
FIXED = {"Omega_m": 0.3, "sigma_8": 0.8}
FREE = ("A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
_SIZES = {
    "quick": {"epochs": 60, "members": 4, "warmup": 300, "draws": 300, "sims": 50, "batch": 25, "calls": 300},
    "full": {"epochs": 120, "members": 5, "warmup": 500, "draws": 500, "sims": 100, "batch": 25, "calls": 1000},
}
logger = logging.getLogger("benchmarks.observables")


def _train(sizes: dict[str, int]) -> Any:
    from profemu.config import Config
    from profemu.data.io import load_dataset
    from profemu.runs.training import train_emulator

    dataset = load_dataset(SHARED / "camels_lh_tng.npz", "camels-lh", fields=("rho",), mass_bins="all")
    cfg = Config().updated({"data.fields": ["rho"], "train.members": sizes["members"], "train.epochs": sizes["epochs"],
                            "data.test_fraction": 0.1, "train.cv_folds": 0, "data.input_relevance": "off",
                            "train.seed": 0, "data.split_seed": 0})
    t0 = time.perf_counter()
    result = train_emulator(dataset, cfg, evaluate_test=False)
    return result, dataset, time.perf_counter() - t0


def _ksz_term(emulator: Any, act: Any, masses: Any, *, covariance_scale: float = 1.0) -> Any:
    from profemu.inference.observables import CAPTerm
    from profemu.observables import CAPMeasurement, ForwardModel, PopulationModel

    fm = ForwardModel.build(kind="ksz", redshift=0.55, apertures_arcmin=act.ksz.apertures_arcmin,
                            beam_ell=act.beam.ell, beam_bl=act.beam.values, omega_m=0.3, h=0.6711)
    model = PopulationModel.build(emulator, fm, masses)
    meas = act.ksz if covariance_scale == 1.0 else CAPMeasurement(
        kind="ksz", apertures_arcmin=act.ksz.apertures_arcmin, values=act.ksz.values,
        covariance=act.ksz.covariance * covariance_scale**2, errors=act.ksz.errors * covariance_scale)
    return CAPTerm(meas, model)


def _timing(post: Any, calls: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    theta = jnp.asarray(post.space.center, jnp.float32)
    out = {}
    for name, fn in (("log_posterior", jax.jit(post.fn)), ("value_and_grad", jax.jit(jax.value_and_grad(post.fn)))):
        jax.block_until_ready(fn(theta))
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(theta))
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms_median"] = 1e3 * float(np.median(times))
        out[f"{name}_ms_p90"] = 1e3 * float(np.quantile(times, 0.9))
    return out


def _act_nuts(post: Any, sizes: dict[str, int]) -> dict[str, Any]:
    from profemu.inference import sample_posterior
    from profemu.inference.observables import cap_chi2

    t0 = time.perf_counter()
    samples = sample_posterior(post, chains=4, warmup=sizes["warmup"], draws=sizes["draws"], seed=0, check=False)
    wall = time.perf_counter() - t0
    med = np.median(samples.flat, axis=0)
    return {"wall_seconds_with_compilation": wall, "warmup_seconds": samples.info["warmup_seconds"],
            "r_hat_max": float(samples.r_hat.max()), "ess_min": float(samples.ess.min()),
            "divergences": samples.divergences, "chains": 4, "warmup": sizes["warmup"], "draws": sizes["draws"],
            "median": dict(zip(samples.names, np.asarray(samples.space.to_physical(med)).tolist(), strict=True)),
            "chi2_at_median": cap_chi2(post, med)["chi2"]}


def _held_out_sims(result: Any, dataset: Any, n: int) -> list[dict[str, Any]]:
    """Held-out simulations with both lower mass bins and every radius present."""
    test_rows = np.asarray(result.prepared.split.test)
    groups = np.asarray(dataset.groups)
    out = []
    for sim in np.unique(groups[test_rows]):
        rows = test_rows[groups[test_rows] == sim]
        rows = rows[np.argsort(dataset.log10_mass[rows])][:2]
        if rows.size < 2 or dataset.log10_mass[rows[1]] > 12.0 or not dataset.mask["rho"][rows].all():
            continue
        out.append({"sim": int(sim), "params": dataset.params[rows[0]], "log10_mass": dataset.log10_mass[rows],
                    "log10_rho": np.log10(dataset.profiles["rho"][rows])})
        if len(out) >= n:
            break
    return out


def _coverage(emulator: Any, act: Any, dataset: Any, result: Any, sizes: dict[str, int]) -> dict[str, Any]:
    from profemu.inference import sample_posterior_batch
    from profemu.inference.observables import make_cap_posterior
    from profemu.observables import HaloMassDistribution

    sims = _held_out_sims(result, dataset, sizes["sims"])
    two = np.array([11.3, 11.7])
    masses = HaloMassDistribution(log10_mass_lo=two - 0.2, log10_mass_hi=two + 0.2, log10_mass_center=two,
                                  weights=np.array([0.5, 0.5]))
    term = _ksz_term(emulator, act, masses, covariance_scale=NOISE_SCALE)
    base = make_cap_posterior([term], fix=FIXED)
    model, cov = term.model, term.measurement.covariance
    rng = np.random.default_rng(0)
    chol = np.linalg.cholesky(cov)
    posts, truths, snr = [], [], []
    names = list(emulator.param_names)
    for s in sims:
        # the simulation's own Omega_m sets D_A, as in the posterior (geometry 'follow', Omega_m held fixed)
        here = model.at_cosmology(float(s["params"][names.index("Omega_m")]))
        cap = here._cap_and_jacobian(s["log10_rho"], np.zeros_like(s["log10_rho"]), here.scaled_matrix, np,
                                     np.array([0.5, 0.5]))[0]
        snr.append(float(np.sqrt(cap @ np.linalg.solve(cov, cap))))
        data = cap + chol @ rng.standard_normal(cap.size)
        fixed = {k: float(s["params"][names.index(k)]) for k in FIXED}
        posts.append(base.with_values(data, masses=[(s["log10_mass"], np.array([0.5, 0.5]))], fixed=fixed))
        truths.append(np.log10([s["params"][names.index(k)] for k in FREE]))
    t0 = time.perf_counter()
    samples = []
    for i in range(0, len(posts), sizes["batch"]):
        samples += sample_posterior_batch(posts[i:i + sizes["batch"]], chains=2, warmup=sizes["warmup"],
                                          draws=sizes["draws"], seed=i, max_tree_depth=6)
        logger.info("coverage: %d/%d simulations sampled (%.0f s)", len(samples), len(posts), time.perf_counter() - t0)
    inside = {0.68: [], 0.95: []}
    for post, truth in zip(samples, truths, strict=True):
        for level in inside:
            lo, hi = np.quantile(post.flat, [(1 - level) / 2, (1 + level) / 2], axis=0)
            inside[level].append((truth >= lo) & (truth <= hi))
    cov68, cov95 = (np.mean(inside[k]) for k in (0.68, 0.95))
    print(f"[observables] coverage over {len(posts)} simulations: 68% {cov68:.3f}, 95% {cov95:.3f}", flush=True)
    per_param = {n: {"68": float(np.mean(np.array(inside[0.68])[:, j])), "95": float(np.mean(np.array(inside[0.95])[:, j]))}
                 for j, n in enumerate(FREE)}
    return {"simulations": len(posts), "noise_scale": NOISE_SCALE, "coverage_68": float(cov68),
            "coverage_95": float(cov95), "per_parameter": per_param, "median_snr": float(np.median(snr)),
            "r_hat_max_median": float(np.median([p.r_hat.max() for p in samples])),
            "seconds": time.perf_counter() - t0, "sims": [s["sim"] for s in sims]}


def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Run (a), (b), (c); ``quick``: 60 epochs, 300+300 NUTS steps, 50 simulations."""
    from profemu.inference.observables import make_cap_posterior
    from profemu.observables import load_act_cmass

    sizes = dict(_SIZES["quick" if quick or smoke else "full"])
    if smoke:
        sizes.update(epochs=3, members=2, warmup=20, draws=20, sims=4, batch=4, calls=20)
    act = load_act_cmass(SHARED / "act_cmass")
    result, dataset, train_s = _train(sizes)
    emulator = result.emulator
    term = _ksz_term(emulator, act, act.mass_distribution)
    post = make_cap_posterior([term], fix=FIXED)
    timing = _timing(post, sizes["calls"])
    logger.info("likelihood: %.3f ms per call", timing["log_posterior_ms_median"])
    nuts = _act_nuts(post, sizes)
    logger.info("NUTS on ACT kSZ: %.0f s, R-hat %.3f", nuts["wall_seconds_with_compilation"], nuts["r_hat_max"])
    print(f"[observables] likelihood {timing}, NUTS {nuts}", flush=True)
    coverage = _coverage(emulator, act, dataset, result, sizes)
    return _finite({"sizes": sizes, "train_seconds": train_s, "likelihood": timing, "nuts_act_ksz": nuts,
            "coverage": coverage, "mass_outside_dex": term.model.mass_outside_dex.tolist(),
            "targets": {"likelihood_ms": 1.0, "nuts_seconds": 120.0, "r_hat": 1.01, "coverage_tolerance": 0.07,
                        "simulations": 50}})


def _finite(value: Any) -> Any:
    """NaN/inf floats (e.g. R-hat of too few draws in smoke mode) become None, recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def markdown(results: dict[str, Any]) -> str:
    """The benchmark's section of BENCHMARKS.md."""
    t, n, c = results["likelihood"], results["nuts_act_ksz"], results["coverage"]
    ok = lambda flag: "yes" if flag else "**no**"  # noqa: E731
    per_param = ", ".join(f"{k} {v['68']:.2f}" for k, v in c["per_parameter"].items())
    rows = [
        "| measure | value | target | met |", "|---|---|---|---|",
        f"| (a) jitted log posterior, median per call | {t['log_posterior_ms_median']:.3f} ms | <= 1 ms | "
        f"{ok(t['log_posterior_ms_median'] <= 1.0)} |",
        f"| (a) value and gradient, median per call | {t['value_and_grad_ms_median']:.3f} ms | - | - |",
        f"| (b) NUTS, 4 chains x ({n['warmup']} + {n['draws']}), wall incl. compilation | "
        f"{n['wall_seconds_with_compilation']:.0f} s | <= 120 s | {ok(n['wall_seconds_with_compilation'] <= 120)} |",
        f"| (b) max R-hat | {n['r_hat_max']:.4f} | <= 1.01 | {ok(n['r_hat_max'] <= 1.01)} |",
        f"| (c) 68% coverage over {c['simulations']} sims x 4 parameters | {c['coverage_68']:.3f} | 0.68 +- 0.07 | "
        f"{ok(abs(c['coverage_68'] - 0.68) <= 0.07)} |",
        f"| (c) 95% coverage | {c['coverage_95']:.3f} | 0.95 +- 0.07 | {ok(abs(c['coverage_95'] - 0.95) <= 0.07)} |",
    ]
    text = [
        "## Observables: CAP likelihood, NUTS on ACT DR5 x CMASS kSZ, coverage\n",
        "Emulator of CAMELS LH-TNG `rho` (all mass bins, 10% of simulations held out, seed 0, "
        f"{results['sizes']['members']} members, {results['sizes']['epochs']} epochs, trained in "
        f"{results['train_seconds']:.0f} s). Likelihood: kSZ f150, CMASS mass distribution (bins "
        f"{', '.join(f'{d:.2f}' for d in results['mass_outside_dex'])} dex outside the training range), "
        "Omega_m = 0.3 and sigma_8 = 0.8 fixed, data + linearised emulator covariance. Times on this "
        "shared CPU (other jobs running).\n",
        "\n".join(rows) + "\n",
        f"Coverage data: the held-out simulations' own rho profiles (two lower mass bins) through the same "
        f"forward model (D_A at each simulation's Omega_m, held fixed there in its posterior), noise = ACT kSZ covariance x {c['noise_scale']}^2 (median S/N {c['median_snr']:.0f}; against "
        f"the ACT covariance itself these low-mass CAPs have S/N {c['median_snr'] * c['noise_scale']:.1f} and the "
        "posteriors would be the prior). 2 chains x "
        f"({results['sizes']['warmup']} + {results['sizes']['draws']}) per simulation, median of the max R-hat "
        f"{c['r_hat_max_median']:.3f}. "
        f"Per parameter 68%: {per_param}.\n",
    ]
    return "\n".join(text)
