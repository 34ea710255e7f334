"""Loading and saving datasets: every format profemu reads, behind one :func:`load_dataset`.

* profemu dataset files (``.npz`` or HDF5, schema in ``docs/data_schema.md`` and
  :mod:`profemu.data.schema`), written by :func:`save_dataset`;
* the CAMELS LH stacked-profile table (:func:`profemu.data.camels.load_camels_lh`).

``profemu train --data FILE [--format ...]`` and :func:`profemu.load_dataset` both come
here, so Python and the command line read the same files the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from profemu._files import DEFAULT_MAX_READ_BYTES
from profemu.data.camels import load_camels_lh
from profemu.data.dataset import ProfileDataset
from profemu.data.schema import SCHEMA_VERSION, file_kind, is_camels_table
from profemu.errors import DataError

__all__ = ["FORMATS", "SCHEMA_VERSION", "detect_format", "load_dataset", "save_dataset"]

#: The formats :func:`load_dataset` reads (``"auto"`` detects one of them).
FORMATS = ("auto", "profemu", "camels-lh")
DatasetFormat = Literal["auto", "profemu", "camels-lh"]


def save_dataset(ds: ProfileDataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` (``.npz`` or ``.h5``/``.hdf5``, by suffix), atomically.

    Same as :meth:`ProfileDataset.save`; see :func:`profemu.data.schema.write_dataset_file`.
    """
    return ds.save(path)


def load_dataset(
    path: str | Path,
    format: DatasetFormat = "auto",
    *,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
    **camels_kwargs: Any,
) -> ProfileDataset:
    """Load a profemu dataset file or the CAMELS LH table.

    Args:
        path: The file.
        format: ``"profemu"`` (npz/HDF5 written by :func:`save_dataset`), ``"camels-lh"``
            (:func:`~profemu.data.camels.load_camels_lh`) or ``"auto"``: an npz archive with
            the keys ``rho_mean`` and ``sim_id`` is the CAMELS table, anything else a
            profemu dataset.
        max_bytes: Largest total size [bytes] of the arrays read; checked before anything
            is read (default 4 GiB).
        **camels_kwargs: Keyword arguments of ``load_camels_lh`` (CAMELS table only:
            ``fields``, ``mass_bins``, ...).

    Returns:
        The validated dataset.

    Raises:
        DataError: unknown ``format``, CAMELS options given for a profemu file, or content
            that fails the dataset validation.
        FormatError: the file cannot be read (missing, truncated, foreign, newer schema, ...).
    """
    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"format: unknown value {format!r}; choose one of {list(FORMATS)}.")
    if format == "auto":
        format = detect_format(path)
    if format == "camels-lh":
        return load_camels_lh(path, max_bytes=max_bytes, **camels_kwargs)
    if camels_kwargs:
        raise DataError(
            f"{path}: options {sorted(camels_kwargs)} only apply to the CAMELS LH table, but this "
            "is a profemu dataset file; drop them."
        )
    return ProfileDataset.load(path, max_bytes=max_bytes)


def detect_format(path: str | Path) -> Literal["profemu", "camels-lh"]:
    """``"camels-lh"`` for an npz archive with the CAMELS table's keys (``rho_mean``,
    ``sim_id``), else ``"profemu"`` (the loader then reports what is wrong with the file)."""
    path = Path(path)
    return "camels-lh" if file_kind(path) == "npz" and is_camels_table(path) else "profemu"
