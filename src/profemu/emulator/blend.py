"""A Gaussian process beside the network: the blend that never loses to either on small suites.

On a few hundred noisy single-halo simulations an ARD Gaussian process and the network
make errors of the same size but not the same errors, so their weighted mean beats both
(Wolpert 1992, stacking). :class:`GPBlend` holds an exact GP with an ARD RBF kernel on
the emulator's own normalised inputs (the parameters times their input relevance,
log10 mass, P(k) components, redshift, features, in block order) conditioned on the
standardised log10 profiles of the training rows, and per output column the network's
weight ``w`` and a variance factor, both fitted out of sample by
:func:`profemu.train.blend.fit_blend`::

    mean = w * mean_network + (1 - w) * mean_GP          [dex]  inside the GP's training box
    var  = factor * var_network                          [dex²]

Outside the box of its training inputs the GP's share ``1 - w`` fades with its kernel, and
within :data:`FADE` (dex, or Δz) beyond the training masses and redshifts
(:meth:`GPBlend.support`): its mean returns to the training rows' mean profile there, while
the network carries the trend in mass and redshift that the extrapolation variance is
calibrated for. The variance's factor fades with it, to the network's own variance scale.

The GP mean is ``k(x, X) @ alpha`` with ``k(a, b) = s exp(-|(a - b) / l|² / 2)``, written
once for numpy and JAX (:meth:`GPBlend.standardised_mean`), so the blended prediction is
as differentiable as the network's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.errors import FormatError

__all__ = ["FADE", "MAX_ROWS", "GPBlend", "attach_blend"]

#: Most training rows a blend is stored with (the GP's cost grows as their cube).
MAX_ROWS = 3000
#: Length [dex in halo mass, Δz in redshift] over which the GP's share of the blend fades beyond
#: the training masses and redshifts. On the mock universe (lh6, 100 simulations at z = 0, 0.25,
#: 0.5, log10 M = 11.1-14.9; the command's defaults, which blend at 300 rows), tested on 100 haloes
#: of 10^15-10^16 at z = 0.25, the blend with the GP's full share erred a median 0.049 / 0.043 /
#: 0.047 dex (rho / pth / temp) and its 68% intervals held 40 / 35 / 41% of the truth; fading
#: within 0.1 dex (mean and variance factor): 0.020 / 0.023 / 0.019 dex and 78 / 66 / 80%; the
#: network alone 0.020 / 0.022 / 0.019 dex and 79 / 66 / 81%.
FADE = 0.1
_MAX_ABS = 1e6


@dataclass(frozen=True)
class GPBlend:
    """An exact GP on the emulator's normalised inputs and how it is mixed with the network.

    Attributes:
        blocks: Input blocks concatenated (in this order) into the GP's inputs.
        x: Training inputs [n, d] (normalised, as the network sees them).
        alpha: ``(K + noise I)^-1 y`` [n, D], ``y`` the standardised log10 targets.
        amplitude: Kernel amplitude ``s`` (standardised units²).
        length_scales: ARD length scales [d] (normalised input units).
        weight: The network's weight per output column [D], in [0, 1].
        variance_factor: Factor of the network's (uncalibrated) variance per column [D], > 0.
        report: JSON-safe summary of the fit (errors before and after, noise, seconds).
    """

    blocks: tuple[str, ...]
    x: np.ndarray
    alpha: np.ndarray
    amplitude: float
    length_scales: np.ndarray
    weight: np.ndarray
    variance_factor: np.ndarray
    report: Mapping[str, Any]

    def features(self, blocks: Mapping[str, Any], xp: Any = np) -> Any:
        """The GP's inputs [n, d] from the network's input blocks (numpy or JAX)."""
        parts = [blocks[b] for b in self.blocks]
        return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)

    @functools.cached_property
    def _training_geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The training inputs' centre [d], their scaled offsets from it [m, d] with squared norms
        [m], and their box (lo, hi [d]): computed once, not at every prediction."""
        centre = self.x.mean(axis=0)
        b = (self.x - centre) / self.length_scales
        return centre, b, (b * b).sum(axis=-1), self.x.min(axis=0), self.x.max(axis=0)

    def standardised_mean(self, blocks: Mapping[str, Any], xp: Any = np) -> Any:
        """The GP's mean of the standardised log10 profiles [n, D] (numpy or JAX)."""
        x = self.features(blocks, xp)
        dtype = x.dtype
        ls = xp.asarray(self.length_scales, dtype)
        # distances from the training rows' centre: |a|², |b|² stay small, so the expansion
        # |a - b|² = |a|² + |b|² - 2 a.b loses little to rounding in float32
        centre, b_rows, bb_rows, _, _ = self._training_geometry
        a = (x - xp.asarray(centre, dtype)) / ls
        b = xp.asarray(b_rows, dtype)
        d2 = (a * a).sum(axis=-1)[:, None] + xp.asarray(bb_rows, dtype)[None, :] - 2.0 * a @ b.T
        k = self.amplitude * xp.exp(-0.5 * xp.maximum(d2, 0.0))
        return k @ xp.asarray(self.alpha, dtype)

    def support(self, blocks: Mapping[str, Any], xp: Any = np, fade: Mapping[str, Any] | None = None) -> Any:
        """How much of the blend is the GP's at each input [n, 1]: 1 inside the box of its training
        inputs, ``exp(-|e / l|² / 2)`` outside it, ``e`` the excess beyond the box per input
        dimension and ``l`` the GP's length scale, or the shorter length of ``fade`` (per block,
        normalised input units; e.g. a tenth of a dex for ``log10_mass``) (numpy or JAX).

        Beyond its data the GP's mean returns to the training rows' mean profile, not to the
        network's trend in mass or redshift, and the blend's weights were fitted inside the box."""
        x = self.features(blocks, xp)
        dtype = x.dtype
        length = np.asarray(self.length_scales, float)
        if fade:
            widths = [int(np.shape(blocks[b])[-1]) for b in self.blocks]
            length = np.minimum(length, np.concatenate([np.broadcast_to(np.asarray(fade.get(b, np.inf), float), (w,))
                                                        for b, w in zip(self.blocks, widths, strict=True)]))
        lo, hi = (xp.asarray(v, dtype) for v in self._training_geometry[3:])
        excess = (xp.maximum(lo - x, 0.0) + xp.maximum(x - hi, 0.0)) / xp.asarray(length, dtype)
        return xp.exp(-0.5 * (excess * excess).sum(axis=-1, keepdims=True))

    def mix(self, network_mean: Any, gp_mean: Any, xp: Any = np, support: Any = 1.0) -> Any:
        """``w * network + (1 - w) * GP`` column by column ([n, D] log10 profiles), the GP's share
        times its ``support`` [n, 1] (:meth:`support`; 1: the plain stacking)."""
        w = xp.asarray(self.weight, network_mean.dtype)
        return network_mean + (1.0 - w) * support * (gp_mean - network_mean)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored in the emulator's metadata as ``"gp_blend"``)."""
        return {"blocks": list(self.blocks), "x": self.x.tolist(), "alpha": self.alpha.tolist(),
                "amplitude": float(self.amplitude), "length_scales": self.length_scales.tolist(),
                "weight": self.weight.tolist(), "variance_factor": self.variance_factor.tolist(),
                "report": dict(self.report)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, block_widths: Mapping[str, int], out_dim: int) -> GPBlend:
        """Rebuild and check every number against the emulator it belongs to.

        Raises:
            FormatError: a missing key, a shape that does not fit the emulator's inputs and
                outputs, or a number outside what a fit produces (a damaged or edited file).
        """

        def bad(what: str) -> FormatError:
            return FormatError(f"metadata.gp_blend: {what}; the saved emulator is damaged or was edited.")

        try:
            blocks = tuple(str(b) for b in d["blocks"])
            x = np.asarray(d["x"], dtype=np.float64)
            alpha = np.asarray(d["alpha"], dtype=np.float64)
            amplitude = float(d["amplitude"])
            ls = np.asarray(d["length_scales"], dtype=np.float64)
            weight = np.asarray(d["weight"], dtype=np.float64)
            factor = np.asarray(d["variance_factor"], dtype=np.float64)
            report = dict(d.get("report") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"malformed ({type(exc).__name__}: {exc})") from None
        unknown = [b for b in blocks if b not in block_widths]
        if not blocks or unknown:
            raise bad(f"input blocks {list(blocks)} are not the emulator's {list(block_widths)}")
        width = sum(int(block_widths[b]) for b in blocks)
        n = x.shape[0] if x.ndim == 2 else -1
        if x.ndim != 2 or x.shape[1] != width or not 1 <= n <= MAX_ROWS:
            raise bad(f"x must be [n <= {MAX_ROWS}, {width}], got {list(x.shape)}")
        if alpha.shape != (n, out_dim) or ls.shape != (width,) or weight.shape != (out_dim,) or \
                factor.shape != (out_dim,):
            raise bad("alpha, length_scales, weight or variance_factor has the wrong shape")
        numbers = np.concatenate([x.ravel(), alpha.ravel(), ls, weight, factor, [amplitude]])
        if not np.all(np.isfinite(numbers)) or np.abs(numbers).max() > _MAX_ABS:
            raise bad(f"numbers must be finite and within {_MAX_ABS:g} in magnitude")
        if amplitude <= 0 or (ls <= 0).any() or (weight < 0).any() or (weight > 1).any() or \
                (factor < 1e-6).any() or (factor > 1e6).any():
            raise bad("amplitude and length scales must be > 0, weights in [0, 1], variance factors in [1e-6, 1e6]")
        return cls(blocks, x, alpha, amplitude, ls, weight, factor, report)

    @staticmethod
    def describe(report: Mapping[str, Any], fields: Sequence[str]) -> str:
        """One line: the network's weight and the out-of-sample errors per field."""
        parts = []
        for f in fields:
            r = report.get("fields", {}).get(f)
            if r:
                parts.append(f"{f}: network weight {r['weight']:.2f}, out-of-sample median error "
                             f"{100 * r['network_error']:.2f}% (network) / {100 * r['gp_error']:.2f}% (GP) -> "
                             f"{100 * r['blend_error']:.2f}% (blend)")
        return "; ".join(parts) if parts else "no field"



def attach_blend(emulator: Any, blend: GPBlend) -> None:
    """Make ``blend`` part of ``emulator``: its predictions and its saved metadata (``"gp_blend"``)."""
    emulator.metadata["gp_blend"] = blend.to_dict()
    emulator.blend = blend
