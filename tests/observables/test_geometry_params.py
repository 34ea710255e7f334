"""An emulator's own cosmology and P(k) inputs in the sky forward model: D_A and R_Δ from each
point's Ω_m and h (numpy, JAX and the posterior, free or fixed), and the default P(k)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from profemu.errors import ConfigError
from profemu.observables import ForwardModel, PopulationModel, cap_from_profile
from profemu.observables.population import cosmology_params
from tests.observables.synthetic import APERTURES, gaussian_beam, mass_distribution, measurement
from tests.observables.tiny_sb35 import centre_point, tiny_sb35_run
from tests.reliability import TinyRun

Z = 0.7
H_POINT, OM_POINT = 0.865, 0.3
# hand constants, independent of profemu.physics: keV [erg], rho_crit0 / h^2 [Msun/Mpc^3]
KEV_ERG, RHO_CRIT0_H2 = 1.602176634e-9, 2.77536627e11


@pytest.fixture(scope="module")
def nopk(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_sb35_run(tmp_path_factory.getbasetemp() / "tiny_sb35", with_pk=False)


@pytest.fixture(scope="module")
def withpk(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_sb35_run(tmp_path_factory.getbasetemp() / "tiny_sb35", with_pk=True)


def forward(omega_m: float = 0.3, h: float = 0.6711) -> ForwardModel:
    ell, bl = gaussian_beam()
    return ForwardModel.build(kind="tsz", redshift=Z, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                              omega_m=omega_m, h=h, frequency_ghz=150.0)


def by_hand(emu: object, point: np.ndarray, omega_m: float, h: float) -> np.ndarray:
    """Σ_b w_b CAP(P_b): the emulator's pressure [keV/cm^3] at each mass, radii r/R200c times R200c
    by hand at (Ω_m, h), through cap_from_profile at the same (Ω_m, h)."""
    ell, bl = gaussian_beam()
    dist = mass_distribution()
    e2 = omega_m * (1 + Z) ** 3 + 1 - omega_m
    total = np.zeros(APERTURES.size)
    for m, w in zip(dist.log10_mass_center, dist.weights, strict=True):
        pred = emu.predict(point, m, on_extrapolation="ignore")["pth"]  # type: ignore[attr-defined]
        r200 = (3 * 10**m / (4 * np.pi * 200 * RHO_CRIT0_H2 * h**2 * e2)) ** (1 / 3)
        total += w * cap_from_profile(emu.radius * r200, 10.0**pred.mean * KEV_ERG, kind="tsz",  # type: ignore[attr-defined]
                                      redshift=Z, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                                      omega_m=omega_m, h=h, frequency_ghz=150.0)
    return total


def test_cosmology_parameters_are_found_by_alias() -> None:
    assert cosmology_params(["Omega_m", "sigma_8", "h"]) == ("Omega_m", "h")
    assert cosmology_params(["OmegaM", "HubbleParam"]) == ("OmegaM", "HubbleParam")
    assert cosmology_params(["A_SN1"]) == (None, None)


def test_h_parameter_sets_distance_and_r200c(nopk: TinyRun) -> None:
    """At a point with h = 0.865 (the emulator's h input), the CAP of the model moved there (numpy:
    at_cosmology; JAX: jax_fn with h_param) equals the loop at h = 0.865 by hand (1e-3 numpy, 2e-3
    float32 JAX) and differs from the one at the forward model's h = 0.6711 by more than 5% at the
    1' aperture (9%); the
    JAX CAP is differentiable in h (within 5% of central differences)."""
    import jax
    import jax.numpy as jnp

    emu = nopk.emulator
    point = centre_point(emu, Omega_m=OM_POINT, h=H_POINT)
    ref = by_hand(emu, point, OM_POINT, H_POINT)
    model = PopulationModel.build(emu, forward(), mass_distribution())
    np.testing.assert_allclose(model.at_cosmology(OM_POINT, H_POINT).predict(point).mean[0], ref, rtol=1e-3)
    stale = model.predict(point).mean[0]
    assert abs(stale[0] / ref[0] - 1) > 0.05
    cap_fn = model.jax_fn(omega_m_param="Omega_m", h_param="h")
    cap1 = np.asarray(jax.jit(cap_fn)(jnp.asarray(point, jnp.float32))[0])
    np.testing.assert_allclose(cap1, ref, rtol=2e-3)
    j = emu.param_names.index("h")

    def total(hh: jnp.ndarray) -> jnp.ndarray:
        return jnp.sum(cap_fn(jnp.asarray(point, jnp.float32).at[j].set(hh))[0])

    grad = float(jax.grad(total)(jnp.float32(H_POINT)))
    step = 5e-3
    fd = (float(total(jnp.float32(H_POINT + step))) - float(total(jnp.float32(H_POINT - step)))) / (2 * step)
    assert grad == pytest.approx(fd, rel=0.05) and abs(grad) > 0
    assert any("each point's parameter 'h'" in line for line in model.notes)


def test_posterior_geometry_follows_fixed_parameters(nopk: TinyRun) -> None:
    """geometry='follow' takes D_A and R_Δ from the emulator's Ω_m and h also when they are fixed
    (and when with_values changes them): the posterior's model equals the numpy prediction there."""
    from profemu.inference.observables import CAPTerm, make_cap_posterior

    emu = nopk.emulator
    point = centre_point(emu, Omega_m=OM_POINT, h=H_POINT)
    model = PopulationModel.build(emu, forward(), mass_distribution())  # built at h = 0.6711
    values = model.at_cosmology(OM_POINT, H_POINT).predict(point).mean[0]
    term = CAPTerm(measurement("tsz", values), model)
    free = "A_SN1"
    fix = {n: float(v) for n, v in zip(emu.param_names, point, strict=True) if n != free}
    post = make_cap_posterior([term], fix=fix)
    assert post.names == (free,) and (post.omega_m_param, post.h_param) == ("Omega_m", "h")
    theta = np.array([np.log10(point[emu.param_names.index(free)])], np.float32)
    np.testing.assert_allclose(np.asarray(post.model(theta)[0]), values, rtol=2e-3)
    moved = post.with_values(post.data["d"], fixed={"h": 0.7})
    there = model.at_cosmology(OM_POINT, 0.7).predict(np.where(np.array(emu.param_names) == "h", 0.7, point))
    np.testing.assert_allclose(np.asarray(moved.model(theta)[0]), there.mean[0], rtol=2e-3)
    # held fixed, the geometry is computed once (numpy) and read from the posterior's data, not at every
    # call; with Omega_m free it is computed in the call, and the two agree at the same Omega_m
    assert "geo_a_0" in post.data and "geo_a_0" in moved.data
    assert not np.allclose(moved.data["geo_a_0"], post.data["geo_a_0"])
    free_om = make_cap_posterior([term], fix={k: v for k, v in fix.items() if k != "Omega_m"})
    assert "geo_a_0" not in free_om.data and free_om.names == ("Omega_m", free)
    theta_om = np.array([np.log10(OM_POINT) if free_om.space.is_log[0] else OM_POINT, theta[0]], np.float32)
    np.testing.assert_allclose(np.asarray(free_om.model(theta_om)[0]), np.asarray(post.model(theta)[0]), rtol=1e-4)
    kept = make_cap_posterior([term], fix=fix, geometry="fixed")
    assert (kept.omega_m_param, kept.h_param) == (None, None) and "h = 0.6711 (fixed)" in kept.geometry


def test_pk_emulator_uses_the_training_centre_by_default(withpk: TinyRun, caplog: pytest.LogCaptureFixture) -> None:
    """An emulator with P(k) inputs predicts CAPs without a P(k) given: the training set's centre,
    logged; the same as passing that centre, and a different P(k) changes the CAP."""
    import jax
    import jax.numpy as jnp

    from profemu.emulator.tables import fiducial_pk_ratio

    emu = withpk.emulator
    point = centre_point(emu, Omega_m=OM_POINT, h=0.7)
    with caplog.at_level(logging.INFO, logger="profemu.observables"):
        default = PopulationModel.build(emu, forward(h=0.7), mass_distribution())
    assert any("assuming the training set's centre" in r.getMessage() for r in caplog.records)
    centre = fiducial_pk_ratio(emu)
    assert centre is not None and default.pk_ratio is not None
    np.testing.assert_array_equal(default.pk_ratio, centre)
    got = default.predict(point).mean[0]
    given = PopulationModel.build(emu, forward(h=0.7), mass_distribution(), pk_ratio=centre).predict(point).mean[0]
    np.testing.assert_array_equal(got, given)
    other = PopulationModel.build(emu, forward(h=0.7), mass_distribution(), pk_ratio=centre * 0.98)
    assert np.max(np.abs(other.predict(point).mean[0] / got - 1)) > 1e-4
    cap1 = np.asarray(jax.jit(default.jax_fn(omega_m_param="Omega_m", h_param="h"))(jnp.asarray(point, jnp.float32))[0])
    np.testing.assert_allclose(cap1, got, rtol=2e-3)
    with pytest.raises(ConfigError, match=r"^pk_ratio: 3 value\(s\), but the emulator takes P\(k\) on 79 k bins"):
        PopulationModel.build(emu, forward(), mass_distribution(), pk_ratio=[1.0, 1.0, 1.0])


def test_pk_ratio_for_an_emulator_without_pk_is_refused(nopk: TinyRun) -> None:
    with pytest.raises(ConfigError, match=r"^pk_ratio: this emulator was trained without P\(k\) inputs"):
        PopulationModel.build(nopk.emulator, forward(), mass_distribution(), pk_ratio=np.ones(79))
