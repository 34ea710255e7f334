"""Classic emulators with the Emulator's interface: exact GPs, PCA + RBF, PCA + MLP.

They are the yardsticks a neural emulator must beat, fitted as carefully as a
cosmologist would fit them:

* :class:`GPBaseline` (``"gp"``) — an exact Gaussian process with one ARD RBF + white-noise
  kernel shared by every output column (the multi-output GP of scikit-learn), conditioned on
  *all* training rows up to ``max_train`` (default 3,000); hyper-parameters by maximum
  marginal likelihood from two starting points (plus optional random restarts) on an 800-row
  subset, the best refined on all rows. The strongest classic method on the CAMELS profiles
  and on the hard mock.
* :class:`PCAGPBaseline` (``"pca_gp"``) — the classic PCA + GP recipe: one GP with its own
  ARD kernel per PCA coefficient, the same optimiser.
* :class:`PCARBFBaseline` (``"pca_rbf"``) — ``scipy`` RBF interpolation of the PCA
  coefficients (the emu_CAMELS / ostrich pattern).
* :class:`PCAMLPBaseline` (``"pca_mlp"``) — a small scikit-learn MLP on the PCA coefficients
  (the CosmoPower pattern).

Shared recipe:

1. **Inputs and targets** come from :class:`profemu.data.transforms.Transforms`, fitted on
   the training rows: the parameters (log10 of ``dataset.log_params``), log10 mass, the
   redshift when it varies, each standardised; ``pk_ratio`` enters as its first
   ``PK_COMPONENTS`` principal components (standardised), since a GP or an RBF in 100
   correlated dimensions generalises poorly. Targets are the standardised log10 profiles
   of the fitted fields, ``D = F * n_r`` columns (field-major); a masked entry is 0 (the
   column's training mean) *for fitting only*; metrics ignore it.
2. **PCA** (all but :class:`GPBaseline`): ``Transforms``' PCA with ``K`` components, either
   ``n_components`` or the fewest that explain ``explained_variance``, capped at
   ``max_components``. The truncation residual variance per column (valid training
   entries) is part of the predicted variance.
3. **Variance** of the *mean profile* (what ``predict`` returns; :func:`profemu.evaluate`
   adds the targets' declared noise on top): the model's own variance (GP posterior
   variance, propagated through the PCA basis) plus whatever part of the noise-like terms
   (GP white noise, PCA truncation residual, cross-validated RBF/MLP residuals) exceeds the
   training data's declared noise (``dataset.noise``, mean variance per column). Without
   declared noise, the noise-like terms count in full.

Every baseline has ``fit(dataset, *, fields=None) -> self``, ``predict(params, log10_mass,
pk_ratio=None, redshift=None) -> {field: (mean_log10, var_log10)}`` (each [n, n_r]),
``fit_seconds`` (wall time of the whole fit) and ``name``, so :func:`profemu.evaluate.evaluate`
and :func:`compare` treat them like an Emulator. Long fits report progress through the
``profemu.baselines`` logger (INFO) and summarise optimiser trouble in one line.
scikit-learn and scipy's RBF are imported lazily.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import Transforms, decode_mean, decode_var
from profemu.emulator.inputs import InputSpec, check_inputs
from profemu.errors import ConfigError, DataError
from profemu.evaluate import Predictor, evaluate_predictions, predict_dataset

__all__ = [
    "COMPARISON_COLUMNS",
    "DEFAULT_GP_MAX_TRAIN",
    "Baseline",
    "GPBaseline",
    "PCAGPBaseline",
    "PCAMLPBaseline",
    "PCARBFBaseline",
    "compare",
    "format_table",
]

logger = logging.getLogger(__name__)

Prediction = dict[str, tuple[np.ndarray, np.ndarray]]

DEFAULT_GP_MAX_TRAIN = 3000
"""Default cap on the rows an exact GP is fitted on: at N = 3,000 one marginal-likelihood
evaluation takes ~6 s on one busy CPU core (O(N^3); 1.2 s at N = 1,600), and the refinement
on all rows needs up to 60 of them; above the cap a seeded random subset is used."""


@runtime_checkable
class Baseline(Predictor, Protocol):
    """A classic emulator: a :class:`~profemu.evaluate.Predictor` (the Emulator's ``predict``)
    that is fitted on a dataset and times its fit."""

    name: str
    fit_seconds: float

    def fit(self, dataset: ProfileDataset, *, fields: Sequence[str] | None = None) -> Baseline:
        """Fit on ``dataset`` (all fields, or ``fields``) and return ``self``."""
        ...


# ---------------------------------------------------------------------- design
def _check_fit_data(dataset: Any, fields: Sequence[str] | None, who: str) -> tuple[str, ...]:
    if not isinstance(dataset, ProfileDataset):
        raise DataError(f"{who}.fit: expected a ProfileDataset, got {type(dataset).__name__}.")
    chosen = dataset.fields if fields is None else tuple(fields)
    for f in chosen:
        if f not in dataset.fields:
            raise DataError(f"fields: {f!r} is not in the dataset; available fields: {list(dataset.fields)}.")
    if dataset.n < 5:
        raise DataError(f"{who}.fit: {dataset.n} training rows; need at least 5.")
    return chosen


def _check_components(n_components: int | None, explained_variance: float, max_components: int) -> None:
    if n_components is not None and n_components < 1:
        raise ConfigError(f"n_components: {n_components} < 1; pass a positive integer or None.")
    if not 0 < explained_variance <= 1:
        raise ConfigError(f"explained_variance: {explained_variance} not in (0, 1].")
    if max_components < 1:
        raise ConfigError(f"max_components: {max_components} < 1.")


class _Design:
    """Inputs [n, d] and targets [n, D] (or PCA coefficients [n, K]) of a baseline.

    Built on :class:`Transforms` (fitted on the training rows); adds the P(k) principal
    components, the PCA truncation residual and the declared noise per column.

    Attributes:
        transforms: The fitted transforms (with ``pca_components = K`` when PCA is used).
        input_names: Names of the ``d`` input columns.
        x: Training inputs [n, d].
        target: Standardised log10 training targets [n, D] (0 where masked).
        y: Training outputs: ``target``, or its PCA coefficients [n, K].
        valid: Valid training entries [n, D].
        resid_var: PCA truncation residual variance per column [D] (standardised; 0 without PCA).
        noise_var: Mean declared noise variance per column [D] [dex^2] (0 where none).
        explained: Fraction of the standardised target variance the PCA keeps (1 without).
    """

    PK_COMPONENTS = 4

    def __init__(self, dataset: ProfileDataset, fields: Sequence[str], *, pca: bool,
                 n_components: int | None = None, explained_variance: float = 0.999,
                 max_components: int = 12) -> None:
        # the classic recipe: plain log10 profiles, every P(k) bin scaled (the baselines take
        # their own P(k) components below)
        cfg = DataConfig(fields=tuple(fields), self_similar="off", pk_components=0, input_relevance="off")
        t = Transforms.fit(dataset, cfg)
        arrays = t.transform(dataset)
        target = arrays.target.astype(np.float64)
        self.valid = arrays.mask > 0
        self.explained = 1.0
        if pca:
            s = np.linalg.svd(target - target.mean(axis=0), compute_uv=False)
            ratio = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
            k = int(np.searchsorted(ratio, explained_variance) + 1) if n_components is None else n_components
            k = max(1, min(k, max_components, s.size))
            self.explained = float(ratio[k - 1])
            cfg = dataclasses.replace(cfg, pca_components=k)
            t = Transforms.fit(dataset, cfg)
        self.transforms = t
        self.arrays = t.model_arrays()
        self.input_spec = InputSpec.from_transforms(t)
        blocks = t.transform_inputs(dataset.params, dataset.log10_mass, dataset.pk_ratio,
                                    dataset.redshift)
        self.pk_basis = self.pk_scale = None
        if "pk" in blocks:  # already centred and scaled per k on the training rows
            _, _, vt = np.linalg.svd(blocks["pk"], full_matrices=False)
            self.pk_basis = vt[: min(self.PK_COMPONENTS, vt.shape[0])]
            self.pk_scale = np.maximum((blocks["pk"] @ self.pk_basis.T).std(axis=0), 1e-12)
        self.input_names = (*dataset.param_names, "log10_mass",
                            *(f"pk_pc{i + 1}" for i in range(0 if self.pk_basis is None else
                                                             self.pk_basis.shape[0])),
                            *(("redshift",) if "redshift" in blocks else ()))
        self.x = self._stack(blocks)
        self.y = target if not pca else t.encode_target(target)
        self.resid_var = np.zeros(target.shape[1])
        if pca:
            resid = np.where(self.valid, target - decode_mean(self.y, self.arrays), 0.0)
            self.resid_var = (resid**2).sum(axis=0) / np.maximum(self.valid.sum(axis=0), 1)
        self.target = target
        noise = []
        for f in t.field_names:
            sd = dataset.noise.get(f) if dataset.noise else None
            ok = dataset.mask[f]
            sq = np.zeros((dataset.n, dataset.n_r)) if sd is None else np.where(ok, sd, 0.0) ** 2
            noise.append(sq.sum(axis=0) / np.maximum(ok.sum(axis=0), 1))
        self.noise_var = np.concatenate(noise)

    @property
    def n_components(self) -> int | None:
        """Number of PCA components (None without PCA)."""
        pc = self.transforms.pca_components
        return None if pc is None else int(pc.shape[0])

    def _stack(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        cols = [blocks["params"], blocks["log10_mass"]]
        if self.pk_basis is not None:
            cols.append(blocks["pk"] @ self.pk_basis.T / self.pk_scale)
        if "redshift" in blocks:
            cols.append(blocks["redshift"])
        x = np.concatenate(cols, axis=1)
        if not np.isfinite(x).all():
            i, j = np.argwhere(~np.isfinite(x))[0]
            raise DataError(f"inputs: non-finite value at row {i} ({self.input_names[j]}); inputs "
                            "must be finite.")
        return x

    def inputs(self, params: Any, log10_mass: Any, pk_ratio: Any | None = None,
               redshift: Any | None = None) -> np.ndarray:
        """Input matrix [n, d] of raw (linear) inputs, checked as an Emulator checks them."""
        x = check_inputs(self.input_spec, params, log10_mass, pk_ratio, redshift)
        return self._stack(self.transforms.transform_inputs(x.params, x.log10_mass, x.pk_ratio, x.redshift))

    def decode(self, y_mean: np.ndarray, latent_var: np.ndarray, noise_like: np.ndarray) -> Prediction:
        """Model outputs -> ``{field: (mean_log10, var_log10)}`` each [n, n_r].

        Args:
            y_mean: Predicted outputs [n, D] (or coefficients [n, K]).
            latent_var: Model variance of the outputs [n, D] (or [n, K]), standardised.
            noise_like: Noise-like variance per target column [D], standardised (e.g. GP white
                noise through the basis plus the truncation residual, or a cross-validated
                residual); only its excess over the declared noise is kept (at least 1%).
        """
        t = self.transforms
        mean, var = t.to_log10(decode_mean(y_mean, self.arrays), decode_var(latent_var, self.arrays))
        extra = np.asarray(noise_like) * t.target_scale**2
        var = np.maximum(var + np.maximum(extra - self.noise_var, 0.01 * extra), 1e-12)
        return {f: (m, v) for (f, m), v in zip(t.split_fields(mean).items(),
                                               t.split_fields(var).values(), strict=True)}


class _DesignBaseline:
    """Shared fit/predict plumbing; subclasses implement ``_fit_outputs`` and ``_predict_outputs``."""

    name = "baseline"
    _uses_pca = True

    def __init__(self, *, n_components: int | None = None, explained_variance: float = 0.999,
                 max_components: int = 12) -> None:
        _check_components(n_components, explained_variance, max_components)
        self.n_components = n_components
        self.explained_variance = explained_variance
        self.max_components = max_components
        self.fit_seconds = float("nan")
        self._design: _Design | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """Fitted field names."""
        return self._fitted().transforms.field_names

    @property
    def components(self) -> int | None:
        """Number of PCA components used (None when the outputs are the radial columns)."""
        return self._fitted().n_components

    @property
    def explained(self) -> float:
        """Fraction of the standardised target variance kept by the PCA (1.0 without PCA)."""
        return self._fitted().explained

    def _fitted(self) -> _Design:
        if self._design is None:
            raise DataError(f"{type(self).__name__}: not fitted yet; call fit(dataset) first.")
        return self._design

    def fit(self, dataset: ProfileDataset, *, fields: Sequence[str] | None = None) -> Self:
        """Fit on ``dataset`` (all of its fields, or ``fields``) and return ``self``.

        ``fit_seconds`` is the wall time of the whole call (design, PCA and model).
        """
        start = time.perf_counter()
        chosen = _check_fit_data(dataset, fields, type(self).__name__)
        self._design = _Design(dataset, chosen, pca=self._uses_pca, n_components=self.n_components,
                               explained_variance=self.explained_variance,
                               max_components=self.max_components)
        self._fit_outputs(self._design, dataset)
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict(
        self,
        params: np.ndarray,
        log10_mass: np.ndarray,
        pk_ratio: np.ndarray | None = None,
        redshift: np.ndarray | None = None,
    ) -> Prediction:
        """Predict log10 profiles.

        Args:
            params: Raw (linear) parameters [n, p] (or [p]), in the training column order.
            log10_mass: log10(M/Msun), [n] (or a scalar for all rows).
            pk_ratio: P_hydro/P_dmo [n, n_k], required if fitted with it.
            redshift: [n], required if the training redshift varied.

        Returns:
            ``{field: (mean_log10, var_log10)}``, each [n, n_r]; the variance [dex^2] is that of
            the predicted mean profile (the targets' declared noise is not included).
        """
        design = self._fitted()
        x = design.inputs(params, log10_mass, pk_ratio, redshift)
        return design.decode(*self._predict_outputs(x))

    def _fit_outputs(self, design: _Design, dataset: ProfileDataset) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        """(mean, latent variance, noise-like variance) of the outputs at ``x``."""
        raise NotImplementedError


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


# ---------------------------------------------------------------------- PCA + RBF / MLP
class _CrossValidatedBaseline(_DesignBaseline):
    """A regressor of the PCA coefficients whose variance is estimated by K-fold cross-validation.

    The regressor is refitted without each fold (folds by ``dataset.groups``, i.e. whole
    simulations, :func:`profemu.data.split.group_kfold`); the mean squared held-out residual
    of the valid entries per column is its noise-like variance (it contains the target noise,
    so only its excess over the declared noise is kept, at least 1% of it). For speed the
    transforms and the PCA basis are not refitted per fold. Subclasses implement ``_make``.
    """

    def __init__(self, *, n_components: int | None, explained_variance: float, max_components: int,
                 cv_folds: int, seed: int) -> None:
        super().__init__(n_components=n_components, explained_variance=explained_variance,
                         max_components=max_components)
        if cv_folds < 2:
            raise ConfigError(f"cv_folds: {cv_folds} < 2; the variance estimate needs at least 2 folds.")
        self.cv_folds = int(cv_folds)
        self.seed = int(seed)
        self.cv_var: np.ndarray | None = None  # [D], standardised column units
        self._model: Callable[[np.ndarray], np.ndarray] | None = None

    def _make(self, x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _fit_outputs(self, design: _Design, dataset: ProfileDataset) -> None:
        from profemu.data.split import group_kfold

        n_groups = dataset.n if dataset.groups is None else int(np.unique(dataset.groups).size)
        if n_groups < self.cv_folds:
            raise ConfigError(f"cv_folds: {self.cv_folds} folds but the training data have only "
                              f"{n_groups} groups (simulations); lower cv_folds.")
        sq = np.zeros(design.target.shape[1])
        counts = np.zeros(design.target.shape[1])
        for k, (train, held) in enumerate(group_kfold(dataset, self.cv_folds, seed=self.seed)):
            model = self._make(design.x[train], design.y[train])
            resid = decode_mean(model(design.x[held]), design.arrays) - design.target[held]
            valid = design.valid[held]
            sq += np.where(valid, resid**2, 0.0).sum(axis=0)
            counts += valid.sum(axis=0)
            logger.debug("%s: cross-validation fold %d/%d done", self.name, k + 1, self.cv_folds)
        var = np.where(counts > 0, sq / np.maximum(counts, 1), np.nan)
        fallback = float(np.nanmean(var)) if np.isfinite(var).any() else 1.0
        self.cv_var = np.where(np.isfinite(var), var, fallback)
        self._model = self._make(design.x, design.y)

    def _predict_outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._model is not None and self.cv_var is not None
        mean = np.asarray(self._model(x)).reshape(x.shape[0], -1)
        return mean, np.zeros_like(mean), self.cv_var


class PCARBFBaseline(_CrossValidatedBaseline):
    """``scipy.interpolate.RBFInterpolator`` on the PCA coefficients (emu_CAMELS/ostrich pattern).

    An RBF interpolator has no predictive variance: a constant variance per output (radius
    and field) is estimated by K-fold cross-validation by simulation (see
    :class:`_CrossValidatedBaseline`).

    Args:
        n_components: Fixed number of PCA components, or None to choose by
            ``explained_variance``.
        kernel: RBF kernel name accepted by ``RBFInterpolator``.
        smoothing: Smoothing parameter (0 interpolates exactly; > 0 regularises noisy
            targets; in coefficient units).
        degree: Degree of the added polynomial (None: scipy's default for the kernel).
        epsilon: Shape parameter, needed by kernels other than the scale-free ones.
        neighbors: Use only this many nearest training points per prediction (None: all).
        explained_variance: Fraction of the standardised target variance to keep.
        max_components: Cap on the number of components.
        cv_folds: Number of folds of the variance estimate (>= 2).
        seed: Seed of the fold assignment.
    """

    name = "pca_rbf"

    def __init__(
        self,
        n_components: int | None = None,
        kernel: str = "thin_plate_spline",
        smoothing: float = 1.0,
        *,
        degree: int | None = None,
        epsilon: float | None = None,
        neighbors: int | None = None,
        explained_variance: float = 0.999,
        max_components: int = 20,
        cv_folds: int = 5,
        seed: int = 0,
    ) -> None:
        super().__init__(n_components=n_components, explained_variance=explained_variance,
                         max_components=max_components, cv_folds=cv_folds, seed=seed)
        if smoothing < 0:
            raise ConfigError(f"smoothing: {smoothing} < 0; pass a value >= 0.")
        self.kernel = kernel
        self.smoothing = float(smoothing)
        self.degree = degree
        self.epsilon = epsilon
        self.neighbors = neighbors

    def _make(self, x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        from scipy.interpolate import RBFInterpolator

        kwargs: dict[str, Any] = {"kernel": self.kernel, "smoothing": self.smoothing,
                                  "neighbors": self.neighbors}
        if self.degree is not None:
            kwargs["degree"] = self.degree
        if self.epsilon is not None:
            kwargs["epsilon"] = self.epsilon
        try:
            return RBFInterpolator(x, y, **kwargs)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise DataError(
                f"PCARBFBaseline: the RBF system could not be built ({exc}); remove duplicate input "
                "rows, raise smoothing, or pick another kernel/epsilon."
            ) from None


class PCAMLPBaseline(_CrossValidatedBaseline):
    """A small fully connected network on the PCA coefficients (the CosmoPower pattern).

    scikit-learn's ``MLPRegressor`` (Adam, mean squared error on the coefficients, which is
    the squared error of the standardised profile inside the PCA subspace), early stopping
    on 10% of the rows (20 epochs without improvement; the best weights are kept), L2 penalty
    ``alpha``; seeded. Its variance is the K-fold cross-validated residual (see
    :class:`_CrossValidatedBaseline`), so a fit trains ``cv_folds + 1`` networks (~5-10 s each
    for 1,600 rows on 2 CPU cores). Runs that stop at ``max_iter`` are counted in one log line.

    Args:
        n_components: Fixed number of PCA components, or None to choose by
            ``explained_variance``.
        hidden: Widths of the hidden layers.
        activation: ``"tanh"``, ``"relu"`` or ``"logistic"``.
        alpha: L2 penalty.
        learning_rate: Initial Adam learning rate.
        max_iter: Largest number of epochs.
        explained_variance: Fraction of the standardised target variance to keep.
        max_components: Cap on the number of components.
        cv_folds: Number of folds of the variance estimate (>= 2).
        seed: Seed of the weights, the early-stopping split and the folds.
    """

    name = "pca_mlp"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        alpha: float = 1e-4,
        learning_rate: float = 1e-3,
        max_iter: int = 2000,
        explained_variance: float = 0.999,
        max_components: int = 20,
        cv_folds: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(n_components=n_components, explained_variance=explained_variance,
                         max_components=max_components, cv_folds=cv_folds, seed=seed)
        if not hidden or any(int(w) < 1 for w in hidden):
            raise ConfigError(f"hidden: {list(hidden)} must list positive layer widths, e.g. (128, 128).")
        if activation not in ("tanh", "relu", "logistic"):
            raise ConfigError(f"activation: {activation!r}; choose 'tanh', 'relu' or 'logistic'.")
        if alpha < 0 or learning_rate <= 0 or max_iter < 1:
            raise ConfigError(f"alpha >= 0, learning_rate > 0 and max_iter >= 1 are required; got "
                              f"{alpha}, {learning_rate}, {max_iter}.")
        self.hidden = tuple(int(w) for w in hidden)
        self.activation = activation
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        self.max_iter = int(max_iter)
        self._stopped_at_limit = 0
        self._trained = 0

    def _fit_outputs(self, design: _Design, dataset: ProfileDataset) -> None:
        self._stopped_at_limit = self._trained = 0
        super()._fit_outputs(design, dataset)
        if self._stopped_at_limit:
            logger.warning("%s: %d of %d networks stopped at max_iter=%d before early stopping",
                           self.name, self._stopped_at_limit, self._trained, self.max_iter)

    def _make(self, x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        net = MLPRegressor(hidden_layer_sizes=self.hidden, activation=self.activation,
                           alpha=self.alpha, learning_rate_init=self.learning_rate,
                           max_iter=self.max_iter, early_stopping=True, validation_fraction=0.1,
                           n_iter_no_change=20, tol=1e-6, random_state=self.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            net.fit(x, y)
        self._trained += 1
        self._stopped_at_limit += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return lambda q: np.asarray(net.predict(q)).reshape(q.shape[0], -1)


# ---------------------------------------------------------------------- comparison
_METRIC_KEYS = ("frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "nll",
                "coverage_68", "coverage_95")


def _timed_predict(predictor: Any, dataset: ProfileDataset) -> tuple[Prediction, float]:
    """Predict twice (the first call warms up JIT compilation); return the second and its time [s]."""
    predict_dataset(predictor, dataset)
    start = time.perf_counter()
    pred = predict_dataset(predictor, dataset)
    return pred, time.perf_counter() - start


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return float(a) / float(b)


def compare(
    emulator_like: Any,
    baselines: Sequence[Baseline],
    train: ProfileDataset,
    test: ProfileDataset,
    *,
    emulator_fit_seconds: float | None = None,
    emulator_name: str = "profemu",
    fields: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Fit each baseline on ``train`` and score every method on ``test``.

    Args:
        emulator_like: A fitted predictor (``predict`` as the Emulator), scored first;
            None to compare baselines only (the first baseline is then the reference).
        baselines: Unfitted (or fitted: they are refitted) baselines.
        train: Training data for the baselines.
        test: Held-out data.
        emulator_fit_seconds: Training time of ``emulator_like``, reported as is.
        emulator_name: Label of the first row.
        fields: Fields the baselines fit (default: the emulator's predicted fields,
            else all of ``train``'s).

    Returns:
        One dict per method with ``method``, the pooled metrics ``frac_err_median``,
        ``frac_err_p68``, ``frac_err_p95``, ``rmse_dex``, ``nll``, ``coverage_68``,
        ``coverage_95``, and ``fit_seconds`` (wall time of the baseline's whole fit),
        ``predict_seconds_per_1000``, ``n_test``, ``frac_err_ratio`` and
        ``predict_time_ratio`` (relative to the first row; None where undefined).
        Prediction time is the wall time of one call on the whole test set, after one
        warm-up call. Each fit is announced on the ``profemu.baselines`` logger.
    """
    rows: list[dict[str, Any]] = []
    methods: list[tuple[str, Any, float | None]] = []
    if emulator_like is not None:
        methods.append((emulator_name, emulator_like, emulator_fit_seconds))
        if fields is None:
            fields = tuple(predict_dataset(emulator_like, test.subset(slice(0, 1))))
    for i, baseline in enumerate(baselines):
        name = getattr(baseline, "name", type(baseline).__name__)
        logger.info("compare: fitting %s (%d/%d) on %d training rows", name, i + 1, len(baselines),
                    train.n)
        baseline.fit(train, fields=fields)
        logger.info("compare: %s fitted in %.1f s", name, float(baseline.fit_seconds))
        methods.append((name, baseline, float(baseline.fit_seconds)))
    if not methods:
        raise DataError("compare: nothing to compare; pass an emulator and/or baselines.")
    for name, predictor, fit_seconds in methods:
        pred, seconds = _timed_predict(predictor, test)
        if fields is not None:
            pred = {f: pred[f] for f in fields if f in pred}
        overall = evaluate_predictions(pred, test)["overall"]
        row: dict[str, Any] = {"method": name}
        row.update({k: overall[k] for k in _METRIC_KEYS})
        row["fit_seconds"] = None if fit_seconds is None or not np.isfinite(fit_seconds) else float(fit_seconds)
        row["predict_seconds_per_1000"] = 1000.0 * seconds / test.n
        row["n_test"] = test.n
        rows.append(row)
    ref = rows[0]
    for row in rows:
        row["frac_err_ratio"] = _ratio(row["frac_err_median"], ref["frac_err_median"])
        row["predict_time_ratio"] = _ratio(row["predict_seconds_per_1000"], ref["predict_seconds_per_1000"])
    return rows


# (result key, column title, format: a str.format pattern or "pct" for percent)
COMPARISON_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("method", "method", "{}"),
    ("frac_err_median", "frac err median [%]", "pct"),
    ("frac_err_p68", "p68 [%]", "pct"),
    ("frac_err_p95", "p95 [%]", "pct"),
    ("rmse_dex", "RMSE [dex]", "{:.4f}"),
    ("nll", "NLL", "{:.3f}"),
    ("coverage_68", "cov 68", "{:.3f}"),
    ("coverage_95", "cov 95", "{:.3f}"),
    ("fit_seconds", "fit [s]", "{:.3g}"),
    ("predict_seconds_per_1000", "predict [s/1000]", "{:.3g}"),
    ("frac_err_ratio", "err / first", "{:.2f}"),
    ("predict_time_ratio", "time / first", "{:.3g}"),
)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`compare` rows (fractional errors in percent).

    Args:
        rows: Output of :func:`compare`.

    Returns:
        The table as a string, one line per method after the header.
    """

    def cell(value: Any, fmt: str) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "n/a"
        if fmt == "pct":
            return f"{100.0 * value:.2f}"
        return fmt.format(value)

    lines = ["| " + " | ".join(title for _, title, _ in COMPARISON_COLUMNS) + " |",
             "|" + "|".join("---" if key == "method" else "---:" for key, _, _ in COMPARISON_COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key), fmt) for key, _, fmt in COMPARISON_COLUMNS) + " |")
    return "\n".join(lines)
