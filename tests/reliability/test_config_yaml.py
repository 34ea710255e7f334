"""Hostile and surprising YAML: every case is a one-line ConfigError naming the source and the fix.

Configuration files and ``--set KEY=VALUE`` values are read by ``profemu.config.load_yaml``
and ``parse_set_value``. YAML 1.1 surprises (``off`` read as false, the last of two equal
keys silently winning) and attacks (deep nesting, huge integers, ``!!python`` tags,
oversized or mis-encoded files, absurd network sizes) must all end in a clear message,
never a traceback, a hang or exhausted memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from profemu.config import (
    MAX_HIDDEN_LAYERS,
    MAX_HIDDEN_WIDTH,
    MAX_INT_DIGITS,
    MAX_WEIGHTS,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    Config,
    load_yaml,
    parse_set_value,
)
from profemu.errors import ConfigError

DEEP = 20_000


def _refused(call, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    """Run ``call``; it must raise a one-line ConfigError that contains every fragment."""
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert len(message) < 400, message
    return message


def _config_file(tmp_path: Path, text: str | bytes, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ what the user wrote
def test_on_off_yes_no_are_the_documented_choices(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "data:\n  input_relevance: off\n  self_similar: off\n"
                                  "train:\n  auto_capacity: on\n  calibrate: no\n"
                                  "model:\n  heteroscedastic: yes\n  monotone_head: On\n")
    cfg = Config.from_yaml(path)
    assert cfg.data.input_relevance == "off" and cfg.data.self_similar == "off"
    assert cfg.train.auto_capacity == "on"
    assert cfg.train.calibrate is False and cfg.model.heteroscedastic is True and cfg.model.monotone_head is True
    assert load_yaml("a: [off, on, yes, no, True, FALSE]", what="t") == {"a": ["off", "on", "yes", "no", True, False]}


def test_on_off_in_set_values() -> None:
    assert parse_set_value("off", key="data.input_relevance") == "off"
    assert parse_set_value("on", key="train.auto_capacity") == "on"
    assert parse_set_value("true", key="train.calibrate") is True
    assert parse_set_value("1e-3", key="optim.learning_rate") == 1e-3
    assert parse_set_value("[64, 32]", key="model.hidden") == [64, 32]
    assert parse_set_value("null", key="data.pk_components") is None
    cfg = Config().updated({"data.input_relevance": parse_set_value("off", key="data.input_relevance"),
                            "train.auto_capacity": parse_set_value("on", key="train.auto_capacity"),
                            "train.calibrate": parse_set_value("no", key="train.calibrate")})
    assert (cfg.data.input_relevance, cfg.train.auto_capacity, cfg.train.calibrate) == ("off", "on", False)
    _refused(lambda: parse_set_value("  ", key="train.epochs"), "--set", "train.epochs", "empty value")


def test_duplicate_keys_name_the_key_and_lines(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "train:\n  members: 3\n  epochs: 5\n  members: 4\n")
    _refused(lambda: Config.from_yaml(path), "cfg.yaml", "'members' twice", "lines 2 and 4")
    _refused(lambda: parse_set_value("{a: 1, a: 2}", key="loss.physics.boundary_slopes"), "--set", "'a' twice")
    # merge keys may be overridden: that is not a duplicate
    assert load_yaml("b: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", what="t")["d"] == {"x": 3, "y": 2}


# ------------------------------------------------------------------------------ attacks
def test_deep_nesting_in_a_file_and_in_set(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "model:\n  hidden: " + "[" * DEEP + "]" * DEEP + "\n")
    _refused(lambda: Config.from_yaml(path), "cfg.yaml", f"deeper than {MAX_YAML_DEPTH} levels")
    _refused(lambda: parse_set_value("[" * DEEP + "]" * DEEP, key="model.hidden"),
             "--set 'model.hidden=[[[", f"deeper than {MAX_YAML_DEPTH} levels")
    _refused(lambda: parse_set_value("{a: " * DEEP + "1" + "}" * DEEP, key="loss.physics.boundary_slopes"),
             "deeper than")
    ok = "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1)
    assert parse_set_value(ok, key="k") is not None


def test_aliases_cannot_expand_or_refer_to_themselves() -> None:
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    _refused(lambda: load_yaml(bomb, what="config file 'x'"), "config file 'x'", "aliases")
    _refused(lambda: load_yaml("a: &a [*a]", what="config file 'x'"), "alias")


def test_huge_integers(tmp_path: Path) -> None:
    digits = "7" * 5000
    path = _config_file(tmp_path, f"train:\n  seed: {digits}\n")
    _refused(lambda: Config.from_yaml(path), "cfg.yaml", "5,000 digits", f"at most {MAX_INT_DIGITS} digits")
    _refused(lambda: parse_set_value(digits, key="train.seed"), "--set 'train.seed=777", "5,000 digits")
    _refused(lambda: Config().updated({"train.members": digits}), "train.members", "5,000 digits")
    _refused(lambda: Config().updated({"train.members": 7 ** 6000}), "train.members", "out of range")


def test_python_and_unknown_tags_run_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    for text in ('train: !!python/object/apply:os.system ["echo hi"]\n',
                 f'train: !!python/object/apply:os.system ["echo hi > {marker}"]\n'):
        path = _config_file(tmp_path, text)
        _refused(lambda p=path: Config.from_yaml(p), "cfg.yaml", "!!python/object/apply:os.system",
                 "not valid YAML", "remove the tag")
    _refused(lambda: parse_set_value("!!python/name:os.system", key="train.seed"), "--set",
             "!!python/name:os.system")
    _refused(lambda: parse_set_value("!custom 3", key="train.seed"), "'!custom'")
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:  # sparse: 64 MiB on disk in name only
        fh.truncate(64 * 2**20)
    start = time.perf_counter()
    _refused(lambda: Config.from_yaml(path), "huge.yaml", f"{64 * 2**20:,} bytes", f"{MAX_YAML_BYTES:,}-byte limit")
    assert time.perf_counter() - start < 1.0
    just_over = _config_file(tmp_path, "#" * MAX_YAML_BYTES + "\n", "over.yaml")
    _refused(lambda: Config.from_yaml(just_over), "over.yaml", f"{MAX_YAML_BYTES + 1:,} bytes")
    _refused(lambda: parse_set_value("1" + " " * MAX_YAML_BYTES, key="train.seed"), "--set", "limit")


@pytest.mark.parametrize(("encoding", "expected"), [("latin-1", "not UTF-8 text (byte 0xe9 on line 2"),
                                                    ("utf-16", "UTF-16"), ("utf-16-le", "NUL bytes")])
def test_other_encodings_say_save_as_utf8(tmp_path: Path, encoding: str, expected: str) -> None:
    path = _config_file(tmp_path, "data:\n  fields: [température]\n".encode(encoding))
    _refused(lambda: Config.from_yaml(path), "cfg.yaml", expected, "save it as UTF-8" if "NUL" not in expected
             else "save the configuration as UTF-8")


def test_absurd_network_sizes_are_refused_before_anything_compiles(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "model:\n  hidden: [4096, 4096]\ntrain:\n  members: 1024\n")
    _refused(lambda: Config.from_yaml(path),
             "model.hidden=[4096, 4096] with train.members=1024 is ~1.7e10 weights (limit 5e8): "
             "use fewer members or narrower layers")
    _refused(lambda: Config().updated({"model.hidden": [MAX_HIDDEN_WIDTH + 1]}), "model.hidden[]", "16384")
    _refused(lambda: Config().updated({"model.hidden": [8192] * 9, "train.members": 1}), "9 layers]", "weights")
    _refused(lambda: Config().updated({"model.hidden": [1] * 100_000}), "model.hidden: 100,000 layers",
             f"limit of {MAX_HIDDEN_LAYERS}")
    big_but_fine = Config().updated({"model.hidden": [4096, 4096], "train.members": 16})
    assert 16 * 4096 * 4096 < MAX_WEIGHTS and big_but_fine.train.members == 16


def test_errors_from_files_name_the_file_and_stay_quick(tmp_path: Path) -> None:
    start = time.perf_counter()
    _refused(lambda: Config.from_yaml(_config_file(tmp_path, "train: [1,\n")), "cfg.yaml", "not valid YAML",
             "line 2")
    _refused(lambda: Config.from_yaml(_config_file(tmp_path, "a: \x07\n")), "cfg.yaml", "not valid YAML")
    _refused(lambda: Config.from_yaml(tmp_path / "absent.yaml"), "absent.yaml", "does not exist")
    _refused(lambda: load_yaml(tmp_path, what="space file"), "space file", "is a folder")
    _refused(lambda: Config.from_yaml("/dev/zero"), "/dev/zero", "not a regular file")
    assert time.perf_counter() - start < 2.0
