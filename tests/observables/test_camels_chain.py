"""The whole chain for a real CAMELS profile with the real ACT f150 beam and response, against
the independent route (quad + 2D FFT + real-space CAP): ≤ 1% at all 9 apertures."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.observables import ACTCMASSData, cap_from_profile
from tests.observables.reference import reference_cap


@pytest.mark.camels
@pytest.mark.parametrize("kind", ["ksz", "tsz"])
def test_camels_profile_against_independent_route(kind: str, camels_profile: dict[str, np.ndarray],
                                                  act_data: ACTCMASSData) -> None:
    profile = camels_profile["rho" if kind == "ksz" else "pth"]
    resp = ({"response_ell": act_data.response.ell, "response": act_data.response.values}
            if kind == "tsz" else {})
    common = {"kind": kind, "redshift": float(camels_profile["redshift"]),
              "apertures_arcmin": act_data.ksz.apertures_arcmin, "beam_ell": act_data.beam.ell,
              "beam_bl": act_data.beam.values, **resp}
    got = cap_from_profile(camels_profile["radius"], profile, **common)
    ref = reference_cap(camels_profile["radius"], profile, **common)
    rel = np.abs(got / ref - 1)
    print(f"{kind}: max relative difference {rel.max():.2e} at the 9 apertures: {np.round(rel, 5)}")
    assert rel.max() < 0.01
    assert np.all(got > 0) if kind == "ksz" else np.all(got < 0)
