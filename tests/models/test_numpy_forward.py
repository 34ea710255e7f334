"""Tests of profemu.models.numpy_forward against the flax models."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import DataError, FormatError
from profemu.models import numpy_forward as nf
from profemu.models import physics
from profemu.models.build import build_model
from profemu.models.ensemble import apply_ensemble
from profemu.models.mlp import ACTIVATIONS
from tests.models.test_spec import make_inputs, make_spec, random_variables, small_config

CASES = [
    # (kind, pk width, monotone fields, extra config)
    ("mlp", 9, ("rho",), {}),
    ("mlp", 0, (), {"heteroscedastic": False, "activation": "silu", "hidden": [16, 8]}),
    ("physics", 9, ("rho",), {}),
    ("physics", 0, (), {"activation": "tanh"}),
    ("physics", 9, (), {"pk_conv_channels": 0, "heteroscedastic": False, "activation": "softplus"}),
    ("mlp", 9, ("rho", "temp"), {"activation": "relu"}),
]


@pytest.fixture(autouse=True)
def _full_float32_matmuls():
    # GPUs run float32 matmuls in TF32 by default (~1e-3); compare against exact float32.
    with jax.default_matmul_precision("float32"):
        yield


def _setup(kind, pk, monotone, extra):
    spec = make_spec(pk=pk, extra={"redshift": 1})
    model = build_model(small_config(kind=kind, monotone_fields=list(monotone), **extra), spec)
    return model, spec


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_numpy_activations_match_jax(activation):
    # atol: 1 + tanh(u) near u = -3 cancels; float32 tanh implementations differ by an ulp there.
    x = np.linspace(-30, 30, 2001, dtype=np.float32)
    np.testing.assert_allclose(
        nf.NUMPY_ACTIVATIONS[activation](x.copy()),
        ACTIVATIONS[activation](jnp.asarray(x)),
        rtol=2e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize(("kind", "pk", "monotone", "extra"), CASES)
def test_forward_matches_flax_apply(kind, pk, monotone, extra):
    model, spec = _setup(kind, pk, monotone, extra)
    inputs = make_inputs(spec, n=5, seed=3)
    variables = random_variables(model, inputs, seed=1, scale=0.5)
    mean_ref, var_ref = model.apply(variables, inputs)
    mean, var = nf.forward(model.cfg, spec, variables["params"], inputs)
    assert mean.dtype == var.dtype == np.float32
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, var_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("kind", "pk", "monotone", "extra"), [CASES[0], CASES[2]])
def test_forward_ensemble_matches_apply_ensemble(kind, pk, monotone, extra):
    model, spec = _setup(kind, pk, monotone, extra)
    inputs = make_inputs(spec, n=4, seed=5)
    variables = random_variables(model, inputs, seed=2, members=3)
    means_ref, vars_ref = apply_ensemble(model, variables, inputs)
    means, variances = nf.forward_ensemble(model.cfg, spec, variables["params"], inputs)
    assert means.shape == variances.shape == (3, 4, spec.out_dim)
    np.testing.assert_allclose(means, means_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variances, vars_ref, rtol=1e-5, atol=1e-6)
    # The whole variables dict is accepted as well as its params collection.
    np.testing.assert_array_equal(nf.forward_ensemble(model.cfg, spec, variables, inputs)[0], means)


def test_real_initialisation_matches_too():
    model, spec = _setup("mlp", 9, ("rho",), {})
    inputs = make_inputs(spec, n=3)
    variables = model.init(jax.random.key(0), inputs)
    params = jax.tree.map(np.asarray, variables["params"])
    np.testing.assert_allclose(
        nf.forward(model.cfg, spec, params, inputs)[0],
        model.apply(variables, inputs)[0],
        rtol=1e-5,
        atol=1e-5,
    )


def test_mismatched_weights_and_inputs_raise():
    model, spec = _setup("mlp", 9, (), {})
    inputs = make_inputs(spec, n=2)
    params = random_variables(model, inputs)["params"]
    monotone_cfg = small_config(kind="mlp", monotone_fields=["rho"])
    with pytest.raises(FormatError, match="'field_0' is missing"):
        nf.forward(monotone_cfg, spec, params, inputs)
    with pytest.raises(DataError, match="built for"):
        nf.forward(model.cfg, spec, params, {k: v for k, v in inputs.items() if k != "pk"})
    with pytest.raises(DataError, match="'pk'"):
        nf.forward(model.cfg, spec, params, {**inputs, "pk": inputs["pk"][:, :4]})


def test_constants_agree_with_the_flax_module():
    assert nf._MASS_MAX_EXPONENT == physics.MASS_MAX_EXPONENT
    assert nf._MASS_ARGUMENT_CLIP == physics.MASS_ARGUMENT_CLIP
    assert (nf._CONV_KERNEL, nf._CONV_STRIDE) == (physics.CONV_KERNEL, physics.CONV_STRIDE)


def test_module_imports_neither_jax_nor_flax():
    code = (
        "import sys; import profemu.models.numpy_forward, profemu.models.spec; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'jaxlib')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
