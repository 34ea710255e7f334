"""profemu.inference.cobaya_theory: the Cobaya theory and likelihood; a short real Cobaya MCMC on a mock
observation lands on the truth (``run``: the shared tiny run of ``conftest.py``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.reliability import TinyRun

pytest.importorskip("cobaya", reason="the Cobaya extra is not installed (pip install 'profemu[cobaya]')")


def test_theory_serves_predictions_by_parameter_name(run: TinyRun) -> None:
    from cobaya.model import get_model

    from profemu.inference.cobaya_theory import ProfemuProfileLikelihood, ProfemuTheory

    emu = run.emulator
    truth = {n: float(np.mean(emu.training_box[n])) for n in emu.param_names}
    fixed = {n: v for n, v in truth.items() if n not in ("Omega_m", "sigma_8")}
    path = _mock_csv(run, truth, run.run_dir.parent / "cobaya_obs_model.csv")
    model = get_model({
        "theory": {"profemu": {"external": ProfemuTheory, "emulator": str(run.run_dir), "fixed": fixed}},
        "likelihood": {"profiles": {"external": ProfemuProfileLikelihood, "observed": str(path),
                                    "log10_mass": 12.5}},
        "params": {n: {"prior": {"min": emu.training_box[n][0], "max": emu.training_box[n][1]}}
                   for n in ("Omega_m", "sigma_8")},
    })
    point = {"Omega_m": 0.31, "sigma_8": 0.83}
    logl = model.loglikes(point, as_dict=True)[0]["profiles"]
    theory = model.theory["profemu"]
    pred = emu.predict({**fixed, **point}, 12.5)
    np.testing.assert_allclose(theory.get_profile("rho")[0], np.atleast_2d(pred["rho"].mean)[0], rtol=1e-5, atol=1e-5)
    # the same Gaussian as profemu.inference with the predictive variance
    from profemu.inference import make_log_posterior, read_observation

    obs = read_observation(path, fields=["rho", "pth"], log10_mass=12.5)
    post = make_log_posterior(emu, obs, fix=fixed, model_covariance="predictive")
    theta = post.space.to_sampling(point)
    assert logl == pytest.approx(float(post.log_likelihood(theta)), rel=1e-4, abs=1e-3)
    # outside the training box the theory refuses to compute: the posterior is zero there
    assert theory.calculate({}, Omega_m=0.31, sigma_8=emu.training_box["sigma_8"][1] + 0.5) is False


def _mock_csv(run: TinyRun, values: dict[str, float], path: Path) -> Path:
    """The emulator's own prediction at ``values`` (noise-free), with 3% errors."""
    pred = run.emulator.predict(values, 12.5)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["radius", "rho", "rho_err", "pth", "pth_err"])
        rho_all, pth_all = (10 ** np.atleast_2d(pred[f].mean)[0] for f in ("rho", "pth"))
        for j, r in enumerate(run.emulator.radius):
            rho, pth = float(rho_all[j]), float(pth_all[j])
            writer.writerow([repr(float(r)), repr(rho), repr(0.03 * rho), repr(pth), repr(0.03 * pth)])
    return path


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Setting a value on a DataFrame:Warning")  # inside Cobaya's MCMC
def test_cobaya_mcmc_lands_near_the_truth(run: TinyRun) -> None:
    from cobaya.run import run as cobaya_run

    from profemu.inference.cobaya_theory import ProfemuProfileLikelihood, ProfemuTheory

    emu = run.emulator
    box = emu.training_box
    truth = {n: float(lo + 0.45 * (hi - lo)) for n, (lo, hi) in ((n, box[n]) for n in emu.param_names)}
    free = ("Omega_m", "sigma_8")
    path = _mock_csv(run, truth, run.run_dir.parent / "cobaya_obs.csv")
    info = {
        "theory": {"profemu": {"external": ProfemuTheory, "emulator": str(run.run_dir),
                               "fixed": {n: v for n, v in truth.items() if n not in free}}},
        "likelihood": {"profiles": {"external": ProfemuProfileLikelihood, "observed": str(path),
                                    "log10_mass": 12.5}},
        "params": {n: {"prior": {"min": box[n][0], "max": box[n][1]}, "ref": truth[n],
                       "proposal": 0.02 * (box[n][1] - box[n][0])} for n in free},
        "sampler": {"mcmc": {"max_samples": 400, "burn_in": 50, "learn_proposal": True, "seed": 3,
                             "Rminus1_stop": 0.01}},
        "debug": False,
    }
    _, sampler = cobaya_run(info)
    chain = sampler.products()["sample"]
    weights = np.asarray(chain["weight"], dtype=float)
    assert weights.sum() >= 300
    for n in free:
        x = np.asarray(chain[n], dtype=float)
        mean = np.average(x, weights=weights)
        std = np.sqrt(np.average((x - mean) ** 2, weights=weights))
        assert 0 < std < 0.5 * (box[n][1] - box[n][0])
        # noise-free data at the truth: the chain must centre on it (tolerance: 1.5 posterior std)
        assert abs(mean - truth[n]) < 1.5 * std, (n, mean, std, truth[n])
