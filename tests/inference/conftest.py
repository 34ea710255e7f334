"""Fixtures of the inference tests: the shared tiny run (trained once per worker process)."""

from __future__ import annotations

import pytest

from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")
