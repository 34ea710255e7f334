"""The run folder: written atomically and read back by everyone, here and only here.

Layout::

    RUN/
      config.yaml       resolved configuration
      data.json         where the data came from (path, format, loader options)
      split.json        row indices (and group ids) of train / val / test
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

:func:`profemu.workflow.train_emulator`, :mod:`profemu.cluster`, the report and the
command line all go through :class:`RunFolder`; every file is written with
:func:`profemu._files.atomic_write`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from profemu._files import atomic_write_text, json_safe, read_json_file
from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError, FormatError

if TYPE_CHECKING:
    from profemu.emulator import Emulator
    from profemu.train.setup import Prepared

__all__ = ["SPLITS", "DataSource", "RunFolder", "load_data"]

SPLITS = ("train", "val", "test")
_MARKERS = ("config.yaml", "split.json", "emulator", "metrics.jsonl")


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
    from profemu.data.io import load_any

    return load_any(source.path, format=source.format, **dict(source.options))


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
        if not p.is_dir():
            raise DataError(f"run folder {str(p)!r} does not exist; pass the --out folder of `profemu train`.")
        if not any((p / m).exists() for m in _MARKERS):
            raise DataError(
                f"{str(p)!r} is not a run folder (no config.yaml, split.json or emulator/); "
                "pass the --out folder of `profemu train`."
            )
        if require_emulator and not (p / "emulator" / "manifest.json").is_file():
            raise DataError(
                f"{str(p)!r} has no saved emulator (emulator/manifest.json); the training run did "
                "not finish — train again or resume it."
            )
        return cls(p)

    # ------------------------------------------------------------------ paths
    @property
    def emulator_dir(self) -> Path:
        return self.path / "emulator"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def is_training_run(self) -> bool:
        """Whether the folder already holds (part of) a training run."""
        return (self.path / "emulator").exists() or (self.path / "metrics.jsonl").exists()

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
        """``config.yaml``, ``data.json`` (when the data came from a file) and ``split.json``."""
        config.to_yaml(self.path / "config.yaml")
        if source is not None:
            self.write_json("data.json", source.to_dict())
        self.write_json("split.json", split_record(prepared))

    # ------------------------------------------------------------------ read
    def config(self) -> Config:
        """The resolved configuration (``config.yaml``; defaults when absent)."""
        f = self.path / "config.yaml"
        return Config.from_yaml(f) if f.is_file() else Config()

    def emulator(self) -> Emulator:
        """The saved :class:`~profemu.emulator.Emulator` (``emulator/``)."""
        from profemu.emulator import Emulator

        return Emulator.load(self.emulator_dir)

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
        ds = load_data(source)
        return ds.select_fields(list(fields)) if fields else ds

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
        try:
            rows = np.asarray(record[f"{name}_rows"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{self.path / 'split.json'}: not a valid split record ({exc}).") from None
        if n_rows is not None and rows.size and (rows.min() < 0 or rows.max() >= n_rows):
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


def split_record(prep: Prepared) -> dict[str, Any]:
    """Row indices (and group ids) of each split, as written to ``split.json``."""
    ds = prep.dataset
    rec: dict[str, Any] = {}
    for name in SPLITS:
        idx = np.asarray(getattr(prep.split, name))
        rec[f"{name}_rows"] = idx.tolist()
        if ds.groups is not None:
            rec[f"{name}_groups"] = np.unique(ds.groups[idx]).tolist()
    return rec
