"""Tests of profemu.models.network: one implementation, numpy = JAX, the physics in the structure."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import ConfigError, DataError
from profemu.models.network import INITIAL_VARIANCE, Network
from tests.helpers import make_arrays, make_inputs, make_layout, perturbed, small_config

CASES = [
    # (model config changes, layout changes)
    ({"kind": "mlp"}, {"pk": 9}),
    ({"kind": "mlp", "heteroscedastic": False, "activation": "silu", "hidden": [16, 8]}, {}),
    ({"kind": "mlp", "monotone_head": True, "activation": "relu"}, {"pk": 9, "monotone": ("rho",)}),
    ({"kind": "physics"}, {"pk": 9, "extra": {"redshift": 1}}),
    ({"kind": "physics", "interaction": "attention", "activation": "tanh"}, {}),
    ({"kind": "physics", "interaction": "film", "mass_order": 1}, {"pk": 4}),
    ({"kind": "physics", "interaction": "none", "mass_head": "input", "monotone_head": True},
     {"monotone": ("rho",)}),
    ({"kind": "physics", "mass_head": "input", "heteroscedastic": False, "activation": "softplus"}, {"pca": 4}),
]


@pytest.fixture(autouse=True)
def _full_float32_matmuls():
    # GPUs run float32 matmuls in TF32 by default (~1e-3); compare against exact float32.
    with jax.default_matmul_precision("float32"):
        yield


def _network(cfg_changes, layout_changes, members=3, seed=0):
    layout = make_layout(**layout_changes)
    net = Network(small_config(**cfg_changes), layout)
    arrays = make_arrays(layout)
    keys = jax.random.split(jax.random.key(seed), members)
    params = jax.vmap(lambda k: net.init(k, arrays))(keys)
    return net, arrays, perturbed(jax.device_get(params), seed)


@pytest.mark.parametrize(("cfg", "lay"), CASES)
def test_numpy_and_jax_paths_agree_and_members_batch(cfg, lay):
    net, arrays, params = _network(cfg, lay)
    inputs = make_inputs(net.layout, n=5, seed=3)
    out_np = net.apply(params, arrays, inputs)
    out_jax = jax.jit(lambda p, a, i: net.apply(p, a, i, xp=jnp))(params, arrays, inputs)
    assert out_np.mean.shape == out_np.var.shape == (3, 5, net.layout.out_dim)
    np.testing.assert_allclose(np.asarray(out_jax.mean), out_np.mean, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(out_jax.var), out_np.var, rtol=2e-5, atol=1e-6)
    assert (out_np.var > 0).all()
    # the member axis is a batch: member m alone gives member m's rows
    for m in range(3):
        one = jax.tree.map(lambda a, m=m: a[m], params)
        single = jax.jit(lambda p, a, i: net.apply(p, a, i, xp=jnp))(one, arrays, inputs)
        np.testing.assert_allclose(np.asarray(single.mean), out_np.mean[m], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("cfg", "lay"), CASES)
def test_param_shapes_describe_init(cfg, lay):
    net, arrays, _ = _network(cfg, lay, members=1)
    params = net.init(jax.random.key(1), arrays)
    flat = {"/".join(str(k.key) for k in path): leaf.shape
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert flat == net.param_shapes()


@pytest.mark.parametrize(("cfg", "lay"), CASES)
def test_host_initialisation_matches_the_jax_one(cfg, lay):
    """init_host draws the same initialisers with numpy: same tree, shapes, constants and
    ranges; seeded by (seed, member) alone."""
    net, arrays, _ = _network(cfg, lay, members=1)
    on_device = jax.device_get(net.init(jax.random.key(1), arrays))
    on_host = net.init_host(1, 3, arrays)
    flat = {"/".join(str(k.key) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(on_host)[0]}
    assert {n: a.shape for n, a in flat.items()} == net.param_shapes()
    assert all(a.dtype == np.float32 and isinstance(a, np.ndarray) for a in flat.values())
    for spec in net.param_specs():
        host, device = on_host, on_device
        for name in spec.path:
            host, device = host[name], device[name]
        if spec.init in ("zeros", "constant", "monotone_bias"):  # deterministic: equal
            np.testing.assert_allclose(host, device, rtol=1e-6, atol=1e-7)
        elif spec.init in ("glorot", "small"):
            limit = np.abs(device).max() / 0.9 if device.size > 50 else np.inf
            assert np.abs(host).max() <= limit and np.std(host) > 0
    again, other = net.init_host(1, 3, arrays), net.init_host(1, 4, arrays)
    for spec in net.param_specs():
        a, b, c = on_host, again, other
        for name in spec.path:
            a, b, c = a[name], b[name], c[name]
        np.testing.assert_array_equal(a, b)
        if spec.init in ("glorot", "small", "normal"):
            assert not np.array_equal(a, c)


def test_initialisation_glorot_hidden_and_initial_variance():
    net, arrays, _ = _network({"kind": "mlp", "hidden": [64, 64]}, {}, members=1)
    params = net.init(jax.random.key(0), arrays)
    k = np.asarray(params["trunk"]["hidden_1"]["kernel"])
    limit = np.sqrt(6.0 / (64 + 64))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    out = net.apply(jax.device_get(params), arrays, make_inputs(net.layout))
    np.testing.assert_allclose(out.var, INITIAL_VARIANCE + net.cfg.var_floor, rtol=0.05)
    host = net.init_host(0, 0, arrays)  # the training loop's initialisation: the same bounds and variance
    k = host["trunk"]["hidden_1"]["kernel"]
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.9 * limit
    out = net.apply(host, arrays, make_inputs(net.layout))
    np.testing.assert_allclose(out.var, INITIAL_VARIANCE + net.cfg.var_floor, rtol=0.05)


@pytest.mark.parametrize("value", [1e4, -1e4, 0.0])
@pytest.mark.parametrize(("cfg", "lay"), CASES[::2])
def test_extreme_inputs_give_finite_mean_and_positive_var(cfg, lay, value):
    net, arrays, params = _network(cfg, lay, members=1)
    out = net.apply(params, arrays, make_inputs(net.layout, value=value))
    assert np.isfinite(out.mean).all() and (out.var > 0).all() and np.isfinite(out.var).all()


def _mean_at_masses(net, arrays, params, masses):
    inputs = make_inputs(net.layout, n=4, seed=5)
    rows = []
    for m in masses:
        inp = {**inputs, "log10_mass": np.full((4, 1), m, np.float32)}
        out = net.apply(params, arrays, inp)
        rows.append((out.mean, out.mass_slope))
    return rows


def test_power_law_head_is_quadratic_in_mass_with_the_given_slope():
    net, arrays, params = _network({"kind": "physics", "mass_order": 2}, {"pk": 4}, members=2)
    s = float(arrays["log10_mass_scale"])  # dex of mass per unit of the normalised input
    z = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    (m0, _), (m1, d1), (m2, _), (m3, _), (m4, _) = _mean_at_masses(net, arrays, params, z)
    # constant second difference (a parabola in dm), zero third difference
    np.testing.assert_allclose(m0 - 2 * m1 + m2, m2 - 2 * m3 + m4, atol=2e-5)
    np.testing.assert_allclose(m0 - 3 * m1 + 3 * m2 - m3, 0.0, atol=3e-5)
    # the slope output is d mean / d log10 M at z = -1 (central difference is exact for a parabola)
    np.testing.assert_allclose(d1, (m2 - m0) / (2 * s), rtol=1e-3, atol=1e-4)
    # bounded: |d log10 y / d log10 M| <= slope_bound + 2 * curvature_bound * |dm|
    phys = np.abs(d1) * arrays["target_scale"]
    assert (phys <= net.cfg.slope_bound + 2 * net.cfg.curvature_bound * s + 1e-5).all()


def test_power_law_head_of_order_one_is_linear_and_the_trunk_ignores_the_mass():
    net, arrays, params = _network({"kind": "physics", "mass_order": 1}, {}, members=1)
    (m0, d0), (m1, d1), (m2, _) = _mean_at_masses(net, arrays, params, [-1.0, 0.5, 2.0])
    np.testing.assert_allclose((m1 - m0) / 1.5, (m2 - m1) / 1.5, atol=2e-5)
    np.testing.assert_allclose(d0, d1, atol=1e-6)  # the slope does not depend on the mass
    assert "log10_mass" not in net.trunk_blocks


def test_monotone_head_never_increases_for_random_weights():
    for kind, extra in (("mlp", {}), ("physics", {"mass_head": "input"})):
        net, arrays, params = _network({"kind": kind, "monotone_head": True, **extra},
                                       {"monotone": ("rho",)}, members=2, seed=4)
        out = net.apply(perturbed(params, 9, scale=3.0), arrays, make_inputs(net.layout, n=20, seed=1))
        sl = net.layout.field_slice("rho")
        log_y = arrays["target_center"][sl] + arrays["target_scale"][sl] * out.mean[..., sl]
        # float32: one ulp of the (large, random-weight) values
        assert (np.diff(log_y, axis=-1) <= 1e-6 * np.abs(log_y[..., 1:]) + 1e-5).all()


def test_invalid_combinations_are_config_errors():
    with pytest.raises(ConfigError, match="power_law"):
        Network(small_config(kind="physics", monotone_head=True), make_layout(monotone=("rho",)))
    with pytest.raises(ConfigError, match="no field is declared monotone"):
        Network(small_config(monotone_head=True), make_layout())
    with pytest.raises(ConfigError, match="radial grid"):
        Network(small_config(kind="physics"), make_layout(pca=3))
    with pytest.raises(ConfigError, match="kind"):
        Network(small_config(kind="transformer"), make_layout())


def test_dropout_only_in_train_mode():
    net, arrays, params = _network({"kind": "mlp", "dropout": 0.5}, {}, members=1)
    one = jax.tree.map(lambda a: a[0], params)
    inputs = make_inputs(net.layout)
    a = net.apply(one, arrays, inputs, xp=jnp, train=True, key=jax.random.key(0)).mean
    b = net.apply(one, arrays, inputs, xp=jnp, train=True, key=jax.random.key(1)).mean
    c = net.apply(one, arrays, inputs, xp=jnp).mean
    d = net.apply(one, arrays, inputs, xp=jnp).mean
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(c, d)


def test_bad_inputs_raise_data_error_naming_the_block():
    net, arrays, params = _network({"kind": "mlp"}, {"pk": 9}, members=1)
    inputs = make_inputs(net.layout)
    with pytest.raises(DataError, match="'pk'"):
        net.apply(params, arrays, {**inputs, "pk": inputs["pk"][:, :3]})
    with pytest.raises(DataError, match="missing blocks"):
        net.apply(params, arrays, {k: v for k, v in inputs.items() if k != "pk"})


def test_record_names_every_activation():
    net, arrays, params = _network({"kind": "physics"}, {}, members=1)
    record: dict = {}
    net.apply(params, arrays, make_inputs(net.layout), record=record)
    assert {"input", "interaction", "trunk/hidden_0", "trunk/hidden_1", "head/mean", "head/var"} <= set(record)


def test_network_is_hashable_and_equal_by_value():
    a = Network(small_config(kind="physics"), make_layout(pk=4))
    b = Network(small_config(kind="physics"), make_layout(pk=4))
    assert a == b and hash(a) == hash(b)
    assert a != Network(small_config(kind="physics", hidden=[8]), make_layout(pk=4))


def test_layers_and_network_import_no_jax():
    code = ("import sys, profemu.models.network, profemu.models.layers, profemu.emulator; "
            "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if m.startswith('jax'))")
    subprocess.run([sys.executable, "-c", code], check=True)
