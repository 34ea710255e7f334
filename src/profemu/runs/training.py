"""End-to-end training runs: data -> split -> transforms -> network -> fit -> Emulator -> evaluation.

:func:`train_emulator` is what ``profemu train`` and ``profemu demo`` call; with a
``run_dir`` it writes the run folder described in :mod:`profemu.runs.folder`.
:func:`build_emulator` turns trained member parameters into a calibrated Emulator;
the cluster merge uses it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import flatten_tree, json_safe, unflatten_tree
from profemu._lock import locked
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator import Emulator
from profemu.emulator.blend import attach_blend
from profemu.emulator.covariance import ResidualCovariance, attach_residual_covariance
from profemu.emulator.extrapolation import fit_extrapolation_variance, redshift_term_possible
from profemu.errors import DataError
from profemu.metrics import evaluate
from profemu.runs.folder import DataSource, RunFolder
from profemu.runs.heldout import HeldOutTraining, train_held_out, training_rows, usable_cores
from profemu.train.blend import fit_blend, uses_blend
from profemu.train.builder import build_emulator
from profemu.train.cv import CrossValidation, cross_validate, folds_for, program_rows
from profemu.train.logging import MetricsLogger, import_plotting, plot_curves
from profemu.train.loop import fit
from profemu.train.select import choose_capacity, selects
from profemu.train.setup import Prepared, prepare, training_problem

__all__ = ["HeldOutMetrics", "TrainResult", "train_emulator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOutMetrics:
    """The error of a trained Emulator on rows it did not learn from.

    Attributes:
        estimate: What the rows are: ``"cross-validation"`` (out-of-fold predictions by
            simulation, variance scaled) or ``"test split"``.
        frac_err_median, frac_err_p68, frac_err_p95: Quantiles of the fractional error
            ``|10^(mean - truth) - 1|`` over every valid profile entry.
        rmse_dex: Root-mean-square error of log10 [dex].
        nll: Mean Gaussian negative log-likelihood per entry.
        coverage_68, coverage_95: Fractions of entries inside the 68% / 95% intervals.
        fields: The same numbers per field, ``{field: {name: value}}``.
    """

    estimate: str
    frac_err_median: float
    frac_err_p68: float
    frac_err_p95: float
    rmse_dex: float
    nll: float
    coverage_68: float
    coverage_95: float
    fields: dict[str, dict[str, float]]

    @classmethod
    def from_evaluation(cls, estimate: str, evaluation: Mapping[str, Any]) -> HeldOutMetrics:
        """From a :func:`profemu.metrics.evaluate` record (``overall`` and ``fields``)."""
        overall = evaluation["overall"]
        keys = ("frac_err_median", "frac_err_p68", "frac_err_p95", "rmse_dex", "nll", "coverage_68", "coverage_95")
        return cls(estimate, *(float(overall.get(k, float("nan"))) for k in keys),
                   fields={f: {k: float(v) for k, v in m.items() if isinstance(v, int | float)}
                           for f, m in dict(evaluation.get("fields", {})).items()})


@dataclass
class TrainResult:
    """What :func:`train_emulator` produced.

    Attributes:
        emulator: The trained, calibrated :class:`~profemu.emulator.Emulator`.
        prepared: The data, split and fitted transforms it was trained on.
        history: One record per epoch of the final fit.
        counters: Skipped steps, rollbacks and other training counters.
        evaluation: Metrics on the test split (None without one), as :func:`profemu.metrics.evaluate`.
        fit_seconds: Wall time of the training (cross-validation included) [s].
        run_dir: The run folder written (None in memory).
        stopped_reason: Why the final fit stopped.
        cross_validation: The cross-validation record (``cv.json``), None without one.
    """

    emulator: Emulator
    prepared: Prepared
    history: list[dict[str, Any]]
    counters: dict[str, Any]
    evaluation: dict[str, Any] | None
    fit_seconds: float
    run_dir: Path | None = None
    stopped_reason: str = ""
    cross_validation: dict[str, Any] | None = None

    @property
    def metrics(self) -> HeldOutMetrics | None:
        """The held-out error: the test split when there is one, else the cross-validation's.

        None when the run kept neither (e.g. ``train.cv_folds: 0`` and no test split).
        """
        if self.evaluation is not None:
            return HeldOutMetrics.from_evaluation("test split", self.evaluation)
        if self.cross_validation is not None:
            return HeldOutMetrics.from_evaluation("cross-validation", self.cross_validation["metrics"])
        return None


def _epoch_logger(every: int) -> Callable[[dict[str, Any]], None]:
    """A callback logging one INFO line every ``every`` epochs."""

    def log(entry: dict[str, Any]) -> None:
        epoch = int(entry.get("epoch", 0)) + 1
        if epoch == 1 or epoch % every == 0:
            logger.info("epoch %d: train_loss %.4g, val_loss %.4g, %d member(s) active", epoch,
                        entry.get("train_loss", float("nan")), entry.get("val_loss", float("nan")),
                        entry.get("active_members", 0))

    return log


@locked("run_dir")  # one writer per run folder
def train_emulator(
    dataset: ProfileDataset,
    config: Config | None = None,
    *,
    run_dir: str | Path | None = None,
    source: DataSource | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    prepared: Prepared | None = None,
    evaluate_test: bool = True,
    resume: bool = False,
) -> TrainResult:
    """Train an ensemble emulator on ``dataset`` and (optionally) write a run folder.

    Args:
        dataset: The full dataset; it is split by group into train/val/test here.
        config: Configuration (defaults to ``Config()``).
        run_dir: Folder for the run's files (created); ``None`` keeps everything in memory.
        source: Where the data came from, recorded in ``data.json`` so that
            ``profemu evaluate/report/compare`` can reload it.
        progress: Called with each epoch's metrics dict.
        prepared: A ready split + transforms (skips :func:`~profemu.train.setup.prepare`).
        evaluate_test: Evaluate on the test split at the end.
        resume: Continue from the latest checkpoint in ``run_dir/checkpoints``; the data,
            split, configuration and checkpoints are checked first
            (:meth:`~profemu.runs.folder.RunFolder.check_resume`), before any file changes.

    Returns:
        A :class:`TrainResult` with the Emulator, history and held-out metrics (:attr:`TrainResult.metrics`).

    Raises:
        FolderLockedError: another process is writing ``run_dir`` (its lock is held).
        ConfigError, DataError: a resume that would not continue the run in ``run_dir``.
    """
    config = (config or Config()).validate()
    folds = folds_for(dataset if prepared is None else prepared.dataset, config)
    if folds:  # every non-test row trains: no validation split
        prep = prepared or prepare(dataset, config.updated({"data.val_fraction": 0.0}))
    else:
        prep = prepared or prepare(dataset, config)
    selection = None
    if selects(config, len(prep.split.train)):
        selection = choose_capacity(prep, config)
        config = config.updated(selection.changes)
    logger.info("training on %d rows (%s, %d test) of %s", len(prep.split.train),
                f"{folds}-fold cross-validation, then all of them" if folds else f"{len(prep.split.val)} validation",
                len(prep.split.test), ", ".join(prep.transforms.field_names))
    run = RunFolder.create(run_dir) if run_dir is not None else None
    if run is not None and resume:
        run.check_resume(config, prep, source)
    callbacks, metrics = _callbacks(run, config, prep, source, selection, progress)
    if metrics is not None and run is not None and resume:
        _continue_metrics(metrics, run, prep, folds)
    _warn_one_mass(prep)
    _warn_repeated_inputs(prep)
    extrapolate = extrapolation_terms(config, prep)
    held_out = _held_out_beside_folds(prep, config, folds, extrapolate)
    t0 = time.perf_counter()
    try:
        result, cv = _fit_run(run, prep, config, folds, callbacks, resume, held_out)
        fit_seconds = time.perf_counter() - t0
        emulator = _finished_emulator(prep, config, result, cv, selection, fit_seconds, run, extrapolate, held_out)
    finally:  # the held-out threads never outlive the run: XLA aborts a process that exits under them (Ctrl-C)
        for job in held_out:
            job.cancel()
    evaluation = evaluate(emulator, prep.test) if evaluate_test and len(prep.split.test) else None
    if run is not None:
        emulator.save(run.emulator_dir)
        if evaluation is not None:
            run.write_json("evaluation.json", evaluation)
        if metrics is not None:
            plot_curves(metrics.history, run.path / "curves.png")
            metrics.close()
    return TrainResult(
        emulator=emulator,
        prepared=prep,
        history=list(result.history),
        counters=dict(result.counters),
        evaluation=evaluation,
        fit_seconds=fit_seconds,
        run_dir=None if run is None else run.path,
        stopped_reason=result.stopped_reason,
        cross_validation=cv,
    )


def _finished_emulator(prep: Prepared, config: Config, result: Any, cv: dict[str, Any] | None, selection: Any,
                       fit_seconds: float, run: RunFolder | None, extrapolate: str,
                       held_out: Sequence[HeldOutTraining] = ()) -> Emulator:
    """The trained :class:`Emulator` with its metadata and its variance terms (residual covariance,
    GP blend, extrapolation variance)."""
    emulator = build_emulator(
        prep, config, result.params, fit_seconds=fit_seconds, best_epoch=result.best_epoch, counters=result.counters,
        variance_scale=None if cv is None else cv["variance_scale"],
        **({} if cv is None else {"cv": {k: cv[k] for k in ("folds", "metrics", "spread_over_folds",
                                                              "refit_epochs", "refit", "variance_scale")}}),
        **({} if selection is None else {"capacity": selection.to_dict()}),
        **({} if run is None or (run_id := run.run_id()) is None else {"run_id": run_id}),
    )
    if cv is not None and cv.get("residual_covariance") is not None:
        attach_residual_covariance(emulator, ResidualCovariance.from_dict(cv["residual_covariance"]))
    _attach_blend(emulator, prep, config, cv)
    if extrapolate:
        try:
            _attach_extrapolation_variance(emulator, prep, config, cv, held_out, mass=extrapolate == "mass")
        except DataError as exc:  # the emulator is kept: only the term beyond the box is missing
            logger.warning("extrapolation variance: not fitted (%s); the emulator is kept without it", exc)
    return emulator


def _callbacks(run: RunFolder | None, config: Config, prep: Prepared, source: DataSource | None, selection: Any,
               progress: Callable[[dict[str, Any]], None] | None,
               ) -> tuple[list[Callable[[dict[str, Any]], Any]], MetricsLogger | None]:
    """The epoch callbacks of a run (log lines, metrics file, curves, the caller's progress); writes the setup."""
    # epoch lines go to the log unless the caller shows its own progress (the command line)
    callbacks: list[Callable[[dict[str, Any]], Any]] = (
        [] if progress is not None else [_epoch_logger(max(1, config.train.log_every))])
    metrics = None
    if run is not None:
        run.write_setup(config, prep, source)
        if selection is not None:
            run.write_json("selection.json", selection.to_dict())
        metrics = MetricsLogger(run.path)
        callbacks.append(metrics.log)
        callbacks.append(_live_curves(metrics, run.path / "curves.png"))
    if progress is not None:
        callbacks.append(progress)
    return callbacks, metrics


#: The live ``curves.png`` of a run is redrawn at most this often [s] (and at the end) ...
CURVES_EVERY_SECONDS = 30.0
#: ... and never more often than this many times its own drawing time.
CURVES_MAX_SHARE = 10.0


def _live_curves(metrics: MetricsLogger, path: Path,
                 clock: Callable[[], float] = time.monotonic) -> Callable[[dict[str, Any]], None]:
    """The epoch callback that keeps ``path`` (the run's learning curves) current during a long fit.

    Drawing the figure takes about half a second, the time of tens of epochs of a small
    suite, so it is redrawn on wall time, not on epochs: at most every
    :data:`CURVES_EVERY_SECONDS` and at most one part in :data:`CURVES_MAX_SHARE` of the
    time. A run of a few seconds draws it once, when it ends (:func:`train_emulator`).
    """
    last = {"at": clock(), "took": 0.0}
    prefetch: list[threading.Thread] = []

    def curves(entry: dict[str, Any]) -> None:  # returns None: a callback's True stops training
        del entry
        if not prefetch:  # matplotlib's import (~0.4 s) overlaps the training instead of following it
            prefetch.append(threading.Thread(target=import_plotting, name="profemu-import-plotting", daemon=True))
            prefetch[0].start()
        now = clock()
        if now - last["at"] < max(CURVES_EVERY_SECONDS, CURVES_MAX_SHARE * last["took"]):
            return
        plot_curves(metrics.history, path)
        last["took"] = clock() - now
        last["at"] = clock()

    return curves


def _continue_metrics(metrics: MetricsLogger, run: RunFolder, prep: Prepared, folds: int) -> None:
    """On resume, drop the lines of ``metrics.jsonl`` that the resumed run writes again.

    The resumed fit (the only fit, or the refit after cross-validation) restarts at the epoch
    of its newest checkpoint: its lines from that epoch on were written by the killed run
    after that checkpoint and go. The cross-validation's lines stay when its finished record
    (``cv.json``) is reused, and go when it runs again.
    """
    import warnings

    from profemu.train.checkpoint import load_latest

    with warnings.catch_warnings():  # an unusable newest checkpoint is reported once, by the resume itself
        warnings.simplefilter("ignore")
        checkpoint = load_latest(run.checkpoints_dir, strict=True)
    next_epoch = 0 if checkpoint is None else checkpoint.epoch
    cv_reused = bool(folds) and _finished_cross_validation(run, prep, folds) is not None

    def keep(entry: Mapping[str, Any]) -> bool:
        stage = str(entry.get("stage", ""))
        if stage == "cv" or stage.startswith("cv "):  # "cv k/K": written by older versions fold by fold
            return cv_reused
        epoch = entry.get("epoch")
        return isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch < next_epoch

    dropped = metrics.resume(keep)
    if dropped:
        logger.info("resume: dropped %d line(s) of %s written after the checkpoint of epoch %d (they are "
                    "trained again)", dropped, metrics.path, next_epoch)


def _fit_run(run: RunFolder | None, prep: Prepared, config: Config, folds: int,
             callbacks: list[Callable[[dict[str, Any]], Any]], resume: bool,
             held_out: Sequence[HeldOutTraining] = ()) -> tuple[Any, dict[str, Any] | None]:
    """The final fit: cross-validation then a refit on every row (``folds`` > 0), or one fit with early stopping.
    The ``held_out`` trainings start after the folds' first epoch (or before the refit of a reused
    cross-validation)."""
    checkpoints = None if run is None else run.checkpoints_dir
    if not folds:
        return fit(training_problem(prep, config), checkpoint_dir=checkpoints, resume=resume, callbacks=callbacks), None
    cv = _cross_validation(run, prep, config, folds, [*callbacks, *(job.start for job in held_out)], resume)
    if cv["refit"]["continues_cv_networks"]:
        for job in held_out:
            job.start()
    problem = training_problem(prep, config.updated({"train.patience": 0}), validate_on_train=False)
    networks, refit = cv.pop("networks", None), cv["refit"]
    first, epochs = int(refit["first_epoch"]), int(refit["epochs"])
    start = None  # a resumed refit's checkpoint holds the members' parameters
    if refit["continues_cv_networks"] and networks is not None:
        start = unflatten_tree({k: np.asarray(v)[:config.train.members] for k, v in flatten_tree(networks).items()})
    total = first + epochs  # a continued refit's bar counts the schedule's epochs: it starts at ``first``
    final_callbacks = [lambda e, c=c: c({**e, "stage": "refit", "epochs": total}) for c in callbacks]
    result = fit(problem, checkpoint_dir=checkpoints, resume=resume, callbacks=final_callbacks, epochs=epochs,
                 keep="last", pad_to=program_rows(prep, config, folds), initial_params=start, first_epoch=first)
    return result, cv


def _refit_record(config: Config, cv: Mapping[str, Any], networks: int | None, rows: int) -> dict[str, Any]:
    """How the refit trains (``cv.json``'s ``refit``; logged).

    The members continue the cross-validation's ``networks`` (member ``i`` network ``i``) for
    the last ``train.warm_refit_epochs`` epochs of their schedule, or train from new initial
    parameters for the folds' median best epoch (``first_epoch`` 0): with
    ``train.warm_refit_epochs = 0`` or more members than networks. ``networks`` None (a reused
    cross-validation): as its record says, or anew when it says nothing.
    """
    warm = _warm_refit_epochs(config)
    members = config.train.members
    previous = cv.get("refit")
    if networks is None and isinstance(previous, Mapping):
        continues = bool(previous.get("continues_cv_networks"))
    else:
        continues = _continues_folds(config, networks or 0)
    if not continues:
        why = ("train.warm_refit_epochs: 0" if warm <= 0 else
               "train.members > train.cv_folds x train.cv_members: more members than networks to continue")
        logger.info("refit: %d members from new initial parameters on all %d rows for %d epochs, the folds' median "
                    "best (%s)", members, rows, int(cv["refit_epochs"]), why)
        return {"continues_cv_networks": False, "first_epoch": 0, "epochs": int(cv["refit_epochs"])}
    capped = ", at most a fifth of train.epochs" if warm < config.train.warm_refit_epochs else ""
    logger.info("refit: the %d members continue the cross-validation's networks on all %d rows for the %s of "
                "their schedule (train.warm_refit_epochs%s; 0 trains them anew)", members, rows,
                "last epoch" if warm == 1 else f"last {warm} epochs", capped)
    return {"continues_cv_networks": True, "first_epoch": config.train.epochs - warm, "epochs": warm}


#: The refit continues the folds' networks for at most this share of the schedule (its tail):
#: the last fifth of a cosine schedule runs below a tenth of the peak learning rate, so the
#: continued networks stay those whose out-of-fold variance the cross-validation calibrated.
#: Re-running most of a short schedule (14 of 15 epochs) at a high learning rate moved them away:
#: on a 300-row, 7-parameter suite trained for 15 epochs the members' variance shrank and the
#: calibrated 68% intervals held 28% of 100 new simulations' profiles (0.75 at 150 epochs).
REFIT_TAIL = 0.2


def _warm_refit_epochs(config: Config) -> int:
    """Epochs the refit continues the folds' networks for (0: it trains anew): ``train.warm_refit_epochs``,
    at most :data:`REFIT_TAIL` of ``train.epochs`` (at least 1) and ``train.epochs - 1``."""
    epochs = config.train.epochs
    return min(config.train.warm_refit_epochs, max(1, int(REFIT_TAIL * epochs)), epochs - 1)


def _continues_folds(config: Config, networks: int) -> bool:
    """Whether the refit's members continue the cross-validation's ``networks`` networks."""
    return _warm_refit_epochs(config) > 0 and config.train.members <= networks


#: ``train.extrapolation_variance = "auto"`` fits the term on runs with at least this many
#: training rows ...
EXTRAPOLATION_MIN_ROWS = 100
#: ... whose upper half in mass lies, at its median, at least this many dex above the lower half
#: (the distances the term is calibrated on; a single mass bin gives a few hundredths of a dex).
EXTRAPOLATION_MIN_DISTANCE = 0.1
#: Members of the held-out fit (at most the run's).
EXTRAPOLATION_MEMBERS = 3


#: Training masses spanning less than this [dex] are one mass to the network (a warning says so).
ONE_MASS_SPAN = 0.05


def _warn_one_mass(prep: Prepared) -> None:
    """Warn when the training rows hold (nearly) one halo mass: nothing tells the network how the
    profiles change with mass."""
    mass = np.asarray(prep.dataset.log10_mass, float)[training_rows(prep)]
    if mass.size and float(np.ptp(mass)) < ONE_MASS_SPAN:
        logger.warning("halo mass: the %d training rows span %.3f dex (log10 M %.3f..%.3f), so the emulator cannot "
                       "learn how the profiles change with mass; a prediction at another mass is an extrapolation "
                       "without support (Prediction.distance_outside says how far)", mass.size, float(np.ptp(mass)),
                       float(mass.min()), float(mass.max()))


def _warn_repeated_inputs(prep: Prepared) -> None:
    """Warn when training rows of different simulations (groups) have exactly the same inputs: a
    copied simulation lands in another fold than its twin, and the cross-validation (and a GP
    blend's leave-one-out) scores rows it has trained on."""
    ds = prep.dataset
    rows = training_rows(prep)
    if rows.size < 2:
        return
    cols = [np.asarray(ds.params, float), np.asarray(ds.log10_mass, float)[:, None]]
    cols += [np.asarray(a, float).reshape(ds.n, -1) for a in (ds.redshift, ds.pk_ratio) if a is not None and np.size(a)]
    x = np.concatenate(cols, axis=1)[rows]
    all_groups = np.arange(ds.n) if ds.groups is None else np.asarray(ds.groups)  # no groups: a row each
    groups = all_groups[rows]
    _, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(inverse.ravel(), kind="stable")  # rows of one input vector next to each other
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    codes = np.unique(groups, return_inverse=True)[1].ravel()[order]
    across = (counts > 1) & (np.minimum.reduceat(codes, starts) != np.maximum.reduceat(codes, starts))
    if across.any():
        n = int(counts[across].sum())
        k = int(np.flatnonzero(across)[0])
        twin = order[starts[k]:starts[k] + counts[k]]
        other = twin[np.flatnonzero(codes[starts[k]:starts[k] + counts[k]] != codes[starts[k]])[0]]
        a, b = rows[twin[0]], rows[other]
        logger.warning("inputs: %d training rows repeat the inputs (parameters, mass%s) of a row of another simulation "
                       "exactly (e.g. rows %d and %d, groups %s and %s): the cross-validation then scores rows whose "
                       "twin it trained on, so its errors are optimistic; drop the copies or give them one group",
                       n, ", redshift" if ds.redshift is not None else "", a, b, all_groups[a], all_groups[b])


def extrapolation_terms(config: Config, prep: Prepared) -> str:
    """Which terms ``train.extrapolation_variance`` fits beyond the box in this run (logged):
    ``"mass"`` (the distance outside the box, and the redshift's own term where the rows allow it),
    ``"redshift"`` (the redshift's own term alone: the masses cannot calibrate the other) or ``""``."""
    mode = config.train.extrapolation_variance
    if mode == "off":
        return ""
    if mode == "on":
        return "mass"
    rows = training_rows(prep)
    mass = np.asarray(prep.dataset.log10_mass, float)[rows]
    above = mass > np.quantile(mass, 0.5) if mass.size else np.zeros(0, bool)
    gap = float(np.median(mass[above] - mass[~above].max())) if above.any() and (~above).any() else 0.0
    upper = int(np.sum(above))
    if rows.size < EXTRAPOLATION_MIN_ROWS or gap < EXTRAPOLATION_MIN_DISTANCE:
        why = (f"{rows.size} training rows whose upper half in mass lies a median {gap:.2f} dex above the lower half; "
               f"train.extrapolation_variance: auto needs >= {EXTRAPOLATION_MIN_ROWS} rows and >= "
               f"{EXTRAPOLATION_MIN_DISTANCE:.1f} dex to calibrate the term on, 'on' forces it")
    elif min(upper, rows.size - upper) < EXTRAPOLATION_MIN_ROWS // 4:
        why = (f"{upper} of the {rows.size} training rows lie above their median mass; auto needs >= "
               f"{EXTRAPOLATION_MIN_ROWS // 4} on each side of it, 'on' forces it")
    else:
        return "mass"
    if rows.size >= EXTRAPOLATION_MIN_ROWS and redshift_term_possible(prep.dataset.subset(rows)):
        logger.info("extrapolation variance: the redshift's own term only (%s); predictions outside the training "
                    "masses carry no variance for that distance", why)
        return "redshift"
    logger.info("extrapolation variance: not fitted (%s); predictions outside the training masses carry no variance "
                "for the distance", why)
    return ""


def _held_out_beside_folds(prep: Prepared, config: Config, folds: int, extrapolate: str) -> list[HeldOutTraining]:
    """The extrapolation variance's held-out trainings to run beside the cross-validation
    (:mod:`profemu.runs.heldout`): the mass term's (``extrapolate == "mass"``) and the redshift's
    own (rows at three or more redshifts), each on a thread of its own. None (an empty list) where they train
    after the refit: no cross-validation, a refit from new initial parameters, a single usable
    core, or rows that cannot be split (the error is raised, and logged, where the term is fitted)."""
    if not extrapolate or not folds or not _continues_folds(config, folds * config.train.cv_members) \
            or usable_cores() < 2:
        return []
    pad_to = program_rows(prep, config, folds)
    jobs = []
    for split in ("mass", "redshift") if extrapolate == "mass" else ("redshift",):
        try:
            jobs.append(HeldOutTraining(prep, config, pad_to, split))
        except DataError:
            continue
    return jobs


def _attach_extrapolation_variance(emulator: Emulator, prep: Prepared, config: Config,
                                   cv: Mapping[str, Any] | None, held_out: Sequence[HeldOutTraining] = (), *,
                                   mass: bool = True) -> None:
    """Fit the variance beyond the training box and store it with ``emulator``
    (:func:`~profemu.emulator.extrapolation.fit_extrapolation_variance`: one more training on the
    lower half of the training rows in mass, scored on the upper half).

    After a cross-validation the held-out training trains the refit's members from new initial
    parameters (it cannot continue the folds' networks: they saw the upper half) with the
    cross-validation's variance scale and the run's input relevance, and runs the folds'
    compiled epoch: no compilation. It trains the whole schedule where the refit's members
    continue the folds' networks (and then ran beside the cross-validation, ``held_out``),
    the folds' median best epoch where they train anew. Without a cross-validation it is a
    lighter training of its own (one validation split, at most :data:`EXTRAPOLATION_MEMBERS`
    members, no blend). ``mass`` False: the redshift's own term alone, its training on the rows
    below the highest third of the redshifts.
    """
    rows = training_rows(prep)
    half = "the lower half of the %d training rows in mass" if mass else \
        "the lower redshifts of the %d training rows (all but the highest third)"
    if cv is not None:
        continues = bool(cv["refit"]["continues_cv_networks"])
        if not continues:
            for job in held_out:
                job.cancel()
            held_out = ()
        epochs = None if continues else int(cv["refit_epochs"])
        if not held_out:
            logger.info("extrapolation variance: one more training of %d members from new initial parameters (%s) on "
                        + half + " (train.extrapolation_variance: off skips it)",
                        config.train.members, f"the whole schedule of {config.train.epochs} epochs, as the members "
                        "continuing the folds' networks" if continues else f"{epochs} epochs, the folds' median best",
                        rows.size)
        pad = program_rows(prep, config, int(cv["folds"]))

        def fitter(data: ProfileDataset) -> Emulator:
            job = next((j for j in held_out if j.trained_on(data)), None)
            if job is not None:
                part, params = job.result()
            else:
                part, params = train_held_out(data, prep, config, pad, epochs)
            return build_emulator(part, config, params, variance_scale=float(cv["variance_scale"]))
    else:
        val_fraction = config.data.val_fraction if config.data.val_fraction > 0 else 0.15
        inner = config.updated({"train.extrapolation_variance": "off", "train.cv_folds": 0, "train.gp_blend": "off",
                                "train.auto_capacity": "off", "data.test_fraction": 0.0,
                                "data.val_fraction": val_fraction,
                                "train.members": min(config.train.members, EXTRAPOLATION_MEMBERS)})
        logger.info("extrapolation variance: one lighter training (%d members, one validation split) on " + half
                    + " (train.extrapolation_variance: off skips it)", inner.train.members, rows.size)

        def fitter(data: ProfileDataset) -> Emulator:
            return train_emulator(data, inner, evaluate_test=False, progress=_quiet).emulator

    emulator.metadata["extrapolation"] = fit_extrapolation_variance(fitter, prep.dataset.subset(rows),
                                                                    emulator=emulator, mass=mass)


def _quiet(entry: dict[str, Any]) -> None:
    """The epoch callback of the held-out fit: its epochs are not logged (one line says what it does)."""
    del entry


def _residual_covariance(prep: Prepared, result: CrossValidation) -> dict[str, Any] | None:
    """The folds' residual covariance for ``profemu infer`` (None, logged, where it cannot be estimated)."""
    try:
        estimate = result.residual_covariance(
            prep.dataset, method=f"out-of-fold residuals of the training's {result.folds}-fold "
                                 "cross-validation by simulation")
    except DataError as exc:
        logger.info("no residual covariance stored with the emulator (%s)", exc)
        return None
    logger.info("residual covariance between fields, radii and mass bins estimated from %d out-of-fold rows "
                "(used by profemu infer)", result.rows.size)
    return estimate.to_dict()


def _finished_cross_validation(run: RunFolder, prep: Prepared, folds: int) -> dict[str, Any] | None:
    """The run's ``cv.json`` when it records a finished cross-validation of these folds and rows."""
    previous = run.json("cv.json")
    if isinstance(previous, dict) and previous.get("folds") == folds and previous.get("n_rows") == len(prep.split.train):
        return previous
    return None


def _attach_blend(emulator: Emulator, prep: Prepared, config: Config, cv: dict[str, Any] | None) -> None:
    """Fit and attach the GP blend where ``train.gp_blend`` asks for it (pops the in-memory
    out-of-fold predictions from ``cv`` either way)."""
    oof = None if cv is None else cv.pop("oof", None)
    if not uses_blend(config, prep.dataset, len(prep.split.train)):
        return
    if oof is None:
        logger.info("GP blend skipped: it is weighted on cross-validation predictions, and this run has %s",
                    "none (train.cv_folds: 0)" if cv is None else "no saved out-of-fold predictions (resumed)")
        return
    blend = fit_blend(prep, oof, seed=config.train.seed)
    if blend is not None:
        attach_blend(emulator, blend)


def _cross_validation(run: RunFolder | None, prep: Prepared, config: Config, folds: int,
                      callbacks: list[Callable[[dict[str, Any]], Any]], resume: bool) -> dict[str, Any]:
    """The run's cross-validation record: reused from ``cv.json`` on resume, else computed and written."""
    if resume and run is not None:
        previous = _finished_cross_validation(run, prep, folds)
        if previous is not None:
            logger.info("resume: reusing the finished cross-validation in %s", run.path / "cv.json")
            previous["refit"] = _refit_record(config, previous, None, len(prep.split.train))
            saved = run.out_of_fold(prep.dataset.n, prep.transforms.field_names)
            if saved is not None and set(saved.predictions) == set(prep.transforms.field_names):
                previous["oof"] = {"rows": saved.rows, "predictions": saved.predictions}  # the GP blend's weights
            return previous
    result = cross_validate(prep, config, folds, callbacks=callbacks)
    record = json_safe(result.summary())
    record["residual_covariance"] = _residual_covariance(prep, result)
    networks = None if result.networks is None else int(next(iter(flatten_tree(result.networks).values())).shape[0])
    record["refit"] = _refit_record(config, record, networks, len(prep.split.train))  # cv.json says how it trains
    if run is not None:
        run.write_json("cv.json", record)
        run.write_npz("cv_predictions.npz", {"rows": result.rows, "fold": result.fold_of_row,
                                             **{f"{f}_mean": m for f, (m, _) in result.predictions.items()},
                                             **{f"{f}_var": v for f, (_, v) in result.predictions.items()}})
    # in memory only (not in cv.json): the out-of-fold predictions the GP blend is weighted on
    record["oof"] = {"rows": result.rows, "predictions": result.predictions}
    record["networks"] = result.networks  # continued by the refit
    return record
