"""Self-similar scales of halo gas profiles, and how a dataset gets them.

A halo of mass ``M_Δ`` (mass inside the radius ``R_Δ`` that encloses ``Δ`` times the
reference density: the critical density ``ρ_crit(z)`` for ``"200c"``/``"500c"``, the
mean matter density for ``"200m"``) has, in the self-similar model, the gas scales
(Kaiser 1986; e.g. Battaglia et al. 2012, eq. 6; Arnaud et al. 2010)::

    ρ_Δ = Δ f_b ρ_ref(z)                         gas density
    P_Δ = G M_Δ Δ ρ_ref(z) f_b / (2 R_Δ)          thermal pressure  ∝ M^(2/3) E(z)^(8/3)
    T_Δ = μ m_p G M_Δ / (2 k_B R_Δ)               temperature       ∝ M^(2/3) E(z)^(2/3)

with ``f_b = Ω_b / Ω_m``, ``R_Δ = (3 M_Δ / (4 π Δ ρ_ref))^(1/3)``, ``ρ_crit(z) = 3 H(z)^2 /
(8 π G)`` and ``E(z)^2 = Ω_m (1 + z)^3 + 1 - Ω_m`` (flat ΛCDM). Dividing a profile by
its scale removes the trivial dependence on mass, redshift and cosmology, so the
network learns only what feedback and cosmology do to the *shape*.

:func:`resolve` reads what the scales need from a dataset — the mass definition from
``meta["mass_definition"]``, the redshift from ``dataset.redshift`` (or
``meta["redshift"]``), ``Ω_m``, ``Ω_b`` and ``h`` from the parameters by name (with
the usual aliases) or their defaults — and returns a :class:`SelfSimilar`, or None
with the reason when something is missing. All functions take ``xp`` (numpy or
``jax.numpy``) and are differentiable.

Units: masses in Msun, lengths in Mpc (physical); the base units of the scales are
Msun Mpc^-3 (density), Msun (km/s)^2 Mpc^-3 (pressure) and K (temperature), converted
to the dataset's units when they are recognised (:func:`unit_factor`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from profemu.physics.constants import (
    DEFAULT_H,
    DEFAULT_OMEGA_B,
    G_MPC_KMS2_MSUN,
    K_B_ERG,
    KEV_ERG,
    KPC_CM,
    M_P_G,
    MPC_CM,
    MSUN_G,
    MU,
    RHO_CRIT0_H2,
    X_H,
)
from profemu.physics.cosmology import e2, rho_crit
from profemu.physics.halo import log10_selfsimilar_scales as log10_scales
from profemu.physics.halo import r_delta

__all__ = [
    "DEFAULT_H",
    "DEFAULT_OMEGA_B",
    "G_MPC_KMS2_MSUN",
    "RHO_CRIT0_H2",
    "SelfSimilar",
    "ambiguous_scaled_radius_unit",
    "e2",
    "log10_scales",
    "mass_definition_problem",
    "parameter_index",
    "parse_mass_definition",
    "parse_scaled_radius_unit",
    "physical_kind",
    "r_delta",
    "redshift_column",
    "redshift_values",
    "resolve",
    "rho_crit",
    "unit_factor",
    "unit_powers",
]

# Parameter names of each cosmological quantity (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "omega_m": ("omega_m", "omega0", "omegam", "om0", "omega_matter", "omegamatter", "om", "ω_m", "ωm", "ω_0"),
    "omega_b": ("omega_b", "omegabaryon", "omegab", "ob0", "omega_baryon", "ob", "ω_b", "ωb"),
    "h": ("h", "hubbleparam", "hubble", "h0_100", "little_h"),
}
_KINDS = ("density", "pressure", "temperature")
#: Mean mass per electron in units of m_p for a fully ionised gas of hydrogen mass fraction
#: X = 0.76: μ_e = 2 / (1 + X).
MU_E = 2.0 / (1.0 + X_H)
#: Gas mass per hydrogen atom (or proton) in units of m_p: 1 / X (X = 0.76), so n_H = X ρ / m_p.
MU_H = 1.0 / X_H
#: Declared kinds (``meta["field_kinds"]``) -> (scale kind, mean particle mass [m_p] or 0 for a mass density).
DECLARED_KINDS: dict[str, tuple[str, float]] = {
    "density": ("density", 0.0), "gas_density": ("density", 0.0),
    "electron_number_density": ("density", MU_E), "gas_number_density": ("density", MU),
    "hydrogen_number_density": ("density", MU_H),
    "pressure": ("pressure", 0.0), "temperature": ("temperature", 0.0), "other": ("", 0.0),
}
# Field names (lower case) hinting an electron / hydrogen / all-particle number density when the unit is a bare
# volume^-1.
_ELECTRON_NAMES = ("ne", "n_e", "nelec", "n_elec", "electron_density")
_HYDROGEN_NAMES = ("n_h", "nh", "nh_density", "hydrogen_density", "hydrogen_number_density")
_GAS_NUMBER_NAMES = ("n", "n_gas", "ngas", "number_density")

# (unit tokens as {name: power}) -> factor from the base unit; tokens are lower case
_BASE_UNITS: dict[str, list[tuple[dict[str, int], float]]] = {
    "density": [
        ({"msun": 1, "mpc": -3}, 1.0),
        ({"msun": 1, "kpc": -3}, 1e-9),
        ({"msun": 1, "pc": -3}, 1e-18),
        ({"g": 1, "cm": -3}, MSUN_G / MPC_CM**3),
    ],
    "pressure": [
        ({"msun": 1, "km": 2, "s": -2, "mpc": -3}, 1.0),
        ({"kev": 1, "cm": -3}, MSUN_G * 1e10 / MPC_CM**3 / KEV_ERG),
        ({"erg": 1, "cm": -3}, MSUN_G * 1e10 / MPC_CM**3),
        ({"dyn": 1, "cm": -2}, MSUN_G * 1e10 / MPC_CM**3),
        ({"msun": 1, "kpc": -1, "s": -2}, 1e10 * KPC_CM / MPC_CM**3),
    ],
    "temperature": [({"k": 1}, 1.0), ({"kev": 1}, K_B_ERG / KEV_ERG), ({"ev": 1}, 1e3 * K_B_ERG / KEV_ERG)],
}


# --------------------------------------------------------------------- parsing
#: Overdensities whose reference is the critical density when the letter is left out ("M500", "R2500"):
#: the X-ray convention. A bare 200 is ambiguous (200c and 200m are both common) and is not read.
BARE_CRITICAL = (500.0, 2500.0)
#: The mass definitions :func:`parse_mass_definition` reads, for messages.
ACCEPTED_MASS_DEFINITIONS = ("'M200c [Msun]'", "'M500c [Msun/h]'", "'M200m'", "'M500' (= M500c)",
                             "'M2500c'", "'Group_M_Crit200'")
_SCALED_RADIUS = re.compile(
    r"(?:r\s*/\s*)?r[_\s]*\{?\s*(\d+(?:\.\d+)?)\s*,?\s*(c|crit|critical|m|mean)?\s*\}?")


def parse_scaled_radius_unit(unit: Any) -> tuple[float, str] | None:
    """A radius unit naming R_Δ -> (Δ, reference): radii in units of R_Δ; None for a length unit
    or anything else.

    Accepted (case-insensitive): an optional ``r/`` prefix, ``R``, an optional ``_``, Δ and
    ``c``/``m`` (``crit``/``mean``): ``"R200c"``, ``"r_500c"``, ``"R 200m"``, ``"r/R500c"``,
    ``"r/R_500c"``, ``"r/r200c"``, ``"r/R_{200m}"``; without the letter only the overdensities
    of :data:`BARE_CRITICAL` (``"R/R500"`` is R500c). E.g. ``"r/R500c"`` -> ``(500.0, "critical")``.
    """
    if not isinstance(unit, str):
        return None
    m = _SCALED_RADIUS.fullmatch(unit.strip().lower())
    if m is None:
        return None
    delta, ref = float(m.group(1)), m.group(2)
    if ref is None:
        return (delta, "critical") if delta in BARE_CRITICAL else None
    return delta, "critical" if ref.startswith("c") else "mean"


def ambiguous_scaled_radius_unit(unit: Any) -> bool:
    """True for a radius unit such as ``"R200"`` or ``"r/R100"``: R_Δ without the reference letter,
    for a Δ that is not read as critical (:data:`BARE_CRITICAL`)."""
    if not isinstance(unit, str):
        return False
    m = _SCALED_RADIUS.fullmatch(unit.strip().lower())
    return m is not None and m.group(2) is None and float(m.group(1)) not in BARE_CRITICAL


_SCALE_SYMBOL = {"density": "rho", "pressure": "P", "temperature": "T"}
"""How the log line names each kind's self-similar scale (rho_Delta, P_Delta, T_Delta)."""


def parse_mass_definition(text: Any) -> tuple[float, str, bool] | None:
    """``"M200c [Msun]"`` -> (200.0, "critical", False); also ``"500c"``, ``"M200m"``,
    ``"M200,c"``, ``"M200crit"``, ``"log10 M200c"``, ``"Group_M_Crit200"``, and ``"M500"``,
    ``"M_2500"`` (critical, :data:`BARE_CRITICAL`); ``Msun/h`` masses give True as the last
    element. None when the text names no Δ definition (Δ in [10, 1e5]; a bare ``"M200"`` is
    ambiguous and gives None)."""
    if not isinstance(text, str):
        return None
    low = text.lower()
    bare = re.sub(r"log_?\s*(10)?", " ", low)  # "log10 M200c": the 10 of log10 is no Δ
    m = re.search(r"(?<![\d.^e])(\d+(?:\.\d+)?)\s*,?\s*_?(critical|crit|c|mean|m)(?![a-z])", bare)
    if m is not None:
        delta, ref = m.group(1), m.group(2)
    else:  # SUBFIND's names: Group_M_Crit200, Group_M_Mean200
        m = re.search(r"(critical|crit|mean)_?(\d+(?:\.\d+)?)(?![\d.])", bare)
        if m is not None:
            ref, delta = m.group(1), m.group(2)
        else:  # "M500", "M_{2500}": critical by convention
            m = re.search(r"(?<![a-z\d.])m_?\{?(\d+(?:\.\d+)?)\}?(?![\d.a-z])", bare)
            if m is None or float(m.group(1)) not in BARE_CRITICAL:
                return None
            delta, ref = m.group(1), "critical"
    if not 10.0 <= float(delta) <= 1e5:
        return None
    per_h = bool(re.search(r"msun\s*/\s*h|h\^?-1\s*msun|msun\s*h\^?-1", low))
    return float(delta), "critical" if ref.startswith("c") else "mean", per_h


#: Other spellings of the unit names (lower case), as {name: (base name, power)}.
_UNIT_ALIASES = {"m_sun": ("msun", 1), "msol": ("msun", 1), "m_sol": ("msun", 1), "msolar": ("msun", 1),
                 "solmass": ("msun", 1), "kelvin": ("k", 1), "cc": ("cm", 3)}


def _unit_tokens(unit: str) -> dict[str, int] | None:
    """``"Msun kpc^-3"``, ``"Msun/kpc^3"``, ``"keV cm^-3"`` -> ``{"msun": 1, "kpc": -3}``; also
    ``"1/cm^3"``, ``"cm^{-3}"``, ``"cm$^{-3}$"`` (LaTeX), ``"M_sun/kpc^3"``, ``"g/cc"``, ``"Kelvin"``,
    ``"Msun h^2 ckpc^-3"`` (-> ``{"msun": 1, "h": 2, "ckpc": -3}``). None when unparsable."""
    text = unit.strip().lower().replace("**", "^").replace("·", " ").replace("*", " ")
    text = text.replace("$", "").replace("{", "").replace("}", "").replace("\\,", " ").strip()
    if not text:
        return None
    tokens: dict[str, int] = {}
    sign = 1
    for part in re.split(r"(\s+|/)", text):
        if not part.strip():
            continue
        if part == "/":
            sign = -1
            continue
        if part == "1":  # "1/cm^3"
            continue
        m = re.fullmatch(r"([a-z_]+)(?:\^?\(?(-?\d+)\)?)?", part)
        if m is None:
            return None
        name, scale = _UNIT_ALIASES.get(m.group(1), (m.group(1), 1))
        power = scale * (int(m.group(2)) if m.group(2) else 1)
        tokens[name] = tokens.get(name, 0) + sign * power
    return {k: v for k, v in tokens.items() if v != 0}


#: Comoving lengths (lower case) -> the physical length they are at z = 0.
_COMOVING = {"ckpc": "kpc", "cmpc": "mpc", "cpc": "pc"}


def _split_tokens(tokens: Mapping[str, int]) -> tuple[dict[str, int], int, int]:
    """``(physical tokens, h power, comoving length power)`` of a unit's tokens: ``"Msun h^2 ckpc^-3"``
    -> ``({"msun": 1, "kpc": -3}, 2, -3)``."""
    plain: dict[str, int] = {}
    h_power = c_power = 0
    for name, power in tokens.items():
        if name == "h":
            h_power += power
            continue
        if name in _COMOVING:
            c_power += power
            name = _COMOVING[name]
        plain[name] = plain.get(name, 0) + power
    return {k: v for k, v in plain.items() if v != 0}, h_power, c_power


def unit_factor(kind: str, unit: str) -> float | None:
    """Factor from the base unit of ``kind`` to ``unit``, or None when the unit is unknown.

    Only units that are a constant multiple of the base unit: a unit with powers of h or
    comoving lengths (``"Msun h^2 kpc^-3"``, ``"Msun/ckpc^3"``) gives None here (see
    :func:`unit_powers`)."""
    tokens = _unit_tokens(unit)
    for known, factor in _BASE_UNITS.get(kind, []):
        if tokens == known:
            return factor
    return None


def unit_powers(unit: str) -> tuple[float, float]:
    """``(a, b)`` with ``log10(value in unit) = log10(value in its physical, h-free unit) + a log10 h
    + b log10(1 + z)``, per row.

    ``unit`` ``U = h^q c-length^p ...`` (a comoving length is ``1 / (1 + z)`` times the
    physical one) gives ``a = -q``, ``b = p``: e.g. ``"Msun h^2 kpc^-3"`` -> ``(-2, 0)``,
    ``"Msun/ckpc^3"`` -> ``(0, -3)`` (a comoving density is the physical one over (1 + z)^3).
    ``(0, 0)`` for an unparsable unit.
    """
    tokens = _unit_tokens(unit)
    if tokens is None:
        return 0.0, 0.0
    _, h_power, c_power = _split_tokens(tokens)
    return float(-h_power), float(c_power)


def _conversion(kind: str, mu: float, unit: str) -> float | None:
    """Factor from the base unit of ``kind`` to the physical, h-free part of ``unit`` (a number
    density when ``mu`` > 0: mean particle mass [m_p]); None when the unit is not one of ``kind``."""
    tokens = _unit_tokens(unit)
    if tokens is None:
        return None
    plain, _, _ = _split_tokens(tokens)
    if mu:
        return _number_density_factor(plain, mu)
    for known, factor in _BASE_UNITS.get(kind, []):
        if plain == known:
            return factor
    return None


def _number_density_factor(tokens: Mapping[str, int], mu: float) -> float | None:
    """Factor from a mass density in Msun Mpc^-3 to a number density in the unit ``tokens`` (cm^-3, m^-3,
    kpc^-3, Mpc^-3), for particles of mean mass ``mu`` m_p."""
    per_cm3 = {"cm": 1.0, "m": 1e6, "kpc": KPC_CM**3, "mpc": MPC_CM**3}  # unit^-3 per cm^-3
    if len(tokens) != 1:
        return None
    (name, power), = tokens.items()
    if power != -3 or name not in per_cm3:
        return None
    return MSUN_G / MPC_CM**3 / (mu * M_P_G) * per_cm3[name]


def physical_kind(name: str, unit: str, declared: Mapping[str, Any] | None = None) -> tuple[str, float | None, str]:
    """The self-similar kind of one field, decided by its declared kind and its unit, not its name.

    Order: ``declared[name]`` (``meta["field_kinds"]``: one of :data:`DECLARED_KINDS`),
    else the unit (a mass density, pressure or temperature unit known to
    :func:`unit_factor`, also with powers of h and comoving lengths, :func:`unit_powers`;
    a bare volume^-1 unit is a number density, electron, hydrogen or gas by the field name,
    else not normalised).

    Args:
        name: Field name.
        unit: The field's unit string.
        declared: ``meta["field_kinds"]`` or None.

    Returns:
        ``(kind, factor, how)``: ``kind`` in ``"density"``, ``"pressure"``,
        ``"temperature"`` or ``""`` (not normalised); ``factor`` from the base unit to
        ``unit`` without its powers of h and (1 + z) (None when the unit is not recognised);
        ``how`` a few words for the log.
    """
    text = (declared or {}).get(name)
    if text is not None:
        if text not in DECLARED_KINDS:
            from profemu.errors import DataError

            raise DataError(f"meta.field_kinds.{name}: {text!r} is not a kind; use one of {sorted(DECLARED_KINDS)}.")
        kind, mu = DECLARED_KINDS[text]
        return kind, (_conversion(kind, mu, unit) if kind else None), f"declared {text}"
    for kind in _KINDS:
        factor = _conversion(kind, 0.0, unit)
        if factor is not None:
            return kind, factor, f"{kind} by its unit"
    key = name.strip().lower()
    for names, mu, what in ((_ELECTRON_NAMES, MU_E, "electron"), (_HYDROGEN_NAMES, MU_H, "hydrogen"),
                            (_GAS_NUMBER_NAMES, MU, "gas")):
        factor = _conversion("density", mu, unit)
        if factor is not None and key in names:
            return "density", factor, f"{what} number density by its unit and name"
    return "", None, f"unit {unit!r} is not a density, pressure or temperature unit (declare meta.field_kinds)"


def _radius_unit_flags(unit: str) -> tuple[bool, bool]:
    """``(per_h, comoving)`` of a radius unit such as ``"kpc/h"``, ``"cMpc h^-1"`` or ``"Mpc (physical)"``."""
    u = unit.strip().lower()
    per_h = bool(re.search(r"/\s*h\b|h\s*\^?\s*-\s*1|h\*\*-1", u))
    comoving = "comoving" in u or bool(re.match(r"c(kpc|mpc)\b", u))
    return per_h, comoving


def parameter_index(names: Sequence[str], quantity: str) -> int | None:
    """Column of the parameter that is ``quantity`` (``"omega_m"``, ``"omega_b"``, ``"h"``; names in
    :data:`ALIASES`, any case), or None."""
    lower = [str(n).lower() for n in names]
    for alias in ALIASES[quantity]:
        if alias in lower:
            return lower.index(alias)
    return None


# --------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class SelfSimilar:
    """How the profiles of one dataset are normalised (JSON-safe, hashable).

    Attributes:
        delta: Overdensity Δ of the mass definition.
        reference: ``"critical"`` or ``"mean"`` density.
        mass_per_h: Masses are in Msun/h (divided by h before the scales).
        kinds: Per field: ``"density"``, ``"pressure"``, ``"temperature"`` or ``""``
            (not normalised).
        log10_unit: Per field: log10 of the base-unit -> dataset-unit factor (0 when the
            unit was not recognised: the normalised profile then carries a constant factor).
        omega_m, omega_b, h: Parameter column index, or -1 to use ``*_value``.
        omega_m_value, omega_b_value, h_value: Constants used when not a parameter.
        redshift_value: The redshift when the dataset has one value for all rows;
            None = the per-row redshift input.
        radius_scaled: The radii are in units of R_Δ (e.g. ``"R200c"``), so the
            self-similar profile shape is mass-independent at fixed radius.
        redshift_param: Parameter column holding the redshift (``z`` or ``redshift``),
            or -1 (the dataset's redshift, ``redshift_value`` or the redshift input).
        radius_per_h: The radii are in h^-1 length units (``"kpc/h"``, ``"Mpc h^-1"``).
        radius_comoving: The radii are comoving (``"ckpc"``, ``"cMpc"``, ``"comoving"``).
        unit_h_power, unit_z_power: Per field (or empty: all 0): the powers ``a``, ``b`` of h and
            (1 + z) in the field's unit (:func:`unit_powers`; ``"Msun h^2 kpc^-3"`` -> a = -2,
            ``"Msun/ckpc^3"`` -> b = -3), added per row to ``log10_unit``.
        radius_delta: The radii's R_Δ when they are in units of another definition's R_Δ
            (``"R500c"`` with ``M200c`` masses) as ``(Δ, reference)``, or ``()``.
    """

    delta: float
    reference: str
    mass_per_h: bool
    kinds: tuple[str, ...]
    log10_unit: tuple[float, ...]
    omega_m: int
    omega_b: int
    h: int
    omega_m_value: float
    omega_b_value: float
    h_value: float
    redshift_value: float | None
    radius_scaled: bool
    redshift_param: int = -1
    radius_per_h: bool = False
    radius_comoving: bool = False
    unit_h_power: tuple[float, ...] = ()
    unit_z_power: tuple[float, ...] = ()
    radius_delta: tuple[float, str] | tuple[()] = ()

    def _cosmology(self, params: Any, redshift: Any) -> tuple[Any, Any, Any, Any]:
        """``(Omega_m, Omega_b, h, z)`` per row (columns of ``params`` or constants)."""

        def column(index: int, value: float) -> Any:
            return params[:, index] if index >= 0 else value

        om, ob, h = column(self.omega_m, self.omega_m_value), column(self.omega_b, self.omega_b_value), column(
            self.h, self.h_value)
        z = (params[:, self.redshift_param] if self.redshift_param >= 0
             else self.redshift_value if self.redshift_value is not None else redshift)
        return om, ob, h, z

    def log10_halo_radius(self, params: Any, log10_mass: Any, redshift: Any = None, xp: Any = np) -> Any:
        """log10 R_Δ [n] in the length unit of the dataset's radii, up to a constant.

        R_Δ in physical Mpc from :func:`~profemu.physics.halo.r_delta`, times h for radii in
        h^-1 units and times (1 + z) for comoving radii; a constant unit factor (kpc vs Mpc)
        is left out, since only differences between haloes are used (the radial coordinate
        r / R_Δ of :class:`~profemu.data.transforms.Transforms` is centred on the training mean).
        """
        om, _, h, z = self._cosmology(params, redshift)
        log_m = log10_mass - (xp.log10(h) if self.mass_per_h else 0.0)
        log_r = xp.log10(r_delta(10.0 ** log_m, z, h, om, self.delta, self.reference, xp))
        if self.radius_per_h:
            log_r = log_r + xp.log10(h)
        if self.radius_comoving:
            log_r = log_r + xp.log10(1.0 + z)
        return log_r + 0.0 * log10_mass

    def log10_scale(self, params: Any, log10_mass: Any, redshift: Any = None, xp: Any = np) -> Any:
        """log10 of each field's scale in the dataset's unit, [n, F] (0 for fields not normalised).

        Args:
            params: Raw parameters [n, p].
            log10_mass: [n].
            redshift: [n] (used when ``redshift_value`` is None).
            xp: numpy or jax.numpy.
        """
        om, ob, h, z = self._cosmology(params, redshift)
        log_m = log10_mass - (xp.log10(h) if self.mass_per_h else 0.0)
        scales = log10_scales(log_m, z, om, ob, h, delta=self.delta, reference=self.reference, xp=xp)
        zero = 0.0 * log10_mass
        n_f = len(self.kinds)
        h_pow, z_pow = self.unit_h_power or (0.0,) * n_f, self.unit_z_power or (0.0,) * n_f
        cols = []
        for k, u, a, b in zip(self.kinds, self.log10_unit, h_pow, z_pow, strict=True):
            if not k:
                cols.append(zero)
                continue
            col = scales[k] + u + zero
            if a:
                col = col + a * xp.log10(h)
            if b:
                col = col + b * xp.log10(1.0 + z)
            cols.append(col)
        return xp.stack(cols, axis=-1)

    def describe(self, param_names: Sequence[str], field_names: Sequence[str], units: Mapping[str, str]) -> str:
        """One line saying exactly what was used."""

        def src(index: int, value: float, name: str) -> str:
            return f"{name} = parameter {param_names[index]!r}" if index >= 0 else f"{name} = {value:g} (default)"

        ref = "c" if self.reference == "critical" else "m"
        z = (f"z = parameter {param_names[self.redshift_param]!r}" if self.redshift_param >= 0
             else f"z = {self.redshift_value:g}" if self.redshift_value is not None else "z = the redshift input")
        parts = [f"M{self.delta:g}{ref}" + (" [Msun/h]" if self.mass_per_h else " [Msun]"), z,
                 src(self.omega_m, self.omega_m_value, "Omega_m"), src(self.omega_b, self.omega_b_value, "Omega_b"),
                 src(self.h, self.h_value, "h")]
        fields = []
        n_f = len(self.kinds)
        h_pow, z_pow = self.unit_h_power or (0.0,) * n_f, self.unit_z_power or (0.0,) * n_f
        for f, kind, u, a, b in zip(field_names, self.kinds, self.log10_unit, h_pow, z_pow, strict=True):
            if not kind:
                fields.append(f"{f}: plain log10 (no self-similar scale for this field)")
            else:
                unit = units.get(f, "")
                recognised = u != 0.0 or a != 0.0 or b != 0.0 or unit_factor(kind, unit) is not None
                known = "" if recognised else " (unit not recognised: a constant factor remains)"
                per_row = " and ".join(p for p in (f"h^{-a:g}" if a else "", f"comoving (1+z)^{b:g}" if b else "") if p)
                known += f" (per row: {per_row})" if per_row else ""
                fields.append(f"{f}: / {_SCALE_SYMBOL.get(kind, kind)}_Delta [{unit or 'no unit'}]{known}")
        if not self.radius_scaled:
            radii = "the data's radii are physical lengths (not r/R_Delta)"
        elif self.radius_delta:
            d, r = self.radius_delta
            radii = (f"the data's radii are in units of R{d:g}{r[0]} (not of the mass definition's "
                     f"R{self.delta:g}{ref})")
        else:
            radii = "the data's radii are in units of R_Delta"
        return "self-similar normalisation: " + ", ".join(parts) + "; " + "; ".join(fields) + "; " + radii

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelfSimilar:
        from profemu.errors import FormatError

        try:
            s = cls(float(d["delta"]), str(d["reference"]), bool(d["mass_per_h"]), tuple(str(k) for k in d["kinds"]),
                    tuple(float(u) for u in d["log10_unit"]), int(d["omega_m"]), int(d["omega_b"]), int(d["h"]),
                    float(d["omega_m_value"]), float(d["omega_b_value"]), float(d["h_value"]),
                    None if d["redshift_value"] is None else float(d["redshift_value"]), bool(d["radius_scaled"]),
                    int(d.get("redshift_param", -1)), bool(d.get("radius_per_h", False)),
                    bool(d.get("radius_comoving", False)), tuple(float(a) for a in d.get("unit_h_power", ())),
                    tuple(float(b) for b in d.get("unit_z_power", ())),
                    (float(d["radius_delta"][0]), str(d["radius_delta"][1])) if d.get("radius_delta") else ())
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"transforms.self_similar: malformed ({type(exc).__name__}: {exc}).") from None
        numbers = [s.delta, *s.log10_unit, s.omega_m_value, s.omega_b_value, s.h_value, *s.unit_h_power,
                   *s.unit_z_power]
        if not all(math.isfinite(v) for v in numbers) or s.delta <= 0 or s.h_value <= 0 or \
                s.reference not in ("critical", "mean") or any(k not in ("", *_KINDS) for k in s.kinds) or \
                any(len(t) not in (0, len(s.kinds)) for t in (s.unit_h_power, s.unit_z_power)):
            raise FormatError("transforms.self_similar: invalid numbers; the saved emulator is damaged or edited.")
        return s


def redshift_column(param_names: Sequence[str]) -> int | None:
    """The index of the parameter column that holds the redshift, or None: a column named ``z``
    (lower case: ``Z`` usually names a metallicity) or ``Redshift`` in any case (``redshift``
    itself is the name of the emulator's redshift input)."""
    for j, name in enumerate(param_names):
        if name.strip() == "z" or name.strip().lower() == "redshift":
            return j
    return None


def redshift_values(param_names: Sequence[str], params: np.ndarray,
                    redshift: np.ndarray | None) -> tuple[np.ndarray, str] | None:
    """The rows' redshifts [n] and the input that holds them, as self-similar scaling reads them:
    the parameter column of :func:`redshift_column` first (its name), then the redshift input
    (``"redshift"``); None when there is neither."""
    j = redshift_column(param_names)
    if j is not None:
        return np.asarray(params[:, j], float), str(param_names[j])
    if redshift is not None and np.size(redshift):
        return np.asarray(redshift, float), "redshift"
    return None


def _redshift(param_names: Sequence[str], meta: Mapping[str, Any],
              redshift: np.ndarray | None) -> tuple[float | None, int, str] | None:
    """``(z_value, redshift_param, note)``: the parameter column of :func:`redshift_column` first,
    then the dataset's redshift, then ``meta["redshift"]``; None when there is none."""
    j = redshift_column(param_names)
    if j is not None:
        note = f"the redshift is the parameter column {param_names[j]!r}"
        if redshift is not None and redshift.size:
            note += " (equal to the dataset's redshift array, which stays an input too)"
        return None, j, note
    if redshift is not None and redshift.size:
        return (float(redshift[0]) if np.ptp(redshift) == 0 else None), -1, ""
    if isinstance(meta.get("redshift"), int | float):
        return float(meta["redshift"]), -1, ""
    return None


def _kinds(field_names: Sequence[str], field_kinds: Sequence[str] | None, units: Mapping[str, str],
           meta: Mapping[str, Any]) -> tuple[tuple[str, ...], list[float], list[str], list[float], list[float]]:
    """Per field: the kind, log10 of its unit factor (0 unknown), how the kind was decided and the
    powers of h and (1 + z) of its unit (:func:`unit_powers`; 0 where the factor is unknown)."""
    declared = meta.get("field_kinds") if isinstance(meta.get("field_kinds"), Mapping) else None
    kinds, log_unit, how, h_pow, z_pow = [], [], [], [], []
    for i, f in enumerate(field_names):
        unit = units.get(f, "")
        if field_kinds is not None:
            kind = field_kinds[i] if field_kinds[i] in _KINDS else ""
            factor, note = (_conversion(kind, 0.0, unit) if kind else None), "given"
        else:
            kind, factor, note = physical_kind(f, unit, declared)
        a, b = unit_powers(unit) if factor is not None else (0.0, 0.0)
        kinds.append(kind)
        log_unit.append(0.0 if factor is None else math.log10(factor))
        h_pow.append(a)
        z_pow.append(b)
        how.append(f"{f}: {note}")
    return tuple(kinds), log_unit, how, h_pow, z_pow


def mass_definition_problem(meta: Mapping[str, Any]) -> str | None:
    """Why ``meta["mass_definition"]`` cannot be read (one line naming the value and the accepted
    forms), or None when it is absent or readable."""
    if "mass_definition" not in meta or meta["mass_definition"] is None:
        return None
    text = meta["mass_definition"]
    if parse_mass_definition(text) is not None:
        return None
    return (f"meta.mass_definition: {text!r} is not a mass definition profemu reads, so the profiles are not "
            "divided by self-similar scales (plain log10 is learnt); write it as Δ and reference, e.g. "
            f"{', '.join(ACCEPTED_MASS_DEFINITIONS)}, with '[Msun/h]' for masses per h (virial and FoF masses "
            "are not supported)")


def resolve(
    param_names: Sequence[str],
    field_names: Sequence[str],
    field_kinds: Sequence[str] | None,
    units: Mapping[str, str],
    meta: Mapping[str, Any],
    redshift: np.ndarray | None,
    radius_unit: str,
    params: np.ndarray,
) -> tuple[SelfSimilar | None, str]:
    """The self-similar normalisation a dataset allows, and the log line that says so.

    The mass definition is ``meta["mass_definition"]``; only when it is absent, radii in units
    of R_Δ (``radius_unit`` ``"R200c"``, ``"r/R500c"``, :func:`parse_scaled_radius_unit`) name
    it, with masses in Msun. An unreadable ``mass_definition`` turns the normalisation off
    (never replaced by a guess).

    Args:
        param_names, field_names, units, meta, redshift, radius_unit, params: of the dataset.
        field_kinds: Kind per field, or None (the default of :class:`~profemu.data.transforms.Transforms`)
            to decide it from ``meta["field_kinds"]`` and the unit (:func:`physical_kind`).

    Returns:
        ``(spec, message)``; ``spec`` is None (with the reason in ``message``) when the
        mass definition, the redshift or Ω_m is missing, or no field is a density,
        pressure or temperature.
    """
    problem = mass_definition_problem(meta)
    if problem is not None:
        return None, "self-similar normalisation off: " + problem
    scaled_radius = parse_scaled_radius_unit(radius_unit)
    definition = parse_mass_definition(meta.get("mass_definition"))
    definition_note = ""
    if definition is None and scaled_radius is not None:
        definition = (*scaled_radius, False)
        definition_note = (f"the mass definition is the radius unit's ({radius_unit!r}; masses in Msun: set "
                           "meta.mass_definition to say otherwise)")
    if definition is None:
        ambiguous = (f"; radius_unit {radius_unit!r} does not say which R_Delta (write e.g. 'R200c' or 'R200m')"
                     if ambiguous_scaled_radius_unit(radius_unit) else "")
        return None, ("self-similar normalisation off: the dataset's meta has no mass_definition such as "
                      f"'M200c [Msun]' (see docs/data_schema.md){ambiguous}; plain log10 profiles are learnt")
    delta, reference, per_h = definition
    z = _redshift(param_names, meta, redshift)
    if z is None:
        return None, ("self-similar normalisation off: the dataset has no redshift (array, meta.redshift or a "
                      "parameter 'z'); plain log10 profiles are learnt")
    z_value, z_param, z_note = z
    om = parameter_index(param_names, "omega_m")
    if om is None:
        return None, ("self-similar normalisation off: no Omega_m parameter (names tried: "
                      f"{list(ALIASES['omega_m'])}); plain log10 profiles are learnt")
    ob, h = parameter_index(param_names, "omega_b"), parameter_index(param_names, "h")
    kinds, log_unit, how, h_pow, z_pow = _kinds(field_names, field_kinds, units, meta)
    if not any(kinds):
        return None, ("self-similar normalisation off: no density, pressure or temperature field ("
                      + "; ".join(how) + "); plain log10 profiles are learnt")
    radius_per_h, comoving = _radius_unit_flags(radius_unit)
    if scaled_radius is not None:
        radius_per_h = comoving = False  # r / R_Δ carries no length unit
    spec = SelfSimilar(
        delta=delta, reference=reference, mass_per_h=per_h, kinds=kinds, log10_unit=tuple(log_unit),
        omega_m=om, omega_b=-1 if ob is None else ob, h=-1 if h is None else h,
        omega_m_value=0.3, omega_b_value=DEFAULT_OMEGA_B, h_value=DEFAULT_H,  # used only when not parameters
        redshift_value=z_value, radius_scaled=scaled_radius is not None, redshift_param=z_param,
        radius_per_h=radius_per_h, radius_comoving=comoving,
        unit_h_power=tuple(h_pow) if any(h_pow) else (), unit_z_power=tuple(z_pow) if any(z_pow) else (),
        radius_delta=scaled_radius if scaled_radius is not None and scaled_radius != (delta, reference) else (),
    )
    if ((params[:, om] <= 0) | (params[:, om] > 1)).any():
        return None, "self-similar normalisation off: Omega_m values outside (0, 1]; plain log10 profiles are learnt"
    if z_param >= 0 and ((params[:, z_param] < 0) | (params[:, z_param] > 20)).any():
        return None, (f"self-similar normalisation off: redshift parameter {param_names[z_param]!r} outside "
                      "[0, 20]; plain log10 profiles are learnt")
    notes = "; ".join(n for n in (definition_note, z_note, "kinds: " + ", ".join(how)) if n)
    return spec, spec.describe(param_names, field_names, units) + "; " + notes
