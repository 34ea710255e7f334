"""ProfileDataset validation: every DataError names the field and the offending row/column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from profemu.data.dataset import ProfileDataset
from profemu.errors import DataError


def make_dataset(
    rng: np.random.Generator,
    n: int = 6,
    n_r: int = 5,
    *,
    fields: tuple[str, ...] = ("rho", "pth"),
    with_pk: bool = True,
    n_groups: int | None = 3,
    **overrides: Any,
) -> ProfileDataset:
    """A small valid dataset; ``overrides`` replace constructor arguments."""
    kwargs = base_kwargs(rng, n, n_r, fields=fields, with_pk=with_pk, n_groups=n_groups)
    kwargs.update(overrides)
    return ProfileDataset(**kwargs)


def base_kwargs(
    rng: np.random.Generator,
    n: int = 6,
    n_r: int = 5,
    *,
    fields: tuple[str, ...] = ("rho", "pth"),
    with_pk: bool = True,
    n_groups: int | None = 3,
) -> dict[str, Any]:
    radius = np.logspace(-2, 0, n_r)
    params = np.column_stack(
        [rng.uniform(0.1, 0.5, n), rng.uniform(0.6, 1.0, n), rng.uniform(0.25, 4.0, n)]
    )
    log10_mass = rng.uniform(11.0, 13.0, n)
    profiles = {
        f: 10
        ** (
            i
            + log10_mass[:, None]
            - 11
            - 2 * np.log10(radius)[None, :]
            + 0.05 * rng.normal(size=(n, n_r))
        )
        for i, f in enumerate(fields)
    }
    kw: dict[str, Any] = dict(
        params=params,
        param_names=("Omega_m", "sigma_8", "A_SN1"),
        log10_mass=log10_mass,
        radius=radius,
        profiles=profiles,
        units={f: f"unit_{f}" for f in fields},
        radius_unit="Mpc",
        log_params=("A_SN1",),
        redshift=np.full(n, 0.5),
        noise={f: np.full((n, n_r), 0.02) for f in fields},
        meta={"origin": "test"},
    )
    if n_groups is not None:
        kw["groups"] = np.arange(n) % n_groups
    if with_pk:
        kw["k"] = np.logspace(-1, 1.5, 4)
        kw["pk_ratio"] = 1.0 - 0.1 * rng.uniform(size=(n, 4))
    return kw


@pytest.fixture
def kw(rng: np.random.Generator) -> dict[str, Any]:
    return base_kwargs(rng)


def with_value(arr: np.ndarray, index: tuple[int, ...], value: Any) -> np.ndarray:
    out = np.array(arr, dtype=float, copy=True)
    out[index] = value
    return out


# ------------------------------------------------------------------ non-finite inputs
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_params_named_with_row_and_column(kw: dict[str, Any], bad: float) -> None:
    kw["params"] = with_value(kw["params"], (3, 1), bad)
    with pytest.raises(DataError, match=r"params: non-finite value .* at row 3, column 1"):
        ProfileDataset(**kw)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_log10_mass_named_with_row(kw: dict[str, Any], bad: float) -> None:
    kw["log10_mass"] = with_value(kw["log10_mass"], (2,), bad)
    with pytest.raises(DataError, match=r"log10_mass: non-finite value .* at row 2"):
        ProfileDataset(**kw)


def test_linear_mass_is_rejected_with_a_hint(kw: dict[str, Any]) -> None:
    kw["log10_mass"] = with_value(kw["log10_mass"], (4,), 3e13)
    with pytest.raises(DataError, match=r"log10_mass: value .* at row 4 .*log10\(M/Msun\)"):
        ProfileDataset(**kw)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pk_ratio_named_with_row_and_column(kw: dict[str, Any], bad: float) -> None:
    kw["pk_ratio"] = with_value(kw["pk_ratio"], (1, 2), bad)
    with pytest.raises(DataError, match=r"pk_ratio: non-finite value .* at row 1, column 2"):
        ProfileDataset(**kw)


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_non_finite_redshift_named_with_row(kw: dict[str, Any], bad: float) -> None:
    kw["redshift"] = with_value(kw["redshift"], (5,), bad)
    with pytest.raises(DataError, match=r"redshift: non-finite value .* at row 5"):
        ProfileDataset(**kw)


def test_negative_redshift(kw: dict[str, Any]) -> None:
    kw["redshift"] = with_value(kw["redshift"], (0,), -0.1)
    with pytest.raises(DataError, match=r"redshift: value -0.1 at row 0 is outside \[0, 20\]"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ shapes
def test_param_names_count_mismatch(kw: dict[str, Any]) -> None:
    kw["param_names"] = ("Omega_m", "sigma_8")
    with pytest.raises(DataError, match=r"param_names: 2 names for 3 parameter columns"):
        ProfileDataset(**kw)


def test_params_wrong_ndim(kw: dict[str, Any]) -> None:
    kw["params"] = kw["params"][:, 0]
    with pytest.raises(DataError, match=r"params: expected 2 dimension\(s\), got shape \(6,\)"):
        ProfileDataset(**kw)


def test_log10_mass_row_mismatch(kw: dict[str, Any]) -> None:
    kw["log10_mass"] = kw["log10_mass"][:-1]
    with pytest.raises(DataError, match=r"log10_mass: 5 rows but params has 6"):
        ProfileDataset(**kw)


def test_profile_shape_mismatch_names_field(kw: dict[str, Any]) -> None:
    kw["profiles"]["pth"] = kw["profiles"]["pth"][:, :-1]
    with pytest.raises(DataError, match=r"profiles\['pth'\]: shape \(6, 4\) but expected \(6, 5\)"):
        ProfileDataset(**kw)


def test_pk_ratio_row_mismatch(kw: dict[str, Any]) -> None:
    kw["pk_ratio"] = kw["pk_ratio"][:4]
    with pytest.raises(DataError, match=r"pk_ratio: 4 rows but params has 6"):
        ProfileDataset(**kw)


def test_k_length_mismatch(kw: dict[str, Any]) -> None:
    kw["k"] = kw["k"][:3]
    with pytest.raises(DataError, match=r"k: 3 wavenumbers but pk_ratio has 4 columns"):
        ProfileDataset(**kw)


def test_k_not_increasing(kw: dict[str, Any]) -> None:
    kw["k"] = kw["k"][::-1]
    with pytest.raises(DataError, match=r"k: must be positive and strictly increasing"):
        ProfileDataset(**kw)


def test_redshift_row_mismatch(kw: dict[str, Any]) -> None:
    kw["redshift"] = np.zeros(7)
    with pytest.raises(DataError, match=r"redshift: 7 rows but params has 6"):
        ProfileDataset(**kw)


def test_groups_shape_mismatch(kw: dict[str, Any]) -> None:
    kw["groups"] = np.zeros(5, dtype=int)
    with pytest.raises(DataError, match=r"groups: expected shape \(6,\), got \(5,\)"):
        ProfileDataset(**kw)


def test_groups_float_with_fraction_rejected_integral_float_accepted(kw: dict[str, Any]) -> None:
    kw["groups"] = np.arange(6) + 0.5
    with pytest.raises(DataError, match=r"groups: value 0.5 at row 0 is not an integer id"):
        ProfileDataset(**kw)
    kw["groups"] = np.arange(6, dtype=float)
    ds = ProfileDataset(**kw)
    assert ds.groups is not None and ds.groups.dtype == np.int64


# ------------------------------------------------------------------ radii
def test_non_increasing_radius_names_column(kw: dict[str, Any]) -> None:
    kw["radius"] = with_value(kw["radius"], (3,), kw["radius"][2])
    with pytest.raises(DataError, match=r"radius: not strictly increasing at column 3"):
        ProfileDataset(**kw)


def test_non_positive_radius(kw: dict[str, Any]) -> None:
    kw["radius"] = with_value(kw["radius"], (0,), 0.0)
    with pytest.raises(DataError, match=r"radius: value 0.0 at column 0 is <= 0"):
        ProfileDataset(**kw)


def test_single_radius(kw: dict[str, Any]) -> None:
    kw["radius"] = kw["radius"][:1]
    with pytest.raises(DataError, match=r"radius: 1 radial bin"):
        ProfileDataset(**kw)


def test_non_finite_radius(kw: dict[str, Any]) -> None:
    kw["radius"] = with_value(kw["radius"], (4,), np.nan)
    with pytest.raises(DataError, match=r"radius: non-finite value nan at row 4"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ names
def test_duplicate_param_names(kw: dict[str, Any]) -> None:
    kw["param_names"] = ("Omega_m", "sigma_8", "Omega_m")
    kw["log_params"] = ()
    with pytest.raises(DataError, match=r"param_names: duplicate name 'Omega_m'"):
        ProfileDataset(**kw)


def test_log_param_not_a_name(kw: dict[str, Any]) -> None:
    kw["log_params"] = ("A_AGN1",)
    with pytest.raises(
        DataError, match=r"log_params: 'A_AGN1' is not a parameter name; valid names"
    ):
        ProfileDataset(**kw)


def test_log_param_non_positive_names_row(kw: dict[str, Any]) -> None:
    kw["params"] = with_value(kw["params"], (2, 2), -1.0)
    with pytest.raises(DataError, match=r"params\['A_SN1'\]: value -1.0 at row 2 is <= 0"):
        ProfileDataset(**kw)


def test_units_for_unknown_field(kw: dict[str, Any]) -> None:
    kw["units"] = {"temp": "K"}
    with pytest.raises(DataError, match=r"units: 'temp' is not a profile field"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ rows, dtypes, empties
def test_row_with_every_entry_invalid(kw: dict[str, Any]) -> None:
    rho = np.array(kw["profiles"]["rho"], copy=True)
    rho[4] = [np.nan, 0.0, -1.0, np.inf, np.nan]
    kw["profiles"]["rho"] = rho
    kw["noise"] = None
    with pytest.raises(DataError, match=r"profiles\['rho'\]: row 4 has no valid entry"):
        ProfileDataset(**kw)


def test_empty_dataset(kw: dict[str, Any]) -> None:
    kw["params"] = np.zeros((0, 3))
    with pytest.raises(DataError, match=r"dataset: empty \(0 rows\)"):
        ProfileDataset(**kw)


def test_no_profiles(kw: dict[str, Any]) -> None:
    kw["profiles"] = {}
    kw["units"] = {}
    kw["noise"] = None
    with pytest.raises(DataError, match=r"profiles: need a mapping of at least one field"):
        ProfileDataset(**kw)


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("params", np.full((6, 3), "x"), r"params: wrong dtype <U1"),
        ("params", np.full((6, 3), None, dtype=object), r"params: wrong dtype object"),
        ("log10_mass", np.array(["12"] * 6), r"log10_mass: wrong dtype <U2"),
        ("radius", np.array(["a"] * 5), r"radius: wrong dtype"),
        ("redshift", np.array([None] * 6, dtype=object), r"redshift: wrong dtype object"),
        ("groups", np.array(["LH_0"] * 6), r"groups: wrong dtype <U4"),
    ],
)
def test_wrong_dtype_names_field(kw: dict[str, Any], key: str, value: Any, pattern: str) -> None:
    kw[key] = value
    with pytest.raises(DataError, match=pattern):
        ProfileDataset(**kw)


def test_profile_strings_rejected(kw: dict[str, Any]) -> None:
    kw["profiles"]["pth"] = np.full((6, 5), "1.0")
    with pytest.raises(DataError, match=r"profiles\['pth'\]: wrong dtype"):
        ProfileDataset(**kw)


def test_ragged_input_rejected(kw: dict[str, Any]) -> None:
    kw["params"] = [[1.0, 2.0], [1.0]]
    with pytest.raises(DataError, match=r"params: could not be converted"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ mask
def test_mask_marking_invalid_entry_valid(kw: dict[str, Any]) -> None:
    kw["profiles"]["rho"] = with_value(kw["profiles"]["rho"], (1, 3), 0.0)
    kw["mask"] = {"rho": np.ones((6, 5), dtype=bool)}
    with pytest.raises(DataError, match=r"mask\['rho'\]: row 1, column 3 is marked valid"):
        ProfileDataset(**kw)


def test_mask_wrong_dtype_or_shape(kw: dict[str, Any]) -> None:
    kw["mask"] = {"rho": np.ones((6, 5), dtype=int)}
    with pytest.raises(DataError, match=r"mask\['rho'\]: expected a bool array of shape \(6, 5\)"):
        ProfileDataset(**kw)
    kw["mask"] = {"rho": np.ones((6, 4), dtype=bool)}
    with pytest.raises(DataError, match=r"mask\['rho'\]: expected a bool array"):
        ProfileDataset(**kw)


def test_mask_for_unknown_field(kw: dict[str, Any]) -> None:
    kw["mask"] = {"temp": np.ones((6, 5), dtype=bool)}
    with pytest.raises(DataError, match=r"mask: 'temp' is not a profile field"):
        ProfileDataset(**kw)


def test_user_mask_may_remove_entries(kw: dict[str, Any]) -> None:
    m = np.ones((6, 5), dtype=bool)
    m[2, 1] = False
    kw["mask"] = {"pth": m}
    ds = ProfileDataset(**kw)
    assert not ds.mask["pth"][2, 1]
    assert ds.mask["rho"].all()
    assert np.isnan(ds.log10_profile("pth")[2, 1])
    assert ds.profiles["pth"][2, 1] == kw["profiles"]["pth"][2, 1]


# ------------------------------------------------------------------ noise
def test_noise_negative_at_valid_entry(kw: dict[str, Any]) -> None:
    kw["noise"]["pth"] = with_value(kw["noise"]["pth"], (3, 0), -0.1)
    with pytest.raises(
        DataError, match=r"noise\['pth'\]: row 3, column 0 is -0.1 at a valid entry"
    ):
        ProfileDataset(**kw)


def test_noise_nan_allowed_only_where_masked(kw: dict[str, Any]) -> None:
    kw["noise"]["rho"] = with_value(kw["noise"]["rho"], (0, 4), np.nan)
    with pytest.raises(DataError, match=r"noise\['rho'\]: row 0, column 4 is nan"):
        ProfileDataset(**kw)
    kw["profiles"]["rho"] = with_value(kw["profiles"]["rho"], (0, 4), np.nan)
    ds = ProfileDataset(**kw)
    assert not ds.mask["rho"][0, 4]


def test_noise_shape_and_unknown_field(kw: dict[str, Any]) -> None:
    kw["noise"]["rho"] = np.zeros((6, 4))
    with pytest.raises(DataError, match=r"noise\['rho'\]: shape \(6, 4\) but expected \(6, 5\)"):
        ProfileDataset(**kw)
    kw["noise"] = {"temp": np.zeros((6, 5))}
    with pytest.raises(DataError, match=r"noise: 'temp' is not a profile field"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ k / pk pairing
def test_pk_without_k(kw: dict[str, Any]) -> None:
    kw["k"] = None
    with pytest.raises(DataError, match=r"k: pk_ratio was given without its wavenumber grid"):
        ProfileDataset(**kw)


def test_k_without_pk(kw: dict[str, Any]) -> None:
    kw["pk_ratio"] = None
    with pytest.raises(DataError, match=r"k: given without pk_ratio"):
        ProfileDataset(**kw)


# ------------------------------------------------------------------ behaviour
def test_invalid_entries_kept_and_masked(kw: dict[str, Any]) -> None:
    rho = np.array(kw["profiles"]["rho"], copy=True)
    rho[0, 0], rho[1, 2], rho[5, 4] = np.nan, 0.0, -3.0
    kw["profiles"]["rho"] = rho
    kw["noise"]["rho"] = with_value(kw["noise"]["rho"], (0, 0), np.nan)
    ds = ProfileDataset(**kw)
    assert ds.n == 6
    np.testing.assert_array_equal(ds.profiles["rho"], rho)  # NaN == NaN in this helper
    expected = np.isfinite(rho) & (rho > 0)
    np.testing.assert_array_equal(ds.mask["rho"], expected)
    logp = ds.log10_profile("rho")
    assert np.isnan(logp[~expected]).all()
    np.testing.assert_allclose(logp[expected], np.log10(rho[expected]))


def test_user_arrays_are_copied_and_stored_read_only(kw: dict[str, Any]) -> None:
    params = kw["params"]
    rho = kw["profiles"]["rho"]
    before_params, before_rho = params.copy(), rho.copy()
    ds = ProfileDataset(**kw)
    params[0, 0] = 123.0
    rho[0, 0] = 456.0
    assert ds.params[0, 0] == before_params[0, 0]
    assert ds.profiles["rho"][0, 0] == before_rho[0, 0]
    for arr in (ds.params, ds.log10_mass, ds.radius, ds.profiles["rho"], ds.mask["rho"]):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_subset_rows_and_select_fields(kw: dict[str, Any]) -> None:
    ds = ProfileDataset(**kw)
    sub = ds.subset([4, 1])
    assert sub.n == 2
    np.testing.assert_array_equal(sub.params, ds.params[[4, 1]])
    np.testing.assert_array_equal(sub.profiles["pth"], ds.profiles["pth"][[4, 1]])
    assert sub.groups is not None and sub.groups.tolist() == ds.groups[[4, 1]].tolist()
    assert sub.noise is not None and sub.noise["rho"].shape == (2, 5)
    assert sub.pk_ratio is not None and sub.pk_ratio.shape == (2, 4)
    only = ds.select_fields(["pth"])
    assert only.fields == ("pth",)
    assert only.units == {"pth": "unit_pth"}
    assert only.noise is not None and set(only.noise) == {"pth"}
    with pytest.raises(DataError, match=r"field 'temp' is not in this dataset"):
        ds.select_fields(["temp"])
    with pytest.raises(DataError, match=r"dataset: empty"):
        ds.subset(np.zeros(6, dtype=bool))


def test_fingerprint_changes_with_any_value(kw: dict[str, Any]) -> None:
    ds = ProfileDataset(**kw)
    same = ProfileDataset(**kw)
    assert ds.fingerprint() == same.fingerprint()
    changed = dict(kw)
    changed["profiles"] = dict(kw["profiles"])
    changed["profiles"]["pth"] = with_value(
        kw["profiles"]["pth"], (5, 4), kw["profiles"]["pth"][5, 4] * (1 + 1e-12)
    )
    assert ProfileDataset(**changed).fingerprint() != ds.fingerprint()
    changed = dict(kw, log10_mass=with_value(kw["log10_mass"], (0,), kw["log10_mass"][0] + 1e-9))
    assert ProfileDataset(**changed).fingerprint() != ds.fingerprint()
    changed = dict(kw, groups=np.arange(6))
    assert ProfileDataset(**changed).fingerprint() != ds.fingerprint()


def test_summary_mentions_sizes(kw: dict[str, Any]) -> None:
    text = ProfileDataset(**kw).summary()
    assert "6 examples" in text and "3 parameters" in text and "5 radii" in text


# ------------------------------------------------------------------ container types
def test_mask_given_as_array_raises_data_error(kw: dict[str, Any]) -> None:
    kw["mask"] = np.ones((6, 5), dtype=bool)
    with pytest.raises(DataError, match=r"mask"):
        ProfileDataset(**kw)


def test_noise_given_as_array_raises_data_error(kw: dict[str, Any]) -> None:
    kw["noise"] = np.zeros((6, 5))
    with pytest.raises(DataError, match=r"noise"):
        ProfileDataset(**kw)


def test_param_names_as_string_rejected(kw: dict[str, Any]) -> None:
    kw["params"] = kw["params"][:, :3]
    kw["param_names"] = "abc"
    kw["log_params"] = ()
    with pytest.raises(DataError, match=r"param_names"):
        ProfileDataset(**kw)


def test_a_redshift_column_lies_in_range_and_agrees_with_the_redshift_array() -> None:
    n = 4
    base: dict[str, Any] = {"param_names": ["Omega_m", "z"], "log10_mass": np.full(n, 13.0),
                            "radius": np.geomspace(0.1, 1.0, 3), "profiles": {"rho": np.ones((n, 3))}}
    z = np.array([0.0, 0.5, 1.0, 2.0])
    params = np.column_stack([np.full(n, 0.3), z])
    assert ProfileDataset(params=params, redshift=z, **base).n == n
    with pytest.raises(DataError, match=r"redshift: 0.5 at row 1, but the parameter column 'z'.*says 0.7"):
        ProfileDataset(params=np.column_stack([np.full(n, 0.3), [0.0, 0.7, 1.0, 2.0]]), redshift=z, **base)
    with pytest.raises(DataError, match=r"params\['z'\]: value -1.0 at row 2 is outside \[0, 20\]"):
        ProfileDataset(params=np.column_stack([np.full(n, 0.3), [0.0, 0.5, -1.0, 2.0]]), **base)
    # a metallicity called Z is not a redshift
    assert ProfileDataset(params=np.column_stack([np.full(n, 0.3), [-1.0, 0.0, 1.0, 2.0]]),
                          **{**base, "param_names": ["Omega_m", "Z"]}).n == n
