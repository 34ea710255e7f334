"""Data files under attack and under failure: bombs, deep JSON, crashes, full disks, the umask.

Memory is measured in child processes (peak RSS of the child: ``VmHWM`` of its own
address space where Linux reports it, else ``resource.getrusage``, which Linux carries
over from the parent across ``exec``); the child also runs under an address-space limit
so that a regression fails instead of exhausting the machine. Bomb files are small on disk: their members are genuine
deflate streams of zeros that expand to gigabytes, or HDF5 datasets whose declared shape
is huge and whose chunks were never written.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu import _files
from profemu._files import (
    atomic_write,
    atomic_write_text,
    current_umask,
    load_json_text,
    read_json_file,
    read_npz,
    remove_stale_temporaries,
)
from profemu.data.dataset import ProfileDataset
from profemu.data.io import load_dataset, save_dataset
from profemu.errors import DataError, FormatError, ProfemuError
from tests.data.test_dataset import base_kwargs

REPO = Path(__file__).resolve().parents[2]
GiB = 1 << 30


# ---------------------------------------------------------------------------- helpers
def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def zeros_member(shape: tuple[int, ...], dtype: str) -> tuple[bytes, int, int]:
    """A genuine deflate stream of an npy array of zeros: (compressed, crc32, size).

    The zeros are compressed once per MiB after a full flush, so the stream is the same
    piece repeated (~1 KB per MiB): cheap to build, a real bomb to decompress.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    head = header.getvalue()
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    mib = bytes(1 << 20)
    assert nbytes % len(mib) == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    piece = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    data = first + piece * (nbytes // len(mib)) + comp.flush()
    crc = zlib.crc32(head)
    for _ in range(nbytes // len(mib)):
        crc = zlib.crc32(mib, crc)
    return data, crc, len(head) + nbytes


def write_zip(path: Path, members: Mapping[str, bytes | tuple[bytes, int, int]]) -> Path:
    """A zip archive: bytes members are stored, (deflated, crc, size) members deflated."""
    local, central = bytearray(), bytearray()
    for name, member in members.items():
        if isinstance(member, bytes):
            data, crc, size, method = member, zlib.crc32(member), len(member), 0
        else:
            (data, crc, size), method = member, 8
        raw = name.encode()
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 0x21,
                               crc, len(data), size, len(raw), 0, 0, 0, 0, 0, len(local)) + raw
        local += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 0x21, crc,
                             len(data), size, len(raw), 0) + raw + data
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central),
                      len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from profemu.data.io import load_dataset
from profemu.data.camels import load_camels_lh
out = {}
try:
    ds = {"dataset": load_dataset, "camels": load_camels_lh}[sys.argv[1]](sys.argv[2])
    out["rows"] = ds.n
except BaseException as exc:
    out["error"] = type(exc).__name__
    out["message"] = str(exc)
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    status = open("/proc/self/status").read()
    out["maxrss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
except (OSError, IndexError, ValueError):
    pass
print(json.dumps(out))
"""


def load_in_child(path: Path, loader: str = "dataset", limit: int = 3 * GiB // 2) -> dict[str, Any]:
    """Load ``path`` in a fresh interpreter; its outcome and peak RSS [MB]."""
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _CHILD, loader, str(path), str(limit)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfileDataset, Path, dict[str, np.ndarray]]:
    ds = ProfileDataset(**base_kwargs(np.random.default_rng(7), n=7, n_r=5))
    path = save_dataset(ds, tmp_path_factory.mktemp("genuine") / "d.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return ds, path, arrays


@pytest.fixture(scope="module")
def baseline_rss(genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]]) -> float:
    out = load_in_child(genuine[1])
    assert out["rows"] == 7
    return float(out["maxrss_mb"])


def stored(arrays: Mapping[str, np.ndarray]) -> dict[str, bytes | tuple[bytes, int, int]]:
    return {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}


# ---------------------------------------------------------------------------- npz bombs
def test_unknown_member_bomb_is_never_decompressed(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], baseline_rss: float
) -> None:
    ds, _, arrays = genuine
    members = stored(arrays)
    members["extra.npy"] = zeros_member((2 * GiB,), "u1")  # 2 GiB of zeros in ~2 MB
    bomb = write_zip(tmp_path / "bomb.npz", members)
    assert bomb.stat().st_size < 4 << 20
    with zipfile.ZipFile(bomb) as zf:  # the member really is what it claims
        assert zf.getinfo("extra.npy").file_size == 2 * GiB + 128
        with zf.open("extra.npy") as fh:
            assert fh.read(1 << 20)[200:] == bytes((1 << 20) - 200)
    out = load_in_child(bomb)
    assert out.get("rows") == 7, out
    assert out["maxrss_mb"] < baseline_rss + 64, out
    assert load_dataset(bomb).fingerprint() == ds.fingerprint()


def test_known_key_bomb_with_inconsistent_shape_is_refused_before_reading(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], baseline_rss: float
) -> None:
    members = stored(genuine[2])
    members["profiles.npy"] = zeros_member((2, 7, 2**24), "f8")  # 1.75 GiB
    out = load_in_child(write_zip(tmp_path / "bomb.npz", members))
    assert out.get("error") == "FormatError", out
    assert "key 'profiles' has shape (2, 7, 16777216), expected (F=2, n=7, n_r=5)" in out["message"]
    assert out["maxrss_mb"] < baseline_rss + 64, out


def test_consistent_bomb_is_refused_by_the_byte_budget(tmp_path: Path, baseline_rss: float) -> None:
    n = 2**27  # 134 million rows: 4.25 GiB declared in total, 2 GiB in the largest member
    members = stored({
        "schema_version": np.array(1), "format": np.array("profemu.ProfileDataset"),
        "param_names": np.array(["a"]), "log_params": np.zeros(0, dtype="<U1"),
        "radius": np.array([0.1, 1.0]), "radius_unit": np.array("Mpc"), "fields": np.array(["rho"]),
        "units": np.array([""]), "meta": np.array("{}"),
    })
    members["params.npy"] = zeros_member((n, 1), "f8")
    members["log10_mass.npy"] = zeros_member((n,), "f8")
    members["profiles.npy"] = zeros_member((1, n, 2), "f8")
    members["mask.npy"] = zeros_member((1, n, 2), "|b1")
    path = write_zip(tmp_path / "big.npz", members)
    assert path.stat().st_size < 8 << 20
    out = load_in_child(path)
    assert out.get("error") == "FormatError", out
    assert "the arrays declare 4.25 GiB (largest: 'profiles' with shape (1, 134217728, 2) of float64)" in out["message"]
    assert "more than the limit of 4 GiB" in out["message"]
    assert out["maxrss_mb"] < baseline_rss + 64, out


def test_budget_is_adjustable_and_checked_before_reading(
    genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
) -> None:
    ds, path, arrays = genuine
    need = sum(a.nbytes for a in arrays.values())
    with pytest.raises(FormatError, match=r"more than the limit .*raise max_bytes"):
        load_dataset(path, max_bytes=need // 2)
    assert load_dataset(path, max_bytes=need).fingerprint() == ds.fingerprint()


def test_npy_header_claiming_1e12_elements(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], baseline_rss: float
) -> None:
    members = stored(genuine[2])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    members["log10_mass.npy"] = header.getvalue() + np.zeros(7).tobytes()
    path = write_zip(tmp_path / "liar.npz", members)
    out = load_in_child(path)
    assert out.get("error") == "FormatError", out
    assert "key 'log10_mass' declares shape (1000000000000,) of float64 (8000000000000 bytes) but the " \
           "archive holds 56 bytes" in out["message"]
    assert out["maxrss_mb"] < baseline_rss + 64, out
    with pytest.raises(FormatError) as err:  # and in this process: one line, a ProfemuError
        load_dataset(path)
    assert "\n" not in str(err.value)


def test_read_npz_refuses_duplicates_other_methods_and_objects(tmp_path: Path) -> None:
    member = npy_bytes(np.arange(3.0))
    dup = write_zip(tmp_path / "dup.npz", {"a.npy": member, "b.npy": member})
    raw = dup.read_bytes().replace(b"b.npy", b"a.npy")
    dup.write_bytes(raw)
    with pytest.raises(FormatError, match=r"key 'a' is stored twice"):
        read_npz(dup)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.arange(2))
    with pytest.raises(FormatError, match=r"key 'x' holds pickled Python objects"):
        read_npz(tmp_path / "obj.npz")
    assert read_npz(tmp_path / "obj.npz", keys=["y"])["y"].tolist() == [0, 1]  # x never opened
    with zipfile.ZipFile(tmp_path / "bz.npz", "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("x.npy", member)
    with pytest.raises(FormatError, match=r"compression method 12"):
        read_npz(tmp_path / "bz.npz")


def test_read_npz_round_trip_is_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    arrays = {
        "f": rng.normal(size=(3, 4)), "fortran": np.asfortranarray(rng.normal(size=(5, 2))),
        "big_endian": np.arange(4, dtype=">i4"), "text": np.array(["a", "µ"]), "empty": np.zeros((0, 3)),
        "scalar": np.array(3.5), "b": np.array([True, False]),
    }
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    np.savez(tmp_path / "s.npz", **arrays)
    for name in ("c.npz", "s.npz"):
        back = read_npz(tmp_path / name)
        assert set(back) == set(arrays)
        for key, arr in arrays.items():
            assert back[key].dtype == arr.dtype and back[key].shape == arr.shape
            assert back[key].tobytes(order="A") == arr.tobytes(order="A")
        assert back["fortran"].flags.f_contiguous and back["f"].flags.writeable
    corrupt = bytearray((tmp_path / "c.npz").read_bytes())
    corrupt[200] ^= 0xFF  # inside the first deflated member
    (tmp_path / "bad.npz").write_bytes(bytes(corrupt))
    with pytest.raises(FormatError, match=r"truncated or corrupt npz archive"):
        read_npz(tmp_path / "bad.npz")


# ---------------------------------------------------------------------------- HDF5 bombs
def _h5_genuine(h5: Any, arrays: Mapping[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    for key, arr in arrays.items():
        if key not in skip:
            h5.create_dataset(key, data=arr.astype("S") if arr.dtype.kind == "U" else arr)


@pytest.mark.parametrize("case", ["extra", "profiles", "chunks", "consistent"])
def test_hdf5_bombs(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], baseline_rss: float,
    case: str,
) -> None:
    h5py = pytest.importorskip("h5py")
    ds, _, arrays = genuine
    path = tmp_path / f"{case}.h5"
    with h5py.File(path, "w") as h5:
        if case == "extra":  # 2 GiB gzip dataset outside the schema, never written, never read
            _h5_genuine(h5, arrays)
            h5.create_dataset("extra", shape=(2**28,), dtype="f8", chunks=(2**19,), compression="gzip",
                              fillvalue=1.0)
        elif case == "profiles":
            _h5_genuine(h5, arrays, skip=("profiles",))
            h5.create_dataset("profiles", shape=(2, 7, 2**27), dtype="f8", chunks=(1, 1, 2**19),
                              compression="gzip", fillvalue=1.0)
        elif case == "chunks":  # 5 radii stored in one 8 MiB chunk
            _h5_genuine(h5, arrays, skip=("radius",))
            h5.create_dataset("radius", data=arrays["radius"], chunks=(2**20,), maxshape=(None,),
                              compression="gzip")
        else:
            n = 2**27
            _h5_genuine(h5, {k: arrays[k] for k in ("schema_version", "format", "radius", "radius_unit",
                                                     "meta")})
            for key, value in {"param_names": [b"a"], "log_params": np.zeros(0, "S1"), "fields": [b"rho"],
                               "units": [b""]}.items():
                h5.create_dataset(key, data=np.array(value, dtype="S3"))
            for key, shape, dtype in (("params", (n, 1), "f8"), ("log10_mass", (n,), "f8"),
                                      ("profiles", (1, n, 5), "f8"), ("mask", (1, n, 5), "b1")):
                h5.create_dataset(key, shape=shape, dtype=dtype, chunks=True, compression="gzip")
    assert path.stat().st_size < 1 << 20
    out = load_in_child(path)
    assert out["maxrss_mb"] < baseline_rss + 64, out
    if case == "extra":
        assert out.get("rows") == 7, out
        assert load_dataset(path).fingerprint() == ds.fingerprint()
        return
    assert out.get("error") == "FormatError", out
    expected = {
        "profiles": "key 'profiles' has shape (2, 7, 134217728), expected (F=2, n=7, n_r=5)",
        "chunks": "key 'radius' is stored in chunks of 8388608 bytes, larger than the array itself (40 bytes)",
        # 2**27 rows * (8 + 8 + 40 + 5) bytes = 7.625 GiB, plus a few bytes of names
        "consistent": "the arrays declare 7.63 GiB (largest: 'profiles' with shape (1, 134217728, 5) of float64)",
    }[case]
    assert expected in out["message"], out


def test_hdf5_links_and_groups_in_schema_keys_are_refused(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
) -> None:
    h5py = pytest.importorskip("h5py")
    arrays = genuine[2]
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("radius", data=arrays["radius"])
    path = tmp_path / "linked.h5"
    with h5py.File(path, "w") as h5:
        _h5_genuine(h5, arrays, skip=("radius",))
        h5["radius"] = h5py.ExternalLink(str(other), "radius")
    with pytest.raises(FormatError, match=r"'radius' is a ExternalLink; the schema has only datasets stored"):
        load_dataset(path)
    with h5py.File(path, "a") as h5:
        del h5["radius"]
        h5.create_group("radius")
    with pytest.raises(FormatError, match=r"'radius' is an HDF5 group"):
        load_dataset(path)


# ---------------------------------------------------------------------------- deep / bad JSON
DEEP = "[" * 100_000 + "]" * 100_000


def nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "[1]" + "}" * (depth - 1)


def test_deep_json_is_a_format_error_not_a_recursion_error() -> None:
    with pytest.raises(RecursionError):  # what the plain parser does with it
        json.loads(DEEP)
    with pytest.raises(FormatError, match=r"^meta: JSON nested 100000 levels deep, more than the limit of 64"):
        load_json_text(DEEP, what="meta")
    assert load_json_text(nested(64), what="x") is not None
    with pytest.raises(FormatError, match=r"nested 65 levels deep"):
        load_json_text(nested(65), what="x")
    with pytest.raises(FormatError, match=r"nested 3 levels deep, more than the limit of 2"):
        load_json_text('{"a": [[1]]}', what="x", max_depth=2)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 500 + '\\"{{{' + "]" * 3, "t": ['"[[["', "\\"]})
    assert load_json_text(text, what="x") == json.loads(text)


@pytest.mark.parametrize(
    ("text", "max_bytes", "pattern"),
    [
        ('{"a": 1', 1 << 20, r"^x: not valid JSON \(Expecting ',' delimiter at line 1, column 8\)"),
        ("1" * 5000, 1 << 20, r"^x: unreadable JSON \(ValueError"),  # more digits than int() takes
        (b"\xff\xfe{}", 1 << 20, r"^x: not UTF-8 text"),
        ("[" + " " * 100 + "]", 50, r"^x: 102 bytes of JSON, more than the limit of 50"),
    ],
)
def test_invalid_json_variants(text: str | bytes, max_bytes: int, pattern: str) -> None:
    with pytest.raises(FormatError, match=pattern):
        load_json_text(text, what="x", max_bytes=max_bytes)


def test_dataset_meta_deeply_nested_or_invalid(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
) -> None:
    arrays = dict(genuine[2])
    for name, meta, pattern in (
        ("deep.npz", DEEP, r"deep.npz: 'meta': JSON nested 100000 levels deep"),
        ("bad.npz", "{'a': 1}", r"bad.npz: 'meta': not valid JSON"),
        ("list.npz", "[1, 2]", r"list.npz: 'meta' must be a JSON object, got list"),
    ):
        np.savez(tmp_path / name, **dict(arrays, meta=np.array(meta)))
        with pytest.raises(FormatError, match=pattern):
            load_dataset(tmp_path / name)


def test_read_json_file(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(DEEP)
    with pytest.raises(FormatError, match=r"deep.json: JSON nested 100000 levels"):
        read_json_file(tmp_path / "deep.json")
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json_file(tmp_path / "ok.json") == {"a": [1, 2]}
    with pytest.raises(FormatError, match=r"ok.json: 13 bytes of JSON, more than the limit of 10"):
        read_json_file(tmp_path / "ok.json", max_bytes=10)
    with pytest.raises(DataError, match=r"absent.json: cannot read \(No such file or directory\); check the path"):
        read_json_file(tmp_path / "absent.json")


# ---------------------------------------------------------------------------- operating-system errors
def test_full_disk_names_the_path_and_keeps_the_old_file(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = genuine[0]
    path = save_dataset(ds, tmp_path / "d.npz")
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DataError) as err:
        save_dataset(ds.subset([0, 1]), path)
    assert str(err.value) == (f"{path}: cannot write (No space left on device); free disk space or "
                              "choose another folder.")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]  # no temporary left


def test_read_only_folder(tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DataError, match=r"d.h5: cannot write \(Read-only file system\); the file system is "
                                         r"read-only: choose a writable folder\.$"):
        save_dataset(genuine[0], tmp_path / "d.h5")
    with pytest.raises(DataError, match=r"notes.txt: cannot write \(Read-only file system\)"):
        atomic_write_text(tmp_path / "notes.txt", "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not apply to root")
def test_permission_denied_for_real(tmp_path: Path,
                                    genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]]) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(DataError, match=r"cannot write \(Permission denied\); check the permissions"):
            save_dataset(genuine[0], folder / "d.npz")
    finally:
        folder.chmod(0o755)


def test_real_os_errors_on_write_and_read(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]],
) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"afile/d.npz: cannot create the folder of \(File exists\)"):
        save_dataset(genuine[0], tmp_path / "afile" / "d.npz")
    with pytest.raises(DataError, match=r"cannot read \(Is a directory\); the path is a folder"):
        read_npz(tmp_path)
    with pytest.raises(ProfemuError):
        load_dataset(tmp_path / "afile" / "d.npz")


# ---------------------------------------------------------------------------- crashes and stale temporaries
_KILLER = r"""
import os, signal, sys
from profemu.data.io import load_dataset, save_dataset
target = sys.argv[1]
smaller = load_dataset(target).subset([0, 1])
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed after writing, before the rename
save_dataset(smaller, target)
"""


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_killed_save_leaves_the_old_file_and_the_next_save_cleans_up(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], suffix: str,
) -> None:
    pytest.importorskip("h5py")
    ds = genuine[0]
    path = save_dataset(ds, tmp_path / f"d{suffix}")
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}")
    done = subprocess.run([sys.executable, "-c", _KILLER, str(path)], env=env, capture_output=True,
                          timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert load_dataset(path).fingerprint() == ds.fingerprint()  # the old file, intact
    (stale,) = [p for p in tmp_path.iterdir() if p != path]
    assert stale.name.startswith(f".d{suffix}.") and stale.name.endswith(".tmp")
    assert load_dataset(path).n == 7 and stale.stat().st_size > 0
    # the crash was before this process started: date the leftover accordingly
    past = time.time() - 3600
    os.utime(stale, (past, past))
    save_dataset(ds.subset([0, 1, 2]), path)
    assert sorted(tmp_path.iterdir()) == [path]
    assert load_dataset(path).n == 3


def test_remove_stale_temporaries_spares_fresh_and_unrelated_files(tmp_path: Path) -> None:
    old, fresh = time.time() - 3600, time.time()
    names = {
        ".weights-0123.npz.ab12cd.tmp": old,  # stale, matches the pattern
        ".weights-4567.npz.ef34gh.tmp": fresh,  # a write in progress: kept
        ".manifest.json.ij56kl.tmp": old,  # another final name: kept
        "weights-0123.npz": old,  # a final file: kept
        ".weights-0123.npz.tmp.bak": old,  # not of the temporary form: kept
    }
    for name, stamp in names.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (stamp, stamp))
    removed = remove_stale_temporaries(tmp_path, "weights-*.npz")
    assert [p.name for p in removed] == [".weights-0123.npz.ab12cd.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {removed[0].name})
    assert remove_stale_temporaries(tmp_path / "absent", "x") == []


def test_atomic_write_leaves_nothing_after_an_error_in_the_writer(tmp_path: Path) -> None:
    def broken(fh: Any) -> None:
        fh.write(b"partial")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        atomic_write(tmp_path / "x.bin", broken)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- umask
@pytest.fixture
def umask() -> Iterator[Any]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("name", ["d.npz", "d.h5", "notes.txt"])
def test_files_get_the_mode_the_umask_asks_for(
    tmp_path: Path, genuine: tuple[ProfileDataset, Path, dict[str, np.ndarray]], umask: Any,
    mask: int, mode: int, name: str,
) -> None:
    umask(mask)
    assert current_umask() == mask
    path = tmp_path / name
    if name.endswith(".txt"):
        atomic_write_text(path, "x")
    else:
        save_dataset(genuine[0], path)
    assert path.stat().st_mode & 0o777 == mode


def test_umask_fallback_without_proc(umask: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    umask(0o027)
    monkeypatch.setattr(_files, "_PROC_STATUS", Path("/nonexistent/status"))
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # the fallback restored it
