"""profemu.inference.observations: the Observation, its constructors and the CSV reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.errors import DataError
from profemu.inference import Observation, read_observation


def test_observation_from_profiles_converts_to_log10(rng: np.random.Generator) -> None:
    r = np.geomspace(0.1, 1.0, 5)
    rho, err = rng.uniform(1, 10, 5), rng.uniform(0.05, 0.5, 5)
    obs = Observation.from_profiles(r, {"rho": rho}, 13.0, {"rho": err})
    np.testing.assert_allclose(obs.log10_profile[0, 0], np.log10(rho))
    np.testing.assert_allclose(obs.log10_err[0, 0], err / (rho * np.log(10)))
    assert obs.shape == (1, 1, 5)


@pytest.mark.parametrize(("values", "errors", "match"), [
    ([1.0, -2.0, 3.0], [0.1, 0.1, 0.1], "rho: value -2.0"),
    ([1.0, 2.0, 3.0], [0.1, 0.0, 0.1], "rho_err: value 0.0"),
    ([1.0, 2.0], [0.1, 0.1], "rho: shape"),
])
def test_observation_refuses_bad_values(values: list[float], errors: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        Observation.from_profiles([0.1, 0.2, 0.3], {"rho": values}, 13.0, {"rho": errors})


def test_observation_refuses_bad_covariance() -> None:
    r, v = [0.1, 0.2], {"rho": [1.0, 2.0]}
    with pytest.raises(DataError, match="not positive definite"):
        Observation.from_profiles(r, v, 13.0, covariance=np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(DataError, match=r"shape \(3, 3\)"):
        Observation.from_profiles(r, v, 13.0, covariance=np.eye(3))
    with pytest.raises(DataError, match="not symmetric"):
        Observation.from_profiles(r, v, 13.0, covariance=np.array([[1.0, 0.5], [0.1, 1.0]]))


def test_read_observation_csv_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "obs.csv"
    path.write_text("radius,rho,rho_err,log10_mass\n0.2,4.0,0.4,13.0\n0.1,8.0,0.8,13.0\n"
                    "0.2,5.0,0.5,14.0\n0.1,9.0,0.9,14.0\n")
    obs = read_observation(path, fields=["rho"])
    np.testing.assert_allclose(obs.radius, [0.1, 0.2])  # sorted
    np.testing.assert_allclose(obs.log10_mass, [13.0, 14.0])
    np.testing.assert_allclose(obs.log10_profile[:, 0], np.log10([[8.0, 4.0], [9.0, 5.0]]))
    np.testing.assert_allclose(obs.log10_err[:, 0], 0.1 / np.log(10))
    bad = tmp_path / "bad.csv"
    bad.write_text("radius,rho\n0.1,1.0\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['rho_err'\]"):
        read_observation(bad, fields=["rho"], log10_mass=13.0)
    with pytest.raises(DataError, match="log10_mass: missing"):
        read_observation(bad, fields=["rho"], covariance=np.eye(1))


def test_two_bins_with_one_mass_are_named_as_such(tmp_path: Path) -> None:
    """Two bins that share a log10_mass merge into one bin listing each radius twice: the error says
    so, instead of blaming the order of the radii."""
    path = tmp_path / "twice.csv"
    path.write_text("radius,rho,rho_err,log10_mass\n0.1,8.0,0.8,16.5\n0.2,4.0,0.4,16.5\n"
                    "0.1,9.0,0.9,16.5\n0.2,5.0,0.5,16.5\n")
    with pytest.raises(DataError, match=r"the radius 0.1 appears 2 times in one mass bin \(rows with the same "
                                        r"log10_mass\); give each bin its own log10_mass"):
        read_observation(path, fields=["rho"])
