"""Curriculum: the physics-loss multiplier and the dropout switch as functions of the epoch.

The loop passes both values into its compiled epoch function as traced scalars,
so changing phase never triggers a recompilation.
"""

from __future__ import annotations

from collections.abc import Sequence

from profemu.config import Phase

__all__ = ["curriculum_at"]


def curriculum_at(phases: Sequence[Phase], epoch: int) -> tuple[float, bool]:
    """Physics multiplier and dropout switch at ``epoch`` (0-based).

    Rules: no phases = ``(1.0, True)`` (physics and dropout on from the start).
    Before the first phase starts, physics is off (0.0) and dropout follows the
    first phase. Inside a phase with ``ramp_epochs = R > 0`` the multiplier moves
    linearly from the previous phase's value (0.0 before the first phase) at
    ``start_epoch`` to its own ``physics_scale`` at ``start_epoch + R``.

    Args:
        phases: Phases in increasing ``start_epoch``.
        epoch: Epoch index (0-based).

    Returns:
        ``(physics_scale, dropout_on)``.
    """
    if not phases:
        return 1.0, True
    previous = 0.0
    current: Phase | None = None
    for phase in phases:
        if phase.start_epoch > epoch:
            break
        if current is not None:
            previous = current.physics_scale
        current = phase
    if current is None:
        return 0.0, bool(phases[0].dropout)
    target = float(current.physics_scale)
    if current.ramp_epochs > 0:
        frac = min(1.0, (epoch - current.start_epoch) / current.ramp_epochs)
        return float(previous + (target - previous) * frac), bool(current.dropout)
    return target, bool(current.dropout)
