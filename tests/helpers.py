"""Factories shared by the tests: a small output layout, its model arrays and inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from profemu.config import ModelConfig
from profemu.data.layout import FieldSpec, OutputLayout

FIELDS = ("rho", "temp")
N_R = 6


def make_layout(
    *,
    pk: int = 0,
    n_params: int = 5,
    monotone: tuple[str, ...] = (),
    extra: dict[str, int] | None = None,
    pca: int = 0,
) -> OutputLayout:
    """Two fields (rho, temp) on 6 radii; ``monotone`` fields declared non-increasing."""
    blocks = {"params": n_params, "log10_mass": 1, **(extra or {})}
    if pk:
        blocks["pk"] = pk
    fields = tuple(FieldSpec(f, "", "density" if f == "rho" else "temperature", f in monotone) for f in FIELDS)
    return OutputLayout(fields, N_R, tuple(blocks.items()), pca or len(FIELDS) * N_R, pca=bool(pca))


def make_arrays(layout: OutputLayout, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Model arrays of ``layout``: rho falls steeply, temp rises then falls."""
    log_r = np.linspace(-1.5, 0.5, N_R)
    center = np.concatenate([3.0 - 2.0 * (log_r + 1.5), 6.0 + 0.3 * np.sin(3 * log_r)])
    scale = np.concatenate([np.full(N_R, 0.4), np.linspace(0.1, 0.3, N_R)])
    arrays = {"target_center": center, "target_scale": scale, "log10_radius": log_r,
              "log10_mass_scale": np.asarray(0.5)}
    if layout.pca:
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(layout.target_dim, layout.out_dim)))
        arrays["pca_components"] = q.T
        arrays["pca_mean"] = np.zeros(layout.target_dim)
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def make_inputs(layout: OutputLayout, n: int = 7, seed: int = 0, value: float | None = None) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs for ``layout`` (or every entry = ``value``)."""
    rng = np.random.default_rng(seed)
    return {name: (np.full((n, w), value) if value is not None else rng.normal(size=(n, w))).astype(np.float32)
            for name, w in layout.input_blocks}


def small_config(**changes: Any) -> ModelConfig:
    """A small ModelConfig (hidden [16, 16]) with ``changes``."""
    values: dict[str, Any] = {"hidden": (16, 16), "interaction_dim": 8}
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})
    return ModelConfig(**values)


def perturbed(params: Any, seed: int = 0, scale: float = 0.3) -> Any:
    """``params`` plus Gaussian noise (so zero-initialised layers matter in tests)."""
    rng = np.random.default_rng(seed)
    if isinstance(params, dict):
        return {k: perturbed(v, seed + i + 1, scale) for i, (k, v) in enumerate(sorted(params.items()))}
    arr = np.asarray(params)
    return (arr + scale * rng.normal(size=arr.shape)).astype(np.float32)


def stderr_error_lines(stderr: str) -> list[str]:
    """The non-empty lines of a command's stderr with its progress lines dropped.

    Progress lines may precede a user error; when the last line is an ``error:`` line,
    only the ``error:`` lines are kept (a one-line error then leaves exactly one).
    """
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return [ln for ln in lines if ln.startswith("error: ")] if lines and lines[-1].startswith("error: ") else lines


def error_line(result: Any, *needles: str) -> str:
    """A CLI result's one error line: exit code 2, no traceback, one line naming every ``needle``."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = stderr_error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
