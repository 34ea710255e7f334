"""The training loop: compiled epochs, ensemble members under ``vmap``, robust to NaNs.

One call of :func:`fit` trains ``M`` ensemble members together. Each epoch is a
single ``jax.jit`` call: members are ``jax.vmap``-ed over stacked parameters,
optimiser states and PRNG keys (independent initialisation *and* data order per
member), and the minibatches are a ``lax.scan``. The last partial batch is padded
with zero-weight samples, so every sample counts exactly once per epoch.
Metrics are pulled to the host once per epoch.

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

Curriculum values (physics multiplier, dropout on/off) are traced arguments, so
phases never trigger a recompilation; ``FitResult.counters["compilations"]``
reports how many times the epoch function was traced (1 in a normal run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from profemu.config import Config
from profemu.errors import ConfigError, DataError
from profemu.losses.likelihood import data_loss
from profemu.losses.physics import (
    PHYSICS_COMPONENTS,
    PhysicsContext,
    needs_mass_derivative,
    physics_losses,
)
from profemu.train.checkpoint import flatten_tree, load_latest, save_checkpoint, unflatten_into
from profemu.train.curriculum import curriculum_at
from profemu.train.optim import current_learning_rate, make_optimizer

__all__ = ["FitResult", "fit", "identity_decode"]

Decode = Callable[[Any, Any], Any]
EpochCallback = Callable[[dict[str, Any]], Any]


def identity_decode(out: Any, xp: Any = None) -> Any:
    """Default decoder: model outputs already are standardised log10 values [n, D]."""
    return out


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        variables: Flax variables of every member stacked on a leading axis ``M``
            (each member's best parameters by validation loss).
        history: One dict per epoch (see :func:`fit`).
        counters: ``skipped_steps``, ``rollbacks``, ``val_failures`` (lists per member),
            ``epochs``, ``steps``, ``compilations``.
        best_epoch: Per member, the 0-based epoch of its best validation loss (-1 = the
            initial parameters were never beaten).
        stopped_reason: ``"max_epochs"``, ``"early_stopping"``, ``"max_rollbacks"``,
            ``"all_members_stopped"``, ``"max_seconds"`` or ``"callback"``.
        best_val: Per member, its best validation data loss.
    """

    variables: dict[str, Any]
    history: list[dict[str, Any]]
    counters: dict[str, Any]
    best_epoch: list[int]
    stopped_reason: str
    best_val: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------- data
def _arrays(data: Any, name: str) -> dict[str, Any]:
    """ArrayData-like -> dict of float32 numpy arrays, validated."""
    try:
        inputs = dict(data.inputs)
        target, mask, noise_var = data.target, data.mask, data.noise_var
    except AttributeError:
        raise DataError(
            f"{name}: expected an ArrayData (attributes inputs, target, mask, noise_var); "
            f"got {type(data).__name__}. Build it with Transforms.transform(dataset)."
        ) from None
    target = np.asarray(target, dtype=np.float32)
    if target.ndim != 2 or target.shape[0] == 0:
        raise DataError(f"{name}.target: expected a non-empty [n, D] array, got shape {target.shape}.")
    n, d = target.shape
    mask = np.asarray(mask, dtype=np.float32)
    noise_var = np.zeros_like(target) if noise_var is None else np.asarray(noise_var, dtype=np.float32)
    for label, arr in (("mask", mask), ("noise_var", noise_var)):
        if arr.shape != (n, d):
            raise DataError(f"{name}.{label}: shape {arr.shape} differs from target's {(n, d)}.")
    if "log10_mass" not in inputs:
        raise DataError(f"{name}.inputs: the 'log10_mass' block is missing; every model needs it.")
    blocks = {}
    for key, value in inputs.items():
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n:
            raise DataError(f"{name}.inputs[{key!r}]: expected [n={n}, width], got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            row = int(np.argwhere(~np.isfinite(arr))[0, 0])
            raise DataError(f"{name}.inputs[{key!r}]: non-finite value in row {row}; inputs must be finite.")
        blocks[key] = arr
    return {"inputs": blocks, "target": target, "mask": mask, "noise_var": noise_var}


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


def _where_members(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per-member select on stacked pytrees: ``new`` where mask[m] else ``old``."""

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)

    return jax.tree.map(pick, new, old)


_where_members_jit = jax.jit(_where_members)


def _select(flag: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


def _to_float(x: Any) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _summary(entry: dict[str, Any], key: str, values: np.ndarray, active: np.ndarray | None = None) -> None:
    """``entry[key]`` = mean over (active) members; ``entry[key + '_members']`` = per member."""
    vals = np.asarray(values, dtype=np.float64)
    sel = vals if active is None or not active.any() else vals[active]
    finite = sel[np.isfinite(sel)]
    entry[key] = float(finite.mean()) if finite.size else float("nan")
    entry[f"{key}_members"] = [_to_float(v) for v in vals]


@dataclass
class _Programs:
    """The compiled pieces of one training setup (cached across fit calls)."""

    init: Callable[..., Any]
    epoch: Callable[..., Any]
    evaluate: Callable[..., Any]
    traces: list[int]
    steps: int


_PROGRAM_CACHE: OrderedDict[Any, _Programs] = OrderedDict()
_PROGRAM_CACHE_SIZE = 8


def _callable_key(fn: Any) -> Any:
    """A cache key for ``fn``: bound methods compare by their object's value, not identity."""
    owner = getattr(fn, "__self__", None)
    return (owner, fn.__func__) if owner is not None and hasattr(fn, "__func__") else fn


def _programs(
    model: Any, cfg: Config, physics_ctx: PhysicsContext | None, decode: tuple[Decode, Decode], n_train: int
) -> _Programs:
    """Build (or reuse) the jitted init/epoch/eval functions.

    Everything that is baked into the traced code is part of the cache key, so a
    repeated fit with the same setup (another seed, resume, a new trial with the same
    shapes) does not compile again.
    """
    try:
        key = (
            type(model), model, json.dumps(dataclasses.asdict(cfg.loss), sort_keys=True),
            json.dumps(dataclasses.asdict(cfg.optim), sort_keys=True),
            # the planned length only shapes the cosine schedule
            cfg.train.epochs if cfg.optim.schedule == "cosine" else None,
            cfg.train.batch_size, cfg.train.max_consecutive_failures,
            cfg.model.dropout, cfg.data.augment_noise, cfg.data.augment_seed,
            physics_ctx, _callable_key(decode[0]), _callable_key(decode[1]), n_train,
        )
        hash(key)
    except TypeError:  # an unhashable model: build without caching
        return _build_programs(model, cfg, physics_ctx, decode, n_train)
    if key in _PROGRAM_CACHE:
        _PROGRAM_CACHE.move_to_end(key)
        return _PROGRAM_CACHE[key]
    programs = _build_programs(model, cfg, physics_ctx, decode, n_train)
    _PROGRAM_CACHE[key] = programs
    while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
        _PROGRAM_CACHE.popitem(last=False)
    return programs


def _build_programs(
    model: Any, cfg: Config, physics_ctx: PhysicsContext | None, decode: tuple[Decode, Decode], n_train: int
) -> _Programs:
    tcfg, pcfg = cfg.train, cfg.loss.physics
    decode_mean, decode_var = decode
    use_physics = any(
        w > 0 for w in (pcfg.monotonic_weight, pcfg.smoothness_weight, pcfg.mass_scaling_weight, pcfg.boundary_weight)
    )
    use_jvp = needs_mass_derivative(physics_ctx, pcfg)
    has_dropout = cfg.model.dropout > 0
    augment = float(cfg.data.augment_noise)

    batch = min(tcfg.batch_size, n_train)
    steps = math.ceil(n_train / batch)
    pad = steps * batch - n_train
    optimizer = make_optimizer(cfg.optim, steps, tcfg.epochs)
    max_failures = int(tcfg.max_consecutive_failures)
    component_names = ("data", *PHYSICS_COMPONENTS)

    def init_member(seed: jax.Array, member: jax.Array, sample: Any) -> dict[str, Any]:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), member)
        k_init, k_drop, k_data = jax.random.split(key, 3)
        variables = dict(model.init({"params": k_init, "dropout": k_drop}, sample, train=False))
        params = variables.pop("params")
        return {
            "params": params,
            "extra": variables,
            "opt_state": optimizer.init(params),
            "key": k_data,
            "lr_mult": jnp.ones((), jnp.float32),
            "failures": jnp.zeros((), jnp.int32),
        }

    def forward(params: Any, extra: Any, inputs: Any, dkey: jax.Array, dropout_on: Any, training: bool) -> Any:
        variables = {"params": params, **extra}
        if not training:
            return model.apply(variables, inputs, train=False)
        if has_dropout:
            return jax.lax.cond(
                dropout_on,
                lambda: model.apply(variables, inputs, train=True, rngs={"dropout": dkey}),
                lambda: model.apply(variables, inputs, train=False),
            )
        return model.apply(variables, inputs, train=True, rngs={"dropout": dkey})

    def predict(params: Any, extra: Any, inputs: Any, dkey: jax.Array, dropout_on: Any, training: bool) -> Any:
        """Decoded (mean, var, d mean / d mass or None)."""

        def mean_var(log10_mass: jax.Array) -> tuple[jax.Array, jax.Array]:
            out_mean, out_var = forward(params, extra, {**inputs, "log10_mass": log10_mass}, dkey, dropout_on, training)
            return decode_mean(out_mean, jnp), decode_var(out_var, jnp)

        mass = inputs["log10_mass"]
        if use_jvp:
            (mean, var), (dmean, _) = jax.jvp(mean_var, (mass,), (jnp.ones_like(mass),))
            return mean, var, dmean
        mean, var = mean_var(mass)
        return mean, var, None

    def loss_terms(
        params: Any, extra: Any, batch_data: Any, weight: jax.Array, dkey: jax.Array,
        akey: jax.Array, dropout_on: Any, scale: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        inputs = batch_data["inputs"]
        if augment > 0:
            inputs = {
                name: value + augment * jax.random.normal(jax.random.fold_in(akey, i), value.shape, value.dtype)
                for i, (name, value) in enumerate(sorted(inputs.items()))
            }
        mean, var, dmean = predict(params, extra, inputs, dkey, dropout_on, True)
        mask = batch_data["mask"] * weight[:, None]
        terms = {"data": data_loss(mean, var, batch_data["target"], mask, batch_data["noise_var"], cfg.loss)}
        if use_physics:
            terms.update(
                physics_losses(mean, physics_ctx, pcfg, dmean_dmass_std=dmean, scale=scale, sample_weight=weight)
            )
        else:
            terms.update({k: jnp.zeros((), jnp.float32) for k in PHYSICS_COMPONENTS})
        total = sum(terms[k] for k in component_names)
        return total, terms

    grad_fn = jax.value_and_grad(loss_terms, has_aux=True)
    traces = [0]
    sample_weight = np.concatenate([np.ones(n_train, np.float32), np.zeros(pad, np.float32)]).reshape(steps, batch)

    def member_epoch(
        st: dict[str, Any], member: jax.Array, active: jax.Array, train_data: Any,
        scale: jax.Array, dropout_on: jax.Array, epoch: jax.Array,
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        key, perm_key, drop_key = jax.random.split(st["key"], 3)
        perm = jax.random.permutation(perm_key, n_train)
        order = jnp.concatenate([perm, perm[:pad]]).reshape(steps, batch)
        aug_base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(cfg.data.augment_seed), member), epoch)
        zero = jnp.zeros((), jnp.float32)
        acc0 = {k: zero for k in ("loss", *component_names, "grad_norm", "update_norm")}
        carry0 = (st["params"], st["opt_state"], st["failures"], jnp.zeros((), bool), acc0,
                  jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

        def step(carry: Any, xs: Any) -> Any:
            params, opt_state, failures, tripped, acc, n_ok, n_failed = carry
            i, idx, weight = xs
            batch_data = jax.tree.map(lambda a: a[idx], train_data)
            (loss, terms), grads = grad_fn(
                params, st["extra"], batch_data, weight, jax.random.fold_in(drop_key, i),
                jax.random.fold_in(aug_base, i), dropout_on, scale,
            )
            grad_norm = optax.tree.norm(grads)
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            updates = jax.tree.map(lambda u: u * st["lr_mult"], updates)
            update_norm = optax.tree.norm(updates)
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.isfinite(update_norm)
            attempt = active & ~tripped
            ok = attempt & finite
            failed = attempt & ~finite
            params = _select(ok, optax.apply_updates(params, updates), params)
            opt_state = _select(ok, new_opt_state, opt_state)
            failures = jnp.where(ok, 0, jnp.where(failed, failures + 1, failures))
            tripped = tripped | (failures >= max_failures)
            values = {"loss": loss, **terms, "grad_norm": grad_norm, "update_norm": update_norm}
            acc = {k: acc[k] + jnp.where(ok, values[k].astype(jnp.float32), 0.0) for k in acc}
            return (params, opt_state, failures, tripped, acc, n_ok + ok, n_failed + failed), None

        xs = (jnp.arange(steps), order, jnp.asarray(sample_weight))
        params, opt_state, failures, tripped, acc, n_ok, n_failed = jax.lax.scan(step, carry0, xs)[0]
        denom = jnp.maximum(n_ok, 1).astype(jnp.float32)
        nan = jnp.float32(jnp.nan)
        metrics = {k: jnp.where(n_ok > 0, v / denom, nan) for k, v in acc.items()}
        metrics.update(
            n_ok=n_ok, n_failed=n_failed, tripped=tripped, failures=failures,
            param_norm=optax.tree.norm(params),
            learning_rate=current_learning_rate(opt_state) * st["lr_mult"],
        )
        new_state = {**st, "params": params, "opt_state": opt_state, "key": key, "failures": failures}
        return new_state, metrics

    @jax.jit
    def epoch_fn(state: Any, members_: Any, active: Any, train_data: Any, scale: Any, dropout_on: Any, epoch: Any) -> Any:
        traces[0] += 1  # runs at trace time only: counts compilations
        return jax.vmap(member_epoch, in_axes=(0, 0, 0, None, None, None, None))(
            state, members_, active, train_data, scale, dropout_on, epoch
        )

    def member_eval(params: Any, extra: Any, eval_data: Any, scale: Any) -> Any:
        mean, var, dmean = predict(params, extra, eval_data["inputs"], jax.random.PRNGKey(0), False, False)
        good = jnp.all(jnp.isfinite(mean), axis=1) & jnp.all(jnp.isfinite(var), axis=1)
        if dmean is not None:
            good = good & jnp.all(jnp.isfinite(dmean), axis=1)
            dmean = jnp.where(good[:, None], dmean, 0.0)
        mean = jnp.where(good[:, None], mean, 0.0)
        var = jnp.where(good[:, None], var, 1.0)
        mask = eval_data["mask"] * good[:, None]
        terms = {"data": data_loss(mean, var, eval_data["target"], mask, eval_data["noise_var"], cfg.loss)}
        if use_physics:
            terms.update(
                physics_losses(mean, physics_ctx, pcfg, dmean_dmass_std=dmean, scale=scale,
                               sample_weight=good.astype(mean.dtype))
            )
        else:
            terms.update({k: jnp.zeros((), jnp.float32) for k in PHYSICS_COMPONENTS})
        return terms, ~good

    return _Programs(
        init=jax.jit(jax.vmap(init_member, in_axes=(None, 0, None))),
        epoch=epoch_fn,
        evaluate=jax.jit(jax.vmap(member_eval, in_axes=(0, 0, None, None))),
        traces=traces,
        steps=steps,
    )



# ----------------------------------------------------------------------------- fit
def fit(
    model: Any,
    train: Any,
    val: Any | None,
    cfg: Config,
    *,
    physics_ctx: PhysicsContext | None = None,
    decode: tuple[Decode, Decode] = (identity_decode, identity_decode),
    members: int | Sequence[int] | None = None,
    seed: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: EpochCallback | None = None,
    request_checkpoint: threading.Event | None = None,
) -> FitResult:
    """Train ``M`` ensemble members of ``model`` together.

    Args:
        model: A flax linen module, ``model.apply(variables, inputs, train=bool,
            rngs={"dropout": key}) -> (mean, var)`` each [n, out_dim], var > 0.
        train: Training ArrayData (``inputs`` dict of [n, ·] float arrays including
            ``log10_mass``, ``target``/``mask``/``noise_var`` [n, D]).
        val: Validation ArrayData for early stopping; None monitors the training data loss.
        cfg: The run configuration (``loss``, ``optim``, ``train``, ``data.augment_*``,
            ``model.dropout``).
        physics_ctx: Output layout for the physics losses; required when any physics
            weight is > 0.
        decode: ``(decode_mean, decode_var)``, called as ``f(out, jax.numpy)``, mapping model
            outputs to standardised log10 space [n, D] (e.g. Transforms' PCA decoders).
        members: Number of members, or explicit member indices (member ``m`` is initialised
            from ``fold_in(PRNGKey(seed), m)``, so indices let array jobs train disjoint members).
        seed: Overrides ``cfg.train.seed``.
        checkpoint_dir: Folder for checkpoints (every ``train.checkpoint_every`` epochs, on
            request and at the end).
        resume: Continue from the newest valid checkpoint in ``checkpoint_dir`` (if any).
        callbacks: Called with each epoch's history dict; returning True stops training.
        progress: Called with each epoch's history dict (for progress bars/lines).
        request_checkpoint: An Event (e.g. set by a signal handler, see
            :func:`profemu.train.checkpoint.checkpoint_on_signals`); when set, a checkpoint
            is written at the end of the epoch and the event cleared.

    Returns:
        A :class:`FitResult`. History entries hold ``epoch``, ``train_loss`` and
        ``train_<component>`` (``data`` and the physics components), ``val_loss`` and
        ``val_<component>``, ``grad_norm`` (before clipping), ``param_norm``,
        ``update_norm``, ``learning_rate``, ``skipped_steps``, ``rollbacks`` (cumulative),
        ``physics_scale``, ``dropout``, ``active_members``, ``seconds``; every per-member
        quantity ``x`` also as ``x_members`` (list). ``val_failures`` (member -> row
        indices) appears when validation predictions were non-finite.
    """
    cfg.validate()
    tcfg, pcfg = cfg.train, cfg.loss.physics
    if len(decode) != 2 or not all(callable(f) for f in decode):
        raise ConfigError("fit: decode must be a pair (decode_mean, decode_var) of functions f(out, xp).")
    data = _arrays(train, "train")
    vdata = _arrays(val, "val") if val is not None else None
    if vdata is not None:
        if vdata["target"].shape[1] != data["target"].shape[1] or set(vdata["inputs"]) != set(data["inputs"]):
            raise DataError("val: its input blocks and target width must match train's.")
        # a NaN target under an active mask in validation is treated as missing, not as a failure
        ok = (vdata["mask"] > 0) & np.isfinite(vdata["target"]) & np.isfinite(vdata["noise_var"])
        vdata["mask"] = np.where(ok, vdata["mask"], 0.0).astype(np.float32)
        vdata["target"] = np.where(ok, vdata["target"], 0.0).astype(np.float32)
        vdata["noise_var"] = np.where(ok, vdata["noise_var"], 0.0).astype(np.float32)

    weights = [pcfg.monotonic_weight, pcfg.smoothness_weight, pcfg.mass_scaling_weight, pcfg.boundary_weight]
    use_physics = any(w > 0 for w in weights)
    if use_physics and physics_ctx is None:
        raise ConfigError(
            "loss.physics: a physics weight is > 0 but fit() got no physics_ctx; pass "
            "PhysicsContext.from_transforms(transforms) or set the weights to 0."
        )
    member_ids = _member_ids(members, cfg)
    n_members = member_ids.size
    seed = tcfg.seed if seed is None else int(seed)
    if not 0 <= seed < 2**31:
        raise ConfigError(f"train.seed: must be in [0, 2**31), got {seed}.")
    n_train = data["target"].shape[0]
    programs = _programs(model, cfg, physics_ctx, decode, n_train)
    steps = programs.steps
    traces_before = programs.traces[0]
    component_names = ("data", *PHYSICS_COMPONENTS)

    # ------------------------------------------------------------------ state
    sample = jax.tree.map(lambda a: a[:1], data["inputs"])
    state = programs.init(jnp.int32(seed), jnp.asarray(member_ids), sample)
    device_data = jax.device_put(data)
    device_vdata = jax.device_put(vdata) if vdata is not None else None
    last_good = {"params": state["params"], "opt_state": state["opt_state"]}
    best_params = state["params"]
    best_val = np.full(n_members, np.inf)
    best_epoch = np.full(n_members, -1, dtype=np.int64)
    wait = np.zeros(n_members, dtype=np.int64)
    plateau_wait = np.zeros(n_members, dtype=np.int64)
    stopped = np.zeros(n_members, dtype=bool)
    stop_reason = [""] * n_members
    rollbacks = np.zeros(n_members, dtype=np.int64)
    skipped = np.zeros(n_members, dtype=np.int64)
    val_failures = np.zeros(n_members, dtype=np.int64)
    history: list[dict[str, Any]] = []
    start_epoch, total_steps = 0, 0

    def validate_members(params: Any, scale: float) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        if device_vdata is None:
            raise RuntimeError("no validation data")  # pragma: no cover - guarded by callers
        terms, bad_rows = jax.device_get(programs.evaluate(params, state["extra"], device_vdata, jnp.float32(scale)))
        return np.asarray(terms["data"], np.float64), terms, np.asarray(bad_rows)

    def snapshot(next_epoch: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            **flatten_tree(state, "state"),
            **flatten_tree(last_good, "last_good"),
            **flatten_tree(best_params, "best_params"),
        }
        for name, value in (("best_val", best_val), ("best_epoch", best_epoch), ("wait", wait),
                            ("plateau_wait", plateau_wait), ("stopped", stopped), ("rollbacks", rollbacks),
                            ("skipped", skipped), ("val_failures", val_failures)):
            arrays[f"host/{name}"] = np.asarray(value)
        meta = {
            "epoch": next_epoch, "steps": total_steps, "seed": seed, "member_ids": member_ids.tolist(),
            "stop_reason": stop_reason, "history": history,
        }
        return arrays, meta

    if resume:
        if checkpoint_dir is None:
            raise ConfigError("fit(resume=True) needs checkpoint_dir (the run folder with ckpt-*.npz).")
        ckpt = load_latest(checkpoint_dir)
        if ckpt is not None:
            meta = ckpt.meta
            if meta.get("seed") != seed or meta.get("member_ids") != member_ids.tolist():
                raise ConfigError(
                    f"resume: checkpoint {ckpt.path.name} was written with seed {meta.get('seed')} and members "
                    f"{meta.get('member_ids')}, not seed {seed} and members {member_ids.tolist()}; "
                    "use the same train.seed/members or another checkpoint folder."
                )
            state = jax.device_put(unflatten_into(state, ckpt.arrays, "state"))
            last_good = jax.device_put(unflatten_into(last_good, ckpt.arrays, "last_good"))
            best_params = jax.device_put(unflatten_into(best_params, ckpt.arrays, "best_params"))
            a = ckpt.arrays
            best_val = a["host/best_val"].astype(np.float64)
            best_epoch, wait = a["host/best_epoch"].copy(), a["host/wait"].copy()
            plateau_wait, stopped = a["host/plateau_wait"].copy(), a["host/stopped"].astype(bool)
            rollbacks, skipped = a["host/rollbacks"].copy(), a["host/skipped"].copy()
            val_failures = a["host/val_failures"].copy()
            stop_reason = list(meta.get("stop_reason", stop_reason))
            history = list(meta.get("history", []))
            start_epoch, total_steps = int(meta["epoch"]), int(meta["steps"])

    if start_epoch == 0 and device_vdata is not None:
        # the initial parameters are the first "best": the result is always a finite model
        init_val, _, init_bad = validate_members(state["params"], curriculum_at(tcfg.curriculum, 0)[0])
        finite0 = ~init_bad.any(axis=1)
        best_val = np.where(finite0, init_val, np.inf)

    def write_checkpoint(next_epoch: int) -> None:
        if checkpoint_dir is not None:
            arrays, meta = snapshot(next_epoch)
            save_checkpoint(checkpoint_dir, next_epoch, arrays, meta)

    reason = "max_epochs"
    t_start = time.perf_counter()
    lr_mult = np.array(jax.device_get(state["lr_mult"]), dtype=np.float32)
    members_dev = jnp.asarray(member_ids)
    for epoch in range(start_epoch, tcfg.epochs):
        if stopped.all():
            break
        t_epoch = time.perf_counter()
        scale, dropout_on = curriculum_at(tcfg.curriculum, epoch)
        active = ~stopped
        state, m = programs.epoch(
            state, members_dev, jnp.asarray(active), device_data,
            jnp.float32(scale), jnp.asarray(dropout_on), jnp.int32(epoch),
        )
        m = jax.device_get(m)  # the one host sync of the epoch
        total_steps += steps
        skipped += np.asarray(m["n_failed"], np.int64)
        bad_epoch = active & (
            np.asarray(m["tripped"]) | (np.asarray(m["n_ok"]) == 0) | ~np.isfinite(m["param_norm"])
        )
        good_epoch = active & ~bad_epoch

        # rollback of failed members (or stop them after max_rollbacks)
        failures = np.asarray(m["failures"], np.int32).copy()
        for i in np.flatnonzero(bad_epoch):
            if rollbacks[i] >= tcfg.max_rollbacks:
                stopped[i], stop_reason[i] = True, "max_rollbacks"
            else:
                rollbacks[i] += 1
                lr_mult[i] *= np.float32(0.5)
            failures[i] = 0
        if bad_epoch.any():
            mask = jnp.asarray(bad_epoch)
            restored = _where_members_jit(mask, last_good, {"params": state["params"], "opt_state": state["opt_state"]})
            state = {**state, **restored}
        if good_epoch.any():
            last_good = _where_members_jit(
                jnp.asarray(good_epoch), {"params": state["params"], "opt_state": state["opt_state"]}, last_good
            )

        # validation and early stopping
        entry: dict[str, Any] = {"epoch": epoch}
        if device_vdata is not None:
            val_loss, val_terms, bad_rows = validate_members(state["params"], scale)
            val_ok = ~bad_rows.any(axis=1)
            failed_rows = {
                int(member_ids[i]): np.flatnonzero(bad_rows[i]).tolist() for i in np.flatnonzero(~val_ok & active)
            }
            if failed_rows:
                entry["val_failures"] = failed_rows
                val_failures += (~val_ok & active).astype(np.int64)
        else:
            val_loss = np.asarray(m["data"], np.float64)
            val_terms = {k: np.asarray(m[k]) for k in component_names}
            val_ok = np.isfinite(val_loss)
        improved = good_epoch & val_ok & np.isfinite(val_loss) & (val_loss < best_val)
        if improved.any():
            best_params = _where_members_jit(jnp.asarray(improved), state["params"], best_params)
            best_val = np.where(improved, val_loss, best_val)
            best_epoch = np.where(improved, epoch, best_epoch)
        not_improved = active & ~improved
        wait = np.where(improved, 0, np.where(not_improved, wait + 1, wait))
        if cfg.optim.plateau_patience > 0:
            plateau_wait = np.where(improved, 0, np.where(not_improved, plateau_wait + 1, plateau_wait))
            hit = plateau_wait >= cfg.optim.plateau_patience
            lr_mult = np.where(hit, lr_mult * cfg.optim.plateau_factor, lr_mult).astype(np.float32)
            plateau_wait = np.where(hit, 0, plateau_wait)
        if tcfg.patience > 0:
            for i in np.flatnonzero(active & (wait >= tcfg.patience) & ~stopped):
                stopped[i], stop_reason[i] = True, "early_stopping"
        state = {**state, "lr_mult": jnp.asarray(lr_mult), "failures": jnp.asarray(failures)}

        # history
        entry.update(physics_scale=float(scale), dropout=bool(dropout_on), active_members=int(active.sum()))
        _summary(entry, "train_loss", m["loss"], active)
        for k in component_names:
            _summary(entry, f"train_{k}", m[k], active)
        _summary(entry, "val_loss", val_loss, active)
        for k in PHYSICS_COMPONENTS:
            _summary(entry, f"val_{k}", np.asarray(val_terms[k]), active)
        for k in ("grad_norm", "update_norm", "param_norm", "learning_rate"):
            _summary(entry, k, m[k], active)
        entry["skipped_steps"] = int(skipped.sum())
        entry["skipped_steps_members"] = skipped.tolist()
        entry["rollbacks"] = int(rollbacks.sum())
        entry["rollbacks_members"] = rollbacks.tolist()
        entry["best_val_members"] = [_to_float(v) for v in best_val]
        entry["seconds"] = time.perf_counter() - t_epoch
        history.append(entry)

        if progress is not None:
            progress(entry)
        stop_requested = False
        for callback in callbacks:
            stop_requested = bool(callback(entry)) or stop_requested
        next_epoch = epoch + 1
        due = tcfg.checkpoint_every > 0 and next_epoch % tcfg.checkpoint_every == 0
        if request_checkpoint is not None and request_checkpoint.is_set():
            request_checkpoint.clear()
            due = True
        if due:
            write_checkpoint(next_epoch)
        if stop_requested:
            reason = "callback"
            break
        if stopped.all():
            reasons = set(stop_reason)
            reason = reasons.pop() if len(reasons) == 1 else "all_members_stopped"
            break
        if tcfg.max_seconds > 0 and time.perf_counter() - t_start > tcfg.max_seconds:
            reason = "max_seconds"
            break

    completed = len(history)
    if checkpoint_dir is not None:
        write_checkpoint(completed)
    variables = {"params": best_params, **state["extra"]}
    counters = {
        "skipped_steps": skipped.tolist(),
        "rollbacks": rollbacks.tolist(),
        "val_failures": val_failures.tolist(),
        "epochs": completed,
        "steps": total_steps,
        "compilations": programs.traces[0] - traces_before,
        "stop_reason_members": list(stop_reason),
    }
    return FitResult(
        variables=variables,
        history=history,
        counters=counters,
        best_epoch=[int(e) for e in best_epoch],
        stopped_reason=reason,
        best_val=[float(v) for v in best_val],
    )

