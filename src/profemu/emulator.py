"""The :class:`Emulator`: the one artefact users train, save, load and call.

An Emulator bundles the fitted :class:`~profemu.data.transforms.Transforms`, the model
configuration, the (stacked, ``M`` members) network weights and metadata (input names,
log flags, radial grid and units, k grid, field names and units, the training box,
versions, training-data fingerprint, format version).

* :meth:`Emulator.predict` — numpy in, numpy out; uses a numpy-only forward pass, so a
  saved Emulator predicts without importing JAX.
* :attr:`Emulator.predict_fn` — a pure JAX function, ``jax.jit``-able and
  differentiable, for HMC/NUTS likelihoods (numpyro, blackjax).
* :meth:`Emulator.save` / :meth:`Emulator.load` — a folder with ``manifest.json`` and
  ``weights-<sha256 prefix>.npz`` (plain arrays, ``allow_pickle=False``). The manifest is validated
  against its schema and the weights' checksum, names and shapes before use.

Predictions are of log10 of each profile field: ``{field: (mean [n, n_r], var [n, n_r])}``
where ``var`` is the total predictive variance in dex² (ensemble aleatoric +
epistemic, times the calibrated ``variance_scale``).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from profemu._files import atomic_write, flatten_tree, sha256_file, unflatten_tree
from profemu.config import ModelConfig, _build
from profemu.errors import DataError, ExtrapolationError, FormatError

__all__ = ["FORMAT_VERSION", "Emulator", "Prediction"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MAX_WEIGHT_ELEMENTS = 2_000_000_000  # refuse absurd shapes before allocating

ExtrapolationPolicy = Literal["error", "warn", "ignore"]


@dataclass(frozen=True)
class Prediction:
    """Mean and variance of log10 of one field, with the ensemble's split of the variance.

    Attributes:
        mean: [n, n_r] predicted log10 profile.
        var: [n, n_r] total predictive variance [dex²] (= aleatoric + epistemic, scaled).
        aleatoric: [n, n_r] mean of member variances [dex²].
        epistemic: [n, n_r] variance of member means [dex²].
    """

    mean: np.ndarray
    var: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray

    def __iter__(self):  # allows ``mean, var = emu.predict(...)[field]``
        return iter((self.mean, self.var))

    def __getitem__(self, index: int) -> np.ndarray:
        return (self.mean, self.var)[index]

    def __len__(self) -> int:
        return 2

    @property
    def std(self) -> np.ndarray:
        """Predictive standard deviation [dex], [n, n_r]."""
        return np.sqrt(self.var)


class Emulator:
    """A trained emulator of log10 halo profiles.

    Args:
        transforms: Fitted :class:`~profemu.data.transforms.Transforms`.
        model_config: The :class:`~profemu.config.ModelConfig` of the network.
        spec: The :class:`~profemu.models.spec.OutputSpec` the network was built with.
        variables: Flax variables with every leaf stacked on a leading member axis ``M``
            (numpy or JAX arrays; stored as numpy float32).
        metadata: Free-form JSON-safe metadata (training data fingerprint, config, ...).
        variance_scale: Post-hoc calibration factor of the predictive variance.
        on_extrapolation: Default policy for inputs outside the training box.
    """

    def __init__(
        self,
        transforms: Any,
        model_config: ModelConfig,
        spec: Any,
        variables: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        variance_scale: float = 1.0,
        on_extrapolation: ExtrapolationPolicy = "warn",
    ) -> None:
        self.transforms = transforms
        self.model_config = model_config
        self.spec = spec
        self.variables = unflatten_tree(
            {n: np.asarray(a, dtype=np.float32) for n, a in flatten_tree(variables).items()})
        self.metadata = dict(metadata or {})
        self.variance_scale = float(variance_scale)
        self.on_extrapolation = self._check_policy(on_extrapolation)
        leaves = list(flatten_tree(self.variables).values())
        self.members = int(leaves[0].shape[0]) if leaves else 0
        self._box = self._training_box()

    # ------------------------------------------------------------------ info
    @property
    def field_names(self) -> tuple[str, ...]:
        """Fields predicted, in order."""
        return tuple(self.transforms.field_names)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters expected by :meth:`predict`, in column order."""
        return tuple(self.transforms.param_names)

    @property
    def radius(self) -> np.ndarray:
        """Radial grid [n_r] in ``radius_unit``."""
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
        and ``"redshift"`` when present."""
        return {name: (lo.copy(), hi.copy()) if lo.ndim else (float(lo), float(hi))
                for name, (lo, hi) in self._box.items()}

    def __repr__(self) -> str:
        return (
            f"Emulator(kind={self.model_config.kind!r}, members={self.members}, "
            f"params={len(self.param_names)}, fields={list(self.field_names)}, n_r={len(self.radius)})"
        )

    # ------------------------------------------------------------- validation
    @staticmethod
    def _check_policy(policy: str) -> ExtrapolationPolicy:
        if policy not in ("error", "warn", "ignore"):
            raise DataError(
                f"on_extrapolation: {policy!r} is not allowed; choose 'error', 'warn' or 'ignore'."
            )
        return policy  # type: ignore[return-value]

    def _training_box(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        box = self.transforms.input_box()
        return {name: (np.asarray(lo, float), np.asarray(hi, float)) for name, (lo, hi) in box.items()}

    def _log_columns(self) -> np.ndarray:
        cols = self.__dict__.get("_log_cols")
        if cols is None:
            cols = np.array([j for j, nm in enumerate(self.param_names) if nm in self.transforms.log_params],
                            dtype=int)
            self.__dict__["_log_cols"] = cols
        return cols

    def _as_inputs(
        self,
        params: Any,
        log10_mass: Any,
        pk_ratio: Any = None,
        redshift: Any = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
        """Validate user inputs; returns 2-D arrays and whether the input was a single example."""
        names = self.param_names
        if isinstance(params, Mapping):
            unknown = [k for k in params if k not in names]
            missing = [k for k in names if k not in params]
            if unknown or missing:
                raise DataError(
                    f"params: unknown {unknown} and missing {missing} parameter names; "
                    f"the emulator expects exactly {list(names)}."
                )
            params = np.column_stack([np.atleast_1d(np.asarray(params[k], float)) for k in names])
        p = np.asarray(params, dtype=float)
        single = p.ndim == 1
        p = np.atleast_2d(p)
        if p.ndim != 2 or p.shape[1] != len(names):
            raise DataError(
                f"params: expected {len(names)} parameters per example ({', '.join(names)}), "
                f"got shape {np.shape(params)}; pass an array [n, {len(names)}] or a dict by name."
            )
        m = np.atleast_1d(np.asarray(log10_mass, dtype=float))
        if m.ndim != 1:
            raise DataError(f"log10_mass: expected a scalar or a 1-D array, got shape {m.shape}.")
        if m.shape[0] == 1 and p.shape[0] > 1:
            m = np.repeat(m, p.shape[0])
        if p.shape[0] == 1 and m.shape[0] > 1:
            p = np.repeat(p, m.shape[0], axis=0)
            single = False
        if m.shape[0] != p.shape[0]:
            raise DataError(f"log10_mass: {m.shape[0]} values for {p.shape[0]} rows of params.")
        if not (np.isfinite(p).all() and np.isfinite(m).all()):
            for name, arr in (("params", p), ("log10_mass", m)):
                if not np.isfinite(arr).all():
                    bad = np.argwhere(~np.isfinite(arr))[0]
                    raise DataError(
                        f"{name}: non-finite value at {tuple(int(i) for i in bad)}; inputs must be finite."
                    )
        log_cols = self._log_columns()
        if log_cols.size and (p[:, log_cols] <= 0).any():
            j = int(log_cols[np.flatnonzero((p[:, log_cols] <= 0).any(axis=0))[0]])
            raise DataError(
                f"params[{names[j]!r}]: values must be > 0 (the parameter is log-distributed); "
                f"got {p[:, j].min()}."
            )
        pk = None
        k = getattr(self.transforms, "k", None)
        if k is not None:
            if pk_ratio is None:
                raise DataError(f"pk_ratio: this emulator needs P(k) suppression on {len(k)} k bins; pass pk_ratio.")
            pk = np.atleast_2d(np.asarray(pk_ratio, dtype=float))
            if pk.shape[0] == 1 and p.shape[0] > 1:
                pk = np.repeat(pk, p.shape[0], axis=0)
            if pk.shape != (p.shape[0], len(k)):
                raise DataError(f"pk_ratio: expected shape ({p.shape[0]}, {len(k)}), got {pk.shape}.")
            if not np.all(np.isfinite(pk)):
                raise DataError("pk_ratio: non-finite values; inputs must be finite.")
        elif pk_ratio is not None:
            raise DataError("pk_ratio: this emulator was trained without P(k); do not pass pk_ratio.")
        z = None
        if redshift is not None:
            z = np.atleast_1d(np.asarray(redshift, dtype=float))
            if z.shape[0] == 1 and p.shape[0] > 1:
                z = np.repeat(z, p.shape[0])
            if z.shape != (p.shape[0],) or not np.all(np.isfinite(z)):
                raise DataError(f"redshift: expected {p.shape[0]} finite values, got shape {z.shape}.")
        return p, m, pk, z, single

    def _box_blocks(self) -> list[tuple[str, list[str], np.ndarray, np.ndarray]]:
        """The training box per input block: (block, column names, lower, upper) with a tolerance."""
        cached = self.__dict__.get("_box_flat")
        if cached is None:
            cached = []
            params = [n for n in self.param_names if n in self._box]
            if params:
                lo = np.array([float(self._box[n][0]) for n in params])
                hi = np.array([float(self._box[n][1]) for n in params])
                cached.append(("params", params, lo, hi))
            for block in ("log10_mass", "pk_ratio", "redshift"):
                if block in self._box:
                    lo, hi = (np.atleast_1d(a).astype(float) for a in self._box[block])
                    cached.append((block, [block] * lo.size, lo, hi))
            for i, (block, names, lo, hi) in enumerate(cached):
                tol = 1e-9 * (1.0 + np.abs(hi - lo))
                cached[i] = (block, names, lo - tol, hi + tol)
            self.__dict__["_box_flat"] = cached
        return cached

    def _box_for(self, present: tuple[str, ...]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Column names and bounds of the blocks ``present``, concatenated (cached per tuple)."""
        cache = self.__dict__.setdefault("_box_concat", {})
        if present not in cache:
            parts = [b for b in self._box_blocks() if b[0] in present]
            cache[present] = ([n for _, names, _, _ in parts for n in names],
                              np.concatenate([lo for *_, lo, _ in parts]),
                              np.concatenate([hi for *_, hi in parts]))
        return cache[present]

    def check_extrapolation(
        self,
        params: np.ndarray,
        log10_mass: np.ndarray,
        pk_ratio: np.ndarray | None = None,
        redshift: np.ndarray | None = None,
        *,
        policy: ExtrapolationPolicy | None = None,
    ) -> list[str]:
        """Names of inputs outside the training box; warns or raises by ``policy``.

        Args:
            params: [n, p] parameter values (linear, as in the training data).
            log10_mass: [n] log10(M / Msun).
            pk_ratio: [n, n_k] when the emulator uses P(k).
            redshift: [n] when the emulator uses redshift.
            policy: ``"error"``, ``"warn"`` or ``"ignore"`` (default: the Emulator's).
        """
        policy = self._check_policy(policy or self.on_extrapolation)
        if policy == "ignore":
            return []
        given = {"params": params, "log10_mass": log10_mass[:, None],
                 "pk_ratio": pk_ratio, "redshift": None if redshift is None else redshift[:, None]}
        # optional blocks the caller did not pass are not checked
        present = tuple(block for block, *_ in self._box_blocks() if given[block] is not None)
        names, lo, hi = self._box_for(present)
        values = np.concatenate([given[block] for block in present], axis=1)
        bad_cols = np.flatnonzero(((values < lo) | (values > hi)).any(axis=0))
        outside: list[str] = []
        for name in dict.fromkeys(names[j] for j in bad_cols):
            idx = [j for j, nm in enumerate(names) if nm == name]
            v = values[:, idx]
            outside.append(
                f"{name} (training range [{lo[idx].min():.4g}, {hi[idx].max():.4g}], "
                f"got {v.min():.4g}..{v.max():.4g})"
            )
        if not outside:
            return []
        msg = "inputs outside the training box: " + "; ".join(outside)
        if policy == "error":
            raise ExtrapolationError(msg + ". Pass on_extrapolation='warn' or 'ignore' to predict anyway.")
        warnings.warn(msg + "; predictions there are extrapolations.", stacklevel=3)
        return outside

    # ------------------------------------------------------------- prediction
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
            redshift: [n] or scalar, when the emulator uses it.
            on_extrapolation: Override of the default extrapolation policy.

        Returns:
            ``{field: Prediction}``; each unpacks as ``mean, var`` with shapes [n, n_r]
            (or [n_r] for a single example) in log10 units and dex².
        """
        from profemu.models import numpy_forward

        p, m, pk, z, single = self._as_inputs(params, log10_mass, pk_ratio, redshift)
        self.check_extrapolation(p, m, pk, z, policy=on_extrapolation)
        inputs = self.transforms.transform_inputs(p, m, pk, z, xp=np)
        inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
        means, variances = numpy_forward.forward_ensemble(
            self.model_config, self.spec, self.variables["params"], inputs
        )
        return self._finish(means, variances, single)

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
        from profemu.models import numpy_forward

        p, m, pk, z, _ = self._as_inputs(params, log10_mass, pk_ratio, redshift)
        self.check_extrapolation(p, m, pk, z, policy=on_extrapolation)
        inputs = self.transforms.transform_inputs(p, m, pk, z, xp=np)
        inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
        means, variances = numpy_forward.forward_ensemble(
            self.model_config, self.spec, self.variables["params"], inputs
        )
        t = self.transforms
        mean_std = t.decode_mean(np.asarray(means, dtype=np.float64))
        var_std = t.decode_var(np.asarray(variances, dtype=np.float64))
        scale = np.asarray(t.target_scale)
        mean_log = np.asarray(t.target_center) + scale * mean_std
        var_log = var_std * scale**2 * self.variance_scale
        shape = (*mean_log.shape[:2], len(self.field_names), t.n_r)
        return mean_log.reshape(shape), var_log.reshape(shape)

    def _finish(self, means: Any, variances: Any, single: bool) -> dict[str, Prediction]:
        """Member outputs [M, n, out_dim] -> per-field log10 mean, total/aleatoric/epistemic var."""
        t = self.transforms
        mean_std = t.decode_mean(np.asarray(means, dtype=np.float64))  # [M, n, D]
        var_std = t.decode_var(np.asarray(variances, dtype=np.float64))
        inv_m = 1.0 / mean_std.shape[0]  # sums, not .mean(): this is the per-call hot path
        mean = mean_std.sum(axis=0) * inv_m
        aleatoric = var_std.sum(axis=0) * inv_m
        epistemic = ((mean_std - mean) ** 2).sum(axis=0) * inv_m
        scale = np.asarray(t.target_scale)
        center = np.asarray(t.target_center)
        mean_log = center + scale * mean
        ale = aleatoric * scale**2 * self.variance_scale
        epi = epistemic * scale**2 * self.variance_scale
        out: dict[str, Prediction] = {}
        n_r = t.n_r
        for f, name in enumerate(self.field_names):
            sl = slice(f * n_r, (f + 1) * n_r)
            parts = [mean_log[:, sl], ale[:, sl] + epi[:, sl], ale[:, sl], epi[:, sl]]
            if single:
                parts = [a[0] for a in parts]
            out[name] = Prediction(*(np.asarray(a) for a in parts))
        return out

    @property
    def predict_fn(self) -> Callable[..., tuple[Any, Any]]:
        """A pure JAX function ``f(params, log10_mass, pk_ratio=None, redshift=None) -> (mean, var)``.

        ``params`` is [p] or [n, p] (linear values as in the training data),
        ``log10_mass`` scalar or [n]. Returns ``mean`` and total ``var`` of log10 of every
        field with shape [..., F, n_r] (field axis in the order of :attr:`field_names`).
        The function closes over the weights as constants, is ``jax.jit``-able and
        differentiable with respect to every input; no extrapolation check is done
        inside it (call :meth:`check_extrapolation` outside the likelihood if needed).
        """
        import jax
        import jax.numpy as jnp

        from profemu.models.build import build_model
        from profemu.models.ensemble import apply_ensemble

        model = build_model(self.model_config, self.spec)
        variables = jax.tree.map(jnp.asarray, self.variables)
        t = self.transforms
        center = jnp.asarray(t.target_center)
        scale = jnp.asarray(t.target_scale)
        n_fields, n_r = len(self.field_names), t.n_r
        vscale = self.variance_scale

        def predict_fn(params, log10_mass, pk_ratio=None, redshift=None):
            p = jnp.asarray(params)
            single = p.ndim == 1
            p2 = jnp.atleast_2d(p)
            m = jnp.broadcast_to(jnp.atleast_1d(jnp.asarray(log10_mass)), (p2.shape[0],))
            pk = None if pk_ratio is None else jnp.atleast_2d(jnp.asarray(pk_ratio))
            z = None if redshift is None else jnp.broadcast_to(jnp.atleast_1d(redshift), (p2.shape[0],))
            inputs = t.transform_inputs(p2, m, pk, z, xp=jnp)
            means, variances = apply_ensemble(model, variables, inputs, train=False)
            mean_std = t.decode_mean(means, xp=jnp)
            var_std = t.decode_var(variances, xp=jnp)
            mu = mean_std.mean(axis=0)
            var = var_std.mean(axis=0) + ((mean_std - mu) ** 2).mean(axis=0)
            mean_log = (center + scale * mu).reshape(-1, n_fields, n_r)
            var_log = (var * scale**2 * vscale).reshape(-1, n_fields, n_r)
            if single:
                return mean_log[0], var_log[0]
            return mean_log, var_log

        return predict_fn

    # --------------------------------------------------------------- files
    def _manifest(self, weights_sha256: str, shapes: dict[str, list[int]], weights_name: str) -> dict[str, Any]:
        import dataclasses

        versions: dict[str, str] = {"profemu": _package_version("profemu"), "numpy": np.__version__}
        for pkg in ("jax", "flax", "optax"):
            versions[pkg] = _package_version(pkg)
        return {
            "format": "profemu-emulator",
            "format_version": FORMAT_VERSION,
            "versions": versions,
            "model_config": dataclasses.asdict(self.model_config),
            "spec": self.spec.to_dict(),
            "transforms": self.transforms.to_dict(),
            "variance_scale": self.variance_scale,
            "on_extrapolation": self.on_extrapolation,
            "members": self.members,
            "metadata": self.metadata,
            "weights": {"file": weights_name, "sha256": weights_sha256, "shapes": shapes},
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/manifest.json`` and the weights ``folder/weights-<sha>.npz`` atomically.

        The weights go to a content-addressed file name (written to a temporary name,
        flushed and renamed); then the manifest that points to them replaces the old one
        with one atomic rename, the single commit point; older weight files are removed
        last. A save interrupted at any moment (even SIGKILL) leaves a folder that loads
        as the previous or the new Emulator, never a mix, and never loads as complete
        without its manifest.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        flat = flatten_tree(self.variables)
        shapes = {k: list(v.shape) for k, v in flat.items()}
        buffer = io.BytesIO()
        np.savez(buffer, **flat)
        payload = buffer.getvalue()
        digest = hashlib.sha256(payload).hexdigest()
        weights = folder / f"weights-{digest[:16]}.npz"
        atomic_write(weights, lambda fh: fh.write(payload))
        manifest = self._manifest(digest, shapes, weights.name)
        text = json.dumps(manifest, indent=1, sort_keys=False)
        atomic_write(folder / MANIFEST, lambda fh: fh.write(text.encode()))
        for old in folder.glob("weights*.npz"):
            if old.name != weights.name:
                old.unlink(missing_ok=True)
        return folder

    @staticmethod
    def weights_file(folder: str | Path) -> Path:
        """Path of the weights file that ``folder``'s manifest points to."""
        folder = Path(folder)
        return folder / _read_manifest(folder)["weights"]["file"]

    @classmethod
    def load(cls, folder: str | Path, *, on_extrapolation: ExtrapolationPolicy | None = None) -> Emulator:
        """Load a folder written by :meth:`save`.

        The manifest is parsed and validated (format, version, required keys, types)
        before any array is read; the weights' checksum, names and shapes are then
        checked. No code from the files is ever executed.

        Raises:
            FormatError: missing/corrupt files, a newer format version, mismatched shapes.
        """
        from profemu.data.transforms import Transforms
        from profemu.models.spec import OutputSpec

        folder = Path(folder)
        manifest = _read_manifest(folder)
        wfile = folder / manifest["weights"]["file"]
        if Path(manifest["weights"]["file"]).name != manifest["weights"]["file"]:
            raise FormatError(f"{folder / MANIFEST}: weights file must be a plain file name in the folder.")
        if not wfile.is_file():
            raise FormatError(f"{wfile}: weights file is missing; the emulator folder is incomplete.")
        shapes = manifest["weights"]["shapes"]
        for name, shape in shapes.items():
            if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
                raise FormatError(f"{folder / MANIFEST}: weights.shapes[{name!r}] is not a list of sizes.")
            if int(np.prod(shape, dtype=np.int64)) > _MAX_WEIGHT_ELEMENTS:
                raise FormatError(f"{folder / MANIFEST}: weights.shapes[{name!r}] = {shape} is implausibly large.")
        if sha256_file(wfile) != manifest["weights"]["sha256"]:
            raise FormatError(
                f"{wfile}: checksum does not match the manifest (corrupt or replaced file); "
                "re-save or re-train the emulator."
            )
        try:
            with np.load(wfile, allow_pickle=False) as z:
                flat = {k: z[k] for k in z.files}
        except Exception as exc:
            raise FormatError(f"{wfile}: not a readable weights archive ({type(exc).__name__}).") from None
        if set(flat) != set(shapes):
            raise FormatError(
                f"{wfile}: weight names differ from the manifest (extra {sorted(set(flat) - set(shapes))}, "
                f"missing {sorted(set(shapes) - set(flat))})."
            )
        for name, arr in flat.items():
            if list(arr.shape) != shapes[name] or arr.dtype.kind != "f":
                raise FormatError(f"{wfile}: weight {name!r} has shape {arr.shape} {arr.dtype}, manifest says {shapes[name]}.")
        try:
            model_config = _build(ModelConfig, manifest["model_config"], "model.")
            spec = OutputSpec.from_dict(manifest["spec"])
            transforms = Transforms.from_dict(manifest["transforms"])
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"{folder / MANIFEST}: invalid model/transforms section ({exc}).") from None
        emu = cls(
            transforms, model_config, spec, unflatten_tree(flat),
            metadata=manifest.get("metadata", {}),
            variance_scale=float(manifest["variance_scale"]),
            on_extrapolation=on_extrapolation or manifest.get("on_extrapolation", "warn"),
        )
        if emu.members != manifest["members"]:
            raise FormatError(f"{folder / MANIFEST}: members={manifest['members']} but weights hold {emu.members}.")
        return emu


# ---------------------------------------------------------------------- helpers
_MANIFEST_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "versions": dict,
    "model_config": dict,
    "spec": dict,
    "transforms": dict,
    "variance_scale": (int, float),
    "members": int,
    "metadata": dict,
    "weights": dict,
}


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FormatError(f"{folder}: not an emulator folder (expected a directory with {MANIFEST}).")
    if not path.is_file():
        raise FormatError(f"{path}: missing; {folder} is not a saved Emulator (or the save was interrupted).")
    if path.stat().st_size > 256 * 1024 * 1024:
        raise FormatError(f"{path}: implausibly large manifest; refusing to read it.")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not valid JSON ({exc.__class__.__name__}); the file is corrupt or truncated.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "profemu-emulator":
        raise FormatError(f"{path}: not a profemu emulator manifest (missing format='profemu-emulator').")
    version = manifest.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: format_version {version} is newer than this profemu supports ({FORMAT_VERSION}); "
            "upgrade profemu to load it."
        )
    for key, tp in _MANIFEST_SCHEMA.items():
        if key not in manifest:
            raise FormatError(f"{path}: required key {key!r} is missing.")
        if not isinstance(manifest[key], tp) or isinstance(manifest[key], bool):
            raise FormatError(f"{path}: key {key!r} has the wrong type ({type(manifest[key]).__name__}).")
    w = manifest["weights"]
    if not (isinstance(w.get("file"), str) and isinstance(w.get("sha256"), str) and isinstance(w.get("shapes"), dict)):
        raise FormatError(f"{path}: 'weights' must hold 'file', 'sha256' and 'shapes'.")
    return manifest


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
