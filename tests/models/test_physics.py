"""Tests of profemu.models.physics.PhysicsInformedCore and its branches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.models.build import build_model
from profemu.models.physics import (
    CosmologyAttention,
    MassScalingLayer,
    PowerSpectrumProcessor,
    token_blocks,
)
from tests.models.test_spec import make_inputs, make_spec, random_variables, small_config


@pytest.mark.parametrize(("pk", "channels"), [(0, 4), (9, 4), (9, 0)])
def test_core_with_and_without_pk(pk, channels):
    spec = make_spec(pk=pk, extra={"redshift": 1})
    model = build_model(small_config(kind="physics", pk_conv_channels=channels, dropout=0.1), spec)
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)
    params = variables["params"]
    assert ("pk" in params) == bool(pk)
    if pk:
        assert ("conv" in params["pk"]) == bool(channels)
    mean, var = model.apply(variables, inputs)
    mean_t, var_t = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.key(1)})
    assert mean.shape == var.shape == mean_t.shape == var_t.shape == (7, spec.out_dim)
    assert bool(jnp.all(var > 0) & jnp.all(var_t > 0))
    # 5 params + redshift are attention tokens.
    assert params["cosmology"]["value_embedding"].shape == (6, 8)


@pytest.mark.parametrize("value", [1e3, -1e3])
def test_extreme_inputs_are_safe(value):
    spec = make_spec(pk=9, monotone=("rho",))
    model = build_model(small_config(kind="physics"), spec)
    variables = random_variables(model, make_inputs(spec))
    mean, var = model.apply(variables, make_inputs(spec, value=value))
    assert bool(jnp.all(jnp.isfinite(mean)))
    assert bool(jnp.all(jnp.isfinite(var) & (var > 0)))


def test_gradients_are_finite():
    spec = make_spec(pk=9)
    model = build_model(small_config(kind="physics", monotone_fields=["rho"]), spec)
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(spec).items()}
    variables = random_variables(model, inputs)

    def loss(v, x):
        mean, var = model.apply(v, x)
        return mean.sum() + jnp.log(var).sum()

    pgrads, grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, inputs)
    for name, g in grads.items():
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0, name
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(pgrads))


def test_mass_scaling_is_a_bounded_power_law():
    layer = MassScalingLayer(4)
    m = jnp.linspace(-0.5, 0.5, 5)[:, None]
    variables = layer.init(jax.random.key(0), m)
    feats = layer.apply(variables, m)
    raw = variables["params"]["exponent_raw"]
    # Far below the soft clip, log(feature) is linear in m with slope s_j = 3 tanh(raw_j).
    slopes = np.diff(np.log(np.asarray(feats)), axis=0) / 0.25
    np.testing.assert_allclose(
        slopes, np.broadcast_to(3 * np.tanh(raw), slopes.shape), rtol=5e-3, atol=1e-4
    )
    huge = layer.apply(variables, jnp.array([[1e30], [-1e30]]))
    assert bool(jnp.all(jnp.isfinite(huge))) and float(jnp.max(huge)) <= np.exp(10.0) * 1.0001


def test_attention_mixes_tokens_and_pools():
    layer = CosmologyAttention(embed_dim=8, num_heads=2)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5)), jnp.float32)
    variables = random_variables(layer, x)
    out = layer.apply(variables, x)
    assert out.shape == (3, 8)
    # Changing one parameter changes the pooled embedding.
    assert not np.allclose(out, layer.apply(variables, x.at[:, 2].add(1.0)))


def test_power_spectrum_conv_output_width():
    layer = PowerSpectrumProcessor(hidden=6, channels=3)
    variables = jax.eval_shape(layer.init, jax.random.key(0), jnp.ones((2, 79)))
    assert variables["params"]["dense"]["kernel"].shape == (40 * 3, 6)


def test_token_blocks():
    assert token_blocks(make_spec(pk=3, extra={"redshift": 1, "features": 2})) == (
        "params",
        "redshift",
        "features",
    )
