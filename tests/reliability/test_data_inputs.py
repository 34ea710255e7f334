"""Bad values given to the data layer: each is refused with one line naming the field, the
value and the fix, and nothing the user passed is altered.

Covers duplicate names (a field would silently take another field's data), values that
overflow float32 (the models' precision) or underflow to 0 before a log10, complex and
boolean inputs, fractional group ids, ragged lists and strings where numbers belong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.data.io import load_dataset, save_dataset
from profemu.errors import DataError, FormatError, ProfemuError
from tests.data.test_dataset import base_kwargs, with_value

F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture
def kw(rng: np.random.Generator) -> dict[str, Any]:
    return base_kwargs(rng, n=6, n_r=5, fields=("rho", "pth", "temp"))


def refused(kw: dict[str, Any], pattern: str, error: type[ProfemuError] = DataError) -> str:
    with pytest.raises(error, match=pattern) as err:
        ProfileDataset(**kw)
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ duplicate names
def test_duplicate_fields_in_a_selection_are_refused(kw: dict[str, Any]) -> None:
    ds = ProfileDataset(**kw)
    with pytest.raises(DataError, match=r"^fields: duplicate name 'rho' \(entries 0 and 1\)"):
        ds.select_fields(["rho", "rho", "temp"])
    with pytest.raises(DataError, match=r"^fields: got a single string 'rho'"):
        ds.select_fields("rho")  # type: ignore[arg-type]
    assert ds.select_fields(["temp", "rho"]).fields == ("temp", "rho")


def test_duplicate_fields_in_a_file_never_mix_data(tmp_path: Path, kw: dict[str, Any]) -> None:
    ds = ProfileDataset(**kw)
    src = save_dataset(ds, tmp_path / "d.npz")
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    # 'rho', 'rho', 'temp': the second "rho" holds the pressure data and its units
    np.savez(tmp_path / "dup.npz", **dict(arrays, fields=np.array(["rho", "rho", "temp"])))
    with pytest.raises(FormatError, match=r"dup.npz: 'fields': duplicate name 'rho' \(entries 0 and 1\)"):
        load_dataset(tmp_path / "dup.npz")
    np.savez(tmp_path / "dupn.npz", **dict(arrays, noise_fields=np.array(["pth", "pth", "rho"])))
    with pytest.raises(FormatError, match=r"dupn.npz: 'noise_fields': duplicate name 'pth'"):
        load_dataset(tmp_path / "dupn.npz")
    np.savez(tmp_path / "dupp.npz", **dict(arrays, param_names=np.array(["Omega_m", "A_SN1", "A_SN1"])))
    with pytest.raises(DataError, match=r"param_names: duplicate name 'A_SN1' \(entries 1 and 2\)"):
        load_dataset(tmp_path / "dupp.npz")


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("log_params", ("A_SN1", "A_SN1"), r"^log_params: duplicate name 'A_SN1'"),
        ("param_names", ("Omega_m", "", "A_SN1"), r"^param_names: entry 1 is an empty name"),
        ("param_names", ("Omega_m", b"sigma_8", "A_SN1"), r"^param_names: entry 1 is b'sigma_8' \(bytes\)"),
        ("param_names", ("Omega_m", 8, "A_SN1"), r"^param_names: entry 1 is 8 \(int\), not a string"),
    ],
)
def test_names_are_unique_non_empty_strings(kw: dict[str, Any], key: str, value: Any, pattern: str) -> None:
    kw[key] = value
    refused(kw, pattern)


def test_field_names_that_collide_as_strings(kw: dict[str, Any]) -> None:
    rho = kw["profiles"]["rho"]
    kw.update(profiles={1: rho, "1": rho}, units={}, noise=None)
    refused(kw, r"^profiles: entry 0 is 1 \(int\), not a string")


def test_units_must_be_text(kw: dict[str, Any]) -> None:
    kw["units"] = {"rho": None}
    refused(kw, r"^units\['rho'\]: None is not a string")
    kw["units"] = {}
    kw["radius_unit"] = 1.0
    refused(kw, r"^radius_unit: 1.0 is not a string")


# ------------------------------------------------------------------ float32 range
@pytest.mark.parametrize(
    ("key", "index", "pattern"),
    [
        ("params", (2, 1), r"^params: value 1e\+300 at row 2, column 1 \('sigma_8'\) overflows float32"),
        ("params", (4, 0), r"^params: value -1e\+300 at row 4, column 0 \('Omega_m'\) overflows float32"),
        ("pk_ratio", (1, 3), r"^pk_ratio: value 1e\+300 at row 1, column 3 overflows float32"),
        ("redshift", (5,), r"^redshift: value 1e\+300 at row 5 overflows float32"),
        ("radius", (4,), r"^radius: value 1e\+300 at row 4 overflows float32"),
    ],
)
def test_values_overflowing_float32_are_refused(
    kw: dict[str, Any], key: str, index: tuple[int, ...], pattern: str
) -> None:
    sign = -1.0 if index == (4, 0) else 1.0
    kw[key] = with_value(kw[key], index, sign * 1e300)
    message = refused(kw, pattern)
    assert "1 in total" in message and "fix the value or change the unit" in message


def test_the_float32_limit_itself(kw: dict[str, Any]) -> None:
    kw["params"] = with_value(kw["params"], (0, 0), 3.0e38)  # representable: accepted
    assert ProfileDataset(**kw).params[0, 0] == 3.0e38
    kw["params"] = with_value(kw["params"], (0, 0), 3.5e38)  # > 3.4028235e38
    refused(kw, r"^params: value 3.5e\+38 at row 0, column 0 \('Omega_m'\) overflows float32 \(\|x\| > 3.4028235e\+38")


@pytest.mark.parametrize(
    ("value", "what"), [(1e300, "overflows float32 to inf"), (1e-300, "underflows float32 to 0")]
)
def test_profiles_whose_log10_is_not_finite_in_float32(kw: dict[str, Any], value: float, what: str) -> None:
    kw["profiles"]["pth"] = with_value(kw["profiles"]["pth"], (3, 2), value)
    message = refused(kw, rf"^profiles\['pth'\]: value {value:g} at row 3, column 2 {what}".replace("+", r"\+"))
    assert "mask the entry" in message
    # float32's smallest subnormal is 1.4e-45: 1e-44 survives the cast, so it is accepted
    kw["profiles"]["pth"] = with_value(kw["profiles"]["pth"], (3, 2), 1e-44)
    assert ProfileDataset(**kw).mask["pth"][3, 2]


def test_a_masked_out_entry_may_hold_any_value_and_is_kept(kw: dict[str, Any]) -> None:
    kw["profiles"]["pth"] = with_value(kw["profiles"]["pth"], (3, 2), 1e300)
    mask = np.ones((6, 5), dtype=bool)
    mask[3, 2] = False
    kw["mask"] = {"pth": mask}
    ds = ProfileDataset(**kw)
    assert ds.profiles["pth"][3, 2] == 1e300 and not ds.mask["pth"][3, 2]


def test_log_parameter_underflowing_float32(kw: dict[str, Any]) -> None:
    kw["params"] = with_value(kw["params"], (1, 2), 1e-300)
    refused(kw, r"^params\['A_SN1'\]: value 1e-300 at row 1 underflows float32 to 0, so its log10 is not finite")


def test_noise_overflowing_float32(kw: dict[str, Any]) -> None:
    kw["noise"]["rho"] = with_value(kw["noise"]["rho"], (0, 1), 1e39)
    refused(kw, r"^noise\['rho'\]: row 0, column 1 is 1e\+39 at a valid entry")


def test_overflow_in_a_dataset_file(tmp_path: Path, kw: dict[str, Any]) -> None:
    src = save_dataset(ProfileDataset(**kw), tmp_path / "d.npz")
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "big.npz", **dict(arrays, params=with_value(arrays["params"], (2, 0), 1e300)))
    with pytest.raises(DataError, match=r"params: value 1e\+300 at row 2, column 0 \('Omega_m'\) overflows"):
        load_dataset(tmp_path / "big.npz")


# ------------------------------------------------------------------ complex, booleans, strings, ragged
@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("params", lambda kw: kw["params"] + 1e-3j,
         r"^params: complex values \(dtype complex128, first value \(0\.\d+\+0\.001j\)\) are not accepted; "
         r"pass real numbers \(np\.real\(params\)"),
        ("log10_mass", lambda kw: kw["log10_mass"].astype(np.complex64), r"^log10_mass: complex values"),
        ("profiles", lambda kw: {**kw["profiles"], "temp": kw["profiles"]["temp"] * (1 + 0j)},
         r"^profiles\['temp'\]: complex values"),
        ("redshift", lambda kw: kw["redshift"] + 0j, r"^redshift: complex values"),
        ("params", lambda kw: kw["params"] > 0.5, r"^params: booleans \(dtype bool, first value"),
        ("log10_mass", lambda kw: [True] * 6, r"^log10_mass: booleans"),
        ("log10_mass", lambda kw: ["12.5"] * 6,
         r"^log10_mass: wrong dtype <U4 \(first value '12.5'; expected a real-valued numeric array\)"),
        ("log10_mass", lambda kw: [12.5, "13"] * 3, r"^log10_mass: wrong dtype <U32"),
        ("log10_mass", lambda kw: "12.5", r"^log10_mass: wrong dtype <U4"),
        ("log10_mass", lambda kw: [12.0, None, 12.0, 12.0, 12.0, 12.0], r"^log10_mass: wrong dtype object"),
        ("params", lambda kw: [[0.3, 0.8, 1.0]] * 5 + [[0.3, 0.8]],
         r"^params: could not be converted to an array \(ValueError: .*inhomogeneous.*\); pass a "
         r"rectangular numeric array"),
        ("profiles", lambda kw: {**kw["profiles"], "rho": [list(r) for r in kw["profiles"]["rho"][:-1]] + [[1.0]]},
         r"^profiles\['rho'\]: could not be converted to an array"),
        ("params", lambda kw: [[2**70, 0.8, 1.0]] * 6, r"^params: wrong dtype object"),
        ("groups", lambda kw: np.array([0, 1, 2, 3.5, 4, 5]),
         r"^groups: value 3.5 at row 3 is not an integer id \(it would be truncated into another id; 1 such"),
        ("groups", lambda kw: np.array([0, 1, np.nan, 3, 4, 5]), r"^groups: value nan at row 2 is not an integer id"),
        ("groups", lambda kw: np.ones(6, dtype=bool), r"^groups: wrong dtype bool \(first value True\)"),
        ("groups", lambda kw: np.arange(6) + 0j, r"^groups: wrong dtype complex128"),
        ("groups", lambda kw: np.array([2**63, 1, 2, 3, 4, 5], dtype=np.uint64),
         r"^groups: value 9223372036854775808 at row 0 does not fit in int64"),
    ],
)
def test_values_that_would_be_silently_converted(kw: dict[str, Any], key: str, value: Any, pattern: str) -> None:
    kw[key] = value(kw)
    refused(kw, pattern)


def test_integral_float_group_ids_are_kept_exactly(kw: dict[str, Any]) -> None:
    kw["groups"] = np.array([0.0, 1.0, 2.0, 2.0**52, 4.0, -5.0])
    ds = ProfileDataset(**kw)
    assert ds.groups is not None and ds.groups.dtype == np.int64
    assert ds.groups.tolist() == [0, 1, 2, 2**52, 4, -5]


def test_complex_and_boolean_arrays_in_a_file(tmp_path: Path, kw: dict[str, Any]) -> None:
    src = save_dataset(ProfileDataset(**kw), tmp_path / "d.npz")
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value, pattern in (
        ("params", arrays["params"] + 0j, r"key 'params' has dtype complex128, expected real numbers"),
        ("mask", arrays["mask"].astype(np.int8), r"key 'mask' has dtype int8, expected booleans"),
        ("log10_mass", arrays["log10_mass"] > 0, r"key 'log10_mass' has dtype bool, expected real numbers"),
        ("fields", np.arange(3), r"key 'fields' has dtype int64, expected text"),
    ):
        np.savez(tmp_path / f"{key}.npz", **dict(arrays, **{key: value}))
        with pytest.raises(FormatError, match=pattern):
            load_dataset(tmp_path / f"{key}.npz")


# ------------------------------------------------------------------ nothing the user passed is altered
def test_inputs_are_copied_and_never_modified(kw: dict[str, Any]) -> None:
    originals = {k: np.array(v, copy=True) for k, v in kw.items() if isinstance(v, np.ndarray)}
    profiles = {k: np.array(v, copy=True) for k, v in kw["profiles"].items()}
    kw["meta"] = {"nested": {"a": [1, 2]}}
    ds = ProfileDataset(**kw)
    for key, arr in originals.items():
        np.testing.assert_array_equal(kw[key], arr)
        assert kw[key].flags.writeable  # the user's arrays stay theirs
        stored = getattr(ds, key)
        assert not stored.flags.writeable and not np.shares_memory(stored, kw[key])
    for f, arr in profiles.items():
        assert kw["profiles"][f].tobytes() == arr.tobytes()
    kw["meta"]["nested"]["a"].append(3)  # a later change by the user does not reach the dataset
    assert ds.meta == {"nested": {"a": [1, 2]}}


def test_subset_with_invalid_rows(kw: dict[str, Any]) -> None:
    ds = ProfileDataset(**kw)
    with pytest.raises(DataError, match=r"^rows: invalid row selection \(index 9 is out of bounds"):
        ds.subset([1, 9])
    with pytest.raises(DataError, match=r"^rows: invalid row selection .*pass integer row numbers in \[0, 6\)"):
        ds.subset(np.array([0.5, 1.0]))
    assert ds.subset([1, 1]).n == 2  # repeated rows (e.g. a bootstrap) are a valid selection
