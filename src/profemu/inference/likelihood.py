"""Gaussian likelihood of observed log10 profiles given the emulator's parameters.

:func:`make_log_posterior` returns a :class:`LogPosterior`: a pure JAX function of the
*free* parameters in their sampling space (log10 for log-sampled parameters, linear
otherwise), ``jax.jit``- and ``jax.grad``-able, plus what is needed to map samples back
to physical values (:class:`ParameterSpace`).

For an observation ``d`` (log10 profiles of ``B`` mass bins x ``F`` fields x ``R``
radii, flattened in that order) and parameters ``theta``::

    m(theta)   = emulator mean of log10 profiles, interpolated onto the observed radii
                 (linear in log radius)
    C(theta)   = C_obs + C_model(theta)
    log L      = -1/2 r^T C^-1 r - 1/2 log det(2 pi C),   r = d - m(theta)

``C_obs`` is the observation's covariance (full, or diagonal from 1-sigma errors).
``C_model`` is chosen by ``model_covariance``:

* ``"predictive"``: the emulator's predictive variance, diagonal (bins independent);
* ``"residual"``: the cross-validated covariance between fields, radii and bins stored
  with the emulator (:mod:`profemu.emulator.covariance`; parameter independent);
* ``"none"``: the observation's covariance only;
* ``"auto"`` (default): ``"residual"`` when the emulator carries an estimate, else
  ``"predictive"``.

With ``amplitude_nuisance=True`` an overall amplitude ``A`` multiplies every observed
profile (``log10 A`` is added to all entries) and is marginalised analytically, with a
Gaussian prior of width ``amplitude_prior_dex`` or a flat prior (``None``). With
``w`` the indicator of the used entries, ``s = w^T C^-1 w`` and ``t = w^T C^-1 r``::

    flat:      log L_A = log L + t^2 / (2 s) + 1/2 log(2 pi) - 1/2 log s
    Gaussian:  log L_A = log L + t^2 / (2 (s + 1/sigma^2)) - 1/2 log(1 + sigma^2 s)

Priors: uniform on the emulator's training box in sampling space (log-uniform in the
physical value for log-sampled parameters), optionally narrowed per parameter
(``bounds``) and multiplied by independent Gaussians in sampling space
(``gaussian_prior``). Fixed parameters (``fix``) are held at their physical value.
Outside the box the log posterior is ``-inf`` (the likelihood is evaluated at the
clipped point so gradients stay finite).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from profemu.emulator.covariance import ResidualCovariance, _clip_psd, residual_covariance
from profemu.errors import DataError
from profemu.inference.observations import Observation

__all__ = [
    "LogPosterior",
    "ModelCovariance",
    "ParameterSpace",
    "make_log_posterior",
    "parameter_space",
]

logger = logging.getLogger("profemu.inference")

ModelCovariance = Literal["auto", "predictive", "residual", "none"]
_LOG_2PI = float(np.log(2.0 * np.pi))


# ------------------------------------------------------------------ parameters
@dataclass(frozen=True, eq=False)
class ParameterSpace:
    """Free and fixed parameters and their sampling space.

    Attributes:
        names: Every emulator parameter, in the emulator's column order.
        free: Names of the free parameters (column order), length ``k``.
        is_log: Per free parameter, whether its sampling coordinate is log10 of the value.
        lower: [k] lower prior bound in sampling space.
        upper: [k] upper prior bound in sampling space.
        fixed: Name -> physical value of every fixed parameter.
    """

    names: tuple[str, ...]
    free: tuple[str, ...]
    is_log: tuple[bool, ...]
    lower: np.ndarray
    upper: np.ndarray
    fixed: Mapping[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Number of free parameters."""
        return len(self.free)

    @property
    def prior_std(self) -> np.ndarray:
        """[k] standard deviation of the uniform box prior in sampling space, (hi - lo)/sqrt(12)."""
        return (self.upper - self.lower) / np.sqrt(12.0)

    @property
    def center(self) -> np.ndarray:
        """[k] centre of the box in sampling space."""
        return 0.5 * (self.lower + self.upper)

    def to_physical(self, theta: Any, xp: Any = np) -> Any:
        """Sampling coordinates [..., k] -> physical values of the free parameters [..., k]."""
        theta = xp.asarray(theta)
        is_log = xp.asarray(np.array(self.is_log, dtype=bool))
        return xp.where(is_log, 10.0 ** xp.where(is_log, theta, 0.0), theta)

    def to_sampling(self, values: Any) -> np.ndarray:
        """Physical values of the free parameters ([..., k] or {name: value}) -> sampling coordinates.

        Raises:
            DataError: a missing name, or a log-sampled value <= 0.
        """
        if isinstance(values, Mapping):
            missing = [n for n in self.free if n not in values]
            if missing:
                raise DataError(f"values: missing free parameter(s) {missing}.")
            values = np.array([float(values[n]) for n in self.free])
        v = np.asarray(values, dtype=float)
        if v.shape[-1:] != (self.dim,):
            raise DataError(f"values: expected {self.dim} free parameters ({list(self.free)}), got shape {v.shape}.")
        is_log = np.array(self.is_log, dtype=bool)
        if np.any(v[..., is_log] <= 0):
            raise DataError("values: log-sampled parameters must be > 0.")
        return np.where(is_log, np.log10(np.where(is_log, v, 1.0)), v)

    def full_vector(self, theta: Any, xp: Any = np) -> Any:
        """Sampling coordinates [k] -> every emulator parameter [p] (physical, column order)."""
        phys = self.to_physical(theta, xp)
        base = np.array([float(self.fixed.get(n, 0.0)) for n in self.names])
        idx = np.array([self.names.index(n) for n in self.free], dtype=int)
        if xp is np:
            out = np.array(base, dtype=float)
            out[idx] = phys
            return out
        return xp.asarray(base, dtype=phys.dtype).at[idx].set(phys)

    def inside(self, theta: Any) -> bool:
        """Whether ``theta`` [k] lies in the prior box."""
        t = np.asarray(theta, dtype=float)
        return bool(np.all(t >= self.lower) and np.all(t <= self.upper))


def parameter_space(
    emulator: Any,
    *,
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> ParameterSpace:
    """The free parameters of ``emulator`` and their prior box in sampling space.

    Args:
        emulator: The Emulator (uses ``param_names``, ``log_params``, ``training_box``).
        fix: Name -> physical value of parameters held fixed; each must lie in the
            training box.
        bounds: Name -> (lo, hi) physical prior range of a free parameter, inside the
            training box (default: the training box).

    Raises:
        DataError: unknown names (the message lists the valid ones), values outside the
            training box, empty ranges, or nothing left free.
    """
    names = tuple(emulator.param_names)
    log_params = set(emulator.log_params)
    box = emulator.training_box
    fix = dict(fix or {})
    bounds = dict(bounds or {})
    for what, given in (("fix", fix), ("bounds", bounds)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise DataError(f"{what}: unknown parameter name(s) {unknown}; the emulator's parameters are {list(names)}.")
    fixed: dict[str, float] = {}
    for name, value in fix.items():
        lo, hi = box[name]
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DataError(f"fix {name}={value!r}: not a number.") from None
        tol = 1e-9 * (1.0 + abs(hi - lo))
        if not (np.isfinite(v) and lo - tol <= v <= hi + tol):
            raise DataError(
                f"fix {name}={v:g}: outside the training range [{lo:.4g}, {hi:.4g}]; the emulator "
                "cannot predict there. Pass a value inside the range."
            )
        fixed[name] = v
    free = tuple(n for n in names if n not in fixed)
    if not free:
        raise DataError("fix: every parameter is fixed; leave at least one free.")
    both = [n for n in bounds if n in fixed]
    if both:
        raise DataError(f"bounds: {both} are fixed; give a prior range only for free parameters.")
    lower, upper, is_log = [], [], []
    for name in free:
        lo, hi = box[name]
        if name in bounds:
            b_lo, b_hi = (float(x) for x in bounds[name])
            tol = 1e-9 * (1.0 + abs(hi - lo))
            if not (lo - tol <= b_lo < b_hi <= hi + tol):
                raise DataError(
                    f"bounds {name}=({b_lo:g}, {b_hi:g}): must satisfy {lo:.4g} <= lo < hi <= {hi:.4g} "
                    "(inside the training range)."
                )
            lo, hi = max(b_lo, lo), min(b_hi, hi)
        log = name in log_params
        if log:
            lo, hi = np.log10(lo), np.log10(hi)
        lower.append(lo)
        upper.append(hi)
        is_log.append(log)
    lower_a, upper_a = np.array(lower, dtype=float), np.array(upper, dtype=float)
    if np.any(upper_a <= lower_a):
        j = int(np.argmax(upper_a <= lower_a))
        raise DataError(f"{free[j]}: the training range is empty; it cannot be a free parameter (fix it).")
    lower_a.setflags(write=False)
    upper_a.setflags(write=False)
    return ParameterSpace(names=names, free=free, is_log=tuple(is_log), lower=lower_a, upper=upper_a, fixed=fixed)


# ------------------------------------------------------------------ observation on the grid
def _interpolation_matrix(grid: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of linear interpolation in log radius from ``grid`` onto ``radius``.

    Returns:
        ``(W [R_in, n_r], inside [R] bool)``; radii outside the grid are not interpolated.
    """
    lg, lr = np.log(grid), np.log(radius)
    tol = 1e-9 * (lg[-1] - lg[0] + 1.0)
    inside = (lr >= lg[0] - tol) & (lr <= lg[-1] + tol)
    rows = []
    for x in np.clip(lr[inside], lg[0], lg[-1]):
        j = int(np.clip(np.searchsorted(lg, x, side="right") - 1, 0, lg.size - 2))
        t = (x - lg[j]) / (lg[j + 1] - lg[j])
        w = np.zeros(grid.size)
        if t < 1e-9:
            w[j] = 1.0
        elif t > 1 - 1e-9:
            w[j + 1] = 1.0
        else:
            w[j], w[j + 1] = 1.0 - t, t
        rows.append(w)
    return np.array(rows).reshape(-1, grid.size), inside


@dataclass(frozen=True, eq=False)
class LogPosterior:
    """A log posterior of the free parameters in sampling space (pure JAX).

    Call it (or :attr:`fn`) with ``theta`` [k] (sampling coordinates, order
    ``space.free``); it returns a scalar: the normalised Gaussian log likelihood plus
    the log prior (the box normalised, ``-inf`` outside it; Gaussian prior factors
    unnormalised). Jit- and grad-able.

    Attributes:
        space: The :class:`ParameterSpace` (names, box, fixed values, log flags).
        observation: The observation, after dropping radii outside the emulator grid.
        model_covariance: The model-covariance mode in use.
        amplitude_nuisance: Whether an overall amplitude is marginalised.
        data: The arrays the function closes over (a pytree of numpy arrays; the batch
            sampler stacks these across observations of the same shape).
        structure: Hashable description of the static structure (same structure = the
            same compiled function).
    """

    space: ParameterSpace
    observation: Observation
    model_covariance: str
    amplitude_nuisance: bool
    data: Mapping[str, np.ndarray]
    structure: tuple[Any, ...]
    _core: Callable[..., Any] = field(repr=False)
    _model: Callable[..., Any] = field(repr=False)
    _rebuild: Callable[[Observation], LogPosterior] = field(repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the free parameters."""
        return self.space.free

    @property
    def fn(self) -> Callable[[Any], Any]:
        """``theta [k] -> log posterior`` (pure JAX; closes over :attr:`data`)."""
        import jax.numpy as jnp

        data = {k: jnp.asarray(v) for k, v in self.data.items()}
        core = self._core
        return lambda theta: core(theta, data)[0]

    def __call__(self, theta: Any) -> Any:
        return self.fn(theta)

    def log_likelihood(self, theta: Any) -> Any:
        """Log likelihood alone (no prior), JAX."""
        import jax.numpy as jnp

        data = {k: jnp.asarray(v) for k, v in self.data.items()}
        return self._core(theta, data)[1]

    def model(self, theta: Any) -> tuple[Any, Any]:
        """``(m [D], C [D, D])``: the predicted data vector and total covariance at ``theta``.

        Entries outside the observation's mask are 0 in ``m`` and decoupled unit-variance
        rows/columns in ``C``. JAX.
        """
        import jax.numpy as jnp

        data = {k: jnp.asarray(v) for k, v in self.data.items()}
        return self._model(theta, data)

    def with_observation(self, observation: Observation) -> LogPosterior:
        """The same emulator, priors and options for another observation."""
        return self._rebuild(observation)


def _resolve_redshift(emulator: Any, observation: Observation) -> float | None:
    box = emulator.training_box
    if "redshift" not in box:
        return None
    lo, hi = box["redshift"]
    if observation.redshift is not None:
        return float(observation.redshift)
    if hi - lo <= 1e-12 * (1 + abs(lo)):
        return float(lo)
    raise DataError(f"redshift: the emulator takes a redshift (trained on {lo:g}..{hi:g}); give the observation's.")


def _resolve_pk(emulator: Any, observation: Observation, n_bins: int) -> np.ndarray | None:
    k = getattr(emulator.transforms, "k", None)
    if k is None:
        if observation.pk_ratio is not None:
            raise DataError("pk_ratio: the emulator was trained without P(k); do not give one.")
        return None
    if observation.pk_ratio is None:
        raise DataError(f"pk_ratio: this emulator needs the P(k) suppression on {len(k)} k bins; give it with the observation.")
    pk = np.atleast_2d(np.asarray(observation.pk_ratio, dtype=float))
    if pk.shape[0] == 1:
        pk = np.repeat(pk, n_bins, axis=0)
    if pk.shape != (n_bins, len(k)):
        raise DataError(f"pk_ratio: shape {pk.shape}, expected ({n_bins}, {len(k)}).")
    return pk


def _restrict_to_grid(emulator: Any, obs: Observation) -> tuple[Observation, np.ndarray]:
    """Drop observed radii outside the emulator grid (logged); returns (obs, W)."""
    unit_e, unit_o = str(emulator.radius_unit or ""), str(obs.radius_unit or "")
    if unit_e and unit_o and unit_e != unit_o:
        raise DataError(f"radius: the observation is in {unit_o!r} but the emulator's radii are in {unit_e!r}; convert the radii.")
    grid = np.asarray(emulator.radius, dtype=float)
    w, inside = _interpolation_matrix(grid, obs.radius)
    if not inside.any():
        raise DataError(
            f"radius: the observed radii {obs.radius.min():.4g}..{obs.radius.max():.4g} {unit_e} do not "
            f"overlap the emulator's grid {grid.min():.4g}..{grid.max():.4g} {unit_e}; observe inside it "
            "(or check the radius unit)."
        )
    if not inside.all():
        out = obs.radius[~inside]
        logger.warning(
            "observation: %d of %d radii (%s) lie outside the emulator grid %.4g..%.4g %s and are not used",
            out.size, obs.radius.size, ", ".join(f"{r:.4g}" for r in out), grid.min(), grid.max(), unit_e,
        )
        keep = np.flatnonzero(inside)
        b, f, r = obs.shape
        cov = None
        if obs.covariance is not None:
            sel = (np.arange(b * f)[:, None] * r + keep[None, :]).reshape(-1)
            cov = obs.covariance[np.ix_(sel, sel)]
        obs = Observation(
            fields=obs.fields, radius=obs.radius[keep], log10_mass=obs.log10_mass,
            log10_profile=obs.log10_profile[..., keep],
            log10_err=None if obs.log10_err is None else obs.log10_err[..., keep],
            covariance=cov, mask=obs.mask[..., keep], radius_unit=obs.radius_unit,
            redshift=obs.redshift, pk_ratio=obs.pk_ratio,
        )
    return obs, w


def _model_block(estimate: ResidualCovariance, obs: Observation, w: np.ndarray, fields: tuple[str, ...]) -> np.ndarray:
    """The residual covariance of ``obs``'s bins mapped to its fields and radii [D, D]."""
    missing = [f for f in obs.fields if f not in estimate.fields]
    if missing:
        raise DataError(f"model_covariance='residual': the stored estimate has no fields {missing}; re-estimate it with them.")
    n_r = estimate.radius.size
    # P maps (estimate field, grid radius) -> (observed field, observed radius)
    p = np.zeros((len(obs.fields) * w.shape[0], len(estimate.fields) * n_r))
    for i, f in enumerate(obs.fields):
        j = estimate.fields.index(f)
        p[i * w.shape[0]:(i + 1) * w.shape[0], j * n_r:(j + 1) * n_r] = w
    b = obs.shape[0]
    row = p @ (estimate.row - estimate.shared) @ p.T
    shared = p @ estimate.shared @ p.T
    return _clip_psd(np.kron(np.eye(b), row) + np.kron(np.ones((b, b)), shared))


def make_log_posterior(
    emulator: Any,
    observation: Observation,
    *,
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    gaussian_prior: Mapping[str, tuple[float, float]] | None = None,
    amplitude_nuisance: bool = False,
    amplitude_prior_dex: float | None = None,
    model_covariance: ModelCovariance | ResidualCovariance = "auto",
    predict_fn: Callable[..., Any] | None = None,
) -> LogPosterior:
    """Build the log posterior of ``emulator``'s free parameters given ``observation``.

    Args:
        emulator: A trained :class:`~profemu.emulator.Emulator`.
        observation: The observed profiles (fields must be emulator fields; radii in the
            emulator's radius unit; radii outside its grid are dropped with a log line).
        fix: Name -> physical value of parameters held fixed.
        bounds: Name -> (lo, hi) physical prior range (inside the training box).
        gaussian_prior: Name -> (mean, std) of an extra Gaussian prior in sampling space
            (log10 of the value for log-sampled parameters).
        amplitude_nuisance: Marginalise analytically over an overall amplitude of the
            observed profiles (one log10 offset common to every entry).
        amplitude_prior_dex: Std of the Gaussian prior on that offset [dex]; None = flat.
        model_covariance: ``"auto"``, ``"predictive"``, ``"residual"``, ``"none"`` or a
            :class:`~profemu.emulator.covariance.ResidualCovariance` to use.
        predict_fn: The emulator's pure JAX prediction (default ``emulator.predict_fn``;
            pass it to reuse one compiled function for many observations).

    Returns:
        The :class:`LogPosterior`.

    Raises:
        DataError: unknown fields or names, no radial overlap, a missing residual
            covariance, invalid priors (the message names the input).
    """
    space = parameter_space(emulator, fix=fix, bounds=bounds)
    unknown = [f for f in observation.fields if f not in emulator.field_names]
    if unknown:
        raise DataError(f"observation fields {unknown} are not predicted by the emulator (fields {list(emulator.field_names)}).")
    obs, w = _restrict_to_grid(emulator, observation)
    n_bins = obs.shape[0]
    _warn_mass_outside_training(emulator, obs)
    z = _resolve_redshift(emulator, obs)
    pk = _resolve_pk(emulator, obs, n_bins)
    estimate, mode = _resolve_model_covariance(emulator, model_covariance)
    gaussian = dict(gaussian_prior or {})
    g_mean, g_prec = _gaussian_prior_arrays(space, gaussian)
    if amplitude_prior_dex is not None and not (np.isfinite(amplitude_prior_dex) and amplitude_prior_dex > 0):
        raise DataError(f"amplitude_prior_dex: {amplitude_prior_dex!r} must be > 0 (dex) or None for a flat prior.")

    full_obs = obs.covariance is not None
    data = _likelihood_data(obs, w, space, g_mean, g_prec, pk, z, mode, estimate)
    sigma_a = None if amplitude_prior_dex is None else float(amplitude_prior_dex)
    structure = (
        id(emulator), space.names, space.free, tuple(sorted(space.fixed.items())), obs.fields,
        obs.shape, mode, full_obs, bool(amplitude_nuisance), sigma_a, tuple(sorted(gaussian)),
        tuple(sorted((k, v.shape) for k, v in data.items())),
    )
    fn = predict_fn if predict_fn is not None else emulator.predict_fn
    field_idx = np.array([emulator.field_names.index(f) for f in obs.fields], dtype=int)
    core, model = _build_core(
        fn, space, field_idx, n_bins, mode, full_obs, bool(amplitude_nuisance), sigma_a,
    )

    def rebuild(other: Observation) -> LogPosterior:
        new = make_log_posterior(
            emulator, other, fix=fix, bounds=bounds, gaussian_prior=gaussian_prior,
            amplitude_nuisance=amplitude_nuisance, amplitude_prior_dex=amplitude_prior_dex,
            model_covariance=estimate if mode == "residual" and estimate is not None else mode,
            predict_fn=fn,
        )
        if new.structure == structure:  # same static structure: share the traced functions
            object.__setattr__(new, "_core", core)
            object.__setattr__(new, "_model", model)
        return new

    return LogPosterior(space=space, observation=obs, model_covariance=str(mode),
                        amplitude_nuisance=bool(amplitude_nuisance), data=data, structure=structure,
                        _core=core, _model=model, _rebuild=rebuild)


def _warn_mass_outside_training(emulator: Any, obs: Observation) -> None:
    """Log a warning when an observed mass bin, or the observation's redshift, lies outside the
    training range (an extrapolation)."""
    mbox = emulator.training_box["log10_mass"]
    outside = obs.log10_mass[(obs.log10_mass < mbox[0] - 1e-9) | (obs.log10_mass > mbox[1] + 1e-9)]
    if outside.size:
        logger.warning("observation: log10_mass %s outside the training range [%.4g, %.4g]; the prediction "
                       "there is an extrapolation", outside.tolist(), mbox[0], mbox[1])
    zbox = emulator.training_box.get("redshift")
    z = obs.redshift
    if zbox is not None and z is not None and emulator.input_spec.uses_redshift:
        zs = np.atleast_1d(np.asarray(z, dtype=float))
        off = zs[(zs < zbox[0] - 1e-9) | (zs > zbox[1] + 1e-9)]
        if off.size:
            logger.warning("observation: redshift %s outside the training range [%.4g, %.4g]; the prediction "
                           "there is an extrapolation", sorted(set(off.tolist())), zbox[0], zbox[1])


def _resolve_model_covariance(
    emulator: Any, model_covariance: ModelCovariance | ResidualCovariance
) -> tuple[ResidualCovariance | None, str]:
    """The residual covariance to use (or None) and the mode: ``"residual"``, ``"predictive"`` or ``"none"``."""
    estimate: ResidualCovariance | None = None
    mode = model_covariance
    if isinstance(model_covariance, ResidualCovariance):
        estimate, mode = model_covariance, "residual"
        from profemu.emulator.covariance import _check_matches

        _check_matches(emulator, estimate, DataError)
    elif model_covariance in ("auto", "residual"):
        estimate = residual_covariance(emulator)
        if estimate is None and model_covariance == "residual":
            raise DataError(
                "model_covariance='residual': the emulator carries no residual covariance; estimate one "
                "with profemu.train.cv.fit_residual_covariance and attach_residual_covariance, or use "
                "'predictive'."
            )
        mode = "residual" if estimate is not None else "predictive"
    elif model_covariance not in ("predictive", "none"):
        raise DataError(
            f"model_covariance: {model_covariance!r} is not allowed; choose 'auto', 'predictive', 'residual' or 'none'."
        )
    return estimate, str(mode)


def _gaussian_prior_arrays(
    space: ParameterSpace, gaussian: Mapping[str, tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per free parameter the mean and precision [k] of the extra Gaussian prior (precision 0: none)."""
    bad = [n for n in gaussian if n not in space.free]
    if bad:
        raise DataError(f"gaussian_prior: {bad} are not free parameters ({list(space.free)}).")
    g_mean = np.zeros(space.dim)
    g_prec = np.zeros(space.dim)
    for name, (mu, sd) in gaussian.items():
        if not (np.isfinite(mu) and np.isfinite(sd) and sd > 0):
            raise DataError(f"gaussian_prior {name}=({mu}, {sd}): need a finite mean and a std > 0.")
        j = space.free.index(name)
        g_mean[j], g_prec[j] = float(mu), 1.0 / float(sd) ** 2
    return g_mean, g_prec


def _likelihood_data(
    obs: Observation,
    w: np.ndarray,
    space: ParameterSpace,
    g_mean: np.ndarray,
    g_prec: np.ndarray,
    pk: np.ndarray | None,
    z: float | None,
    mode: str,
    estimate: ResidualCovariance | None,
) -> dict[str, np.ndarray]:
    """The float32 arrays the log posterior closes over (:attr:`LogPosterior.data`).

    With a parameter-independent covariance (``mode`` ``"residual"`` or ``"none"``) the
    Cholesky factor of the total covariance and its log determinant; otherwise the
    observation's covariance (full) or variances (diagonal).
    """
    mask = obs.mask.reshape(-1)
    d_vec = np.where(mask, np.nan_to_num(obs.log10_profile.reshape(-1)), 0.0)
    obs_cov = obs.covariance_matrix()
    obs_cov = np.where(np.outer(mask, mask), obs_cov, 0.0) + np.diag(~mask * 1.0)
    full_obs = obs.covariance is not None
    model_cov = None
    if mode == "residual":
        assert estimate is not None
        model_cov = _model_block(estimate, obs, w, obs.fields) * np.outer(mask, mask)
    constant_cov = mode in ("residual", "none")
    data: dict[str, np.ndarray] = {
        "d": d_vec.astype(np.float32),
        "w": mask.astype(np.float32),
        "mass": obs.log10_mass.astype(np.float32),
        "interp": w.astype(np.float32),
        "lower": space.lower.astype(np.float32),
        "upper": space.upper.astype(np.float32),
        "g_mean": g_mean.astype(np.float32),
        "g_prec": g_prec.astype(np.float32),
        "n_used": np.asarray(mask.sum(), dtype=np.float32),
    }
    if pk is not None:
        data["pk"] = pk.astype(np.float32)
    if z is not None:
        data["z"] = np.full(obs.shape[0], z, dtype=np.float32)
    if constant_cov:
        total = obs_cov + (model_cov if model_cov is not None else 0.0)
        chol = np.linalg.cholesky(total)
        data["chol"] = chol.astype(np.float32)
        data["logdet"] = np.asarray(2.0 * np.sum(np.log(np.diag(chol))), dtype=np.float32)
    elif full_obs:
        data["obs_cov"] = obs_cov.astype(np.float32)
    else:
        data["obs_var"] = np.diag(obs_cov).astype(np.float32)
    return data


def _build_core(
    predict_fn: Callable[..., Any],
    space: ParameterSpace,
    field_idx: np.ndarray,
    n_bins: int,
    mode: str,
    full_obs: bool,
    amplitude: bool,
    sigma_a: float | None,
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The pure functions ``core(theta, data) -> (log posterior, log likelihood)`` and ``model``."""
    import jax.numpy as jnp
    from jax.scipy.linalg import cho_solve, solve_triangular

    names = space.names
    free_idx = np.array([names.index(n) for n in space.free], dtype=int)
    base = np.array([float(space.fixed.get(n, 0.0)) for n in names])
    is_log = np.array(space.is_log, dtype=bool)
    fidx = np.asarray(field_idx)

    def predict(theta: Any, data: Mapping[str, Any]) -> tuple[Any, Any]:
        phys = jnp.where(is_log, 10.0 ** jnp.where(is_log, theta, 0.0), theta)
        full = jnp.asarray(base, dtype=phys.dtype).at[free_idx].set(phys)
        params = jnp.broadcast_to(full, (n_bins, full.shape[0]))
        mean, var = predict_fn(params, data["mass"], data.get("pk"), data.get("z"))
        mean = mean[:, fidx, :]  # [B, F, n_r]
        var = var[:, fidx, :]
        m = jnp.einsum("rn,bfn->bfr", data["interp"], mean).reshape(-1)
        v = jnp.einsum("rn,bfn->bfr", data["interp"], var).reshape(-1)
        return m * data["w"], v * data["w"]

    def model(theta: Any, data: Mapping[str, Any]) -> tuple[Any, Any]:
        m, v = predict(theta, data)
        if mode in ("residual", "none"):
            chol = data["chol"]
            cov = chol @ chol.T
        elif full_obs:
            cov = data["obs_cov"] + jnp.diag(v)
        else:
            cov = jnp.diag(data["obs_var"] + v)
        return m, cov

    def loglike(theta: Any, data: Mapping[str, Any]) -> Any:
        m, v = predict(theta, data)
        r = (data["d"] - m) * data["w"]
        w = data["w"]
        if mode in ("residual", "none") or full_obs:
            if mode in ("residual", "none"):
                chol, logdet = data["chol"], data["logdet"]
            else:
                chol = jnp.linalg.cholesky(data["obs_cov"] + jnp.diag(v))
                logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
            zr = solve_triangular(chol, r, lower=True)
            chi2 = jnp.sum(zr**2)
            if amplitude:
                cinv_w = cho_solve((chol, True), w)
                s = jnp.dot(w, cinv_w)
                t = jnp.dot(cinv_w, r)
        else:
            var = data["obs_var"] + v
            chi2 = jnp.sum(r**2 / var)
            logdet = jnp.sum(jnp.log(var))
            if amplitude:
                s = jnp.sum(w**2 / var)
                t = jnp.sum(w * r / var)
        ll = -0.5 * chi2 - 0.5 * logdet - 0.5 * data["n_used"] * _LOG_2PI
        if amplitude:
            if sigma_a is None:
                ll = ll + 0.5 * t**2 / s + 0.5 * _LOG_2PI - 0.5 * jnp.log(s)
            else:
                prec = 1.0 / sigma_a**2
                ll = ll + 0.5 * t**2 / (s + prec) - 0.5 * jnp.log1p(sigma_a**2 * s)
        return ll

    def core(theta: Any, data: Mapping[str, Any]) -> tuple[Any, Any]:
        theta = jnp.asarray(theta)
        lo, hi = data["lower"], data["upper"]
        inside = jnp.all((theta >= lo) & (theta <= hi))
        clipped = jnp.clip(theta, lo, hi)
        ll = loglike(clipped, data)
        log_prior = -jnp.sum(jnp.log(hi - lo)) - 0.5 * jnp.sum(data["g_prec"] * (theta - data["g_mean"]) ** 2)
        lp = jnp.where(inside, ll + log_prior, -jnp.inf)
        ll = jnp.where(inside, ll, -jnp.inf)
        return lp, ll

    return core, model
