"""How datasets from other suites are read: radius units in R_Δ, mass definitions, number
densities, field kinds, masked entries, unit spellings and wide parameters."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest

from profemu.config import DataConfig
from profemu.data import selfsimilar as ss
from profemu.data.dataset import ProfileDataset
from profemu.data.mock import make_mock_universe
from profemu.data.transforms import Transforms, _log10_targets
from profemu.errors import DataError

# independent constants (CODATA 2018, IAU 2015): cgs
M_P = 1.67262192369e-24  # g
MSUN = 1.98841e33  # g
MPC = 3.0856775814913673e24  # cm
X_HYDROGEN = 0.76


def _mock(**overrides: Any) -> ProfileDataset:
    """The mock universe (radii in R200c, M200c masses, z = 0.5), rebuilt with ``overrides``."""
    ds = make_mock_universe(40, seed=3, param_set="lh6", n_r=6, redshift=0.5).dataset
    args: dict[str, Any] = dict(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                                radius=ds.radius, profiles=dict(ds.profiles), units=dict(ds.units),
                                radius_unit=ds.radius_unit, log_params=ds.log_params, redshift=ds.redshift,
                                groups=ds.groups, meta=dict(ds.meta))
    args.update(overrides)
    return ProfileDataset(**args)


# ------------------------------------------------------------------ radii in units of R_Δ
@pytest.mark.parametrize("unit, want", [
    ("R500c", (500.0, "critical")), ("r500c", (500.0, "critical")), ("r/R500c", (500.0, "critical")),
    ("r/R_500c", (500.0, "critical")), ("R/R500", (500.0, "critical")), ("r/r200c", (200.0, "critical")),
    ("r/R200m", (200.0, "mean")), ("R_200m", (200.0, "mean")), ("r / R_{500c}", (500.0, "critical")),
    ("R 200m", (200.0, "mean")), ("r/R2500", (2500.0, "critical")),
])
def test_every_spelling_of_r_over_r_delta_is_a_scaled_radius(unit: str, want: tuple[float, str]) -> None:
    assert ss.parse_scaled_radius_unit(unit) == want


@pytest.mark.parametrize("unit", ["Mpc", "kpc/h", "cMpc/h", "R200", "r/R200", "radius", "r/Mpc"])
def test_lengths_and_ambiguous_r_delta_are_not_scaled_radii(unit: str) -> None:
    assert ss.parse_scaled_radius_unit(unit) is None


def test_r_over_r500c_radii_are_not_rescaled_and_get_the_gas_fraction_bound(
        caplog: pytest.LogCaptureFixture) -> None:
    base = _mock()
    meta = dict(base.meta, mass_definition="M200c [Msun]")
    for unit in ("R200c", "r/R200c", "r/R_200c", "R/r200C"):
        ds = _mock(radius_unit=unit, meta=meta)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
            t = Transforms.fit(ds, DataConfig(radial_coordinate="auto"))
        assert t.self_similar is not None and t.self_similar.radius_scaled, unit
        assert t.scaled_radius is None, unit  # already r / R_Δ: never divided by R_Δ again
        assert t.gas_fraction_fields == ("rho",), (unit, caplog.text)
        assert "physical lengths" not in caplog.text


def test_radii_in_another_definitions_r_delta_are_scaled_but_named(caplog: pytest.LogCaptureFixture) -> None:
    ds = _mock(radius_unit="r/R500c", meta=dict(_mock().meta, mass_definition="M200c [Msun/h]"))
    with caplog.at_level(logging.INFO, logger="profemu.data.transforms"):
        t = Transforms.fit(ds, DataConfig(radial_coordinate="auto"))
    spec = t.self_similar
    assert spec is not None and spec.radius_scaled and spec.mass_per_h and (spec.delta, spec.reference) == (
        200.0, "critical")
    assert t.scaled_radius is None and t.gas_fraction_fields == ()
    assert "in units of R500c, not of the mass definition's R200c" in caplog.text
    assert ss.SelfSimilar.from_dict(spec.to_dict()) == spec


def test_without_a_mass_definition_the_scaled_radius_unit_names_it() -> None:
    ds = _mock()
    meta = {k: v for k, v in ds.meta.items() if k != "mass_definition"}
    spec, msg = ss.resolve(ds.param_names, ds.fields, None, ds.units, meta, ds.redshift, "r/R_500c", ds.params)
    assert spec is not None and (spec.delta, spec.reference, spec.mass_per_h) == (500.0, "critical", False)
    assert "radius unit" in msg
    spec, msg = ss.resolve(ds.param_names, ds.fields, None, ds.units, meta, ds.redshift, "R200", ds.params)
    assert spec is None and "'R200' does not say which R_Delta" in msg


# ------------------------------------------------------------------ mass definitions
def test_m500_is_m500c_and_a_bare_m200_is_ambiguous() -> None:
    assert ss.parse_mass_definition("M500") == (500.0, "critical", False)
    assert ss.parse_mass_definition("M_500 [Msun/h]") == (500.0, "critical", True)
    assert ss.parse_mass_definition("M_{2500}") == (2500.0, "critical", False)
    assert ss.parse_mass_definition("M200") is None
    assert ss.parse_mass_definition("log10 M [1e10 Msun]") is None


def test_an_unreadable_mass_definition_is_one_warning_and_never_replaced(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="profemu.data.dataset"):
        ds = _mock(meta=dict(_mock().meta, mass_definition="Mvir [Msun/h]"))  # radii in R200c
        ds.subset(np.arange(10))  # derived datasets do not warn again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "'Mvir [Msun/h]'" in warnings[0].getMessage() and "'M500c [Msun/h]'" in warnings[0].getMessage()
    for radius_unit in ("R200c", "Mpc"):
        spec, msg = ss.resolve(ds.param_names, ds.fields, None, ds.units, ds.meta, ds.redshift, radius_unit,
                               ds.params)
        assert spec is None, radius_unit  # not the radius unit's M200c in Msun
        assert "'Mvir [Msun/h]' is not a mass definition" in msg and "has no mass_definition" not in msg
    assert Transforms.fit(ds, DataConfig()).self_similar is None


# ------------------------------------------------------------------ number densities
def test_a_hydrogen_number_density_has_a_gas_mass_of_m_p_over_x_per_hydrogen() -> None:
    # n_H = X rho / m_p for rho = 1 Msun Mpc^-3, in cm^-3 (hand calculation, independent constants)
    n_h = X_HYDROGEN * MSUN / MPC**3 / M_P
    assert n_h == pytest.approx(3.07518e-17, rel=1e-5)
    for name in ("n_H", "nH", "n_h"):
        kind, factor, how = ss.physical_kind(name, "cm^-3")
        assert kind == "density" and "hydrogen" in how
        assert factor == pytest.approx(n_h, rel=1e-6)
    kind, factor, _ = ss.physical_kind("q", "cm^-3", {"q": "hydrogen_number_density"})
    assert factor == pytest.approx(n_h, rel=1e-6)
    # all gas particles (mu = 0.59) are 1 / (0.59 X) = 2.23 times more numerous
    assert ss.physical_kind("n_gas", "cm^-3")[1] / n_h == pytest.approx(1 / (0.59 * X_HYDROGEN), rel=1e-6)


# ------------------------------------------------------------------ field kinds
def test_field_kinds_naming_a_missing_field_is_an_error() -> None:
    meta = dict(_mock().meta, field_kinds={"ne": "electron_number_density"})
    with pytest.raises(DataError, match=r"meta\.field_kinds: 'ne' is not a profile field; fields are \['rho', "):
        _mock(meta=meta)
    with pytest.raises(DataError, match=r"meta\.field_kinds\.rho: 'electron_density' is not a kind"):
        _mock(meta=dict(_mock().meta, field_kinds={"rho": "electron_density"}))
    ds = _mock(meta=dict(_mock().meta, field_kinds={"rho": "gas_density", "pth": "pressure"}))
    assert ds.select_fields(["rho"]).fields == ("rho",)  # a field dropped later keeps its declaration


@pytest.mark.parametrize(("value", "needle"), [
    ("zero", r"meta\.redshift: 'zero' is not a number"), (True, r"meta\.redshift: True is not a number"),
    (float("nan"), r"meta\.redshift: nan is outside \[0, 20\]"), (-1, r"meta\.redshift: -1\.0 is outside")])
def test_meta_redshift_must_be_a_redshift(value: Any, needle: str) -> None:
    base = _mock()
    with pytest.raises(DataError, match=needle):
        _mock(meta=dict(base.meta, redshift=value))
    assert _mock(meta=dict(base.meta, redshift=0.5)).meta["redshift"] == 0.5


# ------------------------------------------------------------------ masked entries
def test_masked_entries_below_zero_are_one_warning_per_field(caplog: pytest.LogCaptureFixture) -> None:
    base = _mock()
    i, j = np.indices((base.n, base.n_r))
    v_r = np.where((i + j) % 8 < 5, -1.0, 1.0)  # signed, like a radial velocity
    profiles = dict(base.profiles, v_r=v_r)
    with caplog.at_level(logging.WARNING, logger="profemu.data.dataset"):
        ds = _mock(profiles=profiles, units=dict(base.units, v_r="km/s"))
        ds.subset(np.arange(8))
    records = [r.getMessage() for r in caplog.records]
    assert len(records) == 1, records
    assert "profiles['v_r']" in records[0]
    share = 100.0 * (v_r <= 0).mean()
    assert f"{int((v_r <= 0).sum())} finite entries <= 0 ({share:.2f}%" in records[0]
    assert "log10" in records[0] and "signed" in records[0]


def test_a_radius_with_no_valid_entry_in_any_training_row_is_refused() -> None:
    base = _mock()
    v = np.array(base.profiles["pth"])
    v[:, [0, 4]] = -2.0
    ds = _mock(profiles=dict(base.profiles, pth=v))
    with pytest.raises(DataError, match=r"profiles\['pth'\]: radius column\(s\) 0 \(r = 0\.02\), 4 \(r = 1\.386\) "
                                        r"\[R200c\] have no valid entry in any of the 40 training rows.*drop those radii"):
        Transforms.fit(ds, DataConfig())
    assert Transforms.fit(ds, DataConfig(fields=["rho", "temp"])).field_names == ("rho", "temp")
    mask = {f: np.ones((base.n, base.n_r), bool) for f in base.fields}
    mask["temp"][:, 5] = False
    mask["temp"][0, 5] = True  # one row is enough
    ds = _mock(mask=mask)
    Transforms.fit(ds, DataConfig())
    with pytest.raises(DataError, match=r"profiles\['temp'\]: radius column\(s\) 5 \(r = 4\)"):
        Transforms.fit(ds.subset(np.arange(1, 40)), DataConfig())


# ------------------------------------------------------------------ unit spellings
def test_latex_h_and_comoving_units_give_the_same_normalised_profiles() -> None:
    base = _mock(radius_unit="Mpc")
    t = Transforms.fit(base, DataConfig())
    h = np.full(base.n, ss.DEFAULT_H)  # no h parameter: the default
    a3 = (1.0 + base.redshift) ** 3
    rho = base.profiles["rho"]
    want = _log10_targets(base, base.fields, t.self_similar)
    cases = {"Msun h^2 kpc^-3": rho / h[:, None] ** 2, "h^2 Msun/kpc^3": rho / h[:, None] ** 2,
             "Msun/ckpc^3": rho / a3[:, None], "Msun$\\,$kpc$^{-3}$": rho}
    for unit, values in cases.items():
        ds = _mock(radius_unit="Mpc", profiles=dict(base.profiles, rho=values), units=dict(base.units, rho=unit))
        spec, msg = ss.resolve(ds.param_names, ds.fields, None, ds.units, ds.meta, ds.redshift, ds.radius_unit,
                               ds.params)
        assert spec is not None and spec.kinds[0] == "density", (unit, msg)
        np.testing.assert_allclose(_log10_targets(ds, ds.fields, spec), want, atol=1e-12, err_msg=unit)
        assert ss.SelfSimilar.from_dict(spec.to_dict()) == spec
    assert ss.unit_powers("Msun/ckpc^3") == (0.0, -3.0) and ss.unit_powers("Msun h^2 kpc^-3") == (-2.0, 0.0)
    # a constant factor only where the unit is one: population observables read unit_factor
    assert ss.unit_factor("density", "Msun/ckpc^3") is None
    assert ss.unit_factor("pressure", "keV cm$^{-3}$") == ss.unit_factor("pressure", "keV cm^-3")
    assert ss.physical_kind("n_e", "cm$^{-3}$")[1] == ss.physical_kind("n_e", "cm^-3")[1]


def test_a_wide_parameter_not_in_log_params_gets_one_hint(caplog: pytest.LogCaptureFixture) -> None:
    base = _mock()
    params = np.array(base.params)
    j = base.param_names.index("A_SN1")
    params[:, j] = np.geomspace(0.01, 100.0, base.n)  # 4 decades
    log_params = tuple(p for p in base.log_params if p != "A_SN1")
    with caplog.at_level(logging.INFO, logger="profemu.data.dataset"):
        ds = _mock(params=params, log_params=log_params)
        ds.subset(np.arange(5))
        _mock(params=params)  # declared: no hint
    hints = [r.getMessage() for r in caplog.records if "log_params" in r.getMessage()]
    assert len(hints) == 1 and "'A_SN1' (0.01..100, 4.0 decades)" in hints[0], hints
    assert math.isclose(float(ds.params[0, j]), 0.01)  # nothing altered
    # uniform draws from 0 also span many decades (the smallest is about 1/n), but are not log-sampled
    caplog.clear()
    params[:, j] = np.random.default_rng(0).uniform(0.0, 1.0, base.n)
    params[0, j] = 1e-5
    with caplog.at_level(logging.INFO, logger="profemu.data.dataset"):
        _mock(params=params, log_params=log_params)
    assert not [r for r in caplog.records if "log_params" in r.getMessage()]


def test_greek_omega_names_are_the_density_parameters() -> None:
    """Parameter columns named with the Greek letter (Ω_m, Ω_b) are read as Omega_m, Omega_b."""
    from profemu.data.selfsimilar import parameter_index as _lookup

    names = ["Ω_m", "σ_8", "Ω_b", "h"]
    assert _lookup(names, "omega_m") == 0 and _lookup(names, "omega_b") == 2 and _lookup(names, "h") == 3
