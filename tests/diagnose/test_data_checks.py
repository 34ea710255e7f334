"""Checks 1-4 on the data alone (profemu.diagnose.data_checks)."""

from __future__ import annotations

import numpy as np

from profemu.config import Config
from profemu.diagnose import check_inputs, check_mask_coverage, check_targets, train_val_shift
from tests.diagnose import replace_dataset


def test_constant_column_fails_inputs_check(universe) -> None:
    ds = universe.dataset
    params = ds.params.copy()
    j = ds.param_names.index("Omega_m")
    params[:, j] = 0.3
    assert check_inputs(ds).passed
    check = check_inputs(replace_dataset(ds, params=params))
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
    check = check_inputs(replace_dataset(ds, params=params), cfg)
    assert not check.passed
    assert "n_s" in check.value and "|z|" in check.value
    assert "input_scaler" in check.advice


def test_implausible_masses_fail_inputs_check(universe) -> None:
    ds = universe.dataset
    check = check_inputs(replace_dataset(ds, log10_mass=ds.log10_mass - 6.0))
    assert not check.passed
    assert "log10_mass" in check.value and "log10(M/Msun)" in check.advice


def test_nan_heavy_field_fails_targets_check(universe, rng) -> None:
    ds = universe.dataset
    assert check_targets(ds).passed
    pth = ds.profiles["pth"].copy()
    holes = rng.random(pth.shape) < 0.7
    holes[:, 0] = False  # every row keeps a valid entry
    pth[holes] = np.nan
    check = check_targets(replace_dataset(ds, profiles={**ds.profiles, "pth": pth}, mask=None))
    assert not check.passed
    assert "pth" in check.value and "valid" in check.value
    assert "pth" in check.advice and "data.fields" in check.advice


def test_placeholder_values_fail_targets_check(universe) -> None:
    ds = universe.dataset
    rho = ds.profiles["rho"].copy()
    rho[5, 3] = 1e-30  # "missing" written as a tiny number
    check = check_targets(replace_dataset(ds, profiles={**ds.profiles, "rho": rho}, mask=None))
    assert not check.passed
    assert "rho" in check.value and "row 5, radius 3" in check.value


def test_empty_outer_radius_fails_mask_coverage(universe) -> None:
    ds = universe.dataset
    assert check_mask_coverage(ds).passed
    temp = ds.profiles["temp"].copy()
    temp[10:, -1] = 0.0  # the outermost bin is empty for almost every halo
    check = check_mask_coverage(replace_dataset(ds, profiles={**ds.profiles, "temp": temp}, mask=None))
    assert not check.passed
    assert "temp" in check.value and f"r={ds.radius[-1]:.3g}" in check.value


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
