"""The models' forward pass in numpy alone, for saved emulators without JAX.

:func:`forward` and :func:`forward_ensemble` reproduce ``model.apply(variables,
inputs, train=False)`` of :class:`~profemu.models.mlp.SimpleMLP` and
:class:`~profemu.models.physics.PhysicsInformedCore` (with or without the monotone
head) to float32 rounding, from the same nested parameter dicts that flax produces
(``variables["params"]``, arrays converted with ``np.asarray``).

Every layer here works on parameters with a leading member axis ``M`` and inputs
shared by all members, so a whole ensemble is one batched ``np.matmul`` per layer.

On GPUs JAX runs float32 matmuls in TF32 by default, so JAX predictions there
differ from these by ~1e-3 relative unless computed under
``jax.default_matmul_precision("float32")``.

This module must not import JAX or flax (checked by the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from profemu.config import ModelConfig
from profemu.errors import ConfigError, DataError, FormatError
from profemu.models.spec import OutputSpec

__all__ = ["NUMPY_ACTIVATIONS", "forward", "forward_ensemble"]

_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = np.float32(0.044715)
_LAYER_NORM_EPS = np.float32(1e-6)  # flax.linen.LayerNorm default
# Constants of the physics core; equal to profemu.models.physics (checked by the tests).
_MASS_MAX_EXPONENT = np.float32(3.0)
_MASS_ARGUMENT_CLIP = np.float32(10.0)
_CONV_KERNEL = 5
_CONV_STRIDE = 2
_BRANCH_BLOCKS = ("log10_mass", "pk")

Array = np.ndarray
Params = Mapping[str, Any]


def _gelu(x: Array) -> Array:
    # tanh approximation, as jax.nn.gelu(approximate=True), the flax default:
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in few in-place passes.
    inner = x * x
    inner *= _SQRT_2_OVER_PI * _GELU_CUBIC
    inner += _SQRT_2_OVER_PI
    inner *= x
    np.tanh(inner, out=inner)
    inner += 1
    inner *= x
    inner *= np.float32(0.5)
    return inner


def _silu(x: Array) -> Array:
    # x * sigmoid(x) with sigmoid written through tanh (no overflow).
    return x * (np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * x)))


def _softplus(x: Array) -> Array:
    return np.logaddexp(x, np.float32(0.0))


#: Numpy twins of :data:`profemu.models.mlp.ACTIVATIONS`.
NUMPY_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": _gelu,
    "silu": _silu,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, np.float32(0.0)),
    "softplus": _softplus,
}


# ------------------------------------------------------------------------ params
def _get(tree: Params, *path: str) -> Any:
    node: Any = tree
    try:
        for key in path:
            node = node[key]
    except (KeyError, TypeError, IndexError):
        raise FormatError(
            f"model weights: parameter {'/'.join(path)!r} is missing; the weights do not match the "
            "model config (kind, hidden, monotone_fields, heteroscedastic, input blocks)."
        ) from None
    if type(node) is np.ndarray and node.dtype == np.float32:
        return node
    if isinstance(node, Mapping):
        return node
    return np.asarray(node, dtype=np.float32)


def _unwrap(params: Params) -> Params:
    # Accept the whole variables dict {"params": {...}} as well as the collection itself.
    if isinstance(params, Mapping) and set(params) == {"params"}:
        return params["params"]
    return params


# ------------------------------------------------------------------------ layers
def _dense(x: Array, layer: Params) -> Array:
    """``x [..., in] @ kernel [M, in, out] + bias [M, out]`` -> ``[M, n, out]``."""
    out = np.matmul(x, _get(layer, "kernel"))
    out += _get(layer, "bias")[:, None, :]
    return out


def _dense_stack(x: Array, trunk: Params, n_layers: int, act: Callable[[Array], Array]) -> Array:
    for i in range(n_layers):
        x = act(_dense(x, _get(trunk, f"hidden_{i}")))
    return x


def _monotone_mean(
    hidden: Array, head: Params, spec: OutputSpec, monotone: tuple[str, ...]
) -> Array:
    dlog_r = np.diff(np.asarray(spec.log10_radius, dtype=np.float32))
    center_all = np.asarray(spec.target_center, dtype=np.float32)
    scale_all = np.asarray(spec.target_scale, dtype=np.float32)
    parts = []
    for i, field_name in enumerate(spec.field_names):
        raw = _dense(hidden, _get(head, f"field_{i}"))
        if field_name not in monotone:
            parts.append(raw)
            continue
        sl = spec.field_slice(field_name)
        center, scale = center_all[sl], scale_all[sl]
        log_inner = center[0] + scale[0] * raw[..., :1]
        drops = np.cumsum(_softplus(raw[..., 1:]) * dlog_r, axis=-1)
        log_profile = np.concatenate([log_inner, log_inner - drops], axis=-1)
        parts.append((log_profile - center) / scale)
    return np.concatenate(parts, axis=-1)


def _output_head(
    hidden: Array, head: Params, cfg: ModelConfig, spec: OutputSpec
) -> tuple[Array, Array]:
    monotone = spec.resolve_monotone_fields(cfg.monotone_fields)
    if monotone:
        mean = _monotone_mean(hidden, _get(head, "mean"), spec, monotone)
    else:
        mean = _dense(hidden, _get(head, "mean"))
    if cfg.heteroscedastic:
        raw = _dense(hidden, _get(head, "var"))
    else:
        raw = np.broadcast_to(_get(head, "var_raw")[:, None, :], mean.shape)
    var = _softplus(raw)
    var += np.float32(cfg.var_floor)
    return mean, var


def _mass_features(log10_mass: Array, mass: Params) -> Array:
    exponent = _MASS_MAX_EXPONENT * np.tanh(_get(mass, "exponent_raw"))[:, None, :]
    arg = _MASS_ARGUMENT_CLIP * np.tanh(log10_mass * exponent / _MASS_ARGUMENT_CLIP)
    return _get(mass, "amplitude")[:, None, :] * np.exp(arg)


def _layer_norm(x: Array, norm: Params) -> Array:
    mu = x.mean(axis=-1, keepdims=True)
    centred = x - mu
    var = (centred * centred).mean(axis=-1, keepdims=True)
    scale = _get(norm, "scale")[:, None, None, :]
    bias = _get(norm, "bias")[:, None, None, :]
    return centred * (scale / np.sqrt(var + _LAYER_NORM_EPS)) + bias


def _cosmology_attention(scalars: Array, cosmo: Params) -> Array:
    """``scalars [n, T]`` -> pooled tokens ``[M, n, E]``."""
    value_emb = _get(cosmo, "value_embedding")[:, None]  # [M, 1, T, E]
    ident_emb = _get(cosmo, "identity_embedding")[:, None]
    tokens = scalars[None, :, :, None] * value_emb + ident_emb  # [M, n, T, E]
    attn = _get(cosmo, "attention")

    def project(name: str) -> Array:
        layer = _get(attn, name)
        out = np.einsum("mnte,mehd->mnthd", tokens, _get(layer, "kernel"))
        return out + _get(layer, "bias")[:, None, None]

    query, key, value = project("query"), project("key"), project("value")
    query = query / np.sqrt(np.float32(query.shape[-1]))
    logits = np.einsum("mnqhd,mnkhd->mnhqk", query, key)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    mixed = np.einsum("mnhqk,mnkhd->mnqhd", weights, value)
    out_layer = _get(attn, "out")
    attended = np.einsum("mnqhd,mhde->mnqe", mixed, _get(out_layer, "kernel"))
    attended += _get(out_layer, "bias")[:, None, None, :]
    return _layer_norm(tokens + attended, _get(cosmo, "norm")).mean(axis=-2)


def _power_spectrum(
    pk: Array, branch: Params, cfg: ModelConfig, act: Callable[[Array], Array]
) -> Array:
    if cfg.pk_conv_channels > 0:
        pad = (_CONV_KERNEL - 1) // 2
        padded = np.pad(pk, ((0, 0), (pad, pad)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, _CONV_KERNEL, axis=-1)[
            :, ::_CONV_STRIDE
        ]
        conv = _get(branch, "conv")
        x = np.einsum("nlk,mkc->mnlc", windows, _get(conv, "kernel")[:, :, 0, :])
        x += _get(conv, "bias")[:, None, None, :]
        x = act(x)
        x = x.reshape(*x.shape[:2], -1)
    else:
        x = pk
    return act(_dense(x, _get(branch, "dense")))


# ------------------------------------------------------------------------ models
def _check_inputs(inputs: Mapping[str, Any], spec: OutputSpec) -> dict[str, Array]:
    expected = spec.input_blocks
    if len(inputs) != len(expected) or any(b not in inputs for b, _ in expected):
        raise DataError(
            f"model inputs: got blocks {sorted(inputs)}, the model was built for "
            f"{[b for b, _ in expected]} (use Transforms.transform_inputs to make them)."
        )
    blocks = {}
    n_rows = None
    for name, width in expected:
        arr = np.asarray(inputs[name], dtype=np.float32)
        if (
            arr.ndim != 2
            or arr.shape[1] != width
            or (n_rows is not None and arr.shape[0] != n_rows)
        ):
            raise DataError(
                f"model inputs[{name!r}]: expected shape [n, {width}] (same n for all), got {arr.shape}."
            )
        n_rows = arr.shape[0]
        blocks[name] = arr
    return blocks


def _concat(blocks: Mapping[str, Array]) -> Array:
    values = list(blocks.values())
    return values[0] if len(values) == 1 else np.concatenate(values, axis=-1)


def _simple_mlp(
    cfg: ModelConfig, spec: OutputSpec, params: Params, blocks: dict[str, Array]
) -> Array:
    return _concat(blocks)


def _physics_core(
    cfg: ModelConfig, spec: OutputSpec, params: Params, blocks: dict[str, Array]
) -> Array:
    act = NUMPY_ACTIVATIONS[cfg.activation]
    members = _get(params, "trunk", "hidden_0", "kernel").shape[0]
    features = []
    if "log10_mass" in blocks:
        features.append(_mass_features(blocks["log10_mass"], _get(params, "mass")))
    tokens = [b for b in blocks if b not in _BRANCH_BLOCKS]
    if tokens:
        scalars = _concat({b: blocks[b] for b in tokens})
        features.append(_cosmology_attention(scalars, _get(params, "cosmology")))
    if "pk" in blocks:
        features.append(_power_spectrum(blocks["pk"], _get(params, "pk"), cfg, act))
    skip = _concat(blocks)
    features.append(np.broadcast_to(skip, (members, *skip.shape)))
    return np.concatenate(features, axis=-1)


# ``kind`` -> function giving the trunk's input ([n, in] shared or [M, n, in]).
_TRUNK_INPUTS: dict[str, Callable[[ModelConfig, OutputSpec, Params, dict[str, Array]], Array]] = {
    "mlp": _simple_mlp,
    "physics": _physics_core,
}


def forward_ensemble(
    cfg: ModelConfig, spec: OutputSpec, stacked_params: Params, inputs: Mapping[str, Any]
) -> tuple[Array, Array]:
    """Eval-mode forward pass of every ensemble member, in numpy.

    Args:
        cfg: The model configuration the weights were trained with.
        spec: The output spec the model was built with.
        stacked_params: The ``params`` collection with a leading member axis ``M`` on
            every leaf (nested dicts of arrays, as from ``init_ensemble``).
        inputs: ``{block: [n, width]}`` normalised inputs (float32 is used).

    Returns:
        ``(means, vars)``, each ``[M, n, out_dim]`` float32, standardised units.

    Raises:
        ConfigError: Unknown ``cfg.kind`` or ``cfg.activation``.
        DataError: Inputs do not match ``spec.input_blocks``.
        FormatError: The weights do not match the configuration.
    """
    try:
        trunk_inputs = _TRUNK_INPUTS[cfg.kind]
        act = NUMPY_ACTIVATIONS[cfg.activation]
    except KeyError:
        raise ConfigError(
            f"model config: kind {cfg.kind!r} / activation {cfg.activation!r} unsupported; kinds "
            f"{sorted(_TRUNK_INPUTS)}, activations {sorted(NUMPY_ACTIVATIONS)}."
        ) from None
    params = _unwrap(stacked_params)
    blocks = _check_inputs(inputs, spec)
    x = trunk_inputs(cfg, spec, params, blocks)
    hidden = _dense_stack(x, _get(params, "trunk"), len(cfg.hidden), act)
    return _output_head(hidden, _get(params, "head"), cfg, spec)


def _add_member_axis(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _add_member_axis(v) for k, v in tree.items()}
    return np.asarray(tree)[None]


def forward(
    cfg: ModelConfig, spec: OutputSpec, params: Params, inputs: Mapping[str, Any]
) -> tuple[Array, Array]:
    """Eval-mode forward pass of one model, in numpy.

    Args:
        cfg: The model configuration.
        spec: The output spec.
        params: One member's ``params`` collection (nested dicts of arrays).
        inputs: ``{block: [n, width]}`` normalised inputs.

    Returns:
        ``(mean, var)``, each ``[n, out_dim]`` float32, standardised units.
    """
    means, variances = forward_ensemble(cfg, spec, _add_member_axis(_unwrap(params)), inputs)
    return means[0], variances[0]
