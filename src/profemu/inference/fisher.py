"""Fisher matrix of the free parameters at a point, via ``jax.jacfwd`` of the mean prediction.

For the Gaussian likelihood of :mod:`profemu.inference.likelihood`::

    F = J^T C^-1 J + diag(Gaussian-prior precisions)

with ``J = d m / d theta`` [D, k] (the predicted data vector's Jacobian in sampling
space, from ``jax.jacfwd``) and ``C`` the total covariance at the point. The term from
the parameter dependence of the emulator's predictive variance is left out (it is
small where the data, not the emulator, dominate the error budget). With the amplitude
nuisance, ``F`` is the Schur complement that marginalises over it. The uniform box
prior is not part of ``F``; marginal errors ``sqrt(diag(F^-1))`` therefore describe
the likelihood's width and agree with the posterior only where the posterior is close
to Gaussian and well inside the box.
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


def fisher_matrix(log_posterior: LogPosterior, at: Any, *, include_prior: bool = True) -> FisherResult:
    """Fisher matrix of ``log_posterior``'s free parameters at ``at``.

    Args:
        log_posterior: The log posterior (its observation supplies the covariance).
        at: The point: [k] in sampling space, or {name: physical value} of the free
            parameters (names of fixed parameters are ignored).
        include_prior: Add the Gaussian priors' precisions (the box prior never enters).

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
    jac = np.asarray(jax.jacfwd(lambda x: model(x, data)[0])(t), dtype=np.float64)  # [D, k]
    cov = np.asarray(model(t, data)[1], dtype=np.float64)
    w = np.asarray(log_posterior.data["w"], dtype=np.float64)
    jac = jac * w[:, None]
    cinv_j = np.linalg.solve(cov, jac)
    fisher = jac.T @ cinv_j
    if log_posterior.amplitude_nuisance:
        cinv_w = np.linalg.solve(cov, w)
        s = float(w @ cinv_w)
        sigma = log_posterior.structure[9]
        if sigma is not None:
            s += 1.0 / float(sigma) ** 2
        b = jac.T @ cinv_w
        fisher = fisher - np.outer(b, b) / s
    if include_prior:
        fisher = fisher + np.diag(np.asarray(log_posterior.data["g_prec"], dtype=np.float64))
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
