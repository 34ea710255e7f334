"""The checklist's entry point: :func:`run_diagnostics` runs the nine checks in order.

Checks 1-3 read the data (:mod:`profemu.diagnose.data_checks`); checks 4, 5 and 7-9 need
the data prepared as the trainer prepares it (:func:`profemu.train.setup.prepare`) and
report that step's error instead when it fails; check 6 trains on a mock universe
(:mod:`profemu.diagnose.truth`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.diagnose.check import CHECK_NAMES, Check, _guarded
from profemu.diagnose.data_checks import (
    _shift_check,
    check_inputs,
    check_mask_coverage,
    check_targets,
)
from profemu.diagnose.training_checks import (
    _activation_check,
    _gradient_check,
    _overfit_check,
    _Probe,
    _validation_check,
)
from profemu.diagnose.truth import check_truth_recovery
from profemu.errors import ProfemuError

__all__ = ["run_diagnostics"]


def run_diagnostics(
    dataset: ProfileDataset,
    config: Config | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
) -> list[Check]:
    """Run every check of :data:`CHECK_NAMES` on ``dataset`` with ``config``.

    A check that cannot run (e.g. the split fails) is reported as failed with the reason;
    the checklist itself never raises for bad data.

    Args:
        dataset: The full dataset (it is split by group exactly as the trainer does, with
            :func:`profemu.train.setup.prepare`).
        config: The training configuration (default ``Config()``); its model, loss and
            optimiser settings are the ones probed.
        seed: Seed of every random choice (rows, initialisation, mock universe).
        quick: Fewer steps and a smaller, shorter mock-universe run (about 15 s of CPU time
            instead of about 20-25 s for a few thousand rows with the default model).

    Returns:
        One :class:`Check` per entry of :data:`CHECK_NAMES`, in that order.
    """
    from profemu.train.setup import prepare

    config = (config or Config()).validate()
    checks: list[Check] = []
    ds = dataset
    if config.data.fields:
        try:
            ds = dataset.select_fields(config.data.fields)
        except ProfemuError:
            ds = dataset  # prepare() below reports the bad field name
    checks.append(_guarded(CHECK_NAMES[0], check_inputs, ds, config))
    checks.append(_guarded(CHECK_NAMES[1], check_targets, ds))
    checks.append(_guarded(CHECK_NAMES[2], check_mask_coverage, ds))

    prep: Any = None
    probe: _Probe | None = None
    prep_error = ""
    try:
        prep = prepare(dataset, config)
        probe = _Probe(prep, config, seed=seed)
    except ProfemuError as exc:
        prep_error = str(exc)
    except Exception as exc:  # a diagnostic reports, it does not crash
        prep_error = f"{type(exc).__name__}: {exc}"

    def needs_prep(name: str, fn: Callable[..., Check], *args: Any, **kwargs: Any) -> Check:
        if prep_error:
            return Check(name, False, f"could not prepare the data: {prep_error}",
                         "Fix the error above (data.fields, split fractions, groups) and rerun.")
        return _guarded(name, fn, *args, **kwargs)

    checks.append(needs_prep(CHECK_NAMES[3], _shift_check, prep))
    checks.append(needs_prep(CHECK_NAMES[4], _overfit_check, probe, config, seed=seed,
                             steps=300 if quick else 500))
    checks.append(_guarded(CHECK_NAMES[5], check_truth_recovery, config, seed=seed, quick=quick))
    checks.append(needs_prep(CHECK_NAMES[6], _gradient_check, probe, steps=10 if quick else 25))
    checks.append(needs_prep(CHECK_NAMES[7], _activation_check, probe))
    checks.append(needs_prep(CHECK_NAMES[8], _validation_check, probe))
    return checks
