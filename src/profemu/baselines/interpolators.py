"""Interpolators of PCA coefficients with cross-validated residual variance: :class:`PCARBFBaseline`
(scipy RBF, the emu_CAMELS / ostrich pattern) and :class:`PCAMLPBaseline` (a small scikit-learn MLP,
the CosmoPower pattern).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from profemu.baselines.base import _Design, _DesignBaseline, logger
from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import decode_mean
from profemu.errors import ConfigError, DataError

__all__ = ["PCAMLPBaseline", "PCARBFBaseline"]


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
