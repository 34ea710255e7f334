"""Tests of profemu.models.ensemble.combine."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from profemu.errors import DataError
from profemu.models.ensemble import combine


def _loop_combine(means, variances):
    m = len(means)
    mean = sum(means[i] for i in range(m)) / m
    aleatoric = sum(variances[i] for i in range(m)) / m
    epistemic = sum((means[i] - mean) ** 2 for i in range(m)) / m
    return mean, aleatoric, epistemic


@pytest.mark.parametrize("xp", [np, jnp])
def test_combine_equals_a_loop_over_members(xp, rng):
    means = xp.asarray(rng.normal(size=(4, 3, 5)))
    variances = xp.asarray(rng.uniform(0.1, 2.0, size=(4, 3, 5)))
    pred = combine(means, variances)
    mean, aleatoric, epistemic = _loop_combine(np.asarray(means), np.asarray(variances))
    np.testing.assert_allclose(pred.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(pred.aleatoric, aleatoric, rtol=1e-6)
    np.testing.assert_allclose(pred.epistemic, epistemic, rtol=1e-5)
    np.testing.assert_allclose(pred.var, aleatoric + epistemic, rtol=1e-6)
    assert isinstance(pred.mean, type(means))


def test_combine_single_member_has_no_epistemic_part(rng):
    means, variances = rng.normal(size=(1, 2, 3)), rng.uniform(0.1, 1, size=(1, 2, 3))
    pred = combine(means, variances)
    np.testing.assert_array_equal(pred.epistemic, 0.0)
    np.testing.assert_array_equal(pred.var, variances[0])
    with pytest.raises(DataError, match="one shape"):
        combine(means, variances[:, :1])
