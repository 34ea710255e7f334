"""Fixtures of the observables tests: the ACT × CMASS directory (skips outside CI when absent,
fails in CI, like ``camels_path``), its parsed contents and a real CAMELS profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from profemu.observables import ACTCMASSData, load_act_cmass
from tests.conftest import SHARED_DATA, require_shared

ACT_DIR = SHARED_DATA / "act_cmass"


def _require(path: Path, what: str) -> Path:
    return require_shared(path, what)


@pytest.fixture(scope="session")
def act_dir() -> Path:
    """The ACT DR5 × CMASS data directory."""
    return _require(ACT_DIR, "ACT x CMASS data")


@pytest.fixture(scope="session")
def act_data(act_dir: Path) -> ACTCMASSData:
    return load_act_cmass(act_dir)


@pytest.fixture(scope="session")
def camels_profile(camels_path: Path) -> dict[str, np.ndarray]:
    """The most massive CAMELS LH-TNG row: radius [Mpc], ρ [g cm⁻³], P [erg cm⁻³], redshift."""
    with np.load(camels_path, allow_pickle=False) as d:
        i = int(np.argmax(d["log10_mass_mean"]))
        n = int(d["n_radii"][i])
        to_cgs = json.loads(str(d["meta_json"]))["to_cgs"]
        return {
            "radius": np.asarray(d["radius_mpc"][:n], dtype=float),
            "rho": np.asarray(d["rho_mean"][i, :n], dtype=float) * to_cgs["rho"],
            "pth": np.asarray(d["pth_mean"][i, :n], dtype=float) * to_cgs["pth"],
            "redshift": np.asarray(float(d["redshift"][i])),
        }
