"""Tests of the stability checklist (profemu.diagnose)."""

from __future__ import annotations

import dataclasses

import numpy as np
import optax
import pytest

from profemu import diagnose
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.mock import make_mock_universe
from profemu.diagnose import (
    CHECK_NAMES,
    Check,
    check_inputs,
    check_mask_coverage,
    check_overfit,
    check_targets,
    check_training_dynamics,
    clipped_gradient_norm,
    format_checks,
    run_diagnostics,
    train_val_shift,
)
from profemu.train.setup import prepare

SMALL = {"model.hidden": [32, 32], "train.batch_size": 32}
# the quick truth-recovery run needs some capacity (a [32, 32] MLP misses by ~0.02 dex)
MEDIUM = {"model.hidden": [128, 128]}


@pytest.fixture(scope="module")
def universe():
    return make_mock_universe(n=320, seed=5, noise_dex=0.02)


@pytest.fixture(scope="module")
def small_config() -> Config:
    return Config().updated(SMALL)


def _replace(ds: ProfileDataset, **changes) -> ProfileDataset:
    """A copy of ``ds`` with some constructor arguments replaced."""
    kwargs = {f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}
    kwargs.update(changes)
    return ProfileDataset(**kwargs)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# --------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_clean_mock_universe_passes_every_check(universe) -> None:
    checks = run_diagnostics(universe.dataset, Config().updated(MEDIUM), seed=0, quick=True)
    assert [c.name for c in checks] == list(CHECK_NAMES)
    failed = [(c.name, c.value) for c in checks if not c.passed]
    assert not failed, failed
    assert all(c.value for c in checks)
    table = format_checks(checks)
    assert f"all {len(CHECK_NAMES)} checks passed" in table
    for name in CHECK_NAMES:
        assert name in table


def test_format_checks_shows_failures_with_advice() -> None:
    checks = [Check("a", True, "fine"), Check("mask coverage", False, "3 bins empty", "cut them")]
    table = format_checks(checks)
    lines = table.splitlines()
    assert any("mask coverage" in ln and "FAIL" in ln and "3 bins empty" in ln for ln in lines)
    assert any("cut them" in ln for ln in lines)
    assert lines[-1] == "1 of 2 check(s) failed"


def test_check_is_frozen() -> None:
    c = Check("x", True, "v")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.passed = False  # type: ignore[misc]


def test_unusable_split_reports_instead_of_raising(universe, small_config, monkeypatch) -> None:
    # the mock-universe check does not depend on the data; skip its training here
    monkeypatch.setattr(diagnose, "check_truth_recovery", lambda *a, **k: Check("x", True, "skipped"))
    cfg = small_config.updated({"data.fields": ["not_a_field"]})
    checks = _by_name(run_diagnostics(universe.dataset, cfg, quick=True))
    for name in ("train/validation shift", "overfit 8 examples", "gradient norms"):
        assert not checks[name].passed
        assert "not_a_field" in checks[name].value


# ------------------------------------------------------------------ 1-3: the data
def test_constant_column_fails_inputs_check(universe) -> None:
    ds = universe.dataset
    params = ds.params.copy()
    j = ds.param_names.index("Omega_m")
    params[:, j] = 0.3
    assert check_inputs(ds).passed
    check = check_inputs(_replace(ds, params=params))
    assert not check.passed
    assert "Omega_m" in check.value and "constant" in check.value
    assert "drop" in check.advice


def test_ultra_scaled_column_fails_inputs_check(universe) -> None:
    ds = universe.dataset
    params = ds.params.copy()
    j = ds.param_names.index("n_s")
    params[:, j] = 0.96
    params[:3, j] = 1.1  # robust scale 0 (MAD of a near-constant column) with outliers
    cfg = Config().updated({"data.input_scaler": "robust"})
    check = check_inputs(_replace(ds, params=params), cfg)
    assert not check.passed
    assert "n_s" in check.value and "|z|" in check.value
    assert "input_scaler" in check.advice


def test_implausible_masses_fail_inputs_check(universe) -> None:
    ds = universe.dataset
    check = check_inputs(_replace(ds, log10_mass=ds.log10_mass - 6.0))
    assert not check.passed
    assert "log10_mass" in check.value and "log10(M/Msun)" in check.advice


def test_nan_heavy_field_fails_targets_check(universe, rng) -> None:
    ds = universe.dataset
    assert check_targets(ds).passed
    pth = ds.profiles["pth"].copy()
    holes = rng.random(pth.shape) < 0.7
    holes[:, 0] = False  # every row keeps a valid entry
    pth[holes] = np.nan
    check = check_targets(_replace(ds, profiles={**ds.profiles, "pth": pth}, mask=None))
    assert not check.passed
    assert "pth" in check.value and "valid" in check.value
    assert "pth" in check.advice and "data.fields" in check.advice


def test_placeholder_values_fail_targets_check(universe) -> None:
    ds = universe.dataset
    rho = ds.profiles["rho"].copy()
    rho[5, 3] = 1e-30  # "missing" written as a tiny number
    check = check_targets(_replace(ds, profiles={**ds.profiles, "rho": rho}, mask=None))
    assert not check.passed
    assert "rho" in check.value and "row 5, radius 3" in check.value


def test_empty_outer_radius_fails_mask_coverage(universe) -> None:
    ds = universe.dataset
    assert check_mask_coverage(ds).passed
    temp = ds.profiles["temp"].copy()
    temp[10:, -1] = 0.0  # the outermost bin is empty for almost every halo
    check = check_mask_coverage(_replace(ds, profiles={**ds.profiles, "temp": temp}, mask=None))
    assert not check.passed
    assert "temp" in check.value and f"r={ds.radius[-1]:.3g}" in check.value


# ---------------------------------------------------------------------- 4: shift
def test_ks_helper_flags_a_shifted_validation_input(rng) -> None:
    train = {"Omega_m": rng.uniform(0.1, 0.5, 300), "sigma_8": rng.uniform(0.6, 1.0, 300)}
    same = {"Omega_m": rng.uniform(0.1, 0.5, 60), "sigma_8": rng.uniform(0.6, 1.0, 60)}
    shifted = {"Omega_m": rng.uniform(0.1, 0.5, 60), "sigma_8": rng.uniform(0.9, 1.2, 60)}
    ok = train_val_shift(train, same)
    assert ok.passed, ok.value
    bad = train_val_shift(train, shifted)
    assert not bad.passed
    assert "sigma_8" in bad.value and "Omega_m" not in bad.value
    assert "split_seed" in bad.advice


def test_ks_helper_needs_a_large_and_significant_shift(rng) -> None:
    train = {"x": rng.normal(0.0, 1.0, 20_000)}
    val = {"x": rng.normal(0.1, 1.0, 20_000)}  # significant (p ~ 0) but small (KS ~ 0.04)
    assert train_val_shift(train, val).passed
    assert not train_val_shift(train, val, ks_threshold=0.02).passed


# -------------------------------------------------------------- 5, 7-9: the model
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
    broken = _replace(ds, params=params)
    prep = prepare(broken, small_config)
    np.testing.assert_array_equal(prep.split.val, val_rows)
    grads, _, validation = check_training_dynamics(prep, small_config, steps=5)
    assert grads.passed, grads.value
    assert not validation.passed
    assert "validation inputs up to |z|" in validation.value and "Omega_m" in validation.value
    assert "training box" in validation.advice

    params[val_rows, ds.param_names.index("Omega_m")] = 3e38  # a float32, but it overflows once scaled
    prep = prepare(_replace(ds, params=params), small_config)
    _, _, validation = check_training_dynamics(prep, small_config, steps=5)
    assert not validation.passed
    assert "non-finite predictions" in validation.value
