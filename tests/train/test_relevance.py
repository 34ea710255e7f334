"""Input relevance (ARD): weights from a GP's length scales, applied and saved by the Transforms."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.mock import make_hard_mock, make_mock_universe
from profemu.data.transforms import Transforms
from profemu.errors import FormatError
from profemu.train import relevance
from profemu.train.relevance import (
    ARD_COMPONENTS,
    AUTO_MAX_ROWS,
    AUTO_MIN_PARAMS,
    ard_weights,
    fit_relevance,
    uses_relevance,
)
from profemu.train.setup import fit_transforms


@pytest.fixture(scope="module")
def hard():  # 35 SB35 parameters of which a handful act, 0.2-0.4 dex single-halo scatter
    return make_hard_mock(250, seed=2).dataset


def test_auto_weights_many_parameter_small_suites_only(hard) -> None:
    assert len(hard.param_names) >= AUTO_MIN_PARAMS and hard.n <= AUTO_MAX_ROWS
    assert uses_relevance("auto", hard)
    lh6 = make_mock_universe(n=50, seed=0, param_set="lh6", with_pk=False).dataset
    assert not uses_relevance("auto", lh6)  # 6 parameters: every one is plausibly relevant
    assert uses_relevance("ard", lh6) and not uses_relevance("off", hard)


def test_acting_parameters_outweigh_inert_ones(hard) -> None:
    weights, scales = ard_weights(hard, ("rho",), seed=0)
    assert weights.shape == (35,) and np.all((weights > 0) & (weights <= 1)) and weights.max() == 1.0
    assert set(scales) >= set(hard.param_names)
    by_name = dict(zip(hard.param_names, weights, strict=True))
    acting = hard.meta["acting_parameters"]
    strong = [n for n in ("Omega_m", "A_SN1", "A_AGN1") if n in acting]
    inert = hard.meta["inert_parameters"]
    assert len(strong) == 3 and len(inert) >= 20
    # The strong drivers keep a weight of order one; the inert ones are pushed towards zero.
    assert min(by_name[n] for n in strong) > 0.2, {n: by_name[n] for n in strong}
    assert np.median([by_name[n] for n in inert]) < 0.05
    assert min(by_name[n] for n in strong) > 5 * np.median([by_name[n] for n in inert])


def test_transforms_apply_save_and_validate_the_weights(hard) -> None:
    off = fit_transforms(hard, DataConfig(fields=("rho",), input_relevance="off"))
    ard = fit_transforms(hard, DataConfig(fields=("rho",), input_relevance="auto"))
    assert np.all(off.param_weights == 1.0) and ard.param_weights.min() < 0.05
    np.testing.assert_array_equal(ard.param_weights, ard_weights(hard, ("rho",), seed=0)[0])  # cached
    a = np.asarray(off.transform_inputs(hard.params[:5], hard.log10_mass[:5])["params"])
    b = np.asarray(ard.transform_inputs(hard.params[:5], hard.log10_mass[:5])["params"])
    np.testing.assert_allclose(b, a * ard.param_weights, rtol=1e-6, atol=1e-9)
    again = Transforms.from_dict(json.loads(json.dumps(ard.to_dict())))
    np.testing.assert_array_equal(again.param_weights, ard.param_weights)
    for bad in ([0.5] * 3, [0.0] + [1.0] * 34, [2.0] * 35, [float("nan")] * 35):
        d = json.loads(json.dumps(ard.to_dict()))
        d["param_weights"] = bad
        with pytest.raises(FormatError, match="param_weights"):
            Transforms.from_dict(d).check_numbers()


def test_relevance_rows_sets_the_rows_the_gp_sees(hard, caplog: pytest.LogCaptureFixture) -> None:
    from profemu.config import Config
    from profemu.errors import ConfigError

    with caplog.at_level("INFO", logger="profemu.train.relevance"):
        few = fit_transforms(hard, DataConfig(fields=("rho",), input_relevance="ard", relevance_rows=60))
    assert "ARD GP on 60 rows" in caplog.text
    np.testing.assert_array_equal(few.param_weights, ard_weights(hard, ("rho",), seed=0, max_rows=60)[0])
    assert not np.array_equal(few.param_weights, ard_weights(hard, ("rho",), seed=0)[0])  # 250 rows: other fit
    with pytest.raises(ConfigError, match=r"data.relevance_rows: value 5 is out of range"):
        Config().updated({"data.relevance_rows": 5})


# ---------------------------------------------------------------------- the cheap fit
def _synthetic(n: int = 160, seed: int = 0) -> ProfileDataset:
    """12 parameters of which only ``p0`` (strongly) and ``p1`` (weakly) shape the profiles,
    plus mass; 20 radii, 0.02 dex of noise."""
    rng = np.random.default_rng(seed)
    params = rng.uniform(0.0, 1.0, (n, 12))
    log10_mass = rng.uniform(12.0, 14.0, n)
    x = np.geomspace(0.05, 2.0, 20)[None, :]
    slope = 1.0 + 1.5 * params[:, :1] + 0.2 * params[:, 1:2] + 0.2 * (log10_mass[:, None] - 13.0)
    log_rho = 5.0 - slope * np.log10(x) - 1.2 * np.log10(1.0 + x / 0.3) + 0.02 * rng.standard_normal((n, 20))
    return ProfileDataset(params=params, param_names=tuple(f"p{j}" for j in range(12)),
                          log10_mass=log10_mass, radius=np.geomspace(0.05, 2.0, 20),
                          profiles={"rho": 10.0**log_rho}, groups=np.arange(n))


@pytest.fixture(scope="module")
def synthetic() -> ProfileDataset:
    return _synthetic()


def test_cheap_fit_ranks_the_acting_parameter_first(synthetic) -> None:
    fit = fit_relevance(synthetic, ("rho",), seed=0)
    w = dict(zip(synthetic.param_names, fit.weights, strict=True))
    assert w["p0"] == 1.0, w  # the strong driver is the most relevant parameter
    inert = [w[f"p{j}"] for j in range(2, 12)]
    assert w["p1"] > max(inert), w  # the weak driver still outranks every inert parameter
    assert max(inert) < 0.05 and w["p1"] > 0.05, w
    assert fit.length_scales["log10_mass"] < 1e2  # mass acts too
    # what was fitted: the leading components of the 20 columns, on every row, all 13 inputs
    assert (fit.rows, fit.columns, fit.components, fit.inputs) == (160, 20, ARD_COMPONENTS, 13)
    assert 0.9 < fit.explained <= 1.0 and fit.starts == 1 and fit.evaluations >= 5


def test_constant_parameters_get_the_floor_and_leave_the_others_alone(synthetic) -> None:
    """Fixed columns of an SB-like suite (constant over the rows) carry no information: they get
    the floor weight and do not set the scale of the others (the driver keeps weight 1)."""
    params = np.column_stack([synthetic.params, np.full(synthetic.n, 0.049), np.full(synthetic.n, 0.6711)])
    ds = ProfileDataset(params=params, param_names=(*synthetic.param_names, "OmegaBaryon", "HubbleParam"),
                        log10_mass=synthetic.log10_mass, radius=synthetic.radius, profiles=synthetic.profiles,
                        groups=synthetic.groups)
    w = dict(zip(ds.param_names, fit_relevance(ds, ("rho",), seed=0).weights, strict=True))
    assert w["OmegaBaryon"] == w["HubbleParam"] == relevance.WEIGHT_FLOOR, w
    assert w["p0"] == 1.0 and w["p1"] > 0.05, w


def test_cheap_fit_is_deterministic_for_a_seed(synthetic) -> None:
    a = fit_relevance(synthetic, ("rho",), seed=3, max_rows=100)
    b = fit_relevance(synthetic, ("rho",), seed=3, max_rows=100)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.length_scales == b.length_scales and a.log_ml == b.log_ml and a.evaluations == b.evaluations
    other = fit_relevance(synthetic, ("rho",), seed=4, max_rows=100)  # another choice of 100 rows
    assert not np.array_equal(a.weights, other.weights)
    assert other.weights.argmax() == 0


def test_fit_stops_at_the_iteration_cap_and_uses_one_blas_thread(synthetic, monkeypatch) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    import profemu.baselines.gp as gp

    real, threads = gp.gp_neg_log_marginal_likelihood, []

    def spy(theta, x, y):
        threads.append(max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"),
                           default=1))
        assert y.shape[1] == ARD_COMPONENTS  # the GP sees the components, not the 20 columns
        return real(theta, x, y)

    monkeypatch.setattr(gp, "gp_neg_log_marginal_likelihood", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        fit = fit_relevance(synthetic, ("rho",), seed=0, maxiter=4)
    assert fit.status == "iteration limit" and fit.iterations <= 4 * fit.starts
    assert len(threads) == fit.evaluations and set(threads) == {1}


def test_log_line_says_what_was_fitted_and_how_long_it_took(synthetic, caplog, monkeypatch) -> None:
    monkeypatch.setattr(relevance, "_CACHE", type(relevance._CACHE)())
    with caplog.at_level("INFO", logger="profemu.train.relevance"):
        weights, _ = ard_weights(synthetic, ("rho",), seed=0, max_rows=120)
    line = [r.getMessage() for r in caplog.records if "weight >= 0.05" in r.getMessage()]
    assert len(line) == 1, caplog.text
    m = re.search(r"ARD GP on 120 rows: 5 leading PCA components \((\d+\.\d)% of the variance\) of 20 "
                  r"standardised log10 profile columns, 13 inputs; (\d+) evaluations, 1 start \((converged|"
                  r"iteration limit|stopped early)\), (\d+\.\d) s", line[0])
    assert m, line[0]
    assert 90.0 < float(m.group(1)) <= 100.0 and int(m.group(2)) >= 5 and float(m.group(4)) < 60.0
    assert re.search(r"(\d+) of 12 parameters with weight >= 0.05: p0 1, p1 ", line[0]), line[0]
    caplog.clear()
    with caplog.at_level("INFO", logger="profemu.train.relevance"):
        again, _ = ard_weights(synthetic, ("rho",), seed=0, max_rows=120)  # cached: no refit
    assert "already fitted" in caplog.text and "evaluations" not in caplog.text
    np.testing.assert_array_equal(again, weights)
