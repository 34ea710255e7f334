"""Property tests not covered in tests/data and tests/losses.

* masking: masked target/noise entries, whatever their value (NaN, inf, 1e30), never
  change any data loss or its gradient; rows with sample weight 0, whatever their
  predicted values, never change a physics loss;
* transforms: the PCA round trip (full rank) back to log10 profiles;
* loaders: random bytes under a dataset or emulator file name only ever raise
  DataError/FormatError.

(Split leakage and the non-PCA inverse round trip are properties in tests/data.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profemu.config import DataConfig, LossConfig, PhysicsLossConfig
from profemu.data.dataset import ProfileDataset
from profemu.data.io import load_dataset
from profemu.data.layout import FieldSpec, OutputLayout
from profemu.data.transforms import Transforms, decode_mean
from profemu.emulator import Emulator
from profemu.errors import DataError
from profemu.losses.likelihood import LOSSES, data_loss
from profemu.losses.physics import physics_losses

N, D = 6, 8  # 2 fields x 4 radii
ANY_VALUE = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 3.5])
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------ masking
@pytest.fixture(scope="module")
def loss_and_grad() -> dict[str, object]:
    """One jitted (value, d/d mean) per likelihood, compiled once for the fixed shapes."""
    fns = {}
    for name in sorted(LOSSES):
        cfg = LossConfig(likelihood=name)  # type: ignore[arg-type]

        def f(mean, var, target, mask, noise_var, cfg=cfg):
            return data_loss(mean, var, target, mask, noise_var, cfg)

        fns[name] = jax.jit(jax.value_and_grad(f))
    return fns


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(sorted(LOSSES)),
    junk=st.lists(ANY_VALUE, min_size=N * D, max_size=N * D),
)
def test_masked_entries_never_change_a_data_loss(
    loss_and_grad: dict[str, object], seed: int, name: str, junk: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(N, D)).astype(np.float32)
    var = rng.uniform(0.05, 3.0, size=(N, D)).astype(np.float32)
    target = rng.normal(size=(N, D)).astype(np.float32)
    noise = rng.uniform(0.0, 0.5, size=(N, D)).astype(np.float32)
    mask = (rng.uniform(size=(N, D)) > 0.4).astype(np.float32)
    hidden = mask == 0
    values = np.asarray(junk, dtype=np.float32).reshape(N, D)
    clean = loss_and_grad[name](mean, var, np.where(hidden, 0, target), mask, np.where(hidden, 0, noise))
    dirty = loss_and_grad[name](mean, var, np.where(hidden, values, target), mask,
                                np.where(hidden, np.abs(values), noise))
    assert np.isfinite(float(clean[0]))
    assert float(dirty[0]) == float(clean[0])
    np.testing.assert_array_equal(np.asarray(dirty[1]), np.asarray(clean[1]))


LAYOUT = OutputLayout((FieldSpec("rho", monotone=True), FieldSpec("temp")), 4, (("params", 1), ("log10_mass", 1)), D)
ARRAYS = {"target_center": np.zeros(D), "target_scale": np.ones(D), "log10_radius": np.array([-1.0, -0.5, 0.0, 0.5])}
PHYSICS = PhysicsLossConfig(
    monotonic_weight=1.0, smoothness_weight=0.5, mass_scaling_weight=0.3,
    mass_scaling_slopes={"rho": 1.0}, mass_scaling_tolerance=0.1, boundary_weight=0.2,
    boundary_slopes={"temp": -1.0}, boundary_tolerance=0.0,
)


@pytest.fixture(scope="module")
def physics_fn() -> object:
    return jax.jit(lambda mean, dmean, w: physics_losses(mean, LAYOUT, ARRAYS, PHYSICS, mass_slope=dmean,
                                                                  sample_weight=w))


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    junk=st.lists(ANY_VALUE, min_size=D, max_size=D),
)
def test_zero_weight_rows_never_change_a_physics_loss(physics_fn: object, seed: int, junk: list[float]) -> None:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(N, D)).astype(np.float32)
    dmean = rng.normal(size=(N, D)).astype(np.float32)
    weight = (rng.uniform(size=N) > 0.4).astype(np.float32)
    weight[0] = 1.0
    weight[-1] = 0.0  # e.g. a padding row of the last batch
    dead = weight == 0
    values = np.asarray(junk, dtype=np.float32)[None, :]
    clean = physics_fn(np.where(dead[:, None], 0, mean), np.where(dead[:, None], 0, dmean), weight)
    dirty = physics_fn(np.where(dead[:, None], values, mean), np.where(dead[:, None], values, dmean), weight)
    for key, value in clean.items():
        assert np.isfinite(float(value)), key
        assert float(dirty[key]) == float(value), key


# ------------------------------------------------------------------------ transforms
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scaler=st.sampled_from(["standard", "robust"]),
       n=st.integers(10, 40), masked=st.floats(0.0, 0.3))
def test_pca_full_rank_round_trip_to_log10(seed: int, scaler: str, n: int, masked: float) -> None:
    rng = np.random.default_rng(seed)
    radius = np.geomspace(0.1, 2.0, 4)
    mass = rng.uniform(12, 14, n)
    params = rng.uniform(0.5, 2.0, size=(n, 2))
    profiles = {
        "rho": 10 ** (-2 * np.log10(radius)[None, :] + 0.5 * (mass[:, None] - 13) + params[:, :1]),
        "temp": 10 ** (7 + 0.3 * np.log10(radius)[None, :] * params[:, 1:] + 0.1 * rng.normal(size=(n, 4))),
    }
    mask = {f: rng.uniform(size=(n, 4)) >= masked for f in profiles}
    for m in mask.values():
        m[:, 0] = True  # every row keeps one valid entry
    ds = ProfileDataset(params=params, param_names=("a", "b"), log10_mass=mass, radius=radius,
                        profiles=profiles, log_params=("a",), mask=mask)
    t = Transforms.fit(ds, DataConfig(target_scaler=scaler, input_scaler=scaler, pca_components=8))
    data = t.transform(ds)
    coefficients = t.encode_target(data.target.astype(np.float64))
    mean, _ = t.to_log10(decode_mean(coefficients, t.model_arrays()))
    logp = np.concatenate([ds.log10_profile(f) for f in t.field_names], axis=1)
    valid = ~np.isnan(logp)
    np.testing.assert_allclose(mean[valid], logp[valid], atol=1e-3 * (1 + np.abs(logp[valid]).max()))
    # the JSON form (what an Emulator stores) decodes identically
    again = Transforms.from_dict(json.loads(json.dumps(t.to_dict())))
    np.testing.assert_array_equal(decode_mean(coefficients, again.model_arrays()), decode_mean(coefficients, t.model_arrays()))


# ------------------------------------------------------------------------ loaders
MAGIC = st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x89HDF\r\n\x1a\n", b"\x93NUMPY", b"\x80\x04", b"{"])


@SETTINGS
@given(head=MAGIC, body=st.binary(max_size=600), suffix=st.sampled_from([".npz", ".h5", ".hdf5"]))
def test_random_bytes_as_a_dataset_raise_only_data_errors(
    tmp_path: Path, head: bytes, body: bytes, suffix: str
) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(head + body)
    with pytest.raises(DataError):  # FormatError is a DataError
        load_dataset(path)


@pytest.fixture(scope="module")
def emulator_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.reliability import tiny_run

    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run").run_dir / "emulator"


@SETTINGS
@given(
    head=MAGIC, body=st.binary(max_size=400),
    name=st.sampled_from(["manifest.json", "weights.npz"]),
)
def test_random_bytes_in_an_emulator_folder_raise_only_data_errors(
    emulator_folder: Path, tmp_path: Path, head: bytes, body: bytes, name: str
) -> None:
    folder = tmp_path / "emu"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(emulator_folder, folder)
    target = Emulator.weights_file(folder) if name == "weights.npz" else folder / name
    target.write_bytes(head + body)
    with pytest.raises(DataError):
        Emulator.load(folder)


@SETTINGS
@given(doc=st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**7) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
))
def test_random_json_manifests_raise_only_data_errors(
    emulator_folder: Path, tmp_path: Path, doc: object
) -> None:
    folder = tmp_path / "emu_json"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(emulator_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if isinstance(doc, dict):
        manifest.update(doc)  # valid JSON, wrong content in random places
        body = manifest
    else:
        body = doc
    (folder / "manifest.json").write_text(json.dumps(body))
    try:
        Emulator.load(folder)
    except DataError:
        pass

