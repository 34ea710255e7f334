"""Fit the GP beside the network (:class:`profemu.emulator.blend.GPBlend`) on a run's training rows.

Steps, all on the training rows and out of sample:

1. Inputs: the emulator's normalised input blocks (the network's own view: relevance-weighted
   parameters, log10 mass, P(k) components, redshift, features), concatenated; outputs: the
   standardised log10 profiles (0 where masked).
2. Kernel ``s RBF(l_1..l_d) + n``: maximum marginal likelihood (L-BFGS-B, analytic gradient,
   :func:`profemu.baselines.gp.gp_neg_log_marginal_likelihood`) on at most
   :data:`HYPER_ROWS` seeded rows and the leading :data:`HYPER_COMPONENTS` principal
   components of the outputs (one kernel is shared by every column), one BLAS thread.
3. Condition on every training row (at most :data:`~profemu.emulator.blend.MAX_ROWS`) and
   every column; the closed-form leave-one-simulation-out means (the block form of
   Rasmussen & Williams 2006, eq. 5.12) are the GP's out-of-sample predictions, as the
   network's are out of fold by simulation.
4. Per field, the network's weight ``w`` in [0, 1] (steps of 0.05) minimises the squared
   error of ``w * network + (1 - w) * GP`` against the targets, with the network's
   out-of-fold predictions from the run's cross-validation; the variance factor is the
   maximum-likelihood scale of the network's variance for those blended residuals (the
   declared noise kept unscaled).

Holding out whole simulations matters where a simulation has several rows (mass bins): the
GP would otherwise read a row's own simulation at the next mass, and its error would look
smaller than it is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator.blend import MAX_ROWS, GPBlend
from profemu.errors import DataError
from profemu.metrics import ml_variance_scale
from profemu.train.relevance import (
    AMPLITUDE_BOUNDS,
    NOISE_BOUNDS,
    leading_components,
    one_blas_thread,
    optimise_kernel,
)
from profemu.train.setup import Prepared

__all__ = ["HYPER_COMPONENTS", "HYPER_ROWS", "fit_blend", "uses_blend"]

logger = logging.getLogger(__name__)

HYPER_ROWS = 600
HYPER_COMPONENTS = 5
#: ``train.gp_blend = "auto"`` blends on suites with at least this many parameters ...
AUTO_MIN_PARAMS = 10
#: ... and at most this many training rows,
AUTO_MAX_ROWS = 2500
#: and on every suite of at most this many training rows (CAMELS TNG rho, 6 parameters: the
#: blend beat the network alone and the GP at 100-300 rows; the network alone was better at 600 and 1,400).
AUTO_SMALL_ROWS = 300
_WEIGHTS = np.linspace(0.0, 1.0, 21)
_JITTER = 1e-10


def uses_blend(config: Config, ds: ProfileDataset, n_train: int) -> bool:
    """Whether ``train.gp_blend`` blends a GP into this run."""
    mode = config.train.gp_blend
    if mode == "off":
        return False
    if mode == "on":
        return True
    if config.model.monotone_head:  # a GP's mean is not monotone in radius: keep the head's guarantee
        return False
    return (len(ds.param_names) >= AUTO_MIN_PARAMS and n_train <= AUTO_MAX_ROWS) or n_train <= AUTO_SMALL_ROWS


def _hyperparameters(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """log [s, l_1..l_d, n] of the blend's kernel, on at most :data:`HYPER_ROWS` seeded rows.

    The length scales maximise the marginal likelihood of the outputs' leading
    :data:`HYPER_COMPONENTS` principal components (:func:`profemu.train.relevance.optimise_kernel`,
    one start); the amplitude and the noise are then refitted on every output column
    (:func:`_amplitude_and_noise`): the leading components hold most of the signal and little
    of the noise, so their noise level is too low for the columns the GP is conditioned on (on
    the 35-parameter hard mock at 100 rows that over-fitted GP erred by 19.2% against the truth,
    the refitted one by 17.6%).
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(x.shape[0], HYPER_ROWS, replace=False)) if x.shape[0] > HYPER_ROWS \
        else np.arange(x.shape[0])
    components, _ = leading_components(y[rows], HYPER_COMPONENTS)
    best, *_ = optimise_kernel(x[rows], components, maxiter=80, ftol=1e-5, fallback=False)
    if best is None:
        raise DataError("GP blend: the kernel matrix is singular; remove duplicate input rows or set "
                        "train.gp_blend: off.")
    return _amplitude_and_noise(np.asarray(best.x, dtype=np.float64), x[rows], y[rows])


def _correlation(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The RBF correlation ``exp(-|(x_i - x_j) / l|² / 2)`` [n, n] of ``x`` [n, d] with the length
    scales of ``theta`` (log [s, l_1..l_d, n])."""
    xs = x / np.exp(theta[1:-1])
    sq = (xs**2).sum(axis=1)
    return np.exp(-0.5 * np.maximum(sq[:, None] + sq[None, :] - 2.0 * xs @ xs.T, 0.0))


def _amplitude_and_noise(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``theta`` with log s and log n maximising the marginal likelihood of every column of ``y``
    [n, D] (zero-mean GP) at fixed length scales: ``K = s R + n I`` shares ``R``'s eigenvectors,
    so each evaluation is a sum over its eigenvalues."""
    from scipy.optimize import minimize

    with one_blas_thread():
        lam, vecs = np.linalg.eigh(_correlation(theta, x))
    lam = np.maximum(lam, 0.0)
    power = ((vecs.T @ y) ** 2).sum(axis=1)  # [n]: every column's energy along each eigenvector
    columns = y.shape[1]

    def nll(log_sn: np.ndarray) -> tuple[float, np.ndarray]:
        s, n = np.exp(log_sn)
        v = s * lam + n + _JITTER
        value = 0.5 * float(np.sum(power / v) + columns * np.sum(np.log(v)))
        dv = -0.5 * power / v**2 + 0.5 * columns / v  # d value / d v
        return value, np.array([float(np.sum(dv * s * lam)), float(np.sum(dv * n))])

    bounds = np.log(np.array([AMPLITUDE_BOUNDS, NOISE_BOUNDS]))
    res = minimize(nll, np.clip(theta[[0, -1]], *bounds.T), jac=True, method="L-BFGS-B", bounds=bounds)
    out = theta.copy()
    if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) and res.fun <= nll(theta[[0, -1]])[0]:
        out[0], out[-1] = res.x
    return out


def _condition(theta: np.ndarray, x: np.ndarray, y: np.ndarray,
               groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha [n, D], leave-one-group-out means [n, D])`` of the GP on every row and column.

    Holding out the rows ``G`` of one simulation: ``mean_G = y_G - ([K^-1]_GG)^-1 alpha_G``
    (the block form of Rasmussen & Williams 2006, eq. 5.12); one row per group is the
    usual leave-one-out.
    """
    from scipy.linalg import cho_solve, cholesky
    from scipy.linalg.lapack import dpotri

    k = math.exp(theta[0]) * _correlation(theta, x)
    k[np.diag_indices_from(k)] += math.exp(theta[-1]) + _JITTER
    chol = cholesky(k, lower=True, check_finite=False)
    alpha = cho_solve((chol, True), y, check_finite=False)
    k_inv = dpotri(chol, lower=1)[0]
    k_inv = np.tril(k_inv) + np.tril(k_inv, -1).T
    loo = y - alpha / np.diag(k_inv)[:, None]
    if groups is not None:
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        for g in np.flatnonzero(counts > 1):
            rows = np.flatnonzero(inverse == g)
            loo[rows] = y[rows] - np.linalg.solve(k_inv[np.ix_(rows, rows)], alpha[rows])
    return alpha, loo


#: Largest error [standardised target units] of the GP mean evaluated in float32 (as
#: ``predict_fn`` does) against float64, at the training rows; above it the noise is raised.
FLOAT32_TOLERANCE = 1e-3
#: Factor on the noise level per raise, and the most raises.
NOISE_STEP, NOISE_RAISES = 10.0, 8
#: After the raises, the noise levels tried within the last step (fractions of it in log): the
#: least that passes is kept. On the 35-parameter hard mock (2,000 haloes, fold 0 of the blend
#: benchmark) the tenfold step took the noise from 0.111 to 1.11, the network's weight to 0.45 and
#: the median error against the truth to 5.55%; refined within the step, it stopped at 0.239: weight
#: 0.20, 5.23%.
NOISE_REFINE = (1.0 / 3.0, 2.0 / 3.0)


def _float32_error(theta: np.ndarray, x: np.ndarray, alpha: np.ndarray) -> float:
    """Max |GP mean in float32 - in float64| over the training rows, by :meth:`GPBlend.standardised_mean`
    (the arithmetic of the JAX ``predict_fn``, in numpy float32)."""
    ones = np.ones(alpha.shape[1])
    blend = GPBlend(("all",), x, alpha, math.exp(theta[0]), np.exp(theta[1:-1]), ones, ones, {})
    exact = blend.standardised_mean({"all": x})
    single = np.asarray(blend.standardised_mean({"all": x.astype(np.float32)}), np.float64)
    return float(np.max(np.abs(single - exact)))


def _float32_stable(theta: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: np.ndarray, loo: np.ndarray,
                    groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raise the GP's noise until its mean evaluated in float32 matches float64 (:data:`FLOAT32_TOLERANCE`).

    A GP fitted to (nearly) noiseless rows interpolates them: its ``alpha = K^-1 y`` grows to
    1e4 and more, and ``k @ alpha`` in float32 (the JAX ``predict_fn``, which HMC
    differentiates) then jitters by 1e-2 dex between neighbouring inputs. A larger noise
    bounds ``alpha`` and smooths the GP; the leave-one-out predictions that weight the blend
    are those of the smoothed GP. On noisy suites the fitted noise passes and nothing changes.
    """
    raised, start = 0, math.exp(theta[-1])
    error = _float32_error(theta, x, alpha)
    while error > FLOAT32_TOLERANCE and raised < NOISE_RAISES:
        theta = theta.copy()
        theta[-1] = max(theta[-1], theta[0] + math.log(1e-9)) + math.log(NOISE_STEP)
        alpha, loo = _condition(theta, x, y, groups)
        error = _float32_error(theta, x, alpha)
        raised += 1
    if not raised:
        return theta, alpha, loo
    if error > FLOAT32_TOLERANCE:  # NOISE_RAISES ran out
        logger.warning("GP blend: noise raised from %.3g to %.3g, and its float32 mean (predict_fn) still differs "
                       "from float64 by more than %g; gradients through the blend may be noisy", start,
                       math.exp(theta[-1]), FLOAT32_TOLERANCE)
        return theta, alpha, loo
    below = theta[-1] - math.log(NOISE_STEP)  # the last step may overshoot tenfold: the least noise within it
    for part in NOISE_REFINE:
        trial = theta.copy()
        trial[-1] = below + part * math.log(NOISE_STEP)
        trial_alpha, trial_loo = _condition(trial, x, y, groups)
        if _float32_error(trial, x, trial_alpha) <= FLOAT32_TOLERANCE:
            theta, alpha, loo = trial, trial_alpha, trial_loo
            break
    logger.info("GP blend: noise raised from %.3g to %.3g so that its float32 mean (predict_fn) matches float64 to %g",
                start, math.exp(theta[-1]), FLOAT32_TOLERANCE)
    return theta, alpha, loo


def fit_blend(prep: Prepared, oof: Mapping[str, Any], *, seed: int = 0) -> GPBlend | None:
    """The GP blend of a run, or None (with a log line) when it cannot be fitted.

    Args:
        prep: The run's data, split and transforms (the GP uses the same inputs as the network).
        oof: The cross-validation's out-of-fold predictions: ``{"rows": [n], "predictions":
            {field: (mean, var)}}`` (log10 [dex] and uncalibrated variance [dex²], [n, n_r]).
        seed: Seed of the rows the kernel's hyper-parameters are fitted on.
    """
    t0 = time.perf_counter()
    t = prep.transforms
    rows = np.asarray(oof["rows"], dtype=int)
    if rows.size > MAX_ROWS:
        logger.info("GP blend skipped: %d training rows, above the %d an exact GP keeps", rows.size, MAX_ROWS)
        return None
    ds = prep.dataset.subset(rows)
    arrays = t.transform(ds)
    blocks = tuple(b for b in t.input_blocks if b != "r_delta")
    x = np.concatenate([np.asarray(arrays.inputs[b], np.float64) for b in blocks], axis=1)
    y = np.asarray(arrays.target, np.float64)
    theta = _hyperparameters(x, y, seed)
    with one_blas_thread():
        alpha, loo = _condition(theta, x, y, ds.groups)
        theta, alpha, loo = _float32_stable(theta, x, y, alpha, loo, ds.groups)
    gp_log10, _ = t.to_log10(loo, None, params=ds.params, log10_mass=ds.log10_mass, redshift=ds.redshift)
    n_r = t.n_r
    weight = np.ones(t.target_dim)
    factor = np.ones(t.target_dim)
    fields: dict[str, Any] = {}
    for i, f in enumerate(t.field_names):
        sl = slice(i * n_r, (i + 1) * n_r)
        nn_mean, nn_var = (np.asarray(a, np.float64) for a in oof["predictions"][f])
        ok = ds.mask[f]
        truth = np.log10(np.where(ok, ds.profiles[f], 1.0))
        gp = gp_log10[:, sl]
        sse = [float(np.sum(((w * nn_mean + (1 - w) * gp - truth)[ok]) ** 2)) for w in _WEIGHTS]
        w = float(_WEIGHTS[int(np.argmin(sse))])
        blended = w * nn_mean + (1 - w) * gp
        noise = (ds.noise[f] ** 2 if ds.noise is not None and f in ds.noise else np.zeros_like(truth))[ok]
        weight[sl] = w
        factor[sl] = ml_variance_scale((blended - truth)[ok], nn_var[ok], noise)

        def median_error(pred: np.ndarray, truth: np.ndarray = truth, ok: np.ndarray = ok) -> float:
            return float(np.median(np.abs(10.0 ** (pred - truth)[ok] - 1.0)))

        fields[f] = {"weight": w, "variance_factor": float(factor[sl][0]), "network_error": median_error(nn_mean),
                     "gp_error": median_error(gp), "blend_error": median_error(blended)}
    report = {"rows": int(rows.size), "inputs": int(x.shape[1]), "noise": float(math.exp(theta[-1])),
              "amplitude": float(math.exp(theta[0])), "seconds": round(time.perf_counter() - t0, 2),
              "fields": fields}
    blend = GPBlend(blocks, x, alpha, float(math.exp(theta[0])), np.exp(theta[1:-1]), weight, factor, report)
    logger.info("GP blend (exact ARD GP on the network's %d inputs, %d rows, %.1f s; train.gp_blend: off skips "
                "it): %s", x.shape[1], rows.size, report["seconds"], GPBlend.describe(report, t.field_names))
    return blend
