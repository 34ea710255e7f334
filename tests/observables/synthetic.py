"""Synthetic inputs of the observables tests: a Gaussian beam, a CMASS-like mass distribution
and a CAP measurement, as objects and as files in the formats the readers take."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from profemu.observables import CAPMeasurement, HaloMassDistribution, write_cap_file

APERTURES = np.array([1.0, 1.625, 2.25, 2.875, 3.5, 4.125, 4.75, 5.375, 6.0])
#: The parameters the synthetic observations are made at (the tiny run's six inputs).
TRUTH = np.array([0.3, 0.8, 1.2, 0.9, 1.1, 1.0])
#: A smooth dust-like template on the apertures.
DUST = np.linspace(0.05, 0.4, APERTURES.size)
FWHM_ARCMIN = 1.4


def gaussian_beam(ell_max: int = 30000) -> tuple[np.ndarray, np.ndarray]:
    """ℓ (0..ell_max) and a Gaussian B_ℓ of FWHM 1.4′ (B_0 = 1)."""
    ell = np.arange(ell_max + 1, dtype=float)
    sigma = FWHM_ARCMIN / np.sqrt(8.0 * np.log(2.0)) * np.pi / 180.0 / 60.0
    return ell, np.exp(-0.5 * ell * (ell + 1.0) * sigma**2)


def mass_distribution(centres: tuple[float, ...] = (12.6, 13.2, 13.7),
                      weights: tuple[float, ...] = (0.2, 0.5, 0.3)) -> HaloMassDistribution:
    c = np.asarray(centres, float)
    return HaloMassDistribution(log10_mass_lo=c - 0.2, log10_mass_hi=c + 0.2, log10_mass_center=c,
                                weights=np.asarray(weights, float) / np.sum(weights))


def write_beam(path: Path) -> Path:
    ell, bl = gaussian_beam()
    np.savetxt(path, np.column_stack([ell, bl]), header="ell B_ell (Gaussian, FWHM 1.4 arcmin)")
    return path


def write_mass_distribution(path: Path, dist: HaloMassDistribution | None = None) -> Path:
    d = dist or mass_distribution()
    rows = ["log10_mass_lo,log10_mass_hi,log10_mass_center,weight"]
    rows += [",".join(repr(float(x)) for x in row) for row in zip(d.log10_mass_lo, d.log10_mass_hi,
                                                               d.log10_mass_center, d.weights, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def measurement(kind: str, values: np.ndarray, rel_error: float = 0.1) -> CAPMeasurement:
    """A CAP measurement of ``values`` [μK arcmin²] with a correlated covariance
    (``rel_error`` × |value|, correlation 0.5^|i-j|)."""
    sig = rel_error * np.abs(values) + 1e-3
    i = np.arange(values.size)
    cov = np.outer(sig, sig) * 0.5 ** np.abs(i[:, None] - i[None, :])
    return CAPMeasurement(kind=kind, apertures_arcmin=APERTURES.copy(), values=np.asarray(values, float),
                          covariance=cov, errors=sig, metadata={})


def write_measurement(path: Path, meas: CAPMeasurement) -> Path:
    return write_cap_file(path, meas)
