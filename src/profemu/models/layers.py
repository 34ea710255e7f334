"""Network layers written once, as pure functions of a parameter dict and an array module.

Every function takes ``xp`` (``numpy`` or ``jax.numpy``) and parameters whose leaves
may carry leading *member* axes: with ``kernel`` [M, in, out] and inputs [n, in] a
layer returns [M, n, out], so a whole ensemble is one batched matmul per layer in
numpy and in JAX; with ``kernel`` [in, out] (one member, e.g. under ``jax.vmap``) it
returns [n, out]. Inputs are shared by all members.

This module imports numpy only; JAX is imported inside :func:`dropout`, the only
training-time layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from profemu.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "LAYER_NORM_EPS",
    "activation",
    "attention_pool",
    "dense",
    "dense3",
    "dropout",
    "factorisation_machine",
    "inverse_softplus",
    "layer_norm",
    "monotone_profiles",
    "softplus",
]

Array = Any
Params = Mapping[str, Any]

#: Epsilon of :func:`layer_norm` (as flax.linen.LayerNorm).
LAYER_NORM_EPS = 1e-6
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def softplus(x: Array, xp: Any = np) -> Array:
    """log(1 + e^x), overflow-free."""
    return xp.logaddexp(x, 0.0)


def inverse_softplus(y: float | np.ndarray) -> np.ndarray:
    """x such that softplus(x) = y, for y > 0 (numpy, float64)."""
    y = np.asarray(y, dtype=np.float64)
    return y + np.log(-np.expm1(-y))


def _gelu(x: Array, xp: Any) -> Array:
    # the tanh approximation (jax.nn.gelu's default)
    return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


def _silu(x: Array, xp: Any) -> Array:
    # x * sigmoid(x), the sigmoid through tanh so that it never overflows
    return x * (0.5 * (1.0 + xp.tanh(0.5 * x)))


#: Activation functions by ``ModelConfig.activation`` name, ``f(x, xp)``.
ACTIVATIONS: dict[str, Callable[[Array, Any], Array]] = {
    "gelu": _gelu,
    "silu": _silu,
    "tanh": lambda x, xp: xp.tanh(x),
    "relu": lambda x, xp: xp.maximum(x, 0.0),
    "softplus": softplus,
}


def activation(name: str) -> Callable[[Array, Any], Array]:
    """The activation called ``name``; ConfigError for an unknown name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"model.activation: {name!r} is unknown; choose one of {sorted(ACTIVATIONS)}.") from None


def dense(p: Params, x: Array, xp: Any = np) -> Array:
    """``x [..., n, in] @ kernel [..., in, out] + bias [..., out]`` -> ``[..., n, out]``."""
    return xp.matmul(x, p["kernel"]) + p["bias"][..., None, :]


def dense3(p: Params, x: Array, xp: Any = np) -> Array:
    """:func:`dense` on token inputs ``[..., n, T, in]`` -> ``[..., n, T, out]``."""
    return xp.matmul(x, p["kernel"][..., None, :, :]) + p["bias"][..., None, None, :]


def dropout(x: Array, rate: float, key: Any) -> Array:
    """Inverted dropout (JAX only, training only): zero a fraction ``rate``, rescale the rest."""
    import jax
    import jax.numpy as jnp

    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def layer_norm(p: Params, x: Array, xp: Any = np) -> Array:
    """LayerNorm over the last axis of token features ``[..., n, T, E]`` (exact two-pass variance)."""
    mu = x.mean(axis=-1, keepdims=True)
    centred = x - mu
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / xp.sqrt(var + LAYER_NORM_EPS) * p["scale"][..., None, None, :] + p["bias"][..., None, None, :]


def factorisation_machine(p: Params, x: Array, xp: Any = np) -> Array:
    """Pairwise interactions of the inputs, ``1/2 [(x V)^2 - x^2 V^2]``: ``[..., n, p] -> [..., n, E]``.

    Feature ``e`` is ``sum_{i<j} V_ie V_je x_i x_j``, every pair of parameters
    weighted by the product of their factors, at O(p E) cost instead of O(p^2).
    """
    factors = p["factors"]
    xv = xp.matmul(x, factors)
    x2v2 = xp.matmul(x * x, factors * factors)
    return 0.5 * (xv * xv - x2v2)


def attention_pool(p: Params, scalars: Array, heads: int, xp: Any = np) -> Array:
    """Self-attention over one token per input scalar, mean-pooled: ``[n, T] -> [..., n, E]``.

    Token ``t`` is ``scalars[t] * value_embedding[t] + identity_embedding[t]``; a
    multi-head dot-product attention mixes the tokens, a residual LayerNorm follows.
    """
    value = p["value_embedding"][..., None, :, :]  # [..., 1, T, E]
    ident = p["identity_embedding"][..., None, :, :]
    tokens = scalars[..., :, None] * value + ident  # [..., n, T, E]
    e = tokens.shape[-1]
    d = e // heads

    def split(name: str) -> Array:
        out = dense3(p[name], tokens, xp)
        return out.reshape(*out.shape[:-1], heads, d)  # [..., n, T, H, d]

    query, key, val = split("query"), split("key"), split("value")
    logits = xp.einsum("...qhd,...khd->...hqk", query, key) / math.sqrt(d)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = xp.exp(logits)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    mixed = xp.einsum("...hqk,...khd->...qhd", weights, val)
    attended = dense3(p["out"], mixed.reshape(*mixed.shape[:-2], e), xp)
    return layer_norm(p["norm"], tokens + attended, xp).mean(axis=-2)


def monotone_profiles(raw: Array, center: Array, scale: Array, log10_radius: Array, xp: Any = np) -> Array:
    """Standardised profiles that never increase with radius, from raw values ``[..., n_r]``.

    ``log10 y_0 = c_0 + s_0 raw_0`` and ``log10 y_j = log10 y_{j-1} - softplus(raw_j)
    (log10 r_j - log10 r_{j-1})``; returned standardised, ``(log10 y - c) / s``.
    """
    dlog_r = log10_radius[1:] - log10_radius[:-1]
    log_inner = center[0] + scale[0] * raw[..., :1]
    drops = xp.cumsum(softplus(raw[..., 1:], xp) * dlog_r, axis=-1)
    log_profile = xp.concatenate([log_inner, log_inner - drops], axis=-1)
    return (log_profile - center) / scale


def interpolate_rows(values: Array, grid: Array, queries: Array, xp: Any = np) -> Array:
    """Each row's curve on a uniform grid, read at that row's own positions.

    Linear interpolation, continued as a straight line beyond either end of the grid
    (a power law when both axes are logarithmic). Differentiable in ``values`` and in
    ``queries`` (piecewise linearly).

    Args:
        values: ``[..., n, K]`` curve values on ``grid`` (a leading member axis broadcasts).
        grid: ``[K]`` uniformly spaced, increasing positions (K >= 2).
        queries: ``[n, J]`` positions to read for each of the ``n`` rows.

    Returns:
        ``[..., n, J]``.
    """
    k = grid.shape[0]
    t = (queries - grid[0]) / (grid[1] - grid[0])
    idx = xp.clip(xp.floor(t), 0, k - 2)
    frac = t - idx
    slots = xp.arange(k, dtype=t.dtype)[None, :, None]  # [1, K, 1]
    weights = (slots == idx[:, None, :]) * (1.0 - frac)[:, None, :] + (slots == idx[:, None, :] + 1) * frac[:, None, :]
    return xp.einsum("...nk,nkj->...nj", values, weights.astype(values.dtype))


_LN10 = 2.302585092994046


def gas_fraction_bound(log10_profile: Array, weights: Array, xp: Any = np, slope: Array | None = None
                       ) -> tuple[Array, Array | None]:
    """``log10 (ρ / (1 + F))`` with ``F = Σ_k w_k ρ_k`` (one field, overflow-free).

    With ``ρ`` a gas density over its self-similar scale on radii in units of R_Δ and ``w``
    :func:`~profemu.physics.halo.enclosed_fraction_weights`, ``F`` is the gas inside R_Δ over
    ``f_b M_Δ``; the bounded profile's is ``F / (1 + F) < 1``. A network whose ``log F``
    grows linearly with log mass then predicts ``1 / (1 + (M_c / M)^β)``: a gas fraction
    that levels off towards the cosmic one, the baryon-correction model's form.

    Args:
        log10_profile: log10 ρ [..., n_r].
        weights: ``w`` [n_r] (>= 0; zeros beyond R_Δ).
        xp: numpy or jax.numpy.
        slope: Optional d log10 ρ / d log10 M [..., n_r], returned for the bounded profile.

    Returns:
        ``(bounded [..., n_r], its slope or None)``.
    """
    w = xp.asarray(weights, log10_profile.dtype)
    used = w > 0
    log_w = xp.log(xp.where(used, w, 1.0))
    terms = xp.where(used, _LN10 * log10_profile + log_w, -xp.inf)  # ln(w_k ρ_k)
    top = xp.max(terms, axis=-1, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    share = xp.where(used, xp.exp(terms - top), 0.0)
    log_f = top + xp.log(xp.sum(share, axis=-1, keepdims=True))  # ln F
    bounded = log10_profile - softplus(log_f, xp) / _LN10  # - log10(1 + F)
    if slope is None:
        return bounded, None
    # d log10(1 + F)/d log10 M = F/(1 + F) * Σ_k (w_k ρ_k / F) d log10 ρ_k / d log10 M
    weight = share / xp.sum(share, axis=-1, keepdims=True)
    fraction = 1.0 / (1.0 + xp.exp(-log_f))
    return bounded, slope - fraction * xp.sum(weight * slope, axis=-1, keepdims=True)

