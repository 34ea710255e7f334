"""Ensembles as job arrays: inline / local / SLURM runs agree, merge, status, pre-emption and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from profemu.config import Config
from profemu.data.io import save_dataset
from profemu.data.mock import make_mock_universe
from profemu.emulator import Emulator
from profemu.errors import ConfigError, TrainingError
from profemu.runs import cluster
from profemu.runs.cluster import ExecutorOptions, merge, run_status, submit_members, train_members
from profemu.runs.folder import DataSource
from profemu.runs.training import train_emulator

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Members trained in different jobs/groups equal members trained together up to float32
# rounding of vmap-batched arithmetic; on one CPU they are usually bit-identical.
RTOL = 1e-5


@pytest.fixture
def slurm() -> None:
    """Skip (outside CI) or fail (in CI) when the SLURM client tools are absent."""
    if shutil.which("sbatch") is None:
        msg = "sbatch is not on PATH: start the one-node cluster with `bash ../shared/tools/slurm-local.sh`"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def tiny_config(**changes: object) -> Config:
    base = {
        "model.hidden": [8], "train.members": 4, "train.epochs": 3, "train.batch_size": 32,
        "train.patience": 0, "optim.warmup_epochs": 1, "data.fields": ["rho"],
        "data.test_fraction": 0.1, "train.cv_folds": 0,  # cluster members train on a validation split
    }
    return Config().updated({**base, **changes})


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    ds = make_mock_universe(n=64, seed=3, n_r=6, with_pk=False, param_set="lh6").dataset
    path = tmp_path_factory.mktemp("data") / "mock.npz"
    save_dataset(ds, path)
    return path, ds


@pytest.fixture(scope="module")
def inline_run(data_file, tmp_path_factory) -> tuple[Path, Emulator]:
    path, _ = data_file
    run = tmp_path_factory.mktemp("inline") / "run"
    ids = submit_members(run, 4, ExecutorOptions(executor="inline"), group_size=2,
                         config=tiny_config(), source=DataSource(str(path)))
    assert ids == ["inline", "inline"]
    return run, merge(run)


def predictions(emu: Emulator, ds) -> tuple[np.ndarray, np.ndarray]:
    p = emu.predict(ds.params, ds.log10_mass, on_extrapolation="ignore")["rho"]
    return p.mean, p.var


def test_executor_options_validation() -> None:
    ExecutorOptions(executor="local").validate()
    with pytest.raises(ConfigError, match="executor"):
        ExecutorOptions(executor="pbs").validate()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cpus"):
        ExecutorOptions(cpus=0).validate()
    with pytest.raises(ConfigError, match="slurm_signal_delay_s"):
        ExecutorOptions(time_min=1, slurm_signal_delay_s=90).validate()
    with pytest.raises(ConfigError, match="mem_gb"):
        ExecutorOptions(mem_gb=-1).validate()


def test_inline_groups_match_one_ensemble_and_write_run_folder(inline_run, data_file) -> None:
    run, emu = inline_run
    _, ds = data_file
    assert emu.members == 4
    ref = train_emulator(ds, tiny_config()).emulator  # all four members in one vmap
    mean, var = predictions(emu, ds)
    ref_mean, ref_var = predictions(ref, ds)
    np.testing.assert_allclose(mean, ref_mean, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(var, ref_var, rtol=RTOL, atol=1e-8)
    assert emu.variance_scale == pytest.approx(ref.variance_scale, rel=1e-4)
    loaded = Emulator.load(run / "emulator")
    np.testing.assert_allclose(predictions(loaded, ds)[0], mean, rtol=1e-6)
    assert "overall" in json.loads((run / "evaluation.json").read_text())
    states = run_status(run)
    assert [s.state for s in states] == ["completed"] * 4
    assert all(s.epoch == 3 and s.epochs == 3 and np.isfinite(s.val_loss) for s in states)
    script = (run / "submit_members.sbatch").read_text()
    assert "#SBATCH --array=0-3" in script
    assert "train-member" in script and "$SLURM_ARRAY_TASK_ID" in script and sys.executable in script


def test_merge_reports_missing_and_corrupt_members(inline_run, tmp_path) -> None:
    src, _ = inline_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    shutil.rmtree(cluster.member_dir(run, 2))
    weights = cluster.member_dir(run, 1) / "variables.npz"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(TrainingError) as err:
        merge(run)
    msg = str(err.value)
    assert "member 2 (pending" in msg and "member 1 (corrupt" in msg and "--allow-partial" in msg
    assert msg.splitlines()[-1].startswith("Retrain them (profemu train-member RUN --member I), or merge")
    assert "member 0" not in msg and "member 3" not in msg
    partial = merge(run, allow_partial=True)
    assert partial.members == 2
    assert partial.metadata["members_merged"] == [0, 3]
    assert partial.metadata["members_missing"] == [1, 2]


def test_cli_status_and_merge(inline_run, tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from profemu.cli.cluster import register

    app = typer.Typer()
    register(app)
    src, _ = inline_run
    runner = CliRunner()
    res = runner.invoke(app, ["status", str(src)])
    assert res.exit_code == 0, res.output
    assert "4 completed" in res.output
    res = runner.invoke(app, ["status", str(src), "--json"])
    assert [m["state"] for m in json.loads(res.output)] == ["completed"] * 4
    run = tmp_path / "run"
    shutil.copytree(src, run)
    weights = cluster.member_dir(run, 2) / "variables.npz"  # a corrupt member shows in status, not only at merge
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    res = runner.invoke(app, ["status", str(run)])
    assert res.exit_code == 0 and "3 completed, 1 failed" in res.output and "checksum does not match" in res.output
    weights.write_bytes(good)
    shutil.rmtree(cluster.member_dir(run, 3))
    res = runner.invoke(app, ["merge", str(run)])
    assert res.exit_code == 2 and "member 3" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["merge", str(run), "--allow-partial"])
    assert res.exit_code == 0 and "merged 3 member(s)" in res.output and "left out: [3]" in res.output
    assert ("test split: " in res.output) == (run / "evaluation.json").is_file()
    assert ("no test split, so no evaluation.json" in res.output) != (run / "evaluation.json").is_file()


def test_local_executor_matches_inline(inline_run, data_file, tmp_path) -> None:
    path, ds = data_file
    run = tmp_path / "run"
    ids = submit_members(run, 4, ExecutorOptions(executor="local", time_min=10, slurm_signal_delay_s=30),
                         group_size=2, config=tiny_config(), source=DataSource(str(path)))
    assert len(ids) == 2
    statuses = cluster.wait_for_jobs(run, timeout_s=300)
    assert [s.state for s in statuses] == ["completed"] * 4, statuses
    emu = merge(run)
    np.testing.assert_allclose(predictions(emu, ds)[0], predictions(inline_run[1], ds)[0], rtol=RTOL, atol=1e-6)


@pytest.mark.slurm
def test_slurm_array_matches_inline(slurm, inline_run, data_file, tmp_path) -> None:
    path, ds = data_file
    run = tmp_path / "run"
    options = ExecutorOptions(executor="slurm", partition="debug", time_min=10, slurm_signal_delay_s=30)
    ids = submit_members(run, 4, options, group_size=2, config=tiny_config(), source=DataSource(str(path)))
    assert len(ids) == 2 and all("_" in i for i in ids)  # one array: <array id>_<task>
    assert len({i.split("_")[0] for i in ids}) == 1
    statuses = cluster.wait_for_jobs(run, timeout_s=400)
    assert [s.state for s in statuses] == ["completed"] * 4, statuses
    assert all(s.log and Path(s.log).is_file() for s in statuses)
    emu = merge(run)
    np.testing.assert_allclose(predictions(emu, ds)[0], predictions(inline_run[1], ds)[0], rtol=RTOL, atol=1e-6)


def _prepared(tmp_path: Path, data_path: Path, name: str, **changes: object) -> Path:
    run = tmp_path / name
    cfg = tiny_config(**{"train.members": 1, "train.checkpoint_every": 1, **changes})
    cluster.prepare_run(run, cluster.load_data(DataSource(str(data_path))), cfg, DataSource(str(data_path)))
    return run


def _latest_epoch(folder: Path) -> int:
    names = [int(p.stem.split("-")[1]) for p in folder.glob("ckpt-*.json")] if folder.is_dir() else []
    return max(names, default=0)


def test_sigkill_then_resume_is_bit_identical(data_file, tmp_path) -> None:
    path, _ = data_file
    epochs = 8
    run = _prepared(tmp_path, path, "killed", **{"train.epochs": epochs})
    reference = _prepared(tmp_path, path, "reference", **{"train.epochs": epochs})
    env = {**os.environ, "PROFEMU_EPOCH_DELAY_S": "0.4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "profemu", "train-member", str(run), "--member", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ckdir = cluster.member_dir(run, 0) / "checkpoints"
    try:
        deadline = time.monotonic() + 240
        while _latest_epoch(ckdir) < 2:
            assert proc.poll() is None, "training process ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _latest_epoch(ckdir)
    assert 2 <= killed_at < epochs
    assert run_status(run)[0].state == "failed"  # its process is gone
    assert train_members(run, [0])
    assert train_members(reference, [0])
    status = json.loads((cluster.member_dir(run, 0) / "status.json").read_text())
    assert status["state"] == "completed"
    assert status["attempts"][0]["start_epoch"] == 0
    assert status["attempts"][-1]["start_epoch"] >= killed_at
    with (np.load(cluster.member_dir(run, 0) / "variables.npz") as a,
          np.load(cluster.member_dir(reference, 0) / "variables.npz") as b):
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_time_limit_checkpoints_requeues_and_finishes(slurm, data_file, tmp_path, monkeypatch) -> None:
    path, _ = data_file
    epochs = 2
    run = _prepared(tmp_path, path, "requeued", **{"train.epochs": epochs, "train.checkpoint_every": 0})
    reference = _prepared(tmp_path, path, "reference", **{"train.epochs": epochs, "train.checkpoint_every": 0})
    # after its first epoch the job idles until SLURM's time-limit warning (a 1-minute limit):
    # it must checkpoint there, be requeued and finish the second epoch after resuming
    monkeypatch.setenv("PROFEMU_EPOCH_DELAY_S", "600")
    options = ExecutorOptions(executor="slurm", partition="debug", time_min=1, slurm_signal_delay_s=30,
                              max_requeues=4)
    submit_members(run, 1, options)
    monkeypatch.delenv("PROFEMU_EPOCH_DELAY_S")
    assert train_members(reference, [0])
    # a job that starts after its warning time can be signalled before Python handles the signal:
    # SLURM then ends it as FAILED, and the member is submitted again (from its checkpoint, if any)
    statuses = cluster.wait_for_jobs(run, timeout_s=400, resubmit=options)
    assert statuses[0].state == "completed", statuses
    status = json.loads((cluster.member_dir(run, 0) / "status.json").read_text())
    starts = [a["start_epoch"] for a in status["attempts"]]
    assert len(starts) >= 2 and starts[0] == 0 and starts[-1] == epochs - 1, starts
    assert status["epoch"] == epochs
    with (np.load(cluster.member_dir(run, 0) / "variables.npz") as a,
          np.load(cluster.member_dir(reference, 0) / "variables.npz") as b):
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_member_killed_after_its_checkpoint_is_submitted_again(slurm, data_file, tmp_path, monkeypatch) -> None:
    """A job that ends without the member's own error (here its process is killed: SLURM says
    FAILED) is submitted again from the checkpoint and finishes as one uninterrupted training;
    a job a user cancels is not."""
    path, _ = data_file
    epochs = 12
    options = ExecutorOptions(executor="slurm", partition="debug", time_min=10, max_requeues=2)

    def start(name: str) -> tuple[Path, str]:
        run = _prepared(tmp_path, path, name, **{"train.epochs": epochs})
        monkeypatch.setenv("PROFEMU_EPOCH_DELAY_S", "2")  # the first job takes its time ...
        (job,) = submit_members(run, 1, options)
        monkeypatch.delenv("PROFEMU_EPOCH_DELAY_S")  # ... a job submitted again does not
        deadline = time.monotonic() + 240
        while _latest_epoch(cluster.member_dir(run, 0) / "checkpoints") < 2:
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.2)
        return run, job

    run, job = start("killed")
    os.kill(int(json.loads((cluster.member_dir(run, 0) / "status.json").read_text())["pid"]), signal.SIGKILL)
    statuses = cluster.wait_for_jobs(run, timeout_s=400, resubmit=options)
    assert statuses[0].state == "completed", statuses
    status = json.loads((cluster.member_dir(run, 0) / "status.json").read_text())
    assert status["resubmissions"] == 1 and status["job_id"] != job
    starts = [a["start_epoch"] for a in status["attempts"]]
    assert len(starts) == 2 and starts[0] == 0 and 2 <= starts[1] < epochs, starts
    reference = _prepared(tmp_path, path, "reference", **{"train.epochs": epochs})
    assert train_members(reference, [0])
    with (np.load(cluster.member_dir(run, 0) / "variables.npz") as a,
          np.load(cluster.member_dir(reference, 0) / "variables.npz") as b):
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    record = json.loads((run / "jobs.json").read_text())
    assert [j["job_id"] for j in record["jobs"]] == [job, status["job_id"]]

    cancelled, job = start("cancelled")
    subprocess.run(["scancel", job], check=True)
    statuses = cluster.wait_for_jobs(cancelled, timeout_s=120, resubmit=options)
    assert statuses[0].state == "failed"  # a user's scancel is respected
    assert "resubmissions" not in json.loads((cluster.member_dir(cancelled, 0) / "status.json").read_text())


def _signal_on_start(run: Path, signum: int, timeout_s: float = 120) -> None:
    """Send ``signum`` to the member's job process as soon as it exists (before any checkpoint)."""
    pattern = f"^{sys.executable} -u -m submitit.core._submit {run / 'submitit'}"  # not its srun
    deadline = time.monotonic() + timeout_s
    while True:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        if found:
            for pid in found:
                os.kill(int(pid), signum)
            return
        assert time.monotonic() < deadline, "the job's process never started"
        time.sleep(0.02)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_killed_from_outside_before_any_checkpoint_starts_again(slurm, data_file, tmp_path,
                                                                      monkeypatch) -> None:
    """A job ended by an outside signal while it starts (SLURM's time-limit warning before the
    handler is installed, a kill) is submitted again from the first epoch; a job that crashes by
    itself (an abort) is not."""
    path, _ = data_file
    monkeypatch.chdir(tmp_path)  # the jobs' working folder: the abort's core file lands here
    options = ExecutorOptions(executor="slurm", partition="debug", time_min=10, max_requeues=2)
    run = _prepared(tmp_path, path, "killed", **{"train.epochs": 2})
    submit_members(run, 1, options)
    _signal_on_start(run, signal.SIGKILL)
    statuses = cluster.wait_for_jobs(run, timeout_s=300, resubmit=options)
    assert statuses[0].state == "completed", statuses
    status = json.loads((cluster.member_dir(run, 0) / "status.json").read_text())
    assert status["resubmissions"] == 1
    assert [a["start_epoch"] for a in status["attempts"]][-1] == 0

    crashed = _prepared(tmp_path, path, "crashed", **{"train.epochs": 2})
    submit_members(crashed, 1, options)
    _signal_on_start(crashed, signal.SIGABRT)
    statuses = cluster.wait_for_jobs(crashed, timeout_s=300, resubmit=options)
    assert statuses[0].state == "failed", statuses
    assert "resubmissions" not in json.loads((cluster.member_dir(crashed, 0) / "status.json").read_text())


def test_command_line_executor_defaults_are_the_libraries() -> None:
    """One set of executor defaults: every command's options default to ExecutorOptions'."""
    import dataclasses
    import inspect

    from profemu.cli.cluster import sweep_cmd
    from profemu.cli.commands import train

    lib = {f.name: f.default for f in dataclasses.fields(ExecutorOptions)}
    names = {"array_parallelism": "array_parallelism", "partition": "partition", "time_min": "time_min",
             "time": "time_min", "cpus": "cpus", "gpus": "gpus", "mem": "mem_gb"}
    for command in (train, sweep_cmd):
        params = inspect.signature(command).parameters
        checked = [p for p in params if p in names]
        assert len(checked) == 6, (command.__name__, checked)
        for p in checked:
            assert params[p].default == lib[names[p]], (command.__name__, p)
    with_limits = ExecutorOptions.with_limits("local", time_min=2)
    assert with_limits.slurm_signal_delay_s == 30 and ExecutorOptions.with_limits("local").slurm_signal_delay_s == 90


def test_waiting_for_jobs_says_how_far_they_are(monkeypatch, caplog, tmp_path) -> None:
    """A run waiting for its members' jobs logs a progress line now and then, not minutes of silence."""
    import logging

    def member(i: int, state: str, epoch: int) -> cluster.MemberStatus:
        return cluster.MemberStatus(member=i, state=state, epoch=epoch, epochs=10, val_loss=None, log=None,
                                    job_id=None, error=None)

    seen = iter([[member(0, "completed", 10), member(1, "running", 3), member(2, "pending", 0)],
                 [member(0, "completed", 10), member(1, "completed", 10), member(2, "completed", 10)]])
    monkeypatch.setattr(cluster, "run_status", lambda run: next(seen))
    monkeypatch.setattr(cluster, "WAIT_NOTE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="profemu.runs.cluster"):
        statuses = cluster.wait_for_jobs(tmp_path, poll_s=0.0)
    assert all(s.state == "completed" for s in statuses)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for the members' jobs")]
    assert len(lines) == 1 and lines[0].endswith("1 of 3 finished; running: member 1 epoch 3/10; pending: 2"), lines


def test_status_and_merge_name_what_the_folder_is(tmp_path) -> None:
    """A run trained in one process (no members) and a folder that does not exist get their own
    one-line errors, not 'the run record is missing'."""
    from typer.testing import CliRunner

    from profemu.cli import app

    ds = make_mock_universe(n=40, seed=7, param_set="lh6", with_pk=False, n_r=6).dataset
    run = tmp_path / "plain"
    train_emulator(ds, Config().updated({"train.epochs": 2, "train.members": 1, "model.hidden": [8],
                                         "train.cv_folds": 0, "data.input_relevance": "off"}), run_dir=run)
    runner = CliRunner()
    for command in ("status", "merge"):
        res = runner.invoke(app, [command, str(run)])
        assert res.exit_code == 2 and "was trained in one process, not as cluster members" in res.output, res.output
        res = runner.invoke(app, [command, str(tmp_path / "nope")])
        assert res.exit_code == 2 and "the folder does not exist" in res.output, res.output


def test_a_refused_submission_is_one_error_and_leaves_no_member_pending(data_file, tmp_path, monkeypatch) -> None:
    from submitit.core.utils import FailedJobError

    class Refusing:
        def update_parameters(self, **_: object) -> None:
            pass

        def map_array(self, *_: object) -> list[object]:
            raise FailedJobError("sbatch: error: Batch job submission failed:\nUnable to contact slurm controller")

    monkeypatch.setattr(cluster, "make_executor", lambda *_a, **_k: Refusing())
    path, _ = data_file
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"train: the scheduler refused the job array \(sbatch: error: Batch job "
                                            r"submission failed: Unable to contact slurm controller\); check the "
                                            r"cluster .* or pass --executor local"):
        submit_members(run, 2, ExecutorOptions(executor="local", time_min=10, slurm_signal_delay_s=30),
                       config=tiny_config(), source=DataSource(str(path)))
    statuses = cluster.run_status(run)
    assert [s.state for s in statuses] == ["failed", "failed"], statuses
    assert all("the scheduler refused the job array" in (s.error or "") for s in statuses)
