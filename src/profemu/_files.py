"""Small file utilities shared by every writer of user files (no pickle anywhere).

* :func:`atomic_write` — write through a temporary file in the same folder, flush,
  ``fsync``, rename onto the final name, then ``fsync`` the folder: a crash or SIGKILL
  at any moment leaves either the old file or the new one, never a half-written file
  under the final name, and never a stray temporary file after an error.
* :func:`sha256_file` — checksum recorded in manifests and verified on load.
* :func:`flatten_tree` / :func:`unflatten_tree` — nested ``{name: {...: array}}``
  weights <-> ``{"a/b/c": array}``, the key layout of the ``.npz`` weight files.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "atomic_write_text", "flatten_tree", "json_safe", "sha256_file", "unflatten_tree"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically; ``write(fh)`` receives a binary file handle."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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
