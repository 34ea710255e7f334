"""Fixtures of the mock-universe tests: the CAMELS SB35 parameter table."""

from __future__ import annotations

from pathlib import Path

import pytest

from profemu.data.mock import SB35_INFO_FILENAME
from tests.conftest import IN_CI, SHARED_DATA

SB35_INFO = SHARED_DATA / "camels_sb35" / SB35_INFO_FILENAME


@pytest.fixture(scope="module")
def sb35_table() -> Path:
    """The CAMELS SB35 parameter table; skips with a reason when ../shared is absent (fails in CI)."""
    if not SB35_INFO.is_file():
        msg = f"CAMELS SB35 parameter table not found at {SB35_INFO} (../shared/data is absent)"
        if IN_CI:
            pytest.fail(msg + "; CI must have ../shared beside the checkout")
        pytest.skip(msg)
    return SB35_INFO
