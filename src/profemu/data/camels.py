"""Adapter for the CAMELS LH IllustrisTNG halo-profile table (``camels_lh_tng.npz``).

The table (see the README beside it) has one row per (simulation, halo-mass bin) with
stacked radial profiles of gas density ``rho``, thermal pressure ``pth``, metallicity
``metal`` and temperature ``temp``. :func:`load_camels_lh` turns it into a
:class:`ProfileDataset`:

* the 14 rows flagged ``header_bin_mismatch`` (files labelled ``12-12.3`` that are exact
  copies of the ``12.3-13.1`` row of the same simulation) are always dropped;
* only the requested mass bins are kept, by default ``11-11.5`` and ``11.5-12``, the two
  bins that exist for all 1000 simulations (``12-12.3`` and ``12.3-13.1`` exist for 109
  and 14 of them only);
* the selection (bins, statistic, mass column, rows kept and dropped and why) is logged in
  one INFO line of the logger ``profemu.data.camels`` and recorded in
  ``meta["camels_selection"]`` (its ``"summary"`` is the logged sentence);
* params = the 6 LH parameters, ``A_SN1, A_AGN1, A_SN2, A_AGN2`` declared log-distributed;
* ``log10_mass`` = ``log10_mass_mean`` (log10 of the mean M200c; or the median);
* ``groups`` = ``sim_id`` (split by simulation), ``redshift`` per row;
* ``radius`` = ``radius_mpc`` [Mpc, physical];
* padding columns (``>= n_radii``, NaN in the file) are kept and masked, never dropped.

The table is read with :func:`profemu._files.read_npz`: only the arrays needed are
decompressed, after their declared shapes and dtypes were checked against each other
(``rho_mean`` must be [n, n_r] for the ``n`` rows of ``sim_id`` ...) and against
``max_bytes``; ``meta_json`` is parsed with a size and depth limit.

Noise: ``<q>_std`` is the halo-to-halo standard deviation of log10 of the per-halo values
[dex]. The standard error of the log10 of the stacked profile is approximated by
``noise = std / sqrt(nprofs)`` [dex] (the error of the mean of log10 values, which to first
order equals the error of log10 of the mean). The corresponding *fractional* error of the
linear mean profile is ``ln(10) * std / sqrt(nprofs)`` (the README's ``sem_log``). For
``statistic="median"`` the noise is multiplied by sqrt(pi/2) ≈ 1.2533, the asymptotic
efficiency loss of the median of a Gaussian. Both assume all ``nprofs`` halos contribute
to every radial bin, so they are lower bounds in sparsely filled inner bins; cells where
``std`` is 0 (a single halo had gas there) get noise 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import (
    DEFAULT_MAX_READ_BYTES,
    ArrayHeader,
    Layout,
    check_layout,
    load_json_text,
    read_npz,
)
from profemu.data.dataset import ProfileDataset
from profemu.data.schema import _strings
from profemu.data.validation import _integer_ids, _names
from profemu.errors import DataError, FormatError

__all__ = ["CAMELS_FIELDS", "CAMELS_LOG_PARAMS", "DEFAULT_MASS_BINS", "load_camels_lh"]

logger = logging.getLogger(__name__)

#: Profile quantities of the table.
CAMELS_FIELDS: tuple[str, ...] = ("rho", "pth", "metal", "temp")
#: Feedback amplitudes, log-uniform in the LH design.
CAMELS_LOG_PARAMS: tuple[str, ...] = ("A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
#: The mass bins present for every simulation of the table (the default selection).
DEFAULT_MASS_BINS: tuple[str, ...] = ("11-11.5", "11.5-12")
_STATISTICS = ("mean", "median")
_MASS = ("mean", "median")
_REQUIRED = (
    "sim_id",
    "params",
    "param_names",
    "mass_bin_label",
    "header_bin_mismatch",
    "nprofs",
    "log10_mass_mean",
    "log10_mass_median",
    "redshift",
    "radius_mpc",
    "meta_json",
)
_LAYOUT: Layout = {
    "sim_id": (("n",), "iuf"),
    "params": (("n", "p"), "iuf"),
    "param_names": (("p",), "US"),
    "mass_bin_label": (("n",), "US"),
    "header_bin_mismatch": (("n",), "b"),
    "nprofs": (("n",), "iuf"),
    "log10_mass_mean": (("n",), "iuf"),
    "log10_mass_median": (("n",), "iuf"),
    "redshift": (("n",), "iuf"),
    "radius_mpc": (("n_r",), "iuf"),
    "n_radii": (("n",), "iu"),
    "meta_json": (None, "US"),
    "snapshot": (None, "US"),
}
_MEDIAN_EFFICIENCY = float(np.sqrt(np.pi / 2.0))


def _choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise DataError(f"{name}: unknown value {value!r}; valid choices are {list(valid)}.")
    return value


#: Real-valued arrays read straight into float64 (besides the profile and noise columns).
_FLOAT_KEYS = ("params", "log10_mass_mean", "log10_mass_median", "redshift", "radius_mpc")


def _read(path: Path, columns: Sequence[str], max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays the loader needs (and no other), after checking their declared layout; real
    numbers converted to float64 while they are read."""
    if not path.is_file():
        raise FormatError(f"{path}: CAMELS table not found; pass the path to camels_lh_tng.npz.")
    layout: dict[str, Any] = dict(_LAYOUT)
    layout.update({c: (("n", "n_r"), "iuf") for c in columns})

    def check(headers: Mapping[str, ArrayHeader]) -> None:
        for key in (*_REQUIRED, *columns):
            if key not in headers:
                raise FormatError(f"{path}: required array {key!r} is missing; is this camels_lh_tng.npz?")
        check_layout(headers, layout, where=str(path))

    return read_npz(path, keys=layout, max_bytes=max_bytes, check=check, what="CAMELS table (npz archive)",
                    as_float64=(*_FLOAT_KEYS, *columns))


def _source_meta(d: Mapping[str, np.ndarray], path: Path, fields: Sequence[str]) -> dict[str, Any]:
    """Units, conversion factors and provenance from ``meta_json`` (type-checked)."""
    where = f"{path}: meta_json"
    meta = load_json_text(_strings(d["meta_json"], "meta_json", path)[0], what=where)
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(meta).__name__}; is this camels_lh_tng.npz?")
    units, to_cgs = meta.get("units", {}), meta.get("to_cgs", {})
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        raise FormatError(f"{where}: 'units' must map each quantity to a unit string, got {units!r:.80}.")
    if not isinstance(to_cgs, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in to_cgs.values()
    ):
        raise FormatError(f"{where}: 'to_cgs' must map each quantity to a number, got {to_cgs!r:.80}.")
    out: dict[str, Any] = {"units": {f: units.get(f, "") for f in fields},
                           "to_cgs": {f: float(v) for f, v in to_cgs.items() if f in fields}}
    for key in ("source", "source_commit", "suite", "set", "snapshot"):
        value = meta.get(key, "")
        if not isinstance(value, str):
            raise FormatError(f"{where}: {key!r} must be a string, got {value!r:.80}.")
        out[key] = value
    return out


def _selection(
    path: Path, labels: np.ndarray, mismatch: np.ndarray, keep: np.ndarray, bins: tuple[str, ...],
    profile_columns: list[str], mass_column: str,
) -> dict[str, Any]:
    """What was kept and dropped, and why: the INFO line and ``meta["camels_selection"]``."""
    statistic = profile_columns[0].rsplit("_", 1)[1]
    per_bin = {b: int((labels[keep] == b).sum()) for b in bins}
    not_requested = {
        b: int((~mismatch & (labels == b)).sum()) for b in dict.fromkeys(labels.tolist()) if b not in bins
    }
    n_mismatch = int(mismatch.sum())
    summary = (
        f"CAMELS LH: kept {int(keep.sum())} of {labels.size} rows of {path.name}: mass bins {list(bins)} "
        f"(rows per bin {per_bin}), statistic {statistic!r} (columns {profile_columns}), mass "
        f"column {mass_column!r}; dropped {n_mismatch} row(s) flagged header_bin_mismatch (mislabelled files "
        "that duplicate the genuine row of the same simulation)"
    )
    if not_requested:
        summary += (
            f" and {sum(not_requested.values())} row(s) of bins not requested {not_requested}"
            + (" (the default bins are the only ones present for every simulation; pass "
               "mass_bins='all' to keep all)" if bins == DEFAULT_MASS_BINS else "")
        )
    return {
        "summary": summary + ".",
        "mass_bins": list(bins),
        "statistic": statistic,
        "profile_columns": profile_columns,
        "mass_column": mass_column,
        "rows_in_file": int(labels.size),
        "rows_kept": int(keep.sum()),
        "rows_per_bin": per_bin,
        "dropped_header_bin_mismatch": n_mismatch,
        "dropped_bins_not_requested": not_requested,
    }


def load_camels_lh(
    path: str | Path,
    *,
    fields: Sequence[str] = ("rho",),
    statistic: str = "mean",
    mass_bins: Sequence[str] | str = DEFAULT_MASS_BINS,
    mass: str = "mean",
    include_noise: bool = True,
    verbose: bool = True,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> ProfileDataset:
    """Load the CAMELS LH IllustrisTNG profile table as a :class:`ProfileDataset`.

    Args:
        path: Path to ``camels_lh_tng.npz``.
        fields: Quantities to load, any of ``rho`` (Msun/kpc^3), ``pth`` (Msun/kpc/s^2),
            ``metal`` (mass fraction), ``temp`` (K); a single string is accepted.
        statistic: ``"mean"`` or ``"median"`` stacked profile.
        mass_bins: Mass-bin labels to keep (``"11-11.5"``, ``"11.5-12"``, ``"12-12.3"``,
            ``"12.3-13.1"``) or ``"all"``. Only the first two (the default) exist for all
            1000 simulations.
        mass: ``"mean"`` -> ``log10_mass_mean`` (log10 of the mean M200c) or ``"median"``.
        include_noise: Attach ``noise[field]`` = std/sqrt(nprofs) [dex] (see module docs).
        verbose: Log the selection (bins, statistic, mass column, rows kept and dropped
            and why) at INFO level (else DEBUG); it is in ``meta["camels_selection"]`` either way.
        max_bytes: Largest total size [bytes] of the arrays read; checked before reading.

    Returns:
        The dataset, rows in file order (by ``sim_id``, then mass bin).

    Raises:
        DataError: unknown or repeated field, statistic, mass bin or mass choice (the
            message lists the valid ones), a fractional ``sim_id``, ``nprofs < 1`` with
            noise, or no row left.
        FormatError: the file is missing, unreadable, lacks a required array, declares
            inconsistent or oversized arrays, or has an invalid ``meta_json``.
    """
    path = Path(path)
    fields, statistic, mass = _checked_choices(fields, statistic, mass)
    profile_columns = [f"{f}_{statistic}" for f in fields]
    noise_columns = [f"{f}_std" for f in fields] if include_noise else []

    d = _read(path, [*profile_columns, *noise_columns], max_bytes)
    labels = np.array(_strings(d["mass_bin_label"], "mass_bin_label", path))
    bins = _requested_bins(mass_bins, list(dict.fromkeys(labels.tolist())))

    sim_id = _integer_ids(d["sim_id"], f"{path}: sim_id", labels.size)
    mismatch = d["header_bin_mismatch"]
    keep = ~mismatch & np.isin(labels, bins)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise DataError(f"mass_bins: no rows left for {list(bins)} after dropping flagged rows.")
    mass_column = f"log10_mass_{mass}"
    selection = _selection(path, labels, mismatch, keep, bins, profile_columns, mass_column)
    logger.log(logging.INFO if verbose else logging.DEBUG, selection["summary"])

    src = _source_meta(d, path, fields)
    # the kept rows of each column (float64 since reading); the whole column is dropped at once
    profiles = {f: d.pop(c)[rows] for f, c in zip(fields, profile_columns, strict=True)}
    n_r = d["radius_mpc"].shape[0]
    present = np.ones((rows.size, n_r), dtype=bool)
    if "n_radii" in d:  # columns >= n_radii are padding, whatever they hold
        present = np.arange(n_r)[None, :] < d["n_radii"][rows][:, None]
    mask = {f: present & np.isfinite(v) & (v > 0) for f, v in profiles.items()}
    noise = None
    if include_noise:
        noise = _noise(path, d, rows, labels, sim_id, dict(zip(fields, noise_columns, strict=True)), statistic)

    snapshot = _strings(d["snapshot"], "snapshot", path)[0] if "snapshot" in d else src["snapshot"]
    meta = _dataset_meta(path, src, snapshot, statistic, mass_column, bins, selection, include_noise)
    redshift = d["redshift"][rows]
    if redshift.size and np.ptp(redshift) == 0:
        meta["redshift"] = float(redshift[0])
    meta["field_kinds"] = {f: _FIELD_KINDS[f] for f in fields}
    # every array below is fresh (rows taken from the reader's arrays): the dataset takes them over
    return ProfileDataset._from_owned(
        params=d["params"][rows],
        param_names=tuple(_strings(d["param_names"], "param_names", path)),
        log10_mass=d[mass_column][rows],
        radius=d["radius_mpc"],
        profiles=profiles,
        units=src["units"],
        radius_unit="Mpc",
        log_params=CAMELS_LOG_PARAMS,
        mask=mask,
        pk_ratio=None,
        redshift=redshift,
        groups=sim_id[rows],
        noise=noise,
        meta=meta,
    )


def _checked_choices(fields: Sequence[str] | str, statistic: str, mass: str) -> tuple[tuple[str, ...], str, str]:
    """The fields (a string is one field), statistic and mass column, each checked against the valid choices."""
    if isinstance(fields, str):
        fields = (fields,)
    fields = _names(fields, "fields")
    if not fields:
        raise DataError(f"fields: empty; choose at least one of {list(CAMELS_FIELDS)}.")
    for f in fields:
        _choice("fields", f, CAMELS_FIELDS)
    statistic = _choice("statistic", statistic, _STATISTICS)
    mass = _choice("mass", mass, _MASS)
    return fields, statistic, mass


def _requested_bins(mass_bins: Sequence[str] | str, valid_bins: list[str]) -> tuple[str, ...]:
    """The mass-bin labels to keep: ``"all"`` (every bin of the file, file order) or a list of known labels."""
    if isinstance(mass_bins, str):
        if mass_bins != "all":
            raise DataError(
                f"mass_bins: {mass_bins!r} is not a list of bins; pass a list of labels from "
                f"{valid_bins} or 'all'."
            )
        return tuple(valid_bins)
    bins = _names(mass_bins, "mass_bins")
    if not bins:
        raise DataError(f"mass_bins: empty; choose labels from {valid_bins} or 'all'.")
    for b in bins:
        if b not in valid_bins:
            default = " (the default bins of the TNG table)" if tuple(bins) == DEFAULT_MASS_BINS else ""
            raise DataError(f"mass_bins: {b!r}{default} is not a bin of this file; its bins are {valid_bins}: pass "
                            "some of them (--mass-bins A,B) or 'all'.")
    return bins


def _noise(
    path: Path, d: dict[str, np.ndarray], rows: np.ndarray, labels: np.ndarray, sim_id: np.ndarray,
    noise_columns: Mapping[str, str], statistic: str,
) -> dict[str, np.ndarray]:
    """Per field the standard error of log10 of the stacked profile of the kept ``rows``:
    ``std / sqrt(nprofs)`` [dex], times sqrt(pi/2) for the median (see the module docstring);
    computed in place on the kept rows, each ``<q>_std`` column dropped from ``d`` once used."""
    nprofs = _integer_ids(d["nprofs"], f"{path}: nprofs", labels.size)[rows]
    if (nprofs < 1).any():
        i = int(rows[np.argmax(nprofs < 1)])
        raise DataError(
            f"{path}: nprofs is {d['nprofs'][i]} at file row {i} (sim_id {sim_id[i]}, bin {labels[i]}), "
            "so the noise std/sqrt(nprofs) is undefined; pass include_noise=False or drop that bin."
        )
    factor = _MEDIAN_EFFICIENCY if statistic == "median" else 1.0
    sqrt_n = np.sqrt(nprofs.astype(np.float64))[:, None]
    noise = {}
    for f, c in noise_columns.items():
        std = d.pop(c)[rows]  # float64 since reading
        std *= factor  # the same operations, in the same order, as factor * std / sqrt_n
        std /= sqrt_n
        noise[f] = std
    return noise


#: Physical kind of each CAMELS quantity (``meta["field_kinds"]``, see docs/data_schema.md).
_FIELD_KINDS = {"rho": "gas_density", "pth": "pressure", "temp": "temperature", "metal": "other"}


def _dataset_meta(
    path: Path, src: Mapping[str, Any], snapshot: str, statistic: str, mass_column: str, bins: tuple[str, ...],
    selection: Mapping[str, Any], include_noise: bool,
) -> dict[str, Any]:
    """``ProfileDataset.meta``: provenance, the selection and the noise model."""
    return {
        "source": " ".join(x for x in ("CAMELS", src["set"], src["suite"]) if x) + " halo profiles",
        "source_file": path.name,
        "source_repository": src["source"],
        "source_commit": src["source_commit"],
        "suite": src["suite"],
        "set": src["set"],
        "snapshot": snapshot,
        "statistic": statistic,
        "mass": mass_column,
        "mass_definition": "M200c [Msun]",  # physical Msun (the source divides by h = 0.6711)
        "mass_bins": list(bins),
        "rows_per_bin": selection["rows_per_bin"],
        "n_dropped_header_bin_mismatch": selection["dropped_header_bin_mismatch"],
        "camels_selection": selection,
        "noise": (
            "std/sqrt(nprofs) [dex]" + (" * sqrt(pi/2)" if statistic == "median" else "")
            if include_noise
            else "none"
        ),
        "to_cgs": src["to_cgs"],
    }
