"""The optimiser: ``clip_by_global_norm`` + ``adamw`` on a warm-up + decay schedule.

The learning rate is injected with :func:`optax.inject_hyperparams`, so the value
used at the last step can be read back from the optimiser state
(:func:`current_learning_rate`). Rollbacks and reduce-on-plateau do not touch the
schedule: the training loop multiplies the updates by a per-member learning-rate
multiplier that it carries in its state (AdamW updates are linear in the learning
rate, so this is exactly a scaled learning rate), which keeps everything
``vmap``-friendly.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from profemu.config import OptimConfig
from profemu.errors import ConfigError

__all__ = ["current_learning_rate", "make_optimizer", "make_schedule"]


def make_schedule(cfg: OptimConfig, steps_per_epoch: int, total_epochs: int) -> optax.Schedule:
    """Learning rate as a function of the optimiser step.

    Linear warm-up from 0 over ``cfg.warmup_epochs`` epochs to ``cfg.learning_rate``,
    then ``cosine`` decay to ``end_lr_fraction * learning_rate`` at ``total_epochs``,
    ``exponential`` decay by ``decay_rate`` per epoch, or ``constant``.

    Args:
        cfg: Optimiser configuration.
        steps_per_epoch: Minibatches per epoch (>= 1).
        total_epochs: Planned number of epochs (>= 1).
    """
    if steps_per_epoch < 1 or total_epochs < 1:
        raise ConfigError(
            f"make_schedule: steps_per_epoch ({steps_per_epoch}) and total_epochs ({total_epochs}) "
            "must be >= 1; check train.batch_size and train.epochs."
        )
    peak = float(cfg.learning_rate)
    warmup = int(cfg.warmup_epochs) * steps_per_epoch
    total = total_epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=peak,
            warmup_steps=warmup,
            decay_steps=max(total, warmup + 1),
            end_value=peak * cfg.end_lr_fraction,
        )
    if cfg.schedule == "exponential":
        return optax.warmup_exponential_decay_schedule(
            init_value=0.0,
            peak_value=peak,
            warmup_steps=warmup,
            transition_steps=steps_per_epoch,
            decay_rate=cfg.decay_rate,
        )
    if cfg.schedule == "constant":
        if warmup == 0:
            return optax.constant_schedule(peak)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup]
        )
    raise ConfigError(
        f"optim.schedule: {cfg.schedule!r} is not known; choose 'cosine', 'exponential' or 'constant'."
    )


def make_optimizer(
    cfg: OptimConfig, steps_per_epoch: int, total_epochs: int, *, real_steps: Any = None
) -> optax.GradientTransformation:
    """``optax.chain(clip_by_global_norm(clip_norm), inject_hyperparams(adamw)(schedule, wd))``.

    Args:
        cfg: Optimiser configuration.
        steps_per_epoch: Minibatches per epoch.
        total_epochs: Planned number of epochs (sets the length of the cosine decay).
        real_steps: Minibatches per epoch that really step (may be a traced scalar), when
            the epoch runs ``steps_per_epoch`` slots of which the last ones hold padding
            only (fits of one run sharing one compiled epoch): the schedule then follows
            ``real_steps`` steps per epoch (the step count is rescaled by
            ``steps_per_epoch / real_steps``; exact when they are equal). None: equal.
    """
    base = make_schedule(cfg, steps_per_epoch, total_epochs)
    schedule = base
    if real_steps is not None:
        def schedule(count: Any) -> Any:
            return base(count * steps_per_epoch / real_steps)

    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=cfg.weight_decay),
    )


def current_learning_rate(opt_state: optax.OptState) -> jax.Array:
    """Learning rate of the last step, read from a state of :func:`make_optimizer`.

    Works on stacked (ensemble) states too: returns the leading axes of the state.
    """
    for part in opt_state:
        hyper = getattr(part, "hyperparams", None)
        if hyper is not None and "learning_rate" in hyper:
            return jnp.asarray(hyper["learning_rate"])
    raise ValueError("current_learning_rate: the state does not come from make_optimizer.")
