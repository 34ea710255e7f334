"""Tests of profemu.models.heads: the monotone head and the (mean, var) head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import ModelConfig
from profemu.errors import ConfigError
from profemu.models.build import build_model
from profemu.models.heads import MonotoneHead, OutputHead, inverse_softplus, monotone_slope_bias
from tests.models.test_spec import make_inputs, make_spec, random_variables, small_config


def _to_log10(spec, mean):
    return np.asarray(spec.target_center) + np.asarray(spec.target_scale) * np.asarray(mean)


def test_inverse_softplus():
    y = np.array([1e-3, 0.5, 2.0, 30.0])
    np.testing.assert_allclose(np.logaddexp(inverse_softplus(y), 0.0), y, rtol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "physics"])
def test_monotone_fields_never_increase_for_random_weights(kind):
    spec = make_spec(monotone=("rho",))
    model = build_model(small_config(kind=kind), spec)
    rng = np.random.default_rng(5)
    rho, temp = spec.field_slice("rho"), spec.field_slice("temp")
    temp_increases = 0
    for seed in range(4):
        # Large random weights: the shape must hold whatever the parameters are.
        inputs = make_inputs(spec, seed=int(rng.integers(1000)))
        variables = random_variables(model, inputs, seed=seed, scale=2.0)
        mean, _ = model.apply(variables, inputs)
        log10 = _to_log10(spec, mean)
        # float32 rounding of the standardisation round trip, relative to the magnitude.
        tol = 1e-6 * np.abs(log10[:, rho]).max() + 1e-5
        assert np.all(np.diff(log10[:, rho], axis=-1) <= tol)
        temp_increases += int(np.sum(np.diff(log10[:, temp], axis=-1) > 1e-3))
    assert temp_increases > 0  # the free field is not constrained, so the check can fail


def test_initial_monotone_profile_follows_target_center_shape():
    spec = make_spec(monotone=("rho",))
    head = OutputHead(ModelConfig(), spec, ("rho",))
    hidden = jnp.zeros((7, 16))
    variables = head.init(jax.random.key(0), hidden)
    mean, var = head.apply(variables, hidden)
    # Zero features -> biases only: the rho centre is a straight line of slope -2 (> 0.05).
    np.testing.assert_allclose(mean[:, spec.field_slice("rho")], 0.0, atol=1e-5)
    assert mean.shape == var.shape == (7, spec.out_dim)
    bias = monotone_slope_bias(spec, "rho")
    np.testing.assert_allclose(np.logaddexp(bias[1:], 0), 2.0, rtol=1e-5)


def test_monotone_head_parameter_names():
    spec = make_spec()
    head = MonotoneHead(spec, ("temp",))
    variables = jax.eval_shape(head.init, jax.random.key(0), jnp.ones((2, 4)))
    assert set(variables["params"]) == {"field_0", "field_1"}
    assert variables["params"]["field_1"]["kernel"].shape == (4, spec.n_r)


def test_monotone_head_rejected_with_pca_or_unknown_field():
    with pytest.raises(ConfigError, match="radial grid"):
        build_model(ModelConfig(monotone_fields=["rho"]), make_spec(pca=3))
    with pytest.raises(ConfigError, match="not predicted"):
        build_model(ModelConfig(monotone_fields=["pth"]), make_spec())
