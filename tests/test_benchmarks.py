"""Smoke tests of the benchmark suite's framework (not of the numbers it measures)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import common, markdown  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402


def test_machine_info_and_commit() -> None:
    info = common.machine_info(with_jax=False)
    assert info["logical_cores"] == os.cpu_count()
    assert info["usable_cores"] >= 1
    assert info["numpy"] == np.__version__
    json.dumps(info)  # JSON-safe
    commit = common.git_commit()
    assert commit == "unknown" or len(commit.removesuffix("-dirty")) >= 4


def test_timeit_measures_sleep() -> None:
    calls = []
    timing = common.timeit(
        lambda: (calls.append(1), time.sleep(0.01)), repeats=3, number=2, warmup=1
    )
    assert len(calls) == 1 + 3 * 2
    assert 0.009 < timing.best <= timing.median < 0.5
    with pytest.raises(ValueError):
        common.timeit(lambda: None, repeats=0)


def test_run_child_reports_result_memory_and_timeout() -> None:
    code = (
        "import numpy as np; from benchmarks.common import emit_result; "
        "a = np.ones(60_000_000 // 8); a += 1; emit_result({'total': float(a.sum())})"
    )
    child = common.run_child(["-c", code], timeout_s=60)
    assert child.ok, child.stderr_tail
    assert child.result["total"] == pytest.approx(2.0 * (60_000_000 // 8))
    # the 60 MB array must show in the child's peak RSS (and in its own VmHWM)
    assert child.peak_rss_bytes > 60_000_000
    assert child.result["vmhwm_bytes"] > 60_000_000

    # a small child of a large parent: only the child's own memory is counted
    ballast = np.ones(300_000_000 // 8)
    # (the child reports its own VmHWM: a child that exits within the first poll is a zombie
    # whose /proc status has no memory lines)
    small = common.run_child(["-c", "from benchmarks.common import emit_result; emit_result({})"], timeout_s=60)
    assert small.returncode == 0 and 0 < small.peak_rss_bytes < 150_000_000
    del ballast

    slow = common.run_child(["-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert slow.timed_out and not slow.ok and slow.seconds < 10


def test_status_and_table() -> None:
    assert common.status(70_000, 63_000, higher_is_better=True) == "PASS"
    assert common.status(120.0, 100.0, higher_is_better=False) == "MISS"
    assert common.status(None, 1.0, higher_is_better=True) == "n/a"
    text = markdown.table(["a", "b"], [[1234567, 0.012345], ["x", float("nan")]])
    assert text.splitlines()[2] == "| 1,234,567 | 0.0123 |"
    assert text.splitlines()[3] == "| x | – |"


def test_speed_smoke_end_to_end(tmp_path: Path) -> None:
    """``python -m benchmarks --smoke --only speed,nosuchmodule`` writes results and the document."""
    doc = tmp_path / "BENCHMARKS.md"
    # an older result of another module must survive a rerun of speed alone
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "extra.json").write_text(
        json.dumps(
            {
                "benchmark": "extra",
                "mode": "full",
                "commit": "abc1234",
                "date": "2025-01-01T00:00:00Z",
                "machine": {"cpu_model": "Old CPU"},
                "results": {},
            }
        )
    )
    status = main(
        [
            "--smoke",
            "--only",
            "speed,nosuchmodule",
            "--out-dir",
            str(tmp_path),
            "--markdown",
            str(doc),
        ]
    )
    assert status == 0
    record = json.loads((tmp_path / "results" / "speed.json").read_text())
    assert record["mode"] == "smoke"
    assert record["machine"]["cpu_model"]
    assert record["commit"]
    res = record["results"]
    assert [r["members"] for r in res["training"]] == res["sizes"]["train_members"]
    # the MLP and the physics core at the same trunk width, each with 1 and M members
    assert [r["members"] for r in res["prediction"]] == [1, res["sizes"]["ensemble_members"]] * 2
    assert [r["kind"] for r in res["prediction"]] == ["mlp", "mlp", "physics", "physics"]
    assert res["prediction"][0]["throughput_vs_mlp"] == 1.0 and res["prediction"][2]["throughput_vs_mlp"] > 0
    assert res["prediction"][3]["ensemble_efficiency"] > 0
    for row in res["training"]:
        assert row["profemu_member_samples_per_s"] > 0 and row["reference_member_samples_per_s"] > 0
        assert row["status"] in {"PASS", "MISS"}
    for row in res["prediction"]:
        assert row["jax_profiles_per_s"] > 0
        assert 0 < row["numpy_forward_us"] and 0 < row["numpy_predict_us"]
    assert (tmp_path / res["figures"]["targets"]).is_file()
    assert not (tmp_path / "results" / "nosuchmodule.json").exists()

    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "python -m benchmarks --quick" in text
    assert "## Speed" in text and "smoke mode" in text and record["commit"] in text
    assert "Old CPU" in text  # the other section is kept, with its own provenance
    assert "(figures/speed_targets.png)" in text  # link relative to the document's folder


def test_error_budget_separates_noise_shared_and_rest() -> None:
    """Synthetic residuals: a per-simulation offset shared by both mass bins plus recorded noise."""
    from benchmarks.accuracy import error_budget

    from profemu.data.dataset import ProfileDataset
    from tests.data.test_dataset import base_kwargs

    rng = np.random.default_rng(0)
    n_sims, n_r, shared_sd, noise_sd = 2000, 4, 0.05, 0.03
    kw = base_kwargs(rng, n=2 * n_sims, n_r=n_r, fields=("rho",), with_pk=False, n_groups=None)
    groups = np.repeat(np.arange(n_sims), 2)
    mass = np.tile([11.25, 11.75], n_sims)
    truth = np.log10(kw["profiles"]["rho"])
    offset = np.repeat(rng.normal(0, shared_sd, n_sims), 2)[:, None]
    observed = truth + offset + rng.normal(0, noise_sd, truth.shape)
    kw.update(groups=groups, log10_mass=mass, profiles={"rho": 10**observed},
              noise={"rho": np.full(truth.shape, noise_sd)})
    ds = ProfileDataset(**kw)
    budget = error_budget({"rho": (truth, np.zeros_like(truth))}, ds, "rho")
    for row in budget["per_radius"]:
        assert row["noise"] == pytest.approx(noise_sd**2, rel=1e-9)
        assert row["shared"] == pytest.approx(shared_sd**2, rel=0.15)
        assert abs(row["rest"]) < 0.15 * row["total"]
        assert row["bin_correlation"] == pytest.approx(shared_sd**2 / (shared_sd**2 + noise_sd**2), abs=0.05)
    assert budget["floor_noise_shared_median"] > budget["floor_noise_median"]
