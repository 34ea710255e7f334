"""Ensembles on a cluster: one SLURM job array of members, merged into one Emulator.

Ensemble members are independent (member ``m`` draws its initialisation, data order
and dropout only from ``(train.seed, m)``), so they can be trained in separate jobs
and stacked afterwards. :func:`submit_members` prepares the run folder in-process
(configuration, data source, split, fitted transforms), then submits the members —
one per job, or ``group_size`` per job — as one array through ``submitit``.
:func:`merge` stacks the finished members, in index order, into one Emulator.

Run folder (in addition to the layout of :mod:`profemu.runs.folder`)::

    RUN/
      run.json                   members, training-data fingerprint
      transforms.json            the fitted transforms (every job reuses them)
      jobs.json                  executor, job ids and log paths of the submitted jobs
      submit_members.sbatch      a plain sbatch array script, for submission by hand
      submitit/                  submitit's job files and logs (stdout/stderr)
      members/member_007/
        checkpoints/             atomic, checksummed training checkpoints
        status.json              state, epoch/epochs, val loss, log path (updated each epoch)
        variables.npz            the member's weights (plain arrays, written at the end)

Pre-emption: a job gets a signal before its time limit (``slurm_signal_delay_s``);
training stops at the end of the current epoch, writes a checkpoint and the job is
requeued; the requeued job resumes from that checkpoint (bit-identical on CPU).
A killed job (``kill -9``, node failure) resumes from its last periodic checkpoint
(``train.checkpoint_every``) when it is run again.

``profemu train-member RUN --member I`` trains one member (used by the sbatch template).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from profemu._files import (
    atomic_write,
    atomic_write_text,
    flatten_tree,
    json_safe,
    read_npz,
    sha256_file,
    unflatten_tree,
)
from profemu._lock import locked
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError, FormatError, TrainingError
from profemu.runs.folder import DataSource, RunFolder, load_data
from profemu.train.setup import Prepared

__all__ = [
    "ExecutorOptions",
    "MemberJob",
    "MemberStatus",
    "load_run",
    "make_executor",
    "member_dir",
    "merge",
    "prepare_run",
    "resubmit_killed",
    "run_member_job",
    "run_status",
    "submit_array",
    "submit_members",
    "train_members",
    "train_on_cluster",
    "wait_for_jobs",
    "write_sbatch_template",
]

logger = logging.getLogger(__name__)

ExecutorKind = Literal["slurm", "local", "inline"]
STATES = ("pending", "running", "requeued", "completed", "failed", "timeout")
SBATCH_TEMPLATE = "submit_members.sbatch"
# Pause [s] after every epoch but the last, cut short by a pre-emption request: makes a
# short training outlast a job's time limit when rehearsing pre-emption on a test cluster.
_EPOCH_DELAY_ENV = "PROFEMU_EPOCH_DELAY_S"


# ------------------------------------------------------------------------ options
@dataclass
class ExecutorOptions:
    """Where and how member (or trial) jobs run.

    Attributes:
        executor: ``"slurm"`` (sbatch job array), ``"local"`` (submitit's local
            processes, for testing a workflow on one machine) or ``"inline"`` (this process).
        array_parallelism: Most array tasks running at once.
        partition: SLURM partition (``None`` = the cluster's default).
        time_min: Time limit of each job [minutes].
        cpus: CPUs per job.
        gpus: GPUs per job (0 = CPU only).
        mem_gb: Memory per job [GB] (``None`` = the partition's default).
        slurm_signal_delay_s: Seconds before the time limit at which SLURM warns the job
            (it then checkpoints and requeues itself).
        max_requeues: Most time-limit requeues of one job before it counts as timed out.
    """

    executor: ExecutorKind = "slurm"
    array_parallelism: int = 32
    partition: str | None = None
    time_min: int = 60
    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    slurm_signal_delay_s: int = 90
    max_requeues: int = 3

    @classmethod
    def with_limits(cls, executor: ExecutorKind = "slurm", *, array_parallelism: int = 32,
                    partition: str | None = None, time_min: int = 60, cpus: int = 1, gpus: int = 0,
                    mem_gb: float | None = None, slurm_signal_delay_s: int | None = None) -> ExecutorOptions:
        """Validated options; the pre-emption warning comes ``slurm_signal_delay_s`` before the
        time limit (default: 90 s, or a quarter of the limit for jobs shorter than 6 minutes)."""
        if slurm_signal_delay_s is None:
            slurm_signal_delay_s = int(min(90, max(10, 60 * time_min // 4)))
        return cls(executor=executor, array_parallelism=array_parallelism, partition=partition,
                   time_min=time_min, cpus=cpus, gpus=gpus, mem_gb=mem_gb,
                   slurm_signal_delay_s=slurm_signal_delay_s).validate()

    def validate(self) -> ExecutorOptions:
        """Check every value; returns self. Raises ConfigError naming the bad option."""
        if self.executor not in ("slurm", "local", "inline"):
            raise ConfigError(f"executor: {self.executor!r} is unknown; choose slurm, local or inline.")
        checks = {
            "array_parallelism": (self.array_parallelism, 1),
            "time_min": (self.time_min, 1),
            "cpus": (self.cpus, 1),
            "gpus": (self.gpus, 0),
            "slurm_signal_delay_s": (self.slurm_signal_delay_s, 1),
            "max_requeues": (self.max_requeues, 0),
        }
        for name, (value, low) in checks.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}.")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise ConfigError(f"mem_gb: expected a positive number of GB or None, got {self.mem_gb!r}.")
        if self.executor == "slurm" and self.slurm_signal_delay_s >= 60 * self.time_min:
            raise ConfigError(
                f"slurm_signal_delay_s ({self.slurm_signal_delay_s} s) must be shorter than the time "
                f"limit ({self.time_min} min); lower it or raise time_min."
            )
        if self.partition is not None and not str(self.partition).strip():
            raise ConfigError("partition: empty name; leave it out to use the cluster's default.")
        return self


def make_executor(options: ExecutorOptions, folder: str | Path) -> Any:
    """A submitit executor for ``options`` writing its job files and logs to ``folder``.

    Jobs run with this process's Python interpreter (``sys.executable``).

    Raises:
        ConfigError: ``executor="slurm"`` where SLURM is not available, or ``"inline"``.
    """
    import submitit

    options.validate()
    folder = Path(folder).resolve()
    if options.executor == "slurm":
        if submitit.AutoExecutor.which() != "slurm":
            raise ConfigError(
                "executor: 'slurm' needs SLURM's srun/sbatch on PATH; run on a cluster login node "
                "or use --executor local."
            )
        ex = submitit.AutoExecutor(
            folder=folder, cluster="slurm", slurm_python=shlex.quote(sys.executable),
            slurm_max_num_timeout=options.max_requeues,
        )
        params: dict[str, Any] = {
            "timeout_min": options.time_min,
            "cpus_per_task": options.cpus,
            "slurm_array_parallelism": options.array_parallelism,
            "slurm_signal_delay_s": options.slurm_signal_delay_s,
        }
        if options.gpus:
            params["gpus_per_node"] = options.gpus
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.mem_gb is not None:
            params["mem_gb"] = options.mem_gb
        ex.update_parameters(**params)
        return ex
    if options.executor == "local":
        ex = submitit.LocalExecutor(
            folder=folder, python=shlex.quote(sys.executable), max_num_timeout=options.max_requeues
        )
        ex.update_parameters(
            timeout_min=options.time_min,
            gpus_per_node=options.gpus,
            signal_delay_s=options.slurm_signal_delay_s,
        )
        return ex
    raise ConfigError("executor: 'inline' runs in this process and has no submitit executor.")


# ------------------------------------------------------------------------ small I/O
def member_dir(run_dir: str | Path, member: int) -> Path:
    """``RUN/members/member_XXX`` of member index ``member``."""
    return Path(run_dir) / "members" / f"member_{int(member):03d}"


def _checkpoint_dir(run: Path, indices: Sequence[int]) -> Path:
    if len(indices) == 1:
        return member_dir(run, indices[0]) / "checkpoints"
    return run / "members" / ("group_" + "_".join(f"{i:03d}" for i in indices)) / "checkpoints"


def _status_path(run: Path, member: int) -> Path:
    return member_dir(run, member) / "status.json"


def _read_status(run: Path, member: int) -> dict[str, Any]:
    path = _status_path(run, member)
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _update_status(run: Path, member: int, **changes: Any) -> dict[str, Any]:
    folder = member_dir(run, member)
    folder.mkdir(parents=True, exist_ok=True)
    status = _read_status(run, member)
    status.update(changes, member=int(member), updated=time.time())
    atomic_write_text(folder / "status.json", json.dumps(status, indent=1))
    return status


# ------------------------------------------------------------------------ run folder
def prepare_run(
    run_dir: str | Path,
    dataset: ProfileDataset,
    config: Config,
    source: DataSource,
    *,
    members: int | None = None,
) -> Prepared:
    """Write the run folder's shared files so that every member job trains on the same split.

    Writes ``config.yaml``, ``data.json``, ``split.json``, ``transforms.json`` and
    ``run.json`` (number of members, fingerprint of the training rows).

    Args:
        run_dir: The run folder (created).
        dataset: The full dataset (as loaded from ``source``).
        config: The run configuration; ``members`` overrides ``train.members``.
        source: Where jobs reload the data from (a file on the shared file system).
        members: Ensemble size (default ``config.train.members``).

    Returns:
        The :class:`~profemu.train.setup.Prepared` split and transforms.
    """
    from profemu.train.setup import prepare

    if members is not None:
        config = config.updated({"train.members": int(members)})
    if config.train.cv_folds != 0:
        # members train in separate jobs on one split; cross-validation is an inline feature
        logger.info("cluster run: members train on one validation split (train.cv_folds = 0)")
        config = config.updated({"train.cv_folds": 0})
    config = config.validate()
    if not Path(source.path).exists():
        raise DataError(f"data: {source.path!r} does not exist; jobs reload the data from this path.")
    from profemu._lock import folder_lock

    run = RunFolder.create(Path(run_dir).resolve())
    prep = prepare(dataset, config)
    source = DataSource(str(Path(source.path).resolve()), source.format, dict(source.options))
    with folder_lock(run.path, what="run folder"):
        run.write_setup(config, prep, source)
        run.write_json("transforms.json", prep.transforms.to_dict())
        run.write_json("run.json", {
            "members": config.train.members,
            "training_data_fingerprint": prep.train.fingerprint(),
            "fields": list(prep.dataset.fields),
            "created": time.time(),
        })
    return prep


def load_run(run_dir: str | Path) -> tuple[Config, Prepared, DataSource]:
    """Reload a prepared run folder (see :meth:`profemu.runs.folder.RunFolder.prepared`)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FormatError(f"{run}: not a folder; pass the run folder given to train/submit.")
    return RunFolder(run).prepared()


def _run_members(run: Path) -> int:
    if not run.is_dir():
        raise FormatError(f"{run}: the folder does not exist; pass the run folder given to train --executor.")
    if not (run / "run.json").is_file() and RunFolder(run).is_training_run():
        raise FormatError(f"{run}: this run was trained in one process, not as cluster members (no run.json): "
                          "it has no members to report or merge; `profemu evaluate` / `profemu report` read it.")
    return int(RunFolder(run).json("run.json", required=True, what="the run record")["members"])


# ------------------------------------------------------------------------ training
def _job_log_path() -> str | None:
    """stdout log of the current submitit or SLURM job, when inside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        return str(env.paths.stdout)
    except Exception:  # not inside a submitit job
        pass
    log = os.environ.get("PROFEMU_MEMBER_LOG")
    return log or None


def _job_id() -> str | None:
    for var in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(var):
            if var == "SLURM_ARRAY_JOB_ID" and os.environ.get("SLURM_ARRAY_TASK_ID"):
                return f"{os.environ[var]}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            return os.environ[var]
    return None


def train_members(
    run_dir: str | Path,
    indices: Sequence[int],
    *,
    stop: threading.Event | None = None,
) -> bool:
    """Train ensemble members ``indices`` of a prepared run together (one ``fit`` call).

    Resumes from the newest valid checkpoint of these members when there is one. Each
    member's ``status.json`` is updated every epoch; at the end each member's weights
    are written to ``members/member_XXX/variables.npz``.

    Args:
        run_dir: A folder written by :func:`prepare_run`.
        indices: Member indices (distinct, ``0 <= i < members``).
        stop: When set (e.g. on a pre-emption signal), training stops at the end of the
            current epoch after writing a checkpoint.

    Returns:
        True when the members finished, False when stopped early through ``stop``.
    """
    from profemu.train.checkpoint import load_latest
    from profemu.train.loop import fit
    from profemu.train.setup import training_problem

    run = Path(run_dir).resolve()
    indices = [int(i) for i in indices]
    total = _run_members(run)
    bad = [i for i in indices if not 0 <= i < total]
    if bad or len(set(indices)) != len(indices) or not indices:
        raise ConfigError(f"member indices {indices}: must be distinct and in 0..{total - 1} for run {run}.")
    config, prep, _ = load_run(run)
    ckdir = _checkpoint_dir(run, indices)
    ckdir.mkdir(parents=True, exist_ok=True)
    try:
        latest = load_latest(ckdir)
    except FormatError:
        latest = None
    start_epoch = latest.epoch if latest is not None else 0
    log = _job_log_path()
    epochs = config.train.epochs
    for i in indices:
        attempts = list(_read_status(run, i).get("attempts", []))
        attempts.append({"job_id": _job_id(), "start_epoch": start_epoch, "started": time.time()})
        _update_status(
            run, i, state="running", epoch=start_epoch, epochs=epochs, log=log, attempts=attempts,
            host=socket.gethostname(), pid=os.getpid(), group=indices,
        )
    delay = float(os.environ.get(_EPOCH_DELAY_ENV, "0") or 0)
    stop = stop if stop is not None else threading.Event()

    def on_epoch(entry: dict[str, Any]) -> bool:
        vals = entry.get("val_loss_members") or []
        done_epochs = int(entry["epoch"]) + 1
        for pos, i in enumerate(indices):
            _update_status(
                run, i, state="running", epoch=done_epochs,
                val_loss=vals[pos] if pos < len(vals) else None,
            )
        if delay > 0 and done_epochs < epochs:
            stop.wait(delay)  # a pre-emption request cuts the pause short
        return stop.is_set()

    try:
        result = fit(
            training_problem(prep, config),
            members=indices,
            checkpoint_dir=ckdir,
            resume=True,
            callbacks=[on_epoch],
        )
    except BaseException as exc:
        for i in indices:
            _update_status(run, i, state="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if result.stopped_reason == "callback" and int(result.counters.get("epochs", 0)) < epochs:
        for i in indices:
            _update_status(run, i, state="requeued")
        return False
    flat = flatten_tree(result.params)
    for pos, i in enumerate(indices):
        target = member_dir(run, i) / "variables.npz"
        member = {k: v[pos] for k, v in flat.items()}
        atomic_write(target, lambda fh, arrays=member: np.savez(fh, **arrays))
        _update_status(
            run, i, state="completed", sha256=sha256_file(target),
            epoch=int(result.counters.get("epochs", epochs)),
            best_epoch=json_safe(result.best_epoch[pos]),
            best_val=json_safe(result.best_val[pos]),
            stopped_reason=result.stopped_reason, finished=time.time(),
        )
    return True


_ACTIVE: dict[str, threading.Event] = {}


def _run_in_thread(run_dir: str, indices: Sequence[int], stop: threading.Event) -> bool:
    """Train in a worker thread so that the main thread stays free for signal handlers."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["finished"] = train_members(run_dir, indices, stop=stop)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    _ACTIVE.update(stop=stop, done=done)
    worker = threading.Thread(target=work, name="profemu-members", daemon=True)
    worker.start()
    while not done.wait(0.5):  # short waits: signal handlers run between them
        pass
    if "error" in box:
        raise box["error"]
    return bool(box["finished"])


def _stop_and_wait(timeout_s: float) -> bool:
    """Ask the running training to checkpoint and stop; True when it did in time."""
    stop, done = _ACTIVE.get("stop"), _ACTIVE.get("done")
    if stop is None or done is None:
        return False
    stop.set()
    return done.wait(timeout_s)


try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - submitit is an optional dependency
    _Checkpointable = object  # type: ignore[assignment,misc]


class MemberJob(_Checkpointable):  # type: ignore[misc]
    """A submitit job training some members; checkpointed and requeued at the time limit.

    Args:
        grace_s: Longest wait for the checkpoint after the warning signal [s].
    """

    def __init__(self, grace_s: float = 60.0) -> None:
        self.grace_s = float(grace_s)

    def __call__(self, run_dir: str, indices: Sequence[int]) -> list[int]:
        finished = _run_in_thread(run_dir, indices, threading.Event())
        if not finished:  # stopped without a signal handler requeueing us
            raise TrainingError(f"members {list(indices)} stopped before the end of training.")
        return list(indices)

    def checkpoint(self, run_dir: str, indices: Sequence[int]) -> Any:
        """Called by submitit on the time-limit signal: stop at the epoch's end, requeue."""
        from submitit.helpers import DelayedSubmission

        _stop_and_wait(self.grace_s)
        return DelayedSubmission(MemberJob(self.grace_s), run_dir, indices)


def run_member_job(run_dir: str | Path, indices: Sequence[int]) -> int:
    """Train members in this process, checkpointing and requeueing on SIGUSR2 under SLURM.

    This is what the sbatch template runs (``#SBATCH --signal=USR2@...``). Outside
    SLURM the signal only checkpoints and stops.

    Returns:
        Exit status: 0 finished, 3 stopped (and requeued when under SLURM).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGUSR2, signal.SIGTERM)}
    try:
        finished = _run_in_thread(str(Path(run_dir).resolve()), indices, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if finished:
        return 0
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        subprocess.run(["scontrol", "requeue", job], check=False)
    return 3


# ------------------------------------------------------------------------ submission
def _groups(members: int, group_size: int) -> list[list[int]]:
    return [list(range(s, min(s + group_size, members))) for s in range(0, members, group_size)]


def write_sbatch_template(run_dir: str | Path, options: ExecutorOptions | None = None) -> Path:
    """Write ``RUN/submit_members.sbatch``: an array script training one member per task.

    Submit it with ``sbatch RUN/submit_members.sbatch``; each task runs
    ``profemu train-member RUN --member $SLURM_ARRAY_TASK_ID``.
    """
    opts = options or ExecutorOptions()
    run = Path(run_dir).resolve()
    members = _run_members(run)
    logs = run / "logs"
    lines = [
        "#!/bin/bash",
        "# Train the ensemble members of this run, one per array task.",
        "# Submit with: sbatch " + shlex.quote(str(run / SBATCH_TEMPLATE)),
        "# then merge with: profemu merge " + shlex.quote(str(run)),
        "#SBATCH --job-name=profemu-members",
        f"#SBATCH --array=0-{members - 1}%{opts.array_parallelism}",
        f"#SBATCH --output={logs}/member_%a_%A.out",
        f"#SBATCH --error={logs}/member_%a_%A.err",
        f"#SBATCH --time={opts.time_min}",
        f"#SBATCH --cpus-per-task={opts.cpus}",
        f"#SBATCH --signal=USR2@{opts.slurm_signal_delay_s}",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
    ]
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.gpus:
        lines.append(f"#SBATCH --gpus-per-node={opts.gpus}")
    if opts.mem_gb is not None:
        lines.append(f"#SBATCH --mem={int(np.ceil(opts.mem_gb))}G")
    lines += [
        "",
        f"mkdir -p {shlex.quote(str(logs))}",
        f'export PROFEMU_MEMBER_LOG="{logs}/member_${{SLURM_ARRAY_TASK_ID}}_${{SLURM_ARRAY_JOB_ID}}.out"',
        f"exec {shlex.quote(sys.executable)} -m profemu train-member "
        f"{shlex.quote(str(run))} --member $SLURM_ARRAY_TASK_ID",
        "",
    ]
    logs.mkdir(parents=True, exist_ok=True)
    path = run / SBATCH_TEMPLATE
    atomic_write_text(path, "\n".join(lines))
    path.chmod(0o755)
    return path


def submit_members(
    run_dir: str | Path,
    members: int,
    options: ExecutorOptions,
    *,
    group_size: int = 1,
    dataset: ProfileDataset | None = None,
    config: Config | None = None,
    source: DataSource | None = None,
) -> list[str]:
    """Train ``members`` ensemble members as one job array (or inline, one group after another).

    With ``config`` and ``source`` the run folder is prepared first (see
    :func:`prepare_run`); without them ``run_dir`` must already be prepared.

    Args:
        run_dir: The run folder.
        members: Ensemble size M.
        options: Executor options.
        group_size: Members trained together (under ``vmap``) in one job.
        dataset: The loaded data (default: loaded from ``source``).
        config: Run configuration.
        source: Data file the jobs reload.

    Returns:
        Job ids in member-group order (``"inline"`` for in-process runs).
    """
    options.validate()
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ConfigError(f"group_size: expected an integer >= 1, got {group_size!r}.")
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ConfigError(f"members: expected an integer >= 1, got {members!r}.")
    run = Path(run_dir).resolve()
    if config is not None:
        if source is None:
            raise ConfigError("source: jobs reload the data from a file; pass its DataSource with the config.")
        prepare_run(run, dataset if dataset is not None else load_data(source), config, source, members=members)
    elif not (run / "run.json").is_file():
        raise ConfigError(f"{run}: not a prepared run folder; pass config and source to prepare it.")
    elif _run_members(run) != members:
        raise ConfigError(f"members: the run {run} was prepared for {_run_members(run)} members, not {members}.")
    write_sbatch_template(run, options)
    groups = _groups(members, group_size)
    before = {i: _read_status(run, i) for group in groups for i in group}
    for group in groups:
        for i in group:
            if before[i].get("state") != "completed":
                _update_status(run, i, state="pending", epoch=0, group=group)

    if options.executor == "inline":
        for group in groups:
            train_members(run, group)
        record = {"executor": "inline", "folder": None, "jobs": [
            {"job_id": "inline", "members": g, "stdout": None, "stderr": None} for g in groups]}
        atomic_write_text(run / "jobs.json", json.dumps(record, indent=1))
        return ["inline"] * len(groups)

    try:
        jobs = _submit_groups(run, groups, options)
    except TrainingError as exc:  # nothing was submitted: the members are not pending
        for i, status in before.items():
            if status.get("state") != "completed":
                _update_status(run, i, state="failed", error=str(exc))
        raise
    record = {"executor": options.executor, "folder": str(run / "submitit"), "jobs": _job_records(jobs, groups)}
    atomic_write_text(run / "jobs.json", json.dumps(record, indent=1))
    _SUBMITTED[str(run)] = jobs
    return [str(j.job_id) for j in jobs]


def _submit_groups(run: Path, groups: Sequence[Sequence[int]], options: ExecutorOptions) -> list[Any]:
    """One job array of :class:`MemberJob` over ``groups``; each member's status gets its job id and log."""
    executor = make_executor(options, run / "submitit")
    grace = max(5.0, options.slurm_signal_delay_s - 10.0)
    executor.update_parameters(name=f"profemu-{run.name}")
    jobs = submit_array(executor, MemberJob(grace), [str(run)] * len(groups), [list(g) for g in groups],
                        what="train")
    for j, g in zip(jobs, groups, strict=True):
        for i in g:
            _update_status(run, i, job_id=str(j.job_id), log=str(j.paths.stdout))
    return list(jobs)


def submit_array(executor: Any, job: Callable[..., Any], *args: Sequence[Any], what: str) -> list[Any]:
    """``executor.map_array(job, *args)``; a submission the scheduler refuses (sbatch's error, a
    missing command) is one :class:`TrainingError` with the scheduler's own message.

    Args:
        executor: A submitit executor (:func:`make_executor`).
        job: The callable each array task runs.
        *args: One sequence per argument of ``job``, one entry per task.
        what: The command, for the message (``"train"``, ``"sweep"``).
    """
    from submitit.core.utils import FailedJobError

    try:
        return list(executor.map_array(job, *args))
    except (FailedJobError, subprocess.SubprocessError, OSError) as exc:
        said = " ".join(str(exc).split())
        said = said if len(said) <= 300 else "..." + said[-300:]
        raise TrainingError(f"{what}: the scheduler refused the job array ({said}); check the cluster (sinfo, "
                            "squeue) or pass --executor local.") from None


def _job_records(jobs: Sequence[Any], groups: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    return [{"job_id": str(j.job_id), "members": list(g), "stdout": str(j.paths.stdout), "stderr": str(j.paths.stderr)}
            for j, g in zip(jobs, groups, strict=True)]


def resubmit_killed(run_dir: str | Path, options: ExecutorOptions,
                    report: Callable[[str], Any] = logger.info) -> list[str]:
    """Submit again the members whose job the scheduler ended after they wrote a checkpoint.

    A job can die without running its own code to the end: a node failure, or a time-limit
    signal that arrives while a job is still starting (before any handler is installed).
    Such a member (failed or timed out by the scheduler, its own status still running,
    pending or requeued, a valid checkpoint on disk) resumes from that checkpoint in a new
    job, at most ``options.max_requeues`` times. Without a checkpoint it starts again from
    its first epoch only when the job's process was ended by a signal from outside (the
    time-limit warning, a kill, a node shutting down), never after its own crash (a
    segmentation fault, an abort, an error exit). Members that failed with their own error,
    whose job a user cancelled or that ran out of memory are not submitted again.

    Returns:
        The new job ids (empty when no member qualified).
    """
    from profemu.train.checkpoint import load_latest

    run = Path(run_dir).resolve()
    options.validate()
    if options.executor == "inline":
        return []
    scheduler = _scheduler_states(run)
    own = {i: _read_status(run, i) for i in range(_run_members(run))}
    groups: list[list[int]] = []
    for i, st in own.items():  # still pending/running/requeued by its own account, ended by the scheduler
        if st.get("state") not in ("pending", "running", "requeued") \
                or scheduler.get(str(st.get("job_id")), "") not in _RESUBMITTED_STATES:  # never a user's scancel
            continue
        group = [int(m) for m in st.get("group") or [i]]
        if group in groups or int(st.get("resubmissions", 0) or 0) >= options.max_requeues:
            continue
        try:
            checkpoint = load_latest(_checkpoint_dir(run, group))
        except FormatError:
            checkpoint = None
        if checkpoint is not None or _ended_by_outside_signal(str(st.get("job_id"))):
            groups.append(group)
    if not groups:
        return []
    for group in groups:
        for i in group:
            _update_status(run, i, state="pending", error=None,
                           resubmissions=int(own[i].get("resubmissions", 0) or 0) + 1)
    try:
        jobs = _submit_groups(run, groups, options)
    except Exception as exc:
        for i in (i for g in groups for i in g):
            _update_status(run, i, state="failed", error=f"submitting it again failed: {type(exc).__name__}: {exc}"[:500])
        raise
    try:
        record = json.loads((run / "jobs.json").read_text())
    except (OSError, json.JSONDecodeError):
        record = {"executor": options.executor, "folder": str(run / "submitit"), "jobs": []}
    record["jobs"] = [*record.get("jobs", []), *_job_records(jobs, groups)]
    atomic_write_text(run / "jobs.json", json.dumps(record, indent=1))
    _SUBMITTED[str(run)] = [*_SUBMITTED.get(str(run), []), *jobs]
    ids = [str(j.job_id) for j in jobs]
    report(f"members {[i for g in groups for i in g]}: their job ended before they finished; submitted again "
           f"from their latest checkpoints (the first epoch where none was written) as {', '.join(ids)}")
    return ids


_SUBMITTED: dict[str, list[Any]] = {}


def wait_for_jobs(run_dir: str | Path, *, poll_s: float = 2.0, timeout_s: float | None = None,
                  resubmit: ExecutorOptions | None = None) -> list[MemberStatus]:
    """Block until no member of the run is pending, running or requeued; returns the statuses.

    Members whose job ended without finishing them (a crash before training, a
    kill) are marked failed with the job's error and log path; :func:`merge`
    reports them by index. With ``resubmit`` (the run's executor options), members the
    scheduler ended after a checkpoint are first submitted again (:func:`resubmit_killed`).
    """
    run = Path(run_dir).resolve()
    t0 = time.monotonic()
    said = t0
    while True:
        jobs = _SUBMITTED.get(str(run))
        statuses = run_status(run)
        active = [s for s in statuses if s.state in ("pending", "running", "requeued")]
        if active and time.monotonic() - said >= WAIT_NOTE_SECONDS:
            said = time.monotonic()
            logger.info("waiting for the members' jobs (%.0f s): %s", said - t0, _progress_summary(statuses))
        if not active:
            if resubmit is not None and resubmit_killed(run, resubmit):
                continue
            return statuses
        if jobs is not None and all(j.done() for j in jobs):
            by_member = {i: j for j in jobs for i in _job_members(run, str(j.job_id))}
            for s in active:
                job = by_member.get(s.member)
                try:
                    exc = job.exception() if job is not None else None
                except Exception as err:  # killed before writing a result
                    exc = err
                why = f"{type(exc).__name__}: {exc}" if exc is not None else "the job ended early"
                _update_status(run, s.member, state="failed", error=why.splitlines()[0][:500])
            return run_status(run)
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise TrainingError(f"{run}: members {[s.member for s in active]} still unfinished after {timeout_s:.0f} s.")
        time.sleep(poll_s)


#: Seconds between the progress lines while waiting for the members' jobs.
WAIT_NOTE_SECONDS = 60.0


def _progress_summary(statuses: Sequence[MemberStatus]) -> str:
    """``"2 of 4 finished; running: member 2 epoch 31/150, ...; pending: 3"`` in one line."""
    done = sum(s.state == "completed" for s in statuses)
    parts = [f"{done} of {len(statuses)} finished"]
    running = [f"member {s.member} epoch {s.epoch}/{s.epochs}" for s in statuses if s.state == "running"]
    if running:
        parts.append("running: " + ", ".join(running[:6]) + (" ..." if len(running) > 6 else ""))
    for state in ("pending", "requeued", "failed", "timeout"):
        members = [str(s.member) for s in statuses if s.state == state]
        if members:
            parts.append(f"{state}: {', '.join(members[:10])}" + (" ..." if len(members) > 10 else ""))
    return "; ".join(parts)


def _job_members(run: Path, job_id: str) -> list[int]:
    try:
        record = json.loads((run / "jobs.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return next((list(j["members"]) for j in record.get("jobs", []) if str(j["job_id"]) == job_id), [])


# ------------------------------------------------------------------------ status
@dataclass(frozen=True)
class MemberStatus:
    """State of one ensemble member of a run.

    Attributes:
        member: Member index.
        state: ``pending``, ``running``, ``requeued``, ``completed``, ``failed`` or ``timeout``.
        epoch: Completed epochs.
        epochs: Epochs planned (``train.epochs``; early stopping may finish sooner).
        val_loss: Last validation loss (``None`` before the first epoch).
        log: Path of the job's stdout log (``None`` when unknown).
        job_id: Scheduler job id (``None`` when unknown).
        error: Error message of a failed member.
    """

    member: int
    state: str
    epoch: int
    epochs: int
    val_loss: float | None
    log: str | None
    job_id: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Scheduler states of a job that ended without its own error, whose members :func:`resubmit_killed`
#: submits again (not CANCELLED: a user's scancel; not OUT_OF_MEMORY: it would end the same way).
_RESUBMITTED_STATES = frozenset({"FAILED", "NODE_FAIL", "BOOT_FAIL", "TIMEOUT", "DEADLINE"})

_SCHEDULER_FAILED = {
    "FAILED": "failed", "CANCELLED": "failed", "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed", "DEADLINE": "timeout", "TIMEOUT": "timeout", "PREEMPTED": "requeued",
}


#: Signals a scheduler, an operator or the kernel sends to end a job from outside; the
#: others (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, ...) are the program's own crash.
_OUTSIDE_SIGNALS = frozenset({
    signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGXCPU,
})


def _ended_by_outside_signal(job_id: str, settle_s: float = 20.0) -> bool:
    """Whether sacct says a step of the SLURM job ``job_id`` ended by an outside signal.

    sacct writes a step's ``ExitCode`` as ``code:signal``; a process killed by SIGUSR2
    before it installed a handler reads ``0:12``. The steps' records settle a few seconds
    after the job's (a step first reads ``FAILED 0:0``): they are read again for up to
    ``settle_s`` seconds. False when sacct is unavailable.
    """
    if not job_id or not job_id.replace("_", "").isdigit():
        return False
    deadline = time.monotonic() + settle_s
    while True:
        try:
            out = subprocess.run(["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,ExitCode,State"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        settled = True
        for line in out.splitlines():
            _, exit_code, state = [*line.split("|"), "", ""][:3]
            code, _, sig = exit_code.strip().partition(":")
            if sig.isdigit() and int(sig) in _OUTSIDE_SIGNALS:
                return True
            state = state.split(" ")[0].upper()
            if state in ("RUNNING", "COMPLETING", "PENDING") or (state == "FAILED" and code == "0" and sig == "0"):
                settled = False
        if settled or time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def _scheduler_states(run: Path) -> dict[str, str]:
    """Job id -> scheduler state (SLURM via submitit/sacct); empty when unavailable."""
    try:
        record = json.loads((run / "jobs.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if record.get("executor") != "slurm":
        return {}
    try:
        import submitit

        states = {}
        for j in record.get("jobs", []):
            job = submitit.SlurmJob(folder=record["folder"], job_id=j["job_id"])
            states[j["job_id"]] = str(job.state).split()[0].upper()
        return states
    except Exception:  # sacct missing or accounting disabled: status.json alone
        return {}


def _pid_alive(pid: Any, host: Any) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return True  # cannot tell from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_dir: str | Path, *, verify: bool = False) -> list[MemberStatus]:
    """Status of every member of a run, from ``status.json`` files and the scheduler (sacct).

    A member whose file says running but whose job the scheduler reports as failed,
    cancelled or timed out (or whose local process is gone) is reported as such. With
    ``verify``, a completed member whose weights file does not match its recorded SHA-256
    (or is missing) is reported ``failed`` with the reason, as :func:`merge` would find it.
    """
    run = Path(run_dir).resolve()
    members = _run_members(run)
    scheduler = _scheduler_states(run)
    out = []
    for i in range(members):
        st = _read_status(run, i)
        state = str(st.get("state", "pending"))
        job_id = st.get("job_id")
        sched = scheduler.get(str(job_id), "") if job_id else ""
        if state in ("pending", "running", "requeued"):
            if sched in _SCHEDULER_FAILED and _SCHEDULER_FAILED[sched] != "requeued":
                state = _SCHEDULER_FAILED[sched]
            elif sched == "COMPLETED" and state != "completed":
                state = "failed"  # the job ended without finishing this member
            elif sched == "RUNNING" and state == "pending":
                state = "running"
            elif state == "running" and not sched and not _pid_alive(st.get("pid"), st.get("host")):
                state = "failed"
        error = st.get("error")
        if verify and state == "completed":
            try:
                _checked_weights_file(run, i, st)
            except FormatError as exc:
                state, error = "failed", str(exc)
        out.append(
            MemberStatus(
                member=i, state=state, epoch=int(st.get("epoch", 0) or 0),
                epochs=int(st.get("epochs", 0) or 0),
                val_loss=st.get("val_loss"), log=st.get("log"), job_id=job_id,
                error=error or (f"scheduler state {sched}" if state in ("failed", "timeout") and sched else None),
            )
        )
    return out


# ------------------------------------------------------------------------ merge
def _checked_weights_file(run: Path, member: int, status: Mapping[str, Any]) -> Path:
    """The member's ``variables.npz``; FormatError when it is missing or its SHA-256 is not the one
    ``status.json`` recorded."""
    path = member_dir(run, member) / "variables.npz"
    retrain = f"retrain member {member} with `profemu train-member {run} --member {member}`."
    if not path.is_file():
        raise FormatError(f"{path}: missing; {retrain}")
    expected = status.get("sha256")
    if expected and sha256_file(path) != expected:
        raise FormatError(f"{path}: checksum does not match status.json (corrupt file); {retrain}")
    return path


def _load_member_variables(run: Path, member: int) -> dict[str, np.ndarray]:
    path = _checked_weights_file(run, member, _read_status(run, member))
    try:
        flat = read_npz(path, what="member weights")
    except FormatError as exc:
        raise FormatError(f"{exc}; retrain member {member}.") from None
    if not flat or any(a.dtype.kind != "f" for a in flat.values()):
        raise FormatError(f"{path}: holds no float weight arrays; retrain member {member}.")
    return flat


@locked("run_dir", create=False)  # one writer per run folder
def merge(run_dir: str | Path, *, allow_partial: bool = False) -> Any:
    """Stack the finished members of a run, in index order, into one ensemble Emulator.

    The variance scale is calibrated on the validation split (``train.calibrate``)
    and the ensemble is evaluated on the test split. Writes ``RUN/emulator`` and
    ``RUN/evaluation.json``.

    Args:
        run_dir: The run folder.
        allow_partial: Merge the members that finished even if some did not.

    Returns:
        The merged :class:`~profemu.emulator.Emulator`.

    Raises:
        TrainingError: Some members are missing, failed or corrupt (listed by index
            with their log paths) and ``allow_partial`` is False, or none finished.
        FolderLockedError: another process is writing the run folder.
    """
    from profemu.metrics import evaluate
    from profemu.runs.training import build_emulator

    run = Path(run_dir).resolve()
    statuses = run_status(run)
    good: list[int] = []
    stacks: list[dict[str, np.ndarray]] = []
    problems: list[str] = []
    for s in statuses:
        path = member_dir(run, s.member) / "variables.npz"
        if s.state != "completed" or not path.is_file():
            why = s.state if s.state != "completed" else "variables.npz missing"
            detail = f": {s.error}" if s.error else ""
            problems.append(f"member {s.member} ({why}{detail}; log: {s.log or 'none'})")
            continue
        try:
            stacks.append(_load_member_variables(run, s.member))
        except FormatError as exc:
            problems.append(f"member {s.member} (corrupt: {exc})")
            continue
        good.append(s.member)
    if problems and (not allow_partial or not good):
        fix = ("No member finished: retrain them (profemu train-member RUN --member I, or sbatch the run's "
               "submit_members.sbatch again)."
               if not good else "Retrain them (profemu train-member RUN --member I), or merge the finished ones "
               "with --allow-partial (allow_partial=True in Python).")
        raise TrainingError(
            f"{run}: cannot merge, {len(problems)} of {len(statuses)} member(s) not usable:\n  "
            + "\n  ".join(problems) + "\n" + fix
        )
    names = set(stacks[0])
    for i, flat in zip(good, stacks, strict=True):
        if set(flat) != names or any(flat[k].shape != stacks[0][k].shape for k in names):
            raise FormatError(
                f"{member_dir(run, i) / 'variables.npz'}: weights differ in names or shapes from member "
                f"{good[0]}'s; were they trained with another config?"
            )
    params = unflatten_tree({k: np.stack([f[k] for f in stacks]) for k in sorted(names)})
    config, prep, _ = load_run(run)
    emulator = build_emulator(
        prep, config, params,
        members_merged=good,
        members_missing=[s.member for s in statuses if s.member not in good],
        best_epoch=[_read_status(run, i).get("best_epoch") for i in good],
        **({} if (run_id := RunFolder(run).run_id()) is None else {"run_id": run_id}),
    )
    emulator.save(run / "emulator")
    if len(prep.split.test):
        RunFolder(run).write_json("evaluation.json", evaluate(emulator, prep.test))
    return emulator


def train_on_cluster(
    dataset: ProfileDataset,
    config: Config,
    run: Path,
    source: DataSource | None,
    options: ExecutorOptions,
    *,
    members: int | None = None,
    group_size: int = 1,
    wait: bool = True,
    report: Callable[[str], Any] = logger.info,
) -> Any:
    """Train an ensemble as a job array; with ``wait`` also wait for it, merge and evaluate.

    Args:
        dataset, config, run, source: The data, configuration, run folder and data provenance.
        options: Where and how the jobs run (:class:`ExecutorOptions`).
        members: Ensemble size (default ``config.train.members``).
        group_size: Members trained together in one job.
        wait: Wait for the jobs and merge the members.
        report: Called with each line of progress (job ids, failures, the merge).

    Returns:
        The merged Emulator, or ``None`` with ``wait=False`` (merge later with
        ``profemu merge RUN``).
    """
    m = int(members or config.train.members)
    ids = submit_members(run, m, options, group_size=group_size, dataset=dataset, config=config, source=source)
    if options.executor != "inline":
        report(f"submitted {m} member(s) as {len(ids)} {options.executor} job(s): {', '.join(ids)}")
        report(f"follow with: profemu status {run}")
    if not wait:
        report(f"when they finish: profemu merge {run}")
        return None
    statuses = wait_for_jobs(run, resubmit=options)
    for s in statuses:
        if s.state != "completed":
            report(f"member {s.member}: {s.state} ({s.error or 'no error recorded'}); log: {s.log or 'none'}")
    emulator = merge(run)
    report(f"merged {emulator.members} member(s) into {run / 'emulator'}")
    return emulator
