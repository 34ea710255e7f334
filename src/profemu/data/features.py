"""Engineered physics features computed from the raw inputs, and input-noise augmentation.

A feature is a named function of the *raw* inputs (linear parameters, log10 mass,
P(k) ratio). :class:`~profemu.data.transforms.Transforms` computes the features named in
``DataConfig.features``, standardises them with statistics fitted on the training split and
passes them to the model as the ``"features"`` input block.

=========================  =====  ==========================================================
name                       width  definition
=========================  =====  ==========================================================
``omega_b_over_omega_m``   1      baryon fraction ``Omega_b / Omega_m`` (needs both params)
``mass_deviation``         1      ``log10_mass - <log10_mass>_train`` [dex]; the training mean
                                  is a fitted statistic (``stats["log10_mass_mean"]``)
``pk_summary``             2 + q  mean and std over k of ``pk_ratio``, then its value at each
                                  of the ``q`` wavenumbers ``stats["pk_summary_k"]`` [h/Mpc]
                                  (default 1 and 10), linearly interpolated in log10 k
=========================  =====  ==========================================================

Every function works with ``xp=numpy`` and ``xp=jax.numpy`` (differentiable). JAX is imported
only by :func:`augment_inputs`, so numpy-only prediction never needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.errors import DataError

__all__ = [
    "DEFAULT_PK_SUMMARY_K",
    "FEATURES",
    "Feature",
    "augment_inputs",
    "compute_features",
    "feature_width",
    "fit_feature_stats",
]

#: Wavenumbers [h/Mpc] at which ``pk_summary`` reads the P(k) ratio by default.
DEFAULT_PK_SUMMARY_K: tuple[float, ...] = (1.0, 10.0)


@dataclass(frozen=True)
class _Inputs:
    """Raw inputs handed to every feature function."""

    params: Any  # [n, p]
    param_names: tuple[str, ...]
    log10_mass: Any  # [n]
    pk_ratio: Any | None  # [n, n_k]
    k: np.ndarray | None  # [n_k]
    stats: Mapping[str, Any]
    xp: Any


@dataclass(frozen=True)
class Feature:
    """A named engineered feature.

    Attributes:
        name: Registry key (the name used in ``DataConfig.features``).
        description: One line saying what it is, with units.
        requires: Raw inputs it needs: parameter names and/or ``"pk_ratio"``.
        width: Number of columns it produces, as a function of the fitted ``stats``.
        compute: ``compute(inputs) -> [n, width]`` array.
    """

    name: str
    description: str
    requires: tuple[str, ...]
    width: Callable[[Mapping[str, Any]], int]
    compute: Callable[[_Inputs], Any]


def _column(inp: _Inputs, name: str) -> Any:
    return inp.params[:, inp.param_names.index(name)]


def _omega_b_over_omega_m(inp: _Inputs) -> Any:
    return (_column(inp, "Omega_b") / _column(inp, "Omega_m"))[:, None]


def _mass_deviation(inp: _Inputs) -> Any:
    if "log10_mass_mean" not in inp.stats:
        raise DataError(
            "mass_deviation: the training mean of log10_mass is missing from the fitted "
            "statistics; fit the transforms (Transforms.fit) before computing features."
        )
    return (inp.log10_mass - float(inp.stats["log10_mass_mean"]))[:, None]


def _interp_weights(log_k: np.ndarray, log_q: float) -> tuple[int, float]:
    """Index j and weight w so that value(q) = (1 - w) y[j] + w y[j + 1] (linear in log k)."""
    j = int(np.clip(np.searchsorted(log_k, log_q) - 1, 0, log_k.size - 2))
    w = float((log_q - log_k[j]) / (log_k[j + 1] - log_k[j]))
    return j, w


def _pk_summary(inp: _Inputs) -> Any:
    xp = inp.xp
    pk = inp.pk_ratio
    assert inp.k is not None  # checked by compute_features
    cols = [xp.mean(pk, axis=1), xp.std(pk, axis=1)]
    log_k = np.log10(np.asarray(inp.k, dtype=np.float64))
    for kq in _pk_summary_k(inp.stats):
        j, w = _interp_weights(log_k, float(np.log10(kq)))
        cols.append((1.0 - w) * pk[:, j] + w * pk[:, j + 1])
    return xp.stack(cols, axis=1)


def _pk_summary_k(stats: Mapping[str, Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in stats.get("pk_summary_k", DEFAULT_PK_SUMMARY_K))


#: Registry of the engineered features, by name.
FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "omega_b_over_omega_m",
            "baryon fraction Omega_b / Omega_m (dimensionless)",
            ("Omega_b", "Omega_m"),
            lambda stats: 1,
            _omega_b_over_omega_m,
        ),
        Feature(
            "mass_deviation",
            "log10_mass minus its training mean [dex]",
            (),
            lambda stats: 1,
            _mass_deviation,
        ),
        Feature(
            "pk_summary",
            "mean and std over k of P_hydro/P_dmo, and its value at stats['pk_summary_k'] [h/Mpc]",
            ("pk_ratio",),
            lambda stats: 2 + len(_pk_summary_k(stats)),
            _pk_summary,
        ),
    )
}


def _check_names(names: Sequence[str]) -> None:
    if isinstance(names, str):
        raise DataError(f"features: expected a list of feature names, got the string {names!r}.")
    seen: set[str] = set()
    for nm in names:
        if nm not in FEATURES:
            raise DataError(
                f"features: unknown feature {nm!r}; valid names are {sorted(FEATURES)}."
            )
        if nm in seen:
            raise DataError(f"features: {nm!r} is listed twice; list each feature once.")
        seen.add(nm)


def _check_available(names: Sequence[str], param_names: Sequence[str], has_pk: bool) -> None:
    for nm in names:
        for req in FEATURES[nm].requires:
            if req == "pk_ratio":
                if not has_pk:
                    raise DataError(
                        f"features: {nm!r} needs pk_ratio (with its k grid), but the data have none; "
                        f"remove {nm!r} from data.features or provide pk_ratio."
                    )
            elif req not in param_names:
                raise DataError(
                    f"features: {nm!r} needs the parameter {req!r}, which is not among the "
                    f"parameters {list(param_names)}; remove {nm!r} from data.features."
                )


def fit_feature_stats(
    names: Sequence[str],
    param_names: Sequence[str],
    log10_mass: np.ndarray,
    pk_ratio: np.ndarray | None,
    k: np.ndarray | None,
    *,
    pk_summary_k: Sequence[float] = DEFAULT_PK_SUMMARY_K,
) -> dict[str, Any]:
    """Statistics the features need, fitted on the training split (JSON-safe floats/lists).

    Args:
        names: Feature names (keys of :data:`FEATURES`).
        param_names: Names of the parameter columns.
        log10_mass: Training log10 masses [Msun], shape [n].
        pk_ratio: Training P(k) ratios, [n, n_k], or None.
        k: Wavenumbers of ``pk_ratio`` [h/Mpc], [n_k], or None.
        pk_summary_k: Wavenumbers [h/Mpc] where ``pk_summary`` reads the ratio; must lie
            inside the k grid.

    Returns:
        ``{"log10_mass_mean": float, "pk_summary_k": [float, ...]}`` (only the entries needed).

    Raises:
        DataError: unknown feature, missing input, or ``pk_summary_k`` outside the k grid.
    """
    _check_names(names)
    _check_available(names, param_names, pk_ratio is not None and k is not None)
    stats: dict[str, Any] = {}
    if "mass_deviation" in names:
        stats["log10_mass_mean"] = float(np.mean(np.asarray(log10_mass, dtype=np.float64)))
    if "pk_summary" in names:
        assert k is not None
        k = np.asarray(k, dtype=np.float64)
        if k.size < 2:
            raise DataError("features: 'pk_summary' needs a k grid of at least 2 wavenumbers.")
        for kq in pk_summary_k:
            if not k[0] <= kq <= k[-1]:
                raise DataError(
                    f"features: 'pk_summary' reads P(k) at k={kq} h/Mpc, outside the grid "
                    f"[{k[0]:.4g}, {k[-1]:.4g}] h/Mpc; choose wavenumbers inside it."
                )
        stats["pk_summary_k"] = [float(v) for v in pk_summary_k]
    return stats


def feature_width(names: Sequence[str], stats: Mapping[str, Any]) -> int:
    """Total number of columns produced by ``names`` with fitted ``stats``."""
    _check_names(names)
    return sum(FEATURES[nm].width(stats) for nm in names)


def compute_features(
    names: Sequence[str],
    params: Any,
    param_names: Sequence[str],
    log10_mass: Any,
    pk_ratio: Any | None,
    k: np.ndarray | None,
    stats: Mapping[str, Any],
    xp: Any = np,
) -> Any:
    """Engineered features of raw inputs, concatenated in the order of ``names``.

    Args:
        names: Feature names (keys of :data:`FEATURES`).
        params: Raw (linear) parameters, [n, p].
        param_names: Names of the ``p`` columns.
        log10_mass: log10(M / Msun), [n].
        pk_ratio: P_hydro/P_dmo, [n, n_k], or None.
        k: Wavenumbers of ``pk_ratio`` [h/Mpc], [n_k] (a fixed numpy grid), or None.
        stats: Fitted statistics from :func:`fit_feature_stats`.
        xp: ``numpy`` or ``jax.numpy``.

    Returns:
        Array [n, f] with ``f = feature_width(names, stats)``.

    Raises:
        DataError: unknown feature or a required input missing (named in the message).
    """
    _check_names(names)
    param_names = tuple(str(s) for s in param_names)
    _check_available(names, param_names, pk_ratio is not None and k is not None)
    inp = _Inputs(
        params=params,
        param_names=param_names,
        log10_mass=xp.reshape(log10_mass, (-1,)),
        pk_ratio=pk_ratio,
        k=None if k is None else np.asarray(k),
        stats=stats,
        xp=xp,
    )
    n = inp.log10_mass.shape[0]
    if not names:
        return xp.zeros((n, 0))
    return xp.concatenate([FEATURES[nm].compute(inp) for nm in names], axis=1)


def augment_inputs(
    inputs: Mapping[str, Any],
    noise_std: float,
    key_or_seed: Any,
    *,
    blocks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Add Gaussian noise to normalised input blocks (opt-in training augmentation).

    The noise lives in *normalised* input space, so ``noise_std`` is a fraction of each
    input's training spread. Each block gets an independent stream folded from the key, so
    the result does not depend on dict order. Pure JAX: usable inside ``jit``/``scan``.

    Args:
        inputs: Mapping block name -> array [n, width] (e.g. ``ArrayData.inputs``).
        noise_std: Standard deviation of the noise (``DataConfig.augment_noise``); 0 returns
            a shallow copy of ``inputs``.
        key_or_seed: A ``jax.random`` key or an integer seed (``DataConfig.augment_seed``,
            combined by the trainer with the step number).
        blocks: Blocks to perturb (default: all).

    Returns:
        A new dict with the same keys and shapes; ``inputs`` is not modified.

    Raises:
        DataError: negative or non-finite ``noise_std``, or an unknown block name.
    """
    if not np.isfinite(noise_std) or noise_std < 0:
        raise DataError(f"augment_noise: must be finite and >= 0, got {noise_std}.")
    chosen = list(inputs) if blocks is None else list(blocks)
    for b in chosen:
        if b not in inputs:
            raise DataError(
                f"augment_inputs: unknown input block {b!r}; blocks are {list(inputs)}."
            )
    out = dict(inputs)
    if noise_std == 0:
        return out
    import jax  # lazy: numpy-only prediction never imports JAX
    import jax.numpy as jnp

    key = jax.random.key(key_or_seed) if isinstance(key_or_seed, int | np.integer) else key_or_seed
    for b in sorted(chosen):
        sub = jax.random.fold_in(key, _stable_hash(b))
        x = jnp.asarray(inputs[b])
        out[b] = x + noise_std * jax.random.normal(sub, x.shape, dtype=x.dtype)
    return out


def _stable_hash(name: str) -> int:
    """A process-independent 31-bit integer for a block name (``hash`` is salted)."""
    h = 0
    for ch in name.encode():
        h = (h * 131 + ch) % 2_147_483_647
    return h
