"""Which parameters matter: automatic relevance determination (ARD) for the network's inputs.

A suite of tens of parameters of which a handful act, observed through a few hundred
noisy halos, is where a neural network overfits: it has to learn from the data which
inputs to ignore, and the noise gives it spurious reasons not to. A Gaussian process
with one length scale per input learns exactly that by maximising its marginal
likelihood (Bayesian Occam's razor): an input the profiles do not depend on gets a
length scale at the upper bound (MacKay 1992; Neal 1996).

:func:`ard_weights` fits such a GP (:class:`profemu.baselines.GPBaseline`, on at most
``max_rows`` training rows) and turns its length scales ``l_j`` into input weights
``w_j = min(l) / l_j`` (the most relevant parameter has weight 1, an irrelevant one
~1e-3): the Transforms multiply each standardised parameter by its weight, so the
network starts from the GP's metric of the parameter space and weight decay keeps it
near it. The weights are fitted once per run, on the run's training rows, and reused by
every cross-validation fold and the refit (:func:`profemu.train.builder.fold_problems`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import OrderedDict

import numpy as np

from profemu.data.dataset import ProfileDataset

__all__ = ["ARD_MAX_ROWS", "AUTO_MAX_ROWS", "AUTO_MIN_PARAMS", "ard_weights", "uses_relevance"]

logger = logging.getLogger(__name__)

#: ``data.input_relevance = "auto"`` weights the parameters of suites with at least this many
#: parameters and at most :data:`AUTO_MAX_ROWS` training rows.
AUTO_MIN_PARAMS = 10
AUTO_MAX_ROWS = 5000
#: The relevance GP sees at most this many (seeded, random) training rows by default
#: (``data.relevance_rows``).
ARD_MAX_ROWS = 500
#: Weights of the last few distinct fits, by a digest of everything they depend on: the
#: same rows fitted again in one process (diagnostic probes, sweep trials, resumed runs)
#: reuse them instead of refitting the GP.
_CACHE: OrderedDict[str, tuple[np.ndarray, dict[str, float]]] = OrderedDict()
_CACHE_SIZE = 8


def _digest(ds: ProfileDataset, fields: tuple[str, ...], seed: int, max_rows: int) -> str:
    h = hashlib.sha256(repr((ds.param_names, ds.log_params, fields, seed, max_rows)).encode())
    for a in (ds.params, ds.log10_mass, *(ds.profiles[f] for f in fields), *(ds.mask[f] for f in fields)):
        h.update(np.ascontiguousarray(a).tobytes())
    if ds.noise is not None:
        for f in fields:
            if f in ds.noise:
                h.update(np.ascontiguousarray(ds.noise[f]).tobytes())
    return h.hexdigest()


def uses_relevance(mode: str, ds: ProfileDataset) -> bool:
    """Whether ``data.input_relevance = mode`` weights the parameters of ``ds``."""
    if mode == "ard":
        return True
    if mode == "off":
        return False
    return len(ds.param_names) >= AUTO_MIN_PARAMS and ds.n <= AUTO_MAX_ROWS


def ard_weights(ds: ProfileDataset, fields: tuple[str, ...], *, seed: int = 0,
                max_rows: int = ARD_MAX_ROWS) -> tuple[np.ndarray, dict[str, float]]:
    """Per-parameter input weights from an ARD GP fitted on ``ds`` (the training rows).

    Args:
        ds: Training rows.
        fields: The fields the emulator learns (the GP fits them jointly).
        seed: Seed of the row subsample and of the GP's starts.
        max_rows: Rows the GP sees at most.

    Returns:
        ``(weights [p] in (0, 1], length scales by input name)``.
    """
    from profemu.baselines import GPBaseline

    key = _digest(ds, tuple(fields), seed, max_rows)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        weights, scales = _CACHE[key]
        logger.info("input relevance: the weights already fitted on these %d rows", ds.n)
        return weights.copy(), dict(scales)
    t0 = time.perf_counter()
    logger.info("input relevance: fitting an ARD GP on up to %d of %d training rows, %d parameters "
                "(data.input_relevance: off skips it) ...", max_rows, ds.n, len(ds.param_names))
    rows = np.arange(ds.n)
    if ds.n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(ds.n, max_rows, replace=False))
    gp = GPBaseline(seed=seed, max_train=max_rows, search_rows=max_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(ds.subset(rows), fields=fields)
    scales = gp.length_scales
    ell = np.array([scales[name] for name in ds.param_names])
    weights = np.clip(ell.min() / ell, 1e-6, 1.0)
    kept = [f"{n} {w:.2g}" for n, w in sorted(zip(ds.param_names, weights, strict=True), key=lambda x: -x[1])
            if w >= 0.05]
    logger.info("input relevance (ARD GP on %d rows, %.1f s, once per run; data.input_relevance: off skips it): "
                "%d of %d parameters with weight >= 0.05: %s",
                rows.size, time.perf_counter() - t0, len(kept), len(ell), ", ".join(kept))
    _CACHE[key] = (weights.copy(), dict(scales))
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return weights, scales
