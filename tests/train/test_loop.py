"""Tests of the compiled training loop on tiny toy problems."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from profemu.config import Config, Phase
from profemu.errors import ConfigError, DataError
from profemu.losses.likelihood import data_loss
from profemu.losses.physics import PhysicsContext
from profemu.train.loop import fit

FIELDS = ("rho", "temp")
LOG10_R = np.array([-1.0, -0.5, 0.0])
D = len(FIELDS) * LOG10_R.size


class TinyModel(nn.Module):
    """A flax model honouring the profemu contract: (mean, var) [n, D], var > 0."""

    width: int = 16
    dropout: float = 0.0
    exp_var: bool = False
    log_input: bool = False  # adds log(params[:, 0] + 2): NaN for inputs below -2

    @nn.compact
    def __call__(self, inputs: dict, train: bool = False) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([inputs[k] for k in sorted(inputs)], axis=-1)
        x = nn.tanh(nn.Dense(self.width)(x))
        if self.dropout:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        raw = nn.Dense(2 * D)(x)
        var = jnp.exp(raw[:, D:]) if self.exp_var else nn.softplus(raw[:, D:]) + 1e-4
        mean = raw[:, :D] + jnp.log(inputs["params"][:, :1] + 2.0) if self.log_input else raw[:, :D]
        return mean, var


@dataclass
class Arrays:
    inputs: dict
    target: np.ndarray
    mask: np.ndarray
    noise_var: np.ndarray


def toy(n: int, seed: int, target_scale: float = 1.0) -> Arrays:
    rng = np.random.default_rng(seed)
    params = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    mass = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    rho = 0.5 * params[:, :1] + 0.8 * mass - 0.7 * (LOG10_R + 1)
    temp = 0.3 * np.sin(2 * params[:, 1:2]) + 0.4 * mass + 0.2 * LOG10_R
    target = (target_scale * np.concatenate([rho, temp], axis=1)).astype(np.float32)
    target += 0.02 * rng.normal(size=target.shape).astype(np.float32)
    return Arrays({"params": params, "log10_mass": mass}, target, np.ones_like(target), np.zeros_like(target))


def config(**changes: object) -> Config:
    base = {
        "train.members": 1, "train.epochs": 6, "train.batch_size": 32, "train.patience": 0,
        "optim.learning_rate": 1e-2, "optim.warmup_epochs": 1, "optim.schedule": "constant",
    }
    return Config().updated({**base, **changes})


CTX = PhysicsContext(FIELDS, LOG10_R.size, LOG10_R, np.zeros(D), np.ones(D), mass_scale=1.0)


def member(variables: dict, m: int) -> dict:
    return jax.tree.map(lambda a: a[m], variables)


def rich_config(**changes: object) -> Config:
    """Physics (with the mass-scaling jvp), dropout and input noise: the full compiled step."""
    return config(**{
        "train.members": 2, "model.dropout": 0.1, "data.augment_noise": 0.02,
        "loss.physics.smoothness_weight": 0.1, "loss.physics.monotonic_weight": 0.1,
        "loss.physics.mass_scaling_weight": 0.1, "loss.physics.mass_scaling_slopes": {"rho": 2.0},
        "loss.physics.mass_scaling_tolerance": 0.1,
        "loss.physics.boundary_weight": 0.1, "loss.physics.boundary_slopes": {"temp": 1.0},
        "loss.physics.boundary_tolerance": 0.0,
        **changes,
    })


def test_learns_members_differ_and_curriculum_never_recompiles() -> None:
    train, val = toy(80, 0), toy(40, 1)  # 80 = 2 full batches + a padded one
    cfg = rich_config(**{"train.epochs": 12})
    cfg.train.curriculum = [
        Phase(start_epoch=0, physics_scale=0.0, dropout=False),
        Phase(start_epoch=4, physics_scale=1.0, dropout=True, ramp_epochs=2),
        Phase(start_epoch=8, physics_scale=2.0, dropout=False),
    ]
    seen: list[int] = []
    result = fit(TinyModel(dropout=0.1), train, val, cfg, physics_ctx=CTX, progress=lambda e: seen.append(e["epoch"]))
    # (0 when an earlier test compiled this setup already: the programs are cached)
    assert result.counters["compilations"] <= 1
    hist = result.history
    assert seen == list(range(12)) and result.stopped_reason == "max_epochs"
    for _ in range(2):  # more phases, same compiled epoch: phases are traced arguments
        again = fit(TinyModel(dropout=0.1), train, val, cfg, physics_ctx=CTX)
        assert again.counters["compilations"] == 0
        assert again.history == [{**h, "seconds": g["seconds"]} for h, g in zip(result.history, again.history, strict=True)]
    assert [h["physics_scale"] for h in hist[3:7]] == [0.0, 0.0, 0.5, 1.0]
    assert hist[0]["train_mass_scaling"] == 0.0 and hist[-1]["train_mass_scaling"] > 0.0
    assert hist[-1]["train_boundary"] > 0.0 and hist[-1]["val_boundary"] > 0.0
    assert hist[-1]["train_data"] < 0.5 * hist[0]["train_data"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert len(hist[-1]["val_loss_members"]) == 2 and hist[-1]["grad_norm"] > 0
    for key in ("param_norm", "update_norm", "learning_rate", "skipped_steps", "rollbacks", "seconds"):
        assert key in hist[-1]
    leaves = jax.tree.leaves(result.variables)
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    preds = [TinyModel().apply(member(result.variables, m), val.inputs)[0] for m in range(2)]
    assert not np.allclose(preds[0], preds[1], atol=1e-3)


def test_nan_targets_under_mask_are_ignored() -> None:
    clean = toy(96, 2)
    mask = (np.random.default_rng(3).uniform(size=clean.mask.shape) > 0.3).astype(np.float32)
    zeroed = replace(clean, mask=mask, target=np.where(mask > 0, clean.target, 0.0).astype(np.float32))
    poisoned = replace(zeroed, target=np.where(mask > 0, clean.target, np.nan).astype(np.float32))
    cfg = config(**{"train.members": 2, "train.epochs": 5})  # same setup as the next test: compiled once
    a = fit(TinyModel(), zeroed, toy(16, 4), cfg)
    b = fit(TinyModel(), poisoned, toy(16, 4), cfg)
    assert b.counters["skipped_steps"] == [0, 0] and b.counters["compilations"] == 0
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables), strict=True):
        np.testing.assert_array_equal(x, y)


def test_nan_in_valid_targets_skips_steps_and_stays_finite() -> None:
    train = toy(96, 5)
    train.target[17, 2] = np.nan  # exactly one batch per epoch contains row 17
    result = fit(TinyModel(), train, toy(16, 6), config(**{"train.members": 2, "train.epochs": 5}))
    assert result.counters["skipped_steps"] == [5, 5]
    assert result.history[-1]["skipped_steps_members"] == [5, 5]
    assert result.counters["rollbacks"] == [0, 0]
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.variables))
    assert np.isfinite(result.history[-1]["train_loss"])
    assert result.history[-1]["train_data"] < result.history[0]["train_data"]


def test_huge_learning_rate_rolls_back_and_keeps_finite_best() -> None:
    train, val = toy(64, 7, target_scale=30.0), toy(32, 8, target_scale=30.0)
    cfg = config(**{
        "optim.learning_rate": 10.0, "optim.warmup_epochs": 0, "optim.clip_norm": 1e6,
        "train.epochs": 8, "train.max_consecutive_failures": 1, "train.max_rollbacks": 2,
        "data.augment_noise": 0.05,
    })
    result = fit(TinyModel(width=8, exp_var=True, log_input=True), train, val, cfg)
    assert sum(result.counters["skipped_steps"]) > 0
    assert sum(result.counters["rollbacks"]) > 0
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.variables))
    assert all(np.isfinite(h["val_loss"]) for h in result.history)
    assert np.isfinite(result.best_val[0])
    lrs = [h["learning_rate"] for h in result.history]
    assert min(lrs) < 10.0  # halved on rollback


def test_early_stopping_restores_best_parameters() -> None:
    train = toy(96, 9)
    val = replace(toy(32, 10), target=0.4 * toy(32, 10).target)  # reachable, then overshot
    # same compiled setup as the NaN tests (epochs/patience do not enter a constant schedule)
    cfg = config(**{"train.members": 2, "train.epochs": 80, "train.patience": 3})
    result = fit(TinyModel(), train, val, cfg)
    assert result.stopped_reason == "early_stopping"
    assert len(result.history) < 80
    for m in range(2):
        best = result.best_epoch[m]
        assert 0 <= best < len(result.history) - 1
        val_losses = [h["val_loss_members"][m] for h in result.history]
        assert result.best_val[m] == pytest.approx(min(val_losses))
        assert val_losses[best] == pytest.approx(result.best_val[m])
        mean, var = TinyModel().apply(member(result.variables, m), val.inputs)
        restored = data_loss(mean, var, val.target, val.mask, val.noise_var, cfg.loss)
        assert float(restored) == pytest.approx(result.best_val[m], rel=1e-5)


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    train, val = toy(80, 11), toy(24, 12)
    cfg = rich_config(**{"train.patience": 4})
    cfg.train.curriculum = [Phase(start_epoch=0, dropout=True), Phase(start_epoch=4, physics_scale=0.5, dropout=False)]
    model = TinyModel(dropout=0.1)
    straight = fit(model, train, val, cfg, physics_ctx=CTX)
    first = fit(model, train, val, cfg, physics_ctx=CTX, checkpoint_dir=tmp_path,
                callbacks=[lambda entry: entry["epoch"] == 2])
    assert first.stopped_reason == "callback" and len(first.history) == 3
    assert (tmp_path / "ckpt-000003.npz").is_file()
    resumed = fit(model, train, val, cfg, physics_ctx=CTX, checkpoint_dir=tmp_path, resume=True)
    assert len(resumed.history) == 6
    assert [h["train_loss_members"] for h in resumed.history] == [h["train_loss_members"] for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    for x, y in zip(jax.tree.leaves(straight.variables), jax.tree.leaves(resumed.variables), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ConfigError, match="seed"):
        fit(model, train, val, cfg, physics_ctx=CTX, checkpoint_dir=tmp_path, resume=True, seed=99)


def test_bad_inputs_raise_named_errors() -> None:
    train = toy(16, 13)
    no_mass = replace(train, inputs={"params": train.inputs["params"]})
    with pytest.raises(DataError, match="log10_mass"):
        fit(TinyModel(), no_mass, None, config())
    bad = replace(train, inputs={**train.inputs, "params": np.full((16, 2), np.inf, np.float32)})
    with pytest.raises(DataError, match="non-finite"):
        fit(TinyModel(), bad, None, config())
    with pytest.raises(ConfigError, match="physics_ctx"):
        fit(TinyModel(), train, None, config(**{"loss.physics.smoothness_weight": 1.0}))


def test_non_finite_validation_rows_are_reported_not_propagated() -> None:
    train, val = toy(64, 7, target_scale=30.0), toy(32, 8, target_scale=30.0)
    val.inputs["params"][[3, 20], 0] = -5.0  # the model's mean is NaN on these rows
    cfg = config(**{
        "optim.learning_rate": 10.0, "optim.warmup_epochs": 0, "optim.clip_norm": 1e6,
        "train.epochs": 2, "train.max_consecutive_failures": 1, "train.max_rollbacks": 2,
        "data.augment_noise": 0.05,
    })  # the setup of the previous test: no new compilation
    result = fit(TinyModel(width=8, exp_var=True, log_input=True), train, val, cfg)
    for entry in result.history:
        # rows 3 and 20 always fail; at this learning rate exp(var) may overflow on others too
        assert set(entry["val_failures"]) == {0} and {3, 20} <= set(entry["val_failures"][0])
        assert np.isfinite(entry["val_loss"])
    assert result.counters["val_failures"] == [2]
    assert result.best_epoch == [-1]  # a failing epoch never counts as an improvement


def test_checkpoint_on_request_and_resume_from_previous_when_newest_is_corrupt(tmp_path: Path) -> None:
    import threading

    train, val = toy(96, 2), toy(16, 4)
    cfg = config(**{"train.members": 2, "train.epochs": 2})  # the setup of the NaN tests
    request = threading.Event()
    request.set()
    fit(TinyModel(), train, val, cfg, checkpoint_dir=tmp_path, request_checkpoint=request)
    assert not request.is_set()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["ckpt-000001.npz", "ckpt-000002.npz"]
    newest = tmp_path / "ckpt-000002.npz"
    newest.write_bytes(newest.read_bytes()[:-100])
    longer = config(**{"train.members": 2, "train.epochs": 3})
    with pytest.warns(UserWarning, match="ckpt-000002"):
        resumed = fit(TinyModel(), train, val, longer, checkpoint_dir=tmp_path, resume=True)
    straight = fit(TinyModel(), train, val, longer)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert [h["train_loss_members"] for h in resumed.history] == [h["train_loss_members"] for h in straight.history]
