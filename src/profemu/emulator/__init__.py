"""The Emulator layer: the trained artefact, its inputs, files and error covariance.

* :mod:`profemu.emulator.core` — :class:`Emulator` and :class:`Prediction`;
* :mod:`profemu.emulator.inputs` — the named inputs and their checks;
* :mod:`profemu.emulator.files` — the folder format (JSON manifest + npz weights);
* :mod:`profemu.emulator.covariance` — the emulator-error covariance between fields,
  radii and mass bins of one simulation (:attr:`Emulator.residual_covariance`);
* :mod:`profemu.emulator.extrapolation` — the variance that grows with the distance
  outside the training box, fitted on held-out extrapolation;
* :mod:`profemu.emulator.locate` — an Emulator from a run folder or an emulator folder;
* :mod:`profemu.emulator.tables` — prediction input and output tables (CSV).
"""

from profemu.emulator.core import Emulator, Prediction, member_log10
from profemu.emulator.extrapolation import fit_extrapolation_variance

__all__ = ["Emulator", "Prediction", "fit_extrapolation_variance", "member_log10"]
