"""Input relevance (ARD): weights from a GP's length scales, applied and saved by the Transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from profemu.config import DataConfig
from profemu.data.mock import make_hard_mock, make_mock_universe
from profemu.data.transforms import Transforms
from profemu.errors import FormatError
from profemu.train.relevance import AUTO_MAX_ROWS, AUTO_MIN_PARAMS, ard_weights, uses_relevance
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
