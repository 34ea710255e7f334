"""Tests of profemu.models.mlp.SimpleMLP and its shared pieces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import ModelConfig
from profemu.errors import ConfigError, DataError
from profemu.models.build import build_model
from profemu.models.heads import INITIAL_VARIANCE
from profemu.models.mlp import ACTIVATIONS, SimpleMLP, concat_inputs, get_activation
from tests.models.test_spec import make_inputs, make_spec, random_variables, small_config


def _model(**cfg):
    spec = make_spec(pk=9)
    return build_model(small_config(kind="mlp", **cfg), spec), spec


def test_shapes_equal_in_train_and_eval_and_var_positive():
    model, spec = _model(dropout=0.2)
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)
    eval_out = model.apply(variables, inputs, train=False)
    train_out = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.key(1)})
    for out in (eval_out, train_out):
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].shape == out[1].shape == (7, spec.out_dim)
        assert bool(jnp.all(out[1] > 0))


def test_glorot_uniform_hidden_init_and_initial_variance():
    model, spec = _model()
    inputs = make_inputs(spec, n=64)
    variables = model.init(jax.random.key(3), inputs)  # the real initialisers
    kernel = variables["params"]["trunk"]["hidden_0"]["kernel"]
    fan_in, fan_out = kernel.shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert float(jnp.max(jnp.abs(kernel))) <= limit
    assert float(jnp.max(jnp.abs(kernel))) > 0.8 * limit  # uniform over the full range
    _, var = model.apply(variables, inputs)
    np.testing.assert_allclose(np.median(var), INITIAL_VARIANCE, rtol=0.2)


@pytest.mark.parametrize("value", [1e3, -1e3])
def test_extreme_inputs_give_finite_mean_and_positive_var(value):
    model, spec = _model(monotone_fields=["rho"])
    variables = random_variables(model, make_inputs(spec))
    mean, var = model.apply(variables, make_inputs(spec, value=value))
    assert bool(jnp.all(jnp.isfinite(mean)))
    assert bool(jnp.all(jnp.isfinite(var) & (var > 0)))


def test_dropout_only_in_train_mode():
    model, spec = _model(dropout=0.5)
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)
    eval_a = model.apply(variables, inputs)[0]
    eval_b = model.apply(variables, inputs, train=False)[0]
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.key(1)})[0]
    train_b = model.apply(variables, inputs, train=True, rngs={"dropout": jax.random.key(2)})[0]
    assert not np.allclose(train_a, eval_a)
    assert not np.allclose(train_a, train_b)
    # Without dropout, train mode is the eval function.
    model0, _ = _model(dropout=0.0)
    v0 = variables  # same parameter tree: dropout has no weights
    np.testing.assert_array_equal(
        model0.apply(v0, inputs, train=True)[0], model0.apply(v0, inputs)[0]
    )


def test_homoscedastic_variance_is_constant_across_inputs():
    model, spec = _model(heteroscedastic=False)
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)
    assert "var_raw" in variables["params"]["head"]
    _, var = model.apply(variables, inputs)
    np.testing.assert_array_equal(var, jnp.broadcast_to(var[0], var.shape))
    assert var.shape == (7, spec.out_dim)


def test_gradient_wrt_inputs_is_finite_and_nonzero():
    model, spec = _model(monotone_fields=["rho"])
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)

    def total(params_block):
        return model.apply(variables, {**inputs, "params": params_block})[0].sum()

    grad = jax.jit(jax.grad(total))(jnp.asarray(inputs["params"]))
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0


def test_bad_inputs_raise_data_error_naming_the_block():
    model, spec = _model()
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)
    with pytest.raises(DataError, match=r"missing blocks \['pk'\]"):
        model.apply(variables, {k: v for k, v in inputs.items() if k != "pk"})
    with pytest.raises(DataError, match=r"'params'.*\[n, 5\]"):
        model.apply(variables, {**inputs, "params": inputs["params"][:, :3]})
    with pytest.raises(DataError, match=r"unexpected blocks \['redshift'\]"):
        model.apply(variables, {**inputs, "redshift": inputs["log10_mass"]})
    with pytest.raises(DataError, match="rows"):
        model.apply(variables, {**inputs, "pk": inputs["pk"][:3]})


def test_activation_registry():
    assert set(ACTIVATIONS) == {"gelu", "silu", "tanh", "relu", "softplus"}
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_allclose(get_activation("relu")(x), np.maximum(np.asarray(x), 0))
    with pytest.raises(ConfigError, match=r"model\.activation"):
        get_activation("swish")


def test_blocks_are_concatenated_in_canonical_order():
    spec = make_spec(pk=2)
    inputs = {
        "pk": np.full((1, 2), 3.0),
        "log10_mass": np.full((1, 1), 2.0),
        "params": np.ones((1, 5)),
    }
    x = concat_inputs(inputs, [b for b, _ in spec.input_blocks])
    np.testing.assert_array_equal(x, [[1, 1, 1, 1, 1, 2, 3, 3]])
    assert isinstance(SimpleMLP(ModelConfig(), spec), SimpleMLP)
