"""Which parameters move the profiles: d log10 profile / d parameter, per field and radius.

:func:`sensitivity` differentiates the emulator's mean prediction (``jax.jacfwd`` of
:attr:`~profemu.emulator.Emulator.predict_fn`) with respect to every parameter ``theta``
in its **sampling space** (log10 for log-sampled parameters, the value itself otherwise),
so that the derivatives of parameters sampled in log and in linear are comparable:
``d log10 y / d theta`` is the change of log10 profile [dex] per unit of ``theta`` (per dex
for log parameters).

* ``at="centre"``: at the centre of the training box (in sampling space);
* ``at="box"``: averaged over a scrambled Sobol sample of ``n_points`` points of the box.

Either way the derivative is averaged over a grid of halo masses (midpoints of equal
slices of the training range of ``log10_mass``; mass is not a parameter of a simulation).

The scalar **importance** of a parameter is ``width * sqrt(mean over fields, radii,
points and masses of (d log10 y / d theta)^2)``, with ``width`` the box width in sampling
space: the RMS change of log10 profile [dex] across the prior, to first order. It says
which parameters the data can constrain (a parameter that moves no profile by more than
the noise cannot be measured from them).

JAX is imported inside :func:`sensitivity` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from profemu.design.space import (
    _extra_inputs,
    _mass_grid,
    _positive_int,
    candidate_points,
    design_space,
)
from profemu.errors import ConfigError

__all__ = ["Sensitivity", "sensitivity", "top_parameters"]

logger = logging.getLogger("profemu.design.derivatives")


@dataclass(frozen=True)
class Sensitivity:
    """Derivatives of log10 profiles with respect to the parameters in sampling space.

    Attributes:
        param_names: Parameter names, column order of the last axis.
        log_params: Parameters whose sampling space is log10.
        field_names: Fields (first axis).
        radius: [n_r] radii [``radius_unit``] (second axis).
        radius_unit: Unit of ``radius``.
        gradient: [F, n_r, p] mean of ``d log10 y / d theta`` over the points and masses
            [dex per unit theta; per dex for log parameters].
        gradient_rms: [F, n_r, p] root mean square of the same over the points and masses.
        width: [p] widths of the training box in sampling space.
        importance: [p] ``width * sqrt(mean over fields and radii of gradient_rms^2)``
            [dex]: the RMS change of log10 profile across the prior.
        at: ``"centre"`` or ``"box"``.
        n_points: Points of the box averaged over (1 at the centre).
        log10_mass: The mass grid averaged over [log10 Msun].
    """

    param_names: tuple[str, ...]
    log_params: tuple[str, ...]
    field_names: tuple[str, ...]
    radius: np.ndarray
    radius_unit: str
    gradient: np.ndarray
    gradient_rms: np.ndarray
    width: np.ndarray
    importance: np.ndarray
    at: str
    n_points: int
    log10_mass: np.ndarray

    def ranked(self) -> list[tuple[str, float]]:
        """``(name, importance)`` pairs, most important first."""
        order = np.argsort(-self.importance, kind="stable")
        return [(self.param_names[j], float(self.importance[j])) for j in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe representation."""
        return {
            "param_names": list(self.param_names),
            "log_params": list(self.log_params),
            "field_names": list(self.field_names),
            "radius": self.radius.tolist(),
            "radius_unit": self.radius_unit,
            "gradient": self.gradient.tolist(),
            "gradient_rms": self.gradient_rms.tolist(),
            "width": self.width.tolist(),
            "importance": self.importance.tolist(),
            "at": self.at,
            "n_points": self.n_points,
            "log10_mass": self.log10_mass.tolist(),
        }


def _centre_pk(emulator: Any, pk_ratio: Any) -> np.ndarray | None:
    """The P(k) suppression held fixed: the given one, or the centre of the training box."""
    k = getattr(emulator.transforms, "k", None)
    if k is None:
        if pk_ratio is not None:
            raise ConfigError("pk_ratio: this emulator was trained without P(k); do not pass pk_ratio.")
        return None
    if pk_ratio is None:
        lo, hi = emulator.training_box["pk_ratio"]
        return 0.5 * (np.asarray(lo, dtype=np.float64) + np.asarray(hi, dtype=np.float64))
    pk = np.asarray(pk_ratio, dtype=np.float64).reshape(-1)
    if pk.shape != (len(k),) or not np.isfinite(pk).all():
        raise ConfigError(f"pk_ratio: expected {len(k)} finite values, got shape {np.shape(pk_ratio)}.")
    return pk


def sensitivity(
    emulator: Any,
    *,
    at: Literal["centre", "box"] = "centre",
    n_points: int = 64,
    seed: int = 0,
    log10_mass: Sequence[float] | None = None,
    mass_points: int = 3,
    pk_ratio: Any = None,
    redshift: float | None = None,
) -> Sensitivity:
    """``d log10 profile / d theta`` per field, radius and parameter (see the module docstring).

    Args:
        emulator: A trained :class:`~profemu.emulator.Emulator`.
        at: ``"centre"`` of the training box or averaged over the ``"box"``.
        n_points: Sobol points of the box for ``at="box"``.
        seed: Seed of the Sobol scrambling.
        log10_mass: Explicit mass grid [log10 Msun] (default: ``mass_points`` midpoints
            of equal slices of the training range).
        mass_points: Size of the default mass grid.
        pk_ratio: P(k) suppression [n_k] held fixed, for emulators with P(k) (default:
            the centre of its training box).
        redshift: Redshift (default: the training redshift when it is a single value).

    Returns:
        The :class:`Sensitivity`.

    Raises:
        ConfigError: an invalid ``at``, ``n_points``, mass grid, ``pk_ratio`` or ``redshift``.
    """
    import jax
    import jax.numpy as jnp


    t0 = time.perf_counter()
    if at not in ("centre", "box"):
        raise ConfigError(f"at: {at!r} is not allowed; choose 'centre' or 'box'.")
    space = design_space(emulator)
    masses = _mass_grid(emulator, log10_mass, mass_points)
    pk = _centre_pk(emulator, pk_ratio)
    _, z = _extra_inputs(emulator, None, None if pk is None else pk, redshift)
    if at == "centre":
        theta = 0.5 * (space.theta_lo + space.theta_hi)[None, :]
    else:
        n_points = _positive_int("n_points", n_points)
        theta = space.to_theta(candidate_points(space, n_points, seed=seed))
    n_pts = theta.shape[0]
    rows_theta = np.repeat(theta, masses.size, axis=0)
    rows_mass = np.tile(masses, n_pts)

    f = emulator.predict_fn
    is_log = jnp.asarray(space.is_log)
    pk_j = None if pk is None else jnp.asarray(pk)

    def log10_mean(th: Any, m: Any) -> Any:
        x = jnp.where(is_log, 10.0 ** jnp.where(is_log, th, 0.0), th)
        mean, _ = f(x, m, pk_j, z)
        return mean  # [F, n_r]

    jac = jax.jit(jax.vmap(jax.jacfwd(log10_mean), in_axes=(0, 0)))
    grads = np.asarray(jac(jnp.asarray(rows_theta), jnp.asarray(rows_mass)), dtype=np.float64)  # [R, F, n_r, p]
    gradient = grads.mean(axis=0)
    gradient_rms = np.sqrt((grads**2).mean(axis=0))
    width = space.width
    importance = width * np.sqrt((gradient_rms**2).mean(axis=(0, 1)))
    logger.info(
        "sensitivity at the %s: %d point(s) x %d masses, %d parameters in %.1f s",
        at, n_pts, masses.size, len(space.names), time.perf_counter() - t0,
    )
    return Sensitivity(
        param_names=space.names,
        log_params=tuple(nm for nm, lg in zip(space.names, space.is_log, strict=True) if lg),
        field_names=tuple(emulator.field_names),
        radius=np.asarray(emulator.radius, dtype=np.float64),
        radius_unit=str(emulator.radius_unit),
        gradient=gradient,
        gradient_rms=gradient_rms,
        width=width,
        importance=importance,
        at=at,
        n_points=int(n_pts),
        log10_mass=masses,
    )


def top_parameters(sens: Sensitivity, k: int = 2, *, among: Sequence[str] | None = None) -> tuple[str, ...]:
    """The ``k`` most important parameters (by :attr:`Sensitivity.importance`).

    Args:
        sens: From :func:`sensitivity`.
        k: How many (>= 1; at most the number of candidates).
        among: Restrict to these names (e.g. the free parameters of a design).

    Raises:
        ConfigError: ``k`` out of range or unknown names in ``among``.
    """
    names = list(sens.param_names) if among is None else list(among)
    bad = [nm for nm in names if nm not in sens.param_names]
    if bad:
        raise ConfigError(f"among: {bad} are not parameters; choose from {list(sens.param_names)}.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(names):
        raise ConfigError(f"k: expected an integer in [1, {len(names)}], got {k!r}.")
    imp = {nm: float(sens.importance[sens.param_names.index(nm)]) for nm in names}
    return tuple(sorted(names, key=lambda nm: -imp[nm])[:k])
