"""Inference on projected observables: stacked CAP kSZ/tSZ profiles fitted with an emulator.

For one or more CAP measurements ``d_i`` [n_ap,i] (μK arcmin², e.g. ACT DR5 × CMASS f150) with
data covariances ``C_i``, each with a :class:`~profemu.observables.population.PopulationModel`
(emulator → mass-averaged 3D profile → forward model)::

    m_i(θ, a)  = CAP_1h,i(θ) + a_2h,i CAP_2h,i + a_T,i T_i
    C(θ)       = blockdiag(C_i + C_emu,i(θ))
    log L      = -1/2 r^T C^-1 r - 1/2 log det(2π C),   r = d - m

with θ the emulator's free parameters (feedback, and cosmology unless fixed; uniform box
priors from ``emulator.training_box``, log-uniform for log-sampled parameters), ``T_i`` an
additive template (e.g. the dust CAP for tSZ) with a free amplitude ``a_T,i`` and ``CAP_2h,i``
the two-halo term, with amplitude 1 or free. ``C_emu,i`` is the emulator's linearised
predictive covariance (:meth:`PopulationModel.jax_fn`). Measurements are taken as
independent of each other (block-diagonal covariance; ACT publishes kSZ and tSZ covariances
separately). With ``geometry="follow"`` (the default) the angular-diameter distance
D_A(z; Ω_m, h) of the forward model, and radii in units of R_Δ, follow the emulator's Ω_m and h
parameters (names in :data:`profemu.data.selfsimilar.ALIASES`), free or fixed; a cosmology that
is not a parameter is the spec's ``omega_m`` / ``h``.

:class:`CAPLogPosterior` has the interface of :class:`~profemu.inference.likelihood.LogPosterior`
that :func:`~profemu.inference.sampling.find_map`, :func:`~profemu.inference.sampling.sample_posterior`
and :func:`~profemu.inference.sampling.sample_posterior_batch` use, so the same MAP and NUTS run.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profemu.config import load_yaml
from profemu.errors import ConfigError, DataError
from profemu.inference.likelihood import ParameterSpace, parameter_space
from profemu.observables.act import (
    CAPMeasurement,
    is_cap_file,
    read_beam,
    read_cap_file,
    read_cap_measurement,
    read_dust_template,
    read_halo_mass_distribution,
    read_response,
    read_two_halo,
    single_mass,
)
from profemu.observables.forward import ForwardModel
from profemu.observables.population import PopulationModel, cosmology_params, mass_report
from profemu.physics.constants import DEFAULT_H

__all__ = [
    "CAPLogPosterior",
    "CAPTerm",
    "ObservationSpec",
    "build_terms",
    "cap_chi2",
    "describe_terms",
    "make_cap_posterior",
    "plot_cap_fit",
    "posterior_predictive",
    "read_observation_spec",
]

logger = logging.getLogger("profemu.inference")
_LOG_2PI = float(np.log(2.0 * np.pi))
DEFAULT_AMPLITUDE_PRIOR = (0.0, 5.0)
"""Uniform prior of a free template or two-halo amplitude (linear)."""
_LABEL = re.compile(r"[A-Za-z0-9_]+")
"""A measurement's label, appended to its amplitudes' names."""


@dataclass(frozen=True, eq=False)
class CAPTerm:
    """One CAP measurement and its model.

    Attributes:
        measurement: Values and data covariance [μK arcmin²] at the model's apertures.
        model: The emulator → CAP population model (same apertures).
        template: Additive template [μK arcmin²], shape [n_ap], with a free amplitude; or None.
        template_name: Its name (the amplitude is ``A_<template_name>_<kind>``).
        two_halo_free: Fit the amplitude of the two-halo term (``A_2h_<kind>``); else it is 1.
        emulator_covariance: Add the emulator's linearised covariance to the data's.
        label: Appended to the amplitudes' names (``A_2h_tsz_f090``), so that two measurements
            of one kind (e.g. two frequencies) have amplitudes of their own; empty by default.
    """

    measurement: CAPMeasurement
    model: PopulationModel
    template: np.ndarray | None = None
    template_name: str = "template"
    two_halo_free: bool = False
    emulator_covariance: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        ap_m, ap_d = self.model.apertures_arcmin, self.measurement.apertures_arcmin
        if ap_m.shape != ap_d.shape or not np.allclose(ap_m, ap_d, rtol=1e-6):
            raise DataError(f"apertures: the model's {ap_m.tolist()} differ from the measurement's "
                            f"{ap_d.tolist()}; build the forward model at the measured apertures.")
        if self.measurement.kind != self.model.kind:
            raise DataError(f"kind: the measurement is {self.measurement.kind!r} but the model "
                            f"{self.model.kind!r}; pair them correctly.")
        if self.template is not None and np.shape(self.template) != ap_d.shape:
            raise DataError(f"template: {np.shape(self.template)} values for {ap_d.size} apertures; give "
                            "one value per aperture.")
        if self.two_halo_free and self.model.two_halo_grid is None:
            raise DataError("two_halo_free: the model has no two-halo table; give one or fix the amplitude.")
        if self.label and not _LABEL.fullmatch(self.label):
            raise ConfigError(f"label: {self.label!r}; use letters, digits and '_' (e.g. f090).")

    @property
    def kind(self) -> str:
        """``"ksz"`` or ``"tsz"``."""
        return self.model.kind

    def nuisance_names(self) -> list[str]:
        """Names of this term's free amplitudes (template, then two-halo)."""
        tail = f"_{self.label}" if self.label else ""
        out = [f"A_{self.template_name}_{self.kind}{tail}"] if self.template is not None else []
        return out + ([f"A_2h_{self.kind}{tail}"] if self.two_halo_free else [])


@dataclass(frozen=True, eq=False)
class CAPLogPosterior:
    """Log posterior of the emulator's free parameters and the nuisance amplitudes (pure JAX).

    Same interface as :class:`~profemu.inference.likelihood.LogPosterior` for the samplers:
    ``theta`` [k] in sampling space (order :attr:`names`).

    Attributes:
        space: Parameters (emulator's, then nuisance amplitudes) and their prior box.
        terms: The CAP terms.
        data: Arrays the function closes over (measured values, data covariance, templates,
            prior box), float32; the batch sampler stacks these across synthetic data sets.
        structure: Hashable static structure (same structure = same compiled function).
        omega_m_param: The emulator parameter (free or fixed) that Ω_m of D_A and R_Δ follows
            (None: the forward models' own Ω_m).
        h_param: The emulator parameter (free or fixed) that h of D_A and R_Δ follows (None: the
            forward models' own h).
    """

    space: ParameterSpace
    terms: tuple[CAPTerm, ...]
    data: Mapping[str, np.ndarray]
    structure: tuple[Any, ...]
    omega_m_param: str | None
    h_param: str | None
    _core: Callable[..., Any] = field(repr=False)
    _model: Callable[..., Any] = field(repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        """Free parameter names (sampling order)."""
        return self.space.free

    @property
    def geometry(self) -> str:
        """Where Ω_m and h of D_A(z) and R_Δ come from, as one line of text."""
        f = self.terms[0].model.forward

        def source(name: str | None, own: float) -> str:
            if name is None:
                return f"{own:g} (fixed)"
            held = self.space.fixed.get(name)
            return f"parameter {name}" + ("" if held is None else f" (held at {held:g})")

        om, hh = source(self.omega_m_param, f.omega_m), source(self.h_param, f.h)
        return f"D_A and R_Delta with Omega_m = {om}, h = {hh}"

    @property
    def n_data(self) -> int:
        """Number of CAP values fitted."""
        return int(self.data["d"].size)

    @property
    def amplitude_nuisance(self) -> bool:
        """No analytic amplitude marginalisation here (amplitudes are sampled)."""
        return False

    def _jdata(self) -> dict[str, Any]:
        import jax.numpy as jnp

        return {k: jnp.asarray(v) for k, v in self.data.items()}

    @property
    def fn(self) -> Callable[[Any], Any]:
        """``theta [k] -> log posterior`` (pure JAX)."""
        data, core = self._jdata(), self._core
        return lambda theta: core(theta, data)[0]

    def __call__(self, theta: Any) -> Any:
        return self.fn(theta)

    def log_likelihood(self, theta: Any) -> Any:
        """Log likelihood alone (JAX)."""
        return self._core(theta, self._jdata())[1]

    def model(self, theta: Any) -> tuple[Any, Any]:
        """``(m [N], C [N, N])``: the model CAP values and the total covariance at ``theta`` (JAX,
        compiled once per structure)."""
        import jax

        cache = self._model.__dict__
        if "_profemu_jit" not in cache:
            cache["_profemu_jit"] = jax.jit(self._model)
        return cache["_profemu_jit"](theta, self._jdata())

    def with_values(self, values: Any, *, masses: Sequence[tuple[Any, Any] | None] | None = None,
                    fixed: Mapping[str, float] | None = None) -> CAPLogPosterior:
        """The same posterior for other measured values [N] (e.g. synthetic data), optionally other
        mass bins (per term ``(log10_mass [B], weights [B])``, same B; only for emulators of
        physical radii) and other values of the fixed parameters: shares the compiled functions,
        so :func:`~profemu.inference.sampling.sample_posterior_batch` can sample many at once."""
        v = np.asarray(values, dtype=float)
        if v.shape != self.data["d"].shape:
            raise DataError(f"values: shape {v.shape}, expected {self.data['d'].shape}.")
        data = {**self.data, "d": v.astype(np.float32)}
        space = self.space
        if fixed:
            unknown = [n for n in fixed if n not in space.fixed]
            if unknown:
                raise DataError(f"fixed: {unknown} are not fixed parameters ({list(space.fixed)}).")
            new_fixed = {**space.fixed, **{k: float(v) for k, v in fixed.items()}}
            names = self.space.names[:data["fixed"].size]
            data["fixed"] = np.array([new_fixed.get(n, 0.0) for n in names], np.float32)
            space = ParameterSpace(names=space.names, free=space.free, is_log=space.is_log, lower=space.lower,
                                   upper=space.upper, fixed=new_fixed)
            geo = (self.omega_m_param, self.h_param)
            if _held_geometry(space, *geo) and any(n in fixed for n in geo if n is not None):
                data.update(_geometry_data(self.terms, space, *geo))
        for i, (t, mw) in enumerate(zip(self.terms, masses or [None] * len(self.terms), strict=True)):
            if mw is None:
                continue
            m, w = (np.asarray(x, dtype=float) for x in mw)
            if m.shape != data[f"mass_{i}"].shape or w.shape != m.shape or not np.isclose(w.sum(), 1.0):
                raise DataError(f"masses[{i}]: need {data[f'mass_{i}'].size} masses and weights summing to 1.")
            if not t.model.masses_movable:
                raise DataError(f"masses[{i}]: the emulator's radii are r/R_Delta, fixed per mass bin at build "
                                "time; build another PopulationModel for other masses.")
            data[f"mass_{i}"], data[f"weight_{i}"] = m.astype(np.float32), w.astype(np.float32)
        return CAPLogPosterior(space=space, terms=self.terms, data=data, structure=self.structure,
                               omega_m_param=self.omega_m_param, h_param=self.h_param, _core=self._core,
                               _model=self._model)


def _nuisance_space(base: ParameterSpace, terms: Sequence[CAPTerm],
                    amplitude_bounds: Mapping[str, tuple[float, float]]) -> ParameterSpace:
    names = [n for t in terms for n in t.nuisance_names()]
    if len(set(names)) != len(names):
        raise DataError(f"terms: two measurements of the same kind would share the free amplitude(s) "
                        f"{sorted({n for n in names if names.count(n) > 1})}; give each measurement a label "
                        "(e.g. label: f090 and label: f150).")
    unknown = [n for n in amplitude_bounds if n not in names]
    if unknown:
        raise DataError(f"amplitude bounds: unknown amplitude(s) {unknown}; the free amplitudes are {names}.")
    lo, hi = [], []
    for n in names:
        a, b = (float(x) for x in amplitude_bounds.get(n, DEFAULT_AMPLITUDE_PRIOR))
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise DataError(f"amplitude bounds {n}=({a}, {b}): need finite lo < hi, e.g. [0, 5].")
        lo.append(a)
        hi.append(b)
    lower = np.concatenate([base.lower, lo]).astype(float)
    upper = np.concatenate([base.upper, hi]).astype(float)
    lower.setflags(write=False)
    upper.setflags(write=False)
    return ParameterSpace(names=base.names + tuple(names), free=base.free + tuple(names),
                          is_log=base.is_log + (False,) * len(names), lower=lower, upper=upper,
                          fixed=dict(base.fixed))


def make_cap_posterior(terms: Sequence[CAPTerm], *, fix: Mapping[str, float] | None = None,
                       bounds: Mapping[str, tuple[float, float]] | None = None,
                       amplitude_bounds: Mapping[str, tuple[float, float]] | None = None,
                       geometry: str = "follow") -> CAPLogPosterior:
    """Build the log posterior of CAP measurements.

    Args:
        terms: One :class:`CAPTerm` per measurement (same emulator in all).
        fix: Emulator parameter name → physical value held fixed (e.g. ``{"Omega_m": 0.3}``).
        bounds: Emulator parameter name → (lo, hi) physical prior range inside the box.
        amplitude_bounds: Amplitude name → (lo, hi) uniform prior (default (0, 5)).
        geometry: ``"follow"``: D_A(z; Ω_m, h) of the forward model (and radii in units of R_Δ)
            take Ω_m and h from the emulator's parameters of those names, free or fixed (so a
            value in ``fix`` or in :meth:`CAPLogPosterior.with_values` moves them too); a
            cosmology that is not a parameter stays the forward model's. ``"fixed"``: the
            forward models' own Ω_m, h.

    Returns:
        The :class:`CAPLogPosterior`.
    """
    terms = tuple(terms)
    if not terms:
        raise DataError("terms: give at least one CAP measurement.")
    emulator = terms[0].model.emulator
    if any(t.model.emulator is not emulator for t in terms):
        raise DataError("terms: every measurement must use the same emulator.")
    if geometry not in ("follow", "fixed"):
        raise ConfigError(f"geometry: {geometry!r}; choose 'follow' or 'fixed'.")
    base = parameter_space(emulator, fix=fix, bounds=bounds)
    space = _nuisance_space(base, terms, dict(amplitude_bounds or {}))
    om, hh = cosmology_params(emulator.param_names) if geometry == "follow" else (None, None)
    data = _posterior_data(terms, space)
    held = _held_geometry(space, om, hh)
    if held:  # Ω_m and h held fixed: the geometry is computed once (numpy), not at every call
        data.update(_geometry_data(terms, space, om, hh))
    core, model = _build_core(terms, space, base.dim, om, hh, held)
    structure = (id(core), space.free, tuple(d.shape for d in data.values()))
    return CAPLogPosterior(space=space, terms=terms, data=data, structure=structure, omega_m_param=om,
                           h_param=hh, _core=core, _model=model)


def _held_geometry(space: ParameterSpace, omega_m_param: str | None, h_param: str | None) -> bool:
    """Whether the geometry follows cosmology parameters of which none is free (so it is fixed
    at their values, and computed once)."""
    names = [n for n in (omega_m_param, h_param) if n is not None]
    return bool(names) and not any(n in space.free for n in names)


def _geometry_data(terms: Sequence[CAPTerm], space: ParameterSpace, omega_m_param: str | None,
                   h_param: str | None) -> dict[str, np.ndarray]:
    """Per term ``geo_a_i``, ``geo_e_i``, ``geo_k_i``: the forward matrix and the radii's extension
    (:meth:`~profemu.observables.population.PopulationModel.geometry_arrays`) at the fixed values
    of ``omega_m_param`` and ``h_param`` (the forward model's own Ω_m, h where there is none)."""
    out: dict[str, np.ndarray] = {}
    for i, t in enumerate(terms):
        f = t.model.forward
        om = f.omega_m if omega_m_param is None else float(space.fixed[omega_m_param])
        hh = f.h if h_param is None else float(space.fixed[h_param])
        a, e, k = t.model.geometry_arrays(om, hh)
        out.update({f"geo_a_{i}": a.astype(np.float32), f"geo_e_{i}": e.astype(np.float32),
                    f"geo_k_{i}": k.astype(np.float32)})
    return out


def _posterior_data(terms: Sequence[CAPTerm], space: ParameterSpace) -> dict[str, np.ndarray]:
    n = [t.measurement.values.size for t in terms]
    cov = np.zeros((sum(n), sum(n)))
    start = 0
    for t, k in zip(terms, n, strict=True):
        cov[start:start + k, start:start + k] = t.measurement.covariance
        start += k
    data = {"d": np.concatenate([t.measurement.values for t in terms]).astype(np.float32),
            "cov": cov.astype(np.float32),
            "lower": space.lower.astype(np.float32), "upper": space.upper.astype(np.float32),
            "fixed": np.array([float(space.fixed.get(n, 0.0)) for n in
                               space.names[:len(terms[0].model.emulator.param_names)]], np.float32)}
    for i, t in enumerate(terms):
        data[f"mass_{i}"] = t.model.log10_mass.astype(np.float32)
        data[f"weight_{i}"] = t.model.weights.astype(np.float32)
        if t.template is not None:
            data[f"template_{i}"] = np.asarray(t.template, np.float32)
    return data


def _build_core(terms: Sequence[CAPTerm], space: ParameterSpace, n_emu: int,
                omega_m_param: str | None, h_param: str | None,
                held: bool = False) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``core(theta, data) -> (log posterior, log likelihood)`` and ``model(theta, data) -> (m, C)``
    (``held``: the geometry is ``data``'s ``geo_*_i`` arrays, :func:`_geometry_data`)."""
    import jax.numpy as jnp
    from jax.scipy.linalg import block_diag, solve_triangular

    emulator = terms[0].model.emulator
    predict_fn = emulator.predict_fn
    fns = [t.model.jax_fn(omega_m_param=omega_m_param, h_param=h_param, predict_fn=predict_fn) for t in terms]
    names = space.names[:len(emulator.param_names)]
    free_idx = np.array([names.index(n) for n in space.free[:n_emu]], dtype=int)
    is_log = np.array(space.is_log, dtype=bool)
    slots = []
    for t in terms:
        own = t.nuisance_names()
        tmpl = space.free.index(own[0]) if t.template is not None else None
        two = space.free.index(own[-1]) if t.two_halo_free else None
        slots.append((tmpl, two, t.emulator_covariance))

    def model(theta: Any, data: Mapping[str, Any]) -> tuple[Any, Any]:
        theta = jnp.asarray(theta, jnp.float32)
        phys = jnp.where(is_log, 10.0 ** jnp.where(is_log, theta, 0.0), theta)
        full = data["fixed"].at[free_idx].set(phys[:n_emu])
        means, covs = [], []
        for i, (fn, (tmpl, two, use_cov)) in enumerate(zip(fns, slots, strict=True)):
            geometry = (data[f"geo_a_{i}"], data[f"geo_e_{i}"], data[f"geo_k_{i}"]) if held else None
            cap1, cap2, c_emu = fn(full, data[f"mass_{i}"], data[f"weight_{i}"], geometry)
            m = cap1 + (phys[two] if two is not None else 1.0) * cap2
            if tmpl is not None:
                m = m + phys[tmpl] * data[f"template_{i}"]
            means.append(m)
            covs.append(c_emu if use_cov else jnp.zeros_like(c_emu))
        return jnp.concatenate(means), data["cov"] + block_diag(*covs)

    def loglike(theta: Any, data: Mapping[str, Any]) -> Any:
        m, cov = model(theta, data)
        chol = jnp.linalg.cholesky(cov)
        z = solve_triangular(chol, data["d"] - m, lower=True)
        return -0.5 * jnp.sum(z**2) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * m.shape[0] * _LOG_2PI

    def core(theta: Any, data: Mapping[str, Any]) -> tuple[Any, Any]:
        theta = jnp.asarray(theta)
        lo, hi = data["lower"], data["upper"]
        inside = jnp.all((theta >= lo) & (theta <= hi))
        ll = loglike(jnp.clip(theta, lo, hi), data)
        lp = jnp.where(inside, ll - jnp.sum(jnp.log(hi - lo)), -jnp.inf)
        return lp, jnp.where(inside, ll, -jnp.inf)

    return core, model


# ------------------------------------------------------------------ results
def cap_chi2(post: CAPLogPosterior, theta: Any) -> dict[str, float]:
    """χ² of the data at ``theta`` with the total covariance (data + emulator) and with the data
    covariance alone, the number of data points, the degrees of freedom (data − free
    parameters) and the p-value P(χ²_dof ≥ χ²) of the total-covariance χ²."""
    from scipy.stats import chi2 as chi2_dist

    m, cov = (np.asarray(a, dtype=float) for a in post.model(np.asarray(theta, np.float32)))
    r = np.asarray(post.data["d"], float) - m
    chi2_total = float(r @ np.linalg.solve(cov, r))
    chi2_data = float(r @ np.linalg.solve(np.asarray(post.data["cov"], float), r))
    dof = post.n_data - post.space.dim
    return {"chi2": chi2_total, "chi2_data_covariance_only": chi2_data, "n_data": post.n_data,
            "n_free": post.space.dim, "dof": dof,
            "p_value": float(chi2_dist.sf(chi2_total, dof)) if dof > 0 else float("nan"),
            "p_value_n_data": float(chi2_dist.sf(chi2_total, post.n_data))}


def posterior_predictive(post: CAPLogPosterior, theta_draws: Any, *, max_draws: int = 300,
                         seed: int = 0) -> np.ndarray:
    """Model CAP values [n_draws, N] at (up to ``max_draws``, randomly chosen) posterior draws [n, k]."""
    import jax
    import jax.numpy as jnp

    draws = np.asarray(theta_draws, dtype=float).reshape(-1, post.space.dim)
    if draws.shape[0] > max_draws:
        draws = draws[np.random.default_rng(seed).choice(draws.shape[0], max_draws, replace=False)]
    data = post._jdata()
    fn = jax.jit(jax.vmap(lambda t: post._model(t, data)[0]))
    return np.asarray(fn(jnp.asarray(draws, jnp.float32)), dtype=float)


def plot_cap_fit(post: CAPLogPosterior, predictive: np.ndarray, map_theta: Any, path: str | Path,
                 *, title: str = "") -> Path:
    """Figure (PNG, written atomically): each measurement [μK arcmin²] with √diag(C_data) error bars
    against the posterior predictive 68% and 95% bands and the MAP model, one panel per term."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from profemu._files import atomic_write

    m_map = np.asarray(post.model(np.asarray(map_theta, np.float32))[0], float)
    fig, axes = plt.subplots(1, len(post.terms), figsize=(5.0 * len(post.terms), 4.0), squeeze=False)
    start = 0
    for ax, t in zip(axes[0], post.terms, strict=True):
        n = t.measurement.values.size
        sl = slice(start, start + n)
        start += n
        x = t.measurement.apertures_arcmin
        q = np.quantile(predictive[:, sl], [0.025, 0.16, 0.84, 0.975], axis=0)
        ax.fill_between(x, q[0], q[3], color="C0", alpha=0.2, label="posterior predictive 95%")
        ax.fill_between(x, q[1], q[2], color="C0", alpha=0.4, label="68%")
        ax.plot(x, m_map[sl], "C0-", label="MAP")
        ax.errorbar(x, t.measurement.values, yerr=t.measurement.sigma, fmt="ko", ms=4, label="data")
        ax.set_xlabel("CAP disk radius θ_d [arcmin]")
        ax.set_ylabel(f"T_CAP {t.kind} [μK arcmin²]")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(Path(path), lambda fh: fh.write(buf.getvalue()))


# ------------------------------------------------------------------ the YAML spec
@dataclass(frozen=True)
class ObservationSpec:
    """A parsed observation spec (``profemu infer RUN --observation SPEC.yaml``).

    Attributes:
        terms: Per measurement, its parsed settings (paths resolved against the spec's folder).
        fix: Emulator parameters held fixed.
        bounds: Prior ranges of free emulator parameters.
        amplitude_bounds: Prior ranges of the free amplitudes.
        cosmology: ``h`` and ``omega_m`` (None unless the spec gives them; used when they are not
            emulator parameters), ``v_rms_kms``, ``l_max_mpc`` of the forward model.
        sampler: ``chains``, ``warmup``, ``draws``, ``seed``, ``max_tree_depth``.
        geometry: ``"follow"`` or ``"fixed"``.
        source: The spec file.
    """

    terms: tuple[Mapping[str, Any], ...]
    fix: Mapping[str, float]
    bounds: Mapping[str, tuple[float, float]]
    amplitude_bounds: Mapping[str, tuple[float, float]]
    cosmology: Mapping[str, float | None]
    sampler: Mapping[str, int]
    geometry: str
    source: Path
    pk_ratio: Path | None = None

    def input_files(self) -> dict[str, Path]:
        """Every file the spec names, ``{"<kind> <key>": path}`` (to refuse outputs over them)."""
        out: dict[str, Path] = {"observation spec": self.source}
        if self.pk_ratio is not None:
            out["pk_ratio"] = self.pk_ratio
        for t in self.terms:
            for key in _PATH_KEYS:
                if t.get(key) is not None:
                    out[f"{t['observable']} {key}"] = Path(t[key])
        return out


_PATH_KEYS = ("measured", "covariance", "beam", "response", "mass_distribution", "template", "two_halo")
_TERM_KEYS = {"observable", "units", "redshift", "two_halo_free", "two_halo_h", "template_name",
              "continuation", "truncation_radius_mpc", "emulator_covariance", "field", "frequency_ghz",
              "v_rms_kms", "label", "log10_mass", *_PATH_KEYS}
_TOP_KEYS = {"observations", "fix", "bounds", "amplitude_bounds", "h", "omega_m", "v_rms_kms", "l_max_mpc",
             "chains", "warmup", "draws", "seed", "max_tree_depth", "geometry", "pk_ratio"}


def _number(value: Any, what: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
            positive and value <= 0):
        raise ConfigError(f"{what}: {value!r} must be a finite{' positive' if positive else ''} number.")
    return float(value)


def _pairs(value: Any, what: str) -> dict[str, tuple[float, float]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what}: expected a mapping NAME: [lo, hi], got {value!r:.60}.")
    out = {}
    for k, v in value.items():
        if not (isinstance(v, list | tuple) and len(v) == 2):
            raise ConfigError(f"{what}.{k}: expected [lo, hi], got {v!r:.60}.")
        out[str(k)] = (_number(v[0], f"{what}.{k}"), _number(v[1], f"{what}.{k}"))
    return out


def _term(raw: Any, where: str, folder: Path) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of observation keys, got {raw!r:.60}.")
    unknown = sorted(set(raw) - _TERM_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(_TERM_KEYS)}.")
    kind = raw.get("observable")
    if kind not in ("ksz", "tsz"):
        raise ConfigError(f"{where}.observable: {kind!r}; choose ksz or tsz.")
    for key in ("measured", "beam", "redshift"):
        if raw.get(key) is None:
            raise ConfigError(f"{where}.{key}: missing; every observation needs measured, beam, redshift "
                              "and mass_distribution (or log10_mass).")
    if (raw.get("mass_distribution") is None) == (raw.get("log10_mass") is None):
        raise ConfigError(f"{where}: give exactly one of mass_distribution (a CSV of mass bins) and log10_mass "
                          "(one halo mass, log10(M/Msun), e.g. 13.4).")
    if raw.get("response") is not None and kind != "tsz":
        raise ConfigError(f"{where}.response: a band response applies to tsz only; remove it.")
    if raw.get("frequency_ghz") is not None and kind != "tsz":
        raise ConfigError(f"{where}.frequency_ghz: the band applies to tsz only (kSZ in thermodynamic muK is "
                          "the same at every frequency); remove it.")
    if kind == "tsz" and (raw.get("response") is None) == (raw.get("frequency_ghz") is None):
        raise ConfigError(f"{where}: tsz needs its band: give exactly one of response (the band response "
                          "file) and frequency_ghz (the band centre, e.g. 150; the tSZ signal changes with "
                          "frequency and flips sign above 217.5 GHz).")
    if raw.get("v_rms_kms") is not None and kind != "ksz":
        raise ConfigError(f"{where}.v_rms_kms: the rms velocity applies to ksz only; remove it.")
    if raw.get("label") is not None and not (isinstance(raw["label"], str) and _LABEL.fullmatch(raw["label"])):
        raise ConfigError(f"{where}.label: {raw['label']!r}; use letters, digits and '_' (e.g. f090).")
    term: dict[str, Any] = {k: v for k, v in raw.items() if k not in _PATH_KEYS}
    for key in _PATH_KEYS:
        if raw.get(key) is not None:
            if not isinstance(raw[key], str):
                raise ConfigError(f"{where}.{key}: expected a file path, got {raw[key]!r:.60}.")
            p = Path(raw[key])
            term[key] = p if p.is_absolute() else folder / p
    term["redshift"] = _number(raw["redshift"], f"{where}.redshift", positive=True)
    if raw.get("log10_mass") is not None:
        term["log10_mass"] = _number(raw["log10_mass"], f"{where}.log10_mass", positive=True)
        single_mass(term["log10_mass"], what=f"{where}.log10_mass")
    for key in ("frequency_ghz", "v_rms_kms"):
        if raw.get(key) is not None:
            term[key] = _number(raw[key], f"{where}.{key}", positive=True)
    return term


def read_observation_spec(path: str | Path) -> ObservationSpec:
    """Parse an observation spec (YAML, read with :func:`profemu.config.load_yaml`).

    One measurement: top-level keys ``observable`` (ksz|tsz), ``measured`` (a 3-column table
    theta_arcmin, value, error in ``units``, default muK_sr: whitespace-separated as ACT's, or
    comma-separated with a header line; or a ``profemu-cap`` file), ``covariance`` (with a
    3-column table: a text n x n table or a ``.npy`` array), ``beam``, for tSZ its band
    (``response``, a band response file, or ``frequency_ghz``, the band centre), ``redshift``,
    ``mass_distribution`` (CSV of mass bins) or ``log10_mass`` (one halo mass), ``template``
    (optional: CSV theta_arcmin,dust_muK_arcmin2, amplitude free), ``two_halo`` (optional
    table), ``two_halo_free`` (default false), ``two_halo_h`` (default 1), ``v_rms_kms`` (kSZ;
    default the shared one), ``label`` (appended to the names of its free amplitudes). Several:
    a list under ``observations``. Shared keys: ``fix: {Omega_m: 0.3}``, ``bounds``,
    ``amplitude_bounds`` (default [0, 5]), ``h`` (default 0.6711) and ``omega_m`` (default 0.3),
    only when they are not emulator parameters (else each point's value is used, free or fixed),
    ``pk_ratio`` (a file of the P(k) suppression, for an emulator that takes P(k); default the
    training set's centre), ``v_rms_kms`` (313), ``l_max_mpc`` (10), ``geometry``
    (follow|fixed), ``chains`` (4), ``warmup`` (500), ``draws`` (500), ``seed`` (0),
    ``max_tree_depth`` (10). Paths are relative to the spec. Unknown keys are named in the error.
    """
    source = Path(path)
    raw = load_yaml(source, what="observation spec")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"observation spec {str(source)!r}: expected a mapping of keys, got {type(raw).__name__}.")
    folder = source.parent
    several = "observations" in raw
    unknown = sorted(str(k) for k in set(raw) - _TOP_KEYS - (set() if several else _TERM_KEYS))
    if unknown:
        valid = sorted(_TOP_KEYS) if several else sorted(_TOP_KEYS | _TERM_KEYS)
        raise ConfigError(f"observation spec {str(source)!r}: unknown key(s) {unknown}; valid keys are {valid}"
                          + ("; measurement keys go inside each item of 'observations'." if several else "."))
    if several:
        items = raw["observations"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"observation spec {str(source)!r}: 'observations' must be a non-empty list.")
        terms = tuple(_term(t, f"observations[{i}]", folder) for i, t in enumerate(items))
    else:
        terms = (_term({k: v for k, v in raw.items() if k in _TERM_KEYS}, "observation", folder),)
    fix_raw = raw.get("fix") or {}
    if not isinstance(fix_raw, Mapping):
        raise ConfigError(f"fix: expected a mapping NAME: value, got {fix_raw!r:.60}.")
    fix = {str(k): _number(v, f"fix.{k}") for k, v in fix_raw.items()}
    cosmology = {"h": None if raw.get("h") is None else _number(raw["h"], "h", positive=True),
                 "omega_m": None if raw.get("omega_m") is None else _number(raw["omega_m"], "omega_m", positive=True),
                 "v_rms_kms": _number(raw.get("v_rms_kms", 313.0), "v_rms_kms", positive=True),
                 "l_max_mpc": _number(raw.get("l_max_mpc", 10.0), "l_max_mpc", positive=True)}
    sampler = {}
    for key, default, low in (("chains", 4, 1), ("warmup", 500, 10), ("draws", 500, 10), ("seed", 0, 0),
                              ("max_tree_depth", 10, 1)):
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{key}: {v!r} must be an integer >= {low}.")
        sampler[key] = v
    geometry = raw.get("geometry", "follow")
    if geometry not in ("follow", "fixed"):
        raise ConfigError(f"geometry: {geometry!r}; choose follow or fixed.")
    pk_path = raw.get("pk_ratio")
    if pk_path is not None:
        if not isinstance(pk_path, str):
            raise ConfigError(f"pk_ratio: expected a file path (one value per k bin), got {pk_path!r:.60}.")
        pk_path = Path(pk_path) if Path(pk_path).is_absolute() else folder / pk_path
    return ObservationSpec(terms=terms, fix=fix, bounds=_pairs(raw.get("bounds"), "bounds"),
                           amplitude_bounds=_pairs(raw.get("amplitude_bounds"), "amplitude_bounds"),
                           cosmology=cosmology, sampler=sampler, geometry=str(geometry), source=source,
                           pk_ratio=pk_path)


def _measurement(t: Mapping[str, Any]) -> CAPMeasurement:
    if t.get("covariance") is not None and is_cap_file(t["measured"]):
        raise ConfigError(f"covariance: {str(t['measured'])!r} is a profemu-cap file, which carries its own "
                          "covariance (and units); drop covariance (and units) for it.")
    if t.get("covariance") is None:
        meas = read_cap_file(t["measured"])
        if meas.kind != t["observable"]:
            raise DataError(f"measured: {str(t['measured'])!r} is a {meas.kind} file but observable is "
                            f"{t['observable']!r}.")
        _check_redshift(meas, t)
        return meas
    return read_cap_measurement(t["measured"], t["covariance"], kind=t["observable"],
                                units=str(t.get("units", "muK_sr")))


def _check_redshift(meas: CAPMeasurement, t: Mapping[str, Any]) -> None:
    """A measurement file that states its redshift must agree with the spec's."""
    stated = meas.metadata.get("redshift")
    if stated is None:
        return
    try:
        z = float(stated)
    except (TypeError, ValueError):
        raise DataError(f"measured: {str(t['measured'])!r} has '# redshift: {stated}', not a number.") from None
    if abs(z - t["redshift"]) > 1e-3 * (1.0 + z):
        raise DataError(f"redshift: the spec says {t['redshift']:g} but {str(t['measured'])!r} states "
                        f"'# redshift: {z:g}'; make them agree (the forward model's D_A and the emulator's "
                        "redshift follow the spec).")


def build_terms(emulator: Any, spec: ObservationSpec, *, pk_ratio: Any = None) -> list[CAPTerm]:
    """The :class:`CAPTerm` of every measurement of ``spec`` (reads the files).

    The forward models are built at the emulator's fixed Ω_m and h when they are fixed
    parameters, else (free parameters: a reference, followed by the posterior with
    ``geometry="follow"``) 0.3 and 0.6711; a cosmology that is not a parameter is the spec's
    ``omega_m`` (0.3) / ``h`` (0.6711).

    Args:
        emulator: The Emulator.
        spec: The parsed spec.
        pk_ratio: P(k) suppression [n_k] (or a path to one) for an emulator that takes P(k);
            default the spec's ``pk_ratio`` file, else the training set's centre (logged).

    Raises:
        ConfigError: the spec gives ``h`` or ``omega_m`` for an emulator that has that parameter
            (each point's value is used), or ``pk_ratio`` for one without P(k).
    """
    om_name, h_name = cosmology_params(emulator.param_names)
    for key, name in (("omega_m", om_name), ("h", h_name)):
        if name is not None and spec.cosmology.get(key) is not None:
            raise ConfigError(f"{key}: {spec.cosmology[key]:g} in {str(spec.source)!r}, but the emulator has the "
                              f"parameter {name!r}, whose value (free, or fixed with fix: {{{name}: ...}}) is used "
                              f"for D_A and R_Delta; drop {key} from the spec.")
    omega_m = spec.fix.get(om_name, 0.3) if om_name else (spec.cosmology.get("omega_m") or 0.3)
    h = spec.fix.get(h_name, DEFAULT_H) if h_name else (spec.cosmology.get("h") or DEFAULT_H)
    pk = _spec_pk_ratio(emulator, spec, pk_ratio)
    out = []
    for t in spec.terms:
        meas = _measurement(t)
        beam = read_beam(t["beam"])
        resp = read_response(t["response"]) if t.get("response") is not None else None
        forward = ForwardModel.build(
            kind=t["observable"], redshift=t["redshift"], apertures_arcmin=meas.apertures_arcmin,
            beam_ell=beam.ell, beam_bl=beam.values, response_ell=None if resp is None else resp.ell,
            response=None if resp is None else resp.values, omega_m=float(omega_m), h=float(h),
            v_rms_kms=t.get("v_rms_kms", spec.cosmology["v_rms_kms"]), l_max_mpc=spec.cosmology["l_max_mpc"],
            frequency_ghz=t.get("frequency_ghz"))
        two = read_two_halo(t["two_halo"]) if t.get("two_halo") is not None else None
        masses = (single_mass(t["log10_mass"]) if t.get("log10_mass") is not None
                  else read_halo_mass_distribution(t["mass_distribution"]))
        model = PopulationModel.build(
            emulator, forward, masses, field=t.get("field"),
            two_halo=two, two_halo_h=_number(t.get("two_halo_h", 1.0), "two_halo_h", positive=True),
            continuation=str(t.get("continuation", "powerlaw")),
            truncation_radius_mpc=t.get("truncation_radius_mpc"), pk_ratio=pk)
        template, name = None, str(t.get("template_name", "dust"))
        if t.get("template") is not None:
            dust = read_dust_template(t["template"])
            if dust.apertures_arcmin.shape != meas.apertures_arcmin.shape or not np.allclose(
                    dust.apertures_arcmin, meas.apertures_arcmin):
                raise DataError(f"template: apertures {dust.apertures_arcmin.tolist()} differ from the "
                                f"measurement's {meas.apertures_arcmin.tolist()}.")
            template = dust.values
        out.append(CAPTerm(measurement=meas, model=model, template=template, template_name=name,
                           two_halo_free=bool(t.get("two_halo_free", False)),
                           emulator_covariance=bool(t.get("emulator_covariance", True)),
                           label=str(t.get("label", ""))))
    return out


def _spec_pk_ratio(emulator: Any, spec: ObservationSpec, pk_ratio: Any) -> np.ndarray | None:
    """``pk_ratio`` (an array or a path), else the spec's ``pk_ratio`` file, read for the emulator's
    k bins; None when neither is given (the model then takes the training centre)."""
    value = spec.pk_ratio if pk_ratio is None else pk_ratio
    if value is None:
        return None
    n_k = int(getattr(emulator.input_spec, "n_k", 0) or 0)
    if not n_k:
        raise ConfigError(f"pk_ratio: {str(value)!r:.80}: this emulator was trained without P(k); drop it.")
    if isinstance(value, str | Path):
        from profemu.emulator.tables import read_pk_ratio

        return read_pk_ratio(Path(value), n_k, option="pk_ratio")
    return np.asarray(value, dtype=float)


def describe_terms(post: CAPLogPosterior) -> list[dict[str, Any]]:
    """JSON-safe description of every term: kind, apertures, assumptions and mass extrapolation."""
    return [{"observable": t.kind, "apertures_arcmin": t.measurement.apertures_arcmin.tolist(),
             "metadata": dict(t.measurement.metadata), "geometry": post.geometry,
             "assumptions": list(t.model.notes),
             "mass_bins": mass_report(t.model), "template": t.template_name if t.template is not None else None,
             "two_halo": ("free" if t.two_halo_free else "amplitude 1") if t.model.two_halo_grid is not None
             else "none", "emulator_covariance": t.emulator_covariance} for t in post.terms]
