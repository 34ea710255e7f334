"""Fisher matrix of the free parameters at a point, via ``jax.jacfwd`` of the mean prediction.

For the Gaussian likelihood of :mod:`profemu.inference.likelihood`::

    F_ij = J_i^T P J_j + 1/2 tr(P dC_i P dC_j) + diag(Gaussian-prior precisions)

with ``J = d m / d theta`` [D, k] (the predicted data vector's Jacobian in sampling
space, from ``jax.jacfwd``), ``C`` the total covariance at the point, ``P = C^-1``, and
``dC_i = d C / d theta_i``: non-zero only with ``model_covariance="predictive"``, where
the emulator's predictive variance depends on the parameters (the other modes use a
parameter-independent covariance). That second term is the information the likelihood
draws from how the predicted scatter changes with the parameters; where the emulator's
variance, not the observation's errors, dominates ``C`` it can be the larger one, and
the posterior of that likelihood is correspondingly narrower. ``include_variance=False``
leaves it out (the Fisher matrix of the mean alone). With the amplitude nuisance
(Gaussian prior of width ``sigma``, or flat), marginalising it replaces ``C`` by
``C + sigma^2 w w^T``, so ``P = C^-1 - C^-1 w w^T C^-1 / (w^T C^-1 w + 1/sigma^2)``
(``1/sigma^2 = 0`` for the flat prior).

The uniform box prior is not part of ``F`` by default; marginal errors
``sqrt(diag(F^-1))`` then describe the likelihood's width alone. Where some parameters
are barely constrained by the data (their posterior fills the box), the box truncates
their degeneracies with the others, and the posterior of even a well-constrained
parameter is narrower than that marginal error (on the lh6 mock universe, about 1.8x).
``include_box_prior=True`` adds the box as a Gaussian of equal variance (std =
width/sqrt(12) in sampling space), the usual flat-prior treatment of a Fisher forecast,
which then agrees with the posterior width where the posterior is close to Gaussian.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.errors import DataError
from profemu.inference.likelihood import LogPosterior

__all__ = ["FisherResult", "fisher_matrix"]


@dataclass(frozen=True)
class FisherResult:
    """A Fisher matrix and the marginal errors it implies.

    Attributes:
        names: Free parameter names (rows/columns).
        theta: [k] the point in sampling space (log10 for log-sampled parameters).
        values: Name -> physical value at the point.
        matrix: [k, k] Fisher matrix in sampling space.
        covariance: [k, k] its inverse (pseudo-inverse if singular).
        errors: [k] marginal 1-sigma errors in sampling space, sqrt(diag(F^-1)).
        errors_physical: [k] the same propagated to physical values (for log-sampled
            parameters ``ln(10) * value * error``).
        condition: Condition number of ``matrix`` (large: a degenerate direction).
    """

    names: tuple[str, ...]
    theta: np.ndarray
    values: dict[str, float]
    matrix: np.ndarray
    covariance: np.ndarray
    errors: np.ndarray
    errors_physical: np.ndarray
    condition: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "names": list(self.names),
            "point_sampling_space": self.theta.tolist(),
            "point": dict(self.values),
            "fisher_matrix": self.matrix.tolist(),
            "covariance": self.covariance.tolist(),
            "marginal_errors_sampling_space": dict(zip(self.names, self.errors.tolist(), strict=True)),
            "marginal_errors": dict(zip(self.names, self.errors_physical.tolist(), strict=True)),
            "condition_number": self.condition,
        }


def fisher_matrix(
    log_posterior: LogPosterior,
    at: Any,
    *,
    include_prior: bool = True,
    include_variance: bool = True,
    include_box_prior: bool = False,
) -> FisherResult:
    """Fisher matrix of ``log_posterior``'s free parameters at ``at``.

    Args:
        log_posterior: The log posterior (its observation supplies the covariance).
        at: The point: [k] in sampling space, or {name: physical value} of the free
            parameters (names of fixed parameters are ignored).
        include_prior: Add the Gaussian priors' precisions (the box prior never enters).
        include_variance: Add ``1/2 tr(P dC_i P dC_j)``, the information in the
            parameter dependence of the predictive variance (``"predictive"`` mode only;
            zero in the other modes).
        include_box_prior: Add the uniform prior box as independent Gaussians of equal
            variance, precision ``12 / width^2`` per parameter (sampling space).

    Raises:
        DataError: the point is outside the prior box or misses a name.
    """
    import jax
    import jax.numpy as jnp

    space = log_posterior.space
    if isinstance(at, Mapping):
        theta = space.to_sampling(at)
    else:
        theta = np.asarray(at, dtype=float)
        if theta.shape != (space.dim,):
            raise DataError(f"at: expected {space.dim} values ({list(space.free)}), got shape {theta.shape}.")
    if not space.inside(theta):
        raise DataError(
            "at: the point is outside the prior box (training range); the emulator cannot be differentiated there."
        )
    data = {k: jnp.asarray(v) for k, v in log_posterior.data.items()}
    model = log_posterior._model
    t = jnp.asarray(theta, dtype=jnp.float32)
    def mean_and_variance(x: Any) -> tuple[Any, Any]:
        m, c = model(x, data)
        return m, jnp.diagonal(c)

    # one forward-mode pass for the mean and the diagonal of C (the predictive variance): [D, k] each
    jac, dvar = (np.asarray(a, dtype=np.float64) for a in jax.jacfwd(mean_and_variance)(t))
    cov = np.asarray(model(t, data)[1], dtype=np.float64)
    w = np.asarray(log_posterior.data["w"], dtype=np.float64)
    jac = jac * w[:, None]
    precision = np.linalg.inv(cov)
    if log_posterior.amplitude_nuisance:
        cinv_w = precision @ w
        s = float(w @ cinv_w)
        sigma = log_posterior.structure[9]
        if sigma is not None:
            s += 1.0 / float(sigma) ** 2
        precision = precision - np.outer(cinv_w, cinv_w) / s
    precision = 0.5 * (precision + precision.T)
    fisher = jac.T @ precision @ jac
    if include_variance and log_posterior.model_covariance == "predictive":
        # only the diagonal (the predictive variance) depends on theta in this mode
        fisher = fisher + 0.5 * dvar.T @ (precision * precision) @ dvar
    if include_prior:
        fisher = fisher + np.diag(np.asarray(log_posterior.data["g_prec"], dtype=np.float64))
    if include_box_prior:
        fisher = fisher + np.diag(1.0 / np.asarray(space.prior_std, dtype=np.float64) ** 2)
    fisher = 0.5 * (fisher + fisher.T)
    eig = np.linalg.eigvalsh(fisher)
    condition = float(eig.max() / eig.min()) if eig.min() > 0 else float("inf")
    try:
        covariance = np.linalg.inv(fisher) if np.isfinite(condition) and condition < 1e14 else np.linalg.pinv(fisher)
    except np.linalg.LinAlgError:
        covariance = np.linalg.pinv(fisher)
    errors = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    phys = np.asarray(space.to_physical(theta), dtype=float)
    is_log = np.array(space.is_log, dtype=bool)
    errors_phys = np.where(is_log, np.log(10.0) * phys * errors, errors)
    return FisherResult(
        names=space.free, theta=theta, values={n: float(v) for n, v in zip(space.free, phys, strict=True)},
        matrix=fisher, covariance=covariance, errors=errors, errors_physical=errors_phys, condition=condition,
    )
