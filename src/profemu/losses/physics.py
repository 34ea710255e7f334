"""Soft physics penalties on the predicted mean profile, per field, on the radial grid.

The penalties act on ``log10 y = target_center + target_scale * mean_std`` as a
function of ``log10 r`` (and of ``log10 M`` for the mass scaling):

* ``monotonic`` — hinge on positive slopes ``d log10 y / d log10 r`` for the fields
  declared decreasing (``loss.physics.monotonic_fields``, never temperature by
  default), only inside ``loss.physics.monotonic_window``;
* ``smoothness`` — squared differences of consecutive slopes (second differences
  in log r; zero for a power law);
* ``mass_scaling`` — squared hinge on ``|d log10 y / d log10 M − slope| − tolerance``
  for fields with a declared slope (needs the derivative of the mean with respect
  to the normalised mass input, see :func:`needs_mass_derivative`);
* ``boundary`` — squared hinge on ``|outer slope − declared slope| − tolerance``.

Each component is multiplied by its weight and by ``scale`` (the curriculum
multiplier). A component with weight 0 is not traced at all and reported as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from profemu.config import PhysicsLossConfig
from profemu.errors import ConfigError, DataError

__all__ = [
    "PHYSICS_COMPONENTS",
    "PhysicsContext",
    "needs_mass_derivative",
    "physics_losses",
]

PHYSICS_COMPONENTS: tuple[str, ...] = ("monotonic", "smoothness", "mass_scaling", "boundary")
"""Names of the physics components, in the order they are reported."""


@dataclass(frozen=True, eq=False)
class PhysicsContext:
    """What the physics penalties need to know about the output layout.

    Attributes:
        field_names: Names of the ``F`` fields, in output order (output ``f * n_r + i``
            is field ``f`` at radius ``i``).
        n_r: Number of radii per field.
        log10_radius: log10 of the radial bin centres [n_r], strictly increasing.
        target_center: Centre of the standardised targets [D] (log10 units).
        target_scale: Scale of the standardised targets [D] (log10 units).
        mass_scale: d(normalised mass input) / d log10 M.
        radius: Radii [n_r] used to apply ``monotonic_window`` (in the dataset's radius
            unit); defaults to ``10 ** log10_radius``.
    """

    field_names: tuple[str, ...]
    n_r: int
    log10_radius: np.ndarray
    target_center: np.ndarray
    target_scale: np.ndarray
    mass_scale: float = 1.0
    radius: np.ndarray | None = None

    def _key(self) -> tuple[Any, ...]:
        arrays = (self.log10_radius, self.target_center, self.target_scale, self.radius)
        return (self.field_names, self.n_r, float(self.mass_scale),
                *(None if a is None else np.asarray(a, np.float64).tobytes() for a in arrays))

    def __eq__(self, other: object) -> bool:
        # Value equality: equal constants give identical traced programs (compile cache hits).
        return isinstance(other, PhysicsContext) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", tuple(self.field_names))
        lr = np.asarray(self.log10_radius, dtype=np.float64).reshape(-1)
        if lr.size != self.n_r:
            raise DataError(f"PhysicsContext.log10_radius: has {lr.size} entries, expected n_r={self.n_r}.")
        if self.n_r > 1 and not np.all(np.diff(lr) > 0):
            raise DataError("PhysicsContext.log10_radius: must be strictly increasing.")
        d = len(self.field_names) * self.n_r
        center = np.asarray(self.target_center, dtype=np.float64).reshape(-1)
        scale = np.asarray(self.target_scale, dtype=np.float64).reshape(-1)
        if center.size != d or scale.size != d:
            raise DataError(
                f"PhysicsContext.target_center/target_scale: need D = F * n_r = {d} entries, "
                f"got {center.size} and {scale.size}."
            )
        radius = 10.0**lr if self.radius is None else np.asarray(self.radius, dtype=np.float64).reshape(-1)
        if radius.size != self.n_r:
            raise DataError(f"PhysicsContext.radius: has {radius.size} entries, expected n_r={self.n_r}.")
        for name, value in (("log10_radius", lr), ("target_center", center), ("target_scale", scale),
                            ("radius", radius)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "mass_scale", float(self.mass_scale))

    @property
    def n_fields(self) -> int:
        """Number of fields ``F``."""
        return len(self.field_names)

    @classmethod
    def from_transforms(cls, transforms: Any, radius: Sequence[float] | None = None) -> PhysicsContext:
        """Build from a fitted ``profemu.data.transforms.Transforms`` (duck-typed)."""
        return cls(
            field_names=tuple(transforms.field_names),
            n_r=int(transforms.n_r),
            log10_radius=np.asarray(transforms.log10_radius),
            target_center=np.asarray(transforms.target_center),
            target_scale=np.asarray(transforms.target_scale),
            mass_scale=float(transforms.mass_scale),
            radius=None if radius is None else np.asarray(radius),
        )


def needs_mass_derivative(ctx: PhysicsContext | None, cfg: PhysicsLossConfig) -> bool:
    """Whether the mass-scaling term is active (weight > 0 and a declared field exists).

    The training loop only traces the ``jax.jvp`` with respect to the mass input
    when this is True.
    """
    if ctx is None or cfg.mass_scaling_weight <= 0:
        return False
    return any(name in ctx.field_names for name in cfg.mass_scaling_slopes)


def _weighted_mean(values: jax.Array, sample_weight: jax.Array | None) -> jax.Array:
    """Mean over everything, with per-sample weights along axis 0."""
    per_sample = jnp.mean(values.reshape(values.shape[0], -1), axis=1)
    if sample_weight is None:
        return jnp.mean(per_sample)
    w = jnp.asarray(sample_weight, per_sample.dtype)
    # select rather than multiply, so a zero-weight row holding NaN/inf (0 * inf) cannot leak in
    total = jnp.sum(jnp.where(w > 0, w * per_sample, 0.0))
    return total / jnp.maximum(jnp.sum(w), jnp.finfo(per_sample.dtype).tiny)


def _select(ctx: PhysicsContext, names: Sequence[str] | dict[str, float]) -> list[int]:
    return [i for i, f in enumerate(ctx.field_names) if f in names]


def _hinge_sq(deviation: jax.Array, tolerance: float) -> jax.Array:
    return jnp.square(jax.nn.relu(jnp.abs(deviation) - tolerance))


def physics_losses(
    mean_std: jax.Array,
    ctx: PhysicsContext,
    cfg: PhysicsLossConfig,
    *,
    dmean_dmass_std: jax.Array | None = None,
    scale: float | jax.Array = 1.0,
    sample_weight: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Weighted physics components of the predicted mean.

    Args:
        mean_std: Predicted mean [n, D] in standardised log10 units.
        ctx: Output layout and target scaling.
        cfg: Weights, fields, window, slopes and tolerances.
        dmean_dmass_std: d mean_std / d(normalised mass input) [n, D]; required when
            :func:`needs_mass_derivative` is True.
        scale: Curriculum multiplier of every weight (may be traced).
        sample_weight: Optional per-sample weights [n] (e.g. 0 for padding rows).

    Returns:
        ``{"monotonic", "smoothness", "mass_scaling", "boundary"}`` -> scalar, each
        already multiplied by its weight and ``scale``.
    """
    n = mean_std.shape[0]
    dtype = mean_std.dtype if jnp.issubdtype(mean_std.dtype, jnp.floating) else jnp.float32
    zero = jnp.zeros((), dtype)
    out = dict.fromkeys(PHYSICS_COMPONENTS, zero)
    if mean_std.shape[-1] != ctx.n_fields * ctx.n_r:
        raise DataError(
            f"physics_losses: mean has {mean_std.shape[-1]} outputs but the context describes "
            f"{ctx.n_fields} fields x {ctx.n_r} radii; decode PCA outputs before the physics losses."
        )
    center = jnp.asarray(ctx.target_center, dtype)
    tscale = jnp.asarray(ctx.target_scale, dtype)
    log10_y = (center + tscale * mean_std).reshape(n, ctx.n_fields, ctx.n_r)
    dlogr = jnp.asarray(np.diff(ctx.log10_radius), dtype)
    slopes = jnp.diff(log10_y, axis=-1) / dlogr if ctx.n_r > 1 else None  # [n, F, n_r-1]

    if cfg.monotonic_weight > 0 and slopes is not None:
        fields = _select(ctx, cfg.monotonic_fields)
        if cfg.monotonic_window is None:
            intervals = np.ones(ctx.n_r - 1, dtype=bool)
        else:
            lo, hi = cfg.monotonic_window
            inside = (ctx.radius >= lo) & (ctx.radius <= hi)
            intervals = inside[:-1] & inside[1:]
        if fields and intervals.any():
            s = slopes[:, np.asarray(fields)][:, :, np.flatnonzero(intervals)]
            out["monotonic"] = cfg.monotonic_weight * scale * _weighted_mean(jax.nn.relu(s), sample_weight)

    if cfg.smoothness_weight > 0 and slopes is not None and ctx.n_r > 2:
        curvature = jnp.diff(slopes, axis=-1)
        out["smoothness"] = cfg.smoothness_weight * scale * _weighted_mean(jnp.square(curvature), sample_weight)

    if needs_mass_derivative(ctx, cfg):
        if dmean_dmass_std is None:
            raise ConfigError(
                "loss.physics.mass_scaling_weight > 0 needs dmean_dmass_std (the derivative of the "
                "mean w.r.t. the normalised mass input); compute it with jax.jvp."
            )
        fields = _select(ctx, cfg.mass_scaling_slopes)
        dlogy_dlogm = (tscale * dmean_dmass_std * ctx.mass_scale).reshape(n, ctx.n_fields, ctx.n_r)
        declared = jnp.asarray([cfg.mass_scaling_slopes[ctx.field_names[i]] for i in fields], dtype)
        dev = dlogy_dlogm[:, np.asarray(fields)] - declared[None, :, None]
        penalty = _hinge_sq(dev, cfg.mass_scaling_tolerance)
        out["mass_scaling"] = cfg.mass_scaling_weight * scale * _weighted_mean(penalty, sample_weight)

    if cfg.boundary_weight > 0 and slopes is not None:
        fields = _select(ctx, cfg.boundary_slopes)
        if fields:
            declared = jnp.asarray([cfg.boundary_slopes[ctx.field_names[i]] for i in fields], dtype)
            dev = slopes[:, np.asarray(fields), -1] - declared[None, :]
            penalty = _hinge_sq(dev, cfg.boundary_tolerance)
            out["boundary"] = cfg.boundary_weight * scale * _weighted_mean(penalty, sample_weight)
    return out
