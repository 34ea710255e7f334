"""The whole checklist end to end (profemu.diagnose.checklist.run_diagnostics)."""

from __future__ import annotations

import pytest

from profemu.config import Config
from profemu.diagnose import CHECK_NAMES, Check, checklist, format_checks, run_diagnostics
from tests.diagnose import MEDIUM, by_name


@pytest.mark.slow
def test_clean_mock_universe_passes_every_check(universe) -> None:
    checks = run_diagnostics(universe.dataset, Config().updated(MEDIUM), seed=0, quick=True)
    assert [c.name for c in checks] == list(CHECK_NAMES)
    failed = [(c.name, c.value) for c in checks if not c.passed]
    assert not failed, failed
    assert all(c.value for c in checks)
    table = format_checks(checks)
    assert f"all {len(CHECK_NAMES)} checks passed" in table
    for name in CHECK_NAMES:
        assert name in table


def test_unusable_split_reports_instead_of_raising(universe, small_config, monkeypatch) -> None:
    # the mock-universe check does not depend on the data; skip its training here
    monkeypatch.setattr(checklist, "check_truth_recovery", lambda *a, **k: Check("x", True, "skipped"))
    cfg = small_config.updated({"data.fields": ["not_a_field"]})
    checks = by_name(run_diagnostics(universe.dataset, cfg, quick=True))
    for name in ("train/validation shift", "overfit 8 examples", "gradient norms"):
        assert not checks[name].passed
        assert "not_a_field" in checks[name].value
