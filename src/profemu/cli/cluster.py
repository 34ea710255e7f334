"""Command-line commands for clusters: ``merge``, ``status``, ``sweep`` and ``train-member``.

:func:`register` adds them to the main Typer app. ``profemu train --executor
slurm|local`` calls :func:`profemu.runs.cluster.train_on_cluster` with the options of
:meth:`profemu.runs.cluster.ExecutorOptions.with_limits` (the ``Executor*Opt`` annotations
below declare them; their defaults are those of ``ExecutorOptions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from profemu.cli.common import parse_overrides
from profemu.cli.common import user_errors as _user_errors
from profemu.errors import ConfigError

__all__ = [
    "ArrayParallelismOpt",
    "CpusOpt",
    "ExecutorKindOpt",
    "ExecutorName",
    "GpusOpt",
    "GroupSizeOpt",
    "MemOpt",
    "PartitionOpt",
    "TimeOpt",
    "WaitOpt",
    "register",
]

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Cluster"


class ExecutorName(StrEnum):
    """Where jobs run."""

    slurm = "slurm"
    local = "local"
    inline = "inline"


ExecutorKindOpt = Annotated[ExecutorName, typer.Option(
    "--executor", help="slurm (job array), local (processes on this machine) or inline.", rich_help_panel=_PANEL)]
ArrayParallelismOpt = Annotated[int, typer.Option(
    "--array-parallelism", min=1, help="Most array tasks running at once.", rich_help_panel=_PANEL)]
PartitionOpt = Annotated[str | None, typer.Option(
    "--partition", help="SLURM partition (default: the cluster's).", rich_help_panel=_PANEL)]
TimeOpt = Annotated[int, typer.Option(
    "--time", min=1, help="Time limit per job \\[minutes]; jobs checkpoint and requeue before it.", rich_help_panel=_PANEL)]
CpusOpt = Annotated[int, typer.Option("--cpus", min=1, help="CPUs per job.", rich_help_panel=_PANEL)]
GpusOpt = Annotated[int, typer.Option("--gpus", min=0, help="GPUs per job.", rich_help_panel=_PANEL)]
MemOpt = Annotated[float | None, typer.Option(
    "--mem", min=0.001, help="Memory per job \\[GB] (default: the partition's).", rich_help_panel=_PANEL)]
GroupSizeOpt = Annotated[int, typer.Option(
    "--group-size", min=1, help="Ensemble members trained together in one job.", rich_help_panel=_PANEL)]
WaitOpt = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="Wait for the jobs and merge the members.", rich_help_panel=_PANEL)]


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)



@_user_errors
def merge_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder of an ensemble trained as a job array.")],
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Merge the finished members even if others failed.")] = False,
) -> None:
    """Stack finished ensemble members into RUN/emulator (calibrated, evaluated)."""
    from profemu.runs.cluster import merge

    emulator = merge(run, allow_partial=allow_partial)
    missing = emulator.metadata.get("members_missing") or []
    typer.echo(f"merged {emulator.members} member(s) into {Path(run) / 'emulator'}"
               + (f"; left out: {missing}" if missing else ""))
    evaluation = Path(run) / "evaluation.json"
    if evaluation.is_file():
        overall = json.loads(evaluation.read_text()).get("overall", {})
        shown = (("rmse_dex", "RMSE [dex]", 1.0), ("frac_err_median", "frac err median [%]", 100.0),
                 ("coverage_68", "cov 68", 1.0))
        parts = [f"{title} {_fmt(None if overall[k] is None else scale * overall[k])}"
                 for k, title, scale in shown if k in overall]
        if parts:
            typer.echo("test split: " + ", ".join(parts))
    else:
        typer.echo("no test split, so no evaluation.json: train with --test-fraction > 0 to score the merged "
                   "ensemble on held-out simulations (or `profemu evaluate RUN --data FILE`).")

@_user_errors
def status_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder of an ensemble trained as a job array.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """State, progress, validation loss and log of every ensemble member."""
    from profemu.runs.cluster import run_status

    statuses = run_status(run, verify=True)  # corrupt weights show here, not only at merge
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in statuses], indent=1))
        return
    typer.echo(f"{'member':>6}  {'state':<9}  {'epoch':>11}  {'val loss':>9}  {'job':<12}  log")
    for s in statuses:
        progress = f"{s.epoch}/{s.epochs}" if s.epochs else str(s.epoch)
        typer.echo(f"{s.member:>6}  {s.state:<9}  {progress:>11}  {_fmt(s.val_loss):>9}  "
                   f"{(s.job_id or '-'):<12}  {s.log or '-'}")
        if s.error and s.state in ("failed", "timeout"):
            typer.echo(f"{'':>6}  error: {s.error}")
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    typer.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))

@_user_errors
def train_member_cmd(
    run: Annotated[Path, typer.Argument(help="Prepared run folder.")],
    member: Annotated[list[int], typer.Option("--member", help="Member index (repeatable).")],
) -> None:
    """Train ensemble member(s) of a prepared run (what the sbatch template runs)."""
    from profemu.runs.cluster import run_member_job

    code = run_member_job(run, member)
    if code:
        raise typer.Exit(code)

@_user_errors
def sweep_cmd(
    data: Annotated[Path, typer.Option("--data", help="Dataset file (.npz/.h5 or the CAMELS LH table).")],
    space: Annotated[Path, typer.Option("--space", help="Search-space YAML (see docs/cluster.md).")],
    trials: Annotated[int, typer.Option("--trials", help="Number of trials.")] = 20,
    executor: ExecutorKindOpt = ExecutorName.slurm,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna journal file (default OUT/optuna.journal) or an RDB URL.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("sweep"),
    config: Annotated[Path | None, typer.Option("--config", help="Base configuration YAML.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a base config value: --set train.epochs=60 (repeatable; YAML values).")] = None,
    study_name: Annotated[str, typer.Option("--study-name", help="Optuna study name.")] = "profemu-sweep",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the TPE sampler.")] = 0,
    pruner: Annotated[str, typer.Option("--pruner", help="median, halving or none.")] = "median",
    trials_per_job: Annotated[int, typer.Option("--trials-per-job", help="Trials per array job.")] = 1,
    array_parallelism: ArrayParallelismOpt = 32,
    partition: PartitionOpt = None,
    time: TimeOpt = 60,
    cpus: CpusOpt = 1,
    gpus: GpusOpt = 0,
    mem: MemOpt = None,
) -> None:
    """Search hyper-parameters (Optuna TPE + pruning); writes OUT/best_config.yaml."""
    from profemu.config import Config
    from profemu.runs.folder import DataSource
    from profemu.runs.sweep import run_sweep

    if not data.exists():
        raise ConfigError(f"--data {str(data)!r}: file does not exist; pass the path of a dataset file.")
    base = Config.from_yaml(config) if config is not None else Config()
    if set_:
        base = base.updated(parse_overrides(set_))
    from profemu.runs.cluster import ExecutorOptions

    options = ExecutorOptions.with_limits(executor.value, array_parallelism=array_parallelism,
                                          partition=partition, time_min=time, cpus=cpus, gpus=gpus, mem_gb=mem)
    run_sweep(DataSource(str(data.resolve())), base, space, trials, options, out_dir=out,
              storage=storage, study_name=study_name, seed=seed, pruner=pruner, trials_per_job=trials_per_job)
    record = json.loads((out / "trials.json").read_text())
    states: dict[str, int] = {}
    for t in record["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    typer.echo("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    for err in record.get("job_errors", []):
        typer.echo(f"warning: {err}", err=True)
    done = [t for t in record["trials"] if t["state"] == "COMPLETE" and t.get("value") is not None]
    top = min(done, key=lambda t: t["value"]) if done else None
    swept = "" if top is None else (f" from trial {top['number']} (value {top['value']:.4g}): "
                                    + ", ".join(f"{k}={v}" for k, v in top["params"].items()))
    typer.echo(f"best config: {out / 'best_config.yaml'}{swept}")
    typer.echo(f"train it: profemu train --data {data} --config {out / 'best_config.yaml'}")


def register(app: typer.Typer) -> None:
    """Add ``merge``, ``status``, ``sweep`` and the hidden ``train-member`` to ``app``."""
    app.command("merge")(merge_cmd)
    app.command("status")(status_cmd)
    app.command("train-member", hidden=True)(train_member_cmd)
    app.command("sweep")(sweep_cmd)
