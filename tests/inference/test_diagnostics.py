"""profemu.inference.diagnostics: split R-hat and bulk ESS against reference values."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.inference import ess_bulk, split_rhat


def test_rhat_and_ess_against_reference_values() -> None:
    from scipy.signal import lfilter

    rng = np.random.default_rng(0)
    iid = rng.standard_normal((4, 2000))
    assert split_rhat(iid) < 1.01
    assert ess_bulk(iid) == pytest.approx(8000, rel=0.1)
    for rho in (0.5, 0.9):  # AR(1): ESS = N (1 - rho) / (1 + rho)
        chains = lfilter([1.0], [1.0, -rho], rng.standard_normal((4, 50_000)), axis=1)
        assert ess_bulk(chains) == pytest.approx(chains.size * (1 - rho) / (1 + rho), rel=0.1)
    shifted = iid + np.array([0.0, 0.0, 0.0, 1.0])[:, None]
    assert split_rhat(shifted) > 1.05
    scaled = iid * np.array([1.0, 1.0, 1.0, 4.0])[:, None]  # same location, different spread: the tail R-hat
    assert split_rhat(scaled) > 1.05
