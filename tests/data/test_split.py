"""Group splits: no leakage, full coverage, determinism, mass stratification."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profemu.data.dataset import ProfileDataset
from profemu.data.split import Split, group_kfold, split_by_group
from profemu.errors import DataError
from tests.data.test_dataset import base_kwargs


def dataset(groups: np.ndarray | None, log10_mass: np.ndarray, seed: int = 0) -> ProfileDataset:
    n = log10_mass.size
    kw = base_kwargs(np.random.default_rng(seed), n=n, n_r=3, with_pk=False, n_groups=None)
    kw["log10_mass"] = log10_mass
    kw["groups"] = groups
    return ProfileDataset(**kw)


def assert_partition(split: Split, ds: ProfileDataset) -> None:
    rows = np.concatenate([split.train, split.val, split.test])
    np.testing.assert_array_equal(np.sort(rows), np.arange(ds.n))  # each row exactly once
    if ds.groups is not None:
        sides = [set(ds.groups[idx].tolist()) for idx in (split.train, split.val, split.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


@settings(max_examples=60, deadline=None)
@given(
    group_ids=st.lists(st.integers(0, 12), min_size=6, max_size=60),
    val=st.sampled_from([0.0, 0.1, 0.2, 0.3]),
    test=st.sampled_from([0.0, 0.1, 0.25]),
    seed=st.integers(0, 1000),
)
def test_no_leakage_and_full_coverage_property(
    group_ids: list[int], val: float, test: float, seed: int
) -> None:
    groups = np.array(group_ids)
    mass = 11 + (groups % 5) * 0.3 + 0.01 * np.arange(groups.size) / groups.size
    ds = dataset(groups, mass)
    n_groups = np.unique(groups).size
    try:
        split = split_by_group(ds, val_fraction=val, test_fraction=test, seed=seed)
    except DataError as err:
        assert "too few" in str(err) and n_groups <= 3
        return
    assert_partition(split, ds)
    assert split.train.size > 0
    if test > 0:
        assert np.unique(groups[split.test]).size == max(1, int(np.floor(test * n_groups + 0.5)))
    else:
        assert split.test.size == 0


@settings(max_examples=40, deadline=None)
@given(
    group_ids=st.lists(st.integers(0, 9), min_size=4, max_size=40),
    k=st.integers(2, 5),
    seed=st.integers(0, 1000),
)
def test_kfold_each_group_in_exactly_one_test_fold(group_ids: list[int], k: int, seed: int) -> None:
    groups = np.array(group_ids)
    ds = dataset(groups, np.linspace(11, 13, groups.size))
    n_groups = np.unique(groups).size
    if n_groups < k:
        with pytest.raises(DataError, match=r"fewer than k="):
            group_kfold(ds, k, seed=seed)
        return
    folds = group_kfold(ds, k, seed=seed)
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(ds.n))
    sizes = []
    for train, test in folds:
        assert not set(groups[train].tolist()) & set(groups[test].tolist())
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(ds.n))
        sizes.append(np.unique(groups[test]).size)
    assert max(sizes) - min(sizes) <= 1


def test_deterministic_by_seed() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 50, 200)
    ds = dataset(groups, rng.uniform(11, 13, 200))
    a = split_by_group(ds, test_fraction=0.1, seed=5)
    b = split_by_group(ds, test_fraction=0.1, seed=5)
    c = split_by_group(ds, test_fraction=0.1, seed=6)
    for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.test, c.test)
    k1 = group_kfold(ds, 4, seed=1)
    k2 = group_kfold(ds, 4, seed=1)
    for (t1, s1), (t2, s2) in zip(k1, k2, strict=True):
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(s1, s2)


def test_stratified_in_mass() -> None:
    # 100 groups with distinct masses: each of the 10 test groups comes from its own decile
    mass = np.linspace(11.0, 13.0, 100)
    rng = np.random.default_rng(0)
    perm = rng.permutation(100)
    ds = dataset(perm, mass[perm])
    for seed in range(5):
        split = split_by_group(ds, val_fraction=0.1, test_fraction=0.1, seed=seed)
        for idx in (split.test, split.val):
            deciles = np.floor((ds.log10_mass[idx] - 11.0) / 2.0 * 100 / 10).astype(int)
            assert sorted(np.clip(deciles, 0, 9).tolist()) == list(range(10))
    # the rare heaviest groups always reach a held-out set only in proportion, never all in train
    folds = group_kfold(ds, 5, seed=0)
    for _, test in folds:
        quint = np.clip(np.floor((ds.log10_mass[test] - 11.0) / 2.0 * 5), 0, 4).astype(int)
        assert np.bincount(quint, minlength=5).tolist() == [4, 4, 4, 4, 4]


def test_rows_without_groups_are_their_own_group() -> None:
    ds = dataset(None, np.linspace(11, 13, 20))
    split = split_by_group(ds, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert_partition(split, ds)
    assert (split.train.size, split.val.size, split.test.size) == (14, 2, 4)
    assert len(group_kfold(ds, 4)) == 4


def test_datasets_helper() -> None:
    groups = np.repeat(np.arange(10), 2)
    ds = dataset(groups, np.linspace(11, 13, 20))
    split = split_by_group(ds, val_fraction=0.0, test_fraction=0.2)
    train, val, test = split.datasets(ds)
    assert val is None and test is not None
    assert train.n + test.n == 20
    assert train.groups is not None and test.groups is not None
    assert not set(train.groups.tolist()) & set(test.groups.tolist())


def test_impossible_requests() -> None:
    ds = dataset(np.array([0, 0, 1, 1]), np.full(4, 12.0))
    with pytest.raises(
        DataError, match=r"groups: only 2 group\(s\) .* too few to hold out 1 test and 1 validation"
    ):
        split_by_group(ds, val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(DataError, match=r"only 2 group\(s\) in the dataset, fewer than k=3"):
        group_kfold(ds, 3)
    with pytest.raises(DataError, match=r"k: the number of folds must be an integer >= 2"):
        group_kfold(ds, 1)
    with pytest.raises(DataError, match=r"test_fraction: must be in \[0, 1\)"):
        split_by_group(ds, test_fraction=1.2)
    with pytest.raises(DataError, match=r"val_fraction \+ test_fraction must be < 1"):
        split_by_group(ds, val_fraction=0.5, test_fraction=0.5)


def test_default_fractions_agree_with_the_data_config() -> None:
    from profemu.config import DataConfig

    ds = dataset(np.arange(40), np.linspace(11, 13, 40))
    split = split_by_group(ds)
    cfg = DataConfig()
    assert len(split.test) == round(cfg.test_fraction * 40) and len(split.val) == round(cfg.val_fraction * 40)
