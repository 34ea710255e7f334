"""Active vs random selection of simulations on the hard mock universe (known truth).

The regime where a design matters most and a Latin hypercube helps least: 35 parameters
(the CAMELS SB35 names, ranges and log flags, ``../shared/data/camels_sb35``; the
built-in list when absent) of which a handful act, one halo per simulation with a
log10 mass drawn uniformly in 11.5-14, and 0.2-0.4 dex of log-normal scatter
(:func:`profemu.data.mock.make_hard_mock`, seed 0). ``rho`` and ``pth`` on 30 radii.

Same protocol as :mod:`benchmarks.design` (:func:`benchmarks.design.retrospective`):
a fixed 20% of the 1,000 simulations is the test set (scored against the noiseless
truth); three seeds start from 100 random pool simulations and add 100 per round,
chosen by :func:`profemu.design.selection` among the remaining pool or at random, up to
800 (the whole pool). Every round retrains the default emulator with one difference,
for cost on 2 cores: a 10% validation split for early stopping and calibration
(``train.cv_folds = 0``) instead of the 5-fold cross-validation and refit the default
uses at this size (which costs six trainings per round).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import figure_link
from benchmarks.smallsuite import SB35_TABLE

__all__ = ["markdown", "run"]

FIELDS = ("rho", "pth")
#: The one change to the default emulator (see the module docstring).
CHANGES: dict[str, Any] = {"train.cv_folds": 0}


def load_hard(n_sims: int) -> tuple[Any, dict[str, np.ndarray], str]:
    """The hard mock (one halo per simulation), its noiseless truth and the parameter table used."""
    from profemu.data.mock import make_hard_mock

    found = SB35_TABLE.is_file()
    universe = make_hard_mock(n_sims, seed=0, parameter_table=SB35_TABLE if found else None)
    ds = universe.dataset.select_fields(list(FIELDS))
    return ds, {f: np.asarray(universe.truth[f]) for f in FIELDS}, SB35_TABLE.name if found else "built-in list"


def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Retrospective study on the hard mock (quick: 1 seed to 300; full: 3 seeds to 800)."""
    from benchmarks.design import figures_of_studies, retrospective

    if smoke:
        ds, truth, table = load_hard(150)
        changes = {**CHANGES, "train.members": 2, "train.epochs": 2, "model.hidden": [16], "train.patience": 0}
        study = retrospective(ds, truth=truth, seeds=(0,), start=20, step=20, stop=60, config_changes=changes,
                              label="hard mock (smoke)")
    else:
        ds, truth, table = load_hard(1000)
        study = retrospective(ds, truth=truth, seeds=(0,) if quick else (0, 1, 2), start=100, step=100,
                              stop=300 if quick else 800, config_changes=CHANGES,
                              label="hard mock SB35 (known truth)")
    results: dict[str, Any] = {"quick": bool(quick), "smoke": bool(smoke), "parameter_table": table,
                               "config_changes": CHANGES, "hard": study}
    results["figures"] = figures_of_studies({"hard": study}, out_dir, "design_hard_active_vs_random")
    return results


def markdown(results: dict[str, Any]) -> str:
    """The hard-mock part of the section on active selection."""
    from benchmarks.design import _study_section

    study = results["hard"]
    lines = [
        "## Where to run the next simulations on a 35-parameter suite: the hard mock", "",
        f"The hard mock universe (`profemu.data.mock.make_hard_mock`, seed 0; parameters of "
        f"{results['parameter_table']}): one halo per simulation, log10 M200c uniform in 11.5-14, 0.2-0.4 dex "
        "log-normal scatter, rho and pth on 30 radii; only a handful of the 35 parameters act. Same protocol "
        "as the section above (fixed 20% test set, 100 start simulations, 100 per round, active via "
        "`suggest` restricted to the pool vs random), scored against the noiseless truth. Each round "
        "retrains the default emulator with a 10% validation split for early stopping and calibration "
        "(`train.cv_folds = 0`) instead of the default's 5-fold cross-validation and refit, for cost."
        + (" Quick mode: one seed, up to 300 simulations." if results.get("quick") and not results.get("smoke")
           else ""),
        "",
    ]
    lines += _study_section(study, "Hard mock, 35 parameters (known truth)")
    fig = results.get("figures", {}).get("rounds")
    if fig:
        lines += [figure_link(results, fig, "hard mock: test error per round, active vs random"), ""]
    return "\n".join(lines) + "\n"
