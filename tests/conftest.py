"""Shared fixtures: seeded RNGs, paths to ../shared/data, markers that skip with a reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def require_shared(path: Path, what: str) -> Path:
    """``path`` under ../shared/data; skips with a reason outside CI when absent, fails in CI."""
    if not path.exists():
        msg = f"{what} not found at {path} (../shared/data is absent on this machine)"
        if IN_CI:
            pytest.fail(msg + "; CI must have ../shared beside the checkout")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def camels_path() -> Path:
    """Path to the real CAMELS table; skips with a reason outside CI when absent, fails in CI."""
    return require_shared(CAMELS_FILE, "real CAMELS data")


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Commands the tests start keep their compiled programs in a folder of this test session
    (shared by its commands, as a user's runs share ``~/.cache/profemu/jax``), never the user's."""
    folder = tmp_path_factory.mktemp("compilation-cache")
    before = os.environ.get("PROFEMU_COMPILATION_CACHE")
    os.environ["PROFEMU_COMPILATION_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("PROFEMU_COMPILATION_CACHE", None)
    else:
        os.environ["PROFEMU_COMPILATION_CACHE"] = before
