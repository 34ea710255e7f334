"""Cobaya components: a ``Theory`` serving profemu predictions by parameter name, and a likelihood.

Needs Cobaya (``pip install "profemu[cobaya]"``)::

    from cobaya.run import run
    from profemu.inference.cobaya_theory import ProfemuProfileLikelihood, ProfemuTheory

    info = {
        "theory": {"profemu": {"external": ProfemuTheory, "emulator": "runs/mock/emulator",
                               "fixed": {"A_SN2": 1.0, "A_AGN2": 1.0}}},
        "likelihood": {"profiles": {"external": ProfemuProfileLikelihood, "observed": "obs.csv",
                                    "log10_mass": 13.5, "fields": ["rho", "pth"]}},
        "params": {"Omega_m": {"prior": {"min": 0.1, "max": 0.5}}, ...},
        "sampler": {"mcmc": {"max_samples": 5000}},
    }
    updated_info, sampler = run(info)

:class:`ProfemuTheory` takes every emulator parameter that is not in ``fixed`` as an
input parameter (linear values, as in the training data) and provides
``get_profile(field)`` and ``get_profile_variance(field)``: the log10 mean and
predictive variance [B, n_r] at the mass bins a likelihood requests
(``{"profile": {"log10_mass": [...]}}``), plus ``get_radius()``. Points outside the
training box are rejected (the theory returns failure, i.e. zero likelihood).
:class:`ProfemuProfileLikelihood` is the Gaussian likelihood of
:mod:`profemu.inference.likelihood` (observation errors or covariance plus the
emulator's diagonal predictive variance) for an observation in the CSV format of
``profemu infer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from profemu.errors import DataError, ProfemuError

try:
    from cobaya.likelihood import Likelihood
    from cobaya.theory import Theory
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ProfemuError(
        "profemu.inference.cobaya_theory needs Cobaya, which is not installed; install the extra with "
        "pip install 'profemu[cobaya]'."
    ) from None

__all__ = ["ProfemuProfileLikelihood", "ProfemuTheory"]


class ProfemuTheory(Theory):
    """Serves a profemu Emulator's predictions to Cobaya.

    Options:
        emulator: Folder of a saved Emulator (or a run folder holding ``emulator/``), or an
            :class:`~profemu.emulator.Emulator` instance.
        fixed: Name -> physical value of emulator parameters held fixed (not sampled).
        redshift: Redshift, when the emulator takes one.
        pk_ratio: P(k) suppression [n_k], when the emulator takes one.
    """

    emulator: Any = None
    fixed: Mapping[str, float] | None = None
    redshift: float | None = None
    pk_ratio: Any = None

    def initialize(self) -> None:
        """Load the emulator and compile its prediction."""
        import jax

        from profemu.emulator import Emulator

        emu = self.emulator
        if not isinstance(emu, Emulator):
            from pathlib import Path

            if emu is None:
                raise DataError("ProfemuTheory: option 'emulator' is missing; give the emulator folder.")
            folder = Path(emu)
            emu = Emulator.load(folder / "emulator" if (folder / "emulator" / "manifest.json").is_file() else folder)
        self._emu = emu
        fixed = dict(self.fixed or {})
        unknown = [n for n in fixed if n not in emu.param_names]
        if unknown:
            raise DataError(f"ProfemuTheory fixed: unknown parameter(s) {unknown}; the emulator's are {list(emu.param_names)}.")
        self._fixed = {n: float(v) for n, v in fixed.items()}
        self._names = tuple(emu.param_names)
        box = emu.training_box
        self._lo = np.array([box[n][0] for n in self._names], dtype=float)
        self._hi = np.array([box[n][1] for n in self._names], dtype=float)
        self._predict = jax.jit(emu.predict_fn)
        self._mass = np.zeros(0)
        self._fields = tuple(emu.field_names)

    def get_can_support_params(self) -> list[str]:
        """The emulator parameters that are not fixed (Cobaya input parameters)."""
        return [n for n in self._names if n not in self._fixed]

    def must_provide(self, **requirements: Any) -> None:
        """Record the mass bins a likelihood asks for with ``{"profile": {"log10_mass": [...]}}``."""
        super().must_provide(**requirements)
        for name in ("profile", "profile_variance"):
            if name in requirements:
                opts = requirements[name] or {}
                if "log10_mass" not in opts:
                    raise DataError(f"ProfemuTheory: requirement {name!r} needs the option 'log10_mass'.")
                self._mass = np.atleast_1d(np.asarray(opts["log10_mass"], dtype=float))
        return None

    def calculate(self, state: dict[str, Any], want_derived: bool = True, **params_values_dict: Any) -> bool:
        """Predict every field at the requested mass bins; False outside the training box."""
        values = np.array([params_values_dict[n] if n not in self._fixed else self._fixed[n] for n in self._names],
                          dtype=float)
        tol = 1e-9 * (1 + np.abs(self._hi - self._lo))
        if not np.all((values >= self._lo - tol) & (values <= self._hi + tol)):
            return False
        n = max(self._mass.size, 1)
        mass = self._mass if self._mass.size else np.array([float(np.mean(self._emu.training_box["log10_mass"]))])
        pk = None if self.pk_ratio is None else np.broadcast_to(np.asarray(self.pk_ratio, float),
                                                                  (n, np.size(self.pk_ratio)))
        z = None
        if "redshift" in self._emu.training_box:
            z = np.full(n, float(self.redshift if self.redshift is not None else self._emu.training_box["redshift"][0]))
        mean, var = self._predict(np.repeat(values[None], n, axis=0), mass, pk, z)
        mean, var = np.asarray(mean, dtype=float), np.asarray(var, dtype=float)
        state["profile"] = {f: mean[:, j] for j, f in enumerate(self._fields)}
        state["profile_variance"] = {f: var[:, j] for j, f in enumerate(self._fields)}
        return True

    def get_profile(self, field: str) -> np.ndarray:
        """log10 mean profile of ``field`` [B, n_r] at the current parameters."""
        return self.current_state["profile"][field]

    def get_profile_variance(self, field: str) -> np.ndarray:
        """Predictive variance of log10 ``field`` [B, n_r] (dex²)."""
        return self.current_state["profile_variance"][field]

    def get_radius(self) -> np.ndarray:
        """The emulator's radial grid [n_r]."""
        return np.asarray(self._emu.radius)


class ProfemuProfileLikelihood(Likelihood):
    """Gaussian likelihood of observed profiles (CSV of ``profemu infer``) given ProfemuTheory.

    Options:
        observed: Path of the observation CSV (radius, <field>, <field>_err).
        log10_mass: log10(M/Msun) of the bin (unless the CSV has a log10_mass column).
        fields: Fields to fit (default: rho and pth where present).
        covariance: Optional path of a .npy covariance of the log10 values.
        model_variance: Add the emulator's predictive variance (default True).
    """

    observed: str | None = None
    log10_mass: float | None = None
    fields: Any = None
    covariance: str | None = None
    model_variance: bool = True

    def initialize(self) -> None:
        """Read the observation."""
        from profemu.inference.observations import read_observation

        if self.observed is None:
            raise DataError("ProfemuProfileLikelihood: option 'observed' (CSV path) is missing.")
        fields = self.fields or ["rho", "pth"]
        fields = [fields] if isinstance(fields, str) else list(fields)
        self._obs = read_observation(self.observed, fields=fields, log10_mass=self.log10_mass,
                                     covariance=self.covariance)
        self._weights: np.ndarray | None = None

    def get_requirements(self) -> dict[str, Any]:
        """The profile (and its variance) at the observation's mass bins."""
        masses = self._obs.log10_mass.tolist()
        req: dict[str, Any] = {"profile": {"log10_mass": masses}, "radius": None}
        if self.model_variance:
            req["profile_variance"] = {"log10_mass": masses}
        return req

    def logp(self, **params_values: Any) -> float:
        """Gaussian log likelihood of the observation."""
        from profemu.inference.likelihood import _interpolation_matrix

        obs = self._obs
        if self._weights is None:
            grid = np.asarray(self.provider.get_radius(), dtype=float)
            w, inside = _interpolation_matrix(grid, obs.radius)
            if not inside.all():
                raise DataError("ProfemuProfileLikelihood: observed radii outside the emulator grid; trim the file.")
            self._weights = w
        w = self._weights
        mean = np.stack([np.einsum("rn,bn->br", w, self.provider.get_profile(f)) for f in obs.fields], axis=1)
        d = obs.log10_profile.reshape(-1)
        cov = obs.covariance_matrix()
        if self.model_variance:
            var = np.stack([np.einsum("rn,bn->br", w, self.provider.get_profile_variance(f)) for f in obs.fields],
                           axis=1)
            cov = cov + np.diag(var.reshape(-1))
        r = d - mean.reshape(-1)
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, r)
        return float(-0.5 * z @ z - np.sum(np.log(np.diag(chol))) - 0.5 * r.size * np.log(2 * np.pi))
