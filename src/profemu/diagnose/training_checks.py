"""Checks 5 and 7-9: probes of the configured network with the trainer's own step.

What each check fails on is tabulated in :mod:`profemu.diagnose`. The probes train with :func:`profemu.train.loop.fit` on a few rows (one step per epoch), so a
blow-up they find is the one training would hit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.diagnose.check import _MAX_INPUT_Z, CHECK_NAMES, Check, _fmt, _guarded
from profemu.diagnose.data_checks import _block_labels

__all__ = [
    "ACTIVATION_BOUND",
    "check_overfit",
    "check_training_dynamics",
    "clipped_gradient_norm",
    "problem_optimizer",
]

#: Largest |intermediate activation| a healthy network should produce.
ACTIVATION_BOUND = 1e4
_OVERFIT_ROWS = 8
_OVERFIT_RMSE = 0.05
_MAX_VAL_NLL = 1e3  # per element, standardised units: ~1 for an untrained model


# ---------------------------------------------------------- 5, 7-9: the model probes
class _Probe:
    """The configured network and training problem, probed with the trainer's own code.

    The probes run :func:`profemu.train.loop.fit` (the real training step) on a few
    rows and read gradients with :func:`profemu.train.loop.objective_gradient`, so a
    blow-up they find is the one training would hit.
    """

    def __init__(self, prep: Any, config: Config, *, seed: int) -> None:
        from profemu.train.setup import training_problem

        self.config = config
        self.transforms = prep.transforms
        with np.errstate(over="ignore"):  # overflowing inputs are reported by the checks
            self.problem = training_problem(prep, config, validate_on_train=False)
        self.network = self.problem.network
        self.train = self.problem.train
        self.val = self.problem.val
        self.seed = seed
        self.initial_params: Any = None
        self.probed_params: Any = None

    def rows(self, size: int, *, seed: int | None = None) -> np.ndarray:
        """``size`` random training rows (sorted)."""
        n = self.train.n
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return np.sort(rng.choice(n, size=min(size, n), replace=False))

    def subproblem(self, rows: np.ndarray, changes: Mapping[str, Any]) -> Any:
        """The problem on training ``rows`` only, no validation, under ``changes`` of the config."""
        from profemu.data.transforms import ArrayData
        from profemu.train.setup import TrainingProblem

        t = self.train
        sub = ArrayData({k: v[rows] for k, v in t.inputs.items()}, t.target[rows], t.mask[rows], t.noise_var[rows])
        config = self.config.updated({"train.members": 1, "train.patience": 0, "train.checkpoint_every": 0,
                                      "train.curriculum": [], "train.max_seconds": 0.0, **changes})
        return TrainingProblem(self.problem.network, config, self.problem.arrays, sub, None).with_config(config)

    # ---------------------------------------------------------------- 7: gradients
    def gradient_check(self, *, steps: int) -> Check:
        """A few steps of the trainer at the peak learning rate on one minibatch."""
        import jax
        import jax.numpy as jnp
        import optax

        from profemu.train.loop import fit, objective_gradient

        name = CHECK_NAMES[6]
        cfg = self.config
        rows = self.rows(cfg.train.batch_size)
        # one step per epoch, no warm-up: blow-ups happen at the peak learning rate
        problem = self.subproblem(rows, {"optim.warmup_epochs": 0, "optim.schedule": "constant",
                                         "train.epochs": steps, "train.batch_size": rows.size})
        self.initial_params = jax.jit(problem.network.init)(jax.random.key(self.seed), problem.arrays)
        result = fit(problem, seed=self.seed)
        losses = np.array([e["train_loss"] for e in result.history], np.float64)
        norms = np.array([e["grad_norm"] for e in result.history], np.float64)
        skipped = int(sum(result.counters["skipped_steps"]))
        self.probed_params = jax.tree.map(lambda a: a[0], result.params)
        lr = cfg.optim.learning_rate
        clip = cfg.optim.clip_norm
        if skipped or not (np.isfinite(losses).all() and np.isfinite(norms).all()):
            first = int(np.argmax(~(np.isfinite(losses) & np.isfinite(norms)))) if not skipped else 0
            return Check(
                name, False, f"non-finite loss or gradient in the first {first + 1} of {steps} steps (lr {lr:g}; "
                f"{skipped} step(s) skipped by the trainer)",
                "Gradients blow up at the configured learning rate: lower optim.learning_rate "
                "(x10), keep optim.warmup_epochs > 0, and check the inputs and targets checks above.",
            )
        _, grads = objective_gradient(problem, self.probed_params)
        pre = float(optax.tree.norm(grads))
        opt = problem_optimizer(problem)
        big = jax.tree.map(lambda g: g * (10.0 * clip / jnp.maximum(pre, 1e-30)), grads)
        post = clipped_gradient_norm(opt, self.probed_params, grads)
        post_big = clipped_gradient_norm(opt, self.probed_params, big)
        post = None if post is None else float(post)
        post_big = None if post_big is None else float(post_big)
        value = (
            f"pre-clip |g| max {_fmt(norms.max())}, last {_fmt(pre)}; post-clip {_fmt(post or 0.0)} "
            f"(clip {clip:g}, lr {lr:g}); loss {_fmt(losses[0])} -> {_fmt(losses[-1])} in {steps} steps"
        )
        if post_big is None or post is None:
            return Check(name, False, value + "; cannot read Adam's state to verify clipping",
                         "profemu.train.optim.make_optimizer should be clip_by_global_norm + adamw.")
        tol = 1e-3 * clip
        if post_big > clip + tol or post > clip + tol:
            return Check(
                name, False, value + f"; a gradient of norm {_fmt(10 * clip)} came out at {_fmt(post_big)}",
                "The optimiser does not clip: make_optimizer must start with "
                "optax.clip_by_global_norm(optim.clip_norm).",
            )
        if losses[-1] > losses[0] + 10.0 * max(abs(losses[0]), 1.0):
            return Check(
                name, False, value,
                "The loss grows at the configured learning rate: lower optim.learning_rate and "
                "keep a warm-up (optim.warmup_epochs).",
            )
        return Check(name, True, value)

    def _ensure_probed(self) -> None:
        if self.probed_params is None:
            self.gradient_check(steps=5)

    # -------------------------------------------------------------- 8: activations
    def activation_check(self) -> Check:
        """Every intermediate activation finite and below :data:`ACTIVATION_BOUND`."""
        import jax
        import jax.numpy as jnp

        name = CHECK_NAMES[7]
        self._ensure_probed()
        rows = min(self.train.n, 4096)
        inputs = {k: v[:rows] for k, v in self.train.inputs.items()}
        net, arrays = self.network, self.problem.arrays

        @jax.jit
        def summary(params: Any) -> Any:
            record: dict[str, Any] = {}
            net.apply(params, arrays, inputs, xp=jnp, record=record)
            return {where: (jnp.isfinite(a).all(), jnp.abs(a).max()) for where, a in record.items()}

        worst, worst_at, bad_at = 0.0, "", ""
        for label, params in (("initial", self.initial_params), ("after probe steps", self.probed_params)):
            for where, (finite, biggest) in jax.device_get(summary(params)).items():
                if not finite and not bad_at:
                    bad_at = f"{where} ({label})"
                if np.isfinite(biggest) and biggest > worst:
                    worst, worst_at = float(biggest), f"{where} ({label})"
        value = f"max |activation| {_fmt(worst)} at {worst_at} on {rows} training rows"
        if bad_at:
            return Check(name, False, f"non-finite activation at {bad_at}; " + value,
                         "Check the normalised inputs (check 1) and lower the learning rate.")
        if worst > ACTIVATION_BOUND:
            return Check(
                name, False, value + f" > {ACTIVATION_BOUND:g}",
                "Activations this large saturate and overflow: make sure every input is normalised "
                "(data.input_scaler), keep the default initialisation, and lower the learning rate.",
            )
        return Check(name, True, value)

    # -------------------------------------------------------------- 9: validation
    def validation_check(self) -> Check:
        """Validation predictions and Gaussian NLL finite (model after the probe steps)."""
        import jax
        import jax.numpy as jnp

        from profemu.data.transforms import decode_mean, decode_var
        from profemu.losses.likelihood import gaussian_nll

        name = CHECK_NAMES[8]
        if self.val is None:
            return Check(name, True, "skipped: no validation split (data.val_fraction = 0)")
        self._ensure_probed()
        net, arrays, val = self.network, self.problem.arrays, self.val

        @jax.jit
        def predict(params: Any) -> Any:
            out = net.apply(params, arrays, val.inputs, xp=jnp)
            mean, var = decode_mean(out.mean, arrays, jnp), decode_var(out.var, arrays, jnp)
            return mean, var, gaussian_nll(mean, var, val.target, val.mask, val.noise_var)

        mean, var, nll = (np.asarray(a, np.float64) for a in predict(self.probed_params))
        nll = float(nll)
        bad_rows = ~(np.isfinite(mean).all(axis=1) & np.isfinite(var).all(axis=1) & (var > 0).all(axis=1))
        target_z = float(np.abs(val.target).max()) if val.target.size else 0.0
        input_z, input_at = 0.0, ""
        for block, values in val.inputs.items():
            z = np.abs(np.asarray(values, np.float64)).max(axis=0)
            j = int(np.argmax(z))
            if not z[j] <= input_z:  # also picks up inf / nan
                labels = _block_labels(block, self.transforms, z.size)
                input_z, input_at = float(z[j]), labels[j]
        value = (
            f"{val.n} validation rows, NLL {_fmt(nll)}, max |target z| {_fmt(target_z)}, "
            f"max |input z| {_fmt(input_z)} ({input_at})"
        )
        advice = (
            "Validation inputs or targets lie far outside the training data: compare them with "
            "the training box (checks 1 and 4), fix or drop those rows, and lower the learning rate."
        )
        if bad_rows.any() or not math.isfinite(nll):
            rows = np.flatnonzero(bad_rows)
            return Check(
                name, False, f"{rows.size} row(s) with non-finite predictions (first {rows[:5].tolist()}); " + value,
                advice,
            )
        if nll > _MAX_VAL_NLL:
            return Check(name, False, f"validation NLL {_fmt(nll)} > {_MAX_VAL_NLL:g}; " + value, advice)
        if input_z > _MAX_INPUT_Z:
            # finite now, but a trained model extrapolates there and the loss explodes
            return Check(name, False, f"validation inputs up to |z| {_fmt(input_z)} ({input_at}) > "
                         f"{_MAX_INPUT_Z:g}; " + value, advice)
        return Check(name, True, value)


def problem_optimizer(problem: Any) -> Any:
    """The optimiser the trainer builds for ``problem`` (one epoch = one step)."""
    from profemu.train.loop import EpochProgram

    return EpochProgram.for_rows(problem.network, problem.config, problem.train.n).optimizer()


def clipped_gradient_norm(opt: Any, params: Any, grads: Any) -> Any:
    """Global norm of ``grads`` after the optimiser's clipping, read from Adam's first moment.

    Args:
        opt: An optax transformation with an Adam-type state (e.g. from
            :func:`profemu.train.optim.make_optimizer`).
        params: The parameters the gradients belong to.
        grads: A gradient pytree.

    Returns:
        A scalar (a JAX array), or None for an optimiser without Adam's ``mu``.

    ``grads`` takes one step from a fresh optimiser state, and so does a copy scaled to a
    tiny norm (always below any sensible clip norm): Adam's first moment is linear in the
    clipped gradient, so the ratio of the two moments times the tiny norm is the clipped
    norm, whatever Adam's ``b1``. Traceable; returns None when the optimiser state holds
    no ``mu`` (not an Adam-type optimiser).
    """
    import jax
    import jax.numpy as jnp
    import optax

    state = opt.init(params)
    if optax.tree.get(state, "mu") is None:
        return None

    def moment_norm(g: Any) -> Any:
        _, new_state = opt.update(g, state, params)
        return optax.tree.norm(optax.tree.get(new_state, "mu"))

    ref_norm = 1e-6
    norm = optax.tree.norm(grads)
    tiny = jax.tree.map(lambda g: g * (ref_norm / jnp.maximum(norm, 1e-30)), grads)
    ratio = moment_norm(grads) / jnp.maximum(moment_norm(tiny), 1e-38)
    return jnp.where(norm > 0, ratio * ref_norm, 0.0)


# ---------------------------------------------------------------- 5: overfit
def _overfit_check(probe: _Probe, config: Config, *, seed: int, steps: int) -> Check:
    from profemu.train.loop import fit

    name = CHECK_NAMES[4]
    rows = probe.rows(_OVERFIT_ROWS, seed=seed)
    # the trainer, full batch (one step per epoch), MSE, no dropout or weight decay, no warm-up
    problem = probe.subproblem(rows, {
        "model.dropout": 0.0, "loss.likelihood": "mse", "optim.weight_decay": 0.0,
        "optim.warmup_epochs": 0, "optim.schedule": "constant",
        "train.epochs": steps, "train.batch_size": int(rows.size),
    })
    result = fit(problem, seed=seed)
    first = float(result.history[0]["train_data"]) if result.history else float("nan")
    rmse = _rmse(problem, result.params)
    floor = _pca_floor(probe, problem.train.target, problem.train.mask)
    threshold = _OVERFIT_RMSE + floor
    lr = config.optim.learning_rate
    value = (
        f"RMSE {_fmt(rmse)} (standardised) on {rows.size} rows after {steps} full-batch steps "
        f"(lr {lr:g}; start {_fmt(math.sqrt(max(first, 0.0)))}"
        + (f"; PCA floor {_fmt(floor)}" if floor > 0 else "")
        + ")"
    )
    if not math.isfinite(rmse) or rmse >= threshold:
        return Check(
            name, False, value + f" >= {_fmt(threshold)}",
            "The model cannot even memorise 8 examples: raise optim.learning_rate if the loss fell "
            "slowly (or lower it if it oscillated/NaN), give the model capacity (model.hidden, an "
            "activation other than tanh on many outputs), and check that targets are normalised "
            "(data.target_scaler) and unmasked.",
        )
    return Check(name, True, value)


def _rmse(problem: Any, params: Any) -> float:
    """RMSE (standardised units, valid entries) of the first member on the problem's training rows."""
    from profemu.data.transforms import decode_mean

    data = problem.train
    member = {k: v for k, v in params.items()}
    out = problem.network.apply(member, problem.arrays, data.inputs)
    mean = decode_mean(np.asarray(out.mean, np.float64)[0], problem.arrays)
    err = np.where(data.mask > 0, mean - data.target, 0.0)
    return float(np.sqrt((err**2).sum() / max(float(data.mask.sum()), 1.0)))


def check_overfit(prepared: Any, config: Config, *, seed: int = 0, steps: int = 500) -> Check:
    """Check 5: a fresh model memorises 8 training examples.

    The configured model without dropout is trained full-batch on 8 random training rows
    with plain Adam (``optim.learning_rate``, ``optim.clip_norm``, no weight decay) on the
    masked MSE for ``steps`` steps; it passes when the RMSE in standardised units is below
    0.05 (plus the PCA reconstruction error of those rows when PCA outputs are used).

    Args:
        prepared: Output of :func:`profemu.train.setup.prepare` for the dataset and config.
        config: The configuration (model and optimiser settings).
        seed: Seed of the row choice and the initialisation.
        steps: Optimiser steps.

    Returns:
        The :class:`Check`.
    """
    return _overfit_check(_Probe(prepared, config, seed=seed), config, seed=seed, steps=steps)


def check_training_dynamics(
    prepared: Any, config: Config, *, seed: int = 0, steps: int = 25
) -> tuple[Check, Check, Check]:
    """Checks 7-9: gradient norms, activations and validation loss of the configured model.

    ``steps`` minibatch steps (``train.batch_size``) of the configured optimiser
    (:func:`profemu.train.optim.make_optimizer`, without warm-up, i.e. at the peak
    learning rate) on the configured data loss; then the intermediate activations on
    the training inputs (initial and probed parameters) and the predictions and Gaussian
    NLL on the validation split.

    Args:
        prepared: Output of :func:`profemu.train.setup.prepare` for the dataset and config.
        config: The configuration.
        seed: Seed of the initialisation and the minibatches.
        steps: Optimiser steps of the probe.

    Returns:
        The ``gradient norms``, ``activations bounded`` and ``finite validation loss`` checks.
    """
    probe = _Probe(prepared, config, seed=seed)
    return (
        _guarded(CHECK_NAMES[6], probe.gradient_check, steps=steps),
        _guarded(CHECK_NAMES[7], probe.activation_check),
        _guarded(CHECK_NAMES[8], probe.validation_check),
    )


def _pca_floor(probe: _Probe, target: np.ndarray, mask: np.ndarray) -> float:
    """RMSE of projecting ``target`` onto the PCA basis (0 without PCA)."""
    from profemu.data.transforms import decode_mean

    t = probe.transforms
    if t.pca_components is None:
        return 0.0
    recon = decode_mean(t.encode_target(target), probe.problem.arrays)
    err = np.where(mask > 0, recon - target, 0.0)
    return float(np.sqrt((err**2).sum() / max(mask.sum(), 1.0)))


def _gradient_check(probe: _Probe, *, steps: int) -> Check:
    """Check 7 of ``probe`` with ``steps`` optimiser steps."""
    return probe.gradient_check(steps=steps)


def _activation_check(probe: _Probe) -> Check:
    """Check 8 of ``probe``."""
    return probe.activation_check()


def _validation_check(probe: _Probe) -> Check:
    """Check 9 of ``probe``."""
    return probe.validation_check()
