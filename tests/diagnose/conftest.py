"""Fixtures of the diagnose tests: a small clean mock universe and a small model."""

from __future__ import annotations

import pytest

from profemu.config import Config
from profemu.data.mock import make_mock_universe
from tests.diagnose import SMALL


@pytest.fixture(scope="module")
def universe():
    return make_mock_universe(n=320, seed=5, noise_dex=0.02)


@pytest.fixture(scope="module")
def small_config() -> Config:
    return Config().updated(SMALL)
