"""Output heads: the heteroscedastic ``(mean, var)`` head and the monotone profile head.

Every model ends in :class:`OutputHead`, which turns the last hidden features into a
predicted mean and a strictly positive variance, both ``[n, out_dim]`` in
standardised target units. When monotone fields are requested the mean comes from
:class:`MonotoneHead`, which builds each such log10 profile as a value at the
innermost radius minus a cumulative sum of non-negative slopes, so it cannot
increase with radius whatever the weights are.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from profemu.config import ModelConfig
from profemu.models.spec import OutputSpec

__all__ = [
    "INITIAL_VARIANCE",
    "MonotoneHead",
    "OutputHead",
    "inverse_softplus",
    "monotone_slope_bias",
]

#: Predicted variance at initialisation (before the floor), in standardised units.
INITIAL_VARIANCE = 0.5
#: Smallest initial |d log10 y / d log10 r| of a monotone field.
_MIN_INITIAL_SLOPE = 0.05


def inverse_softplus(y: float | np.ndarray) -> np.ndarray:
    """x such that softplus(x) = y, for y > 0 (numpy, float64)."""
    y = np.asarray(y, dtype=np.float64)
    return y + np.log(-np.expm1(-y))


def monotone_slope_bias(spec: OutputSpec, field_name: str) -> np.ndarray:
    """Initial bias of a monotone field's Dense layer, ``(n_r,)``.

    Entry 0 (the standardised value at the innermost radius) starts at 0, i.e. at the
    target centre; entries 1.. start so that softplus gives the mean log-slope of the
    target centre between neighbouring radii (at least 0.05), so a fresh model already
    draws the average profile shape.
    """
    sl = spec.field_slice(field_name)
    center = np.asarray(spec.target_center[sl])
    dlog_r = np.diff(np.asarray(spec.log10_radius))
    slopes = np.maximum(-np.diff(center) / dlog_r, _MIN_INITIAL_SLOPE)
    return np.concatenate([[0.0], inverse_softplus(slopes)]).astype(np.float32)


def _constant_init(value: np.ndarray):
    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32) -> jax.Array:
        del key
        return jnp.broadcast_to(jnp.asarray(value, dtype), shape)

    return init


class MonotoneHead(nn.Module):
    """Mean head whose monotone fields are non-increasing in radius by construction.

    For a monotone field with standardisation ``(c_j, s_j)`` at radius ``j`` it
    predicts ``v`` and raw slopes ``u_1..u_{n_r-1}`` (one Dense layer of width n_r):

        log10 y_0 = c_0 + s_0 v
        log10 y_j = log10 y_0 - sum_{i<=j} softplus(u_i) (log10 r_i - log10 r_{i-1})
        mean_j    = (log10 y_j - c_j) / s_j

    Other fields get a plain Dense layer of width n_r. Parameters are named
    ``field_<i>`` after the field's position in ``spec.field_names``.

    Attributes:
        spec: The output spec (grid outputs, no PCA).
        monotone_fields: Fields built monotone (a subset of ``spec.field_names``).
    """

    spec: OutputSpec
    monotone_fields: tuple[str, ...]

    @nn.compact
    def __call__(self, hidden: jax.Array) -> jax.Array:
        """Map features ``[n, h]`` to the standardised mean ``[n, F * n_r]``."""
        spec = self.spec
        dlog_r = jnp.asarray(np.diff(spec.log10_radius), jnp.float32)
        parts = []
        for i, field_name in enumerate(spec.field_names):
            sl = spec.field_slice(field_name)
            if field_name not in self.monotone_fields:
                dense = nn.Dense(
                    spec.n_r, kernel_init=nn.initializers.xavier_uniform(), name=f"field_{i}"
                )
                parts.append(dense(hidden))
                continue
            dense = nn.Dense(
                spec.n_r,
                kernel_init=nn.initializers.xavier_uniform(),
                bias_init=_constant_init(monotone_slope_bias(spec, field_name)),
                name=f"field_{i}",
            )
            raw = dense(hidden)
            center = jnp.asarray(spec.target_center[sl], jnp.float32)
            scale = jnp.asarray(spec.target_scale[sl], jnp.float32)
            log_inner = center[0] + scale[0] * raw[..., :1]
            drops = jnp.cumsum(jax.nn.softplus(raw[..., 1:]) * dlog_r, axis=-1)
            log_profile = jnp.concatenate([log_inner, log_inner - drops], axis=-1)
            parts.append((log_profile - center) / scale)
        return jnp.concatenate(parts, axis=-1)


class OutputHead(nn.Module):
    """Heteroscedastic head: features ``[n, h]`` -> ``(mean, var)``, each ``[n, out_dim]``.

    ``var = softplus(raw) + cfg.var_floor`` with ``raw`` from a Dense layer (or, when
    ``cfg.heteroscedastic`` is False, a learnt per-output constant ``var_raw``); the
    raw bias starts at softplus⁻¹(0.5) so initial variances are ~0.5 in standardised
    units. The mean comes from a Dense layer ``mean`` or a :class:`MonotoneHead`
    (also named ``mean``) when ``monotone_fields`` is non-empty.

    Attributes:
        cfg: Model configuration (``var_floor``, ``heteroscedastic``).
        spec: Output spec.
        monotone_fields: Resolved monotone fields (see
            :meth:`OutputSpec.resolve_monotone_fields`).
    """

    cfg: ModelConfig
    spec: OutputSpec
    monotone_fields: tuple[str, ...] = ()

    @nn.compact
    def __call__(self, hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        out_dim = self.spec.out_dim
        if self.monotone_fields:
            mean = MonotoneHead(self.spec, self.monotone_fields, name="mean")(hidden)
        else:
            mean = nn.Dense(out_dim, kernel_init=nn.initializers.xavier_uniform(), name="mean")(
                hidden
            )
        raw_bias = float(inverse_softplus(INITIAL_VARIANCE))
        if self.cfg.heteroscedastic:
            raw = nn.Dense(
                out_dim,
                # Small weights: the variance starts nearly input-independent.
                kernel_init=nn.initializers.variance_scaling(0.01, "fan_avg", "uniform"),
                bias_init=nn.initializers.constant(raw_bias),
                name="var",
            )(hidden)
        else:
            raw = jnp.broadcast_to(
                self.param("var_raw", nn.initializers.constant(raw_bias), (out_dim,)), mean.shape
            )
        var = jax.nn.softplus(raw) + jnp.asarray(self.cfg.var_floor, mean.dtype)
        return mean, var
