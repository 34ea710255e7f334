"""Tests of profemu.metrics on synthetic predictions with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError
from profemu.metrics import (
    calibration_curve,
    evaluate,
    evaluate_predictions,
    fit_variance_scale,
    noise_floor_quantile,
    profile_metrics,
    write_metrics,
)

BASE_KEYS = {"frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "nll",
             "coverage_68", "coverage_95", "per_radius", "n_valid"}
NOISE_KEYS = {"coverage_68_model", "coverage_95_model", "nll_model", "noise_floor_frac_median",
              "noise_floor_frac_p68", "error_to_noise_floor"}


def _truth(rng: np.random.Generator, n: int = 400, n_r: int = 10) -> np.ndarray:
    x = np.linspace(-2, 0, n_r)
    return 3.0 - 2.0 * x[None, :] + 0.3 * rng.standard_normal((n, 1))


def test_perfect_prediction_has_zero_error(rng: np.random.Generator) -> None:
    true = _truth(rng)
    var = np.full(true.shape, 0.01)
    m = profile_metrics(true, var, true, np.ones(true.shape, bool))
    assert set(m) == BASE_KEYS
    assert m["frac_err_median"] == 0.0 and m["frac_err_p95"] == 0.0 and m["rmse_dex"] == 0.0
    assert m["coverage_68"] == 1.0
    assert m["n_valid"] == true.size
    # NLL of a zero residual: 0.5 * log(2 pi var)
    assert m["nll"] == pytest.approx(0.5 * math.log(2 * math.pi * 0.01))
    assert len(m["per_radius"]["frac_err_median"]) == true.shape[1]


def test_constant_offset_gives_known_fractional_error(rng: np.random.Generator) -> None:
    true = _truth(rng)
    pred = true + 0.1  # every entry 0.1 dex high: fractional error 10^0.1 - 1
    m = profile_metrics(pred, np.full(true.shape, 0.04), true, np.ones(true.shape, bool))
    assert m["frac_err_median"] == pytest.approx(10**0.1 - 1, rel=1e-12)
    assert m["rmse_dex"] == pytest.approx(0.1, rel=1e-12)
    # |err| = 0.1 <= 0.9945 * 0.2: inside the 68% interval everywhere
    assert m["coverage_68"] == 1.0


def test_coverage_of_correct_gaussian_errors(rng: np.random.Generator) -> None:
    n, n_r = 4000, 10
    true = _truth(rng, n, n_r)
    sigma = rng.uniform(0.02, 0.2, size=(n, n_r))
    pred = true + sigma * rng.standard_normal((n, n_r))
    m = profile_metrics(pred, sigma**2, true, np.ones((n, n_r), bool))
    assert m["coverage_68"] == pytest.approx(0.68, abs=0.015)
    assert m["coverage_95"] == pytest.approx(0.95, abs=0.01)
    # expected NLL of a calibrated Gaussian: 0.5 * (log(2 pi) + E[log var] + 1)
    expected = 0.5 * (math.log(2 * math.pi) + np.mean(np.log(sigma**2)) + 1.0)
    assert m["nll"] == pytest.approx(expected, abs=0.02)
    # too-narrow variance under-covers
    narrow = profile_metrics(pred, sigma**2 / 9, true, np.ones((n, n_r), bool))
    assert narrow["coverage_68"] < 0.35


def test_masked_entries_are_excluded(rng: np.random.Generator) -> None:
    true = _truth(rng, 50, 6)
    pred = true.copy()
    mask = np.ones(true.shape, bool)
    mask[:, 0] = False
    pred[:, 0] += 5.0  # huge error, but masked
    pred[3, 2] = np.nan  # a NaN prediction where the mask is False is ignored too
    mask[3, 2] = False
    m = profile_metrics(pred, np.full(true.shape, 0.01), true, mask)
    assert m["frac_err_p95"] == 0.0
    assert m["n_valid"] == int(mask.sum())
    assert m["per_radius"]["frac_err_median"][0] is None  # column without valid entries
    # the same error unmasked is seen
    m_all = profile_metrics(np.nan_to_num(pred), np.full(true.shape, 0.01), true, np.ones(true.shape, bool))
    assert m_all["frac_err_p95"] > 1.0


def test_nan_truth_is_invalid_and_bad_prediction_raises(rng: np.random.Generator) -> None:
    true = _truth(rng, 20, 5)
    true[0, 0] = np.nan
    m = profile_metrics(true, np.ones(true.shape), true, np.ones(true.shape, bool))
    assert m["n_valid"] == true.size - 1
    bad = true.copy()
    bad[1, 1] = np.inf
    with pytest.raises(DataError, match="row 1, column 1"):
        profile_metrics(bad, np.ones(true.shape), true, np.ones(true.shape, bool))
    with pytest.raises(DataError, match="shape"):
        profile_metrics(true[:, :3], np.ones(true.shape), true, np.ones(true.shape, bool))


def test_noise_floor_matches_independent_monte_carlo() -> None:
    sigma = 0.02
    draws = np.random.default_rng(7).normal(0.0, sigma, size=2_000_000)
    frac = np.abs(10.0**draws - 1.0)
    mc_median, mc_p68 = np.quantile(frac, [0.5, 0.68])
    exact = noise_floor_quantile(np.full(100, sigma), [0.5, 0.68])
    assert exact[0] == pytest.approx(mc_median, rel=3e-3)
    assert exact[1] == pytest.approx(mc_p68, rel=3e-3)
    # small-noise limit: median |10^e - 1| ≈ ln(10) * 0.6745 * sigma
    assert exact[0] == pytest.approx(math.log(10) * 0.6745 * sigma, rel=0.01)
    # a mixture: half the elements noiseless
    mixed = noise_floor_quantile(np.r_[np.zeros(100), np.full(100, sigma)], 0.75)[0]
    assert mixed == pytest.approx(exact[0], rel=1e-6)


def test_noise_keys_and_coverage_with_noise(rng: np.random.Generator) -> None:
    n, n_r = 3000, 8
    clean = _truth(rng, n, n_r)
    noise = np.full((n, n_r), 0.05)
    noisy_target = clean + noise * rng.standard_normal((n, n_r))
    model_sd = 0.03
    pred = clean + model_sd * rng.standard_normal((n, n_r))
    m = profile_metrics(pred, np.full((n, n_r), model_sd**2), noisy_target, np.ones((n, n_r), bool), noise)
    assert set(m) == BASE_KEYS | NOISE_KEYS
    assert m["nll"] < m["nll_model"]  # the noisy target is likelier once its noise is counted
    assert m["coverage_68"] == pytest.approx(0.68, abs=0.02)  # honest: var + noise^2
    assert m["coverage_68_model"] < 0.5  # model variance alone ignores the target noise
    # perfect noiseless emulator against the noisy target sits at the floor
    perfect = profile_metrics(clean, np.full((n, n_r), 1e-6), noisy_target, np.ones((n, n_r), bool), noise)
    assert perfect["error_to_noise_floor"] == pytest.approx(1.0, abs=0.05)
    assert m["error_to_noise_floor"] > perfect["error_to_noise_floor"]


def test_fit_variance_scale_recovers_misscaled_variance(rng: np.random.Generator) -> None:
    n, n_r = 2000, 8
    clean = _truth(rng, n, n_r)
    var = rng.uniform(0.001, 0.01, size=(n, n_r))
    noise = np.full((n, n_r), 0.03)
    scale_true = 4.0
    target = clean + np.sqrt(scale_true * var + noise**2) * rng.standard_normal((n, n_r))
    ds = _dataset(target, noise)
    s = fit_variance_scale({"rho": (clean, var)}, ds)
    assert s == pytest.approx(scale_true, rel=0.1)
    # without noise the optimum is mean(err^2 / var) in closed form
    ds_clean = _dataset(clean + np.sqrt(0.25 * var) * rng.standard_normal((n, n_r)), None)
    err = ds_clean.log10_profile("rho") - clean
    s0 = fit_variance_scale({"rho": (clean, var)}, ds_clean)
    assert s0 == pytest.approx(float(np.mean(err**2 / var)), rel=1e-5)
    # clipped to [1e-3, 1e3]
    assert fit_variance_scale({"rho": (clean, var * 1e9)}, ds_clean) == pytest.approx(1e-3)


def test_fit_variance_scale_keeps_known_variance_unscaled(rng: np.random.Generator) -> None:
    """A known extra variance (a single network's excess over the ensemble) is not absorbed
    into the scale: the scale of the model variance is recovered; ignoring it biases it."""
    n, n_r = 3000, 8
    clean = _truth(rng, n, n_r)
    var = rng.uniform(0.001, 0.01, size=(n, n_r))
    excess = rng.uniform(0.0, 0.02, size=(n, n_r))
    noise = np.full((n, n_r), 0.02)
    target = clean + np.sqrt(1.5 * var + excess + noise**2) * rng.standard_normal((n, n_r))
    ds = _dataset(target, noise)
    assert fit_variance_scale({"rho": (clean, var)}, ds, known_var={"rho": excess}) == pytest.approx(1.5, rel=0.1)
    assert fit_variance_scale({"rho": (clean, var)}, ds) > 2.5


def test_calibration_curve_is_diagonal_for_calibrated_errors(rng: np.random.Generator) -> None:
    n, n_r = 3000, 6
    true = _truth(rng, n, n_r)
    sd = 0.1
    pred = true + sd * rng.standard_normal((n, n_r))
    levels, observed = calibration_curve(pred, np.full((n, n_r), sd**2), true, np.ones((n, n_r), bool))
    assert levels.shape == observed.shape == (19,)
    np.testing.assert_allclose(observed, levels, atol=0.02)
    _, wide = calibration_curve(pred, np.full((n, n_r), (3 * sd) ** 2), true, np.ones((n, n_r), bool))
    assert (wide[:-1] > levels[:-1] + 0.05).all()


def _dataset(log10_rho: np.ndarray, noise: np.ndarray | None, rng_seed: int = 0) -> ProfileDataset:
    n, n_r = log10_rho.shape
    rng = np.random.default_rng(rng_seed)
    return ProfileDataset(
        params=rng.uniform(0.5, 2.0, size=(n, 2)), param_names=("a", "b"),
        log10_mass=np.full(n, 12.0), radius=np.logspace(-2, 0, n_r), profiles={"rho": 10.0**log10_rho},
        noise=None if noise is None else {"rho": noise},
    )


class _ShiftPredictor:
    """Predicts the stored truth shifted by a known offset (duck-typed Emulator)."""

    def __init__(self, truth: ProfileDataset, offset: float) -> None:
        self.truth = truth
        self.offset = offset
        self.calls = 0

    def predict(self, params, log10_mass, pk_ratio=None, redshift=None):
        self.calls += 1
        rows = [int(np.flatnonzero((self.truth.params == p).all(axis=1))[0]) for p in params]
        mean = np.nan_to_num(self.truth.log10_profile("rho")[rows]) + self.offset
        return {"rho": (mean, np.full(mean.shape, 0.01))}


def test_evaluate_with_dataset_split_and_json(tmp_path, rng: np.random.Generator) -> None:
    true = _truth(rng, 60, 5)
    ds = _dataset(true, np.full(true.shape, 0.02))
    predictor = _ShiftPredictor(ds, 0.05)
    out = evaluate(predictor, ds, split=np.arange(10, 30))
    assert predictor.calls == 1  # one batched call for the whole split
    assert set(out) == {"fields", "overall"} and set(out["fields"]) == {"rho"}
    assert out["overall"]["n_valid"] == 20 * 5
    assert out["fields"]["rho"]["frac_err_median"] == pytest.approx(10**0.05 - 1)
    path = write_metrics(out, tmp_path / "sub" / "metrics.json")
    loaded = json.loads(path.read_text())
    assert loaded["fields"]["rho"]["n_valid"] == 100
    with pytest.raises(DataError, match="split"):
        evaluate(predictor, ds, split=np.array([], dtype=int))


def test_evaluate_predictions_pools_fields_and_rejects_unknown(rng: np.random.Generator) -> None:
    a = _truth(rng, 30, 4)
    b = a + 1.0
    pred = {"rho": (a + 0.1, np.ones(a.shape)), "pth": (b, np.ones(b.shape))}
    out = evaluate_predictions(pred, {"rho": a, "pth": b})
    assert out["overall"]["n_valid"] == 2 * a.size
    assert out["overall"]["frac_err_median"] == pytest.approx(0.5 * (10**0.1 - 1), rel=1e-12)
    with pytest.raises(DataError, match="temp"):
        evaluate_predictions({"temp": (a, np.ones(a.shape))}, {"rho": a})
    # every value is a plain Python type: strict JSON round trip works
    json.dumps(out, allow_nan=False)
