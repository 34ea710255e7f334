"""The network's radial coordinate r / R_Δ (``data.radial_coordinate``): R_Δ against astropy,
the interpolation onto each row's radii, the transforms that carry it and what it buys."""

from __future__ import annotations

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import DataConfig, ModelConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.mock import make_mock_universe
from profemu.data.selfsimilar import _radius_unit_flags
from profemu.data.transforms import Transforms, linear_extrapolating_interp
from profemu.errors import ConfigError, FormatError
from profemu.models import layers
from profemu.models.network import Network

Z = 0.5


def self_similar_haloes(n: int, seed: int = 0, lo: float = 11.0, hi: float = 13.0,
                        radius_unit: str = "Mpc") -> ProfileDataset:
    """Gas density exactly self-similar in r / R200c: rho = 200 f_b rho_c(z) * beta model(r / R200c),
    with a core radius that depends on Omega_m only; physical radii in Mpc."""
    from profemu.physics.halo import r_delta

    rng = np.random.default_rng(seed)
    om = rng.uniform(0.2, 0.4, n)
    log_m = rng.uniform(lo, hi, n)
    radius = np.logspace(-2.0, 0.3, 12)
    r200 = np.asarray(r_delta(10.0**log_m, Z, 0.6711, om))
    x = radius[None, :] / r200[:, None]
    core = 0.05 + 0.3 * (om[:, None] - 0.2)
    shape = (1.0 + (x / core) ** 2) ** -1.2
    rho_c = 2.775e11 * 0.6711**2 * (om * (1 + Z) ** 3 + 1 - om)  # Msun / Mpc^3
    rho = 200.0 * (0.049 / om)[:, None] * rho_c[:, None] * shape * 1e-9  # Msun / kpc^3
    return ProfileDataset(params=om[:, None], param_names=("Omega_m",), log10_mass=log_m, radius=radius,
                          profiles={"rho": rho}, units={"rho": "Msun kpc^-3"}, radius_unit=radius_unit,
                          redshift=np.full(n, Z), groups=np.arange(n),
                          meta={"mass_definition": "M200c [Msun]", "field_kinds": {"rho": "gas_density"}})


def test_halo_radius_against_astropy() -> None:
    import astropy.units as u
    from astropy.cosmology import FlatLambdaCDM

    ds = self_similar_haloes(5)
    t = Transforms.fit(ds, DataConfig(radial_coordinate="scaled"))
    got = t.self_similar.log10_halo_radius(ds.params, ds.log10_mass, ds.redshift)
    for i in range(ds.n):
        cosmo = FlatLambdaCDM(H0=67.11, Om0=float(ds.params[i, 0]), Tcmb0=0.0)
        rho_c = cosmo.critical_density(Z).to(u.Msun / u.Mpc**3).value
        r200 = (3 * 10 ** ds.log10_mass[i] / (4 * math.pi * 200 * rho_c)) ** (1 / 3)
        assert got[i] == pytest.approx(math.log10(r200), abs=1e-4)  # astropy's G and Msun: 1e-4 dex
    # h^-1 and comoving radii: R_Delta in those units is h R and (1 + z) R
    for unit, extra in (("kpc/h", math.log10(0.6711)), ("ckpc", math.log10(1 + Z)),
                        ("cMpc h^-1", math.log10(0.6711 * (1 + Z)))):
        spec = Transforms.fit(self_similar_haloes(5, radius_unit=unit), DataConfig(radial_coordinate="scaled"))
        moved = spec.self_similar.log10_halo_radius(ds.params, ds.log10_mass, ds.redshift)
        np.testing.assert_allclose(moved - got, extra, atol=1e-12)
    assert _radius_unit_flags("Mpc (physical)") == (False, False)


def test_rows_read_their_curve_at_their_own_positions_in_numpy_and_jax() -> None:
    rng = np.random.default_rng(0)
    grid = np.linspace(-1.0, 1.0, 9)
    values = rng.normal(size=(3, 4, 9))  # 3 members, 4 rows
    queries = np.sort(rng.uniform(-1.6, 1.7, (4, 5)), axis=1)  # beyond both ends too
    got = layers.interpolate_rows(values, grid, queries)
    for m in range(3):
        for i in range(4):
            np.testing.assert_allclose(got[m, i], linear_extrapolating_interp(queries[i], grid, values[m, i]),
                                       rtol=1e-12, atol=1e-12)
    in_jax = jax.jit(lambda v, q: layers.interpolate_rows(v, jnp.asarray(grid), q, jnp))(values, queries)
    np.testing.assert_allclose(np.asarray(in_jax), got, rtol=1e-5, atol=1e-5)
    # d value / d query is the local slope of the curve (here a straight line of slope 2)
    line = jnp.asarray(2.0 * grid)[None, :]
    slope = jax.grad(lambda q: layers.interpolate_rows(line, jnp.asarray(grid), q, jnp).sum())(jnp.array([[0.33]]))
    assert float(slope[0, 0]) == pytest.approx(2.0, rel=1e-5)


def test_transforms_carry_the_grid_and_the_halo_radius(caplog: pytest.LogCaptureFixture) -> None:
    ds = self_similar_haloes(60)
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(ds, DataConfig(radial_coordinate="scaled"))
    assert any("radial coordinate: r/R_Delta" in r.getMessage() for r in caplog.records)
    log_r200 = t.self_similar.log10_halo_radius(ds.params, ds.log10_mass, ds.redshift)
    shift = t.transform_inputs(ds.params, ds.log10_mass, redshift=ds.redshift)["r_delta"][:, 0]
    np.testing.assert_allclose(shift, log_r200 - log_r200.mean(), atol=1e-12)
    grid = t.scaled_radius
    # every training row's radii, shifted to the mean R_Delta, lie on the grid; spacing <= the data's
    assert grid[0] <= np.log10(ds.radius[0]) - shift.max() + 1e-12
    assert grid[-1] >= np.log10(ds.radius[-1]) - shift.min() - 1e-12
    assert np.diff(grid).max() <= np.diff(np.log10(ds.radius)).max() + 1e-12
    assert t.layout.n_x == grid.size and "r_delta" in t.layout.block_widths
    again = Transforms.from_dict(t.to_dict())
    assert again == t and again.layout == t.layout
    broken = t.to_dict()
    broken["scaled_radius"] = broken["scaled_radius"][::-1]
    with pytest.raises(FormatError, match="scaled_radius"):
        Transforms.from_dict(broken)
    # the default draws the core on the radii themselves and the outskirts on r / R_Delta
    assert Transforms.fit(ds, DataConfig()).layout.hybrid
    assert Transforms.fit(ds, DataConfig(radial_coordinate="physical")).layout.n_x == 0


def test_part_of_the_rows_can_keep_the_runs_radial_coordinate() -> None:
    """``radial_coordinate_of``: rows of a run (here its lower half in mass, whose R_Delta span less)
    take the run's grid, centre of log10 R_Delta and hybrid radius; the rest is fitted on them."""
    ds = self_similar_haloes(80)
    run = Transforms.fit(ds, DataConfig())
    lower = ds.subset(np.flatnonzero(ds.log10_mass <= np.median(ds.log10_mass)))
    own = Transforms.fit(lower, DataConfig())
    assert own.scaled_radius.size < run.scaled_radius.size  # what the rows alone would draw on
    kept = Transforms.fit(lower, DataConfig(), radial_coordinate_of=run)
    np.testing.assert_array_equal(kept.scaled_radius, run.scaled_radius)
    assert kept.hybrid_r_delta == run.hybrid_r_delta and kept.layout.n_x == run.layout.n_x
    np.testing.assert_array_equal(kept.input_stats["r_delta"][0], run.input_stats["r_delta"][0])
    np.testing.assert_array_equal(kept.input_stats["log10_mass"][0], own.input_stats["log10_mass"][0])
    np.testing.assert_array_equal(kept.target_center, own.target_center)
    assert Transforms.from_dict(kept.to_dict()) == kept
    # physical radii asked for: nothing to keep
    assert Transforms.fit(lower, DataConfig(radial_coordinate="physical"), radial_coordinate_of=run).layout.n_x == 0


def test_where_it_cannot_apply_scaled_is_refused_and_auto_says_why(caplog: pytest.LogCaptureFixture) -> None:
    ds = self_similar_haloes(30)
    bare = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass, radius=ds.radius,
                          profiles=ds.profiles, units=ds.units, radius_unit="Mpc")
    with pytest.raises(ConfigError, match=r"data\.radial_coordinate = 'scaled'.*self-similar"):
        Transforms.fit(bare, DataConfig(radial_coordinate="scaled"))
    with pytest.raises(ConfigError, match=r"data\.pca_components"):
        Transforms.fit(ds, DataConfig(radial_coordinate="scaled", pca_components=2))
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        assert Transforms.fit(bare, DataConfig(radial_coordinate="auto")).scaled_radius is None
        mock = make_mock_universe(30, seed=0, param_set="lh6", n_r=6).dataset  # radii in units of R200c
        assert Transforms.fit(mock, DataConfig(radial_coordinate="auto")).scaled_radius is None
        assert Transforms.fit(ds, DataConfig(radial_coordinate="auto")).scaled_radius is not None
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "physical radii, not r/R_Delta" in text and "already in units of R_Delta" in text


@pytest.mark.parametrize("monotone", [False, True])
def test_a_heavier_halo_reads_the_same_curve_further_out(monotone: bool) -> None:
    """With the mass input silenced, the prediction depends on mass only through R_Delta: a halo
    whose R_Delta is one radial bin larger has, one bin further out, the smaller halo's profile
    (up to the self-similar scale)."""
    ds = self_similar_haloes(80)
    cfg = DataConfig(radial_coordinate="scaled", monotone_fields=("rho",) if monotone else ())
    t = Transforms.fit(ds, cfg)
    net = Network(ModelConfig(hidden=(16,), monotone_head=monotone), t.layout)
    arrays = t.model_arrays()
    params = jax.tree_util.tree_map(np.array, net.init(jax.random.key(0), arrays))
    width = t.layout.block_widths["params"]
    params["trunk"]["hidden_0"]["kernel"][width:] = 0.0  # rows after the parameters: the mass input
    om = np.array([[0.3], [0.3]])
    step = float(np.diff(np.log10(t.radius))[0])  # the radii are log-spaced
    log_m = np.array([12.0, 12.0 + 3 * step])  # R200c one radial bin larger
    inputs = t.transform_inputs(om, log_m, redshift=np.full(2, Z))
    assert inputs["r_delta"][1, 0] - inputs["r_delta"][0, 0] == pytest.approx(step, abs=1e-9)
    out = net.apply(params, arrays, inputs)
    log_y, _ = t.to_log10(out.mean, params=om, log10_mass=log_m, redshift=np.full(2, Z))
    small, big = log_y[0] - t.self_similar.log10_scale(om, log_m)[0, 0], \
        log_y[1] - t.self_similar.log10_scale(om, log_m)[1, 0]
    np.testing.assert_allclose(big[1:], small[:-1], atol=1e-5)
    assert np.abs(big[1:] - small[1:]).max() > 1e-2  # and it is not the same profile at the same radius
    if monotone:
        assert (np.diff(log_y, axis=1) <= 1e-6).all()
    # numpy and JAX paths agree
    jout = net.apply(jax.tree_util.tree_map(jnp.asarray, params), arrays,
                     {k: jnp.asarray(v) for k, v in inputs.items()}, xp=jnp)
    np.testing.assert_allclose(np.asarray(jout.mean), out.mean, atol=1e-4)


def test_scaled_coordinate_extrapolates_self_similar_haloes_in_mass() -> None:
    """Haloes self-similar in r / R_Delta, trained below 10^12.3 and asked at 10^13-10^13.5 (1 dex out).
    The physics core (a power law in mass at fixed coordinate) drawing on r / R_Delta keeps the
    shape; drawing on fixed radii the same model has to guess how the shape moves."""
    from profemu.config import Config
    from profemu.runs.training import train_emulator

    train = self_similar_haloes(400, seed=1, lo=11.0, hi=12.3)
    test = self_similar_haloes(100, seed=2, lo=13.0, hi=13.5)
    errors = {}
    for mode in ("scaled", "physical"):
        cfg = Config().updated({"data.radial_coordinate": mode, "model.kind": "physics", "model.mass_order": 1,
                                "train.cv_folds": 0, "train.members": 2, "train.epochs": 150,
                                "train.patience": 30, "data.val_fraction": 0.1})
        emu = train_emulator(train, cfg, evaluate_test=False).emulator
        with pytest.warns(UserWarning, match="log10_mass"):
            pred = emu.predict(test.params, test.log10_mass, redshift=test.redshift)
        errors[mode] = float(np.median(np.abs(10 ** (pred["rho"].mean - np.log10(test.profiles["rho"])) - 1)))
    # measured: 0.4% against 5.2%
    assert errors["scaled"] < 0.02, errors
    assert errors["scaled"] < 0.3 * errors["physical"], errors


def test_radius_unit_lengths() -> None:
    from profemu.data.transforms import radius_unit_log10_mpc

    assert radius_unit_log10_mpc("Mpc") == 0.0 and radius_unit_log10_mpc("kpc") == -3.0
    assert radius_unit_log10_mpc("ckpc/h") == -3.0 and radius_unit_log10_mpc("cMpc h^-1") == 0.0
    assert radius_unit_log10_mpc("pc") == -6.0
    for other in ("R200c", "r/R500c", "arcmin", "kpch"):
        assert radius_unit_log10_mpc(other) is None


@pytest.mark.parametrize("unit, factor", [("Mpc", 1.0), ("kpc", 1e3), ("ckpc/h", 1e3 * 0.6711 * (1 + Z))])
def test_hybrid_carries_the_mean_halo_radius_in_the_radii_unit(unit: str, factor: float,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from profemu.physics.halo import r200c

    ds = self_similar_haloes(60)
    ds = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                        radius=ds.radius * factor, profiles=ds.profiles, units=ds.units, radius_unit=unit,
                        redshift=ds.redshift, groups=ds.groups, meta=ds.meta)
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(ds, DataConfig(radial_coordinate="hybrid"))
    assert "radial coordinate: hybrid" in caplog.text
    assert t.layout.hybrid and t.layout.n_x == t.scaled_radius.size
    # the training mean of log10 R200c [Mpc], in the radii's unit (R200c computed independently)
    r200 = r200c(10.0 ** ds.log10_mass, ds.redshift, 0.6711, ds.params[:, 0]) * factor
    assert t.model_arrays()["hybrid_log10_r_delta"] == pytest.approx(np.mean(np.log10(r200)), abs=1e-6)
    again = Transforms.from_dict(t.to_dict())
    assert again.hybrid_r_delta == t.hybrid_r_delta and again.layout == t.layout
    broken = t.to_dict()
    broken["hybrid_r_delta"] = "12"
    with pytest.raises(FormatError, match="hybrid_r_delta"):
        Transforms.from_dict(broken)


def test_hybrid_falls_back_to_physical_radii_where_it_cannot_apply(caplog: pytest.LogCaptureFixture) -> None:
    mock = make_mock_universe(30, seed=0, param_set="lh6", n_r=6).dataset  # radii in units of R200c
    ds = self_similar_haloes(30)
    odd = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass, radius=ds.radius,
                         profiles=ds.profiles, units=ds.units, radius_unit="arcmin", redshift=ds.redshift,
                         groups=ds.groups, meta=ds.meta)
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        for data in (mock, odd):
            t = Transforms.fit(data, DataConfig(radial_coordinate="hybrid"))
            assert not t.layout.hybrid and t.layout.n_x == 0 and t.hybrid_r_delta is None
    assert "already in units of R_Delta" in caplog.text and "'arcmin' is not a length" in caplog.text


def test_hybrid_takes_the_radii_head_in_the_core_and_the_scaled_head_outside() -> None:
    """The prediction is w S + (1 - w) R: R the mean drawn on the dataset's radii, S the one drawn on
    r / R_Delta, w a logistic function of log10(r / R200c) of each row (R200c computed here
    independently); two heads on one trunk; numpy and JAX agree."""
    from profemu.data.layout import HYBRID_TRANSITION, HYBRID_WIDTH_DEX
    from profemu.physics.halo import r200c

    ds = self_similar_haloes(60)
    t = Transforms.fit(ds, DataConfig(radial_coordinate="hybrid"))
    net = Network(ModelConfig(hidden=(16,)), t.layout)
    arrays = t.model_arrays()
    params = jax.tree_util.tree_map(np.array, net.init(jax.random.key(0), arrays))
    assert params["head"]["mean_radii"]["kernel"].shape == (16, ds.n_r)
    om, log_m = np.array([[0.3], [0.3]]), np.array([11.2, 12.8])
    inputs = t.transform_inputs(om, log_m, redshift=np.full(2, Z))
    params["head"]["mean_radii"]["kernel"][:] = 0.0
    params["head"]["mean_radii"]["bias"][:] = 1.0  # R = +1 at every radius (standardised)
    with_core = net.apply(params, arrays, inputs).mean
    params["head"]["mean_radii"]["bias"][:] = 0.0  # R = 0
    without_core = net.apply(params, arrays, inputs).mean
    log_x = np.log10(ds.radius[None, :] / r200c(10.0 ** log_m, Z, 0.6711, om[:, 0])[:, None])
    outside = 1.0 / (1.0 + np.exp(-(log_x - np.log10(HYBRID_TRANSITION)) / HYBRID_WIDTH_DEX))
    np.testing.assert_allclose(with_core - without_core, 1.0 - outside, atol=1e-5)
    assert outside.min() < 0.01 and outside.max() > 0.9  # the radii span the core and the outskirts
    # outside the transition the scaled head alone: the same curve in r / R_Delta for both haloes
    params["head"]["mean_radii"]["bias"][:] = 1.0
    jout = net.apply(jax.tree_util.tree_map(jnp.asarray, params), arrays,
                     {k: jnp.asarray(v) for k, v in inputs.items()}, xp=jnp)
    np.testing.assert_allclose(np.asarray(jout.mean), with_core, atol=1e-4)


def test_a_monotone_head_keeps_one_curve_per_profile(caplog: pytest.LogCaptureFixture) -> None:
    """model.monotone_head builds one non-increasing curve per profile: the hybrid's two curves,
    mixed where they meet, would not keep it, so the run uses physical radii and says so."""
    from profemu.config import Config
    from profemu.train.setup import prepare

    ds = self_similar_haloes(40)
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        monotone = prepare(ds, Config().updated({"model.monotone_head": True})).transforms
    assert not monotone.layout.hybrid and monotone.layout.n_x == 0
    assert "not hybrid (model.monotone_head" in caplog.text
    assert prepare(ds, Config()).transforms.layout.hybrid
    scaled = prepare(ds, Config().updated({"model.monotone_head": True, "data.radial_coordinate": "scaled"}))
    assert scaled.transforms.layout.n_x > 0 and not scaled.transforms.layout.hybrid
