"""Automatic capacity: candidates compared by group cross-validation on the training rows."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.train.select import AUTO_MAX_ROWS, candidates, choose_capacity, selects
from profemu.train.setup import prepare


def test_selects_follows_the_mode_and_the_row_threshold() -> None:
    auto = Config().updated({"train.auto_capacity": "auto"})
    assert selects(auto, AUTO_MAX_ROWS) and not selects(auto, AUTO_MAX_ROWS + 1)
    assert selects(Config().updated({"train.auto_capacity": "on"}), 10 * AUTO_MAX_ROWS)
    assert not selects(Config(), 10)  # off by default (see the module docstring)


def test_candidates_cover_narrow_regularised_and_the_other_kind() -> None:
    names = candidates(Config().updated({"model.kind": "mlp", "model.hidden": [64, 64]}))
    assert next(iter(names)) == "configured (mlp 64x64)" and names["configured (mlp 64x64)"] == {}
    assert {"model.kind": "physics"} in names.values()
    assert any(c.get("model.hidden") == [32, 32] for c in names.values())


@pytest.mark.slow
def test_choose_capacity_scores_every_candidate_and_the_floor() -> None:
    ds = make_mock_universe(n=120, seed=4, n_r=6, with_pk=False, param_set="lh6").dataset
    cfg = Config().updated({"data.fields": ["rho"], "model.hidden": [8], "train.epochs": 3,
                            "train.batch_size": 32, "train.patience": 0, "optim.warmup_epochs": 1,
                            "train.cv_folds": 0})
    choice = choose_capacity(prepare(ds, cfg), cfg)
    assert set(choice.scores) == set(candidates(cfg)) and choice.chosen in choice.scores
    assert choice.changes == candidates(cfg)[choice.chosen]
    for s in (*choice.scores.values(), choice.pca_rbf):
        assert np.isfinite(s["frac_err_median"]) and s["frac_err_median"] > 0
    best = min(s["frac_err_median"] for s in choice.scores.values())
    assert choice.scores[choice.chosen]["frac_err_median"] <= 1.01 * best
    assert choice.to_dict()["folds"] == 3 and choice.seconds > 0
