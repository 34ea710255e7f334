"""The parameter lists and the CAMELS parameter table reader (profemu.data.mock.parameters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.data.mock import SB35_INFO_FILENAME, make_hard_mock, read_camels_parameter_table
from profemu.errors import FormatError


def _parse_info_csv(path: Path) -> list[tuple[str, bool, float, float, float]]:
    """(name, is_log, fiducial, lo, hi) per line, read with plain string splitting."""
    lines = path.read_text().strip().splitlines()
    assert lines[0].split(",")[:6] == ["ParamName", "AbsMaxDiff", "LogFlag", "FiducialVal",
                                       "MinVal", "MaxVal"]
    out = []
    for line in lines[1:]:
        name, _, flag, fid, lo, hi = line.split(",")[:6]
        out.append((name, flag == "1", float(fid), float(lo), float(hi)))
    return out


def test_hard_mock_reads_the_sb35_table(sb35_table: Path) -> None:
    expected = _parse_info_csv(sb35_table)
    assert len(expected) == 35
    specs = read_camels_parameter_table(sb35_table.parent)  # a folder works too
    assert [(p.name, p.is_log, p.fiducial, p.lo, p.hi) for p in specs] == expected
    universe = make_hard_mock(400, seed=5, parameter_table=sb35_table)
    ds = universe.dataset
    assert ds.param_names == tuple(e[0] for e in expected)
    assert set(ds.log_params) == {e[0] for e in expected if e[1]}
    for j, (name, is_log, _, lo, hi) in enumerate(expected):
        col = ds.params[:, j]
        assert lo <= col.min() and col.max() <= hi, name
        # the design fills the box: a Latin hypercube of 400 points reaches both ends
        unit = np.log(col / lo) / np.log(hi / lo) if is_log else (col - lo) / (hi - lo)
        assert unit.min() < 0.01 and unit.max() > 0.99, name
    acting = ds.meta["acting_parameters"]
    assert {"Omega0", "sigma8", "WindEnergyIn1e51erg", "RadioFeedbackFactor", "VariableWindVelFactor",
            "OmegaBaryon", "HubbleParam"} <= set(acting)
    assert len(ds.meta["inert_parameters"]) == 26
    assert ds.meta["parameter_source"] == SB35_INFO_FILENAME


def test_parameter_table_errors(tmp_path: Path) -> None:
    header = "ParamName,AbsMaxDiff,LogFlag,FiducialVal,MinVal,MaxVal,Description\n"
    good = tmp_path / "Info_good.csv"
    good.write_text(header + "Alpha,1,0,0.5,0,1,first, with a comma\nBeta,1,1,1,0.5,2,second\n")
    specs = read_camels_parameter_table(good)
    assert [(p.name, p.is_log, p.lo, p.hi, p.role) for p in specs] == [
        ("Alpha", False, 0.0, 1.0, "nuisance"), ("Beta", True, 0.5, 2.0, "nuisance")]
    cases = {
        "missing.csv": None,
        "cols.csv": "ParamName,MinVal,MaxVal\nA,0,1\n",
        "num.csv": header + "A,1,0,x,0,1,d\n",
        "range.csv": header + "A,1,0,1,2,1,d\n",
        "log.csv": header + "A,1,1,1,0,2,d\n",
        "dup.csv": header + "A,1,0,0.5,0,1,d\nA,1,0,0.5,0,1,d\n",
    }
    words = {"missing.csv": "not found", "cols.csv": "lacks column", "num.csv": "must be numbers",
             "range.csv": "line 2", "log.csv": "log parameter", "dup.csv": "duplicate"}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(FormatError, match=words[name]):
            read_camels_parameter_table(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match="0 Info_"):
        read_camels_parameter_table(empty)
