"""Reference models shared by the inference tests.

Two emulators are used: the shared tiny run (a real 2-member ensemble on the lh6 mock
universe, fixture ``run`` in ``conftest.py``), whose numpy ``predict`` path
(:func:`numpy_model`) is the independent reference of the JAX likelihood; and
:class:`LinearEmulator`, a linear-Gaussian stand-in with the same interface, whose
posterior is known in closed form (:func:`analytic`, the reference for NUTS, MAP and Fisher).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from profemu.inference import Observation

FIELDS = ("rho", "pth")


def numpy_model(emu: Any, params: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance [B*F*R] from the numpy prediction path (independent of predict_fn)."""
    pred = emu.predict(np.repeat(params[None], masses.size, axis=0), masses, on_extrapolation="ignore")
    mean = np.stack([np.atleast_2d(pred[f].mean) for f in FIELDS], axis=1)
    var = np.stack([np.atleast_2d(pred[f].var) for f in FIELDS], axis=1)
    return mean.reshape(-1), var.reshape(-1)


class LinearEmulator:
    """The Emulator interface of a linear model: mean = G s(theta) + offset, constant variance.

    ``s`` = sampling coordinates (log10 for ``c``); wide training box, so the posterior
    is an untruncated Gaussian with precision G^T C^-1 G.
    """

    param_names = ("a", "b", "c", "big")
    log_params = ("c",)
    field_names = ("rho", "pth")
    radius_unit = "Mpc"
    members = 1

    def __init__(self, seed: int = 0, var: float = 1e-3) -> None:
        rng = np.random.default_rng(seed)
        self.radius = np.geomspace(0.05, 1.0, 6)
        self.gain = rng.normal(size=(2, 6, 4)) * np.array([1.0, 1.0, 1.0, 1e-3])
        self.offset = rng.normal(size=(2, 6))
        self.var = var
        self.metadata: dict[str, Any] = {}
        self.transforms = SimpleNamespace(k=None)
        self.training_box = {"a": (-20.0, 20.0), "b": (-20.0, 20.0), "c": (1e-4, 1e4), "big": (0.0, 4000.0),
                             "log10_mass": (12.0, 15.0)}

    def coords(self, params: np.ndarray) -> np.ndarray:
        p = np.asarray(params, dtype=float)
        return np.stack([p[..., 0], p[..., 1], np.log10(p[..., 2]), p[..., 3]], axis=-1)

    def mean(self, params: np.ndarray) -> np.ndarray:
        return np.einsum("frk,...k->...fr", self.gain, self.coords(params)) + self.offset

    @property
    def predict_fn(self) -> Any:
        import jax.numpy as jnp

        gain, offset, var = jnp.asarray(self.gain), jnp.asarray(self.offset), self.var

        def f(params: Any, log10_mass: Any, pk_ratio: Any = None, redshift: Any = None) -> Any:
            p = jnp.atleast_2d(params)
            s = jnp.stack([p[:, 0], p[:, 1], jnp.log10(p[:, 2]), p[:, 3]], axis=-1)
            mean = jnp.einsum("frk,nk->nfr", gain, s) + offset + 0.0 * jnp.atleast_1d(log10_mass)[:, None, None]
            return mean, jnp.full_like(mean, var)

        return f


def linear_case(seed: int = 0, noise: float = 0.03) -> tuple[LinearEmulator, Observation, np.ndarray]:
    """A linear emulator, one noisy observation of it and the true parameters."""
    emu = LinearEmulator(seed)
    truth = np.array([0.5, -1.0, 3.0, 2000.0])
    rng = np.random.default_rng(seed + 100)
    d = emu.mean(truth) + rng.normal(size=(2, 6)) * np.sqrt(noise**2 + emu.var)
    obs = Observation(fields=FIELDS, radius=emu.radius, log10_mass=[13.0], log10_profile=d[None],
                      log10_err=np.full((1, 2, 6), noise), radius_unit="Mpc")
    return emu, obs, truth


def analytic(emu: LinearEmulator, obs: Observation, fixed_big: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of (a, b, log10 c) with ``big`` fixed."""
    g = emu.gain.reshape(12, 4)
    resid = obs.log10_profile.reshape(-1) - emu.offset.reshape(-1) - g[:, 3] * fixed_big
    cinv = np.diag(1.0 / (obs.log10_err.reshape(-1) ** 2 + emu.var))
    prec = g[:, :3].T @ cinv @ g[:, :3]
    cov = np.linalg.inv(prec)
    return cov @ g[:, :3].T @ cinv @ resid, cov
