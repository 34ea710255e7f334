"""Tests of the curriculum schedule (the no-recompilation test lives in test_loop.py)."""

from __future__ import annotations

import pytest

from profemu.config import Phase
from profemu.train.curriculum import curriculum_at


def test_no_phases_means_everything_on() -> None:
    assert curriculum_at([], 0) == (1.0, True)
    assert curriculum_at([], 1000) == (1.0, True)


def test_phases_and_linear_ramps() -> None:
    phases = [
        Phase(start_epoch=2, physics_scale=0.0, dropout=False),
        Phase(start_epoch=5, physics_scale=1.0, dropout=True, ramp_epochs=4),
        Phase(start_epoch=20, physics_scale=3.0, dropout=False),
    ]
    assert curriculum_at(phases, 0) == (0.0, False)  # before the first phase: physics off
    assert curriculum_at(phases, 3) == (0.0, False)
    assert curriculum_at(phases, 5) == (0.0, True)
    assert curriculum_at(phases, 6)[0] == pytest.approx(0.25)
    assert curriculum_at(phases, 7)[0] == pytest.approx(0.5)
    assert curriculum_at(phases, 9) == (1.0, True)
    assert curriculum_at(phases, 19) == (1.0, True)
    assert curriculum_at(phases, 20) == (3.0, False)


def test_first_phase_ramps_from_zero() -> None:
    phases = [Phase(start_epoch=0, physics_scale=2.0, ramp_epochs=2)]
    assert [curriculum_at(phases, e)[0] for e in range(4)] == pytest.approx([0.0, 1.0, 2.0, 2.0])
