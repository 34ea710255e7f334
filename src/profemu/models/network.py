"""The emulator network, written once for numpy and JAX: :class:`Network`.

A :class:`Network` is a frozen, hashable pair of a
:class:`~profemu.config.ModelConfig` and an
:class:`~profemu.data.layout.OutputLayout`; its parameters are a plain nested dict
of arrays. The same :meth:`Network.apply` runs in numpy (saved emulators predict
without importing JAX) and in JAX (training, ``jit``/``grad``-able prediction), so
the two paths cannot drift apart.

Two kinds (``ModelConfig.kind``):

* ``"mlp"``: every input block concatenated -> hidden layers -> head.
* ``"physics"``: the physics sits in the structure, at no run-time cost.
  With ``mass_head="power_law"`` the trunk sees the parameters (and P(k), redshift,
  features) but not the mass, and the head is a power law in mass by construction::

      mean(theta, r, M) = a(theta, r) + b(theta, r) dm [+ c(theta, r) dm^2],   dm = log10 M - pivot

  with ``|b|`` and ``|c|`` bounded (``slope_bound``, ``curvature_bound``, in dex of the
  profile per dex of mass), ``pivot`` the training mean of log10 M; the slope
  ``b + 2 c dm`` is a model output (the mass-scaling loss reads it, no jvp). Parameter
  interactions come from a factorisation machine (``"fm"``), FiLM conditioning of every
  hidden layer (``"film"``) or self-attention over one token per input (``"attention"``).

Both end in a heteroscedastic variance ``softplus(.) + var_floor`` and, with
``monotone_head``, build the monotone fields non-increasing in radius by construction.
Outputs are standardised (see :meth:`~profemu.data.transforms.Transforms.model_arrays`).

Example::

    net = Network(cfg.model, transforms.layout)
    arrays = transforms.model_arrays()
    params = net.init(jax.random.key(0), arrays)
    out = net.apply(params, arrays, transforms.transform_inputs(p, m), xp=jnp)
    out.mean, out.var                                    # [n, out_dim] each
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from profemu.config import ModelConfig
from profemu.data.layout import HYBRID_TRANSITION, HYBRID_WIDTH_DEX, OutputLayout
from profemu.errors import ConfigError, DataError
from profemu.models import layers

__all__ = ["INITIAL_VARIANCE", "Network", "NetworkOutput", "ParamSpec"]

#: Predicted variance at initialisation (before the floor), in standardised units.
INITIAL_VARIANCE = 0.5
#: Smallest initial |d log10 y / d log10 r| of a monotone field.
_MIN_INITIAL_SLOPE = 0.05


class NetworkOutput(NamedTuple):
    """What :meth:`Network.apply` returns, each ``[..., n, out_dim]`` in standardised units.

    Attributes:
        mean: Predicted mean.
        var: Predicted variance (> 0).
        mass_slope: d mean / d dm [standardised units per dex of mass] from the
            power-law head; ``None`` for networks that take the mass as an input.
    """

    mean: Any
    var: Any
    mass_slope: Any = None


@dataclass(frozen=True)
class ParamSpec:
    """One parameter array: where it lives, its shape and how it is initialised.

    Attributes:
        path: Keys into the nested params dict, e.g. ``("trunk", "hidden_0", "kernel")``.
        shape: Array shape (one member).
        init: ``"glorot"`` (Glorot-uniform), ``"small"`` (variance scaling 0.01, fan
            average, uniform), ``"normal"`` (std ``value``), ``"zeros"``, ``"constant"``
            (``value``) or ``"monotone_bias"`` (from the target centre, see
            :meth:`Network.init`).
        value: Parameter of the initialiser.
        field: Field index of a ``"monotone_bias"``.
    """

    path: tuple[str, ...]
    shape: tuple[int, ...]
    init: str
    value: float = 0.0
    field: int = -1


@dataclass(frozen=True)
class Network:
    """The network of ``cfg`` for the inputs and outputs of ``layout`` (hashable, static)."""

    cfg: ModelConfig
    layout: OutputLayout

    def __post_init__(self) -> None:
        cfg, layout = self.cfg, self.layout
        cfg.validate()
        if cfg.kind not in ("mlp", "physics"):
            raise ConfigError(f"model.kind: {cfg.kind!r} is unknown; choose 'mlp' or 'physics'.")
        layers.activation(cfg.activation)
        if cfg.monotone_head:
            if not layout.monotone_fields:
                raise ConfigError(
                    "model.monotone_head: no field is declared monotone; set data.monotone_fields "
                    f"(fields: {list(layout.field_names)})."
                )
            layout.require_grid("model.monotone_head")
        if self.power_law:
            layout.require_grid("model.mass_head='power_law'")
            if cfg.monotone_head:
                raise ConfigError(
                    "model.monotone_head with model.mass_head='power_law': a power law in mass does not "
                    "keep the profile monotone at every mass; set model.mass_head='input'."
                )

    # ------------------------------------------------------------------ structure
    @property
    def power_law(self) -> bool:
        """Whether the head is a power law in mass (physics kind, ``mass_head="power_law"``)."""
        return self.cfg.kind == "physics" and self.cfg.mass_head == "power_law"

    @property
    def trunk_blocks(self) -> tuple[str, ...]:
        """Input blocks concatenated into the trunk (all but the mass for the power-law head)."""
        return tuple(b for b, _ in self.layout.input_blocks
                     if not (self.power_law and b == "log10_mass") and b != "r_delta")

    @property
    def interaction(self) -> str:
        """The interaction in use (``"none"`` for the MLP)."""
        return self.cfg.interaction if self.cfg.kind == "physics" else "none"

    def param_specs(self) -> list[ParamSpec]:
        """Every parameter array of one member, in a fixed order."""
        cfg, layout = self.cfg, self.layout
        specs: list[ParamSpec] = []

        def dense(prefix: tuple[str, ...], n_in: int, n_out: int, init: str = "glorot",
                  bias: str = "zeros", value: float = 0.0, field: int = -1) -> None:
            specs.append(ParamSpec((*prefix, "kernel"), (n_in, n_out), init))
            specs.append(ParamSpec((*prefix, "bias"), (n_out,), bias, value, field))

        width = sum(w for b, w in layout.input_blocks if b in self.trunk_blocks)
        e = cfg.interaction_dim
        if self.interaction == "fm":
            specs.append(ParamSpec(("interaction", "factors"), (width, e), "normal", 1.0 / math.sqrt(e)))
        elif self.interaction == "attention":
            for name in ("value_embedding", "identity_embedding"):
                specs.append(ParamSpec(("interaction", name), (width, e), "normal", 1.0))
            for name in ("query", "key", "value", "out"):
                dense(("interaction", name), e, e)
            specs.append(ParamSpec(("interaction", "norm", "scale"), (e,), "constant", 1.0))
            specs.append(ParamSpec(("interaction", "norm", "bias"), (e,), "zeros"))
        n_in = width + (e if self.interaction in ("fm", "attention") else 0)
        for i, w in enumerate(cfg.hidden):
            dense(("trunk", f"hidden_{i}"), n_in, w)
            if self.interaction == "film":
                dense(("trunk", f"film_{i}"), width, 2 * w, init="zeros")
            n_in = w
        out = layout.out_dim
        drawn = layout.n_x or layout.n_r  # points each field's mean is drawn on
        if cfg.monotone_head:
            for i, f in enumerate(layout.fields):
                mono = f.monotone
                dense(("head", "mean", f"field_{i}"), n_in, drawn,
                      bias="monotone_bias" if mono else "zeros", field=i)
                if layout.hybrid:  # the core's mean, on the dataset's radii
                    dense(("head", "mean_radii", f"field_{i}"), n_in, layout.n_r,
                          bias="monotone_bias_radii" if mono else "zeros", field=i)
        else:
            dense(("head", "mean"), n_in, len(layout.fields) * drawn if layout.n_x else out)
            if layout.hybrid:
                dense(("head", "mean_radii"), n_in, out)
        if self.power_law:
            dense(("head", "slope"), n_in, out, init="small")
            if cfg.mass_order == 2:
                dense(("head", "curvature"), n_in, out, init="small")
        raw_bias = float(layers.inverse_softplus(INITIAL_VARIANCE))
        if cfg.heteroscedastic:
            dense(("head", "var"), n_in, out, init="small", bias="constant", value=raw_bias)
            if self.power_law:
                dense(("head", "var_slope"), n_in, out, init="small")
        else:
            specs.append(ParamSpec(("head", "var_raw"), (out,), "constant", raw_bias))
        return specs

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"a/b/c": shape}`` of one member's parameters (numpy only; for file checks)."""
        return {"/".join(s.path): s.shape for s in self.param_specs()}

    # ------------------------------------------------------------------ init (JAX)
    def init(self, key: Any, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """Fresh parameters of one member (JAX; ``jit``/``vmap``-able over ``key``).

        Args:
            key: A JAX PRNG key.
            arrays: :meth:`~profemu.data.transforms.Transforms.model_arrays` (the target
                centre sets the initial slopes of monotone fields, so a fresh model
                already draws the average profile shape).

        Returns:
            Nested dict of float32 arrays (see :meth:`param_specs`).
        """
        import jax
        import jax.numpy as jnp

        specs = self.param_specs()
        keys = jax.random.split(key, len(specs))
        draws = [(lambda shape, low, high, k=k: jax.random.uniform(k, shape, jnp.float32, low, high),
                  lambda shape, k=k: jax.random.normal(k, shape, jnp.float32)) for k in keys]
        return self._tree(specs, draws, arrays, jnp)

    def init_host(self, seed: int, member: int, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Fresh parameters of member ``member`` drawn with numpy (``default_rng([seed, member])``).

        The same initialisers as :meth:`init`, on the host: the training loop starts from these,
        so its compiled programs hold no random-number generator for the initialisation (XLA
        on CPU spends about a second compiling one), and member ``m`` of seed ``s`` is the same
        whichever members train beside it.

        Args:
            seed: Training seed (>= 0).
            member: Member index (>= 0).
            arrays: :meth:`~profemu.data.transforms.Transforms.model_arrays`.

        Returns:
            Nested dict of float32 numpy arrays (see :meth:`param_specs`).
        """
        rng = np.random.default_rng([int(seed), int(member)])
        specs = self.param_specs()
        draws = [(lambda shape, low, high: rng.uniform(low, high, shape).astype(np.float32),
                  lambda shape: rng.standard_normal(shape).astype(np.float32))] * len(specs)
        return self._tree(specs, draws, arrays, np)

    def _tree(self, specs: list[ParamSpec], draws: list[tuple[Any, Any]], arrays: Mapping[str, Any],
              xp: Any) -> dict[str, Any]:
        """The parameter tree of ``specs``; ``draws[i]`` = (uniform, normal) samplers of spec ``i``."""
        params: dict[str, Any] = {}
        for spec, (uniform, normal) in zip(specs, draws, strict=True):
            node = params
            for name in spec.path[:-1]:
                node = node.setdefault(name, {})
            node[spec.path[-1]] = self._initial(spec, uniform, normal, arrays, xp)
        return params

    def _initial(self, spec: ParamSpec, uniform: Any, normal: Any, arrays: Mapping[str, Any], xp: Any) -> Any:
        shape = tuple(spec.shape)
        if spec.init in ("glorot", "small"):
            fan_in, fan_out = shape
            limit = math.sqrt(6.0 / (fan_in + fan_out)) * (math.sqrt(0.01) if spec.init == "small" else 1.0)
            return uniform(shape, -limit, limit)
        if spec.init == "normal":
            return xp.float32(spec.value) * normal(shape)
        if spec.init == "zeros":
            return xp.zeros(shape, xp.float32)
        if spec.init == "constant":
            return xp.full(shape, spec.value, xp.float32)
        if spec.init in ("monotone_bias", "monotone_bias_radii"):
            on_grid = bool(self.layout.n_x) and spec.init == "monotone_bias"
            n, prefix = (self.layout.n_x, "scaled_") if on_grid else (self.layout.n_r, "target_")
            sl = slice(spec.field * n, (spec.field + 1) * n)
            center = xp.asarray(arrays[prefix + "center"], xp.float32)[sl]
            radius = arrays["log10_scaled_radius" if on_grid else "log10_radius"]
            dlog_r = xp.diff(xp.asarray(radius, xp.float32))
            slopes = xp.maximum(-xp.diff(center) / dlog_r, xp.float32(_MIN_INITIAL_SLOPE))
            return xp.concatenate([xp.zeros(1, xp.float32),
                                   (slopes + xp.log(-xp.expm1(-slopes))).astype(xp.float32)])
        raise ConfigError(f"unknown initialiser {spec.init!r}")  # pragma: no cover - internal

    # ------------------------------------------------------------------ forward
    def apply(
        self,
        params: Mapping[str, Any],
        arrays: Mapping[str, Any],
        inputs: Mapping[str, Any],
        *,
        xp: Any = np,
        train: bool = False,
        key: Any = None,
        record: dict[str, Any] | None = None,
    ) -> NetworkOutput:
        """Predict standardised ``(mean, var[, mass_slope])``.

        Args:
            params: Nested parameter dict; leaves may carry a leading member axis ``M``
                (then every output has it too: ``[M, n, out_dim]``).
            arrays: :meth:`~profemu.data.transforms.Transforms.model_arrays`.
            inputs: ``{block: [n, width]}`` normalised inputs (see
                :meth:`~profemu.data.transforms.Transforms.transform_inputs`).
            xp: ``numpy`` or ``jax.numpy``.
            train: Dropout on (JAX only; needs ``key``).
            key: PRNG key for dropout.
            record: When a dict, every intermediate activation is stored in it by name
                (``trunk/hidden_0``, ``interaction``, ``head/mean``, ...), for diagnostics.

        Raises:
            DataError: An input block is missing, unexpected or of the wrong width.
        """
        cfg = self.cfg
        x = self._trunk_input(params, inputs, xp, record)
        act = layers.activation(cfg.activation)
        cond = x if self.interaction == "film" else None
        if self.interaction in ("fm", "attention"):
            x = self._with_interactions(params["interaction"], x, xp, record)
        trunk = params["trunk"]
        for i in range(len(cfg.hidden)):
            x = act(layers.dense(trunk[f"hidden_{i}"], x, xp), xp)
            if cond is not None:
                gamma, beta = xp.split(layers.dense(trunk[f"film_{i}"], cond, xp), 2, axis=-1)
                x = x * (1.0 + gamma) + beta
            if train and cfg.dropout > 0:
                import jax

                x = layers.dropout(x, cfg.dropout, jax.random.fold_in(key, i))
            if record is not None:
                record[f"trunk/hidden_{i}"] = x
        return self._head(params["head"], arrays, x, inputs, xp, record)

    def _trunk_input(self, params: Mapping[str, Any], inputs: Mapping[str, Any], xp: Any,
                     record: dict[str, Any] | None) -> Any:
        expected = self.layout.block_widths
        missing = [b for b in expected if b not in inputs]
        extra = [b for b in inputs if b not in expected]
        if missing or extra:
            raise DataError(
                f"network inputs: missing blocks {missing}, unexpected blocks {extra}; the model reads "
                f"{list(expected)} (make them with Transforms.transform_inputs)."
            )
        for b, w in expected.items():
            shape = getattr(inputs[b], "shape", ())
            if len(shape) != 2 or shape[1] != w:
                raise DataError(f"network inputs[{b!r}]: expected shape [n, {w}], got {tuple(shape)}.")
        parts = [inputs[b] for b in self.trunk_blocks]
        x = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)
        if record is not None:
            record["input"] = x
        return x

    def _with_interactions(self, p: Mapping[str, Any], x: Any, xp: Any, record: dict[str, Any] | None) -> Any:
        if self.interaction == "fm":
            features = layers.factorisation_machine(p, x, xp)
        else:
            features = layers.attention_pool(p, x, self.cfg.attention_heads, xp)
        if record is not None:
            record["interaction"] = features
        lead = features.shape[:-2]
        if x.shape[:-2] != lead:  # the shared inputs meet per-member features
            x = xp.broadcast_to(x, (*lead, *x.shape[-2:]))
        return xp.concatenate([x, features], axis=-1)

    def _head(self, p: Mapping[str, Any], arrays: Mapping[str, Any], h: Any, inputs: Mapping[str, Any],
              xp: Any, record: dict[str, Any] | None) -> NetworkOutput:
        cfg, layout = self.cfg, self.layout
        scale = xp.asarray(arrays["target_scale"], h.dtype)
        if layout.hybrid:
            mean = self._hybrid_mean(p, arrays, h, inputs, xp)
        elif layout.n_x:
            mean = self._scaled_mean(p, arrays, h, inputs, xp)
        else:
            mean = self._grid_mean(p["mean"], arrays, h, xp)
        slope = None
        dm = None
        if self.power_law:
            # dex of mass from the pivot (the training mean of log10 M)
            dm = inputs["log10_mass"] * xp.asarray(arrays["log10_mass_scale"], h.dtype)
            slope = cfg.slope_bound / scale * xp.tanh(layers.dense(p["slope"], h, xp))
            if cfg.mass_order == 2:
                curvature = cfg.curvature_bound / scale * xp.tanh(layers.dense(p["curvature"], h, xp))
                mean = mean + slope * dm + curvature * dm * dm
                slope = slope + 2.0 * curvature * dm
            else:
                mean = mean + slope * dm
        if any(f.gas_fraction_bound or f.ideal_gas for f in layout.fields):
            mean, slope = self._gas_physics(arrays, mean, slope, xp)
        if cfg.heteroscedastic:
            raw = layers.dense(p["var"], h, xp)
            if dm is not None:
                raw = raw + layers.dense(p["var_slope"], h, xp) * dm
        else:
            raw = xp.broadcast_to(p["var_raw"][..., None, :], mean.shape)
        var = layers.softplus(raw, xp) + cfg.var_floor
        if record is not None:
            record["head/mean"] = mean
            record["head/var"] = var
        return NetworkOutput(mean, var, slope)

    def _gas_physics(self, arrays: Mapping[str, Any], mean: Any, slope: Any, xp: Any) -> tuple[Any, Any]:
        """The standardised mean (and its mass slope) with the gas's physics in the structure:
        each ``gas_fraction_bound`` density keeps its gas inside R_Δ below f_b M_Δ
        (:func:`~profemu.models.layers.gas_fraction_bound`), then each ``ideal_gas``
        temperature is its pressure over its density (over their self-similar scales)
        times ``10^δ``, δ its own output in units of its scale (0 at the training centre
        of ``T - P/ρ``)."""
        layout = self.layout
        center = xp.asarray(arrays["target_center"], mean.dtype)
        scale = xp.asarray(arrays["target_scale"], mean.dtype)
        logs, d_logs = {}, {}  # per field: log10 profile [..., n_r] and its mass slope
        for f in layout.fields:
            sl = layout.field_slice(f.name)
            logs[f.name] = center[sl] + scale[sl] * mean[..., sl]
            d_logs[f.name] = None if slope is None else scale[sl] * slope[..., sl]
            if f.gas_fraction_bound:
                weights = xp.asarray(arrays["gas_fraction_weights"], mean.dtype)[sl]
                logs[f.name], d_logs[f.name] = layers.gas_fraction_bound(logs[f.name], weights, xp, d_logs[f.name])
        for f in layout.fields:
            if f.ideal_gas:
                p, d = f.ideal_gas
                sl, sp, sd = (layout.field_slice(n) for n in (f.name, p, d))
                offset = center[sl] - center[sp] + center[sd]  # δ's centre: T - P/ρ at the training centres
                logs[f.name] = logs[p] - logs[d] + (logs[f.name] - center[sl]) + offset
                if slope is not None:
                    d_logs[f.name] = d_logs[p] - d_logs[d] + d_logs[f.name]
        parts = [(logs[f.name] - center[layout.field_slice(f.name)]) / scale[layout.field_slice(f.name)]
                 for f in layout.fields]
        slopes = None if slope is None else xp.concatenate(
            [d_logs[f.name] / scale[layout.field_slice(f.name)] for f in layout.fields], axis=-1)
        return xp.concatenate(parts, axis=-1), slopes

    def _hybrid_mean(self, p: Mapping[str, Any], arrays: Mapping[str, Any], h: Any, inputs: Mapping[str, Any],
                     xp: Any) -> Any:
        """Standardised mean of ``data.radial_coordinate: hybrid``, [..., n, F * n_r]: the mean drawn
        on the dataset's radii inside :data:`~profemu.data.layout.HYBRID_TRANSITION` R_Δ, the one
        drawn on r / R_Δ outside, mixed by a logistic function of log10(r / R_Δ) of each row."""
        radii = self._grid_mean(p["mean_radii"], arrays, h, xp)
        scaled = self._scaled_mean(p, arrays, h, inputs, xp)
        log_r = xp.asarray(arrays["log10_radius"], h.dtype)
        # log10 R_Δ of each row in the radii's unit: the training mean plus the row's shift
        log_r_delta = xp.asarray(arrays["hybrid_log10_r_delta"], h.dtype) + xp.asarray(inputs["r_delta"], h.dtype)
        log_x = log_r[None, :] - log_r_delta  # [n, n_r]
        outside = 1.0 / (1.0 + xp.exp(-(log_x - math.log10(HYBRID_TRANSITION)) / HYBRID_WIDTH_DEX))
        outside = xp.concatenate([outside] * len(self.layout.fields), axis=-1)
        return outside * scaled + (1.0 - outside) * radii

    def _grid_mean(self, p: Any, arrays: Mapping[str, Any], h: Any, xp: Any) -> Any:
        """Standardised mean drawn directly on the dataset's radii, [..., n, out_dim] (``p``: the mean head)."""
        if not self.cfg.monotone_head:
            return layers.dense(p, h, xp)
        center = xp.asarray(arrays["target_center"], h.dtype)
        scale = xp.asarray(arrays["target_scale"], h.dtype)
        log_r = xp.asarray(arrays["log10_radius"], h.dtype)
        parts = []
        for i, f in enumerate(self.layout.fields):
            raw = layers.dense(p[f"field_{i}"], h, xp)
            sl = self.layout.field_slice(f.name)
            parts.append(layers.monotone_profiles(raw, center[sl], scale[sl], log_r, xp) if f.monotone else raw)
        return xp.concatenate(parts, axis=-1)

    def _scaled_mean(self, p: Mapping[str, Any], arrays: Mapping[str, Any], h: Any, inputs: Mapping[str, Any],
                     xp: Any) -> Any:
        """Standardised mean drawn on the grid in r / R_Δ and read at each row's radii, [..., n, F * n_r].

        Row ``i``'s radius ``r_j`` sits at ``log10 r_j - (log10 R_Δ,i - <log10 R_Δ>)`` on the grid
        (the ``r_delta`` input is that shift in dex), so a heavier halo reads the same curve
        further in: its profile is the same shape in r / R_Δ unless the network says otherwise.
        """
        layout, n_x = self.layout, self.layout.n_x
        grid = xp.asarray(arrays["log10_scaled_radius"], h.dtype)
        center_x = xp.asarray(arrays["scaled_center"], h.dtype)
        scale_x = xp.asarray(arrays["scaled_scale"], h.dtype)
        center = xp.asarray(arrays["target_center"], h.dtype)
        scale = xp.asarray(arrays["target_scale"], h.dtype)
        log_r = xp.asarray(arrays["log10_radius"], h.dtype)
        shift = xp.asarray(inputs["r_delta"], h.dtype)[:, 0]
        queries = log_r[None, :] - shift[:, None]  # [n, n_r]
        whole = None if self.cfg.monotone_head else layers.dense(p["mean"], h, xp)
        parts = []
        for i, f in enumerate(layout.fields):
            sx = slice(i * n_x, (i + 1) * n_x)
            if whole is None:
                raw = layers.dense(p["mean"][f"field_{i}"], h, xp)
                std = (layers.monotone_profiles(raw, center_x[sx], scale_x[sx], grid, xp) if f.monotone else raw)
            else:
                std = whole[..., sx]
            log_x = center_x[sx] + scale_x[sx] * std  # log10 profile on the grid
            log_y = layers.interpolate_rows(log_x, grid, queries, xp)
            sl = layout.field_slice(f.name)
            parts.append((log_y - center[sl]) / scale[sl])
        return xp.concatenate(parts, axis=-1)
