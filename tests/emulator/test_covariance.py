"""profemu.emulator.covariance: the residual covariance estimate, its storage with the
emulator, its validation on load, and its use in the likelihood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from profemu.emulator.covariance import (
    ResidualCovariance,
    attach_residual_covariance,
    estimate_residual_covariance,
    residual_covariance,
)
from profemu.errors import DataError, FormatError
from profemu.inference import Observation, make_log_posterior
from tests.inference.helpers import FIELDS, numpy_model
from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def test_residual_covariance_recovers_known_structure() -> None:
    rng = np.random.default_rng(0)
    k, n_sims = 6, 4000
    a = rng.normal(size=(k, k)) * 0.03
    shared = a @ a.T
    b = rng.normal(size=(k, k)) * 0.02
    own = b @ b.T
    noise = 0.04  # noise variance 1.6e-3, well above the tolerance below
    s = rng.multivariate_normal(np.zeros(k), shared, size=n_sims)
    rows = np.repeat(s, 2, axis=0) + rng.multivariate_normal(np.zeros(k), own, size=2 * n_sims)
    rows += noise * rng.standard_normal(rows.shape)
    groups = np.repeat(np.arange(n_sims), 2)
    est = estimate_residual_covariance(rows.reshape(-1, 2, 3), groups, fields=("rho", "pth"),
                                       radius=np.array([0.1, 0.2, 0.4]),
                                       noise=np.full((2 * n_sims, 2, 3), noise))
    scale = np.abs(shared + own).max()
    np.testing.assert_allclose(est.row, shared + own, atol=0.06 * scale)
    np.testing.assert_allclose(est.shared, shared, atol=0.06 * scale)
    assert est.n_groups == n_sims and est.n_pairs == n_sims
    two = est.for_bins(2)
    np.testing.assert_allclose(two[:k, k:], est.shared, atol=1e-10)
    np.testing.assert_allclose(two[:k, :k], est.row, atol=1e-10)
    assert np.linalg.eigvalsh(two).min() >= -1e-12
    back = ResidualCovariance.from_dict(est.to_dict())
    np.testing.assert_array_equal(back.row, est.row)


def test_residual_covariance_is_stored_validated_and_used(run: TinyRun, tmp_path: Path) -> None:
    import copy

    from profemu.emulator import Emulator

    emu = Emulator.load(run.run_dir / "emulator")
    n_r = emu.radius.size
    k = len(FIELDS) * n_r
    rng = np.random.default_rng(1)
    a = rng.normal(size=(k, k)) * 0.02
    est = ResidualCovariance(fields=FIELDS, radius=emu.radius, row=a @ a.T + 1e-4 * np.eye(k),
                             shared=0.5 * a @ a.T, n_groups=10, n_rows=20, n_pairs=10)
    attach_residual_covariance(emu, est)
    emu.save(tmp_path / "emu")
    loaded = Emulator.load(tmp_path / "emu")
    np.testing.assert_allclose(residual_covariance(loaded).row, est.row)
    obs = Observation.from_dataset(run.dataset, [0, 1], FIELDS)
    post = make_log_posterior(loaded, obs)
    assert post.model_covariance == "residual"
    theta = post.space.center
    mean, _ = numpy_model(loaded, post.space.full_vector(theta), obs.log10_mass)
    cov = obs.covariance_matrix() + est.for_bins(2)
    expected = multivariate_normal(mean=mean, cov=cov).logpdf(obs.log10_profile.reshape(-1))
    assert float(post.log_likelihood(theta)) == pytest.approx(expected, rel=1e-4, abs=1e-3)
    for change in ({"row": [[float("nan")]]}, {"radius": [1.0, 2.0]}, {"shared": (np.triu(a) * 3).tolist()}):
        broken = copy.deepcopy(loaded)
        broken.metadata["residual_covariance"] = {**est.to_dict(), **change}
        with pytest.raises(FormatError, match="residual covariance"):
            residual_covariance(broken)
    with pytest.raises(DataError, match="carries no residual covariance"):
        make_log_posterior(run.emulator, obs, model_covariance="residual")


def test_fit_residual_covariance_is_the_trainings_own_cross_validation() -> None:
    """One K-fold fit step: fitting the covariance afterwards gives what a CV training stored."""
    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.training import train_emulator
    from profemu.train.cv import fit_residual_covariance

    ds = make_mock_universe(n=48, seed=5, param_set="lh6", with_pk=False, n_r=6).dataset
    cfg = Config().updated({"train.epochs": 2, "train.members": 2, "model.hidden": [8],
                            "data.input_relevance": "off", "train.cv_folds": 2, "data.split_seed": 3})
    stored = train_emulator(ds, cfg).emulator.residual_covariance
    fitted = fit_residual_covariance(ds, cfg, k=2, seed=3)
    assert stored is not None
    np.testing.assert_allclose(fitted.row, stored.row, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fitted.shared, stored.shared, rtol=1e-6, atol=1e-12)
    assert fitted.fields == stored.fields
