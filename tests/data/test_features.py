"""Engineered features and input-noise augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.data.features import (
    FEATURES,
    augment_inputs,
    compute_features,
    feature_width,
    fit_feature_stats,
)
from profemu.errors import DataError

NAMES = ("Omega_m", "Omega_b", "A_SN1")


@pytest.fixture
def raw(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 8
    params = np.column_stack(
        [rng.uniform(0.2, 0.4, n), rng.uniform(0.04, 0.06, n), rng.uniform(0.5, 2, n)]
    )
    k = np.logspace(-1, 1.5, 12)  # 0.1 .. 31.6 h/Mpc
    pk = 1.0 - 0.2 * rng.uniform(size=(n, 12))
    return {"params": params, "log10_mass": rng.uniform(11, 13, n), "pk_ratio": pk, "k": k}


def test_registry_names() -> None:
    assert set(FEATURES) == {"omega_b_over_omega_m", "mass_deviation", "pk_summary"}
    for feat in FEATURES.values():
        assert feat.description


def test_omega_b_over_omega_m(raw: dict[str, np.ndarray]) -> None:
    out = compute_features(
        ["omega_b_over_omega_m"], raw["params"], NAMES, raw["log10_mass"], None, None, {}
    )
    assert out.shape == (8, 1)
    np.testing.assert_allclose(out[:, 0], raw["params"][:, 1] / raw["params"][:, 0])


def test_omega_b_missing_named(raw: dict[str, np.ndarray]) -> None:
    with pytest.raises(DataError, match=r"'omega_b_over_omega_m' needs the parameter 'Omega_b'"):
        compute_features(
            ["omega_b_over_omega_m"],
            raw["params"][:, [0, 2]],
            ("Omega_m", "A_SN1"),
            raw["log10_mass"],
            None,
            None,
            {},
        )


def test_mass_deviation_uses_fitted_training_mean(raw: dict[str, np.ndarray]) -> None:
    train_mass = raw["log10_mass"][:5]
    stats = fit_feature_stats(["mass_deviation"], NAMES, train_mass, None, None)
    assert stats == {"log10_mass_mean": pytest.approx(train_mass.mean())}
    out = compute_features(
        ["mass_deviation"], raw["params"], NAMES, raw["log10_mass"], None, None, stats
    )
    np.testing.assert_allclose(out[:, 0], raw["log10_mass"] - train_mass.mean())
    with pytest.raises(
        DataError, match=r"mass_deviation: the training mean of log10_mass is missing"
    ):
        compute_features(
            ["mass_deviation"], raw["params"], NAMES, raw["log10_mass"], None, None, {}
        )


def test_pk_summary_values(raw: dict[str, np.ndarray]) -> None:
    stats = fit_feature_stats(["pk_summary"], NAMES, raw["log10_mass"], raw["pk_ratio"], raw["k"])
    assert stats == {"pk_summary_k": [1.0, 10.0]}
    out = compute_features(
        ["pk_summary"], raw["params"], NAMES, raw["log10_mass"], raw["pk_ratio"], raw["k"], stats
    )
    assert out.shape == (8, 4) and feature_width(["pk_summary"], stats) == 4
    np.testing.assert_allclose(out[:, 0], raw["pk_ratio"].mean(axis=1))
    np.testing.assert_allclose(out[:, 1], raw["pk_ratio"].std(axis=1))
    logk = np.log10(raw["k"])
    for col, kq in ((2, 1.0), (3, 10.0)):
        expected = [np.interp(np.log10(kq), logk, row) for row in raw["pk_ratio"]]
        np.testing.assert_allclose(out[:, col], expected, rtol=1e-12)


def test_pk_summary_exact_on_grid_point(raw: dict[str, np.ndarray]) -> None:
    k = raw["k"]
    stats = fit_feature_stats(
        ["pk_summary"], NAMES, raw["log10_mass"], raw["pk_ratio"], k, pk_summary_k=(k[3],)
    )
    out = compute_features(
        ["pk_summary"], raw["params"], NAMES, raw["log10_mass"], raw["pk_ratio"], k, stats
    )
    np.testing.assert_allclose(out[:, 2], raw["pk_ratio"][:, 3], rtol=1e-12)


def test_pk_summary_errors(raw: dict[str, np.ndarray]) -> None:
    with pytest.raises(DataError, match=r"'pk_summary' needs pk_ratio"):
        compute_features(["pk_summary"], raw["params"], NAMES, raw["log10_mass"], None, None, {})
    with pytest.raises(DataError, match=r"k=100.0 h/Mpc, outside the grid"):
        fit_feature_stats(
            ["pk_summary"],
            NAMES,
            raw["log10_mass"],
            raw["pk_ratio"],
            raw["k"],
            pk_summary_k=(1.0, 100.0),
        )


def test_unknown_and_duplicate_names(raw: dict[str, np.ndarray]) -> None:
    with pytest.raises(DataError, match=r"unknown feature 'baryon_frac'; valid names are"):
        compute_features(["baryon_frac"], raw["params"], NAMES, raw["log10_mass"], None, None, {})
    with pytest.raises(DataError, match=r"'mass_deviation' is listed twice"):
        fit_feature_stats(
            ["mass_deviation", "mass_deviation"], NAMES, raw["log10_mass"], None, None
        )


def test_concatenation_order_and_jax_parity(raw: dict[str, np.ndarray]) -> None:
    names = ["pk_summary", "omega_b_over_omega_m", "mass_deviation"]
    stats = fit_feature_stats(names, NAMES, raw["log10_mass"], raw["pk_ratio"], raw["k"])
    ref = compute_features(
        names, raw["params"], NAMES, raw["log10_mass"], raw["pk_ratio"], raw["k"], stats
    )
    assert ref.shape == (8, 6)
    np.testing.assert_allclose(ref[:, 4], raw["params"][:, 1] / raw["params"][:, 0])
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    got = compute_features(
        names,
        jnp.asarray(raw["params"], dtype=jnp.float32),
        NAMES,
        jnp.asarray(raw["log10_mass"], dtype=jnp.float32),
        jnp.asarray(raw["pk_ratio"], dtype=jnp.float32),
        raw["k"],
        stats,
        xp=jnp,
    )
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-5)


def test_augment_inputs_seeded_and_non_destructive(rng: np.random.Generator) -> None:
    jax = pytest.importorskip("jax")
    inputs = {
        "params": rng.normal(size=(500, 3)).astype(np.float32),
        "log10_mass": rng.normal(size=(500, 1)).astype(np.float32),
    }
    copy = {k: v.copy() for k, v in inputs.items()}
    a = augment_inputs(inputs, 0.1, 7)
    b = augment_inputs(inputs, 0.1, jax.random.key(7))
    c = augment_inputs(inputs, 0.1, 8)
    for name in inputs:
        np.testing.assert_array_equal(inputs[name], copy[name])
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
        assert not np.allclose(np.asarray(a[name]), np.asarray(c[name]))
        delta = np.asarray(a[name]) - inputs[name]
        assert delta.shape == inputs[name].shape
        assert abs(delta.std() - 0.1) < 0.02 and abs(delta.mean()) < 0.02
    # independent streams per block, independent of dict order
    reordered = augment_inputs(dict(reversed(list(inputs.items()))), 0.1, 7)
    np.testing.assert_array_equal(np.asarray(reordered["params"]), np.asarray(a["params"]))
    only = augment_inputs(inputs, 0.1, 7, blocks=["params"])
    assert only["log10_mass"] is inputs["log10_mass"]
    assert augment_inputs(inputs, 0.0, 7)["params"] is inputs["params"]
    with pytest.raises(DataError, match=r"augment_noise: must be finite and >= 0"):
        augment_inputs(inputs, -1.0, 7)
    with pytest.raises(DataError, match=r"unknown input block 'pk'"):
        augment_inputs(inputs, 0.1, 7, blocks=["pk"])


def test_augment_inputs_under_jit(rng: np.random.Generator) -> None:
    jax = pytest.importorskip("jax")
    inputs = {"params": jax.numpy.asarray(rng.normal(size=(4, 3)), dtype=jax.numpy.float32)}
    f = jax.jit(lambda x, key: augment_inputs(x, 0.5, key))
    out = f(inputs, jax.random.key(3))
    np.testing.assert_allclose(
        np.asarray(out["params"]),
        np.asarray(augment_inputs(inputs, 0.5, jax.random.key(3))["params"]),
        rtol=1e-6,
    )
