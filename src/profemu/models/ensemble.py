"""Deep ensembles: the moment combination of the members' Gaussians.

Member parameters are one pytree whose every leaf has a leading axis ``M``; the
:class:`~profemu.models.network.Network` then returns member outputs ``[M, n, D]``
in one call, in numpy and in JAX. :func:`combine` turns them into the ensemble's
mean and variance, split into its aleatoric and epistemic parts. It is the one place
where that happens: the Emulator's numpy and JAX predictions both call it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from profemu.errors import DataError

__all__ = ["EnsemblePrediction", "combine"]


class EnsemblePrediction(NamedTuple):
    """Moments of an ensemble's Gaussian mixture, each ``[..., n, D]``.

    Attributes:
        mean: Average of the member means.
        var: Total variance, ``aleatoric + epistemic``.
        aleatoric: Average of the member variances (noise the members predict).
        epistemic: Population variance of the member means (their disagreement).
    """

    mean: Any
    var: Any
    aleatoric: Any
    epistemic: Any


def combine(means: Any, variances: Any) -> EnsemblePrediction:
    """Moment-match the members' Gaussians (numpy or JAX arrays; member axis first).

    Every member has weight ``1 / M``: ``mean = Σ μ_m / M``, ``aleatoric = Σ σ²_m / M``,
    ``epistemic = Σ (μ_m - mean)² / M``.

    Args:
        means: ``[M, ..., D]`` member means.
        variances: ``[M, ..., D]`` member variances.

    Returns:
        :class:`EnsemblePrediction` with fields of shape ``[..., D]``.
    """
    if means.shape != variances.shape:
        raise DataError(f"combine: means {means.shape} and variances {variances.shape} must have one shape.")
    mean = means.mean(axis=0)
    aleatoric = variances.mean(axis=0)
    epistemic = ((means - mean) ** 2).mean(axis=0)
    return EnsemblePrediction(mean=mean, var=aleatoric + epistemic, aleatoric=aleatoric, epistemic=epistemic)
