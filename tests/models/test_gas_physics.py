"""The gas's physics in the network's structure: the enclosed gas fraction never above the
cosmic one, and an ideal-gas temperature."""

from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import Config, DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.layout import FieldSpec, OutputLayout
from profemu.data.mock import make_hard_mock, make_mock_universe
from profemu.data.transforms import Transforms
from profemu.errors import FormatError
from profemu.models import layers
from profemu.models.network import Network
from profemu.physics.halo import enclosed_fraction_weights
from tests.helpers import make_inputs, perturbed, small_config

X = np.geomspace(0.02, 4.0, 12)  # radii in units of R_Δ
W = enclosed_fraction_weights(X)


@pytest.fixture(autouse=True)
def _full_float32_matmuls():
    with jax.default_matmul_precision("float32"):
        yield


@pytest.mark.parametrize("shift", [-5.0, 0.0, 2.0, 30.0])
def test_the_bounded_gas_never_exceeds_the_cosmic_fraction(shift: float) -> None:
    rng = np.random.default_rng(1)
    log_rho = np.log10(1e3 * (1 + (X / 0.15) ** 2) ** -1.5)[None, :] + shift + rng.normal(0, 0.3, (5, X.size))
    bounded, _ = layers.gas_fraction_bound(log_rho, W)
    f_net = (W * 10.0**log_rho).sum(-1)
    f_bounded = (W * 10.0**bounded).sum(-1)
    np.testing.assert_allclose(f_bounded, f_net / (1.0 + f_net), rtol=1e-10)
    assert (f_bounded <= 1.0 + 1e-12).all()  # < 1 but for rounding when F is astronomically large
    if shift <= -5.0:  # a gas-poor halo is left as it is
        np.testing.assert_allclose(bounded, log_rho, atol=2e-3)
    in_jax, _ = layers.gas_fraction_bound(jnp.asarray(log_rho, jnp.float32), W, jnp)
    np.testing.assert_allclose(np.asarray(in_jax), bounded, rtol=1e-5, atol=1e-5 * max(1.0, shift))


def test_the_bounded_slope_is_the_derivative_in_mass() -> None:
    rng = np.random.default_rng(2)
    base = jnp.asarray(rng.normal(2.0, 0.5, (3, X.size)), jnp.float32)
    rate = jnp.asarray(rng.normal(0.5, 0.2, (3, X.size)), jnp.float32)  # d log10 ρ / d log10 M

    def bounded(m):
        return layers.gas_fraction_bound(base + rate * m, W, jnp)[0]

    _, expected = jax.jvp(bounded, (jnp.float32(0.3),), (jnp.float32(1.0),))
    _, slope = layers.gas_fraction_bound(base + rate * 0.3, W, jnp, slope=rate)
    np.testing.assert_allclose(np.asarray(slope), np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_a_power_law_gas_fraction_levels_off_at_the_cosmic_one() -> None:
    """ln F growing linearly with log M gives the baryon-correction model's 1 / (1 + (M_c/M)^β)."""
    shape = np.log10((1 + (X / 0.15) ** 2) ** -1.5)
    shape -= np.log10((W * 10.0**shape).sum())  # F = 1 at the offset 0
    masses = np.linspace(11.0, 16.0, 11)
    beta, mc = 0.6, 13.5
    bounded, _ = layers.gas_fraction_bound(shape[None, :] + beta * (masses[:, None] - mc), W)
    fraction = (W * 10.0**bounded).sum(-1)
    np.testing.assert_allclose(fraction, 1.0 / (1.0 + 10.0 ** (-beta * (masses - mc))), rtol=1e-9)


def _layout() -> OutputLayout:
    fields = (FieldSpec("rho", "", "density", gas_fraction_bound=True),
              FieldSpec("pth", "", "pressure"),
              FieldSpec("temp", "", "temperature", ideal_gas=("pth", "rho")))
    return OutputLayout(fields, X.size, (("params", 3), ("log10_mass", 1)), 3 * X.size)


def _arrays() -> dict[str, np.ndarray]:
    lx = np.log10(X)
    center = np.concatenate([2.0 - 1.5 * lx, -1.0 - 2.0 * lx, 0.3 * np.ones(X.size)])
    scale = np.concatenate([np.full(X.size, 0.4), np.full(X.size, 0.5), np.full(X.size, 0.2)])
    return {"target_center": center, "target_scale": scale, "log10_radius": lx, "log10_mass_scale": np.asarray(0.4),
            "gas_fraction_weights": np.concatenate([W, np.zeros(2 * X.size)])}


def test_the_network_predicts_the_ideal_gas_temperature_of_its_bounded_density() -> None:
    layout, arrays = _layout(), _arrays()
    net = Network(small_config(kind="mlp"), layout)
    params = perturbed(net.init(jax.random.PRNGKey(0), arrays), scale=0.5)
    inputs = make_inputs(layout, n=6)
    out = net.apply(params, arrays, inputs)
    free = Network(small_config(kind="mlp"), OutputLayout(
        tuple(FieldSpec(f.name, "", f.kind) for f in layout.fields), X.size, layout.input_blocks, layout.out_dim))
    raw = free.apply(params, arrays, inputs).mean  # the same network without the structure
    c, s = arrays["target_center"], arrays["target_scale"]
    log = {f: c[i * X.size:(i + 1) * X.size] + s[i * X.size:(i + 1) * X.size] * out.mean[:, i * X.size:(i + 1) * X.size]
           for i, f in enumerate(("rho", "pth", "temp"))}
    log_raw = {f: c[i * X.size:(i + 1) * X.size] + s[i * X.size:(i + 1) * X.size] * raw[:, i * X.size:(i + 1) * X.size]
               for i, f in enumerate(("rho", "pth", "temp"))}
    np.testing.assert_allclose(log["rho"], layers.gas_fraction_bound(log_raw["rho"], W)[0], atol=1e-5)
    np.testing.assert_allclose(log["pth"], log_raw["pth"], atol=1e-5)
    delta = log_raw["temp"] - c[2 * X.size:]  # the temperature output is the correction δ
    np.testing.assert_allclose(log["temp"], log["pth"] - log["rho"] + delta + (c[2 * X.size:] - c[X.size:2 * X.size]
                                                                               + c[:X.size]), atol=1e-5)
    jax_out = net.apply(params, {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()},
                        {k: jnp.asarray(v) for k, v in inputs.items()}, xp=jnp)
    np.testing.assert_allclose(np.asarray(jax_out.mean), out.mean, rtol=2e-4, atol=2e-4)


def _mock(n: int = 120):
    return make_mock_universe(n, seed=4, param_set="lh6", with_pk=False, n_r=10)


def test_the_transforms_bound_the_gas_of_a_suite_on_radii_in_r200c(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(_mock().dataset, DataConfig())
    assert t.gas_fraction_fields == ("rho",) and t.ideal_gas == {"temp": ("pth", "rho")}
    assert "gas-fraction bound: rho" in caplog.text and "ideal-gas temperature: temp predicted as pth / rho" in caplog.text
    np.testing.assert_allclose(t.model_arrays()["gas_fraction_weights"][:t.n_r], enclosed_fraction_weights(t.radius))
    again = Transforms.from_dict(t.to_dict())
    assert again.layout == t.layout
    broken = {**t.to_dict(), "ideal_gas": {"temp": ["pth", "nope"]}}
    with pytest.raises(FormatError, match="ideal_gas"):
        Transforms.from_dict(broken)
    off = Transforms.fit(_mock().dataset, DataConfig(gas_fraction_bound="off", ideal_gas_temperature="off"))
    assert off.gas_fraction_fields == () and off.ideal_gas == {}
    assert not any(f.gas_fraction_bound or f.ideal_gas for f in off.layout.fields)


def test_data_above_the_cosmic_baryon_fraction_are_not_bounded_and_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    """Gas densities 1000x too high (a unit slip) hold more gas inside R200c than f_b M: the bound
    (a fraction below 1) could not fit them (95% errors), so it is not applied and a warning says
    how far above the data are; the mock's own densities stay bounded."""
    ds = _mock().dataset
    from profemu.data.transforms import _data_gas_fraction

    t = Transforms.fit(ds, DataConfig())
    own = _data_gas_fraction(ds, t.field_names, "rho", _log10_targets_of(t, ds), _valid_of(t, ds))
    assert own is not None and 0.01 < own < 1.0
    heavy = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass, radius=ds.radius,
                           profiles={**ds.profiles, "rho": ds.profiles["rho"] * 1000.0}, units=ds.units,
                           radius_unit=ds.radius_unit, log_params=ds.log_params, groups=ds.groups, meta=ds.meta)
    with caplog.at_level(logging.WARNING, logger="profemu.data.transforms"):
        t = Transforms.fit(heavy, DataConfig())
    assert t.gas_fraction_fields == ()
    warned = [r.getMessage() for r in caplog.records if "gas-fraction bound: not applied" in r.getMessage()]
    assert len(warned) == 1 and f"rho: {1000 * own:.3g} times f_b M_Δ" in warned[0], warned


def _log10_targets_of(t: Transforms, ds: ProfileDataset) -> np.ndarray:
    from profemu.data.transforms import _log10_targets

    return _log10_targets(ds, t.field_names, t.self_similar)


def _valid_of(t: Transforms, ds: ProfileDataset) -> np.ndarray:
    return np.concatenate([ds.mask[f] for f in t.field_names], axis=1)


def test_physical_radii_are_not_bounded_and_the_log_says_why(caplog: pytest.LogCaptureFixture) -> None:
    ds = make_hard_mock(60, seed=1).dataset  # rho on physical radii
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(ds, DataConfig())
    assert t.gas_fraction_fields == ()
    assert "gas-fraction bound: not applied (the radii" in caplog.text


def test_an_emulator_far_above_its_masses_keeps_the_gas_below_the_cosmic_fraction() -> None:
    """Gas inside R200c from the predicted physical ρ(r) (scipy quadrature, R200c from astropy)."""
    from scipy.integrate import quad

    from profemu.runs.training import train_emulator

    cosmology = pytest.importorskip("astropy.cosmology")
    units = pytest.importorskip("astropy.units")
    universe = _mock(200)
    cfg = Config().updated({"train.epochs": 15, "train.members": 2, "model.hidden": [16], "train.cv_folds": 0,
                            "train.extrapolation_variance": "off", "data.fields": ["rho"]})
    emulator = train_emulator(universe.dataset, cfg).emulator
    theta = np.asarray(universe.dataset.params)[:3]
    om = theta[:, universe.dataset.param_names.index("Omega_m")]
    for log_m in (13.0, 15.0, 17.0):
        with warnings.catch_warnings():  # far outside the training box, on purpose
            warnings.simplefilter("ignore")
            rho = 10.0 ** emulator.predict(theta, np.full(3, log_m))["rho"].mean  # Msun kpc^-3 on r / R200c
        for i in range(3):
            cosmo = cosmology.FlatLambdaCDM(H0=67.11, Om0=om[i], Tcmb0=0.0)
            rho_c = cosmo.critical_density(0.0).to(units.Msun / units.kpc**3).value
            r200 = (3 * 10.0**log_m / (4 * np.pi * 200 * rho_c)) ** (1 / 3)  # kpc

            def density(r, rho=rho[i], r200=r200, x=emulator.radius):
                return 10.0 ** np.interp(np.log10(max(r / r200, x[0])), np.log10(x), np.log10(rho))

            gas = 4 * np.pi * quad(lambda r: r * r * density(r), 0.0, r200, limit=200)[0]
            assert gas / (0.049 / om[i] * 10.0**log_m) < 1.01, (log_m, i)  # quadrature: within 1%
