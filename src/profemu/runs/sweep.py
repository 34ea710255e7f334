"""Hyper-parameter sweeps: Optuna TPE with pruning, trials as a job array.

Trials are independent jobs (a SLURM array through submitit, local processes, or
one after another in this process). They share one Optuna study stored in a
journal file on the run folder's file system (no database server); an RDB URL
(``sqlite:///sweep.db``) works as well. Each trial trains with a configuration
drawn from the search space, reports the validation loss every epoch and is
pruned when it falls behind (median rule or successive halving). The best
configuration is written to ``OUT/best_config.yaml``, ready for
``profemu train --config OUT/best_config.yaml``.

Search-space YAML: one entry per dotted config key, either a list of choices or a
numeric range (integers for integer keys, floats otherwise)::

    model.kind: {choices: [mlp, physics]}
    model.hidden: {choices: [[128, 128], [256, 256, 256]]}
    optim.learning_rate: {low: 1.0e-4, high: 3.0e-3, log: true}
    optim.warmup_epochs: {low: 0, high: 20, step: 5}
    loss.physics.smoothness_weight: {low: 0, high: 1}

Output folder::

    OUT/
      sweep.json          data source, base config, space, storage, study name, seed, pruner
      optuna.journal      the shared study (when no storage URL is given)
      submitit/           job files and logs of the trials
      trials.json         number, state, value and parameters of every trial
      best_config.yaml    the base config with the best trial's values
      .profemu.lock       while a sweep runs: its pid, host and start time (one sweep per folder)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import atomic_write_text, sha256_file
from profemu.config import Config, load_yaml
from profemu.errors import ConfigError, DataError, TrainingError
from profemu.runs.cluster import WAIT_NOTE_SECONDS, ExecutorOptions, make_executor, submit_array
from profemu.runs.folder import DataSource

logger = logging.getLogger(__name__)

__all__ = [
    "SpaceEntry",
    "TrialJob",
    "decode_params",
    "load_space",
    "run_sweep",
    "run_trial",
    "suggest",
]

JOURNAL = "optuna.journal"
PRUNERS = ("median", "halving", "none")
_ENTRY_KEYS = {"choices", "low", "high", "log", "step"}


# ------------------------------------------------------------------------ space
@dataclass(frozen=True)
class SpaceEntry:
    """The range of one config key.

    Attributes:
        key: Dotted config key, e.g. ``"optim.learning_rate"``.
        kind: ``"categorical"``, ``"int"`` or ``"float"`` (from the key's type in Config).
        choices: Values of a categorical entry (any YAML values, e.g. lists of widths).
        low: Lower bound of a numeric range.
        high: Upper bound of a numeric range.
        log: Sample uniformly in log (needs ``low > 0``).
        step: Grid step of a numeric range (``None`` = continuous / 1 for integers).
    """

    key: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None


def _config_default(key: str) -> Any:
    """The default value of a dotted leaf key of Config; ConfigError listing valid keys."""
    node: Any = Config()
    parts = key.split(".")
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
        if part not in names:
            where = ".".join(parts[:depth]) or "config"
            valid = [".".join([*parts[:depth], n]) for n in names]
            raise ConfigError(f"space: unknown key {key!r} ({where} has no {part!r}); valid keys here: {valid}.")
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        subkeys = [f"{key}.{f.name}" for f in dataclasses.fields(node)]
        raise ConfigError(f"space: {key!r} is a section, not a value; use one of {subkeys}.")
    return node


def load_space(space: Mapping[str, Any] | str | Path) -> dict[str, SpaceEntry]:
    """Parse and validate a search space (a mapping or a YAML file; format in the module doc).

    Raises:
        ConfigError: Unknown key (the message lists the valid ones), malformed entry,
            empty choices, ``low >= high``, ``log`` with ``low <= 0``, a range on a
            non-numeric key.
    """
    if isinstance(space, str | Path):
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"space file {str(path)!r} does not exist; pass a YAML search space.")
        space = load_yaml(path, what="space file") or {}
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("space: expected a non-empty mapping of dotted config keys to ranges.")
    out: dict[str, SpaceEntry] = {}
    for key, entry in space.items():
        key = str(key)
        default = _config_default(key)
        if not isinstance(entry, Mapping):
            raise ConfigError(f"space.{key}: expected {{choices: [...]}} or {{low: .., high: ..}}, got {entry!r}.")
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ConfigError(f"space.{key}: unknown field(s) {sorted(unknown)}; valid are {sorted(_ENTRY_KEYS)}.")
        if "choices" in entry:
            choices = entry["choices"]
            if set(entry) - {"choices"}:
                raise ConfigError(f"space.{key}: give either choices or low/high, not both.")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"space.{key}.choices: expected a non-empty list, got {choices!r}.")
            for c in choices:  # every choice must be a valid value of the key
                Config().updated({key: c})
            out[key] = SpaceEntry(key, "categorical", tuple(choices))
            continue
        if "low" not in entry or "high" not in entry:
            raise ConfigError(f"space.{key}: needs choices, or both low and high.")
        is_int = isinstance(default, int) and not isinstance(default, bool)
        if not (is_int or isinstance(default, float)):
            raise ConfigError(f"space.{key}: a range needs a numeric key (default {default!r}); use choices.")
        low, high, log, step = entry["low"], entry["high"], bool(entry.get("log", False)), entry.get("step")
        for name, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise ConfigError(f"space.{key}.{name}: expected a finite number, got {v!r}.")
        if not low < high:
            raise ConfigError(f"space.{key}: low ({low}) must be smaller than high ({high}).")
        if log and low <= 0:
            raise ConfigError(f"space.{key}: log: true needs low > 0, got {low}.")
        if step is not None and (step <= 0 or log):
            raise ConfigError(f"space.{key}.step: must be > 0 and cannot be combined with log.")
        if is_int and not all(float(v).is_integer() for v in (low, high, step or 1)):
            raise ConfigError(f"space.{key}: {key} is an integer; low/high/step must be integers.")
        for v in (low, high):
            Config().updated({key: int(v) if is_int else float(v)})
        out[key] = SpaceEntry(key, "int" if is_int else "float", (), float(low), float(high), log,
                              None if step is None else float(step))
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def suggest(trial: Any, space: Mapping[str, SpaceEntry]) -> dict[str, Any]:
    """Draw config overrides ``{dotted key: value}`` for an Optuna trial."""
    out: dict[str, Any] = {}
    for key, e in space.items():
        if e.kind == "categorical":
            if all(_scalar(c) for c in e.choices):
                out[key] = trial.suggest_categorical(key, list(e.choices))
            else:  # Optuna stores scalars only: lists such as layer widths go in as JSON text
                text = trial.suggest_categorical(key, [json.dumps(c) for c in e.choices])
                out[key] = json.loads(text)
        elif e.kind == "int":
            out[key] = trial.suggest_int(key, int(e.low), int(e.high), step=int(e.step or 1), log=e.log)
        else:
            out[key] = trial.suggest_float(key, e.low, e.high, step=e.step, log=e.log)
    return out


def decode_params(params: Mapping[str, Any], space: Mapping[str, SpaceEntry]) -> dict[str, Any]:
    """Config overrides from a finished trial's ``params`` (undoes the JSON encoding of lists)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        e = space.get(key)
        if e is not None and e.kind == "categorical" and not all(_scalar(c) for c in e.choices):
            value = json.loads(value)
        out[key] = value
    return out


# ------------------------------------------------------------------------ study
def _storage(spec: str) -> Any:
    import optuna

    if "://" in spec:
        return spec  # an RDB URL such as sqlite:///sweep.db
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(spec))


#: URL schemes (before any ``+driver``) of the relational databases Optuna stores studies in.
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")


def _check_storage(spec: str, inputs: Mapping[str, Path | None]) -> None:
    """Refuse a ``--storage`` Optuna cannot use or that would change a file of the user's: an
    unknown URL scheme, an SQLite file in a missing folder, a folder, one of ``inputs`` (the data
    and space files), or an existing file that is not an Optuna journal (Optuna appends to it)."""
    if "://" in spec:
        scheme = spec.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in RDB_SCHEMES:
            raise ConfigError(f"--storage {spec!r}: {scheme!r} is not a database Optuna can store a study in; pass "
                              "a journal file name or a URL such as sqlite:///sweep.db.")
        if scheme == "sqlite":  # sqlite:///relative.db, sqlite:////absolute.db
            name = spec.split("://", 1)[1][1:].split("?", 1)[0]
            if not name or name == ":memory:":
                raise ConfigError(f"--storage {spec!r}: an in-memory database is not shared by the trial jobs; "
                                  "pass a file, e.g. sqlite:///sweep.db.")
            if not Path(name).parent.is_dir():
                raise ConfigError(f"--storage {spec!r}: the folder {str(Path(name).parent)!r} does not exist; "
                                  "create it or pass another database file.")
        return
    path = Path(spec)
    for what, given in inputs.items():
        if given is not None and Path(given).resolve() == path.resolve():
            raise ConfigError(f"--storage {spec!r}: is the {what}; Optuna would append its journal to it. Pass "
                              "another file (default: OUT/optuna.journal).")
    if path.is_dir():
        raise ConfigError(f"--storage {spec!r}: is a folder; pass a journal file name.")
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            first = fh.readline(1 << 20)
        try:
            record = json.loads(first.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise ConfigError(f"--storage {spec!r}: exists and is not an Optuna journal (its first line is no "
                              "journal record); Optuna would append to it. Pass a new file or an existing journal.")


def _pruner(name: str, n_startup_trials: int, warmup_epochs: int) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup_epochs)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup_epochs))
    return optuna.pruners.NopPruner()


def _load_study(setup: Mapping[str, Any], worker: int) -> Any:
    import optuna

    sampler = optuna.samplers.TPESampler(
        seed=int(setup["seed"]) + worker, n_startup_trials=int(setup["tpe_startup_trials"])
    )
    return optuna.load_study(
        study_name=setup["study_name"],
        storage=_storage(setup["storage"]),
        sampler=sampler,
        pruner=_pruner(setup["pruner"], int(setup["pruner_startup_trials"]), int(setup["warmup_epochs"])),
    )


def _objective(setup: Mapping[str, Any], space: Mapping[str, SpaceEntry], dataset: Any) -> Any:
    import optuna

    from profemu.train.loop import fit
    from profemu.train.setup import prepare, training_problem

    base = Config.from_dict(setup["base_config"])

    def objective(trial: Any) -> float:
        overrides = suggest(trial, space)
        if setup.get("trial_members"):
            overrides = {"train.members": int(setup["trial_members"]), **overrides}
        config = base.updated(overrides)
        prep = prepare(dataset, config)
        if not len(prep.split.val):
            raise DataError("sweep: the validation split is empty; set data.val_fraction > 0.")

        def report(entry: dict[str, Any]) -> None:
            value = entry.get("val_loss")
            if value is not None and math.isfinite(value):
                trial.report(float(value), int(entry["epoch"]))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {entry['epoch']}")

        result = fit(training_problem(prep, config), callbacks=[report])
        best = np.asarray(result.best_val, dtype=np.float64)
        best = best[np.isfinite(best)]
        if not best.size:
            raise TrainingError("sweep trial: no finite validation loss.")
        trial.set_user_attr("epochs", int(result.counters.get("epochs", 0)))
        return float(best.mean())

    return objective


def run_trial(out_dir: str | Path, worker: int, n_trials: int = 1) -> list[int]:
    """Run ``n_trials`` trials of the sweep prepared in ``out_dir`` (what each array task does).

    Returns:
        The Optuna numbers of the trials this worker ran.
    """
    from profemu.runs.folder import load_data

    out = Path(out_dir)
    setup = json.loads((out / "sweep.json").read_text())
    space = load_space(setup["space"])
    dataset = load_data(DataSource.from_dict(setup["data"]))
    study = _load_study(setup, worker)
    numbers: list[int] = []
    study.optimize(
        _objective(setup, space, dataset),
        n_trials=n_trials,
        catch=(ConfigError, DataError, TrainingError),
        callbacks=[lambda _study, trial: numbers.append(trial.number)],
    )
    return numbers


class TrialJob:
    """Callable submitted for each job of the trial array (see :func:`run_trial`)."""

    def __call__(self, out_dir: str, worker: int, n_trials: int) -> list[int]:
        return run_trial(out_dir, worker, n_trials)


def _check_sweep_arguments(data_source: DataSource, trials: Any, trials_per_job: Any, pruner: str,
                           trial_members: Any) -> None:
    """One-line errors for the arguments of :func:`run_sweep` that the executor options do not cover."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials: expected an integer >= 1, got {trials!r}.")
    if isinstance(trials_per_job, bool) or not isinstance(trials_per_job, int) or trials_per_job < 1:
        raise ConfigError(f"trials_per_job: expected an integer >= 1, got {trials_per_job!r}.")
    if pruner not in PRUNERS:
        raise ConfigError(f"pruner: {pruner!r} is unknown; choose one of {list(PRUNERS)}.")
    if trial_members is not None and (not isinstance(trial_members, int) or trial_members < 1):
        raise ConfigError(f"trial_members: expected an integer >= 1 or None, got {trial_members!r}.")
    if not Path(data_source.path).exists():
        raise DataError(f"data: {data_source.path!r} does not exist; pass the data file to sweep over.")


def _trial_counts(out: Path) -> str:
    """``"7 complete, 2 pruned, 1 running"`` from the study's storage (a placeholder while unreadable)."""
    try:
        setup = json.loads((out / "sweep.json").read_text())
        trials = _load_study(setup, 0).trials
    except Exception:  # a progress line must never stop the sweep
        return "trials: not readable yet"
    states = [t.state.name.lower() for t in trials]
    counts = [f"{states.count(k)} {k}" for k in ("complete", "pruned", "running", "fail") if k in states]
    return ", ".join(counts) or "no trial yet"


def _run_trial_jobs(out: Path, options: ExecutorOptions, study_name: str, counts: list[int]) -> list[str]:
    """Run the trial jobs (``counts[w]`` trials each) inline or as one array; returns the failed jobs' lines."""
    errors: list[str] = []
    if options.executor == "inline":
        for worker, count in enumerate(counts):
            run_trial(out, worker, count)
        return errors
    executor = make_executor(options, out / "submitit")
    executor.update_parameters(name=f"profemu-sweep-{study_name}")
    jobs = submit_array(executor, TrialJob(), [str(out)] * len(counts), list(range(len(counts))), counts,
                        what="sweep")
    t0 = said = time.monotonic()
    while not all(job.done() for job in jobs):  # a line now and then while the jobs run, not silence
        time.sleep(2.0)
        if time.monotonic() - said >= WAIT_NOTE_SECONDS:
            said = time.monotonic()
            logger.info("sweep: waiting for the trial jobs (%.0f s): %d of %d done; %s", said - t0,
                        sum(job.done() for job in jobs), len(jobs), _trial_counts(out))
    for worker, job in enumerate(jobs):
        try:
            job.result()
        except Exception as exc:
            errors.append(f"trial job {worker} ({job.job_id}): {type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''} "
                          f"(log: {job.paths.stderr})")
    return errors


#: What a continued study must share with the one in the folder (its trials are ranked together).
_SAME_STUDY = ("data", "data_sha256", "base_config", "space", "trial_members")


def _check_continued_study(out: Path, setup: Mapping[str, Any]) -> None:
    """Refuse to continue a study of ``out`` on other data, another space, base config or member count."""
    previous_file = out / "sweep.json"
    if not previous_file.is_file():
        return
    try:
        previous = json.loads(previous_file.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{previous_file}: unreadable; the folder holds a damaged sweep, use another --out.") from None
    if not isinstance(previous, Mapping) or (previous.get("storage"), previous.get("study_name")) != \
            (setup["storage"], setup["study_name"]):
        return  # another study in another storage: nothing is ranked together
    changed = [k for k in _SAME_STUDY if k in previous and json.loads(json.dumps(previous[k])) !=
               json.loads(json.dumps(setup[k]))]
    if changed:
        raise ConfigError(f"sweep: {out} holds study {setup['study_name']!r} run with another {', '.join(changed)}; "
                          "its trials would be ranked with the new ones. Continue it with the same settings, or "
                          "sweep into another --out (or pass another --study-name).")


def run_sweep(
    data_source: DataSource,
    base_config: Config,
    space: Mapping[str, Any] | str | Path,
    trials: int,
    options: ExecutorOptions,
    *,
    out_dir: str | Path,
    storage: str | Path | None = None,
    study_name: str = "profemu-sweep",
    seed: int = 0,
    pruner: str = "median",
    pruner_startup_trials: int = 1,
    warmup_epochs: int = 1,
    trial_members: int | None = 1,
    trials_per_job: int = 1,
) -> Config:
    """Search hyper-parameters with Optuna TPE + pruning; trials run as one job array.

    Args:
        data_source: The data file (trials reload it; on a cluster it must be on a
            shared file system).
        base_config: Values of every key not in ``space``.
        space: Search space (mapping or YAML path; see the module doc).
        trials: Number of trials.
        options: Executor options (``slurm``, ``local`` or ``inline``).
        out_dir: Output folder (created).
        storage: Journal file path (default ``OUT/optuna.journal``) or an RDB URL.
        study_name: Optuna study name (an existing study of that name is continued).
        seed: Seed of the TPE sampler (trial job ``w`` uses ``seed + w``).
        pruner: ``"median"``, ``"halving"`` or ``"none"``.
        pruner_startup_trials: Finished trials before the median rule prunes.
        warmup_epochs: Epochs before a trial can be pruned.
        trial_members: Ensemble members per trial (``None`` = the config's); the best
            config keeps ``base_config``'s member count.
        trials_per_job: Trials run one after another by each array job (fewer, longer
            jobs; later trials of a job already see the earlier ones).

    Returns:
        The best configuration (also written to ``OUT/best_config.yaml``).

    Raises:
        ConfigError: Bad space, options or arguments.
        TrainingError: No trial finished (the message lists the failures).
        FolderLockedError: another sweep is writing ``out_dir``.
    """
    import optuna

    options.validate()
    base_config = base_config.validate()
    _check_sweep_arguments(data_source, trials, trials_per_job, pruner, trial_members)
    raw_space = space if isinstance(space, Mapping) else load_yaml(Path(space), what="space file")
    parsed = load_space(space)
    from profemu._lock import folder_lock

    out = Path(out_dir).resolve()
    with folder_lock(out, what="sweep folder"):  # one sweep writes a folder at a time
        storage_spec = str(storage) if storage is not None else str(out / JOURNAL)
        if "://" not in storage_spec:
            storage_spec = str(Path(storage_spec).resolve())
        _check_storage(storage_spec, {"data file": Path(data_source.path),
                                      "space file": None if isinstance(space, Mapping) else Path(space)})
        setup = {
            "data": DataSource(str(Path(data_source.path).resolve()), data_source.format,
                               dict(data_source.options)).to_dict(),
            "base_config": base_config.to_dict(),
            "space": dict(raw_space),
            "storage": storage_spec,
            "study_name": study_name,
            "seed": int(seed),
            "pruner": pruner,
            "pruner_startup_trials": int(pruner_startup_trials),
            "warmup_epochs": int(warmup_epochs),
            "tpe_startup_trials": max(1, min(10, trials // 2)),
            "trial_members": trial_members,
            "trials": trials,
        }
        data_file = Path(data_source.path)
        setup["data_sha256"] = sha256_file(data_file) if data_file.is_file() else None
        _check_continued_study(out, setup)
        atomic_write_text(out / "sweep.json", json.dumps(setup, indent=1))
        optuna.create_study(study_name=study_name, storage=_storage(storage_spec), direction="minimize",
                            load_if_exists=True)

        counts = [min(trials_per_job, trials - s) for s in range(0, trials, trials_per_job)]
        errors = _run_trial_jobs(out, options, study_name, counts)

        study = _load_study(setup, 0)
        records = []
        for t in study.trials:
            records.append({
                "number": t.number, "state": t.state.name, "value": t.value,
                "params": decode_params(t.params, parsed), "epochs": t.user_attrs.get("epochs"),
                "last_epoch_reported": max(t.intermediate_values) if t.intermediate_values else None,
            })
        atomic_write_text(out / "trials.json", json.dumps({"trials": records, "job_errors": errors}, indent=1))
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            failed = [f"trial {r['number']}: {r['state']}" for r in records] + errors
            raise TrainingError("sweep: no trial finished:\n  " + "\n  ".join(failed or ["no trial ran"]))
        best = study.best_trial
        best_config = base_config.updated(decode_params(best.params, parsed))
        best_config.to_yaml(out / "best_config.yaml")
        return best_config
