"""Typed configuration: frozen dataclasses with YAML in and out and strict validation.

A :class:`Config` has five sections (``data``, ``model``, ``loss``, ``optim``,
``train``). Unknown keys are rejected with the list of valid ones and every value is
range-checked, so a typo in a YAML file fails at once with a
:class:`~profemu.errors.ConfigError` instead of being silently ignored.

Configs are immutable and hashable (lists are stored as tuples, mappings as
:class:`FrozenMap`): change one with :meth:`Config.updated`. Because equal configs
hash equal, they are static arguments of ``jax.jit`` and JAX's own cache reuses
compiled training code for repeated fits with the same set-up.

Example::

    cfg = Config.from_yaml("config.yaml")          # or Config() for the defaults
    cfg = cfg.updated({"model.kind": "physics", "train.members": 5})
    cfg.to_yaml("resolved.yaml")
"""

from __future__ import annotations

import codecs
import dataclasses
import itertools
import math
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from profemu.errors import ConfigError

__all__ = [
    "MAX_HIDDEN_LAYERS",
    "MAX_HIDDEN_WIDTH",
    "MAX_INT_DIGITS",
    "MAX_MEMBERS",
    "MAX_WEIGHTS",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "Config",
    "DataConfig",
    "FrozenMap",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Phase",
    "PhysicsLossConfig",
    "Range",
    "TrainConfig",
    "estimated_weights",
    "load_yaml",
    "parse_set_value",
]

#: Largest YAML text (a config file, a sweep space, a ``--set`` value) [bytes]; larger
#: files are refused after reading at most this many bytes plus one.
MAX_YAML_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in YAML (a config needs three or four levels).
MAX_YAML_DEPTH = 50
#: Most values a YAML text may expand to through anchors and aliases (``&a`` / ``*a``).
MAX_YAML_VALUES = 100_000
#: Most digits of an integer in YAML (Python refuses to convert more than 4,300).
MAX_INT_DIGITS = 30
#: Most hidden layers (``model.hidden``); every layer is unrolled when compiling.
MAX_HIDDEN_LAYERS = 64
#: Largest width of one hidden layer (``model.hidden``).
MAX_HIDDEN_WIDTH = 16_384
#: Largest deep ensemble (``train.members``).
MAX_MEMBERS = 1024
#: Largest estimated number of hidden-layer weights of the whole ensemble
#: (:func:`estimated_weights`): 5e8 float32 weights are 2 GB, about 8 GB with gradients
#: and optimiser state, before any activations.
MAX_WEIGHTS = 500_000_000


class FrozenMap(Mapping[str, float]):
    """An immutable, hashable ``{name: number}`` mapping (e.g. a slope per field)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | None = None) -> None:
        self._items = tuple(sorted((str(k), float(v)) for k, v in dict(items or {}).items()))

    def __getitem__(self, key: str) -> float:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._items == other._items
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({dict(self._items)!r})"


def _sci(x: float) -> str:
    """``1.7e10`` style (one decimal unless it is 0, no ``+`` or leading zeros in the exponent)."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (and safe for integers of any size)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's 4,300-digit str() limit
        text = f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Range:
    """The allowed interval of a numeric config field (declared in the field's metadata).

    ``validate()`` checks every field that declares a range (each element of a list
    field), and ``tools/config_docs.py`` prints it in docs/configuration.md.

    Attributes:
        low: Smallest allowed value (excluded when ``low_open``).
        high: Largest allowed value (excluded when ``high_open``).
        low_open: ``low`` itself is not allowed.
        high_open: ``high`` itself is not allowed.
        also: Single values allowed outside the interval (e.g. ``0`` = off).
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    also: tuple[float, ...] = ()

    def contains(self, value: float) -> bool:
        """Whether ``value`` is allowed."""
        if value in self.also:
            return True
        ok_low = value > self.low if self.low_open else value >= self.low
        ok_high = value < self.high if self.high_open else value <= self.high
        return ok_low and ok_high

    def check(self, name: str, value: float) -> None:
        """Raise ConfigError naming ``name`` when ``value`` is outside the range."""
        if not self.contains(value):
            raise ConfigError(f"{name}: value {_show(value)} is out of range; allowed {self}.")

    def __str__(self) -> str:
        text = f"{'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        return " or ".join([*(str(v) for v in self.also), text])


def _meta(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    also: tuple[float, ...] = (),
    rule: str = "",
) -> dict[str, Any]:
    """Field metadata: an allowed :class:`Range` and/or a ``rule`` checked across fields."""
    out: dict[str, Any] = {}
    if low is not None and high is not None:
        out["range"] = Range(low, high, low_open, high_open, also)
    if rule:
        out["rule"] = rule
    return out


#: Rules that involve more than one field (checked in ``validate()``, listed in the docs).
_ONCE = "each name at most once"
_FRACTIONS = "data.val_fraction + data.test_fraction < 0.95"
_HIDDEN = f"1 to {MAX_HIDDEN_LAYERS} layers; the ensemble's estimated weights at most {_sci(MAX_WEIGHTS)}"
_HEADS = "divides model.interaction_dim when model.interaction is attention"
_WEIGHTS = f"the ensemble's estimated weights at most {_sci(MAX_WEIGHTS)} (see model.hidden)"


def estimated_weights(hidden: tuple[int, ...] | list[int], members: int) -> int:
    """A lower bound of the number of trainable weights of the ensemble's hidden layers.

    ``members * sum(w_i * w_{i+1} + w_i)`` over consecutive hidden widths (the matrices
    between hidden layers and one bias per unit); input, output and interaction layers
    come on top. :meth:`Config.validate` refuses more than :data:`MAX_WEIGHTS` before
    anything is compiled or allocated.
    """
    widths = [int(w) for w in hidden]
    per_member = sum(a * b for a, b in itertools.pairwise(widths)) + sum(widths)
    return int(members) * per_member


def _check_declared(section: Any, prefix: str) -> None:
    """Check the declared range of every field of ``section`` (each element of a list)."""
    for f in dataclasses.fields(section):
        rng = f.metadata.get("range")
        value = getattr(section, f.name)
        if rng is None or value is None:
            continue
        if isinstance(value, tuple):
            for v in value:
                rng.check(f"{prefix}.{f.name}[]", v)
        else:
            rng.check(f"{prefix}.{f.name}", value)



@dataclass(frozen=True)
class DataConfig:
    """How a ProfileDataset becomes arrays.

    Attributes:
        fields: Profile fields to learn (empty = all fields of the dataset).
        monotone_fields: Fields declared non-increasing in radius, used by the monotone
            head (``model.monotone_head``) and by the soft monotonicity penalty
            (``loss.physics.monotonic_weight``). ``None`` = the density- and
            pressure-like fields (names such as ``rho``, ``density``, ``pth``,
            ``pressure``), never temperature.
        val_fraction: Fraction of groups (simulations) held out for early stopping and
            calibration when cross-validation is off (``train.cv_folds = 0``).
        test_fraction: Fraction of groups held out as an untouched test split (0: every
            row trains the Emulator; its error is then the cross-validation estimate).
        split_seed: Seed of the group split.
        input_scaler: ``"standard"`` (mean/std) or ``"robust"`` (median/MAD·1.4826). The halo
            mass and redshift inputs (and a parameter column named ``z`` or ``Redshift``) are
            divided by at least 0.2 dex and 0.25 in z: scaled by
            the spread of one narrow mass bin (0.008 dex in a CAMELS LH bin), a halo half a dex
            heavier would be 60 spreads out, where the network's output is unconstrained.
        target_scaler: Same choices, applied per field and radius to log10 profiles.
        scale_floor: Smallest allowed scale, so constant columns never divide by ~0.
        pca_components: 0 = predict every radius directly; K > 0 = predict K PCA
            coefficients of the standardised log profiles (decoded linearly).
        self_similar: ``"auto"``: learn each density, pressure or temperature profile
            divided by the halo's self-similar scale (Δ f_b ρ_crit, P_Δ, T_Δ; see
            :mod:`profemu.data.selfsimilar`) when the data give the mass definition,
            the redshift and Omega_m (else, with one log line, plain log10);
            ``"off"``: plain log10 profiles.
        radial_coordinate: Where the network draws the profile: ``"physical"``: on the
            dataset's radii; ``"scaled"``: on a grid in x = r / R_Δ (the halo's own radius,
            from the mass definition, redshift and cosmology of the self-similar
            normalisation), interpolated back to the dataset's radii, so a heavier halo's
            profile is the same shape moved outwards and extrapolation in mass and redshift
            starts from that shape; ``"hybrid"``: both, the profile inside half of R_Δ drawn
            on the dataset's radii (a core shaped at fixed physical scales by feedback and
            cooling), outside it on r / R_Δ (outskirts that follow the halo's size), with a
            0.25 dex transition (physical radii where r / R_Δ cannot apply or with
            ``model.monotone_head``, with a log line): the default. On CAMELS TNG trained on 10^11-10^12 Msun and tested on
            10^12-10^12.3 it cut the median error from 0.151 to 0.129 (rho) and 0.265 to
            0.241 (pth) against physical radii (seed 0; 0.161 to 0.134 and 0.271 to 0.230
            with seed 1), with the same 5-fold CV errors inside the box (rho 3.65% vs 3.67%,
            pth 9.51% vs 9.47%) and a lower one on the hard mock (5.11% vs 5.44% against
            the truth, 2,000 haloes);
            ``"auto"``: ``"scaled"`` when the self-similar normalisation applies and the
            radii are physical lengths, else ``"physical"`` (one log line says which). The
            user always sees their own radii.
        gas_fraction_bound: ``"auto"``: a gas density field normalised by its
            self-similar scale (Δ f_b ρ_ref) on radii in units of the mass definition's
            R_Δ (e.g. ``"R200c"`` with ``M200c``), from at most 0.1 R_Δ to at least R_Δ,
            is predicted as ``ρ = ρ_net / (1 + F_net)``, with ``F_net`` the gas mass
            inside R_Δ of ``ρ_net`` over ``f_b M_Δ``: the halo's gas inside R_Δ then
            never exceeds its share of the cosmic baryons, and where the network's gas
            fraction grows as a power of mass (as it does inside the data) the prediction
            levels off towards the cosmic fraction beyond them (the baryon-correction
            model's ``1 / (1 + (M_c/M)^β)``). The log says which fields it bounds or why
            none. ``"off"``: no bound.
        ideal_gas_temperature: ``"auto"``: when a temperature, a pressure and a gas
            density are learnt together, each over its self-similar scale (recognised
            units), the temperature is predicted as the ideal gas's,
            ``T/T_Δ = (P/P_Δ) / (ρ/ρ_Δ)``, times a learnt correction (``10^δ``; δ is the
            network's temperature output, 0 at the training centre of ``T - P/ρ``), so
            beyond the data it follows the pressure and the (bounded) density instead of
            extrapolating on its own; ``"off"``: the temperature is a field of its own.
        input_relevance: ``"ard"``: multiply each standardised parameter by its relevance
            from an ARD Gaussian process fitted once per run on the training rows (reused by every fold and the refit) (min(l)/l_j; an
            irrelevant parameter gets ~0; see :mod:`profemu.train.relevance`); ``"auto"``:
            ARD for suites with at least 10 parameters and at most 5,000 training rows;
            ``"off"``: every parameter weighs 1.
        relevance_rows: Most training rows (a seeded random subset) the relevance GP is
            fitted on; its cost grows as the cube. 500 by default; on the hard mock
            universe at 1,600 training rows, 2,000 lowered the error against the noiseless
            truth from 7.9% to 7.3% (fold 0) at 2.7x the training time.
        pk_components: How the P(k) suppression vector enters the network: 0 = every
            k bin, scaled; K > 0 = its first K principal components (fitted on the
            training split); ``None`` = as many components (4 to 8) as explain 99.9% of
            its variance.
        features: Named engineered features (see :mod:`profemu.data.features`), e.g.
            ``["omega_b_over_omega_m", "mass_deviation", "pk_summary"]``.
        augment_noise: Std of Gaussian noise added to normalised inputs while training (0 = off).
        augment_seed: Seed of that noise.
    """

    fields: tuple[str, ...] = field(default=(), metadata=_meta(rule=_ONCE))
    monotone_fields: tuple[str, ...] | None = field(default=None, metadata=_meta(rule=_ONCE))
    val_fraction: float = field(default=0.1, metadata=_meta(0.0, 0.9, rule=_FRACTIONS))
    test_fraction: float = field(default=0.0, metadata=_meta(0.0, 0.9, rule=_FRACTIONS))
    split_seed: int = 0
    input_scaler: Literal["standard", "robust"] = "standard"
    target_scaler: Literal["standard", "robust"] = "standard"
    scale_floor: float = field(default=1e-6, metadata=_meta(0.0, 1.0, low_open=True))
    pca_components: int = field(default=0, metadata=_meta(0, 10_000))
    self_similar: Literal["auto", "off"] = "auto"
    radial_coordinate: Literal["auto", "physical", "scaled", "hybrid"] = "hybrid"
    gas_fraction_bound: Literal["auto", "off"] = "auto"
    ideal_gas_temperature: Literal["auto", "off"] = "auto"
    input_relevance: Literal["auto", "ard", "off"] = "auto"
    relevance_rows: int = field(default=500, metadata=_meta(20, 20_000))
    pk_components: int | None = field(default=None, metadata=_meta(0, 10_000))
    features: tuple[str, ...] = field(default=(), metadata=_meta(rule=_ONCE))
    augment_noise: float = field(default=0.0, metadata=_meta(0.0, 10.0))
    augment_seed: int = 0

    def validate(self) -> None:
        _check_declared(self, "data")
        if self.val_fraction + self.test_fraction >= 0.95:
            raise ConfigError(
                "data.val_fraction + data.test_fraction must be < 0.95 so that training data remain; "
                f"got {self.val_fraction} + {self.test_fraction}."
            )
        for name in ("fields", "monotone_fields", "features"):
            _check_unique(f"data.{name}", getattr(self, name) or ())


@dataclass(frozen=True)
class ModelConfig:
    """Network architecture.

    Attributes:
        kind: ``"mlp"`` (SimpleMLP) or ``"physics"`` (PhysicsInformedCore).
        hidden: Widths of the hidden layers of the MLP / of the physics core's head.
            ``[64, 64]`` by default: against ``[128, 128]`` (with ``train.patience`` 30
            against 60) it trained 1.5-2.3x faster for the same 5-fold CV error on 1,600
            CAMELS TNG rows (rho 3.71% vs 3.68%, pth 9.49% vs 9.52%) and a lower error
            against the truth on the hard mock (10.7% vs 11.0% at 600 rows, 6.8% vs 6.9%
            at 2,000).
        activation: ``"gelu"``, ``"silu"``, ``"tanh"``, ``"relu"`` or ``"softplus"``.
        dropout: Dropout rate in the hidden layers (0 = off).
        var_floor: Floor of the predicted variance in normalised target units.
        heteroscedastic: Learn the variance per input (True) or a per-output constant.
        monotone_head: Build the fields declared monotone (``data.monotone_fields``)
            with the monotone head, non-increasing in radius by construction.
        interaction: Physics core only: how parameters interact before the trunk,
            ``"fm"`` (factorisation machine, O(p E)), ``"film"`` (FiLM conditioning of
            every hidden layer by the parameters), ``"attention"`` (self-attention over
            parameter tokens) or ``"none"``.
        interaction_dim: Width ``E`` of the interaction features (FM factors,
            attention token width).
        attention_heads: Heads of the attention interaction (divide ``interaction_dim``).
        mass_head: Physics core only: ``"power_law"`` (the output is a power law in
            mass by construction, log y = a(theta, r) + b(theta, r) (log10 M - pivot)
            [+ c (log10 M - pivot)^2]; the trunk does not see the mass) or ``"input"``
            (mass is one more trunk input).
        mass_order: 1 (power law) or 2 (with a bounded curvature term).
        slope_bound: Largest |d log10 y / d log10 M| of the power-law head [dex/dex].
        curvature_bound: Largest |d^2 log10 y / d (log10 M)^2| of the curvature term.
    """

    kind: Literal["mlp", "physics"] = "mlp"
    hidden: tuple[int, ...] = field(default=(64, 64), metadata=_meta(1, MAX_HIDDEN_WIDTH, rule=_HIDDEN))
    activation: Literal["gelu", "silu", "tanh", "relu", "softplus"] = "gelu"
    dropout: float = field(default=0.0, metadata=_meta(0.0, 0.95))
    var_floor: float = field(default=1e-4, metadata=_meta(0.0, 1.0, low_open=True))
    heteroscedastic: bool = True
    monotone_head: bool = False
    interaction: Literal["fm", "film", "attention", "none"] = "fm"
    interaction_dim: int = field(default=16, metadata=_meta(1, 4096))
    attention_heads: int = field(default=2, metadata=_meta(1, 64, rule=_HEADS))
    mass_head: Literal["power_law", "input"] = "power_law"
    mass_order: int = field(default=2, metadata=_meta(1, 2))
    slope_bound: float = field(default=3.0, metadata=_meta(0.0, 100.0, low_open=True))
    curvature_bound: float = field(default=1.0, metadata=_meta(0.0, 100.0, low_open=True))

    def validate(self) -> None:
        if not self.hidden:
            raise ConfigError("model.hidden: needs at least one layer width, e.g. [256, 256, 256].")
        if len(self.hidden) > MAX_HIDDEN_LAYERS:
            raise ConfigError(f"model.hidden: {len(self.hidden):,} layers, more than the limit of "
                              f"{MAX_HIDDEN_LAYERS}; use fewer, wider layers, e.g. [256, 256, 256].")
        _check_declared(self, "model")
        if self.interaction == "attention" and self.interaction_dim % self.attention_heads:
            raise ConfigError(
                f"model.interaction_dim ({self.interaction_dim}) must be divisible by "
                f"model.attention_heads ({self.attention_heads})."
            )


@dataclass(frozen=True)
class PhysicsLossConfig:
    """Soft physics penalties on the predicted mean (each logged as its own component).

    Attributes:
        monotonic_weight: Weight of the hinge on positive d log y / d log r of the fields
            declared monotone (``data.monotone_fields``).
        monotonic_window: [r_min, r_max] in units of the dataset's radius where it applies
            (``null`` = everywhere).
        smoothness_weight: Weight of squared second differences in log r.
        mass_scaling_weight: Weight of the penalty on |d log y/d log M - slope| beyond tolerance.
        mass_scaling_slopes: Declared slope per field, e.g. ``{"pth": 0.667}``.
        mass_scaling_tolerance: Allowed deviation from the declared slope.
        boundary_weight: Weight of the outer-radius boundary condition.
        boundary_slopes: Declared d log y / d log r at the outermost radius per field.
        boundary_tolerance: Allowed deviation of that slope.
    """

    monotonic_weight: float = field(default=0.0, metadata=_meta(0.0, 1e6))
    monotonic_window: tuple[float, float] | None = field(default=None, metadata=_meta(rule="r_min < r_max"))
    smoothness_weight: float = field(default=0.0, metadata=_meta(0.0, 1e6))
    mass_scaling_weight: float = field(default=0.0, metadata=_meta(0.0, 1e6))
    mass_scaling_slopes: FrozenMap = field(default_factory=FrozenMap)
    mass_scaling_tolerance: float = field(default=0.5, metadata=_meta(0.0, 100.0))
    boundary_weight: float = field(default=0.0, metadata=_meta(0.0, 1e6))
    boundary_slopes: FrozenMap = field(default_factory=FrozenMap)
    boundary_tolerance: float = field(default=1.0, metadata=_meta(0.0, 100.0))

    def validate(self) -> None:
        _check_declared(self, "loss.physics")
        if self.monotonic_window is not None and (
            len(self.monotonic_window) != 2 or not self.monotonic_window[0] < self.monotonic_window[1]
        ):
            raise ConfigError(
                "loss.physics.monotonic_window: must be [r_min, r_max] with r_min < r_max, or null; "
                f"got {self.monotonic_window}."
            )


@dataclass(frozen=True)
class LossConfig:
    """The data term and the physics terms.

    Attributes:
        likelihood: ``"nll"`` (Gaussian), ``"beta_nll"``, ``"mse"``, ``"huber"`` or ``"pinball"``.
        beta: Exponent of beta-NLL (0 = plain NLL, 1 = MSE-like gradients).
        huber_delta: Transition of the Huber loss [normalised units].
        quantiles: Quantiles for the pinball loss (the model's mean is the median).
        use_target_noise: Add the dataset's known per-element noise variance to the
            predicted variance in the likelihood.
        physics: Soft physics penalties.
    """

    likelihood: Literal["nll", "beta_nll", "mse", "huber", "pinball"] = "nll"
    beta: float = field(default=0.5, metadata=_meta(0.0, 1.0))
    huber_delta: float = field(default=1.0, metadata=_meta(0.0, 1e3, low_open=True))
    quantiles: tuple[float, ...] = field(default=(0.16, 0.5, 0.84),
                                         metadata=_meta(0.0, 1.0, low_open=True, high_open=True))
    use_target_noise: bool = True
    physics: PhysicsLossConfig = field(default_factory=PhysicsLossConfig)

    def validate(self) -> None:
        _check_declared(self, "loss")
        if self.likelihood == "pinball" and not self.quantiles:
            raise ConfigError("loss.quantiles: [] with loss.likelihood 'pinball'; give at least one quantile in "
                              "(0, 1), e.g. [0.16, 0.5, 0.84].")
        self.physics.validate()


@dataclass(frozen=True)
class OptimConfig:
    """optax.chain(clip_by_global_norm, adamw) on a warm-up + decay schedule.

    Attributes:
        learning_rate: Peak learning rate (5e-3 with the default minibatches of 128 rows; see
            ``train.batch_size``). 1e-2 lowered the 5-fold CV errors on CAMELS TNG (rho 3.58% vs
            3.65%, pth 9.37% vs 9.51%, seed 0; 3.60% vs 3.67% and 9.34% vs 9.43%, seed 1) but raised
            those beyond the data: trained on the one mass bin 10^11-10^11.5 Msun, the median error
            on 10^11.5-10^12 was 0.191 / 0.170 / 0.155 (rho, training seeds 0 / 1 / 2) against 0.145 /
            0.138 / 0.141, and 0.318 / 0.329 / 0.341 (pth) against 0.279 / 0.308 / 0.310
            (``benchmarks/extrapolation.py``, suite ``one_bin``); so 5e-3 stays.
        weight_decay: AdamW decoupled weight decay.
        clip_norm: Global gradient-norm clip.
        warmup_epochs: Linear warm-up length [epochs].
        schedule: ``"cosine"``, ``"exponential"`` or ``"constant"`` after warm-up.
        decay_rate: Per-epoch factor of the exponential schedule.
        end_lr_fraction: Final learning rate of the cosine schedule, as a fraction of the peak.
        plateau_patience: Epochs without improvement before reduce-on-plateau halves the
            learning rate (0 = off).
        plateau_factor: Factor applied on a plateau.
    """

    learning_rate: float = field(default=5e-3, metadata=_meta(0.0, 100.0, low_open=True))
    weight_decay: float = field(default=1e-4, metadata=_meta(0.0, 10.0))
    clip_norm: float = field(default=1.0, metadata=_meta(0.0, 1e6, low_open=True))
    warmup_epochs: int = field(default=10, metadata=_meta(0, 100_000))
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    decay_rate: float = field(default=0.98, metadata=_meta(0.0, 1.0, low_open=True))
    end_lr_fraction: float = field(default=0.01, metadata=_meta(0.0, 1.0))
    plateau_patience: int = field(default=0, metadata=_meta(0, 100_000))
    plateau_factor: float = field(default=0.5, metadata=_meta(0.0, 1.0, low_open=True, high_open=True))

    def validate(self) -> None:
        _check_declared(self, "optim")


@dataclass(frozen=True)
class Phase:
    """One curriculum phase: from ``start_epoch`` on, these multipliers apply.

    Attributes:
        start_epoch: First epoch of the phase.
        physics_scale: Multiplier of every physics weight (ramped linearly from the
            previous phase's value over ``ramp_epochs``).
        dropout: Whether dropout is active.
        ramp_epochs: Length of the linear ramp of ``physics_scale``.
    """

    start_epoch: int = field(default=0, metadata=_meta(0, 10_000_000, rule="increasing from phase to phase"))
    physics_scale: float = field(default=1.0, metadata=_meta(0.0, 1e6))
    dropout: bool = True
    ramp_epochs: int = field(default=0, metadata=_meta(0, 10_000_000))

    def validate(self) -> None:
        _check_declared(self, "train.curriculum[]")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
        members: Deep-ensemble size (members train together under ``jax.vmap``).
        seed: Seed of initialisation and data order (member m uses a key folded from it).
        epochs: Maximum number of epochs.
        batch_size: Minibatch size (at most the training rows). 128 by default, with a peak
            learning rate of 5e-3: against 64 and 3e-3 the same out-of-fold errors (5-fold CV
            by simulation, seed 0: CAMELS TNG rho 3.67% both, pth 9.47% vs 9.46%; hard mock
            against the truth at 300 / 600 / 2,000 rows 12.0% / 9.30% / 5.44% vs 12.0% / 9.32%
            / 5.42%; TNG 100-400 rows within 0.2 points) in 0.67x the time on the 2,000-row
            hard mock and 0.87x on 1,600 TNG rows.
        patience: Early-stopping patience [epochs] on the validation metric (0 = off).
        max_seconds: Wall-clock budget (0 = none); the best parameters so far are kept.
        max_consecutive_failures: Non-finite steps in a row before a rollback to the last
            good state with the learning rate halved.
        max_rollbacks: Rollbacks before training gives up (keeping the best finite model).
        checkpoint_every: Epochs between checkpoints in a run folder (0 = only at the end).
        log_every: Epochs between progress lines.
        curriculum: Phases; empty = physics on and dropout on from the start.
        calibrate: Fit one post-hoc variance scale (stored in the Emulator) so that
            predictive intervals are calibrated: on the cross-validation folds' held-out
            predictions, or on the validation split when cross-validation is off.
        cv_folds: Cross-validation by simulation, then a refit on every row: ``K >= 2``
            folds estimate the error (out-of-fold predictions), the epoch count and the
            variance scale, and the final Emulator learns from all rows (except an explicit
            ``data.test_fraction``) for that many epochs. ``0`` = one validation split
            (``data.val_fraction``) for early stopping and calibration, as for large
            suites. ``None`` (default) = 5 folds up to 3,000 simulations, else 0.
        cv_members: Networks trained per cross-validation fold (default 1). The folds'
            networks train together as one compiled program, each on its own rows (with 5
            folds and 5 members, the refit's program). Their out-of-fold predictions are a
            single network's, a slightly pessimistic estimate of the final ensemble's error;
            the variance scale accounts for the difference (:mod:`profemu.train.cv`).
            ``cv_members = train.members`` trains a whole ensemble per fold, at that many
            times the cost.
        warm_refit_epochs: After a cross-validation, the refit's members continue the
            folds' networks (member ``i`` fold network ``i``, each at its best epoch) on every
            row for the last this-many epochs of the learning-rate schedule (fresh Adam
            moments; at most a fifth of ``train.epochs``, the schedule's low-rate tail, and at
            least 1). ``0``, or more members than the folds'
            networks, trains the refit from new initial parameters for the folds' median best
            epoch instead. On CAMELS TNG (1,600 rows, 5 outer folds) 20 epochs matched that
            refit's error (rho 3.67% vs 3.65%, pth 9.46% vs 9.43%) and cut its time from about
            2 s to 0.3 s; on the 35-parameter hard mock it matched it against the truth too
            (9.30% vs 9.33% at 600 rows, 5.37% vs 5.45% at 2,000).
        auto_capacity: Compare a few architectures (narrow, regularised, the other kind)
            by 3-fold group cross-validation before training and train the best
            (:mod:`profemu.train.select`): ``"auto"`` on training sets of at most 1,000
            rows, ``"on"``, or ``"off"`` (default: on the hard mock universe at 600 rows
            it did not beat the default network with input relevance weighting, at 4x
            the training time; see BENCHMARKS.md).
        gp_blend: Mix an exact ARD Gaussian process on the network's own inputs into the
            prediction, ``w * network + (1 - w) * GP`` with the weight per field fitted on
            out-of-fold (network) and leave-one-out (GP) predictions, the variance
            recalibrated for the mix (:mod:`profemu.train.blend`; needs cross-validation):
            ``"auto"`` on suites with at least 10 parameters and at most 2,500 training
            rows and on every suite of at most 300 (not with ``model.monotone_head``: a GP's
            mean is not monotone), ``"on"`` (at most 3,000 rows), ``"off"``. On the
            35-parameter hard mock it lowered the error against the truth below both the
            network's and the GP's; on CAMELS TNG rho it did so at 100-300 rows, and at 600
            and 1,400 rows the network alone was better. Beyond the training masses and redshifts
            the GP's share fades within 0.1 dex (or 0.1 in z): the network carries the
            trend there (:data:`profemu.emulator.blend.FADE`).
        extrapolation_variance: Fit the variance that grows outside the training box
            (:mod:`profemu.emulator.extrapolation`) by one more training on the lower half
            of the rows in halo mass, scored on the upper half (and, with at least three
            training redshifts, one more on the lower redshifts for the redshift's own
            term); after a cross-validation it trains the refit's members from new initial
            parameters, for the whole schedule where they continue the folds' networks (each
            on a thread of its own beside the cross-validation when two cores are free:
            :mod:`profemu.runs.heldout`), else for the folds' median best epoch after the
            refit; without one it is a lighter
            training (one validation split, at most 3 members). ``"auto"`` on runs of at
            least 100 training rows whose upper half in mass lies (median) at least 0.1 dex
            above the lower half, with at least 25 on each side of their median (else, on
            rows at three or more redshifts, the redshift's own term alone), ``"on"``,
            ``"off"``. On CAMELS TNG, 0-0.3 dex above
            the training masses, the default's 68% coverage is 0.69 (rho) and 0.73 (pth)
            with training seed 0 (0.66-0.73 over seeds 0-2), against 0.52 and 0.42 for the
            plain MLP without it and without self-similar scaling (BENCHMARKS.md).
    """

    members: int = field(default=5, metadata=_meta(1, MAX_MEMBERS, rule=_WEIGHTS))
    seed: int = 0
    epochs: int = field(default=150, metadata=_meta(1, 10_000_000))
    batch_size: int = field(default=128, metadata=_meta(1, 10_000_000))
    patience: int = field(default=30, metadata=_meta(0, 10_000_000))
    max_seconds: float = field(default=0.0, metadata=_meta(0.0, 1e9))
    max_consecutive_failures: int = field(default=5, metadata=_meta(1, 10_000))
    max_rollbacks: int = field(default=8, metadata=_meta(0, 10_000))
    checkpoint_every: int = field(default=0, metadata=_meta(0, 10_000_000))
    log_every: int = field(default=10, metadata=_meta(1, 10_000_000))
    curriculum: tuple[Phase, ...] = ()
    calibrate: bool = True
    cv_folds: int | None = field(default=None, metadata=_meta(2, 100, also=(0,)))
    cv_members: int = field(default=1, metadata=_meta(1, 64))
    warm_refit_epochs: int = field(default=20, metadata=_meta(0, 10_000_000))
    auto_capacity: Literal["auto", "on", "off"] = "off"
    extrapolation_variance: Literal["auto", "on", "off"] = "auto"
    gp_blend: Literal["auto", "on", "off"] = "auto"

    def validate(self) -> None:
        _check_declared(self, "train")
        starts = [p.start_epoch for p in self.curriculum]
        if starts != sorted(starts):
            raise ConfigError(f"train.curriculum: phases must be in increasing start_epoch; got {starts}.")
        for p in self.curriculum:
            p.validate()


@dataclass(frozen=True)
class Config:
    """The whole configuration of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        """Check every value; returns self so it can be chained."""
        for section in (self.data, self.model, self.loss, self.optim, self.train):
            section.validate()
        weights = estimated_weights(self.model.hidden, self.train.members)
        if weights > MAX_WEIGHTS:
            hidden = list(self.model.hidden)
            shown = str(hidden) if len(hidden) <= 8 else f"[{hidden[0]}, ... {len(hidden)} layers]"
            raise ConfigError(
                f"model.hidden={shown} with train.members={self.train.members} is ~{_sci(weights)} weights "
                f"(limit {_sci(MAX_WEIGHTS)}): use fewer members or narrower layers."
            )
        return self

    # ---------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of lists, dicts, numbers and strings (JSON/YAML-serialisable)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Config:
        """Build from a nested mapping; unknown keys and wrong types raise ConfigError."""
        cfg = _build(cls, data or {}, "")
        return cfg.validate()

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from profemu._files import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        """Read a YAML file with :func:`load_yaml` (no code is executed; ``off`` stays a string)."""
        p = Path(path)
        data = load_yaml(p, what="config file")
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"config file {str(p)!r}: top level must be a mapping of sections.")
        return cls.from_dict(data)

    def updated(self, changes: Mapping[str, Any]) -> Config:
        """A copy with dotted-key overrides applied, e.g. ``{"optim.learning_rate": 1e-3}``."""
        data = self.to_dict()
        for dotted, value in changes.items():
            if dotted in _RENAMED:
                raise ConfigError(f"{dotted}: this key was replaced by {_RENAMED[dotted]}; update the key.")
            keys = dotted.split(".")
            node = data
            for key in keys[:-1]:
                if not isinstance(node, dict) or key not in node:
                    raise ConfigError(f"unknown config key {dotted!r}.")
                node = node[key]
            if not isinstance(node, dict) or keys[-1] not in node:
                valid = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f"unknown config key {dotted!r}; valid keys here: {valid}.")
            node[keys[-1]] = value
        return Config.from_dict(data)


# ------------------------------------------------------------------------ helpers
def _check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (ok_low and ok_high):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"{name}: value {_show(value)} is out of range; allowed {lo}{low}, {high}{hi}.")


def _check_unique(name: str, names: tuple[str, ...]) -> None:
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise ConfigError(f"{name}: {sorted(set(seen))} listed more than once in {list(names)}; list each once.")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for old in data:
        new = _RENAMED.get(f"{prefix}{old}")
        if new is not None:
            raise ConfigError(f"{prefix}{old}: this key was replaced by {new}; update the configuration.")
    unknown = [k for k in data if k not in names]
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {names}.")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return _build(tp, value if value is not None else {}, f"{name}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, name)
    if origin is Literal:
        if isinstance(value, bool) and ("on" if value else "off") in args:
            return "on" if value else "off"  # a YAML 1.1 reader turned on/off into true/false
        if isinstance(value, str) and value not in args and value.strip().lower() in args:
            return value.strip().lower()
        if value not in args:
            raise ConfigError(f"{name}: {_show(value)} is not allowed; choose one of {list(args)}.")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {_show(value)}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{name}[]") for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected a list of {len(args)} values, got {_show(value)}.")
        return tuple(_coerce(a, v, f"{name}[]") for a, v in zip(args, value, strict=True))
    if tp is FrozenMap:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of name: number, got {_show(value)}.")
        return FrozenMap({str(k): _coerce(float, v, f"{name}.{k}") for k, v in value.items()})
    if tp is bool:
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false (or on/off, yes/no), got {_show(value)}.")
        return value
    if tp is int:
        value = _number(value, name, "an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name}: expected an integer, got {_show(value)}.")
            return int(value)
        return value
    if tp is float:
        value = float(_number(value, name, "a number"))
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {_show(value)}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {_show(value)}.")
        return value
    return value


def _number(value: Any, name: str, what: str) -> int | float:
    """An int or float from a number or a numeric string.

    YAML 1.1 (PyYAML) reads ``1e-3`` (no dot) as a string; such strings are accepted.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected {what}, got {value!r}.")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()) and _digits(value) > MAX_INT_DIGITS:
        raise ConfigError(f"{name}: the integer {_show(value, 30)} has {_digits(value):,} digits; "
                          f"write at most {MAX_INT_DIGITS} digits (or a float such as 1e40).")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            pass
    raise ConfigError(f"{name}: expected {what}, got {_show(value)}.")


#: Words accepted for a true/false field (YAML 1.2 reads only true/false as booleans).
_BOOL_WORDS = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False}


def _plain(obj: Any) -> Any:
    """Frozen configs -> nested plain dicts and lists (the YAML/JSON form)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- YAML
_INT_TEXT = re.compile(r"[-+]?[0-9][0-9a-fA-FxXoObB_:]*")
_YAML_TAG = "tag:yaml.org,2002:"


def _digits(text: str) -> int:
    """Digits of an integer literal (sign, ``_``, ``:`` and a ``0x``/``0b``/``0o`` prefix not counted)."""
    body = text.strip().lstrip("+-")
    if body[:2].lower() in ("0x", "0b", "0o"):
        body = body[2:]
    return sum(ch not in "_:" for ch in body)


class _Refused(Exception):
    """A YAML construct profemu refuses; the message follows the name of the source."""


class _SafeYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads what a user means and refuses what would hurt.

    * only ``true``/``false`` (any case) are booleans, so ``on``/``off``/``yes``/``no``
      stay strings (YAML 1.2); ``1e-3`` is a float, as in YAML 1.2;
    * a key repeated in one mapping is refused (YAML would silently keep the last);
    * nesting deeper than :data:`MAX_YAML_DEPTH` is refused while composing, before any
      recursion could exhaust the stack;
    * integers of more than :data:`MAX_INT_DIGITS` digits are refused;
    * any tag without a safe constructor (``!!python/...``, ``!custom``) is refused with
      its name.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[Any, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML_TAG + "bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(f"nests lists/mappings deeper than {MAX_YAML_DEPTH} levels (line {line}); "
                               "a configuration needs a few levels only: flatten it.")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _YAML_TAG + "merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: PyYAML's own error names it
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _Refused(f"has the key {_show(key)} twice in one mapping (lines {first} and {line}); "
                                   "keep one of them (YAML would silently use the last).")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_checked_int(self, node: Any) -> int:
        text = str(self.construct_scalar(node))
        if _digits(text) > MAX_INT_DIGITS:
            raise _Refused(f"has an integer of {_digits(text):,} digits on line {node.start_mark.line + 1} "
                           f"({text.strip()[:12]}...); write at most {MAX_INT_DIGITS} digits "
                           "(or a float such as 1e40).")
        return super().construct_yaml_int(node)

    def construct_unknown_tag(self, node: Any) -> Any:
        tag = str(node.tag)
        shown = "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag
        raise _Refused(f"has the tag {_show(shown)} on line {node.start_mark.line + 1}, which profemu never "
                       "loads (not valid YAML for a configuration); remove the tag: write plain numbers, "
                       "strings, true/false, lists and mappings.")


_SafeYamlLoader.add_implicit_resolver(
    _YAML_TAG + "bool", re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF")
)
_SafeYamlLoader.add_implicit_resolver(  # YAML 1.2 floats without a dot: 1e-3, -2E5
    _YAML_TAG + "float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
_SafeYamlLoader.add_constructor(_YAML_TAG + "int", _SafeYamlLoader.construct_checked_int)
_SafeYamlLoader.add_constructor(None, _SafeYamlLoader.construct_unknown_tag)


def _check_expansion(data: Any) -> None:
    """Refuse self-containing values and aliases that expand beyond the limits, without recursion."""
    containers = (list, dict, tuple, set)
    if not isinstance(data, containers):
        return
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values when written out, depth)
    active: set[int] = set()
    keep: list[Any] = []  # keeps every visited object alive, so ids stay unique
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        item, done = stack.pop()
        oid = id(item)
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
        nested = [c for c in children if isinstance(c, containers)]
        if done:
            active.discard(oid)
            size = 1 + len(children) - len(nested) + sum(sizes[id(c)][0] for c in nested)
            depth = 1 + max((sizes[id(c)][1] for c in nested), default=0)
            if size > MAX_YAML_VALUES:
                raise _Refused(f"expands to more than {MAX_YAML_VALUES:,} values through YAML aliases "
                               "(*name); write the values out.")
            if depth > MAX_YAML_DEPTH:
                raise _Refused(f"nests lists/mappings deeper than {MAX_YAML_DEPTH} levels through YAML "
                               "aliases (*name); flatten it.")
            sizes[oid] = (size, depth)
            continue
        if oid in sizes:
            continue
        if oid in active:
            raise _Refused("has a YAML alias (*name) inside the value it names; write the values out.")
        active.add(oid)
        keep.append(item)
        stack.append((item, True))
        stack.extend((c, False) for c in nested)


def _read_yaml_file(path: Path, name: str) -> str:
    """The text of ``path``: at most MAX_YAML_BYTES + 1 bytes read, UTF-8 required."""
    if not path.exists():
        raise ConfigError(f"{name} does not exist; pass the path of a YAML file.")
    if path.is_dir():
        raise ConfigError(f"{name} is a folder; pass the path of a YAML file.")
    if not path.is_file():
        raise ConfigError(f"{name} is not a regular file (a device or a pipe); pass the path of a YAML file.")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
            size = max(len(raw), _file_size(fh))
    except IsADirectoryError:
        raise ConfigError(f"{name} is a folder; pass the path of a YAML file.") from None
    except FileNotFoundError:
        raise ConfigError(f"{name} does not exist; pass the path of a YAML file.") from None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read ({exc.strerror or exc}); check the path and its permissions.") \
            from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{name} is {size:,} bytes, more than the {MAX_YAML_BYTES:,}-byte limit of a YAML "
                          "file; pass the configuration (is this a data file?).")
    return _decode(raw, name)


def _file_size(fh: Any) -> int:
    try:
        return os.fstat(fh.fileno()).st_size
    except OSError:
        return 0


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"{name} is UTF-16 (or UTF-32) text, not UTF-8; save it as UTF-8.")
    if b"\x00" in raw:
        raise ConfigError(f"{name} contains NUL bytes (a binary file, or UTF-16 text without a byte-order "
                          "mark), not UTF-8 YAML; save the configuration as UTF-8 text.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}, e.g. "
                          "Latin-1 or Windows-1252); save it as UTF-8.") from None


def load_yaml(source: str | Path, *, what: str) -> Any:
    """Parse YAML safely, as a user means it; every problem is a one-line ConfigError.

    * Only ``true``/``false`` (any case) are booleans: ``off``, ``on``, ``yes`` and ``no``
      stay strings (so ``data.input_relevance: off`` means the choice "off"; a true/false
      config field accepts these words too). ``1e-3`` is a float.
    * A key repeated in one mapping, nesting deeper than :data:`MAX_YAML_DEPTH`,
      integers of more than :data:`MAX_INT_DIGITS` digits, anchors and aliases that
      expand to more than :data:`MAX_YAML_VALUES` values or contain themselves, and any
      tag without a safe constructor (``!!python/object/...``) are refused; no code is
      ever executed.
    * A file is read with at most :data:`MAX_YAML_BYTES` + 1 bytes and must be UTF-8.

    Args:
        source: A :class:`~pathlib.Path` is a file to read; a ``str`` is the YAML text
            itself (e.g. the value of ``--set KEY=VALUE``).
        what: What the source is, for messages: for a file a noun the path is appended
            to (``"config file"`` gives ``config file 'cfg.yaml' ...``), for a text its
            full name (e.g. ``"--set 'model.hidden=[64]'"``).

    Returns:
        The parsed value (``None`` for an empty document).

    Raises:
        ConfigError: the file is missing, unreadable, too large or not UTF-8, the text is
            not valid YAML, or it uses a refused construct; the message names the source,
            the offending value and the fix.
    """
    if isinstance(source, Path):
        name = f"{what} {str(source)!r}"
        text = _read_yaml_file(source, name)
    else:
        name = what
        text = str(source)
        if len(text) > MAX_YAML_BYTES:
            raise ConfigError(f"{name} is {len(text):,} characters, more than the {MAX_YAML_BYTES:,}-byte "
                              "limit of a YAML text; pass a shorter value.")
    loader: _SafeYamlLoader | None = None
    try:
        loader = _SafeYamlLoader(text)
        data = loader.get_single_data()
        _check_expansion(data)
        return data
    except _Refused as exc:
        raise ConfigError(f"{name} {exc}") from None
    except RecursionError:
        raise ConfigError(f"{name} nests lists/mappings too deeply (limit {MAX_YAML_DEPTH} levels); "
                          "flatten it.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{name} is not valid YAML: {problem}{where}; fix the syntax there.") from None
    except yaml.YAMLError as exc:  # e.g. a reader error: a control character
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{name} is not valid YAML: {first}; fix the text.") from None
    except ValueError as exc:  # e.g. a date that does not exist (2024-02-30)
        raise ConfigError(f"{name} has a value YAML cannot convert ({_show(str(exc), 80)}); quote it "
                          "or fix it.") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_set_value(raw: str, *, key: str) -> Any:
    """The value of a command-line override ``--set KEY=VALUE``, read with :func:`load_yaml`.

    ``8`` is an int, ``1e-3`` a float, ``[64, 64]`` a list, ``true`` a bool, ``off`` the
    string "off", ``null`` (or ``~``) None; deep nesting, huge integers and tags are
    refused as in a config file.

    Raises:
        ConfigError: an empty value or one :func:`load_yaml` refuses; the message starts
            with ``--set 'KEY=VALUE'``.
    """
    item = f"{key}={raw}"
    name = f"--set {_show(item, 60)}"
    if not raw.strip():
        raise ConfigError(f"{name}: empty value; write e.g. --set {key}=8 (or null).")
    return load_yaml(raw, what=name)


#: Keys of earlier versions -> where the setting lives now.
_RENAMED: dict[str, str] = {
    "model.monotone_fields": "data.monotone_fields (which fields are monotone) and model.monotone_head",
    "loss.physics.monotonic_fields": "data.monotone_fields",
    "model.embed_dim": "model.interaction_dim",
    "model.mass_features": "model.mass_head",
    "model.pk_hidden": "data.pk_components (P(k) enters through a PCA basis)",
    "model.pk_conv_channels": "data.pk_components (P(k) enters through a PCA basis)",
}
