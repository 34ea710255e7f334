"""Tests of the soft physics penalties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import PhysicsLossConfig
from profemu.data.layout import FieldSpec, OutputLayout, field_kind
from profemu.errors import ConfigError, DataError
from profemu.losses.physics import needs_mass_derivative, physics_losses

LOG10_R = np.linspace(-1.0, 0.5, 7)


def make_ctx(fields: tuple[str, ...] = ("rho", "temp")) -> tuple[OutputLayout, dict[str, np.ndarray]]:
    """A layout (density/pressure fields declared monotone) and its arrays."""
    specs = tuple(FieldSpec(f, "", field_kind(f), field_kind(f) in ("density", "pressure")) for f in fields)
    d = len(fields) * LOG10_R.size
    layout = OutputLayout(specs, LOG10_R.size, (("params", 2), ("log10_mass", 1)), d)
    arrays = {"target_center": np.linspace(-0.3, 0.4, d), "target_scale": np.linspace(0.5, 2.0, d),
              "log10_radius": LOG10_R, "log10_mass_scale": np.asarray(0.5)}
    return layout, arrays


def to_std(ctx, log10_y: np.ndarray) -> np.ndarray:
    """[n, F, n_r] log10 profile -> standardised mean [n, D]."""
    _, arrays = ctx
    flat = log10_y.reshape(log10_y.shape[0], -1)
    return ((flat - arrays["target_center"]) / arrays["target_scale"]).astype(np.float32)


def losses(std, ctx, cfg, **kwargs):
    return physics_losses(std, ctx[0], ctx[1], cfg, **kwargs)


def power_law(slopes: list[float], n: int = 3) -> np.ndarray:
    return np.stack([np.stack([1.0 + s * LOG10_R for s in slopes])] * n)


def test_monotonic_penalises_only_increasing_declared_fields() -> None:
    ctx = make_ctx()
    cfg = PhysicsLossConfig(monotonic_weight=2.0)
    down = losses(to_std(ctx, power_law([-2.0, -1.0])), ctx, cfg)
    assert float(down["monotonic"]) == pytest.approx(0.0, abs=1e-6)
    up = losses(to_std(ctx, power_law([0.5, -1.0])), ctx, cfg)
    assert float(up["monotonic"]) == pytest.approx(2.0 * 0.5, rel=1e-4)
    # temperature is not declared monotone, so a rising temperature is free
    hot = losses(to_std(ctx, power_law([-2.0, 1.5])), ctx, cfg)
    assert float(hot["monotonic"]) == pytest.approx(0.0, abs=1e-6)
    assert ctx[0].monotone_fields == ("rho",)


def test_monotonic_window_is_respected() -> None:
    ctx = make_ctx()
    radius = 10.0**LOG10_R
    log10_y = power_law([-2.0, -1.0])
    bump = LOG10_R > 0.2  # rising profile only in the outer bins
    log10_y[:, 0, bump] += 3.0 * (LOG10_R[bump] - 0.2)
    std = to_std(ctx, log10_y)
    inner = PhysicsLossConfig(monotonic_weight=1.0, monotonic_window=(radius[0], radius[3]))
    outer = PhysicsLossConfig(monotonic_weight=1.0, monotonic_window=(radius[4], radius[6]))
    everywhere = PhysicsLossConfig(monotonic_weight=1.0)
    assert float(losses(std, ctx, inner)["monotonic"]) == pytest.approx(0.0, abs=1e-6)
    # the mean is over the window's intervals only: two intervals, one rising by 1.0 dex/dex
    slopes = np.diff(log10_y[0, 0]) / np.diff(LOG10_R)
    assert float(losses(std, ctx, outer)["monotonic"]) == pytest.approx(np.maximum(slopes[4:], 0).mean(), rel=1e-4)
    assert float(losses(std, ctx, everywhere)["monotonic"]) > 0.01


def test_smoothness_zero_for_power_law_positive_for_kink() -> None:
    ctx = make_ctx()
    cfg = PhysicsLossConfig(smoothness_weight=1.0)
    assert float(losses(to_std(ctx, power_law([-2.0, 0.7])), ctx, cfg)["smoothness"]) < 1e-8
    kinked = power_law([-2.0, 0.7])
    kinked[:, 0, 3] += 0.3
    assert float(losses(to_std(ctx, kinked), ctx, cfg)["smoothness"]) > 1e-2


def test_mass_scaling_zero_for_declared_slope() -> None:
    ctx = make_ctx(("pth", "temp"))
    layout, arrays = ctx
    cfg = PhysicsLossConfig(mass_scaling_weight=1.0, mass_scaling_slopes={"pth": 2 / 3}, mass_scaling_tolerance=0.05)
    assert needs_mass_derivative(layout, cfg)
    assert not needs_mass_derivative(make_ctx(("rho",))[0], cfg)

    def model(slope: float):
        def mean_std(log10_m: jax.Array) -> jax.Array:
            log10_y = jnp.stack([1.0 - 2.0 * LOG10_R + slope * log10_m[:, None], 0.3 * log10_m[:, None] + 0 * LOG10_R], 1)
            return (log10_y.reshape(log10_m.shape[0], -1) - arrays["target_center"]) / arrays["target_scale"]

        return mean_std

    mass = jnp.linspace(11.0, 13.0, 4)
    for slope, zero in ((2 / 3, True), (1.2, False)):
        mean, dmean = jax.jvp(model(slope), (mass,), (jnp.ones_like(mass),))  # per dex of mass
        value = float(losses(mean, ctx, cfg, mass_slope=dmean)["mass_scaling"])
        if zero:
            assert value == pytest.approx(0.0, abs=1e-8)
        else:
            assert value == pytest.approx((1.2 - 2 / 3 - 0.05) ** 2, rel=1e-3)
    with pytest.raises(ConfigError, match="derivative"):
        losses(mean, ctx, cfg)


def test_boundary_slope_and_scale_and_zero_weights() -> None:
    ctx = make_ctx()
    cfg = PhysicsLossConfig(boundary_weight=3.0, boundary_slopes={"rho": -3.0}, boundary_tolerance=0.5)
    near = losses(to_std(ctx, power_law([-3.2, 0.0])), ctx, cfg)
    far = losses(to_std(ctx, power_law([-1.0, 0.0])), ctx, cfg, scale=0.5)
    assert float(near["boundary"]) == pytest.approx(0.0, abs=1e-8)
    assert float(far["boundary"]) == pytest.approx(3.0 * 0.5 * 1.5**2, rel=1e-3)
    assert set(far) == {"monotonic", "smoothness", "mass_scaling", "boundary"}
    assert all(float(far[k]) == 0.0 for k in ("monotonic", "smoothness", "mass_scaling"))


def test_sample_weight_excludes_rows_and_bad_shapes() -> None:
    ctx = make_ctx()
    cfg = PhysicsLossConfig(monotonic_weight=1.0)
    good = power_law([-2.0, -1.0], n=1)
    bad = power_law([1.0, -1.0], n=1)
    std = to_std(ctx, np.concatenate([good, bad]))
    assert float(losses(std, ctx, cfg, sample_weight=jnp.array([1.0, 0.0]))["monotonic"]) == 0.0
    assert float(losses(std, ctx, cfg)["monotonic"]) > 0.0
    with pytest.raises(DataError, match="outputs"):
        losses(std[:, :5], ctx, cfg)
