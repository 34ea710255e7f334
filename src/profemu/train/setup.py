"""One way from a dataset and a configuration to everything training needs.

* :func:`prepare` selects the fields, splits by group (simulation, stratified in
  mass) and fits the :class:`~profemu.data.transforms.Transforms` on the training
  rows: a :class:`Prepared`.
* :func:`training_problem` turns a :class:`Prepared` and a :class:`~profemu.config.Config`
  into a :class:`TrainingProblem`: the :class:`~profemu.models.network.Network`, the
  normalised training and validation arrays and the model arrays. Every trainer of
  the package (the run workflow, cluster members, sweep trials, the diagnostics)
  builds its problem here and hands it to :func:`profemu.train.loop.fit`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.config import Config, DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.split import Split, split_by_group
from profemu.data.transforms import ArrayData, Transforms
from profemu.errors import ConfigError, DataError
from profemu.models.network import Network
from profemu.train.relevance import ard_weights, uses_relevance

__all__ = ["Prepared", "TrainingProblem", "fit_transforms", "prepare", "training_problem", "transforms_config"]


@dataclass(frozen=True)
class Prepared:
    """A dataset split by group with transforms fitted on its training part.

    Attributes:
        dataset: The dataset (fields already selected).
        split: Row indices of train / val / test.
        transforms: Fitted on the training rows only.
    """

    dataset: ProfileDataset
    split: Split
    transforms: Transforms

    @property
    def train(self) -> ProfileDataset:
        """Training rows."""
        return self.dataset.subset(self.split.train)

    @property
    def val(self) -> ProfileDataset:
        """Validation rows (early stopping, variance calibration)."""
        return self.dataset.subset(self.split.val)

    @property
    def test(self) -> ProfileDataset:
        """Held-out test rows."""
        return self.dataset.subset(self.split.test)


def transforms_config(config: Config, *, note: bool = False) -> DataConfig:
    """``config.data`` as the transforms use it: with ``model.monotone_head`` the hybrid radial
    coordinate becomes physical radii (a non-increasing curve on the radii and one on r / R_Δ,
    mixed where they meet, need not stay non-increasing). ``note``: say so in the log."""
    data = config.data
    if config.model.monotone_head and data.radial_coordinate == "hybrid":
        if note:
            logging.getLogger("profemu.data.transforms").info(
                "radial coordinate: physical radii, not hybrid (model.monotone_head builds one non-increasing "
                "curve per profile; set data.radial_coordinate: scaled to draw it on r/R_Delta)")
        data = dataclasses.replace(data, radial_coordinate="physical")
    return data


def fit_transforms(train: ProfileDataset, data_config: DataConfig, *,
                   input_weights: np.ndarray | None = None,
                   radial_coordinate_of: Transforms | None = None) -> Transforms:
    """:meth:`Transforms.fit` on the training rows, with the input relevance ``data.input_relevance`` asks for.

    Args:
        train: The training rows.
        data_config: ``data.*`` (fields, normalisation, ``input_relevance``, ``relevance_rows``).
        input_weights: Relevance weights [p] already fitted for this run (e.g. by
            :func:`prepare` on the run's training rows, reused by every cross-validation
            fold and the refit); None fits them here when ``data.input_relevance`` asks for
            them: an ARD GP on (up to ``data.relevance_rows`` of) ``train``
            (:func:`profemu.train.relevance.ard_weights`, cached per distinct set of rows).
        radial_coordinate_of: The transforms of a run whose rows include ``train``: their
            radial coordinate (grid in r / R_Δ) is reused (:meth:`Transforms.fit`).
    """
    weights = None if input_weights is None else np.asarray(input_weights, dtype=float)
    if weights is None and uses_relevance(data_config.input_relevance, train):
        fields = tuple(data_config.fields) if data_config.fields else train.fields
        weights, _ = ard_weights(train, fields, seed=data_config.split_seed, max_rows=data_config.relevance_rows)
    return Transforms.fit(train, data_config, input_weights=weights, radial_coordinate_of=radial_coordinate_of)


def _check_declared_slopes(config: Config, fields: Sequence[str]) -> None:
    """The fields named by ``loss.physics.mass_scaling_slopes`` and ``boundary_slopes`` are fields
    of the data (a misspelt one would silently get no penalty)."""
    physics = config.loss.physics
    for key in ("mass_scaling_slopes", "boundary_slopes"):
        unknown = [f for f in getattr(physics, key) if f not in fields]
        if unknown:
            raise ConfigError(f"loss.physics.{key}: {unknown} are not fields of the data; name fields of "
                              f"{list(fields)}.")


def prepare(dataset: ProfileDataset, config: Config, *, split: Split | None = None) -> Prepared:
    """Select fields, split by group (stratified in mass) and fit transforms on the training rows.

    Args:
        dataset: The full dataset.
        config: Configuration (``data.*``).
        split: A given split (e.g. a cross-validation fold); default: ``split_by_group``
            with ``data.val_fraction``, ``data.test_fraction`` and ``data.split_seed``.
    """
    if not dataset.param_names:
        raise DataError("params: the data have no parameter column (param_names is empty); an emulator maps "
                        "simulation parameters to profiles: add at least one parameter column.")
    _check_declared_slopes(config, dataset.fields)
    if config.data.fields:
        dataset = dataset.select_fields(config.data.fields)
    if split is None:
        split = split_by_group(
            dataset,
            val_fraction=config.data.val_fraction,
            test_fraction=config.data.test_fraction,
            seed=config.data.split_seed,
        )
    if len(split.train) == 0:
        raise DataError("split: no training rows; lower data.val_fraction / data.test_fraction.")
    transforms = fit_transforms(dataset.subset(split.train), transforms_config(config, note=True))
    return Prepared(dataset, split, transforms)


@dataclass(frozen=True)
class TrainingProblem:
    """Everything :func:`~profemu.train.loop.fit` needs.

    Attributes:
        network: The network (static: config + layout).
        config: The run configuration.
        arrays: :meth:`~profemu.data.transforms.Transforms.model_arrays`.
        train: Normalised training arrays.
        val: Normalised validation arrays (early stopping); ``None`` monitors the
            training data loss.
    """

    network: Network
    config: Config
    arrays: dict[str, np.ndarray]
    train: ArrayData
    val: ArrayData | None

    def with_config(self, config: Config) -> TrainingProblem:
        """The same data under another configuration of the loss, optimiser or loop.

        The network is rebuilt from ``config.model``; the data must not depend on the
        changed settings (use :func:`training_problem` when ``data.*`` changes).
        """
        return TrainingProblem(Network(config.model, self.network.layout), config, self.arrays,
                               self.train, self.val)


def training_problem(prepared: Prepared, config: Config, *, validate_on_train: bool = True) -> TrainingProblem:
    """The network and arrays of a prepared split under ``config``.

    Args:
        prepared: Split and fitted transforms.
        config: The run configuration.
        validate_on_train: With an empty validation split, monitor the training rows
            (True, the run default) or nothing (False: early stopping on the training loss).
    """
    config = config.validate()
    t = prepared.transforms
    network = Network(config.model, t.layout)
    train = t.transform(prepared.train)
    if len(prepared.split.val):
        val: ArrayData | None = t.transform(prepared.val)
    else:
        val = train if validate_on_train else None
    return TrainingProblem(network, config, t.model_arrays(), train, val)


def as_pytree(data: ArrayData) -> dict[str, Any]:
    """ArrayData as a plain pytree (no copies) for compiled code."""
    return {"inputs": dict(data.inputs), "target": data.target, "mask": data.mask, "noise_var": data.noise_var}
