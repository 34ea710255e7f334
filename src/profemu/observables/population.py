"""Population prediction: an Emulator's 3D profiles, averaged over a host-halo mass distribution,
through the forward model to CAP values [μK arcmin²], with the emulator's uncertainty.

For parameters θ (physical values, the emulator's column order) and a mass distribution of
``B`` bins (centres log10 M_b, weights w_b summing to 1)::

    f_b(r)     = 10^(emulator mean of log10 of the field at (θ, log10 M_b)) × (field unit → CGS)
    f_b(grid)  = 10^(E @ log10 f_b(r_emu))          E [n_grid, n_r]: log-log interpolation with
                                                    power-law continuations (linear in log f)
    CAP(θ)     = A @ Σ_b w_b f_b(grid)  (+ a_2h A @ f_2h(grid))

A is the :class:`~profemu.observables.forward.ForwardModel` matrix. Everything after the
3D profile is linear, so averaging the profiles is averaging the CAP of each mass.

Emulator uncertainty, two ways:

* **linearised** (JAX and numpy): the predictive variance of log10 f_b at each emulator
  radius, taken independent across radii and masses (diagonal in log space), through the
  Jacobian ``K_b = ln 10 · w_b · A · diag(f_b(grid)) · E`` [n_ap, n_r]:
  ``C_emu = Σ_b K_b diag(var_b) K_b^T``;
* **members** (numpy): the covariance of the CAP of each ensemble member's mean profile
  (times the emulator's ``variance_scale``) plus the members' own (aleatoric) variance
  linearised as above; it keeps the correlation across radii the members carry.

Units and frames (checked, one-line errors otherwise): the field's unit comes from the
emulator metadata ``units`` (e.g. CAMELS ``rho`` in Msun/kpc³, ``pth`` in Msun/kpc/s²) and is
converted with :func:`profemu.data.selfsimilar.unit_factor`; the field must be a density
(kSZ) or a pressure (tSZ). The pressure is the **thermal** gas pressure (CAMELS ``pth``); the
forward model takes the electron share (2 + 2X_H)/(3 + 5X_H). Radii (emulator
``radius_unit``: pc, kpc or Mpc, optionally ``/h``) are taken as **physical** (CAMELS tables
are physical) unless ``radius_frame="comoving"`` (divided by 1 + z); radii in units of R_Δ
(``"R200c"``, the mock universe) are multiplied by R_Δ(M_b) at the forward model's z, Ω_m, h.

Masses outside the emulator's training range are extrapolations: :attr:`PopulationModel.mass_outside_dex`
says by how much (dex of log10 M) per bin, and building the model logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from profemu.data.selfsimilar import parameter_index, parse_scaled_radius_unit, unit_factor
from profemu.errors import ConfigError, DataError
from profemu.observables.act import HaloMassDistribution, TwoHaloTable
from profemu.observables.forward import ForwardModel
from profemu.observables.projection import _loglog, two_halo_on_grid
from profemu.physics.constants import DEFAULT_H
from profemu.physics.halo import r_delta

__all__ = [
    "FIELD_KIND",
    "ObservablePrediction",
    "PopulationModel",
    "cosmology_params",
    "field_to_cgs",
    "mass_report",
    "radius_to_mpc",
]

logger = logging.getLogger("profemu.observables")

FIELD_KIND = {"ksz": "density", "tsz": "pressure"}
"""Kind of 3D field each observable needs: gas density (kSZ) or thermal pressure (tSZ)."""
_CGS_UNIT = {"density": "g cm^-3", "pressure": "erg cm^-3"}
_RADIUS_UNITS = {"pc": 1e-6, "kpc": 1e-3, "mpc": 1.0}
_LN10 = float(np.log(10.0))


REDSHIFT_TOLERANCE = 0.05
"""|z_sample − z_train| above which an emulator trained at one redshift (not an input) is
used with a warning."""


def field_to_cgs(emulator: Any, field: str) -> tuple[str, float]:
    """``(kind, factor)``: the field's kind (``"density"`` or ``"pressure"``) and the factor
    from its unit (emulator metadata ``units``) to g cm⁻³ or erg cm⁻³.

    Raises:
        DataError: the unit is missing or not a density or pressure unit.
    """
    units = emulator.metadata.get("units", {}) if isinstance(emulator.metadata, Mapping) else {}
    unit = str(units.get(field, "")) if isinstance(units, Mapping) else ""
    for kind in ("density", "pressure"):
        here = unit_factor(kind, unit) if unit else None
        if here is not None:
            return kind, float(unit_factor(kind, _CGS_UNIT[kind]) / here)  # type: ignore[operator]
    raise DataError(f"field {field!r}: unit {unit!r} (emulator metadata 'units') is not a density or "
                    "pressure unit profemu knows (e.g. Msun/kpc^3, g/cm^3, Msun/kpc/s^2, keV/cm^3, "
                    "erg/cm^3); retrain from a dataset that states the unit.")


def radius_to_mpc(radius_unit: str, *, h: float = DEFAULT_H) -> float:
    """Factor from the emulator's ``radius_unit`` (pc, kpc, Mpc, optionally ``/h``) to Mpc.

    Raises:
        DataError: an unknown unit (scaled radii such as r/R200c cannot be projected).
    """
    text = str(radius_unit).strip().lower().replace(" ", "")
    per_h = text.endswith("/h")
    base = text[:-2] if per_h else text
    if base not in _RADIUS_UNITS:
        raise DataError(f"radius_unit: {radius_unit!r} is not a length profemu can project (pc, kpc, "
                        "Mpc, optionally /h); an emulator of scaled radii (r/R_Delta) needs physical "
                        "radii for the forward model.")
    return _RADIUS_UNITS[base] / (h if per_h else 1.0)


def _scaled_radius(emulator: Any) -> tuple[float, str] | None:
    """(Δ, reference) when the emulator's radii are r/R_Δ (``"R200c"``, ``"R500c"``, ``"R200m"``)."""
    return parse_scaled_radius_unit(emulator.radius_unit)


def _per_h(emulator: Any) -> bool:
    """Whether the emulator's radii are a length over h (``"kpc/h"``, ``"Mpc/h"``)."""
    return _scaled_radius(emulator) is None and str(emulator.radius_unit).strip().lower().replace(" ", "").endswith("/h")


def cosmology_params(param_names: Any) -> tuple[str | None, str | None]:
    """``(omega_m_name, h_name)``: the emulator parameters that are Ω_m and h (names in
    :data:`profemu.data.selfsimilar.ALIASES`, any case), None for each that is not a parameter.

    The forward model takes D_A(z; Ω_m, h) and R_Δ(M, z; Ω_m, h) from these parameters' values
    at each point (:meth:`PopulationModel.at_cosmology`, :meth:`PopulationModel.jax_fn`).
    """
    names = [str(n) for n in param_names]
    om, hh = (parameter_index(names, q) for q in ("omega_m", "h"))
    return None if om is None else names[om], None if hh is None else names[hh]


def _pk_ratio(emulator: Any, pk_ratio: Any) -> np.ndarray | None:
    """The P(k) suppression [n_k] the model passes to an emulator that takes P(k): ``pk_ratio``,
    else the training set's centre (logged); None for an emulator without P(k)."""
    n_k = int(getattr(emulator.input_spec, "n_k", 0) or 0)
    if not n_k:
        if pk_ratio is not None:
            raise ConfigError("pk_ratio: this emulator was trained without P(k) inputs; drop pk_ratio.")
        return None
    if pk_ratio is None:
        from profemu.emulator.tables import describe_values, fiducial_pk_ratio

        pk = fiducial_pk_ratio(emulator)
        if pk is None:
            raise ConfigError(f"pk_ratio: this emulator takes the P(k) suppression on {n_k} k bins and stores no "
                              "training centre; pass pk_ratio (one value per k bin).")
        logger.info("P(k) suppression not given (pk_ratio / --pk-ratio FILE): assuming the training set's centre, %s",
                    describe_values(pk))
        return pk
    pk = np.asarray(pk_ratio, dtype=float).reshape(-1)
    if pk.size != n_k:
        raise ConfigError(f"pk_ratio: {pk.size} value(s), but the emulator takes P(k) on {n_k} k bins; give one "
                          "value per k bin.")
    if not np.all(np.isfinite(pk)) or np.any(pk <= 0):
        raise ConfigError("pk_ratio: every value must be finite and > 0 (P_hydro / P_dmo, about 0.7 to 1.1).")
    return pk


def _extension(radius: Any, grid: np.ndarray, continuation: str, truncation_radius_mpc: float | None,
               xp: Any = np) -> tuple[Any, Any]:
    """(E [B, n_grid, n_r], keep [B, n_grid]) for emulator radii ``radius`` [B, n_r] in Mpc:
    log f on the grid = E_b @ log f at the radii; keep is 0 beyond a truncation radius. The
    radii may be traced (``xp = jax.numpy``), the grid is fixed."""
    log_grid = np.log(grid)
    eye = np.eye(radius.shape[-1])
    ext = xp.stack([_loglog(xp.log(r), eye, log_grid, xp, inner_powerlaw=True).T for r in radius])
    if continuation == "truncate":
        r_t = radius[:, -1] if truncation_radius_mpc is None else xp.full(radius.shape[0], float(truncation_radius_mpc))
        keep = (grid[None, :] <= r_t[:, None]).astype(float) if xp is np else \
            xp.where(grid[None, :] <= r_t[:, None], 1.0, 0.0)
    elif continuation != "powerlaw" or truncation_radius_mpc is not None:
        raise ConfigError(f"continuation: {continuation!r} (truncation {truncation_radius_mpc!r}); "
                          "choose 'powerlaw' or 'truncate' (truncation radius with 'truncate' only).")
    else:
        keep = xp.ones((radius.shape[0], grid.size))
    return ext, keep


def _radii_mpc(emulator: Any, forward: ForwardModel, log10_mass: np.ndarray, frame: str) -> np.ndarray:
    """Emulator radii in physical Mpc per mass bin, [B, n_r]: a length unit (physical, or
    comoving / (1 + z)), or r/R_Δ (``"R200c"``, ``"R500c"``, ``"R200m"``) times R_Δ(M, z) at the
    forward model's z, Ω_m and h."""
    if frame not in ("physical", "comoving"):
        raise ConfigError(f"radius_frame: {frame!r}; choose 'physical' or 'comoving'.")
    x = np.asarray(emulator.radius, float)
    scaled = _scaled_radius(emulator)
    if scaled is not None:
        r_d = r_delta(10.0**log10_mass, forward.redshift, forward.h, forward.omega_m, *scaled)
        return x[None, :] * np.asarray(r_d)[:, None]
    factor = radius_to_mpc(emulator.radius_unit, h=forward.h)
    if frame == "comoving":
        factor /= 1.0 + forward.redshift
    return np.broadcast_to(x * factor, (log10_mass.size, x.size)).copy()


def _pick_field(emulator: Any, kind: str, field: str | None) -> tuple[str, float]:
    """The emulator field of the observable's ``kind`` and its factor to CGS."""
    need = FIELD_KIND[kind]
    names = [field] if field is not None else list(emulator.field_names)
    if field is not None and field not in emulator.field_names:
        raise DataError(f"field: {field!r} is not predicted by the emulator (fields "
                        f"{list(emulator.field_names)}).")
    for name in names:
        try:
            got, factor = field_to_cgs(emulator, name)
        except DataError:
            if field is not None:
                raise
            continue
        if got == need:
            return name, factor
        if field is not None:
            raise DataError(f"field: {field!r} is a {got} but {kind} needs a gas {need} field; pick "
                            "another field.")
    raise DataError(f"field: none of the emulator's fields {list(emulator.field_names)} is a gas {need} "
                    f"(needed for {kind}); train the emulator on one (e.g. --field rho,pth).")


@dataclass(frozen=True)
class ObservablePrediction:
    """CAP predicted from an emulator for ``n`` parameter points.

    Attributes:
        apertures_arcmin: θ_d [arcmin], shape [n_ap].
        mean: CAP of the ensemble-mean profiles [μK arcmin²], shape [n, n_ap].
        covariance: Emulator covariance [n, n_ap, n_ap] (μK arcmin²)²: member spread of the
            CAP times ``variance_scale`` plus the members' variance, linearised.
        linearised: The linearised covariance of the total predictive variance (diagonal in
            log space, as in the JAX likelihood), [n, n_ap, n_ap].
        members: CAP of every member's mean profile [M, n, n_ap].
        mass_outside_dex: Per mass bin, dex outside the emulator's training range, shape [B].
    """

    apertures_arcmin: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    linearised: np.ndarray
    members: np.ndarray
    mass_outside_dex: np.ndarray

    @property
    def std(self) -> np.ndarray:
        """√diag(covariance) [μK arcmin²], shape [n, n_ap]."""
        return np.sqrt(np.diagonal(self.covariance, axis1=-2, axis2=-1))


@dataclass(frozen=True, eq=False)
class PopulationModel:
    """Emulator → mass-averaged 3D profile → CAP [μK arcmin²], for one observable.

    Build with :meth:`build`; predict with :meth:`predict` (numpy) or :meth:`jax_fn` (pure JAX).

    Attributes:
        emulator: The Emulator.
        forward: The :class:`ForwardModel` (kind, redshift, cosmology, beam, apertures).
        field: Emulator field used (density for kSZ, thermal pressure for tSZ).
        to_cgs: Factor from the field's unit to g cm⁻³ or erg cm⁻³.
        radius_mpc: Emulator radii in physical Mpc per mass bin, shape [B, n_r] (rows differ
            when the emulator's radii are r/R_Δ).
        log10_mass: Mass-bin centres log10(M/Msun), shape [B].
        weights: Mass-bin weights (sum 1), shape [B].
        extension: E [B, n_grid, n_r], per mass bin: log f on the grid = E_b @ log f at the
            emulator radii.
        keep: [B, n_grid] 1 where the profile is kept, 0 beyond a truncation radius.
        log10_scale: Profiles are carried as f / 10^log10_scale (float32-safe); the matrices
            are multiplied by 10^log10_scale.
        two_halo_grid: Two-halo profile on the grid / 10^log10_scale, or None.
        emulator_redshift: Redshift passed to the emulator (None: it takes none).
        mass_outside_dex: Per mass bin, dex of log10 M outside the training range (0 inside).
        notes: The assumptions made, as text lines (units, frames, redshift, extrapolation).
        continuation, truncation_radius_mpc: The profile beyond the emulator's last radius.
        pk_ratio: P(k) suppression [n_k] passed to an emulator that takes P(k) (default the
            training set's centre), None otherwise.

    The geometry follows the cosmology: :meth:`at_cosmology` and :meth:`jax_fn` with Ω_m and h
    parameters (:func:`cosmology_params`) recompute D_A(z; Ω_m, h) and, for radii in units of
    R_Δ (or of a length over h), the radii: R_Δ(M, z; Ω_m, h) is a common factor on every mass
    bin's radii.
    """

    emulator: Any
    forward: ForwardModel
    field: str
    to_cgs: float
    radius_mpc: np.ndarray
    log10_mass: np.ndarray
    weights: np.ndarray
    extension: np.ndarray
    keep: np.ndarray
    log10_scale: float
    two_halo_grid: np.ndarray | None
    emulator_redshift: float | None
    mass_outside_dex: np.ndarray
    notes: tuple[str, ...]
    continuation: str = "powerlaw"
    truncation_radius_mpc: float | None = None
    pk_ratio: np.ndarray | None = None

    @classmethod
    def build(cls, emulator: Any, forward: ForwardModel, mass_distribution: HaloMassDistribution, *,
              field: str | None = None, two_halo: TwoHaloTable | None = None,
              two_halo_h: float = 1.0, continuation: str = "powerlaw",
              truncation_radius_mpc: float | None = None, radius_frame: str = "physical",
              emulator_redshift: float | None = None, pk_ratio: Any = None) -> PopulationModel:
        """Precompute everything that does not depend on the parameters.

        Args:
            emulator: A trained Emulator with a density (kSZ) or pressure (tSZ) field.
            forward: The forward model of the observable.
            mass_distribution: Host-halo mass bins (centres used) and weights.
            field: The emulator field (default: the first of the right kind).
            two_halo: Optional two-halo table (density for kSZ, pressure for tSZ), added with
                an amplitude (1 by default; free in the likelihood).
            two_halo_h: h dividing the table's radii (1: read them as Mpc, as SOLikeT and
                Mop-c-GT do; 0.7: Mpc/h as the header says).
            continuation, truncation_radius_mpc: Beyond the emulator's last radius
                (see :func:`~profemu.observables.projection.extend_profile`).
            radius_frame: ``"physical"`` (CAMELS) or ``"comoving"`` emulator radii.
            emulator_redshift: Redshift input of an emulator that takes one (default: the
                forward model's redshift); ignored otherwise.
            pk_ratio: P(k) suppression [n_k] of an emulator that takes P(k) (default: the
                training set's centre, logged); must be None for one that does not.
        """
        name, to_cgs = _pick_field(emulator, forward.kind, field)
        pk = _pk_ratio(emulator, pk_ratio)
        masses = np.asarray(mass_distribution.log10_mass_center, float)
        radius = _radii_mpc(emulator, forward, masses, radius_frame)  # [B, n_r]
        grid = forward.radius_grid_mpc
        ext, keep = _extension(radius, grid, continuation, truncation_radius_mpc)  # [B, n_grid, n_r], [B, n_grid]
        log10_scale = -float(np.round(np.log10(np.max(np.abs(forward.matrix)))))
        two = None
        if two_halo is not None:
            if not two_halo_h > 0:
                raise ConfigError(f"two_halo_h: {two_halo_h!r} must be > 0.")
            values = two_halo.density_g_cm3 if forward.kind == "ksz" else two_halo.pressure_erg_cm3
            two = two_halo_on_grid(two_halo.radius_mpc(two_halo_h), values, grid) / 10.0**log10_scale
        z_box = emulator.training_box.get("redshift")
        uses_z = z_box is not None and z_box[1] - z_box[0] > 1e-9 * (1.0 + abs(z_box[0]))
        z_emu = (float(forward.redshift if emulator_redshift is None else emulator_redshift)
                 if uses_z else None)
        if z_emu is None and z_box is not None and abs(forward.redshift - z_box[0]) > REDSHIFT_TOLERANCE:
            logger.warning("the emulator was trained at the single redshift z = %g (not an input) and is used for "
                           "haloes at z = %g: their profiles are taken as at z = %g (train on the redshift of the "
                           "sample, or with redshift as an input)", z_box[0], forward.redshift, z_box[0])
        lo, hi = emulator.training_box["log10_mass"]
        outside = np.maximum(lo - masses, 0.0) + np.maximum(masses - hi, 0.0)
        notes = _notes(emulator, name, to_cgs, forward, radius_frame, z_emu, continuation, two_halo_h,
                       two is not None, pk)
        for m, d in zip(masses, outside, strict=True):
            if d > 0:
                logger.warning("mass bin log10 M = %.3f lies %.2f dex outside the emulator's training range "
                               "[%.3f, %.3f]: the profile there is an extrapolation", m, d, lo, hi)
        return cls(emulator=emulator, forward=forward, field=name, to_cgs=to_cgs, radius_mpc=radius,
                   log10_mass=masses, weights=np.asarray(mass_distribution.weights, float), extension=ext,
                   keep=keep, log10_scale=log10_scale, two_halo_grid=two, emulator_redshift=z_emu,
                   mass_outside_dex=outside, notes=notes, continuation=continuation,
                   truncation_radius_mpc=truncation_radius_mpc, pk_ratio=pk)

    def at_cosmology(self, omega_m: float, h: float | None = None) -> PopulationModel:
        """The same model at another Ω_m (and h, default the forward model's), numpy: the forward
        matrix (D_A) and, for radii in units of R_Δ (or a length over h), the radii and their
        extension to the grid."""
        hh = self.forward.h if h is None else float(h)
        forward = replace(self.forward, omega_m=float(omega_m), h=hh,
                          matrix=self.forward.matrix_for(float(omega_m), hh))
        if not self.radii_follow_cosmology:
            return replace(self, forward=forward)
        radius = self.radius_mpc * self.radius_scale(float(omega_m), hh)
        ext, keep = _extension(radius, forward.radius_grid_mpc, self.continuation, self.truncation_radius_mpc)
        return replace(self, forward=forward, radius_mpc=radius, extension=ext, keep=keep)

    def geometry_arrays(self, omega_m: float, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A [n_ap, n_grid], E [B, n_grid, n_r], keep [B, n_grid])`` of the forward model at
        (Ω_m, h), numpy: what :meth:`jax_fn`'s function computes from traced Ω_m, h, for values
        held fixed (``cap_fn(..., geometry=...)`` then computes nothing of the geometry)."""
        moved = self.at_cosmology(float(omega_m), float(h))
        return moved.scaled_matrix, np.asarray(moved.extension), np.asarray(moved.keep)

    @property
    def radii_follow_cosmology(self) -> bool:
        """Whether the emulator's radii in Mpc depend on Ω_m or h: r/R_Δ, or a length over h."""
        return _scaled_radius(self.emulator) is not None or _per_h(self.emulator)

    def radius_scale(self, omega_m: Any, h: Any, xp: Any = np) -> Any:
        """Radii at (Ω_m, h) over radii at the forward model's (the same for every mass):
        R_Δ(Ω_m, h) / R_Δ(Ω_m,0, h_0) for r/R_Δ, h_0 / h for a length over h, 1 for physical
        radii. Traced arguments with ``xp = jax.numpy``."""
        scaled = _scaled_radius(self.emulator)
        f = self.forward
        if scaled is None:
            return f.h / h if _per_h(self.emulator) else 1.0
        return r_delta(1.0, f.redshift, h, omega_m, *scaled, xp=xp) / r_delta(1.0, f.redshift, f.h, f.omega_m, *scaled)

    # ------------------------------------------------------------------ shared algebra
    @property
    def kind(self) -> str:
        """``"ksz"`` or ``"tsz"``."""
        return self.forward.kind

    @property
    def apertures_arcmin(self) -> np.ndarray:
        """θ_d [arcmin], shape [n_ap]."""
        return self.forward.apertures_arcmin

    @property
    def field_index(self) -> int:
        """Index of :attr:`field` on the emulator's field axis."""
        return int(self.emulator.field_names.index(self.field))

    @property
    def scaled_matrix(self) -> np.ndarray:
        """A × 10^log10_scale [n_ap, n_grid] (float64)."""
        return self.forward.matrix * 10.0**self.log10_scale

    def scaled_matrix_for(self, omega_m: Any, h: Any, xp: Any = np) -> Any:
        """A × 10^log10_scale for another Ω_m, h (``xp=jax.numpy``: traced, differentiable)."""
        return self.forward.matrix_for(omega_m, h, xp=xp) * 10.0**self.log10_scale

    def _shift(self) -> float:
        """Added to log10 of the field: unit → CGS and the float32 scale."""
        return float(np.log10(self.to_cgs)) - self.log10_scale

    def _cap_and_jacobian(self, log10_field: Any, var: Any, matrix: Any, xp: Any,
                          weights: Any = None, geometry: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """CAP [..., n_ap] of log10 fields [..., B, n_r] and the linearised covariance
        [..., n_ap, n_ap] of the variances ``var`` [..., B, n_r] (dex²); ``geometry`` (E, keep)
        replaces the model's extension (radii of another cosmology)."""
        ext, keep = (self.extension, self.keep) if geometry is None else geometry
        ext, keep = xp.asarray(ext), xp.asarray(keep)
        w = xp.asarray(self.weights if weights is None else weights)
        f_grid = 10.0 ** xp.einsum("...br,bgr->...bg", log10_field + self._shift(), ext) * keep  # [..., B, n_grid]
        cap = (w[:, None] * f_grid).sum(axis=-2) @ matrix.T
        k = _LN10 * w[:, None, None] * xp.einsum("ag,...bg,bgr->...bar", matrix, f_grid, ext)  # [..., B, n_ap, n_r]
        cov = xp.einsum("...bar,...br,...bcr->...ac", k, var, k)
        return cap, cov

    def two_halo_cap(self, matrix: Any = None, xp: Any = np) -> Any:
        """CAP of the two-halo term at amplitude 1 [μK arcmin²], shape [n_ap] (zeros without one)."""
        a = self.scaled_matrix if matrix is None else matrix
        if self.two_halo_grid is None:
            return xp.zeros(self.apertures_arcmin.size)
        return xp.asarray(a) @ xp.asarray(self.two_halo_grid)

    # ------------------------------------------------------------------ numpy
    def predict(self, params: Any, *, on_extrapolation: str = "ignore") -> ObservablePrediction:
        """CAP and emulator covariance at ``n`` parameter points (numpy; JAX not imported).

        Args:
            params: [n, p] or [p] physical values (emulator column order), or {name: value(s)}.
            on_extrapolation: Emulator policy for the parameters (masses outside the box are
                reported in :attr:`mass_outside_dex`, never refused).
        """
        one_pk = None if self.pk_ratio is None else self.pk_ratio[None, :]
        p = self.emulator.check_inputs(params, 12.0, one_pk).params  # [n, p], checked
        n, b = p.shape[0], self.log10_mass.size
        pk_n = None if one_pk is None else np.repeat(one_pk, n, axis=0)
        self.emulator.check_extrapolation(p, np.full(n, float(np.mean(self.log10_mass))).clip(
            *self.emulator.training_box["log10_mass"]), pk_n, policy=on_extrapolation)
        rows = np.repeat(p, b, axis=0)
        masses = np.tile(self.log10_mass, n)
        z = None if self.emulator_redshift is None else np.full(rows.shape[0], self.emulator_redshift)
        pk = None if one_pk is None else np.repeat(one_pk, rows.shape[0], axis=0)
        means, alea = self.emulator.predict_members(rows, masses, pk, redshift=z, on_extrapolation="ignore")
        fi = self.field_index
        m_log = means[:, :, fi, :].reshape(means.shape[0], n, b, -1)  # [M, n, B, n_r]
        a_var = alea[:, :, fi, :].reshape(m_log.shape)
        pred = self.emulator.predict(rows, masses, pk, redshift=z, on_extrapolation="ignore")[self.field]
        mean_log = np.asarray(pred.mean).reshape(n, b, -1)
        total_var = np.asarray(pred.var).reshape(n, b, -1)
        a = self.scaled_matrix
        mean, lin = self._cap_and_jacobian(mean_log, total_var, a, np)
        members, cov = self.member_covariance(m_log, a_var, self.emulator.variance_scale)
        two = self.two_halo_cap(a)
        return ObservablePrediction(apertures_arcmin=self.apertures_arcmin, mean=mean + two,
                                    covariance=cov, linearised=lin, members=members + two,
                                    mass_outside_dex=self.mass_outside_dex.copy())

    def member_covariance(self, member_means: np.ndarray, member_variances: np.ndarray,
                          variance_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """CAP of each member and the emulator covariance from the members (numpy).

        Args:
            member_means: log10 field of every member [M, ..., B, n_r] (field units).
            member_variances: Their (aleatoric) variances [M, ..., B, n_r] [dex²], already
                scaled as the emulator's.
            variance_scale: Factor on the members' spread (the emulator's calibration).

        Returns:
            ``(members [M, ..., n_ap], covariance [..., n_ap, n_ap])``: the one-halo CAP of
            each member mean, and ``variance_scale`` × the members' sample covariance of
            those CAPs plus the mean over members of their linearised variance.
        """
        members, member_lin = self._cap_and_jacobian(np.asarray(member_means, float),
                                                     np.asarray(member_variances, float), self.scaled_matrix, np)
        count = members.shape[0]
        spread = members - members.mean(axis=0)
        cov = member_lin.mean(axis=0)
        if count > 1:
            cov = cov + np.einsum("m...a,m...c->...ac", spread, spread) / (count - 1) * variance_scale
        return members, cov

    # ------------------------------------------------------------------ JAX
    @property
    def masses_movable(self) -> bool:
        """Whether the mass bins may be changed at call time (:meth:`jax_fn`): the emulator's
        radii are the same physical radii for every mass (not r/R_Δ)."""
        return _scaled_radius(self.emulator) is None and bool(np.all(self.radius_mpc == self.radius_mpc[:1]))

    def jax_fn(self, *, omega_m_param: str | None = None, h_param: str | None = None, h: float | None = None,
               predict_fn: Callable[..., Any] | None = None) -> Callable[..., tuple[Any, Any, Any]]:
        """A pure JAX function ``f(params [p], log10_mass=None, weights=None) -> (cap_1h [n_ap],
        cap_2h [n_ap], cov [n_ap, n_ap])``.

        ``params`` are physical values in the emulator's column order; ``log10_mass`` [B] and
        ``weights`` [B] replace the mass bins (only when :attr:`masses_movable`); ``cap_2h``
        is the two-halo CAP at amplitude 1 (zeros without a table); ``cov`` the linearised
        emulator covariance. With ``omega_m_param`` and/or ``h_param`` (parameter names, see
        :func:`cosmology_params`), D_A(z; Ω_m, h) and radii in units of R_Δ (or of a length over
        h) follow those parameters' values in ``params`` (traced, differentiable); Ω_m without a
        parameter stays the forward model's, h the forward model's or ``h``. Without either the
        forward matrix is fixed. ``geometry`` (:meth:`geometry_arrays`, arrays that may be traced)
        replaces all of that: the geometry of a cosmology held fixed, without its cost per call.
        jit-, grad- and vmap-able.
        """
        import jax.numpy as jnp

        fn = self.emulator.predict_fn if predict_fn is None else predict_fn
        masses = jnp.asarray(self.log10_mass, jnp.float32)
        z = None if self.emulator_redshift is None else jnp.full(masses.shape, self.emulator_redshift,
                                                                 jnp.float32)
        pk = None if self.pk_ratio is None else jnp.asarray(self.pk_ratio, jnp.float32)
        fi = self.field_index
        fixed_a = jnp.asarray(self.scaled_matrix, jnp.float32)
        two = None if self.two_halo_grid is None else jnp.asarray(self.two_halo_grid, jnp.float32)
        names = list(self.emulator.param_names)
        for what, name in (("omega_m_param", omega_m_param), ("h_param", h_param)):
            if name is not None and name not in names:
                raise ConfigError(f"{what}: {name!r} is not an emulator parameter ({names}).")
        j_om = None if omega_m_param is None else names.index(omega_m_param)
        j_h = None if h_param is None else names.index(h_param)
        h_fixed = self.forward.h if h is None else float(h)
        follow = j_om is not None or j_h is not None
        moves = follow and self.radii_follow_cosmology

        def cap_fn(params: Any, log10_mass: Any = None, weights: Any = None,
                   geometry: tuple[Any, Any, Any] | None = None) -> tuple[Any, Any, Any]:
            m = masses if log10_mass is None else jnp.asarray(log10_mass, jnp.float32)
            rows = jnp.broadcast_to(jnp.asarray(params, jnp.float32), (m.shape[0], params.shape[-1]))
            mean, var = fn(rows, m, pk, z)
            if geometry is not None:  # (A, E, keep) of a cosmology held fixed (geometry_arrays)
                a, extension = geometry[0], (geometry[1], geometry[2])
            else:
                om = self.forward.omega_m if j_om is None else params[j_om]
                hh = h_fixed if j_h is None else params[j_h]
                a = self.scaled_matrix_for(om, hh, jnp).astype(jnp.float32) if follow else fixed_a
                extension = None
                if moves:  # R_Δ(M, z) (or a length over h) follows Ω_m, h: the radii move on the grid
                    radius = jnp.asarray(self.radius_mpc) * self.radius_scale(om, hh, jnp)
                    extension = _extension(radius, self.forward.radius_grid_mpc, self.continuation,
                                           self.truncation_radius_mpc, jnp)
            cap, cov = self._cap_and_jacobian(mean[:, fi, :], var[:, fi, :], a, jnp, weights, extension)
            cap2 = jnp.zeros_like(cap) if two is None else a @ two
            return cap, cap2, cov

        return cap_fn


def _notes(emulator: Any, field: str, to_cgs: float, forward: ForwardModel, frame: str, z_emu: float | None,
           continuation: str, two_halo_h: float, has_two: bool, pk: np.ndarray | None) -> tuple[str, ...]:
    units = emulator.metadata.get("units", {}) if isinstance(emulator.metadata, Mapping) else {}
    what = "gas density [g/cm^3]" if forward.kind == "ksz" else "thermal gas pressure [erg/cm^3] (electron share applied by the forward model)"
    signal = (f"v_rms = {forward.v_rms_kms:g} km/s" if forward.kind == "ksz"
              else f"band: {forward.angular.response_note}")
    om_name, h_name = cosmology_params(emulator.param_names)
    om_text = (f"Omega_m = each point's parameter {om_name!r}" if om_name
               else f"Omega_m = {forward.omega_m:g} (not an emulator parameter)")
    h_text = f"h = each point's parameter {h_name!r}" if h_name else f"h = {forward.h:g} (not an emulator parameter)"
    if _scaled_radius(emulator) is not None:
        radii = (f"radii: emulator r/{emulator.radius_unit} times {emulator.radius_unit}(M) at z = {forward.redshift:g}, "
                 f"{om_text}, {h_text}")
    elif _per_h(emulator):
        radii = f"radii: emulator {emulator.radius_unit} read as {frame}, converted to physical Mpc with {h_text}"
    else:
        radii = f"radii: emulator {emulator.radius_unit} read as {frame}, converted to physical Mpc"
    lines: list[str] = [
        f"{forward.kind}: emulator field {field!r} in {units.get(field, '?')} x {to_cgs:.6g} -> {what}",
        radii,
        f"continuation beyond the emulator's last radius: {continuation}",
        f"forward model: z = {forward.redshift:g}, D_A with {om_text}, {h_text}, {signal}, "
        f"l_max = {forward.l_max_mpc:g} Mpc",
    ]
    if forward.angular.beam_note:
        lines.append(forward.angular.beam_note)
    z_box = emulator.training_box.get("redshift")
    z_train = f" {z_box[0]:g}" if z_box is not None else ""
    lines.append("emulator redshift: " + (f"{z_emu:g} (an input)" if z_emu is not None else
                                          f"its training redshift{z_train} (not an input), used at "
                                          f"z = {forward.redshift:g}"))
    if pk is not None:
        lines.append(f"P(k) suppression: {pk.size} values from {pk.min():.4g} to {pk.max():.4g}")
    if has_two:
        lines.append(f"two-halo table radii divided by h = {two_halo_h:g}")
    return tuple(lines)


def mass_report(model: PopulationModel) -> list[dict[str, float]]:
    """Per mass bin: centre, weight, dex outside the training range (JSON-safe)."""
    return [{"log10_mass": float(m), "weight": float(w), "outside_dex": float(d)}
            for m, w, d in zip(model.log10_mass, model.weights, model.mass_outside_dex, strict=True)]
