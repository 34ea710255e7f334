"""Memory scales with the data: loading a dataset file peaks near the float64 size of its arrays.

Each file is loaded in a fresh interpreter, which reports its peak resident size (``VmHWM``)
right before and right after :func:`profemu.load_dataset`; the difference is what loading
cost. Real-valued arrays are converted to float64 while they are read (a float32 file is
never held in both forms) and become the dataset's without copies, so the cost stays
near the size of what the dataset holds (about 1.1 times); reading the file whole, then
copying and converting it, cost 1.7 to 2.4 times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20

#: Largest peak of a load, relative to the bytes the dataset holds (measured: about 1.1).
MAX_PEAK_RATIO = 1.5

_CHILD = r"""
import json, resource, sys

def peak_mb():
    try:
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from profemu import load_dataset
try:
    import h5py  # imported by the HDF5 reader: a fixed cost, not part of what loading holds
except ImportError:
    pass
before = peak_mb()
ds = load_dataset(sys.argv[1])
after = peak_mb()
held = [ds.params, ds.log10_mass, ds.radius, *ds.profiles.values(), *ds.mask.values(), *(ds.noise or {}).values()]
print(json.dumps({"before_mb": before, "after_mb": after, "held_mb": sum(a.nbytes for a in held) / 2**20,
                  "dtype": str(ds.profiles[ds.fields[0]].dtype)}))
"""


def write_file(path: Path, dtype: str, mb: float) -> None:
    """A dataset file in the schema of docs/data_schema.md whose profiles (2 fields, with noise)
    take ``mb`` MiB in ``dtype`` (as a foreign pipeline writes it, float32 included)."""
    n_fields, n_r = 2, 50
    n = int(mb * MiB / (np.dtype(dtype).itemsize * n_fields * n_r))
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "schema_version": np.array(1, dtype=np.int64),
        "format": np.array("profemu.ProfileDataset"),
        "params": rng.uniform(0.1, 1.0, (n, 4)).astype(dtype),
        "param_names": np.array(["a", "b", "c", "d"]),
        "log_params": np.array(["a"]),
        "log10_mass": rng.uniform(12.0, 14.0, n).astype(dtype),
        "radius": np.geomspace(0.01, 2.0, n_r),
        "radius_unit": np.array("Mpc"),
        "fields": np.array(["rho", "pth"]),
        "units": np.array(["", ""]),
        "profiles": rng.uniform(0.5, 2.0, (n_fields, n, n_r)).astype(dtype),
        "mask": np.ones((n_fields, n, n_r), dtype=bool),
        "noise_fields": np.array(["rho"]),
        "noise": np.full((1, n, n_r), 0.01, dtype=dtype),
        "meta": np.array("{}"),
    }
    if path.suffix == ".npz":
        np.savez(path, **arrays)
        return
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as h5:
        for key, arr in arrays.items():
            h5.create_dataset(key, data=np.char.encode(arr, "utf-8") if arr.dtype.kind == "U" else arr)


def load_in_child(path: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("suffix", "dtype"), [(".npz", "float32"), (".h5", "float32"), (".npz", "float64"),
                                               (".h5", "float64")])
def test_loading_peaks_near_the_size_of_the_dataset(tmp_path: Path, suffix: str, dtype: str) -> None:
    path = tmp_path / f"big{suffix}"
    write_file(path, dtype, mb=40)
    out = load_in_child(path)
    assert out["dtype"] == "float64", out
    assert out["held_mb"] > 60, out  # the profiles, noise, mask and parameters as the dataset holds them
    cost = out["after_mb"] - out["before_mb"]
    assert cost <= MAX_PEAK_RATIO * out["held_mb"], (
        f"loading a {dtype} {suffix} file raised the peak RSS by {cost:.0f} MiB for a dataset of "
        f"{out['held_mb']:.0f} MiB ({cost / out['held_mb']:.2f} x; at most {MAX_PEAK_RATIO} x)")
