"""The emulator-error covariance between fields, radii and mass bins of one simulation.

Held-out residuals ``r = log10 y - mean prediction`` of one simulation are correlated
across radii, across fields and across its mass bins: beyond ~0.2 Mpc the profiles of
a 25 Mpc/h box share its cosmic variance, which the parameters do not carry, and the
emulator's own error is smooth in radius. A joint likelihood of several bins that
treats them as independent is overconfident. This module estimates that covariance
from cross-validated (out-of-fold, split by simulation) residuals and stores it with
the emulator.

The model, for residual vectors over (field, radius) of dimension ``K = F n_r``:

* ``row`` (C_row): ``E[r_i r_i^T]`` over rows ``i``, minus the mean known stacking-noise
  variance ``diag(E[noise_i²])`` (the observation's own noise enters the likelihood
  separately);
* ``shared`` (C_shared): ``E[(r_i r_j^T + r_j r_i^T) / 2]`` over pairs of different rows
  ``i != j`` of the same simulation (cosmic variance + the emulator error they share);
* for an observation of ``B`` mass bins of one simulation the emulator-error covariance
  is ``blockdiag_B(C_row - C_shared) + J_B ⊗ C_shared`` (``J_B`` all ones), made
  positive semi-definite by clipping negative eigenvalues.

Moments are pairwise-complete: an entry pair counts in a row (or pair of rows) where
both entries are valid. The estimate is plain JSON (:meth:`ResidualCovariance.to_dict`)
and lives in ``emulator.metadata["residual_covariance"]``, written and read only by
:func:`attach_residual_covariance` and :func:`residual_covariance`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profemu.errors import DataError, FormatError

__all__ = [
    "METADATA_KEY",
    "ResidualCovariance",
    "attach_residual_covariance",
    "estimate_residual_covariance",
    "residual_covariance",
]

logger = logging.getLogger(__name__)

#: Where the estimate is stored in ``Emulator.metadata``.
METADATA_KEY = "residual_covariance"


def _clip_psd(cov: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Symmetrise and clip eigenvalues below ``floor * max eigenvalue`` (PSD projection)."""
    sym = 0.5 * (cov + cov.T)
    eig, vec = np.linalg.eigh(sym)
    top = max(float(eig.max()), 0.0)
    clipped = np.maximum(eig, floor * top)
    return (vec * clipped) @ vec.T


@dataclass(frozen=True, eq=False)
class ResidualCovariance:
    """Cross-validated emulator-error covariance over (field, radius) (see module docs).

    Attributes:
        fields: Field names, in the order of the blocks.
        radius: Radial grid [n_r] (the emulator's).
        row: C_row [K, K] (``K = len(fields) * n_r``, field-major) in dex².
        shared: C_shared [K, K] in dex².
        n_groups: Number of simulations (groups) the estimate used.
        n_rows: Number of rows (mass bins) it used.
        n_pairs: Number of same-simulation row pairs behind ``shared``.
        meta: Free-form JSON-safe provenance (folds, seed, noise subtracted, ...).
    """

    fields: tuple[str, ...]
    radius: np.ndarray
    row: np.ndarray
    shared: np.ndarray
    n_groups: int
    n_rows: int
    n_pairs: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        fields = tuple(str(f) for f in self.fields)
        radius = np.asarray(self.radius, dtype=float).reshape(-1)
        k = len(fields) * radius.size
        for name in ("row", "shared"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (k, k):
                raise FormatError(
                    f"residual covariance {name}: shape {arr.shape}, expected ({k}, {k}) for fields "
                    f"{list(fields)} on {radius.size} radii."
                )
            if not np.all(np.isfinite(arr)):
                raise FormatError(f"residual covariance {name}: non-finite entries.")
            scale = max(float(np.max(np.abs(arr))), 1e-300)
            if np.max(np.abs(arr - arr.T)) > 1e-8 * scale:
                raise FormatError(f"residual covariance {name}: not symmetric.")
            arr = 0.5 * (arr + arr.T)
            arr.setflags(write=False)
            put(self, name, arr)
        eig = np.linalg.eigvalsh(self.row)
        if eig.min() < -1e-6 * max(eig.max(), 1e-300):
            raise FormatError(
                f"residual covariance row: not positive semi-definite (eigenvalue {eig.min():.3g})."
            )
        if not np.all(np.isfinite(radius)) or np.any(radius <= 0):
            raise FormatError("residual covariance radius: must be finite and > 0.")
        for name in ("n_groups", "n_rows", "n_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise FormatError(f"residual covariance {name}: {value!r} is not a count.")
            put(self, name, int(value))
        radius.setflags(write=False)
        put(self, "fields", fields)
        put(self, "radius", radius)
        put(self, "meta", dict(self.meta))

    @property
    def dim(self) -> int:
        """K = fields x radii."""
        return self.row.shape[0]

    def for_bins(self, n_bins: int) -> np.ndarray:
        """The emulator-error covariance of ``n_bins`` mass bins of one simulation.

        Returns:
            ``blockdiag(C_row - C_shared) + J ⊗ C_shared`` [B K, B K], (bin, field, radius)
            order, projected onto the positive semi-definite cone.
        """
        if n_bins < 1:
            raise DataError(f"n_bins: {n_bins} must be >= 1.")
        cov = np.kron(np.eye(n_bins), self.row - self.shared) + np.kron(np.ones((n_bins, n_bins)), self.shared)
        return _clip_psd(cov)

    def correlation(self, n_bins: int = 2) -> np.ndarray:
        """Correlation matrix of :meth:`for_bins` (for plots and checks)."""
        cov = self.for_bins(n_bins)
        sd = np.sqrt(np.maximum(np.diag(cov), 1e-300))
        return cov / np.outer(sd, sd)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (lists of floats)."""
        return {
            "format": "profemu-residual-covariance",
            "version": 1,
            "fields": list(self.fields),
            "radius": self.radius.tolist(),
            "row": self.row.tolist(),
            "shared": self.shared.tolist(),
            "n_groups": self.n_groups,
            "n_rows": self.n_rows,
            "n_pairs": self.n_pairs,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResidualCovariance:
        """Inverse of :meth:`to_dict`; every number is validated.

        Raises:
            FormatError: missing keys, wrong types, shapes, non-finite or non-PSD values.
        """
        if not isinstance(d, Mapping) or d.get("format") != "profemu-residual-covariance":
            raise FormatError("residual covariance: not a profemu residual covariance record.")
        if d.get("version") != 1:
            raise FormatError(f"residual covariance: unsupported version {d.get('version')!r}.")
        try:
            fields = d["fields"]
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise FormatError("residual covariance fields: expected a list of names.")
            arrays = {}
            for key in ("radius", "row", "shared"):
                arr = np.asarray(d[key], dtype=float)
                arrays[key] = arr
            return cls(fields=tuple(fields), radius=arrays["radius"], row=arrays["row"],
                       shared=arrays["shared"], n_groups=d["n_groups"], n_rows=d["n_rows"],
                       n_pairs=d["n_pairs"], meta=dict(d.get("meta", {})))
        except KeyError as exc:
            raise FormatError(f"residual covariance: missing key {exc.args[0]!r}.") from None
        except (TypeError, ValueError) as exc:
            raise FormatError(f"residual covariance: malformed values ({exc}).") from None


def estimate_residual_covariance(
    residuals: np.ndarray,
    groups: np.ndarray,
    *,
    fields: Sequence[str],
    radius: np.ndarray,
    mask: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    meta: Mapping[str, Any] | None = None,
) -> ResidualCovariance:
    """Estimate C_row and C_shared from held-out residuals (see the module docs).

    Args:
        residuals: [n, F, n_r] log10 target minus out-of-fold mean prediction [dex].
        groups: [n] simulation id of each row.
        fields: The ``F`` field names.
        radius: [n_r] radial grid.
        mask: [n, F, n_r] valid entries (default: finite residuals).
        noise: [n, F, n_r] known stacking noise [dex], subtracted from C_row's diagonal.
        meta: Provenance stored with the estimate.

    Returns:
        The :class:`ResidualCovariance` (C_row projected onto the PSD cone).

    Raises:
        DataError: shapes disagree, fewer than 2 rows, or no simulation with 2 rows.
    """
    res = np.asarray(residuals, dtype=float)
    n, n_f, n_r = res.shape
    if n_f != len(fields) or n_r != np.asarray(radius).size:
        raise DataError(f"residuals: shape {res.shape} does not match fields {list(fields)} and {np.size(radius)} radii.")
    groups = np.asarray(groups).reshape(-1)
    if groups.size != n:
        raise DataError(f"groups: {groups.size} ids for {n} rows of residuals.")
    valid = np.isfinite(res) if mask is None else (np.asarray(mask, bool) & np.isfinite(res))
    x = np.where(valid, res, 0.0).reshape(n, -1)
    v = valid.reshape(n, -1).astype(float)
    count = v.T @ v
    if n < 2 or np.any(count.diagonal() < 2):
        raise DataError("residuals: need at least 2 valid rows per (field, radius) entry to estimate a covariance.")
    row = (x.T @ x) / np.maximum(count, 1.0)
    if noise is not None:
        nz = np.where(valid, np.asarray(noise, dtype=float), 0.0).reshape(n, -1)
        row = row - np.diag((nz**2).sum(axis=0) / np.maximum(v.sum(axis=0), 1.0))
    row = _clip_psd(row)

    shared_sum = np.zeros_like(row)
    shared_cnt = np.zeros_like(row)
    n_pairs = 0
    ids, inverse = np.unique(groups, return_inverse=True)
    for g in range(ids.size):
        idx = np.flatnonzero(inverse == g)
        if idx.size < 2:
            continue
        xs, vs = x[idx], v[idx]
        s_x, s_v = xs.sum(axis=0), vs.sum(axis=0)
        # sum over ordered pairs i != j of x_i x_j^T = (sum x)(sum x)^T - sum x_i x_i^T
        shared_sum += np.outer(s_x, s_x) - xs.T @ xs
        shared_cnt += np.outer(s_v, s_v) - vs.T @ vs
        n_pairs += idx.size * (idx.size - 1) // 2
    if n_pairs == 0:
        raise DataError("groups: no simulation has two rows; the shared (between-bin) part cannot be estimated.")
    shared = shared_sum / np.maximum(shared_cnt, 1.0)
    shared = 0.5 * (shared + shared.T)
    return ResidualCovariance(
        fields=tuple(fields), radius=np.asarray(radius, dtype=float), row=row, shared=shared,
        n_groups=int(ids.size), n_rows=int(n), n_pairs=int(n_pairs),
        meta={"noise_subtracted": noise is not None, **dict(meta or {})},
    )


def prediction_residuals(dataset: Any, predictions: Mapping[str, Any], fields: Sequence[str]) -> np.ndarray:
    """``log10 target - mean prediction`` [n, F, n_r] in dex, NaN where a target is masked.

    Args:
        dataset: The rows predicted (a :class:`~profemu.data.dataset.ProfileDataset`).
        predictions: ``{field: (mean [n, n_r], var)}`` log10 predictions of those rows.
        fields: The ``F`` fields, in order.
    """
    out = []
    for f in fields:
        mask = dataset.mask[f]
        y = np.log10(np.where(mask, dataset.profiles[f], 1.0))
        out.append(np.where(mask, y - np.asarray(predictions[f][0]), np.nan))
    return np.stack(out, axis=1)


def estimate_for_dataset(
    dataset: Any,
    residuals: np.ndarray,
    fields: Sequence[str],
    *,
    subtract_noise: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> ResidualCovariance:
    """:func:`estimate_residual_covariance` of residuals of ``dataset``'s rows (NaN = masked).

    Takes the simulation ids, the radial grid and (with ``subtract_noise``, when every
    field has it) the known stacking noise from ``dataset``.
    """
    noise = None
    if subtract_noise and dataset.noise is not None and all(f in dataset.noise for f in fields):
        noise = np.stack([dataset.noise[f] for f in fields], axis=1)
    return estimate_residual_covariance(
        residuals, dataset.groups if dataset.groups is not None else np.arange(dataset.n),
        fields=fields, radius=dataset.radius, mask=np.isfinite(residuals), noise=noise, meta=meta,
    )


def attach_residual_covariance(emulator: Any, estimate: ResidualCovariance) -> Any:
    """Store ``estimate`` in ``emulator.metadata`` (saved with the emulator); returns the emulator.

    Raises:
        DataError: the estimate's fields or radii do not match the emulator's.
    """
    _check_matches(emulator, estimate, DataError)
    emulator.metadata[METADATA_KEY] = estimate.to_dict()
    return emulator


def residual_covariance(emulator: Any) -> ResidualCovariance | None:
    """The estimate stored with ``emulator`` (None when there is none), validated.

    Raises:
        FormatError: the stored record is malformed or does not match the emulator.
    """
    record = getattr(emulator, "metadata", {}).get(METADATA_KEY)
    if record is None:
        return None
    estimate = ResidualCovariance.from_dict(record)
    _check_matches(emulator, estimate, FormatError)
    return estimate


def _check_matches(emulator: Any, estimate: ResidualCovariance, error: type[Exception]) -> None:
    unknown = [f for f in estimate.fields if f not in emulator.field_names]
    if unknown:
        raise error(f"residual covariance: fields {unknown} are not fields of the emulator {list(emulator.field_names)}.")
    grid = np.asarray(emulator.radius, dtype=float)
    if estimate.radius.shape != grid.shape or not np.allclose(estimate.radius, grid, rtol=1e-6):
        raise error("residual covariance: radii differ from the emulator's radial grid; re-estimate it.")
