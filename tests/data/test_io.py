"""Dataset files: exact round trips (npz, HDF5) and clear FormatErrors, never unpickling."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.data.io import SCHEMA_VERSION, load_dataset, save_dataset
from profemu.errors import DataError, FormatError
from tests.data.test_dataset import base_kwargs

SUFFIXES = [".npz", ".h5", ".hdf5"]


@pytest.fixture
def full(rng: np.random.Generator) -> ProfileDataset:
    kw = base_kwargs(rng, n=7, n_r=5)
    rho = np.array(kw["profiles"]["rho"], copy=True)
    rho[0, 0], rho[2, 4] = np.nan, -1.0
    kw["profiles"]["rho"] = rho
    kw["noise"] = {
        "rho": np.where(np.isfinite(rho) & (rho > 0), 0.03, np.nan)
    }  # noise for one field
    mask = np.isfinite(rho) & (rho > 0)
    mask[5, 1] = False  # user-removed valid entry
    kw["mask"] = {"rho": mask}
    kw["units"] = {"rho": "Msun/kpc^3", "pth": "keV cm^-3 µ"}  # non-ASCII survives
    kw["meta"] = {"source": "test", "n": 3, "x": 0.1 + 0.2, "nested": {"a": [1, 2.5, "s"]}}
    return ProfileDataset(**kw)


@pytest.fixture
def minimal(rng: np.random.Generator) -> ProfileDataset:
    kw = base_kwargs(rng, n=3, n_r=4, with_pk=False, n_groups=None, fields=("temp",))
    for key in ("redshift", "noise"):
        kw[key] = None
    kw["log_params"] = ()
    kw["meta"] = {}
    return ProfileDataset(**kw)


def assert_identical(a: ProfileDataset, b: ProfileDataset) -> None:
    def same(x: np.ndarray | None, y: np.ndarray | None) -> None:
        if x is None or y is None:
            assert x is None and y is None
            return
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # bit-identical, NaN payloads included

    for name in ("params", "log10_mass", "radius", "pk_ratio", "k", "redshift", "groups"):
        same(getattr(a, name), getattr(b, name))
    assert a.param_names == b.param_names and a.log_params == b.log_params
    assert (
        a.fields == b.fields and dict(a.units) == dict(b.units) and a.radius_unit == b.radius_unit
    )
    for f in a.fields:
        same(a.profiles[f], b.profiles[f])
        same(a.mask[f], b.mask[f])
    assert (a.noise is None) == (b.noise is None)
    if a.noise is not None and b.noise is not None:
        assert set(a.noise) == set(b.noise)
        for f in a.noise:
            same(a.noise[f], b.noise[f])
    assert dict(a.meta) == dict(b.meta)
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_full(tmp_path: Path, full: ProfileDataset, suffix: str) -> None:
    path = save_dataset(full, tmp_path / f"data{suffix}")
    assert path == tmp_path / f"data{suffix}" and path.is_file()
    back = load_dataset(path)
    assert_identical(full, back)
    assert not back.mask["rho"][5, 1]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_minimal(tmp_path: Path, minimal: ProfileDataset, suffix: str) -> None:
    back = ProfileDataset.load(minimal.save(tmp_path / f"m{suffix}"))
    assert_identical(minimal, back)
    assert (
        back.pk_ratio is None
        and back.noise is None
        and back.groups is None
        and back.redshift is None
    )


def test_npz_schema_keys(tmp_path: Path, full: ProfileDataset) -> None:
    path = save_dataset(full, tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz["schema_version"]) == SCHEMA_VERSION
        assert str(npz["format"]) == "profemu.ProfileDataset"
        assert npz["param_names"].dtype.kind == "U"
        assert npz["profiles"].shape == (2, 7, 5) and npz["mask"].dtype == bool
        assert npz["noise"].shape == (1, 7, 5) and npz["noise_fields"].tolist() == ["rho"]
        assert json.loads(str(npz["meta"]))["source"] == "test"


def test_unknown_suffix_and_bad_meta(
    tmp_path: Path, full: ProfileDataset, rng: np.random.Generator
) -> None:
    with pytest.raises(DataError, match=r"unknown file suffix '.pkl'.*use .npz or .h5/.hdf5"):
        save_dataset(full, tmp_path / "d.pkl")
    kw = base_kwargs(rng, n=3, n_r=4)
    kw["meta"] = {"bad": object()}
    with pytest.raises(DataError, match=r"meta: not JSON-serialisable"):
        save_dataset(ProfileDataset(**kw), tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ unreadable files
def test_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"file not found"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(FormatError, match=r"the file is empty \(0 bytes\)"):
        load_dataset(tmp_path / "empty.npz")
    with pytest.raises(FormatError, match=r"not a regular file"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_file(tmp_path: Path, full: ProfileDataset, suffix: str, keep: float) -> None:
    data = save_dataset(full, tmp_path / f"d{suffix}").read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FormatError, match=r"truncated or corrupt"):
        load_dataset(bad)


def test_wrong_file_types(tmp_path: Path, rng: np.random.Generator) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("radius,rho\n0.1,3.0\n")
    with pytest.raises(FormatError, match=r"a text file; expected a dataset written by profemu.*"
                                          r"A table of profiles becomes a dataset with profemu.ProfileDataset"):
        load_dataset(text)
    noise = tmp_path / "random.h5"
    noise.write_bytes(bytes([0xFF, 0x00]) + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(FormatError, match=r"neither an npz archive nor an HDF5 file"):
        load_dataset(noise)
    npy = tmp_path / "arr.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(FormatError, match=r"a single .npy array"):
        load_dataset(npy)


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(_Boom.target),))

    target = ""


def test_pickle_payload_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    _Boom.target = str(marker)
    raw = tmp_path / "evil.npz"
    raw.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(FormatError, match=r"pickle payload"):
        load_dataset(raw)
    # a pickled object array inside a genuine npz archive
    evil = tmp_path / "evil2.npz"
    np.savez(evil, schema_version=np.array(1), params=np.array([_Boom()], dtype=object))
    with pytest.raises(FormatError, match=r"'params' holds pickled Python objects"):
        load_dataset(evil)
    assert not marker.exists()


def _rewrite(src: Path, dst: Path, **changes: Any) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(dst, **arrays)
    return dst


def test_missing_key_and_newer_version(tmp_path: Path, full: ProfileDataset) -> None:
    src = save_dataset(full, tmp_path / "d.npz")
    with pytest.raises(FormatError, match=r"required key 'radius' is missing"):
        load_dataset(_rewrite(src, tmp_path / "a.npz", radius=None))
    with pytest.raises(
        FormatError, match=r"schema version 99, newer than this profemu supports \(1\)"
    ):
        load_dataset(_rewrite(src, tmp_path / "b.npz", schema_version=np.array(99)))
    with pytest.raises(FormatError, match=r"no 'schema_version' key"):
        load_dataset(_rewrite(src, tmp_path / "c.npz", schema_version=None))
    with pytest.raises(
        FormatError, match=r"'profiles' has shape \(1, 7, 5\), expected \(F=2, n=7, n_r=5\)"
    ):
        load_dataset(_rewrite(src, tmp_path / "e.npz", profiles=np.ones((1, 7, 5))))
    with pytest.raises(FormatError, match=r"'noise' and 'noise_fields' must both be present"):
        load_dataset(_rewrite(src, tmp_path / "f.npz", noise_fields=None))
    with zipfile.ZipFile(tmp_path / "empty_zip.npz", "w"):
        pass
    with pytest.raises(FormatError, match=r"no 'schema_version' key"):
        load_dataset(tmp_path / "empty_zip.npz")


def test_content_errors_come_from_dataset_validation(tmp_path: Path, full: ProfileDataset) -> None:
    src = save_dataset(full, tmp_path / "d.npz")
    params = np.array(full.params, copy=True)
    params[4, 0] = np.nan
    with pytest.raises(DataError, match=r"params: non-finite value nan at row 4, column 0") as err:
        load_dataset(_rewrite(src, tmp_path / "g.npz", params=params))
    assert not isinstance(err.value, FormatError)


def test_load_dataset_dispatch(tmp_path: Path, full: ProfileDataset) -> None:
    src = save_dataset(full, tmp_path / "d.npz")
    assert_identical(full, load_dataset(src))
    assert_identical(full, load_dataset(src, format="profemu"))
    with pytest.raises(DataError, match=r"options \['fields'\] only apply to the CAMELS LH table"):
        load_dataset(src, fields=("rho",))
    with pytest.raises(DataError, match=r"format: unknown value 'csv'"):
        load_dataset(src, format="csv")  # type: ignore[arg-type]


def test_load_dataset_detects_camels_table(tmp_path: Path, camels_path: Path) -> None:
    ds = load_dataset(camels_path, fields=("pth",), verbose=False)
    assert ds.fields == ("pth",) and ds.n == 2000
    assert load_dataset(camels_path).n == 2000  # the public loader reads every format
    with pytest.raises(FormatError, match=r"looks like the CAMELS LH table"):
        ProfileDataset.load(camels_path)  # the profemu-file reader names the right loader
    with pytest.raises(FormatError, match=r"looks like the CAMELS LH table"):
        load_dataset(camels_path, format="profemu")


def test_hdf5_variable_length_strings_get_the_fix(tmp_path: Path, full: ProfileDataset) -> None:
    """h5py writes Python strings as variable-length strings, which the schema does not read: the
    message says how to write them (fixed-width bytes)."""
    import h5py

    path = Path(full.save(tmp_path / "d.h5"))
    with h5py.File(path, "a") as h5:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["param_names"][()]]
        del h5["param_names"]
        h5.create_dataset("param_names", data=names, dtype=h5py.string_dtype())
    with pytest.raises(FormatError, match=r"key 'param_names' has HDF5 type object.*write strings as fixed-width "
                                          r"bytes, e\.g\. h5py create_dataset"):
        load_dataset(path)
