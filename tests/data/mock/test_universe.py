"""The CAMELS-like mock universe (profemu.data.mock.universe)."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.data.mock import (
    MOCK_PARAMETERS,
    PARAM_SETS,
    MockUniverse,
    gas_fraction,
    make_mock_universe,
    mock_pk_ratio,
    mock_truth,
    p200c,
    r200c,
    write_mock,
)
from profemu.errors import ConfigError
from tests.data.mock import G_CGS, KB_ERG, KEV_ERG, KPC_CM, MP_G, MSUN_G, rho_crit_cgs


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
