"""The whole forward model: closed form (3D Gaussian, Gaussian beam), an independent numerical
route with a synthetic beam and response (no ../shared needed), gradients against finite
differences, jit/vmap, the matrix path, and bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import ConfigError, DataError, ProfemuError
from profemu.observables import ForwardModel, cap_from_profile, cap_matrix
from profemu.observables.beam import gaussian_beam
from profemu.observables.cap import cap_gaussian
from profemu.observables.units import (
    ARCMIN_RAD,
    SR_TO_ARCMIN2,
    ksz_muk_per_g_cm2,
    tsz_response_nonrelativistic,
    tsz_y_per_erg_cm2,
)
from profemu.physics.constants import DEFAULT_H, MPC_CM
from profemu.physics.cosmology import angular_diameter_distance
from profemu.physics.halo import gnfw_pressure
from tests.conftest import REPO
from tests.observables.reference import reference_cap

APERTURES = np.linspace(1.0, 6.0, 9)
BEAM_ELL = np.arange(0.0, 40001.0)
FWHM = 1.6
BEAM_BL = gaussian_beam(BEAM_ELL, FWHM)
# a smooth synthetic band response [K per y], varying by 15% over the ℓ range
RESP_ELL = np.geomspace(50.0, 40000.0, 60)
RESP = -2.79 + 0.4 * (RESP_ELL / 40000.0) ** 0.7
Z = 0.55
CAMELS_RADII = np.geomspace(6.706e-4, 1.536, 15)  # the CAMELS radial bins [Mpc]


def synthetic_profiles() -> dict[str, np.ndarray]:
    """CAMELS-like tables at the 15 CAMELS radii: a gNFW density [g cm⁻³] and a Battaglia
    pressure [erg cm⁻³] of a ~1e13 Msun halo (R200c ≈ 0.4 Mpc)."""
    x = CAMELS_RADII / 0.4
    rho = 3e-26 * (x / 0.5) ** -0.2 / (1 + (x / 0.5) ** 0.9) ** (2.8 / 0.9)
    pth = 2e-12 * gnfw_pressure(x, 1.0, 0.5, 4.35)
    return {"ksz": rho, "tsz": pth}


KW: dict[str, Any] = {"redshift": Z, "apertures_arcmin": APERTURES, "beam_ell": BEAM_ELL,
                      "beam_bl": BEAM_BL}


@pytest.mark.parametrize("kind", ["ksz", "tsz"])
def test_gaussian_halo_closed_form(kind: str) -> None:
    """ρ or P = A exp(-r²/2s²) → Gaussian map of width s/D_A → beam → analytic CAP."""
    s, amp = 0.2, 1e-25
    radius = np.geomspace(1e-3, 2.0, 400)
    profile = amp * np.exp(-(radius**2) / (2 * s**2))
    band = {"frequency_ghz": 150.0} if kind == "tsz" else {}
    got = cap_from_profile(radius, profile, kind=kind, **KW, **band)
    d_a = float(angular_diameter_distance(Z, 0.3, DEFAULT_H))
    s_map = s / d_a
    s_tot = np.hypot(s_map, FWHM * ARCMIN_RAD / np.sqrt(8 * np.log(2)))
    factor = ksz_muk_per_g_cm2(313.0) if kind == "ksz" else (
        tsz_y_per_erg_cm2() * tsz_response_nonrelativistic(150.0) * 1e6)
    peak = factor * MPC_CM * amp * np.sqrt(2 * np.pi) * s
    exact = peak * cap_gaussian(APERTURES * ARCMIN_RAD, s_tot, s_map**2 / s_tot**2) * SR_TO_ARCMIN2
    np.testing.assert_allclose(got, exact, rtol=1e-3)
    # the matrix path on the grid gives the same
    model = ForwardModel.build(kind=kind, **KW, **band)
    grid_profile = amp * np.exp(-(model.radius_grid_mpc**2) / (2 * s**2))
    np.testing.assert_allclose(model(grid_profile), exact, rtol=1e-3)


@pytest.mark.parametrize("kind", ["ksz", "tsz"])
def test_independent_route_synthetic_beam(kind: str) -> None:
    """A CAMELS-like table against quad + 2D FFT + real-space CAP, at the 9 apertures (≤ 1%)."""
    profile = synthetic_profiles()[kind]
    resp = {"response_ell": RESP_ELL, "response": RESP} if kind == "tsz" else {}
    got = cap_from_profile(CAMELS_RADII, profile, kind=kind, **KW, **resp)
    ref = reference_cap(CAMELS_RADII, profile, kind=kind, redshift=Z, apertures_arcmin=APERTURES,
                        beam_ell=BEAM_ELL, beam_bl=BEAM_BL, **resp)
    assert np.max(np.abs(got / ref - 1)) < 0.01, got / ref - 1


def test_matrix_path_is_linear_and_consistent() -> None:
    prof = synthetic_profiles()["ksz"]
    model = ForwardModel.build(kind="ksz", **KW)
    f = model.profile_on_grid(CAMELS_RADII, prof)
    np.testing.assert_allclose(model(f), cap_from_profile(CAMELS_RADII, prof, kind="ksz", **KW), rtol=1e-12)
    np.testing.assert_allclose(model(3 * f + f[::-1]), 3 * model(f) + model(f[::-1]), rtol=1e-12)
    a, grid = cap_matrix(kind="ksz", **KW)
    np.testing.assert_allclose(a, model.matrix)
    np.testing.assert_array_equal(grid, model.radius_grid_mpc)
    # v_rms enters linearly; the two-halo term adds linearly
    np.testing.assert_allclose(cap_from_profile(CAMELS_RADII, prof, kind="ksz", v_rms_kms=626.0, **KW),
                               2 * model(f), rtol=1e-12)
    two_h_values = 1e-29 * (CAMELS_RADII / 1.0) ** -0.4
    with_2h = model.cap_from_table(CAMELS_RADII, prof, two_halo_radius_mpc=CAMELS_RADII,
                                   two_halo_values=two_h_values, two_halo_amplitude=0.5)
    from profemu.observables import two_halo_on_grid

    only_2h = model(two_halo_on_grid(CAMELS_RADII, two_h_values, model.radius_grid_mpc))
    np.testing.assert_allclose(with_2h, model(f) + 0.5 * only_2h, rtol=1e-12)
    assert np.all(only_2h > 0)


def test_jax_path_jit_vmap_grad_float32() -> None:
    """JAX default precision (float32): jit and vmap agree with the float64 numpy path to 1e-3,
    and the gradients with finite differences of the numpy path to 1e-3."""
    prof = synthetic_profiles()["tsz"]
    kw = dict(KW, response_ell=RESP_ELL, response=RESP)
    ref = cap_from_profile(CAMELS_RADII, prof, kind="tsz", **kw)
    fn = jax.jit(lambda p: cap_from_profile(CAMELS_RADII, p, kind="tsz", **kw))
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(prof))), ref, rtol=1e-3)
    batch = np.stack([prof, 2 * prof, prof * (CAMELS_RADII / 0.1) ** -0.1])
    out = jax.vmap(fn)(jnp.asarray(batch))
    np.testing.assert_allclose(np.asarray(out), cap_from_profile(CAMELS_RADII, batch, kind="tsz", **kw),
                               rtol=1e-3)
    weights = np.linspace(1.0, 2.0, APERTURES.size)

    def total(p: jax.Array, omega_m: jax.Array) -> jax.Array:
        return jnp.asarray(weights, dtype=jnp.float32) @ cap_from_profile(
            CAMELS_RADII, p, kind="tsz", omega_m=omega_m, **kw)

    g_p, g_om = jax.jit(jax.grad(total, argnums=(0, 1)))(jnp.asarray(prof), 0.3)

    def total_np(p: np.ndarray, omega_m: float = 0.3) -> float:
        return float(weights @ cap_from_profile(CAMELS_RADII, p, kind="tsz", omega_m=omega_m, **kw))

    j, step = 7, prof[7] * 1e-5
    up, down = prof.copy(), prof.copy()
    up[j] += step
    down[j] -= step
    assert float(g_p[j]) == pytest.approx((total_np(up) - total_np(down)) / (2 * step), rel=1e-3)
    eps = 1e-5
    assert float(g_om) == pytest.approx((total_np(prof, 0.3 + eps) - total_np(prof, 0.3 - eps)) / (2 * eps),
                                        rel=1e-3)


def test_float64_jax_checks_in_child_process() -> None:
    """jit (float64) = numpy to 1e-8; jax.grad w.r.t. profile values, Ω_m and h = finite
    differences to 1e-5; jitted matrix rebuild = numpy build (see x64_checks.py for why a child)."""
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "tests.observables.x64_checks"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("change", "exc", "pattern"),
    [
        ({"kind": "xsz"}, ConfigError, r"^kind: unknown value 'xsz'; valid choices are \['ksz', 'tsz'\]"),
        ({"apertures_arcmin": np.array([0.0, 1.0])}, ConfigError,
         r"^apertures_arcmin: value 0 at index 0 is <= 0"),
        ({"apertures_arcmin": np.array([1.0, np.nan])}, ConfigError,
         r"^apertures_arcmin: non-finite value nan at index 1"),
        ({"radius_mpc": -CAMELS_RADII}, DataError, r"^radius_mpc: value -0.0006706 at index 0 is <= 0"),
        ({"radius_mpc": CAMELS_RADII[::-1]}, DataError, r"^radius_mpc: values must be strictly increasing"),
        ({"profile": np.where(np.arange(15) == 3, np.nan, 1e-26)}, DataError,
         r"^profile: non-finite value nan at index 3"),
        ({"beam_ell": BEAM_ELL[:5001], "beam_bl": BEAM_BL[:5001]}, ConfigError,
         r"^beam_ell: the beam table ends at ℓ = 5000 with B_ℓ / B_0 = 0.614 > 0.001; extend"),
        ({"response_ell": RESP_ELL, "response": RESP}, ConfigError,
         r"^response, frequency_ghz: the band applies to kind='tsz' only"),
        ({"frequency_ghz": 150.0}, ConfigError, r"^response, frequency_ghz: the band applies to kind='tsz' only"),
        ({"kind": "tsz"}, ConfigError, r"^frequency_ghz: tSZ needs its band: give the band response table"),
        ({"kind": "tsz", "frequency_ghz": 150.0, "response_ell": RESP_ELL, "response": RESP}, ConfigError,
         r"^frequency_ghz, response: give one of them"),
        ({"kind": "tsz", "frequency_ghz": -90.0}, ConfigError, r"^frequency_ghz: got -90.0, expected a number in"),
        ({"kind": "tsz", "response_ell": RESP_ELL, "response": RESP * 1e6}, ConfigError,
         r"^response: max \|R\| = 2.786e\+06 is above RESPONSE_MAX_K = 100 K_CMB per unit y .*mK or muK per y"),
        ({"kind": "tsz", "response_ell": RESP_ELL, "response": np.where(np.arange(RESP.size) == 7, np.nan, RESP)},
         ConfigError, r"^response: non-finite value nan at index 7 \(1 in total\); pass finite numbers"),
        ({"apertures_arcmin": APERTURES * ARCMIN_RAD}, ConfigError,
         r"^apertures_arcmin: smallest disk radius 0.0002909 is below 0.01 arcmin and looks like radians "
         r"\(0.0002909 rad = 1 arcmin\) or degrees .*give the disk radii in arcmin"),
        ({"apertures_arcmin": APERTURES * 60.0}, ConfigError,
         r"^apertures_arcmin: largest disk radius 360 arcmin is above 180 arcmin \(3 deg\), far beyond a halo's "
         r"profile \(arcsec given as arcmin\? 360 arcsec = 6 arcmin\)"),
        ({"h": 67.11}, ConfigError, r"^h: got 67.11, expected h = H0 / \(100 km/s/Mpc\) in \[0.2, 1.5\]; 67.11 looks "
                                    r"like H0 itself: pass h = 0.6711"),
        ({"v_rms_kms": 313000.0}, ConfigError, r"^v_rms_kms: got 313000.0, expected a number in \(0, 3000.0\]; "
                                               r"the rms line-of-sight velocity of the sample in km/s \(not m/s\)"),
        ({"redshift": 55.0}, ConfigError, r"^redshift: got 55.0, expected a number in \(0, 20.0\]"),
        ({"kind": "tsz", "response_ell": RESP_ELL[:20], "response": RESP[:20]}, ConfigError,
         r"^response_ell: the response table ends at ℓ = "),
        ({"omega_m": 1.5}, ConfigError, r"^omega_m: got 1.5, expected a number in \(0, 1.0\]"),
        ({"redshift": 0.0}, ConfigError, r"^redshift: got 0.0, expected a number in \(0, 20.0\]"),
        ({"l_max_mpc": -1.0}, ConfigError, r"^l_max_mpc: got -1.0"),
    ],
)
def test_bad_inputs(change: dict[str, Any], exc: type[ProfemuError], pattern: str) -> None:
    args: dict[str, Any] = {"radius_mpc": CAMELS_RADII, "profile": synthetic_profiles()["ksz"],
                            "kind": "ksz", **KW}
    args.update(change)
    with pytest.raises(exc, match=pattern) as info:
        cap_from_profile(args.pop("radius_mpc"), args.pop("profile"), **args)
    assert "\n" not in str(info.value)


def test_grid_too_short() -> None:
    with pytest.raises(ConfigError, match=r"^radius_grid_mpc: ends at 5 Mpc but the longest line of sight"):
        ForwardModel.build(kind="ksz", radius_grid_mpc=np.geomspace(1e-4, 5.0, 100), **KW)


@pytest.mark.parametrize("frequency", [90.0, 220.0])
def test_tsz_band_centre_scales_the_signal_by_f_nu(frequency: float) -> None:
    """Without a response table the tSZ CAP is f(x) T_CMB at the given band centre: the ratio of
    two frequencies is the ratio of the textbook f(x) = x coth(x/2) - 4, x = h nu / (k_B T_CMB)
    (CODATA constants, T_CMB = 2.7255 K; the sign flips above 217.5 GHz)."""
    h_planck, k_b, t_cmb = 6.62607015e-34, 1.380649e-23, 2.7255

    def f_nu(nu_ghz: float) -> float:
        x = h_planck * nu_ghz * 1e9 / (k_b * t_cmb)
        return x / np.tanh(x / 2) - 4.0

    prof = synthetic_profiles()["tsz"]
    at_150 = cap_from_profile(CAMELS_RADII, prof, kind="tsz", frequency_ghz=150.0, **KW)
    at_nu = cap_from_profile(CAMELS_RADII, prof, kind="tsz", frequency_ghz=frequency, **KW)
    np.testing.assert_allclose(at_nu / at_150, f_nu(frequency) / f_nu(150.0), rtol=1e-9)
    assert np.all(at_150 < 0) and (np.all(at_nu > 0) if frequency > 217.5 else np.all(at_nu < 0))
    model = ForwardModel.build(kind="tsz", frequency_ghz=frequency, **KW)
    assert f"{frequency:g} GHz" in model.angular.response_note


def test_angular_grid_margin_follows_a_wide_beam() -> None:
    """A beam wider than the default 10' margin widens the θ grid (3 FWHM beyond the ring), so a
    13.3' (Planck 70 GHz-like) beam loses nothing of an extended profile: the CAP is unchanged
    when the grid is widened further (1e-4)."""
    ell = np.arange(0.0, 4001.0)
    wide = gaussian_beam(ell, 13.3)
    kw = {**KW, "beam_ell": ell, "beam_bl": wide}
    prof = 1e-27 * (CAMELS_RADII / 0.1) ** -2.0
    model = ForwardModel.build(kind="ksz", **kw)
    assert model.angular.theta_rad[-1] / ARCMIN_RAD == pytest.approx(np.sqrt(2) * 6.0 + 3 * 13.3, rel=1e-5)
    wider = ForwardModel.build(kind="ksz", theta_max_arcmin=np.sqrt(2) * 6.0 + 80.0, **kw)
    base = model.cap_from_table(CAMELS_RADII, prof)
    np.testing.assert_allclose(base, wider.cap_from_table(CAMELS_RADII, prof), rtol=1e-4)
