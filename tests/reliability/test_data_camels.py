"""The CAMELS LH adapter on small synthetic tables with the real table's layout.

These run without the real data: a table of 4 simulations (2 mass bins each), one genuine
``12-12.3`` row and one mislabelled duplicate, then variants with one defect each.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu.data.camels import load_camels_lh
from profemu.errors import DataError, FormatError
from tests.reliability.test_data_files import load_in_child, stored, write_zip, zeros_member

N_R = 4
PARAM_NAMES = ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")
META = {
    "source": "github.com/emilymmoser/emu_CAMELS", "source_commit": "50f435e16958", "suite": "IllustrisTNG",
    "set": "LH", "units": {"rho": "Msun/kpc^3", "pth": "Msun/kpc/s^2"},
    "to_cgs": {"rho": 6.7679e-32, "pth": 6.444e11},
}


def table(rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    rng = rng or np.random.default_rng(11)
    sims = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    labels = ["11-11.5", "11.5-12", "12-12.3", "11-11.5", "11.5-12", "12-12.3", "11-11.5", "11.5-12",
              "11-11.5", "11.5-12"]
    n = len(sims)
    flagged = np.zeros(n, dtype=bool)
    flagged[5] = True  # sim 1's "12-12.3" file is a mislabelled duplicate
    lo = np.array([float(b.split("-")[0]) for b in labels])
    out: dict[str, np.ndarray] = {
        "sim_id": np.array(sims, dtype=np.int32),
        "params": np.repeat(rng.uniform(0.3, 2.0, size=(4, 6)), np.bincount(sims), axis=0),
        "param_names": np.array(PARAM_NAMES),
        "mass_bin_label": np.array(labels),
        "header_bin_mismatch": flagged,
        "nprofs": rng.integers(5, 50, n).astype(np.int32),
        "log10_mass_mean": lo + 0.2,
        "log10_mass_median": lo + 0.15,
        "redshift": np.full(n, 0.53726),
        "radius_mpc": np.logspace(-3, 0, N_R),
        "n_radii": np.full(n, N_R, dtype=np.int32),
        "snapshot": np.array("024"),
        "meta_json": np.array(json.dumps(META)),
    }
    for q in ("rho", "pth"):
        for stat in ("mean", "median"):
            out[f"{q}_{stat}"] = rng.uniform(1.0, 10.0, size=(n, N_R)).astype(np.float32)
        out[f"{q}_std"] = rng.uniform(0.1, 0.5, size=(n, N_R)).astype(np.float32)
    return out


def save(tmp_path: Path, name: str = "camels.npz", **changes: Any) -> Path:
    arrays = table()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_selection_is_logged_once_and_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = table()
    with caplog.at_level(logging.DEBUG, logger="profemu.data.camels"):
        ds = load_camels_lh(save(tmp_path), fields=("rho", "pth"))
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "CAMELS LH: kept 8 of 10 rows of camels.npz: mass bins ['11-11.5', '11.5-12'] (rows per bin "
        "{'11-11.5': 4, '11.5-12': 4}), statistic 'mean' (columns ['rho_mean', 'pth_mean']), mass column "
        "'log10_mass_mean'; dropped 1 row(s) flagged header_bin_mismatch (mislabelled files that duplicate "
        "the genuine row of the same simulation) and 1 row(s) of bins not requested {'12-12.3': 1} (the "
        "default bins are the only ones present for every simulation; pass mass_bins='all' to keep all)."
    )
    sel = ds.meta["camels_selection"]
    assert sel["summary"] == record.getMessage()
    assert sel["rows_in_file"] == 10 and sel["rows_kept"] == ds.n == 8
    assert sel["dropped_header_bin_mismatch"] == 1 and sel["dropped_bins_not_requested"] == {"12-12.3": 1}
    assert sel["profile_columns"] == ["rho_mean", "pth_mean"] and sel["mass_column"] == "log10_mass_mean"
    keep = np.isin(raw["mass_bin_label"], ["11-11.5", "11.5-12"]) & ~raw["header_bin_mismatch"]
    np.testing.assert_array_equal(ds.groups, raw["sim_id"][keep])
    np.testing.assert_array_equal(ds.profiles["pth"], raw["pth_mean"][keep].astype(np.float64))
    assert ds.units == {"rho": "Msun/kpc^3", "pth": "Msun/kpc/s^2"} and ds.meta["snapshot"] == "024"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="profemu.data.camels"):
        every = load_camels_lh(save(tmp_path), mass_bins="all", statistic="median", mass="median", verbose=False)
    assert caplog.records == []  # verbose=False: DEBUG only
    assert every.n == 9 and "bins not requested" not in every.meta["camels_selection"]["summary"]
    assert every.meta["camels_selection"]["statistic"] == "median"


def test_fractional_sim_id_is_refused_not_truncated(tmp_path: Path) -> None:
    sim_id = table()["sim_id"].astype(np.float64)
    sim_id[3] = 1.5  # would become simulation 1 and join its group
    with pytest.raises(DataError, match=r"camels.npz: sim_id: value 1.5 at row 3 is not an integer id"):
        load_camels_lh(save(tmp_path, sim_id=sim_id))
    ds = load_camels_lh(save(tmp_path, sim_id=table()["sim_id"].astype(float)), verbose=False)  # exact
    assert ds.groups is not None and ds.groups.dtype == np.int64
    assert ds.groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"rho_mean": table()["rho_mean"].astype(np.complex64)},
         r"key 'rho_mean' has dtype complex64, expected real numbers"),
        ({"params": table()["params"] + 0j}, r"key 'params' has dtype complex128, expected real numbers"),
        ({"header_bin_mismatch": table()["header_bin_mismatch"].astype(float)},
         r"key 'header_bin_mismatch' has dtype float64, expected booleans"),
        ({"mass_bin_label": np.arange(10)}, r"key 'mass_bin_label' has dtype int64, expected text"),
        ({"rho_mean": np.ones((10, N_R + 1))}, r"key 'rho_mean' has shape \(10, 5\), expected \(n=10, n_r=4\)"),
        ({"nprofs": np.ones(9)}, r"key 'nprofs' has shape \(9,\), expected \(n=10\)"),
        ({"meta_json": np.array("[" * 10_000 + "]" * 10_000)},
         r"camels.npz: meta_json: JSON nested 10000 levels deep, more than the limit of 64"),
        ({"meta_json": np.array("{'units': {}}")}, r"camels.npz: meta_json: not valid JSON"),
        ({"meta_json": np.array("[1, 2]")}, r"meta_json: expected a JSON object, got list"),
        ({"meta_json": np.array('{"units": ["Msun"]}')}, r"meta_json: 'units' must map each quantity to a unit"),
        ({"meta_json": np.array('{"to_cgs": {"rho": "1e-31"}}')}, r"meta_json: 'to_cgs' must map each quantity"),
        ({"meta_json": np.array('{"source": {"url": 1}}')}, r"meta_json: 'source' must be a string"),
        ({"sim_id": None}, r"required array 'sim_id' is missing"),
    ],
)
def test_defective_tables(tmp_path: Path, changes: dict[str, Any], pattern: str) -> None:
    with pytest.raises(FormatError, match=pattern) as err:
        load_camels_lh(save(tmp_path, **changes), verbose=False)
    assert "\n" not in str(err.value)


def test_only_the_needed_columns_are_read(tmp_path: Path) -> None:
    # a defective column that was not asked for is never read (nor decompressed)
    path = save(tmp_path, temp_mean=np.ones((10, 3), dtype=np.complex64), pth_median=np.ones(2, dtype=object))
    ds = load_camels_lh(path, fields=("rho", "pth"), verbose=False)
    assert ds.fields == ("rho", "pth")
    with pytest.raises(FormatError, match=r"key 'pth_median' holds pickled Python objects"):
        load_camels_lh(path, fields=("pth",), statistic="median", verbose=False)


def test_nprofs_must_be_a_positive_integer_for_the_noise(tmp_path: Path) -> None:
    nprofs = table()["nprofs"].copy()
    nprofs[4] = 0
    path = save(tmp_path, nprofs=nprofs)
    with pytest.raises(DataError, match=r"nprofs is 0 at file row 4 \(sim_id 1, bin 11.5-12\).*include_noise=False"):
        load_camels_lh(path, verbose=False)
    assert load_camels_lh(path, include_noise=False, verbose=False).noise is None
    fractional = table()["nprofs"].astype(float)
    fractional[2] = 10.5
    with pytest.raises(DataError, match=r"nprofs: value 10.5 at row 2 is not an integer id"):
        load_camels_lh(save(tmp_path, nprofs=fractional), verbose=False)


def test_repeated_mass_bins_and_fields(tmp_path: Path) -> None:
    path = save(tmp_path)
    with pytest.raises(DataError, match=r"^mass_bins: duplicate name '11-11.5' \(entries 0 and 1\)"):
        load_camels_lh(path, mass_bins=("11-11.5", "11-11.5"))
    with pytest.raises(DataError, match=r"^fields: duplicate name 'pth' \(entries 1 and 2\)"):
        load_camels_lh(path, fields=("rho", "pth", "pth"))


@pytest.mark.parametrize("key", ["extra", "rho_std"])
def test_bombs_in_the_table(tmp_path: Path, key: str) -> None:
    base = load_in_child(save(tmp_path, "plain.npz"), loader="camels")
    assert base.get("rows") == 8, base
    members = stored(table())
    members[f"{key}.npy"] = zeros_member((2**28,), "f8")  # 2 GiB of zeros, ~2 MB on disk
    path = write_zip(tmp_path / "bomb.npz", members)
    out = load_in_child(path, loader="camels")
    assert out["maxrss_mb"] < base["maxrss_mb"] + 64, out
    if key == "extra":
        assert out.get("rows") == 8, out
    else:
        assert out.get("error") == "FormatError", out
        assert "key 'rho_std' has shape (268435456,), expected (n=10, n_r=4)" in out["message"]
