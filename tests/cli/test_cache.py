"""The command keeps compiled programs between runs: where, when not, and a real run that fills it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from profemu.cli.cache import MAX_BYTES, cache_environment, use_compilation_cache
from profemu.data.mock import make_mock_universe


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no", "none", " off "])
def test_off_sets_nothing(value: str) -> None:
    variables, note = cache_environment({"PROFEMU_COMPILATION_CACHE": value})
    assert variables == {} and "not kept" in note and "PROFEMU_COMPILATION_CACHE=off" in note


def test_the_users_own_jax_cache_stands(tmp_path: Path) -> None:
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine"), "PROFEMU_COMPILATION_CACHE": str(tmp_path / "x")}
    variables, note = cache_environment(env)
    assert variables == {} and str(tmp_path / "mine") in note
    assert not (tmp_path / "x").exists()


def test_a_named_folder_and_the_default_folder(tmp_path: Path) -> None:
    variables, note = cache_environment({"PROFEMU_COMPILATION_CACHE": str(tmp_path / "named")})
    assert variables == {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "named"),
                         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                         "JAX_COMPILATION_CACHE_MAX_SIZE": str(MAX_BYTES)}
    assert (tmp_path / "named").is_dir() and "off turns this off" in note
    variables, _ = cache_environment({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert variables["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "xdg" / "profemu" / "jax")
    env: dict[str, str] = {"PROFEMU_COMPILATION_CACHE": str(tmp_path / "set")}
    use_compilation_cache(env)
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "set")


def test_a_relative_folder_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    variables, _ = cache_environment({"PROFEMU_COMPILATION_CACHE": "rel/cache"})
    assert variables["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "rel" / "cache")  # jobs start elsewhere


def test_a_folder_that_cannot_be_made_leaves_the_cache_off(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    variables, note = cache_environment({"PROFEMU_COMPILATION_CACHE": str(blocker / "cache")})
    assert variables == {} and "not kept" in note and str(blocker / "cache") in note
    assert blocker.read_text() == "not a folder"


def test_the_command_fills_the_cache_and_says_where(tmp_path: Path) -> None:
    data = tmp_path / "mock.npz"
    make_mock_universe(96, seed=3, param_set="lh6", with_pk=False, n_r=6).dataset.save(data)
    cache = tmp_path / "cache"
    env = {**os.environ, "PROFEMU_COMPILATION_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "profemu", "train", "--data", str(data), "--field", "rho", "--out",
         str(tmp_path / "run"), "--members", "2", "--epochs", "2", "--set", "model.hidden=[8]",
         "--set", "train.cv_folds=0"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"compilation cache {cache}" in result.stderr
    assert any(p.name.startswith("jit__epoch") for p in cache.iterdir())
