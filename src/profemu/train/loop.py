"""The training loop: one compiled call per epoch, ensemble members under ``vmap``, robust to NaNs.

:func:`fit` trains ``M`` ensemble members of a
:class:`~profemu.train.setup.TrainingProblem` together. Each epoch is a single
``jax.jit`` call that runs every member's minibatch steps (a ``lax.scan``; members
``vmap``-ed over stacked parameters, optimiser states and PRNG keys, so each has its
own initialisation *and* data order), the validation, and the bookkeeping of
:func:`profemu.train.state.end_of_epoch`; the host reads the epoch's metrics once, while
the next epoch already runs (it is dispatched first, and discarded if the fit stops).
The real rows come first in each epoch's random order and the last partial batch is
filled with zero-weight samples, so every sample counts exactly once per epoch;
minibatch slots that hold padding only are skipped (``lax.cond``).

Robustness:

* a step whose loss, gradient or update is non-finite is skipped (parameters and
  optimiser state unchanged) and counted;
* after ``train.max_consecutive_failures`` failed steps in a row, or an epoch
  without a finite step, the member rolls back to its last good state (end of its
  last finite epoch) and its learning-rate multiplier is halved; after
  ``train.max_rollbacks`` rollbacks it stops and keeps its best model;
* validation is always finite: rows with non-finite predictions are left out of
  the validation loss, reported (``val_failures`` in the history) and the epoch
  counts as not improving;
* early stopping per member on the validation data loss restores each member's
  best parameters; stopped members are frozen while the others continue.

The compiled functions take the network and the configuration as static (hashable)
arguments, so JAX's own cache reuses them across fits of the same set-up (another
seed, a resumed run). Curriculum values (physics multiplier, dropout on/off), the
patience, whether there are validation rows and the number of minibatches with real
rows are traced, and ``fit(pad_to=...)`` pads the arrays of fits with different row
counts to one shape: the K cross-validation folds and their refit run one compiled
epoch (:func:`profemu.train.builder.fold_rows`). ``FitResult.counters["compilations"]``
reports how many epoch programs were traced.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from profemu._files import flatten_tree, unflatten_tree
from profemu.config import Config
from profemu.data.transforms import decode_mean, decode_var
from profemu.errors import ConfigError, DataError
from profemu.losses.likelihood import data_loss
from profemu.losses.physics import (
    PHYSICS_COMPONENTS,
    needs_mass_derivative,
    physics_active,
    physics_losses,
)
from profemu.models.network import Network
from profemu.train.checkpoint import arrays_to_tree, load_latest, save_checkpoint, tree_to_arrays
from profemu.train.curriculum import curriculum_at
from profemu.train.optim import current_learning_rate, make_optimizer
from profemu.train.setup import TrainingProblem, as_pytree
from profemu.train.state import STOP_REASONS, TrainState, end_of_epoch, rollback

__all__ = ["EpochProgram", "FitResult", "fit", "objective_gradient", "shared_rows"]

logger = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], Any]
_COMPONENTS = ("data", *PHYSICS_COMPONENTS)
_TRACES: Counter[Any] = Counter()


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: Parameters of every member stacked on a leading axis ``M`` (each
            member's best parameters by validation loss).
        history: One dict per epoch (see :func:`fit`).
        counters: ``skipped_steps``, ``rollbacks``, ``val_failures`` (lists per member),
            ``epochs``, ``steps``, ``compilations``, ``stop_reason_members``.
        best_epoch: Per member, the 0-based epoch of its best validation loss (-1 = the
            initial parameters were never beaten).
        stopped_reason: ``"max_epochs"``, ``"early_stopping"``, ``"max_rollbacks"``,
            ``"all_members_stopped"``, ``"max_seconds"`` or ``"callback"``.
        best_val: Per member, its best validation data loss.
    """

    params: dict[str, Any]
    history: list[dict[str, Any]]
    counters: dict[str, Any]
    best_epoch: list[int]
    stopped_reason: str
    best_val: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class EpochProgram:
    """The static part of a training set-up: what the compiled epoch depends on (hashable).

    Attributes:
        network: Model configuration and output layout.
        config: The run configuration (loss, optimiser, loop, augmentation).
        batch: Minibatch size.
        steps: Minibatches per epoch; the training arrays hold ``batch * steps`` rows,
            the real ones and zero-weight padding (see :func:`padded_rows`).
    """

    network: Network
    config: Config
    batch: int
    steps: int

    @classmethod
    def for_rows(cls, network: Network, config: Config, n_train: int) -> EpochProgram:
        """The program for (up to) ``n_train`` real training rows.

        ``train.patience`` is a traced argument of the compiled epoch, not part of the
        program: the cross-validation folds (early stopping) and their refit (none) share it.
        """
        batch = min(config.train.batch_size, n_train)
        if config.train.patience:
            config = config.updated({"train.patience": 0})
        return cls(network, config, batch, padded_rows(n_train, batch) // batch)

    @property
    def n_train(self) -> int:
        """Rows of the (padded) training arrays."""
        return self.batch * self.steps

    def optimizer(self, real_steps: Any = None) -> optax.GradientTransformation:
        """The optimiser; its schedule follows ``real_steps`` stepping minibatches per epoch
        (a traced scalar; None = :attr:`steps`)."""
        return make_optimizer(self.config.optim, self.steps, self.config.train.epochs, real_steps=real_steps)


# ------------------------------------------------------------------ compiled pieces
def _forward(program: EpochProgram, params: Any, arrays: Any, inputs: Any, dkey: Any, dropout_on: Any,
             training: bool) -> tuple[Any, Any, Any]:
    """Decoded (mean, var, d mean / d log10 M or None), each [n, D]."""
    net, cfg = program.network, program.config
    has_dropout = training and cfg.model.dropout > 0

    def run(inp: Any) -> Any:
        if not has_dropout:
            return net.apply(params, arrays, inp, xp=jnp)
        return jax.lax.cond(
            dropout_on,
            lambda: net.apply(params, arrays, inp, xp=jnp, train=True, key=dkey),
            lambda: net.apply(params, arrays, inp, xp=jnp),
        )

    if not needs_mass_derivative(net.layout, cfg.loss.physics):
        out = run(inputs)
        return decode_mean(out.mean, arrays, jnp), decode_var(out.var, arrays, jnp), None
    if net.power_law:
        out = run(inputs)
        return out.mean, out.var, out.mass_slope

    def mean_var(log10_mass: Any) -> Any:
        out = run({**inputs, "log10_mass": log10_mass})
        return decode_mean(out.mean, arrays, jnp), decode_var(out.var, arrays, jnp)

    mass = inputs["log10_mass"]
    (mean, var), (dmean, _) = jax.jvp(mean_var, (mass,), (jnp.ones_like(mass),))
    return mean, var, dmean / arrays["log10_mass_scale"]  # per normalised unit -> per dex


def _terms(program: EpochProgram, mean: Any, var: Any, slope: Any, data: Any, weight: Any, arrays: Any,
           scale: Any) -> dict[str, Any]:
    cfg = program.config
    mask = data["mask"] * weight[:, None]
    terms = {"data": data_loss(mean, var, data["target"], mask, data["noise_var"], cfg.loss)}
    if physics_active(cfg.loss.physics):
        terms.update(physics_losses(mean, program.network.layout, arrays, cfg.loss.physics, mass_slope=slope,
                                    scale=scale, sample_weight=weight))
    else:
        terms.update({k: jnp.zeros((), jnp.float32) for k in PHYSICS_COMPONENTS})
    return terms


def _shuffled(perm_key: Any, weight: Any) -> Any:
    """A random order of the rows with the real ones (weight > 0) first [n].

    Each row draws its own uniform number from ``fold_in(perm_key, row)``, so the order of
    the real rows does not depend on how much padding follows them: a fit padded to a
    larger shape (to share a compiled epoch) sees exactly the batches of the unpadded fit.
    """
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(perm_key, i)))(jnp.arange(weight.shape[0]))
    return jnp.argsort(jnp.where(weight > 0, u, 2.0))


def _member_epoch(program: EpochProgram, st: TrainState, member: Any, row_weight: Any, real_steps: Any,
                  arrays: Any, train_data: Any, scale: Any, dropout_on: Any, epoch: Any,
                  max_steps: Any) -> tuple[TrainState, dict[str, Any]]:
    """One member's minibatch steps of one epoch (a ``lax.scan``).

    ``row_weight`` [n] selects the member's own training rows (1) among the shared arrays
    (0: another member's rows or padding); ``real_steps`` is its number of minibatches with
    real rows (its learning-rate schedule follows it). The slots after the first
    ``max_steps`` (the most over the members, a shared scalar) hold padding only and are
    skipped (``lax.cond``); a member's own all-padding minibatches before that make no step.
    """
    cfg = program.config
    batch, steps = program.batch, program.steps
    optimizer = program.optimizer(real_steps)
    augment = float(cfg.data.augment_noise)
    key, perm_key, drop_key = jax.random.split(st.key, 3)
    # real rows first in a random order, then the zero-weight padding: each real row once per epoch
    order = _shuffled(perm_key, row_weight).reshape(steps, batch)
    weights = row_weight[order]
    aug_base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(cfg.data.augment_seed), member), epoch)
    active = ~st.stopped

    # the steps run on one flat parameter vector (and flat optimiser moments): every
    # element-wise update is then one kernel instead of one per weight array, which
    # roughly halves the compiled program (and its compile time); the optimiser has no
    # per-array masks, so the steps are those of the structured parameters
    flat_params, unravel = ravel_pytree(st.params)
    treedef = jax.tree.structure(st.params)
    flat_opt_state = _map_param_trees(lambda tree: ravel_pytree(tree)[0], st.opt_state, treedef)

    def loss_fn(flat: Any, data: Any, weight: Any, dkey: Any, akey: Any) -> Any:
        params = unravel(flat)
        inputs = data["inputs"]
        if augment > 0:
            # the halo radius r_delta is a function of the other inputs, not a separate one to blur
            inputs = {name: value if name == "r_delta" else
                      value + augment * jax.random.normal(jax.random.fold_in(akey, i), value.shape, value.dtype)
                      for i, (name, value) in enumerate(sorted(inputs.items()))}
        mean, var, slope = _forward(program, params, arrays, inputs, dkey, dropout_on, True)
        terms = _terms(program, mean, var, slope, data, weight, arrays, scale)
        return sum(terms[k] for k in _COMPONENTS), terms

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    zero = jnp.zeros((), jnp.float32)
    acc0 = {k: zero for k in ("loss", *_COMPONENTS, "grad_norm", "update_norm")}
    none = jnp.zeros((), jnp.int32)
    carry0 = (flat_params, flat_opt_state, st.failures, jnp.zeros((), bool), acc0, none, none)

    def step(carry: Any, xs: Any) -> Any:
        return jax.lax.cond(xs[0] < max_steps, real_step, lambda c, _: c, carry, xs), None

    def real_step(carry: Any, xs: Any) -> Any:
        params, opt_state, failures, tripped, acc, n_ok, n_failed = carry
        i, idx, weight = xs
        data = jax.tree.map(lambda a: a[idx], train_data)
        (loss, terms), grads = grad_fn(params, data, weight, jax.random.fold_in(drop_key, i),
                                       jax.random.fold_in(aug_base, i))
        grad_norm = optax.tree.norm(grads)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: u * st.lr_mult, updates)
        update_norm = optax.tree.norm(updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(update_norm)
        attempt = active & ~tripped & (jnp.sum(weight) > 0)  # a batch of padding only is no step
        ok, failed = attempt & finite, attempt & ~finite
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), optax.apply_updates(params, updates), params)
        opt_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_opt_state, opt_state)
        failures = jnp.where(ok, 0, jnp.where(failed, failures + 1, failures))
        tripped = tripped | (failures >= cfg.train.max_consecutive_failures)
        values = {"loss": loss, **terms, "grad_norm": grad_norm, "update_norm": update_norm}
        acc = {k: acc[k] + jnp.where(ok, values[k].astype(jnp.float32), 0.0) for k in acc}
        return params, opt_state, failures, tripped, acc, n_ok + ok, n_failed + failed

    xs = (jnp.arange(steps), order, weights)
    flat_params, flat_opt_state, failures, tripped, acc, n_ok, n_failed = jax.lax.scan(step, carry0, xs)[0]
    params = unravel(flat_params)
    opt_state = jax.tree.map(lambda like, flat: unravel(flat) if _is_param_tree(like, treedef) else flat,
                             st.opt_state, flat_opt_state, is_leaf=lambda x: _is_param_tree(x, treedef))
    denom = jnp.maximum(n_ok, 1).astype(jnp.float32)
    stats = {k: jnp.where(n_ok > 0, v / denom, jnp.nan) for k, v in acc.items()}
    stats.update(n_ok=n_ok, n_failed=n_failed, tripped=tripped, failures=failures,
                 param_norm=optax.tree.norm(params),
                 learning_rate=current_learning_rate(opt_state) * st.lr_mult)
    return st._replace(params=params, opt_state=opt_state, key=key), stats


def _is_param_tree(node: Any, treedef: Any) -> bool:
    """Whether ``node`` has the structure of the parameters (an optimiser moment)."""
    return jax.tree.structure(node) == treedef


def _map_param_trees(fn: Callable[[Any], Any], opt_state: Any, treedef: Any) -> Any:
    """``opt_state`` with ``fn`` applied to each of its parameter-shaped subtrees."""
    return jax.tree.map(lambda node: fn(node) if _is_param_tree(node, treedef) else node, opt_state,
                        is_leaf=lambda x: _is_param_tree(x, treedef))


def _member_validate(program: EpochProgram, params: Any, val_index: Any, val_weight: Any, arrays: Any,
                     val_data: Any, scale: Any) -> Any:
    """Validation terms of one member on its rows ``val_data[val_index]`` (weights ``val_weight``,
    0 = padding) and its rows with non-finite predictions."""
    val_data = {**jax.tree.map(lambda a: a[val_index], val_data), "weight": val_weight}
    mean, var, slope = _forward(program, params, arrays, val_data["inputs"], None, False, False)
    good = jnp.all(jnp.isfinite(mean), axis=1) & jnp.all(jnp.isfinite(var), axis=1)
    if slope is not None:
        good = good & jnp.all(jnp.isfinite(slope), axis=1)
        slope = jnp.where(good[:, None], slope, 0.0)
    mean = jnp.where(good[:, None], mean, 0.0)
    var = jnp.where(good[:, None], var, 1.0)
    weight = good.astype(mean.dtype) * val_data["weight"]
    return _terms(program, mean, var, slope, val_data, weight, arrays, scale), ~good


@functools.partial(jax.jit, static_argnums=0)
def _start(program: EpochProgram, params: Any, keys: Any, arrays: Any, val_data: Any, members: Any,
           scale: Any, has_val: Any) -> Any:
    """Initial state of the members from their initial parameters and data-order keys [M, ...]
    (and the validation loss of the initial parameters; ``inf`` without validation rows,
    ``has_val`` False)."""
    opt_state = jax.vmap(lambda p, real_steps: program.optimizer(real_steps).init(p))(params, members["real_steps"])
    terms, bad = jax.vmap(lambda p, i, w: _member_validate(program, p, i, w, arrays, val_data, scale))(
        params, members["val_index"], members["val_weight"])
    best = jnp.where(bad.any(axis=1) | ~has_val, jnp.inf, terms["data"])
    return TrainState.start(params, opt_state, keys, best)


def _initial_members(network: Network, seed: int, member_ids: np.ndarray, arrays: Any) -> tuple[Any, np.ndarray]:
    """Each member's initial parameters (:meth:`~profemu.models.network.Network.init_host`,
    stacked [M, ...]) and its data-order key (``PRNGKey`` of a number drawn from
    ``default_rng([seed, member, 1])``, [M, 2]); both on the host, so the compiled
    programs hold no initialisation."""
    trees = [network.init_host(seed, int(m), arrays) for m in member_ids]
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *trees)
    keys = np.stack([np.asarray(jax.random.PRNGKey(int(np.random.default_rng([seed, int(m), 1]).integers(2**31))))
                     for m in member_ids])
    return params, keys


@functools.partial(jax.jit, static_argnums=0)
def _epoch(program: EpochProgram, state: TrainState, member_ids: Any, arrays: Any, train_data: Any,
           val_data: Any, members: Any, scale: Any, dropout_on: Any, epoch: Any,
           run: Any) -> tuple[TrainState, dict[str, Any]]:
    """One epoch of every member: steps, rollback, validation, bookkeeping.

    ``members`` holds each member's rows [M, ...]: ``row_weight`` (its training rows of
    ``train_data``), ``real_steps``, ``val_index`` and ``val_weight`` (its validation rows of
    ``val_data``). ``run`` holds the traced settings that differ between fits sharing the
    program: ``max_steps`` (the most minibatches with real rows of any member), ``has_val``
    (False: the training data loss is monitored) and ``patience``.
    """
    _TRACES[program] += 1  # runs at trace time only: counts compilations
    state, stats = jax.vmap(functools.partial(_member_epoch, program),
                            in_axes=(0, 0, 0, 0, None, None, None, None, None, None))(
        state, member_ids, members["row_weight"], members["real_steps"], arrays, train_data, scale, dropout_on,
        epoch, run["max_steps"])
    state = rollback(state, stats)

    def validate(params: Any) -> Any:
        return jax.vmap(lambda p, i, w: _member_validate(program, p, i, w, arrays, val_data, scale))(
            params, members["val_index"], members["val_weight"])

    # a fit without validation rows (a refit) skips the validation's forward pass
    val_terms, val_bad = jax.lax.cond(
        run["has_val"], validate,
        lambda params: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(validate, params)),
        state.params)
    val_terms = {k: jnp.where(run["has_val"], val_terms[k], stats[k]) for k in _COMPONENTS}
    val_bad = val_bad & run["has_val"]
    val_ok = ~val_bad.any(axis=1)
    active = ~state.stopped
    state = end_of_epoch(state, stats, val_terms["data"], val_ok, epoch, program.config.train,
                         program.config.optim, patience=run["patience"])
    return state, {**stats, "val": val_terms, "val_bad_rows": val_bad, "active": active}


@functools.partial(jax.jit, static_argnums=0)
def _objective(program: EpochProgram, params: Any, arrays: Any, data: Any) -> tuple[Any, Any]:
    def loss(p: Any) -> Any:
        mean, var, slope = _forward(program, p, arrays, data["inputs"], None, False, False)
        weight = jnp.ones(data["target"].shape[0], jnp.float32)
        terms = _terms(program, mean, var, slope, data, weight, arrays, 1.0)
        return sum(terms[k] for k in _COMPONENTS)

    return jax.value_and_grad(loss)(params)


def objective_gradient(problem: TrainingProblem, params: Any, rows: np.ndarray | None = None) -> tuple[Any, Any]:
    """The training objective (data + physics terms, no dropout) of one member and its gradient.

    Args:
        problem: The training problem.
        params: One member's parameters (no member axis).
        rows: Training rows to use (default all).

    Returns:
        ``(loss, grads)`` as JAX arrays (grads has the structure of ``params``).
    """
    data = _checked(problem.train, "train")
    if rows is not None:
        data = jax.tree.map(lambda a: a[np.asarray(rows)], data)
    program = EpochProgram.for_rows(problem.network, problem.config, int(data["target"].shape[0]))
    return _objective(program, params, problem.arrays, data)


# ------------------------------------------------------------------ host side
def _member_ids(members: int | Sequence[int] | None, cfg: Config) -> np.ndarray:
    if members is None:
        members = cfg.train.members
    if isinstance(members, int | np.integer):
        if members < 1:
            raise ConfigError(f"fit: members must be >= 1, got {members}.")
        return np.arange(int(members), dtype=np.int32)
    ids = np.asarray(list(members), dtype=np.int32)
    if ids.ndim != 1 or ids.size == 0 or len(set(ids.tolist())) != ids.size or (ids < 0).any():
        raise ConfigError(f"fit: members must be a count or distinct non-negative member indices, got {members}.")
    return ids


def _checked(data: Any, name: str, like: Any = None) -> dict[str, Any]:
    """ArrayData -> validated float32 pytree (a NaN target under an active mask in
    validation counts as missing, not as a failure)."""
    tree = as_pytree(data)
    target = np.asarray(tree["target"], np.float32)
    if target.ndim != 2 or target.shape[0] == 0:
        raise DataError(f"{name}.target: expected a non-empty [n, D] array, got shape {target.shape}.")
    for block, arr in tree["inputs"].items():
        if arr.shape[0] != target.shape[0] or not np.all(np.isfinite(arr)):
            raise DataError(f"{name}.inputs[{block!r}]: needs {target.shape[0]} finite rows.")
    if like is not None and (target.shape[1] != like["target"].shape[1] or set(tree["inputs"]) != set(like["inputs"])):
        raise DataError(f"{name}: its input blocks and target width must match the training data's.")
    mask = np.asarray(tree["mask"], np.float32)
    noise_var = np.asarray(tree["noise_var"], np.float32)
    if like is not None:
        ok = (mask > 0) & np.isfinite(target) & np.isfinite(noise_var)
        mask, target, noise_var = (np.where(ok, a, 0.0).astype(np.float32) for a in (mask, target, noise_var))
    return {"inputs": {k: np.asarray(v, np.float32) for k, v in tree["inputs"].items()},
            "target": target, "mask": mask, "noise_var": noise_var, "weight": np.ones(target.shape[0], np.float32)}


_VAL_BUCKET = 64  # validation rows are padded to a multiple of this


def padded_rows(n: int, batch: int) -> int:
    """Rows of the padded arrays for ``n`` real rows in batches of ``batch``.

    Up to 8 batches the padding only completes the last batch; beyond, the number of
    batches is rounded up to a multiple of 4, so fits on nearly equal numbers of rows
    (cross-validation folds, a refit on every row) share one compiled program.
    """
    steps = math.ceil(n / batch)
    if steps > 8:
        steps = 4 * math.ceil(steps / 4)
    return steps * batch


def shared_rows(n_train: Sequence[int], n_val: Sequence[int]) -> tuple[int, int]:
    """The ``pad_to`` of :func:`fit` for fits of these real row counts (e.g. every fold and the refit)."""
    return max(n_train, default=0), max(n_val, default=0)


def _zero_rows(tree: dict[str, Any], rows: int) -> dict[str, Any]:
    """``rows`` zero rows (zero weight, masked) shaped like ``tree``'s."""
    return _pad(jax.tree.map(lambda a: a[:0], tree), rows)


def _pad(tree: dict[str, Any], rows: int) -> dict[str, Any]:
    """Append zero rows (zero weight, masked) up to ``rows``."""
    extra = rows - tree["target"].shape[0]
    if extra <= 0:
        return tree

    def pad(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.zeros((extra, *a.shape[1:]), a.dtype)])

    return {k: ({b: pad(v) for b, v in val.items()} if k == "inputs" else pad(val)) for k, val in tree.items()}


def _summary(entry: dict[str, Any], key: str, values: Any, active: np.ndarray) -> None:
    """``entry[key]`` = mean over active members; ``entry[key + '_members']`` = per member."""
    vals = np.asarray(values, dtype=np.float64)
    sel = vals[active] if active.any() else vals
    finite = sel[np.isfinite(sel)]
    entry[key] = float(finite.mean()) if finite.size else float("nan")
    entry[f"{key}_members"] = [float(v) if math.isfinite(v) else None for v in vals]


def _history_entry(epoch: int, m: dict[str, Any], host: dict[str, np.ndarray], member_ids: np.ndarray,
                   scale: float, dropout_on: bool) -> dict[str, Any]:
    active = np.asarray(m["active"])
    entry: dict[str, Any] = {"epoch": epoch}
    bad_rows = np.asarray(m["val_bad_rows"])
    failed = {int(member_ids[i]): np.flatnonzero(bad_rows[i]).tolist()
              for i in np.flatnonzero(bad_rows.any(axis=1) & active)}
    if failed:
        entry["val_failures"] = failed
    entry.update(physics_scale=float(scale), dropout=bool(dropout_on), active_members=int(active.sum()))
    _summary(entry, "train_loss", m["loss"], active)
    for k in _COMPONENTS:
        _summary(entry, f"train_{k}", m[k], active)
    _summary(entry, "val_loss", m["val"]["data"], active)
    for k in PHYSICS_COMPONENTS:
        _summary(entry, f"val_{k}", m["val"][k], active)
    for k in ("grad_norm", "update_norm", "param_norm", "learning_rate"):
        _summary(entry, k, m[k], active)
    skipped, rollbacks = np.asarray(host["skipped"]), np.asarray(host["rollbacks"])
    entry.update(skipped_steps=int(skipped.sum()), skipped_steps_members=skipped.tolist(),
                 rollbacks=int(rollbacks.sum()), rollbacks_members=rollbacks.tolist())
    entry["best_val_members"] = [float(v) if math.isfinite(v) else None for v in np.asarray(host["best_val"])]
    return entry


def fit(
    problem: TrainingProblem,
    *,
    members: int | Sequence[int] | None = None,
    seed: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    request_checkpoint: threading.Event | None = None,
    epochs: int | None = None,
    keep: str = "best",
    pad_to: tuple[int, int] | None = None,
    member_rows: Sequence[np.ndarray] | None = None,
    member_val_rows: Sequence[np.ndarray] | None = None,
    initial_params: Any = None,
    first_epoch: int = 0,
) -> FitResult:
    """Train ``M`` ensemble members of ``problem.network`` together.

    Args:
        problem: Network, configuration and arrays (see
            :func:`profemu.train.setup.training_problem`).
        members: Number of members, or explicit member indices (member ``m`` is initialised
            from ``default_rng([seed, m])``, :meth:`~profemu.models.network.Network.init_host`,
            so indices let array jobs train disjoint members that equal members trained together).
        seed: Overrides ``config.train.seed``.
        checkpoint_dir: Folder for checkpoints (every ``train.checkpoint_every`` epochs, on
            request and at the end).
        resume: Continue from the newest valid checkpoint in ``checkpoint_dir`` (if any;
            a :class:`~profemu.errors.DataError` when there are checkpoints but every one
            is corrupt).
        callbacks: Called with each epoch's history dict; returning True stops training.
        request_checkpoint: An Event (e.g. set by a signal handler, see
            :func:`profemu.train.checkpoint.checkpoint_on_signals`); when set, a checkpoint
            is written at the end of the epoch and the event cleared.
        epochs: Train this many epochs from ``first_epoch`` (default: up to ``train.epochs``);
            the learning-rate schedule still spans ``train.epochs`` (a refit that stops
            where cross-validation found the best epoch follows the same schedule).
        keep: ``"best"`` (each member's parameters of its best validation loss) or
            ``"last"`` (the parameters after the last epoch).
        pad_to: ``(n_train, n_val)``: the largest numbers of real training and validation
            rows among fits that should share one compiled epoch (the cross-validation
            folds and their refit, see :func:`shared_rows`); the arrays are padded with
            zero-weight rows as for a fit of that many rows. The result equals the
            unpadded fit's within float rounding. None: this fit's own row counts.
        member_rows: Per member, the rows of ``problem.train`` it trains on (default: all).
            Members on different rows (e.g. the folds of a cross-validation, one network each)
            then train as one compiled program; each member's learning-rate schedule follows
            its own number of minibatches.
        member_val_rows: Per member, the rows of ``problem.val`` it validates on (default:
            all), e.g. its held-out fold when ``problem.val`` is ``problem.train``.
        initial_params: The members' starting parameters, stacked [M, ...] like
            :attr:`FitResult.params` of a fit of the same network (default: drawn from
            the seed). With ``first_epoch`` a fit continues trained networks, e.g. the
            cross-validation's on every row.
        first_epoch: The epoch of the learning-rate schedule (and of the curriculum) the fit
            starts at; it then runs ``epochs`` epochs (default: up to ``train.epochs``).
            Each member's optimiser starts with fresh moments at that point of its schedule.

    Returns:
        A :class:`FitResult`. History entries hold ``epoch``, ``train_loss`` and
        ``train_<component>`` (``data`` and the physics components), ``val_loss`` and
        ``val_<component>``, ``grad_norm`` (before clipping), ``param_norm``,
        ``update_norm``, ``learning_rate``, ``skipped_steps``, ``rollbacks`` (cumulative),
        ``physics_scale``, ``dropout``, ``active_members``, ``seconds``; every per-member
        quantity ``x`` also as ``x_members`` (list). ``val_failures`` (member -> row
        indices) appears when validation predictions were non-finite.
    """
    cfg = problem.config.validate()
    tcfg = cfg.train
    setup = _fit_setup(problem, cfg, members, seed, pad_to, member_rows, member_val_rows)
    params, keys = _initial_members(setup.program.network, setup.seed, setup.member_ids, problem.arrays)
    first = int(first_epoch)
    if not 0 <= first < tcfg.epochs:
        raise ConfigError(f"fit: first_epoch={first_epoch} must be in [0, train.epochs={tcfg.epochs}).")
    if initial_params is not None:
        params = _checked_initial(initial_params, params)
    run = _FitRun(state=_start(setup.program, params, keys, setup.arrays, setup.val_dev, setup.rows_dev,
                               jnp.float32(curriculum_at(tcfg.curriculum, first)[0]), setup.run["has_val"]))
    if first:
        run.state = _at_schedule_epoch(run.state, first, setup.rows_dev["real_steps"])
    start_epoch = first
    if resume:
        run.state, run.history, resumed_at, run.total_steps = _resume(checkpoint_dir, run.state, setup.seed,
                                                                      setup.member_ids)
        start_epoch = resumed_at if run.history or resumed_at else first  # no checkpoint yet: from the start
    write_checkpoint = functools.partial(_write_checkpoint, checkpoint_dir, setup, run)
    if keep not in ("best", "last"):
        raise ConfigError(f"fit: keep={keep!r}; choose 'best' or 'last'.")
    stop_at = tcfg.epochs if epochs is None else first + int(epochs)
    if not first < stop_at <= tcfg.epochs:
        raise ConfigError(f"fit: epochs={epochs} must be in [1, train.epochs - first_epoch = {tcfg.epochs - first}].")
    reason = _train_epochs(setup, run, range(start_epoch, stop_at), callbacks, request_checkpoint, write_checkpoint)
    completed = int(run.history[-1]["epoch"]) + 1 if run.history else start_epoch  # the next epoch to train
    if checkpoint_dir is not None:
        write_checkpoint(completed)
    return _fit_result(setup, run, jax.device_get(run.state), keep, reason)


def _checked_initial(given: Any, drawn: Any) -> Any:
    """``given`` initial parameters as float32 host arrays, checked against the tree and shapes
    of the ``drawn`` ones (the network's)."""
    want = flatten_tree(drawn)
    try:
        have = flatten_tree(given)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"fit: initial_params is not a parameter tree of this network ({exc}).") from None
    if set(have) != set(want):
        raise ConfigError(f"fit: initial_params has the entries {sorted(have)}, the network {sorted(want)}; pass "
                          "the parameters of a fit of the same network.")
    out = {}
    for name, ref in want.items():
        a = np.asarray(have[name], dtype=np.float32)
        if a.shape != np.shape(ref):
            raise ConfigError(f"fit: initial_params[{name!r}] has shape {a.shape}, the network's members "
                              f"{np.shape(ref)}; pass one set per member of a fit of the same network.")
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"fit: initial_params[{name!r}] holds non-finite values; pass trained parameters.")
        out[name] = a
    return unflatten_tree(out)


def _at_schedule_epoch(state: TrainState, epoch: int, real_steps: Any) -> TrainState:
    """``state`` with each member's learning-rate schedule at the start of ``epoch``
    (``epoch`` x its own minibatches per epoch)."""
    def moved(opt_state: Any) -> Any:
        clip, inject = opt_state  # optax.inject_hyperparams keeps the schedule's step count in two places
        count = jnp.broadcast_to(jnp.int32(epoch) * jnp.asarray(real_steps, jnp.int32), inject.count.shape)
        schedules = {k: v._replace(count=count.astype(v.count.dtype)) if hasattr(v, "count") else v
                     for k, v in inject.hyperparams_states.items()}
        return clip, inject._replace(count=count.astype(inject.count.dtype), hyperparams_states=schedules)

    return state._replace(opt_state=moved(state.opt_state), good_opt_state=moved(state.good_opt_state))


@dataclass(frozen=True)
class _FitSetup:
    """The validated, padded inputs of one :func:`fit`, on the device.

    Attributes:
        program: The compiled epoch's static part.
        member_ids: Member indices [M].
        seed: The training seed.
        arrays: The network's constant arrays (device).
        train_dev: Padded training data (device).
        val_dev: Padded validation data (device); zero padding without validation rows.
        members_dev: ``member_ids`` on the device.
        rows_dev: Each member's rows (device): ``row_weight`` [M, n], ``real_steps`` [M],
            ``val_index`` and ``val_weight`` [M, n_val].
        traces_before: Epoch programs traced for ``program`` before this fit.
        run: Traced settings of the compiled epoch (``max_steps``, ``has_val``, ``patience``).
    """

    program: EpochProgram
    member_ids: np.ndarray
    seed: int
    arrays: Any
    train_dev: Any
    val_dev: Any
    members_dev: Any
    rows_dev: Any
    traces_before: int
    run: dict[str, Any] = field(default_factory=dict)


@dataclass
class _FitRun:
    """What changes during a fit: the members' state, the history and the step count."""

    state: TrainState
    history: list[dict[str, Any]] = field(default_factory=list)
    total_steps: int = 0
    #: When the host last had an epoch's metrics (perf_counter): the next epoch, dispatched
    #: before that, could not start computing earlier.
    last_read: float | None = None


def _member_row_sets(rows: Sequence[np.ndarray] | None, n: int, members: int, name: str) -> list[np.ndarray]:
    """Each member's row indices into ``n`` rows (all of them by default), checked."""
    if rows is None:
        return [np.arange(n)] * members
    if len(rows) != members:
        raise ConfigError(f"fit: {name} gives rows for {len(rows)} members; pass one index array per member "
                          f"({members}).")
    out = []
    for m, r in enumerate(rows):
        idx = np.asarray(r)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 \
                or idx.max() >= n:
            raise ConfigError(f"fit: {name}[{m}] must be a non-empty 1-D array of row indices in [0, {n}).")
        out.append(idx)
    return out


def _fit_setup(problem: TrainingProblem, cfg: Config, members: int | Sequence[int] | None,
               seed: int | None, pad_to: tuple[int, int] | None = None,
               member_rows: Sequence[np.ndarray] | None = None,
               member_val_rows: Sequence[np.ndarray] | None = None) -> _FitSetup:
    """Validate and pad the data, resolve members, their rows and the seed, and put everything on the device.

    Validation on the training rows (``problem.val is problem.train``, e.g. each fold of a
    cross-validation on its held-out rows) and no validation at all keep validation arrays
    shaped like the training arrays, so a cross-validation and its refit share one program.
    """
    tcfg = cfg.train
    train_data = _checked(problem.train, "train")
    val_is_train = problem.val is problem.train
    val_data = None if problem.val is None else _checked(problem.val, "val", like=train_data)
    member_ids = _member_ids(members, cfg)
    seed = tcfg.seed if seed is None else int(seed)
    if not 0 <= seed < 2**31:
        raise ConfigError(f"train.seed: must be in [0, 2**31), got {seed}.")
    n_train = int(train_data["target"].shape[0])
    n_val_all = 0 if val_data is None else int(val_data["target"].shape[0])
    rows = _member_row_sets(member_rows, n_train, member_ids.size, "member_rows")
    if member_val_rows is not None and val_data is None:
        raise ConfigError("fit: member_val_rows needs validation data (problem.val).")
    val_rows_of = _member_row_sets(member_val_rows, max(n_val_all, 1), member_ids.size, "member_val_rows") \
        if val_data is not None else [np.zeros(0, int)] * member_ids.size
    n_val = max(r.size for r in val_rows_of)
    if pad_to is not None and (len(pad_to) != 2 or min(pad_to) < 0):
        raise ConfigError(f"fit: pad_to={pad_to!r}; pass (training rows, validation rows), both >= 0.")
    budget_train, budget_val = (n_train, n_val) if pad_to is None else (max(n_train, int(pad_to[0])),
                                                                       max(n_val, int(pad_to[1])))
    program = EpochProgram.for_rows(problem.network, cfg, budget_train)
    train_data = _pad(train_data, program.n_train)
    val_slots = padded_rows(max(budget_val, 1), _VAL_BUCKET)
    if val_data is None or val_is_train:  # shaped like the training arrays (zero weight without validation)
        val_data = _pad(_zero_rows(train_data, 0) if val_data is None else val_data, program.n_train)
    else:
        val_data = _pad(val_data, val_slots)
    m = member_ids.size
    row_weight = np.zeros((m, program.n_train), np.float32)
    val_index = np.zeros((m, val_slots), np.int32)
    val_weight = np.zeros((m, val_slots), np.float32)
    for i, (r, v) in enumerate(zip(rows, val_rows_of, strict=True)):
        row_weight[i, r] = 1.0
        val_index[i, :v.size] = v
        val_weight[i, :v.size] = 1.0
    real_steps = np.array([math.ceil(r.size / program.batch) for r in rows], np.int32)
    run = {"max_steps": jnp.int32(real_steps.max()), "has_val": jnp.asarray(n_val > 0),
           "patience": jnp.int32(tcfg.patience)}
    traces_before = _TRACES[program]
    arrays = jax.device_put(problem.arrays)
    train_dev, val_dev = jax.device_put(train_data), jax.device_put(val_data)
    rows_dev = jax.device_put({"row_weight": row_weight, "real_steps": real_steps, "val_index": val_index,
                               "val_weight": val_weight})
    members_dev = jnp.asarray(member_ids)
    if not _TRACES[program]:
        kept = jax.config.jax_compilation_cache_dir
        logger.info("compiling the training step (%s, %d members, %d x %d rows%s) ...", cfg.model.kind,
                    member_ids.size, program.steps, program.batch,
                    f"; loaded from or kept in the compilation cache {kept}" if kept else "")
    return _FitSetup(program=program, member_ids=member_ids, seed=seed, arrays=arrays, train_dev=train_dev,
                     val_dev=val_dev, members_dev=members_dev, rows_dev=rows_dev, traces_before=traces_before,
                     run=run)


def _write_checkpoint(checkpoint_dir: str | Path | None, setup: _FitSetup, run: _FitRun, next_epoch: int) -> None:
    """Save the state, history and step count (to resume at ``next_epoch``), if there is a folder."""
    if checkpoint_dir is not None:
        meta = {"epoch": next_epoch, "steps": run.total_steps, "seed": setup.seed,
                "member_ids": setup.member_ids.tolist(), "history": run.history}
        save_checkpoint(checkpoint_dir, next_epoch, tree_to_arrays(run.state, "state"), meta)


def _train_epochs(setup: _FitSetup, run: _FitRun, epochs: range, callbacks: Sequence[EpochCallback],
                  request_checkpoint: threading.Event | None, write_checkpoint: Callable[[int], None]) -> str:
    """Run ``epochs`` (history, callbacks, checkpoints) until one of the stop conditions; the stop reason.

    The next epoch is dispatched before the host reads this one's metrics, so the device never
    waits for the bookkeeping (history, callbacks, log lines). When a stop condition ends the
    fit after an epoch, the next one, already computing, is discarded: ``run.state`` is always
    the state after the last epoch in the history (and the one a checkpoint holds).
    """
    tcfg = setup.program.config.train
    reason = "max_epochs"
    t_start = time.perf_counter()
    if not len(epochs) or bool(np.asarray(run.state.stopped).all()):
        return reason
    pending = _dispatch_epoch(setup, run.state, epochs[0])
    for i, epoch in enumerate(epochs):
        state, started = pending
        if i + 1 < len(epochs):
            pending = _dispatch_epoch(setup, state, epochs[i + 1])
        run.state = state
        entry, host = _record_epoch(setup, run, epoch, started)
        stop_requested = False
        for callback in callbacks:
            stop_requested = bool(callback(entry)) or stop_requested
        due = tcfg.checkpoint_every > 0 and (epoch + 1) % tcfg.checkpoint_every == 0
        if request_checkpoint is not None and request_checkpoint.is_set():
            request_checkpoint.clear()
            due = True
        if due:
            write_checkpoint(epoch + 1)
        if stop_requested:
            reason = "callback"
            break
        if np.asarray(host["stopped"]).all():
            reasons = {STOP_REASONS[c] for c in np.asarray(host["stop_code"])}
            reason = reasons.pop() if len(reasons) == 1 else "all_members_stopped"
            break
        if tcfg.max_seconds > 0 and time.perf_counter() - t_start > tcfg.max_seconds:
            reason = "max_seconds"
            break
    return reason


def _dispatch_epoch(setup: _FitSetup, state: TrainState, epoch: int) -> tuple[TrainState, dict[str, Any]]:
    """Start one compiled epoch of every member from ``state`` (asynchronously): the new state and
    what :func:`_record_epoch` reads of it (the epoch's metrics as device arrays, its curriculum
    values and the time it was started)."""
    program = setup.program
    t_epoch = time.perf_counter()
    scale, dropout_on = curriculum_at(program.config.train.curriculum, epoch)
    state, metrics = _epoch(program, state, setup.members_dev, setup.arrays, setup.train_dev, setup.val_dev,
                            setup.rows_dev, jnp.float32(scale), jnp.asarray(dropout_on), jnp.int32(epoch), setup.run)
    return state, {"metrics": metrics, "scale": scale, "dropout_on": dropout_on, "at": t_epoch}


def _record_epoch(setup: _FitSetup, run: _FitRun, epoch: int,
                  started: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read one epoch's metrics (waiting for it) and append its history entry. Returns the entry and
    the host copy of ``run.state``'s counters (``skipped``, ``rollbacks``, ``best_val``, ``stopped``,
    ``stop_code``)."""
    program = setup.program
    m, host = jax.device_get((started["metrics"], {k: getattr(run.state, k) for k in (
        "skipped", "rollbacks", "best_val", "stopped", "stop_code")}))
    run.total_steps += program.steps
    entry = _history_entry(epoch, m, host, setup.member_ids, started["scale"], started["dropout_on"])
    now = time.perf_counter()
    # the epoch was dispatched while the one before it still ran: its own time starts when that ended
    entry["seconds"] = now - max(started["at"], run.last_read if run.last_read is not None else -np.inf)
    run.last_read = now
    run.history.append(entry)
    return entry, host


def _fit_result(setup: _FitSetup, run: _FitRun, final: TrainState, keep: str, reason: str) -> FitResult:
    """The :class:`FitResult` of the final (host) state."""
    return FitResult(
        params=final.best_params if keep == "best" else final.params,
        history=run.history,
        counters={
            "skipped_steps": np.asarray(final.skipped).tolist(),
            "rollbacks": np.asarray(final.rollbacks).tolist(),
            "val_failures": np.asarray(final.val_failures).tolist(),
            "epochs": len(run.history),
            "steps": run.total_steps,
            "compilations": _TRACES[setup.program] - setup.traces_before,
            "stop_reason_members": [STOP_REASONS[c] for c in np.asarray(final.stop_code)],
        },
        best_epoch=[int(e) for e in np.asarray(final.best_epoch)],
        stopped_reason=reason,
        best_val=[float(v) for v in np.asarray(final.best_val)],
    )


def _resume(checkpoint_dir: str | Path | None, state: TrainState, seed: int,
            member_ids: np.ndarray) -> tuple[TrainState, list[dict[str, Any]], int, int]:
    """The state, history, next epoch and step count of the newest valid checkpoint."""
    if checkpoint_dir is None:
        raise ConfigError("fit(resume=True) needs checkpoint_dir (the run folder with ckpt-*.npz).")
    ckpt = load_latest(checkpoint_dir, strict=True)  # all corrupt: refuse rather than start over
    if ckpt is None:
        return state, [], 0, 0
    meta = ckpt.meta
    if meta.get("seed") != seed or meta.get("member_ids") != member_ids.tolist():
        raise ConfigError(
            f"resume: checkpoint {ckpt.path.name} was written with seed {meta.get('seed')} and members "
            f"{meta.get('member_ids')}, not seed {seed} and members {member_ids.tolist()}; "
            "use the same train.seed/members or another checkpoint folder."
        )
    restored = jax.device_put(arrays_to_tree(state, ckpt.arrays, "state"))
    return restored, list(meta.get("history", [])), int(meta["epoch"]), int(meta["steps"])
