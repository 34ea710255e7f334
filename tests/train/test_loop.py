"""Tests of the compiled training loop on tiny toy problems with the real network."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

from profemu.config import Config, Phase
from profemu.data.layout import FieldSpec, OutputLayout
from profemu.data.transforms import ArrayData
from profemu.errors import ConfigError, DataError
from profemu.losses.likelihood import data_loss
from profemu.models.network import Network
from profemu.train.loop import fit
from profemu.train.setup import TrainingProblem

FIELDS = ("rho", "temp")
LOG10_R = np.array([-1.0, -0.5, 0.0])
D = len(FIELDS) * LOG10_R.size
LAYOUT = OutputLayout(
    (FieldSpec("rho", "", "density", True), FieldSpec("temp", "", "temperature", False)),
    LOG10_R.size, (("params", 2), ("log10_mass", 1)), D,
)
ARRAYS = {"target_center": np.zeros(D, np.float32), "target_scale": np.ones(D, np.float32),
          "log10_radius": LOG10_R.astype(np.float32), "log10_mass_scale": np.asarray(1.0, np.float32)}


def toy(n: int, seed: int, target_scale: float = 1.0) -> ArrayData:
    rng = np.random.default_rng(seed)
    params = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    mass = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    rho = 0.5 * params[:, :1] + 0.8 * mass - 0.7 * (LOG10_R + 1)
    temp = 0.3 * np.sin(2 * params[:, 1:2]) + 0.4 * mass + 0.2 * LOG10_R
    target = (target_scale * np.concatenate([rho, temp], axis=1)).astype(np.float32)
    target += 0.02 * rng.normal(size=target.shape).astype(np.float32)
    return ArrayData({"params": params, "log10_mass": mass}, target, np.ones_like(target), np.zeros_like(target))


def config(**changes: object) -> Config:
    base = {
        "model.hidden": [16], "train.members": 1, "train.epochs": 6, "train.batch_size": 32,
        "train.patience": 0, "optim.learning_rate": 1e-2, "optim.warmup_epochs": 1,
        "optim.schedule": "constant", "data.monotone_fields": ["rho"],
    }
    return Config().updated({**base, **changes})


def problem(train: ArrayData, val: ArrayData | None, cfg: Config) -> TrainingProblem:
    return TrainingProblem(Network(cfg.model, LAYOUT), cfg, ARRAYS, train, val)


def member(params: dict, m: int) -> dict:
    return jax.tree.map(lambda a: a[m], params)


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


PHASES = [
    Phase(start_epoch=0, physics_scale=0.0, dropout=False),
    Phase(start_epoch=4, physics_scale=1.0, dropout=True, ramp_epochs=2),
    Phase(start_epoch=8, physics_scale=2.0, dropout=False),
]


def test_learns_members_differ_and_curriculum_never_recompiles() -> None:
    train, val = toy(80, 0), toy(40, 1)  # 80 = 2 full batches + a padded one
    cfg = rich_config(**{"train.epochs": 12, "train.curriculum": PHASES})
    seen: list[int] = []
    result = fit(problem(train, val, cfg), callbacks=[lambda e: seen.append(e["epoch"])])
    # (0 when an earlier test compiled this setup already: JAX caches by the static set-up)
    assert result.counters["compilations"] <= 1
    hist = result.history
    assert seen == list(range(12)) and result.stopped_reason == "max_epochs"
    # the same set-up on other data of the same size reuses the compiled epoch
    again = fit(problem(toy(80, 20), toy(40, 21), cfg))
    assert again.counters["compilations"] == 0
    repeat = fit(problem(train, val, cfg))
    assert repeat.history == [{**h, "seconds": g["seconds"]} for h, g in zip(hist, repeat.history, strict=True)]
    assert [h["physics_scale"] for h in hist[3:7]] == [0.0, 0.0, 0.5, 1.0]
    assert hist[0]["train_mass_scaling"] == 0.0 and hist[-1]["train_mass_scaling"] > 0.0
    assert hist[-1]["train_boundary"] > 0.0 and hist[-1]["val_boundary"] > 0.0
    assert hist[-1]["train_data"] < 0.5 * hist[0]["train_data"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert len(hist[-1]["val_loss_members"]) == 2 and hist[-1]["grad_norm"] > 0
    for key in ("param_norm", "update_norm", "learning_rate", "skipped_steps", "rollbacks", "seconds"):
        assert key in hist[-1]
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(result.params))
    net = Network(cfg.model, LAYOUT)
    preds = [net.apply(member(result.params, m), ARRAYS, val.inputs).mean for m in range(2)]
    assert not np.allclose(preds[0], preds[1], atol=1e-3)


def test_nan_targets_under_mask_are_ignored() -> None:
    clean = toy(96, 2)
    mask = (np.random.default_rng(3).uniform(size=clean.mask.shape) > 0.3).astype(np.float32)
    zeroed = replace(clean, mask=mask, target=np.where(mask > 0, clean.target, 0.0).astype(np.float32))
    poisoned = replace(zeroed, target=np.where(mask > 0, clean.target, np.nan).astype(np.float32))
    cfg = config(**{"train.members": 2, "train.epochs": 5})
    a = fit(problem(zeroed, toy(16, 4), cfg))
    b = fit(problem(poisoned, toy(16, 4), cfg))
    assert b.counters["skipped_steps"] == [0, 0] and b.counters["compilations"] == 0
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_nan_in_valid_targets_skips_steps_and_stays_finite() -> None:
    train = toy(96, 5)
    train.target[17, 2] = np.nan  # exactly one batch per epoch contains row 17
    result = fit(problem(train, toy(16, 6), config(**{"train.members": 2, "train.epochs": 5})))
    assert result.counters["skipped_steps"] == [5, 5]
    assert result.history[-1]["skipped_steps_members"] == [5, 5]
    assert result.counters["rollbacks"] == [0, 0]
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))
    assert np.isfinite(result.history[-1]["train_loss"])
    assert result.history[-1]["train_data"] < result.history[0]["train_data"]


def test_repeated_failures_roll_back_halve_the_rate_then_stop() -> None:
    train = toy(96, 5)
    train.target[17, 2] = np.nan  # one failing step per epoch trips max_consecutive_failures = 1
    cfg = config(**{"train.epochs": 8, "train.max_consecutive_failures": 1, "train.max_rollbacks": 2,
                    "optim.warmup_epochs": 0})
    result = fit(problem(train, toy(32, 8), cfg))
    assert result.counters["rollbacks"] == [2]
    assert result.counters["stop_reason_members"] == ["max_rollbacks"]
    assert result.stopped_reason == "max_rollbacks" and len(result.history) == 3
    lrs = [h["learning_rate"] for h in result.history]
    assert lrs[1] == pytest.approx(lrs[0] / 2) and lrs[2] == pytest.approx(lrs[0] / 4)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))
    assert np.isfinite(result.best_val[0]) and result.best_epoch == [-1]  # the initial model is kept


def test_early_stopping_restores_best_parameters() -> None:
    train = toy(96, 9)
    val = replace(toy(32, 10), target=0.4 * toy(32, 10).target)  # reachable, then overshot
    cfg = config(**{"train.members": 2, "train.epochs": 80, "train.patience": 3})
    result = fit(problem(train, val, cfg))
    assert result.stopped_reason == "early_stopping"
    assert len(result.history) < 80
    net = Network(cfg.model, LAYOUT)
    for m in range(2):
        best = result.best_epoch[m]
        assert 0 <= best < len(result.history) - 1
        val_losses = [h["val_loss_members"][m] for h in result.history]
        assert result.best_val[m] == pytest.approx(min(val_losses))
        assert val_losses[best] == pytest.approx(result.best_val[m])
        out = net.apply(member(result.params, m), ARRAYS, val.inputs)
        restored = data_loss(out.mean, out.var, val.target, val.mask, val.noise_var, cfg.loss)
        assert float(restored) == pytest.approx(result.best_val[m], rel=1e-5)


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    train, val = toy(80, 11), toy(24, 12)
    cfg = rich_config(**{"train.patience": 4, "train.curriculum": [
        Phase(start_epoch=0, dropout=True), Phase(start_epoch=4, physics_scale=0.5, dropout=False)]})
    straight = fit(problem(train, val, cfg))
    first = fit(problem(train, val, cfg), checkpoint_dir=tmp_path, callbacks=[lambda entry: entry["epoch"] == 2])
    assert first.stopped_reason == "callback" and len(first.history) == 3
    assert (tmp_path / "ckpt-000003.npz").is_file()
    resumed = fit(problem(train, val, cfg), checkpoint_dir=tmp_path, resume=True)
    assert len(resumed.history) == 6
    assert [h["train_loss_members"] for h in resumed.history] == [h["train_loss_members"] for h in straight.history]
    assert resumed.best_epoch == straight.best_epoch
    for x, y in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ConfigError, match="seed"):
        fit(problem(train, val, cfg), checkpoint_dir=tmp_path, resume=True, seed=99)


def test_bad_inputs_raise_named_errors() -> None:
    train = toy(16, 13)
    bad = replace(train, inputs={**train.inputs, "params": np.full((16, 2), np.inf, np.float32)})
    with pytest.raises(DataError, match="finite"):
        fit(problem(bad, None, config()))
    with pytest.raises(DataError, match="match"):
        fit(problem(train, replace(train, target=train.target[:, :2]), config()))
    with pytest.raises(ConfigError, match="members"):
        fit(problem(train, None, config()), members=[1, 1])


def test_non_finite_validation_rows_are_left_out_and_never_improve() -> None:
    import jax.numpy as jnp

    from profemu.train.loop import EpochProgram, _checked, _history_entry, _member_validate
    from profemu.train.state import TrainState, end_of_epoch

    train, val = toy(64, 7), toy(32, 8)
    val.inputs["params"][[3, 20], 0] = 1e30
    cfg = config()
    net = Network(cfg.model, LAYOUT)
    params = jax.tree.map(np.array, net.init(jax.random.key(0), ARRAYS))
    params["trunk"]["hidden_0"]["kernel"][0, :] = 1e10  # rows 3 and 20 overflow float32: inf, then NaN
    program = EpochProgram.for_rows(net, cfg, train.n)
    vdata = _checked(val, "val", like=_checked(train, "train"))
    terms, bad = _member_validate(program, params, np.arange(val.n), np.ones(val.n, np.float32), ARRAYS, vdata, 1.0)
    assert np.flatnonzero(np.asarray(bad)).tolist() == [3, 20]
    assert np.isfinite(float(terms["data"]))  # the other rows still give a finite loss
    # an epoch whose validation failed never counts as an improvement, and is counted
    stacked = jax.tree.map(lambda a: jnp.asarray(a)[None], params)
    state = TrainState.start(stacked, (), jnp.zeros((1, 2), jnp.uint32), jnp.asarray([1.0]))
    stats = {"tripped": jnp.asarray([False]), "n_ok": jnp.asarray([2]), "n_failed": jnp.asarray([0]),
             "failures": jnp.asarray([0]), "param_norm": jnp.asarray([1.0])}
    after = end_of_epoch(state, stats, jnp.asarray([0.5]), jnp.asarray([False]), jnp.asarray(0), cfg.train, cfg.optim)
    assert int(after.val_failures[0]) == 1 and int(after.best_epoch[0]) == -1 and float(after.best_val[0]) == 1.0
    good = end_of_epoch(state, stats, jnp.asarray([0.5]), jnp.asarray([True]), jnp.asarray(0), cfg.train, cfg.optim)
    assert int(good.best_epoch[0]) == 0 and float(good.best_val[0]) == 0.5
    # and the history names the member and the rows
    zeros = np.zeros(1)
    m = {k: zeros for k in ("loss", "data", "monotonic", "smoothness", "mass_scaling", "boundary", "grad_norm",
                            "update_norm", "param_norm", "learning_rate")}
    m.update(val={k: zeros for k in ("data", "monotonic", "smoothness", "mass_scaling", "boundary")},
             val_bad_rows=np.asarray(bad)[None], active=np.array([True]))
    host = {"skipped": np.zeros(1, int), "rollbacks": np.zeros(1, int), "best_val": np.ones(1)}
    assert _history_entry(0, m, host, np.array([4]), 1.0, True)["val_failures"] == {4: [3, 20]}


def test_checkpoint_on_request_and_resume_from_previous_when_newest_is_corrupt(tmp_path: Path) -> None:
    train, val = toy(96, 2), toy(16, 4)
    cfg = config(**{"train.members": 2, "train.epochs": 2})
    request = threading.Event()
    request.set()
    fit(problem(train, val, cfg), checkpoint_dir=tmp_path, request_checkpoint=request)
    assert not request.is_set()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["ckpt-000001.npz", "ckpt-000002.npz"]
    newest = tmp_path / "ckpt-000002.npz"
    newest.write_bytes(newest.read_bytes()[:-100])
    longer = config(**{"train.members": 2, "train.epochs": 3})
    with pytest.warns(UserWarning, match="ckpt-000002"):
        resumed = fit(problem(train, val, longer), checkpoint_dir=tmp_path, resume=True)
    straight = fit(problem(train, val, longer))
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert [h["train_loss_members"] for h in resumed.history] == [h["train_loss_members"] for h in straight.history]


def test_power_law_network_trains_with_the_analytic_mass_slope() -> None:
    cfg = rich_config(**{"model.kind": "physics", "model.mass_order": 1, "model.dropout": 0.0})
    result = fit(problem(toy(80, 0), toy(40, 1), cfg))
    hist = result.history
    assert hist[-1]["train_mass_scaling"] > 0.0
    assert hist[-1]["train_data"] < 0.8 * hist[0]["train_data"]


def test_epoch_seconds_count_each_epoch_once() -> None:
    """Epochs are dispatched one ahead of the host reading them: an epoch's seconds start when the one
    before it ended, so the epochs after the first (which compiles) add up to at most the wall time
    they took, not twice it."""
    import time

    cfg = config(**{"model.hidden": [256, 256], "train.epochs": 10, "train.batch_size": 32})
    data = toy(4096, 0)
    fit(problem(data, None, cfg))  # compiled
    t0 = time.perf_counter()
    result = fit(problem(data, None, cfg))
    wall = time.perf_counter() - t0
    seconds = [h["seconds"] for h in result.history]
    assert all(s >= 0 for s in seconds)
    assert sum(seconds) <= wall, (sum(seconds), wall, seconds)
