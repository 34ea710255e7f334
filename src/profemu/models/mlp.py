"""The baseline network: :class:`SimpleMLP`, and the pieces every model shares.

``SimpleMLP`` concatenates the normalised input blocks in the canonical order
(:data:`~profemu.models.spec.BLOCK_ORDER`), runs a stack of Dense layers
(:class:`DenseStack`, Glorot-uniform weights, optional dropout) and ends in the
heteroscedastic :class:`~profemu.models.heads.OutputHead`.

Example::

    model = SimpleMLP(ModelConfig(hidden=[64, 64]), spec)
    variables = model.init(jax.random.key(0), inputs)
    mean, var = model.apply(variables, inputs)                     # eval
    mean, var = model.apply(variables, inputs, train=True,
                            rngs={"dropout": key})                 # train (dropout on)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from profemu.config import ModelConfig
from profemu.errors import ConfigError, DataError
from profemu.models.heads import OutputHead
from profemu.models.spec import OutputSpec

__all__ = [
    "ACTIVATIONS",
    "DenseStack",
    "SimpleMLP",
    "check_inputs",
    "concat_inputs",
    "get_activation",
]

#: Activation functions by ``ModelConfig.activation`` name. ``gelu`` is the tanh
#: approximation (``jax.nn.gelu`` default), mirrored exactly by the numpy forward pass.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The JAX activation called ``name``; ConfigError for an unknown name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"model.activation: {name!r} is unknown; choose one of {sorted(ACTIVATIONS)}."
        ) from None


def check_inputs(inputs: Mapping[str, jax.Array], spec: OutputSpec) -> dict[str, jax.Array]:
    """Check the input blocks against ``spec.input_blocks``.

    Args:
        inputs: ``{block: [n, width]}`` normalised float arrays.
        spec: Output spec whose ``input_blocks`` lists the expected blocks and widths.

    Returns:
        The blocks in canonical order (a new dict).

    Raises:
        DataError: A block is missing, unexpected, not 2-D, of the wrong width, or the
            blocks disagree on ``n``.
    """
    if not isinstance(inputs, Mapping):
        raise DataError(f"model inputs: expected a dict of arrays, got {type(inputs).__name__}.")
    expected = spec.block_widths
    missing = [b for b in expected if b not in inputs]
    extra = [b for b in inputs if b not in expected]
    if missing or extra:
        raise DataError(
            f"model inputs: missing blocks {missing}, unexpected blocks {extra}; the model was "
            f"built for {list(expected)} (use Transforms.transform_inputs to make them)."
        )
    out: dict[str, jax.Array] = {}
    n_rows = None
    for name, width in expected.items():
        arr = inputs[name]
        shape = getattr(arr, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != width:
            raise DataError(f"model inputs[{name!r}]: expected shape [n, {width}], got {shape}.")
        if n_rows is not None and shape[0] != n_rows:
            raise DataError(
                f"model inputs[{name!r}]: has {shape[0]} rows but other blocks have {n_rows}."
            )
        n_rows = shape[0]
        out[name] = arr
    return out


def concat_inputs(inputs: Mapping[str, jax.Array], blocks: Sequence[str]) -> jax.Array:
    """Concatenate ``blocks`` of ``inputs`` along the last axis (float32), ``[n, Σ width]``."""
    return jnp.concatenate([jnp.asarray(inputs[b], jnp.float32) for b in blocks], axis=-1)


class DenseStack(nn.Module):
    """Hidden Dense layers ``hidden_<i>`` (Glorot-uniform), activation, dropout.

    Attributes:
        widths: Layer widths.
        activation: Activation name (see :data:`ACTIVATIONS`).
        dropout: Dropout rate after each activation; active only when ``train=True``
            (needs the ``"dropout"`` rng then).
    """

    widths: tuple[int, ...]
    activation: str = "gelu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        for i, width in enumerate(self.widths):
            x = act(
                nn.Dense(width, kernel_init=nn.initializers.xavier_uniform(), name=f"hidden_{i}")(x)
            )
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


class SimpleMLP(nn.Module):
    """Concatenated inputs -> :class:`DenseStack` (``trunk``) -> :class:`OutputHead` (``head``).

    Attributes:
        cfg: Model configuration (``hidden``, ``activation``, ``dropout``, ``var_floor``,
            ``heteroscedastic``, ``monotone_fields``).
        spec: Output spec (input blocks, output width, radial grid).
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
        blocks = check_inputs(inputs, self.spec)
        x = concat_inputs(blocks, list(blocks))
        x = DenseStack(tuple(self.cfg.hidden), self.cfg.activation, self.cfg.dropout, name="trunk")(
            x, train=train
        )
        monotone = self.spec.resolve_monotone_fields(self.cfg.monotone_fields)
        return OutputHead(self.cfg, self.spec, monotone, name="head")(x)
