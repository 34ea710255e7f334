"""Reading and writing :class:`ProfileDataset` files (``.npz`` and HDF5), never with pickle.

The on-disk schema is documented key by key in ``docs/data_schema.md``. Both formats hold
the same keys; the file type is detected from its first bytes (not its suffix), and
anything unreadable raises :class:`~profemu.errors.FormatError` with a message saying what
the file is and what to do. Content problems (NaN parameters, bad radii, ...) are caught by
the :class:`ProfileDataset` validation and raise :class:`~profemu.errors.DataError`.

Loading never executes code: npz archives are opened with ``allow_pickle=False`` (object
arrays are refused) and HDF5 files are read as plain numeric and byte-string datasets.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError, FormatError

__all__ = ["SCHEMA_VERSION", "detect_format", "load_any", "load_dataset", "save_dataset"]

#: Version of the on-disk schema written by :func:`save_dataset`.
SCHEMA_VERSION = 1
_FORMAT = "profemu.ProfileDataset"
_NPZ_SUFFIXES = (".npz",)
_H5_SUFFIXES = (".h5", ".hdf5")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_STRING_KEYS = (
    "format",
    "param_names",
    "log_params",
    "radius_unit",
    "fields",
    "units",
    "noise_fields",
    "meta",
)
_REQUIRED = (
    "schema_version",
    "format",
    "params",
    "param_names",
    "log_params",
    "log10_mass",
    "radius",
    "radius_unit",
    "fields",
    "units",
    "profiles",
    "mask",
    "meta",
)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is installed in the dev environment
        raise FormatError(
            "HDF5 files need the optional dependency h5py: pip install 'profemu[hdf5]' "
            "(or save to .npz instead)."
        ) from None
    return h5py


def _to_arrays(ds: ProfileDataset) -> dict[str, np.ndarray]:
    """The dataset as named plain arrays (strings as fixed-width unicode)."""
    try:
        meta = json.dumps(dict(ds.meta), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"meta: not JSON-serialisable ({exc}); keep only strings, numbers, lists and dicts in meta."
        ) from None
    fields = list(ds.fields)

    def strings(values: list[str]) -> np.ndarray:
        return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")

    arrays: dict[str, np.ndarray] = {
        "schema_version": np.array(SCHEMA_VERSION, dtype=np.int64),
        "format": np.array(_FORMAT),
        "params": ds.params,
        "param_names": strings(list(ds.param_names)),
        "log_params": strings(list(ds.log_params)),
        "log10_mass": ds.log10_mass,
        "radius": ds.radius,
        "radius_unit": np.array(ds.radius_unit),
        "fields": strings(fields),
        "units": strings([ds.units[f] for f in fields]),
        "profiles": np.stack([ds.profiles[f] for f in fields]),
        "mask": np.stack([ds.mask[f] for f in fields]),
        "meta": np.array(meta),
    }
    if ds.noise is not None:
        noise_fields = [f for f in fields if f in ds.noise]
        arrays["noise_fields"] = strings(noise_fields)
        arrays["noise"] = (
            np.stack([ds.noise[f] for f in noise_fields])
            if noise_fields
            else np.zeros((0, ds.n, ds.n_r))
        )
    if ds.pk_ratio is not None:
        arrays["pk_ratio"] = ds.pk_ratio
        assert ds.k is not None
        arrays["k"] = ds.k
    if ds.redshift is not None:
        arrays["redshift"] = ds.redshift
    if ds.groups is not None:
        arrays["groups"] = ds.groups
    return arrays


def _kind(path: Path) -> Literal["npz", "h5"]:
    suffix = path.suffix.lower()
    if suffix in _NPZ_SUFFIXES:
        return "npz"
    if suffix in _H5_SUFFIXES:
        return "h5"
    raise DataError(f"path: unknown file suffix {path.suffix!r} in {path}; use .npz or .h5/.hdf5.")


def save_dataset(ds: ProfileDataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` (``.npz`` or ``.h5``/``.hdf5``, chosen by suffix).

    The file is written to a temporary name in the same folder and renamed, so an
    interrupted write never leaves a half-written file under ``path``.

    Args:
        ds: The dataset.
        path: Destination; the suffix selects the format.

    Returns:
        The path written.

    Raises:
        DataError: unknown suffix or non-JSON-serialisable ``meta``.
        FormatError: HDF5 requested without h5py installed.
    """
    path = Path(path)
    kind = _kind(path)
    arrays = _to_arrays(ds)
    h5py = _h5py() if kind == "h5" else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if kind == "npz":
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
        else:
            os.close(fd)
            with h5py.File(tmp, "w") as h5:
                for key, arr in arrays.items():
                    h5.create_dataset(key, data=_h5_encode(arr))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _h5_encode(arr: np.ndarray) -> np.ndarray:
    """Unicode arrays -> UTF-8 fixed-width bytes (HDF5 has no fixed-width unicode type)."""
    if arr.dtype.kind != "U":
        return arr
    encoded = [s.encode("utf-8") for s in arr.reshape(-1).tolist()]
    width = max([1, *(len(b) for b in encoded)])
    return np.array(encoded, dtype=f"S{width}").reshape(arr.shape)


def _strings(arr: np.ndarray, key: str, path: Path) -> list[str]:
    if arr.dtype.kind == "U":
        return [str(s) for s in arr.reshape(-1).tolist()]
    if arr.dtype.kind == "S":
        try:
            return [bytes(b).decode("utf-8") for b in arr.reshape(-1).tolist()]
        except UnicodeDecodeError:
            raise FormatError(f"{path}: key {key!r} is not valid UTF-8 text.") from None
    raise FormatError(f"{path}: key {key!r} should hold text but has dtype {arr.dtype}.")


def _sniff(path: Path) -> Literal["npz", "h5"]:
    """Detect the file type from its first bytes, or raise FormatError saying what it is."""
    if not path.exists():
        raise FormatError(f"{path}: file not found; check the path.")
    if not path.is_file():
        raise FormatError(f"{path}: not a regular file (a directory?); pass a .npz or .h5 file.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise FormatError(f"{path}: the file is empty (0 bytes); it was not written completely.")
    if head[:4] in _ZIP_MAGIC:
        return "npz"
    if head == _H5_MAGIC:
        return "h5"
    if head.startswith(b"\x93NUMPY"):
        what = "a single .npy array, not a dataset archive"
    elif head[:1] == b"\x80":
        what = "a pickle payload, which profemu never loads (it could run code)"
    elif all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        what = "a text file"
    else:
        what = "neither an npz archive nor an HDF5 file"
    raise FormatError(
        f"{path}: {what}; expected a dataset written by profemu (ProfileDataset.save) "
        "or, for the CAMELS table, use load_any(path, format='camels-lh')."
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - sniffed as zip
                raise FormatError(f"{path}: not an npz archive.")
            out: dict[str, np.ndarray] = {}
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                        raise FormatError(
                            f"{path}: key {key!r} holds pickled Python objects, which profemu "
                            "never loads (it could run code); re-save the data as numeric arrays."
                        ) from None
                    raise
            return out
    except FormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, KeyError) as exc:
        raise FormatError(
            f"{path}: truncated or corrupt npz archive ({type(exc).__name__}: {exc}); "
            "re-create the file."
        ) from None


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as h5:
            out: dict[str, np.ndarray] = {}
            for key, node in h5.items():
                if not isinstance(node, h5py.Dataset):
                    raise FormatError(
                        f"{path}: {key!r} is an HDF5 group; the schema has only datasets."
                    )
                if node.dtype.kind not in "biufSU":
                    raise FormatError(
                        f"{path}: key {key!r} has HDF5 type {node.dtype}, not a plain numeric or "
                        "fixed-width string array."
                    )
                out[key] = np.asarray(node[()])
            return out
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(
            f"{path}: truncated or corrupt HDF5 file ({type(exc).__name__}: {exc}); re-create the file."
        ) from None


def _from_arrays(arrays: dict[str, np.ndarray], path: Path) -> ProfileDataset:
    if "schema_version" not in arrays:
        hint = (
            " It looks like the CAMELS LH table: use load_any(path) or load_camels_lh(path)."
            if {"rho_mean", "sim_id"} <= set(arrays)
            else ""
        )
        raise FormatError(f"{path}: no 'schema_version' key, so not a profemu dataset file.{hint}")
    version_arr = arrays["schema_version"]
    if version_arr.dtype.kind not in "iu" or version_arr.size != 1:
        raise FormatError(f"{path}: 'schema_version' must be one integer, got {version_arr!r}.")
    version = int(version_arr.reshape(-1)[0])
    if version > SCHEMA_VERSION:
        raise FormatError(
            f"{path}: written with data schema version {version}, newer than this profemu supports "
            f"({SCHEMA_VERSION}); upgrade profemu to read it."
        )
    if version < 1:
        raise FormatError(f"{path}: invalid schema_version {version} (must be >= 1).")
    for key in _REQUIRED:
        if key not in arrays:
            raise FormatError(f"{path}: required key {key!r} is missing; the file is incomplete.")
    text = {k: _strings(arrays[k], k, path) for k in _STRING_KEYS if k in arrays}
    for key, value in arrays.items():
        if key not in text and value.dtype.kind not in "biuf":
            raise FormatError(f"{path}: key {key!r} has dtype {value.dtype}, expected numbers.")
    if text["format"] != [_FORMAT]:
        raise FormatError(f"{path}: 'format' is {text['format']}, expected {_FORMAT!r}.")

    def scalar(key: str) -> str:
        if len(text[key]) != 1:
            raise FormatError(f"{path}: {key!r} must be a single string.")
        return text[key][0]

    fields = text["fields"]
    profiles, mask = arrays["profiles"], arrays["mask"]
    if profiles.ndim != 3 or profiles.shape[0] != len(fields):
        raise FormatError(
            f"{path}: 'profiles' has shape {profiles.shape}, expected ({len(fields)}, n, n_r) "
            f"for fields {fields}."
        )
    if mask.shape != profiles.shape or mask.dtype != bool:
        raise FormatError(
            f"{path}: 'mask' must be bool with the shape of 'profiles' {profiles.shape}."
        )
    if len(text["units"]) != len(fields):
        raise FormatError(
            f"{path}: 'units' has {len(text['units'])} entries for {len(fields)} fields."
        )
    noise = None
    if "noise" in arrays or "noise_fields" in arrays:
        if not ("noise" in arrays and "noise_fields" in arrays):
            raise FormatError(
                f"{path}: 'noise' and 'noise_fields' must both be present or both absent."
            )
        noise_arr, noise_fields = arrays["noise"], text["noise_fields"]
        if noise_arr.ndim != 3 or noise_arr.shape[0] != len(noise_fields):
            raise FormatError(
                f"{path}: 'noise' has shape {noise_arr.shape}, expected ({len(noise_fields)}, n, n_r)."
            )
        noise = {f: noise_arr[i] for i, f in enumerate(noise_fields)}
    try:
        meta = json.loads(scalar("meta"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: 'meta' is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: 'meta' must be a JSON object.")
    return ProfileDataset(
        params=arrays["params"],
        param_names=tuple(text["param_names"]),
        log10_mass=arrays["log10_mass"],
        radius=arrays["radius"],
        profiles={f: profiles[i] for i, f in enumerate(fields)},
        units=dict(zip(fields, text["units"], strict=True)),
        radius_unit=scalar("radius_unit"),
        log_params=tuple(text["log_params"]),
        mask={f: mask[i] for i, f in enumerate(fields)},
        pk_ratio=arrays.get("pk_ratio"),
        k=arrays.get("k"),
        redshift=arrays.get("redshift"),
        groups=arrays.get("groups"),
        noise=noise,
        meta=meta,
    )


def _read_any(path: Path) -> dict[str, np.ndarray]:
    readers: dict[str, Callable[[Path], dict[str, np.ndarray]]] = {"npz": _read_npz, "h5": _read_h5}
    return readers[_sniff(path)](path)


def load_dataset(path: str | Path) -> ProfileDataset:
    """Read a dataset written by :func:`save_dataset` (npz or HDF5, detected from the bytes).

    Args:
        path: The file.

    Returns:
        The validated dataset; arrays are bit-identical to those saved.

    Raises:
        FormatError: missing, empty, truncated or foreign file, missing key, newer schema.
        DataError: readable file whose content fails the dataset validation.
    """
    path = Path(path)
    return _from_arrays(_read_any(path), path)


def load_any(
    path: str | Path,
    format: Literal["auto", "profemu", "camels-lh"] = "auto",
    **camels_kwargs: Any,
) -> ProfileDataset:
    """Load a profemu dataset file or the CAMELS LH table.

    Args:
        path: The file.
        format: ``"profemu"`` (:func:`load_dataset`), ``"camels-lh"``
            (:func:`~profemu.data.camels.load_camels_lh`) or ``"auto"``: an npz archive with
            the keys ``rho_mean`` and ``sim_id`` is the CAMELS table, anything else a
            profemu dataset.
        **camels_kwargs: Keyword arguments of ``load_camels_lh`` (CAMELS table only).

    Returns:
        The dataset.

    Raises:
        DataError: unknown ``format``, or CAMELS options given for a profemu file.
        FormatError: the file cannot be read.
    """
    from profemu.data.camels import load_camels_lh

    path = Path(path)
    choices = ("auto", "profemu", "camels-lh")
    if format not in choices:
        raise DataError(f"format: unknown value {format!r}; choose one of {list(choices)}.")
    if format == "auto":
        format = detect_format(path)
    if format == "camels-lh":
        return load_camels_lh(path, **camels_kwargs)
    if camels_kwargs:
        raise DataError(
            f"{path}: options {sorted(camels_kwargs)} only apply to the CAMELS LH table, but this "
            "is a profemu dataset file; drop them."
        )
    return load_dataset(path)


def detect_format(path: str | Path) -> Literal["profemu", "camels-lh"]:
    """``"camels-lh"`` for an npz archive with the CAMELS table's keys (``rho_mean``,
    ``sim_id``), else ``"profemu"`` (the loader then reports what is wrong with the file)."""
    path = Path(path)
    return "camels-lh" if _sniff(path) == "npz" and _is_camels_table(path) else "profemu"


def _is_camels_table(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise FormatError(f"{path}: truncated or corrupt npz archive ({exc}).") from None
    return {"rho_mean", "sim_id"} <= names
