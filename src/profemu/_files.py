"""Small file utilities shared by every reader and writer of user files (no pickle anywhere).

Writing:

* :func:`atomic_write` — write through a temporary file in the same folder, flush,
  ``fsync``, give it the permissions the umask asks for, rename onto the final name,
  then ``fsync`` the folder: a crash or SIGKILL at any moment leaves either the old file
  or the new one, never a half-written file under the final name, and never a stray
  temporary file after an error. Operating-system failures (full disk, read-only folder)
  raise :class:`~profemu.errors.DataError` naming the path and the reason.
* :func:`check_output` — the one check every writer of a user-named output makes first:
  never one of the command's inputs (or inside an input folder), even with ``--force``;
  an existing file only with ``--force``.
* :func:`remove_stale_temporaries` — delete the temporary files that a killed writer
  left behind (they are older than this process).

Reading (bounded: a file cannot make profemu allocate more than the caller allows):

* :func:`read_npz` — the one safe reader of ``.npz`` archives: only the requested keys are
  decompressed, every declared size (zip member header, npy header shape and dtype) is
  checked against the file and against a byte budget before any data is read, object
  (pickled) arrays are refused.
* :func:`read_npy` — a single ``.npy`` array, its header (shape, dtype) checked against the
  file's size and the byte budget before anything is allocated.
* :func:`check_layout` / :func:`check_budget` — the checks :func:`read_npz` applies to the
  declared array headers, reusable for other containers (HDF5).
* :func:`load_json_text` / :func:`read_json_file` — JSON with a size and nesting-depth limit,
  raising :class:`~profemu.errors.FormatError` (never ``RecursionError``).

Other:

* :func:`sha256_file` — checksum recorded in manifests and verified on load.
* :func:`flatten_tree` / :func:`unflatten_tree` — nested ``{name: {...: array}}``
  weights <-> ``{"a/b/c": array}``, the key layout of the ``.npz`` weight files.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from profemu.errors import DataError, FormatError

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_READ_BYTES",
    "ArrayHeader",
    "Layout",
    "atomic_write",
    "atomic_write_text",
    "check_budget",
    "check_layout",
    "check_output",
    "check_result_folder",
    "current_umask",
    "file_error",
    "flatten_tree",
    "json_safe",
    "load_json_text",
    "npz_names",
    "read_json_file",
    "read_npy",
    "read_npz",
    "remove_stale_temporaries",
    "sha256_file",
    "unflatten_tree",
    "write_result_folder",
]

#: Default byte budget of :func:`read_npz` (sum of the declared sizes of the keys read).
DEFAULT_MAX_READ_BYTES = 4 << 30
#: Default size limit of a JSON text [bytes].
DEFAULT_MAX_JSON_BYTES = 64 << 20
#: Default nesting-depth limit of a JSON text (objects and arrays).
DEFAULT_MAX_JSON_DEPTH = 64

_TMP_SUFFIX = ".tmp"
_STARTED = time.time()  # temporaries older than this cannot belong to a write of this process
_CLOCK_MARGIN_S = 2.0  # coarse or skewed file-system timestamps
_UMASK_LOCK = threading.Lock()
_PROC_STATUS = Path("/proc/self/status")
_CHUNK = 8 << 20


# ---------------------------------------------------------------------------- errors
_HINTS = {
    errno.ENOSPC: "free disk space or choose another folder",
    errno.EDQUOT: "the disk quota is exhausted: free space or choose another folder",
    errno.EACCES: "check the permissions of the file and of its folder",
    errno.EPERM: "check the permissions of the file and of its folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder: pass a file name",
    errno.ENAMETOOLONG: "use a shorter file name",
}


def file_error(path: Path | str, exc: OSError, action: str) -> DataError:
    """A one-line :class:`DataError` for an operating-system failure on ``path``.

    Args:
        path: The file the user named (not an internal temporary name).
        exc: The ``OSError`` raised by the operating system.
        action: What failed, e.g. ``"write"`` or ``"read"``.

    Returns:
        ``DataError("<path>: cannot <action> (<reason>); <what to do>.")``, to be raised
        ``from None``.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "check the path and the disk")
    return DataError(f"{path}: cannot {action} ({reason}); {hint}.")


# ---------------------------------------------------------------------------- writing
def current_umask() -> int:
    """The process umask, read without changing it where the platform allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read with the
    ``os.umask`` set-and-restore trick (under a lock, and with the restrictive value
    ``0o077`` in between, so a file another thread creates meanwhile is never more open
    than intended).
    """
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # non-Linux platforms
        old = os.umask(0o077)
        os.umask(old)
    return old


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically.

    Args:
        path: Final file name; its folder must exist.
        write: Called with a binary file handle (open for reading and writing, at
            position 0) that it fills.

    Returns:
        ``path``.

    Raises:
        DataError: the operating system refused (full disk, permissions, read-only
            file system); the message names ``path`` and the reason. Errors raised by
            ``write`` itself propagate unchanged. In every case no temporary file is left.

    The file gets the permissions ``0o666 & ~umask``, like any file the user creates
    (``tempfile.mkstemp`` alone would leave ``0o600``).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise file_error(path, exc, "write") from None
    try:
        with os.fdopen(fd, "w+b") as fh:
            if hasattr(os, "fchmod"):  # POSIX
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise file_error(path, exc, "write") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return path
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def _covers(out: Path, given: Path) -> bool:
    """Whether writing ``out`` would replace ``given`` or something inside it (paths or hard links)."""
    try:
        o, g = out.resolve(), given.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as given
        o, g = out.absolute(), given.absolute()
    if o == g or g in o.parents:
        return True
    try:
        return out.exists() and given.exists() and os.path.samefile(out, given)
    except OSError:
        return False


def check_output(
    path: Path | str,
    *,
    force: bool,
    inputs: Mapping[str, Path | str | None] | None = None,
    option: str = "--out",
    folder: bool = False,
) -> Path:
    """Refuse an output that would destroy one of the command's inputs or, without ``force``, a file.

    Args:
        path: The output the user named.
        force: Whether an existing output may be replaced.
        inputs: ``{what it is: path}`` of everything the command reads (files or folders;
            None entries are skipped). ``path`` may be none of them and lie inside none of
            them, even with ``force``.
        option: The option that named ``path`` (for the messages).
        folder: The output is a folder (else a file: an existing folder is refused).

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: the output is an input or inside one, is a folder where a file is
            written, or exists and ``force`` is False.
    """
    out = Path(path)
    for what, given in (inputs or {}).items():
        if given is None:
            continue
        given = Path(given)
        if _covers(out, given):
            where = "is" if out.resolve() == given.resolve() or not given.is_dir() else "is inside"
            raise DataError(
                f"{option} {str(out)!r} {where} the {what} {str(given)!r}; writing it would destroy the inputs "
                f"(--force does not change that). Pass another {option}."
            )
    if not folder and out.is_dir():
        raise DataError(f"{option} {str(out)!r} is a folder; pass a file name.")
    if out.exists() and not force and not (folder and out.is_dir() and not any(out.iterdir())):
        raise DataError(f"{option} {str(out)!r} already exists; pass --force to overwrite it or choose another "
                        f"{option}.")
    return out


#: Largest allocation a single request may ask for, whatever the machine [bytes].
MAX_ALLOCATION_BYTES = 16 << 30


def _available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` [bytes]; None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _size(n_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes / 1e3:.3g} kB"


def check_memory(what: str, n_bytes: float, *, fix: str, limit_bytes: int | None = None) -> None:
    """Refuse, before allocating, a request whose estimated memory exceeds the limit.

    Args:
        what: The request, e.g. ``"--n 1000000000 (the mock dataset)"``.
        n_bytes: Its estimated size [bytes].
        fix: What to do instead, e.g. ``"pass a smaller --n"``.
        limit_bytes: The limit (default: :data:`MAX_ALLOCATION_BYTES`, or half of the memory
            available now when that is less).

    Raises:
        DataError: the estimate exceeds the limit (the message gives both).
    """
    if limit_bytes is None:
        available = _available_memory()
        limit_bytes = MAX_ALLOCATION_BYTES if available is None else min(MAX_ALLOCATION_BYTES, available // 2)
    if not math.isfinite(n_bytes) or n_bytes > limit_bytes:
        raise DataError(f"{what} needs about {_size(n_bytes)} of memory, above the limit of {_size(limit_bytes)}; "
                        f"{fix}.")


def remove_stale_temporaries(folder: Path | str, name: str) -> list[Path]:
    """Delete the temporary files that interrupted :func:`atomic_write` calls left in ``folder``.

    A writer killed between creating its temporary file and the rename leaves
    ``.<name>.<random>.tmp`` behind. Only files of that form whose last modification is
    older than the start of this process (less a 2 s margin for coarse file-system
    clocks) are removed, so a write in progress in this process is never touched.

    Args:
        folder: The folder of the final files.
        name: Final file name, or a glob pattern of final names (``"weights-*.npz"``);
            escape a literal name that contains ``*?[`` with :func:`glob.escape`.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    pattern = f".{name}.*{_TMP_SUFFIX}"
    cutoff = _STARTED - _CLOCK_MARGIN_S
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # vanished meanwhile or not ours to delete
            continue
    return removed


# ---------------------------------------------------------------------------- reading arrays
class ArrayHeader(NamedTuple):
    """Shape and dtype an archive declares for one array, known before its data is read."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes the array occupies once read (exact Python integer, no overflow)."""
        return math.prod(self.shape) * self.dtype.itemsize


#: ``{key: (dims, dtype kinds)}``: dims are names (bound on first sight, then checked),
#: integers, or ``None`` for the 0-d / single-element scalars of text keys.
Layout = Mapping[str, tuple[tuple[str | int, ...] | None, str]]


def check_layout(headers: Mapping[str, ArrayHeader], layout: Layout, *, where: str) -> dict[str, int]:
    """Check declared shapes and dtypes against a schema before anything is read.

    Args:
        headers: Declared headers of the arrays present (keys absent from ``layout`` are
            ignored).
        layout: ``{key: (dims, kinds)}`` in checking order; ``dims`` is a tuple of size
            names (e.g. ``("n", "n_r")``), the first key that uses a name fixes its value;
            ``None`` means a scalar (shape ``()`` or ``(1,)``). ``kinds`` lists the
            accepted numpy dtype kinds (``"iuf"`` real numbers, ``"iu"`` integers, ``"b"``
            bool, ``"US"`` text).
        where: Prefix of the messages (the file).

    Returns:
        The bound sizes, e.g. ``{"n": 2000, "n_r": 15}``.

    Raises:
        FormatError: a key with another dtype kind or a shape that disagrees with the
            sizes fixed by the keys before it.
    """
    sizes: dict[str, int] = {}
    for key, (dims, kinds) in layout.items():
        if key not in headers:
            continue
        shape, dtype = headers[key].shape, headers[key].dtype
        if dtype.kind not in kinds:
            expected = {"iuf": "real numbers", "iu": "integers", "b": "booleans", "US": "text"}
            raise FormatError(
                f"{where}: key {key!r} has dtype {dtype}, expected {expected.get(kinds, 'numbers')}; "
                "the file is corrupt or was not written for profemu."
            )
        if dims is None:
            if shape not in ((), (1,)):
                raise FormatError(f"{where}: key {key!r} has shape {shape}, expected a single value.")
            continue
        ok = len(shape) == len(dims)
        for dim, size in zip(dims, shape, strict=False):
            if isinstance(dim, int):
                ok = ok and size == dim
            else:
                ok = ok and sizes.setdefault(dim, size) == size
        if not ok:
            want = ", ".join(
                str(d) if isinstance(d, int) else (f"{d}={sizes[d]}" if d in sizes else d) for d in dims
            )
            raise FormatError(
                f"{where}: key {key!r} has shape {shape}, expected ({want}); the arrays of the file "
                "disagree, so it is corrupt or was not written for profemu."
            )
    return sizes


def check_budget(headers: Mapping[str, ArrayHeader], *, max_bytes: int, where: str) -> int:
    """Refuse to read arrays whose declared sizes add up to more than ``max_bytes``.

    Returns:
        The total declared size [bytes].

    Raises:
        FormatError: naming the largest array, its declared shape and dtype, and the limit.
    """
    total = sum(h.nbytes for h in headers.values())
    if total > max_bytes:
        key = max(headers, key=lambda k: headers[k].nbytes)
        raise FormatError(
            f"{where}: the arrays declare {total / 2**30:.3g} GiB (largest: {key!r} with shape "
            f"{headers[key].shape} of {headers[key].dtype}), more than the limit of {max_bytes / 2**30:.3g} GiB; the file is "
            "corrupt or hostile (if it is genuine, raise max_bytes)."
        )
    return total


def npz_names(path: Path | str) -> list[str]:
    """Names of the arrays in an ``.npz`` archive, from its directory only (nothing decompressed).

    Raises:
        DataError: the file cannot be opened (the reason is named).
        FormatError: not a readable zip archive.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise FormatError(f"{path}: truncated or corrupt npz archive ({exc}); re-create the file.") from None


def read_npz(
    path: Path | str,
    *,
    keys: Iterable[str] | None = None,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
    check: Callable[[Mapping[str, ArrayHeader]], object] | None = None,
    what: str = "npz archive",
    as_float64: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Read arrays of an ``.npz`` archive with bounded memory, never unpickling.

    1. Only members named ``<key>.npy`` for ``key`` in ``keys`` are opened; others are
       never decompressed. A key stored twice is refused (which copy is meant?).
    2. For each, the zip directory's declared uncompressed size, then the npy header
       (shape, dtype, fortran order; object dtypes refused) are read, and the two must
       agree exactly.
    3. ``check(headers)`` (if given) may refuse the declared layout (see
       :func:`check_layout`); then the total declared size must be ``<= max_bytes``
       (:func:`check_budget`).
    4. Only then is the data read, each member decompressed to at most its declared
       size and verified against its CRC.

    Args:
        path: The archive.
        keys: Array names to read (``None``: every ``.npy`` member). Absent keys are
            simply missing from the result.
        max_bytes: Byte budget for all arrays together.
        check: Called with ``{key: ArrayHeader}`` before any data is read.
        what: Name of the file type in messages (e.g. ``"npz archive"``).
        as_float64: Keys of real numbers (integer or float dtypes) to return as native
            float64: they are converted while they are decompressed, 8 MiB at a time, so
            the file's form and the float64 form of an array are never both in memory.
            ``max_bytes`` still applies to the sizes the file declares.

    Returns:
        ``{key: array}`` (fresh, writable arrays) for the keys present.

    Raises:
        DataError: the file cannot be opened (the reason is named).
        FormatError: corrupt or truncated archive, pickled objects, a declared size over
            the budget or in conflict with the file, or whatever ``check`` raises.
    """
    path = Path(path)
    wanted = None if keys is None else set(keys)
    try:
        fh = open(path, "rb")  # closed by the with-block below
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    try:
        with fh, zipfile.ZipFile(fh) as zf:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                if wanted is not None and key not in wanted:
                    continue
                if key in members:
                    raise FormatError(f"{path}: key {key!r} is stored twice; the {what} is corrupt.")
                members[key] = info
            headers = {key: _npz_header(zf, info, key, path, what) for key, info in members.items()}
            if check is not None:
                check(headers)
            check_budget(headers, max_bytes=max_bytes, where=str(path))
            convert = set(as_float64)
            return {key: _npz_data(zf, members[key], headers[key], key, path, what, key in convert)
                    for key in members}
    except (FormatError, DataError):
        raise
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    except (zipfile.BadZipFile, EOFError, ValueError, zlib.error, KeyError, NotImplementedError,
            RuntimeError, SyntaxError) as exc:
        raise FormatError(
            f"{path}: truncated or corrupt {what} ({type(exc).__name__}: {exc}); re-create the file."
        ) from None


def read_npy(path: Path | str, *, what: str = "array", max_bytes: int = DEFAULT_MAX_READ_BYTES) -> np.ndarray:
    """A plain numeric ``.npy`` array, refused before allocating when its header claims too much.

    Args:
        path: The ``.npy`` file.
        what: What the array is (for the messages), e.g. ``"--covariance"``.
        max_bytes: Largest array accepted [bytes].

    Raises:
        FormatError: missing, not a numeric npy array, a header that does not match the
            file's size, or more than ``max_bytes`` declared (the message gives both).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"npy format version {version}")
            except ValueError as exc:
                raise FormatError(f"{what} {str(path)!r}: not a numeric .npy array ({exc}); save it with "
                                  "np.save.") from None
            offset = fh.tell()
            if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
                raise FormatError(f"{what} {str(path)!r}: dtype {dtype} is not a plain numeric array (pickled "
                                  "objects are never loaded); save numbers with np.save.")
            header = ArrayHeader(tuple(int(v) for v in shape), dtype, bool(fortran))
            if header.nbytes > max_bytes:
                raise FormatError(f"{what} {str(path)!r}: its header declares shape {header.shape} of {dtype}, "
                                  f"{_size(header.nbytes)}, above the limit of {_size(max_bytes)}; pass a "
                                  "smaller array.")
            if offset + header.nbytes != size:
                raise FormatError(f"{what} {str(path)!r}: its header declares shape {header.shape} of {dtype} "
                                  f"({header.nbytes} bytes) but the file holds {size - offset}; it is "
                                  "truncated or corrupt.")
            data = np.fromfile(fh, dtype=dtype, count=math.prod(header.shape))
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    return data.reshape(header.shape, order="F" if header.fortran_order else "C")


def _npz_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: Path, what: str) -> ArrayHeader:
    if info.flag_bits & 0x1:
        raise FormatError(f"{path}: key {key!r} is encrypted; profemu reads plain {what}s only.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise FormatError(
            f"{path}: key {key!r} uses zip compression method {info.compress_type}; numpy archives "
            "are stored or deflated only. Re-save the data with np.savez."
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise FormatError(f"{path}: key {key!r} declares {info.file_size} bytes but stores "
                          f"{info.compress_size}; the {what} is corrupt.")
    with zf.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise FormatError(f"{path}: key {key!r} uses npy format version {version}; re-save the data "
                              "with np.savez.")
        offset = stream.tell()
    if dtype.hasobject:
        raise FormatError(
            f"{path}: key {key!r} holds pickled Python objects, which profemu never loads (it could "
            "run code); re-save the data as numeric arrays."
        )
    if dtype.kind not in "biufcUS" or dtype.fields is not None or dtype.subdtype is not None:
        raise FormatError(f"{path}: key {key!r} has dtype {dtype}, not a plain numeric or text array.")
    if any(s < 0 for s in shape):
        raise FormatError(f"{path}: key {key!r} has an invalid npy header (shape {shape}).")
    header = ArrayHeader(tuple(int(s) for s in shape), dtype, bool(fortran))
    if offset + header.nbytes != info.file_size:
        raise FormatError(
            f"{path}: key {key!r} declares shape {header.shape} of {dtype} ({header.nbytes} bytes) but "
            f"the archive holds {info.file_size - offset} bytes for it; the {what} is corrupt."
        )
    return header


def _fill(stream: Any, view: memoryview, key: str, path: Path, what: str) -> None:
    """Read exactly ``len(view)`` bytes of the member ``stream`` into ``view`` (FormatError when it ends early)."""
    done, size = 0, len(view)
    while done < size:
        got = stream.readinto(view[done : min(size, done + _CHUNK)])
        if not got:
            raise FormatError(f"{path}: key {key!r} ends early; the {what} is truncated.")
        done += got


def _npz_data(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, header: ArrayHeader, key: str, path: Path, what: str,
    as_float64: bool = False,
) -> np.ndarray:
    """The data of one member whose header was checked; real numbers converted to float64
    chunk by chunk with ``as_float64`` (the member's own dtype never held whole)."""
    shape, dtype = header.shape, header.dtype
    order = "F" if header.fortran_order else "C"
    nbytes = header.nbytes
    convert = as_float64 and dtype.kind in "iuf" and dtype != np.dtype(np.float64)
    with zf.open(info) as stream:
        stream.read(info.file_size - nbytes)  # the npy header, read and checked before
        if convert:
            out = np.empty(math.prod(shape), dtype=np.float64)
            step = max(1, _CHUNK // dtype.itemsize)  # elements per chunk
            buffer = bytearray(min(step, out.size) * dtype.itemsize)
            for start in range(0, out.size, step):
                count = min(step, out.size - start)
                _fill(stream, memoryview(buffer)[: count * dtype.itemsize], key, path, what)
                out[start : start + count] = np.frombuffer(buffer, dtype=dtype, count=count)
        else:
            raw = bytearray(nbytes)
            _fill(stream, memoryview(raw), key, path, what)
        if stream.read(1):  # also runs the CRC check at the end of the member
            raise FormatError(f"{path}: key {key!r} is longer than declared; the {what} is corrupt.")
    if convert:
        return out.reshape(shape, order=order)
    if nbytes == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


# ---------------------------------------------------------------------------- JSON
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def load_json_text(
    text: str | bytes,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> Any:
    """Parse JSON with a size and nesting limit.

    The nesting depth is measured without recursion (strings removed, then a running
    count of brackets), so a hostile text can neither exhaust the stack nor raise
    ``RecursionError``.

    Args:
        text: The JSON document (``bytes`` must be UTF-8).
        what: What the text is, for messages (e.g. ``"data.npz: 'meta'"``).
        max_depth: Deepest allowed nesting of objects and arrays.
        max_bytes: Largest allowed size [bytes of UTF-8].

    Returns:
        The parsed value.

    Raises:
        FormatError: too large, too deep, not UTF-8 or not valid JSON; the message starts
            with ``what``.
    """
    if len(text) > max_bytes:
        raise FormatError(f"{what}: {len(text)} bytes of JSON, more than the limit of {max_bytes}; "
                          "the file is corrupt or hostile.")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected JSON text, got {type(text).__name__}.")
    encoded = _JSON_STRING.sub('""', text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(encoded, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    depth = int(np.cumsum(steps).max(initial=0))
    if depth > max_depth:
        raise FormatError(
            f"{what}: JSON nested {depth} levels deep, more than the limit of {max_depth}; the file "
            "is corrupt or hostile, re-create it."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{what}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); the file is "
            "corrupt or truncated, re-create it."
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. integers with too many digits
        raise FormatError(f"{what}: unreadable JSON ({type(exc).__name__}: {exc}).") from None


def read_json_file(
    path: Path | str,
    *,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> Any:
    """Read and parse a JSON file with :func:`load_json_text`'s limits.

    Raises:
        DataError: the file cannot be read (the reason is named).
        FormatError: too large (checked before reading), too deep or invalid JSON.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise FormatError(f"{path}: {size} bytes of JSON, more than the limit of {max_bytes}; "
                                  "the file is corrupt or hostile.")
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise file_error(path, exc, "read") from None
    return load_json_text(data, what=str(path), max_depth=max_depth, max_bytes=max_bytes)


# ---------------------------------------------------------------------------- misc
def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def flatten_tree(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """``{"params": {"Dense_0": {"kernel": a}}}`` -> ``{"params/Dense_0/kernel": a}``."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_tree(value, name))
        else:
            out[name] = np.asarray(value)
    return out


def unflatten_tree(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`flatten_tree`."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *path, leaf = name.split("/")
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def json_safe(value: Any) -> Any:
    """Nested numpy scalars/arrays, tuples and mappings -> plain JSON values.

    Arrays become lists, numpy scalars Python numbers, tuples lists, mapping keys
    strings; non-finite floats become ``None`` (JSON has no NaN).
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if np.isfinite(v) else None
    return value


def check_result_folder(out: str | Path, *, force: bool = False,
                        inputs: Mapping[str, str | Path | None] | None = None,
                        names: Iterable[str] | None = None) -> Path:
    """Refuse a results folder that is a file, holds or is inside one of ``inputs`` (even with
    ``force``: it is replaced whole), or exists non-empty without ``force``; with ``names`` (the
    files the command writes there), also one holding anything else even with ``force``: only an
    earlier result of the same command is replaced, never a folder of the user's own files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r}: exists and is not a folder; pass a folder name.")
    o = out.resolve()
    for what, given in (inputs or {}).items():
        if given is None:
            continue
        g = Path(given).resolve()
        if g == o or o in g.parents or g in o.parents:
            raise DataError(f"--out {str(out)!r}: holds or is inside the {what} {str(given)!r}; replacing it would "
                            "destroy the inputs (--force does not change that). Pass another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DataError(f"--out {str(out)!r}: folder exists and is not empty; pass --force to replace it "
                            "or choose another --out.")
        if names is not None:
            ours = set(names)
            foreign = sorted(e.name for e in out.iterdir() if e.name not in ours)
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise DataError(f"--out {str(out)!r}: holds {shown}, which this command does not write, so it is "
                                "not an earlier result of it; --force replaces only such a folder. Pass a new or "
                                "empty --out.")
    return out


def write_result_folder(out: str | Path, files: Mapping[str, Callable[[Path], Any]], *,
                        force: bool = False, inputs: Mapping[str, str | Path | None] | None = None,
                        names: Iterable[str] | None = None) -> Path:
    """Write a results folder as one unit: every file into a temporary sibling folder, then one
    rename. ``files`` maps a file name to a function writing it to the given path. An existing
    non-empty ``out`` is refused unless ``force`` (then replaced only after all files are written)
    and, even with it, unless it holds only files of ``names`` (default: those of ``files``)."""
    out = check_result_folder(out, force=force, inputs=inputs, names=files if names is None else names)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{threading.get_ident()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        for name, write in files.items():
            write(tmp / name)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}-{time.time_ns()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
