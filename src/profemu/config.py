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

import dataclasses
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from profemu.errors import ConfigError

__all__ = [
    "Config",
    "DataConfig",
    "FrozenMap",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Phase",
    "PhysicsLossConfig",
    "TrainConfig",
]


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
        input_scaler: ``"standard"`` (mean/std) or ``"robust"`` (median/MAD·1.4826).
        target_scaler: Same choices, applied per field and radius to log10 profiles.
        scale_floor: Smallest allowed scale, so constant columns never divide by ~0.
        pca_components: 0 = predict every radius directly; K > 0 = predict K PCA
            coefficients of the standardised log profiles (decoded linearly).
        self_similar: ``"auto"``: learn each density, pressure or temperature profile
            divided by the halo's self-similar scale (Δ f_b ρ_crit, P_Δ, T_Δ; see
            :mod:`profemu.data.selfsimilar`) when the data give the mass definition,
            the redshift and Omega_m (else, with one log line, plain log10);
            ``"off"``: plain log10 profiles.
        input_relevance: ``"ard"``: multiply each standardised parameter by its relevance
            from an ARD Gaussian process fitted on the training rows (min(l)/l_j; an
            irrelevant parameter gets ~0; see :mod:`profemu.data.relevance`); ``"auto"``:
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

    fields: tuple[str, ...] = ()
    monotone_fields: tuple[str, ...] | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    split_seed: int = 0
    input_scaler: Literal["standard", "robust"] = "standard"
    target_scaler: Literal["standard", "robust"] = "standard"
    scale_floor: float = 1e-6
    pca_components: int = 0
    self_similar: Literal["auto", "off"] = "auto"
    input_relevance: Literal["auto", "ard", "off"] = "auto"
    relevance_rows: int = 500
    pk_components: int | None = None
    features: tuple[str, ...] = ()
    augment_noise: float = 0.0
    augment_seed: int = 0

    def validate(self) -> None:
        _check_range("data.val_fraction", self.val_fraction, 0.0, 0.9)
        _check_range("data.test_fraction", self.test_fraction, 0.0, 0.9)
        if self.val_fraction + self.test_fraction >= 0.95:
            raise ConfigError(
                "data.val_fraction + data.test_fraction must be < 0.95 so that training data remain; "
                f"got {self.val_fraction} + {self.test_fraction}."
            )
        _check_range("data.scale_floor", self.scale_floor, 0.0, 1.0, low_open=True)
        _check_range("data.pca_components", self.pca_components, 0, 10_000)
        _check_range("data.relevance_rows", self.relevance_rows, 20, 20_000)
        if self.pk_components is not None:
            _check_range("data.pk_components", self.pk_components, 0, 10_000)
        _check_range("data.augment_noise", self.augment_noise, 0.0, 10.0)
        for name in ("fields", "monotone_fields", "features"):
            _check_unique(f"data.{name}", getattr(self, name) or ())


@dataclass(frozen=True)
class ModelConfig:
    """Network architecture.

    Attributes:
        kind: ``"mlp"`` (SimpleMLP) or ``"physics"`` (PhysicsInformedCore).
        hidden: Widths of the hidden layers of the MLP / of the physics core's head.
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
    hidden: tuple[int, ...] = (128, 128)
    activation: Literal["gelu", "silu", "tanh", "relu", "softplus"] = "gelu"
    dropout: float = 0.0
    var_floor: float = 1e-4
    heteroscedastic: bool = True
    monotone_head: bool = False
    interaction: Literal["fm", "film", "attention", "none"] = "fm"
    interaction_dim: int = 16
    attention_heads: int = 2
    mass_head: Literal["power_law", "input"] = "power_law"
    mass_order: int = 2
    slope_bound: float = 3.0
    curvature_bound: float = 1.0

    def validate(self) -> None:
        if not self.hidden:
            raise ConfigError("model.hidden: needs at least one layer width, e.g. [256, 256, 256].")
        for w in self.hidden:
            _check_range("model.hidden[]", w, 1, 65_536)
        _check_range("model.dropout", self.dropout, 0.0, 0.95)
        _check_range("model.var_floor", self.var_floor, 0.0, 1.0, low_open=True)
        _check_range("model.interaction_dim", self.interaction_dim, 1, 4096)
        _check_range("model.attention_heads", self.attention_heads, 1, 64)
        if self.interaction == "attention" and self.interaction_dim % self.attention_heads:
            raise ConfigError(
                f"model.interaction_dim ({self.interaction_dim}) must be divisible by "
                f"model.attention_heads ({self.attention_heads})."
            )
        _check_range("model.mass_order", self.mass_order, 1, 2)
        _check_range("model.slope_bound", self.slope_bound, 0.0, 100.0, low_open=True)
        _check_range("model.curvature_bound", self.curvature_bound, 0.0, 100.0, low_open=True)


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

    monotonic_weight: float = 0.0
    monotonic_window: tuple[float, float] | None = None
    smoothness_weight: float = 0.0
    mass_scaling_weight: float = 0.0
    mass_scaling_slopes: FrozenMap = field(default_factory=FrozenMap)
    mass_scaling_tolerance: float = 0.5
    boundary_weight: float = 0.0
    boundary_slopes: FrozenMap = field(default_factory=FrozenMap)
    boundary_tolerance: float = 1.0

    def validate(self) -> None:
        for name in ("monotonic_weight", "smoothness_weight", "mass_scaling_weight", "boundary_weight"):
            _check_range(f"loss.physics.{name}", getattr(self, name), 0.0, 1e6)
        if self.monotonic_window is not None and (
            len(self.monotonic_window) != 2 or not self.monotonic_window[0] < self.monotonic_window[1]
        ):
            raise ConfigError(
                "loss.physics.monotonic_window: must be [r_min, r_max] with r_min < r_max, or null; "
                f"got {self.monotonic_window}."
            )
        _check_range("loss.physics.mass_scaling_tolerance", self.mass_scaling_tolerance, 0.0, 100.0)
        _check_range("loss.physics.boundary_tolerance", self.boundary_tolerance, 0.0, 100.0)


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
    beta: float = 0.5
    huber_delta: float = 1.0
    quantiles: tuple[float, ...] = (0.16, 0.5, 0.84)
    use_target_noise: bool = True
    physics: PhysicsLossConfig = field(default_factory=PhysicsLossConfig)

    def validate(self) -> None:
        _check_range("loss.beta", self.beta, 0.0, 1.0)
        _check_range("loss.huber_delta", self.huber_delta, 0.0, 1e3, low_open=True)
        for q in self.quantiles:
            _check_range("loss.quantiles[]", q, 0.0, 1.0, low_open=True, high_open=True)
        self.physics.validate()


@dataclass(frozen=True)
class OptimConfig:
    """optax.chain(clip_by_global_norm, adamw) on a warm-up + decay schedule.

    Attributes:
        learning_rate: Peak learning rate.
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

    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    warmup_epochs: int = 10
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    decay_rate: float = 0.98
    end_lr_fraction: float = 0.01
    plateau_patience: int = 0
    plateau_factor: float = 0.5

    def validate(self) -> None:
        _check_range("optim.learning_rate", self.learning_rate, 0.0, 100.0, low_open=True)
        _check_range("optim.weight_decay", self.weight_decay, 0.0, 10.0)
        _check_range("optim.clip_norm", self.clip_norm, 0.0, 1e6, low_open=True)
        _check_range("optim.warmup_epochs", self.warmup_epochs, 0, 100_000)
        _check_range("optim.decay_rate", self.decay_rate, 0.0, 1.0, low_open=True)
        _check_range("optim.end_lr_fraction", self.end_lr_fraction, 0.0, 1.0)
        _check_range("optim.plateau_patience", self.plateau_patience, 0, 100_000)
        _check_range("optim.plateau_factor", self.plateau_factor, 0.0, 1.0, low_open=True, high_open=True)


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

    start_epoch: int = 0
    physics_scale: float = 1.0
    dropout: bool = True
    ramp_epochs: int = 0

    def validate(self) -> None:
        _check_range("train.curriculum[].start_epoch", self.start_epoch, 0, 10_000_000)
        _check_range("train.curriculum[].physics_scale", self.physics_scale, 0.0, 1e6)
        _check_range("train.curriculum[].ramp_epochs", self.ramp_epochs, 0, 10_000_000)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
        members: Deep-ensemble size (members train together under ``jax.vmap``).
        seed: Seed of initialisation and data order (member m uses a key folded from it).
        epochs: Maximum number of epochs.
        batch_size: Minibatch size.
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
        auto_capacity: Compare a few architectures (narrow, regularised, the other kind)
            by 3-fold group cross-validation before training and train the best
            (:mod:`profemu.train.select`): ``"auto"`` on training sets of at most 1,000
            rows, ``"on"``, or ``"off"`` (default: on the hard mock universe at 600 rows
            it did not beat the default network with input relevance weighting, at 4x
            the training time; see BENCHMARKS.md).
    """

    members: int = 5
    seed: int = 0
    epochs: int = 300
    batch_size: int = 64
    patience: int = 60
    max_seconds: float = 0.0
    max_consecutive_failures: int = 5
    max_rollbacks: int = 8
    checkpoint_every: int = 0
    log_every: int = 10
    curriculum: tuple[Phase, ...] = ()
    calibrate: bool = True
    cv_folds: int | None = None
    auto_capacity: Literal["auto", "on", "off"] = "off"

    def validate(self) -> None:
        _check_range("train.members", self.members, 1, 1024)
        if self.cv_folds is not None and self.cv_folds != 0:
            _check_range("train.cv_folds", self.cv_folds, 2, 100)
        _check_range("train.epochs", self.epochs, 1, 10_000_000)
        _check_range("train.batch_size", self.batch_size, 1, 10_000_000)
        _check_range("train.patience", self.patience, 0, 10_000_000)
        _check_range("train.max_seconds", self.max_seconds, 0.0, 1e9)
        _check_range("train.max_consecutive_failures", self.max_consecutive_failures, 1, 10_000)
        _check_range("train.max_rollbacks", self.max_rollbacks, 0, 10_000)
        _check_range("train.checkpoint_every", self.checkpoint_every, 0, 10_000_000)
        _check_range("train.log_every", self.log_every, 1, 10_000_000)
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
        """Read a YAML file (``yaml.safe_load``; no code is executed)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist; pass the path of a YAML file.")
        try:
            data = yaml.safe_load(p.read_text())
        except UnicodeDecodeError:
            raise ConfigError(f"config file {str(p)!r} is not a text (YAML) file.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}".splitlines()[0]) from None
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
        raise ConfigError(f"{name}: value {value!r} is out of range; allowed {lo}{low}, {high}{hi}.")


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
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not allowed; choose one of {list(args)}.")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{name}[]") for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected a list of {len(args)} values, got {value!r}.")
        return tuple(_coerce(a, v, f"{name}[]") for a, v in zip(args, value, strict=True))
    if tp is FrozenMap:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping of name: number, got {value!r}.")
        return FrozenMap({str(k): _coerce(float, v, f"{name}.{k}") for k, v in value.items()})
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}.")
        return value
    if tp is int:
        value = _number(value, name, "an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name}: expected an integer, got {value!r}.")
            return int(value)
        return value
    if tp is float:
        value = float(_number(value, name, "a number"))
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}.")
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
    raise ConfigError(f"{name}: expected {what}, got {value!r}.")


def _plain(obj: Any) -> Any:
    """Frozen configs -> nested plain dicts and lists (the YAML/JSON form)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


#: Keys of earlier versions -> where the setting lives now.
_RENAMED: dict[str, str] = {
    "model.monotone_fields": "data.monotone_fields (which fields are monotone) and model.monotone_head",
    "loss.physics.monotonic_fields": "data.monotone_fields",
    "model.embed_dim": "model.interaction_dim",
    "model.mass_features": "model.mass_head",
    "model.pk_hidden": "data.pk_components (P(k) enters through a PCA basis)",
    "model.pk_conv_channels": "data.pk_components (P(k) enters through a PCA basis)",
}
