"""The one description of what a model reads and predicts: :class:`OutputLayout`.

:meth:`profemu.data.transforms.Transforms.layout` makes it; the network, the losses
and the Emulator all read it. It is frozen and hashable and holds only structure
(names, sizes, per-field properties) — never fitted statistics — so it is a static
argument of ``jax.jit``: two fits of the same structure on other data (another
cross-validation fold, another seed) share one compiled program. The fitted numbers
(target centre and scale, radii, PCA basis) travel as arrays, see
:meth:`~profemu.data.transforms.Transforms.model_arrays`.

Outputs on the radial grid are field-major: output ``f * n_r + j`` is field
``fields[f]`` at radius ``j``.

This module imports numpy only (no JAX).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from profemu.errors import ConfigError, DataError, FormatError

__all__ = ["BLOCK_ORDER", "HYBRID_TRANSITION", "HYBRID_WIDTH_DEX", "FieldSpec", "OutputLayout", "field_kind", "order_blocks"]

#: Canonical order in which input blocks are concatenated; unknown blocks follow, sorted.
BLOCK_ORDER: tuple[str, ...] = ("params", "log10_mass", "pk", "redshift", "features")

FieldKind = Literal["density", "pressure", "temperature", "other"]

# Field names (lower case) of each physical kind; a name not listed is "other".
_KIND_NAMES: dict[str, tuple[str, ...]] = {
    "density": ("rho", "rho_gas", "gas_density", "density", "dens", "ne", "n_e", "rho_mean", "rho_median"),
    "pressure": ("pth", "p_th", "pressure", "pe", "p_e", "p", "pth_mean", "pth_median", "y"),
    "temperature": ("temp", "t", "tgas", "t_gas", "temperature", "kt", "temp_mean", "temp_median"),
}


def field_kind(name: str) -> FieldKind:
    """The physical kind of a profile field, from its name (``rho`` -> ``"density"``).

    Density- and pressure-like fields fall with radius in a halo; temperature does
    not (it rises in the core); other fields (metallicity, ...) are ``"other"``.
    """
    key = name.strip().lower()
    for kind, names in _KIND_NAMES.items():
        if key in names:
            return kind  # type: ignore[return-value]
    return "other"


def order_blocks(names: Sequence[str]) -> tuple[str, ...]:
    """Input-block names in :data:`BLOCK_ORDER`, then any others alphabetically."""
    known = [b for b in BLOCK_ORDER if b in names]
    return tuple(known + sorted(n for n in names if n not in BLOCK_ORDER))


@dataclass(frozen=True)
class FieldSpec:
    """One predicted profile field.

    Attributes:
        name: Field name, as in the dataset.
        unit: Unit of the (linear) profile values.
        kind: ``"density"``, ``"pressure"``, ``"temperature"`` or ``"other"``.
        monotone: Declared non-increasing in radius (monotone head and soft penalty).
        gas_fraction_bound: Its gas inside R_Δ is kept below the cosmic baryon fraction
            (``data.gas_fraction_bound``; the weights are ``gas_fraction_weights`` of
            :meth:`~profemu.data.transforms.Transforms.model_arrays`).
        ideal_gas: ``(pressure field, density field)`` whose ratio, the ideal gas's
            temperature, this temperature field is predicted from (with a learnt
            correction; ``data.ideal_gas_temperature``), or ``()``.
    """

    name: str
    unit: str = ""
    kind: FieldKind = "other"
    monotone: bool = False
    gas_fraction_bound: bool = False
    ideal_gas: tuple[str, ...] = ()


#: ``data.radial_coordinate: hybrid``: the profile inside this fraction of R_Δ is drawn on the
#: dataset's radii (the core, shaped by feedback and cooling at fixed physical scales), outside
#: it on r / R_Δ (the outskirts, which follow the halo's size) ...
HYBRID_TRANSITION = 0.5
#: ... with a logistic transition of this width in log10(r / R_Δ).
HYBRID_WIDTH_DEX = 0.25


@dataclass(frozen=True)
class OutputLayout:
    """Static description of a model's inputs and outputs.

    Attributes:
        fields: The ``F`` predicted fields, in output order.
        n_r: Radial bins per field.
        input_blocks: ``((block, width), ...)`` in canonical order.
        out_dim: Width of the network output: ``F * n_r``, or ``K`` PCA coefficients.
        pca: Whether the network predicts PCA coefficients of the profiles.
        self_similar: ``""`` (plain log10 profiles), ``"physical"`` (profiles divided by
            their self-similar scale, on physical radii) or ``"scaled"`` (the same, on
            radii in units of R_Δ).
        n_x: Points of the grid in r / R_Δ on which the network draws each field's mean
            profile before interpolating it to the ``n_r`` radii (0: drawn on the radii).
        hybrid: The mean is drawn both on the radii and on the grid in r / R_Δ, the first
            taken inside, the second outside a transition in r / R_Δ (needs ``n_x``).
    """

    fields: tuple[FieldSpec, ...]
    n_r: int
    input_blocks: tuple[tuple[str, int], ...]
    out_dim: int
    pca: bool = False
    self_similar: str = ""
    n_x: int = 0
    hybrid: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        pairs = list(self.input_blocks.items()) if isinstance(self.input_blocks, Mapping) else self.input_blocks
        widths = {str(name): int(width) for name, width in pairs}
        object.__setattr__(self, "input_blocks", tuple((b, widths[b]) for b in order_blocks(list(widths))))
        names = self.field_names
        if not names or len(set(names)) != len(names):
            raise DataError(f"layout fields: need at least one field, each named once; got {list(names)}.")
        if self.n_r < 1:
            raise DataError(f"layout n_r: must be >= 1, got {self.n_r}.")
        if self.n_x < 0 or self.n_x == 1 or (self.n_x and self.pca):
            raise DataError(f"layout n_x: must be 0 or >= 2 without PCA outputs, got {self.n_x}.")
        if self.hybrid and not self.n_x:
            raise DataError("layout hybrid: needs the grid in r / R_Delta (n_x >= 2).")
        if not self.pca and self.out_dim != len(names) * self.n_r:
            raise DataError(
                f"layout out_dim: {self.out_dim} != fields x radii = {len(names) * self.n_r}; "
                "only PCA outputs have another width."
            )
        if "log10_mass" not in widths:
            raise DataError("layout input_blocks: the 'log10_mass' block is missing; every model needs it.")
        bad = [f"{b}={w}" for b, w in self.input_blocks if w < 1]
        if bad:
            raise DataError(f"layout input_blocks: widths must be >= 1, got {bad}.")

    # ------------------------------------------------------------------ views
    @property
    def field_names(self) -> tuple[str, ...]:
        """Field names in output order."""
        return tuple(f.name for f in self.fields)

    @property
    def monotone_fields(self) -> tuple[str, ...]:
        """Fields declared non-increasing in radius, in output order."""
        return tuple(f.name for f in self.fields if f.monotone)

    @property
    def target_dim(self) -> int:
        """``D = F * n_r``: outputs on the radial grid."""
        return len(self.fields) * self.n_r

    @property
    def block_widths(self) -> dict[str, int]:
        """``{block: width}`` in canonical order."""
        return dict(self.input_blocks)

    @property
    def input_dim(self) -> int:
        """Total width of the input blocks."""
        return sum(w for _, w in self.input_blocks)

    def field_slice(self, name: str) -> slice:
        """Columns of field ``name`` among the ``D`` grid outputs."""
        i = self.field_names.index(name)
        return slice(i * self.n_r, (i + 1) * self.n_r)

    def require_grid(self, feature: str) -> None:
        """Raise ConfigError when ``feature`` needs grid outputs but the layout is PCA."""
        if self.pca:
            raise ConfigError(
                f"{feature} needs outputs on the radial grid; set data.pca_components to 0 or turn it off."
            )

    # -------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "fields": [
                {"name": f.name, "unit": f.unit, "kind": f.kind, "monotone": f.monotone,
                 "gas_fraction_bound": f.gas_fraction_bound, "ideal_gas": list(f.ideal_gas)} for f in self.fields
            ],
            "n_r": self.n_r,
            "input_blocks": [[b, w] for b, w in self.input_blocks],
            "out_dim": self.out_dim,
            "pca": self.pca,
            "self_similar": self.self_similar,
            "n_x": self.n_x,
            "hybrid": self.hybrid,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputLayout:
        """Inverse of :meth:`to_dict`; FormatError on a malformed description."""
        try:
            fields = tuple(
                FieldSpec(str(f["name"]), str(f.get("unit", "")), f.get("kind", "other"), bool(f["monotone"]),
                          bool(f.get("gas_fraction_bound", False)), tuple(str(g) for g in f.get("ideal_gas", ())))
                for f in d["fields"]
            )
            return cls(fields, int(d["n_r"]), tuple((str(b), int(w)) for b, w in d["input_blocks"]),
                       int(d["out_dim"]), bool(d["pca"]), str(d.get("self_similar", "")), int(d.get("n_x", 0)),
                       _strict_bool(d.get("hybrid", False), "hybrid"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"layout: malformed description ({type(exc).__name__}: {exc}).") from None


def _strict_bool(value: Any, key: str) -> bool:
    """A saved true/false (TypeError otherwise, reported as a malformed layout)."""
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be true or false, got {value!r}")
    return value
