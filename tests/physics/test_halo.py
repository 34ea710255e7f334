"""The enclosed-gas quadrature against scipy's adaptive integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from profemu.physics.halo import enclosed_fraction_weights


def _nfw(x: np.ndarray, c: float = 5.0) -> np.ndarray:
    return 1.0 / (c * x * (1.0 + c * x) ** 2)


def _cored(x: np.ndarray, xs: float = 0.15) -> np.ndarray:
    return (1.0 + (x / xs) ** 2) ** -1.5


@pytest.mark.parametrize("profile", [_nfw, _cored])
@pytest.mark.parametrize(("grid", "x_max", "rtol"), [
    (np.geomspace(0.02, 4.0, 16), 1.0, 2e-3),   # the mock universe's radii, out to R_Δ
    (np.geomspace(0.01, 3.0, 40), 1.0, 2e-4),
    (np.geomspace(0.02, 4.0, 16), 0.5, 3e-3),   # R_Δ / 2, between two grid points
])
def test_weights_integrate_three_x_squared_y_to_x_max(profile, grid: np.ndarray, x_max: float, rtol: float) -> None:
    reference = 3.0 * quad(lambda t: t * t * float(profile(np.array(t))), 0.0, x_max, points=[0.15, 0.2])[0]
    assert enclosed_fraction_weights(grid, x_max) @ profile(grid) == pytest.approx(reference, rel=rtol)


def test_a_uniform_sphere_holds_its_mean_density() -> None:
    x = np.geomspace(0.05, 2.0, 300)  # x³ varies fast in ln x: the trapezoid needs a fine grid here
    assert enclosed_fraction_weights(x).sum() == pytest.approx(1.0, rel=1e-3)  # 3 ∫_0^1 x² dx
    assert (enclosed_fraction_weights(x)[x > 1.0][1:] == 0).all()


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="increasing"):
        enclosed_fraction_weights(np.array([0.1, 0.1, 1.0]))
    with pytest.raises(ValueError, match="inside the innermost"):
        enclosed_fraction_weights(np.array([0.5, 1.0]), x_max=0.1)
