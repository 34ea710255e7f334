"""The variance that grows outside the training box: distance, formula, fit and both prediction paths."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from profemu.emulator.extrapolation import (
    _fit_grid,
    _nll_without,
    extrapolation_variance,
    read_record,
)
from profemu.errors import FormatError
from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.mktemp("tiny"))


def _with_record(run: TinyRun, a: float, p: float) -> Any:
    from profemu.emulator import Emulator

    emu = run.emulator
    meta = copy.deepcopy(emu.metadata)
    meta["extrapolation"] = {"a": [a] * emu.transforms.target_dim, "p": p}
    return Emulator(emu.transforms, emu.model_config, emu.weights, metadata=meta,
                    variance_scale=emu.variance_scale, on_extrapolation="ignore")


def test_distance_is_zero_inside_and_in_training_units_outside(run: TinyRun) -> None:
    emu, ds = run.emulator, run.dataset
    d, per = emu.distance_outside(ds.params[:5], ds.log10_mass[:5])
    np.testing.assert_array_equal(d, 0.0)
    hi_mass = emu.training_box["log10_mass"][1]
    x = np.median(ds.params, axis=0)
    d, per = emu.distance_outside(x, hi_mass + 0.7)
    np.testing.assert_allclose(d, [0.7], rtol=1e-6)  # mass in dex
    assert set(per) >= {"log10_mass"} and per["log10_mass"][0] == pytest.approx(0.7, rel=1e-6)
    # a linear parameter 2 training spreads above its maximum, with the mass 0.3 dex below the box
    j = next(i for i, nm in enumerate(emu.param_names) if nm not in emu.log_params)
    spread = emu.transforms.input_stats["params"][1][j]
    y = x.copy()
    y[j] = emu.training_box[emu.param_names[j]][1] + 2.0 * spread
    lo_mass = emu.training_box["log10_mass"][0]
    d, per = emu.distance_outside(y, lo_mass - 0.3)
    np.testing.assert_allclose(d, [np.hypot(2.0, 0.3)], rtol=1e-6)
    np.testing.assert_allclose(per[emu.param_names[j]], [2.0], rtol=1e-6)


def test_variance_formula_and_its_gradient_at_the_box_edge() -> None:
    import jax
    import jax.numpy as jnp

    d2 = np.array([0.0, 0.25, 4.0])
    a = np.array([0.1, 0.3])
    v = extrapolation_variance(d2, a, 1.5)
    expected = (a[None, :] * np.sqrt(d2)[:, None]) ** 1.5
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    grad = jax.grad(lambda z: extrapolation_variance(z, jnp.asarray(a), 1.5, jnp).sum())(jnp.asarray(d2))
    assert np.all(np.isfinite(np.asarray(grad))) and float(grad[0]) == 0.0


def test_both_prediction_paths_add_the_same_extrapolation_variance(run: TinyRun) -> None:
    ds = run.dataset
    emu = _with_record(run, 0.4, 2.0)
    hi_mass = emu.training_box["log10_mass"][1]
    x = ds.params[:3]
    m = np.array([ds.log10_mass[0], hi_mass + 0.5, hi_mass + 1.0])
    pred = emu.predict(x, m)
    name = emu.field_names[0]
    np.testing.assert_allclose(pred[name].distance_outside, [0.0, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(pred[name].extrapolation[:, 0], [0.0, 0.04, 0.16], rtol=1e-6)
    assert "log10_mass" in pred[name].outside
    plain = run.emulator.predict(x, m, on_extrapolation="ignore")[name]
    np.testing.assert_allclose(pred[name].var, plain.var + pred[name].extrapolation, rtol=1e-6)
    _mean, var = emu.predict_fn(x, m)
    np.testing.assert_allclose(np.asarray(var)[:, 0], pred[name].var, rtol=2e-4)


def test_the_fit_recovers_a_known_amplitude_and_exponent() -> None:
    rng = np.random.default_rng(0)
    n, width = 4000, 3
    d = rng.uniform(0.0, 2.0, n)
    a_true, p_true = np.array([0.05, 0.2, 0.5]), 1.5
    v0 = np.full((n, width), 0.01)
    var = v0 + (a_true[None, :] * d[:, None]) ** p_true
    res = rng.normal(size=(n, width)) * np.sqrt(var)
    a, p, _ = _fit_grid(res, v0, d)
    assert p == pytest.approx(p_true, abs=0.25)
    np.testing.assert_allclose(a, a_true, rtol=0.2)
    # no excess scatter: the term switches off
    a0, _, _ = _fit_grid(rng.normal(size=(n, width)) * 0.1, v0, d)
    assert np.all(a0 < 0.03)


def test_one_held_out_distance_fixes_the_exponent_at_linear_growth() -> None:
    """Rows held out at one distance (one redshift step) fit every exponent equally; the fit takes
    p = 2 (the error grows linearly with the distance), not the grid's first (slowest) exponent, and
    matches the observed excess variance at that distance."""
    rng = np.random.default_rng(1)
    n = 2000
    d = np.full(n, 0.5)
    v0 = np.full((n, 1), 0.01)
    res = rng.normal(size=(n, 1)) * np.sqrt(0.01 + 0.04)  # excess variance 0.04 at d = 0.5
    a, p, _ = _fit_grid(res, v0, d)
    assert p == 2.0
    assert (a[0] * 0.5) ** 2 == pytest.approx(0.04, rel=0.15)


def test_malformed_records_are_refused() -> None:
    assert read_record({}, 4) is None
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.a"):
        read_record({"extrapolation": {"a": [0.1, -1.0, 0.1, 0.1], "p": 1.0}}, 4)
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.p"):
        read_record({"extrapolation": {"a": [0.1] * 4, "p": 0.0}}, 4)
    with pytest.raises(FormatError, match=r"metadata\.extrapolation: no 'a'; it needs 'a'.*profemu train"):
        read_record({"extrapolation": {"p": 1.0}}, 4)
    # numbers only, and amplitudes no fit can give (they overflow the variance) refused with the value
    for bad, where in (({"p": True}, r"\.p: True is not a number"), ({"p": "2"}, r"\.p: 2 is not a number"),
                       ({"p": 10**400}, r"too large for a float"), ({"a": [10**400] * 4}, r"too large for a float"),
                       ({"a": ["0.1"] * 4}, r"\.a: must be a list of 4 numbers"),
                       ({"a": [0.1, 1e300, 0.1, 0.1]}, r"\.a: 1e\+300 at output 1 must be a finite number in \[0, 1000\]")):
        with pytest.raises(FormatError, match=where):
            read_record({"extrapolation": {"a": [0.1] * 4, "p": 1.0, **bad}}, 4)
    # numpy numbers are numbers
    terms = read_record({"extrapolation": {"a": np.full(4, 0.1), "p": np.float32(1.0)}}, 4)
    assert terms is not None and terms.p == 1.0


def test_an_emulator_with_a_damaged_record_is_refused_when_built(run: TinyRun) -> None:
    from profemu.emulator.core import Emulator

    width = run.emulator.transforms.target_dim
    metadata = {**run.emulator.metadata, "extrapolation": {"a": [0.1] * width, "p": "2"}}
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.p"):
        Emulator(run.emulator.transforms, run.emulator.network.cfg, run.emulator.weights, metadata=metadata)


def test_fit_holds_out_the_upper_masses_and_writes_a_loadable_record(run: TinyRun, tmp_path: Any) -> None:
    import json

    from profemu.emulator import Emulator
    from profemu.emulator.extrapolation import fit_extrapolation_variance
    from profemu.errors import DataError

    ds = run.dataset
    seen: list[Any] = []

    def fit(rows: Any) -> Any:  # stands in for a training run: the tiny run's emulator
        seen.append(rows)
        return run.emulator

    record = fit_extrapolation_variance(fit, ds, emulator=run.emulator, fraction=0.25)
    inner = seen[0]
    assert inner.n == ds.n - record["held_out_rows"] and record["held_out_rows"] == pytest.approx(ds.n / 4, abs=2)
    assert inner.log10_mass.max() == record["mass_cut"] < np.quantile(ds.log10_mass, 0.76)
    assert len(record["a"]) == run.emulator.transforms.target_dim and record["p"] > 0
    meta = {**run.emulator.metadata, "extrapolation": json.loads(json.dumps(record))}
    emu = Emulator(run.emulator.transforms, run.emulator.model_config, run.emulator.weights, metadata=meta,
                   variance_scale=run.emulator.variance_scale)
    emu.save(tmp_path / "emu")
    back = Emulator.load(tmp_path / "emu")
    assert back.extrapolation is not None and back.extrapolation[1] == record["p"]
    with pytest.raises(DataError, match="fraction"):
        fit_extrapolation_variance(fit, ds, fraction=1.5)


def test_a_redshift_term_is_read_checked_and_added_to_its_own_distance() -> None:
    from profemu.emulator.extrapolation import record_variance

    rec = {"a": [0.2] * 4, "p": 2.0, "redshift": {"a": [0.05] * 4, "p": 1.0}}
    terms = read_record({"extrapolation": rec}, 4)
    assert terms is not None and terms.redshift is not None and terms.redshift[1] == 1.0
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.redshift\.a"):
        read_record({"extrapolation": {**rec, "redshift": {"a": [0.1], "p": 1.0}}}, 4)
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.redshift"):
        read_record({"extrapolation": {**rec, "redshift": [0.1, 1.0]}}, 4)
    # 0.3 dex above the mass range and 0.5 above the redshifts: each term on its own distance
    dz = np.array([0.0, 0.5, 0.5])
    dm = np.array([0.3, 0.0, 0.3])
    v = record_variance(terms, dm**2 + dz**2, {"redshift": dz, "log10_mass": dm})
    np.testing.assert_allclose(v[:, 0], (0.2 * dm) ** 2 + 0.05 * dz, rtol=1e-12)
    # without the redshift's own term the redshift counts in the mass-calibrated one
    plain = record_variance(terms._replace(redshift=None), dm**2 + dz**2, {"redshift": dz})
    np.testing.assert_allclose(plain[:, 0], 0.04 * (dm**2 + dz**2), rtol=1e-12)


def test_three_redshifts_get_their_own_term_in_both_prediction_paths() -> None:
    import jax

    from profemu.config import Config
    from profemu.data.mock import make_mock_snapshots
    from profemu.runs.training import train_emulator

    ds = make_mock_snapshots((0.0, 0.3, 0.6), 120, seed=4, param_set="lh6", with_pk=False, n_r=6)
    cfg = Config().updated({"train.epochs": 4, "train.members": 2, "model.hidden": [16], "train.cv_folds": 0,
                            "data.input_relevance": "off", "data.fields": ["pth"]})
    emu = train_emulator(ds, cfg, progress=lambda e: None).emulator
    record = emu.metadata["extrapolation"]
    assert record["redshift"]["redshift_cut"] == pytest.approx(0.3) and record["redshift"]["held_out_rows"] == 120
    terms = emu.extrapolation
    assert terms is not None and terms.redshift is not None
    # a halo inside the mass range at z = 1.0: only the redshift term, 0.4 beyond the box
    x, m = ds.params[:1], np.array([float(np.median(ds.log10_mass))])
    pred = emu.predict(x, m, redshift=1.0, on_extrapolation="ignore")["pth"]
    a_z, p_z = terms.redshift
    assert np.any(a_z > 0)
    np.testing.assert_allclose(pred.extrapolation[0], (a_z * 0.4) ** p_z, rtol=1e-6, atol=1e-12)
    _mean, var = jax.jit(emu.predict_fn)(x, m, None, np.array([1.0]))
    np.testing.assert_allclose(np.asarray(var).reshape(-1), pred.var[0], rtol=2e-4)



def test_a_redshift_parameter_column_gets_the_redshifts_own_term() -> None:
    """Snapshots whose redshift is a parameter column ``z`` (no redshift input): the column is held
    out and measured like the redshift input, and its term grows with its own distance in Δz."""
    import jax

    from profemu.config import Config
    from profemu.data.dataset import ProfileDataset
    from profemu.data.mock import make_mock_snapshots
    from profemu.runs.training import train_emulator

    snap = make_mock_snapshots((0.0, 0.3, 0.6), 120, seed=4, param_set="lh6", with_pk=False, n_r=6)
    ds = ProfileDataset(params=np.column_stack([snap.params, snap.redshift]), param_names=[*snap.param_names, "z"],
                        log10_mass=snap.log10_mass, radius=snap.radius, profiles=snap.profiles, units=snap.units,
                        groups=snap.groups, meta=snap.meta, noise=snap.noise)
    cfg = Config().updated({"train.epochs": 4, "train.members": 2, "model.hidden": [16], "train.cv_folds": 0,
                            "data.input_relevance": "off", "data.fields": ["pth"]})
    emu = train_emulator(ds, cfg, progress=lambda e: None).emulator
    record = emu.metadata["extrapolation"]["redshift"]
    assert record["input"] == "z" and record["redshift_cut"] == pytest.approx(0.3) and record["held_out_rows"] == 120
    terms = emu.extrapolation
    assert terms is not None and terms.redshift is not None and terms.redshift_input == "z"
    # inside the mass range and the other parameters, z = 1.0: only the redshift's term
    x = ds.params[:1].copy()
    x[0, -1] = 1.0
    m = np.array([float(np.median(ds.log10_mass))])
    pred = emu.predict(x, m, on_extrapolation="ignore")["pth"]
    a_z, p_z = terms.redshift
    assert np.any(a_z > 0)
    # measured in Δz, as the redshift input: the held-out fit (trained on z <= 0.3) and the final
    # emulator (z <= 0.6) have other spreads of z, the same Δz
    np.testing.assert_allclose(pred.extrapolation[0], (a_z * 0.4) ** p_z, rtol=1e-6, atol=1e-12)
    d, per_input = emu.distance_outside(x, m)
    assert per_input["z"][0] == pytest.approx(0.4) and d[0] == pytest.approx(0.4)
    _mean, var = jax.jit(emu.predict_fn)(x, m)
    np.testing.assert_allclose(np.asarray(var).reshape(-1), pred.var[0], rtol=2e-4)
    assert emu.metadata["extrapolation"]["field_band"] == 3.0
    with pytest.raises(FormatError, match=r"metadata\.extrapolation\.redshift\.input"):
        read_record({"extrapolation": {**emu.metadata["extrapolation"], "redshift": {**record, "input": 3}}},
                    a_z.size)
    # a record written before the column was measured in Δz (no field_band) keeps its training spread
    spread = float(np.asarray(emu.transforms.input_stats["params"][1])[-1])
    legacy = {k: v for k, v in emu.metadata["extrapolation"].items() if k != "field_band"}
    emu.metadata["extrapolation"] = legacy
    assert emu.distance_outside(x, m)[1]["z"][0] == pytest.approx(0.4 / spread)
    for name in ("Omega_m", "zz"):  # an input that is not the redshift, or none at all
        emu.metadata["extrapolation"] = {**legacy, "redshift": {**record, "input": name}}
        with pytest.raises(FormatError, match=rf"'{name}'.*among the emulator's inputs \['redshift', 'z'\]"):
            emu.predict(x, m, on_extrapolation="ignore")


def test_a_redshift_given_as_column_and_as_input_counts_once() -> None:
    """Rows with a z column and the same redshift array: both are inputs, the step in redshift is
    one distance (not sqrt(2) of it), and a constant pair trains (the array equals the column)."""
    from profemu.config import Config
    from profemu.data.dataset import ProfileDataset
    from profemu.data.mock import make_mock_snapshots
    from profemu.runs.training import train_emulator

    cfg = Config().updated({"train.epochs": 3, "train.members": 2, "model.hidden": [16], "train.cv_folds": 0,
                            "data.input_relevance": "off", "data.fields": ["pth"]})

    def both(redshifts: tuple[float, ...]) -> ProfileDataset:
        snap = make_mock_snapshots(redshifts, 120, seed=4, param_set="lh6", with_pk=False, n_r=6)
        return ProfileDataset(params=np.column_stack([snap.params, snap.redshift]),
                              param_names=[*snap.param_names, "z"], log10_mass=snap.log10_mass, radius=snap.radius,
                              profiles=snap.profiles, units=snap.units, groups=snap.groups, meta=snap.meta,
                              noise=snap.noise, redshift=snap.redshift)

    ds = both((0.0, 0.3, 0.6))
    emu = train_emulator(ds, cfg, progress=lambda e: None).emulator
    x = ds.params[:1].copy()
    x[0, -1] = 1.0
    m = np.array([float(np.median(ds.log10_mass))])
    d, per_input = emu.distance_outside(x, m, redshift=1.0)
    assert per_input["z"][0] == pytest.approx(0.4) and per_input["redshift"][0] == pytest.approx(0.4)
    assert d[0] == pytest.approx(0.4)
    terms = emu.extrapolation
    assert terms is not None and terms.redshift is not None
    a_z, p_z = terms.redshift
    pred = emu.predict(x, m, redshift=1.0, on_extrapolation="ignore")["pth"]
    np.testing.assert_allclose(pred.extrapolation[0], (a_z * 0.4) ** p_z, rtol=1e-6, atol=1e-12)
    constant = both((0.25,))
    assert train_emulator(constant, cfg, progress=lambda e: None).emulator.predict(
        constant.params[:1], constant.log10_mass[:1], redshift=0.25)["pth"].mean.shape == (1, 6)


def test_the_redshift_is_held_out_by_its_distinct_values_and_read_from_z_or_redshift() -> None:
    """Most rows at one redshift: the highest third of the distinct redshifts is still held out.
    A column ``Z`` (a metallicity, usually) is not a redshift; ``z`` and ``Redshift`` are."""
    from profemu.data.dataset import ProfileDataset
    from profemu.data.selfsimilar import redshift_column
    from profemu.emulator.extrapolation import redshift_holdout

    assert redshift_column(["Omega_m", "z"]) == 1 and redshift_column(["Redshift"]) == 0
    assert redshift_column(["Omega_m", "Z"]) is None
    rng = np.random.default_rng(0)
    z = np.concatenate([np.zeros(300), np.full(10, 0.5), np.full(10, 1.0)])
    n = z.size

    def rows(redshift: np.ndarray | None, columns: dict[str, np.ndarray]) -> ProfileDataset:
        params = np.column_stack([rng.uniform(0.1, 0.5, n), *columns.values()])
        return ProfileDataset(params=params, param_names=["Omega_m", *columns], log10_mass=rng.uniform(12, 13, n),
                              radius=np.geomspace(0.1, 1.0, 4), profiles={"rho": np.ones((n, 4))},
                              redshift=redshift)

    inner, held, name, cut = redshift_holdout(rows(z, {}))  # type: ignore[misc]
    assert name == "redshift" and cut == 0.5 and held.size == 10 and np.all(z[held] == 1.0) and inner.size == 310
    inner, held, name, cut = redshift_holdout(rows(None, {"z": z}))  # type: ignore[misc]
    assert name == "z" and held.size == 10
    assert "it needs 3" in redshift_holdout(rows(None, {"z": np.where(z > 0.7, 0.5, z)}))
    assert "only 1 row(s)" in redshift_holdout(rows(np.concatenate([z[:-10], [0.7] * 9, [1.0]]), {}))
    assert redshift_holdout(rows(None, {"Z": z})) == "the rows have no redshift"

def test_the_score_without_the_term_is_the_grids_score_at_zero_distance() -> None:
    rng = np.random.default_rng(3)
    res = rng.normal(0.0, 0.2, (300, 7))
    res[rng.random(res.shape) < 0.1] = np.nan
    v0 = rng.uniform(0.001, 0.05, res.shape)
    assert _nll_without(res, v0) == pytest.approx(_fit_grid(res, v0, np.zeros(300))[2], rel=1e-12)
    assert _nll_without(res, v0) > _fit_grid(res, v0, rng.uniform(0.1, 1.0, 300))[2]  # the term can only help


def test_a_fields_amplitudes_stay_within_the_band_of_its_common_amplitude() -> None:
    """One radius whose held-out residuals scatter ten times more (a few stacks of few haloes)
    gets an amplitude within FIELD_BAND of its field's common one (so at most FIELD_BAND² times
    any other radius's); another field keeps its own."""
    from profemu.emulator.extrapolation import FIELD_BAND

    assert FIELD_BAND == 3.0
    rng = np.random.default_rng(4)
    n = 3000
    d = rng.uniform(0.2, 1.0, n)
    a_true = np.array([0.1, 0.1, 0.1, 1.5, 0.02, 0.02])
    v0 = np.full((n, a_true.size), 1e-4)
    res = rng.normal(size=v0.shape) * np.sqrt(v0 + (a_true[None, :] * d[:, None]) ** 1.5)
    free, _, _ = _fit_grid(res, v0, d)
    assert free[3] / free[0] > 12  # fitted freely, the odd radius takes its own scatter
    fields = [np.arange(0, 4), np.arange(4, 6)]
    a, p, _ = _fit_grid(res, v0, d, fields)
    for columns in fields:
        assert a[columns].max() / a[columns].min() <= 9.0 * (1 + 1e-9)  # each within 3x of the common one
    # the second field is not pulled up by the first: its variance at a typical distance is its own
    np.testing.assert_allclose((a[4:] * 0.6) ** p, (0.02 * 0.6) ** 1.5, rtol=0.3)
    # a radius never measured (no valid held-out residual) takes its field's common amplitude, not the
    # band's lower edge; a zero variance is not a measurement either (no NaN scores)
    res[:, 2] = np.nan
    v0[:, 1] = 0.0
    a_gap, _, nll_gap = _fit_grid(res, v0, d, fields)
    assert np.isfinite(nll_gap) and np.all(np.isfinite(a_gap))
    # the quiet radius sits at the band's lower edge here; the unmeasured ones at the common amplitude
    assert a_gap[1] == a_gap[2] and a_gap[2] > 2 * a_gap[0]


def test_the_warning_outside_the_box_says_when_no_variance_covers_the_distance(run: TinyRun) -> None:
    """An emulator without a calibrated extrapolation variance (switched off, or one narrow mass bin
    that cannot calibrate it) says, when asked outside its box, that its intervals there are too
    narrow; one with the variance does not."""
    from profemu.emulator import Emulator

    emu = run.emulator
    meta = {k: v for k, v in emu.metadata.items() if k != "extrapolation"}
    bare = Emulator(emu.transforms, emu.model_config, emu.weights, metadata=meta,
                    variance_scale=emu.variance_scale, on_extrapolation="warn")
    x = np.median(run.dataset.params, axis=0)
    above = bare.training_box["log10_mass"][1] + 0.5
    with pytest.warns(UserWarning, match="has no variance for the distance outside the box") as caught:
        bare.predict(x, above)
    assert len(caught) == 1 and "log10_mass" in str(caught[0].message)
    calibrated = _with_record(run, 0.4, 2.0)
    calibrated.on_extrapolation = "warn"
    with pytest.warns(UserWarning, match="predictions there are extrapolations") as caught:
        calibrated.predict(x, above)
    assert all("no variance" not in str(w.message) for w in caught)
