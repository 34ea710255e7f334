"""Masked data terms: Gaussian NLL, beta-NLL, MSE, Huber and pinball losses.

Every loss takes the model's ``mean`` and ``var`` [n, D] in standardised log10
space, the ``target`` [n, D], a ``mask`` [n, D] (1 = valid, 0 = ignore; any
non-negative weight works, e.g. a validity mask times a per-sample weight) and
returns the mean over valid entries (0 when nothing is valid). Entries under
``mask == 0`` never influence the value or the gradient, even if the target
holds NaN there.

All losses are finite for any finite input: the variance is clamped to
``[VAR_FLOOR, VAR_CEIL]`` and residuals to ``±RESIDUAL_CLIP`` before squaring.
If training still produces NaNs, the loss is not the place to look: check the
inputs (they must be finite) and lower the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import jax
import jax.numpy as jnp

from profemu.config import LossConfig
from profemu.errors import ConfigError

__all__ = [
    "LOSSES",
    "RESIDUAL_CLIP",
    "VAR_CEIL",
    "VAR_FLOOR",
    "beta_nll",
    "data_loss",
    "gaussian_nll",
    "gaussian_nll_elements",
    "huber",
    "masked_mean",
    "mse",
    "pinball",
]

VAR_FLOOR = 1e-6
"""Smallest variance used in a likelihood [standardised units²]."""
VAR_CEIL = 1e30
"""Largest variance used in a likelihood, so that ``var + noise_var`` cannot overflow."""
RESIDUAL_CLIP = 1e10
"""Residuals are clipped to this magnitude so squares stay finite in float32."""

_LOG_2PI = math.log(2.0 * math.pi)


def _sanitize(target: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Zero the target where masked (so NaN there cannot leak into gradients); mask as float."""
    mask = jnp.asarray(mask, dtype=jnp.result_type(float))
    valid = mask > 0
    return jnp.where(valid, target, 0.0), jnp.where(valid, mask, 0.0)


def _residual(mean: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.clip(target - mean, -RESIDUAL_CLIP, RESIDUAL_CLIP)


def _clamp_var(var: jax.Array) -> jax.Array:
    return jnp.clip(var, VAR_FLOOR, VAR_CEIL)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Weighted mean of ``values`` over ``mask > 0``; 0 when the mask sums to 0.

    Args:
        values: Per-element values [n, D].
        mask: Non-negative weights [n, D] (0 = ignore).

    Returns:
        Scalar ``sum(mask * values) / max(sum(mask), tiny)``; masked NaNs are ignored.
    """
    mask = jnp.asarray(mask, dtype=values.dtype)
    total = jnp.sum(jnp.where(mask > 0, values * mask, 0.0))
    return total / jnp.maximum(jnp.sum(mask), jnp.finfo(values.dtype).tiny)


def gaussian_nll_elements(mean: jax.Array, var: jax.Array, target: jax.Array) -> jax.Array:
    """Per-element Gaussian negative log-likelihood (for metrics).

    Args:
        mean: Predicted mean [n, D].
        var: Predicted (total) variance [n, D], clamped to ``[VAR_FLOOR, VAR_CEIL]``.
        target: Observed values [n, D].

    Returns:
        ``0.5 * (log(2π var) + (target - mean)² / var)`` [n, D].
    """
    var = _clamp_var(var)
    return 0.5 * (_LOG_2PI + jnp.log(var) + jnp.square(_residual(mean, target)) / var)


def _total_var(var: jax.Array, noise_var: jax.Array | None, mask: jax.Array) -> jax.Array:
    if noise_var is None:
        return var
    return var + jnp.where(mask > 0, jnp.maximum(noise_var, 0.0), 0.0)


def gaussian_nll(
    mean: jax.Array,
    var: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    noise_var: jax.Array | None = None,
) -> jax.Array:
    """Masked mean Gaussian NLL; ``noise_var`` (known data noise) is added to ``var`` if given."""
    target, mask = _sanitize(target, mask)
    nll = gaussian_nll_elements(mean, _total_var(var, noise_var, mask), target)
    return masked_mean(nll, mask)


def beta_nll(
    mean: jax.Array,
    var: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    noise_var: jax.Array | None = None,
    *,
    beta: float = 0.5,
) -> jax.Array:
    """Masked beta-NLL (Seitzer et al. 2022): NLL weighted by ``stop_gradient(var) ** beta``.

    ``beta = 0`` is the plain NLL; ``beta = 1`` gives the mean MSE-like gradients.
    """
    target, mask = _sanitize(target, mask)
    total = _clamp_var(_total_var(var, noise_var, mask))
    weight = jax.lax.stop_gradient(total) ** beta
    return masked_mean(gaussian_nll_elements(mean, total, target) * weight, mask)


def mse(mean: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked mean squared error."""
    target, mask = _sanitize(target, mask)
    return masked_mean(jnp.square(_residual(mean, target)), mask)


def huber(mean: jax.Array, target: jax.Array, mask: jax.Array, *, delta: float = 1.0) -> jax.Array:
    """Masked Huber loss: quadratic below ``delta``, linear above [standardised units]."""
    target, mask = _sanitize(target, mask)
    abs_r = jnp.abs(_residual(mean, target))
    quad = jnp.minimum(abs_r, delta)
    return masked_mean(0.5 * jnp.square(quad) + delta * (abs_r - quad), mask)


def pinball(
    mean: jax.Array,
    var: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    *,
    quantiles: tuple[float, ...] | list[float] = (0.16, 0.5, 0.84),
) -> jax.Array:
    """Masked pinball (quantile) loss averaged over ``quantiles``.

    The model mean is the median; quantile ``q`` is predicted as
    ``mean + z_q * sqrt(var)`` with ``z_q`` the standard-normal quantile, so
    the variance is learnt from the spread of the residuals.
    """
    target, mask = _sanitize(target, mask)
    if not quantiles:
        raise ConfigError("loss.quantiles: needs at least one quantile in (0, 1) for the pinball loss.")
    std = jnp.sqrt(_clamp_var(var))
    losses = []
    for q in quantiles:
        z = NormalDist().inv_cdf(float(q))
        pred = mean + z * std if q != 0.5 else mean
        r = _residual(pred, target)
        losses.append(jnp.maximum(q * r, (q - 1.0) * r))
    return masked_mean(sum(losses) / len(losses), mask)


LOSSES: dict[str, Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None, LossConfig], jax.Array]] = {
    "nll": lambda m, v, t, k, nv, c: gaussian_nll(m, v, t, k, nv),
    "beta_nll": lambda m, v, t, k, nv, c: beta_nll(m, v, t, k, nv, beta=c.beta),
    "mse": lambda m, v, t, k, nv, c: mse(m, t, k),
    "huber": lambda m, v, t, k, nv, c: huber(m, t, k, delta=c.huber_delta),
    "pinball": lambda m, v, t, k, nv, c: pinball(m, v, t, k, quantiles=tuple(c.quantiles)),
}
"""Name -> ``f(mean, var, target, mask, noise_var, cfg)``, the choices of ``loss.likelihood``."""


def data_loss(
    mean: jax.Array,
    var: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    noise_var: jax.Array | None,
    cfg: LossConfig,
) -> jax.Array:
    """The data term selected by ``cfg.likelihood``.

    Args:
        mean: Predicted mean [n, D] in standardised log10 units.
        var: Predicted variance [n, D] (> 0).
        target: Targets [n, D]; any value (even NaN) where ``mask`` is 0.
        mask: Weights [n, D], 1 = valid, 0 = ignore.
        noise_var: Known noise variance of the targets [n, D] (0 = unknown), added to
            ``var`` in the likelihoods when ``cfg.use_target_noise``; may be None.
        cfg: Loss configuration.

    Returns:
        Scalar mean over valid entries; 0 when nothing is valid.
    """
    try:
        fn = LOSSES[cfg.likelihood]
    except KeyError:
        raise ConfigError(
            f"loss.likelihood: {cfg.likelihood!r} is not known; choose one of {sorted(LOSSES)}."
        ) from None
    return fn(mean, var, target, mask, noise_var if cfg.use_target_noise else None, cfg)
