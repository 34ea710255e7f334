"""Tests of the stability checklist (profemu.diagnose), one module per module of the package."""

from __future__ import annotations

import dataclasses

from profemu.data.dataset import ProfileDataset
from profemu.diagnose import Check

__all__ = ["MEDIUM", "SMALL", "by_name", "replace_dataset"]

SMALL = {"model.hidden": [32, 32], "train.batch_size": 32}
# the quick truth-recovery run needs some capacity (a [32, 32] MLP misses by ~0.02 dex)
MEDIUM = {"model.hidden": [128, 128]}


def replace_dataset(ds: ProfileDataset, **changes) -> ProfileDataset:
    """A copy of ``ds`` with some constructor arguments replaced."""
    kwargs = {f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}
    kwargs.update(changes)
    return ProfileDataset(**kwargs)


def by_name(checks: list[Check]) -> dict[str, Check]:
    """``checks`` keyed by their name."""
    return {c.name: c for c in checks}
