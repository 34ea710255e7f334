"""One run, one relevance fit and one compiled epoch: the folds and the refit share both."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import profemu.train.setup as train_setup
from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.train import loop
from profemu.train.builder import fit_and_predict, fold_problems, fold_rows
from profemu.train.cv import cross_validate
from profemu.train.loop import fit
from profemu.train.setup import prepare, training_problem

CFG = {"model.hidden": [12], "train.members": 3, "train.epochs": 6, "train.batch_size": 16, "train.patience": 0,
       "optim.warmup_epochs": 1, "data.fields": ["rho"], "train.cv_folds": 3, "data.val_fraction": 0.0,
       "data.test_fraction": 0.0, "data.input_relevance": "off"}


@pytest.fixture(scope="module")
def dataset():
    return make_mock_universe(n=90, seed=3, param_set="lh6", n_r=5, with_pk=False).dataset


def _traces() -> int:
    return sum(loop._TRACES.values())


def test_relevance_is_fitted_once_per_run(dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = train_setup.ard_weights

    def spy(ds, fields, **kwargs):
        calls.append(ds.n)
        return real(ds, fields, **kwargs)

    monkeypatch.setattr(train_setup, "ard_weights", spy)
    cfg = Config().updated({**CFG, "data.input_relevance": "ard", "data.relevance_rows": 40, "train.epochs": 1})
    prep = prepare(dataset, cfg)
    folds = fold_problems(prep, cfg, 3)
    assert calls == [dataset.n]  # once, on the run's training rows, before the folds
    for fold in folds:  # every fold uses the run's weights
        np.testing.assert_array_equal(fold.transforms.param_weights, prep.transforms.param_weights)
    assert not np.allclose(prep.transforms.param_weights, 1.0)


def test_folds_and_refit_share_one_compiled_epoch(dataset) -> None:
    cfg = Config().updated({**CFG, "optim.weight_decay": 3.25e-4, "train.patience": 2})  # a set-up of its own
    prep = prepare(dataset, cfg)
    before = _traces()
    cv = cross_validate(prep, cfg, 3)
    refit_cfg = cfg.updated({"train.patience": 0})
    held_out = int(np.bincount(cv.fold_of_row).max())
    result = fit(training_problem(prep, refit_cfg, validate_on_train=False), epochs=cv.refit_epochs, keep="last",
                 pad_to=(len(prep.split.train), held_out))
    assert _traces() - before == 1  # three folds (one network each, unequal sizes) and the 3-member refit: one trace
    assert result.counters["compilations"] == 0
    assert len(result.history) == cv.refit_epochs  # patience 0 in the refit: no early stop


def test_padded_fit_equals_the_unpadded_one(dataset) -> None:
    cfg = Config().updated({**CFG, "train.cv_folds": 0, "data.val_fraction": 0.25, "train.epochs": 4,
                            "model.dropout": 0.1})
    problem = training_problem(prepare(dataset, cfg), cfg)
    plain = fit(problem)
    padded = fit(problem, pad_to=(problem.train.n + 45, problem.val.n + 70))
    assert len(plain.history) == len(padded.history) == 4
    for a, b in zip(plain.history, padded.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["learning_rate"] == pytest.approx(b["learning_rate"], rel=1e-5)
    for leaf_a, leaf_b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(padded.params), strict=True):
        np.testing.assert_allclose(np.asarray(leaf_a), np.asarray(leaf_b), rtol=1e-3, atol=1e-5)
    assert plain.best_epoch == padded.best_epoch


def test_early_stopping_per_fold_under_the_shared_program(dataset) -> None:
    cfg = Config().updated({**CFG, "train.epochs": 40, "train.patience": 2, "optim.learning_rate": 0.05,
                            "optim.warmup_epochs": 0})
    prep = prepare(dataset, cfg)
    folds = fold_problems(prep, cfg, 3)
    pad_to = fold_rows(prep, folds)
    fits = [fit_and_predict(fold, cfg, pad_to=pad_to).result for fold in folds]
    for result in fits:
        assert result.stopped_reason == "early_stopping" and len(result.history) < 40
        stopped_at = [e + 3 for e in result.best_epoch]  # stops 2 epochs after its best (0-based)
        assert len(result.history) == max(stopped_at)
        assert set(result.counters["stop_reason_members"]) == {"early_stopping"}


def test_training_leaves_jax_configuration_alone(dataset) -> None:
    """No global JAX setting is changed by importing profemu or by a fit (JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` is how a user asks for a persistent compilation cache)."""
    before = jax.config.jax_compilation_cache_dir
    assert before is None
    cfg = Config().updated({**CFG, "train.epochs": 1, "train.cv_folds": 0, "data.val_fraction": 0.2})
    fit(training_problem(prep := prepare(dataset, cfg), cfg))
    assert prep.split.val.size
    assert jax.config.jax_compilation_cache_dir == before


def test_members_on_their_own_rows_equal_separate_fits(dataset) -> None:
    """Two members on different rows in one program train exactly as each alone on its rows."""
    from profemu.data.split import Split
    from profemu.train.setup import Prepared

    cfg = Config().updated({**CFG, "train.cv_folds": 0, "data.val_fraction": 0.3, "train.epochs": 5,
                            "train.patience": 2})
    prep = prepare(dataset, cfg)
    train, val = np.asarray(prep.split.train), np.asarray(prep.split.val)
    rows, val_rows = [np.arange(30), np.arange(45)], [np.arange(12), np.arange(20)]
    joint = fit(training_problem(prep, cfg), members=[0, 1], member_rows=rows, member_val_rows=val_rows)
    for m in (0, 1):
        alone = Prepared(prep.dataset, Split(train[rows[m]], val[val_rows[m]], np.zeros(0, int)), prep.transforms)
        single = fit(training_problem(alone, cfg), members=[m])
        assert single.best_epoch == [joint.best_epoch[m]]
        for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(joint.params), strict=True):
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[m], rtol=1e-3, atol=1e-5)
        assert [e["learning_rate_members"][0] for e in single.history] == pytest.approx(
            [e["learning_rate_members"][m] for e in joint.history[:len(single.history)]], rel=1e-5)


def test_member_rows_are_checked(dataset) -> None:
    from profemu.errors import ConfigError

    cfg = Config().updated({**CFG, "train.cv_folds": 0, "data.val_fraction": 0.3, "train.epochs": 1})
    problem = training_problem(prepare(dataset, cfg), cfg)
    with pytest.raises(ConfigError, match="member_rows gives rows for 1 members"):
        fit(problem, members=2, member_rows=[np.arange(5)])
    with pytest.raises(ConfigError, match=r"member_rows\[1\] must be a non-empty"):
        fit(problem, members=2, member_rows=[np.arange(5), np.array([], int)])
    with pytest.raises(ConfigError, match=r"member_val_rows\[0\] must be a non-empty 1-D array of row indices"):
        fit(problem, members=2, member_val_rows=[np.array([10_000]), np.arange(3)])


def test_several_networks_per_fold(dataset) -> None:
    """``train.cv_members: 2``: each fold's out-of-fold prediction is the mean of its two networks."""
    cfg = Config().updated({**CFG, "train.cv_members": 2, "train.members": 2, "train.epochs": 3})
    cv = cross_validate(prepare(dataset, cfg), cfg, 3)
    assert cv.networks_per_fold == 2 and cv.summary()["networks_per_fold"] == 2
    assert [len(b) for b in cv.best_epochs] == [2, 2, 2]
    assert sorted(cv.rows.tolist()) == list(range(dataset.n))
    mean, var = cv.predictions["rho"]
    assert np.isfinite(mean).all() and (var > 0).all()


def test_a_fit_continues_given_networks_at_a_point_of_their_schedule(dataset) -> None:
    """``initial_params`` + ``first_epoch``: the members start from the given parameters, with
    each one's learning-rate schedule where a full fit would be at that epoch, and with no
    new compilation."""
    cfg = Config().updated(CFG)
    problem = training_problem(prepare(dataset, cfg), cfg, validate_on_train=False)
    full = fit(problem, keep="last")
    before = _traces()
    tail = fit(problem, keep="last", initial_params=full.params, first_epoch=4, epochs=2)
    assert _traces() == before
    assert [h["epoch"] for h in tail.history] == [4, 5]
    np.testing.assert_allclose([h["learning_rate"] for h in tail.history],
                               [h["learning_rate"] for h in full.history[4:]], rtol=1e-6)
    first_layer = next(k for k in loop.flatten_tree(full.params) if k.endswith("kernel"))
    given = loop.unflatten_tree({k: v + 1.0 for k, v in loop.flatten_tree(full.params).items()})
    shifted = fit(problem, keep="last", initial_params=given, first_epoch=4, epochs=2)
    fresh = fit(problem, keep="last", first_epoch=4, epochs=2)  # drawn parameters, same point of the schedule
    start = loop.flatten_tree(given)[first_layer]
    assert np.abs(loop.flatten_tree(shifted.params)[first_layer] - start).max() < 0.2  # continued from ``given``
    assert np.abs(loop.flatten_tree(fresh.params)[first_layer] - start).max() > 0.5


def test_initial_parameters_that_do_not_fit_the_network_are_refused(dataset) -> None:
    from profemu.errors import ConfigError

    cfg = Config().updated(CFG)
    problem = training_problem(prepare(dataset, cfg), cfg, validate_on_train=False)
    good = loop.flatten_tree(fit(problem, epochs=1, keep="last").params)
    name = next(iter(good))
    with pytest.raises(ConfigError, match=r"initial_params\[.*\] has shape"):
        fit(problem, initial_params=loop.unflatten_tree({**good, name: good[name][:1]}))
    bad = {**good, name: np.full_like(good[name], np.nan)}
    with pytest.raises(ConfigError, match="non-finite"):
        fit(problem, initial_params=loop.unflatten_tree(bad))
    with pytest.raises(ConfigError, match="not a parameter tree"):
        fit(problem, initial_params=[1.0, 2.0])
    with pytest.raises(ConfigError, match="first_epoch"):
        fit(problem, first_epoch=CFG["train.epochs"])
    with pytest.raises(ConfigError, match="epochs=3"):
        fit(problem, first_epoch=4, epochs=3)
