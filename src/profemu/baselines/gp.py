"""Exact Gaussian processes with ARD kernels: :class:`GPBaseline` (one kernel shared by every output
column) and :class:`PCAGPBaseline` (one GP per PCA coefficient), fitted by maximum marginal likelihood.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.baselines.base import (
    DEFAULT_GP_MAX_TRAIN,
    _check_components,
    _Design,
    _DesignBaseline,
    logger,
)
from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import decode_var
from profemu.errors import ConfigError, DataError

__all__ = ["GPBaseline", "PCAGPBaseline", "gp_neg_log_marginal_likelihood"]


# ---------------------------------------------------------------------- exact GP
_JITTER = 1e-10  # added to the kernel diagonal, as scikit-learn's default ``alpha``
_STATUS = {0: "converged", 1: "iteration limit", 2: "stopped early"}


def _scaled_sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [n_a, n_b] between the rows of ``a`` and ``b``."""
    d2 = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def gp_neg_log_marginal_likelihood(theta: np.ndarray, x: np.ndarray, y: np.ndarray
                                   ) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood of a zero-mean GP and its gradient.

    Kernel ``k(a, b) = s exp(-|(a - b) / l|^2 / 2) + n delta_ab`` (ARD RBF plus white noise,
    scikit-learn's ``ConstantKernel * RBF + WhiteKernel``), with ``1e-10`` added to the
    diagonal. The ``m`` columns of ``y`` share the kernel (the marginal likelihood is the sum
    over columns). The gradient uses ``d log p / d theta_i = tr((a a^T - m K^-1) dK/dtheta_i) / 2``
    with ``K^-1`` from the Cholesky factor, in O(N^3 + N^2 d).

    Args:
        theta: ``log [s, l_1 .. l_d, n]`` [d + 2].
        x: Inputs [N, d].
        y: Outputs [N] or [N, m].

    Returns:
        ``(-log p(y), -d log p / d theta)``; ``(inf, 0)`` when the kernel matrix is not
        positive definite.
    """
    from scipy.linalg import cho_solve, cholesky
    from scipy.linalg.lapack import dpotri

    y = y.reshape(y.shape[0], -1)
    n, m = y.shape
    amp, noise = math.exp(theta[0]), math.exp(theta[-1])
    xs = x / np.exp(theta[1:-1])
    k_rbf = amp * np.exp(-0.5 * _scaled_sq_dist(xs, xs))
    k = k_rbf.copy()
    k[np.diag_indices_from(k)] += noise + _JITTER
    try:
        chol = cholesky(k, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return math.inf, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y, check_finite=False)
    log_ml = (-0.5 * float(np.sum(y * alpha)) - m * float(np.log(np.diag(chol)).sum())
              - 0.5 * n * m * math.log(2.0 * math.pi))
    k_inv, info = dpotri(chol, lower=1)
    if info != 0:
        return math.inf, np.zeros_like(theta)
    k_inv = np.tril(k_inv) + np.tril(k_inv, -1).T
    w = alpha @ alpha.T - m * k_inv
    wk = w * k_rbf
    row = wk.sum(axis=1)
    grad = np.empty_like(theta)
    grad[0] = 0.5 * row.sum()
    # d K_rbf / d log l_j = K_rbf (x_aj - x_bj)^2 / l_j^2, summed against W in O(N^2 d)
    grad[1:-1] = (xs**2).T @ row - np.sum(xs * (wk @ xs), axis=0)
    grad[-1] = 0.5 * noise * float(np.trace(w))
    return -log_ml, -grad


@dataclass
class _GPFit:
    """A GP with fixed hyper-parameters, conditioned on its training rows.

    ``calibration`` [m] rescales the predictive variance of each output so that the
    leave-one-out residuals of the training rows have unit variance: ``mean_i (r_i^2 /
    s_i^2)`` over the valid rows, with the closed-form LOO residual ``r_i = alpha_i /
    [K^-1]_ii`` and variance ``s_i^2 = 1 / [K^-1]_ii`` (Rasmussen & Williams 2006, eq.
    5.12). With one kernel shared by many outputs it corrects the common noise level to
    each output's own; for a well-specified GP it is ~1.
    """

    theta: np.ndarray  # log [amplitude, length scales, noise]
    x: np.ndarray  # [N, d]
    chol: np.ndarray  # [N, N] lower Cholesky factor of K + (noise + jitter) I
    alpha: np.ndarray  # [N, m] = K^-1 (y - y_mean) / y_scale
    y_mean: np.ndarray  # [m]
    y_scale: np.ndarray  # [m]
    calibration: np.ndarray  # [m]
    log_ml: float

    @classmethod
    def condition(cls, theta: np.ndarray, x: np.ndarray, y: np.ndarray, valid: np.ndarray,
                  y_mean: np.ndarray, y_scale: np.ndarray, log_ml: float) -> _GPFit:
        from scipy.linalg import cho_solve, cholesky
        from scipy.linalg.lapack import dpotri

        xs = x / np.exp(theta[1:-1])
        k = math.exp(theta[0]) * np.exp(-0.5 * _scaled_sq_dist(xs, xs))
        k[np.diag_indices_from(k)] += math.exp(theta[-1]) + _JITTER
        chol = cholesky(k, lower=True, check_finite=False)
        alpha = cho_solve((chol, True), (y - y_mean) / y_scale, check_finite=False)
        k_inv_diag = np.diag(dpotri(chol, lower=1)[0]).copy()
        z2 = np.where(valid, (alpha / k_inv_diag[:, None]) ** 2 * k_inv_diag[:, None], 0.0)
        counts = valid.sum(axis=0)
        calibration = np.where(counts > 0, z2.sum(axis=0) / np.maximum(counts, 1), 1.0)
        return cls(theta, x, chol, alpha, y_mean, y_scale, calibration, log_ml)

    def predict(self, x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean [n, m], latent variance [n, m], white-noise variance [m]) in output units,
        variances times ``calibration``."""
        from scipy.linalg import solve_triangular

        amp = math.exp(self.theta[0])
        ls = np.exp(self.theta[1:-1])
        train = self.x / ls
        means, variances = [], []
        for start in range(0, x.shape[0], chunk):
            k_star = amp * np.exp(-0.5 * _scaled_sq_dist(x[start:start + chunk] / ls, train))
            means.append(k_star @ self.alpha)
            v = solve_triangular(self.chol, k_star.T, lower=True, check_finite=False)
            variances.append(np.maximum(amp - (v**2).sum(axis=0), 1e-12 * amp))
        scale2 = self.calibration * self.y_scale**2
        mean = np.concatenate(means) * self.y_scale + self.y_mean
        latent = np.concatenate(variances)[:, None] * scale2
        return mean, latent, math.exp(self.theta[-1]) * scale2


@dataclass
class _Start:
    """Outcome of one optimiser start."""

    theta0: np.ndarray
    theta: np.ndarray
    neg_log_ml: float
    status: str
    evaluations: int
    seconds: float
    refinement: bool = False  # the refinement of the best start on all rows


class GPBaseline(_DesignBaseline):
    """Exact GP with one ARD kernel shared by every output column (scikit-learn's multi-output GP).

    Outputs: the ``D = F * n_r`` standardised log10 profile columns, jointly (their log
    marginal likelihoods add up), so the kernel is learnt from every radius and field at
    once; a GP per PCA coefficient is :class:`PCAGPBaseline`. Kernel: ``s RBF(l_1..l_d) + n``
    on the standardised inputs, exactly scikit-learn's ``ConstantKernel * RBF + WhiteKernel``
    with ``normalize_y=False`` (tested against it). Hyper-parameters: maximum marginal
    likelihood by L-BFGS-B in log space (analytic gradient) from two starts — length scales
    ``max(1, sqrt(d)/2)`` with noise 1e-2, and ``2 sqrt(d)`` with noise 0.2 (the second escapes
    the "everything is noise" optimum of many dimensions) — plus ``n_restarts`` seeded random
    starts. With more than ``search_rows`` training rows every start runs on a seeded subset of
    ``search_rows`` rows and the best is then refined on all rows (at most ``refine_maxiter``
    iterations): on 1,600 rows this reached the same log marginal likelihood as starting on all
    rows (within 0.2 of -15,485 on the hard mock, equal to 0.01 on CAMELS TNG rho) in half the
    time. The GP is conditioned on all rows. Progress (one INFO line per start) and a one-line
    summary of starts that stopped at the iteration limit or early go to the
    ``profemu.baselines`` logger; no per-fit warnings.

    Cost: O(N^3) per marginal-likelihood evaluation with its gradient: 1.2 s at N = 1,600 and
    ~6 s at N = 3,000 on one busy CPU core, 20-30x faster than scikit-learn's own evaluation
    (22 s at N = 1,600, 7 inputs, 15 outputs; 44 s with 36 inputs); 30-200 evaluations per
    start, more with more inputs. A 1,600-row fit took 16-36 s on CAMELS TNG (7 inputs) and
    60-80 s on the 36-input hard mock. With more than ``max_train`` rows a seeded random subset
    of ``max_train`` rows is used and a ``UserWarning`` says so.

    Variance: the GP posterior variance of the mean profile plus the excess of the fitted
    white noise over the declared noise (see the module docstring), both rescaled per output
    column by the leave-one-out calibration of the training rows (one shared noise level
    would overstate the error of smooth columns and understate that of rough ones).

    Args:
        max_train: Largest number of training rows (default :data:`DEFAULT_GP_MAX_TRAIN`).
        n_restarts: Random starts in addition to the two fixed ones.
        seed: Seed of the subsampling and of the random starts.
        maxiter: L-BFGS-B iteration limit per start.
        search_rows: Rows the starts run on (a seeded subset when there are more; None = all).
        refine_maxiter: Iteration limit of the refinement on all rows.
        ftol: L-BFGS-B relative tolerance on the marginal likelihood (1e-7: a change of
            ~1e-3 in a log marginal likelihood of -1e4 stops the search).
        amplitude_bounds: Bounds of the signal variance ``s`` (normalised outputs).
        length_scale_bounds: Bounds of the ARD length scales (standardised inputs).
        noise_level_bounds: Bounds of the white-noise variance ``n`` (normalised outputs).
    """

    name = "gp"
    _uses_pca = False

    def __init__(
        self,
        *,
        max_train: int = DEFAULT_GP_MAX_TRAIN,
        n_restarts: int = 0,
        seed: int = 0,
        maxiter: int = 300,
        search_rows: int | None = 800,
        refine_maxiter: int = 60,
        ftol: float = 1e-7,
        amplitude_bounds: tuple[float, float] = (1e-3, 1e3),
        length_scale_bounds: tuple[float, float] = (1e-2, 1e3),
        noise_level_bounds: tuple[float, float] = (1e-8, 1.0),
    ) -> None:
        super().__init__()
        if max_train < 5:
            raise ConfigError(f"max_train: {max_train} < 5; the GP needs a few training rows.")
        if n_restarts < 0:
            raise ConfigError(f"n_restarts: {n_restarts} < 0; pass 0 for the two fixed starts only.")
        if maxiter < 1 or refine_maxiter < 1:
            raise ConfigError(f"maxiter, refine_maxiter: {maxiter}, {refine_maxiter}; both must be >= 1.")
        if search_rows is not None and search_rows < 5:
            raise ConfigError(f"search_rows: {search_rows} < 5; pass None to search on all rows.")
        if not 0 < ftol < 1:
            raise ConfigError(f"ftol: {ftol} must be in (0, 1).")
        for name, (lo, hi) in (("amplitude_bounds", amplitude_bounds),
                               ("length_scale_bounds", length_scale_bounds),
                               ("noise_level_bounds", noise_level_bounds)):
            if not 0 < lo < hi < math.inf:
                raise ConfigError(f"{name}: ({lo}, {hi}) must satisfy 0 < lo < hi.")
        self.max_train = int(max_train)
        self.n_restarts = int(n_restarts)
        self.seed = int(seed)
        self.maxiter = int(maxiter)
        self.search_rows = None if search_rows is None else int(search_rows)
        self.refine_maxiter = int(refine_maxiter)
        self.ftol = float(ftol)
        self.amplitude_bounds = amplitude_bounds
        self.length_scale_bounds = length_scale_bounds
        self.noise_level_bounds = noise_level_bounds
        self.n_train_used = 0
        self.fit_report: dict[str, Any] = {}
        self._fits: list[tuple[np.ndarray, _GPFit]] = []

    # ------------------------------------------------------------------ fitting
    def _output_groups(self, design: _Design) -> list[np.ndarray]:
        """Output columns that share one kernel: all of them."""
        return [np.arange(design.y.shape[1])]

    def _normalise(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) per output column; one amplitude for all columns, so scale 1."""
        return y.mean(axis=0), np.ones(y.shape[1])

    def _starts(self, d: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Starting points ``log [s, l_1..l_d, n]``: the two fixed ones, then random ones."""
        root = math.sqrt(d)
        fixed = [(max(1.0, 0.5 * root), 1e-2), (2.0 * root, 0.2)]
        starts = [np.log(np.r_[1.0, np.full(d, ls), noise]) for ls, noise in fixed]
        for _ in range(self.n_restarts):
            ls = root * 10.0 ** rng.uniform(-0.6, 0.6, d)
            starts.append(np.log(np.r_[1.0, ls, 10.0 ** rng.uniform(-3.0, -0.5)]))
        lo, hi = self._log_bounds(d).T
        return [np.clip(s, lo, hi) for s in starts]

    def _log_bounds(self, d: int) -> np.ndarray:
        return np.log(np.array([self.amplitude_bounds, *[self.length_scale_bounds] * d,
                                self.noise_level_bounds], dtype=np.float64))

    def _minimise(self, theta0: np.ndarray, x: np.ndarray, y: np.ndarray, maxiter: int) -> _Start:
        from scipy.optimize import minimize

        t0 = time.perf_counter()
        with np.errstate(over="ignore", under="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = minimize(gp_neg_log_marginal_likelihood, theta0, args=(x, y), jac=True,
                           method="L-BFGS-B", bounds=self._log_bounds(x.shape[1]),
                           options={"maxiter": maxiter, "ftol": self.ftol})
        ok = bool(np.isfinite(res.fun))
        status = _STATUS.get(int(res.status), "stopped early") if ok else "failed"
        return _Start(theta0, np.asarray(res.x), float(res.fun) if ok else math.inf, status,
                      int(res.nfev), time.perf_counter() - t0)

    def _optimise(self, x: np.ndarray, y: np.ndarray, label: str, rng: np.random.Generator
                  ) -> tuple[_Start, list[_Start]]:
        """Every start on the search rows; the best refined on all rows when those were a subset."""
        n = x.shape[0]
        sub = (np.sort(rng.choice(n, self.search_rows, replace=False))
               if self.search_rows is not None and n > self.search_rows else np.arange(n))
        where = "" if sub.size == n else f" on {sub.size} of {n} rows"
        starts = self._starts(x.shape[1], rng)
        done: list[_Start] = []
        for i, theta0 in enumerate(starts):
            done.append(self._minimise(theta0, x[sub], y[sub], self.maxiter))
            logger.info("%s: %s, start %d/%d%s: log marginal likelihood %.2f (%s, %d evaluations, "
                        "%.1f s)", self.name, label, i + 1, len(starts), where,
                        -done[-1].neg_log_ml, done[-1].status, done[-1].evaluations,
                        done[-1].seconds)
        best = min(done, key=lambda s: s.neg_log_ml)
        if np.isfinite(best.neg_log_ml) and sub.size < n:
            best = self._minimise(best.theta, x, y, self.refine_maxiter)
            best.refinement = True
            done.append(best)
            logger.info("%s: %s, refined on all %d rows: log marginal likelihood %.2f (%s, %d "
                        "evaluations, %.1f s)", self.name, label, n, -best.neg_log_ml, best.status,
                        best.evaluations, best.seconds)
        if not np.isfinite(best.neg_log_ml):
            raise DataError(f"{type(self).__name__}: the kernel matrix was singular from every start "
                            f"({label}); remove duplicate input rows or raise noise_level_bounds.")
        return best, done

    @property
    def length_scales(self) -> dict[str, float]:
        """ARD length scale of each input (standardised input units; geometric mean over the
        kernels when there are several): short = the outputs change fast along that input."""
        design = self._fitted()
        logs = np.mean([fit.theta[1:-1] for _, fit in self._fits], axis=0)
        return {name: float(np.exp(v)) for name, v in zip(design.input_names, logs, strict=True)}

    def _fit_outputs(self, design: _Design, dataset: ProfileDataset) -> None:
        rng = np.random.default_rng(self.seed)
        x, y = design.x, design.y
        # rows with a masked entry are left out of the variance calibration of that column
        valid = design.valid if not self._uses_pca else np.ones(y.shape, dtype=bool)
        n = x.shape[0]
        if n > self.max_train:
            rows = np.sort(rng.choice(n, self.max_train, replace=False))
            msg = (f"{type(self).__name__}: subsampling {self.max_train} of {n} training rows (seed "
                   f"{self.seed}) because exact GP cost grows as N^3; raise max_train to use more.")
            logger.info(msg)
            warnings.warn(msg, UserWarning, stacklevel=3)
            x, y, valid = x[rows], y[rows], valid[rows]
        self.n_train_used = int(x.shape[0])
        groups = self._output_groups(design)
        logger.info("%s: fitting %d kernel(s) on %d rows x %d inputs (%d outputs)", self.name,
                    len(groups), x.shape[0], x.shape[1], y.shape[1])
        self._fits = []
        starts: list[_Start] = []
        best_log_ml = []
        at_upper: dict[str, int] = {}
        upper = math.log(self.length_scale_bounds[1]) - 1e-3
        for gi, cols in enumerate(groups):
            label = "all outputs" if len(groups) == 1 else f"component {gi + 1}/{len(groups)}"
            mean, scale = self._normalise(y[:, cols])
            yn = (y[:, cols] - mean) / scale
            best, tried = self._optimise(x, yn, label, rng)
            starts += tried
            best_log_ml.append(-best.neg_log_ml)
            for j in np.flatnonzero(best.theta[1:-1] >= upper):
                at_upper[design.input_names[j]] = at_upper.get(design.input_names[j], 0) + 1
            fit = _GPFit.condition(best.theta, x, y[:, cols], valid[:, cols], mean, scale,
                                   -best.neg_log_ml)
            self._fits.append((cols, fit))
        self._summarise(starts, len(groups), at_upper)
        self.fit_report = {
            "n_train_used": self.n_train_used,
            "kernels": len(groups),
            "starts": [{"status": s.status, "log_ml": -s.neg_log_ml, "evaluations": s.evaluations,
                        "seconds": s.seconds, "refinement": s.refinement} for s in starts],
            "best_log_ml": best_log_ml,
            "variance_calibration": [fit.calibration.tolist() for _, fit in self._fits],
            "irrelevant_inputs": at_upper,
        }

    def _summarise(self, starts: list[_Start], kernels: int, at_upper: dict[str, int]) -> None:
        """One line on optimiser trouble (WARNING) and one on irrelevant inputs (INFO)."""
        parts = []
        for refinement, limit, what in ((False, f"maxiter={self.maxiter}", "starts"),
                                        (True, f"refine_maxiter={self.refine_maxiter}",
                                         "refinements on all rows")):
            runs = [st for st in starts if st.refinement == refinement]
            counts = {k: sum(st.status == k for st in runs)
                      for k in ("iteration limit", "stopped early", "failed")}
            found = [f"{c} hit the iteration limit ({limit})" if k == "iteration limit" else
                     f"{c} {'stopped early (line search)' if k == 'stopped early' else 'failed'}"
                     for k, c in counts.items() if c]
            if found:
                parts.append(f"of {len(runs)} {what}, {', '.join(found)}")
        if parts:
            logger.warning("%s (%d kernel%s): %s; the best marginal likelihood of each kernel was "
                           "kept", self.name, kernels, "" if kernels == 1 else "s", "; ".join(parts))
        if at_upper:
            listed = ", ".join(f"{k} ({v}/{kernels})" if kernels > 1 else k
                               for k, v in sorted(at_upper.items(), key=lambda kv: -kv[1]))
            logger.info("%s: length scales at the upper bound (inputs the GP found irrelevant): %s",
                        self.name, listed)

    def _predict_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        design = self._fitted()
        width = design.y.shape[1]
        mean = np.zeros((x.shape[0], width))
        latent = np.zeros((x.shape[0], width))
        nugget = np.zeros(width)
        for cols, fit in self._fits:
            mean[:, cols], latent[:, cols], nugget[cols] = fit.predict(x)
        extra = decode_var(nugget[None, :], design.arrays)[0] + design.resid_var
        return mean, latent, extra


class PCAGPBaseline(GPBaseline):
    """The classic PCA + GP emulator: one GP with its own ARD kernel per PCA coefficient.

    Each coefficient is normalised (mean 0, variance 1) and fitted like :class:`GPBaseline`
    (same kernel, starts, optimiser and cost guard), so a fit costs ``K`` times one GP fit.
    The coefficient variances are propagated through the basis (``var = sum_k v_k W_k^2``)
    plus the PCA truncation residual.

    Args:
        n_components: Fixed number of PCA components, or None to choose by
            ``explained_variance``.
        explained_variance: Fraction of the standardised target variance to keep.
        max_components: Cap on the number of components (one GP each).
        **gp_options: ``max_train``, ``n_restarts``, ``seed``, ``maxiter`` and the bounds of
            :class:`GPBaseline`.
    """

    name = "pca_gp"
    _uses_pca = True

    def __init__(self, n_components: int | None = None, *, explained_variance: float = 0.999,
                 max_components: int = 12, **gp_options: Any) -> None:
        super().__init__(**gp_options)
        _check_components(n_components, explained_variance, max_components)
        self.n_components = n_components
        self.explained_variance = explained_variance
        self.max_components = max_components

    def _output_groups(self, design: _Design) -> list[np.ndarray]:
        return [np.array([k]) for k in range(design.y.shape[1])]

    def _normalise(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = y.std(axis=0)
        return y.mean(axis=0), np.where(scale > 1e-12, scale, 1.0)
