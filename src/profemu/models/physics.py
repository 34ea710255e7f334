"""The physics-informed network: :class:`PhysicsInformedCore`.

Three branches turn the normalised inputs into features with a physical shape,
then a Dense trunk and the shared heteroscedastic head predict ``(mean, var)``:

* :class:`MassScalingLayer` (``mass``): learnable power laws of halo mass,
  ``a_j (M / M_pivot)^{s_j}`` written in the normalised log mass ``m`` as
  ``a_j exp(s_j m)`` with bounded exponents and a soft clip of the argument, so
  extreme inputs never overflow.
* :class:`CosmologyAttention` (``cosmology``): each scalar input (every column of
  ``params``, ``redshift``, ``features``) is a token ``value * w_i + e_i``; one
  multi-head self-attention layer with a residual and layer norm lets parameters
  interact (e.g. Ω_b with the feedback strengths); tokens are mean-pooled.
* :class:`PowerSpectrumProcessor` (``pk``): a strided 1-D convolution over the
  P(k) suppression vector (or none) and a Dense layer. Left out without ``pk``.

The trunk also sees the raw normalised inputs (a skip connection), so the core is
never worse-conditioned than :class:`~profemu.models.mlp.SimpleMLP`.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from profemu.config import ModelConfig
from profemu.models.heads import OutputHead
from profemu.models.mlp import DenseStack, check_inputs, concat_inputs, get_activation
from profemu.models.spec import OutputSpec

__all__ = [
    "CONV_KERNEL",
    "CONV_STRIDE",
    "MASS_ARGUMENT_CLIP",
    "MASS_MAX_EXPONENT",
    "CosmologyAttention",
    "MassScalingLayer",
    "PhysicsInformedCore",
    "PowerSpectrumProcessor",
    "token_blocks",
]

#: Bound on |s_j|, the power-law exponents in normalised log-mass units.
MASS_MAX_EXPONENT = 3.0
#: Soft clip of s_j m: the argument of exp is ``C tanh(s_j m / C)``.
MASS_ARGUMENT_CLIP = 10.0
#: Width and stride of the P(k) convolution (padding (K-1)//2 on both sides).
CONV_KERNEL = 5
CONV_STRIDE = 2
#: Blocks handled by their own branch; every other block becomes attention tokens.
_BRANCH_BLOCKS = ("log10_mass", "pk")


def token_blocks(spec: OutputSpec) -> tuple[str, ...]:
    """Input blocks whose columns are attention tokens (all but ``log10_mass`` and ``pk``)."""
    return tuple(b for b, _ in spec.input_blocks if b not in _BRANCH_BLOCKS)


def _exponent_init(
    key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype = jnp.float32
) -> jax.Array:
    # Exponents spread over [-MAX/2, MAX/2] plus a little jitter so ensemble members differ.
    spread = np.arctanh(np.linspace(-0.5, 0.5, shape[0]) if shape[0] > 1 else np.array([0.3]))
    return jnp.asarray(spread, dtype) + 0.1 * jax.random.normal(key, shape, dtype)


class MassScalingLayer(nn.Module):
    """Learnable power laws of halo mass, ``[n, 1] -> [n, n_features]``.

    ``feature_j = amplitude_j * exp(C tanh(s_j m / C))`` with ``s_j = S tanh(exponent_raw_j)``,
    ``m`` the normalised log10 mass, ``S`` = :data:`MASS_MAX_EXPONENT`, ``C`` =
    :data:`MASS_ARGUMENT_CLIP`. For |s_j m| << C this is exactly ``a_j (M/M_pivot)^{s_j σ ln 10}``.

    Attributes:
        n_features: Number of power laws.
    """

    n_features: int

    @nn.compact
    def __call__(self, log10_mass: jax.Array) -> jax.Array:
        raw = self.param("exponent_raw", _exponent_init, (self.n_features,))
        amplitude = self.param("amplitude", nn.initializers.ones, (self.n_features,))
        exponent = MASS_MAX_EXPONENT * jnp.tanh(raw)
        arg = MASS_ARGUMENT_CLIP * jnp.tanh(log10_mass * exponent / MASS_ARGUMENT_CLIP)
        return amplitude * jnp.exp(arg)


class CosmologyAttention(nn.Module):
    """Scalar inputs as tokens, one self-attention layer, mean pool: ``[n, T] -> [n, E]``.

    Attributes:
        embed_dim: Token width ``E``.
        num_heads: Attention heads (divide ``E``).
    """

    embed_dim: int
    num_heads: int

    @nn.compact
    def __call__(self, scalars: jax.Array) -> jax.Array:
        n_tokens = scalars.shape[-1]
        shape = (n_tokens, self.embed_dim)
        value_embedding = self.param("value_embedding", nn.initializers.normal(1.0), shape)
        identity_embedding = self.param("identity_embedding", nn.initializers.normal(1.0), shape)
        tokens = scalars[..., :, None] * value_embedding + identity_embedding
        attended = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.embed_dim,
            out_features=self.embed_dim,
            kernel_init=nn.initializers.xavier_uniform(),
            name="attention",
        )(tokens, tokens)
        # Exact two-pass variance: tokens of extreme inputs are large.
        pooled = nn.LayerNorm(use_fast_variance=False, name="norm")(tokens + attended)
        return jnp.mean(pooled, axis=-2)


class PowerSpectrumProcessor(nn.Module):
    """P(k) suppression vector ``[n, n_k] -> [n, hidden]``.

    With ``channels > 0``: Conv1D(``channels``, kernel 5, stride 2, padding 2) ->
    activation -> flatten -> Dense(``hidden``) -> activation. With ``channels == 0``:
    Dense(``hidden``) -> activation.

    Attributes:
        hidden: Output width.
        channels: Convolution channels (0 = no convolution).
        activation: Activation name.
    """

    hidden: int
    channels: int
    activation: str = "gelu"

    @nn.compact
    def __call__(self, pk: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        x = pk
        if self.channels > 0:
            pad = (CONV_KERNEL - 1) // 2
            x = nn.Conv(
                self.channels,
                kernel_size=(CONV_KERNEL,),
                strides=(CONV_STRIDE,),
                padding=((pad, pad),),
                kernel_init=nn.initializers.xavier_uniform(),
                name="conv",
            )(pk[..., None])
            x = act(x).reshape(*x.shape[:-2], -1)
        return act(
            nn.Dense(self.hidden, kernel_init=nn.initializers.xavier_uniform(), name="dense")(x)
        )


class PhysicsInformedCore(nn.Module):
    """Mass power laws + cosmology attention + P(k) branch + skip -> trunk -> (mean, var).

    Submodules: ``mass``, ``cosmology``, ``pk`` (each only when its inputs exist),
    ``trunk`` (:class:`~profemu.models.mlp.DenseStack` with ``cfg.hidden``) and ``head``
    (:class:`~profemu.models.heads.OutputHead`).

    Attributes:
        cfg: Model configuration.
        spec: Output spec.
    """

    cfg: ModelConfig
    spec: OutputSpec

    @nn.compact
    def __call__(
        self, inputs: Mapping[str, jax.Array], *, train: bool = False
    ) -> tuple[jax.Array, jax.Array]:
        """Predict ``(mean, var)``, each ``[n, out_dim]`` in standardised units.

        Args:
            inputs: ``{block: [n, width]}`` normalised inputs matching ``spec.input_blocks``.
            train: Training mode (dropout active; needs ``rngs={"dropout": key}``).
        """
        cfg = self.cfg
        blocks = check_inputs(inputs, self.spec)
        features = []
        if "log10_mass" in blocks:
            mass = jnp.asarray(blocks["log10_mass"], jnp.float32)
            features.append(MassScalingLayer(cfg.mass_features, name="mass")(mass))
        tokens = token_blocks(self.spec)
        if tokens:
            scalars = concat_inputs(blocks, tokens)
            features.append(
                CosmologyAttention(cfg.embed_dim, cfg.attention_heads, name="cosmology")(scalars)
            )
        if "pk" in blocks:
            pk = jnp.asarray(blocks["pk"], jnp.float32)
            features.append(
                PowerSpectrumProcessor(
                    cfg.pk_hidden, cfg.pk_conv_channels, cfg.activation, name="pk"
                )(pk)
            )
        features.append(concat_inputs(blocks, list(blocks)))
        x = jnp.concatenate(features, axis=-1)
        x = DenseStack(tuple(cfg.hidden), cfg.activation, cfg.dropout, name="trunk")(x, train=train)
        monotone = self.spec.resolve_monotone_fields(cfg.monotone_fields)
        return OutputHead(cfg, self.spec, monotone, name="head")(x)
