"""Checks 5 and 7-9, the probes of the configured model (profemu.diagnose.training_checks)."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from profemu.diagnose import check_overfit, check_training_dynamics, clipped_gradient_norm
from profemu.train.setup import prepare
from tests.diagnose import replace_dataset


def test_model_that_cannot_fit_fails_overfit_check(universe, small_config) -> None:
    prep = prepare(universe.dataset, small_config)
    good = check_overfit(prep, small_config, steps=300)
    assert good.passed, good.value
    tiny = small_config.updated({"model.hidden": [1], "model.activation": "tanh"})
    bad = check_overfit(prepare(universe.dataset, tiny), tiny, steps=300)
    assert not bad.passed
    assert "RMSE" in bad.value
    assert "learning_rate" in bad.advice and "model.hidden" in bad.advice


def test_optimizer_clipping_is_measured() -> None:
    params = {"w": np.zeros(4, np.float32), "b": np.zeros((2, 3), np.float32)}
    grads = {"w": np.full(4, 3.0, np.float32), "b": np.full((2, 3), -2.0, np.float32)}
    norm = float(np.sqrt(4 * 9 + 6 * 4))
    clipped = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3))
    assert float(clipped_gradient_norm(clipped, params, grads)) == pytest.approx(1.0, rel=1e-3)
    unclipped = optax.adamw(1e-3)
    assert float(clipped_gradient_norm(unclipped, params, grads)) == pytest.approx(norm, rel=1e-3)
    assert clipped_gradient_norm(optax.sgd(1e-3), params, grads) is None


def test_absurd_learning_rate_fails_gradient_and_activation_checks(universe, small_config) -> None:
    cfg = small_config.updated({"optim.learning_rate": 50.0})
    grads, activations, _ = check_training_dynamics(prepare(universe.dataset, cfg), cfg, steps=10)
    assert not grads.passed and "learning_rate" in grads.advice
    assert not activations.passed and "activation" in activations.value


def test_exploding_validation_inputs_fail_validation_check(universe, small_config) -> None:
    ds = universe.dataset
    val_rows = prepare(ds, small_config).split.val
    params = ds.params.copy()
    params[val_rows, ds.param_names.index("Omega_m")] = 30.0  # 300 sigma outside the training box
    broken = replace_dataset(ds, params=params)
    prep = prepare(broken, small_config)
    np.testing.assert_array_equal(prep.split.val, val_rows)
    grads, _, validation = check_training_dynamics(prep, small_config, steps=5)
    assert grads.passed, grads.value
    assert not validation.passed
    assert "validation inputs up to |z|" in validation.value and "Omega_m" in validation.value
    assert "training box" in validation.advice

    params[val_rows, ds.param_names.index("Omega_m")] = 3e38  # a float32, but it overflows once scaled
    prep = prepare(replace_dataset(ds, params=params), small_config)
    _, _, validation = check_training_dynamics(prep, small_config, steps=5)
    assert not validation.passed
    assert "non-finite predictions" in validation.value
