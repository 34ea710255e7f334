"""Tests of profemu.models.spec (and shared spec/input factories for the model tests)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from profemu.errors import ConfigError, DataError, FormatError
from profemu.models.spec import BLOCK_ORDER, OutputSpec, order_blocks

FIELDS = ("rho", "temp")
N_R = 6


def make_spec(
    *,
    pk: int = 0,
    n_params: int = 5,
    monotone: tuple[str, ...] = (),
    extra: dict[str, int] | None = None,
    pca: int = 0,
) -> OutputSpec:
    """A two-field spec on a 6-bin grid: rho falls steeply, temp rises then falls."""
    log_r = np.linspace(-1.5, 0.5, N_R)
    center = np.concatenate([3.0 - 2.0 * (log_r + 1.5), 6.0 + 0.3 * np.sin(3 * log_r)])
    scale = np.concatenate([np.full(N_R, 0.4), np.linspace(0.1, 0.3, N_R)])
    blocks = {"params": n_params, "log10_mass": 1, **(extra or {})}
    if pk:
        blocks["pk"] = pk
    return OutputSpec(
        out_dim=pca or len(FIELDS) * N_R,
        field_names=FIELDS,
        n_r=N_R,
        log10_radius=log_r,
        target_center=center,
        target_scale=scale,
        monotone_fields=monotone,
        input_blocks=blocks,
        pca=bool(pca),
    )


def make_inputs(
    spec: OutputSpec, n: int = 7, seed: int = 0, value: float | None = None
) -> dict[str, np.ndarray]:
    """Random standard-normal float32 inputs for ``spec`` (or all entries = ``value``)."""
    rng = np.random.default_rng(seed)
    return {
        name: (np.full((n, w), value) if value is not None else rng.normal(size=(n, w))).astype(
            np.float32
        )
        for name, w in spec.input_blocks
    }


def test_coerces_to_hashable_tuples_in_canonical_block_order():
    spec = make_spec(pk=4, extra={"redshift": 1, "zeta": 2, "features": 3})
    assert spec.input_blocks == (
        ("params", 5),
        ("log10_mass", 1),
        ("pk", 4),
        ("redshift", 1),
        ("features", 3),
        ("zeta", 2),
    )
    assert isinstance(spec.log10_radius, tuple) and all(
        type(v) is float for v in spec.target_center
    )
    assert hash(spec) == hash(make_spec(pk=4, extra={"redshift": 1, "zeta": 2, "features": 3}))
    assert spec.input_dim == 5 + 1 + 4 + 1 + 3 + 2
    assert spec.field_slice("temp") == slice(N_R, 2 * N_R)


def test_order_blocks():
    assert order_blocks(["b", "pk", "a", "params"]) == ("params", "pk", "a", "b")
    assert set(BLOCK_ORDER) >= {"params", "log10_mass", "pk", "redshift", "features"}


def test_json_round_trip_is_exact():
    spec = make_spec(pk=3, monotone=("rho",))
    again = OutputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_from_dict_rejects_missing_and_unknown_keys():
    d = make_spec().to_dict()
    with pytest.raises(FormatError, match="missing keys \\['n_r'\\]"):
        OutputSpec.from_dict({k: v for k, v in d.items() if k != "n_r"})
    with pytest.raises(FormatError, match="unknown keys \\['colour'\\]"):
        OutputSpec.from_dict({**d, "colour": 1})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"out_dim": 5}, "out_dim"),
        ({"log10_radius": [0.0, 1.0]}, "log10_radius"),
        ({"log10_radius": [0.0, 1.0, 0.5, 2.0, 3.0, 4.0]}, "strictly increasing"),
        ({"target_scale": [0.0] * 12}, "target_scale"),
        ({"target_center": [0.0] * 11}, "target_center"),
        ({"field_names": ["rho", "rho"]}, "unique"),
    ],
)
def test_inconsistent_spec_raises_data_error(change, match):
    with pytest.raises(DataError, match=match):
        OutputSpec(**{**make_spec().to_dict(), **change})


def test_monotone_field_checks():
    with pytest.raises(ConfigError, match="'pth'"):
        make_spec(monotone=("pth",))
    with pytest.raises(ConfigError, match="pca_components"):
        make_spec(monotone=("rho",), pca=3)
    spec = make_spec()
    assert spec.resolve_monotone_fields(["temp", "rho"]) == ("rho", "temp")
    assert spec.resolve_monotone_fields([]) == ()
    assert make_spec(monotone=("rho",)).resolve_monotone_fields([]) == ("rho",)
    with pytest.raises(ConfigError, match="differ"):
        make_spec(monotone=("rho",)).resolve_monotone_fields(["temp"])
    with pytest.raises(ConfigError, match="not predicted"):
        spec.resolve_monotone_fields(["pth"])
    with pytest.raises(ConfigError, match="radial grid"):
        make_spec(pca=3).resolve_monotone_fields(["rho"])


@pytest.mark.parametrize(
    ("components", "pca"), [(None, False), (0, False), (np.ones((3, 12)), True)]
)
def test_from_transforms_duck_typing(components, pca):
    ref = make_spec(pk=4)
    transforms = SimpleNamespace(
        out_dim=3 if pca else ref.out_dim,
        field_names=list(ref.field_names),
        n_r=ref.n_r,
        log10_radius=np.array(ref.log10_radius),
        target_center=np.array(ref.target_center),
        target_scale=np.array(ref.target_scale),
        input_blocks={"pk": 4, "log10_mass": 1, "params": 5},
        pca_components=components,
    )
    spec = OutputSpec.from_transforms(transforms, monotone_fields=() if pca else ("rho",))
    assert spec.pca is pca
    assert spec.input_blocks == ref.input_blocks
    assert spec.out_dim == (3 if pca else 12)
    assert spec.monotone_fields == (() if pca else ("rho",))


def small_config(**overrides):
    """A tiny ModelConfig shared by the model tests (same shapes -> JAX compiles once)."""
    from profemu.config import ModelConfig

    base = {
        "hidden": [16],
        "embed_dim": 8,
        "attention_heads": 2,
        "mass_features": 4,
        "pk_hidden": 8,
        "pk_conv_channels": 4,
    }
    return ModelConfig(**{**base, **overrides})


def random_variables(model, inputs, seed: int = 0, scale: float = 0.3, members: int | None = None):
    """Random normal variables with the tree of ``model.init`` (traced only, nothing compiled)."""
    import jax

    shapes = jax.eval_shape(lambda key: model.init(key, inputs), jax.random.key(0))
    rng = np.random.default_rng(seed)
    lead = () if members is None else (members,)
    return jax.tree.map(
        lambda s: (scale * rng.normal(size=lead + s.shape)).astype(np.float32), shapes
    )
