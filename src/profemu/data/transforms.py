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
* ``"pk"`` [n, n_k]: only when the training data have ``pk_ratio`` (scaled per k), or
  [n, K] with ``DataConfig.pk_components``: the first K principal components of the
  scaled P(k) suppression vector, each divided by its standard deviation;
* ``"redshift"`` [n, 1]: only when the training redshift exists and is not constant;
* ``"features"`` [n, f]: only when ``DataConfig.features`` is non-empty.

Scalers (``"standard"``: mean / std; ``"robust"``: median / 1.4826·MAD) are fitted on valid
entries only, and every scale is raised to at least ``scale_floor`` so a constant column
never divides by ~0. The halo mass and redshift inputs (and a parameter column holding
the redshift) have physical floors on top (:data:`MASS_SCALE_FLOOR_DEX`,
:data:`REDSHIFT_SCALE_FLOOR`): a suite of one narrow mass
bin (or of nearby redshifts) would otherwise put a halo half a dex heavier dozens of
training spreads away, where the network's output is unconstrained.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu._files import json_safe
from profemu.config import DataConfig
from profemu.data.dataset import ProfileDataset, check_radius_columns
from profemu.data.features import compute_features, fit_feature_stats
from profemu.data.layout import (
    HYBRID_TRANSITION,
    HYBRID_WIDTH_DEX,
    FieldSpec,
    OutputLayout,
    field_kind,
)
from profemu.data.selfsimilar import (
    SelfSimilar,
    parse_scaled_radius_unit,
    physical_kind,
    redshift_column,
    resolve,
)
from profemu.errors import ConfigError, DataError, FormatError
from profemu.physics.halo import enclosed_fraction_weights

logger = logging.getLogger(__name__)

__all__ = ["ArrayData", "Transforms", "decode_mean", "decode_var", "pk_component_count"]

_FORMAT = "profemu.Transforms"
_VERSION = 2
_PK_EXPLAINED = 0.999  # variance fraction that sets the automatic number of P(k) components
_PK_MIN_COMPONENTS, _PK_MAX_COMPONENTS = 4, 8
_MAX_LOG10 = 1e4
"""Largest |log10| target centre and target scale a saved emulator may hold [dex]."""
_MIN_LOG10_SCALE = 1e-12
"""Smallest target scale [dex]."""
_MAX_NUMBER = 1e30
#: Most points of the grid in r / R_Δ (``data.radial_coordinate``).
_MAX_SCALED_POINTS = 512
"""Largest magnitude of any other fitted number (float32 arithmetic stays finite)."""

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
#: Smallest scale of the ``log10_mass`` input [dex]. Profiles change over tenths of a dex in
#: mass; scaled by the spread of one narrow mass bin (0.008 dex in a CAMELS LH bin of
#: 10^11-10^11.5 Msun), a halo 0.5 dex heavier is 60 spreads out and the network extrapolates
#: whatever it made of the bin's scatter. On that bin, tested on 10^11.5-10^12, the median
#: errors were 0.37 (rho) and 0.58 (pth) with the bin's spread and 0.15 and 0.28 with this
#: floor (BENCHMARKS.md, "Extrapolation in halo mass", one training mass bin). Suites spanning
#: two or more half-dex bins (CAMELS LH's two full bins: 0.20 dex) keep their own spread.
MASS_SCALE_FLOOR_DEX = 0.2
#: Smallest scale of the ``redshift`` input (in z), for the same reason: snapshots at nearby
#: redshifts.
REDSHIFT_SCALE_FLOOR = 0.25


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
        monotone_fields: Sequence[str] = (),
        pk_pca: Mapping[str, Any] | None = None,
        self_similar: SelfSimilar | None = None,
        param_weights: Any = None,
        scaled_radius: Any = None,
        gas_fraction_fields: Sequence[str] = (),
        ideal_gas: Mapping[str, Sequence[str]] | None = None,
        hybrid_r_delta: float | None = None,
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
        self.monotone_fields = tuple(f for f in self.field_names if f in set(monotone_fields))
        self.self_similar = self_similar
        self.param_weights = (np.ones(len(self.param_names)) if param_weights is None
                              else np.asarray(param_weights, dtype=np.float64))
        self.scaled_radius = None if scaled_radius is None else np.asarray(scaled_radius, dtype=np.float64)
        #: ``data.radial_coordinate: hybrid``: the training mean of log10 R_Δ in the radii's unit (None: not hybrid)
        self.hybrid_r_delta = None if hybrid_r_delta is None else float(hybrid_r_delta)
        self.gas_fraction_fields = tuple(f for f in self.field_names if f in set(gas_fraction_fields))
        #: temperature field -> (pressure field, density field) it is predicted from
        self.ideal_gas = {str(t): (str(pd[0]), str(pd[1])) for t, pd in (ideal_gas or {}).items()}
        self.pk_pca = None if pk_pca is None else {
            key: np.asarray(pk_pca[key], dtype=np.float64) for key in ("mean", "components", "scale")
        }

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
        widths = {b: int(c.shape[0]) for b, (c, _) in self.input_stats.items()}
        if self.pk_pca is not None:
            widths["pk"] = int(self.pk_pca["components"].shape[0])
        return widths

    @functools.cached_property
    def layout(self) -> OutputLayout:
        """The static :class:`~profemu.data.layout.OutputLayout` of models on these transforms."""
        ss = self.self_similar
        # the kind the self-similar normalisation decided from the declared kind and unit; else by name
        kinds = [ss.kinds[i] if ss is not None and ss.kinds[i] else field_kind(f)
                 for i, f in enumerate(self.field_names)]
        fields = tuple(
            FieldSpec(f, self.units.get(f, ""), kind, f in self.monotone_fields,  # type: ignore[arg-type]
                      f in self.gas_fraction_fields, self.ideal_gas.get(f, ()))
            for f, kind in zip(self.field_names, kinds, strict=True)
        )
        return OutputLayout(fields, self.n_r, tuple(self.input_blocks.items()), self.out_dim,
                            pca=self.pca_components is not None,
                            self_similar="" if ss is None else ("scaled" if ss.radius_scaled else "physical"),
                            n_x=0 if self.scaled_radius is None else int(self.scaled_radius.size),
                            hybrid=self.hybrid_r_delta is not None)

    def model_arrays(self) -> dict[str, np.ndarray]:
        """The fitted numbers a network and its losses read (float64; JAX casts them to its float).

        ``target_center`` / ``target_scale`` [D] (log10 = center + scale * standardised),
        ``log10_radius`` [n_r], ``log10_mass_scale`` [] (dex per unit of the normalised
        mass input) and, with PCA outputs, ``pca_components`` [K, D] and ``pca_mean`` [D].
        They are passed to compiled code as arguments, not baked in as constants, so
        fits of one layout on other data reuse the compiled program.
        """
        arrays = {
            "target_center": self.target_center,
            "target_scale": self.target_scale,
            "log10_radius": self.log10_radius,
            "log10_mass_scale": np.asarray(self.input_stats["log10_mass"][1][0]),
        }
        if self.pca_components is not None:
            arrays["pca_components"] = self.pca_components
            arrays["pca_mean"] = self.pca_mean
        if self.scaled_radius is not None:
            arrays.update(self._scaled_arrays())
        if self.hybrid_r_delta is not None:
            arrays["hybrid_log10_r_delta"] = np.asarray(self.hybrid_r_delta)
        if self.gas_fraction_fields:
            arrays["gas_fraction_weights"] = self._gas_fraction_weights()
        return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}

    def _gas_fraction_weights(self) -> np.ndarray:
        """``gas_fraction_weights`` [D]: per output, its weight in the gas inside R_Δ over
        ``f_b M_Δ`` (:func:`~profemu.physics.halo.enclosed_fraction_weights` of the radii in
        units of R_Δ) for the fields in :attr:`gas_fraction_fields`, 0 elsewhere."""
        w = enclosed_fraction_weights(self.radius)
        return np.concatenate([w if f in self.gas_fraction_fields else np.zeros(self.n_r) for f in self.field_names])

    def _scaled_arrays(self) -> dict[str, np.ndarray]:
        """The grid in r / R_Δ and each field's target centre and scale on it.

        ``log10_scaled_radius`` [K]: log10 of the radius (in the dataset's unit) at which a
        halo of the training-mean R_Δ has the grid's r / R_Δ; ``scaled_center`` /
        ``scaled_scale`` [F * K]: the standardisation centre of each field interpolated onto
        that grid (linearly in log10 r, extended linearly beyond the data's radii) and the
        field's mean scale.
        """
        grid = np.asarray(self.scaled_radius, dtype=np.float64)
        log_r = self.log10_radius
        centers, scales = [], []
        for i in range(len(self.field_names)):
            sl = slice(i * self.n_r, (i + 1) * self.n_r)
            centers.append(linear_extrapolating_interp(grid, log_r, self.target_center[sl]))
            scales.append(np.full(grid.size, float(np.mean(self.target_scale[sl]))))
        return {"log10_scaled_radius": grid, "scaled_center": np.concatenate(centers),
                "scaled_scale": np.concatenate(scales)}

    @property
    def mass_scale(self) -> float:
        """d(normalised mass input) / d log10 M = 1 / scale of log10_mass."""
        return float(1.0 / self.input_stats["log10_mass"][1][0])

    @property
    def redshift_column(self) -> int | None:
        """The parameter column read as the redshift: the self-similar scaling's (as the emulator
        was trained, also for files of older versions), else a column named ``z`` or ``Redshift``
        (:func:`~profemu.data.selfsimilar.redshift_column`), else None."""
        ss = self.self_similar
        if ss is not None and ss.redshift_param >= 0:
            return int(ss.redshift_param)
        return redshift_column(self.param_names)

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
    def fit(cls, ds: ProfileDataset, cfg: DataConfig | None = None, *,
            input_weights: np.ndarray | None = None, quiet: bool = False,
            radial_coordinate_of: Transforms | None = None) -> Transforms:
        """Fit every statistic on ``ds`` (the training split).

        Args:
            ds: Training dataset.
            cfg: Data configuration (fields, scalers, ``scale_floor``, ``pca_components``,
                ``features``); defaults to ``DataConfig()``.
            input_weights: Per-parameter weights [p] multiplying the standardised
                parameters (the input relevance, :func:`profemu.train.setup.fit_transforms`
                computes them from ``data.input_relevance``); None: no weighting. A parameter
                with the same value in every row of ``ds`` gets weight 0 whatever is given:
                the network does not read it (its weights from that input would never be
                trained, and a prediction at another value would multiply them by dozens of
                the column's floor-sized scale).
            quiet: Log the self-similar decision at DEBUG, not INFO (internal fits, e.g. the
                baselines' design, whose plain log10 is not the run's choice).
            radial_coordinate_of: Transforms fitted on rows that include ``ds`` (e.g. a run's,
                for a training on part of its rows): their grid in r / R_Δ, its centre in
                log10 R_Δ and the hybrid radius are taken as they are, not fitted on ``ds``,
                so the network has the same shapes (and the run's compiled program serves).
                Ignored where ``ds`` has no self-similar normalisation.

        Returns:
            The fitted transforms.

        Raises:
            DataError: a configured field or feature input is missing from ``ds``, or a field has
                radius columns with no valid entry in any row.
            ConfigError: an invalid configuration (e.g. more PCA components than possible).
        """
        cfg = DataConfig() if cfg is None else cfg
        cfg.validate()
        fields = _fit_fields(ds, cfg)
        check_radius_columns(ds, fields, "training rows")
        floor = cfg.scale_floor
        weights = _checked_input_weights(ds, input_weights)
        stats, box, pk_pca = _fit_input_stats(ds, cfg, quiet=quiet)
        weights = _without_constant_columns(ds, weights, quiet)
        feature_names = tuple(cfg.features)
        feature_stats: dict[str, Any] = {}
        if feature_names:
            feature_stats, stats["features"] = _fit_features(ds, cfg, feature_names)

        self_similar = None
        if cfg.self_similar == "auto":
            self_similar, message = resolve(ds.param_names, fields, None, ds.units,
                                            ds.meta, ds.redshift, ds.radius_unit, ds.params)
            logger.log(logging.DEBUG if quiet else logging.INFO, "%s", message)
        else:
            logger.log(logging.DEBUG if quiet else logging.INFO,
                       "self-similar normalisation off: data.self_similar = %r; plain log10 profiles are learnt",
                       cfg.self_similar)
        log_target = _log10_targets(ds, fields, self_similar)
        valid = np.concatenate([ds.mask[f] for f in fields], axis=1)
        center, scale = _fit_scaler(log_target, cfg.target_scaler, floor, valid)
        given = radial_coordinate_of
        if given is not None and self_similar is not None and cfg.radial_coordinate != "physical":
            scaled_radius, hybrid_r_delta = given.scaled_radius, given.hybrid_r_delta
            if scaled_radius is not None:
                stats["r_delta"] = tuple(np.array(a, dtype=np.float64) for a in given.input_stats["r_delta"])
        else:
            scaled_radius, hybrid_r_delta = _fit_radial_coordinate(ds, cfg, self_similar, stats, quiet=quiet)
        components = pca_mean = None
        if cfg.pca_components > 0:
            components, pca_mean = _fit_target_pca(log_target, valid, center, scale, cfg.pca_components, ds.n)
        gas_fraction_fields = _gas_fraction_fields(ds, cfg, fields, self_similar, scaled_radius is not None,
                                                   log_target, valid, quiet=quiet)
        ideal_gas = _ideal_gas(ds, cfg, fields, self_similar, components is not None)

        return cls(
            monotone_fields=_resolve_monotone(cfg.monotone_fields, fields),
            pk_pca=pk_pca,
            self_similar=self_similar,
            param_weights=weights,
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
            scaled_radius=scaled_radius,
            gas_fraction_fields=gas_fraction_fields,
            ideal_gas=ideal_gas,
            hybrid_r_delta=hybrid_r_delta,
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
        if ds.radius_unit != self.radius_unit:  # first: the same radii in another unit are no other grid
            raise DataError(
                f"radius_unit: the dataset's radii are in {ds.radius_unit!r} but the emulator's in "
                f"{self.radius_unit!r}; convert the dataset's radii (and its radius_unit) to {self.radius_unit!r}."
            )
        if not _close(ds.radius, self.radius):
            raise DataError(
                f"radius: the dataset's radial grid ({ds.n_r} bins, {ds.radius[0]:.4g}..{ds.radius[-1]:.4g} "
                f"{ds.radius_unit}) differs from the fitted one ({self.n_r} bins, "
                f"{self.radius[0]:.4g}..{self.radius[-1]:.4g} {self.radius_unit}); rebin the profiles."
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

        The inputs must already be checked and broadcast to ``n`` rows (see
        :func:`profemu.emulator.inputs.check_inputs`); this only computes.

        Args:
            params: Raw (linear) parameters, [n, p].
            log10_mass: log10(M / Msun), [n].
            pk_ratio: P_hydro/P_dmo [n, n_k] on the fitted k grid (iff fitted with it).
            redshift: Redshift [n] (iff the ``"redshift"`` block is used).
            xp: ``numpy`` or ``jax.numpy``.

        Returns:
            Block name -> [n, width] array (float64 for numpy, JAX's default float for JAX).
        """
        params = _as_float(xp, params)
        mass = _as_float(xp, log10_mass)

        def scaled(block: str, x: Any) -> Any:
            center, scale = self.input_stats[block]
            return (x - xp.asarray(center, dtype=x.dtype)) / xp.asarray(scale, dtype=x.dtype)

        is_log = xp.asarray(self._log_index)
        params_t = xp.where(is_log, xp.log10(xp.where(is_log, params, 1.0)), params)
        out = {
            "params": scaled("params", params_t) * xp.asarray(self.param_weights, dtype=params_t.dtype),
            "log10_mass": scaled("log10_mass", mass[:, None]),
        }
        pk = None
        if self.k is not None:
            pk = _as_float(xp, pk_ratio)
            out["pk"] = scaled("pk", pk)
            if self.pk_pca is not None:
                basis = {k: xp.asarray(v, dtype=out["pk"].dtype) for k, v in self.pk_pca.items()}
                out["pk"] = ((out["pk"] - basis["mean"]) @ basis["components"].T) / basis["scale"]
        if "redshift" in self.input_stats:
            out["redshift"] = scaled("redshift", _as_float(xp, redshift)[:, None])
        if "r_delta" in self.input_stats and self.self_similar is not None:
            z = None if redshift is None else _as_float(xp, redshift)
            log_r_delta = self.self_similar.log10_halo_radius(params, mass, z, xp)
            out["r_delta"] = scaled("r_delta", log_r_delta[:, None])
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
        log_target = _log10_targets(ds, self.field_names, self.self_similar)
        # a row whose cosmology has no self-similar scale (e.g. Omega_m <= 0) cannot be normalised
        valid = np.concatenate([ds.mask[f] for f in self.field_names], axis=1) & np.isfinite(log_target)
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

    def to_log10(
        self,
        mean_std: Any,
        var_std: Any | None = None,
        xp: Any = np,
        *,
        params: Any = None,
        log10_mass: Any = None,
        redshift: Any = None,
    ) -> tuple[Any, Any]:
        """Standardised (mean, var) [.., n, D] -> log10 profile mean and variance [dex, dex²].

        With the self-similar normalisation the mean is ``log10(y / y_Δ)`` until the
        halo's scale is added back, which needs the raw inputs: ``params`` [n, p],
        ``log10_mass`` [n] and, when the redshift varies, ``redshift`` [n].
        """
        center = xp.asarray(self.target_center, dtype=mean_std.dtype)
        scale = xp.asarray(self.target_scale, dtype=mean_std.dtype)
        mean = center + scale * mean_std
        if self.self_similar is not None:
            if params is None or log10_mass is None:
                raise DataError("to_log10: the self-similar scale needs params and log10_mass of the rows.")
            log_scale = self.self_similar.log10_scale(params, log10_mass, redshift, xp)  # [n, F]
            mean = mean + xp.repeat(xp.asarray(log_scale, dtype=mean.dtype), self.n_r, axis=-1)
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
            "feature_stats": json_safe(self.feature_stats),
            "target_center": lst(self.target_center),
            "target_scale": lst(self.target_scale),
            "pca_components": lst(self.pca_components),
            "pca_mean": lst(self.pca_mean),
            "input_box": {
                name: [json_safe(lo), json_safe(hi)] for name, (lo, hi) in self._box.items()
            },
            "monotone_fields": list(self.monotone_fields),
            "pk_pca": None if self.pk_pca is None else {k: lst(v) for k, v in self.pk_pca.items()},
            "self_similar": None if self.self_similar is None else self.self_similar.to_dict(),
            "param_weights": lst(self.param_weights),
            "scaled_radius": lst(self.scaled_radius),
            "hybrid_r_delta": self.hybrid_r_delta,
            "gas_fraction_fields": list(self.gas_fraction_fields),
            "ideal_gas": {t: list(pd) for t, pd in self.ideal_gas.items()},
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
            t = cls(
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
                monotone_fields=d.get("monotone_fields", ()),
                pk_pca=d.get("pk_pca"),
                self_similar=None if d.get("self_similar") is None else SelfSimilar.from_dict(d["self_similar"]),
                param_weights=d.get("param_weights"),
                scaled_radius=d.get("scaled_radius"),
                gas_fraction_fields=_known_fields(d.get("gas_fraction_fields", ()), d["field_names"],
                                                  "gas_fraction_fields"),
                ideal_gas=_known_ideal_gas(d.get("ideal_gas", {}), d["field_names"]),
                hybrid_r_delta=_finite_or_none(d.get("hybrid_r_delta"), "hybrid_r_delta"),
            )
        except KeyError as exc:
            raise FormatError(
                f"transforms: missing key {exc.args[0]!r} in the description."
            ) from None
        except (TypeError, ValueError) as exc:
            raise FormatError(f"transforms: malformed description ({type(exc).__name__}: {exc}).") from None
        t.check_numbers()
        return t

    def check_numbers(self) -> None:
        """Every fitted number finite, scales > 0, shapes consistent, box ordered.

        Raises:
            FormatError: naming the first bad entry (e.g. of a hand-edited manifest).
        """

        def bad(what: str) -> None:
            raise FormatError(f"transforms: {what}; the saved emulator is damaged or was edited.")

        d = self.target_dim
        if not self.field_names or len(set(self.field_names)) != len(self.field_names):
            bad(f"field_names {list(self.field_names)} must be unique and non-empty")
        if self.radius.ndim != 1 or self.radius.size < 1 or not np.all(np.isfinite(self.radius)):
            bad("radius must be a non-empty finite 1-D grid")
        if (self.radius <= 0).any() or (np.diff(self.radius) <= 0).any():
            bad("radius must be positive and strictly increasing")
        for name in ("target_center", "target_scale"):
            arr = getattr(self, name)
            if arr.shape != (d,) or not np.all(np.isfinite(arr)):
                bad(f"{name} must hold {d} finite numbers (fields x radii)")
        if (self.target_scale <= 0).any():
            bad("target_scale must be > 0")
        widths = {"params": len(self.param_names), "log10_mass": 1, "redshift": 1, "r_delta": 1,
                  "pk": None if self.k is None else self.k.size}
        for block, (center, scale) in self.input_stats.items():
            want = widths.get(block, center.shape[0])
            if center.shape != scale.shape or center.ndim != 1 or (want is not None and center.size != want):
                bad(f"input_stats[{block!r}] has the wrong shape")
            if not (np.all(np.isfinite(center)) and np.all(np.isfinite(scale)) and (scale > 0).all()):
                bad(f"input_stats[{block!r}] must be finite with scales > 0")
        if "params" not in self.input_stats or "log10_mass" not in self.input_stats:
            bad("input_stats must hold 'params' and 'log10_mass'")
        if (self.scaled_radius is None) != ("r_delta" not in self.input_stats):
            bad("scaled_radius and input_stats['r_delta'] must be given together")
        if self.scaled_radius is not None:
            g = self.scaled_radius
            if self.self_similar is None or self.pca_components is not None:
                bad("scaled_radius needs the self-similar normalisation and outputs on the radial grid")
            if g.ndim != 1 or not 2 <= g.size <= _MAX_SCALED_POINTS or not np.all(np.isfinite(g)) or \
                    (np.diff(g) <= 0).any() or np.abs(g).max() > _MAX_LOG10:
                bad(f"scaled_radius must be 2 to {_MAX_SCALED_POINTS} increasing finite log10 radii")
        if self.hybrid_r_delta is not None and (self.scaled_radius is None or abs(self.hybrid_r_delta) > _MAX_LOG10):
            bad("hybrid_r_delta needs scaled_radius and must be a finite log10 radius")
        w = self.param_weights
        one_value = np.array([n in self._box and float(self._box[n][0]) == float(self._box[n][1])
                              for n in self.param_names], bool)
        if w.shape != (len(self.param_names),) or not np.all(np.isfinite(w)) or (w < 0).any() or (w > 1).any() \
                or ((w == 0) & ~one_value).any():
            bad("param_weights must hold one weight in (0, 1] per parameter (0 only for a parameter with one value "
                "in the training box)")
        for name, (lo, hi) in self._box.items():
            lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
            if lo_a.shape != hi_a.shape or not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a))):
                bad(f"input_box[{name!r}] must be finite")
            if (lo_a > hi_a).any():
                bad(f"input_box[{name!r}] has lower > upper bound")
        missing = [n for n in (*self.param_names, "log10_mass") if n not in self._box]
        if missing:
            bad(f"input_box lacks {missing}")
        if self.pca_components is not None:
            comps, mean = self.pca_components, self.pca_mean
            if comps.ndim != 2 or comps.shape[1] != d or mean is None or mean.shape != (d,):
                bad("pca_components/pca_mean have the wrong shape")
            if not (np.all(np.isfinite(comps)) and np.all(np.isfinite(mean))):
                bad("pca_components/pca_mean must be finite")
        if self.pk_pca is not None:
            n_k = 0 if self.k is None else self.k.size
            comps = self.pk_pca["components"]
            if comps.ndim != 2 or comps.shape[1] != n_k or self.pk_pca["mean"].shape != (n_k,) or \
                    self.pk_pca["scale"].shape != (comps.shape[0],):
                bad("pk_pca has the wrong shape")
            if not all(np.all(np.isfinite(v)) for v in self.pk_pca.values()) or (self.pk_pca["scale"] <= 0).any():
                bad("pk_pca must be finite with scales > 0")
        self._check_ranges(bad)

    def _check_ranges(self, bad: Callable[[str], None]) -> None:
        """Numbers that are finite but far outside what a fit produces (a hand-edited file).

        log10 targets: |centre| <= 1e4 dex and scales in [1e-12, 1e4]; every other fitted
        number within 1e30 in magnitude and every scale above 1e-30, so the model's float32
        arithmetic cannot overflow.
        """
        if np.abs(self.target_center).max() > _MAX_LOG10 or self.target_scale.max() > _MAX_LOG10 or \
                self.target_scale.min() < _MIN_LOG10_SCALE:
            bad(f"target_center/target_scale are outside what log10 profiles allow (|centre| <= {_MAX_LOG10:g} dex, "
                f"scales in [{_MIN_LOG10_SCALE:g}, {_MAX_LOG10:g}])")
        arrays: dict[str, Any] = {f"input_stats[{b!r}]": np.concatenate([c, s_])
                                  for b, (c, s_) in self.input_stats.items()}
        arrays.update({"pca_components/pca_mean": [] if self.pca_components is None else
                       np.concatenate([self.pca_components.ravel(), self.pca_mean.ravel()])})
        arrays.update({f"pk_pca[{k!r}]": v for k, v in (self.pk_pca or {}).items()})
        for name, values in arrays.items():
            values = np.asarray(values, dtype=float)
            if values.size and np.abs(values).max() > _MAX_NUMBER:
                bad(f"{name} holds {np.abs(values).max():.3g}, above {_MAX_NUMBER:g} in magnitude")
        for block, (_, scale) in self.input_stats.items():
            if scale.size and scale.min() < 1.0 / _MAX_NUMBER:
                bad(f"input_stats[{block!r}] has a scale of {scale.min():.3g}, below {1.0 / _MAX_NUMBER:g}")


def decode_mean(out: Any, arrays: Mapping[str, Any], xp: Any = np) -> Any:
    """Network mean [.., out_dim] -> standardised log10 profiles [.., D] (identity without PCA).

    ``arrays`` is :meth:`Transforms.model_arrays` (numpy or traced JAX arrays).
    """
    if "pca_components" not in arrays:
        return out
    return out @ xp.asarray(arrays["pca_components"], dtype=out.dtype) + xp.asarray(
        arrays["pca_mean"], dtype=out.dtype
    )


def decode_var(out_var: Any, arrays: Mapping[str, Any], xp: Any = np) -> Any:
    """Network variance [.., out_dim] -> [.., D], the PCA coefficients taken as independent."""
    if "pca_components" not in arrays:
        return out_var
    return out_var @ xp.asarray(arrays["pca_components"], dtype=out_var.dtype) ** 2


def pk_component_count(explained: np.ndarray) -> int:
    """Automatic number of P(k) components: the fewest that explain 99.9% of the variance,
    at least 4 and at most 8 (and never more than exist).

    Args:
        explained: Fraction of variance per component, decreasing, [c].
    """
    cumulative = np.cumsum(explained)
    k = int(np.searchsorted(cumulative, _PK_EXPLAINED * cumulative[-1]) + 1)
    return int(min(max(k, _PK_MIN_COMPONENTS), _PK_MAX_COMPONENTS, explained.size))


def _fit_pk_pca(z: np.ndarray, components: int | None) -> dict[str, np.ndarray]:
    """PCA basis of the scaled P(k) vectors ``z`` [n, n_k]: mean, [K, n_k] rows, per-row std."""
    mean = z.mean(axis=0)
    _, sv, vt = np.linalg.svd(z - mean, full_matrices=False)
    var = sv**2 / max(z.shape[0] - 1, 1)
    k = pk_component_count(var / max(var.sum(), 1e-300)) if components is None else int(components)
    if k > vt.shape[0]:
        raise ConfigError(
            f"data.pk_components: {k} components requested but the training P(k) vectors span at most "
            f"{vt.shape[0]}; lower it."
        )
    scale = np.sqrt(np.maximum(var[:k], 1e-12))
    return {"mean": mean, "components": vt[:k], "scale": scale}


def _fit_fields(ds: ProfileDataset, cfg: DataConfig) -> tuple[str, ...]:
    """The target fields (``data.fields`` or every field of ``ds``), after checking the scalers' names."""
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
    return fields


def _checked_input_weights(ds: ProfileDataset, input_weights: np.ndarray | None) -> np.ndarray | None:
    """The per-parameter input weights [p] (finite, in [0, 1]), or None."""
    if input_weights is None:
        return None
    weights = np.asarray(input_weights, dtype=float)
    if weights.shape != (len(ds.param_names),) or not np.all(np.isfinite(weights) & (weights >= 0) & (weights <= 1)):
        raise DataError(f"input_weights: expected {len(ds.param_names)} finite weights in [0, 1] (one per "
                        f"parameter), got shape {weights.shape}; compute them with fit_transforms.")
    return weights


def _without_constant_columns(ds: ProfileDataset, weights: np.ndarray | None, quiet: bool) -> np.ndarray | None:
    """``weights`` with 0 for every parameter that has one value in all training rows (a log line
    names them); unchanged (None stays None) when there is none."""
    params = np.asarray(ds.params, dtype=float)
    constant = (np.ptp(params, axis=0) == 0) if ds.n else np.zeros(params.shape[1], bool)
    if not constant.any():
        return weights
    out = np.ones(constant.size) if weights is None else np.array(weights, dtype=float)
    out[constant] = 0.0
    names = [str(ds.param_names[j]) for j in np.flatnonzero(constant)]
    logger.log(logging.DEBUG if quiet else logging.INFO,
               "parameters %s have one value in every training row: the network does not read them (a prediction "
               "at another value is the one at the training value, flagged as outside the training box)",
               ", ".join(repr(n) for n in names))
    return out


def _fit_input_stats(
    ds: ProfileDataset, cfg: DataConfig, quiet: bool = False
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple[Any, Any]], dict[str, np.ndarray] | None]:
    """Scaler statistics of the parameter, mass, P(k) and redshift blocks, the training box
    of every input, and the P(k) principal components (None unless configured); ``quiet``: the
    physical floors' log lines at DEBUG."""
    floor = cfg.scale_floor
    log_index = np.array([nm in ds.log_params for nm in ds.param_names], dtype=bool)
    params_t = np.where(log_index, np.log10(np.where(log_index, ds.params, 1.0)), ds.params)
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    stats["params"] = _fit_scaler(params_t, cfg.input_scaler, floor)
    z_column = redshift_column(ds.param_names)
    if z_column is not None and not log_index[z_column]:  # the redshift as a parameter column: its floor too
        _physical_floor(stats["params"][1], z_column, REDSHIFT_SCALE_FLOOR,
                        f"parameter column {ds.param_names[z_column]!r} (the redshift)", "in z", quiet)
    stats["log10_mass"] = _fit_scaler(ds.log10_mass[:, None], cfg.input_scaler, floor)
    _physical_floor(stats["log10_mass"][1], 0, MASS_SCALE_FLOOR_DEX, "log10_mass", "dex", quiet)
    box: dict[str, tuple[Any, Any]] = {
        nm: (float(ds.params[:, j].min()), float(ds.params[:, j].max()))
        for j, nm in enumerate(ds.param_names)
    }
    box["log10_mass"] = (float(ds.log10_mass.min()), float(ds.log10_mass.max()))
    pk_pca = None
    if ds.pk_ratio is not None:
        stats["pk"] = _fit_scaler(ds.pk_ratio, cfg.input_scaler, floor)
        box["pk_ratio"] = (ds.pk_ratio.min(axis=0).tolist(), ds.pk_ratio.max(axis=0).tolist())
        if cfg.pk_components != 0:
            pk_pca = _fit_pk_pca((ds.pk_ratio - stats["pk"][0]) / stats["pk"][1], cfg.pk_components)
    if ds.redshift is not None:
        box["redshift"] = (float(ds.redshift.min()), float(ds.redshift.max()))
        if np.ptp(ds.redshift) > 0:
            stats["redshift"] = _fit_scaler(ds.redshift[:, None], cfg.input_scaler, floor)
            _physical_floor(stats["redshift"][1], 0, REDSHIFT_SCALE_FLOOR, "redshift", "in z", quiet)
    return stats, box, pk_pca


def _physical_floor(scale: np.ndarray, column: int, floor: float, name: str, unit: str, quiet: bool) -> None:
    """Raise ``scale[column]`` (in place) to ``floor``, with a log line when it is below."""
    if float(scale[column]) < floor:
        logger.log(logging.DEBUG if quiet else logging.INFO,
                   "%s input: the training rows' spread is %.3g %s; scaled by %.3g %s instead, so values beyond "
                   "them are not read as far outliers", name, float(scale[column]), unit, floor, unit)
        scale[column] = floor


def _fit_features(
    ds: ProfileDataset, cfg: DataConfig, feature_names: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """The derived features' own statistics and the scaler statistics of the feature block."""
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
    return feature_stats, _fit_scaler(raw, cfg.input_scaler, cfg.scale_floor)


def _fit_target_pca(
    log_target: np.ndarray, valid: np.ndarray, center: np.ndarray, scale: np.ndarray, n_components: int, n_train: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_components`` principal axes [K, D] of the scaled targets (0 at invalid entries) and their mean [D]."""
    z = np.where(valid, (log_target - center) / scale, 0.0)
    pca_mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - pca_mean, full_matrices=False)
    if n_components > vt.shape[0]:
        raise ConfigError(
            f"data.pca_components: {n_components} components requested but at most "
            f"min(n_train={n_train}, D={z.shape[1]}) = {vt.shape[0]} exist; lower it."
        )
    return vt[:n_components], pca_mean


def _log10_targets(ds: ProfileDataset, fields: Sequence[str], self_similar: SelfSimilar | None) -> np.ndarray:
    """log10 profiles of ``fields`` [n, D], divided by the self-similar scale when one is given."""
    log_target = np.concatenate([ds.log10_profile(f) for f in fields], axis=1)
    if self_similar is None:
        return log_target
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = self_similar.log10_scale(ds.params, ds.log10_mass, ds.redshift)
        return log_target - np.repeat(scale, ds.n_r, axis=1)


def linear_extrapolating_interp(x: np.ndarray, xp_: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` that continues the first and last segments as straight lines beyond ``xp_``."""
    x, xp_, fp = (np.asarray(a, dtype=np.float64) for a in (x, xp_, fp))
    if xp_.size == 1:
        return np.full(x.shape, fp[0])
    y = np.interp(x, xp_, fp)
    lo, hi = x < xp_[0], x > xp_[-1]
    y[lo] = fp[0] + (x[lo] - xp_[0]) * (fp[1] - fp[0]) / (xp_[1] - xp_[0])
    y[hi] = fp[-1] + (x[hi] - xp_[-1]) * (fp[-1] - fp[-2]) / (xp_[-1] - xp_[-2])
    return y


def _fit_radial_coordinate(ds: ProfileDataset, cfg: DataConfig, self_similar: SelfSimilar | None,
                           stats: dict[str, tuple[np.ndarray, np.ndarray]], quiet: bool = False,
                           ) -> tuple[np.ndarray | None, float | None]:
    """The log10 grid of the network's radial coordinate r / R_Δ (None for physical radii) and, for
    ``"hybrid"``, the training mean of log10 R_Δ in the radii's unit (else None).

    Adds ``stats["r_delta"]`` (centre: the training mean of log10 R_Δ, scale 1) when the
    coordinate is scaled. The grid spans every training row's radii once shifted to the mean
    R_Δ, with the data's mean spacing in log10 r (at most :data:`_MAX_SCALED_POINTS` points).
    ``"hybrid"`` falls back to physical radii, with a log line, where r / R_Δ cannot apply
    (``quiet``: the lines at DEBUG, as for the self-similar decision).

    Raises:
        ConfigError: ``data.radial_coordinate = "scaled"`` where it cannot apply.
    """
    mode = cfg.radial_coordinate
    level = logging.DEBUG if quiet else logging.INFO
    if mode == "physical":
        return None, None
    reason = ""
    if self_similar is None:
        reason = "it needs the self-similar normalisation (mass definition, redshift, Omega_m; see the line above)"
    elif self_similar.radius_scaled:
        logger.log(level, "radial coordinate: the radii are already in units of R_Delta (%s)", ds.radius_unit)
        return None, None
    elif cfg.pca_components > 0:
        reason = "it needs outputs on the radial grid (data.pca_components > 0)"
    elif ds.n_r < 2:
        reason = "it needs at least 2 radii"
    elif mode == "hybrid" and (unit_log10_mpc := radius_unit_log10_mpc(ds.radius_unit)) is None:
        reason = f"the radius unit {ds.radius_unit!r} is not a length in pc, kpc or Mpc"
    log_r_delta = None
    if not reason:
        assert self_similar is not None
        with np.errstate(all="ignore"):
            log_r_delta = np.asarray(self_similar.log10_halo_radius(ds.params, ds.log10_mass, ds.redshift),
                                     dtype=np.float64)
        if not np.all(np.isfinite(log_r_delta)):
            reason = "R_Delta is not finite for some training rows (check Omega_m, h and the redshift)"
    if reason:
        if mode == "scaled":
            raise ConfigError(f"data.radial_coordinate = 'scaled': {reason}; set data.radial_coordinate to 'auto' "
                              "or 'physical'.")
        logger.log(level, "radial coordinate: physical radii, not r/R_Delta (%s)", reason)
        return None, None
    assert log_r_delta is not None
    center = float(np.mean(log_r_delta))
    shift = log_r_delta - center
    log_r = np.log10(ds.radius)
    spacing = float(np.median(np.diff(log_r)))
    span = float(shift.max() - shift.min())
    points = min(ds.n_r + int(np.ceil(span / spacing - 1e-9)), _MAX_SCALED_POINTS)
    grid = np.linspace(log_r[0] - shift.max(), log_r[-1] - shift.min(), max(points, 2))
    stats["r_delta"] = (np.array([center]), np.array([1.0]))
    if mode == "hybrid":
        mean_r_delta = center - unit_log10_mpc  # R_Δ [Mpc] in the radii's unit
        logger.log(level, "radial coordinate: hybrid; the network draws each profile on the dataset's %d radii and on %d "
                    "points of r/R_Delta (the training haloes' R_Delta span %.2f dex), and takes the first inside "
                    "%g R_Delta, the second outside (over %.2g dex; data.radial_coordinate: physical turns this off)",
                    ds.n_r, grid.size, span, HYBRID_TRANSITION, HYBRID_WIDTH_DEX)
        return grid, mean_r_delta
    logger.log(level, "radial coordinate: r/R_Delta; the training haloes' R_Delta span %.2f dex, so the network draws "
                "each profile on %d points of r/R_Delta and interpolates it to the dataset's %d radii "
                "(data.radial_coordinate: physical turns this off)", span, grid.size, ds.n_r)
    return grid, None


_LENGTHS_LOG10_MPC = {"mpc": 0.0, "kpc": -3.0, "pc": -6.0}


def radius_unit_log10_mpc(unit: str) -> float | None:
    """log10 of a radius unit's length in Mpc, before its h and comoving factors (which
    :meth:`~profemu.data.selfsimilar.SelfSimilar.log10_halo_radius` applies): ``"kpc"``,
    ``"ckpc/h"``, ``"Mpc h^-1"`` -> -3, -3, 0; None for another unit (``"R200c"``, ``"arcmin"``)."""
    found = re.search(r"(?<![a-z])c?(mpc|kpc|pc)(?![a-z])", str(unit).strip().lower())
    return None if found is None else _LENGTHS_LOG10_MPC[found.group(1)]


def _finite_or_none(value: Any, key: str) -> float | None:
    """A saved number, or None; FormatError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"transforms: {key} {value!r} must be a finite number; the saved emulator is damaged "
                          "or was edited.")
    return float(value)


def _resolve_monotone(requested: Sequence[str] | None, fields: Sequence[str]) -> tuple[str, ...]:
    """``data.monotone_fields`` among ``fields``: None = density- and pressure-like fields."""
    if requested is None:
        return tuple(f for f in fields if field_kind(f) in ("density", "pressure"))
    unknown = [f for f in requested if f not in fields]
    if unknown:
        raise ConfigError(
            f"data.monotone_fields: {unknown} are not fitted fields; choose from {list(fields)} (or [] for none)."
        )
    return tuple(f for f in fields if f in requested)


def _known_fields(names: Any, fields: Sequence[str], key: str) -> tuple[str, ...]:
    """``names`` of a saved description, each one of ``fields`` (FormatError otherwise)."""
    if not isinstance(names, list | tuple) or any(n not in fields for n in names):
        raise FormatError(f"transforms: {key} {names!r} must list fields of {list(fields)}; the saved emulator is "
                          "damaged or was edited.")
    return tuple(str(n) for n in names)


#: The radii must reach inside this fraction of R_Δ (and out to R_Δ) for the gas-fraction bound.
GAS_FRACTION_INNERMOST = 0.1


def _recognised_kinds(ds: ProfileDataset, fields: Sequence[str], ss: SelfSimilar) -> dict[str, str]:
    """Field -> its self-similar kind, for the normalised fields whose unit is recognised (the
    normalised profile is then exactly the profile over its scale, with no unknown factor)."""
    declared = ds.meta.get("field_kinds") if isinstance(ds.meta.get("field_kinds"), Mapping) else None
    return {f: ss.kinds[i] for i, f in enumerate(fields)
            if ss.kinds[i] and physical_kind(f, ds.units.get(f, ""), declared)[1] is not None}


#: Median gas inside R_Δ over f_b M_Δ of the training rows above which the gas-fraction bound is
#: not applied: the bounded profile's fraction is below 1, so it cannot fit such data (a density
#: unit off by a factor, or gas that is not the halo's own).
GAS_FRACTION_DATA_MAX = 1.1


def _data_gas_fraction(ds: ProfileDataset, fields: Sequence[str], field: str, log_target: np.ndarray,
                       valid: np.ndarray) -> float | None:
    """Median over the training rows of the gas inside R_Δ over f_b M_Δ of ``field``'s normalised
    profiles (rows with every radius inside R_Δ valid; None without such rows)."""
    n_r = ds.radius.size
    j = list(fields).index(field)
    sl = slice(j * n_r, (j + 1) * n_r)
    w = enclosed_fraction_weights(ds.radius)
    used = w > 0
    rows = valid[:, sl][:, used].all(axis=1)
    if not rows.any():
        return None
    with np.errstate(over="ignore"):
        fraction = (10.0 ** log_target[rows][:, sl][:, used] * w[used]).sum(axis=1)
    return float(np.median(fraction))


def _gas_fraction_fields(ds: ProfileDataset, cfg: DataConfig, fields: Sequence[str], ss: SelfSimilar | None,
                         scaled_coordinate: bool, log_target: np.ndarray | None = None,
                         valid: np.ndarray | None = None, quiet: bool = False) -> tuple[str, ...]:
    """The fields whose gas inside R_Δ ``data.gas_fraction_bound`` keeps below f_b M_Δ (one log line;
    a warning, and no bound, where the training rows' own gas is above it)."""
    if cfg.gas_fraction_bound == "off" or ss is None:  # without the normalisation its own line says why
        return ()
    dens = [f for i, f in enumerate(fields) if ss.kinds[i] == "density"]
    radius_definition = parse_scaled_radius_unit(ds.radius_unit)
    own = f"R{ss.delta:g}{ss.reference[0]}"
    why = None
    if not dens:
        why = "no gas density field (divided by Δ f_b ρ_ref)"
    elif not ss.radius_scaled or radius_definition is None:
        why = f"the radii ({ds.radius_unit!r}) are physical lengths, not in units of the mass definition's {own}"
    elif radius_definition != (ss.delta, ss.reference):
        why = (f"the radii ({ds.radius_unit!r}) are in units of R{radius_definition[0]:g}{radius_definition[1][0]}, "
               f"not of the mass definition's {own}")
    elif scaled_coordinate or cfg.pca_components > 0:
        why = "data.radial_coordinate 'scaled' or PCA outputs"
    elif ds.radius[0] > GAS_FRACTION_INNERMOST or ds.radius[-1] < 1.0:
        why = (f"the radii {ds.radius[0]:g}-{ds.radius[-1]:g} R_Δ do not reach from {GAS_FRACTION_INNERMOST:g} R_Δ "
               "or less out to R_Δ")
    if why is None:
        recognised = _recognised_kinds(ds, fields, ss)
        unknown = [f for f in dens if f not in recognised]
        dens = [f for f in dens if f in recognised]
        if not dens:
            why = f"the density unit of {unknown} is not recognised"
    if why is not None:
        logger.info("gas-fraction bound: not applied (%s)", why)
        return ()
    if log_target is not None and valid is not None:
        above = {f: frac for f in dens
                 if (frac := _data_gas_fraction(ds, fields, f, log_target, valid)) is not None
                 and not frac <= GAS_FRACTION_DATA_MAX}
        if above:
            logger.log(
                logging.DEBUG if quiet else logging.WARNING,
                "gas-fraction bound: not applied: the training rows' gas inside R_Δ is %s times f_b M_Δ (median "
                "over rows), above the cosmic baryon fraction the bound keeps it below; check the density unit "
                "(a factor of 1000 between g and kg, kpc and Mpc?) or set data.gas_fraction_bound: off",
                ", ".join(f"{f}: {v:.3g}" for f, v in above.items()))
            return ()
    logger.info("gas-fraction bound: %s predicted with their gas inside R_Δ below f_b M_Δ "
                "(data.gas_fraction_bound: off removes it)", ", ".join(dens))
    return tuple(dens)


def _known_ideal_gas(links: Any, fields: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``ideal_gas`` of a saved description: temperature -> (pressure, density), all fields (FormatError otherwise)."""
    if not isinstance(links, Mapping) or any(
            t not in fields or not isinstance(pd, list | tuple) or len(pd) != 2 or any(g not in fields for g in pd)
            for t, pd in links.items()):
        raise FormatError(f"transforms: ideal_gas {links!r} must map a temperature field to [pressure, density] "
                          f"fields of {list(fields)}; the saved emulator is damaged or was edited.")
    return {str(t): (str(pd[0]), str(pd[1])) for t, pd in links.items()}


def _ideal_gas(ds: ProfileDataset, cfg: DataConfig, fields: Sequence[str], ss: SelfSimilar | None,
               pca: bool) -> dict[str, tuple[str, str]]:
    """Temperature field -> (pressure, density) it is predicted from (``data.ideal_gas_temperature``; logged)."""
    if cfg.ideal_gas_temperature == "off" or ss is None:
        return {}
    known = _recognised_kinds(ds, fields, ss)
    by_kind = {k: [f for f, kind in known.items() if kind == k] for k in ("temperature", "pressure", "density")}
    if not by_kind["temperature"]:
        return {}
    if pca or not by_kind["pressure"] or not by_kind["density"]:
        logger.info("ideal-gas temperature: not applied (%s)", "PCA outputs" if pca else
                    "it needs a pressure and a gas density field with recognised units beside the temperature")
        return {}
    pair = (by_kind["pressure"][0], by_kind["density"][0])
    logger.info("ideal-gas temperature: %s predicted as %s / %s (each over its scale) times a learnt correction "
                "(data.ideal_gas_temperature: off learns it on its own)",
                ", ".join(by_kind["temperature"]), *pair)
    return {t: pair for t in by_kind["temperature"]}

