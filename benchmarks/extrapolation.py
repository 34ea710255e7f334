"""Extrapolation in halo mass: every emulator trained below a mass and scored above it.

Data and splits (the same rows for every method; the split is by halo mass, and every
test simulation also has training rows at lower mass, as when an emulator is asked
about heavier halos of a known cosmology):

* **CAMELS LH IllustrisTNG** (``../shared/data/camels_lh_tng.npz``, z = 0.537), fields
  ``rho`` and ``pth`` learnt together (mean statistic, inputs: 6 parameters +
  ``log10_mass_mean``): trained on the mass bins ``11-11.5`` and ``11.5-12`` (2,000
  rows, 1,000 simulations), tested on ``12-12.3`` (the mislabelled duplicate rows
  dropped by :func:`profemu.data.camels.load_camels_lh`) and on ``12.3-13.1`` (14 rows).
* **Mock universe** (:func:`profemu.data.mock.make_mock_universe`, ``lh6`` parameters,
  no P(k), seed 0, 0.02 dex noise, radii in units of R200c). Its profile family is a
  Battaglia-type generalised NFW pressure and baryon-correction-model (BCM) gas
  density, so it is the case where the physics is known: trained on
  log10 M <= 13, tested on 13 < log10 M <= 15.

Methods: ``profemu`` (the shipped ``Config()`` as it is, in every mode: 5-fold
cross-validation by simulation, the refit on every row, 5 members, and the automatic
extrapolation variance, :func:`profemu.emulator.extrapolation.fit_extrapolation_variance`
on the training rows' highest-mass half with one more training like the refit; its
``data.radial_coordinate: hybrid`` draws the profile inside R_Δ/2 on the data's radii and
outside on r/R_Δ), ``profemu, physical radii`` (the same with ``data.radial_coordinate:
physical``, the earlier default), ``profemu, r/R_Delta``
(``data.radial_coordinate: scaled``, one validation split, the variance fitted with the
same configuration), ``profemu + monotonic loss`` and ``profemu + smoothness loss`` (the
shipped defaults with ``loss.physics.monotonic_weight: 1`` on the fields declared
monotone, or ``loss.physics.smoothness_weight: 0.1``: the soft physics losses, off by
default), ``plain MLP`` (``model.kind: mlp``,
``data.self_similar: off``, no extrapolation variance), ``physics core``
(``model.kind: physics``, shipped ``model.mass_order: 2``), ``physics core, mass_order 1``
(its power-law mass head without the curvature term), ``GP`` (:class:`profemu.baselines.GPBaseline`, ARD, all
training rows, two starts) and ``PCA+RBF`` (:class:`profemu.baselines.PCARBFBaseline`,
thin-plate spline, variance by 5-fold CV). Seeds: training seed 0 (members ``0..M-1``),
split seed 0. Metrics (:func:`profemu.metrics.evaluate_predictions`): median and 95th
percentile of the fractional error of the mean profile, and the 68% coverage with the
target noise added to the predictive variance.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from profemu.config import Config
from profemu.data.camels import load_camels_lh
from profemu.data.dataset import ProfileDataset
from profemu.emulator.extrapolation import FIELD_BAND
from profemu.metrics import evaluate_predictions, predict_dataset

__all__ = ["markdown", "run"]

log = logging.getLogger(__name__)

CAMELS = Path(os.environ.get("PROFEMU_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")) / "camels_lh_tng.npz"
SB35 = CAMELS.parent / "camels_sb35" / "Info_IllustrisTNG_L50n512_35params.csv"
FIELDS = ("rho", "pth")
TRAIN_BINS = ("11-11.5", "11.5-12")
TEST_BINS = ("12-12.3", "12.3-13.1")
MOCK_SPLIT = 13.0
#: Targets on CAMELS TNG, trained on 11-12, tested on 12-12.3.
TARGETS = {"rho": {"frac_err_median": 0.11, "frac_err_p95": 0.52},
           "pth": {"frac_err_median": 0.18, "frac_err_p95": 1.05}}
COVERAGE_68 = (0.55, 0.80)
MOCK_RATIO = 0.7
SCALED = "profemu, r/R_Delta"
PHYSICAL = "profemu, physical radii"
MONOTONIC = "profemu + monotonic loss"
SMOOTH = "profemu + smoothness loss"
SPREAD_SCALED = "profemu, mass and redshift scaled by their spread"
NO_BOUND = "profemu without the gas-fraction bound"
METHODS = ("profemu", PHYSICAL, MONOTONIC, SMOOTH, SCALED, "plain MLP", "physics core", "physics core, mass_order 1", "GP",
           "PCA+RBF")
#: Methods of the mock suite (its radii are already in units of R200c, so the r/R_Delta
#: coordinate and physical radii are the profemu row).
MOCK_METHODS = tuple(m for m in METHODS if m not in (SCALED, PHYSICAL))


def _config(quick: bool, **changes: Any) -> Config:
    """The shipped configuration with one validation split (quick: 3 members, 150 epochs)."""
    base: dict[str, Any] = {"data.test_fraction": 0.0, "data.val_fraction": 0.1, "train.cv_folds": 0,
                            "train.extrapolation_variance": "off"}
    if quick:
        base.update({"train.members": 3, "train.epochs": 150, "train.patience": 30})
    base.update(changes)
    return Config().updated(base)


def _train(ds: ProfileDataset, cfg: Config) -> Any:
    from profemu.runs.training import train_emulator

    return train_emulator(ds, cfg, evaluate_test=False).emulator


def _profemu(train: ProfileDataset, cfg: Config, calibrate: bool) -> Any:
    emulator = _train(train, cfg)
    if calibrate:
        from profemu.emulator.extrapolation import fit_extrapolation_variance

        record = fit_extrapolation_variance(lambda rows: _train(rows, cfg), train, emulator=emulator)
        emulator.metadata["extrapolation"] = record
    return emulator


def _fitters(quick: bool) -> dict[str, Callable[[ProfileDataset], Any]]:
    from profemu.baselines import GPBaseline, PCARBFBaseline

    def baseline(make: Callable[[], Any]) -> Callable[[ProfileDataset], Any]:
        def fit(train: ProfileDataset) -> Any:
            b = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                b.fit(train)
            return b
        return fit

    return {
        "profemu": lambda d: _train(d, Config()),
        PHYSICAL: lambda d: _train(d, Config().updated({"data.radial_coordinate": "physical"})),
        MONOTONIC: lambda d: _train(d, Config().updated({"loss.physics.monotonic_weight": 1.0})),
        SMOOTH: lambda d: _train(d, Config().updated({"loss.physics.smoothness_weight": 0.1})),
        SCALED: lambda d: _profemu(d, _config(quick, **{"data.radial_coordinate": "scaled"}), True),
        "plain MLP": lambda d: _profemu(d, _config(quick, **{"model.kind": "mlp", "data.self_similar": "off"}),
                                        False),
        "physics core": lambda d: _profemu(d, _config(quick, **{"model.kind": "physics"}), True),
        "physics core, mass_order 1": lambda d: _profemu(
            d, _config(quick, **{"model.kind": "physics", "model.mass_order": 1}), True),
        SPREAD_SCALED: _spread_scaled_fit,
        NO_BOUND: lambda d: _train(d, Config().updated({"data.gas_fraction_bound": "off"})),
        "GP": baseline(lambda: GPBaseline(n_restarts=1, seed=0)),
        "PCA+RBF": baseline(lambda: PCARBFBaseline(seed=0)),
    }


@contextlib.contextmanager
def _inputs_scaled_by_their_spread() -> Any:
    """The mass and redshift inputs divided by their training spread alone, without the physical
    floors (``MASS_SCALE_FLOOR_DEX``, ``REDSHIFT_SCALE_FLOOR``), as before those existed."""
    import profemu.data.transforms as transforms

    saved = transforms.MASS_SCALE_FLOOR_DEX, transforms.REDSHIFT_SCALE_FLOOR
    transforms.MASS_SCALE_FLOOR_DEX = transforms.REDSHIFT_SCALE_FLOOR = 0.0
    try:
        yield
    finally:
        transforms.MASS_SCALE_FLOOR_DEX, transforms.REDSHIFT_SCALE_FLOOR = saved


def _spread_scaled_fit(train: ProfileDataset) -> Any:
    with _inputs_scaled_by_their_spread():
        return _train(train, Config())


def _score(predictor: Any, test: ProfileDataset) -> dict[str, Any]:
    m = evaluate_predictions(predict_dataset(predictor, test), test)
    out: dict[str, Any] = {}
    for f, fm in m["fields"].items():
        out[f] = {k: fm.get(k) for k in ("frac_err_median", "frac_err_p95", "coverage_68", "coverage_95")}
    return out


def _compare(train: ProfileDataset, tests: dict[str, ProfileDataset], quick: bool,
             methods: tuple[str, ...]) -> dict[str, Any]:
    fitters = _fitters(quick)
    out: dict[str, Any] = {name: {"n_test": t.n} for name, t in tests.items()}
    out["n_train"] = train.n
    for method in methods:
        t0 = time.perf_counter()
        predictor = fitters[method](train)
        seconds = time.perf_counter() - t0
        log.info("extrapolation: %s fitted in %.0f s", method, seconds)
        record = getattr(predictor, "metadata", {}).get("extrapolation")
        for name, test in tests.items():
            out[name][method] = {**_score(predictor, test), "fit_seconds": seconds}
            if record is not None:
                out[name][method]["extrapolation_p"] = record["p"]
                out[name][method]["extrapolation_a_median"] = float(np.median(record["a"]))
                if "redshift" in record:
                    out[name][method]["extrapolation_z_p"] = record["redshift"]["p"]
                    out[name][method]["extrapolation_z_a_median"] = float(np.median(record["redshift"]["a"]))
    return out


def camels(quick: bool, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """CAMELS TNG rho + pth: train on 11-12, test on 12-12.3 and 12.3-13.1."""
    train = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=TRAIN_BINS, verbose=False)
    tests = {b: load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(b,), verbose=False) for b in TEST_BINS}
    return _compare(train, tests, quick, methods)


def mock(quick: bool, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Mock universe (lh6, no P(k)): train on log10 M <= 13, test on 13-15."""
    from profemu.data.mock import make_mock_universe

    ds = make_mock_universe(1200 if quick else 4000, seed=0, param_set="lh6", with_pk=False, n_r=16).dataset
    low = np.asarray(ds.log10_mass) <= MOCK_SPLIT
    return _compare(ds.subset(np.flatnonzero(low)), {"13-15": ds.subset(np.flatnonzero(~low))}, quick, methods)


#: Redshifts of the training snapshots and of the test snapshot of the redshift step.
TRAIN_REDSHIFTS = (0.0, 0.25, 0.5)
TEST_REDSHIFT = 1.0
#: Methods of the redshift step (the issue's four: the default, the plain MLP, the GP, PCA+RBF).
REDSHIFT_METHODS = ("profemu", "plain MLP", "GP", "PCA+RBF")


def _snapshots(redshifts: tuple[float, ...], n: int) -> ProfileDataset:
    """The same ``n``-row mock suite (lh6, seed 0: the same simulations, masses and noise draws)
    observed at each of ``redshifts``, stacked; groups are the simulations, shared across redshifts."""
    from profemu.data.mock import make_mock_snapshots

    return make_mock_snapshots(redshifts, n, seed=0, param_set="lh6", with_pk=False, n_r=16)


def redshift_step(quick: bool, methods: tuple[str, ...] = REDSHIFT_METHODS) -> dict[str, Any]:
    """Mock universe observed at z = 0, 0.25, 0.5 (training) and at z = 1 (test): the same simulations."""
    n = 400 if quick else 1200
    train = _snapshots(TRAIN_REDSHIFTS, n)
    test = _snapshots((TEST_REDSHIFT,), n)
    return _compare(train, {f"z={TEST_REDSHIFT:g}": test}, quick, tuple(m for m in methods if m in REDSHIFT_METHODS))


#: The hard mock's redshift step: the 35-parameter single-halo mock on physical radii [Mpc].
HARD_METHODS = ("profemu", PHYSICAL, "plain MLP", "GP", "PCA+RBF")


def _hard_snapshots(redshifts: tuple[float, ...], n: int, log10_mass_range: tuple[float, float] = (11.5, 14.0),
                    ) -> tuple[ProfileDataset, ProfileDataset]:
    """The same ``n`` haloes of the hard mock (seed 0: the same simulations, masses and scatter
    draws) observed at each of ``redshifts``, stacked: the noisy rows and the noiseless truth (as
    rows of their own, no noise)."""
    from profemu.data.mock import make_hard_mock

    table = SB35 if SB35.is_file() else None
    parts = [make_hard_mock(n, seed=0, parameter_table=table, redshift=z, log10_mass_range=log10_mass_range)
             for z in redshifts]
    sets = [p.dataset.select_fields(list(FIELDS)) for p in parts]
    first = sets[0]

    def stacked(profiles: dict[str, np.ndarray], noise: dict[str, np.ndarray] | None) -> ProfileDataset:
        return ProfileDataset(
            params=np.concatenate([s.params for s in sets]), param_names=first.param_names,
            log10_mass=np.concatenate([s.log10_mass for s in sets]), radius=first.radius, profiles=profiles,
            units=first.units, radius_unit=first.radius_unit, log_params=first.log_params,
            redshift=np.concatenate([np.full(s.n, float(z)) for s, z in zip(sets, redshifts, strict=True)]),
            groups=np.concatenate([s.groups for s in sets]), noise=noise,
            meta={k: v for k, v in first.meta.items() if k != "redshift"})

    noisy = stacked({f: np.concatenate([s.profiles[f] for s in sets]) for f in FIELDS},
                    {f: np.concatenate([s.noise[f] for s in sets]) for f in FIELDS})
    truth = stacked({f: np.concatenate([p.truth[f] for p in parts]) for f in FIELDS}, None)
    return noisy, truth


def hard_redshift_step(quick: bool, methods: tuple[str, ...] = HARD_METHODS) -> dict[str, Any]:
    """The hard mock (35 parameters, physical radii, 0.2-0.4 dex scatter) at z = 0, 0.25, 0.5
    (training) and z = 1 (test), scored against the noiseless truth; coverage of the noisy haloes."""
    n = 400 if quick else 600
    train, _ = _hard_snapshots(TRAIN_REDSHIFTS, n)
    test, truth = _hard_snapshots((TEST_REDSHIFT,), n)
    return _against_truth(train, test, truth, f"z={TEST_REDSHIFT:g}", quick, methods)


#: The hard mock's mass step: haloes of 10^11.5-10^13.8 Msun at z = 0, 0.5, 1, trained up to
#: 10^12.95 and tested above 10^13.4 (the redshift an input throughout).
HARD_MASS_REDSHIFTS = (0.0, 0.5, 1.0)
HARD_MASS_RANGE = (11.5, 13.8)
HARD_MASS_TRAIN_MAX = 12.95
HARD_MASS_TEST_MIN = 13.4


def hard_mass_step(quick: bool, methods: tuple[str, ...] = HARD_METHODS) -> dict[str, Any]:
    """The hard mock at z = 0, 0.5 and 1, trained on log10 M <= 12.95 and tested on log10 M >= 13.4
    against the noiseless truth (coverage of the noisy haloes)."""
    noisy, truth = _hard_snapshots(HARD_MASS_REDSHIFTS, 600 if quick else 1200, HARD_MASS_RANGE)
    mass = np.asarray(noisy.log10_mass)
    train, test = np.flatnonzero(mass <= HARD_MASS_TRAIN_MAX), np.flatnonzero(mass >= HARD_MASS_TEST_MIN)
    return _against_truth(noisy.subset(train), noisy.subset(test), truth.subset(test),
                          f">={HARD_MASS_TEST_MIN:g}", quick, methods)


def _against_truth(train: ProfileDataset, test: ProfileDataset, truth: ProfileDataset, name: str, quick: bool,
                   methods: tuple[str, ...]) -> dict[str, Any]:
    """Each method fitted on ``train``, scored against ``truth`` (median, 95th) and on the noisy
    ``test`` rows (coverage)."""
    fitters = _fitters(quick)
    out: dict[str, Any] = {"n_train": train.n, name: {"n_test": test.n}}
    for method in (m for m in methods if m in HARD_METHODS):
        t0 = time.perf_counter()
        predictor = fitters[method](train)
        seconds = time.perf_counter() - t0
        log.info("extrapolation: %s fitted on the hard mock in %.0f s", method, seconds)
        against_truth, on_haloes = _score(predictor, truth), _score(predictor, test)
        out[name][method] = {f: {**against_truth[f], "coverage_68": on_haloes[f]["coverage_68"],
                                 "coverage_95": on_haloes[f]["coverage_95"]} for f in FIELDS}
        out[name][method]["fit_seconds"] = seconds
    return out


#: Training rows that span little in mass or in redshift: the default against the same default
#: with the mass and redshift inputs scaled by their spread alone, the plain MLP, the GP, PCA+RBF.
NARROW_METHODS = ("profemu", SPREAD_SCALED, "plain MLP", "GP", "PCA+RBF")
#: ... and on the mock (radii in R200c, where the gas-fraction bound applies), the default without it.
NEAR_METHODS = (*NARROW_METHODS, NO_BOUND)
ONE_BIN = "11-11.5"
ONE_BIN_TESTS = ("11.5-12", "12-12.3")
NEAR_REDSHIFTS = (0.0, 0.1)
FAR_REDSHIFTS = (0.5, 1.0)


def one_mass_bin(quick: bool, methods: tuple[str, ...] = NARROW_METHODS) -> dict[str, Any]:
    """CAMELS TNG rho + pth trained on the one mass bin 11-11.5 (its rows' log10 M spread: 0.008
    dex), tested on 11.5-12 and 12-12.3."""
    train = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(ONE_BIN,), verbose=False)
    tests = {b: load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(b,), verbose=False) for b in ONE_BIN_TESTS}
    out = _compare(train, tests, quick, tuple(m for m in methods if m in NARROW_METHODS))
    out["train_log10_mass_std"] = float(np.std(train.log10_mass))
    return out


def near_redshifts(quick: bool, methods: tuple[str, ...] = NEAR_METHODS) -> dict[str, Any]:
    """The mock universe (lh6, seed 0) trained at z = 0 and 0.1, tested at z = 0.5 and 1 (the same simulations)."""
    n = 400 if quick else 1200
    train = _snapshots(NEAR_REDSHIFTS, n)
    tests = {f"z={z:g}": _snapshots((z,), n) for z in FAR_REDSHIFTS}
    return _compare(train, tests, quick, tuple(m for m in methods if m in NEAR_METHODS))


def in_box(quick: bool, folds: int = 5) -> dict[str, Any]:
    """The same test rows when their mass bin is *inside* the training data: the ceiling.

    CAMELS TNG bins 11-12.3 (rho + pth), ``folds``-fold cross-validation by simulation
    (simulations shuffled with seed 0) with the other network rows' settings (:func:`_config`:
    one validation split, no extrapolation variance); every 12-12.3 row is predicted by the fold that did not train on its
    simulation. What an emulator reaches with data at that mass bounds what extrapolation
    to it can reach.
    """
    ds = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(*TRAIN_BINS, TEST_BINS[0]), verbose=False)
    sims = np.unique(ds.groups)
    np.random.default_rng(0).shuffle(sims)
    errs: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    inside: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    test_bin = np.asarray(ds.log10_mass) > 12.0
    for k in range(folds):
        held = np.isin(ds.groups, sims[k::folds])
        emulator = _train(ds.subset(np.flatnonzero(~held)), _config(quick))
        test = ds.subset(np.flatnonzero(held & test_bin))
        pred = predict_dataset(emulator, test)
        for f in FIELDS:
            mean, var = pred[f]
            ok = test.mask[f]
            truth = np.log10(np.where(ok, test.profiles[f], 1.0))
            noise = test.noise[f] ** 2 if test.noise is not None and f in test.noise else 0.0
            errs[f].append(np.abs(10.0 ** (mean - truth) - 1.0)[ok])
            inside[f].append((np.abs(mean - truth) < np.sqrt(var + noise))[ok])
        log.info("extrapolation: in-box reference fold %d/%d done", k + 1, folds)
    out: dict[str, Any] = {"n_test": int(test_bin.sum()), "folds": folds}
    for f in FIELDS:
        e = np.concatenate(errs[f])
        out[f] = {"frac_err_median": float(np.median(e)), "frac_err_p95": float(np.percentile(e, 95)),
                  "coverage_68": float(np.concatenate(inside[f]).mean())}
    return out


#: Training seeds of :func:`seed_spread`.
SPREAD_SEEDS = (0, 1, 2)


def seed_spread(seeds: tuple[int, ...] = SPREAD_SEEDS) -> dict[str, Any]:
    """The shipped default on the CAMELS TNG split (trained on 11-12) once per training seed
    (``train.seed``: initial parameters and data order of every network, the held-out one that
    calibrates the extrapolation variance included): the scores on both test bins and the
    fitted variance's median amplitude and power. One number per seed says how much of a
    difference between two rows above is the seed's."""
    train = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=TRAIN_BINS, verbose=False)
    tests = {b: load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(b,), verbose=False) for b in TEST_BINS}
    out: dict[str, Any] = {"seeds": list(seeds), "runs": []}
    for seed in seeds:
        emulator = _train(train, Config().updated({"train.seed": seed}))
        record = emulator.metadata.get("extrapolation") or {}
        run_scores = {"seed": seed, "a_median": float(np.median(record["a"])) if "a" in record else None,
                      "p": record.get("p")}
        for name, test in tests.items():
            run_scores[name] = _score(emulator, test)
        out["runs"].append(run_scores)
        log.info("extrapolation: seed %d of the default done", seed)
    return out


#: Radii (the innermost) whose mean log10 profile defines a simulation's inner mass trend in
#: :func:`trend_reversal`.
INNER_RADII = 3


def trend_reversal() -> dict[str, Any]:
    """Where the default's tail on 12-12.3 comes from: the simulations whose inner profile falls
    with mass between 11.5-12 and 12-12.3 although it rises over the training bins.

    For each field and each simulation with a row in all three bins, the slope (dex per dex of
    mass) of the mean log10 profile on the :data:`INNER_RADII` innermost radii between the two
    training bins and between 11.5-12 and the test bin; then the default (training seed 0)
    scored on the test rows of the simulations whose second slope is negative and on the others,
    and the share of its top 5% fractional errors that fall in the former. The selection reads
    the test rows' own profiles: a diagnosis of the errors, not a method."""
    bins = (*TRAIN_BINS, "12-12.3")
    sets = {b: load_camels_lh(CAMELS, fields=FIELDS, mass_bins=(b,), verbose=False) for b in bins}
    train = load_camels_lh(CAMELS, fields=FIELDS, mass_bins=TRAIN_BINS, verbose=False)
    test = sets["12-12.3"]
    pred = predict_dataset(_train(train, Config()), test)
    out: dict[str, Any] = {"inner_radii": INNER_RADII, "fields": {}}
    for f in FIELDS:
        inner = {b: np.log10(np.asarray(sets[b].profiles[f], dtype=np.float64)[:, :INNER_RADII]).mean(axis=1)
                 for b in bins}
        index = {b: {g: i for i, g in enumerate(sets[b].groups.tolist())} for b in bins}
        rows, lower, upper = [], [], []
        for i, g in enumerate(test.groups.tolist()):
            if g not in index[bins[0]] or g not in index[bins[1]]:
                continue
            (a, b_), m = (index[bins[0]][g], index[bins[1]][g]), [sets[b].log10_mass for b in bins]
            lower.append((inner[bins[1]][b_] - inner[bins[0]][a]) / (m[1][b_] - m[0][a]))
            upper.append((inner[bins[2]][i] - inner[bins[1]][b_]) / (m[2][i] - m[1][b_]))
            rows.append(i)
        lo, up, rows_ = np.asarray(lower), np.asarray(upper), np.asarray(rows)
        err = np.abs(10.0 ** (np.asarray(pred[f][0])[rows_] - np.log10(np.asarray(test.profiles[f])[rows_])) - 1.0)
        falling = up < 0
        tail = err >= np.percentile(err, 95)
        out["fields"][f] = {
            "simulations": int(rows_.size), "rising_in_training": float(np.mean(lo > 0)),
            "slope_training_median": float(np.median(lo)), "slope_test_median": float(np.median(up)),
            "falling": int(falling.sum()), "tail_share": float(tail[falling].sum() / tail.sum()),
            "falling_median": float(np.median(err[falling])) if falling.any() else None,
            "falling_p95": float(np.percentile(err[falling], 95)) if falling.any() else None,
            "others_median": float(np.median(err[~falling])), "others_p95": float(np.percentile(err[~falling], 95)),
            "all_median": float(np.median(err)), "all_p95": float(np.percentile(err, 95))}
    return out


def _reversal_lines(rev: dict[str, Any]) -> list[str]:
    lines = ["", f"### CAMELS LH TNG: where the tail on 12-12.3 comes from (measured at commit `{rev['commit']}`)", "",
             f"Per simulation, the mass slope of its mean log10 profile on the {rev['inner_radii']} innermost radii "
             "(0.7-2 kpc), between the two training bins and between 11.5-12 and 12-12.3; the default (training "
             "seed 0) scored on the simulations whose inner profile *falls* from 11.5-12 to 12-12.3 and on the "
             "others. The selection reads the test rows themselves: it locates the errors, it is not a method "
             "(`trend_reversal` in `benchmarks/extrapolation.py`).", "",
             "| field | simulations | inner slope > 0 over 11-12 | median inner slope: 11-11.5 to 11.5-12 / 11.5-12 to 12-12.3 | "
             "falling at 12-12.3 | share of the top 5% errors | median / 95th, falling | median / 95th, the others "
             "| median / 95th, all |", "|---|---|---|---|---|---|---|---|---|"]
    for f, r in rev["fields"].items():
        lines.append(f"| {f} | {r['simulations']} | {r['rising_in_training']:.2f} | {r['slope_training_median']:.2f}"
                     f" / {r['slope_test_median']:.2f} | {r['falling']} | {r['tail_share']:.2f} | "
                     f"{_fmt(r['falling_median'])} / {_fmt(r['falling_p95'])} | {_fmt(r['others_median'])} / {_fmt(r['others_p95'])} | "
                     f"{_fmt(r['all_median'])} / {_fmt(r['all_p95'])} |")
    rising = [r["rising_in_training"] for r in rev["fields"].values()]
    falling = [r["falling"] / r["simulations"] for r in rev["fields"].values()]
    lines += ["", f"Over the training bins the inner profile rises with mass in {100 * min(rising):.0f}-"
              f"{100 * max(rising):.0f}% of the simulations; from 11.5-12 to 12-12.3 (10^11.75 to 10^12.15 Msun, where "
              "the black holes' kinetic feedback sets in in IllustrisTNG) it falls in "
              f"{100 * min(falling):.0f}-{100 * max(falling):.0f}% of them, and those carry a large share of the tail. "
              "No continuation of the training bins' trend, physical or not, predicts a turn the training data do "
              "not show; the extrapolation variance is what covers it (68% coverage in the table above)."]
    return lines


def _seed_lines(spread: dict[str, Any]) -> list[str]:
    lines = ["", "The shipped default with other training seeds (same data and split; `train.seed` sets every "
             "network's initial parameters and data order, the held-out training that calibrates the extrapolation "
             "variance included):", "",
             "| training seed | median a | p | " + " | ".join(
                 f"{f} {b}: median / 95th / 68% cov." for b in TEST_BINS for f in FIELDS) + " |",
             "|---|---|---|" + "---|" * (len(TEST_BINS) * len(FIELDS))]
    for r in spread["runs"]:
        cells = [f"{_fmt(r[b][f]['frac_err_median'])} / {_fmt(r[b][f]['frac_err_p95'])} / "
                 f"{_fmt(r[b][f]['coverage_68'])}" for b in TEST_BINS for f in FIELDS]
        lines.append(f"| {r['seed']} | {_fmt(r['a_median'])} | {_fmt(r['p'])} | " + " | ".join(cells) + " |")
    lines += ["", "The medians move little with the seed; the calibration's amplitude does (it rests on one held-out "
              "training, whose own extrapolation error varies from seed to seed), and the coverage with it."]
    return lines


def run(quick: bool, out_dir: Path | None = None, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Both suites and the in-box reference; ``quick``: 3 members, 150 epochs, 1,200 mock rows."""
    del out_dir
    return {"quick": quick, "camels_tng": camels(quick, methods), "in_box": in_box(quick),
            "mock": mock(quick, tuple(m for m in methods if m in MOCK_METHODS)),
            "redshift_step": redshift_step(quick, methods),
            "hard_redshift_step": hard_redshift_step(quick, methods),
            "hard_mass_step": hard_mass_step(quick, methods),
            "one_mass_bin": one_mass_bin(quick, methods), "near_redshifts": near_redshifts(quick, methods),
            "targets": TARGETS, "coverage_68": COVERAGE_68}


SUITES = ("camels", "mock", "redshift", "hard_redshift", "hard_mass", "one_bin", "near_redshift")


def update(methods: tuple[str, ...], with_in_box: bool, quick: bool = True,
           suites: tuple[str, ...] = SUITES, with_seeds: bool = False, with_reversal: bool = False
           ) -> dict[str, Any]:
    """Run only ``methods`` on CAMELS TNG and the mock (and the in-box reference) and merge them
    into the saved results, keeping every other number and noting the commit of the added rows."""
    import json

    from benchmarks.common import BENCHMARKS_DIR, git_commit

    path = BENCHMARKS_DIR / "results" / "extrapolation.json"
    record = json.loads(path.read_text())
    results = record["results"]
    if methods and "camels" in suites:
        new = camels(quick, methods)
        for test in TEST_BINS:
            results["camels_tng"][test].update({m: new[test][m] for m in methods})
    if methods:
        on_mock = tuple(m for m in methods if m in MOCK_METHODS) if "mock" in suites else ()
        if on_mock:
            new = mock(quick, on_mock)
            results["mock"]["13-15"].update({m: new["13-15"][m] for m in on_mock})
        for suite, key, step, known in (("hard_redshift", "hard_redshift_step", hard_redshift_step, HARD_METHODS),
                                        ("hard_mass", "hard_mass_step", hard_mass_step, HARD_METHODS),
                                        ("redshift", "redshift_step", redshift_step, REDSHIFT_METHODS),
                                        ("one_bin", "one_mass_bin", one_mass_bin, NARROW_METHODS),
                                        ("near_redshift", "near_redshifts", near_redshifts, NEAR_METHODS)):
            chosen = tuple(m for m in methods if m in known) if suite in suites else ()
            if not chosen:
                continue
            new = step(quick, chosen)
            kept = results.setdefault(key, dict(new))
            for name, value in new.items():
                if isinstance(value, dict):
                    kept.setdefault(name, {}).update({m: value[m] for m in chosen})
                else:
                    kept[name] = value
    if with_in_box:
        results["in_box"] = in_box(quick)
    if with_seeds:
        results["seed_spread"] = {**seed_spread(), "commit": git_commit()}
    if with_reversal:
        results["trend_reversal"] = {**trend_reversal(), "commit": git_commit()}
    entry = {"methods": list(methods), "in_box": with_in_box, "suites": list(suites), "commit": git_commit()}
    added = results.setdefault("added", [])
    if (methods or with_in_box) and entry not in added:
        added.append(entry)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return record


def _fmt(x: Any) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _table(block: dict[str, Any], test: str, fields: tuple[str, ...],
           methods: tuple[str, ...] = METHODS) -> list[str]:
    rows = ["| method | field | median frac. err | 95th pct | 68% cov. | 95% cov. | fit [s] |",
            "|---|---|---|---|---|---|---|"]
    for method in methods:
        res = block[test].get(method)
        if res is None:
            continue
        for f in fields:
            r = res[f]
            if not isinstance(r, dict):
                continue
            rows.append(f"| {method} | {f} | {_fmt(r['frac_err_median'])} | {_fmt(r['frac_err_p95'])} | "
                        f"{_fmt(r['coverage_68'])} | {_fmt(r['coverage_95'])} | {res['fit_seconds']:.0f} |")
    return rows


def _calibration(block: dict[str, Any], test: str) -> list[str]:
    """One line per method with a calibrated extrapolation variance: its exponent and median amplitude."""
    parts = [f"{m}: p = {r['extrapolation_p']:g}, median a = {r['extrapolation_a_median']:.3g}"
             + (f" (redshift's own term: p = {r['extrapolation_z_p']:g}, median a = "
                f"{r['extrapolation_z_a_median']:.3g} per unit z)" if "extrapolation_z_p" in r else "")
             for m, r in block[test].items() if isinstance(r, dict) and "extrapolation_p" in r]
    if not parts:
        return []
    return ["", "Extrapolation variance σ² = (a·d)^p fitted on the training rows' upper half in mass (a in dex "
            "per unit distance; d the distance outside the training box: mass in dex, parameters in training "
            "spreads, redshift in units of 1; with at least three training redshifts the redshift has its own "
            "term, fitted on the rows at the highest third of the distinct redshifts; each output's a within a "
            f"factor {FIELD_BAND:g} of its field's common amplitude, `FIELD_BAND` in "
            "`profemu.emulator.extrapolation`; section \"Extrapolation variance per radius\" compares it with free "
            "amplitudes): " + "; ".join(parts) + "."]


def _redshift_section(block: dict[str, Any] | None, title: str, fields: tuple[str, ...], about: str) -> list[str]:
    """The lines of one redshift-step suite (none where it was not run)."""
    if not block:
        return []
    test = next(k for k in block if k.startswith("z="))
    return ["", f"### {title}, a redshift step: trained on z = {', '.join(f'{z:g}' for z in TRAIN_REDSHIFTS)} "
            f"({block['n_train']} rows), tested on {test} ({block[test]['n_test']} rows)", "", about, "",
            *_table(block, test, fields), *_calibration(block, test)]


def markdown(results: dict[str, Any]) -> str:
    """The section of BENCHMARKS.md."""
    mode = "quick (3 members, 150 epochs, 1,200 mock rows)" if results.get("quick") else "full"
    tng, mk = results["camels_tng"], results["mock"]
    lines = ["## Extrapolation in halo mass", "",
             f"Mode: {mode}. Training seed 0, split seed 0. See `benchmarks/extrapolation.py` for the "
             "data, the splits and the methods. The `profemu` rows are the shipped defaults as they are in every "
             "mode (5-fold cross-validation, a refit continuing the folds' networks, 5 members, the extrapolation "
             "variance fitted automatically by one more training of 5 members on the lower half of the masses); the "
             "other network rows use the quick "
             "settings with one validation split, and all but `plain MLP` fit the same variance; `plain MLP` is "
             "the default network kind without self-similar scaling and without that variance.", "",
             f"### CAMELS LH TNG: trained on 11-12 ({tng['n_train']} rows), tested on 12-12.3 "
             f"({tng['12-12.3']['n_test']} rows)", ""]
    lines += _table(tng, "12-12.3", FIELDS) + _calibration(tng, "12-12.3")
    lines += ["", f"Targets: rho median <= {TARGETS['rho']['frac_err_median']}, 95th <= "
              f"{TARGETS['rho']['frac_err_p95']}; pth median <= {TARGETS['pth']['frac_err_median']}, 95th <= "
              f"{TARGETS['pth']['frac_err_p95']}; 68% coverage in {list(COVERAGE_68)}."]
    box = results.get("in_box")
    if box:
        lines += ["", f"In-box reference: the same {box['n_test']} rows of 12-12.3 predicted with that mass bin "
                  f"*in* the training data ({box['folds']}-fold cross-validation by simulation, bins 11-12.3, the "
                  "network rows' settings: one validation split, no extrapolation variance): " + "; ".join(
                      f"{f} median {_fmt(box[f]['frac_err_median'])}, 95th {_fmt(box[f]['frac_err_p95'])}, 68% cov. "
                      f"{_fmt(box[f]['coverage_68'])}" for f in FIELDS)
                  + ". An emulator extrapolating to 12-12.3 cannot be expected to beat one trained there."]
    for extra in results.get("added", []):
        where = extra.get("suites", ["camels"])
        lines += ["", f"Rows {', '.join(extra['methods']) or '(none)'}"
                  + (" and the in-box reference" if extra.get("in_box") else "")
                  + f" ({', '.join(where)}) measured at commit `{extra['commit']}` (same data, splits and seeds)."]
    lines += ["", f"### CAMELS LH TNG: tested on 12.3-13.1 ({tng['12.3-13.1']['n_test']} rows)", ""]
    lines += _table(tng, "12.3-13.1", FIELDS)
    spread = results.get("seed_spread")
    if spread:
        lines += ["", f"### CAMELS LH TNG: the default with other training seeds (measured at commit "
                  f"`{spread['commit']}`)", *_seed_lines(spread)]
    if results.get("trend_reversal"):
        lines += _reversal_lines(results["trend_reversal"])
    fields = tuple(k for k, v in next(v for k, v in mk["13-15"].items() if k in METHODS).items()
                   if isinstance(v, dict))
    lines += ["", "### Mock universe (Battaglia gNFW pressure + BCM gas): trained on log10 M <= 13 "
              f"({mk['n_train']} rows), tested on 13-15 ({mk['13-15']['n_test']} rows)", ""]
    lines += ["The mock's own physics: the gas fraction of the baryon-correction model, f_gas = f_b / (1 + "
              "(M_c/M)^β) (it levels off towards the cosmic fraction above M_c ~ 10^13-10^14 Msun), and T = P μ m_p / "
              "(ρ k_B). The default network carries the same two pieces of physics in its structure (the gas inside "
              "R200c kept below f_b M, which takes that form when the network's gas fraction grows as a power of "
              "mass, and the ideal-gas temperature; `data.gas_fraction_bound`, `data.ideal_gas_temperature`): their "
              "gain here is the gain of physics shared by model and mock, not evidence for another family. Both "
              "apply only to radii in units of R_Δ, so none of the CAMELS rows above uses them.", ""]
    lines += _table(mk, "13-15", fields) + _calibration(mk, "13-15")
    lines += ["", f"Target: profemu median <= {MOCK_RATIO} x the better of GP and PCA+RBF."]
    lines += _redshift_section(
        results.get("redshift_step"), "Mock universe", fields,
        "The same simulations (lh6, seed 0) at every redshift; the redshift is an input of every method. "
        "The mock's redshift dependence is that of its profile family (self-similar scales with E(z) and "
        "R200c(z), Battaglia-type (1+z) factors in the pressure parameters).")
    lines += _redshift_section(
        results.get("hard_redshift_step"), "Hard mock (35 parameters, physical radii)", FIELDS,
        "The 35-parameter single-halo mock (`make_hard_mock`, seed 0, the same haloes at every redshift, "
        "the CAMELS SB35 parameter table) on 30 radii in Mpc, with 0.2-0.4 dex scatter; the median and "
        "95th percentile are against the noiseless truth, the coverage counts the noisy haloes (var + "
        "noise²). Its family is the mock universe's (Battaglia pressure, baryon-correction gas) written in "
        "r/R200c, so the outskirts drawn on r/R_Δ (`profemu`, the hybrid coordinate) meet the family's own "
        "coordinate there: its gain over `profemu, physical radii` is partly by construction.")
    hard_mass = results.get("hard_mass_step")
    if hard_mass:
        test = f">={HARD_MASS_TEST_MIN:g}"
        lines += ["", f"### Hard mock (35 parameters, physical radii), a mass step at three redshifts: trained on "
                  f"log10 M <= {HARD_MASS_TRAIN_MAX:g} ({hard_mass['n_train']} rows), tested on log10 M >= "
                  f"{HARD_MASS_TEST_MIN:g} ({hard_mass[test]['n_test']} rows)", "",
                  f"The hard mock's haloes of 10^{HARD_MASS_RANGE[0]:g}-10^{HARD_MASS_RANGE[1]:g} Msun (seed 0) at z = "
                  f"{', '.join(f'{z:g}' for z in HARD_MASS_REDSHIFTS)}, the redshift an input of every method; the "
                  "median and 95th percentile against the noiseless truth, the coverage of the noisy haloes. The same "
                  "family as the redshift step above (so the hybrid coordinate's gain is partly by construction).", "",
                  *_table(hard_mass, test, FIELDS), *_calibration(hard_mass, test)]
    lines += _narrow_lines(results.get("one_mass_bin"), results.get("near_redshifts"))
    lines.append("")
    return "\n".join(lines)


def _narrow_lines(one_bin: dict[str, Any] | None, near: dict[str, Any] | None) -> list[str]:
    """The section of the suites whose training rows span little in mass or redshift."""
    if not one_bin and not near:
        return []
    lines = ["", "### Training rows that span little: one mass bin, two nearby redshifts", "",
             "The mass and redshift inputs are scaled by their training spread, but never by less than 0.2 dex "
             "and 0.25 in z (`MASS_SCALE_FLOOR_DEX`, `REDSHIFT_SCALE_FLOOR` in `profemu.data.transforms`). "
             f"The row `{SPREAD_SCALED}` is the same default without those floors: a halo half a dex above one "
             "narrow mass bin is then dozens of training spreads away, where the network's output is unconstrained. "
             "`plain MLP` has the floors (it is the default network without self-similar scaling, quick settings)."]
    if one_bin:
        std = one_bin.get("train_log10_mass_std")
        lines += ["", f"CAMELS LH TNG, trained on the one mass bin {ONE_BIN} ({one_bin['n_train']} rows"
                  + (f", log10 M spread {std:.3f} dex" if std is not None else "") + "):"]
        for test in ONE_BIN_TESTS:
            lines += ["", f"Tested on {test} ({one_bin[test]['n_test']} rows):", "",
                      *_table(one_bin, test, FIELDS, NARROW_METHODS)]
        lines += _calibration(one_bin, ONE_BIN_TESTS[0])
    if near:
        fields = tuple(k for k, v in next(v for k, v in near[f"z={FAR_REDSHIFTS[0]:g}"].items()
                                          if k in NEAR_METHODS).items() if isinstance(v, dict))
        lines += ["", f"Mock universe (lh6, seed 0), trained at z = {', '.join(f'{z:g}' for z in NEAR_REDSHIFTS)} "
                  f"({near['n_train']} rows), scored against its noisy rows:"]
        for z in FAR_REDSHIFTS:
            test = f"z={z:g}"
            lines += ["", f"Tested at {test} ({near[test]['n_test']} rows):", "",
                      *_table(near, test, fields, NEAR_METHODS)]
        lines += ["", "Beyond the box the variance is not calibrated here: one mass bin has no heavier half to hold "
                  "out (`train.extrapolation_variance: auto` skips the term, with a log line), and two redshifts are "
                  "too few for the redshift's own term, so the mass-calibrated term carries the redshift distance; "
                  "the default's 68% intervals hold 0.4-0.6 of the truth. On the mock's density and temperature the "
                  f"gas-fraction bound costs accuracy at z = 1 (row `{NO_BOUND}`; the mock's density carries the mean "
                  "baryon density, (1 + z)^3, on top of its self-similar halo term, and with the bound the network "
                  "learns the density through its enclosed gas fraction, a trend learnt over Δz = 0.1 going on in "
                  "that coordinate). With three "
                  "training redshifts (the redshift step above) and in mass the bound is neutral or far better, so "
                  "it stays on."]
    return lines


if __name__ == "__main__":  # python -m benchmarks.extrapolation [method ...] [--in-box] [--seeds] [--reversal] [--suites a,b]
    import sys

    from benchmarks.common import BENCHMARKS_DIR, REPO_ROOT
    from benchmarks.markdown import write_document

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:]
    suites = SUITES
    if "--suites" in args:
        i = args.index("--suites")
        suites = tuple(args[i + 1].split(",")) if i + 1 < len(args) else ()
        args = args[:i] + args[i + 2:]
        if not suites or any(s not in SUITES for s in suites):
            sys.exit(f"--suites: choose a comma-separated list of {list(SUITES)}")
    wanted = tuple(a for a in args if a not in ("--in-box", "--seeds", "--reversal"))
    unknown = [m for m in wanted if m not in (*METHODS, *NEAR_METHODS)]
    if unknown:
        sys.exit(f"unknown methods {unknown}; choose from {list(dict.fromkeys((*METHODS, *NEAR_METHODS)))}")
    update(wanted, "--in-box" in args, suites=suites, with_seeds="--seeds" in args,
           with_reversal="--reversal" in args)
    write_document(BENCHMARKS_DIR / "results", REPO_ROOT / "BENCHMARKS.md")
