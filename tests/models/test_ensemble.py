"""Tests of profemu.models.ensemble."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import ConfigError, DataError
from profemu.models.build import build_model
from profemu.models.ensemble import apply_ensemble, combine, ensemble_size, init_ensemble
from tests.models.test_spec import make_inputs, make_spec, small_config


def _loop_combine(means, variances):
    m = len(means)
    mean = sum(means[i] for i in range(m)) / m
    aleatoric = sum(variances[i] for i in range(m)) / m
    epistemic = sum((means[i] - mean) ** 2 for i in range(m)) / m
    return mean, aleatoric, epistemic


@pytest.mark.parametrize("xp", [np, jnp])
def test_combine_equals_a_loop_over_members(xp, rng):
    means = xp.asarray(rng.normal(size=(4, 3, 5)))
    variances = xp.asarray(rng.uniform(0.1, 2.0, size=(4, 3, 5)))
    pred = combine(means, variances)
    mean, aleatoric, epistemic = _loop_combine(np.asarray(means), np.asarray(variances))
    np.testing.assert_allclose(pred.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(pred.aleatoric, aleatoric, rtol=1e-6)
    np.testing.assert_allclose(pred.epistemic, epistemic, rtol=1e-5)
    np.testing.assert_allclose(pred.var, aleatoric + epistemic, rtol=1e-6)
    assert isinstance(pred.mean, type(means))


def test_combine_single_member_has_no_epistemic_part(rng):
    means, variances = rng.normal(size=(1, 2, 3)), rng.uniform(0.1, 1, size=(1, 2, 3))
    pred = combine(means, variances)
    np.testing.assert_array_equal(pred.epistemic, 0.0)
    np.testing.assert_array_equal(pred.var, variances[0])
    with pytest.raises(DataError, match="one shape"):
        combine(means, variances[:, :1])


@pytest.fixture(scope="module")
def ensemble():
    spec = make_spec(pk=9)
    model = build_model(small_config(kind="mlp", dropout=0.3), spec)
    inputs = make_inputs(spec)
    return model, inputs, init_ensemble(model, jax.random.key(0), inputs, members=3)


def test_init_ensemble_stacks_independent_members(ensemble):
    model, inputs, variables = ensemble
    assert ensemble_size(variables) == 3
    kernels = variables["params"]["trunk"]["hidden_0"]["kernel"]
    assert kernels.shape[0] == 3
    assert not np.allclose(kernels[0], kernels[1])
    with pytest.raises(ConfigError, match="members"):
        init_ensemble(model, jax.random.key(0), inputs, members=0)


def test_apply_ensemble_equals_per_member_apply(ensemble):
    model, inputs, variables = ensemble
    means, variances = apply_ensemble(model, variables, inputs)
    assert means.shape == variances.shape == (3, 7, 12)
    for m in range(3):
        member = jax.tree.map(lambda a, m=m: a[m], variables)
        mean_m, var_m = model.apply(member, inputs)
        np.testing.assert_allclose(means[m], mean_m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variances[m], var_m, rtol=1e-5, atol=1e-7)


def test_apply_ensemble_train_mode_uses_independent_dropout_keys(ensemble):
    model, inputs, variables = ensemble
    eval_means, _ = apply_ensemble(model, variables, inputs)
    key = jax.random.key(4)
    train_means, train_vars = apply_ensemble(
        model, variables, inputs, train=True, rngs={"dropout": key}
    )
    assert train_means.shape == eval_means.shape and bool(jnp.all(train_vars > 0))
    assert not np.allclose(train_means, eval_means)
    # Member m gets split(key, M)[m].
    member = jax.tree.map(lambda a: a[1], variables)
    mean_1, _ = model.apply(
        member, inputs, train=True, rngs={"dropout": jax.random.split(key, 3)[1]}
    )
    np.testing.assert_allclose(train_means[1], mean_1, rtol=1e-5, atol=1e-6)
