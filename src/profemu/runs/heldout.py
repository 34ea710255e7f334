"""The held-out trainings of a run's extrapolation variance, and where they run.

The extrapolation variance (:mod:`profemu.emulator.extrapolation`) is calibrated by one more
training: the run's members, from new initial parameters, on the training rows below their
median mass, scored on those above it; on rows at three or more redshifts, one more on those
below the highest third of the redshifts calibrates the redshift's own term. After a
cross-validation they run the folds' compiled epoch (no compilation of their own: they keep
the run's radial coordinate, whose grid in r / R_Δ sets the network's shapes).

When the refit continues the folds' networks (the default), the members they stand for
complete their learning-rate schedule, so the held-out trainings train the whole schedule
(``train.epochs``) too and need nothing from the cross-validation until they are scored. They
then start, each on a thread of its own, as soon as the folds' first epoch has compiled the
program, and train beside them: one compiled network program keeps about one CPU core busy, so
on a machine with more cores they cost little wall time (on 1,600 CAMELS TNG rows, with the
program compiled, the run takes 3.0 s instead of 4.1 s on two cores). Their numbers are those
of the same trainings after the cross-validation; only when they run differs. Otherwise (a
refit from new initial parameters, which trains the folds' median best epoch, or a single
core) they train after the refit, as :func:`train_held_out` says.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Literal

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.split import Split
from profemu.emulator.extrapolation import mass_holdout, redshift_holdout
from profemu.errors import DataError
from profemu.train.loop import fit
from profemu.train.setup import Prepared, fit_transforms, training_problem, transforms_config

__all__ = ["THREAD_NAME", "HeldOutTraining", "train_held_out", "training_rows", "usable_cores"]

logger = logging.getLogger(__name__)

#: The name of the held-out training's thread (its log records carry it).
THREAD_NAME = "profemu-held-out-training"


class _NotesOfThread(logging.Filter):
    """Drops the notes and warnings (below errors) logged by one thread: the transforms of a subset
    of the run's rows repeat what the run's own said (e.g. that the gas-fraction bound is off)."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno >= logging.ERROR


def training_rows(prep: Prepared) -> np.ndarray:
    """The rows the final emulator learns from (training and validation split)."""
    return np.concatenate([np.asarray(prep.split.train), np.asarray(prep.split.val)])


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def train_held_out(data: ProfileDataset, prep: Prepared, config: Config, pad_to: tuple[int, int],
                   epochs: int | None, stop: threading.Event | None = None) -> tuple[Prepared, Any]:
    """Train the run's members from new initial parameters on ``data`` (rows of the run) as a
    refit would: transforms of their own with the run's input relevance and radial coordinate
    (its grid in r / R_Δ: the network keeps the run's shapes, so the run's compiled epoch serves;
    their notes, the run's own again, are not logged), no validation rows, no early stopping, the parameters
    after the last epoch.

    Args:
        data: The rows to learn from.
        prep: The run's prepared data (its input relevance is reused).
        config: The run configuration.
        pad_to: The compiled epoch's row counts (:func:`~profemu.train.cv.program_rows`).
        epochs: Epochs to train (None: the whole schedule, ``train.epochs``).
        stop: When set, the training stops after the current epoch.

    Returns:
        ``(prepared rows, member parameters)`` for :func:`~profemu.train.builder.build_emulator`.
    """
    notes = logging.getLogger("profemu.data.transforms")  # the run's own notes said it once: not again
    quiet = _NotesOfThread(threading.get_ident())
    notes.addFilter(quiet)
    try:
        transforms = fit_transforms(data, transforms_config(config), input_weights=prep.transforms.param_weights,
                                    radial_coordinate_of=prep.transforms)
    finally:
        notes.removeFilter(quiet)
    none = np.zeros(0, dtype=int)
    part = Prepared(data, Split(np.arange(data.n), none, none), transforms)
    callbacks = () if stop is None else (lambda entry: stop.is_set(),)
    result = fit(training_problem(part, config.updated({"train.patience": 0}), validate_on_train=False),
                 epochs=epochs, keep="last", pad_to=pad_to, callbacks=callbacks)
    return part, result.params


class HeldOutTraining:
    """A held-out training of the extrapolation variance, on a thread of its own.

    Built before the cross-validation; :meth:`start` (an epoch callback of the folds) starts
    it once, :meth:`result` waits for it. It trains the whole schedule (``train.epochs``): use
    it only where the refit continues the folds' networks.

    Args:
        prep: The run's prepared data.
        config: The run configuration.
        pad_to: The folds' compiled epoch's row counts (:func:`~profemu.train.cv.program_rows`).
        split: ``"mass"``: the training rows below their median mass
            (:func:`~profemu.emulator.extrapolation.mass_holdout`); ``"redshift"``: those below
            the highest third of their distinct redshifts (the redshift's own term,
            :func:`~profemu.emulator.extrapolation.redshift_holdout`).

    Raises:
        DataError: the training rows cannot be split so.
    """

    def __init__(self, prep: Prepared, config: Config, pad_to: tuple[int, int],
                 split: Literal["mass", "redshift"] = "mass") -> None:
        data = prep.dataset.subset(training_rows(prep))
        if split == "mass":
            inner, _ = mass_holdout(data)
            where = "below the median mass"
        else:
            found = redshift_holdout(data)
            if isinstance(found, str):
                raise DataError(f"extrapolation variance in redshift: {found}.")
            inner, where = found[0], f"at z <= {found[3]:.3g}"
        self.split = split
        self.rows = data.subset(inner)
        self._where = where
        self._prep, self._config, self._pad_to = prep, config, pad_to
        self._stop = threading.Event()
        self._done = threading.Event()  # set by the thread when it leaves its work, whatever happened
        self._thread: threading.Thread | None = None
        self._result: tuple[Prepared, Any] | None = None
        self._error: BaseException | None = None

    def start(self, entry: Any = None) -> None:
        """Start the training (once; later calls do nothing). ``entry``: the epoch callback's
        history entry, unused."""
        del entry
        if self._thread is not None:
            return
        term = "" if self.split == "mass" else " in redshift"
        logger.info("extrapolation variance%s: its held-out training (%d members from new initial parameters, the "
                    "whole schedule of %d epochs, on the %d rows %s) runs beside the cross-validation on a thread of "
                    "its own", term, self._config.train.members, self._config.train.epochs, self.rows.n, self._where)
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = train_held_out(self.rows, self._prep, self._config, self._pad_to, None, self._stop)
        except BaseException as exc:  # re-raised by result() in the run's thread
            self._error = exc
        finally:
            self._done.set()

    def _wait(self) -> None:
        """Wait until the thread has left its work. On an event, not ``Thread.join``: Python 3.11
        marks a thread whose ``join`` was interrupted (Ctrl-C) as stopped while it still runs, and a
        process that exits while XLA runs on it aborts (SIGABRT)."""
        assert self._thread is not None
        self._done.wait()
        self._thread.join()

    def cancel(self) -> None:
        """Stop the training after its current epoch (the run failed or was interrupted) and wait for
        the thread: a process that exits while XLA still runs on it aborts (SIGABRT on Ctrl-C)."""
        self._stop.set()
        if self._thread is None or self._thread is threading.current_thread():
            return
        while True:
            try:
                self._wait()
                return
            except KeyboardInterrupt:  # Ctrl-C again: the thread must still stop first, or XLA aborts the process
                logger.warning("stopping the held-out training (it ends after its current epoch) ...")

    def trained_on(self, data: ProfileDataset) -> bool:
        """Whether ``data`` are the rows this training learns from (the same masses, parameters and
        redshifts)."""
        same_z = (data.redshift is None) == (self.rows.redshift is None) and (
            data.redshift is None or np.array_equal(data.redshift, self.rows.redshift))
        return (data.n == self.rows.n and np.array_equal(data.log10_mass, self.rows.log10_mass)
                and np.array_equal(data.params, self.rows.params) and same_z)

    def result(self) -> tuple[Prepared, Any]:
        """``(prepared rows, member parameters)``, started here if it has not been; waits for the thread.

        Raises:
            Whatever the training raised.
        """
        self.start()
        assert self._thread is not None
        try:
            self._wait()
        except BaseException:  # interrupted while waiting: stop the training before the error goes up
            self.cancel()
            raise
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
