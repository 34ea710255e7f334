"""Tests of atomic, checksummed checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from profemu.errors import FormatError
from profemu.train.checkpoint import arrays_to_tree, load_latest, save_checkpoint, tree_to_arrays


def make_tree(rng: np.random.Generator) -> dict:
    params = {"dense": {"kernel": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "bias": jnp.zeros(2)}}
    return {"params": params, "opt": optax.adam(1e-3).init(params), "key": jnp.array([1, 2], jnp.uint32)}


def test_flatten_unflatten_round_trip(rng: np.random.Generator) -> None:
    tree = make_tree(rng)
    flat = tree_to_arrays(tree, "state")
    assert "state/params/dense/kernel" in flat
    assert any(name.startswith("state/opt/0/mu/dense") for name in flat)
    template = make_tree(np.random.default_rng(99))
    restored = arrays_to_tree(template, flat, "state")
    np.testing.assert_array_equal(restored["params"]["dense"]["kernel"], tree["params"]["dense"]["kernel"])
    assert type(restored["opt"][0]).__name__ == "ScaleByAdamState"
    flat["state/params/dense/bias"] = np.zeros(3, np.float32)
    with pytest.raises(FormatError, match="bias"):
        arrays_to_tree(template, flat, "state")
    del flat["state/params/dense/bias"]
    with pytest.raises(FormatError, match="missing"):
        arrays_to_tree(template, flat, "state")


def test_keeps_last_two_and_verifies(tmp_path: Path, rng: np.random.Generator) -> None:
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"x": np.full(4, epoch)}, {"epoch": epoch, "history": [{"a": 1.0}]})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-000002.json", "ckpt-000002.npz", "ckpt-000003.json", "ckpt-000003.npz",
    ]
    ckpt = load_latest(tmp_path)
    assert ckpt is not None and ckpt.epoch == 3
    np.testing.assert_array_equal(ckpt.arrays["x"], np.full(4, 3))
    assert ckpt.meta["history"] == [{"a": 1.0}]
    manifest = json.loads((tmp_path / "ckpt-000003.json").read_text())
    assert len(manifest["sha256"]) == 64
    assert load_latest(tmp_path / "absent") is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_newest_falls_back_to_previous(tmp_path: Path, damage: str) -> None:
    save_checkpoint(tmp_path, 4, {"x": np.arange(100.0)}, {})
    save_checkpoint(tmp_path, 5, {"x": np.arange(100.0) + 1}, {})
    newest = tmp_path / "ckpt-000005.npz"
    raw = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        newest.write_bytes(raw[:200] + bytes([raw[200] ^ 0xFF]) + raw[201:])
    else:
        newest.unlink()
    with pytest.warns(UserWarning, match="ckpt-000005"):
        ckpt = load_latest(tmp_path)
    assert ckpt is not None and ckpt.epoch == 4
    np.testing.assert_array_equal(ckpt.arrays["x"], np.arange(100.0))
