"""The hard mock: single halos at physical radii with large scatter (profemu.data.mock.hard)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from profemu.data.mock import (
    MOCK_PARAMETERS,
    PARAM_SETS,
    MockParameter,
    MockUniverse,
    hard_mock_truth,
    make_hard_mock,
    read_camels_parameter_table,
)
from profemu.errors import ConfigError
from tests.data.mock import KB_ERG, KEV_ERG, KPC_CM, MP_G, MPC_CM, MSUN_G, rho_crit_cgs


@pytest.fixture(scope="module")
def hard() -> MockUniverse:
    return make_hard_mock(2000, seed=11)


def test_hard_mock_shapes_units_and_meta(hard: MockUniverse, caplog) -> None:
    ds = hard.dataset
    assert ds.n == 2000 and ds.n_r == 30 and ds.radius_unit == "Mpc"
    assert ds.radius[0] == pytest.approx(0.01) and ds.radius[-1] == pytest.approx(2.0)
    assert ds.fields == ("rho", "pth", "temp") and ds.pk_ratio is None
    assert len(ds.param_names) == 35 and ds.param_names == PARAM_SETS["sb35"]
    assert np.unique(ds.groups).size == 2000  # one halo per simulation
    assert 11.5 <= ds.log10_mass.min() and ds.log10_mass.max() <= 14.0
    assert np.all(ds.redshift == 0.0)
    for f in ds.fields:
        assert hard.truth[f].shape == ds.noise[f].shape == (2000, 30)
        assert np.all(ds.mask[f])
    meta = ds.meta
    assert meta["mass_definition"] == "200c" and meta["redshift"] == 0.0 and meta["regime"] == "hard"
    acting = set(meta["acting_parameters"])
    assert {"Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "Omega_b", "h"} <= acting
    assert len(acting) == 9 and set(meta["inert_parameters"]) == set(ds.param_names) - acting
    assert "built-in" in meta["parameter_source"]
    with caplog.at_level(logging.INFO, logger="profemu.data.mock"):
        make_hard_mock(10, seed=0)
    lines = [r.getMessage() for r in caplog.records if r.name == "profemu.data.mock"]
    assert len(lines) == 1 and "built-in" in lines[0]
    several = make_hard_mock(30, seed=2, halos_per_sim=3).dataset
    assert np.bincount(several.groups).tolist() == [3] * 10
    for g in range(10):  # one halo per third of the mass range
        slots = np.floor((several.log10_mass[several.groups == g] - 11.5) / (2.5 / 3)).astype(int)
        assert slots.tolist() == [0, 1, 2]


def test_hard_mock_scatter_matches_the_declared_noise(hard: MockUniverse) -> None:
    ds = hard.dataset
    resid = {f: np.log10(ds.profiles[f] / hard.truth[f]) for f in ds.fields}
    for f in ("rho", "pth"):
        sigma = ds.noise[f]
        assert 0.2 - 1e-9 <= sigma.min() and sigma.max() <= 0.4 + 1e-9
        # larger in the core and the outskirts than in between
        assert sigma[:, 0].mean() > 1.2 * sigma[:, 12].mean() < sigma[:, -1].mean() / 1.2
        # pooled standardised residuals have unit variance (2000 halos: ~2% standard error)
        assert (resid[f] / sigma).std() == pytest.approx(1.0, abs=0.05)
        assert abs(resid[f].mean()) < 0.02
        # and per radius: the measured scatter follows the declared one
        np.testing.assert_allclose(resid[f].std(axis=0), np.sqrt((sigma**2).mean(axis=0)), rtol=0.1)
    # the whole-profile offset is shared by rho and pth: correlation 0.4 * 0.6 at each radius
    corr = np.mean([np.corrcoef(resid["rho"][:, j], resid["pth"][:, j])[0, 1] for j in range(30)])
    assert corr == pytest.approx(0.24, abs=0.05)
    # neighbouring radii are correlated by the offset and the tilt (0.4 + 0.3 t t' ~ 0.4 near
    # 0.3 R200c), unlike white noise
    assert np.corrcoef(resid["rho"][:, 10], resid["rho"][:, 11])[0, 1] == pytest.approx(0.42, abs=0.06)
    assert (resid["temp"] / ds.noise["temp"]).std() == pytest.approx(1.0, abs=0.05)
    # the noisy temperature is still P mu m_p / (rho k_B)
    rho_cgs = ds.profiles["rho"] * MSUN_G / KPC_CM**3
    temp = ds.profiles["pth"] * KEV_ERG * 0.59 * MP_G / (rho_cgs * KB_ERG)
    np.testing.assert_allclose(ds.profiles["temp"], temp, rtol=1e-3)
    quiet = make_hard_mock(20, seed=11, scatter_scale=0.0)
    assert np.array_equal(quiet.dataset.profiles["rho"], quiet.truth["rho"])


def test_hard_mock_inert_weak_and_acting_parameters() -> None:
    radius = np.geomspace(0.01, 2.0, 30)
    masses = np.array([11.5, 12.5, 13.9])
    base = hard_mock_truth({}, masses, radius=radius)

    def effect(p: MockParameter) -> float:
        out = 0.0
        for value in (p.lo, p.hi):
            alt = hard_mock_truth({p.name: value}, masses, radius=radius)
            out = max(out, *(float(np.abs(np.log10(alt[f] / base[f])).max()) for f in base))
        return out

    strong = {"Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "Omega_b", "h"}
    weak = {"A_AGN2", "BlackHoleFeedbackFactor"}
    meta = make_hard_mock(4, seed=0).dataset.meta
    assert set(meta["acting_parameters"]) == strong | weak
    inert = set(meta["inert_parameters"])
    assert inert == {p.name for p in MOCK_PARAMETERS} - strong - weak
    for p in MOCK_PARAMETERS:
        e = effect(p)
        if p.name in inert:
            assert e == 0.0, p.name  # exactly nothing
        elif p.name in weak:
            assert 0.002 < e < 0.03, (p.name, e)  # weak: far below the 0.2 dex scatter
        else:
            assert e > 0.1, (p.name, e)
    # interactions: the non-additive part of the AGN x SN-energy effect on the gas density,
    # f(hi, hi) - f(hi, lo) - f(lo, hi) + f(lo, lo), is ~0.6 dex from the nonlinear gas fraction
    # alone and ~1.5 dex with the interaction term of log10 M_c
    def log_rho(agn: float, sn: float) -> np.ndarray:
        return np.log10(hard_mock_truth({"A_AGN1": agn, "A_SN1": sn}, 12.0, radius=radius)["rho"])

    mixed = log_rho(4.0, 4.0) - log_rho(4.0, 0.25) - log_rho(0.25, 4.0) + log_rho(0.25, 0.25)
    assert np.abs(mixed).max() > 1.0


def test_hard_mock_physics_at_physical_radii() -> None:
    radius = np.array([0.05, 0.3, 2.0])
    cosmo = {"Omega_m": 0.25, "Omega_b": 0.06, "h": 0.75, "sigma_8": 0.9}
    a = hard_mock_truth(cosmo, 11.5, radius=radius, redshift=0.5)
    # far outside a light halo: the mean baryon density Omega_b rho_crit0 (1+z)^3 and 1e4 K gas
    rho_b = 0.06 * rho_crit_cgs(0.0, 0.75, 0.3) * 1.5**3 / MSUN_G * KPC_CM**3
    assert a["rho"][0, -1] == pytest.approx(rho_b, rel=0.01)
    assert a["temp"][0, -1] == pytest.approx(1e4, rel=0.1)
    # the profile sits at fixed r / R200c: a halo 8x heavier is twice as large (R ∝ M^1/3), and
    # the pressure there scales like P200c ∝ M^(2/3) (Battaglia's P0, xc, beta drift slowly)
    light = hard_mock_truth({}, 12.0, radius=np.array([0.1]))
    heavy = hard_mock_truth({}, 12.0 + np.log10(8.0), radius=np.array([0.2]))
    ratio = float((heavy["pth"] / light["pth"])[0, 0])
    assert 0.8 * 8 ** (2 / 3) < ratio < 1.5 * 8 ** (2 / 3)
    # Omega_m acts through rho_crit(z) and R200c: two cosmologies with the same f_b have the same
    # inner profile at fixed r / R200c, scaled by rho_crit(z) (density) and rho_crit^(4/3) M^(2/3)
    # (pressure, P200c), with R200c recomputed here in cgs
    z, m = 1.0, 1e12
    values = {}
    for om in (0.2, 0.4):
        rc = rho_crit_cgs(z, 0.7, om)
        r_mpc = (3 * m * MSUN_G / (4 * np.pi * 200 * rc)) ** (1 / 3) / MPC_CM
        values[om] = rc, hard_mock_truth({"Omega_m": om, "Omega_b": om * 0.16, "h": 0.7}, 12.0,
                                         radius=np.array([0.05 * r_mpc]), redshift=z)
    (rc_a, a), (rc_b, b) = values[0.2], values[0.4]
    assert float(a["rho"][0, 0] / b["rho"][0, 0]) == pytest.approx(rc_a / rc_b, rel=0.01)
    assert float(a["pth"][0, 0] / b["pth"][0, 0]) == pytest.approx((rc_a / rc_b) ** (4 / 3), rel=0.01)


def test_hard_mock_finds_cosmology_by_sb35_names(sb35_table: Path) -> None:
    specs = read_camels_parameter_table(sb35_table)
    radius = np.array([0.05, 0.3, 2.0])
    sb_names = {"Omega0": 0.25, "OmegaBaryon": 0.06, "HubbleParam": 0.75, "sigma8": 0.9}
    builtin = {"Omega_m": 0.25, "Omega_b": 0.06, "h": 0.75, "sigma_8": 0.9}
    a = hard_mock_truth(sb_names, 11.5, radius=radius, redshift=0.5, parameters=specs)
    b = hard_mock_truth(builtin, 11.5, radius=radius, redshift=0.5)
    for f in a:
        np.testing.assert_allclose(a[f], b[f], rtol=1e-12)
    # feedback by name too: the table's fiducial is the centre of its log range (u = 0)
    fid = {p.name: p.fiducial for p in specs if p.name == "RadioFeedbackFactor"}
    np.testing.assert_allclose(hard_mock_truth(fid, 12.0, radius=radius, parameters=specs)["rho"],
                               hard_mock_truth({}, 12.0, radius=radius)["rho"], rtol=1e-12)
    # the top of each range means the same in both tables (offsets in units of half the range)
    top = {p.name: p.hi for p in specs if p.name == "VariableWindVelFactor"}
    builtin_top = {p.name: p.hi for p in MOCK_PARAMETERS if p.name == "A_SN2"}
    assert top["VariableWindVelFactor"] != builtin_top["A_SN2"]
    np.testing.assert_allclose(hard_mock_truth(top, 12.0, radius=radius, parameters=specs)["rho"],
                               hard_mock_truth(builtin_top, 12.0, radius=radius)["rho"], rtol=1e-12)


def test_hard_mock_deterministic_by_seed() -> None:
    a, b, c = (make_hard_mock(50, seed=s) for s in (3, 3, 4))
    assert a.dataset.fingerprint() == b.dataset.fingerprint() != c.dataset.fingerprint()
    assert not np.allclose(a.dataset.params, c.dataset.params)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"scatter_scale": -1.0}, "scatter_scale"), ({"halos_per_sim": 0}, "halos_per_sim"),
    ({"radius_range": (2.0, 0.01)}, "Mpc"), ({"n": 0}, "n:"),
])
def test_hard_mock_bad_arguments(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        make_hard_mock(**{"n": 8, **kwargs})
    with pytest.raises(ConfigError, match="unknown parameter"):
        hard_mock_truth({"Omega_lambda": 0.7}, 12.0, radius=[0.1])
