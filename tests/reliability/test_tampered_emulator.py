"""Emulator folders edited by someone who also recomputes the checksums: numbers out of any
fitted range are refused on load, never turned into NaN/inf predictions with exit 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu import Emulator
from profemu._files import sha256_file
from profemu.errors import FormatError
from tests.reliability import TinyRun, tiny_run
from tests.reliability.test_safe_files import _edit_manifest, _emulator_copy


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def _scale_list(values: list[Any], factor: float) -> list[Any]:
    return [v * factor for v in values]


@pytest.mark.parametrize(("case", "needle"), [
    ("variance_huge", r"variance_scale = 1e\+308; a calibrated emulator has a finite scale"),
    ("variance_tiny", r"variance_scale = 1e-300; a calibrated emulator has a finite scale"),
    ("target_scale", "target_center/target_scale are outside"),
    ("target_center", "target_center/target_scale are outside"),
    ("input_stats", "input_stats"),
])
def test_manifest_numbers_out_of_range_are_refused(run: TinyRun, tmp_path: Path, case: str, needle: str) -> None:
    folder = _emulator_copy(run, tmp_path)

    def edit(m: dict[str, Any]) -> None:
        t = m["transforms"]
        if case == "variance_huge":
            m["variance_scale"] = 1e308
        elif case == "variance_tiny":
            m["variance_scale"] = 1e-300
        elif case == "target_scale":
            t["target_scale"] = _scale_list(t["target_scale"], 1e300)
        elif case == "target_center":
            t["target_center"] = _scale_list(t["target_center"], 1e300)
        else:
            stats = t["input_stats"]["params"]
            stats["center"] = _scale_list(stats["center"], 1e300)

    _edit_manifest(folder, edit)
    with pytest.raises(FormatError, match=needle):
        Emulator.load(folder)


def test_weights_out_of_range_are_refused(run: TinyRun, tmp_path: Path) -> None:
    folder = _emulator_copy(run, tmp_path)
    wfile = Emulator.weights_file(folder)
    with np.load(wfile) as z:
        arrays = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] * 1e300  # finite in float64, inf once the emulator casts to float32
    np.savez(wfile, **arrays)

    def edit(m: dict[str, Any]) -> None:
        m["weights"]["sha256"] = sha256_file(wfile)

    _edit_manifest(folder, edit)
    with pytest.raises(FormatError, match=r"above 1e\+06 in magnitude"):
        Emulator.load(folder)
    assert np.all(np.isfinite(run.emulator.predict(run.dataset.params[:2], run.dataset.log10_mass[:2])[
        run.emulator.field_names[0]].mean))  # the untouched emulator still predicts
