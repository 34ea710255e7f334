"""Typed configuration: dataclasses with YAML in and out and strict validation.

A :class:`Config` has five sections (``data``, ``model``, ``loss``, ``optim``,
``train``). Unknown keys are rejected with the list of valid ones and every value is
range-checked, so a typo in a YAML file fails at once with a
:class:`~profemu.errors.ConfigError` instead of being silently ignored.

Example::

    cfg = Config.from_yaml("config.yaml")          # or Config() for the defaults
    cfg = cfg.updated({"model.kind": "physics", "train.members": 5})
    cfg.to_yaml("resolved.yaml")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from profemu.errors import ConfigError

__all__ = [
    "Config",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Phase",
    "PhysicsLossConfig",
    "TrainConfig",
]


@dataclass
class DataConfig:
    """How a ProfileDataset becomes arrays.

    Attributes:
        fields: Profile fields to learn (empty = all fields of the dataset).
        val_fraction: Fraction of groups (simulations) held out for validation/early stopping.
        test_fraction: Fraction of groups held out for the final test.
        split_seed: Seed of the group split.
        input_scaler: ``"standard"`` (mean/std) or ``"robust"`` (median/MAD·1.4826).
        target_scaler: Same choices, applied per field and radius to log10 profiles.
        scale_floor: Smallest allowed scale, so constant columns never divide by ~0.
        pca_components: 0 = predict every radius directly; K > 0 = predict K PCA
            coefficients of the standardised log profiles (decoded linearly).
        features: Named engineered features (see :mod:`profemu.data.features`), e.g.
            ``["omega_b_over_omega_m", "mass_deviation", "pk_summary"]``.
        augment_noise: Std of Gaussian noise added to normalised inputs while training (0 = off).
        augment_seed: Seed of that noise.
    """

    fields: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    input_scaler: Literal["standard", "robust"] = "standard"
    target_scaler: Literal["standard", "robust"] = "standard"
    scale_floor: float = 1e-6
    pca_components: int = 0
    features: list[str] = field(default_factory=list)
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
        _check_range("data.augment_noise", self.augment_noise, 0.0, 10.0)


@dataclass
class ModelConfig:
    """Network architecture.

    Attributes:
        kind: ``"mlp"`` (SimpleMLP) or ``"physics"`` (PhysicsInformedCore).
        hidden: Widths of the hidden layers of the MLP / of the physics core's head.
        activation: ``"gelu"``, ``"silu"``, ``"tanh"``, ``"relu"`` or ``"softplus"``.
        dropout: Dropout rate in the hidden layers (0 = off).
        var_floor: Floor of the predicted variance in normalised target units.
        heteroscedastic: Learn the variance per input (True) or a per-output constant.
        monotone_fields: Fields built by the monotone head (decreasing by construction).
        embed_dim: Token width of CosmologyAttention.
        attention_heads: Heads of CosmologyAttention.
        mass_features: Number of learnable power-law features of MassScalingLayer.
        pk_hidden: Width of the PowerSpectrumProcessor.
        pk_conv_channels: Channels of its 1-D convolution (0 = an MLP only).
    """

    kind: Literal["mlp", "physics"] = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    activation: Literal["gelu", "silu", "tanh", "relu", "softplus"] = "gelu"
    dropout: float = 0.0
    var_floor: float = 1e-4
    heteroscedastic: bool = True
    monotone_fields: list[str] = field(default_factory=list)
    embed_dim: int = 32
    attention_heads: int = 4
    mass_features: int = 8
    pk_hidden: int = 64
    pk_conv_channels: int = 8

    def validate(self) -> None:
        if not self.hidden:
            raise ConfigError("model.hidden: needs at least one layer width, e.g. [256, 256, 256].")
        for w in self.hidden:
            _check_range("model.hidden[]", w, 1, 65_536)
        _check_range("model.dropout", self.dropout, 0.0, 0.95)
        _check_range("model.var_floor", self.var_floor, 0.0, 1.0, low_open=True)
        _check_range("model.embed_dim", self.embed_dim, 1, 4096)
        _check_range("model.attention_heads", self.attention_heads, 1, 64)
        if self.embed_dim % self.attention_heads:
            raise ConfigError(
                f"model.embed_dim ({self.embed_dim}) must be divisible by model.attention_heads "
                f"({self.attention_heads})."
            )
        _check_range("model.mass_features", self.mass_features, 1, 1024)
        _check_range("model.pk_hidden", self.pk_hidden, 1, 65_536)
        _check_range("model.pk_conv_channels", self.pk_conv_channels, 0, 1024)


@dataclass
class PhysicsLossConfig:
    """Soft physics penalties on the predicted mean (each logged as its own component).

    Attributes:
        monotonic_weight: Weight of the hinge on positive d log y / d log r.
        monotonic_fields: Fields declared decreasing (never temperature by default).
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
    monotonic_fields: list[str] = field(default_factory=lambda: ["rho", "pth"])
    monotonic_window: list[float] | None = None
    smoothness_weight: float = 0.0
    mass_scaling_weight: float = 0.0
    mass_scaling_slopes: dict[str, float] = field(default_factory=dict)
    mass_scaling_tolerance: float = 0.5
    boundary_weight: float = 0.0
    boundary_slopes: dict[str, float] = field(default_factory=dict)
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


@dataclass
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
    quantiles: list[float] = field(default_factory=lambda: [0.16, 0.5, 0.84])
    use_target_noise: bool = True
    physics: PhysicsLossConfig = field(default_factory=PhysicsLossConfig)

    def validate(self) -> None:
        _check_range("loss.beta", self.beta, 0.0, 1.0)
        _check_range("loss.huber_delta", self.huber_delta, 0.0, 1e3, low_open=True)
        for q in self.quantiles:
            _check_range("loss.quantiles[]", q, 0.0, 1.0, low_open=True, high_open=True)
        self.physics.validate()


@dataclass
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


@dataclass
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


@dataclass
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
        calibrate: Fit one post-hoc variance scale on the validation split (stored in
            the Emulator) so that predictive intervals are calibrated.
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
    curriculum: list[Phase] = field(default_factory=list)
    calibrate: bool = True

    def validate(self) -> None:
        _check_range("train.members", self.members, 1, 1024)
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


@dataclass
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
        """Plain nested dict (JSON/YAML-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Config:
        """Build from a nested mapping; unknown keys and wrong types raise ConfigError."""
        cfg = _build(cls, data or {}, "")
        return cfg.validate()

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
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


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
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
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}.")
        return [_coerce(args[0], v, f"{name}[]") for v in value]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}.")
        return {str(k): _coerce(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name}: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}.")
        return value
    return value
