"""Population prediction: an emulator's profiles averaged over a mass distribution, through the
forward model, against a direct loop over masses; the emulator covariance against a Monte Carlo
of the ensemble members; units and the mass-extrapolation report."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from profemu.errors import DataError
from profemu.observables import (
    ForwardModel,
    PopulationModel,
    cap_from_profile,
    field_to_cgs,
    radius_to_mpc,
)
from tests.observables.synthetic import APERTURES, gaussian_beam, mass_distribution
from tests.reliability import TinyRun, tiny_run

POINT = np.array([0.3, 0.8, 1.2, 0.9, 1.1, 1.0])
Z, OMEGA_M, H = 0.55, 0.3, 0.6711
# hand constants, independent of profemu.physics: Msun [g], kpc [cm], keV [erg], rho_crit0 / h^2 [Msun/Mpc^3]
MSUN_G, KPC_CM, KEV_ERG, RHO_CRIT0_H2 = 1.98841e33, 3.0856776e21, 1.602176634e-9, 2.77536627e11


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def forward(kind: str) -> ForwardModel:
    ell, bl = gaussian_beam()
    return ForwardModel.build(kind=kind, redshift=Z, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                              omega_m=OMEGA_M, h=H, frequency_ghz=150.0 if kind == "tsz" else None)


@pytest.fixture(scope="module")
def models(run: TinyRun) -> dict[str, PopulationModel]:
    return {k: PopulationModel.build(run.emulator, forward(k), mass_distribution()) for k in ("ksz", "tsz")}


def r200c_mpc(log10_mass: float) -> float:
    """R200c [Mpc] by hand: (3 M / (4 pi 200 rho_crit(z)))^(1/3), flat LCDM."""
    e2 = OMEGA_M * (1 + Z) ** 3 + 1 - OMEGA_M
    return float((3 * 10**log10_mass / (4 * np.pi * 200 * RHO_CRIT0_H2 * H**2 * e2)) ** (1 / 3))


def direct_loop(emu: Any, kind: str) -> np.ndarray:
    """Σ_b w_b CAP(profile_b): one emulator call and one cap_from_profile per mass bin."""
    field, to_cgs = ("rho", MSUN_G / KPC_CM**3) if kind == "ksz" else ("pth", KEV_ERG)
    dist = mass_distribution()
    ell, bl = gaussian_beam()
    total = np.zeros(APERTURES.size)
    for m, w in zip(dist.log10_mass_center, dist.weights, strict=True):
        pred = emu.predict(POINT, m, on_extrapolation="ignore")[field]
        radius = emu.radius * r200c_mpc(m)
        total += w * cap_from_profile(radius, 10.0**pred.mean * to_cgs, kind=kind, redshift=Z,
                                      apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl, omega_m=OMEGA_M, h=H,
                                      frequency_ghz=150.0 if kind == "tsz" else None)
    return total


@pytest.mark.parametrize("kind", ["ksz", "tsz"])
def test_population_average_matches_direct_loop(kind: str, run: TinyRun, models: dict[str, PopulationModel]) -> None:
    """numpy path within 1e-3 (hand constants) of the loop; JAX path within 2e-3 (float32)."""
    import jax
    import jax.numpy as jnp

    ref = direct_loop(run.emulator, kind)
    got = models[kind].predict(POINT)
    np.testing.assert_allclose(got.mean[0], ref, rtol=1e-3)
    cap1, cap2, cov = jax.jit(models[kind].jax_fn())(jnp.asarray(POINT))
    np.testing.assert_allclose(np.asarray(cap1), ref, rtol=2e-3)
    assert np.all(np.asarray(cap2) == 0.0)
    np.testing.assert_allclose(np.asarray(cov), got.linearised[0], rtol=5e-3, atol=1e-6 * np.abs(cov).max())


def test_emulator_covariance_against_monte_carlo_of_members(run: TinyRun, models: dict[str, PopulationModel]) -> None:
    """Members' CAP spread (x variance_scale) + their linearised variance vs a Monte Carlo: pick a
    member, draw its log10 profiles N(mean_m, var_m) independently per radius and mass, push the
    draws through the same forward model. The tiny emulator's spread and variances (~0.3 dex) are
    shrunk 10x (a well-trained emulator's size), where the linearisation holds: diagonal within
    8% (6,000 draws: 2% noise), correlations within 0.05."""
    model = models["ksz"]
    emu = model.emulator
    b = model.log10_mass.size
    means, variances = emu.predict_members(np.repeat(POINT[None], b, axis=0), model.log10_mass,
                                           on_extrapolation="ignore")
    centre = means[:, :, 0, :].mean(axis=0)
    mean_m = centre + 0.1 * (means[:, :, 0, :] - centre)  # [M, B, n_r] (rho)
    var_m = 0.01 * variances[:, :, 0, :]
    scale = 1.7
    _, cov = model.member_covariance(mean_m, var_m, scale)
    rng = np.random.default_rng(5)
    n = 6000
    pick = rng.integers(0, mean_m.shape[0], n)
    shifted = centre + np.sqrt(scale) * (mean_m - centre)  # the spread counts variance_scale times
    draws = shifted[pick] + np.sqrt(var_m[pick]) * rng.standard_normal((n, *mean_m.shape[1:]))
    caps = model._cap_and_jacobian(draws, np.zeros_like(draws), model.scaled_matrix, np)[0]
    mc = np.cov(caps.T)
    np.testing.assert_allclose(np.diag(cov), np.diag(mc), rtol=0.08)

    def corr(c: np.ndarray) -> np.ndarray:
        return c / np.sqrt(np.outer(np.diag(c), np.diag(c)))

    np.testing.assert_allclose(corr(cov), corr(mc), atol=0.05)
    # predict() uses the same propagation on the emulator's own members
    pred = model.predict(POINT)
    _, own = model.member_covariance(means[:, None, :, 0, :], variances[:, None, :, 0, :], emu.variance_scale)
    np.testing.assert_allclose(pred.covariance, own, rtol=1e-10)


def test_mass_outside_training_range_is_reported(run: TinyRun, caplog: pytest.LogCaptureFixture) -> None:
    lo, hi = run.emulator.training_box["log10_mass"]
    dist = mass_distribution((lo - 0.3, 0.5 * (lo + hi), hi + 0.7), (1.0, 1.0, 1.0))
    with caplog.at_level("WARNING", logger="profemu.observables"):
        model = PopulationModel.build(run.emulator, forward("ksz"), dist)
    np.testing.assert_allclose(model.mass_outside_dex, [0.3, 0.0, 0.7], atol=1e-9)
    assert sum("outside the emulator's training range" in r.getMessage() for r in caplog.records) == 2
    np.testing.assert_allclose(model.predict(POINT).mass_outside_dex, [0.3, 0.0, 0.7], atol=1e-9)


def test_units_against_camels_readme() -> None:
    """CAMELS README: rho x 6.7679e-32 -> g/cm^3, pth x 6.4440e+11 -> erg/cm^3 (to 1e-4)."""
    meta = SimpleNamespace(metadata={"units": {"rho": "Msun/kpc^3", "pth": "Msun/kpc/s^2", "temp": "K"}})

    assert field_to_cgs(meta, "rho")[0] == "density"
    assert field_to_cgs(meta, "rho")[1] == pytest.approx(6.7679e-32, rel=1e-4)
    assert field_to_cgs(meta, "pth") == ("pressure", pytest.approx(6.4440e11, rel=1e-4))
    with pytest.raises(DataError, match=r"'temp'.*not a density or pressure"):
        field_to_cgs(meta, "temp")
    assert radius_to_mpc("kpc") == 1e-3 and radius_to_mpc("Mpc/h", h=0.5) == 2.0
    with pytest.raises(DataError, match="radius_unit"):
        radius_to_mpc("furlong")


def test_field_of_the_wrong_kind_is_refused(run: TinyRun) -> None:
    with pytest.raises(DataError, match="'pth' is a pressure but ksz needs a gas density"):
        PopulationModel.build(run.emulator, forward("ksz"), mass_distribution(), field="pth")


def test_two_halo_term_is_added_linearly(run: TinyRun, models: dict[str, PopulationModel]) -> None:
    from profemu.observables import TwoHaloTable

    r = np.geomspace(1e-4, 30.0, 80)  # from the grid's first radius: no inner continuation
    table = TwoHaloTable(radius_mpc_h=r, density_g_cm3=1e-29 * r**-1.5, pressure_erg_cm3=1e-17 * r**-1.5)
    with_2h = PopulationModel.build(run.emulator, forward("ksz"), mass_distribution(), two_halo=table)
    ell, bl = gaussian_beam()
    ref_2h = cap_from_profile(r, table.density_g_cm3, kind="ksz", redshift=Z, apertures_arcmin=APERTURES,
                              beam_ell=ell, beam_bl=bl, omega_m=OMEGA_M, h=H)
    diff = with_2h.predict(POINT).mean[0] - models["ksz"].predict(POINT).mean[0]
    np.testing.assert_allclose(diff, ref_2h, rtol=1e-6)


@pytest.mark.parametrize("kind", ["ksz", "tsz"])
def test_radii_in_r200c_follow_the_cosmology(kind: str, run: TinyRun) -> None:
    """The tiny emulator's radii are r/R200c: at another Ω_m, R200c(M, z) changes, so the model moved
    there (at_cosmology, numpy; jax_fn with Ω_m free) must equal one built there, and differ from the
    model that kept the radii of Ω_m = 0.3 (a 5-15% change of the CAP at Ω_m = 0.45)."""
    import jax.numpy as jnp

    here, there = 0.3, 0.45
    ell, bl = gaussian_beam()

    def build(om: float) -> PopulationModel:
        fm = ForwardModel.build(kind=kind, redshift=Z, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                                omega_m=om, h=H, frequency_ghz=150.0 if kind == "tsz" else None)
        return PopulationModel.build(run.emulator, fm, mass_distribution())

    point = POINT.copy()
    point[0] = there
    direct = build(there).predict(point).mean[0]
    moved = build(here).at_cosmology(there)
    np.testing.assert_allclose(moved.predict(point).mean[0], direct, rtol=1e-10)
    e2 = there * (1 + Z) ** 3 + 1 - there  # R200c by hand at Ω_m = 0.45
    r200 = (3 * 10**moved.log10_mass / (4 * np.pi * 200 * RHO_CRIT0_H2 * H**2 * e2)) ** (1 / 3)
    np.testing.assert_allclose(moved.radius_mpc[:, -1], r200 * run.emulator.radius[-1], rtol=1e-4)
    name = run.emulator.param_names[0]
    assert name == "Omega_m"
    cap_fn = build(here).jax_fn(omega_m_param=name)
    np.testing.assert_allclose(np.asarray(cap_fn(jnp.asarray(point, jnp.float32))[0]), direct, rtol=2e-3)
    stale = replace(build(here), forward=moved.forward).predict(point).mean[0]  # D_A moved, radii not
    assert np.min(np.abs(stale / direct - 1)) > 0.03
