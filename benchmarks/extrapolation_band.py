"""Extrapolation variance per radius: amplitudes within a band of the field's, or free.

The variance beyond the training box, σ² = (a_j · d)^p (:mod:`profemu.emulator.extrapolation`),
has one amplitude ``a_j`` per output (field × radius), fitted on held-out rows above the
training rows' median mass. This benchmark trains the shipped default on CAMELS LH TNG rho + pth
(mass bins 11-11.5 and 11.5-12, 2,000 rows), for training seeds 0, 1 and 2, twice: with each
amplitude within ``FIELD_BAND`` (3) of its field's common amplitude (the default), and with every
amplitude free (``FIELD_BAND = inf``). The networks and the held-out training are the same in
both (same seeds); only the amplitudes differ. Scored on the rows of 12-12.3 (109) and
12.3-13.1 (14), against their measured profiles, with their noise added to the predicted
variance:

* the mean Gaussian negative log-likelihood per entry (lower is better; the constant dropped);
* the 68% coverage over every entry, and at the worst radius (the lowest of the radii's own
  coverages) and the spread (standard deviation) of the radii's coverages.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from benchmarks.common import REPO_ROOT

__all__ = ["markdown", "run"]

SHARED = Path(os.environ.get("PROFEMU_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CAMELS = SHARED / "camels_lh_tng.npz"
FIELDS = ("rho", "pth")
TRAIN_BINS = ("11-11.5", "11.5-12")
TEST_BINS = ("12-12.3", "12.3-13.1")
SEEDS = (0, 1, 2)
log = logging.getLogger("profemu.benchmarks.extrapolation_band")


def _scores(emulator: Any, test: Any) -> dict[str, Any]:
    from profemu.metrics import predict_dataset

    pred = predict_dataset(emulator, test)
    out: dict[str, Any] = {}
    for f in FIELDS:
        mean, var = pred[f]
        ok = test.mask[f]
        res = np.where(ok, np.log10(np.where(ok, test.profiles[f], 1.0)) - mean, np.nan)
        total = var + (test.noise[f] ** 2 if test.noise is not None and f in test.noise else 0.0)
        nll = np.log(total) + res**2 / total
        inside = np.abs(res) < np.sqrt(total)
        per_radius = np.array([inside[ok[:, j], j].mean() for j in range(ok.shape[1]) if ok[:, j].any()])
        out[f] = {"nll": float(np.nanmean(nll[ok])), "coverage_68": float(inside[ok].mean()),
                  "worst_radius_68": float(per_radius.min()), "radius_spread_68": float(per_radius.std())}
    return out


def run(*, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Both fits for each seed, scored on both test bins (the same in quick and full mode)."""
    del quick, out_dir
    from profemu.config import Config
    from profemu.data.camels import load_camels_lh
    from profemu.emulator import extrapolation
    from profemu.runs.training import train_emulator

    train = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=TRAIN_BINS, verbose=False)
    tests = {b: load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(b,), verbose=False) for b in TEST_BINS}
    results: dict[str, Any] = {"seeds": list(SEEDS), "band": extrapolation.FIELD_BAND, "n_train": train.n,
                               "n_test": {b: t.n for b, t in tests.items()}, "runs": {}}
    for label, band in (("band", extrapolation.FIELD_BAND), ("free", math.inf)):
        for seed in SEEDS:
            with mock.patch.object(extrapolation, "FIELD_BAND", band):
                emulator = train_emulator(train, Config().updated({"train.seed": seed}), evaluate_test=False).emulator
            record = emulator.metadata["extrapolation"]
            results["runs"][f"{label} {seed}"] = {
                "p": record["p"], "a_median": float(np.median(record["a"])),
                **{b: _scores(emulator, t) for b, t in tests.items()}}
            log.info("extrapolation band: %s, seed %d done", label, seed)
    return results


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md."""
    lines = ["## Extrapolation variance per radius: amplitudes in a band, or free", "",
             "The shipped default trained on CAMELS LH TNG rho + pth, mass bins 11-12 "
             f"({results['n_train']} rows), training seeds {', '.join(map(str, results['seeds']))}; the same "
             "networks and held-out training with each output's amplitude within a factor "
             f"{results['band']:g} of its field's common amplitude (`band`, the default) or free (`free`). Per "
             "field: mean Gaussian NLL per entry (lower is better), 68% coverage over all entries, at the worst "
             "radius, and the spread of the radii's coverages. See `benchmarks/extrapolation_band.py`.", ""]
    for b, n in results["n_test"].items():
        lines += [f"### Tested on {b} ({n} rows)", "",
                  "| amplitudes | seed | p | rho NLL | rho cov. | rho worst radius | rho spread | pth NLL | pth cov. "
                  "| pth worst radius | pth spread |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, r in results["runs"].items():
            label, seed = key.split()
            cells = [label, seed, f"{r['p']:g}"]
            for f in FIELDS:
                s = r[b][f]
                cells += [_fmt(s["nll"]), _fmt(s["coverage_68"]), _fmt(s["worst_radius_68"]),
                          _fmt(s["radius_spread_68"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
