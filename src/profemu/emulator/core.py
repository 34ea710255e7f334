"""The :class:`Emulator`: the one artefact users train, save, load and call.

An Emulator bundles the fitted :class:`~profemu.data.transforms.Transforms`, the
:class:`~profemu.models.network.Network` (model configuration + output layout), the
stacked weights of its ``M`` members, the calibrated variance scale and metadata.

* :meth:`Emulator.predict` — numpy in, numpy out; saved emulators predict without
  importing JAX.
* :attr:`Emulator.predict_fn` — the same computation in JAX, ``jit``-able and
  differentiable, for HMC/NUTS likelihoods.
* :meth:`Emulator.save` / :meth:`Emulator.load` — see :mod:`profemu.emulator.files`.

Both prediction paths run one function, :func:`member_log10` (inputs -> network ->
log10 profiles of every member), and combine the members with
:func:`profemu.models.ensemble.combine`. Predictions are of log10 of each profile
field: ``{field: Prediction(mean, var, aleatoric, epistemic, extrapolation, ...)}`` each
[n, n_r], ``var`` the total predictive variance in dex² (member variances + member spread,
times the calibrated ``variance_scale``, + the extrapolation variance that grows outside
the training box when ``metadata["extrapolation"]`` holds one; see
:mod:`profemu.emulator.extrapolation`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from profemu._files import flatten_tree, unflatten_tree
from profemu.config import ModelConfig
from profemu.data.transforms import Transforms, decode_mean, decode_var
from profemu.emulator.blend import FADE, GPBlend
from profemu.emulator.covariance import ResidualCovariance
from profemu.emulator.covariance import residual_covariance as stored_residual_covariance
from profemu.emulator.extrapolation import (
    ExtrapolationTerms,
    distance_outside,
    read_record,
    record_variance,
)
from profemu.emulator.files import read_emulator, save_emulator, weights_file
from profemu.emulator.inputs import Inputs, InputSpec, check_inputs, redshift_input
from profemu.errors import DataError, ExtrapolationError
from profemu.models.ensemble import combine
from profemu.models.network import Network

__all__ = ["Emulator", "Prediction", "member_log10"]

ExtrapolationPolicy = Literal["error", "warn", "ignore"]


@dataclass(frozen=True)
class Prediction:
    """Mean and variance of log10 of one field, with the ensemble's split of the variance.

    Read the parts by name (``p.mean``, ``p.var``, ``p.std``, ``p.aleatoric``,
    ``p.epistemic``) or all at once with :meth:`as_dict`. A Prediction does not unpack
    into a ``(mean, var)`` pair, which would silently drop the two parts of the variance.

    Attributes:
        mean: [n, n_r] predicted log10 profile.
        var: [n, n_r] total predictive variance [dex²] (= aleatoric + epistemic, scaled,
            + extrapolation).
        aleatoric: [n, n_r] mean of member variances [dex²] (scaled).
        epistemic: [n, n_r] variance of member means [dex²] (scaled).
        extrapolation: [n, n_r] variance added outside the training box [dex²] (zero
            inside it, or when the Emulator has no calibrated extrapolation term).
        distance_outside: [n] distance outside the training box in standardised units
            (log10 mass in dex, parameters in training spreads; 0 inside).
        outside: Input name -> [n] its own distance outside the box, for the inputs
            outside it in at least one row (empty inside the box).
    """

    mean: np.ndarray
    var: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    extrapolation: np.ndarray | None = None
    distance_outside: np.ndarray | None = None
    outside: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __iter__(self) -> Iterator[np.ndarray]:
        raise TypeError("a Prediction does not unpack (that would drop its aleatoric and epistemic parts); "
                        "read p.mean, p.var, p.aleatoric, p.epistemic or p.as_dict().")

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{"mean", "var", "std", "aleatoric", "epistemic", "extrapolation"}``, each [n, n_r] (or [n_r])."""
        extra = np.zeros_like(self.var) if self.extrapolation is None else self.extrapolation
        return {"mean": self.mean, "var": self.var, "std": self.std, "aleatoric": self.aleatoric,
                "epistemic": self.epistemic, "extrapolation": extra}

    @property
    def std(self) -> np.ndarray:
        """Predictive standard deviation [dex], [n, n_r]."""
        return np.sqrt(self.var)


#: Up to this many inputs, the compiled (JAX) prediction on CPU runs the members as one product
#: over the member axis; beyond, one member after the other. A 5-member 64x64 MLP with 35
#: parameters, 79 P(k) bins and the GP blend (jitted ``predict_fn``, 2 cores): 70 / 260 / 800 /
#: 3,050 µs batched against 93 / 340 / 810 / 2,540 µs one after the other at 1 / 16 / 64 / 256 inputs.
BATCHED_MEMBERS_MAX_ROWS = 64


def member_log10(
    network: Network,
    params: Mapping[str, Any],
    arrays: Mapping[str, Any],
    transforms: Transforms,
    inputs: Mapping[str, Any],
    xp: Any = np,
) -> tuple[Any, Any]:
    """Every member's log10 profiles from raw inputs (numpy or JAX; the one prediction path).

    Args:
        network: The network.
        params: Stacked member parameters (leading axis ``M``).
        arrays: :meth:`~profemu.data.transforms.Transforms.model_arrays` (as ``xp`` arrays).
        transforms: The fitted transforms.
        inputs: ``params`` [n, p], ``log10_mass`` [n], ``pk_ratio`` [n, n_k] or None,
            ``redshift`` [n] or None (checked, see :func:`~profemu.emulator.inputs.check_inputs`).
        xp: ``numpy`` or ``jax.numpy``.

    Returns:
        ``(means, variances)``, each [M, n, D]: log10 profiles [dex] and variances [dex²].
    """
    rows = int(np.shape(inputs["params"])[0])
    if xp is not np and rows > BATCHED_MEMBERS_MAX_ROWS and _xla_on_cpu() and (members := _leading(params)) > 1:
        # XLA on CPU runs the M members one after the other ~1.4x faster than one batched
        # product over the member axis on many inputs (measured: 10,000 inputs, 5 members,
        # 128x128), and slower on a few (BATCHED_MEMBERS_MAX_ROWS).
        import jax

        outs = [member_log10(network, jax.tree.map(lambda a, m=m: a[m:m + 1], params), arrays, transforms,
                             inputs, xp) for m in range(members)]
        return xp.concatenate([o[0] for o in outs]), xp.concatenate([o[1] for o in outs])
    blocks = transforms.transform_inputs(inputs["params"], inputs["log10_mass"], inputs.get("pk_ratio"),
                                         inputs.get("redshift"), xp=xp)
    blocks = {k: xp.asarray(v, dtype=xp.float32) for k, v in blocks.items()}
    out = network.apply(params, arrays, blocks, xp=xp)
    mean, var = (out.mean, out.var) if xp is not np else (out.mean.astype(np.float64), out.var.astype(np.float64))
    return transforms.to_log10(decode_mean(mean, arrays, xp), decode_var(var, arrays, xp), xp,
                               params=inputs["params"], log10_mass=inputs["log10_mass"],
                               redshift=inputs.get("redshift"))


def _leading(tree: Mapping[str, Any]) -> int:
    """The leading (member) axis of the first leaf of a nested dict of arrays."""
    leaf: Any = tree
    while isinstance(leaf, Mapping):
        leaf = next(iter(leaf.values()))
    return int(leaf.shape[0])


def _xla_on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


class Emulator:
    """A trained emulator of log10 halo profiles.

    Args:
        transforms: Fitted :class:`~profemu.data.transforms.Transforms`.
        model_config: The :class:`~profemu.config.ModelConfig` of the network.
        weights: Network weights with every leaf stacked on a leading member axis ``M``
            (numpy or JAX arrays; stored as numpy float32). The physical parameters are
            the inputs: :attr:`param_names`, ``predict(params=...)``.
        metadata: JSON-safe metadata (training-data fingerprint, config, ...).
        variance_scale: Post-hoc calibration factor of the predictive variance (> 0).
        on_extrapolation: Default policy for inputs outside the training box.
    """

    def __init__(
        self,
        transforms: Transforms,
        model_config: ModelConfig,
        weights: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        variance_scale: float = 1.0,
        on_extrapolation: ExtrapolationPolicy = "warn",
    ) -> None:
        self.transforms = transforms
        self.network = Network(model_config, transforms.layout)
        flat = {n: np.asarray(a, dtype=np.float32) for n, a in flatten_tree(weights).items()}
        self.weights = unflatten_tree(flat)
        self.metadata = dict(metadata or {})
        self.variance_scale = float(variance_scale)
        if not (np.isfinite(self.variance_scale) and self.variance_scale > 0):
            raise DataError(f"variance_scale: {variance_scale!r} must be a finite number > 0.")
        self.on_extrapolation = _check_policy(on_extrapolation)
        self.members = int(next(iter(flat.values())).shape[0]) if flat else 0
        self.arrays = transforms.model_arrays()
        self.input_spec = InputSpec.from_transforms(transforms)
        record = self.metadata.get("gp_blend")
        self.blend: GPBlend | None = None if record is None else GPBlend.from_dict(
            record, block_widths=transforms.input_blocks, out_dim=transforms.target_dim)
        #: ``metadata["extrapolation"]`` and its parsed terms (:attr:`extrapolation` reads a record once)
        self._extrapolation_read: tuple[Any, ExtrapolationTerms | None] | None = None
        _ = self.extrapolation  # a damaged extrapolation record is refused here, not at the first prediction

    # ------------------------------------------------------------------ info
    @property
    def params(self) -> dict[str, Any]:
        """Deprecated name of :attr:`weights` (the network weights, not the physical parameters)."""
        warnings.warn("Emulator.params is renamed Emulator.weights (the network weights; the physical "
                      "parameters are param_names); the old name goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        return self.weights

    @property
    def residual_covariance(self) -> ResidualCovariance | None:
        """The emulator-error covariance between fields, radii and mass bins of one simulation.

        Estimated from the out-of-fold residuals of the training's cross-validation (None
        when the run was not cross-validated or the suite has one halo per simulation);
        ``profemu infer`` adds it to the likelihood. Set it with
        :func:`profemu.emulator.covariance.attach_residual_covariance`.

        Raises:
            FormatError: the stored record is malformed or does not match the emulator.
        """
        return stored_residual_covariance(self)

    @property
    def model_config(self) -> ModelConfig:
        """The network's configuration."""
        return self.network.cfg

    @property
    def field_names(self) -> tuple[str, ...]:
        """Fields predicted, in order (the field axis of :attr:`predict_fn`)."""
        return tuple(self.transforms.field_names)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters expected by :meth:`predict`, in column order."""
        return tuple(self.transforms.param_names)

    @property
    def radius(self) -> np.ndarray:
        """Radial grid [n_r] in :attr:`radius_unit`."""
        return np.asarray(self.transforms.radius)

    @property
    def radius_unit(self) -> str:
        """Unit of :attr:`radius` (as in the training data)."""
        return str(self.transforms.radius_unit)

    @property
    def log_params(self) -> tuple[str, ...]:
        """Parameters sampled uniformly in log10 (their prior and design space is log10)."""
        return tuple(self.transforms.log_params)

    @property
    def training_box(self) -> dict[str, tuple[Any, Any]]:
        """(min, max) of the raw training inputs: per parameter name and ``"log10_mass"``
        (floats, linear values as in the training data), ``"pk_ratio"`` (two [n_k] arrays)
        and ``"redshift"`` when present. A copy."""
        return {name: (lo.copy(), hi.copy()) if np.ndim(lo) else (float(lo), float(hi))
                for name, (lo, hi) in self._box.items()}

    @functools.cached_property
    def _box(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: (np.asarray(lo, float), np.asarray(hi, float))
                for name, (lo, hi) in self.transforms.input_box().items()}

    def __repr__(self) -> str:
        return (
            f"Emulator(kind={self.model_config.kind!r}, members={self.members}, "
            f"params={len(self.param_names)}, fields={list(self.field_names)}, n_r={len(self.radius)})"
        )

    # ------------------------------------------------------------- validation
    def check_inputs(self, params: Any, log10_mass: Any, pk_ratio: Any = None, redshift: Any = None) -> Inputs:
        """Validate raw inputs (see :func:`profemu.emulator.inputs.check_inputs`)."""
        return check_inputs(self.input_spec, params, log10_mass, pk_ratio, redshift)

    @functools.cached_property
    def _box_columns(self) -> dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
        """Per input block: column names, training bounds and the relative tolerance (1e-9 of the
        range) within which a value on a bound counts as inside."""
        out: dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = {}
        names = [n for n in self.param_names if n in self._box]
        blocks = [("params", names, np.array([self._box[n][0] for n in names], float),
                   np.array([self._box[n][1] for n in names], float))]
        for block in ("log10_mass", "pk_ratio", "redshift"):
            if block in self._box:
                lo, hi = (np.atleast_1d(a).astype(float) for a in self._box[block])
                blocks.append((block, [block] * lo.size, lo, hi))
        for block, cols, lo, hi in blocks:
            out[block] = (cols, lo, hi, 1e-9 * (1.0 + np.abs(hi - lo)))
        return out

    def check_extrapolation(
        self,
        params: Any,
        log10_mass: Any = None,
        pk_ratio: Any = None,
        redshift: Any = None,
        *,
        policy: ExtrapolationPolicy | None = None,
    ) -> list[str]:
        """Descriptions of inputs outside the training box; warns or raises by ``policy``.

        Args:
            params: Parameters as in :meth:`predict`, or already checked :class:`Inputs`
                (then the other inputs are not given).
            log10_mass, pk_ratio, redshift: As in :meth:`predict`.
            policy: ``"error"``, ``"warn"`` or ``"ignore"`` (default: the Emulator's).

        Returns:
            One entry per offending column: name, the values given and the training range.
        """
        policy = _check_policy(policy or self.on_extrapolation)
        if policy == "ignore":
            return []
        inputs = params if isinstance(params, Inputs) else self.check_inputs(params, log10_mass, pk_ratio, redshift)
        return self.report_outside(self.outside_columns(inputs), inputs.n, policy=policy, stacklevel=4)

    def outside_columns(self, inputs: Inputs) -> dict[str, list[float]]:
        """Per input column with values outside the training box: ``[rows outside, lowest and
        highest of their values, training min, training max]`` (checked :class:`Inputs`)."""
        given = {"params": inputs.params, "log10_mass": inputs.log10_mass[:, None], "pk_ratio": inputs.pk_ratio,
                 "redshift": None if inputs.redshift is None else inputs.redshift[:, None]}
        found: dict[str, list[float]] = {}
        for block, (cols, lo, hi, tol) in self._box_columns.items():
            values = given.get(block)
            if values is None:
                continue
            bad = np.flatnonzero(((values < lo - tol) | (values > hi + tol)).any(axis=0))
            for name in dict.fromkeys(cols[j] for j in bad):
                idx = [j for j, nm in enumerate(cols) if nm == name]
                v = values[:, idx]
                off = ((v < (lo - tol)[idx]) | (v > (hi + tol)[idx])).any(axis=1)  # the rows outside, not all rows
                v = v[off]
                found[name] = [int(off.sum()), float(v.min()), float(v.max()), float(lo[idx].min()),
                               float(hi[idx].max())]
        return found

    def report_outside(self, columns: Mapping[str, Sequence[float]], n: int, *,
                       policy: ExtrapolationPolicy | None = None, stacklevel: int = 2) -> list[str]:
        """Warn about (or refuse, by ``policy``) the columns of :meth:`outside_columns`, gathered
        over ``n`` rows (e.g. summed over the chunks of a large file); returns one entry per column."""
        policy = _check_policy(policy or self.on_extrapolation)
        if policy == "ignore" or not columns:
            return []
        outside = []
        for name, (count, vmin, vmax, lo, hi) in columns.items():
            rows = f" ({int(count)} of {n} rows)" if n > 1 else ""
            shown = f"{vmin:.4g}" if vmin == vmax else f"{vmin:.4g}..{vmax:.4g}"
            outside.append(f"{name} = {shown}{rows} outside the training range [{lo:.4g}, {hi:.4g}]")
        msg = "inputs outside the training box: " + "; ".join(outside)
        if policy == "error":
            raise ExtrapolationError(msg + ". Pass on_extrapolation='warn' or 'ignore' to predict anyway.")
        if self.extrapolation is None:
            msg += ("; predictions there are extrapolations, and this emulator has no variance for the distance "
                    "outside the box (train.extrapolation_variance was off, or its training rows could not calibrate "
                    "it), so its intervals there are too narrow.")
        else:
            msg += "; predictions there are extrapolations."
        warnings.warn(msg, stacklevel=stacklevel)
        return outside

    # ------------------------------------------------------------- prediction
    def _members(self, params: Any, log10_mass: Any, pk_ratio: Any, redshift: Any,
                 on_extrapolation: ExtrapolationPolicy | None) -> tuple[np.ndarray, np.ndarray, Inputs]:
        inputs = self.check_inputs(params, log10_mass, pk_ratio, redshift)
        self.check_extrapolation(inputs, policy=on_extrapolation)
        means, variances = member_log10(self.network, self.weights, self.arrays, self.transforms,
                                        _raw(inputs))
        return np.asarray(means, np.float64), np.asarray(variances, np.float64), inputs

    @property
    def extrapolation(self) -> ExtrapolationTerms | None:
        """The terms of the extrapolation variance σ² = (a·d)^p [dex²] (``a``, ``p``, the
        redshift's own ``(a_z, p_z)`` or None, and ``redshift_input``, the input holding the
        redshift), or None without a record.

        Read from ``metadata["extrapolation"]`` (see
        :func:`profemu.emulator.extrapolation.fit_extrapolation_variance`); ``D`` outputs
        in :attr:`field_names` order, ``n_r`` radii each.
        """
        record = self.metadata.get("extrapolation")
        if self._extrapolation_read is not None and self._extrapolation_read[0] is record:
            return self._extrapolation_read[1]  # parsed once per record, not at every prediction
        j = self.transforms.redshift_column
        terms = read_record(self.metadata, self.transforms.target_dim,
                            inputs=("redshift",) if j is None else ("redshift", self.transforms.param_names[j]))
        self._extrapolation_read = (record, terms)
        return terms

    def distance_outside(
        self, params: Any, log10_mass: Any, pk_ratio: Any = None, redshift: Any = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """How far inputs lie outside the training box (0 inside), numpy only.

        Args: as :meth:`predict`.

        Returns:
            ``(d, per_input)``: ``d`` [n] the distance in standardised units (log10 mass
            in dex, each parameter in units of its training spread, in log10 for the
            log-sampled ones; redshift in Δz), and per input name its own distance [n].
            A single example gives [1] arrays.
        """
        inputs = params if isinstance(params, Inputs) else self.check_inputs(params, log10_mass, pk_ratio, redshift)
        _, d2, per_input = self._distances(inputs)
        return np.sqrt(d2), per_input

    def _distances(self, inputs: Inputs) -> tuple[ExtrapolationTerms | None, np.ndarray, dict[str, np.ndarray]]:
        """The extrapolation terms and :func:`distance_outside` of checked inputs, a redshift column
        measured as the record was fitted."""
        ext = self.extrapolation
        d2, per_input = distance_outside(self.transforms, _raw(inputs), redshift_in_dz=ext is None or ext.redshift_in_dz)
        return ext, d2, per_input

    def predict(
        self,
        params: Any,
        log10_mass: Any,
        pk_ratio: Any = None,
        redshift: Any = None,
        *,
        on_extrapolation: ExtrapolationPolicy | None = None,
    ) -> dict[str, Prediction]:
        """Predict log10 profiles (numpy only; JAX is not imported).

        Args:
            params: [n, p] or [p] parameter values (linear, as in the training data),
                or a dict name -> value(s).
            log10_mass: [n] or scalar log10(M / Msun).
            pk_ratio: [n, n_k] or [n_k] P(k) suppression, when the emulator uses it.
            redshift: [n] or scalar, when the emulator uses it (or the training redshift).
            on_extrapolation: Override of the default extrapolation policy.

        Returns:
            ``{field: Prediction}``: ``.mean`` [log10 units], ``.var``, ``.aleatoric``,
            ``.epistemic`` [dex²] and ``.std`` [dex], each [n, n_r] (or [n_r] for a single
            example), radii as :attr:`radius`.
        """
        means, variances, inputs = self._members(params, log10_mass, pk_ratio, redshift, on_extrapolation)
        ens = combine(means, variances)
        s: np.ndarray = np.broadcast_to(self.variance_scale, ens.mean.shape[-1:])
        if self.blend is not None:
            mean, support = blended_mean(self.blend, self.transforms, _raw(inputs), ens.mean)
            ens = ens._replace(mean=mean)
            s = blended_variance_factor(self.blend, support, self.variance_scale)
        n_r = self.transforms.n_r
        ext, d2, per_input = self._distances(inputs)
        extra = np.zeros_like(ens.var) if ext is None else record_variance(ext, d2, per_input)
        single = inputs.single
        dist = np.sqrt(d2)
        # inside the box (d2 = 0 everywhere) no input is outside: the common case costs one test
        outside = {k: (v[0:1] if single else v) for k, v in per_input.items() if np.any(v > 0)} \
            if np.any(d2 > 0) else {}
        out: dict[str, Prediction] = {}
        for f, name in enumerate(self.field_names):
            sl = slice(f * n_r, (f + 1) * n_r)
            parts = [ens.mean[:, sl], s[..., sl] * ens.var[:, sl] + extra[:, sl], s[..., sl] * ens.aleatoric[:, sl],
                     s[..., sl] * ens.epistemic[:, sl], extra[:, sl]]
            out[name] = Prediction(*(a[0] if single else a for a in parts),
                                   distance_outside=dist[0:1] if single else dist, outside=outside)
        return out

    def predict_members(
        self,
        params: Any,
        log10_mass: Any,
        pk_ratio: Any = None,
        redshift: Any = None,
        *,
        on_extrapolation: ExtrapolationPolicy | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every ensemble member's prediction of log10 of every field (numpy only).

        Args: as :meth:`predict`.

        Returns:
            ``(means, variances)``, each ``[M, n, F, n_r]`` (fields in
            :attr:`field_names` order): member means of log10 profiles [dex] and member
            (aleatoric) variances [dex²] times ``variance_scale``. The population
            variance of the member means, times ``variance_scale``, is the epistemic
            part of :meth:`predict`'s variance.
        """
        means, variances, _inputs = self._members(params, log10_mass, pk_ratio, redshift, on_extrapolation)
        shape = (*means.shape[:2], len(self.field_names), self.transforms.n_r)
        return means.reshape(shape), (variances * self.variance_scale).reshape(shape)

    @functools.cached_property
    def predict_fn(self) -> Callable[..., tuple[Any, Any]]:
        """A pure JAX function ``f(params, log10_mass, pk_ratio=None, redshift=None) -> (mean, var)``.

        ``params`` is [p] or [n, p] (linear values as in the training data),
        ``log10_mass`` a scalar or [n]. Returns ``mean`` and total ``var`` of log10 of every
        field, shape [F, n_r] (one example) or [n, F, n_r]; the field axis follows
        :attr:`field_names`, the radius axis :attr:`radius` (in :attr:`radius_unit`):
        ``mean[..., i, j]`` is field ``field_names[i]`` at radius ``radius[j]``. The function closes over the
        weights as constants, is ``jax.jit``-able and differentiable with respect to
        every input; it does no value checks (validate with :meth:`check_inputs` and
        :meth:`check_extrapolation` outside a likelihood). :attr:`predict_fields_fn`
        gives the same by field name.
        """
        import jax
        import jax.numpy as jnp

        weights = jax.tree.map(jnp.asarray, self.weights)
        arrays = {k: jnp.asarray(v) for k, v in self.arrays.items()}
        network, t, spec = self.network, self.transforms, self.input_spec
        shape = (len(self.field_names), t.n_r)
        blend = self.blend
        variance_scale = self.variance_scale
        ext = self.extrapolation

        def predict_fn(params_in: Any, log10_mass: Any, pk_ratio: Any = None, redshift: Any = None) -> Any:
            p = jnp.asarray(params_in, dtype=jnp.float32)
            single = p.ndim == 1
            p2 = jnp.atleast_2d(p)
            n = p2.shape[0]
            if p2.shape[1] != len(spec.param_names):
                raise DataError(f"params: expected {len(spec.param_names)} parameters per example "
                                f"({', '.join(spec.param_names)}), got shape {tuple(p.shape)}.")
            raw = {"params": p2,
                   "log10_mass": jnp.broadcast_to(jnp.ravel(jnp.asarray(log10_mass, jnp.float32)), (n,)),
                   "pk_ratio": None if pk_ratio is None else jnp.broadcast_to(
                       jnp.atleast_2d(jnp.asarray(pk_ratio, jnp.float32)), (n, spec.n_k)),
                   "redshift": None if redshift is None or not spec.uses_redshift else jnp.broadcast_to(
                       jnp.ravel(jnp.asarray(redshift, jnp.float32)), (n,))}
            if spec.n_k and pk_ratio is None:
                raise DataError(f"pk_ratio: this emulator needs the P(k) suppression on {spec.n_k} k bins.")
            if spec.uses_redshift and redshift is None:
                raise DataError("redshift: this emulator takes the redshift as an input; pass it.")
            if redshift is not None and not spec.uses_redshift:
                _check_fixed_redshift(spec, redshift, n)
            means, variances = member_log10(network, weights, arrays, t, raw, jnp)
            ens = combine(means, variances)
            if blend is None:
                mean, total = ens.mean, variance_scale * ens.var
            else:
                mean, support = blended_mean(blend, t, raw, ens.mean, jnp)
                total = blended_variance_factor(blend, support, variance_scale, jnp) * ens.var
            if ext is not None:
                d2, per_input = distance_outside(t, raw, jnp, redshift_in_dz=ext.redshift_in_dz)
                total = total + record_variance(ext, d2, per_input, jnp)
            mean, var = mean.reshape(n, *shape), total.reshape(n, *shape)
            return (mean[0], var[0]) if single else (mean, var)

        return predict_fn

    @functools.cached_property
    def predict_fields_fn(self) -> Callable[..., dict[str, tuple[Any, Any]]]:
        """:attr:`predict_fn` labelled: ``f(...) -> {field: (mean, var)}``, each [n_r] or [n, n_r].

        Same arguments as :attr:`predict_fn`; keys in :attr:`field_names` order, the last
        axis on the radii :attr:`radius` (in :attr:`radius_unit`); ``jax.jit``-able and
        differentiable like :attr:`predict_fn`, of which it is a relabelling.
        """
        fn, names = self.predict_fn, self.field_names

        def by_field(*args: Any, **kwargs: Any) -> dict[str, tuple[Any, Any]]:
            mean, var = fn(*args, **kwargs)
            return {f: (mean[..., i, :], var[..., i, :]) for i, f in enumerate(names)}

        return by_field

    # --------------------------------------------------------------- files
    @staticmethod
    def weights_file(folder: str | Path) -> Path:
        """The weights file a saved Emulator's manifest points to (see :mod:`profemu.emulator.files`)."""
        return weights_file(folder)

    def save(self, folder: str | Path) -> Path:
        """Write the Emulator to ``folder`` atomically (see :func:`profemu.emulator.files.save_emulator`)."""
        return save_emulator(self, folder)

    @classmethod
    def load(cls, folder: str | Path, *, on_extrapolation: ExtrapolationPolicy | None = None) -> Emulator:
        """Load a folder written by :meth:`save` (see :func:`profemu.emulator.files.load_emulator`)."""
        parts = read_emulator(folder, on_extrapolation=on_extrapolation)
        return cls(parts.transforms, parts.model_config, parts.weights, metadata=parts.metadata,
                   variance_scale=parts.variance_scale, on_extrapolation=parts.on_extrapolation)  # type: ignore[arg-type]


def blended_mean(blend: GPBlend, transforms: Transforms, raw: Mapping[str, Any], network_mean: Any,
                 xp: Any = np) -> tuple[Any, Any]:
    """The blend of the network's mean log10 profiles [n, D] (dex) with its GP's, from raw inputs
    (numpy or JAX; :meth:`GPBlend.mix`, the GP's share fading outside its box), and the GP's
    support [n, 1] (:meth:`GPBlend.support`)."""
    blocks = transforms.transform_inputs(raw["params"], raw["log10_mass"], raw.get("pk_ratio"), raw.get("redshift"),
                                         xp=xp)
    std = blend.standardised_mean(blocks, xp)
    gp_mean, _ = transforms.to_log10(std, None, xp, params=raw["params"], log10_mass=raw["log10_mass"],
                                     redshift=raw.get("redshift"))
    support = blend.support(blocks, xp, fade=_blend_fade(transforms))
    return blend.mix(network_mean, gp_mean, xp, support=support), support


def blended_variance_factor(blend: GPBlend, support: Any, variance_scale: float, xp: Any = np) -> Any:
    """The factor on the network's variance [n, D]: the blend's (fitted for the blended mean) where
    the GP has its share, the network's own ``variance_scale`` where the GP's share has faded and
    the mean is the network's (numpy or JAX)."""
    return variance_scale + support * (xp.asarray(blend.variance_factor, support.dtype) - variance_scale)


def _blend_fade(transforms: Transforms) -> dict[str, np.ndarray]:
    """:data:`~profemu.emulator.blend.FADE` in each input block's normalised units (the parameters'
    times their input relevance): for the halo mass, the redshift input and a parameter column
    read as the redshift (``z``, when it is not log-sampled)."""
    stats = transforms.input_stats
    fade = {"log10_mass": FADE / np.asarray(stats["log10_mass"][1], float)}
    if "redshift" in stats:
        fade["redshift"] = FADE / np.asarray(stats["redshift"][1], float)
    j = transforms.redshift_column
    if j is not None and transforms.param_names[j] not in transforms.log_params and transforms.param_weights[j] > 0:
        column = np.full(len(transforms.param_names), np.inf)
        column[j] = FADE / float(np.asarray(stats["params"][1], float)[j]) * float(transforms.param_weights[j])
        fade["params"] = column
    return fade


def _check_fixed_redshift(spec: InputSpec, redshift: Any, n: int) -> None:
    """A concrete redshift given to an emulator that does not take one must be its training
    redshift (as in :meth:`Emulator.predict`); a traced one cannot be checked and is not used
    (the prediction does not depend on it)."""
    try:
        z = np.asarray(redshift, dtype=float)
    except Exception:
        return
    redshift_input(spec, z, n)


def _raw(inputs: Inputs) -> dict[str, Any]:
    """The checked inputs as the mapping :func:`member_log10` takes."""
    return {"params": inputs.params, "log10_mass": inputs.log10_mass, "pk_ratio": inputs.pk_ratio,
            "redshift": inputs.redshift}


def _check_policy(policy: str) -> ExtrapolationPolicy:
    if policy not in ("error", "warn", "ignore"):
        raise DataError(f"on_extrapolation: {policy!r} is not allowed; choose 'error', 'warn' or 'ignore'.")
    return policy  # type: ignore[return-value]
