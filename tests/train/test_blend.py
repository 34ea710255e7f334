"""The Gaussian process blended into the network's prediction (``train.gp_blend``)."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

from profemu.config import Config
from profemu.data.mock import make_hard_mock, make_mock_universe
from profemu.emulator import Emulator
from profemu.emulator.blend import GPBlend
from profemu.errors import FormatError
from profemu.runs.training import train_emulator
from profemu.train.blend import uses_blend

QUICK = {"train.epochs": 30, "train.members": 2, "train.patience": 10, "train.cv_folds": 3}


@pytest.fixture(scope="module")
def hard() -> tuple:
    universe = make_hard_mock(160, seed=3)
    return universe.dataset.select_fields(["rho"]), np.log10(universe.truth["rho"])


@pytest.fixture(scope="module")
def blended(hard: tuple) -> Emulator:
    ds, _ = hard
    return train_emulator(ds.subset(np.arange(120)), Config().updated({**QUICK, "train.gp_blend": "on"})).emulator


def test_the_blend_is_chosen_out_of_sample_and_never_worse_than_either(blended: Emulator) -> None:
    report = blended.blend.report
    r = report["fields"]["rho"]
    assert 0.0 <= r["weight"] <= 1.0
    # the weight is the best of a grid that holds 0 (the GP) and 1 (the network): on the squared
    # error it cannot lose to either; on the median error it is at most a little off
    assert r["blend_error"] <= 1.02 * min(r["network_error"], r["gp_error"])
    # the GP's inputs are the network's, less R_Delta's shift (a function of the mass and cosmology)
    widths = blended.transforms.layout.block_widths
    assert report["rows"] == 120 and report["inputs"] == sum(w for b, w in widths.items() if b != "r_delta")


def test_the_blend_predicts_on_held_out_rows_and_beats_the_network_alone(hard: tuple, blended: Emulator) -> None:
    ds, truth = hard
    test = ds.subset(np.arange(120, 160))
    alone = train_emulator(ds.subset(np.arange(120)), Config().updated({**QUICK, "train.gp_blend": "off"})).emulator
    assert alone.blend is None

    def error(emu: Emulator) -> float:
        pred = emu.predict(test.params, test.log10_mass, on_extrapolation="ignore")["rho"].mean
        return float(np.median(np.abs(10 ** (pred - truth[120:]) - 1)))

    w = blended.blend.report["fields"]["rho"]["weight"]
    assert w < 1.0  # the GP takes part on this small 35-parameter suite
    assert error(blended) < error(alone)


def test_numpy_jax_and_a_saved_copy_agree(blended: Emulator, hard: tuple, tmp_path) -> None:
    ds, _ = hard
    p, m = ds.params[120:130], ds.log10_mass[120:130]
    pred = blended.predict(p, m, on_extrapolation="ignore")["rho"]
    mean, var = jax.jit(blended.predict_fn)(p, m)
    np.testing.assert_allclose(np.asarray(mean)[:, 0], pred.mean, atol=2e-3)
    np.testing.assert_allclose(np.asarray(var)[:, 0], pred.var, rtol=2e-3, atol=1e-6)
    grad = jax.grad(lambda mass: blended.predict_fn(p[0], mass)[0].sum())(float(m[0]))
    assert np.isfinite(float(grad))
    blended.save(tmp_path / "emu")
    again = Emulator.load(tmp_path / "emu")
    assert again.blend is not None
    np.testing.assert_allclose(again.predict(p, m, on_extrapolation="ignore")["rho"].mean, pred.mean, rtol=1e-12)
    # the variance is the network's, recalibrated for the blended residuals (+ the term beyond the box)
    # (inside the GP's box; a held-out row a little outside it moves towards the network's own scale)
    from profemu.emulator.core import _blend_fade

    support = blended.blend.support(blended.transforms.transform_inputs(p, m, None, None),
                                    fade=_blend_fade(blended.transforms))
    assert np.all(support > 0.99)
    vs = blended.variance_scale
    factor = vs + support * (blended.blend.variance_factor[: blended.transforms.n_r] - vs)
    means, variances = blended.predict_members(p, m, on_extrapolation="ignore")
    network_var = (variances / vs).mean(axis=0) + means.var(axis=0)
    np.testing.assert_allclose(pred.var - pred.extrapolation, factor * network_var[:, 0], rtol=1e-9)



def test_the_gps_share_fades_outside_its_box_in_both_paths(blended: Emulator, hard: tuple) -> None:
    """Beyond its data the GP's mean returns to the mean profile, not the network's trend in mass:
    its share of the blend fades with its kernel (the mass term of the extrapolation variance is
    calibrated on the network), and is whole inside the box."""
    ds, _ = hard
    p = ds.params[:3]
    top = float(ds.log10_mass[:120].max())
    blend, t = blended.blend, blended.transforms
    assert float(blend.report["fields"]["rho"]["weight"]) < 1.0  # the GP takes part here

    from profemu.emulator.blend import FADE
    from profemu.emulator.core import _blend_fade

    fade = _blend_fade(t)
    inside = t.transform_inputs(p, np.full(3, top - 0.2), None, None)
    np.testing.assert_allclose(blend.support(inside, fade=fade), 1.0)  # inside: the fitted stacking, unchanged
    # FADE dex above the training masses the GP keeps exp(-1/2) of its share at most; 1 dex above, none
    near = blend.support(t.transform_inputs(p, np.full(3, top + FADE), None, None), fade=fade)
    assert np.all(near <= np.exp(-0.5) + 1e-9) and np.all(near > 0.3)
    m = np.full(3, top + 1.0)
    assert np.all(blend.support(t.transform_inputs(p, m, None, None), fade=fade) < 1e-12)
    assert np.all(blend.support(t.transform_inputs(p, m, None, None)) > 0.3)  # its own kernel alone keeps a third
    far = blended.predict(p, m, on_extrapolation="ignore")["rho"].mean
    means, _ = blended.predict_members(p, m, on_extrapolation="ignore")
    np.testing.assert_allclose(far, means.mean(axis=0)[:, 0], atol=1e-6)  # the network's own mean
    # ... and its own variance (the blend's factor was fitted for the blended mean)
    pred = blended.predict(p, m, on_extrapolation="ignore")["rho"]
    members, variances = blended.predict_members(p, m, on_extrapolation="ignore")
    network_var = (variances / blended.variance_scale).mean(axis=0)[:, 0] + members.var(axis=0)[:, 0]
    np.testing.assert_allclose(pred.var - pred.extrapolation, blended.variance_scale * network_var, rtol=1e-9)
    assert not np.allclose(blended.variance_scale, blend.variance_factor[: t.n_r])
    mean, _ = jax.jit(blended.predict_fn)(p, m)
    np.testing.assert_allclose(np.asarray(mean)[:, 0], far, atol=2e-3)
    grad = jax.grad(lambda mass: blended.predict_fn(p[0], mass)[0].sum())(top + 0.05)
    assert np.isfinite(float(grad))

def test_a_tampered_blend_is_refused(blended: Emulator) -> None:
    record = blended.blend.to_dict()
    t = blended.transforms
    GPBlend.from_dict(record, block_widths=t.input_blocks, out_dim=t.target_dim)
    for key, value in (("weight", [1.5] * t.target_dim), ("amplitude", -1.0), ("alpha", [[1e300]])):
        with pytest.raises(FormatError, match="gp_blend"):
            GPBlend.from_dict({**record, key: value}, block_widths=t.input_blocks, out_dim=t.target_dim)
    with pytest.raises(FormatError, match="gp_blend"):
        GPBlend.from_dict({**record, "blocks": ["nothere"]}, block_widths=t.input_blocks, out_dim=t.target_dim)


def test_auto_blends_small_many_parameter_suites_only(caplog: pytest.LogCaptureFixture) -> None:
    many = make_hard_mock(40, seed=0).dataset
    few = make_mock_universe(40, seed=0, param_set="lh6", n_r=6).dataset
    cfg = Config()
    assert uses_blend(cfg, many, 40) and uses_blend(cfg, many, 2000) and not uses_blend(cfg, many, 10_000)
    assert uses_blend(cfg, few, 300) and not uses_blend(cfg, few, 400)  # few parameters: small suites only
    assert not uses_blend(cfg.updated({"model.monotone_head": True}), many, 40)
    assert uses_blend(cfg.updated({"train.gp_blend": "on"}), few, 4000)
    assert not uses_blend(cfg.updated({"train.gp_blend": "off"}), many, 40)
    # without cross-validation there is nothing to weigh the blend on: skipped, and said so
    with caplog.at_level(logging.INFO, logger="profemu.runs.training"):
        emu = train_emulator(many.select_fields(["rho"]), cfg.updated(
            {"train.cv_folds": 0, "train.epochs": 2, "train.members": 1, "train.gp_blend": "on"})).emulator
    assert emu.blend is None
    assert any("GP blend skipped" in r.getMessage() for r in caplog.records)


def test_leave_one_simulation_out_means_match_refitting_without_it() -> None:
    import math

    from profemu.train.blend import _condition

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    groups = np.repeat(np.arange(15), 2)  # two rows (mass bins) per simulation
    theta = np.log([1.0, 1.0, 1.5, 0.8, 0.1])

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = (((a[:, None, :] - b[None, :, :]) / np.exp(theta[1:-1])) ** 2).sum(-1)
        return math.exp(theta[0]) * np.exp(-0.5 * d2)

    _, loo = _condition(theta, x, y, groups)
    _, loo_rows = _condition(theta, x, y)
    for g in range(15):
        held, kept = groups == g, groups != g
        k = kernel(x[kept], x[kept]) + (math.exp(theta[-1]) + 1e-10) * np.eye(kept.sum())
        refit = kernel(x[held], x[kept]) @ np.linalg.solve(k, y[kept])
        np.testing.assert_allclose(loo[held], refit, atol=1e-10)
    assert np.abs(loo - loo_rows).max() > 1e-3  # holding out a row alone is not the same


def test_amplitude_and_noise_are_refitted_on_every_column() -> None:
    from profemu.train.blend import _amplitude_and_noise

    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, size=(300, 2))
    sq = (x**2).sum(axis=1)
    corr = np.exp(-0.5 * np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))
    s_true, n_true = 2.0, 0.1
    chol = np.linalg.cholesky(s_true * corr + n_true * np.eye(300))
    y = chol @ rng.normal(size=(300, 40))
    start = np.log(np.array([1.0, 1.0, 1.0, 1e-3]))  # log [s, l1, l2, n]: amplitude and noise both wrong
    out = _amplitude_and_noise(start, x, y)
    np.testing.assert_array_equal(out[1:-1], start[1:-1])  # the length scales are kept
    assert np.exp(out[0]) == pytest.approx(s_true, rel=0.25)
    assert np.exp(out[-1]) == pytest.approx(n_true, rel=0.1)


def test_a_noiseless_suite_gets_a_gp_that_float32_evaluates_smoothly(caplog: pytest.LogCaptureFixture) -> None:
    """Noiseless rows make the GP interpolate (noise ~1e-8, alpha ~1e4): k @ alpha in float32, as
    predict_fn computes it, then jittered by 1e-2 dex between neighbouring inputs and HMC stalled.
    The blend raises its noise until float32 matches float64 at the training rows; predict_fn then
    moves smoothly along a parameter, as the float64 numpy path does."""
    from profemu.train.blend import FLOAT32_TOLERANCE, _float32_error

    ds = make_mock_universe(n=240, seed=6, param_set="sb35", with_pk=False, n_r=8).dataset.select_fields(["rho"])
    with caplog.at_level(logging.INFO, logger="profemu.train.blend"):
        emu = train_emulator(ds, Config().updated({**QUICK, "train.gp_blend": "on"})).emulator
    assert any("GP blend: noise raised" in r.getMessage() for r in caplog.records)
    b = emu.blend
    theta = np.log(np.r_[b.amplitude, b.length_scales, 1.0])
    assert _float32_error(theta, b.x, b.alpha) <= FLOAT32_TOLERANCE
    steps = np.tile(ds.params[:1], (11, 1))
    steps[:, 0] += np.linspace(-1e-4, 1e-4, 11)  # Omega_m, 2e-5 apart
    mass = np.full(11, ds.log10_mass[0])
    jax_mean = np.asarray(jax.jit(emu.predict_fn)(steps, mass)[0])[:, 0, :]
    numpy_mean = emu.predict(steps, mass, on_extrapolation="ignore")["rho"].mean
    assert np.max(np.abs(np.diff(jax_mean, axis=0) - np.diff(numpy_mean, axis=0))) < 2e-4


def test_the_raised_noise_is_the_least_that_passes_within_the_last_tenfold_step() -> None:
    """A tenfold raise may overshoot (on the hard mock it took the network's weight from 0.20 to
    0.45): the noise kept is the least of the levels tried within the last step that passes."""
    from profemu.train import blend as B

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (200, 2))
    y = np.sin(3.0 * x[:, :1]) * np.cos(2.0 * x[:, 1:])  # noiseless: the GP interpolates
    theta = np.log(np.array([1.0, 0.5, 0.5, 1e-10]))

    def passes(level: np.ndarray) -> bool:
        return B._float32_error(level, x, B._condition(level, x, y, None)[0]) <= B.FLOAT32_TOLERANCE

    assert not passes(theta)
    kept, _, _ = B._float32_stable(theta, x, y, *B._condition(theta, x, y, None), None)
    coarse = theta.copy()  # what tenfold raises alone keep
    while not passes(coarse):
        coarse[-1] = max(coarse[-1], coarse[0] + np.log(1e-9)) + np.log(B.NOISE_STEP)
    assert passes(kept) and kept[-1] < coarse[-1] - 0.5  # within the last step, well below its top
    below = kept.copy()
    below[-1] -= np.log(B.NOISE_STEP) / 3.0
    assert not passes(below)  # and the level below it fails
