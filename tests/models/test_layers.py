"""Tests of profemu.models.layers against independent references."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import ConfigError
from profemu.models import layers


@pytest.mark.parametrize("xp", [np, jnp])
def test_activations_match_jax_nn(xp):
    x = np.linspace(-30, 30, 2001, dtype=np.float32)
    refs = {"gelu": jax.nn.gelu(x, approximate=True), "silu": jax.nn.silu(x), "tanh": np.tanh(x),
            "relu": np.maximum(x, 0), "softplus": jax.nn.softplus(x)}
    for name, ref in refs.items():
        # atol: 1 + tanh(u) cancels for u << 0 in float32 (silu(-16) ~ -2e-6 comes out as 0)
        np.testing.assert_allclose(np.asarray(layers.activation(name)(xp.asarray(x), xp)), ref, rtol=2e-6, atol=2e-6)
    with pytest.raises(ConfigError, match="swish"):
        layers.activation("swish")


def test_inverse_softplus_round_trip():
    y = np.array([1e-4, 0.05, 0.5, 3.0, 40.0])
    np.testing.assert_allclose(np.log1p(np.exp(layers.inverse_softplus(y))), y, rtol=1e-10)


def test_dense_with_a_member_axis_equals_a_loop(rng):
    x = rng.normal(size=(7, 4)).astype(np.float32)
    p = {"kernel": rng.normal(size=(3, 4, 5)).astype(np.float32), "bias": rng.normal(size=(3, 5)).astype(np.float32)}
    out = layers.dense(p, x)
    assert out.shape == (3, 7, 5)
    for m in range(3):
        np.testing.assert_allclose(out[m], x @ p["kernel"][m] + p["bias"][m], rtol=1e-6)
        single = layers.dense({"kernel": p["kernel"][m], "bias": p["bias"][m]}, x, jnp)
        np.testing.assert_allclose(np.asarray(single), out[m], rtol=1e-5)


def test_factorisation_machine_is_the_sum_over_pairs(rng):
    x = rng.normal(size=(4, 5))
    v = rng.normal(size=(5, 3))
    out = layers.factorisation_machine({"factors": v}, x)
    ref = np.zeros((4, 3))
    for i, j in itertools.combinations(range(5), 2):
        ref += (v[i] * v[j])[None, :] * (x[:, i] * x[:, j])[:, None]
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


def test_attention_pool_matches_an_explicit_computation(rng):
    t, e, heads, n = 4, 6, 2, 3
    d = e // heads

    def lin():
        return {"kernel": rng.normal(size=(e, e)), "bias": rng.normal(size=e)}

    p = {"value_embedding": rng.normal(size=(t, e)), "identity_embedding": rng.normal(size=(t, e)),
         "query": lin(), "key": lin(), "value": lin(), "out": lin(),
         "norm": {"scale": rng.uniform(0.5, 2, e), "bias": rng.normal(size=e)}}
    x = rng.normal(size=(n, t))
    out = layers.attention_pool(p, x, heads)
    for row in range(n):
        tokens = x[row][:, None] * p["value_embedding"] + p["identity_embedding"]  # [T, E]
        q, k, v = (tokens @ p[nm]["kernel"] + p[nm]["bias"] for nm in ("query", "key", "value"))
        mixed = np.zeros((t, e))
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            logits = q[:, sl] @ k[:, sl].T / math.sqrt(d)
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            mixed[:, sl] = w @ v[:, sl]
        y = tokens + mixed @ p["out"]["kernel"] + p["out"]["bias"]
        y = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + layers.LAYER_NORM_EPS)
        ref = (y * p["norm"]["scale"] + p["norm"]["bias"]).mean(axis=0)
        np.testing.assert_allclose(out[row], ref, rtol=1e-8, atol=1e-10)


def test_monotone_profiles_never_increase(rng):
    log_r = np.linspace(-2, 0.5, 9)
    center, scale = rng.normal(size=9), rng.uniform(0.1, 1, 9)
    raw = 5 * rng.normal(size=(50, 9))
    std = layers.monotone_profiles(raw, center, scale, log_r)
    log_y = center + scale * std
    assert (np.diff(log_y, axis=1) <= 1e-12).all()
    np.testing.assert_allclose(log_y[:, 0], center[0] + scale[0] * raw[:, 0])
