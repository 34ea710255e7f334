"""From a :class:`ProfileDataset` to normalised arrays and back: scalers, log10 targets, PCA.

:meth:`Transforms.fit` learns every statistic on the *training split only*; the fitted
object turns any dataset on the same grids into :class:`ArrayData` and maps model outputs
back to log10 profile units. It is JSON-serialisable (:meth:`Transforms.to_dict` /
:meth:`Transforms.from_dict`), never pickled.

Layout of the targets: ``D = F * n_r`` columns, field-major — field ``f`` (in
``field_names`` order) occupies columns ``f * n_r : (f + 1) * n_r``, radii increasing.

Input blocks (see ``docs/architecture.md``), all scaled with the input scaler:

* ``"params"`` [n, p]: log10 applied to ``log_params`` first;
* ``"log10_mass"`` [n, 1];
* ``"pk"`` [n, n_k]: only when the training data have ``pk_ratio`` (scaled per k);
* ``"redshift"`` [n, 1]: only when the training redshift exists and is not constant;
* ``"features"`` [n, f]: only when ``DataConfig.features`` is non-empty.

Scalers (``"standard"``: mean / std; ``"robust"``: median / 1.4826·MAD) are fitted on valid
entries only, and every scale is raised to at least ``scale_floor`` so a constant column
never divides by ~0.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.features import compute_features, fit_feature_stats
from profemu.errors import ConfigError, DataError, FormatError

__all__ = ["ArrayData", "Transforms"]

_FORMAT = "profemu.Transforms"
_VERSION = 1
_SCALERS = ("standard", "robust")
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class ArrayData:
    """Normalised arrays of ``n`` examples, ready for a model (float32 throughout).

    Attributes:
        inputs: Input blocks, name -> [n, width] (see the module docstring).
        target: Standardised log10 profiles [n, D], 0 where ``mask`` is 0 (never NaN).
        mask: 1.0 where the target entry is valid, else 0.0, [n, D].
        noise_var: Known noise variance of ``target`` in standardised units [n, D]
            (0 where unknown or masked).
    """

    inputs: dict[str, np.ndarray]
    target: np.ndarray
    mask: np.ndarray
    noise_var: np.ndarray

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.target.shape[0])


_RELATIVE_FLOOR = 1e-3


def _fit_scaler(
    x: np.ndarray, kind: str, floor: float, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (center, scale) of ``x`` [n, c] over entries where ``valid`` is True.

    Columns without any valid entry get center 0 and scale 1. Every scale is raised to
    at least ``floor`` and to ``_RELATIVE_FLOOR * |center|``: a column that barely varies
    around a large value (e.g. P(k) suppression ~1 at low k, varying by 1e-6) carries no
    usable information in float32, and dividing by its tiny spread would amplify float32
    rounding of the inputs into O(0.1) noise in normalised units.
    """
    x = np.asarray(x, dtype=np.float64)
    if valid is not None:
        x = np.where(valid, x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns handled below
        if kind == "standard":
            center = np.nanmean(x, axis=0)
            scale = np.nanstd(x, axis=0)
        else:
            center = np.nanmedian(x, axis=0)
            scale = _MAD_TO_SIGMA * np.nanmedian(np.abs(x - center), axis=0)
    empty = ~np.isfinite(center)
    center = np.where(empty, 0.0, center)
    scale = np.where(empty | ~np.isfinite(scale), 1.0, scale)
    return center, np.maximum(scale, np.maximum(floor, _RELATIVE_FLOOR * np.abs(center)))


def _as_float(xp: Any, x: Any) -> Any:
    """``x`` as a floating array of ``xp`` (float64 for numpy, default float for JAX)."""
    if xp is np:
        return np.asarray(x, dtype=np.float64)
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(xp.result_type(float))
    return x


def _rows(xp: Any, x: Any, n: int, name: str) -> Any:
    """Broadcast a [1, c] array to [n, c], or check that it already has ``n`` rows."""
    if x.shape[0] == n:
        return x
    if x.shape[0] == 1:
        return xp.broadcast_to(x, (n, *x.shape[1:]))
    raise DataError(f"{name}: {x.shape[0]} rows but params has {n}; pass one row or {n}.")


def _close(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=0.0))


class Transforms:
    """Fitted input/target transforms (see the module docstring for the layout).

    Build with :meth:`fit` (or :meth:`from_dict`); do not call the constructor directly.

    Attributes:
        param_names: Names of the parameter columns, in order.
        log_params: Parameters whose log10 is taken before scaling.
        field_names: Profile fields, in target order.
        units: Field -> unit string.
        radius: Radial grid [n_r] in ``radius_unit``.
        radius_unit: Unit of ``radius``.
        log10_radius: log10 of ``radius`` [n_r].
        k: P(k) wavenumbers [n_k] in h/Mpc, or None.
        n_r: Number of radii.
        target_center: Center of the log10 targets [D].
        target_scale: Scale of the log10 targets [D] (>= scale_floor).
        input_stats: Block -> (center, scale) arrays of the input scalers.
        feature_names: Engineered features in the ``"features"`` block.
        feature_stats: Fitted statistics the features need.
        pca_components: [K, D] orthonormal rows, or None.
        pca_mean: [D] mean of the standardised targets removed before the PCA, or None.
    """

    def __init__(
        self,
        *,
        param_names: Sequence[str],
        log_params: Sequence[str],
        field_names: Sequence[str],
        units: Mapping[str, str],
        radius: np.ndarray,
        radius_unit: str,
        k: np.ndarray | None,
        input_scaler: str,
        target_scaler: str,
        scale_floor: float,
        input_stats: Mapping[str, tuple[np.ndarray, np.ndarray]],
        feature_names: Sequence[str],
        feature_stats: Mapping[str, Any],
        target_center: np.ndarray,
        target_scale: np.ndarray,
        pca_components: np.ndarray | None,
        pca_mean: np.ndarray | None,
        box: Mapping[str, tuple[Any, Any]],
    ) -> None:
        self.param_names = tuple(param_names)
        self.log_params = tuple(log_params)
        self.field_names = tuple(field_names)
        self.units = {f: str(units.get(f, "")) for f in self.field_names}
        self.radius = np.asarray(radius, dtype=np.float64)
        self.radius_unit = str(radius_unit)
        self.k = None if k is None else np.asarray(k, dtype=np.float64)
        self.input_scaler = input_scaler
        self.target_scaler = target_scaler
        self.scale_floor = float(scale_floor)
        self.input_stats = {
            b: (np.asarray(c, dtype=np.float64), np.asarray(s, dtype=np.float64))
            for b, (c, s) in input_stats.items()
        }
        self.feature_names = tuple(feature_names)
        self.feature_stats = dict(feature_stats)
        self.target_center = np.asarray(target_center, dtype=np.float64)
        self.target_scale = np.asarray(target_scale, dtype=np.float64)
        self.pca_components = (
            None if pca_components is None else np.asarray(pca_components, dtype=np.float64)
        )
        self.pca_mean = None if pca_mean is None else np.asarray(pca_mean, dtype=np.float64)
        self._box = {name: (lo, hi) for name, (lo, hi) in box.items()}
        self._log_index = np.array([nm in self.log_params for nm in self.param_names], dtype=bool)

    # ------------------------------------------------------------------ sizes
    @property
    def n_r(self) -> int:
        """Number of radial bins."""
        return int(self.radius.shape[0])

    @property
    def log10_radius(self) -> np.ndarray:
        """log10 of the radial grid [n_r]."""
        return np.log10(self.radius)

    @property
    def target_dim(self) -> int:
        """D = F * n_r, the width of the target in standardised log10 space."""
        return len(self.field_names) * self.n_r

    @property
    def out_dim(self) -> int:
        """Width of the model output: K with PCA, else D."""
        return self.target_dim if self.pca_components is None else int(self.pca_components.shape[0])

    @property
    def input_blocks(self) -> dict[str, int]:
        """Input block name -> width, in the order the blocks are produced."""
        return {b: int(c.shape[0]) for b, (c, _) in self.input_stats.items()}

    @property
    def mass_scale(self) -> float:
        """d(normalised mass input) / d log10 M = 1 / scale of log10_mass."""
        return float(1.0 / self.input_stats["log10_mass"][1][0])

    def input_box(self) -> dict[str, tuple[Any, Any]]:
        """(min, max) of the raw training inputs, for extrapolation checks.

        Returns:
            One entry per parameter name (linear values, floats), ``"log10_mass"`` (floats),
            ``"pk_ratio"`` (two arrays [n_k], per k) when fitted with P(k), ``"redshift"``
            (floats) when the training data have a redshift.
        """
        return {
            name: (np.array(lo), np.array(hi)) if isinstance(lo, list | np.ndarray) else (lo, hi)
            for name, (lo, hi) in self._box.items()
        }

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, ds: ProfileDataset, cfg: DataConfig | None = None) -> Transforms:
        """Fit every statistic on ``ds`` (the training split).

        Args:
            ds: Training dataset.
            cfg: Data configuration (fields, scalers, ``scale_floor``, ``pca_components``,
                ``features``); defaults to ``DataConfig()``.

        Returns:
            The fitted transforms.

        Raises:
            DataError: a configured field or feature input is missing from ``ds``.
            ConfigError: an invalid configuration (e.g. more PCA components than possible).
        """
        cfg = DataConfig() if cfg is None else cfg
        cfg.validate()
        for name, kind in (
            ("input_scaler", cfg.input_scaler),
            ("target_scaler", cfg.target_scaler),
        ):
            if kind not in _SCALERS:
                raise ConfigError(
                    f"data.{name}: unknown scaler {kind!r}; choose one of {list(_SCALERS)}."
                )
        fields = tuple(cfg.fields) if cfg.fields else ds.fields
        for f in fields:
            if f not in ds.profiles:
                raise DataError(
                    f"data.fields: {f!r} is not a field of the dataset; available fields: {list(ds.fields)}."
                )
        if len(set(fields)) != len(fields):
            raise DataError(
                f"data.fields: duplicate field names in {list(fields)}; list each once."
            )
        floor = cfg.scale_floor

        log_index = np.array([nm in ds.log_params for nm in ds.param_names], dtype=bool)
        params_t = np.where(log_index, np.log10(np.where(log_index, ds.params, 1.0)), ds.params)
        stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        stats["params"] = _fit_scaler(params_t, cfg.input_scaler, floor)
        stats["log10_mass"] = _fit_scaler(ds.log10_mass[:, None], cfg.input_scaler, floor)
        box: dict[str, tuple[Any, Any]] = {
            nm: (float(ds.params[:, j].min()), float(ds.params[:, j].max()))
            for j, nm in enumerate(ds.param_names)
        }
        box["log10_mass"] = (float(ds.log10_mass.min()), float(ds.log10_mass.max()))
        if ds.pk_ratio is not None:
            stats["pk"] = _fit_scaler(ds.pk_ratio, cfg.input_scaler, floor)
            box["pk_ratio"] = (ds.pk_ratio.min(axis=0).tolist(), ds.pk_ratio.max(axis=0).tolist())
        if ds.redshift is not None:
            box["redshift"] = (float(ds.redshift.min()), float(ds.redshift.max()))
            if np.ptp(ds.redshift) > 0:
                stats["redshift"] = _fit_scaler(ds.redshift[:, None], cfg.input_scaler, floor)
        feature_names = tuple(cfg.features)
        feature_stats: dict[str, Any] = {}
        if feature_names:
            feature_stats = fit_feature_stats(
                feature_names, ds.param_names, ds.log10_mass, ds.pk_ratio, ds.k
            )
            raw = compute_features(
                feature_names,
                ds.params,
                ds.param_names,
                ds.log10_mass,
                ds.pk_ratio,
                ds.k,
                feature_stats,
            )
            stats["features"] = _fit_scaler(raw, cfg.input_scaler, floor)

        log_target = np.concatenate([ds.log10_profile(f) for f in fields], axis=1)
        valid = np.concatenate([ds.mask[f] for f in fields], axis=1)
        center, scale = _fit_scaler(log_target, cfg.target_scaler, floor, valid)

        components = pca_mean = None
        if cfg.pca_components > 0:
            z = np.where(valid, (log_target - center) / scale, 0.0)
            pca_mean = z.mean(axis=0)
            _, _, vt = np.linalg.svd(z - pca_mean, full_matrices=False)
            if cfg.pca_components > vt.shape[0]:
                raise ConfigError(
                    f"data.pca_components: {cfg.pca_components} components requested but at most "
                    f"min(n_train={ds.n}, D={z.shape[1]}) = {vt.shape[0]} exist; lower it."
                )
            components = vt[: cfg.pca_components]

        return cls(
            param_names=ds.param_names,
            log_params=ds.log_params,
            field_names=fields,
            units=ds.units,
            radius=ds.radius,
            radius_unit=ds.radius_unit,
            k=ds.k,
            input_scaler=cfg.input_scaler,
            target_scaler=cfg.target_scaler,
            scale_floor=floor,
            input_stats=stats,
            feature_names=feature_names,
            feature_stats=feature_stats,
            target_center=center,
            target_scale=scale,
            pca_components=components,
            pca_mean=pca_mean,
            box=box,
        )

    # ------------------------------------------------------------------ forward
    def check_compatible(self, ds: ProfileDataset) -> None:
        """Raise DataError unless ``ds`` has the fitted parameters, fields and grids."""
        if tuple(ds.param_names) != self.param_names:
            raise DataError(
                f"param_names: dataset has {list(ds.param_names)} but the transforms were fitted "
                f"on {list(self.param_names)}; use the same parameters in the same order."
            )
        missing = [f for f in self.field_names if f not in ds.profiles]
        if missing:
            raise DataError(
                f"fields: dataset lacks {missing} that the transforms were fitted on "
                f"(dataset fields: {list(ds.fields)})."
            )
        if not _close(ds.radius, self.radius):
            raise DataError(
                f"radius: the dataset's radial grid ({ds.n_r} bins, {ds.radius[0]:.4g}..{ds.radius[-1]:.4g} "
                f"{ds.radius_unit}) differs from the fitted one ({self.n_r} bins, "
                f"{self.radius[0]:.4g}..{self.radius[-1]:.4g} {self.radius_unit}); rebin the profiles."
            )
        if ds.radius_unit != self.radius_unit:
            raise DataError(
                f"radius_unit: dataset uses {ds.radius_unit!r} but the transforms {self.radius_unit!r}."
            )
        if (ds.k is None) != (self.k is None):
            have = "has" if ds.k is not None else "has no"
            fitted = "with" if self.k is not None else "without"
            raise DataError(
                f"pk_ratio: the dataset {have} P(k) but the transforms were fitted {fitted} it."
            )
        if not _close(ds.k, self.k):
            raise DataError("k: the dataset's P(k) wavenumber grid differs from the fitted one.")
        if "redshift" in self.input_stats and ds.redshift is None:
            raise DataError(
                "redshift: the transforms use a redshift input but the dataset has none."
            )

    def transform_inputs(
        self,
        params: Any,
        log10_mass: Any,
        pk_ratio: Any | None = None,
        redshift: Any | None = None,
        xp: Any = np,
    ) -> dict[str, Any]:
        """Normalised input blocks from raw inputs (differentiable with ``xp=jax.numpy``).

        Args:
            params: Raw (linear) parameters, [n, p] (or [p] for one example).
            log10_mass: log10(M / Msun), [n] (or a scalar, broadcast over rows).
            pk_ratio: P_hydro/P_dmo [n, n_k] on the fitted k grid (required iff fitted with it).
            redshift: Redshift [n] (required iff the ``"redshift"`` block is used, else ignored).
            xp: ``numpy`` or ``jax.numpy``.

        Returns:
            Block name -> [n, width] array (float64 for numpy, JAX's default float for JAX).

        Raises:
            DataError: wrong widths, missing required inputs, non-positive log parameters.
        """
        params = _as_float(xp, params)
        if params.ndim == 1:
            params = params[None, :]
        p = len(self.param_names)
        if params.ndim != 2 or params.shape[1] != p:
            raise DataError(
                f"params: expected shape [n, {p}] (columns {list(self.param_names)}), got {tuple(params.shape)}."
            )
        mass = xp.reshape(_as_float(xp, log10_mass), (-1,))
        n = max(params.shape[0], mass.shape[0])
        if 1 != params.shape[0] != mass.shape[0] != 1:
            raise DataError(
                f"log10_mass: {mass.shape[0]} rows but params has {params.shape[0]}; pass one "
                "value per row (or a single row of params / a single mass to broadcast)."
            )
        params = _rows(xp, params, n, "params")
        mass = _rows(xp, mass, n, "log10_mass")
        if xp is np and self._log_index.any() and (params[:, self._log_index] <= 0).any():
            j = int(
                np.flatnonzero(self._log_index)[
                    np.argmax((params[:, self._log_index] <= 0).any(axis=0))
                ]
            )
            raise DataError(
                f"params[{self.param_names[j]!r}]: values must be > 0 (it is a log parameter; pass "
                "the linear value, not its log10)."
            )

        def scaled(block: str, x: Any) -> Any:
            center, scale = self.input_stats[block]
            return (x - xp.asarray(center, dtype=x.dtype)) / xp.asarray(scale, dtype=x.dtype)

        is_log = xp.asarray(self._log_index)
        params_t = xp.where(is_log, xp.log10(xp.where(is_log, params, 1.0)), params)
        out = {
            "params": scaled("params", params_t),
            "log10_mass": scaled("log10_mass", mass[:, None]),
        }
        pk = None
        if self.k is not None:
            if pk_ratio is None:
                raise DataError(
                    f"pk_ratio: the transforms were fitted with P(k) on {self.k.size} wavenumbers; "
                    "pass pk_ratio [n, n_k]."
                )
            pk = _as_float(xp, pk_ratio)
            if pk.ndim == 1:
                pk = pk[None, :]
            if pk.ndim != 2 or pk.shape[1] != self.k.size:
                raise DataError(
                    f"pk_ratio: expected shape [n, {self.k.size}], got {tuple(pk.shape)}."
                )
            pk = _rows(xp, pk, n, "pk_ratio")
            out["pk"] = scaled("pk", pk)
        elif pk_ratio is not None:
            raise DataError(
                "pk_ratio: given, but the transforms were fitted without P(k); drop it."
            )
        if "redshift" in self.input_stats:
            if redshift is None:
                raise DataError("redshift: the transforms use a redshift input; pass redshift [n].")
            z = _rows(xp, xp.reshape(_as_float(xp, redshift), (-1,)), n, "redshift")
            out["redshift"] = scaled("redshift", z[:, None])
        if self.feature_names:
            raw = compute_features(
                self.feature_names,
                params,
                self.param_names,
                mass,
                pk,
                self.k,
                self.feature_stats,
                xp=xp,
            )
            out["features"] = scaled("features", raw)
        return out

    def transform(self, ds: ProfileDataset) -> ArrayData:
        """Normalised float32 arrays of ``ds`` (any split; statistics are not refitted).

        Raises:
            DataError: ``ds`` has other parameters, fields, radial or k grid than the fit.
        """
        self.check_compatible(ds)
        inputs = self.transform_inputs(
            ds.params,
            ds.log10_mass,
            pk_ratio=ds.pk_ratio if self.k is not None else None,
            redshift=ds.redshift,
        )
        log_target = np.concatenate([ds.log10_profile(f) for f in self.field_names], axis=1)
        valid = np.concatenate([ds.mask[f] for f in self.field_names], axis=1)
        target = np.where(valid, (log_target - self.target_center) / self.target_scale, 0.0)
        noise_dex = np.concatenate(
            [
                ds.noise[f]
                if ds.noise is not None and f in ds.noise
                else np.zeros((ds.n, self.n_r))
                for f in self.field_names
            ],
            axis=1,
        )
        noise_var = np.where(valid, (noise_dex / self.target_scale) ** 2, 0.0)
        return ArrayData(
            inputs={b: np.ascontiguousarray(v, dtype=np.float32) for b, v in inputs.items()},
            target=target.astype(np.float32),
            mask=valid.astype(np.float32),
            noise_var=noise_var.astype(np.float32),
        )

    # ------------------------------------------------------------------ inverse
    def encode_target(self, target_std: Any, xp: Any = np) -> Any:
        """Standardised log10 targets [.., D] -> model output space [.., out_dim] (PCA projection)."""
        if self.pca_components is None:
            return target_std
        return (target_std - xp.asarray(self.pca_mean)) @ xp.asarray(self.pca_components).T

    def decode_mean(self, out: Any, xp: Any = np) -> Any:
        """Model mean [.., out_dim] -> standardised log10 space [.., D] (identity without PCA)."""
        if self.pca_components is None:
            return out
        return out @ xp.asarray(self.pca_components, dtype=out.dtype) + xp.asarray(
            self.pca_mean, dtype=out.dtype
        )

    def decode_var(self, out_var: Any, xp: Any = np) -> Any:
        """Model variance [.., out_dim] -> [.., D], assuming independent PCA coefficients."""
        if self.pca_components is None:
            return out_var
        return out_var @ xp.asarray(self.pca_components**2, dtype=out_var.dtype)

    def to_log10(self, mean_std: Any, var_std: Any | None = None, xp: Any = np) -> tuple[Any, Any]:
        """Standardised (mean, var) [.., D] -> log10 profile mean and variance [.., D] [dex, dex²]."""
        center = xp.asarray(self.target_center, dtype=mean_std.dtype)
        scale = xp.asarray(self.target_scale, dtype=mean_std.dtype)
        mean = center + scale * mean_std
        var = None if var_std is None else var_std * scale**2
        return mean, var

    def split_fields(self, arr: Any) -> dict[str, Any]:
        """[.., D] -> {field: [.., n_r]} following the field-major layout."""
        return {
            f: arr[..., i * self.n_r : (i + 1) * self.n_r] for i, f in enumerate(self.field_names)
        }

    # ------------------------------------------------------------------ files
    def _digest(self) -> str:
        """SHA-256 of the serialised statistics (computed once: Transforms are not mutated)."""
        digest = self.__dict__.get("_digest_cache")
        if digest is None:
            text = json.dumps(self.to_dict(), sort_keys=True)
            digest = hashlib.sha256(text.encode()).hexdigest()
            self.__dict__["_digest_cache"] = digest
        return digest

    def __eq__(self, other: object) -> bool:
        # Equal statistics give identical traced programs, so compiled training code is reused.
        return isinstance(other, Transforms) and self._digest() == other._digest()

    def __hash__(self) -> int:
        return hash(self._digest())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (plain lists, floats and strings); see :meth:`from_dict`."""

        def lst(a: np.ndarray | None) -> Any:
            return None if a is None else np.asarray(a, dtype=np.float64).tolist()

        return {
            "format": _FORMAT,
            "version": _VERSION,
            "param_names": list(self.param_names),
            "log_params": list(self.log_params),
            "field_names": list(self.field_names),
            "units": dict(self.units),
            "radius": lst(self.radius),
            "radius_unit": self.radius_unit,
            "k": lst(self.k),
            "input_scaler": self.input_scaler,
            "target_scaler": self.target_scaler,
            "scale_floor": self.scale_floor,
            "input_stats": {
                b: {"center": lst(c), "scale": lst(s)} for b, (c, s) in self.input_stats.items()
            },
            "feature_names": list(self.feature_names),
            "feature_stats": _json_safe(self.feature_stats),
            "target_center": lst(self.target_center),
            "target_scale": lst(self.target_scale),
            "pca_components": lst(self.pca_components),
            "pca_mean": lst(self.pca_mean),
            "input_box": {
                name: [_json_safe(lo), _json_safe(hi)] for name, (lo, hi) in self._box.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Transforms:
        """Rebuild transforms from :meth:`to_dict` output (e.g. after a JSON round trip).

        Raises:
            FormatError: not a transforms description, a newer version, or a missing key.
        """
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise FormatError(
                f"transforms: not a {_FORMAT} description (missing or wrong 'format')."
            )
        if not isinstance(d.get("version"), int) or d["version"] > _VERSION:
            raise FormatError(
                f"transforms: version {d.get('version')!r} is newer than supported ({_VERSION}); "
                "upgrade profemu."
            )
        try:
            return cls(
                param_names=d["param_names"],
                log_params=d["log_params"],
                field_names=d["field_names"],
                units=d["units"],
                radius=np.asarray(d["radius"], dtype=np.float64),
                radius_unit=d["radius_unit"],
                k=None if d["k"] is None else np.asarray(d["k"], dtype=np.float64),
                input_scaler=d["input_scaler"],
                target_scaler=d["target_scaler"],
                scale_floor=d["scale_floor"],
                input_stats={b: (v["center"], v["scale"]) for b, v in d["input_stats"].items()},
                feature_names=d["feature_names"],
                feature_stats=d["feature_stats"],
                target_center=d["target_center"],
                target_scale=d["target_scale"],
                pca_components=d["pca_components"],
                pca_mean=d["pca_mean"],
                box={name: (v[0], v[1]) for name, v in d["input_box"].items()},
            )
        except KeyError as exc:
            raise FormatError(
                f"transforms: missing key {exc.args[0]!r} in the description."
            ) from None


def _json_safe(value: Any) -> Any:
    """numpy scalars/arrays -> Python floats/lists, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
