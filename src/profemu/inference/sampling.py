"""Posterior sampling with NUTS (BlackJAX), maximum a posteriori fits, and their results.

* :func:`sample_posterior` — NUTS with Stan-style window adaptation (step size and a
  diagonal mass matrix), several chains in parallel (``jax.vmap``), each started at a
  different random point; split R-hat and bulk ESS per parameter
  (:mod:`profemu.inference.diagnostics`); :class:`ConvergenceError` when they fail.
* :func:`sample_posterior_batch` — the same for a batch of log posteriors of one
  shape (e.g. many observations) at once: one compiled program, vectorised across
  the batch and the chains.
* :func:`find_map` — the maximum of the log posterior by L-BFGS-B (scipy, JAX
  gradients) from several starts in the prior box.

Sampling runs in an unbounded coordinate ``u`` per parameter, ``theta = lo + (hi - lo)
sigmoid(u)``, with the log-Jacobian added, so the hard walls of the uniform prior do
not stop the trajectories; samples are reported in sampling space (``theta``) and as
physical values.

BlackJAX is an optional dependency: ``pip install "profemu[inference]"``.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import atomic_write_text
from profemu.errors import DataError, ProfemuError
from profemu.inference.diagnostics import ess_bulk, split_rhat
from profemu.inference.likelihood import LogPosterior, ParameterSpace

__all__ = [
    "ESS_MIN",
    "QUANTILES",
    "R_HAT_MAX",
    "ConvergenceError",
    "MapResult",
    "Posterior",
    "find_map",
    "sample_posterior",
    "sample_posterior_batch",
]

R_HAT_MAX = 1.05
"""Largest split R-hat of a converged posterior (every parameter)."""
ESS_MIN = 100.0
"""Smallest bulk effective sample size of a converged posterior (every parameter)."""

logger = logging.getLogger("profemu.inference")

#: Quantiles reported by :meth:`Posterior.summary`.
QUANTILES: tuple[float, ...] = (0.025, 0.16, 0.5, 0.84, 0.975)


class ConvergenceError(ProfemuError, RuntimeError):
    """The chains disagree (R-hat too large) or carry too little information (ESS too small)."""


def _require_blackjax() -> Any:
    try:
        import blackjax
    except ImportError:
        raise ProfemuError(
            "NUTS sampling needs BlackJAX, which is not installed; install the extra with "
            "pip install 'profemu[inference]'."
        ) from None
    return blackjax


# ------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class Posterior:
    """Posterior draws of the free parameters and their diagnostics.

    Attributes:
        space: The parameter space (names, log flags, box, fixed values).
        samples: [chains, draws, k] in sampling space (log10 for log-sampled parameters).
        r_hat: [k] rank-normalised split R-hat.
        ess: [k] bulk effective sample size.
        divergences: Number of divergent transitions after warm-up.
        info: Sampler settings and statistics (chains, warm-up, draws, seed, step sizes,
            mean acceptance, mean integration steps, seconds).
    """

    space: ParameterSpace
    samples: np.ndarray
    r_hat: np.ndarray
    ess: np.ndarray
    divergences: int
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Free parameter names (the last axis of :attr:`samples`)."""
        return self.space.free

    @property
    def flat(self) -> np.ndarray:
        """[chains * draws, k] draws in sampling space."""
        return self.samples.reshape(-1, self.samples.shape[-1])

    @property
    def physical(self) -> np.ndarray:
        """[chains * draws, k] draws as physical values (linear, as in the training data)."""
        return np.asarray(self.space.to_physical(self.flat))

    def converged(self, *, rhat_max: float = R_HAT_MAX, ess_min: float = ESS_MIN) -> bool:
        """Whether every parameter has R-hat <= ``rhat_max`` and ESS >= ``ess_min``."""
        return bool(np.all(self.r_hat <= rhat_max) and np.all(self.ess >= ess_min))

    def check(self, *, rhat_max: float = R_HAT_MAX, ess_min: float = ESS_MIN) -> Posterior:
        """Raise :class:`ConvergenceError` (numbers and fix in the message) unless converged."""
        if self.converged(rhat_max=rhat_max, ess_min=ess_min):
            return self
        bad = [f"{n} (R-hat {r:.3f}, ESS {e:.0f})" for n, r, e in zip(self.names, self.r_hat, self.ess, strict=True)
               if not (r <= rhat_max and e >= ess_min)]
        raise ConvergenceError(
            f"NUTS did not converge: {'; '.join(bad)} (need R-hat <= {rhat_max} and ESS >= {ess_min:g}; "
            f"{self.divergences} divergent transitions). Rerun with more warm-up and draws, e.g. "
            f"warmup={2 * int(self.info.get('warmup', 1000))}, draws={2 * int(self.info.get('draws', 1000))}, "
            "or fix parameters the data do not constrain."
        )

    def summary(self) -> dict[str, Any]:
        """Per parameter: mean, std, quantiles (2.5/16/50/84/97.5%), r_hat, ess.

        Values are physical (linear, as in the training data); log-sampled parameters also
        carry the same statistics of log10 of the value under ``"log10"``.
        """
        out: dict[str, Any] = {}
        phys = self.physical
        for j, name in enumerate(self.names):
            entry = _stats(phys[:, j])
            entry.update({"r_hat": float(self.r_hat[j]), "ess": float(self.ess[j])})
            if self.space.is_log[j]:
                entry["log10"] = _stats(self.flat[:, j])
            out[name] = entry
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Write one column per free parameter (physical values), one row per draw, atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.names)
        for row in self.physical:
            writer.writerow([repr(float(v)) for v in row])
        return atomic_write_text(Path(path), buf.getvalue())


def _stats(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, QUANTILES)
    return {
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)),
        **{f"q{100 * p:g}": float(v) for p, v in zip(QUANTILES, q, strict=True)},
    }


@dataclass(frozen=True)
class MapResult:
    """The maximum a posteriori point.

    Attributes:
        theta: [k] in sampling space.
        values: Name -> physical value of every free parameter.
        log_posterior: The log posterior there.
        success: Whether the best start's optimiser reported convergence.
        starts: Number of starts run.
    """

    theta: np.ndarray
    values: dict[str, float]
    log_posterior: float
    success: bool
    starts: int


# ------------------------------------------------------------------ NUTS
def _check_settings(chains: int, warmup: int, draws: int) -> None:
    for name, value, low in (("chains", chains, 1), ("warmup", warmup, 10), ("draws", draws, 10)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise DataError(f"{name}: {value!r} must be an integer >= {low}.")


def _make_program(core: Any, warmup: int, chunk: int, depth: int) -> tuple[Any, Any]:
    """Jitted (warm-up, sample-chunk) programs vectorised over [observation, chain].

    Cached on the log-posterior function itself (freed with it), so repeated runs and
    batches of observations built with ``LogPosterior.with_observation`` compile once.
    """
    cache = core.__dict__.setdefault("_profemu_nuts_programs", {})
    if (warmup, chunk, depth) not in cache:
        cache[(warmup, chunk, depth)] = _compile_program(core, warmup, chunk, depth)
    return cache[(warmup, chunk, depth)]


def _compile_program(core: Any, warmup: int, chunk: int, depth: int) -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp

    blackjax = _require_blackjax()
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    def logdensity_u(u: Any, data: Any) -> Any:
        lo, hi = data["lower"], data["upper"]
        s = jax.nn.sigmoid(u)
        theta = lo + (hi - lo) * s
        log_jac = jnp.sum(jnp.log(hi - lo) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u))
        lp = core(theta, data)[0]
        return jnp.where(jnp.isfinite(lp), lp + log_jac, -jnp.inf)

    def warm_one(key: Any, u0: Any, data: Any) -> Any:
        wa = blackjax.window_adaptation(
            blackjax.nuts, lambda u: logdensity_u(u, data), adaptation_info_fn=get_filter_adapt_info_fn(),
            max_num_doublings=depth,
        )
        (state, params), _ = wa.run(key, u0, num_steps=warmup)
        return state, params["step_size"], params["inverse_mass_matrix"]

    def sample_one(key: Any, state: Any, step_size: Any, inv_mass: Any, data: Any) -> Any:
        kernel = blackjax.nuts(lambda u: logdensity_u(u, data), step_size=step_size, inverse_mass_matrix=inv_mass,
                               max_num_doublings=depth)

        def step(s: Any, k: Any) -> Any:
            s, info = kernel.step(k, s)
            return s, (s.position, info.is_divergent, info.acceptance_rate, info.num_integration_steps)

        return jax.lax.scan(step, state, jax.random.split(key, chunk))

    warm = jax.jit(jax.vmap(jax.vmap(warm_one, in_axes=(0, 0, None)), in_axes=(0, 0, 0)))
    sample = jax.jit(jax.vmap(jax.vmap(sample_one, in_axes=(0, 0, 0, 0, None)), in_axes=(0, 0, 0, 0, 0)))
    return warm, sample


def sample_posterior_batch(
    log_posteriors: Sequence[LogPosterior],
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    init: np.ndarray | None = None,
    check: bool = False,
    rhat_max: float = R_HAT_MAX,
    ess_min: float = ESS_MIN,
    max_tree_depth: int = 10,
) -> list[Posterior]:
    """NUTS for a batch of log posteriors of one structure, in one program vectorised across them.

    Unlike :func:`sample_posterior` (one log posterior, checked by default), this takes
    many log posteriors that share emulator, options and observation shape (e.g. mock
    observations for a coverage test) and samples them all in one compiled call; the
    convergence check is off by default.

    Args:
        log_posteriors: From :func:`~profemu.inference.likelihood.make_log_posterior` with
            the same emulator, options and observation shape (e.g. via
            ``LogPosterior.with_observation``).
        chains: Chains per posterior (each adapts its own step size and mass matrix).
        warmup: Warm-up (adaptation) steps per chain, discarded.
        draws: Kept draws per chain.
        seed: Seed of the initial points and of the sampler.
        init: Optional starting points in sampling space, [k], [chains, k] or
            [n_posteriors, chains, k]; default: random, uniform in the central 76% of
            the box (``|u| < 2`` in the unbounded coordinate), different per chain.
        check: Raise :class:`ConvergenceError` for any posterior that fails.
        rhat_max: R-hat threshold of the check.
        ess_min: ESS threshold of the check.
        max_tree_depth: Most trajectory doublings per NUTS step (at most ``2**depth - 1``
            leapfrog steps). Vectorised chains wait for the longest trajectory of the
            batch, so small batches of posteriors are usually faster than large ones.

    Returns:
        One :class:`Posterior` per log posterior, in order.
    """
    _check_settings(chains, warmup, draws)
    if isinstance(max_tree_depth, bool) or not isinstance(max_tree_depth, int) or not 1 <= max_tree_depth <= 15:
        raise DataError(f"max_tree_depth: {max_tree_depth!r} must be an integer in [1, 15].")
    if not log_posteriors:
        return []
    first = log_posteriors[0]
    if any(lp.structure != first.structure for lp in log_posteriors[1:]):
        raise DataError(
            "log_posteriors: differ in emulator, options or observation shape; sample them separately "
            "(or build them with LogPosterior.with_observation)."
        )
    u0 = _initial_u(first.space, len(log_posteriors), chains, seed, init)
    run = _run_nuts(log_posteriors, u0, warmup=warmup, draws=draws, seed=seed, max_tree_depth=max_tree_depth)
    settings = {"chains": chains, "warmup": warmup, "draws": draws, "seed": int(seed),
                "max_tree_depth": max_tree_depth}
    out = []
    for i, lp in enumerate(log_posteriors):
        post = _posterior(lp, run, i, settings)
        if check:
            post.check(rhat_max=rhat_max, ess_min=ess_min)
        out.append(post)
    logger.info("NUTS: done in %.1f s (max R-hat %.3f, min ESS %.0f)", run.seconds,
                max(float(p.r_hat.max()) for p in out), min(float(p.ess.min()) for p in out))
    return out


def _initial_u(space: ParameterSpace, n_obs: int, chains: int, seed: int, init: np.ndarray | None) -> np.ndarray:
    """Starting points [n_obs, chains, k] in the unbounded coordinate ``u``: random in
    ``|u| < 2``, or ``init`` (sampling space, broadcast) mapped into the box."""
    lo, hi = space.lower, space.upper
    rng = np.random.default_rng(seed)
    if init is None:
        return rng.uniform(-2.0, 2.0, size=(n_obs, chains, space.dim))
    theta0 = np.broadcast_to(np.asarray(init, dtype=float), (n_obs, chains, space.dim))
    frac = np.clip((theta0 - lo) / (hi - lo), 1e-4, 1 - 1e-4)
    return np.log(frac) - np.log1p(-frac)


@dataclass(frozen=True)
class _NutsRun:
    """Raw output of one batched NUTS run.

    Attributes:
        theta: [n_obs, chains, draws, k] draws in sampling space.
        divergent, acceptance, steps: [n_obs, chains, draws] per-transition statistics.
        step_size: [n_obs, chains] adapted step sizes.
        seconds: Wall time of warm-up and sampling.
        warmup_seconds: Wall time of the warm-up.
    """

    theta: np.ndarray
    divergent: np.ndarray
    acceptance: np.ndarray
    steps: np.ndarray
    step_size: Any
    seconds: float
    warmup_seconds: float


def _run_nuts(
    log_posteriors: Sequence[LogPosterior], u0: np.ndarray, *, warmup: int, draws: int, seed: int,
    max_tree_depth: int,
) -> _NutsRun:
    """Warm up and sample every chain of every log posterior (one structure) from ``u0``, in chunks."""
    import jax
    import jax.numpy as jnp

    first = log_posteriors[0]
    n_obs, chains, k = u0.shape
    data = {key: jnp.asarray(np.stack([np.asarray(lp.data[key]) for lp in log_posteriors]))
            for key in first.data}
    lo, hi = first.space.lower, first.space.upper
    chunk = int(min(draws, max(50, draws // 4)))
    n_chunks = -(-draws // chunk)
    warm, sample = _make_program(first._core, warmup, chunk, max_tree_depth)
    key = jax.random.key(int(seed))
    k_warm, k_draw = jax.random.split(key)
    t0 = time.perf_counter()
    logger.info("NUTS: warm-up of %d step(s) for %d posterior(s) x %d chain(s) (%d parameters)",
                warmup, n_obs, chains, k)
    warm_keys = jax.random.split(k_warm, n_obs * chains).reshape(n_obs, chains)
    state, step_size, inv_mass = warm(warm_keys, jnp.asarray(u0, dtype=jnp.float32), data)
    jax.block_until_ready(step_size)
    t_warm = time.perf_counter() - t0
    logger.info("NUTS: warm-up done in %.1f s; drawing %d sample(s) per chain", t_warm, draws)
    positions, divergent, accept, steps = [], [], [], []
    for c in range(n_chunks):
        keys = jax.random.split(jax.random.fold_in(k_draw, c), n_obs * chains).reshape(n_obs, chains)
        state, (pos, div, acc, nst) = sample(keys, state, step_size, inv_mass, data)
        positions.append(np.asarray(pos))
        divergent.append(np.asarray(div))
        accept.append(np.asarray(acc))
        steps.append(np.asarray(nst))
        logger.info("NUTS: %d/%d draws per chain (%.1f s)", min((c + 1) * chunk, draws), draws,
                    time.perf_counter() - t0)
    u = np.concatenate(positions, axis=2)[:, :, :draws]  # [n_obs, chains, draws, k]
    div_all = np.concatenate(divergent, axis=2)[:, :, :draws]
    acc_all = np.concatenate(accept, axis=2)[:, :, :draws]
    steps_all = np.concatenate(steps, axis=2)[:, :, :draws]
    seconds = time.perf_counter() - t0
    theta = lo + (hi - lo) / (1.0 + np.exp(-u.astype(np.float64)))
    return _NutsRun(theta=theta, divergent=div_all, acceptance=acc_all, steps=steps_all, step_size=step_size,
                    seconds=seconds, warmup_seconds=t_warm)


def _posterior(lp: LogPosterior, run: _NutsRun, i: int, settings: Mapping[str, Any]) -> Posterior:
    """The :class:`Posterior` of the ``i``-th log posterior of a batched run, with its diagnostics."""
    s = run.theta[i]
    k = s.shape[-1]
    n_obs = run.theta.shape[0]
    r_hat = np.array([split_rhat(s[:, :, j]) for j in range(k)])
    ess = np.array([ess_bulk(s[:, :, j]) for j in range(k)])
    return Posterior(
        space=lp.space, samples=s, r_hat=r_hat, ess=ess, divergences=int(run.divergent[i].sum()),
        info={
            "sampler": "NUTS (blackjax window adaptation, diagonal mass matrix)",
            **settings,
            "step_size": np.asarray(run.step_size[i], dtype=float).tolist(),
            "mean_acceptance": float(run.acceptance[i].mean()),
            "mean_integration_steps": float(run.steps[i].mean()),
            "seconds": run.seconds / n_obs, "batch_seconds": run.seconds, "warmup_seconds": run.warmup_seconds,
            "batch_size": n_obs,
        },
    )


def sample_posterior(
    log_posterior: LogPosterior,
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    init: np.ndarray | None = None,
    check: bool = True,
    rhat_max: float = R_HAT_MAX,
    ess_min: float = ESS_MIN,
    max_tree_depth: int = 10,
) -> Posterior:
    """Sample one log posterior with NUTS (see :func:`sample_posterior_batch` for the arguments).

    Raises:
        ConvergenceError: with ``check`` (default), when any parameter has R-hat >
            ``rhat_max`` or bulk ESS < ``ess_min``; the message gives the numbers and the fix.
        ProfemuError: BlackJAX is not installed (the message names the extra).
    """
    init_b = None if init is None else np.asarray(init, dtype=float)[None]
    return sample_posterior_batch([log_posterior], chains=chains, warmup=warmup, draws=draws, seed=seed,
                                  init=init_b, check=check, rhat_max=rhat_max, ess_min=ess_min,
                                  max_tree_depth=max_tree_depth)[0]


# ------------------------------------------------------------------ MAP
def find_map(
    log_posterior: LogPosterior,
    *,
    starts: int = 8,
    seed: int = 0,
    maxiter: int = 500,
) -> MapResult:
    """Maximum a posteriori point by L-BFGS-B inside the prior box, from several starts.

    The first start is the centre of the box, the others a seeded Latin hypercube in
    the box; the best end point wins.

    Args:
        log_posterior: The log posterior.
        starts: Number of starts (>= 1).
        seed: Seed of the start points.
        maxiter: Iterations per start.
    """
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize
    from scipy.stats import qmc

    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise DataError(f"starts: {starts!r} must be an integer >= 1.")
    space = log_posterior.space
    fn = log_posterior.fn
    value_and_grad = jax.jit(jax.value_and_grad(lambda t: -fn(t)))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = value_and_grad(jnp.asarray(theta, dtype=jnp.float32))
        v, g = float(v), np.asarray(g, dtype=float)
        if not np.isfinite(v):
            return 1e30, np.zeros_like(theta)
        return v, np.nan_to_num(g)

    lo, hi = space.lower, space.upper
    points = [space.center]
    if starts > 1:
        unit = qmc.LatinHypercube(d=space.dim, rng=np.random.default_rng(seed)).random(starts - 1)
        points.extend(lo + unit * (hi - lo))
    best = None
    logger.info("MAP: L-BFGS-B from %d start(s) in %d dimension(s)", starts, space.dim)
    for x0 in points:
        res = minimize(objective, np.asarray(x0, dtype=float), jac=True, method="L-BFGS-B",
                       bounds=list(zip(lo, hi, strict=True)), options={"maxiter": maxiter})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    theta = np.clip(np.asarray(best.x, dtype=float), lo, hi)
    phys = np.asarray(space.to_physical(theta))
    return MapResult(theta=theta, values={n: float(v) for n, v in zip(space.free, phys, strict=True)},
                     log_posterior=float(-best.fun), success=bool(best.success), starts=starts)
