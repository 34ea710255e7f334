"""Atomic, checksummed training checkpoints as plain ``.npz`` arrays (no pickle).

A checkpoint is ``ckpt-<epoch>.npz`` (arrays named by their pytree path, e.g.
``state/params/Dense_0/kernel``, plus a JSON string ``__meta__``) and a manifest
``ckpt-<epoch>.json`` holding its SHA-256. Both are written to a temporary name,
flushed with ``fsync`` and renamed, so a crash never leaves a half-written file
under the final name. :func:`load_latest` verifies the checksum and falls back to
the previous checkpoint (with a warning) when the newest is corrupt or truncated;
with ``strict=True`` (what a resume uses) it refuses when every checkpoint is unusable.

Pytrees are restored into the structure of a freshly initialised state with
:func:`arrays_to_tree`, so loading never executes code.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from profemu._files import (
    atomic_write,
    load_json_text,
    read_json_file,
    read_npz,
    remove_stale_temporaries,
    sha256_file,
)
from profemu.errors import DataError, FormatError

__all__ = [
    "Checkpoint",
    "arrays_to_tree",
    "checkpoint_on_signals",
    "load_latest",
    "save_checkpoint",
    "tree_to_arrays",
]

FORMAT_VERSION = 1
_META_KEY = "__meta__"
_NAME = re.compile(r"^ckpt-(\d+)\.json$")


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint.

    Attributes:
        epoch: Number of completed epochs when it was written.
        arrays: Path-named arrays.
        meta: JSON metadata (counters, history, ...).
        path: The ``.npz`` file.
    """

    epoch: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def tree_to_arrays(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    """Flatten a pytree to ``{"prefix/path/to/leaf": np.ndarray}`` (host copies)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out: dict[str, np.ndarray] = {}
    for path, leaf in leaves:
        name = "/".join([prefix, *(_key_name(p) for p in path)])
        if name in out:
            raise ValueError(f"tree_to_arrays: two leaves share the name {name!r}.")
        out[name] = np.asarray(jax.device_get(leaf))
    return out


def arrays_to_tree(template: Any, arrays: Mapping[str, np.ndarray], prefix: str) -> Any:
    """Rebuild a pytree with the structure of ``template`` from :func:`tree_to_arrays` arrays.

    Raises:
        FormatError: When a leaf is missing or has another shape or dtype.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    values = []
    for path, leaf in leaves:
        name = "/".join([prefix, *(_key_name(p) for p in path)])
        if name not in arrays:
            raise FormatError(f"checkpoint: array {name!r} is missing; was it written by another model/config?")
        value = np.asarray(arrays[name])
        ref = leaf if hasattr(leaf, "shape") else np.asarray(leaf)
        if tuple(value.shape) != tuple(ref.shape) or value.dtype != ref.dtype:
            raise FormatError(
                f"checkpoint: array {name!r} has shape {value.shape} {value.dtype}, expected "
                f"{tuple(ref.shape)} {ref.dtype}; the model or config differs from the checkpoint's."
            )
        values.append(value)
    return jax.tree_util.tree_unflatten(treedef, values)


def _manifests(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for p in directory.glob("ckpt-*.json"):
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def save_checkpoint(
    directory: str | Path,
    epoch: int,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``ckpt-<epoch>.npz`` + manifest atomically and keep the newest ``keep``.

    Args:
        directory: Checkpoint folder (created if needed).
        epoch: Completed epochs (names the file).
        arrays: Path-named arrays (see :func:`tree_to_arrays`).
        meta: JSON-serialisable metadata.
        keep: How many checkpoints to keep (>= 1).

    Returns:
        Path of the ``.npz`` file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"ckpt-{epoch:06d}"
    npz = directory / f"{stem}.npz"
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META_KEY] = np.asarray(json.dumps(dict(meta), allow_nan=True))
    atomic_write(npz, lambda fh: np.savez(fh, **payload))
    manifest = {"format_version": FORMAT_VERSION, "epoch": int(epoch), "file": npz.name, "sha256": sha256_file(npz)}
    atomic_write(directory / f"{stem}.json", lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    for _, old in _manifests(directory)[max(keep, 1):]:
        old.with_suffix(".npz").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    for name in ("ckpt-*.npz", "ckpt-*.json"):  # temporaries left by an earlier, killed save
        remove_stale_temporaries(directory, name)
    return npz


def _read(manifest_path: Path) -> Checkpoint:
    manifest = read_json_file(manifest_path)
    if int(manifest.get("format_version", -1)) > FORMAT_VERSION:
        raise FormatError(f"{manifest_path.name}: written by a newer profemu (format {manifest['format_version']}).")
    npz = manifest_path.parent / manifest["file"]
    if not npz.is_file():
        raise FormatError(f"{npz.name}: missing")
    if sha256_file(npz) != manifest["sha256"]:
        raise FormatError(f"{npz.name}: SHA-256 does not match its manifest (corrupt or truncated)")
    arrays = read_npz(npz, what="checkpoint")
    if _META_KEY not in arrays:
        raise FormatError(f"{npz.name}: holds no metadata ({_META_KEY}); not a profemu checkpoint")
    meta = load_json_text(str(arrays.pop(_META_KEY)), what=f"{npz.name} metadata")
    return Checkpoint(epoch=int(manifest["epoch"]), arrays=arrays, meta=meta, path=npz)


def load_latest(directory: str | Path, *, strict: bool = False) -> Checkpoint | None:
    """The newest checkpoint whose checksum verifies, or None if there is none.

    A corrupt newest checkpoint is skipped with a ``UserWarning`` naming it, and the
    previous one is used.

    Args:
        directory: The checkpoint folder.
        strict: When checkpoint files exist but not one of them is usable, raise
            instead of returning None (a resume must not silently start over).

    Raises:
        DataError: ``strict`` and every checkpoint is corrupt; the message names each
            file, why it is unusable and how to start over.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    unusable: list[str] = []
    for _, manifest in _manifests(directory):
        try:
            return _read(manifest)
        except Exception as exc:  # any damage: fall back to the previous checkpoint
            reason = " ".join(str(exc).split()) or type(exc).__name__
            unusable.append(reason if manifest.stem in reason else f"{manifest.name}: {reason}")
            warnings.warn(
                f"checkpoint {manifest.name} is unusable ({exc}); falling back to the previous one.",
                UserWarning,
                stacklevel=2,
            )
    listed = {m.with_suffix(".npz").name for _, m in _manifests(directory)}
    unusable += [f"{p.name}: no manifest {p.with_suffix('.json').name}" for p in sorted(directory.glob("ckpt-*.npz"))
                 if p.name not in listed]
    if strict and unusable:
        raise DataError(
            f"resume: no usable checkpoint in {str(directory)!r} ({'; '.join(unusable)}); to start over, "
            f"delete {str(directory)!r} and train again without --resume."
        )
    return None


def checkpoint_on_signals(
    signals: Iterable[signal.Signals] = (signal.SIGUSR1, signal.SIGTERM),
) -> threading.Event:
    """Install handlers that set (and return) an Event asking ``fit`` for a checkpoint.

    Pass the event as ``fit(..., request_checkpoint=event)``; the loop writes a
    checkpoint at the end of the current epoch and clears it. Call from the main
    thread only (a Python restriction on signal handlers).
    """
    event = threading.Event()
    for sig in signals:
        signal.signal(sig, lambda *_: event.set())
    return event
