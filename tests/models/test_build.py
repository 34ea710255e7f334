"""Tests of profemu.models.build."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from profemu.config import ModelConfig
from profemu.errors import ConfigError
from profemu.models.build import MODEL_REGISTRY, build_model
from profemu.models.mlp import SimpleMLP
from profemu.models.physics import PhysicsInformedCore
from tests.models.test_spec import make_inputs, make_spec, random_variables, small_config


def test_registry_picks_the_class_by_kind():
    spec = make_spec()
    assert set(MODEL_REGISTRY) == {"mlp", "physics"}
    assert isinstance(build_model(ModelConfig(kind="mlp"), spec), SimpleMLP)
    assert isinstance(build_model(ModelConfig(kind="physics"), spec), PhysicsInformedCore)


def test_unknown_kind_and_invalid_config_raise_config_error():
    spec = make_spec()
    cfg = ModelConfig()
    cfg.kind = "transformer"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"model\.kind"):
        build_model(cfg, spec)
    with pytest.raises(ConfigError, match=r"model\.dropout"):
        build_model(ModelConfig(dropout=2.0), spec)
    with pytest.raises(ConfigError, match="OutputSpec"):
        build_model(ModelConfig(), spec.to_dict())  # type: ignore[arg-type]


def test_model_is_hashable_and_a_static_jit_argument():
    spec = make_spec()
    cfg = small_config()
    model = build_model(cfg, spec)
    assert hash(model) == hash(build_model(small_config(), spec))
    assert cfg.hidden == [16]  # the caller's config is not modified
    inputs = make_inputs(spec)
    variables = random_variables(model, inputs)

    @jax.jit
    def mean_of(variables, inputs):
        return model.apply(variables, inputs)[0]

    static = jax.jit(lambda m, v, x: m.apply(v, x)[0], static_argnums=0)
    np.testing.assert_allclose(
        static(model, variables, inputs), mean_of(variables, inputs), rtol=1e-6
    )
