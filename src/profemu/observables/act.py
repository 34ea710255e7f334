"""Readers of the ACT DR5 × BOSS CMASS stacked kSZ/tSZ measurement (f150) and of other CAP files.

All values come back in the units the forward model produces: CAP values and errors in
μK arcmin², covariances in (μK arcmin²)², apertures in arcmin. The ACT files store μK sr
(see ``../shared/data/act_cmass/README.md``); the conversion is ×(180·60/π)² = ×1.18181e7.

The generic format (:func:`read_cap_file`, :func:`write_cap_file`) for any other stacked CAP
measurement is one text file::

    # profemu-cap 1
    # kind: ksz                      (ksz or tsz)
    # units: muK_arcmin2             (muK_arcmin2 or muK_sr)
    # redshift: 0.55                 (optional; any other "# key: value" lines are kept as metadata)
    # columns: theta_arcmin value cov_0 ... cov_{n-1}
    1.0    0.23   0.0037 0.0012 ...
    ...

one row per aperture: the disk radius [arcmin], the CAP value, then that row of the
covariance matrix (same units, squared).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu._files import atomic_write_text, read_npy
from profemu.errors import FormatError
from profemu.observables.units import SR_TO_ARCMIN2, response_scale_problem

__all__ = [
    "ACT_FILES",
    "CAP_RANGE_MUK_ARCMIN2",
    "TABLE_LAYOUTS",
    "ACTCMASSData",
    "CAPMeasurement",
    "DustTemplate",
    "HaloMassDistribution",
    "HarmonicTable",
    "TwoHaloTable",
    "is_cap_file",
    "load_act_cmass",
    "read_beam",
    "read_cap_file",
    "read_cap_measurement",
    "read_dust_template",
    "read_halo_mass_distribution",
    "read_response",
    "read_two_halo",
    "single_mass",
    "write_cap_file",
]

ACT_FILES = {
    "ksz_values": "cmass_f150_diskring_ksz_varweight_measured.txt",
    "tsz_values": "cmass_f150_diskring_tsz_varweight_measured.txt",
    "ksz_covariance": "cmass_f150_cov_diskring_ksz_varweight_bootstrap.txt",
    "tsz_covariance": "cmass_f150_cov_diskring_tsz_varweight_bootstrap.txt",
    "beam": "act_planck_dr5.01_s08s18_f150_daynight_beam.txt",
    "response": "act_planck_dr5.01_s08s18_AA_f150_daynight_response_tsz.txt",
    "two_halo": "twohalo_cmass_average.txt",
    "mass_distribution": "cmass_halo_mass_distribution.csv",
    "dust": "dust_f150_muK_arcmin2.csv",
}
"""File names inside the ACT × CMASS data directory."""

_FORMAT_TAG = "profemu-cap"
_FORMAT_VERSION = 1
_UNITS = {"muK_arcmin2": 1.0, "muK_sr": SR_TO_ARCMIN2}


TABLE_LAYOUTS = ("a whitespace-separated text table ('#' comment lines allowed), a comma-separated table "
                 "with one header line of column names (e.g. theta_arcmin,value,error), or a .npy array "
                 "(saved with numpy.save, no pickles)")
"""The layouts every numeric table reader here accepts (named in its error messages)."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_table(path: str | Path, *, columns: int | None = None, what: str) -> np.ndarray:
    """A numeric table [rows, cols] in one of :data:`TABLE_LAYOUTS`; FormatError when unreadable.

    Text: '#' comment lines and blank lines are skipped; a file whose first data line has a
    comma is comma-separated, and a first line that is not all numbers is its header. ``.npy``:
    read with ``allow_pickle=False`` (a 1-D array is one column).
    """
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{what}: file {str(p)!r} not found; check the path.")
    if p.suffix.lower() == ".npy":
        table = np.asarray(read_npy(p, what=what), dtype=float)
        table = table[:, None] if table.ndim == 1 else table
        if table.ndim != 2:
            raise FormatError(f"{what}: {str(p)!r} holds an array of shape {table.shape}; expected a 2-D table.")
    else:
        try:
            lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        except UnicodeDecodeError:
            raise FormatError(f"{what}: {str(p)!r} is not a text file; accepted layouts: {TABLE_LAYOUTS}.") from None
        delimiter = "," if lines and "," in lines[0] else None
        if lines and not all(_is_number(c) for c in lines[0].split(delimiter) if c.strip()):
            lines = lines[1:]  # a header line of column names
        try:
            table = np.loadtxt(lines, delimiter=delimiter, ndmin=2)
        except ValueError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FormatError(f"{what}: {str(p)!r} is not a numeric table ({first}); accepted layouts: "
                              f"{TABLE_LAYOUTS}.") from None
    if table.size == 0:
        raise FormatError(f"{what}: {str(p)!r} has no data rows; accepted layouts: {TABLE_LAYOUTS}.")
    if columns is not None and table.shape[1] != columns:
        raise FormatError(f"{what}: {str(p)!r} has {table.shape[1]} columns, expected {columns}; accepted "
                          f"layouts: {TABLE_LAYOUTS}.")
    bad = np.argwhere(~np.isfinite(table))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        raise FormatError(f"{what}: {str(p)!r} has the non-finite value {table[i, j]} at data row {i}, column {j} "
                          f"({bad.shape[0]} in total); every value must be a finite number.")
    return table


def _check_increasing(x: np.ndarray, what: str, path: str | Path) -> None:
    if x.size > 1 and np.any(np.diff(x) <= 0):
        i = int(np.flatnonzero(np.diff(x) <= 0)[0]) + 1
        raise FormatError(f"{what}: {str(path)!r} column 1 is not strictly increasing at data row {i} "
                          f"({x[i - 1]:.6g} then {x[i]:.6g}); sort the rows by column 1 and merge duplicates.")


def _check_covariance(cov: np.ndarray, what: str) -> None:
    """Symmetric (to 1e-8 relative) and positive definite, else FormatError naming ``what``."""
    asym = float(np.max(np.abs(cov - cov.T)))
    scale = float(np.max(np.abs(cov)))
    if not np.allclose(cov, cov.T, rtol=1e-8, atol=0.0):
        raise FormatError(f"{what}: covariance is not symmetric (max |C - C^T| = {asym:.3g}, largest |C| = "
                          f"{scale:.3g}); a covariance must be symmetric: check the file is the matrix itself "
                          "(rows = columns), or symmetrise it, (C + C^T) / 2, if the difference is rounding.")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))
        raise FormatError(f"{what}: covariance is not positive definite (smallest eigenvalue {eig.min():.3g}, "
                          f"largest {eig.max():.3g}); a covariance must be positive definite: check its units and "
                          "that it is the full matrix of these apertures (a bootstrap needs more samples than "
                          "apertures).") from None


@dataclass(frozen=True, eq=False)
class CAPMeasurement:
    """A stacked CAP profile with its covariance.

    Attributes:
        kind: ``"ksz"`` or ``"tsz"`` (ACT "tsz" is tSZ + dust: nothing removed).
        apertures_arcmin: Disk radii θ_d [arcmin], shape [n].
        values: T_CAP [μK arcmin²], shape [n].
        covariance: [n, n] (μK arcmin²)².
        errors: Error column of the source file [μK arcmin²], shape [n] (ACT: differs from
            √diag(covariance) by up to 4%; use the covariance), or √diag when absent.
        metadata: Provenance (file names, units of the source, redshift ...).
    """

    kind: str
    apertures_arcmin: np.ndarray
    values: np.ndarray
    covariance: np.ndarray
    errors: np.ndarray
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def sigma(self) -> np.ndarray:
        """√diag(covariance) [μK arcmin²], shape [n]."""
        return np.sqrt(np.diag(self.covariance))

    def chi2(self, model: Any) -> float:
        """χ² = (d − m)ᵀ C⁻¹ (d − m) of a model [μK arcmin²], shape [n]."""
        r = self.values - np.asarray(model, dtype=float)
        return float(r @ np.linalg.solve(self.covariance, r))

    def in_sr(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values [μK sr], covariance [(μK sr)²])``."""
        return self.values / SR_TO_ARCMIN2, self.covariance / SR_TO_ARCMIN2**2


@dataclass(frozen=True, eq=False)
class HarmonicTable:
    """A function of multipole: beam B_ℓ (B_0 = 1) or tSZ response R(ℓ) [K_CMB per unit y].

    Attributes:
        ell: Multipoles, strictly increasing, shape [n].
        values: B_ℓ or R(ℓ), shape [n].
        scatter: Optional spread column of the source (response files), shape [n], or None.
    """

    ell: np.ndarray
    values: np.ndarray
    scatter: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class TwoHaloTable:
    """CMASS-averaged two-halo term.

    Attributes:
        radius_mpc_h: Radii as stored, in Mpc/h, shape [n].
        density_g_cm3: ρ_2h [g cm⁻³], shape [n].
        pressure_erg_cm3: P_2h [erg cm⁻³ = dyn cm⁻²], shape [n].
    """

    radius_mpc_h: np.ndarray
    density_g_cm3: np.ndarray
    pressure_erg_cm3: np.ndarray

    def radius_mpc(self, h: float) -> np.ndarray:
        """Radii in Mpc: ``radius_mpc_h / h``. The file's header says Mpc/h; SOLikeT and Mop-c-GT
        interpolate the column directly against physical Mpc (``h = 1``); choose and state it."""
        return self.radius_mpc_h / h


@dataclass(frozen=True, eq=False)
class HaloMassDistribution:
    """Host-halo mass distribution (bins of log10 M200c [Msun]), weights normalised to sum 1.

    Attributes:
        log10_mass_lo, log10_mass_hi, log10_mass_center: Bin edges and centres, shape [n].
        weights: Normalised weights, shape [n] (sum 1).
    """

    log10_mass_lo: np.ndarray
    log10_mass_hi: np.ndarray
    log10_mass_center: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True, eq=False)
class DustTemplate:
    """Dust emission added to the tSZ CAP model [μK arcmin²] at the measurement's apertures.

    Attributes:
        apertures_arcmin: θ_d [arcmin], shape [n].
        values: Dust CAP [μK arcmin²], shape [n].
    """

    apertures_arcmin: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, eq=False)
class ACTCMASSData:
    """Everything of ``../shared/data/act_cmass``: both measurements, beam, response, two-halo
    table, mass distribution and dust template (μK arcmin² throughout)."""

    ksz: CAPMeasurement
    tsz: CAPMeasurement
    beam: HarmonicTable
    response: HarmonicTable
    two_halo: TwoHaloTable
    mass_distribution: HaloMassDistribution
    dust: DustTemplate


CAP_RANGE_MUK_ARCMIN2 = (1e-4, 1e5)
"""Plausible stacked CAP values [μK arcmin²]: the largest |value| or error must reach the lower
end, no |value| may pass the upper (1 μK arcmin² = 8.46e-8 μK sr)."""


def _check_magnitude(values: np.ndarray, errors: np.ndarray, units: str, what: str) -> None:
    """Refuse CAP values [μK arcmin², converted from ``units``] whose size contradicts the units."""
    lo, hi = CAP_RANGE_MUK_ARCMIN2
    other = "muK_arcmin2" if units == "muK_sr" else "muK_sr"
    big = float(np.max(np.abs(values)))
    if big > hi:
        raise FormatError(f"{what}: max |T_CAP| = {big:.3g} muK arcmin^2 after reading it in units={units!r}, "
                          f"above any stacked CAP ({hi:g}); the numbers are likely in {other}: declare units {other!r}.")
    if max(big, float(np.max(errors))) < lo:
        raise FormatError(f"{what}: every |T_CAP| and error is below {lo:g} muK arcmin^2 after reading it in "
                          f"units={units!r} (largest {max(big, float(np.max(errors))):.3g}); the numbers are likely "
                          f"in {other}: declare units {other!r}.")


def read_cap_measurement(values_path: str | Path, covariance_path: str | Path, *, kind: str,
                         units: str = "muK_sr") -> CAPMeasurement:
    """One ACT-style CAP measurement: a 3-column table (θ_d [arcmin], T_CAP, error) and an
    n×n covariance, both in ``units`` (``"muK_sr"`` for ACT, or ``"muK_arcmin2"``).

    Either file may be any of :data:`TABLE_LAYOUTS`: whitespace-separated text (ACT), a
    comma-separated table with a header line (``theta_arcmin,value,error``), or ``.npy``
    (read with ``allow_pickle=False``; typical for the covariance).

    Raises FormatError for unreadable files, mismatched shapes, apertures not increasing, a
    covariance that is not symmetric positive definite, or values whose magnitude contradicts
    ``units`` (:data:`CAP_RANGE_MUK_ARCMIN2`: values above 1e5 μK arcmin², or values and
    errors all below 1e-4 μK arcmin², mean the file is in the other unit).
    """
    if kind not in ("ksz", "tsz"):
        raise FormatError(f"kind: unknown value {kind!r}; valid choices are ['ksz', 'tsz'].")
    if units not in _UNITS:
        raise FormatError(f"units: unknown value {units!r}; valid choices are {list(_UNITS)}.")
    table = _load_table(values_path, columns=3, what=f"{kind} values")
    cov = _load_table(covariance_path, what=f"{kind} covariance")
    n = table.shape[0]
    if cov.shape != (n, n):
        raise FormatError(f"{kind} covariance: {str(covariance_path)!r} has shape {cov.shape}, expected "
                          f"({n}, {n}) for the {n} apertures of {str(values_path)!r}; pair the right files.")
    _check_increasing(table[:, 0], f"{kind} values", values_path)
    if np.any(table[:, 0] <= 0) or np.any(table[:, 2] <= 0):
        raise FormatError(f"{kind} values: {str(values_path)!r} has apertures or errors <= 0; columns are "
                          "theta_arcmin (> 0), value, error (> 0).")
    scale = _UNITS[units]
    _check_magnitude(table[:, 1] * scale, np.sqrt(np.abs(np.diag(cov))) * scale, units, f"{kind} values")
    _check_covariance(cov, f"{kind} covariance")
    meta = {"values_file": Path(values_path).name, "covariance_file": Path(covariance_path).name,
            "source_units": units}
    return CAPMeasurement(kind=kind, apertures_arcmin=table[:, 0].copy(), values=table[:, 1] * scale,
                          covariance=cov * scale**2, errors=table[:, 2] * scale, metadata=meta)


def read_beam(path: str | Path) -> HarmonicTable:
    """Beam file: ℓ (from 0 or 1) and B_ℓ normalised to B_0 = 1 (checked to 1e-3); further
    columns (e.g. the beam's error) are ignored."""
    table = _load_table(path, what="beam")
    if table.shape[1] < 2:
        raise FormatError(f"beam: {str(path)!r} has {table.shape[1]} column(s); expected ell and B_ell "
                          "(further columns are ignored).")
    table = table[:, :2]
    _check_increasing(table[:, 0], "beam", path)
    if table[0, 0] > 1:
        raise FormatError(f"beam: {str(path)!r} starts at ell = {table[0, 0]:g}; the table must start at "
                          "ell = 0 (or 1), where B = 1: prepend a row 0 1.")
    if abs(table[0, 1] - 1.0) > 1e-3:
        raise FormatError(f"beam: {str(path)!r} has B = {table[0, 1]:.6g} at ell = {table[0, 0]:g}; the beam "
                          "must be normalised to B_0 = 1: divide the column by its first value.")
    if np.any(np.abs(table[:, 1]) > 1.0 + 1e-3):
        raise FormatError(f"beam: {str(path)!r} has |B_ell| > 1; a beam transfer function is <= B_0 = 1.")
    return HarmonicTable(ell=table[:, 0].copy(), values=table[:, 1].copy())


def read_response(path: str | Path, column: int = 1) -> HarmonicTable:
    """ACT tSZ response file: ℓ then (response, scatter) × 3; ``column`` 1 (default) is the
    band-integrated response [K_CMB per unit y] (≈ −2.786 at ℓ = 100), its scatter the next column."""
    table = _load_table(path, what="response")
    if not (1 <= column < table.shape[1]) or column % 2 != 1:
        raise FormatError(f"response: column {column} invalid for {str(path)!r} with {table.shape[1]} "
                          "columns; use an odd column >= 1 (1, 3 or 5 in the ACT file).")
    _check_increasing(table[:, 0], "response", path)
    resp = table[:, column]
    if np.all(resp == 0):
        raise FormatError(f"response: {str(path)!r} column {column} is all zeros; expected the tSZ response in "
                          "K_CMB per unit y (e.g. -2.79 at 150 GHz).")
    peak = float(np.max(np.abs(resp)))
    problem = response_scale_problem(peak)
    if problem:
        raise FormatError(f"response: {str(path)!r} column {column} has max |R| = {peak:.4g}, {problem}.")
    scatter = table[:, column + 1].copy() if column + 1 < table.shape[1] else None
    return HarmonicTable(ell=table[:, 0].copy(), values=resp.copy(), scatter=scatter)


def read_two_halo(path: str | Path) -> TwoHaloTable:
    """Two-halo table: R [Mpc/h], ρ_2h [g cm⁻³], P_2h [dyn cm⁻² = erg cm⁻³]; all > 0."""
    table = _load_table(path, columns=3, what="two-halo")
    _check_increasing(table[:, 0], "two-halo", path)
    if np.any(table <= 0):
        raise FormatError(f"two-halo: {str(path)!r} has values <= 0; radii, densities and pressures "
                          "must be positive.")
    if not (1e-35 < np.median(table[:, 1]) < 1e-20):
        raise FormatError(f"two-halo: {str(path)!r} column 2 is not a density in g/cm^3 (median "
                          f"{np.median(table[:, 1]):.3g}); pass the original file.")
    return TwoHaloTable(radius_mpc_h=table[:, 0].copy(), density_g_cm3=table[:, 1].copy(),
                        pressure_erg_cm3=table[:, 2].copy())


def _read_csv(path: str | Path, expected: list[str], what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{what}: file {str(p)!r} not found; check the path.")
    lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines or [c.strip() for c in lines[0].split(",")] != expected:
        raise FormatError(f"{what}: {str(p)!r} must be a comma-separated table whose first line is the header "
                          f"{','.join(expected)}, then one row of numbers per line.")
    return _parse_rows(lines[1:], len(expected), what, p)


def _parse_rows(lines: list[str], ncol: int, what: str, path: Path) -> np.ndarray:
    rows = []
    for i, line in enumerate(lines):
        parts = line.split(",")
        try:
            row = [float(x) for x in parts]
        except ValueError:
            raise FormatError(f"{what}: {str(path)!r} data row {i} is not numeric ({line!r}).") from None
        if len(row) != ncol or not all(math.isfinite(x) for x in row):
            raise FormatError(f"{what}: {str(path)!r} data row {i} needs {ncol} finite numbers, got "
                              f"{line!r}.")
        rows.append(row)
    if not rows:
        raise FormatError(f"{what}: {str(path)!r} has no data rows.")
    return np.asarray(rows)


def read_halo_mass_distribution(path: str | Path) -> HaloMassDistribution:
    """CSV ``log10_mass_lo,log10_mass_hi,log10_mass_center,weight``; weights normalised to sum 1."""
    t = _read_csv(path, ["log10_mass_lo", "log10_mass_hi", "log10_mass_center", "weight"],
                  "mass distribution")
    lo, hi, c, w = t.T
    if np.any(hi <= lo) or np.any((c < lo) | (c > hi)) or np.any(np.diff(c) <= 0):
        raise FormatError(f"mass distribution: {str(path)!r} bins must have lo < centre < hi and "
                          "increasing centres.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.max() > 0:
        raise FormatError(f"mass distribution: {str(path)!r} weights must be finite, >= 0 and not all 0.")
    w = w / w.max()  # relative weights: their sum cannot overflow
    if not (8.0 < c.min() and c.max() < 16.0):
        raise FormatError(f"mass distribution: {str(path)!r} masses must be log10(M / Msun) "
                          f"(got {c.min():.3g}..{c.max():.3g}).")
    return HaloMassDistribution(log10_mass_lo=lo, log10_mass_hi=hi, log10_mass_center=c,
                                weights=w / w.sum())


def single_mass(log10_mass: float, *, what: str = "log10_mass") -> HaloMassDistribution:
    """One halo mass log10(M/Msun) (between 8 and 16) as a one-bin :class:`HaloMassDistribution`.

    Raises:
        FormatError: not a number between 8 and 16 (e.g. a mass in Msun, 2.5e13); ``what`` names
            the option or key in the message.
    """
    try:
        m = float(log10_mass)
    except (TypeError, ValueError):
        raise FormatError(f"{what}: {log10_mass!r} is not a number; give log10(M/Msun), e.g. 13.4.") from None
    if not 8.0 < m < 16.0:
        raise FormatError(f"{what}: {m:g} must be log10(M/Msun), between 8 and 16"
                          + (f" (for M = {m:g} Msun give {math.log10(m):.4g})." if m > 1e8 else "."))
    one = np.array([m])
    return HaloMassDistribution(log10_mass_lo=one - 1e-6, log10_mass_hi=one + 1e-6, log10_mass_center=one,
                                weights=np.ones(1))


def read_dust_template(path: str | Path) -> DustTemplate:
    """CSV ``theta_arcmin,dust_muK_arcmin2`` (dust CAP in μK arcmin² at the apertures)."""
    t = _read_csv(path, ["theta_arcmin", "dust_muK_arcmin2"], "dust")
    _check_increasing(t[:, 0], "dust", path)
    return DustTemplate(apertures_arcmin=t[:, 0].copy(), values=t[:, 1].copy())


def load_act_cmass(directory: str | Path) -> ACTCMASSData:
    """Read every file of the ACT DR5 × CMASS f150 directory (names in :data:`ACT_FILES`).

    Checks that both measurements and the dust template share the same apertures.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FormatError(f"directory: {str(d)!r} not found; pass the act_cmass data directory "
                          "(../shared/data/act_cmass).")
    f = {k: d / v for k, v in ACT_FILES.items()}
    ksz = read_cap_measurement(f["ksz_values"], f["ksz_covariance"], kind="ksz")
    tsz = read_cap_measurement(f["tsz_values"], f["tsz_covariance"], kind="tsz")
    dust = read_dust_template(f["dust"])
    for name, ap in (("tsz", tsz.apertures_arcmin), ("dust", dust.apertures_arcmin)):
        if ap.shape != ksz.apertures_arcmin.shape or not np.allclose(ap, ksz.apertures_arcmin):
            raise FormatError(f"{name}: apertures {ap.tolist()} differ from the kSZ apertures "
                              f"{ksz.apertures_arcmin.tolist()}; the files do not belong together.")
    return ACTCMASSData(ksz=ksz, tsz=tsz, beam=read_beam(f["beam"]), response=read_response(f["response"]),
                        two_halo=read_two_halo(f["two_halo"]),
                        mass_distribution=read_halo_mass_distribution(f["mass_distribution"]),
                        dust=dust)


def is_cap_file(path: str | Path) -> bool:
    """Whether ``path`` starts like a ``profemu-cap`` file (values with their own covariance)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip() == f"# {_FORMAT_TAG} {_FORMAT_VERSION}"
    except OSError:
        return False


def read_cap_file(path: str | Path) -> CAPMeasurement:
    """Read the generic ``profemu-cap 1`` format (module docstring); values in μK arcmin²."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"cap file: {str(p)!r} not found; check the path.")
    header: dict[str, str] = {}
    lines = p.read_text().splitlines()
    if not lines or lines[0].strip() != f"# {_FORMAT_TAG} {_FORMAT_VERSION}":
        raise FormatError(f"cap file: {str(p)!r} must start with '# {_FORMAT_TAG} {_FORMAT_VERSION}'; "
                          "write it with write_cap_file().")
    for line in lines[1:]:
        if line.startswith("#") and ":" in line:
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
    kind = header.get("kind", "")
    units = header.get("units", "")
    if kind not in ("ksz", "tsz") or units not in _UNITS:
        raise FormatError(f"cap file: {str(p)!r} needs '# kind: ksz|tsz' and '# units: "
                          f"{'|'.join(_UNITS)}' header lines (got kind={kind!r}, units={units!r}).")
    table = _load_table(p, what="cap file")
    n = table.shape[0]
    if table.shape[1] != n + 2:
        raise FormatError(f"cap file: {str(p)!r} has {table.shape[1]} columns for {n} apertures; expected "
                          f"{n + 2} (theta_arcmin, value, {n} covariance columns).")
    _check_increasing(table[:, 0], "cap file", p)
    if np.any(table[:, 0] <= 0):
        raise FormatError(f"cap file: {str(p)!r} has apertures <= 0 arcmin.")
    scale = _UNITS[units]
    cov = table[:, 2:] * scale**2
    _check_magnitude(table[:, 1] * scale, np.sqrt(np.abs(np.diag(cov))), units, f"cap file {str(p)!r}")
    _check_covariance(cov, "cap file")
    meta = {k: v for k, v in header.items() if k not in ("kind", "units", "columns")}
    meta["source_units"] = units
    return CAPMeasurement(kind=kind, apertures_arcmin=table[:, 0].copy(), values=table[:, 1] * scale,
                          covariance=cov, errors=np.sqrt(np.diag(cov)), metadata=meta)


def write_cap_file(path: str | Path, measurement: CAPMeasurement,
                   extra: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Path:
    """Write a :class:`CAPMeasurement` in the ``profemu-cap 1`` format (μK arcmin²)."""
    p = Path(path)
    items = dict(extra)
    head = [f"# {_FORMAT_TAG} {_FORMAT_VERSION}", f"# kind: {measurement.kind}", "# units: muK_arcmin2"]
    head += [f"# {k}: {v}" for k, v in {**measurement.metadata, **items}.items()
             if k not in ("kind", "units", "columns", "source_units") and "\n" not in f"{k}{v}"]
    n = measurement.values.size
    head.append("# columns: theta_arcmin value " + " ".join(f"cov_{i}" for i in range(n)))
    data = np.column_stack([measurement.apertures_arcmin, measurement.values, measurement.covariance])
    body = [" ".join(f"{x:.17g}" for x in row) for row in data]
    atomic_write_text(p, "\n".join(head + body) + "\n")  # a reader never sees half a file
    return p
