"""The public API: what the README and the package docstring show runs, and no name hides a module."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import profemu

REPO = Path(__file__).resolve().parents[1]


def _packages() -> list[str]:
    names = ["profemu"]
    for info in pkgutil.walk_packages(profemu.__path__, "profemu."):
        if info.ispkg:
            names.append(info.name)
    return names


@pytest.mark.parametrize("package", _packages())
def test_no_public_name_shadows_a_submodule(package: str) -> None:
    """``from pkg import name`` and ``import pkg.name`` must never mean two different things."""
    mod = importlib.import_module(package) if package != "profemu" else profemu
    for name in getattr(mod, "__all__", ()):
        assert importlib.util.find_spec(f"{package}.{name}") is None, (
            f"{package}.{name} is both a public name and a submodule")


def test_every_lazy_public_name_resolves() -> None:
    for name in profemu.__all__:
        assert getattr(profemu, name) is not None, name
    assert callable(profemu.evaluate) and callable(profemu.sensitivity) and callable(profemu.suggest)


def test_top_level_stays_small() -> None:
    modules = [p for p in (REPO / "src" / "profemu").glob("*.py")]
    assert len(modules) <= 8, sorted(p.name for p in modules)


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_package_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow of ``profemu.__doc__``: train, load, evaluate (small and fast)."""
    monkeypatch.chdir(tmp_path)
    doc = profemu.__doc__ or ""
    code = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    assert "profemu.evaluate(emu, data)" in code
    code = code.replace("n=3000", "n=60").replace("profemu.Config()",
                                                   "profemu.Config().updated({'train.epochs': 2, "
                                                   "'train.members': 2, 'train.cv_folds': 0, "
                                                   "'model.hidden': [16]})")
    namespace: dict[str, object] = {"profemu": profemu}
    exec(compile(code, "profemu.__doc__", "exec"), namespace)
    metrics = namespace["metrics"]
    assert np.isfinite(metrics["overall"]["frac_err_median"])  # type: ignore[index]


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first Python block, on a small mock with a short training."""
    monkeypatch.chdir(tmp_path)
    block = _python_blocks((REPO / "README.md").read_text())[0]
    assert "train_emulator" in block and "predict_fn" in block
    small = block.replace("n=3000", "n=60").replace(
        "profemu.Config()", "profemu.Config().updated({'train.epochs': 2, 'train.members': 2, "
                            "'model.hidden': [16], 'data.input_relevance': 'off', 'train.cv_folds': 2})")
    assert small != block, "the README example changed: update this test's substitutions"
    namespace: dict[str, object] = {}
    exec(compile(small, "README.md", "exec"), namespace)
    assert np.all(np.isfinite(np.asarray(namespace["grad"])))
