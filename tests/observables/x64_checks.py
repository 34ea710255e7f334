"""Float64 JAX checks of the forward model, run by ``test_forward.py`` in a child process
started with ``JAX_ENABLE_X64=1``.

They run in their own process because JAX keeps the float32 device copies of numpy constants
it has already seen, so switching x64 on half-way through a test session (``jax.enable_x64``)
would mix float32 constants into a float64 computation. The test process itself never changes
the JAX configuration. Run by hand with::

    JAX_ENABLE_X64=1 JAX_PLATFORMS=cpu python -m tests.observables.x64_checks
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from profemu.observables import ForwardModel, cap_from_profile
from profemu.observables.projection import log_radial_grid, project, projection_matrix
from tests.observables.test_forward import CAMELS_RADII, KW, RESP, RESP_ELL, synthetic_profiles


def check(name: str, got: float, want: float, rel: float) -> list[str]:
    ok = abs(got - want) <= rel * abs(want)
    print(f"{name}: got {got:.12g}, want {want:.12g}, rel diff {abs(got / want - 1):.2e} (tol {rel:g})")
    return [] if ok else [name]


def main() -> int:
    assert jnp.ones(1).dtype == jnp.float64, "run with JAX_ENABLE_X64=1"
    failures: list[str] = []
    weights = np.linspace(1.0, 2.0, 9)

    # projection matrix: JAX equals numpy; d/dR against finite differences
    grid = log_radial_grid(1e-4, 20.0, 256)
    f = grid**-2.5 * np.exp(-grid)
    radii = np.geomspace(1e-3, 3.0, 30)
    w_np = projection_matrix(grid, radii, 10.0)
    w_jax = jax.jit(lambda r: projection_matrix(grid, r, 10.0, xp=jnp))(jnp.asarray(radii))
    diff = np.max(np.abs(np.asarray(w_jax) - w_np))
    failures += check("projection matrix jax vs numpy (1 + max diff / max)", 1.0 + diff / w_np.max(), 1.0,
                      1e-12)

    def sigma_total(scale: jax.Array) -> jax.Array:
        return jnp.sum(project(grid, jnp.asarray(f), scale * jnp.asarray(radii), 10.0, xp=jnp))

    def sigma_np(scale: float) -> float:
        return float(np.sum(project(grid, f, scale * radii, 10.0)))

    eps = 1e-6
    fd = (sigma_np(1.0 + eps) - sigma_np(1.0 - eps)) / (2 * eps)
    failures += check("d sum(Sigma) / d scale", float(jax.jit(jax.grad(sigma_total))(1.0)), fd, 1e-6)

    for kind in ("ksz", "tsz"):
        prof = synthetic_profiles()[kind]
        kw = dict(KW, response_ell=RESP_ELL, response=RESP) if kind == "tsz" else dict(KW)
        ref = cap_from_profile(CAMELS_RADII, prof, kind=kind, **kw)

        def total(p: jax.Array, omega_m: jax.Array, h: jax.Array, kind: str = kind,
                  kw: dict = kw) -> jax.Array:
            return jnp.asarray(weights) @ cap_from_profile(CAMELS_RADII, p, kind=kind, omega_m=omega_m,
                                                           h=h, **kw)

        out = jax.jit(lambda p, kind=kind, kw=kw: cap_from_profile(CAMELS_RADII, p, kind=kind, **kw))(
            jnp.asarray(prof))
        failures += check(f"{kind}: jit float64 vs numpy (max rel)",
                          1.0 + float(np.max(np.abs(np.asarray(out) / ref - 1))), 1.0, 1e-8)
        g_p, g_om, g_h = jax.jit(jax.grad(total, argnums=(0, 1, 2)))(jnp.asarray(prof), 0.3, 0.7)

        def total_np(p: np.ndarray, omega_m: float = 0.3, h: float = 0.7, kind: str = kind,
                     kw: dict = kw) -> float:
            return float(weights @ cap_from_profile(CAMELS_RADII, p, kind=kind, omega_m=omega_m, h=h, **kw))

        for j in (0, 7, 14):
            step = prof[j] * 1e-4
            up, down = prof.copy(), prof.copy()
            up[j] += step
            down[j] -= step
            fd = (total_np(up) - total_np(down)) / (2 * step)
            failures += check(f"{kind}: d CAP / d profile[{j}]", float(g_p[j]), fd, 1e-5)
        eps = 1e-5
        failures += check(f"{kind}: d CAP / d omega_m", float(g_om),
                          (total_np(prof, 0.3 + eps) - total_np(prof, 0.3 - eps)) / (2 * eps), 1e-5)
        failures += check(f"{kind}: d CAP / d h", float(g_h),
                          (total_np(prof, h=0.7 + eps) - total_np(prof, h=0.7 - eps)) / (2 * eps), 1e-5)
        model = ForwardModel.build(kind=kind, **kw)
        rebuilt = jax.jit(lambda om, h, model=model: model.matrix_for(om, h, xp=jnp))(0.3, model.h)
        failures += check(f"{kind}: jitted matrix rebuild vs numpy (max rel)",
                          1.0 + float(np.max(np.abs(np.asarray(rebuilt) - model.matrix))
                                      / np.max(np.abs(model.matrix))), 1.0, 1e-10)
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
