"""Classic emulators with the Emulator's interface: PCA + Gaussian process, PCA + RBF.

They are the yardsticks a neural emulator must beat. Both follow the usual recipe
of profile emulators in the literature (e.g. the emu_CAMELS / ostrich pattern):

1. **Inputs**: the parameters (log10 applied to ``dataset.log_params``), log10 mass,
   ``pk_ratio`` when present and the redshift when it varies in the training set,
   standardised with the training mean and standard deviation.
2. **Targets**: log10 profiles of every fitted field on the radial grid,
   concatenated to ``D = F * n_r`` columns and standardised per column. A GP or an
   RBF cannot take holes, so *for fitting only* a masked entry is imputed with the
   training median of its column (log10 units); metrics still ignore it.
3. **PCA** of the standardised targets (numpy SVD), keeping ``K`` components: either
   ``n_components`` or the fewest that explain ``explained_variance`` of the
   variance, capped at ``max_components``.
4. One regressor maps the inputs to each PCA coefficient.
5. **Variance**: the coefficient variances ``v_k`` are propagated through the basis,
   ``var_y = sum_k v_k W_k^2 + r``, where ``r`` is the per-column PCA truncation
   residual variance measured on the training rows (valid entries), then converted
   back to log10 units (times the column scale squared).

Every baseline exposes ``fit(dataset, *, fields=None) -> self``,
``predict(params, log10_mass, pk_ratio=None, redshift=None) -> {field: (mean_log10,
var_log10)}`` (each [n, n_r]), ``fit_seconds`` and ``name``, so that
:func:`profemu.evaluate.evaluate` and :func:`compare` treat them like an Emulator.
scikit-learn is imported lazily, inside the GP baseline.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError
from profemu.evaluate import Predictor, evaluate_predictions, predict_dataset

__all__ = [
    "Baseline",
    "PCAGPBaseline",
    "PCARBFBaseline",
    "compare",
    "format_table",
]

logger = logging.getLogger(__name__)

Prediction = dict[str, tuple[np.ndarray, np.ndarray]]


@runtime_checkable
class Baseline(Predictor, Protocol):
    """A classic emulator: a :class:`~profemu.evaluate.Predictor` (the Emulator's ``predict``)
    that is fitted on a dataset and times its fit."""

    name: str
    fit_seconds: float

    def fit(self, dataset: ProfileDataset, *, fields: Sequence[str] | None = None) -> Baseline:
        """Fit on ``dataset`` (all fields, or ``fields``) and return ``self``."""
        ...


# ---------------------------------------------------------------------- inputs
class _InputScaler:
    """Builds and standardises the input matrix [n, d] from named blocks (training statistics).

    The P(k) suppression vector (~79 strongly correlated bins) enters as its first
    ``PK_COMPONENTS`` principal components (fitted on the training rows), as in
    cosmological emulators: a GP or RBF interpolant in 100+ raw dimensions is slow
    and generalises poorly.
    """

    PK_COMPONENTS = 4

    def __init__(self, dataset: ProfileDataset) -> None:
        self.param_names = dataset.param_names
        self.log_columns = np.array([nm in dataset.log_params for nm in dataset.param_names])
        self.n_k = dataset.n_k
        if self.n_k:
            pk = np.asarray(dataset.pk_ratio, dtype=np.float64)
            self.pk_mean = pk.mean(axis=0)
            _, _, vt = np.linalg.svd(pk - self.pk_mean, full_matrices=False)
            self.pk_basis = vt[: min(self.PK_COMPONENTS, vt.shape[0])]
        z = dataset.redshift
        self.use_redshift = z is not None and bool(np.ptp(z) > 0)
        x = self.raw(dataset.params, dataset.log10_mass, dataset.pk_ratio, dataset.redshift)
        self.center = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)

    @property
    def width(self) -> int:
        return int(self.center.shape[0])

    def raw(
        self,
        params: Any,
        log10_mass: Any,
        pk_ratio: Any | None,
        redshift: Any | None,
    ) -> np.ndarray:
        p = len(self.param_names)
        params = np.asarray(params, dtype=np.float64)
        if params.ndim == 1 and params.shape[0] == p:
            params = params[None, :]
        if params.ndim != 2 or params.shape[1] != p:
            raise DataError(
                f"params: expected shape [n, {p}] (columns {list(self.param_names)}), got {params.shape}."
            )
        n = params.shape[0]
        mass = np.asarray(log10_mass, dtype=np.float64)
        if mass.ndim == 0:
            mass = np.full(n, float(mass))
        if mass.shape != (n,):
            raise DataError(f"log10_mass: expected shape ({n},) to match params, got {mass.shape}.")
        if (params[:, self.log_columns] <= 0).any():
            bad = [nm for nm, c in zip(self.param_names, self.log_columns, strict=True)
                   if c and (params[:, list(self.param_names).index(nm)] <= 0).any()]
            raise DataError(f"params: log-distributed parameter(s) {bad} have values <= 0; pass linear, "
                            "positive values (log10 is applied internally).")
        cols = [np.where(self.log_columns, np.log10(np.where(self.log_columns, params, 1.0)), params),
                mass[:, None]]
        if self.n_k:
            if pk_ratio is None:
                raise DataError(f"pk_ratio: this baseline was fitted with P(k) ratios ({self.n_k} bins); "
                                "pass pk_ratio [n, n_k].")
            pk = np.asarray(pk_ratio, dtype=np.float64)
            if pk.shape != (n, self.n_k):
                raise DataError(f"pk_ratio: expected shape ({n}, {self.n_k}), got {pk.shape}.")
            cols.append((pk - self.pk_mean) @ self.pk_basis.T)
        if self.use_redshift:
            if redshift is None:
                raise DataError("redshift: this baseline was fitted on several redshifts; pass redshift [n].")
            z = np.broadcast_to(np.asarray(redshift, dtype=np.float64), (n,))
            cols.append(z[:, None])
        x = np.concatenate(cols, axis=1)
        if not np.isfinite(x).all():
            i, j = np.argwhere(~np.isfinite(x))[0]
            raise DataError(f"inputs: non-finite value at row {i}, input column {j}; inputs must be finite.")
        return x

    def transform(self, params: Any, log10_mass: Any, pk_ratio: Any | None = None,
                  redshift: Any | None = None) -> np.ndarray:
        return (self.raw(params, log10_mass, pk_ratio, redshift) - self.center) / self.scale


# ---------------------------------------------------------------------- targets + PCA
class _TargetPCA:
    """Imputes, standardises and compresses the log10 targets of ``fields`` ([n, D] -> [n, K])."""

    def __init__(self, dataset: ProfileDataset, fields: Sequence[str], *, n_components: int | None,
                 explained_variance: float, max_components: int) -> None:
        self.fields = tuple(fields)
        self.n_r = dataset.n_r
        y = np.concatenate([dataset.log10_profile(f) for f in self.fields], axis=1)  # NaN = masked
        self.valid = np.isfinite(y)
        medians = np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            col = y[self.valid[:, j], j]
            # a column with no valid training entry: fall back to the field's median
            medians[j] = np.median(col) if col.size else np.nanmedian(
                y[:, (j // self.n_r) * self.n_r:(j // self.n_r + 1) * self.n_r])
        y = np.where(self.valid, y, medians)
        self.center = y.mean(axis=0)
        scale = y.std(axis=0)
        self.scale = np.where(scale > 1e-12, scale, 1.0)
        ys = (y - self.center) / self.scale
        _, s, vt = np.linalg.svd(ys, full_matrices=False)
        ratio = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
        k_max = min(max_components, vt.shape[0])
        if n_components is None:
            k = int(np.searchsorted(ratio, explained_variance) + 1)
        else:
            k = int(n_components)
        self.n_components = max(1, min(k, k_max))
        self.explained = float(ratio[self.n_components - 1])
        self.basis = vt[: self.n_components]  # [K, D]
        self.coeffs = ys @ self.basis.T  # [n, K]
        resid = np.where(self.valid, ys - self.coeffs @ self.basis, 0.0)
        counts = np.maximum(self.valid.sum(axis=0), 1)
        self.resid_var = (resid**2).sum(axis=0) / counts  # [D], standardised units
        self.ys = ys

    def decode(self, z_mean: np.ndarray, z_var: np.ndarray) -> Prediction:
        """Coefficient mean/var [n, K] -> {field: (mean_log10, var_log10)} each [n, n_r]."""
        mean = (z_mean @ self.basis) * self.scale + self.center
        var = (z_var @ self.basis**2 + self.resid_var) * self.scale**2
        var = np.maximum(var, 1e-12)
        out: Prediction = {}
        for i, f in enumerate(self.fields):
            sl = slice(i * self.n_r, (i + 1) * self.n_r)
            out[f] = (mean[:, sl], var[:, sl])
        return out


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


class _PCABaseline:
    """Shared input/target handling; subclasses fit ``_fit_coeffs`` and ``_predict_coeffs``."""

    name = "pca"

    def __init__(self, *, n_components: int | None, explained_variance: float, max_components: int) -> None:
        _check_components(n_components, explained_variance, max_components)
        self.n_components = n_components
        self.explained_variance = explained_variance
        self.max_components = max_components
        self.fit_seconds = float("nan")
        self._inputs: _InputScaler | None = None
        self._pca: _TargetPCA | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """Fitted field names."""
        self._require_fit()
        assert self._pca is not None
        return self._pca.fields

    def _require_fit(self) -> None:
        if self._pca is None:
            raise DataError(f"{type(self).__name__}: not fitted yet; call fit(dataset) first.")

    def _prepare(self, dataset: ProfileDataset, fields: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        chosen = _check_fit_data(dataset, fields, type(self).__name__)
        self._inputs = _InputScaler(dataset)
        self._pca = _TargetPCA(dataset, chosen, n_components=self.n_components,
                               explained_variance=self.explained_variance,
                               max_components=self.max_components)
        x = self._inputs.transform(dataset.params, dataset.log10_mass, dataset.pk_ratio, dataset.redshift)
        return x, self._pca.coeffs

    def predict(
        self,
        params: np.ndarray,
        log10_mass: np.ndarray,
        pk_ratio: np.ndarray | None = None,
        redshift: np.ndarray | None = None,
    ) -> Prediction:
        """Predict log10 profiles.

        Args:
            params: Raw (linear) parameters [n, p], in the training column order.
            log10_mass: log10(M/Msun), [n] (or a scalar for all rows).
            pk_ratio: P_hydro/P_dmo [n, n_k], required if fitted with it.
            redshift: [n], required if the training redshift varied.

        Returns:
            ``{field: (mean_log10, var_log10)}``, each [n, n_r]; variances > 0 [dex^2].
        """
        self._require_fit()
        assert self._inputs is not None and self._pca is not None
        x = self._inputs.transform(params, log10_mass, pk_ratio, redshift)
        z_mean, z_var = self._predict_coeffs(x)
        return self._pca.decode(z_mean, z_var)

    def _predict_coeffs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------- PCA + GP
class PCAGPBaseline(_PCABaseline):
    """One scikit-learn Gaussian process per PCA coefficient.

    Kernel: ``ConstantKernel * RBF(ARD length scales, one per input) + WhiteKernel``,
    ``normalize_y=True``, hyper-parameters by maximum marginal likelihood with
    ``n_restarts_optimizer`` restarts. The predictive standard deviation (which
    includes the fitted white noise) gives the coefficient variance.

    Cost: exact GP training is O(N^3) per component and per optimiser step. When the
    training set has more than ``max_train`` rows, a seeded random subset of
    ``max_train`` rows is used and a ``UserWarning`` says so (sklearn cannot be
    interrupted, so this subsampling is the only cost guard). For scale, N = 2000
    with 7 inputs and ~10 components takes minutes on one CPU core; N = 150 takes
    about a second.

    Args:
        n_components: Fixed number of PCA components, or None to choose by
            ``explained_variance``.
        explained_variance: Fraction of the standardised target variance to keep.
        max_components: Cap on the number of components (one GP each).
        max_train: Largest number of training rows given to the GPs.
        seed: Seed of the subsampling and of the GP optimiser.
        n_restarts_optimizer: Extra optimiser restarts per GP.
        length_scale_bounds: Bounds of the ARD length scales (standardised inputs).
        noise_level_bounds: Bounds of the white-noise level (normalised targets).
    """

    name = "pca_gp"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        explained_variance: float = 0.999,
        max_components: int = 12,
        max_train: int = 1000,
        seed: int = 0,
        n_restarts_optimizer: int = 0,
        length_scale_bounds: tuple[float, float] = (1e-2, 1e3),
        noise_level_bounds: tuple[float, float] = (1e-8, 1.0),
    ) -> None:
        super().__init__(n_components=n_components, explained_variance=explained_variance,
                         max_components=max_components)
        if max_train < 5:
            raise ConfigError(f"max_train: {max_train} < 5; the GP needs a few training rows.")
        self.max_train = int(max_train)
        self.seed = int(seed)
        self.n_restarts_optimizer = int(n_restarts_optimizer)
        self.length_scale_bounds = length_scale_bounds
        self.noise_level_bounds = noise_level_bounds
        self.n_train_used = 0
        self._gps: list[Any] = []

    def fit(self, dataset: ProfileDataset, *, fields: Sequence[str] | None = None) -> PCAGPBaseline:
        """Fit the PCA on all rows and one GP per component (on at most ``max_train`` rows).

        Args:
            dataset: Training data.
            fields: Fields to emulate (default: all of the dataset's).

        Returns:
            ``self``.
        """
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        start = time.perf_counter()
        x, z = self._prepare(dataset, fields)
        n = x.shape[0]
        if n > self.max_train:
            rows = np.sort(np.random.default_rng(self.seed).choice(n, self.max_train, replace=False))
            msg = (f"PCAGPBaseline: subsampling {self.max_train} of {n} training rows (seed "
                   f"{self.seed}) because exact GP cost grows as N^3; raise max_train to use more.")
            logger.info(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
            x, z = x[rows], z[rows]
        self.n_train_used = int(x.shape[0])
        d = x.shape[1]
        self._gps = []
        for k in range(z.shape[1]):
            # Distances between standardised points grow like sqrt(d): starting the ARD length
            # scales at ~sqrt(d)/2 keeps the optimiser out of the "all white noise" optimum
            # in many dimensions (e.g. 35 parameters + P(k) components) and changes nothing
            # for d <= 4.
            kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(
                length_scale=np.full(d, max(1.0, 0.5 * np.sqrt(d))), length_scale_bounds=self.length_scale_bounds
            ) + WhiteKernel(1e-3, self.noise_level_bounds)
            gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True,
                                          n_restarts_optimizer=self.n_restarts_optimizer,
                                          random_state=self.seed + k)
            gp.fit(x, z[:, k])
            self._gps.append(gp)
        self.fit_seconds = time.perf_counter() - start
        return self

    def _predict_coeffs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, variances = [], []
        for gp in self._gps:
            m, s = gp.predict(x, return_std=True)
            means.append(m)
            variances.append(np.asarray(s) ** 2)
        return np.stack(means, axis=1), np.stack(variances, axis=1)


# ---------------------------------------------------------------------- PCA + RBF
def _group_folds(n: int, groups: np.ndarray | None, k: int, seed: int) -> np.ndarray:
    """Fold id [n] per row; rows of one group share a fold (no leakage between folds)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) if groups is None else np.unique(groups, return_inverse=True)[1]
    n_groups = int(labels.max()) + 1
    fold_of_group = rng.permutation(n_groups) % k
    return fold_of_group[labels]


class PCARBFBaseline(_PCABaseline):
    """``scipy.interpolate.RBFInterpolator`` on the PCA coefficients (emu_CAMELS/ostrich pattern).

    An RBF interpolator has no predictive variance, so a constant variance per
    output (radius and field) is estimated by K-fold cross-validation on the
    training data: the RBF is refitted without each fold (folds respect
    ``dataset.groups``, e.g. whole simulations) and the mean squared held-out residual
    of the valid entries, in log10 units, is the variance. For speed the scaler and
    PCA basis are not refitted per fold. Because those residuals are measured against
    the (possibly noisy) training targets, this variance already contains the target
    noise; coverage against noisy targets that adds the noise again is conservative.

    Args:
        n_components: Fixed number of PCA components, or None to choose by
            ``explained_variance``.
        kernel: RBF kernel name accepted by ``RBFInterpolator``.
        smoothing: Smoothing parameter (0 interpolates exactly; > 0 regularises noisy
            targets; in standardised coefficient units).
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
                         max_components=max_components)
        if smoothing < 0:
            raise ConfigError(f"smoothing: {smoothing} < 0; pass a value >= 0.")
        if cv_folds < 2:
            raise ConfigError(f"cv_folds: {cv_folds} < 2; the variance estimate needs at least 2 folds.")
        self.kernel = kernel
        self.smoothing = float(smoothing)
        self.degree = degree
        self.epsilon = epsilon
        self.neighbors = neighbors
        self.cv_folds = int(cv_folds)
        self.seed = int(seed)
        self.cv_var_log10: np.ndarray | None = None  # [D]
        self._rbf: Any = None

    def _make(self, x: np.ndarray, z: np.ndarray) -> Any:
        from scipy.interpolate import RBFInterpolator

        kwargs: dict[str, Any] = {"kernel": self.kernel, "smoothing": self.smoothing,
                                  "neighbors": self.neighbors}
        if self.degree is not None:
            kwargs["degree"] = self.degree
        if self.epsilon is not None:
            kwargs["epsilon"] = self.epsilon
        try:
            return RBFInterpolator(x, z, **kwargs)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise DataError(
                f"PCARBFBaseline: the RBF system could not be built ({exc}); remove duplicate input "
                "rows, raise smoothing, or pick another kernel/epsilon."
            ) from None

    def fit(self, dataset: ProfileDataset, *, fields: Sequence[str] | None = None) -> PCARBFBaseline:
        """Fit the PCA, the RBF on all rows, and the K-fold variance.

        Args:
            dataset: Training data.
            fields: Fields to emulate (default: all of the dataset's).

        Returns:
            ``self``.
        """
        start = time.perf_counter()
        x, z = self._prepare(dataset, fields)
        assert self._pca is not None
        pca = self._pca
        folds = _group_folds(x.shape[0], dataset.groups, self.cv_folds, self.seed)
        sq = np.zeros(pca.ys.shape[1])
        counts = np.zeros(pca.ys.shape[1])
        for k in range(self.cv_folds):
            held = folds == k
            if not held.any() or held.all():
                continue
            rbf = self._make(x[~held], z[~held])
            y_hat = rbf(x[held]) @ pca.basis  # standardised log10
            valid = pca.valid[held]
            sq += np.where(valid, (y_hat - pca.ys[held]) ** 2, 0.0).sum(axis=0)
            counts += valid.sum(axis=0)
        var_std = np.where(counts > 0, sq / np.maximum(counts, 1), np.nan)
        fallback = np.nanmean(var_std) if np.isfinite(var_std).any() else 1.0
        var_std = np.where(np.isfinite(var_std), var_std, fallback)
        self.cv_var_log10 = np.maximum(var_std * pca.scale**2, 1e-12)
        self._rbf = self._make(x, z)
        self.fit_seconds = time.perf_counter() - start
        return self

    def _predict_coeffs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.asarray(self._rbf(x)).reshape(x.shape[0], -1)
        return z, np.zeros_like(z)

    def predict(
        self,
        params: np.ndarray,
        log10_mass: np.ndarray,
        pk_ratio: np.ndarray | None = None,
        redshift: np.ndarray | None = None,
    ) -> Prediction:
        """Predict log10 profiles; the variance is the constant K-fold estimate per radius.

        Args:
            params: Raw (linear) parameters [n, p], in the training column order.
            log10_mass: log10(M/Msun), [n] (or a scalar for all rows).
            pk_ratio: P_hydro/P_dmo [n, n_k], required if fitted with it.
            redshift: [n], required if the training redshift varied.

        Returns:
            ``{field: (mean_log10, var_log10)}``, each [n, n_r].
        """
        self._require_fit()
        assert self._inputs is not None and self._pca is not None and self.cv_var_log10 is not None
        x = self._inputs.transform(params, log10_mass, pk_ratio, redshift)
        z, _ = self._predict_coeffs(x)
        mean = (z @ self._pca.basis) * self._pca.scale + self._pca.center
        var = np.broadcast_to(self.cv_var_log10, mean.shape).copy()
        n_r = self._pca.n_r
        return {f: (mean[:, i * n_r:(i + 1) * n_r], var[:, i * n_r:(i + 1) * n_r])
                for i, f in enumerate(self._pca.fields)}


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
        ``coverage_95``, and ``fit_seconds``, ``predict_seconds_per_1000``,
        ``n_test``, ``frac_err_ratio`` and ``predict_time_ratio`` (relative to the
        first row; None where undefined). Prediction time is the wall time of one
        call on the whole test set, after one warm-up call.
    """
    rows: list[dict[str, Any]] = []
    methods: list[tuple[str, Any, float | None]] = []
    if emulator_like is not None:
        methods.append((emulator_name, emulator_like, emulator_fit_seconds))
        if fields is None:
            fields = tuple(predict_dataset(emulator_like, test.subset(slice(0, 1))))
    for baseline in baselines:
        baseline.fit(train, fields=fields)
        methods.append((getattr(baseline, "name", type(baseline).__name__), baseline,
                        float(baseline.fit_seconds)))
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
