"""What a model predicts and what it reads: the :class:`OutputSpec`.

An :class:`OutputSpec` is the static, hashable description that every model in
:mod:`profemu.models` is built from. It holds only tuples, ints, floats and bools,
so it can be a :mod:`flax.linen` module attribute and a ``jax.jit`` static
argument, and it round-trips through JSON with :meth:`OutputSpec.to_dict` /
:meth:`OutputSpec.from_dict`.

The outputs on the radial grid are laid out field-major: output ``i * n_r + j``
is field ``field_names[i]`` at radius ``log10_radius[j]``.

This module imports numpy only (no JAX), so saved emulators can use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profemu.errors import ConfigError, DataError, FormatError

__all__ = ["BLOCK_ORDER", "OutputSpec", "order_blocks"]

#: Canonical order in which input blocks are concatenated; unknown blocks follow, sorted.
BLOCK_ORDER: tuple[str, ...] = ("params", "log10_mass", "pk", "redshift", "features")


def order_blocks(names: Sequence[str]) -> tuple[str, ...]:
    """Sort input-block names into the canonical concatenation order.

    Args:
        names: Block names, e.g. ``["pk", "params", "log10_mass"]``.

    Returns:
        The names in :data:`BLOCK_ORDER` order, then any other names alphabetically.
    """
    known = [b for b in BLOCK_ORDER if b in names]
    return tuple(known + sorted(n for n in names if n not in BLOCK_ORDER))


def _float_tuple(values: Any, name: str) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise DataError(
            f"OutputSpec.{name}: contains non-finite values; every entry must be finite."
        )
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class OutputSpec:
    """Static description of a model's inputs and outputs.

    Attributes:
        out_dim: Width of the model output: ``D = F * n_r`` on the radial grid, or the
            number ``K`` of PCA coefficients when ``pca`` is True.
        field_names: The ``F`` profile fields, in output order.
        n_r: Number of radial bins.
        log10_radius: ``(n_r,)`` log10 of the radial bin centres, strictly increasing
            (units of the dataset's radius).
        target_center: ``(F * n_r,)`` centre of the log10 profiles [dex]; standardised
            target = (log10 profile - center) / scale.
        target_scale: ``(F * n_r,)`` scale of the log10 profiles [dex], > 0.
        monotone_fields: Fields whose profile is built non-increasing in radius by the
            monotone head.
        input_blocks: ``((block, width), ...)`` in canonical order, e.g.
            ``(("params", 35), ("log10_mass", 1), ("pk", 79))``. A mapping is accepted
            and converted.
        pca: Whether the outputs are PCA coefficients rather than the radial grid.
    """

    out_dim: int
    field_names: tuple[str, ...]
    n_r: int
    log10_radius: tuple[float, ...]
    target_center: tuple[float, ...]
    target_scale: tuple[float, ...]
    monotone_fields: tuple[str, ...] = ()
    input_blocks: tuple[tuple[str, int], ...] = field(default=())
    pca: bool = False

    def __post_init__(self) -> None:
        # Coerce to hashable, JSON-friendly types (lists/arrays -> tuples, numpy -> Python).
        set_ = object.__setattr__
        set_(self, "out_dim", int(self.out_dim))
        set_(self, "n_r", int(self.n_r))
        set_(self, "pca", bool(self.pca))
        if isinstance(self.field_names, str):
            raise DataError("OutputSpec.field_names: expected a sequence of names, got one string.")
        set_(self, "field_names", tuple(str(f) for f in self.field_names))
        if isinstance(self.monotone_fields, str):
            raise ConfigError(
                "OutputSpec.monotone_fields: expected a list of field names, got one string; "
                f"write [{self.monotone_fields!r}]."
            )
        set_(self, "monotone_fields", tuple(str(f) for f in self.monotone_fields))
        set_(self, "log10_radius", _float_tuple(self.log10_radius, "log10_radius"))
        set_(self, "target_center", _float_tuple(self.target_center, "target_center"))
        set_(self, "target_scale", _float_tuple(self.target_scale, "target_scale"))
        blocks = self.input_blocks
        pairs = list(blocks.items()) if isinstance(blocks, Mapping) else [tuple(b) for b in blocks]
        widths = {str(name): int(width) for name, width in pairs}
        set_(self, "input_blocks", tuple((b, widths[b]) for b in order_blocks(list(widths))))
        self._validate()

    def _validate(self) -> None:
        n_fields = len(self.field_names)
        d_grid = n_fields * self.n_r
        if n_fields == 0 or len(set(self.field_names)) != n_fields:
            raise DataError(
                f"OutputSpec.field_names: need at least one unique name; got {self.field_names}."
            )
        if self.n_r < 1:
            raise DataError(f"OutputSpec.n_r: must be >= 1, got {self.n_r}.")
        if len(self.log10_radius) != self.n_r:
            raise DataError(
                f"OutputSpec.log10_radius: has {len(self.log10_radius)} entries but n_r = {self.n_r}."
            )
        if np.any(np.diff(self.log10_radius) <= 0):
            raise DataError("OutputSpec.log10_radius: must be strictly increasing.")
        for name in ("target_center", "target_scale"):
            if len(getattr(self, name)) != d_grid:
                raise DataError(
                    f"OutputSpec.{name}: has {len(getattr(self, name))} entries; expected "
                    f"len(field_names) * n_r = {d_grid}."
                )
        if min(self.target_scale) <= 0:
            raise DataError("OutputSpec.target_scale: every entry must be > 0.")
        if self.out_dim < 1:
            raise DataError(f"OutputSpec.out_dim: must be >= 1, got {self.out_dim}.")
        if not self.pca and self.out_dim != d_grid:
            raise DataError(
                f"OutputSpec.out_dim: {self.out_dim} != len(field_names) * n_r = {d_grid}; "
                "set pca=True if the outputs are PCA coefficients."
            )
        unknown = [f for f in self.monotone_fields if f not in self.field_names]
        if unknown:
            raise ConfigError(
                f"monotone_fields: {unknown} are not predicted fields; choose from {list(self.field_names)}."
            )
        if self.monotone_fields and self.pca:
            raise ConfigError(
                "monotone_fields: the monotone head needs outputs on the radial grid; "
                "set data.pca_components to 0 or model.monotone_fields to []."
            )
        for name, width in self.input_blocks:
            if width < 1:
                raise DataError(
                    f"OutputSpec.input_blocks: block {name!r} has width {width}; must be >= 1."
                )

    # ------------------------------------------------------------------ helpers
    def resolve_monotone_fields(self, requested: Sequence[str] = ()) -> tuple[str, ...]:
        """The fields the monotone head builds, given ``ModelConfig.monotone_fields``.

        Args:
            requested: Fields asked for by the model config; empty = use
                ``self.monotone_fields``.

        Returns:
            The monotone fields in output order (empty = no monotone head).

        Raises:
            ConfigError: A field is not predicted, the outputs are PCA coefficients, or
                the config and the spec ask for different fields.
        """
        requested = tuple(requested)
        if not requested:
            return self.monotone_fields
        if self.monotone_fields and set(self.monotone_fields) != set(requested):
            raise ConfigError(
                f"model.monotone_fields {list(requested)} differ from the output spec's "
                f"{list(self.monotone_fields)}; build the spec with the same fields."
            )
        unknown = [f for f in requested if f not in self.field_names]
        if unknown:
            raise ConfigError(
                f"model.monotone_fields: {unknown} are not predicted fields; "
                f"choose from {list(self.field_names)}."
            )
        if self.pca:
            raise ConfigError(
                "model.monotone_fields: the monotone head needs outputs on the radial grid; "
                "set data.pca_components to 0 or model.monotone_fields to []."
            )
        return tuple(f for f in self.field_names if f in requested)

    @property
    def block_widths(self) -> dict[str, int]:
        """``{block: width}`` of the input blocks, in canonical order."""
        return dict(self.input_blocks)

    @property
    def input_dim(self) -> int:
        """Total width of all input blocks concatenated."""
        return sum(w for _, w in self.input_blocks)

    def field_slice(self, field_name: str) -> slice:
        """Slice of the outputs (on the radial grid) that belong to ``field_name``."""
        i = self.field_names.index(field_name)
        return slice(i * self.n_r, (i + 1) * self.n_r)

    # -------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (lists, numbers, strings, bools)."""
        return {
            "out_dim": self.out_dim,
            "field_names": list(self.field_names),
            "n_r": self.n_r,
            "log10_radius": list(self.log10_radius),
            "target_center": list(self.target_center),
            "target_scale": list(self.target_scale),
            "monotone_fields": list(self.monotone_fields),
            "input_blocks": [[name, width] for name, width in self.input_blocks],
            "pca": self.pca,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        """Inverse of :meth:`to_dict`; raises FormatError on missing or unknown keys."""
        if not isinstance(data, Mapping):
            raise FormatError(f"OutputSpec: expected a mapping, got {type(data).__name__}.")
        required = {
            "out_dim",
            "field_names",
            "n_r",
            "log10_radius",
            "target_center",
            "target_scale",
        }
        allowed = required | {"monotone_fields", "input_blocks", "pca"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - allowed)
        if missing or unknown:
            raise FormatError(
                f"OutputSpec: missing keys {missing}, unknown keys {unknown}; valid keys are {sorted(allowed)}."
            )
        return cls(**dict(data))

    @classmethod
    def from_transforms(cls, transforms: Any, monotone_fields: Sequence[str] = ()) -> OutputSpec:
        """Build the spec from fitted :class:`~profemu.data.transforms.Transforms`.

        Args:
            transforms: Any object with ``out_dim``, ``field_names``, ``n_r``,
                ``log10_radius``, ``target_center``, ``target_scale``, ``input_blocks``
                (``{block: width}``) and ``pca_components`` (None, 0 or a [K, D] array).
            monotone_fields: Fields to build with the monotone head (usually
                ``ModelConfig.monotone_fields``).

        Returns:
            The matching OutputSpec.
        """
        pcs = getattr(transforms, "pca_components", None)
        pca = pcs is not None and np.size(pcs) > 0 and not (np.ndim(pcs) == 0 and not pcs)
        return cls(
            out_dim=int(transforms.out_dim),
            field_names=tuple(transforms.field_names),
            n_r=int(transforms.n_r),
            log10_radius=transforms.log10_radius,
            target_center=transforms.target_center,
            target_scale=transforms.target_scale,
            monotone_fields=tuple(monotone_fields),
            input_blocks=dict(transforms.input_blocks),
            pca=bool(pca),
        )
