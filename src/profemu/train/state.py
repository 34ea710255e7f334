"""The one state of a training run, :class:`TrainState`, and its pure per-epoch update.

Every leaf of a :class:`TrainState` has a leading member axis ``M``: the ensemble
trains as one pytree. A checkpoint is this state flattened to named arrays, and
restoring one is a single call (see :mod:`profemu.train.checkpoint`).

:func:`end_of_epoch` is the whole bookkeeping of an epoch as a pure function, per
member and vectorised: roll back a member whose epoch failed (non-finite steps) to its
last good parameters with half the learning rate, or stop it after
``train.max_rollbacks``; keep the best parameters by validation loss; early stopping
after ``train.patience`` epochs without improvement; reduce-on-plateau.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from profemu.config import OptimConfig, TrainConfig

__all__ = ["STOP_REASONS", "TrainState", "bad_epoch", "end_of_epoch", "rollback", "where_members"]

#: Codes of ``TrainState.stop_code``.
STOP_REASONS: tuple[str, ...] = ("", "early_stopping", "max_rollbacks")


class TrainState(NamedTuple):
    """Parameters, optimiser state and bookkeeping of ``M`` members (leading axis ``M``).

    Attributes:
        params: Current parameters.
        opt_state: Optimiser state.
        key: Per-member PRNG key of data order and dropout.
        lr_mult: Learning-rate multiplier (halved on rollback, reduced on plateau).
        failures: Consecutive non-finite steps.
        good_params / good_opt_state: State at the end of the last finite epoch.
        best_params: Parameters of the best validation loss so far.
        best_val: Best validation data loss (``inf`` until a finite one).
        best_epoch: Epoch of ``best_val`` (-1 = the initial parameters).
        wait: Epochs without improvement (early stopping).
        plateau_wait: Epochs without improvement since the last plateau reduction.
        stopped: Member no longer trains.
        stop_code: Index into :data:`STOP_REASONS`.
        rollbacks: Rollbacks so far.
        skipped: Skipped (non-finite) steps so far.
        val_failures: Epochs whose validation had non-finite predictions.
    """

    params: Any
    opt_state: Any
    key: Any
    lr_mult: Any
    failures: Any
    good_params: Any
    good_opt_state: Any
    best_params: Any
    best_val: Any
    best_epoch: Any
    wait: Any
    plateau_wait: Any
    stopped: Any
    stop_code: Any
    rollbacks: Any
    skipped: Any
    val_failures: Any

    @classmethod
    def start(cls, params: Any, opt_state: Any, key: Any, best_val: Any) -> TrainState:
        """The state before the first epoch (stacked members; ``best_val`` of the initial params)."""
        members = best_val.shape[0]
        zeros = jnp.zeros(members, jnp.int32)
        return cls(
            params=params, opt_state=opt_state, key=key, lr_mult=jnp.ones(members, jnp.float32),
            failures=zeros, good_params=params, good_opt_state=opt_state, best_params=params,
            best_val=best_val, best_epoch=zeros - 1, wait=zeros, plateau_wait=zeros,
            stopped=jnp.zeros(members, bool), stop_code=zeros, rollbacks=zeros, skipped=zeros,
            val_failures=zeros,
        )


def where_members(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per-member select on stacked pytrees: ``new`` where ``mask[m]`` else ``old``."""

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def end_of_epoch(
    state: TrainState,
    epoch_stats: dict[str, jax.Array],
    val_loss: jax.Array,
    val_ok: jax.Array,
    epoch: jax.Array,
    train_cfg: TrainConfig,
    optim_cfg: OptimConfig,
    patience: jax.Array | None = None,
) -> TrainState:
    """The bookkeeping after one epoch (pure; ``jit``-able).

    Args:
        state: The state after the epoch's steps.
        epoch_stats: Per member ``tripped``, ``n_ok`` (finite steps), ``n_failed``,
            ``failures`` and ``param_norm`` of the epoch.
        val_loss: Per member validation data loss of ``state.params`` after any
            rollback (see :func:`rollback`).
        val_ok: Per member: every validation prediction finite.
        epoch: The epoch index (0-based).
        train_cfg: ``max_rollbacks``, ``patience``.
        optim_cfg: ``plateau_patience``, ``plateau_factor``.
        patience: Early-stopping patience [epochs] as a traced scalar (0 = off), used
            instead of ``train_cfg.patience`` (so fits that differ only in it, e.g. the
            cross-validation folds and their refit, share one compiled epoch).

    Returns:
        The state for the next epoch.
    """
    active = ~state.stopped
    bad = bad_epoch(state, epoch_stats)
    good = active & ~bad
    give_up = bad & (state.rollbacks >= train_cfg.max_rollbacks)
    roll = bad & ~give_up
    rollbacks = state.rollbacks + roll.astype(jnp.int32)
    lr_mult = jnp.where(roll, state.lr_mult * 0.5, state.lr_mult)
    stopped = state.stopped | give_up
    stop_code = jnp.where(give_up, STOP_REASONS.index("max_rollbacks"), state.stop_code)
    failures = jnp.where(bad, 0, epoch_stats["failures"])
    good_params = where_members(good, state.params, state.good_params)
    good_opt_state = where_members(good, state.opt_state, state.good_opt_state)

    improved = good & val_ok & jnp.isfinite(val_loss) & (val_loss < state.best_val)
    best_params = where_members(improved, state.params, state.best_params)
    best_val = jnp.where(improved, val_loss, state.best_val)
    best_epoch = jnp.where(improved, epoch, state.best_epoch)
    waiting = active & ~improved
    wait = jnp.where(improved, 0, jnp.where(waiting, state.wait + 1, state.wait))
    plateau_wait = state.plateau_wait
    if optim_cfg.plateau_patience > 0:
        plateau_wait = jnp.where(improved, 0, jnp.where(waiting, plateau_wait + 1, plateau_wait))
        hit = plateau_wait >= optim_cfg.plateau_patience
        lr_mult = jnp.where(hit, lr_mult * optim_cfg.plateau_factor, lr_mult)
        plateau_wait = jnp.where(hit, 0, plateau_wait)
    if patience is not None:
        patience_out = active & ~stopped & (patience > 0) & (wait >= patience)
        stop_code = jnp.where(patience_out, STOP_REASONS.index("early_stopping"), stop_code)
        stopped = stopped | patience_out
    elif train_cfg.patience > 0:
        patience_out = active & ~stopped & (wait >= train_cfg.patience)
        stop_code = jnp.where(patience_out, STOP_REASONS.index("early_stopping"), stop_code)
        stopped = stopped | patience_out
    return state._replace(
        lr_mult=lr_mult.astype(jnp.float32), failures=failures.astype(jnp.int32), good_params=good_params,
        good_opt_state=good_opt_state, best_params=best_params, best_val=best_val,
        best_epoch=best_epoch.astype(jnp.int32), wait=wait.astype(jnp.int32),
        plateau_wait=plateau_wait.astype(jnp.int32), stopped=stopped, stop_code=stop_code.astype(jnp.int32),
        rollbacks=rollbacks, skipped=state.skipped + epoch_stats["n_failed"].astype(jnp.int32),
        val_failures=state.val_failures + (active & ~val_ok).astype(jnp.int32),
    )


def bad_epoch(state: TrainState, epoch_stats: dict[str, jax.Array]) -> jax.Array:
    """Per member: an active member whose epoch tripped, had no finite step or ended non-finite."""
    return ~state.stopped & (
        epoch_stats["tripped"] | (epoch_stats["n_ok"] == 0) | ~jnp.isfinite(epoch_stats["param_norm"])
    )


def rollback(state: TrainState, epoch_stats: dict[str, jax.Array]) -> TrainState:
    """Members with a bad epoch go back to their last good parameters and optimiser state."""
    bad = bad_epoch(state, epoch_stats)
    return state._replace(
        params=where_members(bad, state.good_params, state.params),
        opt_state=where_members(bad, state.good_opt_state, state.opt_state),
    )
