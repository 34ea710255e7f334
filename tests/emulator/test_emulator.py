"""The Emulator's prediction: the ensemble's moments, the member view, the training box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.mktemp("tiny"))


def test_predict_is_the_moment_match_of_the_members(run: TinyRun) -> None:
    emu, ds = run.emulator, run.dataset
    rows = np.arange(7)
    means, variances = emu.predict_members(ds.params[rows], ds.log10_mass[rows])
    assert means.shape == (emu.members, rows.size, len(emu.field_names), emu.radius.size)
    assert variances.shape == means.shape
    pred = emu.predict(ds.params[rows], ds.log10_mass[rows])
    mu = means.mean(axis=0)
    epistemic = means.var(axis=0) * emu.variance_scale
    aleatoric = variances.mean(axis=0)
    for f, name in enumerate(emu.field_names):
        np.testing.assert_allclose(pred[name].mean, mu[:, f], atol=1e-6)
        np.testing.assert_allclose(pred[name].epistemic, epistemic[:, f], rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(pred[name].aleatoric, aleatoric[:, f], rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(pred[name].var, aleatoric[:, f] + epistemic[:, f], rtol=1e-5)
    # members really disagree, so a dropped epistemic term would be visible
    assert (epistemic > 0).all()


def test_training_box_and_log_params_describe_the_training_inputs(run: TinyRun) -> None:
    emu, ds = run.emulator, run.dataset
    box = emu.training_box
    for j, name in enumerate(emu.param_names):
        lo, hi = box[name]
        assert lo >= ds.params[:, j].min() - 1e-12 and hi <= ds.params[:, j].max() + 1e-12
        assert lo < hi
    assert box["log10_mass"][0] < box["log10_mass"][1]
    assert set(emu.log_params) == set(ds.log_params)
    assert emu.radius_unit == ds.radius_unit
    # a copy: editing it does not move the emulator's box
    box["log10_mass"] = (0.0, 100.0)
    assert emu.training_box["log10_mass"] != (0.0, 100.0)


def test_saved_emulator_predicts_the_same_members(run: TinyRun, tmp_path: Path) -> None:
    from profemu.emulator import Emulator

    emu = run.emulator
    emu.save(tmp_path / "emu")
    back = Emulator.load(tmp_path / "emu")
    x, m = run.dataset.params[:3], run.dataset.log10_mass[:3]
    np.testing.assert_array_equal(back.predict_members(x, m)[0], emu.predict_members(x, m)[0])


def test_prediction_keeps_every_part_and_weights_are_not_called_params(run: TinyRun) -> None:
    emu, ds = run.emulator, run.dataset
    p = emu.predict(ds.params[:3], ds.log10_mass[:3], ds.pk_ratio[:3] if ds.pk_ratio is not None else None,
                    on_extrapolation="ignore")[emu.field_names[0]]
    with pytest.raises(TypeError, match="does not unpack"):
        _mean, _var = p
    parts = p.as_dict()
    np.testing.assert_allclose(parts["var"], parts["aleatoric"] + parts["epistemic"], rtol=1e-6)
    assert set(parts) == {"mean", "var", "std", "aleatoric", "epistemic", "extrapolation"}
    np.testing.assert_array_equal(parts["extrapolation"], 0.0)  # no calibrated term in the tiny run
    with pytest.warns(DeprecationWarning, match="renamed Emulator.weights"):
        old = emu.params
    assert old is emu.weights
    assert callable(emu.predict_fields_fn) and emu.predict_fields_fn is emu.predict_fields_fn  # a property


def test_predict_fn_checks_a_concrete_redshift_like_predict(run: TinyRun) -> None:
    """The tiny emulator does not take a redshift: predict_fn called with its training redshift
    gives the prediction without one, and with another (concrete) redshift the one-line error of
    predict instead of a prediction that silently ignores it."""
    from profemu.errors import DataError

    emu, ds = run.emulator, run.dataset
    spec_z = emu.training_box.get("redshift")
    plain = np.asarray(emu.predict_fn(ds.params[:3], ds.log10_mass[:3])[0])
    if spec_z is not None:
        same = np.asarray(emu.predict_fn(ds.params[:3], ds.log10_mass[:3], None, spec_z[0])[0])
        np.testing.assert_array_equal(same, plain)
    with pytest.raises(DataError, match=r"^redshift: (1\.7, but this emulator was trained at the single redshift|"
                                        r"this emulator was trained without a redshift)"):
        emu.predict_fn(ds.params[:3], ds.log10_mass[:3], None, 1.7)


def test_compiled_prediction_is_the_same_on_few_and_many_inputs(run: TinyRun) -> None:
    """The compiled prediction runs the members as one product on a few inputs and one after the
    other on many (on CPU): both give the numpy prediction."""
    import jax

    from profemu.emulator.core import BATCHED_MEMBERS_MAX_ROWS

    emu, ds = run.emulator, run.dataset
    assert emu.members > 1
    rows = np.resize(np.arange(ds.n), BATCHED_MEMBERS_MAX_ROWS + 6)
    x, m = ds.params[rows], ds.log10_mass[rows]
    pk = None if ds.pk_ratio is None else ds.pk_ratio[rows]
    fn = jax.jit(emu.predict_fn)
    many_mean, many_var = (np.asarray(a) for a in fn(x, m, pk))
    few_mean, few_var = (np.asarray(a) for a in fn(x[:3], m[:3], None if pk is None else pk[:3]))
    np.testing.assert_allclose(few_mean, many_mean[:3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(few_var, many_var[:3], rtol=1e-4, atol=1e-9)
    pred = emu.predict(x[:3], m[:3], None if pk is None else pk[:3], on_extrapolation="ignore")
    for f, name in enumerate(emu.field_names):
        np.testing.assert_allclose(few_mean[:, f], pred[name].mean, rtol=0, atol=1e-4)
