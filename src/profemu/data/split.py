"""Leakage-free splits: whole groups (simulations) go to one side, stratified in halo mass.

Rows of one group (e.g. the mass bins of one CAMELS simulation) share parameters and
initial conditions, so a row-wise split leaks information. Both splitters here assign
*groups*; a dataset without ``groups`` treats every row as its own group.

Stratification: groups are ordered by their mean ``log10_mass`` (ties broken at random by
the seed) and cut into as many consecutive, equal-count strata as groups are drawn; one
group is drawn at random from each stratum. Held-out sets therefore span the mass range
(e.g. the few high-mass CAMELS simulations are not all left in training by chance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError

__all__ = ["Split", "group_kfold", "split_by_group"]


@dataclass(frozen=True)
class Split:
    """Row indices (sorted, int64) of the training, validation and test sets.

    Attributes:
        train: Rows used to fit transforms and models.
        val: Rows for early stopping / model selection (may be empty).
        test: Rows for the final score (may be empty).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def datasets(
        self, ds: ProfileDataset
    ) -> tuple[ProfileDataset, ProfileDataset | None, ProfileDataset | None]:
        """The three subsets of ``ds`` (None for an empty validation or test set)."""

        def take(idx: np.ndarray) -> ProfileDataset | None:
            return ds.subset(idx) if idx.size else None

        train = take(self.train)
        assert train is not None  # split_by_group always keeps training rows
        return train, take(self.val), take(self.test)


def _groups(ds: ProfileDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-row group index in [0, G) and the mean log10_mass of each group [G]."""
    if ds.groups is None:
        inverse = np.arange(ds.n)
    else:
        _, inverse = np.unique(ds.groups, return_inverse=True)
        inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    mean_mass = np.bincount(inverse, weights=ds.log10_mass) / counts
    return inverse, mean_mass


def _mass_order(mean_mass: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Group indices sorted by mean mass, ties in random (seeded) order."""
    perm = rng.permutation(mean_mass.size)
    return perm[np.argsort(mean_mass[perm], kind="stable")]


def _draw_stratified(ordered: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``m`` of ``ordered`` (mass-sorted): one at random from each of m equal strata."""
    if m == 0:
        return ordered[:0]
    edges = np.floor(np.arange(m + 1) * ordered.size / m).astype(np.int64)
    picks = rng.integers(edges[:-1], edges[1:])
    return ordered[picks]


def _rows_of(inverse: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(inverse, chosen)).astype(np.int64)


def split_by_group(
    ds: ProfileDataset,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> Split:
    """Split ``ds`` into train/val/test by group, stratified in mass, reproducible by ``seed``.

    Args:
        ds: The dataset (``ds.groups`` defines the groups; None = one group per row).
        val_fraction: Fraction of the *groups* put into validation (rounded; at least one
            group when > 0).
        test_fraction: Fraction of the groups put into the test set (same rounding); 0 by
            default, as ``data.test_fraction``.
        seed: Seed of the draw.

    Returns:
        :class:`Split` of row indices; no group has rows on two sides, every row is in
        exactly one set.

    Raises:
        DataError: fractions outside [0, 1) or summing to >= 1, or too few groups to hold
            out the requested sets and keep at least one training group.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{name}: must be in [0, 1), got {frac}.")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(
            f"val_fraction + test_fraction must be < 1 so that training groups remain; "
            f"got {val_fraction} + {test_fraction}."
        )
    inverse, mean_mass = _groups(ds)
    n_groups = mean_mass.size

    def count(frac: float) -> int:
        return 0 if frac == 0 else max(1, int(np.floor(frac * n_groups + 0.5)))

    n_test, n_val = count(test_fraction), count(val_fraction)
    if n_test + n_val >= n_groups:
        raise DataError(
            f"groups: only {n_groups} group(s) in the dataset, too few to hold out {n_test} test "
            f"and {n_val} validation group(s) and still train; add data or lower the fractions."
        )
    rng = np.random.default_rng(seed)
    ordered = _mass_order(mean_mass, rng)
    test_groups = _draw_stratified(ordered, n_test, rng)
    remaining = ordered[~np.isin(ordered, test_groups)]
    val_groups = _draw_stratified(remaining, n_val, rng)
    held = np.concatenate([test_groups, val_groups])
    train_groups = np.setdiff1d(np.arange(n_groups), held)
    return Split(
        train=_rows_of(inverse, train_groups),
        val=_rows_of(inverse, val_groups),
        test=_rows_of(inverse, test_groups),
    )


def group_kfold(
    ds: ProfileDataset, k: int, *, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation by group, stratified in mass.

    Groups are ordered by mean log10_mass; each run of ``k`` consecutive groups is dealt to
    the ``k`` folds in random order, so every fold spans the mass range and fold sizes (in
    groups) differ by at most one.

    Args:
        ds: The dataset (``ds.groups`` defines the groups; None = one group per row).
        k: Number of folds (>= 2).
        seed: Seed of the assignment.

    Returns:
        ``k`` pairs ``(train_rows, test_rows)`` of sorted int64 indices; each group is in
        exactly one test fold and never on both sides of a pair.

    Raises:
        DataError: ``k < 2`` or fewer groups than folds.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise DataError(f"k: the number of folds must be an integer >= 2, got {k!r}.")
    inverse, mean_mass = _groups(ds)
    n_groups = mean_mass.size
    if n_groups < k:
        raise DataError(
            f"groups: only {n_groups} group(s) in the dataset, fewer than k={k} folds; lower k."
        )
    rng = np.random.default_rng(seed)
    ordered = _mass_order(mean_mass, rng)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for start in range(0, n_groups, k):
        chunk = ordered[start : start + k]
        fold_of_group[chunk] = rng.permutation(k)[: chunk.size]
    fold_of_row = fold_of_group[inverse]
    return [
        (
            np.flatnonzero(fold_of_row != f).astype(np.int64),
            np.flatnonzero(fold_of_row == f).astype(np.int64),
        )
        for f in range(k)
    ]
