"""The CAMELS LH adapter, checked against the raw arrays of the real table."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from profemu.data.camels import CAMELS_LOG_PARAMS, load_camels_lh
from profemu.errors import DataError, FormatError

pytestmark = pytest.mark.camels


@pytest.fixture(scope="module")
def raw(camels_path: Path) -> dict[str, np.ndarray]:
    with np.load(camels_path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_all_bins_drop_the_mislabelled_duplicates(
    camels_path: Path, raw: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="profemu.data.camels"):
        ds = load_camels_lh(camels_path, mass_bins="all")
    assert "dropped 14 row(s) flagged header_bin_mismatch" in caplog.text
    assert [r.levelno for r in caplog.records] == [logging.INFO]  # one line, not a warning
    assert "bins not requested" not in caplog.text
    assert ds.n == 2123 == raw["sim_id"].size - raw["header_bin_mismatch"].sum()
    assert ds.meta["n_dropped_header_bin_mismatch"] == 14
    assert ds.meta["rows_per_bin"] == {
        "11-11.5": 1000,
        "11.5-12": 1000,
        "12-12.3": 109,
        "12.3-13.1": 14,
    }
    keep = ~raw["header_bin_mismatch"]
    labels = raw["mass_bin_label"][keep]
    counts = [int((labels == b).sum()) for b in ("11-11.5", "11.5-12", "12-12.3", "12.3-13.1")]
    assert counts == [1000, 1000, 109, 14]
    assert ds.n_r == 15
    np.testing.assert_array_equal(ds.radius, raw["radius_mpc"])
    assert ds.radius_unit == "Mpc"
    # every kept row is genuine: no (sim_id, label) pair is duplicated
    pairs = {(int(s), str(b)) for s, b in zip(raw["sim_id"][keep], labels, strict=True)}
    assert len(pairs) == ds.n


def test_default_selection_is_logged_and_recorded(
    camels_path: Path, raw: dict[str, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="profemu.data.camels"):
        ds = load_camels_lh(camels_path, fields=("rho", "pth"))
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    text = record.getMessage()
    # counts from the raw table, not from the loader
    labels, flagged = raw["mass_bin_label"], raw["header_bin_mismatch"]
    other = {b: int(((labels == b) & ~flagged).sum()) for b in ("12-12.3", "12.3-13.1")}
    assert other == {"12-12.3": 109, "12.3-13.1": 14}
    for fragment in (
        f"kept 2000 of {labels.size} rows of camels_lh_tng.npz",
        "mass bins ['11-11.5', '11.5-12']",
        "statistic 'mean' (columns ['rho_mean', 'pth_mean'])",
        "mass column 'log10_mass_mean'",
        f"dropped {int(flagged.sum())} row(s) flagged header_bin_mismatch",
        f"{sum(other.values())} row(s) of bins not requested {other}",
        "present for every simulation",
    ):
        assert fragment in text, fragment
    sel = ds.meta["camels_selection"]
    assert sel["summary"] == text
    assert sel["rows_in_file"] == labels.size and sel["rows_kept"] == ds.n == 2000
    assert sel["dropped_header_bin_mismatch"] == 14 and sel["dropped_bins_not_requested"] == other
    assert sel["rows_kept"] + sel["dropped_header_bin_mismatch"] + sum(other.values()) == labels.size
    assert sel["mass_column"] == "log10_mass_mean" and sel["statistic"] == "mean"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.data.camels"):
        quiet = load_camels_lh(camels_path, verbose=False)
    assert caplog.records == [] and quiet.meta["camels_selection"]["rows_kept"] == 2000


def test_default_bins(camels_path: Path, raw: dict[str, np.ndarray]) -> None:
    ds = load_camels_lh(camels_path, verbose=False)
    assert ds.n == 2000 and ds.fields == ("rho",)
    assert ds.groups is not None and np.unique(ds.groups).size == 1000
    assert ds.param_names == ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
    assert ds.log_params == CAMELS_LOG_PARAMS
    rows = np.flatnonzero(
        np.isin(raw["mass_bin_label"], ["11-11.5", "11.5-12"]) & ~raw["header_bin_mismatch"]
    )
    np.testing.assert_array_equal(ds.params, raw["params"][rows])
    np.testing.assert_array_equal(ds.log10_mass, raw["log10_mass_mean"][rows])
    np.testing.assert_array_equal(ds.groups, raw["sim_id"][rows])
    np.testing.assert_array_equal(ds.redshift, raw["redshift"][rows])
    np.testing.assert_array_equal(ds.profiles["rho"], raw["rho_mean"][rows].astype(np.float64))
    assert ds.units == {"rho": "Msun/kpc^3"}
    assert ds.meta["source_commit"].startswith("50f435e")


def test_noise_formula(camels_path: Path, raw: dict[str, np.ndarray]) -> None:
    ds = load_camels_lh(camels_path, fields=("pth", "temp"), mass_bins=("12-12.3",), verbose=False)
    rows = np.flatnonzero((raw["mass_bin_label"] == "12-12.3") & ~raw["header_bin_mismatch"])
    assert ds.n == rows.size == 109
    assert ds.noise is not None
    for f in ("pth", "temp"):
        std = raw[f"{f}_std"][rows].astype(np.float64)
        expected = std / np.sqrt(raw["nprofs"][rows].astype(np.float64))[:, None]
        np.testing.assert_allclose(ds.noise[f], expected, rtol=1e-15)
    # a cell where only one halo had gas: std == 0 gives noise 0 (finite, allowed)
    assert (ds.noise["pth"] == 0).any()
    med = load_camels_lh(
        camels_path,
        fields=("pth",),
        statistic="median",
        mass="median",
        mass_bins=("12-12.3",),
        verbose=False,
    )
    assert med.noise is not None
    np.testing.assert_allclose(med.noise["pth"], np.sqrt(np.pi / 2) * ds.noise["pth"], rtol=1e-12)
    np.testing.assert_array_equal(med.profiles["pth"], raw["pth_median"][rows].astype(np.float64))
    np.testing.assert_array_equal(med.log10_mass, raw["log10_mass_median"][rows])
    assert load_camels_lh(camels_path, include_noise=False, verbose=False).noise is None


def test_nan_padding_is_masked_not_dropped(tmp_path: Path, raw: dict[str, np.ndarray]) -> None:
    # The real table's padded rows are the flagged duplicates; build a copy whose genuine
    # rows carry padding to check that padding is masked, kept and given no noise.
    arrays = dict(raw)
    rows = np.flatnonzero(
        np.isin(raw["mass_bin_label"], ["11-11.5", "11.5-12"]) & ~raw["header_bin_mismatch"]
    )
    padded = rows[[0, 5]]
    rho = np.array(raw["rho_mean"], copy=True)
    rho[padded, -1] = np.nan
    arrays["rho_mean"] = rho
    std = np.array(raw["rho_std"], copy=True)
    std[padded, -1] = np.nan
    arrays["rho_std"] = std
    n_radii = np.array(raw["n_radii"], copy=True)
    n_radii[padded] = 14
    arrays["n_radii"] = n_radii
    path = tmp_path / "padded.npz"
    np.savez(path, **arrays)
    ds = load_camels_lh(path, verbose=False)
    assert ds.n == 2000
    assert not ds.mask["rho"][0, -1] and not ds.mask["rho"][5, -1]
    assert ds.mask["rho"][0, :-1].all() and ds.mask["rho"][1].all()
    assert np.isnan(ds.profiles["rho"][0, -1])
    np.testing.assert_array_equal(ds.profiles["rho"][0, :-1], raw["rho_mean"][padded[0], :-1])
    # a finite value beyond n_radii is masked too: padding is defined by n_radii
    rho[padded, -1] = 1.0
    np.savez(path, **arrays)
    ds = load_camels_lh(path, verbose=False)
    assert not ds.mask["rho"][0, -1] and ds.profiles["rho"][0, -1] == 1.0


def test_padding_of_the_real_flagged_rows(raw: dict[str, np.ndarray]) -> None:
    # documents where the real padding lives: only in the 14 flagged rows (dropped)
    padded = raw["n_radii"] < raw["radius_mpc"].size
    assert padded.sum() == 14
    assert np.array_equal(padded, raw["header_bin_mismatch"])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"fields": ("rho", "density")},
            r"fields: unknown value 'density'; valid choices are \['rho', 'pth', 'metal', 'temp'\]",
        ),
        ({"fields": ()}, r"fields: empty"),
        ({"fields": ("rho", "rho")}, r"fields: duplicate name 'rho' \(entries 0 and 1\)"),
        ({"mass_bins": ("11-11.5", "11-11.5")}, r"mass_bins: duplicate name '11-11.5'"),
        (
            {"statistic": "p84"},
            r"statistic: unknown value 'p84'; valid choices are \['mean', 'median'\]",
        ),
        ({"mass": "max"}, r"mass: unknown value 'max'"),
        (
            {"mass_bins": ("11-12",)},
            r"mass_bins: '11-12' is not a bin of this file; its bins are \['11-11.5', '11.5-12', '12-12.3', '12.3-13.1'\]: "
            r"pass some of them \(--mass-bins A,B\) or 'all'",
        ),
        ({"mass_bins": "11-11.5"}, r"mass_bins: '11-11.5' is not a list of bins"),
        ({"mass_bins": ()}, r"mass_bins: empty"),
    ],
)
def test_argument_errors(camels_path: Path, kwargs: dict, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_camels_lh(camels_path, verbose=False, **kwargs)


def test_single_string_field_and_unreadable_file(camels_path: Path, tmp_path: Path) -> None:
    ds = load_camels_lh(camels_path, fields="metal", mass_bins=("12.3-13.1",), verbose=False)
    assert ds.fields == ("metal",) and ds.n == 14
    with pytest.raises(FormatError, match=r"CAMELS table not found"):
        load_camels_lh(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, sim_id=np.arange(3))
    with pytest.raises(FormatError, match=r"required array 'params' is missing"):
        load_camels_lh(bad)


def test_the_adapter_declares_mass_definition_redshift_and_kinds(camels_path: Path,
                                                                  raw: dict[str, np.ndarray]) -> None:
    from profemu.data.selfsimilar import resolve

    ds = load_camels_lh(camels_path, fields=("rho", "pth", "metal"), verbose=False)
    assert ds.meta["mass_definition"] == "M200c [Msun]"
    assert ds.meta["redshift"] == float(raw["redshift"][0])
    assert ds.meta["field_kinds"] == {"rho": "gas_density", "pth": "pressure", "metal": "other"}
    spec, msg = resolve(ds.param_names, ds.fields, None, ds.units, ds.meta, None, ds.radius_unit, ds.params)
    assert spec is not None and spec.kinds == ("density", "pressure", "")  # redshift from meta
    assert spec.redshift_value == pytest.approx(0.53726) and "rho: declared gas_density" in msg
