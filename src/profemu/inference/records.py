"""The JSON records a posterior or a Fisher matrix is saved with (``summary.json``, ``fisher.json``).

One place decides what a saved result holds, so every way of fitting (observed profiles,
projected CAP profiles, the command line or Python) writes the same fields and the same
convergence criteria (:data:`~profemu.inference.sampling.R_HAT_MAX`,
:data:`~profemu.inference.sampling.ESS_MIN`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from profemu.inference.sampling import ESS_MIN, R_HAT_MAX

__all__ = ["finite_or_none", "fisher_record", "posterior_record"]


def _space_record(post: Any) -> dict[str, Any]:
    space = post.space
    return {
        "fixed": dict(space.fixed),
        "prior": {n: [float(lo), float(hi)] for n, lo, hi in
                  zip(post.names, space.to_physical(space.lower), space.to_physical(space.upper), strict=True)},
        "log_sampled": [n for n, lg in zip(post.names, space.is_log, strict=True) if lg],
    }


def posterior_record(post: Any, samples: Any, start: Any, **extra: Any) -> dict[str, Any]:
    """``summary.json``: per-parameter summary (quantiles, ``r_hat``, ``ess``), convergence, MAP, prior.

    Args:
        post: The log posterior (its ``names`` and parameter ``space``).
        samples: The :class:`~profemu.inference.sampling.Posterior` drawn.
        start: The :class:`~profemu.inference.sampling.MapResult`.
        **extra: Fields of the particular fit (observation, covariance, emulator, ...).

    Returns:
        A JSON-safe dict; non-finite numbers become None.
    """
    record = {
        "parameters": samples.summary(),
        "converged": samples.converged(),
        "criteria": {"r_hat_max": R_HAT_MAX, "ess_min": ESS_MIN},
        "map": start.values,
        **_space_record(post),
        "sampler": {**samples.info, "divergences": samples.divergences},
        **extra,
    }
    return finite_or_none(record)


def fisher_record(post: Any, result: Any, **extra: Any) -> dict[str, Any]:
    """``fisher.json``: the Fisher matrix result with the parameter space it is expressed in."""
    return finite_or_none({
        **result.to_dict(), **_space_record(post),
        "sampling_space": "log10 of the value for log-sampled parameters, the value otherwise",
        **extra,
    })


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
