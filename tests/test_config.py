"""Tests of profemu.config: frozen, hashable, strict, YAML in and out."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Literal

import pytest

from profemu.config import (
    MAX_HIDDEN_WIDTH,
    MAX_MEMBERS,
    MAX_WEIGHTS,
    Config,
    FrozenMap,
    ModelConfig,
    Range,
    TrainConfig,
    estimated_weights,
    load_yaml,
)
from profemu.errors import ConfigError


def test_configs_are_frozen_hashable_and_equal_by_value() -> None:
    a, b = Config(), Config()
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.train.members = 3  # type: ignore[misc]
    c = a.updated({"model.hidden": [128, 128], "loss.physics.mass_scaling_slopes": {"pth": 0.66}})
    assert c.model.hidden == (128, 128) and isinstance(c.loss.physics.mass_scaling_slopes, FrozenMap)
    assert c != a and hash(c) != hash(a)
    assert a.model.hidden == (64, 64)  # the original is unchanged
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
        "import profemu, profemu.runs.training, profemu.train.loop, profemu.losses.likelihood, profemu.losses.physics, "
        "profemu.runs.cluster, profemu.diagnose, profemu.emulator.files\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge._backends, xla_bridge._backends\n"
        "import jax\n"
        "jax.config.update('jax_platforms', 'cpu')\n"
        "assert jax.default_backend() == 'cpu'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ declared ranges and docs
ROOT = Path(__file__).resolve().parents[1]


def _config_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "tools" / "config_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_is_current(tmp_path: Path) -> None:
    docs = _config_docs()
    text = docs.render()
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == text, (
        "docs/configuration.md is stale: run `python tools/config_docs.py`")
    for prefix, cls in docs.sections():  # every key of every section has a row and a description
        for f in dataclasses.fields(cls):
            assert f"| `{prefix}.{f.name}` |" in text
    assert [p for p, _ in docs.sections()] == ["data", "model", "loss", "loss.physics", "optim", "train",
                                                "train.curriculum[]"]
    stale = tmp_path / "configuration.md"
    stale.write_text(text.replace("Seed of the group split", "Seed"))
    assert docs.main(["--check", "--output", str(stale)]) == 1
    assert docs.main(["--output", str(stale)]) == 0 and stale.read_text(encoding="utf-8") == text
    assert docs.main(["--check", "--output", str(stale)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["configuration.md"]  # written atomically


def _sections() -> list[tuple[str, type]]:
    return list(_config_docs().sections())


def test_declared_ranges_are_what_validate_checks() -> None:
    checked = 0
    for prefix, cls in _sections():
        for f in dataclasses.fields(cls):
            rng = f.metadata.get("range")
            if rng is None:
                continue
            default = getattr(cls(), f.name)
            is_list = isinstance(default, tuple)
            integer = isinstance(default, int) or (is_list and all(isinstance(v, int) for v in default))
            step = 1 if integer or f.name in ("pk_components", "cv_folds") else 1e-9 * max(1.0, abs(rng.high))
            outside = [rng.low if rng.low_open else rng.low - step, rng.high if rng.high_open else rng.high + step]
            for value in outside:
                if value in rng.also:
                    continue
                value = int(value) if step == 1 else value
                name = f"{prefix}.{f.name}" + ("[]" if is_list else "")
                with pytest.raises(ConfigError, match=re.escape(f"{name}: value {value!r} is out of range")):
                    dataclasses.replace(cls(), **{f.name: (value,) if is_list else value}).validate()
                checked += 1
    assert checked > 40


def test_rule_text_and_defaults_unchanged() -> None:
    cfg = Config()
    assert cfg.validate() is cfg
    assert (cfg.model.hidden, cfg.train.members, cfg.train.auto_capacity, cfg.data.input_relevance) == (
        (64, 64), 5, "off", "auto")
    field = {f.name: f for f in dataclasses.fields(TrainConfig)}["cv_folds"]
    assert str(field.metadata["range"]) == "0 or [2, 100]"
    assert Config().updated({"train.cv_folds": 0}).train.cv_folds == 0
    with pytest.raises(ConfigError, match=r"train\.cv_folds: value 1 is out of range; allowed 0 or \[2, 100\]"):
        Config().updated({"train.cv_folds": 1})
    assert Range(0.0, 1.0, low_open=True).contains(1.0) and not Range(0.0, 1.0, low_open=True).contains(0.0)


def test_estimated_weights_and_size_limits() -> None:
    assert estimated_weights((128, 128), 5) == 5 * (128 * 128 + 256)
    assert estimated_weights([4096, 4096], 1024) > 1.7e10
    assert estimated_weights((64,), 3) == 3 * 64
    with pytest.raises(ConfigError, match=r"~1\.7e10 weights \(limit 5e8\)"):
        Config().updated({"model.hidden": [4096, 4096], "train.members": 1024})
    with pytest.raises(ConfigError, match=rf"model\.hidden\[\]: value {MAX_HIDDEN_WIDTH + 1} is out of range"):
        Config().updated({"model.hidden": [MAX_HIDDEN_WIDTH + 1]})
    with pytest.raises(ConfigError, match=rf"train\.members: value {MAX_MEMBERS + 1} is out of range"):
        Config().updated({"train.members": MAX_MEMBERS + 1})
    assert Config().updated({"model.hidden": [MAX_HIDDEN_WIDTH], "train.members": MAX_MEMBERS}).validate()
    width = int((MAX_WEIGHTS / 2) ** 0.5)  # two layers, one member: just under the limit
    assert Config().updated({"model.hidden": [width, width], "train.members": 1})


def test_bool_and_choice_words() -> None:
    for word, value in (("on", True), ("OFF", False), ("yes", True), ("no", False), ("True", True), ("false", False)):
        assert Config().updated({"train.calibrate": word}).train.calibrate is value
    with pytest.raises(ConfigError, match=r"train\.calibrate: expected true or false"):
        Config().updated({"train.calibrate": "maybe"})
    # a YAML 1.1 reader (or Python code) that turned off/on into false/true still gets the choice
    assert Config().updated({"train.auto_capacity": False}).train.auto_capacity == "off"
    assert Config().updated({"train.auto_capacity": True}).train.auto_capacity == "on"
    assert Config().updated({"data.input_relevance": False}).data.input_relevance == "off"
    with pytest.raises(ConfigError, match=r"data\.self_similar: True is not allowed"):
        Config().updated({"data.self_similar": True})  # there is no "on" choice
    on_off = [(p, f.name) for p, cls in _sections() for f in dataclasses.fields(cls)
              if typing.get_origin(typing.get_type_hints(cls)[f.name]) is Literal
              and {"on", "off"} & set(typing.get_args(typing.get_type_hints(cls)[f.name]))]
    assert on_off == [("data", "self_similar"), ("data", "gas_fraction_bound"), ("data", "ideal_gas_temperature"),
                      ("data", "input_relevance"), ("train", "auto_capacity"), ("train", "extrapolation_variance"),
                      ("train", "gp_blend")]
    for prefix, name in on_off:
        assert load_yaml(f"{prefix}:\n  {name}: off\n", what="t") == {prefix: {name: "off"}}
        assert getattr(getattr(Config.from_dict({prefix: {name: "off"}}), prefix), name) == "off"
