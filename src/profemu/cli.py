"""The ``profemu`` command line (typer + rich).

Commands::

    profemu train     --data FILE [...]     train an ensemble emulator, write a run folder
    profemu evaluate  RUN [...]             score a run's emulator on a split or other data
    profemu predict   RUN --input FILE      predict profiles for a CSV/npz of inputs
    profemu compare   RUN [...]             compare with the PCA+GP and PCA+RBF baselines
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
import json
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
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from profemu._files import atomic_write_text
from profemu.cli_cluster import (
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
    executor_options,
    train_on_cluster,
)
from profemu.cli_cluster import register as register_cluster_commands
from profemu.cli_common import fail as _fail
from profemu.cli_common import user_errors as _user_errors
from profemu.cli_design import register as register_design_commands
from profemu.cli_inference import register as register_inference_commands
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
        return f"{prefix}{shown}; predictions there are extrapolations (held-out simulations often lie a little outside)."
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--set`` items ``key=value`` into ``{dotted.key: value}``.

    Values are read with ``yaml.safe_load``, so ``8`` is an int, ``[64, 64]`` a list and
    ``true`` a bool; a bare number such as ``1e-3`` is a float.

    Raises:
        ConfigError: an item without ``=``, an empty key or a value that is not YAML.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted config key, e.g. --set data.pca_components=8."
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({first}).") from None
        if value is None and raw.strip().lower() not in ("null", "~", "none"):
            raise ConfigError(f"--set {item!r}: empty value; write e.g. --set {key}=8.")
        if isinstance(value, str):
            value = _yaml11_number(value)
        out[key] = value
    return out


def _yaml11_number(text: str) -> Any:
    """``1e-3`` is a string in YAML 1.1 but a number to every user: read it as a float."""
    try:
        return float(text)
    except ValueError:
        return text


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
    """A :class:`~profemu.workflow.DataSource` with the CAMELS options that apply."""
    from profemu.run import DataSource

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


def _print_metrics(console: Console, evaluation: Mapping[str, Any], title: str) -> None:
    from profemu.report import metrics_table

    header, rows = metrics_table(evaluation)
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _print_comparison(console: Console, rows: Sequence[Mapping[str, Any]]) -> None:
    from profemu.report import comparison_table

    header, body = comparison_table(rows)
    table = Table(title="held-out comparison", title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in body:
        table.add_row(*row)
    console.print(table)


class _TrainingProgress:
    """Epoch progress: a rich bar on a terminal, plain lines every ``log_every`` epochs otherwise."""

    def __init__(self, console: Console, epochs: int, log_every: int) -> None:
        self.console = console
        self.epochs = epochs
        self.log_every = max(1, log_every)
        self.tty = console.is_terminal
        self.t0 = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _TrainingProgress:
        if self.tty:
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
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch, train=train, val=val, stage=stage)
            return
        if epoch % self.log_every == 0 or epoch == 1 or epoch == self.epochs:
            elapsed = time.perf_counter() - self.t0
            extra = ""
            if entry.get("skipped_steps"):
                extra += f"  skipped_steps {entry['skipped_steps']}"
            if entry.get("rollbacks"):
                extra += f"  rollbacks {entry['rollbacks']}"
            prefix = f"[{stage}] " if stage else ""
            self.console.print(
                f"{prefix}epoch {epoch}/{self.epochs}  train_loss {train}  val_loss {val}  "
                f"lr {_num(entry.get('learning_rate'), '{:.2e}')}  {elapsed:.1f} s{extra}",
                markup=False,
            )


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    if isinstance(value, int | float) and np.isfinite(value):
        return fmt.format(value)
    return "-"


def _check_new_run(run: Path, resume: bool, *, console: Console | None = None) -> None:
    """Refuse an --out that cannot take this training run (the lock is checked separately).

    With ``console`` (the caller holds the folder's lock), a folder whose earlier run
    stopped before its first checkpoint is reclaimed: its training outputs are removed
    and the run starts over, with a line saying so.
    """
    from profemu.run import RunFolder

    folder = RunFolder(run)
    if resume:
        if not run.is_dir():
            raise DataError(f"--resume: {str(run)!r} does not exist; drop --resume to start a new run there.")
        if not folder.checkpoint_files():
            why = (" (its training stopped before the first checkpoint; train.checkpoint_every sets how often "
                   "they are written)") if folder.is_training_run() else ""
            raise DataError(f"--resume: {str(run)!r} has no checkpoints to resume from{why}; drop --resume "
                            "to start the run over.")
        return
    if folder.stopped_before_first_checkpoint():
        if console is not None:
            epochs = len(folder.history())
            removed = folder.reclaim()
            console.print(f"--out {run}: the earlier training run there stopped after {epochs} epoch(s), before "
                          f"its first checkpoint, so nothing could be resumed; starting over (removed "
                          f"{', '.join(removed)}).", markup=False)
        return
    if folder.is_training_run():
        raise DataError(
            f"--out {str(run)!r} already holds a training run; choose another --out or pass --resume "
            "to continue it."
        )


def _train(
    console: Console,
    dataset: Any,
    config: Config,
    run: Path,
    source: Any,
    *,
    resume: bool = False,
) -> Any:
    """Train with progress display; returns the :class:`~profemu.workflow.TrainOutcome`."""
    from profemu.workflow import train_emulator

    with _TrainingProgress(console, config.train.epochs, config.train.log_every) as progress, \
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
    seed: Annotated[int | None, typer.Option("--seed", help="train.seed (initialisation and data order).",
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

    With ``--executor slurm`` (or ``local``) the members are trained as one job array
    (submitit) and merged into one Emulator when they finish (``--wait``, the default),
    or later with ``profemu merge RUN``.
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
    from profemu.run import load_data

    dataset = load_data(source)
    console.print(dataset.summary(), markup=False)
    with folder_lock(run, what="--out"):
        _check_new_run(run, resume, console=console)  # again, now that no other process can write it
        if executor is not ExecutorName.inline or group_size > 1:
            options = executor_options(executor.value, array_parallelism=array_parallelism, partition=partition,
                                       time=time_min, cpus=cpus, gpus=gpus, mem=mem)
            emulator = train_on_cluster(dataset, cfg, run, source, options, group_size=group_size, wait=wait,
                                        echo=lambda line: console.print(line, markup=False))
            evaluation = run / "evaluation.json"
            if emulator is not None and evaluation.is_file():
                _print_metrics(console, json.loads(evaluation.read_text()), "held-out (test split) metrics")
            console.print(f"run folder: {run}", markup=False)
            return
        outcome = _train(console, dataset, cfg, run, source, resume=resume)
    _training_summary(console, outcome)
    if outcome.cross_validation:
        _print_cross_validation(console, outcome.cross_validation)
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
    out: Annotated[Path | None, typer.Option("--out", help="Metrics JSON (default RUN/evaluation_<split>.json).")] = None,
) -> None:
    """Score a run's emulator on one split of its data (or on another file)."""
    from profemu.evaluate import evaluate as score
    from profemu.evaluate import write_metrics
    from profemu.run import RunFolder

    console = _console()
    folder = RunFolder.open(run)
    emulator = folder.emulator()
    fields = list(emulator.field_names)
    if data is not None:
        from profemu.run import load_data

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
            _print_cross_validation(console, cv)
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
            raise DataError(f"--split {which}: the run's {which} split is empty; choose another split.")
        dataset = dataset.subset(rows)
    with _warnings_as_lines(console):
        metrics = score(emulator, dataset)
    _print_metrics(console, metrics, f"{which} split ({dataset.n} rows)")
    path = write_metrics(metrics, out or folder.path / f"evaluation_{which}.json")
    console.print(f"metrics written to {path}", markup=False)


def _print_cross_validation(console: Console, cv: Mapping[str, Any]) -> None:
    """The CV estimates of a run without a test split, with their spread over the folds."""
    _print_metrics(console, cv["metrics"], f"cross-validation estimate ({cv['folds']} folds by simulation, "
                   f"{cv['n_rows']} rows; out-of-fold predictions)")
    spread = cv.get("spread_over_folds", {})
    parts = [f"{k} {100 * v['mean']:.2f} ± {100 * v['std']:.2f}%" for k, v in spread.items()
             if k.startswith("frac_err") and v.get("mean") is not None]
    if parts:
        console.print("spread over folds (mean ± std): " + ", ".join(parts), markup=False)
    console.print(f"the Emulator was refitted on all {cv['n_rows']} rows for {cv['refit_epochs']} epochs; "
                  "these numbers are cross-validation estimates of its error (no test split was held out).",
                  markup=False)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV with a header, or the arrays of an npz (no pickle)."""
    if not path.is_file():
        raise DataError(f"--input {str(path)!r}: file does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from profemu._files import read_npz

        return read_npz(path, what="--input archive")
    if suffix != ".csv":
        raise DataError(f"--input {str(path)!r}: expected a .csv (with a header) or a .npz file.")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"--input {str(path)!r}: empty file; the first line must name the columns.") from None
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"--input {str(path)!r}: no data rows after the header.")
    table: dict[str, list[float]] = {h: [] for h in header}
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"--input {str(path)!r}: line {i} has {len(row)} values for {len(header)} columns.")
        for h, cell in zip(header, row, strict=True):
            try:
                table[h].append(float(cell))
            except ValueError:
                raise DataError(f"--input {str(path)!r}: line {i}, column {h!r}: {cell!r} is not a number.") from None
    return {h: np.asarray(v) for h, v in table.items()}


def _prediction_inputs(emulator: Any, table: Mapping[str, np.ndarray], path: Path) -> dict[str, Any]:
    """Build predict() arguments from named columns (CSV) or arrays (npz)."""
    t = emulator.transforms
    n_k = 0 if getattr(t, "k", None) is None else len(t.k)
    needs_z = "redshift" in getattr(t, "input_stats", {})
    if "params" in table:  # npz layout
        required = ["params", "log10_mass"] + (["pk_ratio"] if n_k else []) + (["redshift"] if needs_z else [])
        missing = [k for k in required if k not in table]
        if missing:
            raise DataError(f"--input {str(path)!r}: missing array(s) {missing}; the npz needs {required} "
                            f"(params columns in the order {list(emulator.param_names)}).")
        return {"params": table["params"], "log10_mass": table["log10_mass"],
                "pk_ratio": table.get("pk_ratio") if n_k else None,
                "redshift": table.get("redshift") if needs_z else None}
    names = list(emulator.param_names)
    required = [*names, "log10_mass", *(f"pk_ratio_{j}" for j in range(n_k))]
    if needs_z:
        required.append("redshift")
    missing = [c for c in required if c not in table]
    if missing:
        unknown = [c for c in table if c not in required]
        hint = f"; unrecognised column(s) {unknown}" if unknown else ""
        raise DataError(f"--input {str(path)!r}: missing column(s) {missing}{hint}. The header must name "
                        f"{names} and log10_mass" + (f", pk_ratio_0..pk_ratio_{n_k - 1}" if n_k else "")
                        + (", redshift" if needs_z else "") + ".")
    return {
        "params": np.column_stack([table[c] for c in names]),
        "log10_mass": table["log10_mass"],
        "pk_ratio": np.column_stack([table[f"pk_ratio_{j}"] for j in range(n_k)]) if n_k else None,
        "redshift": table["redshift"] if needs_z else None,
    }


@app.command()
@_user_errors
def predict(
    run: RunArg,
    input: Annotated[Path, typer.Option("--input", help="CSV with a header (parameter names, log10_mass, "
                                        "pk_ratio_<j>, redshift) or npz (params, log10_mass, ...).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output .csv or .npz (default <input>_pred.csv).")] = None,
) -> None:
    """Predict log10 profiles (mean and std per field and radius) for a table of inputs."""
    from profemu.run import RunFolder

    console = _console()
    emulator = RunFolder.open(run).emulator()
    table = _read_table(input)
    args = _prediction_inputs(emulator, table, input)
    out = out or input.with_name(f"{input.stem}_pred.csv")
    if out.suffix.lower() not in (".csv", ".npz"):
        raise DataError(f"--out {str(out)!r}: expected a .csv or .npz file name.")
    with _warnings_as_lines(console):
        pred = emulator.predict(args["params"], args["log10_mass"], args["pk_ratio"], args["redshift"])
    pred = {f: (np.atleast_2d(p.mean), np.atleast_2d(np.sqrt(p.var))) for f, p in pred.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npz":
        arrays = {"radius": emulator.radius}
        for f, (mean, std) in pred.items():
            arrays[f"{f}_mean"] = mean
            arrays[f"{f}_std"] = std
        np.savez(out, **arrays)
    else:
        header: list[str] = []
        blocks: list[np.ndarray] = []
        for f, (mean, std) in pred.items():
            n_r = mean.shape[1]
            header += [f"{f}_mean_r{j}" for j in range(n_r)] + [f"{f}_std_r{j}" for j in range(n_r)]
            blocks += [mean, std]
        values = np.concatenate(blocks, axis=1)
        with open(out, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([[f"{v:.8g}" for v in row] for row in values])
    n = next(iter(pred.values()))[0].shape[0]
    console.print(f"predicted {n} row(s) of {list(pred)} (log10 units, {len(emulator.radius)} radii) -> {out}",
                  markup=False)


def _compare_run(console: Console, folder: Any, emulator: Any, *, gp_max_train: int, use_gp: bool,
                 dataset: Any = None) -> list[dict[str, Any]]:
    """Fit and score the baselines on the run's split (:func:`profemu.compare.compare_run`)."""
    import logging

    from profemu.baselines import GPBaseline, PCARBFBaseline
    from profemu.compare import compare_run

    baselines: list[Any] = [GPBaseline(max_train=gp_max_train)] if use_gp else []
    baselines.append(PCARBFBaseline())
    console.print(f"fitting {[b.name for b in baselines]} on the run's training rows "
                  f"(GP on at most {gp_max_train}); scoring on its test rows", markup=False)
    # the GP's progress (one line per start, one summary of optimiser trouble) reaches the terminal
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("profemu.baselines")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with _warnings_as_lines(console):
            return compare_run(folder, emulator, baselines, dataset=dataset)["rows"]
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@app.command(name="compare")
@_user_errors
def compare_cmd(
    run: RunArg,
    gp_max_train: Annotated[int, typer.Option("--gp-max-train", help="Largest training set given to the GP "
                                              "(a seeded random subset beyond it; exact GPs cost O(N^3)).")] = 3000,
    no_gp: Annotated[bool, typer.Option("--no-gp", help="Skip the PCA+GP baseline.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Markdown table (default RUN/compare.md).")] = None,
) -> None:
    """Compare the emulator with PCA+GP and PCA+RBF baselines on the run's test split."""
    from profemu.baselines import format_table
    from profemu.run import RunFolder

    if gp_max_train < 5:
        raise ConfigError(f"--gp-max-train: {gp_max_train} < 5; the GP needs a few training rows.")
    console = _console()
    folder = RunFolder.open(run)
    rows = _compare_run(console, folder, folder.emulator(), gp_max_train=gp_max_train, use_gp=not no_gp)
    _print_comparison(console, rows)
    md = out or folder.path / "compare.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md, format_table(rows) + "\n")
    console.print(f"written {folder.path / 'compare.json'} and {md}", markup=False)


@app.command()
@_user_errors
def report(run: RunArg) -> None:
    """Write RUN/report.html: curves, profiles, errors, calibration, comparison, metrics."""
    from profemu.report import write_report
    from profemu.run import RunFolder

    folder = RunFolder.open(run, require_emulator=False)
    with _warnings_as_lines(_console()):
        path = write_report(folder.path)
    _console().print(f"report: {path}", markup=False)


@app.command()
@_user_errors
def mock(
    out: Annotated[Path, typer.Option("--out", help="Output dataset file (.npz or .h5).")],
    n: Annotated[int, typer.Option("--n", help="Number of rows (halo-mass bins).")] = 4000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    noise_dex: Annotated[float, typer.Option("--noise-dex", help="Log-normal noise per element [dex].")] = 0.02,
) -> None:
    """Write a mock CAMELS-like dataset with a known noiseless truth."""
    from profemu.data.mock import write_mock

    out.parent.mkdir(parents=True, exist_ok=True)
    path = write_mock(out, n, seed=seed, noise_dex=noise_dex)
    _console().print(f"mock dataset ({n} rows, seed {seed}, noise {noise_dex} dex) -> {path}", markup=False)


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
    seed: Annotated[int, typer.Option("--seed", help="Seed of the checks' random choices.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer steps and a smaller mock universe.")] = False,
) -> None:
    """Run the stability checklist on a dataset and configuration (exit 1 if a check fails)."""
    try:
        from profemu.diagnose import run_diagnostics
    except ModuleNotFoundError as exc:
        if exc.name != "profemu.diagnose":
            raise
        _fail("the diagnose module is not available in this installation of profemu.")
    from profemu.run import load_data

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
        table.add_row(str(c.name), "[green]pass[/green]" if c.passed else "[red]FAIL[/red]",
                      str(c.value), "" if c.passed else str(c.advice))
    console.print(table)
    failed = [c.name for c in checks if not c.passed]
    if failed:
        console.print(f"{len(failed)} check(s) failed: {', '.join(map(str, failed))}", markup=False)
        raise typer.Exit(1)


# ---------------------------------------------------------------------- demo
def demo_config(*, quick: bool = False) -> Config:
    """The configuration of ``profemu demo``: a physics-informed 5-member ensemble.

    Tuned to train in about a minute on 2 CPU cores on the 3000-row mock universe
    (``quick``: a tiny MLP ensemble that trains in seconds, for tests).
    """
    changes: dict[str, Any] = {
        "data.fields": ["rho", "pth"],
        "data.pca_components": 0,
        "data.test_fraction": 0.15,  # held out for the comparison with the baselines
        "train.cv_folds": 0,
        "model.kind": "physics",
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
        changes.update({  # a plain MLP compiles in a fraction of the physics core's time
            "model.kind": "mlp",
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
) -> None:
    """The whole workflow on the mock universe: data, training, evaluation, baselines, report."""
    from profemu._lock import folder_lock

    console = _console()
    t0 = time.perf_counter()
    n_rows = 240 if quick else 3000
    out.mkdir(parents=True, exist_ok=True)
    run = out / "run"
    _check_new_run(run, resume=False)
    with folder_lock(run, what="--out"):
        _check_new_run(run, resume=False, console=console)
        _demo_steps(console, out, run, n_rows, quick, t0)


def _demo_steps(console: Console, out: Path, run: Path, n_rows: int, quick: bool, t0: float) -> None:
    """The four steps of ``profemu demo`` (the caller holds the run folder's lock)."""
    from profemu.baselines import format_table
    from profemu.data.mock import write_mock
    from profemu.report import write_report
    from profemu.run import DataSource, RunFolder, load_data

    data_path = write_mock(out / "data.npz", n_rows, seed=0)
    console.print(f"[1/4] mock universe: {n_rows} rows -> {data_path}", markup=False)
    source = DataSource(str(Path(data_path).resolve()), "profemu", {})
    dataset = load_data(source)
    cfg = demo_config(quick=quick)
    console.print(f"[2/4] training a {cfg.train.members}-member {cfg.model.kind} ensemble "
                  f"(up to {cfg.train.epochs} epochs)", markup=False)
    outcome = _train(console, dataset, cfg, run, source)
    _training_summary(console, outcome)
    if outcome.evaluation:
        _print_metrics(console, outcome.evaluation, "held-out (test split) metrics")
    console.print("[3/4] comparing with the PCA+GP and PCA+RBF baselines", markup=False)
    folder = RunFolder.open(run)
    rows = _compare_run(console, folder, outcome.emulator, gp_max_train=40 if quick else 3000,
                        use_gp=True, dataset=dataset)
    folder.write_text("compare.md", format_table(rows) + "\n")
    _print_comparison(console, rows)
    with _warnings_as_lines(console):
        path = write_report(run, dataset=dataset)
    console.print(f"[4/4] report: {path}", markup=False)
    console.print(f"done in {time.perf_counter() - t0:.0f} s; open {path} in a browser.", markup=False)


register_cluster_commands(app)
register_inference_commands(app)
register_design_commands(app)


def main() -> None:
    """Entry point of the ``profemu`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
