"""The Check record and the plain-text table (profemu.diagnose.check)."""

from __future__ import annotations

import dataclasses

import pytest

from profemu.diagnose import Check, format_checks


def test_format_checks_shows_failures_with_advice() -> None:
    checks = [Check("a", True, "fine"), Check("mask coverage", False, "3 bins empty", "cut them")]
    table = format_checks(checks)
    lines = table.splitlines()
    assert any("mask coverage" in ln and "FAIL" in ln and "3 bins empty" in ln for ln in lines)
    assert any("cut them" in ln for ln in lines)
    assert lines[-1] == "1 of 2 check(s) failed"


def test_check_is_frozen() -> None:
    c = Check("x", True, "v")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.passed = False  # type: ignore[misc]
