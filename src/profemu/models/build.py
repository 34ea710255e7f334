"""Build a model from its configuration: :func:`build_model` and :data:`MODEL_REGISTRY`."""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from profemu.config import ModelConfig
from profemu.errors import ConfigError
from profemu.models.mlp import SimpleMLP
from profemu.models.physics import PhysicsInformedCore
from profemu.models.spec import OutputSpec

__all__ = ["MODEL_REGISTRY", "build_model"]

#: ``ModelConfig.kind`` -> module class; each is constructed as ``cls(cfg=..., spec=...)``.
MODEL_REGISTRY: dict[str, type[nn.Module]] = {
    "mlp": SimpleMLP,
    "physics": PhysicsInformedCore,
}


class _FrozenModelConfig(ModelConfig):
    """A ModelConfig with tuples instead of lists, hashable, so the module is hashable too."""

    def __hash__(self) -> int:
        return hash(tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)))


def _freeze(cfg: ModelConfig) -> ModelConfig:
    values = {
        f.name: tuple(getattr(cfg, f.name))
        if isinstance(getattr(cfg, f.name), list)
        else getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
    }
    return _FrozenModelConfig(**values)


def build_model(cfg: ModelConfig, spec: OutputSpec) -> nn.Module:
    """The network described by ``cfg`` for the outputs described by ``spec``.

    Args:
        cfg: Model configuration (validated here).
        spec: Output spec (input blocks, output width, radial grid, monotone fields).

    Returns:
        An unbound :mod:`flax.linen` module, called as
        ``model.apply(variables, inputs, train=False, rngs=...) -> (mean, var)``.
        It holds a hashable copy of ``cfg`` (lists as tuples), so the module can be a
        static argument of ``jax.jit``.

    Raises:
        ConfigError: Unknown ``cfg.kind``, an out-of-range value, or monotone fields that
            are not predicted / used with PCA outputs.
    """
    if not isinstance(spec, OutputSpec):
        raise ConfigError(f"build_model: spec must be an OutputSpec, got {type(spec).__name__}.")
    cfg.validate()
    try:
        cls = MODEL_REGISTRY[cfg.kind]
    except KeyError:
        raise ConfigError(
            f"model.kind: {cfg.kind!r} is unknown; choose one of {sorted(MODEL_REGISTRY)}."
        ) from None
    spec.resolve_monotone_fields(cfg.monotone_fields)  # raises ConfigError early
    return cls(cfg=_freeze(cfg), spec=spec)
