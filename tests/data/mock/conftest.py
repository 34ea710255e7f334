"""Fixtures of the mock-universe tests: the CAMELS SB35 parameter table."""

from __future__ import annotations

from pathlib import Path

import pytest

from profemu.data.mock import SB35_INFO_FILENAME
from tests.conftest import SHARED_DATA, require_shared

SB35_INFO = SHARED_DATA / "camels_sb35" / SB35_INFO_FILENAME


@pytest.fixture(scope="module")
def sb35_table() -> Path:
    """The CAMELS SB35 parameter table; skips with a reason when ../shared is absent (fails in CI)."""
    return require_shared(SB35_INFO, "CAMELS SB35 parameter table")
