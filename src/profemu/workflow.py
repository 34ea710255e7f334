"""End-to-end training runs: data -> split -> transforms -> model -> fit -> Emulator -> evaluation.

:func:`train_emulator` is what ``profemu train`` and ``profemu demo`` call. With a
``run_dir`` it writes the run folder::

    RUN/
      config.yaml       resolved configuration
      data.json         where the data came from (path, format, loader options)
      split.json        group ids and row indices of train / val / test
      emulator/         the saved Emulator (manifest.json + weights-<sha>.npz)
      checkpoints/      training checkpoints (atomic, checksummed)
      metrics.jsonl     one line of training metrics per epoch (+ TensorBoard events)
      curves.png        training curves, refreshed during training
      evaluation.json   held-out metrics (``fields.<name>`` and ``overall``)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.emulator import Emulator
from profemu.errors import DataError

__all__ = ["DataSource", "TrainOutcome", "build_emulator", "load_data", "prepare", "train_emulator"]


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


@dataclass
class Prepared:
    """A dataset split by group with transforms fitted on its training part."""

    dataset: ProfileDataset
    split: Any
    transforms: Any

    @property
    def train(self) -> ProfileDataset:
        return self.dataset.subset(self.split.train)

    @property
    def val(self) -> ProfileDataset:
        return self.dataset.subset(self.split.val)

    @property
    def test(self) -> ProfileDataset:
        return self.dataset.subset(self.split.test)


def prepare(dataset: ProfileDataset, config: Config) -> Prepared:
    """Select fields, split by group (stratified in mass) and fit transforms on the training rows."""
    from profemu.data.split import split_by_group
    from profemu.data.transforms import Transforms

    if config.data.fields:
        dataset = dataset.select_fields(config.data.fields)
    for f in config.model.monotone_fields:
        if f not in dataset.fields:
            raise DataError(
                f"model.monotone_fields: {f!r} is not a field of the data; fields are {list(dataset.fields)}."
            )
    split = split_by_group(
        dataset,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        seed=config.data.split_seed,
    )
    transforms = Transforms.fit(dataset.subset(split.train), config.data)
    return Prepared(dataset, split, transforms)


@dataclass
class TrainOutcome:
    """What a training run produced."""

    emulator: Emulator
    prepared: Prepared
    history: list[dict[str, Any]]
    counters: dict[str, Any]
    evaluation: dict[str, Any] | None
    fit_seconds: float
    run_dir: Path | None = None
    stopped_reason: str = ""


def build_emulator(
    prep: Prepared, config: Config, variables: Any, **metadata: Any
) -> Emulator:
    """The Emulator of trained ``variables`` (stacked members), calibrated on the validation split.

    Records the training-data fingerprint, config, units and data provenance (plus any
    ``metadata`` given) and, with ``config.train.calibrate``, fits the post-hoc variance
    scale on the validation rows. Used by :func:`train_emulator` and by the cluster merge.
    """
    from profemu.evaluate import fit_variance_scale, predict_dataset
    from profemu.models.spec import OutputSpec

    t = prep.transforms
    spec = OutputSpec.from_transforms(t, monotone_fields=tuple(config.model.monotone_fields))
    record = {
        "training_data_fingerprint": prep.train.fingerprint(),
        "n_train": len(prep.split.train),
        "config": config.to_dict(),
        **_jsonable(metadata),
        "radius_unit": prep.dataset.radius_unit,
        "units": dict(prep.dataset.units),
        "data_meta": _jsonable(dict(prep.dataset.meta)),
    }
    emulator = Emulator(t, config.model, spec, variables, metadata=record)
    if config.train.calibrate and len(prep.split.val):
        val = prep.val
        emulator.variance_scale = fit_variance_scale(predict_dataset(emulator, val), val)
        emulator.metadata["variance_scale_fitted_on"] = "validation split"
    return emulator


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
) -> TrainOutcome:
    """Train an ensemble emulator on ``dataset`` and (optionally) write a run folder.

    Args:
        dataset: The full dataset; it is split by group into train/val/test here.
        config: Configuration (defaults to ``Config()``).
        run_dir: Folder for the run's files (created); ``None`` keeps everything in memory.
        source: Where the data came from, recorded in ``data.json`` so that
            ``profemu evaluate/report/compare`` can reload it.
        progress: Called with each epoch's metrics dict.
        prepared: A ready split + transforms (skips :func:`prepare`).
        evaluate_test: Evaluate on the test split at the end.
        resume: Continue from the latest checkpoint in ``run_dir/checkpoints``.

    Returns:
        A :class:`TrainOutcome` with the Emulator, history and held-out metrics.
    """
    from profemu.evaluate import evaluate
    from profemu.losses.physics import PhysicsContext
    from profemu.models.build import build_model
    from profemu.models.spec import OutputSpec
    from profemu.train.logging import MetricsLogger, plot_curves
    from profemu.train.loop import fit

    config = (config or Config()).validate()
    prep = prepared or prepare(dataset, config)
    run = Path(run_dir) if run_dir is not None else None
    logger = None
    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run / "config.yaml")
        if source is not None:
            (run / "data.json").write_text(json.dumps(source.to_dict(), indent=1))
        (run / "split.json").write_text(json.dumps(_split_record(prep), indent=1))
        logger = MetricsLogger(run)

    t = prep.transforms
    spec = OutputSpec.from_transforms(t, monotone_fields=tuple(config.model.monotone_fields))
    model = build_model(config.model, spec)
    train_arr = t.transform(prep.train)
    val_arr = t.transform(prep.val if len(prep.split.val) else prep.train)

    callbacks: list[Callable[[dict[str, Any]], None]] = []
    if logger is not None:
        callbacks.append(logger.log)
        every = max(1, config.train.log_every)

        def _curves(entry: dict[str, Any]) -> None:
            if entry.get("epoch", 0) % every == 0:
                plot_curves(logger.history, run / "curves.png")

        callbacks.append(_curves)
    if progress is not None:
        callbacks.append(progress)

    t0 = time.perf_counter()
    result = fit(
        model,
        train_arr,
        val_arr,
        config,
        physics_ctx=PhysicsContext.from_transforms(t),
        decode=(t.decode_mean, t.decode_var),
        checkpoint_dir=None if run is None else run / "checkpoints",
        resume=resume,
        callbacks=callbacks,
    )
    fit_seconds = time.perf_counter() - t0

    emulator = build_emulator(
        prep, config, result.variables,
        fit_seconds=fit_seconds, best_epoch=result.best_epoch, counters=result.counters,
    )

    evaluation = None
    if evaluate_test and len(prep.split.test):
        evaluation = evaluate(emulator, prep.test)

    if run is not None:
        emulator.save(run / "emulator")
        if evaluation is not None:
            (run / "evaluation.json").write_text(json.dumps(evaluation, indent=1))
        if logger is not None:
            plot_curves(logger.history, run / "curves.png")
            logger.close()

    return TrainOutcome(
        emulator=emulator,
        prepared=prep,
        history=list(result.history),
        counters=dict(result.counters),
        evaluation=evaluation,
        fit_seconds=fit_seconds,
        run_dir=run,
        stopped_reason=getattr(result, "stopped_reason", ""),
    )


def _split_record(prep: Prepared) -> dict[str, Any]:
    ds = prep.dataset
    rec: dict[str, Any] = {}
    for name in ("train", "val", "test"):
        idx = np.asarray(getattr(prep.split, name))
        rec[f"{name}_rows"] = idx.tolist()
        if ds.groups is not None:
            rec[f"{name}_groups"] = np.unique(ds.groups[idx]).tolist()
    return rec


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "tolist"):
        return np.asarray(obj).tolist()
    return obj
