"""Classic emulators with the Emulator's interface: the yardsticks a neural emulator must beat.

* :mod:`profemu.baselines.base` — the shared recipe (inputs, targets, PCA, variance) and
  the :class:`Baseline` protocol;
* :mod:`profemu.baselines.gp` — exact GPs with ARD kernels (:class:`GPBaseline`,
  :class:`PCAGPBaseline`);
* :mod:`profemu.baselines.interpolators` — :class:`PCARBFBaseline`, :class:`PCAMLPBaseline`.

Comparing them with an emulator on the same rows is :func:`profemu.runs.compare.compare`.
"""

from profemu.baselines.base import DEFAULT_GP_MAX_TRAIN, Baseline
from profemu.baselines.gp import GPBaseline, PCAGPBaseline, gp_neg_log_marginal_likelihood
from profemu.baselines.interpolators import PCAMLPBaseline, PCARBFBaseline

__all__ = [
    "DEFAULT_GP_MAX_TRAIN",
    "Baseline",
    "GPBaseline",
    "PCAGPBaseline",
    "PCAMLPBaseline",
    "PCARBFBaseline",
    "gp_neg_log_marginal_likelihood",
]
