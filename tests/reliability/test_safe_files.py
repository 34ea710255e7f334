"""Loading a file never runs code: no pickle anywhere, manifests validated before arrays.

A malicious pickle payload (an object whose ``__reduce__`` creates a marker file) is
planted under every file name profemu reads; loading must fail with a clear profemu
error and the marker must never appear.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profemu.config import Config
from profemu.data.io import load_dataset
from profemu.emulator import Emulator
from profemu.errors import ConfigError, FormatError, ProfemuError, TrainingError
from profemu.runs import cluster
from profemu.runs.folder import DataSource, RunFolder
from profemu.train.checkpoint import load_latest, save_checkpoint
from tests.reliability import TinyRun, tiny_config, tiny_run

SRC = Path(__file__).resolve().parents[2] / "src" / "profemu"


class Payload:
    """Unpickling this object creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def pickle_bytes(marker: Path) -> bytes:
    import pickle  # only to build the attack; profemu itself never imports it

    return pickle.dumps(Payload(marker), protocol=4)


def plant(path: Path, marker: Path, kind: str) -> None:
    """Replace ``path`` by a raw pickle payload or by an npz whose array holds the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pickle":
        path.write_bytes(pickle_bytes(marker))
    else:
        with open(path, "wb") as fh:
            np.savez(fh, x=np.array([Payload(marker)], dtype=object))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


# ------------------------------------------------------------------------ source scan
def test_no_pickle_in_the_package() -> None:
    forbidden = re.compile(
        r"allow_pickle\s*=\s*True|pickle\.loads?\(|^\s*(import|from)\s+(c|cloud)?pickle\b|"
        r"\bdill\b|\bjoblib\b|yaml\.(unsafe_)?load\(|yaml\.Loader|torch\.load",
        re.MULTILINE,
    )
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    hits = [f"{f.relative_to(SRC)}: {m.group(0)}" for f in files for m in forbidden.finditer(f.read_text())]
    assert hits == []
    # every np.load spells out allow_pickle=False (numpy's default could change per version)
    calls = [(f, m) for f in files for m in re.finditer(r"np\.load\(([^)]*)\)", f.read_text())]
    assert all("allow_pickle=False" in m.group(1) for _, m in calls), [str(f) for f, m in calls]
    # archives are read by the one bounded reader, which parses npy headers itself
    assert "def read_npz(" in (SRC / "_files.py").read_text()


# ------------------------------------------------------------------------ datasets
@pytest.mark.parametrize(("name", "kind"), [
    ("data.npz", "pickle"), ("data.npz", "object_npz"), ("data.h5", "pickle"), ("data.hdf5", "object_npz"),
])
def test_dataset_files(tmp_path: Path, marker: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    plant(path, marker, kind)
    # an object array under a key the schema does not know is never even opened
    with pytest.raises(FormatError, match=r"pickle|neither an npz|Python objects|no 'schema_version' key"):
        load_dataset(path)
    assert not marker.exists()


# ------------------------------------------------------------------------ emulator
def _emulator_copy(run: TinyRun, tmp_path: Path) -> Path:
    folder = tmp_path / "emulator"
    shutil.copytree(run.run_dir / "emulator", folder)
    return folder


def _edit_manifest(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the manifest as someone who also recomputes its content checksum would."""
    from profemu.emulator.files import _content_digest

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    manifest["content_sha256"] = _content_digest(manifest)
    path.write_text(json.dumps(manifest))


def test_emulator_manifest(run: TinyRun, tmp_path: Path, marker: Path) -> None:
    folder = _emulator_copy(run, tmp_path)
    plant(folder / "manifest.json", marker, "pickle")
    with pytest.raises(FormatError, match=r"manifest\.json: not (valid JSON|UTF-8 text)"):
        Emulator.load(folder)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "object_npz"])
def test_emulator_weights_even_with_a_matching_checksum(
    run: TinyRun, tmp_path: Path, marker: Path, kind: str
) -> None:
    folder = _emulator_copy(run, tmp_path)
    weights = Emulator.weights_file(folder)
    plant(weights, marker, kind)
    with pytest.raises(FormatError, match="checksum"):
        Emulator.load(folder)
    # an attacker who controls the folder also rewrites the manifest's checksum and shapes
    def forge(m: dict[str, Any]) -> None:
        m["weights"]["sha256"] = sha256(weights)
        if kind == "object_npz":
            m["weights"]["shapes"] = {"x": [1]}

    _edit_manifest(folder, forge)
    # the forged shapes are refused against the network before the archive is opened
    with pytest.raises(FormatError, match=r"weights-[0-9a-f]+\.npz|weight shapes do not match"):
        Emulator.load(folder)
    assert not marker.exists()


# ------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize(("target", "kind"), [
    ("ckpt-000002.npz", "pickle"), ("ckpt-000002.npz", "object_npz"), ("ckpt-000002.json", "pickle"),
])
def test_checkpoints(tmp_path: Path, marker: Path, target: str, kind: str) -> None:
    for epoch in (1, 2):
        save_checkpoint(tmp_path, epoch, {"x": np.full(3, float(epoch))}, {"epoch": epoch})
    path = tmp_path / target
    plant(path, marker, kind)
    if target.endswith(".npz"):  # forge the checksum so that the npz is actually opened
        manifest = json.loads((tmp_path / "ckpt-000002.json").read_text())
        manifest["sha256"] = sha256(path)
        (tmp_path / "ckpt-000002.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="ckpt-000002"):
        ckpt = load_latest(tmp_path)
    assert ckpt is not None and ckpt.epoch == 1  # falls back to the previous, valid one
    assert not marker.exists()


# ------------------------------------------------------------------------ run folders
@pytest.fixture
def cluster_run(run: TinyRun, tmp_path: Path) -> Path:
    folder = tmp_path / "cluster_run"
    cluster.prepare_run(folder, run.dataset, tiny_config(**{"train.members": 1}), DataSource(str(run.data_path)))
    cluster.load_run(folder)  # loads cleanly before the attack
    return folder


@pytest.mark.parametrize("name", ["config.yaml",
                                  "data.json", "split.json", "run.json", "transforms.json"])
def test_run_folder_files(cluster_run: Path, marker: Path, name: str) -> None:
    plant(cluster_run / name, marker, "pickle")
    with pytest.raises(ConfigError if name == "config.yaml" else FormatError, match=name.replace(".", r"\.")):
        cluster.load_run(cluster_run)
    assert not marker.exists()


def test_yaml_python_tags_are_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"train: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(path)
    assert not marker.exists()


def test_training_run_folder(run: TinyRun, tmp_path: Path, marker: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run.run_dir, folder)
    plant(folder / "data.json", marker, "pickle")
    with pytest.raises(FormatError, match=r"data\.json"):
        RunFolder.open(folder).dataset()
    assert not marker.exists()


@pytest.mark.parametrize(("name", "kind", "state"), [
    ("variables.npz", "pickle", "corrupt"), ("variables.npz", "object_npz", "corrupt"),
    ("status.json", "pickle", "pending"),
])
def test_cluster_member_files(cluster_run: Path, marker: Path, name: str, kind: str, state: str) -> None:
    member = cluster.member_dir(cluster_run, 0)
    member.mkdir(parents=True, exist_ok=True)
    (member / "status.json").write_text(json.dumps({"state": "completed", "member": 0}))
    plant(member / "variables.npz", marker, kind if name == "variables.npz" else "object_npz")
    if name == "status.json":
        plant(member / "status.json", marker, kind)
    with pytest.raises(TrainingError, match=f"member 0 \\({state}"):
        cluster.merge(cluster_run)
    assert not marker.exists()


# ----------------------------------------------------------- manifest before arrays
@pytest.fixture
def no_array_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any np.load or checksum pass over the weights fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the weights were read before the manifest was validated")

    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr("profemu.emulator.files.sha256_file", refuse)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["weights"]["shapes"].update({next(iter(m["weights"]["shapes"])): [10**6, 10**6]}),
     "implausibly large"),
    (lambda m: m.update(members="two"), "key 'members' has the wrong type"),
    (lambda m: m.update(variance_scale=True), "key 'variance_scale' has the wrong type"),
    (lambda m: m.pop("transforms"), "required key 'transforms' is missing"),
    (lambda m: m.update(weights={"file": "weights.npz"}), "'weights' must hold 'file', 'sha256' and 'shapes'"),
    (lambda m: m["weights"].update(file="../../etc/passwd"), "plain file name"),
    (lambda m: m["weights"]["shapes"].update({next(iter(m["weights"]["shapes"])): [-1, 2]}),
     "is not a list of sizes"),
])
def test_manifest_is_validated_before_any_array_is_read(
    run: TinyRun, tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str, no_array_reads: None
) -> None:
    folder = _emulator_copy(run, tmp_path)
    _edit_manifest(folder, edit)
    with pytest.raises(FormatError, match=re.escape(message)):
        Emulator.load(folder)


def test_every_refusal_is_a_profemu_error(run: TinyRun, tmp_path: Path) -> None:
    """Random damage to a saved emulator never escapes as a non-profemu exception."""
    rng = np.random.default_rng(5)
    src = _emulator_copy(run, tmp_path)
    for trial in range(12):
        folder = tmp_path / f"damaged{trial}"
        shutil.copytree(src, folder)
        target = folder / "manifest.json" if trial % 2 else Emulator.weights_file(folder)
        raw = bytearray(target.read_bytes())
        for pos in rng.integers(0, len(raw), size=int(rng.integers(1, 8))):
            raw[pos] = int(rng.integers(0, 256))
        target.write_bytes(bytes(raw[: int(rng.integers(len(raw) // 2, len(raw) + 1))]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                Emulator.load(folder)
            except ProfemuError:
                pass
