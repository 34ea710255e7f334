"""From emulator to posterior: likelihoods, NUTS, MAP, Fisher matrices and model-error covariances.

The API is flat::

    from profemu import Emulator
    from profemu import inference as inf

    emu = Emulator.load("runs/mock/emulator")
    obs = inf.read_observation("obs.csv", fields=["rho", "pth"], log10_mass=13.5,
                               radius_unit=emu.radius_unit)
    post = inf.make_log_posterior(emu, obs, fix={"Omega_m": 0.3})      # pure JAX theta -> log p
    start = inf.find_map(post)                                           # quick fit
    samples = inf.sample_posterior(post, chains=4, warmup=1000, draws=1000)
    print(samples.summary())                                             # mean, std, quantiles, R-hat, ESS
    batch = inf.sample_posterior_batch([post, post.with_observation(obs2)])  # many of one shape, one program
    fisher = inf.fisher_matrix(post, start.theta)                        # Fisher matrix, errors

Importing this package does not import JAX; the functions do. NUTS needs BlackJAX
(``pip install "profemu[inference]"``), the Cobaya theory needs Cobaya
(``pip install "profemu[cobaya]"``, :mod:`profemu.inference.cobaya_theory`).
"""

from __future__ import annotations

from profemu.emulator.covariance import (
    ResidualCovariance,
    attach_residual_covariance,
    estimate_residual_covariance,
    residual_covariance,
)
from profemu.inference.diagnostics import ess_bulk, ess_tail, split_rhat
from profemu.inference.fisher import FisherResult, fisher_matrix
from profemu.inference.likelihood import (
    LogPosterior,
    ParameterSpace,
    make_log_posterior,
    parameter_space,
)
from profemu.inference.observables import (
    CAPLogPosterior,
    CAPTerm,
    ObservationSpec,
    build_terms,
    cap_chi2,
    make_cap_posterior,
    plot_cap_fit,
    posterior_predictive,
    read_observation_spec,
)
from profemu.inference.observations import Observation, load_covariance, read_observation
from profemu.inference.sampling import (
    ConvergenceError,
    MapResult,
    Posterior,
    find_map,
    sample_posterior,
    sample_posterior_batch,
)

__all__ = [
    "CAPLogPosterior",
    "CAPTerm",
    "ConvergenceError",
    "FisherResult",
    "LogPosterior",
    "MapResult",
    "Observation",
    "ObservationSpec",
    "ParameterSpace",
    "Posterior",
    "ResidualCovariance",
    "attach_residual_covariance",
    "build_terms",
    "cap_chi2",
    "ess_bulk",
    "ess_tail",
    "estimate_residual_covariance",
    "find_map",
    "fisher_matrix",
    "load_covariance",
    "make_cap_posterior",
    "make_log_posterior",
    "parameter_space",
    "plot_cap_fit",
    "posterior_predictive",
    "read_observation",
    "read_observation_spec",
    "residual_covariance",
    "sample_posterior",
    "sample_posterior_batch",
    "split_rhat",
]
