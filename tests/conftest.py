"""Shared fixtures: seeded RNGs, paths to ../shared/data, markers that skip with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PROFEMU_SHARED_DATA", REPO.parent / "shared" / "data"))
CAMELS_FILE = SHARED_DATA / "camels_lh_tng.npz"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def camels_path() -> Path:
    """Path to the real CAMELS table; skips with a reason outside CI when absent, fails in CI."""
    if not CAMELS_FILE.is_file():
        msg = f"real CAMELS data not found at {CAMELS_FILE} (../shared/data is absent on this machine)"
        if IN_CI:
            pytest.fail(msg + "; CI must have ../shared beside the checkout")
        pytest.skip(msg)
    return CAMELS_FILE
