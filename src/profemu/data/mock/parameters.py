"""The parameters of the mock universes: the built-in list, the physical roles, the CAMELS table.

:data:`MOCK_PARAMETERS` holds 35 CAMELS-like parameters (prior box, fiducial value, and how
strongly each moves the baryon-correction mass ``M_c``); :data:`PARAM_SETS` picks the
``"sb35"`` and ``"lh6"`` column sets. The hard regime finds parameters by physical role
(:data:`PARAMETER_ALIASES`, :data:`HARD_ROLES`), whether they come from the built-in list
or from a CAMELS SB35 "Info" table (:func:`read_camels_parameter_table`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profemu.errors import FormatError

__all__ = [
    "HARD_ROLES",
    "MOCK_PARAMETERS",
    "PARAMETER_ALIASES",
    "PARAM_SETS",
    "SB35_INFO_FILENAME",
    "MockParameter",
    "read_camels_parameter_table",
]


@dataclass(frozen=True)
class MockParameter:
    """One parameter of the mock universe.

    Attributes:
        name: Parameter name (CAMELS-like).
        lo: Lower bound of the prior box.
        hi: Upper bound of the prior box.
        is_log: Sampled uniformly in log10 (declared in ``log_params``).
        fiducial: Value at which its effect vanishes (the fiducial model).
        log10_mc: d log10 M_c / d log10(value / fiducial) (log params) or per unit
            of (value - fiducial) / (hi - lo) (linear params); 0 for no effect.
        role: ``"cosmology"``, ``"feedback"``, ``"weak"`` (small effect through
            M_c) or ``"nuisance"`` (no effect at all).
    """

    name: str
    lo: float
    hi: float
    is_log: bool
    fiducial: float
    log10_mc: float = 0.0
    role: str = "nuisance"


def _p(name: str, lo: float, hi: float, is_log: bool, fid: float, mc: float = 0.0,
       role: str = "nuisance") -> MockParameter:
    """A :class:`MockParameter` in one line of :data:`MOCK_PARAMETERS`."""
    return MockParameter(name, lo, hi, is_log, fid, mc, role)


MOCK_PARAMETERS: tuple[MockParameter, ...] = (
    # cosmology (act through rho_crit, R200c, P200c, f_b and halo concentration)
    _p("Omega_m", 0.1, 0.5, False, 0.3, role="cosmology"),
    _p("sigma_8", 0.6, 1.0, False, 0.8, role="cosmology"),
    # CAMELS feedback amplitudes (TNG: WindEnergyIn1e51erg, RadioFeedbackFactor,
    # VariableWindVelFactor, RadioFeedbackReiorientationFactor)
    _p("A_SN1", 0.25, 4.0, True, 1.0, 0.25, "feedback"),  # SN wind energy per unit SFR
    _p("A_AGN1", 0.25, 4.0, True, 1.0, 0.45, "feedback"),  # AGN kinetic energy
    _p("A_SN2", 0.5, 2.0, True, 1.0, 0.35, "feedback"),  # SN wind speed
    _p("A_AGN2", 0.5, 2.0, True, 1.0, 0.30, "feedback"),  # AGN burstiness / ejection speed
    _p("Omega_b", 0.029, 0.069, False, 0.049, role="cosmology"),
    _p("h", 0.47, 0.87, False, 0.6711, role="cosmology"),
    _p("n_s", 0.8, 1.2, False, 0.9624, role="cosmology"),
    # further galaxy-formation parameters; a few act weakly through M_c
    _p("MaxSfrTimescale", 1.135, 4.54, True, 2.27, -0.02, "weak"),
    _p("FactorForSofterEQS", 0.1, 0.9, True, 0.3),
    _p("IMFslope", -2.8, -1.8, False, -2.3),
    _p("SNII_MinMass_Msun", 4.0, 12.0, False, 8.0),
    _p("ThermalWindFraction", 0.025, 0.4, True, 0.1),
    _p("VariableWindSpecMomentum", 0.0, 4000.0, False, 0.0),
    _p("WindFreeTravelDensFac", 0.005, 0.5, True, 0.05),
    _p("MinWindVel", 150.0, 550.0, False, 350.0),
    _p("WindEnergyReductionFactor", 0.0625, 1.0, True, 0.25, 0.03, "weak"),
    _p("WindEnergyReductionMetallicity", 0.0005, 0.008, True, 0.002),
    _p("WindEnergyReductionExponent", 1.0, 4.0, False, 2.0),
    _p("WindDumpFactor", 0.2, 1.0, False, 0.6),
    _p("SeedBlackHoleMass", 2.0e5, 3.2e6, True, 8.0e5),  # Msun/h
    _p("BlackHoleAccretionFactor", 0.25, 4.0, True, 1.0),
    _p("BlackHoleEddingtonFactor", 0.1, 10.0, True, 1.0),
    _p("BlackHoleFeedbackFactor", 0.025, 0.4, True, 0.1, 0.03, "weak"),
    _p("BlackHoleRadiativeEfficiency", 0.05, 0.8, True, 0.2),
    _p("QuasarThreshold", 2.0e-5, 0.2, True, 0.002, 0.01, "weak"),
    _p("QuasarThresholdPower", 0.0, 4.0, False, 2.0),
    _p("SNIaNormalisation", 0.5, 2.0, True, 1.0),
    _p("StellarMassLossFactor", 0.5, 2.0, True, 1.0),
    _p("UVBackgroundFactor", 0.5, 2.0, True, 1.0),
    _p("ReionizationRedshift", 6.0, 10.0, False, 7.5),
    _p("MetalCoolingFactor", 0.5, 2.0, True, 1.0),
    _p("SelfShieldingFactor", 0.5, 2.0, True, 1.0),
    _p("BlackHoleSeedHaloMass", 2.5e10, 2.0e11, True, 7.0e10),  # Msun/h
)
"""Every mock parameter with its prior box, fiducial value and effect."""

_BY_NAME: dict[str, MockParameter] = {p.name: p for p in MOCK_PARAMETERS}
PARAM_SETS: dict[str, tuple[str, ...]] = {
    "sb35": tuple(p.name for p in MOCK_PARAMETERS),
    "lh6": ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2"),
}
"""Parameter names (in column order) of each parameter set."""


PARAMETER_ALIASES: dict[str, tuple[str, ...]] = {
    "omega_m": ("Omega0", "Omega_m", "OmegaMatter"),
    "sigma_8": ("sigma8", "sigma_8"),
    "omega_b": ("OmegaBaryon", "Omega_b"),
    "h": ("HubbleParam", "h"),
    "sn_energy": ("WindEnergyIn1e51erg", "A_SN1"),
    "agn_kinetic": ("RadioFeedbackFactor", "A_AGN1"),
    "sn_speed": ("VariableWindVelFactor", "A_SN2"),
    "agn_quasar": ("BlackHoleFeedbackFactor",),
    "agn_burst": ("RadioFeedbackReorientationFactor", "RadioFeedbackReiorientationFactor", "A_AGN2"),
}
"""Physical role -> the parameter names it goes by (CAMELS SB tables first, then the
built-in names), as :func:`hard_mock_truth` looks them up."""

HARD_ROLES: dict[str, str] = {
    "omega_m": "cosmology: rho_crit(z), R200c, f_b = Omega_b/Omega_m",
    "sigma_8": "cosmology: gas and pressure concentration (mass dependent)",
    "omega_b": "cosmology: f_b = Omega_b/Omega_m and the background density (self-similar only)",
    "h": "cosmology: rho_crit(z) = 2.775e11 h^2 E(z)^2 and R200c (self-similar only)",
    "sn_energy": "feedback: log10 M_c +0.30 per unit u, steeper mass dependence, "
                 "interacts with AGN and wind speed",
    "agn_kinetic": "feedback: log10 M_c +0.50 per unit u (interacts with SN energy), "
                   "steeper outer pressure",
    "sn_speed": "feedback: log10 M_c +0.20 per unit u, steeper mass dependence",
    "agn_quasar": "weak: log10 M_c +0.02 per unit u",
    "agn_burst": "weak: gas scale radius x (1 + 0.015 u)",
}
"""What each role of the hard mock does (``u`` = the parameter's offset from its fiducial
value in units of half its prior range, in log10 for log parameters: -1 .. 1). Every
parameter without a role is inert: it changes nothing."""

SB35_INFO_FILENAME = "Info_IllustrisTNG_L50n512_35params.csv"
"""Name of the CAMELS SB35 (IllustrisTNG) parameter table that :func:`make_hard_mock` reads."""

_INFO_COLUMNS = ("ParamName", "LogFlag", "FiducialVal", "MinVal", "MaxVal")


def read_camels_parameter_table(path: str | Path) -> tuple[MockParameter, ...]:
    """Read a CAMELS parameter "Info" table (e.g. ``Info_IllustrisTNG_L50n512_35params.csv``).

    The CSV has a header line naming at least ``ParamName``, ``LogFlag`` (1 = sampled
    uniformly in log), ``FiducialVal``, ``MinVal`` and ``MaxVal``, then one parameter per
    line (further columns such as ``Description`` are ignored; the description may
    contain commas).

    Args:
        path: The CSV file, or a folder holding exactly one ``Info_*.csv``.

    Returns:
        One :class:`MockParameter` per line, in file order (``role`` from
        :data:`PARAMETER_ALIASES` / :data:`HARD_ROLES`: ``"cosmology"``, ``"feedback"``,
        ``"weak"`` or ``"nuisance"``; ``log10_mc`` 0).

    Raises:
        FormatError: missing file or column, a non-numeric value, ``MinVal >= MaxVal``, a log
            parameter with ``MinVal <= 0``, or a duplicate name (the message names the line).
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("Info_*.csv"))
        if len(found) != 1:
            raise FormatError(f"parameter_table: {path} holds {len(found)} Info_*.csv files; "
                              "pass the path of the one to use.")
        path = found[0]
    if not path.is_file():
        raise FormatError(f"parameter_table: {path} not found; pass the CAMELS Info_*.csv file.")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise FormatError(f"parameter_table: {path} is empty.")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in _INFO_COLUMNS if c not in header]
    if missing:
        raise FormatError(f"parameter_table: {path.name} lacks column(s) {missing}; found {header}.")
    col = {c: header.index(c) for c in _INFO_COLUMNS}
    role_of = {name: role for role, names in PARAMETER_ALIASES.items() for name in names}
    out: list[MockParameter] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(col.values()):
            raise FormatError(f"parameter_table: {path.name} line {line_no} has {len(row)} fields; "
                              f"expected at least {max(col.values()) + 1}.")
        name = row[col["ParamName"]].strip()
        try:
            flag, fid, lo, hi = (float(row[col[c]]) for c in _INFO_COLUMNS[1:])
        except ValueError:
            raise FormatError(f"parameter_table: {path.name} line {line_no} ({name}): LogFlag, "
                              "FiducialVal, MinVal and MaxVal must be numbers.") from None
        is_log = flag == 1
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi) or (is_log and lo <= 0):
            raise FormatError(f"parameter_table: {path.name} line {line_no} ({name}): range "
                              f"[{lo}, {hi}] is not valid" + (" for a log parameter" if is_log else "")
                              + "; need MinVal < MaxVal (and MinVal > 0 when LogFlag = 1).")
        if any(p.name == name for p in out) or not name:
            raise FormatError(f"parameter_table: {path.name} line {line_no}: empty or duplicate "
                              f"name {name!r}.")
        role = role_of.get(name)
        kind = "nuisance" if role is None else HARD_ROLES[role].split(":")[0]
        out.append(MockParameter(name, lo, hi, is_log, fid, 0.0, kind))
    if not out:
        raise FormatError(f"parameter_table: {path.name} lists no parameter.")
    return tuple(out)
