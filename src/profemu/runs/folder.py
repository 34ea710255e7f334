"""The run folder: written atomically and read back by everyone, here and only here.

Layout::

    RUN/
      config.yaml       resolved configuration
      data.json         where the data came from (path, format, loader options)
      split.json        row indices (and group ids) of train / val / test, the run id, the data
                        fingerprint, the training rows' fingerprint and the data file's SHA-256
      transforms.json   the fitted transforms (cluster runs: every member job reuses them)
      run.json          cluster runs: members, fingerprint of the training rows
      emulator/         the saved Emulator (manifest.json + weights-<sha>.npz)
      checkpoints/      training checkpoints (atomic, checksummed)
      metrics.jsonl     one line of training metrics per epoch (+ TensorBoard events)
      curves.png        training curves
      evaluation.json   metrics on the held-out test split, when there is one
      cv.json           cross-validation estimates (out-of-fold metrics, spread over folds, epochs)
      cv_predictions.npz  the out-of-fold predictions (rows, fold, <field>_mean / <field>_var)
      compare.json      the baselines' comparison (``profemu compare``)
      members/          cluster runs: one folder per ensemble member
      .profemu.lock     while a command writes the folder: its pid, host and start time

:func:`profemu.runs.training.train_emulator`, :mod:`profemu.runs.cluster`, the report and the
command line all go through :class:`RunFolder`; every file is written with
:func:`profemu._files.atomic_write`.

Safety: a command that writes a run folder holds its lock (:mod:`profemu._lock`), and
a resume first checks, with :meth:`RunFolder.check_resume`, that the data, the split,
the configuration and the checkpoints are those of the run, before any file changes.
Provenance: ``split.json`` binds the run: its id (``run_id``, kept by a resume), the
fingerprint of the training rows (which the saved Emulator records as
``training_data_fingerprint``) and the SHA-256 of the data file. :meth:`RunFolder.emulator`
refuses an Emulator of another run and :meth:`RunFolder.dataset` a data file replaced in
place, each with one line.
A plain rerun into a folder whose training stopped before its first checkpoint (nothing
there could be resumed) starts it over (:meth:`RunFolder.reclaim`).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from profemu._files import atomic_write_text, json_safe, read_json_file, read_npz, sha256_file
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.errors import ConfigError, DataError, FormatError

if TYPE_CHECKING:
    from profemu.emulator import Emulator
    from profemu.train.setup import Prepared

__all__ = ["RESUME_MAY_CHANGE", "SPLITS", "DataSource", "OutOfFold", "RunFolder", "config_differences", "load_data",
           "read_inputs"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_MARKERS = ("config.yaml", "split.json", "emulator", "metrics.jsonl")
#: The run id of the run that owns ``checkpoints/`` (written at setup, checked on resume).
RUN_ID_FILE = ".run_id"
#: Configuration keys a resume may change (they affect neither the model nor its training).
RESUME_MAY_CHANGE = ("train.log_every", "train.checkpoint_every", "train.max_seconds")
#: What a training run that stopped before its first checkpoint leaves, removed by :meth:`RunFolder.reclaim`.
_STOPPED_RUN_OUTPUTS = ("metrics.jsonl", "curves.png", "tensorboard", "cv.json", "cv_predictions.npz",
                        "checkpoints")


@dataclass(frozen=True)
class DataSource:
    """How to (re)load a run's data: a file path, its format and loader options."""

    path: str
    format: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSource:
        return cls(str(d["path"]), str(d.get("format", "auto")), dict(d.get("options", {})))


def load_data(source: DataSource) -> ProfileDataset:
    """Load the dataset described by ``source`` (profemu npz/HDF5 or the CAMELS LH table)."""
    from profemu.data.io import load_dataset

    return load_dataset(source.path, format=source.format, **dict(source.options))


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions of a cross-validated run.

    Attributes:
        rows: Dataset rows [n], in prediction order.
        fold: Fold of each row [n].
        predictions: ``{field: (mean, var)}`` log10 predictions [n, n_r], ``var`` without
            the variance scale.
    """

    rows: np.ndarray
    fold: np.ndarray
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RunFolder:
    """A run folder (see the module docstring); :meth:`create` to write one, :meth:`open` to read one.

    Attributes:
        path: The folder.
    """

    path: Path

    # ------------------------------------------------------------------ open
    @classmethod
    def create(cls, path: str | Path) -> RunFolder:
        """The folder at ``path`` (created with its parents)."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        return cls(p)

    @classmethod
    def open(cls, path: str | Path, *, require_emulator: bool = True) -> RunFolder:
        """Check that ``path`` is a run folder and return it.

        Args:
            path: Folder written by ``profemu train --out``.
            require_emulator: Also require the saved Emulator (``emulator/manifest.json``).

        Raises:
            DataError: the folder does not exist or is not a run folder.
        """
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise DataError(f"run folder {str(p)!r} is a file, not a folder; pass the --out folder of `profemu train`"
                            " (a data file goes to --data).")
        if not p.is_dir():
            raise DataError(f"run folder {str(p)!r} does not exist; pass the --out folder of `profemu train`.")
        if not any((p / m).exists() for m in _MARKERS):
            raise DataError(
                f"{str(p)!r} is not a run folder (no config.yaml, split.json or emulator/); "
                "pass the --out folder of `profemu train`."
            )
        if require_emulator and not (p / "emulator" / "manifest.json").is_file():
            resumable = any((p / "checkpoints").glob("ckpt-*.json"))
            how = ("resume it (profemu train --resume with the same --data and --out) or train again" if resumable
                   else "it stopped before its first checkpoint: train again with the same --out (the run "
                        "starts over there)")
            raise DataError(
                f"{str(p)!r} has no saved emulator (emulator/manifest.json); the training run did "
                f"not finish — {how}."
            )
        return cls(p)

    # ------------------------------------------------------------------ paths
    @property
    def emulator_dir(self) -> Path:
        return self.path / "emulator"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def inputs(self) -> dict[str, Path]:
        """``{what: path}`` of the files and folders that make up the run (what commands read).

        Passed to :func:`profemu._files.check_output`, so no command writes its output over
        the run's emulator, checkpoints, configuration, data record or split.
        """
        names = {"run's emulator folder": "emulator", "run's checkpoints folder": "checkpoints",
                 "run's members folder": "members", "run's configuration": "config.yaml",
                 "run's data record": "data.json", "run's split record": "split.json",
                 "run's record": "run.json", "run's fitted transforms": "transforms.json",
                 "run's training history": "metrics.jsonl"}
        out = {what: self.path / name for what, name in names.items()}
        try:
            source = self.source()
        except FormatError:  # a damaged data.json: the command reading it says so
            source = None
        if source is not None and source.path:
            out["run's data file"] = Path(source.path)
        return out

    def is_run_folder(self) -> bool:
        """Whether the folder holds what profemu writes into a run folder (config, split, emulator, history)."""
        return any((self.path / m).exists() for m in _MARKERS)

    def is_training_run(self) -> bool:
        """Whether the folder already holds (part of) a training run."""
        return (self.path / "emulator").exists() or (self.path / "metrics.jsonl").exists()

    def checkpoint_files(self) -> list[Path]:
        """The checkpoint files (``checkpoints/ckpt-*``, valid or not), sorted."""
        folder = self.checkpoints_dir
        return sorted(folder.glob("ckpt-*")) if folder.is_dir() else []

    def stopped_before_first_checkpoint(self) -> bool:
        """A training run that left metrics but neither an Emulator nor a checkpoint.

        What a kill between the first epoch and the first checkpoint leaves: nothing
        there can be resumed or used. Cluster runs (``run.json``) never count: their
        members keep their own checkpoints.
        """
        return (self.is_training_run() and not self.emulator_dir.exists() and not self.checkpoint_files()
                and not (self.path / "run.json").exists())

    def reclaim(self) -> list[str]:
        """Remove what a run that :meth:`stopped_before_first_checkpoint` left, to start it over.

        Only the training outputs go (``metrics.jsonl``, ``curves.png``, ``tensorboard/``,
        cross-validation files, an empty ``checkpoints/``); ``config.yaml``, ``data.json``
        and ``split.json`` are rewritten by the new run; other files stay.

        Returns:
            The names removed.

        Raises:
            DataError: the folder holds an Emulator or checkpoints (nothing is removed).
        """
        if not self.stopped_before_first_checkpoint():
            raise DataError(
                f"{str(self.path)!r} holds an Emulator or checkpoints; it is not a stopped run to start over."
            )
        removed = []
        for name in _STOPPED_RUN_OUTPUTS:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
            else:
                continue
            removed.append(name)
        logger.info("%s: the earlier training run stopped before its first checkpoint; removed %s to start over",
                    self.path, ", ".join(removed))
        return removed

    def check_resume(self, config: Config, prepared: Prepared, source: DataSource | None = None) -> None:
        """Refuse a resume that would not continue this run (before any file changes).

        Checks, in this order: the configuration (every key but :data:`RESUME_MAY_CHANGE`
        equals ``config.yaml``'s), the data (the fingerprint ``split.json`` records, or the
        file ``data.json`` names for runs written before fingerprints), the split, and the
        checkpoints (at least one must verify).

        Args:
            config: The configuration of the resumed run.
            prepared: Its data, split and transforms.
            source: Where its data come from.

        Raises:
            ConfigError: the configuration differs (the message names each differing key
                with both values).
            DataError: other data or another split, no checkpoint, or every checkpoint
                corrupt (the message names the files).
        """
        from profemu.train.checkpoint import load_latest

        where = str(self.path)
        saved_file = self.path / "config.yaml"
        if not saved_file.is_file():
            raise DataError(f"resume: {where!r} has no config.yaml, so it cannot be resumed; train without --resume "
                            "into another --out.")
        diffs = [d for d in config_differences(Config.from_yaml(saved_file), config)
                 if d[0] not in RESUME_MAY_CHANGE]
        if diffs:
            shown = ", ".join(f"{k} (run: {_short(a)}, now: {_short(b)})" for k, a, b in diffs[:8])
            more = f" and {len(diffs) - 8} more" if len(diffs) > 8 else ""
            raise ConfigError(
                f"resume: the configuration differs from the run's {str(saved_file)!r} in {shown}{more}; "
                f"resume with the run's configuration (--config {str(saved_file)!r}) or train the new "
                "configuration into another --out."
            )
        record = self.json("split.json")
        old_source = self.source()
        new_fp = prepared.dataset.fingerprint()
        old_fp = record.get("data_fingerprint") if isinstance(record, dict) else None
        old_where = old_source.path if old_source is not None else "its data"
        new_where = source.path if source is not None else "the data given"
        if old_fp is not None and old_fp != new_fp:
            raise DataError(
                f"resume: {where!r} was trained on {old_where!r} (data fingerprint {str(old_fp)[:12]}), but "
                f"the data given are {new_where!r} (data fingerprint {new_fp[:12]}); resume with the run's "
                "data, or train on the new data into another --out."
            )
        if old_fp is None and old_source is not None and source is not None and (
                Path(old_source.path).resolve() != Path(source.path).resolve()
                or old_source.format != source.format or dict(old_source.options) != dict(source.options)):
            raise DataError(
                f"resume: {where!r} was trained on {old_where!r} ({old_source.format}, {dict(old_source.options)}), "
                f"not on {new_where!r} ({source.format}, {dict(source.options)}); resume with the run's data, "
                "or train on the new data into another --out."
            )
        if isinstance(record, dict):
            new_record = split_record(prepared)
            changed = [k for k in SPLITS if record.get(f"{k}_rows") != new_record[f"{k}_rows"]]
            if changed:
                raise DataError(
                    f"resume: the {'/'.join(changed)} rows differ from those {str(self.path / 'split.json')!r} "
                    "records (the data file changed?); resume with the run's data, or train into another --out."
                )
        self._check_checkpoints_belong(record)
        if not self.checkpoint_files():
            raise DataError(
                f"resume: {where!r} has no checkpoints to resume from (the run stopped before its first "
                "checkpoint, see train.checkpoint_every); train again without --resume to start it over."
            )
        if load_latest(self.checkpoints_dir, strict=True) is None:  # pragma: no cover - strict raises
            raise DataError(f"resume: {where!r} has no usable checkpoint; train again without --resume.")

    def _check_checkpoints_belong(self, record: Any) -> None:
        """Refuse checkpoints whose run-id marker names another run (copied in from elsewhere)."""
        marker = self.checkpoints_dir / RUN_ID_FILE
        mine = record.get("run_id") if isinstance(record, dict) else None
        if not mine or not marker.is_file():
            return
        theirs = marker.read_text().strip()
        if theirs and theirs != mine:
            raise DataError(
                f"resume: the checkpoints in {str(self.checkpoints_dir)!r} belong to another run (run id "
                f"{theirs[:12]}, this run's split.json records {str(mine)[:12]}); resuming would mix runs. "
                "Restore the run's own checkpoints/, or train without --resume into another --out."
            )

    # ------------------------------------------------------------------ write
    def write_json(self, name: str, obj: Any) -> Path:
        """``RUN/<name>`` as indented JSON (finite numbers only), atomically."""
        path = self.path / name
        atomic_write_text(path, json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n")
        return path

    def write_npz(self, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """``RUN/<name>`` as an npz of plain arrays, atomically."""
        from profemu._files import atomic_write

        path = self.path / name
        atomic_write(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
        return path

    def write_text(self, name: str, text: str) -> Path:
        """``RUN/<name>`` as text, atomically."""
        path = self.path / name
        atomic_write_text(path, text)
        return path

    def write_setup(self, config: Config, prepared: Prepared, source: DataSource | None) -> None:
        """``config.yaml``, ``data.json`` (when the data came from a file) and ``split.json``.

        ``split.json`` gets a new run id, or keeps the one it has when it records the same
        training rows (a resume); with a data file, also that file's SHA-256.
        """
        config.to_yaml(self.path / "config.yaml")
        if source is not None:
            self.write_json("data.json", source.to_dict())
        record = split_record(prepared)
        old = self.json("split.json") if (self.path / "split.json").is_file() else None
        if isinstance(old, dict) and old.get("run_id") and old.get("train_fingerprint") == record["train_fingerprint"]:
            record["run_id"] = old["run_id"]
        if source is not None and Path(source.path).is_file():
            record["data_sha256"] = sha256_file(Path(source.path))
        self.write_json("split.json", record)
        self.checkpoints_dir.mkdir(exist_ok=True)
        atomic_write_text(self.checkpoints_dir / RUN_ID_FILE, record["run_id"] + "\n")

    def run_id(self) -> str | None:
        """The run id ``split.json`` records (None for runs written before run ids)."""
        record = self.json("split.json")
        value = record.get("run_id") if isinstance(record, dict) else None
        return str(value) if value else None

    # ------------------------------------------------------------------ read
    def config(self) -> Config:
        """The resolved configuration (``config.yaml``; defaults when absent)."""
        f = self.path / "config.yaml"
        return Config.from_yaml(f) if f.is_file() else Config()

    def emulator(self) -> Emulator:
        """The saved :class:`~profemu.emulator.Emulator` (``emulator/``)."""
        from profemu.emulator import Emulator

        emulator = Emulator.load(self.emulator_dir)
        record = self.json("split.json")
        if not isinstance(record, dict):
            return emulator
        meta = emulator.metadata or {}
        mine, its = record.get("run_id"), meta.get("run_id")
        ours_fp, its_fp = record.get("train_fingerprint"), meta.get("training_data_fingerprint")
        if (mine and its and mine != its) or (ours_fp and its_fp and ours_fp != its_fp):
            what = (f"run id {str(its)[:12]}, this run's is {str(mine)[:12]}" if mine and its and mine != its else
                    f"training rows {str(its_fp)[:12]}, this run's split.json records {str(ours_fp)[:12]}")
            raise DataError(
                f"{str(self.emulator_dir)!r} is the Emulator of another run ({what}); the run folder mixes "
                "runs. Copy back the run's own emulator/ or train the run again."
            )
        return emulator

    def json(self, name: str, *, required: bool = False, what: str = "") -> Any | None:
        """``RUN/<name>`` parsed, or None when absent (FormatError when ``required``)."""
        f = self.path / name
        if not f.is_file():
            if required:
                raise FormatError(f"{f}: {what or name} is missing; is this a run folder prepared by profemu?")
            return None
        return read_json_file(f)

    def source(self) -> DataSource | None:
        """The :class:`DataSource` of ``data.json``, or None."""
        data = self.json("data.json")
        if data is None:
            return None
        try:
            return DataSource.from_dict(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"{self.path / 'data.json'}: not a valid data source record ({exc}).") from None

    def dataset(self, fields: Sequence[str] | None = None) -> ProfileDataset:
        """Reload the run's data from ``data.json`` (restricted to ``fields`` when given).

        Raises:
            DataError: there is no ``data.json`` or the file it names is gone.
        """
        source = self.source()
        if source is None:
            raise DataError(
                f"{self.path / 'data.json'}: missing, so the run's data cannot be reloaded; pass --data FILE."
            )
        if not Path(source.path).exists():
            raise DataError(
                f"the run's data file {source.path!r} (from data.json) does not exist any more; pass --data FILE."
            )
        self.check_data_file()
        ds = load_data(source)
        return ds.select_fields(list(fields)) if fields else ds

    def check_data_file(self) -> None:
        """Refuse a data file replaced in place since training (its SHA-256 differs from ``split.json``'s).

        Runs written before the SHA-256 was recorded, and data that are not one file, pass.

        Raises:
            DataError: the file ``data.json`` names has other content now.
        """
        source = self.source()
        record = self.json("split.json")
        stored = record.get("data_sha256") if isinstance(record, dict) else None
        if source is None or not stored or not Path(source.path).is_file():
            return
        now = sha256_file(Path(source.path))
        if now != stored:
            raise DataError(
                f"the run's data file {source.path!r} changed since the run was trained (SHA-256 {now[:12]}, "
                f"split.json records {str(stored)[:12]}); its split and scores would mix data. Restore "
                "the file or pass the data with --data FILE."
            )

    def check_provenance(self) -> None:
        """Refuse a run folder that mixes runs: an Emulator of another run or a replaced data file.

        Raises:
            DataError: see :meth:`emulator` and :meth:`check_data_file` (one line each).
        """
        if (self.emulator_dir / "manifest.json").is_file():
            self.emulator()
        self.check_data_file()

    def check_new_run(self, *, resume: bool, reclaim: bool = False, option: str = "run_dir") -> str:
        """Refuse a folder that cannot take a new training run (or, with ``resume``, continue one).

        A folder whose earlier training stopped before its first checkpoint holds nothing to
        resume: with ``reclaim`` (the caller holds the folder's lock) its training outputs are
        removed so that the run starts over.

        Args:
            resume: The run continues from the folder's checkpoints.
            reclaim: Remove the outputs of a run stopped before its first checkpoint.
            option: How the folder is named in messages (e.g. ``"--out"``).

        Returns:
            A line saying what was reclaimed, or ``""``.

        Raises:
            DataError: a file, a non-empty folder that is not a run folder, ``resume`` without
                checkpoints, or a folder that already holds a training run (without ``resume``).
        """
        run = self.path
        if run.exists() and not run.is_dir():
            raise DataError(f"{option} {str(run)!r} is a file; pass a folder for the run (new, empty or a run folder).")
        user_files = sorted(p.name for p in run.iterdir() if not p.name.startswith(".profemu.lock")) \
            if run.is_dir() else []
        if user_files and not self.is_run_folder():
            shown = ", ".join(user_files[:5]) + (f" and {len(user_files) - 5} more" if len(user_files) > 5 else "")
            raise DataError(f"{option} {str(run)!r} is a folder that is not a profemu run folder and is not empty "
                            f"({shown}); training would write config.yaml, data.json and split.json among them. "
                            "Pass a new or empty folder.")
        if resume:
            if not run.is_dir():
                raise DataError(f"--resume: {str(run)!r} does not exist; drop --resume to start a new run there.")
            if not self.checkpoint_files():
                why = (" (its training stopped before the first checkpoint; train.checkpoint_every sets how "
                       "often they are written)") if self.is_training_run() else ""
                raise DataError(f"--resume: {str(run)!r} has no checkpoints to resume from{why}; drop --resume "
                                "to start the run over.")
            return ""
        if self.stopped_before_first_checkpoint():
            if not reclaim:
                return ""
            epochs = len(self.history())
            removed = self.reclaim()
            return (f"{option} {run}: the earlier training run there stopped after {epochs} epoch(s), before its "
                    f"first checkpoint, so nothing could be resumed; starting over (removed {', '.join(removed)}).")
        if self.is_training_run():
            raise DataError(f"{option} {str(run)!r} already holds a training run; choose another {option} or pass "
                            "--resume to continue it.")
        return ""

    def out_of_fold(self, n_rows: int, fields: Sequence[str]) -> OutOfFold | None:
        """The cross-validation's out-of-fold predictions (``cv_predictions.npz``), or None.

        Args:
            n_rows: Size of the dataset the rows index (checked).
            fields: Fields to return (those absent from the file are skipped).

        Returns:
            :class:`OutOfFold` with the rows, their fold and ``{field: (mean, var)}``
            log10 predictions [n, n_r] (``var`` without the variance scale), or None
            when the run was not cross-validated.

        Raises:
            FormatError: the file is malformed or indexes rows beyond ``n_rows``.
        """
        f = self.path / "cv_predictions.npz"
        if not f.is_file():
            return None
        arrays = read_npz(f, what="cross-validation predictions")
        try:
            rows = np.asarray(arrays["rows"], dtype=np.int64)
            fold = np.asarray(arrays["fold"], dtype=np.int64)
        except KeyError as exc:
            raise FormatError(f"{f}: key {exc} is missing; re-run the training.") from None
        if rows.shape != fold.shape or (rows.size and (rows.min() < 0 or rows.max() >= n_rows)):
            raise FormatError(f"{f}: its rows do not index the run's {n_rows} data rows; re-run the training.")
        predictions = {name: (np.asarray(arrays[f"{name}_mean"]), np.asarray(arrays[f"{name}_var"]))
                       for name in fields if f"{name}_mean" in arrays and f"{name}_var" in arrays}
        return OutOfFold(rows, fold, predictions)

    def split_rows(self, name: str, n_rows: int | None = None) -> np.ndarray:
        """Row indices of split ``name`` (``train``, ``val``, ``test``) from ``split.json``.

        Args:
            name: Split name.
            n_rows: Size of the dataset the rows index, for a bounds check.
        """
        if name not in SPLITS:
            raise DataError(f"split: {name!r} is not allowed; choose one of {[*SPLITS, 'all']}.")
        record = self.json("split.json")
        if record is None:
            raise DataError(f"{self.path / 'split.json'}: missing; cannot tell the run's {name} rows. Use --split all.")
        rows = _split_record_rows(record, name, self.path / "split.json")
        for other in SPLITS:
            if other != name and isinstance(record.get(f"{other}_rows"), list):
                shared = np.intersect1d(rows, _split_record_rows(record, other, self.path / "split.json"))
                if shared.size:
                    raise FormatError(f"{self.path / 'split.json'}: row {int(shared[0])} is in both {name}_rows and "
                                      f"{other}_rows ({shared.size} shared); the file is damaged or was edited.")
        if n_rows is not None and rows.size and rows.max() >= n_rows:
            raise DataError(
                f"split.json: {name} rows go up to {int(rows.max())} but the data have {n_rows} rows; "
                "the data differ from the run's (use --split all for other data)."
            )
        return rows

    def prepared(self) -> tuple[Config, Prepared, DataSource]:
        """Reload a run prepared for cluster training: configuration, split + transforms, source.

        Raises:
            FormatError: Missing or unreadable run files.
            DataError: The data file changed since the run was prepared (fingerprint differs).
        """
        from profemu.data.split import Split
        from profemu.data.transforms import Transforms
        from profemu.train.setup import Prepared

        config = Config.from_yaml(self.path / "config.yaml")
        source = DataSource.from_dict(self.json("data.json", required=True, what="the data source record"))
        record = self.json("run.json", required=True, what="the run record")
        transforms = Transforms.from_dict(self.json("transforms.json", required=True, what="the fitted transforms"))
        dataset = load_data(source)
        if config.data.fields:
            dataset = dataset.select_fields(config.data.fields)
        split = Split(*(self.split_rows(k, dataset.n) for k in SPLITS))
        prep = Prepared(dataset, split, transforms)
        if prep.train.fingerprint() != record.get("training_data_fingerprint"):
            raise DataError(
                f"{source.path}: the training rows differ from those the run {self.path} was prepared with "
                "(fingerprint mismatch); restore the original file or start a new run."
            )
        return config, prep, source

    def history(self) -> list[dict[str, Any]]:
        """Per-epoch training metrics (``metrics.jsonl``; empty when absent)."""
        f = self.path / "metrics.jsonl"
        out: list[dict[str, Any]] = []
        if not f.is_file():
            return out
        for line in f.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue  # a line cut short by an interrupted run
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def evaluation(self) -> dict[str, Any] | None:
        """Held-out metrics (``evaluation.json``), or None."""
        return self.json("evaluation.json")

    def cross_validation(self) -> dict[str, Any] | None:
        """The cross-validation estimates (``cv.json``), or None."""
        return self.json("cv.json")

    def comparison(self) -> dict[str, Any] | None:
        """``compare.json`` as ``{"rows": [...], "per_radius": {...}, ...}``, or None."""
        data = self.json("compare.json")
        if data is None:
            return None
        return {"rows": data} if isinstance(data, list) else data


def config_differences(old: Config, new: Config) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every configuration value that differs."""
    a, b = _flat(json_safe(old.to_dict())), _flat(json_safe(new.to_dict()))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.loads(json.dumps(tree))}  # tuples and lists alike


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def split_record(prep: Prepared) -> dict[str, Any]:
    """Row indices (and group ids) of each split, as written to ``split.json``, and the data fingerprint."""
    ds = prep.dataset
    rec: dict[str, Any] = {"run_id": uuid.uuid4().hex, "data_fingerprint": ds.fingerprint(),
                           "train_fingerprint": prep.train.fingerprint()}
    for name in SPLITS:
        idx = np.asarray(getattr(prep.split, name))
        rec[f"{name}_rows"] = idx.tolist()
        if ds.groups is not None:
            rec[f"{name}_groups"] = np.unique(ds.groups[idx]).tolist()
    return rec


def read_inputs(path: str | Path) -> dict[str, Path]:
    """``{what: path}`` of what a command reading the emulator at ``path`` reads: the emulator
    folder itself, or what makes up a run folder (:meth:`RunFolder.inputs`, the run's data file
    included). Passed to :func:`profemu._files.check_output` and
    :func:`profemu._files.check_result_folder`, so no ``--out`` replaces any of them."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return {"emulator folder": path}
    folder = RunFolder(path)
    return folder.inputs() if path.is_dir() and folder.is_run_folder() else {}


def _split_record_rows(record: Mapping[str, Any], name: str, path: Path) -> np.ndarray:
    """``record[name + "_rows"]``: distinct whole row numbers >= 0 (FormatError otherwise)."""
    raw = record.get(f"{name}_rows")
    if not isinstance(raw, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in raw):
        raise FormatError(f"{path}: {name}_rows must be a list of whole row numbers, got "
                          f"{type(raw).__name__ if not isinstance(raw, list) else 'other values'}; the file is damaged "
                          "or was edited.")
    rows = np.asarray(raw, dtype=np.int64)
    if rows.size and rows.min() < 0:
        raise FormatError(f"{path}: {name}_rows holds the row {int(rows.min())}; rows are >= 0, so the file is "
                          "damaged or was edited.")
    if np.unique(rows).size != rows.size:
        raise FormatError(f"{path}: {name}_rows lists a row more than once; the file is damaged or was edited.")
    return rows
