"""The on-disk schema of :class:`ProfileDataset` files (``.npz`` and HDF5), never with pickle.

The on-disk schema is documented key by key in ``docs/data_schema.md``. Both formats hold
the same keys; the file type is detected from its first bytes (not its suffix), and
anything unreadable raises :class:`~profemu.errors.FormatError` with a message saying what
the file is and what to do. Content problems (NaN parameters, bad radii, ...) are caught by
the :class:`ProfileDataset` validation and raise :class:`~profemu.errors.DataError`.

Loading never executes code and has bounded memory: npz archives are read with
:func:`profemu._files.read_npz` (no pickle, only the keys of the schema are decompressed)
and HDF5 files as plain numeric and byte-string datasets at the root of the file. Before
any data is read, the shapes and dtypes each array declares are checked against each
other (``profiles`` must be [F, n, n_r] for the ``n`` rows of ``params``, ...) and their
total against ``max_bytes``. Real-valued arrays are converted to float64 while they are
read (a float32 file is never held in both forms) and handed to the dataset without
copies, so loading peaks near the float64 size of the data. Writing goes through
:func:`profemu._files.atomic_write`.
Operating-system failures (full disk, permissions) raise
:class:`~profemu.errors.DataError` naming the path and the reason.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from profemu._files import (
    DEFAULT_MAX_READ_BYTES,
    ArrayHeader,
    Layout,
    atomic_write,
    check_budget,
    check_layout,
    file_error,
    load_json_text,
    npz_names,
    read_npz,
    remove_stale_temporaries,
)
from profemu.data.validation import _names
from profemu.errors import DataError, FormatError

__all__ = ["SCHEMA_VERSION", "dataset_arguments", "file_kind", "is_camels_table", "write_dataset_file"]

#: Version of the on-disk schema written by :func:`save_dataset`.
SCHEMA_VERSION = 1
_FORMAT = "profemu.ProfileDataset"
_NPZ_SUFFIXES = (".npz",)
_H5_SUFFIXES = (".h5", ".hdf5")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HEAD_KEYS = ("schema_version",)
_MAX_HEAD_BYTES = 1 << 20
_MAX_H5_CHUNK_BYTES = 4 << 20
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
#: Every key of the schema with its shape (size names shared between keys) and dtype kinds.
_LAYOUT: Layout = {
    "schema_version": (None, "iu"),
    "format": (None, "US"),
    "params": (("n", "p"), "iuf"),
    "param_names": (("p",), "US"),
    "log_params": (("q",), "US"),
    "log10_mass": (("n",), "iuf"),
    "radius": (("n_r",), "iuf"),
    "radius_unit": (None, "US"),
    "fields": (("F",), "US"),
    "units": (("F",), "US"),
    "profiles": (("F", "n", "n_r"), "iuf"),
    "mask": (("F", "n", "n_r"), "b"),
    "noise_fields": (("G",), "US"),
    "noise": (("G", "n", "n_r"), "iuf"),
    "pk_ratio": (("n", "n_k"), "iuf"),
    "k": (("n_k",), "iuf"),
    "redshift": (("n",), "iuf"),
    "groups": (("n",), "iuf"),
    "meta": (None, "US"),
}


#: Keys the dataset holds as float64: read straight into float64 (never twice in memory).
_FLOAT_KEYS = ("params", "log10_mass", "radius", "profiles", "noise", "pk_ratio", "k", "redshift")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is installed in the dev environment
        raise FormatError(
            "HDF5 files need the optional dependency h5py: pip install 'profemu[hdf5]' "
            "(or save to .npz instead)."
        ) from None
    return h5py


def _to_arrays(ds: Any) -> dict[str, np.ndarray]:
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


def write_dataset_file(ds: Any, path: str | Path) -> Path:
    """Write the dataset ``ds`` to ``path`` (``.npz`` or ``.h5``/``.hdf5``, chosen by suffix).

    The file is written with :func:`profemu._files.atomic_write` (temporary name in the
    same folder, ``fsync``, rename; permissions from the umask), so an interrupted write
    never leaves a half-written file under ``path``; temporary files that earlier,
    killed writes of ``path`` left behind are removed.

    Args:
        ds: The dataset.
        path: Destination; the suffix selects the format.

    Returns:
        The path written.

    Raises:
        DataError: unknown suffix, non-JSON-serialisable ``meta``, or the operating system
            refused the write (the message names the path and the reason).
        FormatError: HDF5 requested without h5py installed.
    """
    path = Path(path)
    kind = _kind(path)
    arrays = _to_arrays(ds)
    h5py = _h5py() if kind == "h5" else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(path, exc, "create the folder of") from None

    def write_h5(fh: Any) -> None:
        with h5py.File(fh, "w") as h5:
            for key, arr in arrays.items():
                h5.create_dataset(key, data=_h5_encode(arr))

    atomic_write(path, (lambda fh: np.savez(fh, **arrays)) if kind == "npz" else write_h5)
    remove_stale_temporaries(path.parent, glob.escape(path.name))
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
            raise FormatError(f"{path}: key {key!r} is not valid UTF-8 text; re-create the file.") from None
    raise FormatError(f"{path}: key {key!r} should hold text but has dtype {arr.dtype}; re-create the file.")


def _sniff(path: Path) -> Literal["npz", "h5"]:
    """Detect the file type from its first bytes, or raise FormatError saying what it is."""
    try:
        if not path.exists():
            raise FormatError(f"{path}: file not found; check the path.")
        if not path.is_file():
            raise FormatError(f"{path}: not a regular file (a directory?); pass a .npz or .h5 file.")
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise file_error(path, exc, "read") from None
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
    hint = (" A table of profiles becomes a dataset with profemu.ProfileDataset(params=..., profiles=..., ...)"
            ".save('data.npz') (docs/data_schema.md)." if what == "a text file" else "")
    raise FormatError(
        f"{path}: {what}; expected a dataset written by profemu (ProfileDataset.save) "
        "or, for the CAMELS table, use load_dataset(path, format='camels-lh')." + hint
    )


def _read_h5(
    path: Path, keys: Iterable[str], max_bytes: int,
    check: Callable[[Mapping[str, ArrayHeader]], object] | None, as_float64: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """HDF5 counterpart of :func:`profemu._files.read_npz`: headers first, then the data; the keys
    ``as_float64`` (real numbers) are converted to float64 by HDF5 while they are read."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as h5:
            headers: dict[str, ArrayHeader] = {}
            for key in keys:
                link = h5.get(key, getlink=True)
                if link is None:
                    continue
                if not isinstance(link, h5py.HardLink):
                    raise FormatError(
                        f"{path}: {key!r} is a {type(link).__name__}; the schema has only datasets stored "
                        "in the file itself."
                    )
                node = h5[key]
                if not isinstance(node, h5py.Dataset):
                    raise FormatError(
                        f"{path}: {key!r} is an HDF5 group; the schema has only datasets at the root of the file."
                    )
                if node.dtype.kind not in "biufcS" or node.dtype.fields is not None:
                    vlen = node.dtype.kind == "O"
                    raise FormatError(
                        f"{path}: key {key!r} has HDF5 type {node.dtype}, not a plain numeric or "
                        "fixed-width string array"
                        + ("; write strings as fixed-width bytes, e.g. h5py create_dataset(key, "
                           "data=np.array(names, dtype='S')), or save with ProfileDataset.save." if vlen else ".")
                    )
                if node.is_virtual or node.external:
                    raise FormatError(
                        f"{path}: key {key!r} reads its data from other files; profemu reads "
                        "self-contained files only."
                    )
                header = ArrayHeader(tuple(int(d) for d in node.shape), node.dtype)
                if node.chunks is not None:
                    chunk = math.prod(node.chunks) * node.dtype.itemsize
                    if chunk > max(header.nbytes, _MAX_H5_CHUNK_BYTES):
                        raise FormatError(
                            f"{path}: key {key!r} is stored in chunks of {chunk} bytes, larger than the "
                            f"array itself ({header.nbytes} bytes); the file is corrupt or hostile."
                        )
                headers[key] = header
            if check is not None:
                check(headers)
            check_budget(headers, max_bytes=max_bytes, where=str(path))
            convert = set(as_float64)
            return {key: _h5_data(h5[key], key in convert) for key in headers}
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise FormatError(
            f"{path}: truncated or corrupt HDF5 file ({type(exc).__name__}: {exc}); re-create the file."
        ) from None


def _h5_data(node: Any, as_float64: bool) -> np.ndarray:
    """A dataset's data; real numbers straight into a float64 array with ``as_float64`` (HDF5
    converts them while reading, so the file's form is never held whole)."""
    if not as_float64 or node.dtype.kind not in "iuf" or node.dtype == np.dtype(np.float64):
        return np.asarray(node[()])
    out = np.empty(node.shape, dtype=np.float64)
    if out.size:
        node.read_direct(out)
    return out


def _read(
    path: Path, kind: Literal["npz", "h5"], keys: Iterable[str], max_bytes: int,
    check: Callable[[Mapping[str, ArrayHeader]], object] | None = None, as_float64: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    if kind == "npz":
        return read_npz(path, keys=keys, max_bytes=max_bytes, check=check, as_float64=as_float64)
    return _read_h5(path, keys, max_bytes, check, as_float64)


def _array_names(path: Path, kind: Literal["npz", "h5"]) -> set[str]:
    if kind == "npz":
        return set(npz_names(path))
    try:
        with _h5py().File(path, "r") as h5:
            return set(h5.keys())
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return set()


def _check_head(head: dict[str, np.ndarray], path: Path, kind: Literal["npz", "h5"]) -> None:
    """``schema_version``: checked before any other key is looked at (a newer schema may differ)."""
    if "schema_version" not in head:
        hint = (
            " It looks like the CAMELS LH table: use load_dataset(path) or load_camels_lh(path)."
            if {"rho_mean", "sim_id"} <= _array_names(path, kind)
            else ""
        )
        raise FormatError(f"{path}: no 'schema_version' key, so not a profemu dataset file.{hint}")
    version_arr = head["schema_version"]
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


def _check_headers(headers: Mapping[str, ArrayHeader], path: Path) -> None:
    for key in _REQUIRED:
        if key not in headers:
            raise FormatError(f"{path}: required key {key!r} is missing; the file is incomplete.")
    if ("noise" in headers) != ("noise_fields" in headers):
        raise FormatError(
            f"{path}: 'noise' and 'noise_fields' must both be present or both absent; the file is incomplete."
        )
    check_layout(headers, _LAYOUT, where=str(path))


def _from_arrays(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """The dataset's constructor arguments from arrays whose presence, shapes and dtypes were checked by the
    reader; the per-field profiles, masks and noise are views of the file's [F, n, n_r] arrays (no copies)."""
    text = {k: _strings(arrays[k], k, path) for k in _STRING_KEYS if k in arrays}
    if text["format"] != [_FORMAT]:
        raise FormatError(f"{path}: 'format' is {text['format']}, expected {_FORMAT!r}.")
    fields = _names(text["fields"], f"{path}: 'fields'", FormatError)
    profiles, mask = arrays["profiles"], arrays["mask"]
    noise = None
    if "noise" in arrays:
        noise_fields = _names(text["noise_fields"], f"{path}: 'noise_fields'", FormatError)
        noise = {f: arrays["noise"][i] for i, f in enumerate(noise_fields)}
    meta = load_json_text(text["meta"][0], what=f"{path}: 'meta'")
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: 'meta' must be a JSON object, got {type(meta).__name__}.")
    return dict(
        params=arrays["params"],
        param_names=tuple(text["param_names"]),
        log10_mass=arrays["log10_mass"],
        radius=arrays["radius"],
        profiles={f: profiles[i] for i, f in enumerate(fields)},
        units=dict(zip(fields, text["units"], strict=True)),
        radius_unit=text["radius_unit"][0],
        log_params=tuple(text["log_params"]),
        mask={f: mask[i] for i, f in enumerate(fields)},
        pk_ratio=arrays.get("pk_ratio"),
        k=arrays.get("k"),
        redshift=arrays.get("redshift"),
        groups=arrays.get("groups"),
        noise=noise,
        meta=meta,
    )


def dataset_arguments(path: str | Path, *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> dict[str, Any]:
    """Read a dataset file written by :func:`write_dataset_file` (npz or HDF5, detected from the bytes).

    Args:
        path: The file.
        max_bytes: Largest total size [bytes] the file's arrays may declare; checked
            before anything is read (default 4 GiB).

    Returns:
        The keyword arguments of ``ProfileDataset(...)``, checked against the schema; arrays
        are bit-identical to those saved. Real-valued arrays come as float64 (converted while
        they are read when the file stores another dtype), the per-field arrays as views of
        the file's arrays: nothing is held twice.

    Raises:
        FormatError: missing, empty, truncated or foreign file, missing key, newer schema,
            shapes that disagree, declared sizes over ``max_bytes``, hostile JSON in ``meta``.
        DataError: a file the operating system refuses to read (the reason is named).
    """
    path = Path(path)
    kind = _sniff(path)
    _check_head(_read(path, kind, _HEAD_KEYS, _MAX_HEAD_BYTES), path, kind)
    arrays = _read(path, kind, _LAYOUT, max_bytes, lambda headers: _check_headers(headers, path),
                   as_float64=_FLOAT_KEYS)
    return _from_arrays(arrays, path)


def file_kind(path: str | Path) -> Literal["npz", "h5"]:
    """``"npz"`` or ``"h5"``, from the file's first bytes (FormatError for anything else)."""
    return _sniff(Path(path))


def is_camels_table(path: Path) -> bool:
    """Whether ``path`` is an npz archive with the CAMELS table's keys (``rho_mean``, ``sim_id``).

    An archive that cannot be listed is not the table: the profemu reader then says what is
    wrong with it.
    """
    try:
        return {"rho_mean", "sim_id"} <= set(npz_names(path))
    except FormatError:
        return False
