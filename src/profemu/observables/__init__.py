"""Observables: the forward model from a 3D halo gas profile to stacked CAP kSZ/tSZ profiles.

3D profile (ρ [g cm⁻³] or P [erg cm⁻³] vs physical Mpc) → line-of-sight projection →
kSZ/tSZ signal → beam (and tSZ band response) → compensated aperture photometry (CAP) in
μK arcmin², as measured by ACT DR5 × BOSS CMASS (Schaan et al. 2021). Pure numpy for numpy
inputs; JAX inputs give JAX outputs (jit, grad, vmap). See ``docs/observables.md``.

Modules: :mod:`~profemu.observables.projection`, :mod:`~profemu.observables.beam`,
:mod:`~profemu.observables.cap`, :mod:`~profemu.observables.units`,
:mod:`~profemu.observables.forward`, :mod:`~profemu.observables.act`,
:mod:`~profemu.observables.population` (an Emulator's profiles averaged over a halo mass
distribution, with the emulator's uncertainty, to CAP values).
"""

from __future__ import annotations

from profemu.observables.act import (
    ACTCMASSData,
    CAPMeasurement,
    DustTemplate,
    HaloMassDistribution,
    HarmonicTable,
    TwoHaloTable,
    load_act_cmass,
    read_beam,
    read_cap_file,
    read_cap_measurement,
    read_dust_template,
    read_halo_mass_distribution,
    read_response,
    read_two_halo,
    write_cap_file,
)
from profemu.observables.forward import (
    AngularFilter,
    ForwardModel,
    build_angular_filter,
    cap_from_profile,
    cap_matrix,
)
from profemu.observables.population import (
    ObservablePrediction,
    PopulationModel,
    field_to_cgs,
    mass_report,
    radius_to_mpc,
)
from profemu.observables.projection import (
    extend_profile,
    log_radial_grid,
    project,
    projection_matrix,
    two_halo_on_grid,
)
from profemu.observables.units import (
    SR_TO_ARCMIN2,
    arcmin2_to_sr,
    ksz_muk_per_g_cm2,
    sr_to_arcmin2,
    tsz_response_nonrelativistic,
    tsz_y_per_erg_cm2,
)

__all__ = [
    "SR_TO_ARCMIN2",
    "ACTCMASSData",
    "AngularFilter",
    "CAPMeasurement",
    "DustTemplate",
    "ForwardModel",
    "HaloMassDistribution",
    "HarmonicTable",
    "ObservablePrediction",
    "PopulationModel",
    "TwoHaloTable",
    "arcmin2_to_sr",
    "build_angular_filter",
    "cap_from_profile",
    "cap_matrix",
    "extend_profile",
    "field_to_cgs",
    "ksz_muk_per_g_cm2",
    "load_act_cmass",
    "log_radial_grid",
    "mass_report",
    "project",
    "projection_matrix",
    "radius_to_mpc",
    "read_beam",
    "read_cap_file",
    "read_cap_measurement",
    "read_dust_template",
    "read_halo_mass_distribution",
    "read_response",
    "read_two_halo",
    "sr_to_arcmin2",
    "tsz_response_nonrelativistic",
    "tsz_y_per_erg_cm2",
    "two_halo_on_grid",
    "write_cap_file",
]
