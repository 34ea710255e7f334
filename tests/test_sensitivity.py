"""Sensitivity: d log10 profile / d parameter in sampling space, importance and the figure."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from profemu.design.derivatives import sensitivity, top_parameters
from profemu.design.figures import sensitivity_figure
from profemu.errors import ConfigError
from tests.reliability import TinyRun, tiny_run

NAMES = ("Omega_m", "A_SN1", "A_AGN1")
BOX = {"Omega_m": (0.1, 0.5), "A_SN1": (0.25, 4.0), "A_AGN1": (0.5, 2.0), "log10_mass": (12.0, 14.0)}
RADIUS = np.geomspace(0.1, 2.0, 4)


def _fake(mean_fn) -> SimpleNamespace:
    """An object with the Emulator attributes sensitivity uses; ``mean_fn(theta [p], m) -> [F, n_r]``.

    ``theta`` is the sampling-space vector (log10 of the A_* parameters), computed here from the
    linear inputs, so the expected derivatives are analytic.
    """
    import jax.numpy as jnp

    is_log = jnp.array([False, True, True])

    def predict_fn(params, log10_mass, pk_ratio=None, redshift=None):
        theta = jnp.where(is_log, jnp.log10(params), params)
        mean = mean_fn(theta, log10_mass)
        return mean, jnp.ones_like(mean)

    return SimpleNamespace(
        param_names=NAMES, log_params=("A_SN1", "A_AGN1"), field_names=("rho", "pth"), radius=RADIUS,
        radius_unit="Mpc", training_box=dict(BOX), transforms=SimpleNamespace(k=None), predict_fn=predict_fn,
    )


COEF = np.array([  # [F=2, n_r=4, p=3]: d log10 y / d theta, known exactly
    [[1.0, -0.5, 0.0], [0.8, -0.4, 0.01], [0.5, -0.2, 0.02], [0.2, 0.1, 0.0]],
    [[2.0, 0.3, 0.05], [1.5, 0.2, 0.0], [1.0, 0.1, 0.0], [0.5, 0.0, 0.01]],
])


def test_linear_model_gives_its_coefficients_and_importance() -> None:
    import jax.numpy as jnp

    coef = jnp.asarray(COEF)
    emu = _fake(lambda th, m: jnp.einsum("frp,p->fr", coef, th) + 0.1 * m)
    for at in ("centre", "box"):
        s = sensitivity(emu, at=at, n_points=16)
        np.testing.assert_allclose(s.gradient, COEF, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.gradient_rms, np.abs(COEF), rtol=1e-5, atol=1e-6)
        width = np.array([0.4, np.log10(16.0), np.log10(4.0)])
        np.testing.assert_allclose(s.width, width, rtol=1e-12)
        np.testing.assert_allclose(s.importance, width * np.sqrt((COEF**2).mean(axis=(0, 1))), rtol=1e-5)
    expected = width * np.sqrt((COEF**2).mean(axis=(0, 1)))  # Omega_m 0.434, A_SN1 0.330, A_AGN1 0.014
    order = [NAMES[j] for j in np.argsort(-expected)]
    assert order == ["Omega_m", "A_SN1", "A_AGN1"]
    assert [name for name, _ in s.ranked()] == order
    assert top_parameters(s, k=2) == ("Omega_m", "A_SN1")
    assert top_parameters(s, k=1, among=["A_SN1", "A_AGN1"]) == ("A_SN1",)


def test_centre_and_box_average_of_a_nonlinear_model() -> None:
    import jax.numpy as jnp

    # y = exp(theta_1) * m / 13 for every field and radius: d y / d theta_1 = exp(theta_1) m / 13
    emu = _fake(lambda th, m: jnp.full((2, 4), 1.0) * jnp.exp(th[1]) * m / 13.0)
    lo, hi = np.log10(0.25), np.log10(4.0)
    centre = sensitivity(emu, at="centre", mass_points=2)
    np.testing.assert_allclose(centre.log10_mass, [12.5, 13.5])
    np.testing.assert_allclose(centre.gradient[..., 1], 1.0, rtol=1e-5)  # exp(0) * mean mass 13 / 13
    np.testing.assert_allclose(centre.gradient[..., [0, 2]], 0.0, atol=1e-7)
    box = sensitivity(emu, at="box", n_points=512, seed=1, log10_mass=[13.0])
    mean_exp = (np.exp(hi) - np.exp(lo)) / (hi - lo)
    rms_exp = np.sqrt((np.exp(2 * hi) - np.exp(2 * lo)) / (2 * (hi - lo)))
    np.testing.assert_allclose(box.gradient[..., 1], mean_exp, rtol=5e-3)
    np.testing.assert_allclose(box.gradient_rms[..., 1], rms_exp, rtol=5e-3)
    assert box.n_points == 512 and centre.n_points == 1


def test_trained_emulator_matches_finite_differences_of_predict(tmp_path: Path) -> None:
    run: TinyRun = tiny_run(tmp_path / "tiny")
    emu = run.emulator
    s = sensitivity(emu, at="centre", log10_mass=[13.0])
    assert s.gradient.shape == (2, emu.radius.size, 6)
    box = emu.training_box
    is_log = np.array([n in emu.log_params for n in emu.param_names])
    lo = np.array([box[n][0] for n in emu.param_names])
    hi = np.array([box[n][1] for n in emu.param_names])
    theta_c = np.where(is_log, 0.5 * (np.log10(lo) + np.log10(hi)), 0.5 * (lo + hi))

    def mean_at(theta: np.ndarray) -> np.ndarray:
        x = np.where(is_log, 10.0**theta, theta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = emu.predict(x[None, :], 13.0)
        return np.stack([pred[f].mean[0] for f in emu.field_names])  # [F, n_r]

    h = 1e-2
    for j in range(6):  # independent reference: central differences of the numpy prediction
        step = np.zeros(6)
        step[j] = h
        fd = (mean_at(theta_c + step) - mean_at(theta_c - step)) / (2 * h)
        np.testing.assert_allclose(s.gradient[..., j], fd, rtol=2e-2, atol=2e-3)
    assert np.all(s.importance > 0)


def test_bad_arguments_are_named() -> None:
    import jax.numpy as jnp

    emu = _fake(lambda th, m: jnp.zeros((2, 4)) + th[0])
    with pytest.raises(ConfigError, match="at: 'middle' is not allowed"):
        sensitivity(emu, at="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_points"):
        sensitivity(emu, at="box", n_points=0)
    with pytest.raises(ConfigError, match="pk_ratio: this emulator was trained without P"):
        sensitivity(emu, pk_ratio=np.ones(3))
    s = sensitivity(emu)
    with pytest.raises(ConfigError, match=r"k: expected an integer in \[1, 3\]"):
        top_parameters(s, k=4)
    with pytest.raises(ConfigError, match=r"among: \['h'\] are not parameters"):
        top_parameters(s, among=["h"])


def test_figure_has_one_panel_per_field_and_the_top_curves() -> None:
    import jax.numpy as jnp

    coef = jnp.asarray(COEF)
    s = sensitivity(_fake(lambda th, m: jnp.einsum("frp,p->fr", coef, th)))
    fig = sensitivity_figure(s, top=2)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["rho", "pth"]
    lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines() if not ln.get_label().startswith("_")}
    assert list(lines) == ["Omega_m", "log10 A_SN1"]  # the two most important, A_AGN1 in the band
    np.testing.assert_allclose(lines["log10 A_SN1"].get_ydata(), COEF[1, :, 1], rtol=1e-5)
    scaled = sensitivity_figure(s, top=2, scaled=True)
    lines = {ln.get_label(): ln for ln in scaled.axes[1].get_lines()}
    np.testing.assert_allclose(lines["log10 A_SN1"].get_ydata(), COEF[1, :, 1] * np.log10(16.0), rtol=1e-5)
