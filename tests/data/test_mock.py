"""Tests of the mock universe: shapes, determinism, and the physics against independent formulas."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.data.mock import (
    MOCK_PARAMETERS,
    PARAM_SETS,
    SB35_INFO_FILENAME,
    MockParameter,
    MockUniverse,
    gas_fraction,
    hard_mock_truth,
    make_hard_mock,
    make_mock_universe,
    mock_pk_ratio,
    mock_truth,
    p200c,
    r200c,
    read_camels_parameter_table,
    write_mock,
)
from profemu.errors import ConfigError, FormatError
from tests.conftest import IN_CI, SHARED_DATA

# Independent constants (cgs), deliberately not imported from the module under test.
G_CGS = 6.6743e-8  # cm^3 g^-1 s^-2
MSUN_G = 1.989e33
MPC_CM = 3.0857e24
KPC_CM = 3.0857e21
KEV_ERG = 1.602177e-9
KB_ERG = 1.380649e-16
MP_G = 1.672622e-24


def rho_crit_cgs(z: float, h: float, om: float) -> float:
    """3 H(z)^2 / (8 pi G) in g cm^-3."""
    hz = 100.0 * h * 1e5 / MPC_CM * np.sqrt(om * (1 + z) ** 3 + 1 - om)  # s^-1
    return 3 * hz**2 / (8 * np.pi * G_CGS)


@pytest.fixture(scope="module")
def universe() -> MockUniverse:
    return make_mock_universe(800, seed=3)


def test_defaults_shapes_and_validation(universe: MockUniverse) -> None:
    ds = universe.dataset
    assert isinstance(ds, ProfileDataset)
    assert ds.n == 800
    assert len(ds.param_names) == 35 == len(set(ds.param_names))
    assert ds.n_k == 79
    assert ds.k[0] == pytest.approx(0.01) and ds.k[-1] == pytest.approx(20.0)
    assert ds.fields == ("rho", "pth", "temp")
    assert ds.radius_unit == "R200c" and ds.n_r == 24
    assert ds.radius[0] == pytest.approx(0.02) and ds.radius[-1] == pytest.approx(4.0)
    assert {"A_SN1", "A_AGN1", "A_SN2", "A_AGN2"} <= set(ds.log_params)
    assert np.all(ds.redshift == 0.0)
    for f in ds.fields:
        assert universe.truth[f].shape == (800, 24)
        assert np.all(ds.mask[f])
        assert np.all(ds.noise[f] == 0.02)
    # the dataset passes its own validation when rebuilt from its arrays
    ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                   radius=ds.radius, profiles=ds.profiles, log_params=ds.log_params,
                   pk_ratio=ds.pk_ratio, k=ds.k, groups=ds.groups, noise=ds.noise)
    assert set(universe.param_ranges) == set(ds.param_names)


def test_parameters_in_box_latin_hypercube_and_groups(universe: MockUniverse) -> None:
    ds = universe.dataset
    n_sims = np.unique(ds.groups).size
    assert n_sims == 200
    for j, name in enumerate(ds.param_names):
        lo, hi, is_log = universe.param_ranges[name]
        col = ds.params[:, j]
        assert np.all((col >= lo) & (col <= hi)), name
        # one value per simulation; the Latin hypercube fills every 1/n_sims stratum once
        per_sim = np.array([col[ds.groups == g][0] for g in range(n_sims)])
        unit = np.log(per_sim / lo) / np.log(hi / lo) if is_log else (per_sim - lo) / (hi - lo)
        strata = np.floor(unit * n_sims).astype(int)
        assert np.array_equal(np.sort(strata), np.arange(n_sims)), name
    for g in range(n_sims):
        rows = ds.groups == g
        assert np.all(ds.params[rows] == ds.params[rows][0])
        # one mass per slice of [11, 15]
        assert np.array_equal(np.floor(ds.log10_mass[rows] - 11).astype(int), np.arange(4))


def test_lh6_set_has_six_parameters_and_no_pk() -> None:
    ds = make_mock_universe(40, seed=1, param_set="lh6").dataset
    assert ds.param_names == PARAM_SETS["lh6"]
    assert ds.param_names == ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
    assert ds.pk_ratio is None and ds.k is None
    # n not a multiple of rows per simulation: the last simulation is cut short
    ds = make_mock_universe(10, seed=1, n_mass_per_sim=4).dataset
    assert ds.n == 10 and np.bincount(ds.groups).tolist() == [4, 4, 2]


def test_deterministic_by_seed() -> None:
    a = make_mock_universe(64, seed=7)
    b = make_mock_universe(64, seed=7)
    c = make_mock_universe(64, seed=8)
    assert a.dataset.fingerprint() == b.dataset.fingerprint()
    for f in a.truth:
        assert np.array_equal(a.truth[f], b.truth[f])
    assert a.dataset.fingerprint() != c.dataset.fingerprint()
    assert not np.allclose(a.dataset.params, c.dataset.params)
    assert not np.allclose(a.dataset.profiles["pth"], c.dataset.profiles["pth"])


def test_battaglia_pressure_against_paper_formula() -> None:
    """Fiducial feedback: P = P200c * Battaglia et al. 2012 gNFW (Table 1, AGN, 200c), 0.5%."""
    m, z, h, om, ob = 3e14, 0.5, 0.6711, 0.3, 0.049
    x = np.array([0.05, 0.3, 1.0, 2.0])
    rc = rho_crit_cgs(z, h, om)
    m_g = m * MSUN_G
    r_cm = (3 * m_g / (4 * np.pi * 200 * rc)) ** (1 / 3)
    p200 = G_CGS * m_g * 200 * rc * (ob / om) / (2 * r_cm) / KEV_ERG  # keV cm^-3
    mm = m / 1e14
    p0 = 18.1 * mm**0.154 * (1 + z) ** -0.758
    xc = 0.497 * mm**-0.00865 * (1 + z) ** 0.731
    beta = 4.35 * mm**0.0393 * (1 + z) ** 0.415
    expected = p200 * p0 * (x / xc) ** -0.3 * (1 + x / xc) ** -beta
    got = mock_truth({"Omega_m": om, "Omega_b": ob, "h": h}, np.log10(m), x=x, redshift=z)["pth"][0]
    np.testing.assert_allclose(got, expected, rtol=5e-3)


def test_p200c_self_similar_scaling() -> None:
    masses = 10.0 ** np.array([11.0, 12.5, 14.0, 15.0])
    ratio = p200c(masses, 0.0, 0.7, 0.3, 0.05) / p200c(1e14, 0.0, 0.7, 0.3, 0.05)
    np.testing.assert_allclose(ratio, (masses / 1e14) ** (2 / 3), rtol=1e-10)
    ez2 = 0.3 * 2.0**3 + 0.7  # E(z=1)^2
    np.testing.assert_allclose(p200c(1e14, 1.0, 0.7, 0.3, 0.05) / p200c(1e14, 0.0, 0.7, 0.3, 0.05),
                               ez2 ** (4 / 3), rtol=1e-10)


def test_r200c_reference_value() -> None:
    rc = 2.775e11 * 0.7**2  # Msun Mpc^-3
    expected = (3 * 1e14 / (4 * np.pi * 200 * rc)) ** (1 / 3)
    got = float(r200c(1e14, 0.0, 0.7, 0.3))
    assert got == pytest.approx(expected, rel=1e-3)
    assert got == pytest.approx(0.957, abs=0.005)


def _gas_fraction_from_profile(theta: dict, log10_m: float, z: float = 0.0) -> float:
    """M_gas(<R200c)/M200c by integrating the truth density numerically."""
    x = np.geomspace(1e-7, 1.0, 6000)
    rho = mock_truth(theta, log10_m, x=x, redshift=z)["rho"][0]  # Msun kpc^-3
    h, om = theta.get("h", 0.6711), theta.get("Omega_m", 0.3)
    rc = rho_crit_cgs(z, h, om) / MSUN_G * KPC_CM**3  # Msun kpc^-3
    r_kpc = (3 * 10**log10_m / (4 * np.pi * 200 * rc)) ** (1 / 3)
    integrand = x**3 * rho
    m_gas = 4 * np.pi * r_kpc**3 * np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(np.log(x)))
    return m_gas / 10**log10_m


def test_gas_fraction_below_cosmic_and_decreasing_with_feedback() -> None:
    f_b = 0.049 / 0.3
    for log10_m in (11.5, 13.0, 14.5):
        fractions = [_gas_fraction_from_profile({"A_AGN1": a}, log10_m) for a in (0.25, 1.0, 4.0)]
        assert all(0 < f < f_b for f in fractions), (log10_m, fractions)
        assert fractions[0] > fractions[1] > fractions[2], (log10_m, fractions)
    sn = [_gas_fraction_from_profile({"A_SN1": a}, 11.5) for a in (0.25, 1.0, 4.0)]
    assert sn[0] > sn[1] > sn[2]
    # more massive halos keep more of their gas
    masses = [_gas_fraction_from_profile({}, lm) for lm in (11.0, 12.0, 13.0, 14.0, 15.0)]
    assert np.all(np.diff(masses) > 0)
    assert masses[-1] > 0.8 * f_b and masses[0] < 0.2 * f_b
    # the profile is normalised to the stated gas fraction (fiducial M_c = 10^13.2 Msun, beta 0.6)
    assert masses[2] == pytest.approx(float(gas_fraction(1e13, 13.2, 0.6, 0.049, 0.3)), rel=5e-3)


def test_density_tends_to_mean_baryon_density() -> None:
    for z, h, ob in ((0.0, 0.6711, 0.049), (1.0, 0.8, 0.06)):
        rho = mock_truth({"h": h, "Omega_b": ob}, 13.0, x=[200.0, 500.0], redshift=z)["rho"][0]
        rho_b = ob * rho_crit_cgs(0.0, h, 0.3) * (1 + z) ** 3 / MSUN_G * KPC_CM**3
        np.testing.assert_allclose(rho, rho_b, rtol=1e-2)


def test_temperature_consistent_and_non_monotonic(universe: MockUniverse) -> None:
    t = universe.truth
    assert np.all(np.diff(t["rho"], axis=1) < 0)
    assert np.all(np.diff(t["pth"], axis=1) < 0)
    d_temp = np.diff(t["temp"], axis=1)
    non_monotonic = (d_temp > 0).any(axis=1) & (d_temp < 0).any(axis=1)
    assert non_monotonic.mean() > 0.5
    # T = P mu m_p / (rho k_B) with mu = 0.59, recomputed with cgs constants
    rho_cgs = t["rho"] * MSUN_G / KPC_CM**3
    temp = t["pth"] * KEV_ERG * 0.59 * MP_G / (rho_cgs * KB_ERG)
    np.testing.assert_allclose(t["temp"], temp, rtol=1e-3)
    assert 1e4 < t["temp"].min() and t["temp"].max() < 1e9


def test_noise_is_lognormal_with_stated_dex(universe: MockUniverse) -> None:
    for f in universe.truth:
        resid = np.log10(universe.dataset.profiles[f] / universe.truth[f])
        assert resid.std() == pytest.approx(0.02, rel=0.05)
        assert abs(resid.mean()) < 0.002
    quiet = make_mock_universe(16, seed=3, noise_dex=0.0)
    assert np.array_equal(quiet.dataset.profiles["rho"], quiet.truth["rho"])


def test_pk_suppression_tracks_feedback() -> None:
    pk = mock_pk_ratio({"A_AGN1": np.array([0.25, 1.0, 4.0])})
    assert pk.shape == (3, 79)
    np.testing.assert_allclose(pk[:, 0], 1.0, atol=1e-3)
    assert np.all(pk <= 1.0) and np.all(pk > 0.3)
    depth = 1.0 - pk.min(axis=1)
    assert depth[0] < depth[1] < depth[2] and depth[2] > 0.15
    # partial recovery at the highest k
    assert np.all(pk[:, -1] > pk.min(axis=1))
    # in a drawn universe, P(k) at k ~ 5 h/Mpc carries the feedback strength
    ds = make_mock_universe(400, seed=2).dataset
    j = int(np.argmin(np.abs(ds.k - 5.0)))
    agn = np.log10(ds.params[:, ds.param_names.index("A_AGN1")])
    assert np.corrcoef(agn, ds.pk_ratio[:, j])[0, 1] < -0.5


def test_nuisance_and_weak_parameters() -> None:
    x = np.geomspace(0.02, 4.0, 24)
    masses = np.array([11.2, 12.5, 14.8])
    base = mock_truth({}, masses, x=x)
    base_pk = mock_pk_ratio({})

    def change(p) -> float:
        out = []
        for value in (p.lo, p.hi):
            alt = mock_truth({p.name: value}, masses, x=x)
            out += [np.abs(alt[f] / base[f] - 1).max() for f in base]
            out.append(np.abs(mock_pk_ratio({p.name: value}) / base_pk - 1).max())
        return max(out)

    roles = {p.role for p in MOCK_PARAMETERS}
    assert roles == {"cosmology", "feedback", "weak", "nuisance"}
    nuisance = [p for p in MOCK_PARAMETERS if p.role == "nuisance"]
    assert len(nuisance) >= 15
    for p in nuisance:
        assert change(p) < 0.01, p.name
    for p in MOCK_PARAMETERS:
        effect = change(p)
        if p.role == "weak":
            assert 0 < effect < 0.1, (p.name, effect)
        if p.role == "feedback":
            assert effect > 0.1, (p.name, effect)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"n": 0}, "n:"), ({"noise_dex": -0.1}, "noise_dex"), ({"n_r": 1}, "n_r"),
     ({"param_set": "sb28"}, "param_set"), ({"redshift": -1.0}, "redshift"),
     ({"log10_mass_range": (15.0, 11.0)}, "log10_mass_range")],
)
def test_bad_arguments_raise_config_error(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        make_mock_universe(**{"n": 8, **kwargs})
    with pytest.raises(ConfigError, match="unknown mock parameter"):
        mock_truth({"Omega_lambda": 0.7}, 13.0, x=[0.1, 1.0])


def test_write_mock_round_trip(tmp_path) -> None:
    pytest.importorskip("profemu.data.io")
    path = write_mock(tmp_path / "mock.npz", n=24, seed=5)
    loaded = ProfileDataset.load(path)
    assert loaded.fingerprint() == make_mock_universe(24, seed=5).dataset.fingerprint()


# ---------------------------------------------------------------- hard regime
SB35_INFO = SHARED_DATA / "camels_sb35" / SB35_INFO_FILENAME


@pytest.fixture(scope="module")
def sb35_table() -> Path:
    """The CAMELS SB35 parameter table; skips with a reason when ../shared is absent (fails in CI)."""
    if not SB35_INFO.is_file():
        msg = f"CAMELS SB35 parameter table not found at {SB35_INFO} (../shared/data is absent)"
        if IN_CI:
            pytest.fail(msg + "; CI must have ../shared beside the checkout")
        pytest.skip(msg)
    return SB35_INFO


@pytest.fixture(scope="module")
def hard() -> MockUniverse:
    return make_hard_mock(2000, seed=11)


def _parse_info_csv(path: Path) -> list[tuple[str, bool, float, float, float]]:
    """(name, is_log, fiducial, lo, hi) per line, read with plain string splitting."""
    lines = path.read_text().strip().splitlines()
    assert lines[0].split(",")[:6] == ["ParamName", "AbsMaxDiff", "LogFlag", "FiducialVal",
                                       "MinVal", "MaxVal"]
    out = []
    for line in lines[1:]:
        name, _, flag, fid, lo, hi = line.split(",")[:6]
        out.append((name, flag == "1", float(fid), float(lo), float(hi)))
    return out


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


def test_hard_mock_reads_the_sb35_table(sb35_table: Path) -> None:
    expected = _parse_info_csv(sb35_table)
    assert len(expected) == 35
    specs = read_camels_parameter_table(sb35_table.parent)  # a folder works too
    assert [(p.name, p.is_log, p.fiducial, p.lo, p.hi) for p in specs] == expected
    universe = make_hard_mock(400, seed=5, parameter_table=sb35_table)
    ds = universe.dataset
    assert ds.param_names == tuple(e[0] for e in expected)
    assert set(ds.log_params) == {e[0] for e in expected if e[1]}
    for j, (name, is_log, _, lo, hi) in enumerate(expected):
        col = ds.params[:, j]
        assert lo <= col.min() and col.max() <= hi, name
        # the design fills the box: a Latin hypercube of 400 points reaches both ends
        unit = np.log(col / lo) / np.log(hi / lo) if is_log else (col - lo) / (hi - lo)
        assert unit.min() < 0.01 and unit.max() > 0.99, name
    acting = ds.meta["acting_parameters"]
    assert {"Omega0", "sigma8", "WindEnergyIn1e51erg", "RadioFeedbackFactor", "VariableWindVelFactor",
            "OmegaBaryon", "HubbleParam"} <= set(acting)
    assert len(ds.meta["inert_parameters"]) == 26
    assert ds.meta["parameter_source"] == SB35_INFO_FILENAME


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


def test_parameter_table_errors(tmp_path: Path) -> None:
    header = "ParamName,AbsMaxDiff,LogFlag,FiducialVal,MinVal,MaxVal,Description\n"
    good = tmp_path / "Info_good.csv"
    good.write_text(header + "Alpha,1,0,0.5,0,1,first, with a comma\nBeta,1,1,1,0.5,2,second\n")
    specs = read_camels_parameter_table(good)
    assert [(p.name, p.is_log, p.lo, p.hi, p.role) for p in specs] == [
        ("Alpha", False, 0.0, 1.0, "nuisance"), ("Beta", True, 0.5, 2.0, "nuisance")]
    cases = {
        "missing.csv": None,
        "cols.csv": "ParamName,MinVal,MaxVal\nA,0,1\n",
        "num.csv": header + "A,1,0,x,0,1,d\n",
        "range.csv": header + "A,1,0,1,2,1,d\n",
        "log.csv": header + "A,1,1,1,0,2,d\n",
        "dup.csv": header + "A,1,0,0.5,0,1,d\nA,1,0,0.5,0,1,d\n",
    }
    words = {"missing.csv": "not found", "cols.csv": "lacks column", "num.csv": "must be numbers",
             "range.csv": "line 2", "log.csv": "log parameter", "dup.csv": "duplicate"}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(FormatError, match=words[name]):
            read_camels_parameter_table(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match="0 Info_"):
        read_camels_parameter_table(empty)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"scatter_scale": -1.0}, "scatter_scale"), ({"halos_per_sim": 0}, "halos_per_sim"),
    ({"radius_range": (2.0, 0.01)}, "Mpc"), ({"n": 0}, "n:"),
])
def test_hard_mock_bad_arguments(kwargs: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        make_hard_mock(**{"n": 8, **kwargs})
    with pytest.raises(ConfigError, match="unknown parameter"):
        hard_mock_truth({"Omega_lambda": 0.7}, 12.0, radius=[0.1])
