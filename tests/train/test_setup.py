"""``prepare``: what it refuses before anything is fitted."""

from __future__ import annotations

import pytest

from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.errors import ConfigError
from profemu.train.setup import prepare


@pytest.mark.parametrize("key", ["mass_scaling_slopes", "boundary_slopes"])
def test_declared_slopes_must_name_fields_of_the_data(key: str) -> None:
    ds = make_mock_universe(n=24, seed=0, param_set="lh6", n_r=6, with_pk=False).dataset.select_fields(["rho", "pth"])
    with pytest.raises(ConfigError, match=rf"loss\.physics\.{key}: \['rhoo'\] are not fields of the data"):
        prepare(ds, Config().updated({f"loss.physics.{key}": {"rhoo": 1.0}}))
    # a field of the data that this run does not fit is not a mistake
    prepared = prepare(ds, Config().updated({f"loss.physics.{key}": {"pth": 1.0}, "data.fields": ["rho"]}))
    assert prepared.dataset.fields == ("rho",)


def test_data_without_parameters_are_refused_by_name() -> None:
    import numpy as np

    from profemu.data.dataset import ProfileDataset
    from profemu.errors import DataError

    ds = make_mock_universe(n=24, seed=0, param_set="lh6", n_r=6, with_pk=False).dataset.select_fields(["rho"])
    bare = ProfileDataset(params=np.zeros((ds.n, 0)), param_names=(), log10_mass=ds.log10_mass, radius=ds.radius,
                          profiles=dict(ds.profiles), units=dict(ds.units), radius_unit=ds.radius_unit)
    with pytest.raises(DataError, match=r"params: the data have no parameter column"):
        prepare(bare, Config())
