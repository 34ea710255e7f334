"""Which parameters matter: automatic relevance determination (ARD) for the network's inputs.

A suite of tens of parameters of which a handful act, observed through a few hundred
noisy halos, is where a neural network overfits: it has to learn from the data which
inputs to ignore, and the noise gives it spurious reasons not to. A Gaussian process
with one length scale per input learns exactly that by maximising its marginal
likelihood (Bayesian Occam's razor): an input the profiles do not depend on gets a
length scale at the upper bound (MacKay 1992; Neal 1996).

:func:`fit_relevance` fits such a GP on at most ``max_rows`` training rows and turns its
length scales ``l_j`` into input weights ``w_j = min(l) / l_j`` (the most relevant
parameter has weight 1, an irrelevant one ~1e-3): the Transforms multiply each
standardised parameter by its weight, so the network starts from the GP's metric of the
parameter space and weight decay keeps it near it. :func:`ard_weights` returns the
weights of such a fit and caches them: they are fitted once per run, on the run's
training rows, and reused by every cross-validation fold and the refit
(:func:`profemu.train.builder.fold_problems`).

The fit is the kernel of :class:`profemu.baselines.GPBaseline` (``s RBF(l_1..l_d) + n`` on
its standardised inputs: the parameters, log10 mass and, where present, the P(k)
components and the redshift; :func:`profemu.baselines.gp.gp_neg_log_marginal_likelihood`),
shared by the outputs, made cheap in three ways:

* **Outputs**: the ``components`` (default 5) leading principal components of the
  standardised log10 profile columns, not the ``F * n_r`` columns themselves. With one
  kernel shared by the outputs, the marginal likelihood of the columns equals that of
  all their (unwhitened) principal components, so this drops only the components of
  least variance, which a few hundred noisy halos fill with noise. The components are
  scaled together (not one by one) to a mean variance of 1.
* **Optimiser**: one start (length scales ``max(1, sqrt(d)/2)``, noise 1e-2; the second
  start of ``GPBaseline``, length scales ``2 sqrt(d)`` and noise 0.2, only when the first
  ends with everything explained as noise or fails), L-BFGS-B with at most ``maxiter``
  (60) iterations and relative tolerance ``ftol`` (1e-5: a change of ~6e-3 in a log
  marginal likelihood of -600 stops it). On the hard mock the cap can bind; the log
  marginal likelihood then ends within 0.3 of that of the converged search (300
  iterations, ``ftol`` 1e-7), with the same parameters above weight 0.05.
* **Threads**: one BLAS thread during the fit. At N = 500 rows one evaluation of the
  marginal likelihood and its gradient (Cholesky, inverse, O(N^3)) took 15 ms on one
  core and 21-24 ms with OpenBLAS's two threads on a 2-core machine; with the cores busy
  with other work, OpenBLAS's threads wait on each other and the same evaluation took
  0.15-0.33 s.

On the 35-parameter hard mock with 600 rows (500 fitted) this fit took 1.1-1.6 s (57-72
evaluations) on that 2-core machine under load, where the previous one (``GPBaseline`` on
all 30 columns, two starts of up to 300 iterations, ``ftol`` 1e-7, 284 evaluations, BLAS's
default threads) took 13 s with little other load and 30-210 s with more. The weights
agree with it (rank correlation 0.96 of the length scales; the previous fit on another
choice of 500 of the 600 rows agreed with itself to 0.70; the same 10 parameters above
0.05), and the emulators trained with either are equally accurate against the noiseless
truth (``benchmarks/relevance_cost.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError

__all__ = [
    "ARD_COMPONENTS",
    "ARD_FTOL",
    "ARD_MAXITER",
    "ARD_MAX_ROWS",
    "AUTO_MAX_ROWS",
    "AUTO_MIN_PARAMS",
    "RelevanceFit",
    "ard_weights",
    "fit_relevance",
    "leading_components",
    "one_blas_thread",
    "optimise_kernel",
    "uses_relevance",
]

logger = logging.getLogger(__name__)

#: ``data.input_relevance = "auto"`` weights the parameters of suites with at least this many
#: parameters and at most :data:`AUTO_MAX_ROWS` training rows.
AUTO_MIN_PARAMS = 10
AUTO_MAX_ROWS = 5000
#: The relevance GP sees at most this many (seeded, random) training rows by default
#: (``data.relevance_rows``).
ARD_MAX_ROWS = 500
#: Leading principal components of the standardised log10 profiles the GP fits.
ARD_COMPONENTS = 5
#: L-BFGS-B iteration limit and relative tolerance on the marginal likelihood.
ARD_MAXITER = 60
ARD_FTOL = 1e-5

#: Smallest input weight (a parameter the profiles do not depend on, or a constant one).
WEIGHT_FLOOR = 1e-6

# Bounds of the kernel's hyper-parameters: those of GPBaseline (standardised inputs, outputs
# of mean variance 1).
AMPLITUDE_BOUNDS = (1e-3, 1e3)
LENGTH_SCALE_BOUNDS = (1e-2, 1e3)
NOISE_BOUNDS = (1e-8, 1.0)
_STATUS = {0: "converged", 1: "iteration limit", 2: "stopped early"}

#: Weights of the last few distinct fits, by a digest of everything they depend on: the
#: same rows fitted again in one process (diagnostic probes, sweep trials, resumed runs)
#: reuse them instead of refitting the GP.
_CACHE: OrderedDict[str, tuple[np.ndarray, dict[str, float]]] = OrderedDict()
_CACHE_SIZE = 8


@dataclass(frozen=True)
class RelevanceFit:
    """The outcome of :func:`fit_relevance`.

    Attributes:
        weights: Input weight of each parameter [p], in (0, 1]; 1 for the most relevant.
        length_scales: ARD length scale of each GP input (parameters, ``log10_mass``, P(k)
            components, redshift) [standardised input units].
        rows: Training rows the GP was fitted on.
        inputs: Number of GP inputs ``d``.
        columns: Standardised log10 profile columns ``F * n_r`` the components summarise.
        components: Principal components fitted (the GP's outputs).
        explained: Fraction of the standardised column variance those components hold.
        log_ml: Log marginal likelihood at the optimum (of the scaled components).
        noise: Fitted white-noise variance (outputs of mean variance 1).
        evaluations: Marginal-likelihood evaluations (with gradient) over all starts.
        iterations: L-BFGS-B iterations over all starts.
        starts: Optimiser starts run (1, or 2 when the first ended in the noise optimum).
        status: Optimiser status of the kept start (``converged``, ``iteration limit``,
            ``stopped early``).
        seconds: Wall time of the fit, design included [s].
    """

    weights: np.ndarray
    length_scales: dict[str, float]
    rows: int
    inputs: int
    columns: int
    components: int
    explained: float
    log_ml: float
    noise: float
    evaluations: int
    iterations: int
    starts: int
    status: str
    seconds: float

    def summary(self) -> str:
        """What was fitted and how long it took, in words (the log line's head)."""
        return (f"ARD GP on {self.rows} rows: {self.components} leading PCA components "
                f"({100 * self.explained:.1f}% of the variance) of {self.columns} standardised log10 "
                f"profile columns, {self.inputs} inputs; {self.evaluations} evaluations, "
                f"{self.starts} start{'s' if self.starts > 1 else ''} ({self.status}), "
                f"{self.seconds:.1f} s")


def _digest(ds: ProfileDataset, fields: tuple[str, ...], seed: int, max_rows: int,
            options: tuple[int, int, float]) -> str:
    h = hashlib.sha256(repr((ds.param_names, ds.log_params, fields, seed, max_rows, options)).encode())
    for a in (ds.params, ds.log10_mass, *(ds.profiles[f] for f in fields), *(ds.mask[f] for f in fields)):
        h.update(np.ascontiguousarray(a).tobytes())
    for extra in (ds.pk_ratio, ds.redshift):
        if extra is not None:
            h.update(np.ascontiguousarray(extra).tobytes())
    if ds.noise is not None:
        for f in fields:
            if f in ds.noise:
                h.update(np.ascontiguousarray(ds.noise[f]).tobytes())
    return h.hexdigest()


def uses_relevance(mode: str, ds: ProfileDataset) -> bool:
    """Whether ``data.input_relevance = mode`` weights the parameters of ``ds``."""
    if mode == "ard":
        return True
    if mode == "off":
        return False
    return len(ds.param_names) >= AUTO_MIN_PARAMS and ds.n <= AUTO_MAX_ROWS


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread inside the block (threadpoolctl, restored on exit); a no-op without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def leading_components(target: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """The ``k`` leading principal components [N, k] of ``target`` [N, D], scaled together to a
    mean variance of 1, and the fraction of the variance they hold."""
    centred = target - target.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(k, vt.shape[0])
    total = float(np.sum(s**2))
    z = centred @ vt[:k].T
    power = float(np.mean(z**2))
    if not total > 0 or not power > 0:
        raise DataError("input relevance: the training profiles do not vary; nothing to fit the GP on.")
    return z / math.sqrt(power), float(np.sum(s[:k] ** 2)) / total


def optimise_kernel(x: np.ndarray, y: np.ndarray, *, maxiter: int = ARD_MAXITER, ftol: float = ARD_FTOL,
                    fallback: bool = True) -> tuple[Any, int, int, int]:
    """Maximum marginal likelihood of the ARD kernel ``s RBF(l_1..l_d) + n`` on ``x`` [N, d], ``y`` [N, k].

    L-BFGS-B in log space with the analytic gradient
    (:func:`profemu.baselines.gp.gp_neg_log_marginal_likelihood`), GPBaseline's bounds, one
    BLAS thread. The first start has length scales ``max(1, sqrt(d)/2)`` and noise 1e-2; with
    ``fallback``, a second one (length scales ``2 sqrt(d)``, noise 0.2) runs only when the first
    ends with everything explained as noise or fails.

    Returns:
        ``(result, evaluations, iterations, starts)``: the best scipy ``OptimizeResult`` (its ``x``
        is ``log [s, l_1..l_d, n]``; None when every start failed) and the optimiser's counts.
    """
    from scipy.optimize import minimize

    from profemu.baselines.gp import gp_neg_log_marginal_likelihood

    d = x.shape[1]
    bounds = np.log(np.array([AMPLITUDE_BOUNDS, *[LENGTH_SCALE_BOUNDS] * d, NOISE_BOUNDS]))
    root = math.sqrt(d)
    starts = [np.log(np.r_[1.0, np.full(d, ls), noise]) for ls, noise in
              ((max(1.0, 0.5 * root), 1e-2), (2.0 * root, 0.2))][: 2 if fallback else 1]
    best = None
    evaluations = iterations = tried = 0
    with one_blas_thread(), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for theta0 in starts:
            res = minimize(gp_neg_log_marginal_likelihood, np.clip(theta0, *bounds.T), args=(x, y),
                           jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": maxiter, "ftol": ftol})
            tried += 1
            evaluations += int(res.nfev)
            iterations += int(res.nit)
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
            # the second start only when the first explained everything as noise or failed
            if best is not None and best.x[-1] < bounds[-1, 1] - 1e-3:
                break
    return best, evaluations, iterations, tried


def fit_relevance(ds: ProfileDataset, fields: tuple[str, ...], *, seed: int = 0,
                  max_rows: int = ARD_MAX_ROWS, components: int = ARD_COMPONENTS,
                  maxiter: int = ARD_MAXITER, ftol: float = ARD_FTOL) -> RelevanceFit:
    """Fit the relevance GP on (up to ``max_rows`` of) ``ds``; no cache, no log line.

    Args:
        ds: Training rows.
        fields: The fields the emulator learns (their columns are summarised together).
        seed: Seed of the row subsample (the fit itself is deterministic).
        max_rows: Rows the GP sees at most (a seeded random subset when there are more).
        components: Leading principal components of the standardised log10 profiles fitted.
        maxiter: L-BFGS-B iteration limit per start.
        ftol: L-BFGS-B relative tolerance on the marginal likelihood.

    Returns:
        A :class:`RelevanceFit`.

    Raises:
        ConfigError: ``max_rows < 5``, ``components < 1``, ``maxiter < 1`` or ``ftol`` not in (0, 1).
        DataError: unknown fields, fewer than 5 rows, constant profiles, or a kernel matrix
            singular from every start.
    """
    from profemu.baselines.base import _check_fit_data, _Design

    if max_rows < 5 or components < 1 or maxiter < 1 or not 0 < ftol < 1:
        raise ConfigError(f"input relevance: max_rows={max_rows} (>= 5), components={components} (>= 1), "
                          f"maxiter={maxiter} (>= 1), ftol={ftol} (in (0, 1)).")
    t0 = time.perf_counter()
    rows = np.arange(ds.n)
    if ds.n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(ds.n, max_rows, replace=False))
    sub = ds.subset(rows)
    _check_fit_data(sub, fields, "input relevance")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = _Design(sub, fields, pca=False)
    x = design.x
    y, explained = leading_components(design.target, components)
    d = x.shape[1]
    best, evaluations, iterations, tried = optimise_kernel(x, y, maxiter=maxiter, ftol=ftol)
    if best is None:
        raise DataError("input relevance: the GP's kernel matrix was singular from every start; "
                        "remove duplicate input rows or set data.input_relevance: off.")
    ell = np.exp(best.x[1:-1])
    p = len(ds.param_names)
    # a parameter constant over these rows (a fixed column of an SB suite) keeps its starting length
    # scale: it carries no information, gets the floor weight and does not set the scale of the others
    varying = np.ptp(x[:, :p], axis=0) > 0
    shortest = ell[:p][varying].min() if varying.any() else 1.0
    weights = np.where(varying, np.clip(shortest / ell[:p], WEIGHT_FLOOR, 1.0), WEIGHT_FLOOR)
    return RelevanceFit(
        weights=weights,
        length_scales={name: float(v) for name, v in zip(design.input_names, ell, strict=True)},
        rows=int(rows.size), inputs=d, columns=int(design.target.shape[1]), components=int(y.shape[1]),
        explained=explained, log_ml=-float(best.fun), noise=float(np.exp(best.x[-1])),
        evaluations=evaluations, iterations=iterations, starts=tried,
        status=_STATUS.get(int(best.status), "stopped early"), seconds=time.perf_counter() - t0)


def ard_weights(ds: ProfileDataset, fields: tuple[str, ...], *, seed: int = 0,
                max_rows: int = ARD_MAX_ROWS, components: int = ARD_COMPONENTS,
                maxiter: int = ARD_MAXITER, ftol: float = ARD_FTOL
                ) -> tuple[np.ndarray, dict[str, float]]:
    """Per-parameter input weights from an ARD GP fitted on ``ds`` (the training rows).

    :func:`fit_relevance`, cached by a digest of the rows and the options, with one INFO line
    on what was fitted, how long it took and which parameters kept a weight >= 0.05.

    Args:
        ds: Training rows.
        fields: The fields the emulator learns.
        seed: Seed of the row subsample.
        max_rows: Rows the GP sees at most.
        components: Leading principal components of the standardised log10 profiles fitted.
        maxiter: L-BFGS-B iteration limit per start.
        ftol: L-BFGS-B relative tolerance on the marginal likelihood.

    Returns:
        ``(weights [p] in (0, 1], length scales by GP input name)``.
    """
    key = _digest(ds, tuple(fields), seed, max_rows, (components, maxiter, ftol))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        weights, scales = _CACHE[key]
        logger.info("input relevance: the weights already fitted on these %d rows", ds.n)
        return weights.copy(), dict(scales)
    logger.info("input relevance: fitting an ARD GP on up to %d of %d training rows, %d parameters "
                "(data.input_relevance: off skips it) ...", max_rows, ds.n, len(ds.param_names))
    fit = fit_relevance(ds, tuple(fields), seed=seed, max_rows=max_rows, components=components,
                        maxiter=maxiter, ftol=ftol)
    kept = [f"{n} {w:.2g}" for n, w in sorted(zip(ds.param_names, fit.weights, strict=True), key=lambda x: -x[1])
            if w >= 0.05]
    logger.info("input relevance (%s; once per run, data.input_relevance: off skips it): %d of %d parameters "
                "with weight >= 0.05: %s", fit.summary(), len(kept), fit.weights.size, ", ".join(kept))
    _CACHE[key] = (fit.weights.copy(), dict(fit.length_scales))
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fit.weights.copy(), dict(fit.length_scales)
