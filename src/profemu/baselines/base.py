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
3. **Variance** of the *mean profile* (what ``predict`` returns; :func:`profemu.metrics`
   adds the targets' declared noise on top): the model's own variance (GP posterior
   variance, propagated through the PCA basis) plus whatever part of the noise-like terms
   (GP white noise, PCA truncation residual, cross-validated RBF/MLP residuals) exceeds the
   training data's declared noise (``dataset.noise``, mean variance per column). Without
   declared noise, the noise-like terms count in full.

Every baseline has ``fit(dataset, *, fields=None) -> self``, ``predict(params, log10_mass,
pk_ratio=None, redshift=None) -> {field: (mean_log10, var_log10)}`` (each [n, n_r]),
``fit_seconds`` (wall time of the whole fit) and ``name``, so :func:`profemu.metrics.evaluate`
and :func:`compare` treat them like an Emulator. Long fits report progress through the
``profemu.baselines`` logger (INFO) and summarise optimiser trouble in one line.
scikit-learn and scipy's RBF are imported lazily.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import Transforms, decode_mean, decode_var
from profemu.emulator.inputs import InputSpec, check_inputs
from profemu.errors import ConfigError, DataError
from profemu.metrics import Predictor

__all__ = ["DEFAULT_GP_MAX_TRAIN", "Baseline", "Prediction"]

logger = logging.getLogger(__name__)

Prediction = dict[str, tuple[np.ndarray, np.ndarray]]

DEFAULT_GP_MAX_TRAIN = 3000
"""Default cap on the rows an exact GP is fitted on: at N = 3,000 one marginal-likelihood
evaluation takes ~6 s on one busy CPU core (O(N^3); 1.2 s at N = 1,600), and the refinement
on all rows needs up to 60 of them; above the cap a seeded random subset is used."""


@runtime_checkable
class Baseline(Predictor, Protocol):
    """A classic emulator: a :class:`~profemu.metrics.Predictor` (the Emulator's ``predict``)
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
        t = Transforms.fit(dataset, cfg, quiet=True)  # the baselines' recipe, not the run's choice
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
            t = Transforms.fit(dataset, cfg, quiet=True)
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
