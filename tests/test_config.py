"""Tests of profemu.config: frozen, hashable, strict, YAML in and out."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from profemu.config import Config, FrozenMap, ModelConfig
from profemu.errors import ConfigError


def test_configs_are_frozen_hashable_and_equal_by_value() -> None:
    a, b = Config(), Config()
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.train.members = 3  # type: ignore[misc]
    c = a.updated({"model.hidden": [64, 64], "loss.physics.mass_scaling_slopes": {"pth": 0.66}})
    assert c.model.hidden == (64, 64) and isinstance(c.loss.physics.mass_scaling_slopes, FrozenMap)
    assert c != a and hash(c) != hash(a)
    assert a.model.hidden == (128, 128)  # the original is unchanged
    assert hash(ModelConfig(hidden=(8,))) == hash(ModelConfig(hidden=(8,)))


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = Config().updated({"data.fields": ["rho"], "train.curriculum": [{"start_epoch": 5, "physics_scale": 0.5}],
                            "loss.physics.boundary_slopes": {"rho": -3.0}})
    path = tmp_path / "cfg.yaml"
    cfg.to_yaml(path)
    assert Config.from_yaml(path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.yaml"]  # written atomically, no temporary left


def test_numeric_strings_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-3 (no dot) as a string
    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  learning_rate: 1e-3\ntrain:\n  members: '3'\n  epochs: 2.0\n")
    cfg = Config.from_yaml(path)
    assert cfg.optim.learning_rate == 1e-3 and cfg.train.members == 3 and cfg.train.epochs == 2
    for key, value in (("optim.learning_rate", "fast"), ("train.members", "2.5"), ("optim.learning_rate", "nan"),
                       ("train.members", True)):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            Config().updated({key: value})


def test_unknown_renamed_and_duplicate_keys_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="valid keys"):
        Config().updated({"model.widths": [1]})
    with pytest.raises(ConfigError, match=r"data\.monotone_fields"):
        Config().updated({"model.monotone_fields": ["rho"]})
    with pytest.raises(ConfigError, match=r"replaced by data\.monotone_fields"):
        Config.from_dict({"loss": {"physics": {"monotonic_fields": ["rho"]}}})
    with pytest.raises(ConfigError, match="more than once"):
        Config().updated({"data.fields": ["rho", "rho", "temp"]})
    with pytest.raises(ConfigError, match="out of range"):
        Config().updated({"train.members": 0})


def test_import_starts_no_jax_backend() -> None:
    code = (
        "import profemu, profemu.workflow, profemu.train.loop, profemu.losses.likelihood, profemu.losses.physics, "
        "profemu.cluster, profemu.diagnose, profemu.emulator.files\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge._backends, xla_bridge._backends\n"
        "import jax\n"
        "jax.config.update('jax_platforms', 'cpu')\n"
        "assert jax.default_backend() == 'cpu'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
