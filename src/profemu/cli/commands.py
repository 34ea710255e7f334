"""The ``profemu`` command line (typer + rich).

Commands::

    profemu train     --data FILE [...]     train an ensemble emulator, write a run folder
    profemu evaluate  RUN [...]             score a run's emulator on a split or other data
    profemu predict   RUN --input FILE      predict profiles for a CSV/npz of inputs
    profemu compare   RUN [...]             compare with the ARD GP and PCA+RBF baselines
    profemu report    RUN                   write RUN/report.html
    profemu mock      --out FILE [...]      write a mock dataset with a known truth
    profemu diagnose  --data FILE [...]     run the stability checklist on data + config
    profemu demo      [--out DIR] [--quick] the whole workflow on the mock universe

Every user error (:class:`~profemu.errors.ProfemuError` or a missing file) ends the
command with exit code 2 and a single ``error: ...`` line on stderr. Progress bars
are shown only when stdout is a terminal; in batch logs, plain lines appear every
``train.log_every`` epochs.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from profemu._files import atomic_write_text
from profemu.cli.cache import use_compilation_cache
from profemu.cli.cluster import (
    ArrayParallelismOpt,
    CpusOpt,
    ExecutorKindOpt,
    ExecutorName,
    GpusOpt,
    GroupSizeOpt,
    MemOpt,
    PartitionOpt,
    TimeOpt,
    WaitOpt,
)
from profemu.cli.cluster import register as register_cluster_commands
from profemu.cli.common import LineFormatter, parse_overrides
from profemu.cli.common import fail as _fail
from profemu.cli.common import parse_count as _parse_count
from profemu.cli.common import user_errors as _user_errors
from profemu.cli.design import register as register_design_commands
from profemu.cli.inference import register as register_inference_commands
from profemu.cli.observe import register as register_observe_commands
from profemu.config import Config
from profemu.errors import ConfigError, DataError

__all__ = ["app", "demo_config", "main", "parse_overrides"]

app = typer.Typer(
    name="profemu",
    help="Physics-informed neural emulators of halo radial profiles.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("profemu.cli")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to whatever ``sys.stderr`` is when the record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_CLI_HANDLER = _StderrHandler()
_CLI_HANDLER.setFormatter(LineFormatter())


def _quiet() -> bool:
    """Whether the command runs with ``--quiet``: progress (the data summary, epochs) is not shown."""
    return _CLI_HANDLER in logging.getLogger("profemu").handlers and _CLI_HANDLER.level >= logging.WARNING


@app.callback()
def _logging(ctx: typer.Context,
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the results: no "
                                                 "progress lines (the data summary, epochs, steps).")] = False) -> None:
    """Progress of every command (data, relevance, compilation, cross-validation, fits) on stderr."""
    log = logging.getLogger("profemu")
    if _CLI_HANDLER in log.handlers:
        return
    level = log.level
    log.addHandler(_CLI_HANDLER)
    _CLI_HANDLER.setLevel(logging.WARNING if quiet else logging.INFO)
    log.setLevel(logging.INFO)

    def restore() -> None:  # the command is over: leave the logger as it was (library use, tests)
        log.removeHandler(_CLI_HANDLER)
        log.setLevel(level)

    ctx.call_on_close(restore)


class DataFormat(StrEnum):
    """File formats ``--format`` accepts."""

    auto = "auto"
    profemu = "profemu"
    camels_lh = "camels-lh"


class SplitName(StrEnum):
    """Rows ``evaluate --split`` scores."""

    test = "test"
    val = "val"
    train = "train"
    all = "all"


# ---------------------------------------------------------------------- plumbing
def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(file=stream, width=None if tty else 160, highlight=False, soft_wrap=not tty)


@contextmanager
def _warnings_as_lines(console: Console) -> Iterator[None]:
    """Show each distinct Python warning once, as a ``warning:`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen: set[str] = set()
    for w in caught:
        text = _short_warning(" ".join(str(w.message).split()))
        if text not in seen and not issubclass(w.category, DeprecationWarning):
            seen.add(text)
            console.print(f"[yellow]warning:[/yellow] {escape(text)}", markup=True, highlight=False)


def _short_warning(text: str, limit: int = 240) -> str:
    """At most four out-of-box inputs (name, values, range) per warning; cut other long messages."""
    prefix = "inputs outside the training box: "
    if text.startswith(prefix):
        parts = [p.strip() for p in text[len(prefix):].split(";")]
        parts = [p for p in parts if p and not p.startswith("predictions")]
        shown = "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")
        uncalibrated = ("; the emulator has no variance for the distance outside the box, so its intervals there "
                        "are too narrow" if "no variance for the distance" in text else "")
        return (f"{prefix}{shown}; predictions there are extrapolations (held-out simulations often lie a little "
                f"outside){uncalibrated}.")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _build_config(config_file: Path | None, overrides: Mapping[str, Any], sets: Sequence[str]) -> Config:
    """YAML file (or defaults), then ``--set`` items, then the explicit flags (which win)."""
    cfg = Config.from_yaml(config_file) if config_file is not None else Config()
    changes = parse_overrides(sets)
    changes.update({k: v for k, v in overrides.items() if v is not None})
    return cfg.updated(changes) if changes else cfg.validate()


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    return items or None


def _resolve_format(path: Path, fmt: str) -> str:
    """``auto`` -> ``camels-lh`` or ``profemu`` (see :func:`profemu.data.io.detect_format`)."""
    from profemu.data.io import detect_format

    return detect_format(path) if fmt == "auto" else fmt


def _data_source(
    path: Path,
    fmt: str,
    *,
    fields: Sequence[str] | None,
    statistic: str | None = None,
    mass_bins: str | None = None,
    mass: str | None = None,
) -> Any:
    """A :class:`~profemu.runs.training.DataSource` with the CAMELS options that apply."""
    from profemu.runs.folder import DataSource

    if not path.exists():
        raise DataError(f"--data {str(path)!r}: file does not exist; pass the path of a dataset file.")
    resolved = _resolve_format(path, fmt)
    options: dict[str, Any] = {}
    camels_opts = {"--statistic": statistic, "--mass-bins": mass_bins, "--mass": mass}
    if resolved == "camels-lh":
        if fields:
            options["fields"] = list(fields)
        if statistic is not None:
            options["statistic"] = statistic
        if mass_bins is not None:
            options["mass_bins"] = "all" if mass_bins.strip() == "all" else _split_list(mass_bins)
        if mass is not None:
            options["mass"] = mass
    else:
        given = [name for name, v in camels_opts.items() if v is not None]
        if given:
            raise DataError(
                f"{', '.join(given)} only apply to the CAMELS LH table (--format camels-lh), "
                f"but {str(path)!r} is a profemu dataset; drop them."
            )
    return DataSource(str(path.resolve()), resolved, options)


#: Column titles shown with a fuller unit on the terminal.
_TITLE_UNITS = {"predict [s/1000]": "predict [s/1000 rows]"}


def _print_table(console: Console, header: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
    """A table whose titles and cells are shown as written: ``RMSE [dex]`` keeps its unit (no markup)."""
    table = Table(title=escape(title), title_justify="left")
    for i, h in enumerate(header):
        table.add_column(escape(_TITLE_UNITS.get(h, h)), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)


def _print_metrics(console: Console, evaluation: Mapping[str, Any], title: str) -> None:
    from profemu.runs.tables import metrics_table

    _print_table(console, *metrics_table(evaluation), title)


def _print_comparison(console: Console, rows: Sequence[Mapping[str, Any]], title: str = "held-out comparison"
                      ) -> None:
    from profemu.runs.tables import comparison_table

    _print_table(console, *comparison_table(rows), title)


class _TrainingProgress:
    """Epoch progress: a rich bar on a terminal, plain lines every ``log_every`` epochs otherwise.

    Each stage (a cross-validation fold, the refit) counts its own epochs against its own
    total (the refit's from the run's ``cv.json``) and its seconds from the start of its
    own epoch loop, not from the start of the command (data loading, compilation).
    """

    def __init__(self, console: Console, epochs: int, log_every: int, run: Path | None = None) -> None:
        self.console = console
        self.epochs = epochs
        self.log_every = max(1, log_every)
        self.tty = console.is_terminal
        self.quiet = _quiet()
        self.run = run
        self.t0 = time.perf_counter()
        self.stage: str | None = None
        self.total = epochs
        self._bar: Any = None
        self._task: Any = None

    def _stage_total(self, entry: Mapping[str, Any], stage: str) -> int:
        """Epochs of this stage: the entry's own count, the refit's from cv.json, else the configured ones."""
        if isinstance(entry.get("epochs"), int):
            return int(entry["epochs"])
        if stage == "refit" and self.run is not None:
            try:
                refit = json.loads((self.run / "cv.json").read_text()).get("refit_epochs")
            except (OSError, ValueError, AttributeError):
                refit = None
            if isinstance(refit, int) and refit > 0:
                return refit
        return self.epochs

    def _start_stage(self, entry: Mapping[str, Any], stage: str) -> None:
        """A new epoch loop began: its clock started when its first epoch did."""
        seconds = entry.get("seconds")
        self.t0 = time.perf_counter() - (float(seconds) if isinstance(seconds, int | float) else 0.0)
        self.stage = stage
        self.total = self._stage_total(entry, stage)

    def __enter__(self) -> _TrainingProgress:
        if self.tty and not self.quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.fields[stage]:>8} epoch {task.completed:>4.0f}/{task.total:.0f}"),
                BarColumn(),
                TextColumn("train {task.fields[train]}  val {task.fields[val]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.epochs, train="-", val="-", stage="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, entry: Mapping[str, Any]) -> None:
        epoch = int(entry.get("epoch", 0)) + 1
        train, val = _num(entry.get("train_loss")), _num(entry.get("val_loss"))
        stage = str(entry.get("stage", ""))
        if stage != self.stage or epoch == 1:
            self._start_stage(entry, stage)
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch, total=self.total, train=train, val=val, stage=stage)
            return
        if not self.quiet and (epoch % self.log_every == 0 or epoch == 1 or epoch == self.total):
            elapsed = time.perf_counter() - self.t0
            extra = ""
            if entry.get("skipped_steps"):
                extra += f"  skipped_steps {entry['skipped_steps']}"
            if entry.get("rollbacks"):
                extra += f"  rollbacks {entry['rollbacks']}"
            prefix = f"[{stage}] " if stage else ""
            self.console.print(
                f"{prefix}epoch {epoch}/{self.total}  train_loss {train}  val_loss {val}  "
                f"lr {_num(entry.get('learning_rate'), '{:.2e}')}  {elapsed:.1f} s{extra}",
                markup=False,
            )


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    if isinstance(value, int | float) and np.isfinite(value):
        return fmt.format(value)
    return "-"


def _check_new_run(run: Path, resume: bool, *, console: Console | None = None) -> None:
    """Refuse an --out that cannot take this training run (:meth:`RunFolder.check_new_run`); with
    ``console`` (the caller holds the folder's lock) reclaim a run stopped before its first checkpoint."""
    from profemu.runs.folder import RunFolder

    note = RunFolder(run).check_new_run(resume=resume, reclaim=console is not None, option="--out")
    if note and console is not None:
        console.print(note, markup=False)


def _train(
    console: Console,
    dataset: Any,
    config: Config,
    run: Path,
    source: Any,
    *,
    resume: bool = False,
) -> Any:
    """Train with progress display; returns the :class:`~profemu.runs.training.TrainResult`."""
    from profemu.runs.training import train_emulator

    with _TrainingProgress(console, config.train.epochs, config.train.log_every, run) as progress, \
            _warnings_as_lines(console):
        outcome = train_emulator(dataset, config, run_dir=run, source=source, progress=progress,
                                 resume=resume)
    return outcome


def _training_summary(console: Console, outcome: Any) -> None:
    counters = outcome.counters or {}
    epochs = len(outcome.history)
    msg = f"trained {outcome.emulator.members} member(s) for {epochs} epoch(s) in {outcome.fit_seconds:.1f} s"
    if outcome.stopped_reason:
        msg += f" (stopped: {outcome.stopped_reason})"
    console.print(msg, markup=False)
    bad = {k: v for k, v in counters.items()
           if k in ("skipped_steps", "rollbacks") and np.sum(np.asarray(v, dtype=float)) > 0}
    if bad:
        console.print(f"[yellow]warning:[/yellow] non-finite steps were handled: {bad}")


# ---------------------------------------------------------------------- options
DataOpt = Annotated[Path, typer.Option("--data", help="Dataset file (.npz/.h5, or the CAMELS LH table).",
                                       rich_help_panel="Data")]
FormatOpt = Annotated[DataFormat, typer.Option("--format", help="File format.", rich_help_panel="Data")]
FieldOpt = Annotated[str | None, typer.Option("--field", help="Field(s) to learn, comma-separated "
                                              "(default: all). Sets data.fields.", rich_help_panel="Data")]
StatisticOpt = Annotated[str | None, typer.Option("--statistic", help="CAMELS LH: 'mean' or 'median' "
                                                  "stacked profile.", rich_help_panel="CAMELS LH table")]
MassBinsOpt = Annotated[str | None, typer.Option("--mass-bins", help="CAMELS LH: comma-separated mass bins, "
                                                 "e.g. 11-11.5,11.5-12, or 'all'.",
                                                 rich_help_panel="CAMELS LH table")]
MassOpt = Annotated[str | None, typer.Option("--mass", help="CAMELS LH: 'mean' or 'median' halo mass.",
                                             rich_help_panel="CAMELS LH table")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML configuration file.",
                                                rich_help_panel="Configuration")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: --set data.pca_components=8 (repeatable; YAML values).",
    rich_help_panel="Configuration")]
RunArg = Annotated[Path, typer.Argument(help="Run folder written by `profemu train`.")]


# ---------------------------------------------------------------------- commands
@app.command()
@_user_errors
def train(
    data: DataOpt,
    format: FormatOpt = DataFormat.auto,
    field: FieldOpt = None,
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to create (default runs/<time>).",
                                             rich_help_panel="Output")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last "
                                         "checkpoint.", rich_help_panel="Output")] = False,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="train.seed (initialisation and data order).",
                                             rich_help_panel="Configuration")] = None,
    test_fraction: Annotated[float | None, typer.Option("--test-fraction", help="data.test_fraction.",
                                                        rich_help_panel="Configuration")] = None,
    members: Annotated[int | None, typer.Option("--members", help="train.members (ensemble size).",
                                                rich_help_panel="Configuration")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="train.epochs (maximum).",
                                               rich_help_panel="Configuration")] = None,
    set_: SetOpt = None,
    statistic: StatisticOpt = None,
    mass_bins: MassBinsOpt = None,
    mass: MassOpt = None,
    executor: ExecutorKindOpt = ExecutorName.inline,
    array_parallelism: ArrayParallelismOpt = 32,
    partition: PartitionOpt = None,
    time_min: TimeOpt = 60,
    cpus: CpusOpt = 1,
    gpus: GpusOpt = 0,
    mem: MemOpt = None,
    group_size: GroupSizeOpt = 1,
    wait: WaitOpt = True,
) -> None:
    """Train an ensemble emulator and write a run folder (emulator, metrics, evaluation).

    With --executor slurm (or local) the members are trained as one job array
    (submitit) and merged into one Emulator when they finish (--wait, the default),
    or later with 'profemu merge RUN'.
    """
    console = _console()
    fields = _split_list(field)
    cfg = _build_config(config, {
        "data.fields": fields,
        "data.test_fraction": test_fraction,
        "train.seed": seed,
        "train.members": members,
        "train.epochs": epochs,
    }, set_ or [])
    source = _data_source(data, format.value, fields=cfg.data.fields, statistic=statistic,
                          mass_bins=mass_bins, mass=mass)
    run = out or Path("runs") / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    _check_new_run(run, resume)  # fail fast, before the data are loaded
    from profemu._lock import folder_lock
    from profemu.runs.folder import load_data

    dataset = load_data(source)
    if not _quiet():
        console.print(dataset.summary(), markup=False)
    with folder_lock(run, what="--out"):
        _check_new_run(run, resume, console=console)  # again, now that no other process can write it
        if executor is not ExecutorName.inline or group_size > 1:
            from profemu.runs.cluster import ExecutorOptions, train_on_cluster

            options = ExecutorOptions.with_limits(executor.value, array_parallelism=array_parallelism,
                                                  partition=partition, time_min=time_min, cpus=cpus, gpus=gpus,
                                                  mem_gb=mem)
            emulator = train_on_cluster(dataset, cfg, run, source, options, group_size=group_size, wait=wait,
                                        report=lambda line: console.print(line, markup=False))
            evaluation = run / "evaluation.json"
            if emulator is not None and evaluation.is_file():
                _print_metrics(console, json.loads(evaluation.read_text()), "held-out (test split) metrics")
            console.print(f"run folder: {run}", markup=False)
            return
        outcome = _train(console, dataset, cfg, run, source, resume=resume)
    _training_summary(console, outcome)
    if outcome.cross_validation:
        report = outcome.emulator.metadata.get("gp_blend", {}).get("report") if outcome.emulator is not None else None
        _print_cross_validation(console, outcome.cross_validation, test_split=bool(outcome.evaluation), blend=report)
    if outcome.evaluation:
        _print_metrics(console, outcome.evaluation, "held-out (test split) metrics")
    console.print(f"run folder: {run}", markup=False)


@app.command()
@_user_errors
def evaluate(
    run: RunArg,
    data: Annotated[Path | None, typer.Option("--data", help="Score on this file instead of the run's data.")] = None,
    format: FormatOpt = DataFormat.auto,
    split: Annotated[SplitName | None, typer.Option(
        "--split", help="Rows to score (default: test for the run's data, all for --data).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Metrics JSON (default RUN/evaluation_<split>.json, "
                                             "replaced on every evaluation); never an input, and an "
                                             "existing file only with --force.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")] = False,
) -> None:
    """Score a run's emulator on one split of its data (or on another file)."""
    from profemu._files import check_output
    from profemu._lock import folder_lock
    from profemu.runs.folder import RunFolder

    folder = RunFolder.open(run)
    if out is not None:
        check_output(out, force=force, inputs={"--data file": data, **folder.inputs()})
    with folder_lock(folder.path, what="RUN"):
        _evaluate_locked(folder, data, format, split, out)


#: Distance outside the training box (dex, Δz or training spreads) from which ``evaluate`` warns.
OUTSIDE_NOTE_DISTANCE = 0.1


def _note_rows_outside(console: Console, emulator: Any, dataset: Any) -> None:
    """Say when scored rows lie well outside the training box: their metrics measure an extrapolation."""
    z = None if dataset.redshift is None or "redshift" not in emulator.training_box else dataset.redshift
    pk = dataset.pk_ratio if getattr(emulator.transforms, "k", None) is not None else None
    d, per_input = emulator.distance_outside(dataset.params, dataset.log10_mass, pk, z)
    outside = d > OUTSIDE_NOTE_DISTANCE  # held-out simulations often lie a little outside: not those
    if outside.any():
        worst = sorted(((float(v.max()), name) for name, v in per_input.items() if np.any(v > 0)), reverse=True)
        console.print(f"[yellow]warning:[/yellow] {int(outside.sum())} of {d.size} rows lie more than {OUTSIDE_NOTE_DISTANCE:g} outside "
                      f"the training box (furthest in {', '.join(f'{n} {v:.3g}' for v, n in worst[:3])}; mass in dex, redshift in "
                      "units of z, parameters in training spreads): their metrics measure an extrapolation.")


def _evaluate_locked(folder: Any, data: Path | None, format: DataFormat, split: SplitName | None,
                     out: Path | None) -> None:
    """``profemu evaluate`` once the run folder is checked and locked."""
    from profemu.metrics import evaluate as score
    from profemu.metrics import write_metrics

    console = _console()
    emulator = folder.emulator()
    fields = list(emulator.field_names)
    if data is not None:
        from profemu.runs.folder import load_data

        source = _data_source(data, format.value, fields=fields)
        run_source = folder.source()
        if source.format == "camels-lh" and run_source is not None and run_source.format == "camels-lh":
            # the same table statistic and mass bins as in training, unless the file says otherwise
            source = type(source)(source.path, source.format, {**run_source.options, **source.options})
        dataset = load_data(source)
        which = (split or SplitName.all).value
    else:
        cv = folder.cross_validation()
        if split is None and cv is not None and folder.split_rows("test").size == 0:
            blend = emulator.metadata.get("gp_blend", {})
            _print_cross_validation(console, cv, blend=blend.get("report") if isinstance(blend, Mapping) else None)
            return
        dataset = folder.dataset()
        which = (split or SplitName.test).value
    missing = [f for f in fields if f not in dataset.fields]
    if missing:
        raise DataError(f"the data lack the field(s) {missing} the emulator predicts; fields are {list(dataset.fields)}.")
    dataset = dataset.select_fields(fields)
    if which != "all":
        rows = folder.split_rows(which, dataset.n)
        if rows.size == 0:
            given = "--split " + which if split is not None else f"evaluate (default split {which!r})"
            others = [n.value for n in SplitName if n.value != which and (n.value == "all" or
                                                                          folder.split_rows(n.value, dataset.n).size)]
            raise DataError(f"{given}: the run's {which} split is empty (the run kept no {which} rows); choose "
                            f"--split {' or --split '.join(others)}, or score another file with --data FILE.")
        dataset = dataset.subset(rows)
    _note_rows_outside(console, emulator, dataset)
    with _warnings_as_lines(console):
        metrics = score(emulator, dataset)
    _print_metrics(console, metrics, f"{which} split ({dataset.n} rows)")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    path = write_metrics(metrics, out or folder.path / f"evaluation_{which}.json")
    console.print(f"metrics written to {path}", markup=False)


def _print_cross_validation(console: Console, cv: Mapping[str, Any], *, test_split: bool = False,
                            blend: Mapping[str, Any] | None = None) -> None:
    """The CV estimates of a run, with their spread over the folds (``test_split``: its test metrics
    follow; ``blend``: the report of the Emulator's GP blend, whose out-of-sample errors follow)."""
    from profemu.emulator.blend import GPBlend
    from profemu.runs.tables import fold_predictor, refit_description

    _print_metrics(console, cv["metrics"], f"cross-validation estimate ({cv['folds']} folds by simulation, "
                   f"{cv['n_rows']} rows; out-of-fold predictions of {fold_predictor(cv)} per fold)")
    spread = cv.get("spread_over_folds", {})
    parts = [f"{k} {100 * v['mean']:.2f} ± {100 * v['std']:.2f}%" for k, v in spread.items()
             if k.startswith("frac_err") and v.get("mean") is not None]
    if parts:
        console.print("spread over folds (mean ± std): " + ", ".join(parts), markup=False)
    held = ("; the held-out test split's metrics follow" if test_split else
            " (no test split was held out)")
    if blend and blend.get("fields"):
        console.print(f"the Emulator: {refit_description(cv)}, and it blends a GP into the network's prediction "
                      "(train.gp_blend), so the table is the network's alone; the blend's out-of-sample errors: "
                      f"{GPBlend.describe(blend, tuple(blend['fields']))}{held}.", markup=False)
        return
    console.print(f"the Emulator: {refit_description(cv)}; "
                  f"these numbers are cross-validation estimates of its error{held}.", markup=False)


class PredictLayout(StrEnum):
    """Layouts of ``predict --format``."""

    wide = "wide"
    long = "long"


#: Rows read and predicted at once by ``profemu predict`` (bounds its memory, whatever the input's size).
PREDICT_CHUNK_ROWS = 8192


class _OutsideTally:
    """The rows read so far and, per input column, how many lay outside the training box and the
    lowest and highest of those values (:meth:`~profemu.emulator.core.Emulator.outside_columns`
    of every chunk), so one warning line covers every row of a file read in chunks."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.outside: dict[str, list[float]] = {}
        self.n = 0

    def add(self, inputs: Any) -> None:
        """Count the rows of a chunk and its inputs outside the box."""
        self.n += inputs.n
        for name, (count, vmin, vmax, lo, hi) in self.emulator.outside_columns(inputs).items():
            seen = self.outside.setdefault(name, [0, vmin, vmax, lo, hi])
            seen[0] += count
            seen[1], seen[2] = min(seen[1], vmin), max(seen[2], vmax)

    def warn(self) -> None:
        """One warning line for every row (the emulator's policy is "warn" here)."""
        self.emulator.report_outside(self.outside, self.n, policy="warn")


def _shift_rows(exc: DataError, offset: int) -> DataError:
    """The same error with ``row i`` counted from the first data row of the file, not of its chunk."""
    import re

    if not offset:
        return exc
    text = re.sub(r"\brow (\d+)", lambda m: f"row {int(m.group(1)) + offset}", str(exc))
    return type(exc)(text)


def _input_chunks(emulator: Any, path: Path, chunk_rows: int, pk_default: np.ndarray | None,
                  ) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
    """Checked inputs and their echoed columns, ``chunk_rows`` rows at a time (a CSV is never read whole)."""
    from profemu.emulator import tables
    from profemu.emulator.tables import describe_values, prediction_arguments, read_table

    if not path.is_file():
        raise DataError(f"--input {str(path)!r}: file does not exist.")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"--input {str(path)!r}: expected a .csv (with a header) or a .npz file.")
    parts = [read_table(path)] if suffix == ".npz" else tables.csv_chunks(path, chunk_rows)
    offset = 0
    for number, table in enumerate(parts):
        args = prediction_arguments(emulator, table, path, pk_default)
        if number == 0 and pk_default is not None and args["pk_ratio"] is not None and \
                np.shape(args["pk_ratio"])[-1:] == pk_default.shape and \
                not any(k.startswith("pk_ratio") for k in table):
            logger.info("predict: %s gives no P(k) suppression (pk_ratio_<j> columns); assuming P_hydro/P_dmo = "
                        "%s on the k bins for every row (--pk-ratio FILE sets another)", path.name,
                        describe_values(pk_default))
        try:
            inputs = emulator.check_inputs(args["params"], args["log10_mass"], args["pk_ratio"], args["redshift"])
        except DataError as exc:
            raise _shift_rows(exc, offset) from None
        echo = {k: v for k, v in args["echo"].items() if np.ndim(v) == 1 and len(v) == inputs.n}
        for start in range(0, inputs.n, chunk_rows):  # an npz arrives whole: predict it in chunks too
            sl = slice(start, min(inputs.n, start + chunk_rows))
            part = type(inputs)(inputs.params[sl], inputs.log10_mass[sl],
                                None if inputs.pk_ratio is None else inputs.pk_ratio[sl],
                                None if inputs.redshift is None else inputs.redshift[sl], False)
            yield part, {k: v[sl] for k, v in echo.items()}
        offset += inputs.n


def _pk_default(emulator: Any, pk_file: Path | None) -> np.ndarray | None:
    """The P(k) assumed for inputs without it: ``--pk-ratio FILE``, else the training set's centre."""
    from profemu.emulator.tables import fiducial_pk_ratio, read_pk_ratio

    n_k = 0 if getattr(emulator.transforms, "k", None) is None else len(emulator.transforms.k)
    if pk_file is not None:
        if not n_k:
            raise ConfigError("--pk-ratio: this emulator was trained without P(k); drop --pk-ratio.")
        return read_pk_ratio(pk_file, n_k)
    return fiducial_pk_ratio(emulator)


def _check_predict_output(out: Path, input: Path, layout: PredictLayout, force: bool, folder: Any,
                          pk_ratio: Path | None = None) -> None:
    """Refuse an --out of another type, one that is an input (the --input and --pk-ratio files, the
    run's files and data file) or exists."""
    from profemu._files import check_output

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"--out {str(out)!r}: expected a .csv or .npz file name.")
    if layout is PredictLayout.long and suffix != ".csv":
        raise ConfigError(f"--format long: writes a CSV table, but --out {str(out)!r} is an npz; "
                          "pass an --out ending in .csv or drop --format long.")
    check_output(out, force=force, inputs={"--input file": input, "--pk-ratio file": pk_ratio, **folder.inputs()})


def predict_chunks(emulator: Any, inputs: Any, chunk_rows: int = PREDICT_CHUNK_ROWS,
                   ) -> Iterator[tuple[int, int, dict[str, tuple[np.ndarray, np.ndarray]],
                                       tuple[np.ndarray, list[str]]]]:
    """Predict checked inputs ``chunk_rows`` rows at a time.

    Args:
        emulator: The Emulator.
        inputs: :class:`~profemu.emulator.inputs.Inputs` from ``emulator.check_inputs``
            (extrapolation is checked by the caller, once for all rows).
        chunk_rows: Rows per call of :meth:`~profemu.emulator.Emulator.predict`.

    Yields:
        ``(start, stop, {field: (mean, std)}, (distance, outside))`` with ``mean`` and ``std``
        [stop - start, n_r] in log10 units and dex, fields in ``emulator.field_names`` order,
        and per row its distance outside the training box [stop - start] and the names of the
        inputs outside it (``;``-separated, empty inside). The values do
        not depend on ``chunk_rows`` beyond float32 rounding (a matrix product's rounding
        depends on how many rows it holds).
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows: {chunk_rows} < 1; pass a positive number of rows.")
    n = inputs.n
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        sl = slice(start, stop)
        pred = emulator.predict(inputs.params[sl], inputs.log10_mass[sl],
                                None if inputs.pk_ratio is None else inputs.pk_ratio[sl],
                                None if inputs.redshift is None else inputs.redshift[sl],
                                on_extrapolation="ignore")
        yield (start, stop, {f: (np.atleast_2d(p.mean), np.atleast_2d(np.sqrt(p.var))) for f, p in pred.items()},
               _outside(next(iter(pred.values()))))


def _outside(pred: Any) -> tuple[np.ndarray, list[str]]:
    """Per input row of a :class:`~profemu.emulator.Prediction`: its distance outside the training
    box and the names of the inputs outside it (``;``-separated, empty inside)."""
    d = np.atleast_1d(np.asarray(pred.distance_outside, dtype=np.float64))
    names = [";".join(k for k, v in pred.outside.items() if np.atleast_1d(v)[i] > 0) for i in range(d.size)]
    return d, names


def _radius_column(emulator: Any) -> str:
    unit = "_".join(str(emulator.radius_unit).split()) or "unit"
    return f"radius_{unit}"


def _write_predictions_csv(out: Path, emulator: Any, chunks: Iterator[tuple[Any, dict[str, np.ndarray]]],
                           layout: PredictLayout, tally: _OutsideTally) -> None:
    """Stream the predictions into ``out`` (one atomic write: the old file or the whole new one)."""
    import io

    from profemu._files import atomic_write

    fields = list(emulator.field_names)
    radius = [f"{r:.8g}" for r in np.asarray(emulator.radius, dtype=float)]
    n_r = len(radius)

    def write(fh: Any) -> None:
        """The header (from the first chunk's columns), then each chunk's rows as it is predicted."""
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(text)
        names: list[str] | None = None
        for inputs, echo in chunks:
            if names is None:
                names = list(echo)
                if layout is PredictLayout.long:
                    writer.writerow(["row", *names, "field", _radius_column(emulator), "mean", "std",
                                     "distance_outside", "outside_inputs"])
                else:
                    header = list(names)
                    for f in fields:
                        header += [f"{f}_mean_r{j}" for j in range(n_r)] + [f"{f}_std_r{j}" for j in range(n_r)]
                    writer.writerow([*header, "distance_outside", "outside_inputs"])
            first = tally.n
            tally.add(inputs)
            echo_cols = [np.asarray(echo[c], dtype=np.float64) for c in names]
            (_, _, pred, (dist, outside)), = predict_chunks(emulator, inputs, max(1, inputs.n))
            given = [[repr(float(col[i])) for col in echo_cols] for i in range(inputs.n)]
            if layout is PredictLayout.long:
                for i in range(inputs.n):
                    lead = [str(first + i), *given[i]]
                    tail = [f"{dist[i]:.6g}", outside[i]]
                    for f in fields:
                        mean, std = pred[f]
                        writer.writerows([*lead, f, radius[j], f"{mean[i, j]:.8g}", f"{std[i, j]:.8g}", *tail]
                                         for j in range(n_r))
            else:
                values = np.concatenate([b for f in fields for b in pred[f]], axis=1)
                writer.writerows([*given[i], *(f"{v:.8g}" for v in row), f"{dist[i]:.6g}", outside[i]]
                                 for i, row in enumerate(values))
        text.flush()
        text.detach()

    atomic_write(out, write)


def _write_predictions_npz(out: Path, emulator: Any, chunks: Iterator[tuple[Any, dict[str, np.ndarray]]],
                           tally: _OutsideTally) -> None:
    """``radius``, ``<field>_mean`` / ``<field>_std`` [n, n_r], ``distance_outside`` [n],
    ``outside_inputs`` [n] and the inputs, atomically.

    An npz is written whole, so its arrays are collected in memory, refused (with the
    estimate and the limit) once they would exceed it; a CSV --out streams instead.
    """
    from profemu._files import atomic_write, check_memory

    n_r = len(emulator.radius)
    parts: dict[str, list[np.ndarray]] = {f"{f}_{k}": [] for f in emulator.field_names for k in ("mean", "std")}
    echo_parts: dict[str, list[np.ndarray]] = {}
    distances: list[np.ndarray] = []
    outside: list[str] = []
    for inputs, echo in chunks:
        tally.add(inputs)
        check_memory(f"--out {str(out)!r} ({tally.n} rows so far, an npz written whole)",
                     tally.n * (2 * len(emulator.field_names) * n_r + len(echo)) * 8.0,
                     fix="write a .csv --out, which is streamed, or split the input")
        (_, _, pred, (dist, names)), = predict_chunks(emulator, inputs, max(1, inputs.n))
        for f, (mean, std) in pred.items():
            parts[f"{f}_mean"].append(mean)
            parts[f"{f}_std"].append(std)
        distances.append(dist)
        outside += names
        for k, v in echo.items():
            echo_parts.setdefault(k, []).append(np.asarray(v, dtype=np.float64))
    arrays: dict[str, np.ndarray] = {"radius": np.asarray(emulator.radius),
                                     "radius_unit": np.asarray(str(emulator.radius_unit)),
                                     "fields": np.asarray(list(emulator.field_names))}
    arrays.update({k: np.concatenate(v) if v else np.empty((0, n_r)) for k, v in parts.items()})
    arrays["distance_outside"] = np.concatenate(distances) if distances else np.empty(0)
    arrays["outside_inputs"] = np.asarray(outside, dtype=str)
    if echo_parts:
        arrays["input_columns"] = np.asarray(list(echo_parts))
        arrays["inputs"] = np.column_stack([np.concatenate(v) for v in echo_parts.values()])
    atomic_write(out, lambda fh: np.savez(fh, **arrays))


def _print_inputs(console: Console, run: Path, emulator: Any) -> None:
    """The input columns a run's emulator needs, as a CSV header and with their training ranges."""
    from profemu.emulator.tables import required_columns

    required = required_columns(emulator)
    box = emulator.training_box
    console.print(f"input columns of {run} (a CSV header; an npz takes params [n, {len(emulator.param_names)}] "
                  "in this order, log10_mass [n], and pk_ratio / redshift where listed):", markup=False)
    header = io.StringIO()
    csv.writer(header, lineterminator="").writerow(required)  # a name with a comma or a quote stays one field
    console.print(header.getvalue(), markup=False, soft_wrap=True)
    log = set(emulator.log_params)
    width = max(len(name) for name in required) + 2
    for name in required:
        lo, hi = None, None
        if name in box:
            lo, hi = box[name]
        elif name.startswith("pk_ratio_") and "pk_ratio" in box:
            j = int(name.rsplit("_", 1)[1])
            lo, hi = (float(np.asarray(a)[j]) for a in box["pk_ratio"])
        rng = "" if lo is None else f"training range {float(lo):.4g} .. {float(hi):.4g}"
        console.print(f"  {name:<{width}}{rng}{' (log-sampled: linear value > 0)' if name in log else ''}",
                      markup=False)


@app.command()
@_user_errors
def predict(
    run: RunArg,
    input: Annotated[Path | None, typer.Option("--input", help="CSV with a header (parameter names, log10_mass, "
                                               "pk_ratio_<j>, redshift; --list-inputs names them) or npz "
                                               "(params, log10_mass, ...).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output .csv or .npz (default <input>_pred.csv); "
                                             "never the input, and an existing file only with --force. A .csv is "
                                             "written chunk by chunk; an .npz holds every row in memory until it "
                                             "is written.")] = None,
    layout: Annotated[PredictLayout, typer.Option(
        "--format", help="CSV layout: 'wide' (one line per input row: the input columns, then "
        "<field>_mean_r<j> and <field>_std_r<j>) or 'long' (one line per row, field and radius: "
        "row, the input columns, field, radius_<unit>, mean, std). Both end with distance_outside (how far "
        "the row lies outside the training box: log10 mass in dex, parameters in training spreads, redshift "
        "in units of 1; 0 inside) and outside_inputs (the inputs outside it, ';'-separated).")
    ] = PredictLayout.wide,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")] = False,
    list_inputs: Annotated[bool, typer.Option("--list-inputs", help="Print the input columns the run's "
                                              "emulator needs (with their training ranges) and exit.")] = False,
    pk_ratio: Annotated[Path | None, typer.Option(
        "--pk-ratio", help="Emulators with P(k): a text file of the P_hydro/P_dmo to assume for rows without "
        "pk_ratio_<j> columns (one value per k bin, in one row or one column; default: the centre of the "
        "training set's P(k)).")] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", hidden=True, help="Rows read and predicted at once.")]
    = PREDICT_CHUNK_ROWS,
) -> None:
    """Predict log10 profiles (mean and std \\[dex] per field and radius) for a table of inputs.

    The output echoes the input columns; radii are in the npz (array 'radius') and, with
    --format long, in the radius_<unit> column (wide column _r<j> is radius j of
    --format long / the npz). Inputs are read and predicted in chunks, and the file is
    written atomically: the old one or the whole new one, never a part.
    """
    import glob

    from profemu._files import remove_stale_temporaries
    from profemu.runs.folder import RunFolder

    console = _console()
    if chunk_rows < 1:
        raise ConfigError(f"--chunk-rows: {chunk_rows} < 1; pass a positive number of rows.")
    if list_inputs:
        _print_inputs(console, run, RunFolder.open(run).emulator())
        return
    if input is None:
        raise ConfigError("--input: missing; pass a CSV or npz of inputs (profemu predict RUN --list-inputs "
                          "names the columns).")
    folder = RunFolder.open(run)  # a missing run folder is the first thing to say
    out = out or input.with_name(f"{input.stem}_pred.csv")
    _check_predict_output(out, input, layout, force, folder, pk_ratio)
    emulator = folder.emulator()
    chunks = _input_chunks(emulator, input, chunk_rows, _pk_default(emulator, pk_ratio))
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, glob.escape(out.name))  # what a killed predict left
    tally = _OutsideTally(emulator)
    with _warnings_as_lines(console):
        if out.suffix.lower() == ".npz":
            _write_predictions_npz(out, emulator, chunks, tally)
        else:
            _write_predictions_csv(out, emulator, chunks, layout, tally)
        tally.warn()  # once for all rows, not per chunk
    console.print(f"predicted {tally.n} row(s) of {list(emulator.field_names)} (log10 units, std in dex, "
                  f"{len(emulator.radius)} radii in {emulator.radius_unit}) -> {out}", markup=False)


#: Seconds between the "still fitting" lines of a long baseline fit.
HEARTBEAT_SECONDS = 15.0


@contextmanager
def _heartbeat(what: str, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Log ``what: still running (N s)`` every ``every`` seconds while the block runs.

    The lines go through the command line's log handler, so ``--quiet`` hides them; a
    long fit (the exact GP takes minutes on thousands of rows) is never minutes of silence.
    """
    import threading

    done = threading.Event()
    t0 = time.perf_counter()

    def beat() -> None:
        while not done.wait(every):
            logger.info("%s: still running (%.0f s)", what, time.perf_counter() - t0)

    thread = threading.Thread(target=beat, name="profemu-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _compare_run(console: Console, folder: Any, emulator: Any, *, gp_max_train: int, use_gp: bool,
                 dataset: Any = None, folds: Sequence[int] | None = None) -> dict[str, Any]:
    """Fit and score the baselines on the run's split or folds (:func:`profemu.runs.compare.compare_run`)."""

    from profemu.baselines import GPBaseline, PCARBFBaseline
    from profemu.runs.compare import compare_run

    baselines: list[Any] = [GPBaseline(max_train=gp_max_train)] if use_gp else []
    baselines.append(PCARBFBaseline())
    console.print(f"fitting {[b.name for b in baselines]} (GP on at most {gp_max_train} rows) on the rows "
                  "the run was judged on: its test split, or its own cross-validation folds", markup=False)
    # the GP's progress (one line per start, one summary of optimiser trouble) reaches the
    # terminal through the command line's log handler
    with _warnings_as_lines(console), _heartbeat(f"fitting {', '.join(b.name for b in baselines)}"):
        return compare_run(folder, emulator, baselines, dataset=dataset, folds=folds)


def _parse_folds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        folds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--folds: {text!r} is not a comma-separated list of fold numbers, e.g. 0 or 0,1.") from None
    if not folds or min(folds) < 0:
        raise ConfigError(f"--folds: {text!r}; give fold numbers >= 0, e.g. 0 or 0,1.")
    return folds


@app.command(name="compare")
@_user_errors
def compare_cmd(
    run: RunArg,
    gp_max_train: Annotated[int, typer.Option("--gp-max-train", help="Largest training set given to the GP "
                                              "(a seeded random subset beyond it; exact GPs cost O(N^3)).")] = 3000,
    no_gp: Annotated[bool, typer.Option("--no-gp", help="Skip the ARD GP baseline.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the markdown table here (RUN/compare.md "
                                             "is always written, beside RUN/compare.json); never an input, "
                                             "and an existing file only with --force.")] = None,
    folds: Annotated[str | None, typer.Option(
        "--folds", help="Cross-validated runs: the folds to score, e.g. 0 (default: every fold).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")] = False,
) -> None:
    """Compare the emulator with the ARD GP and PCA+RBF baselines on the run's test split or its own CV folds."""
    from profemu.runs.compare import format_table
    from profemu.runs.folder import RunFolder

    if gp_max_train < 5:
        raise ConfigError(f"--gp-max-train: {gp_max_train} < 5; the GP needs a few training rows.")
    from profemu._files import check_output
    from profemu._lock import folder_lock

    console = _console()
    folder = RunFolder.open(run)
    chosen = _parse_folds(folds)
    if out is not None:
        source = folder.source()
        check_output(out, force=force, inputs={"run's data file": None if source is None else Path(source.path),
                                               **folder.inputs()})
    with folder_lock(folder.path, what="RUN"):
        # writes RUN/compare.json and RUN/compare.md as a pair (profemu.runs.compare.write_comparison)
        record = _compare_run(console, folder, folder.emulator(), gp_max_train=gp_max_train, use_gp=not no_gp,
                              folds=chosen)
    rows = record["rows"]
    where = record["estimate"] + (f", folds {record['folds']}" if "folds" in record else "")
    _print_comparison(console, rows, f"comparison on {where}")
    if record.get("note"):
        console.print(f"note: {record['note']}.", markup=False)
    written = [folder.path / "compare.json", folder.path / "compare.md"]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, format_table(rows) + "\n")
        written.append(out)
    console.print(f"written {', '.join(map(str, written))}", markup=False)


@app.command()
@_user_errors
def report(run: RunArg) -> None:
    """Write RUN/report.html: metrics, residuals, profiles, errors, calibration, comparison, physics, sensitivity, suggestions, training curves."""
    from profemu._files import remove_stale_temporaries
    from profemu._lock import folder_lock
    from profemu.runs.folder import RunFolder
    from profemu.runs.report import write_report

    folder = RunFolder.open(run, require_emulator=False)
    with folder_lock(folder.path, what="RUN"), _warnings_as_lines(_console()):
        remove_stale_temporaries(folder.path, "*")  # what a killed report or compare left
        folder.check_provenance()
        path = write_report(folder.path)
    _console().print(f"report: {path}", markup=False)


#: Bytes the mock universe holds per row (35 parameters, 24 radii, its fields with truth, noise and
#: mask, 10 P(k) bins, plus the working copies made while it is built), an upper estimate.
MOCK_BYTES_PER_ROW = 16_000


def _check_mock_size(text: str) -> int:
    """``--n`` of ``profemu mock`` as a number of rows, refused before allocating when too large."""
    from profemu._files import check_memory

    rows = _parse_count("--n", text)
    check_memory(f"--n {rows} (the mock dataset)", rows * MOCK_BYTES_PER_ROW, fix="pass a smaller --n")
    return rows


@app.command()
@_user_errors
def mock(
    out: Annotated[Path, typer.Option("--out", help="Output dataset file (.npz or .h5).")],
    n: Annotated[str, typer.Option("--n", help="Number of rows (halo-mass bins), e.g. 4000 or 1e4.")] = "4000",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (>= 0).")] = 0,
    noise_dex: Annotated[float, typer.Option("--noise-dex", help="Log-normal noise per element \\[dex].")] = 0.02,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")] = False,
) -> None:
    """Write a mock CAMELS-like dataset with a known noiseless truth."""
    from profemu._files import check_output
    from profemu.data.mock import write_mock

    rows = _check_mock_size(n)
    if seed < 0:
        raise ConfigError(f"--seed {seed}: seeds are whole numbers >= 0; pass e.g. --seed 0.")
    check_output(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = write_mock(out, rows, seed=seed, noise_dex=noise_dex)
    _console().print(f"mock dataset ({rows} rows, seed {seed}, noise {noise_dex} dex) -> {path}", markup=False)


@app.command()
@_user_errors
def diagnose(
    data: DataOpt,
    format: FormatOpt = DataFormat.auto,
    field: FieldOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    statistic: StatisticOpt = None,
    mass_bins: MassBinsOpt = None,
    mass: MassOpt = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the checks' random choices.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer steps and a smaller mock universe.")] = False,
) -> None:
    """Run the stability checklist on a dataset and configuration (exit 1 if a check fails)."""
    try:
        from profemu.diagnose import run_diagnostics
    except ModuleNotFoundError as exc:
        if exc.name != "profemu.diagnose":
            raise
        _fail("the diagnose module is not available in this installation of profemu.")
    from profemu.runs.folder import load_data

    console = _console()
    cfg = _build_config(config, {"data.fields": _split_list(field)}, set_ or [])
    source = _data_source(data, format.value, fields=cfg.data.fields, statistic=statistic,
                          mass_bins=mass_bins, mass=mass)
    dataset = load_data(source)
    with _warnings_as_lines(console):
        checks = run_diagnostics(dataset, cfg, seed=seed, quick=quick)
    table = Table(title="diagnostics", title_justify="left")
    for col in ("check", "result", "value", "advice"):
        table.add_column(col)
    for c in checks:
        table.add_row(escape(str(c.name)), "[green]pass[/green]" if c.passed else "[red]FAIL[/red]",
                      escape(str(c.value)), "" if c.passed else escape(str(c.advice)))
    console.print(table)
    failed = [c.name for c in checks if not c.passed]
    if failed:
        console.print(f"{len(failed)} check(s) failed: {', '.join(map(str, failed))}", markup=False)
        raise typer.Exit(1)


# ---------------------------------------------------------------------- demo
def demo_config(*, quick: bool = False) -> Config:
    """The configuration of ``profemu demo``: the shipped network with physics losses.

    The network kind is the default's (``model.kind``: the plain MLP, which matched or beat
    every physics-core variant at the speed target on CAMELS; see BENCHMARKS.md); the
    profiles are learnt divided by their self-similar scale, with soft monotonicity and
    smoothness penalties. Tuned to train in about a minute on 2 CPU cores on the 3000-row
    mock universe (``quick``: a tiny ensemble that trains in seconds, for tests).
    """
    changes: dict[str, Any] = {
        "data.fields": ["rho", "pth"],
        "data.pca_components": 0,
        "data.test_fraction": 0.15,  # held out for the comparison with the baselines
        "train.cv_folds": 0,
        "model.hidden": [128, 128],
        "loss.physics.monotonic_weight": 1.0,
        "loss.physics.smoothness_weight": 0.1,
        "train.members": 5,
        "train.epochs": 60,
        "train.batch_size": 128,
        "train.patience": 20,
        "train.log_every": 10,
        "optim.learning_rate": 3e-3,
        "optim.warmup_epochs": 3,
    }
    if quick:
        changes.update({
            "model.hidden": [32],
            "train.members": 2,
            "train.epochs": 4,
            "train.batch_size": 64,
            "train.log_every": 1,
            "optim.warmup_epochs": 1,
        })
    return Config().updated(changes)


@app.command()
@_user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data, the run and the report.")] = Path(
        "profemu_demo"),
    quick: Annotated[bool, typer.Option("--quick", help="A much smaller, faster version (for tests).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the data.npz and run/ of an earlier demo in "
                                        "--out.")] = False,
) -> None:
    """The whole workflow on the mock universe: data, training, evaluation, baselines, report.

    Everything is written into a hidden folder beside --out first and moved into place at
    the end, so an interrupted demo never leaves a half-written demo in --out, nor new files
    beside an earlier demo's.
    """
    import shutil

    from profemu._lock import folder_lock

    console = _console()
    t0 = time.perf_counter()
    _check_demo_out(out, force)
    _remove_stale_demo_folders(out)
    stage = _demo_stage(out)
    try:
        with folder_lock(stage / "run", what="--out"):
            _demo_steps(console, stage, out, 240 if quick else 3000, quick)
        _publish_demo(console, stage, out, force)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report_path = out / "run" / "report.html"
    console.print(f"[4/4] report: {report_path}", markup=False)
    console.print(f"done in {time.perf_counter() - t0:.0f} s; open {report_path} in a browser.", markup=False)


def _check_demo_out(out: Path, force: bool) -> None:
    """Refuse a demo --out whose data.npz or run/ would be replaced (without --force: always)."""
    from profemu._files import check_output
    from profemu.runs.folder import RunFolder

    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r} is a file; pass a folder for the demo's data, run and report.")
    check_output(out / "data.npz", force=force, option="--out (its data.npz)")
    run = out / "run"
    if run.exists() and not force:
        raise DataError(f"--out {str(out)!r} already holds a run/ folder; pass --force to replace the earlier "
                        "demo or choose another --out.")
    if run.exists() and not (run.is_dir() and RunFolder(run).is_run_folder()):
        raise DataError(f"--out {str(out)!r}: its run/ is not a profemu run folder, so the demo will not replace "
                        "it (--force does not change that); choose another --out.")


#: Hidden folders of a demo in progress: ``.<out>.demo-<host>-<pid>-<ns>`` beside --out (the new
#: demo) and ``<out>/.demo.old-<host>-<pid>-<ns>`` (an earlier demo's files while they are replaced).
_DEMO_STAGE = "{name}.demo"
_DEMO_OLD = ".demo.old"
_DEMO_FILES = ("run", "data.npz")  # moved in this order: run/ leaves first and comes back last


def _demo_tag() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


def _beside(out: Path) -> tuple[Path, str]:
    """The folder that holds ``out`` and ``out``'s name (``out`` made absolute, ``..`` resolved)."""
    import os

    full = Path(os.path.normpath(out.absolute()))
    return full.parent, full.name


def _demo_stage(out: Path) -> Path:
    """A new, empty hidden folder beside ``out`` (same file system, so it can be renamed into place)."""
    from profemu._files import file_error

    parent, name = _beside(out)
    stage = parent / f".{_DEMO_STAGE.format(name=name)}-{_demo_tag()}"
    try:
        stage.mkdir(parents=True)
    except OSError as exc:
        raise file_error(out, exc, "create the folder beside") from None
    return stage


def _remove_stale_demo_folders(out: Path) -> None:
    """Delete the hidden folders that killed demos of ``out`` left: those of processes of this host
    that no longer run (a live process's are never touched)."""
    import os
    import re
    import shutil
    import socket

    host = socket.gethostname()
    parent, name = _beside(out)
    places = ((parent, rf"\.{re.escape(_DEMO_STAGE.format(name=name))}-(.+)-(\d+)-\d+"),
              (out, rf"{re.escape(_DEMO_OLD)}-(.+)-(\d+)-\d+"))
    for folder, pattern in places:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = re.fullmatch(pattern, entry.name)
            if not match or match[1] != host or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                os.kill(int(match[2]), 0)
            except ProcessLookupError:  # gone: what it left is stale
                shutil.rmtree(entry.path, ignore_errors=True)
            except (PermissionError, OverflowError, ValueError):  # alive (another user's) or not a pid
                continue


def _demo_steps(console: Console, stage: Path, out: Path, n_rows: int, quick: bool) -> None:
    """The steps of ``profemu demo``, written into ``stage`` (the caller holds its run folder's lock);
    ``data.json``, the report and the messages name the places the files take once moved into ``out``."""
    from profemu.data.mock import write_mock
    from profemu.runs.folder import DataSource, RunFolder, load_data
    from profemu.runs.report import write_report

    run = stage / "run"
    data_path = write_mock(stage / "data.npz", n_rows, seed=0)
    console.print(f"[1/4] mock universe: {n_rows} rows -> {out / 'data.npz'}", markup=False)
    source = DataSource(str(Path(data_path).resolve()), "profemu", {})
    dataset = load_data(source)
    cfg = demo_config(quick=quick)
    console.print(f"[2/4] training a {cfg.train.members}-member {cfg.model.kind} ensemble "
                  f"(up to {cfg.train.epochs} epochs)", markup=False)
    outcome = _train(console, dataset, cfg, run, source)
    # the run's data file is the one that will be moved into --out (same bytes: split.json's checksum holds)
    folder = RunFolder.open(run)
    folder.write_json("data.json", DataSource(str((out / "data.npz").resolve()), "profemu", {}).to_dict())
    _training_summary(console, outcome)
    if outcome.evaluation:
        _print_metrics(console, outcome.evaluation, "held-out (test split) metrics")
    console.print("[3/4] comparing with the ARD GP and PCA+RBF baselines", markup=False)
    rows = _compare_run(console, folder, outcome.emulator, gp_max_train=40 if quick else 3000,
                        use_gp=True, dataset=dataset)["rows"]  # writes compare.json and compare.md
    _print_comparison(console, rows)
    with _warnings_as_lines(console):
        report = write_report(run, dataset=dataset)
    _name_final_run_folder(report, run, out / "run")


def _name_final_run_folder(report: Path, staged: Path, final: Path) -> None:
    """Make the report written in the staging folder name the run folder it is moved to."""
    import html

    text = report.read_text(encoding="utf-8")
    atomic_write_text(report, text.replace(html.escape(str(staged.resolve()), quote=True),
                                           html.escape(str(final.resolve()), quote=True)))


def _publish_demo(console: Console, stage: Path, out: Path, force: bool) -> None:
    """Move the finished demo in ``stage`` into ``out``.

    A new ``out`` is ``stage`` renamed (one step). Into an existing ``out`` (its other files
    are kept), under the lock of its run/: the earlier run/ and data.npz are moved aside into
    a hidden folder, the new data.npz and run/ are moved in (run/ last), then the earlier
    files are deleted. A kill between the steps leaves no run/ in ``out`` (nothing that looks
    like a finished demo), never a run beside the data of another demo; an error puts the
    earlier files back.
    """
    import contextlib
    import os
    import shutil

    from profemu._files import file_error
    from profemu._lock import folder_lock

    if not out.exists() and not out.is_symlink():
        try:
            os.rename(stage, out)
            return
        except OSError:  # --out appeared meanwhile: moved in piece by piece, after the checks below
            pass
    earlier = out / f"{_DEMO_OLD}-{_demo_tag()}"
    with folder_lock(out / "run", what="--out", create=False):  # no other process writes the earlier run
        _check_demo_out(out, force)  # again: --out may have changed while the demo ran
        moved: list[str] = []
        placed: list[str] = []
        try:
            earlier.mkdir()
            for name in _DEMO_FILES:
                if (out / name).exists() or (out / name).is_symlink():
                    (out / name).rename(earlier / name)
                    moved.append(name)
            for name in reversed(_DEMO_FILES):
                (stage / name).rename(out / name)
                placed.append(name)
        except OSError as exc:
            for src, dst, names in ((out, stage, placed), (earlier, out, moved)):  # take back, put back
                for name in names:
                    with contextlib.suppress(OSError):
                        (src / name).rename(dst / name)
            shutil.rmtree(earlier, ignore_errors=True)
            raise file_error(out, exc, "move the demo into") from None
    shutil.rmtree(earlier, ignore_errors=True)
    with contextlib.suppress(OSError):
        stage.rmdir()  # empty now
    if moved:
        names = " and ".join("run/" if name == "run" else name for name in moved)
        console.print(f"--force: replaced the earlier demo's {names} in {out}", markup=False)


register_cluster_commands(app)
register_inference_commands(app)
register_observe_commands(app)
register_design_commands(app)


def main() -> None:
    """Entry point of the ``profemu`` console script: keeps compiled programs between runs
    (:mod:`profemu.cli.cache`, before JAX is imported), then runs the command."""
    if "jax" not in sys.modules:
        use_compilation_cache()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
