"""Adapter for the CAMELS LH IllustrisTNG halo-profile table (``camels_lh_tng.npz``).

The table (see the README beside it) has one row per (simulation, halo-mass bin) with
stacked radial profiles of gas density ``rho``, thermal pressure ``pth``, metallicity
``metal`` and temperature ``temp``. :func:`load_camels_lh` turns it into a
:class:`ProfileDataset`:

* the 14 rows flagged ``header_bin_mismatch`` (files labelled ``12-12.3`` that are exact
  copies of the ``12.3-13.1`` row of the same simulation) are always dropped, with a logged
  message and their count in ``meta["n_dropped_header_bin_mismatch"]``;
* params = the 6 LH parameters, ``A_SN1, A_AGN1, A_SN2, A_AGN2`` declared log-distributed;
* ``log10_mass`` = ``log10_mass_mean`` (log10 of the mean M200c; or the median);
* ``groups`` = ``sim_id`` (split by simulation), ``redshift`` per row;
* ``radius`` = ``radius_mpc`` [Mpc, physical];
* padding columns (``>= n_radii``, NaN in the file) are kept and masked, never dropped.

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

import json
import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError, FormatError

__all__ = ["CAMELS_FIELDS", "CAMELS_LOG_PARAMS", "load_camels_lh"]

logger = logging.getLogger(__name__)

#: Profile quantities of the table.
CAMELS_FIELDS: tuple[str, ...] = ("rho", "pth", "metal", "temp")
#: Feedback amplitudes, log-uniform in the LH design.
CAMELS_LOG_PARAMS: tuple[str, ...] = ("A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
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
_MEDIAN_EFFICIENCY = float(np.sqrt(np.pi / 2.0))


def _choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise DataError(f"{name}: unknown value {value!r}; valid choices are {list(valid)}.")
    return value


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FormatError(f"{path}: CAMELS table not found; pass the path to camels_lh_tng.npz.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise FormatError(f"{path}: not an npz archive; expected camels_lh_tng.npz.")
            return {key: npz[key] for key in npz.files}
    except FormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise FormatError(
            f"{path}: cannot read the CAMELS table ({type(exc).__name__}: {exc}); "
            "expected the numeric npz camels_lh_tng.npz."
        ) from None


def load_camels_lh(
    path: str | Path,
    *,
    fields: Sequence[str] = ("rho",),
    statistic: str = "mean",
    mass_bins: Sequence[str] | str = ("11-11.5", "11.5-12"),
    mass: str = "mean",
    include_noise: bool = True,
    verbose: bool = True,
) -> ProfileDataset:
    """Load the CAMELS LH IllustrisTNG profile table as a :class:`ProfileDataset`.

    Args:
        path: Path to ``camels_lh_tng.npz``.
        fields: Quantities to load, any of ``rho`` (Msun/kpc^3), ``pth`` (Msun/kpc/s^2),
            ``metal`` (mass fraction), ``temp`` (K); a single string is accepted.
        statistic: ``"mean"`` or ``"median"`` stacked profile.
        mass_bins: Mass-bin labels to keep (``"11-11.5"``, ``"11.5-12"``, ``"12-12.3"``,
            ``"12.3-13.1"``) or ``"all"``. Only the first two exist for all 1000 simulations.
        mass: ``"mean"`` -> ``log10_mass_mean`` (log10 of the mean M200c) or ``"median"``.
        include_noise: Attach ``noise[field]`` = std/sqrt(nprofs) [dex] (see module docs).
        verbose: Log the row-dropping message at WARNING level (else DEBUG).

    Returns:
        The dataset, rows in file order (by ``sim_id``, then mass bin).

    Raises:
        DataError: unknown field, statistic, mass bin or mass choice (the message lists the
            valid ones), or no row left.
        FormatError: the file is missing, unreadable or lacks a required array.
    """
    path = Path(path)
    if isinstance(fields, str):
        fields = (fields,)
    fields = tuple(fields)
    if not fields:
        raise DataError(f"fields: empty; choose at least one of {list(CAMELS_FIELDS)}.")
    for f in fields:
        _choice("fields", f, CAMELS_FIELDS)
    if len(set(fields)) != len(fields):
        raise DataError(f"fields: duplicate entries in {list(fields)}; list each field once.")
    statistic = _choice("statistic", statistic, _STATISTICS)
    mass = _choice("mass", mass, _MASS)

    d = _read(path)
    for key in (
        *_REQUIRED,
        *(f"{f}_{statistic}" for f in fields),
        *((f"{f}_std" for f in fields) if include_noise else ()),
    ):
        if key not in d:
            raise FormatError(
                f"{path}: required array {key!r} is missing; is this camels_lh_tng.npz?"
            )

    labels = d["mass_bin_label"].astype(str)
    valid_bins = list(dict.fromkeys(labels.tolist()))
    if isinstance(mass_bins, str):
        if mass_bins != "all":
            raise DataError(
                f"mass_bins: {mass_bins!r} is not a list of bins; pass a list of labels from "
                f"{valid_bins} or 'all'."
            )
        bins = tuple(valid_bins)
    else:
        bins = tuple(mass_bins)
        if not bins:
            raise DataError(f"mass_bins: empty; choose labels from {valid_bins} or 'all'.")
        for b in bins:
            _choice("mass_bins", b, valid_bins)

    mismatch = d["header_bin_mismatch"].astype(bool)
    n_dropped = int(mismatch.sum())
    keep = ~mismatch & np.isin(labels, bins)
    if n_dropped:
        msg = (
            f"CAMELS LH: dropped {n_dropped} row(s) flagged header_bin_mismatch (files whose "
            "mass-bin label disagrees with their header; they duplicate the genuine row of the "
            "same simulation)."
        )
        logger.log(logging.WARNING if verbose else logging.DEBUG, msg)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise DataError(f"mass_bins: no rows left for {list(bins)} after dropping flagged rows.")

    meta_src = json.loads(str(d["meta_json"]))
    src_units = meta_src.get("units", {})
    profiles = {f: d[f"{f}_{statistic}"][rows].astype(np.float64) for f in fields}
    n_r = d["radius_mpc"].shape[0]
    present = np.ones((rows.size, n_r), dtype=bool)
    if "n_radii" in d:  # columns >= n_radii are padding, whatever they hold
        present = np.arange(n_r)[None, :] < d["n_radii"][rows][:, None]
    mask = {f: present & np.isfinite(v) & (v > 0) for f, v in profiles.items()}
    noise = None
    if include_noise:
        factor = _MEDIAN_EFFICIENCY if statistic == "median" else 1.0
        sqrt_n = np.sqrt(d["nprofs"][rows].astype(np.float64))[:, None]
        noise = {f: factor * d[f"{f}_std"][rows].astype(np.float64) / sqrt_n for f in fields}

    kept_labels = labels[rows]
    meta: dict[str, Any] = {
        "source": "CAMELS LH IllustrisTNG halo profiles",
        "source_file": path.name,
        "source_repository": meta_src.get("source", ""),
        "source_commit": meta_src.get("source_commit", ""),
        "suite": meta_src.get("suite", ""),
        "set": meta_src.get("set", ""),
        "snapshot": str(d["snapshot"]) if "snapshot" in d else meta_src.get("snapshot", ""),
        "statistic": statistic,
        "mass": f"log10_mass_{mass}",
        "mass_definition": "M200c [Msun]",
        "mass_bins": list(bins),
        "rows_per_bin": {b: int((kept_labels == b).sum()) for b in bins},
        "n_dropped_header_bin_mismatch": n_dropped,
        "noise": (
            "std/sqrt(nprofs) [dex]" + (" * sqrt(pi/2)" if statistic == "median" else "")
            if include_noise
            else "none"
        ),
        "to_cgs": {k: float(v) for k, v in meta_src.get("to_cgs", {}).items() if k in fields},
    }
    return ProfileDataset(
        params=d["params"][rows],
        param_names=tuple(str(s) for s in d["param_names"]),
        log10_mass=d[f"log10_mass_{mass}"][rows],
        radius=d["radius_mpc"],
        profiles=profiles,
        units={f: str(src_units.get(f, "")) for f in fields},
        radius_unit="Mpc",
        log_params=CAMELS_LOG_PARAMS,
        mask=mask,
        pk_ratio=None,
        redshift=d["redshift"][rows],
        groups=d["sim_id"][rows].astype(np.int64),
        noise=noise,
        meta=meta,
    )
