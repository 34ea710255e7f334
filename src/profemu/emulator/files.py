"""An Emulator on disk: a folder with ``manifest.json`` and ``weights-<sha256>.npz``.

* The manifest (JSON) holds the format version, package versions, the model
  configuration, the fitted transforms, the variance scale, the member count, the
  metadata, the weights' file name, SHA-256 and array shapes, and ``content_sha256``,
  a checksum of everything else in the manifest, so an accidental hand edit is caught.
* The weights are plain float32 arrays named by their path in the parameter tree
  (``trunk/hidden_0/kernel``), leading axis = members; no pickle.

Saving writes the content-addressed weights first, then replaces the manifest with one
atomic rename (the single commit point), then removes older weight files: a save
interrupted at any moment leaves the previous or the new Emulator, never a mix.
Loading validates the manifest before reading any array, then every number: finite,
positive where it must be, shapes consistent with each other and with the network.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import (
    atomic_write,
    atomic_write_text,
    flatten_tree,
    read_json_file,
    read_npz,
    remove_stale_temporaries,
    sha256_file,
    unflatten_tree,
)
from profemu.config import ModelConfig, _build, _plain
from profemu.data.transforms import Transforms
from profemu.errors import FormatError, ProfemuError
from profemu.models.network import Network

__all__ = ["FORMAT_VERSION", "MANIFEST", "EmulatorParts", "read_emulator", "read_manifest", "save_emulator",
           "weights_file"]

#: Version of the folder layout; files of other versions are refused.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
_KNOWN_VERSIONS = (2,)
_MAX_WEIGHT_ELEMENTS = 2_000_000_000  # refuse absurd shapes before allocating
_MAX_WEIGHT = 1e6  # |weight|: trained networks stay many orders of magnitude below; float32 stays finite
_MIN_VARIANCE_SCALE, _MAX_VARIANCE_SCALE = 1e-6, 1e6
_MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "versions": dict,
    "model_config": dict,
    "transforms": dict,
    "variance_scale": (int, float),
    "on_extrapolation": str,
    "members": int,
    "metadata": dict,
    "weights": dict,
    "content_sha256": str,
}


def _content_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def save_emulator(emulator: Any, folder: str | Path) -> Path:
    """Write ``emulator`` to ``folder`` (created) atomically; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flat = flatten_tree(emulator.weights)
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    weights = folder / f"weights-{digest[:16]}.npz"
    atomic_write(weights, lambda fh: fh.write(payload))
    versions = {"profemu": _package_version("profemu"), "numpy": np.__version__}
    for pkg in ("jax", "optax"):
        versions[pkg] = _package_version(pkg)
    manifest: dict[str, Any] = {
        "format": "profemu-emulator",
        "format_version": FORMAT_VERSION,
        "versions": versions,
        "model_config": _plain(emulator.model_config),
        "transforms": emulator.transforms.to_dict(),
        "variance_scale": emulator.variance_scale,
        "on_extrapolation": emulator.on_extrapolation,
        "members": emulator.members,
        "metadata": emulator.metadata,
        "weights": {"file": weights.name, "sha256": digest, "shapes": {k: list(v.shape) for k, v in flat.items()}},
    }
    try:
        manifest["content_sha256"] = _content_digest(manifest)
        text = json.dumps(manifest, indent=1, allow_nan=False)
    except ValueError as exc:
        raise FormatError(f"{folder / MANIFEST}: the emulator holds a non-finite number ({exc}).") from None
    atomic_write_text(folder / MANIFEST, text)
    for old in folder.glob("weights*.npz"):
        if old.name != weights.name:
            old.unlink(missing_ok=True)
    for name in (MANIFEST, "weights-*.npz"):  # temporaries left by an earlier, killed save
        remove_stale_temporaries(folder, name)
    return folder


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The validated manifest of an Emulator folder (no array is read).

    Raises:
        FormatError: not an emulator folder, corrupt or edited manifest, unknown version.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FormatError(f"{folder}: not an emulator folder (expected a directory with {MANIFEST}).")
    if not path.is_file():
        raise FormatError(f"{path}: missing; {folder} is not a saved Emulator (or the save was interrupted).")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise FormatError(f"{path}: implausibly large manifest; refusing to read it.")
    manifest = read_json_file(path, max_bytes=_MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != "profemu-emulator":
        raise FormatError(f"{path}: not a profemu emulator manifest (missing format='profemu-emulator').")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in _KNOWN_VERSIONS:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise FormatError(
            f"{path}: format_version {version!r} is "
            + ("newer than this profemu supports; upgrade profemu to load it." if newer else
               f"not one this profemu reads ({list(_KNOWN_VERSIONS)}); retrain the emulator with this version.")
        )
    for key, tp in _SCHEMA.items():
        if key not in manifest:
            raise FormatError(f"{path}: required key {key!r} is missing.")
        if not isinstance(manifest[key], tp) or isinstance(manifest[key], bool):
            raise FormatError(f"{path}: key {key!r} has the wrong type ({type(manifest[key]).__name__}).")
    try:
        digest = _content_digest(manifest)
    except ValueError:
        raise FormatError(f"{path}: the manifest holds a non-finite number (Infinity/NaN); it is damaged: "
                          "re-save or retrain the emulator.") from None
    if manifest["content_sha256"] != digest:
        raise FormatError(
            f"{path}: the manifest's content does not match its checksum (edited or damaged); "
            "re-save the emulator from Python or retrain it."
        )
    w = manifest["weights"]
    if not (isinstance(w.get("file"), str) and isinstance(w.get("sha256"), str) and isinstance(w.get("shapes"), dict)):
        raise FormatError(f"{path}: 'weights' must hold 'file', 'sha256' and 'shapes'.")
    return manifest


def weights_file(folder: str | Path) -> Path:
    """The weights file that ``folder``'s manifest points to: a regular file inside the folder.

    Raises:
        FormatError: a path outside the folder, a link, or a missing file.
    """
    folder = Path(folder)
    name = read_manifest(folder)["weights"]["file"]
    path = folder / name
    if Path(name).name != name or name in ("", ".", ".."):
        raise FormatError(f"{folder / MANIFEST}: weights file {name!r} must be a plain file name in the folder.")
    if path.is_symlink() or not path.is_file():
        what = "a symbolic link" if path.is_symlink() else "missing"
        raise FormatError(f"{path}: the weights file is {what}; only regular files inside the folder are read.")
    return path


@dataclass(frozen=True)
class EmulatorParts:
    """What an Emulator folder holds, validated: the arguments of ``Emulator(...)``."""

    transforms: Transforms
    model_config: ModelConfig
    weights: dict[str, Any]
    metadata: dict[str, Any]
    variance_scale: float
    on_extrapolation: str


def read_emulator(folder: str | Path, *, on_extrapolation: str | None = None) -> EmulatorParts:
    """Read and validate an Emulator folder written by :func:`save_emulator`.

    Raises:
        FormatError: missing/corrupt files, an unknown format version, a manifest whose
            numbers are not valid (non-finite, non-positive scales, inconsistent shapes).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    where = folder / MANIFEST
    wfile = weights_file(folder)
    shapes = manifest["weights"]["shapes"]
    members = manifest["members"]
    if members < 1:
        raise FormatError(f"{where}: members = {members}; an emulator has at least one member.")
    for name, shape in shapes.items():
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise FormatError(f"{where}: weights.shapes[{name!r}] is not a list of sizes.")
        if int(np.prod(shape, dtype=np.int64)) > _MAX_WEIGHT_ELEMENTS:
            raise FormatError(f"{where}: weights.shapes[{name!r}] = {shape} is implausibly large.")
    try:
        model_config = _build(ModelConfig, manifest["model_config"], "model.")
        model_config.validate()
        transforms = Transforms.from_dict(manifest["transforms"])
        network = Network(model_config, transforms.layout)
    except FormatError:
        raise
    except ProfemuError as exc:
        raise FormatError(f"{where}: invalid model or transforms section ({exc}).") from None
    expected = {name: [members, *shape] for name, shape in network.param_shapes().items()}
    if expected != shapes:
        wrong = sorted(set(expected) ^ set(shapes)) or sorted(k for k in expected if expected[k] != shapes[k])
        raise FormatError(f"{where}: weight shapes do not match the model and transforms of the manifest "
                          f"(first differences: {wrong[:3]}).")
    scale = float(manifest["variance_scale"])
    if not (np.isfinite(scale) and _MIN_VARIANCE_SCALE <= scale <= _MAX_VARIANCE_SCALE):
        raise FormatError(f"{where}: variance_scale = {scale!r}; a calibrated emulator has a finite scale in "
                          f"[{_MIN_VARIANCE_SCALE:g}, {_MAX_VARIANCE_SCALE:g}]: re-save or retrain it.")
    if sha256_file(wfile) != manifest["weights"]["sha256"]:
        raise FormatError(
            f"{wfile}: checksum does not match the manifest (corrupt or replaced file); "
            "re-save or re-train the emulator."
        )
    flat = _read_weights(wfile, shapes)
    policy = on_extrapolation or manifest["on_extrapolation"]
    return EmulatorParts(transforms, model_config, unflatten_tree(flat), metadata=manifest["metadata"],
                         variance_scale=scale, on_extrapolation=policy)


def _read_weights(path: Path, shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """The weight arrays named in the manifest, each checked (shape, float dtype) before its data is read."""

    def check(headers: dict[str, Any]) -> None:
        missing = sorted(set(shapes) - set(headers))
        if missing:
            raise FormatError(f"{path}: weights {missing[:3]} named in the manifest are missing from the archive.")
        for name, header in headers.items():
            if list(header.shape) != shapes[name] or header.dtype.kind != "f":
                raise FormatError(f"{path}: weight {name!r} is declared {header.shape} {header.dtype}, "
                                  f"the manifest says {shapes[name]} floats.")

    flat = read_npz(path, keys=shapes, check=check, what="weights archive")
    for name, arr in flat.items():
        if list(arr.shape) != shapes[name] or arr.dtype.kind != "f":
            raise FormatError(f"{path}: weight {name!r} has shape {arr.shape} {arr.dtype}, manifest says {shapes[name]}.")
        if not np.all(np.isfinite(arr)):
            raise FormatError(f"{path}: weight {name!r} holds non-finite values; retrain the emulator.")
        if arr.size and np.abs(arr).max() > _MAX_WEIGHT:
            raise FormatError(f"{path}: weight {name!r} holds {np.abs(arr).max():.3g}, above {_MAX_WEIGHT:g} in "
                              "magnitude (no trained network has such weights; the file was edited); retrain it.")
    return flat
