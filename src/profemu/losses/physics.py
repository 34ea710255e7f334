"""Soft physics penalties on the predicted mean profile, per field, on the radial grid.

The penalties act on ``log10 y = target_center + target_scale * mean_std`` as a
function of ``log10 r`` (and of ``log10 M`` for the mass scaling):

* ``monotonic`` — hinge on positive slopes ``d log10 y / d log10 r`` for the fields
  declared monotone (``data.monotone_fields``; never temperature by default), only
  inside ``loss.physics.monotonic_window``;
* ``smoothness`` — squared differences of consecutive slopes (second differences
  in log r; zero for a power law);
* ``mass_scaling`` — squared hinge on ``|d log10 y / d log10 M − slope| − tolerance``
  for fields with a declared slope; the power-law head gives the derivative as an
  output, other networks get it from a ``jax.jvp`` (see :func:`needs_mass_derivative`).
  With the self-similar normalisation ``y`` is the normalised profile ``y / y_Δ``, whose
  self-similar slope is 0 at fixed ``r / R_Δ`` and ``-(1/3) d log10 y / d log10 r`` at
  fixed physical radius: that expectation is added to the declared slope, so
  ``mass_scaling_slopes: {pth: 0}`` asks for self-similar scaling;
* ``boundary`` — squared hinge on ``|outer slope − declared slope| − tolerance``.

Each component is multiplied by its weight and by ``scale`` (the curriculum
multiplier). A component with weight 0 is not traced at all and reported as 0.
Everything the penalties need comes from the :class:`~profemu.data.layout.OutputLayout`
(static) and :meth:`~profemu.data.transforms.Transforms.model_arrays` (arrays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from profemu.config import PhysicsLossConfig
from profemu.data.layout import OutputLayout
from profemu.errors import ConfigError, DataError

__all__ = ["PHYSICS_COMPONENTS", "needs_mass_derivative", "physics_active", "physics_losses"]

PHYSICS_COMPONENTS: tuple[str, ...] = ("monotonic", "smoothness", "mass_scaling", "boundary")
"""Names of the physics components, in the order they are reported."""


def physics_active(cfg: PhysicsLossConfig) -> bool:
    """Whether any physics weight is > 0."""
    return any(w > 0 for w in (cfg.monotonic_weight, cfg.smoothness_weight, cfg.mass_scaling_weight,
                               cfg.boundary_weight))


def needs_mass_derivative(layout: OutputLayout, cfg: PhysicsLossConfig) -> bool:
    """Whether the mass-scaling term is active (weight > 0 and a declared field is predicted)."""
    if cfg.mass_scaling_weight <= 0:
        return False
    return any(name in layout.field_names for name in cfg.mass_scaling_slopes)


def _weighted_mean(values: jax.Array, sample_weight: jax.Array | None) -> jax.Array:
    """Mean over everything, with per-sample weights along axis 0."""
    per_sample = jnp.mean(values.reshape(values.shape[0], -1), axis=1)
    if sample_weight is None:
        return jnp.mean(per_sample)
    w = jnp.asarray(sample_weight, per_sample.dtype)
    # select rather than multiply, so a zero-weight row holding NaN/inf (0 * inf) cannot leak in
    total = jnp.sum(jnp.where(w > 0, w * per_sample, 0.0))
    return total / jnp.maximum(jnp.sum(w), jnp.finfo(per_sample.dtype).tiny)


def _select(layout: OutputLayout, names: Sequence[str] | Mapping[str, float]) -> list[int]:
    return [i for i, f in enumerate(layout.field_names) if f in names]


def _slope_at_bins(interval_slopes: jax.Array) -> jax.Array:
    """Slopes between neighbouring radii [..., n_r - 1] -> at the radii [..., n_r] (mean of the two sides)."""
    first, last = interval_slopes[..., :1], interval_slopes[..., -1:]
    inner = 0.5 * (interval_slopes[..., 1:] + interval_slopes[..., :-1])
    return jnp.concatenate([first, inner, last], axis=-1)


def _hinge_sq(deviation: jax.Array, tolerance: float) -> jax.Array:
    return jnp.square(jax.nn.relu(jnp.abs(deviation) - tolerance))


def physics_losses(
    mean_std: jax.Array,
    layout: OutputLayout,
    arrays: Mapping[str, Any],
    cfg: PhysicsLossConfig,
    *,
    mass_slope: jax.Array | None = None,
    scale: float | jax.Array = 1.0,
    sample_weight: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Weighted physics components of the predicted mean.

    Args:
        mean_std: Predicted mean [n, D] in standardised log10 units (decoded from PCA).
        layout: Fields (and which are monotone) and radii per field.
        arrays: ``target_center``, ``target_scale`` [D] and ``log10_radius`` [n_r].
        cfg: Weights, window, slopes and tolerances.
        mass_slope: d mean_std / d log10 M [n, D] (standardised units per dex);
            required when :func:`needs_mass_derivative` is True.
        scale: Curriculum multiplier of every weight (may be traced).
        sample_weight: Optional per-sample weights [n] (e.g. 0 for padding rows).

    Returns:
        ``{"monotonic", "smoothness", "mass_scaling", "boundary"}`` -> scalar, each
        already multiplied by its weight and ``scale``.
    """
    n, n_r, n_fields = mean_std.shape[0], layout.n_r, len(layout.fields)
    dtype = mean_std.dtype if jnp.issubdtype(mean_std.dtype, jnp.floating) else jnp.float32
    out = dict.fromkeys(PHYSICS_COMPONENTS, jnp.zeros((), dtype))
    if mean_std.shape[-1] != layout.target_dim:
        raise DataError(
            f"physics_losses: mean has {mean_std.shape[-1]} outputs but the layout has {n_fields} fields x "
            f"{n_r} radii; decode PCA outputs before the physics losses."
        )
    tscale = jnp.asarray(arrays["target_scale"], dtype)
    log10_y = (jnp.asarray(arrays["target_center"], dtype) + tscale * mean_std).reshape(n, n_fields, n_r)
    log_r = jnp.asarray(arrays["log10_radius"], dtype)
    slopes = jnp.diff(log10_y, axis=-1) / jnp.diff(log_r) if n_r > 1 else None  # [n, F, n_r-1]

    if cfg.monotonic_weight > 0 and slopes is not None:
        fields = _select(layout, layout.monotone_fields)
        if fields:
            if cfg.monotonic_window is None:
                window = jnp.ones(n_r - 1, dtype)
            else:
                lo, hi = np.log10(cfg.monotonic_window)
                inside = (log_r >= lo) & (log_r <= hi)
                window = (inside[:-1] & inside[1:]).astype(dtype)
            hinge = jax.nn.relu(slopes[:, np.asarray(fields)]) * window
            share = jnp.maximum(window.mean(), jnp.finfo(dtype).tiny)  # mean over the window only
            out["monotonic"] = cfg.monotonic_weight * scale * _weighted_mean(hinge, sample_weight) / share

    if cfg.smoothness_weight > 0 and slopes is not None and n_r > 2:
        curvature = jnp.diff(slopes, axis=-1)
        out["smoothness"] = cfg.smoothness_weight * scale * _weighted_mean(jnp.square(curvature), sample_weight)

    if needs_mass_derivative(layout, cfg):
        if mass_slope is None:
            raise ConfigError(
                "loss.physics.mass_scaling_weight > 0 needs the mean's derivative with respect to log10 M."
            )
        fields = np.asarray(_select(layout, cfg.mass_scaling_slopes))
        dlogy_dlogm = (tscale * mass_slope).reshape(n, n_fields, n_r)
        declared = jnp.asarray([cfg.mass_scaling_slopes[layout.field_names[i]] for i in fields], dtype)
        expected = jnp.broadcast_to(declared[None, :, None], (n, fields.size, n_r))
        if layout.self_similar == "physical" and slopes is not None:
            # y / y_Δ = g(r / R_Δ) with R_Δ ∝ M^(1/3): at fixed physical radius the normalised
            # profile moves with mass by -1/3 of its own radial log-slope
            radial = _slope_at_bins(slopes[:, fields])
            expected = expected - jax.lax.stop_gradient(radial) / 3.0
        dev = dlogy_dlogm[:, fields] - expected
        penalty = _hinge_sq(dev, cfg.mass_scaling_tolerance)
        out["mass_scaling"] = cfg.mass_scaling_weight * scale * _weighted_mean(penalty, sample_weight)

    if cfg.boundary_weight > 0 and slopes is not None:
        fields = _select(layout, cfg.boundary_slopes)
        if fields:
            declared = jnp.asarray([cfg.boundary_slopes[layout.field_names[i]] for i in fields], dtype)
            dev = slopes[:, np.asarray(fields), -1] - declared[None, :]
            penalty = _hinge_sq(dev, cfg.boundary_tolerance)
            out["boundary"] = cfg.boundary_weight * scale * _weighted_mean(penalty, sample_weight)
    return out
