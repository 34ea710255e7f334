"""Convergence diagnostics of MCMC chains: rank-normalised split R-hat and bulk/tail ESS.

The formulas are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021,
Bayesian Analysis 16, 667), "Rank-normalization, folding, and localization: an
improved R-hat for assessing convergence of MCMC":

* chains are split in halves (``2C`` chains of ``N/2`` draws);
* rank normalisation: pooled ranks ``z = Phi^-1((rank - 3/8) / (S + 1/4))``;
* R-hat = ``sqrt(((N-1)/N W + B/N) / W)`` of the rank-normalised draws (bulk) and of
  the rank-normalised folded draws ``|x - median|`` (tail); reported: the larger;
* ESS = ``C N / tau`` with ``tau = -1 + 2 sum_t P_t`` over Geyer's initial monotone
  sequence of paired autocorrelations ``P_t = rho_2t + rho_2t+1``, the autocorrelation
  ``rho_t = 1 - (W - mean_c acov_c(t)) / var+`` combining chains.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = ["ess_bulk", "ess_tail", "split_rhat"]


def _as_chains(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] < 4:
        raise ValueError(f"draws: expected [chains, draws >= 4], got shape {a.shape}.")
    return a


def _split(a: np.ndarray) -> np.ndarray:
    half = a.shape[1] // 2
    return np.concatenate([a[:, :half], a[:, a.shape[1] - half:]], axis=0)


def _rank_normalise(a: np.ndarray) -> np.ndarray:
    ranks = rankdata(a, method="average").reshape(a.shape)
    return ndtri((ranks - 0.375) / (a.size + 0.25))


def _rhat(a: np.ndarray) -> float:
    _, n = a.shape
    chain_mean = a.mean(axis=1)
    w = a.var(axis=1, ddof=1).mean()
    b = n * chain_mean.var(ddof=1)
    if w <= 0:
        return float("nan") if b > 0 else 1.0
    var_plus = (n - 1) / n * w + b / n
    return float(np.sqrt(var_plus / w))


def split_rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat, max of bulk and tail (folded) versions.

    Args:
        x: [chains, draws] (or [draws] for one chain) of one scalar quantity.

    Returns:
        R-hat (1 for converged chains; > 1.01 suggests, > 1.05 shows, disagreement).
    """
    a = _split(_as_chains(x))
    if np.ptp(a) == 0:
        return 1.0
    bulk = _rhat(_rank_normalise(a))
    folded = np.abs(a - np.median(a))
    tail = _rhat(_rank_normalise(folded)) if np.ptp(folded) > 0 else 1.0
    return float(max(bulk, tail))


def _autocovariance(a: np.ndarray) -> np.ndarray:
    """Biased autocovariance per chain [chains, n] via FFT."""
    _, n = a.shape
    centred = a - a.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n
    return acov


def _ess(a: np.ndarray) -> float:
    m, n = a.shape
    if np.ptp(a) == 0:
        return float(m * n)
    acov = _autocovariance(a)
    chain_var = acov[:, 0] * n / (n - 1.0)
    w = chain_var.mean()
    var_plus = w * (n - 1.0) / n
    if m > 1:
        var_plus += a.mean(axis=1).var(ddof=1)
    rho = 1.0 - (w - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Geyer's initial positive sequence of paired sums, made monotone
    pairs = rho[: (n // 2) * 2].reshape(-1, 2).sum(axis=1)
    positive = np.flatnonzero(pairs <= 0)
    k = int(positive[0]) if positive.size else pairs.size
    p = np.minimum.accumulate(pairs[:k]) if k else pairs[:1]
    tau = -1.0 + 2.0 * float(np.sum(p))
    tau = max(tau, 1.0 / np.log10(m * n))  # Stan's bound against antithetic chains
    return float(m * n / tau)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk effective sample size (rank-normalised split chains).

    Args:
        x: [chains, draws] of one scalar quantity.

    Returns:
        ESS (``chains * draws`` for independent draws; smaller for autocorrelated ones).
    """
    a = _split(_as_chains(x))
    return _ess(_rank_normalise(a))


def ess_tail(x: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the 5% and 95% quantile indicators (split chains)."""
    a = _split(_as_chains(x))
    out = []
    for q in (0.05, 0.95):
        ind = (a <= np.quantile(a, q)).astype(float)
        out.append(_ess(ind))
    return float(min(out))
