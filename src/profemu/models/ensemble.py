"""Deep ensembles: stacked member variables, vmapped prediction, and the moment combination.

Member variables are one pytree whose every leaf has a leading axis ``M``, so the
ensemble trains and predicts under a single ``jax.vmap``.

Example::

    variables = init_ensemble(model, jax.random.key(0), inputs, members=5)
    means, variances = apply_ensemble(model, variables, inputs)      # [M, n, D] each
    pred = combine(means, variances)                                  # pred.mean: [n, D]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax

from profemu.errors import ConfigError, DataError

__all__ = ["EnsemblePrediction", "apply_ensemble", "combine", "ensemble_size", "init_ensemble"]


class EnsemblePrediction(NamedTuple):
    """Moments of an ensemble's Gaussian mixture, each ``[..., n, D]``.

    Attributes:
        mean: Average of the member means.
        var: Total variance, ``aleatoric + epistemic``.
        aleatoric: Average of the member variances (noise the members predict).
        epistemic: Population variance of the member means (their disagreement).
    """

    mean: Any
    var: Any
    aleatoric: Any
    epistemic: Any


def init_ensemble(
    model: nn.Module, key: jax.Array, inputs: Mapping[str, jax.Array], members: int
) -> Any:
    """Initialise ``members`` independent copies of ``model``.

    Args:
        model: A module built by :func:`~profemu.models.build.build_model`.
        key: PRNG key; member ``m`` uses ``jax.random.split(key, members)[m]``.
        inputs: Example inputs ``{block: [n, width]}`` (only shapes matter).
        members: Ensemble size ``M >= 1``.

    Returns:
        Variables whose every leaf has a leading axis of size ``M``.
    """
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ConfigError(f"train.members: must be an integer >= 1, got {members!r}.")
    keys = jax.random.split(key, members)
    return jax.vmap(lambda k: model.init(k, inputs, train=False))(keys)


def ensemble_size(variables: Any) -> int:
    """Size ``M`` of the leading member axis of stacked variables."""
    leaves = jax.tree.leaves(variables)
    if not leaves:
        raise ConfigError("ensemble variables: empty pytree; initialise with init_ensemble.")
    return int(leaves[0].shape[0])


def apply_ensemble(
    model: nn.Module,
    variables: Any,
    inputs: Mapping[str, jax.Array],
    *,
    train: bool = False,
    rngs: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Every member's prediction on the same inputs.

    Args:
        model: The module the variables belong to.
        variables: Stacked variables (leading axis ``M``).
        inputs: ``{block: [n, width]}``, shared by all members.
        train: Training mode (dropout on).
        rngs: Optional ``{name: key}`` (e.g. ``{"dropout": key}``); each key is split
            into ``M`` independent member keys.

    Returns:
        ``(means, vars)``, each ``[M, n, out_dim]``.
    """
    members = ensemble_size(variables)
    if rngs is None:
        return jax.vmap(lambda v: model.apply(v, inputs, train=train))(variables)
    member_rngs = {name: jax.random.split(k, members) for name, k in rngs.items()}
    return jax.vmap(lambda v, r: model.apply(v, inputs, train=train, rngs=r))(
        variables, member_rngs
    )


def combine(means: Any, variances: Any) -> EnsemblePrediction:
    """Moment-match the members' Gaussians (pure array maths; numpy or jax arrays).

    Args:
        means: ``[M, ..., D]`` member means.
        variances: ``[M, ..., D]`` member variances.

    Returns:
        :class:`EnsemblePrediction` with fields of shape ``[..., D]``.
    """
    if means.shape != variances.shape:
        raise DataError(
            f"combine: means {means.shape} and variances {variances.shape} must have one shape."
        )
    mean = means.mean(axis=0)
    aleatoric = variances.mean(axis=0)
    epistemic = ((means - mean) ** 2).mean(axis=0)
    return EnsemblePrediction(
        mean=mean, var=aleatoric + epistemic, aleatoric=aleatoric, epistemic=epistemic
    )
