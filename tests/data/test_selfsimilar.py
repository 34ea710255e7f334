"""Self-similar scales against textbook numbers and hand calculations (cgs, independent constants)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import DataConfig
from profemu.data import selfsimilar as ss
from profemu.data.mock import make_mock_universe
from profemu.data.transforms import Transforms

# independent constants (CODATA 2018, IAU): cgs
G_CGS = 6.67430e-8  # cm^3 g^-1 s^-2
MSUN = 1.98841e33  # g
MPC = 3.0856775814913673e24  # cm
M_P = 1.67262192369e-24  # g
K_B = 1.380649e-16  # erg / K
KEV = 1.602176634e-9  # erg


def rho_crit_cgs(h: float, e2: float) -> float:
    h0 = 100.0 * h * 1e5 / MPC  # s^-1
    return 3.0 * h0**2 * e2 / (8.0 * math.pi * G_CGS)  # g cm^-3


def test_critical_density_is_the_textbook_value() -> None:
    # 1.87847e-29 h^2 g cm^-3 (PDG) = 2.775e11 h^2 Msun Mpc^-3; tolerance 1e-4 (G's precision)
    assert rho_crit_cgs(1.0, 1.0) == pytest.approx(1.87847e-29, rel=1e-4)
    assert ss.RHO_CRIT0_H2 == pytest.approx(rho_crit_cgs(1.0, 1.0) * MPC**3 / MSUN, rel=1e-4)
    assert ss.e2(1.0, 0.3) == pytest.approx(3.1, rel=1e-12)
    assert float(ss.rho_crit(1.0, 0.7, 0.3)) == pytest.approx(ss.RHO_CRIT0_H2 * 0.49 * 3.1, rel=1e-12)


def test_r200c_of_a_1e14_halo() -> None:
    # hand calculation: R = (3 M / (4 pi 200 rho_c))^(1/3), z = 0, h = 0.7 -> 0.957 Mpc
    rho = rho_crit_cgs(0.7, 1.0)
    r_cm = (3 * 1e14 * MSUN / (4 * math.pi * 200 * rho)) ** (1 / 3)
    assert r_cm / MPC == pytest.approx(0.9575, rel=2e-3)
    assert float(ss.r_delta(1e14, 0.0, 0.7, 0.3)) == pytest.approx(r_cm / MPC, rel=1e-4)
    # 200m encloses 200 Omega_m rho_c: larger
    assert float(ss.r_delta(1e14, 0.0, 0.7, 0.3, reference="mean")) == pytest.approx(r_cm / MPC / 0.3 ** (1 / 3),
                                                                                     rel=1e-4)


def _hand_scales(m_msun: float, z: float, om: float, ob: float, h: float) -> dict[str, float]:
    e2 = om * (1 + z) ** 3 + 1 - om
    rho = rho_crit_cgs(h, e2)
    r = (3 * m_msun * MSUN / (4 * math.pi * 200 * rho)) ** (1 / 3)
    fb = ob / om
    p = G_CGS * m_msun * MSUN * 200 * rho * fb / (2 * r)  # erg cm^-3 (Battaglia et al. 2012, eq. 6)
    t = 0.59 * M_P * G_CGS * m_msun * MSUN / (2 * K_B * r)  # K
    return {"density": 200 * fb * rho, "pressure": p, "temperature": t}


@pytest.mark.parametrize(("m", "z", "om", "ob", "h"), [(1e14, 0.0, 0.3, 0.049, 0.7), (3e11, 0.537, 0.15, 0.03, 0.6711)])
def test_scales_match_a_hand_calculation_in_cgs(m: float, z: float, om: float, ob: float, h: float) -> None:
    hand = _hand_scales(m, z, om, ob, h)
    logs = ss.log10_scales(np.log10(m), z, om, ob, h, delta=200.0, reference="critical")
    to_cgs = {"density": ss.unit_factor("density", "g cm^-3"), "pressure": ss.unit_factor("pressure", "erg cm^-3"),
              "temperature": 1.0}
    for kind, value in hand.items():
        assert 10 ** float(logs[kind]) * to_cgs[kind] == pytest.approx(value, rel=3e-4), kind
    # kT_200 of a 1e14 Msun halo at z = 0 is about 1.4 keV
    if m == 1e14:
        assert hand["temperature"] * K_B / KEV == pytest.approx(1.38, abs=0.02)


def test_scaling_exponents_in_mass_and_redshift() -> None:
    def logs(m: float, z: float) -> dict[str, float]:
        return {k: float(v) for k, v in ss.log10_scales(m, z, 1.0, 0.16, 0.7, delta=500.0, reference="critical").items()}

    base, heavy, far = logs(13.0, 0.0), logs(14.0, 0.0), logs(13.0, 1.0)
    assert heavy["density"] - base["density"] == pytest.approx(0.0, abs=1e-12)
    assert heavy["pressure"] - base["pressure"] == pytest.approx(2 / 3, abs=1e-12)
    assert heavy["temperature"] - base["temperature"] == pytest.approx(2 / 3, abs=1e-12)
    log_e = 0.5 * math.log10(8.0)  # Omega_m = 1: E(1)^2 = 8
    assert far["density"] - base["density"] == pytest.approx(2 * log_e, abs=1e-12)
    assert far["pressure"] - base["pressure"] == pytest.approx(8 / 3 * log_e, abs=1e-12)
    assert far["temperature"] - base["temperature"] == pytest.approx(2 / 3 * log_e, abs=1e-12)


def test_units_match_the_camels_conversions() -> None:
    # ../shared/data/README.md: Msun kpc^-3 x 6.7679e-32 = g cm^-3; Msun kpc^-1 s^-2 x 6.4440e11 = erg cm^-3
    assert ss.unit_factor("density", "g cm^-3") / ss.unit_factor("density", "Msun/kpc^3") == pytest.approx(
        6.7679e-32, rel=1e-4)
    assert ss.unit_factor("pressure", "erg/cm^3") / ss.unit_factor("pressure", "Msun/kpc/s^2") == pytest.approx(
        6.4440e11, rel=1e-4)
    assert ss.unit_factor("density", "Msun kpc^-3") == ss.unit_factor("density", "Msun/kpc^3") == 1e-9
    assert ss.unit_factor("temperature", "keV") == pytest.approx(K_B / KEV, rel=1e-9)
    # other spellings of the same units (k_B = 8.617333262e-5 eV/K, CODATA 2018)
    assert ss.unit_factor("temperature", "eV") == pytest.approx(8.617333262e-5, rel=1e-9)
    assert ss.unit_factor("temperature", "Kelvin") == ss.unit_factor("temperature", "K") == 1.0
    assert ss.unit_factor("density", "g/cc") == ss.unit_factor("density", "g cm^-3")
    assert ss.unit_factor("density", "M_sun/kpc^3") == ss.unit_factor("density", "Msol kpc^{-3}") == 1e-9
    assert ss.physical_kind("ne", "1/cm^3")[:2] == ss.physical_kind("ne", "cm^-3")[:2] != ("", None)
    assert ss.unit_factor("pressure", "furlongs") is None


def test_mass_definitions_are_parsed() -> None:
    assert ss.parse_mass_definition("M200c [Msun]") == (200.0, "critical", False)
    assert ss.parse_mass_definition("500c") == (500.0, "critical", False)
    assert ss.parse_mass_definition("M200m [Msun/h]") == (200.0, "mean", True)
    assert ss.parse_mass_definition("Mvir") is None and ss.parse_mass_definition(None) is None
    # the 10 of "log10" is no overdensity; other spellings of the same definitions
    for text, want in [("log10 M200c [Msun]", (200.0, "critical", False)),
                       ("log10(M500c / (Msun/h))", (500.0, "critical", True)),
                       ("M200crit", (200.0, "critical", False)), ("M200,c", (200.0, "critical", False)),
                       ("Group_M_Crit200", (200.0, "critical", False)), ("Group_M_Mean200", (200.0, "mean", False)),
                       ("M_2500c", (2500.0, "critical", False))]:
        assert ss.parse_mass_definition(text) == want, text
    assert ss.parse_mass_definition("log10 M [1e10 Msun]") is None


def test_resolve_reads_the_dataset_and_says_why_not() -> None:
    ds = make_mock_universe(40, seed=0, param_set="lh6", n_r=6, redshift=0.5).dataset
    spec, msg = ss.resolve(ds.param_names, ds.fields, ["density", "pressure", "temperature"], ds.units, ds.meta,
                           ds.redshift, ds.radius_unit, ds.params)
    assert spec is not None and spec.redshift_value == 0.5 and spec.radius_scaled
    assert "Omega_m = parameter 'Omega_m'" in msg and "Omega_b = 0.049 (default)" in msg and "M200c" in msg
    no_def = {k: v for k, v in ds.meta.items() if k != "mass_definition"}
    assert ss.resolve(ds.param_names, ds.fields, ["density"] * 3, ds.units, no_def, ds.redshift, "Mpc",
                      ds.params)[0] is None
    names = tuple("x" if n == "Omega_m" else n for n in ds.param_names)
    spec, msg = ss.resolve(names, ds.fields, ["density"] * 3, ds.units, ds.meta, ds.redshift, ds.radius_unit, ds.params)
    assert spec is None and "Omega_m" in msg
    # the real SB35 names: Omega0, OmegaBaryon, HubbleParam
    sb = ("Omega0", "sigma8", "OmegaBaryon", "HubbleParam")
    spec, _ = ss.resolve(sb, ("rho",), ["density"], {"rho": "Msun kpc^-3"}, {"mass_definition": "M200c"},
                         np.zeros(3), "kpc", np.tile([0.3, 0.8, 0.05, 0.7], (3, 1)))
    assert (spec.omega_m, spec.omega_b, spec.h) == (0, 2, 3) and not spec.radius_scaled


def test_transforms_learn_normalised_profiles_and_invert_them_in_numpy_and_jax() -> None:
    ds = make_mock_universe(200, seed=1, param_set="lh6", n_r=8).dataset
    on = Transforms.fit(ds, DataConfig())
    off = Transforms.fit(ds, DataConfig(self_similar="off"))
    assert on.self_similar is not None and off.self_similar is None
    assert on.layout.self_similar == "scaled"
    # normalising removes most of the pressure's mass dependence: a much smaller spread
    sl = on.layout.field_slice("pth")
    assert np.median(on.target_scale[sl]) < 0.5 * np.median(off.target_scale[sl])
    arr = on.transform(ds)
    log_y, _ = on.to_log10(arr.target.astype(np.float64), params=ds.params, log10_mass=ds.log10_mass,
                           redshift=ds.redshift)
    truth = np.concatenate([ds.log10_profile(f) for f in on.field_names], axis=1)
    np.testing.assert_allclose(log_y, truth, atol=1e-5)
    # the same in JAX, differentiable in the inputs
    fn = jax.jit(lambda t, p, m: on.to_log10(t, xp=jnp, params=p, log10_mass=m)[0])
    np.testing.assert_allclose(np.asarray(fn(arr.target, ds.params.astype(np.float32),
                                             ds.log10_mass.astype(np.float32))), truth, atol=3e-4)
    grad = jax.grad(lambda m: fn(arr.target[:1], ds.params[:1].astype(np.float32), m)[0, sl][0])(
        ds.log10_mass[:1].astype(np.float32))
    assert float(grad[0]) == pytest.approx(2 / 3, rel=1e-4)  # P_Delta ∝ M^(2/3) at fixed x
    again = Transforms.from_dict(on.to_dict())
    assert again.self_similar == on.self_similar and again == on


def test_the_kind_comes_from_the_declared_kind_and_the_unit_not_the_name() -> None:
    # a mass-density unit makes a density, whatever the name
    assert ss.physical_kind("n_gas", "Msun kpc^-3")[:2] == ("density", pytest.approx(1e-9))
    # a known name with an unknown unit is not normalised (no silent guess)
    kind, factor, how = ss.physical_kind("rho", "")
    assert kind == "" and factor is None and "field_kinds" in how
    # a declaration wins over the unit's guess and over the name
    assert ss.physical_kind("q", "cm^-3", {"q": "electron_number_density"})[0] == "density"
    assert ss.physical_kind("rho", "Msun kpc^-3", {"rho": "other"})[0] == ""
    with pytest.raises(Exception, match=r"meta\.field_kinds\.q"):
        ss.physical_kind("q", "cm^-3", {"q": "electron density"})


def test_number_densities_against_astropy() -> None:
    import astropy.constants as const
    import astropy.units as u

    rho = 1.0 * u.Msun / u.Mpc**3
    for name, mu in (("ne", 2.0 / 1.76), ("n_gas", 0.59)):
        for unit, au in (("cm^-3", u.cm**-3), ("m^-3", u.m**-3), ("kpc^-3", u.kpc**-3)):
            expected = (rho / (mu * const.m_p)).to(au).value
            kind, factor, _ = ss.physical_kind(name, unit)
            assert kind == "density"
            assert factor == pytest.approx(expected, rel=1e-6)  # CODATA 2018 m_p, IAU Msun


def test_a_redshift_parameter_column_is_the_redshift(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(0.2, 0.4, 6), rng.uniform(0.0, 2.0, 6)])
    spec, msg = ss.resolve(("Omega_m", "z"), ("rho", "pth"), None, {"rho": "Msun kpc^-3", "pth": "keV cm^-3"},
                           {"mass_definition": "M200c"}, np.zeros(6), "kpc", params)
    assert spec is not None and spec.redshift_param == 1 and "parameter 'z'" in msg
    log_m = np.linspace(12.0, 14.0, 6)
    got = spec.log10_scale(params, log_m)
    for i in range(6):  # row i is scaled as a dataset at the single redshift z_i would be
        fixed = dataclasses.replace(spec, redshift_param=-1, redshift_value=float(params[i, 1]))
        np.testing.assert_allclose(got[i], fixed.log10_scale(params[i:i + 1], log_m[i:i + 1])[0], rtol=1e-12)
    assert ss.SelfSimilar.from_dict(spec.to_dict()) == spec
    # P_Delta ∝ E(z)^(8/3): the pressure scale moves with the column, at fixed mass
    one = spec.log10_scale(np.array([[0.3, 0.0], [0.3, 1.0]]), np.array([13.0, 13.0]))[:, 1]
    e2 = 0.3 * 2.0**3 + 0.7
    assert one[1] - one[0] == pytest.approx(8 / 3 * 0.5 * math.log10(e2), rel=1e-9)


def test_every_fit_logs_what_was_applied_or_why_not(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    ds = make_mock_universe(40, seed=0, param_set="lh6", n_r=6).dataset
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        Transforms.fit(ds, DataConfig(self_similar="off"))
        Transforms.fit(ds, DataConfig())
    lines = [r.getMessage() for r in caplog.records if "self-similar" in r.getMessage()
             and not r.getMessage().startswith("radial coordinate")]
    assert len(lines) == 2
    assert "off: data.self_similar = 'off'" in lines[0]
    assert "rho: density by its unit" in lines[1] and "pth: pressure by its unit" in lines[1]
