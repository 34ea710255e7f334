"""Tests of the optimiser factory and schedules."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from profemu.config import OptimConfig
from profemu.errors import ConfigError
from profemu.train.optim import current_learning_rate, make_optimizer, make_schedule


def test_cosine_schedule_warms_up_and_decays_to_end_fraction() -> None:
    cfg = OptimConfig(learning_rate=1e-2, warmup_epochs=2, schedule="cosine", end_lr_fraction=0.1)
    sched = make_schedule(cfg, steps_per_epoch=5, total_epochs=10)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(5e-3)
    assert float(sched(10)) == pytest.approx(1e-2)
    assert float(sched(50)) == pytest.approx(1e-3)
    assert float(sched(30)) < float(sched(20))


def test_exponential_and_constant_schedules() -> None:
    exp = make_schedule(OptimConfig(learning_rate=1.0, warmup_epochs=1, schedule="exponential", decay_rate=0.5), 4, 10)
    assert float(exp(4)) == pytest.approx(1.0)
    assert float(exp(8)) == pytest.approx(0.5)
    const = make_schedule(OptimConfig(learning_rate=0.3, warmup_epochs=1, schedule="constant"), 4, 10)
    assert float(const(2)) == pytest.approx(0.15)
    assert float(const(400)) == pytest.approx(0.3)
    flat = make_schedule(OptimConfig(learning_rate=0.3, warmup_epochs=0, schedule="constant"), 4, 10)
    assert float(flat(0)) == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        make_schedule(OptimConfig(), 0, 10)


def test_optimizer_clips_and_reports_learning_rate() -> None:
    cfg = OptimConfig(learning_rate=0.1, warmup_epochs=0, schedule="constant", clip_norm=1.0, weight_decay=0.0)
    opt = make_optimizer(cfg, steps_per_epoch=3, total_epochs=2)
    params = {"w": jnp.zeros(4)}
    state = opt.init(params)
    grads = {"w": jnp.array([100.0, 0.0, 0.0, 0.0])}
    updates, state = opt.update(grads, state, params)
    # Adam normalises the clipped gradient: the first step is -lr * sign(g) where g != 0
    np.testing.assert_allclose(updates["w"], [-0.1, 0, 0, 0], atol=1e-6)
    assert float(current_learning_rate(state)) == pytest.approx(0.1)
    assert float(optax.tree.norm(grads)) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="make_optimizer"):
        current_learning_rate(optax.sgd(0.1).init(params))
