"""The stability checklist as code: nine cheap checks that localise a blown-up training run.

When an emulator produces NaNs, a loss of ~1e10 or an infinite validation loss, the cause
is usually one of a handful of things: bad or badly scaled inputs, unusable targets, a
validation split that does not look like the training split, a model or learning rate
that cannot fit even a few examples, exploding gradients or activations. Each of these
is one :class:`Check` here, in the order a person would debug them:

=================================  ==========================================================
check                              fails when
=================================  ==========================================================
``inputs finite and in range``     a non-finite input, a log parameter <= 0, log10 mass
                                   outside [8, 16], a constant column, or a normalised input
                                   with |z| > 50 (absurd scaling)
``targets finite and positive``    a field with < 50 % valid entries, a valid log10 entry
                                   > 50 robust sigma from its radius' median, or a field
                                   spanning > 20 dex
``mask coverage``                  a radius of a field with < 10 % valid entries
``train/validation shift``         an input whose two-sample KS test between the training
                                   and validation groups gives p < 1e-3 with KS > 0.2
``overfit 8 examples``             a fresh model (no dropout, no weight decay, MSE, full
                                   batch) cannot reach RMSE < 0.05 (standardised units)
``synthetic truth recovery``       a small ensemble trained on the mock universe misses the
                                   noiseless truth on held-out simulations by a median
                                   >= the noise level (0.02 dex)
``gradient norms``                 a non-finite gradient or loss at the configured learning
                                   rate, a post-clip norm above ``optim.clip_norm``, or a
                                   loss that grows 10-fold in a few steps
``activations bounded``            a non-finite intermediate activation or one with
                                   |a| > 1e4
``finite validation loss``         a non-finite prediction or NLL on the validation split,
                                   an NLL > 1e3 per element (a barely trained model reaches
                                   ~1), or a validation input with |z| > 50 in the training
                                   scaling (the model extrapolates there)
=================================  ==========================================================

Checks 5, 7, 8 and 9 probe the configured network with the trainer's own step
(:func:`profemu.train.loop.fit` on a few rows, one step per epoch); check 6 runs the
whole pipeline (:func:`profemu.runs.training.train_emulator`) on a mock universe with a
known truth.

Example::

    checks = run_diagnostics(dataset, config)
    print(format_checks(checks))
"""

from __future__ import annotations

from profemu.diagnose.check import CHECK_NAMES, Check, format_checks
from profemu.diagnose.checklist import run_diagnostics
from profemu.diagnose.data_checks import (
    check_inputs,
    check_mask_coverage,
    check_targets,
    input_columns,
    train_val_shift,
)
from profemu.diagnose.training_checks import (
    ACTIVATION_BOUND,
    check_overfit,
    check_training_dynamics,
    clipped_gradient_norm,
)
from profemu.diagnose.training_checks import problem_optimizer as problem_optimizer
from profemu.diagnose.truth import check_truth_recovery

__all__ = [
    "ACTIVATION_BOUND",
    "CHECK_NAMES",
    "Check",
    "check_inputs",
    "check_mask_coverage",
    "check_overfit",
    "check_targets",
    "check_training_dynamics",
    "check_truth_recovery",
    "clipped_gradient_norm",
    "format_checks",
    "input_columns",
    "run_diagnostics",
    "train_val_shift",
]
