"""Transforms: scalers, log10 targets, masks, noise, PCA, JAX parity and JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import ArrayData, Transforms, decode_mean, decode_var
from profemu.errors import ConfigError, DataError, FormatError
from tests.data.test_dataset import base_kwargs, make_dataset


@pytest.fixture
def ds(rng: np.random.Generator) -> ProfileDataset:
    kw = base_kwargs(rng, n=40, n_r=6)
    kw["redshift"] = rng.uniform(0.0, 1.0, 40)
    rho = np.array(kw["profiles"]["rho"], copy=True)
    rho[3, 0] = np.nan
    rho[7, 5] = 0.0
    kw["profiles"]["rho"] = rho
    kw["noise"]["rho"] = np.where(np.isfinite(rho) & (rho > 0), 0.05, np.nan)
    return ProfileDataset(**kw)


def test_array_data_layout_and_values(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig())
    data = t.transform(ds)
    assert isinstance(data, ArrayData) and data.n == 40
    assert t.field_names == ("rho", "pth") and t.n_r == 6 and t.out_dim == 12
    assert t.input_blocks == {"params": 3, "log10_mass": 1, "pk": 4, "redshift": 1}
    assert list(data.inputs) == list(t.input_blocks)
    for block, width in t.input_blocks.items():
        assert data.inputs[block].shape == (40, width)
        assert data.inputs[block].dtype == np.float32
    assert data.target.dtype == data.mask.dtype == data.noise_var.dtype == np.float32
    # field-major: rho in columns 0..5, pth in 6..11
    assert data.mask[3, 0] == 0 and data.mask[7, 5] == 0 and data.mask[:, 6:].all()
    assert data.target[3, 0] == 0 and data.target[7, 5] == 0
    assert np.isfinite(data.target).all()
    expected = (np.log10(ds.profiles["pth"]) - t.target_center[6:]) / t.target_scale[6:]
    np.testing.assert_allclose(data.target[:, 6:], expected, rtol=1e-5, atol=1e-5)
    # standard scaler on valid entries: standardised columns have mean 0 and std 1
    valid = data.mask.astype(bool)
    for j in range(12):
        col = data.target[valid[:, j], j].astype(np.float64)
        assert abs(col.mean()) < 1e-5 and abs(col.std() - 1) < 1e-4
    # params: log10 applied to A_SN1 before scaling
    a = np.log10(ds.params[:, 2])
    np.testing.assert_allclose(
        data.inputs["params"][:, 2], (a - a.mean()) / a.std(), rtol=1e-5, atol=1e-6
    )
    # noise in standardised units: (dex / scale)^2 where valid, 0 elsewhere
    np.testing.assert_allclose(
        data.noise_var[valid],
        ((np.concatenate([ds.noise["rho"], ds.noise["pth"]], 1) / t.target_scale) ** 2)[valid],
        rtol=1e-5,
    )
    assert data.noise_var[3, 0] == 0 and data.noise_var[7, 5] == 0


def test_statistics_ignore_masked_entries(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig(fields=["rho"]))
    col0 = np.log10(np.delete(ds.profiles["rho"][:, 0], 3))
    assert t.target_center[0] == pytest.approx(col0.mean(), rel=1e-12)
    assert t.target_scale[0] == pytest.approx(col0.std(), rel=1e-12)


def test_inverse_round_trip_to_log10(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig())
    data = t.transform(ds)
    mean, var = t.to_log10(
        data.target.astype(np.float64), np.ones_like(data.target, dtype=np.float64)
    )
    logp = np.concatenate([ds.log10_profile("rho"), ds.log10_profile("pth")], axis=1)
    valid = data.mask.astype(bool)
    np.testing.assert_allclose(mean[valid], logp[valid], rtol=0, atol=1e-5)
    np.testing.assert_allclose(var, np.broadcast_to(t.target_scale**2, var.shape))
    assert set(t.split_fields(mean)) == {"rho", "pth"}
    np.testing.assert_array_equal(t.split_fields(mean)["pth"], mean[:, 6:])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scaler=st.sampled_from(["standard", "robust"]),
    n=st.integers(3, 30),
)
def test_inverse_round_trip_property(seed: int, scaler: str, n: int) -> None:
    rng = np.random.default_rng(seed)
    ds = make_dataset(rng, n=n, n_r=4)
    t = Transforms.fit(ds, DataConfig(target_scaler=scaler, input_scaler=scaler))
    data = t.transform(ds)
    mean, _ = t.to_log10(data.target.astype(np.float64))
    logp = np.concatenate([ds.log10_profile(f) for f in t.field_names], axis=1)
    np.testing.assert_allclose(mean, logp, atol=1e-4 * (1 + np.abs(logp).max()))


def test_robust_scaler_resists_outliers(rng: np.random.Generator) -> None:
    kw = base_kwargs(rng, n=200, n_r=4)
    mass = rng.normal(12.0, 0.3, 200)
    mass[:5] = 19.5  # a few wild outliers
    kw["log10_mass"] = mass
    ds = ProfileDataset(**kw)
    robust = Transforms.fit(ds, DataConfig(input_scaler="robust"))
    standard = Transforms.fit(ds, DataConfig(input_scaler="standard"))
    c_r, s_r = robust.input_stats["log10_mass"]
    _, s_s = standard.input_stats["log10_mass"]
    assert c_r[0] == pytest.approx(np.median(mass))
    assert s_r[0] == pytest.approx(1.4826 * np.median(np.abs(mass - np.median(mass))))
    assert abs(c_r[0] - 12.0) < 0.1 and abs(s_r[0] - 0.3) < 0.1
    assert s_s[0] > 4 * s_r[0]  # the standard scale is blown up by the outliers
    assert robust.mass_scale == pytest.approx(1 / s_r[0])


def test_constant_columns_never_divide_by_zero(rng: np.random.Generator) -> None:
    kw = base_kwargs(rng, n=10, n_r=4)
    kw["params"][:, 0] = 0.3
    kw["profiles"]["rho"][:, 1] = 7.0
    ds = ProfileDataset(**kw)
    t = Transforms.fit(ds, DataConfig(scale_floor=1e-3))
    assert t.input_stats["params"][1][0] == 1e-3
    assert t.target_scale[1] == 1e-3
    data = t.transform(ds)
    assert np.all(np.isfinite(data.inputs["params"]))
    assert np.abs(data.inputs["params"][:, 0]).max() < 1e-9
    assert np.abs(data.target[:, 1]).max() < 1e-9
    # constant redshift: no redshift block
    assert "redshift" not in t.input_blocks


def test_feature_block(rng: np.random.Generator) -> None:
    ds = make_dataset(rng, n=20, n_r=4)
    t = Transforms.fit(ds, DataConfig(features=["mass_deviation", "pk_summary"]))
    assert t.input_blocks["features"] == 1 + 4
    data = t.transform(ds)
    f = data.inputs["features"].astype(np.float64)
    np.testing.assert_allclose(f.mean(axis=0), 0, atol=1e-5)
    dev = ds.log10_mass - ds.log10_mass.mean()
    np.testing.assert_allclose(f[:, 0], dev / dev.std(), rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match=r"'omega_b_over_omega_m' needs the parameter 'Omega_b'"):
        Transforms.fit(ds, DataConfig(features=["omega_b_over_omega_m"]))


@pytest.mark.parametrize("scaler", ["standard", "robust"])
def test_pca_full_rank_reconstructs_exactly(rng: np.random.Generator, scaler: str) -> None:
    ds = make_dataset(rng, n=30, n_r=5)
    d = 10
    t = Transforms.fit(ds, DataConfig(pca_components=d, target_scaler=scaler))
    assert t.out_dim == d and t.pca_components is not None
    np.testing.assert_allclose(t.pca_components @ t.pca_components.T, np.eye(d), atol=1e-10)
    target = t.transform(ds).target.astype(np.float64)
    coeffs = t.encode_target(target)
    np.testing.assert_allclose(decode_mean(coeffs, t.model_arrays()), target, atol=1e-10)
    # variance decoding uses squared loadings
    var = np.abs(rng.normal(size=(3, d)))
    np.testing.assert_allclose(decode_var(var, t.model_arrays()), var @ t.pca_components**2)


def test_pca_truncated_captures_main_variation(rng: np.random.Generator) -> None:
    ds = make_dataset(rng, n=40, n_r=6)
    t2 = Transforms.fit(ds, DataConfig(pca_components=2))
    target = t2.transform(ds).target.astype(np.float64)
    err2 = np.mean((decode_mean(t2.encode_target(target), t2.model_arrays()) - target) ** 2)
    t1 = Transforms.fit(ds, DataConfig(pca_components=1))
    err1 = np.mean((decode_mean(t1.encode_target(target), t1.model_arrays()) - target) ** 2)
    assert err2 < err1 < np.mean(target**2)


def test_pca_too_many_components(rng: np.random.Generator) -> None:
    ds = make_dataset(rng, n=4, n_r=5)
    with pytest.raises(
        ConfigError, match=r"data.pca_components: 6 components requested but at most"
    ):
        Transforms.fit(ds, DataConfig(pca_components=6))


def test_identity_decode_without_pca(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig())
    out = np.arange(24.0).reshape(2, 12)
    assert decode_mean(out, t.model_arrays()) is out and decode_var(out, t.model_arrays()) is out


def test_transform_rejects_mismatched_datasets(
    ds: ProfileDataset, rng: np.random.Generator
) -> None:
    t = Transforms.fit(ds, DataConfig())
    kw = base_kwargs(rng, n=5, n_r=6)
    kw["param_names"] = ("Omega_m", "sigma_8", "A_AGN1")
    kw["log_params"] = ()
    with pytest.raises(DataError, match=r"param_names: dataset has .*'A_AGN1'.* fitted on"):
        t.transform(ProfileDataset(**kw))
    with pytest.raises(DataError, match=r"radius: the dataset's radial grid \(5 bins"):
        t.transform(make_dataset(rng, n=5, n_r=5))
    with pytest.raises(DataError, match=r"fields: dataset lacks \['pth'\]"):
        t.transform(ds.select_fields(["rho"]))
    with pytest.raises(DataError, match=r"pk_ratio: the dataset has no P\(k\)"):
        t.transform(make_dataset(rng, n=5, n_r=6, with_pk=False))
    kw = base_kwargs(rng, n=5, n_r=6)
    kw["k"] = kw["k"] * 1.5
    with pytest.raises(DataError, match=r"k: the dataset's P\(k\) wavenumber grid differs"):
        t.transform(ProfileDataset(**kw))
    with pytest.raises(DataError, match=r"redshift: the transforms use a redshift input"):
        t.transform(make_dataset(rng, n=5, n_r=6, redshift=None))


def test_transform_inputs_only_computes(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig())
    many = t.transform_inputs(np.repeat(ds.params[:1], 5, 0), np.linspace(11, 13, 5), np.repeat(ds.pk_ratio[:1], 5, 0),
                              np.full(5, 0.3))
    assert many["params"].shape == (5, 3) and many["log10_mass"].shape == (5, 1)
    np.testing.assert_allclose(np.diff(many["log10_mass"][:, 0]), 0.5 * t.mass_scale)
    np.testing.assert_allclose(many["params"][0], many["params"][4])


def test_input_box(ds: ProfileDataset) -> None:
    t = Transforms.fit(ds, DataConfig())
    box = t.input_box()
    assert box["A_SN1"] == (ds.params[:, 2].min(), ds.params[:, 2].max())
    assert box["log10_mass"] == (ds.log10_mass.min(), ds.log10_mass.max())
    assert box["redshift"] == (ds.redshift.min(), ds.redshift.max())
    np.testing.assert_array_equal(box["pk_ratio"][0], ds.pk_ratio.min(axis=0))
    np.testing.assert_array_equal(box["pk_ratio"][1], ds.pk_ratio.max(axis=0))


def _plain(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return obj is None or type(obj) in (str, int, float, bool)


def test_json_round_trip_is_exact(ds: ProfileDataset) -> None:
    t = Transforms.fit(
        ds,
        DataConfig(
            pca_components=4, features=["mass_deviation", "pk_summary"], target_scaler="robust"
        ),
    )
    d = t.to_dict()
    assert _plain(d)
    t2 = Transforms.from_dict(json.loads(json.dumps(d)))
    assert t2.to_dict() == d
    a, b = t.transform(ds), t2.transform(ds)
    for block in a.inputs:
        np.testing.assert_array_equal(a.inputs[block], b.inputs[block])
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(a.noise_var, b.noise_var)
    out = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_array_equal(decode_mean(out, t.model_arrays()), decode_mean(out, t2.model_arrays()))
    assert t2.input_box().keys() == t.input_box().keys()
    assert t2.mass_scale == t.mass_scale and t2.units == t.units and t2.radius_unit == t.radius_unit


def test_from_dict_errors(ds: ProfileDataset) -> None:
    d = Transforms.fit(ds, DataConfig()).to_dict()
    with pytest.raises(FormatError, match="newer than supported"):
        Transforms.from_dict({**d, "version": 99})
    with pytest.raises(FormatError, match="missing key 'target_scale'"):
        Transforms.from_dict({k: v for k, v in d.items() if k != "target_scale"})
    with pytest.raises(FormatError, match=r"not a profemu\.Transforms"):
        Transforms.from_dict({"hello": 1})


def test_fit_rejects_unknown_field(ds: ProfileDataset) -> None:
    with pytest.raises(DataError, match=r"data.fields: 'temp' is not a field"):
        Transforms.fit(ds, DataConfig(fields=["temp"]))


def test_jax_matches_numpy_and_is_differentiable(ds: ProfileDataset) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    t = Transforms.fit(ds, DataConfig(features=["mass_deviation", "pk_summary"], pca_components=3))
    args = (ds.params[:5], ds.log10_mass[:5], ds.pk_ratio[:5], ds.redshift[:5])
    ref = t.transform_inputs(*args)
    got = t.transform_inputs(*(jnp.asarray(a, dtype=jnp.float32) for a in args), xp=jnp)
    assert set(got) == set(ref)
    for block in ref:
        np.testing.assert_allclose(np.asarray(got[block]), ref[block], rtol=1e-4, atol=1e-4)

    def mass_input(log10_mass: Any) -> Any:
        blocks = t.transform_inputs(args[0][:1], log10_mass, args[2][:1], args[3][:1], xp=jnp)
        return blocks["log10_mass"][0, 0]

    grad = jax.grad(mass_input)(jnp.asarray([12.0], dtype=jnp.float32))
    assert float(grad[0]) == pytest.approx(t.mass_scale, rel=1e-5)

    def total(params: Any) -> Any:
        blocks = t.transform_inputs(params, args[1], args[2], args[3], xp=jnp)
        return sum(jnp.sum(v) for v in blocks.values())

    g = jax.grad(total)(jnp.asarray(args[0], dtype=jnp.float32))
    assert np.all(np.isfinite(np.asarray(g)))
    # d(scaled log10 A)/dA = 1 / (A ln10 scale)
    expected = 1.0 / (args[0][:, 2] * np.log(10) * t.input_stats["params"][1][2])
    np.testing.assert_allclose(np.asarray(g)[:, 2], expected, rtol=1e-4)

    out = np.random.default_rng(1).normal(size=(2, 3))
    np.testing.assert_allclose(
        np.asarray(decode_mean(jnp.asarray(out, dtype=jnp.float32), t.model_arrays(), jnp)),
        decode_mean(out, t.model_arrays()),
        rtol=1e-5,
        atol=1e-5,
    )
    m, v = t.to_log10(
        jnp.ones((2, 12), dtype=jnp.float32), jnp.ones((2, 12), dtype=jnp.float32), xp=jnp
    )
    m_np, v_np = t.to_log10(np.ones((2, 12)), np.ones((2, 12)))
    np.testing.assert_allclose(np.asarray(m), m_np, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(v), v_np, rtol=1e-5)


def test_mass_and_redshift_inputs_are_scaled_by_at_least_their_physical_floors(
        caplog: pytest.LogCaptureFixture) -> None:
    """One narrow mass bin at two nearby redshifts: the mass and redshift inputs are divided by
    0.2 dex and 0.25 in z, not by their spreads (0.01 dex, 0.025), and a log line says
    so; a suite spread wider keeps its own spread."""
    import logging

    from profemu.data.mock import make_mock_snapshots
    from profemu.data.transforms import MASS_SCALE_FLOOR_DEX, REDSHIFT_SCALE_FLOOR

    narrow = make_mock_snapshots((0.0, 0.05), 40, seed=0, param_set="lh6", with_pk=False, n_r=8,
                                 log10_mass_range=(12.0, 12.03))
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(narrow, DataConfig())
    assert float(t.input_stats["log10_mass"][1][0]) == MASS_SCALE_FLOOR_DEX == 0.2
    assert float(t.input_stats["redshift"][1][0]) == REDSHIFT_SCALE_FLOOR == 0.25
    assert float(t.input_stats["log10_mass"][0][0]) == pytest.approx(np.mean(narrow.log10_mass))
    assert "log10_mass input: the training rows' spread is" in caplog.text
    assert "redshift input: the training rows' spread is" in caplog.text
    wide = make_mock_snapshots((0.0, 1.0), 40, seed=0, param_set="lh6", with_pk=False, n_r=8)
    w = Transforms.fit(wide, DataConfig())
    assert float(w.input_stats["log10_mass"][1][0]) == pytest.approx(np.std(wide.log10_mass))
    assert float(w.input_stats["redshift"][1][0]) == pytest.approx(0.5)
    again = Transforms.from_dict(t.to_dict())
    np.testing.assert_array_equal(again.input_stats["log10_mass"][1], t.input_stats["log10_mass"][1])
    # the redshift given as a parameter column "z": the same floor for that column alone
    column = ProfileDataset(params=np.column_stack([narrow.params, narrow.redshift]),
                            param_names=[*narrow.param_names, "z"], log10_mass=narrow.log10_mass,
                            radius=narrow.radius, profiles=narrow.profiles, units=narrow.units,
                            groups=narrow.groups, meta=narrow.meta, noise=narrow.noise)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        c = Transforms.fit(column, DataConfig())
    scales = np.asarray(c.input_stats["params"][1])
    assert scales[-1] == REDSHIFT_SCALE_FLOOR
    np.testing.assert_allclose(scales[:-1], np.std(narrow.params, axis=0), rtol=1e-9)
    assert "parameter column 'z' (the redshift) input: the training rows' spread is" in caplog.text


def test_one_narrow_mass_bin_extrapolates_half_a_dex_without_running_away() -> None:
    """Trained on haloes of 10^12-10^12.05 Msun (a spread of 0.015 dex) and asked at 10^12.5: scaled
    by its spread the mass input lies ~35 spreads out and the network's guesses there were 3-5x
    worse (median errors 0.46 / 0.41 / 0.32 against 0.14 / 0.07 / 0.08 for rho / pth / T)."""
    import warnings

    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.training import train_emulator

    kw: dict[str, Any] = {"param_set": "lh6", "with_pk": False, "n_r": 12, "n_mass_per_sim": 1}
    train = make_mock_universe(300, seed=0, log10_mass_range=(12.0, 12.05), **kw).dataset
    test = make_mock_universe(60, seed=1, log10_mass_range=(12.5, 12.55), **kw).dataset
    cfg = Config().updated({"train.cv_folds": 0, "train.members": 2, "train.epochs": 60, "data.val_fraction": 0.2})
    emu = train_emulator(train, cfg, evaluate_test=False).emulator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the masses are outside the training box, on purpose
        pred = emu.predict(test.params, test.log10_mass, redshift=test.redshift)
    errors = {f: float(np.median(np.abs(10 ** (pred[f].mean - np.log10(test.profiles[f])) - 1)))
              for f in emu.field_names}
    assert max(errors.values()) < 0.25, errors


def test_a_parameter_with_one_value_in_every_row_is_not_read(caplog: pytest.LogCaptureFixture) -> None:
    """sigma_8 held at one value in every training row: its input weight is 0 (whatever relevance
    weights are given), its normalised column is 0 at any value, a log line names it, and the
    weights survive the JSON round trip; an emulator trained on such rows predicts the same mean
    at another sigma_8 (before, 1% off moved log rho by 0.6 dex), with the warning for inputs
    outside the training box."""
    import dataclasses
    import logging
    import warnings

    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.training import train_emulator

    ds = make_mock_universe(300, seed=0, param_set="lh6", with_pk=False, n_r=8).dataset
    j = list(ds.param_names).index("sigma_8")
    params = ds.params.copy()
    params[:, j] = params[0, j]
    ds = dataclasses.replace(ds, params=params)
    given = np.full(len(ds.param_names), 0.5)
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(ds, DataConfig(), input_weights=given)
    expected = given.copy()
    expected[j] = 0.0
    np.testing.assert_array_equal(t.param_weights, expected)
    assert "parameters 'sigma_8' have one value in every training row" in caplog.text
    moved = params[:3].copy()
    moved[:, j] *= 1.2
    np.testing.assert_array_equal(t.transform_inputs(moved, ds.log10_mass[:3])["params"][:, j], 0.0)
    np.testing.assert_array_equal(Transforms.from_dict(t.to_dict()).param_weights, expected)

    cfg = Config().updated({"train.cv_folds": 0, "train.members": 2, "train.epochs": 20})
    emu = train_emulator(ds, cfg, evaluate_test=False).emulator
    x = np.median(ds.params, axis=0)
    y = x.copy()
    y[j] *= 1.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        at = emu.predict(x, 13.0)["rho"].mean
    with pytest.warns(UserWarning, match="sigma_8 = .* outside the training range"):
        off = emu.predict(y, 13.0)["rho"].mean
    np.testing.assert_allclose(off, at, atol=1e-6)
