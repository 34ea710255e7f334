"""A mock universe of halo gas profiles with a known truth.

:func:`make_mock_universe` builds a :class:`~profemu.data.dataset.ProfileDataset`
shaped like the CAMELS tables (parameters sampled per *simulation* on a Latin
hypercube, several halo-mass bins per simulation, ``groups`` = simulation id)
together with the noiseless profiles it was drawn from, so an emulator can be
scored against the truth instead of against noise.

Physical model (all radii physical, flat ΛCDM, masses M200c in Msun, no h):

* Critical density ``rho_crit(z) = 2.77536627e11 h^2 E(z)^2`` [Msun Mpc^-3] with
  ``E(z)^2 = Omega_m (1+z)^3 + 1 - Omega_m``; ``R200c = (3 M200c / (4 pi 200
  rho_crit(z)))^(1/3)`` [Mpc]. Profiles live on a fixed grid ``x = r / R200c``.
* Thermal pressure: the generalised NFW fit of Battaglia et al. 2012 (ApJ 758,
  75; Table 1, "AGN feedback", Δ = 200)::

      P / P200c = P0 (x/xc)^gamma [1 + (x/xc)^alpha]^(-beta),  gamma = -0.3, alpha = 1
      A(M, z)   = A0 (M200c / 1e14 Msun)^alpha_m (1+z)^alpha_z
      P0:   A0 = 18.1,   alpha_m = 0.154,    alpha_z = -0.758
      xc:   A0 = 0.497,  alpha_m = -0.00865, alpha_z = 0.731
      beta: A0 = 4.35,   alpha_m = 0.0393,   alpha_z = 0.415

  with ``P200c = G M200c 200 rho_crit(z) f_b / (2 R200c)`` (``f_b = Omega_b /
  Omega_m``; self-similar, ∝ M^(2/3) E(z)^(8/3)), in keV cm^-3. Feedback
  rescales ``P0`` by ``q^0.8`` and ``xc`` by ``q^-0.5``, where ``q`` is the gas
  fraction relative to the fiducial model (below): stronger feedback lowers the
  inner pressure and widens the core, most at low mass. At fiducial parameters
  (every feedback factor = 1, ``sigma_8 = 0.8``) the pressure is Battaglia's fit.
* Gas density (baryon-correction-model style, Schneider & Teyssier 2015, JCAP
  12, 049): the gas fraction inside R200c is ``f_gas = f_b / (1 + (M_c /
  M200c)^beta_bcm)`` with ``log10 M_c`` and ``beta_bcm`` rising with the feedback
  strengths (fiducial ``log10 M_c = 13.2``, ``beta_bcm = 0.6``; ``log10 M_c`` moves by
  ``MockParameter.log10_mc`` per dex of each parameter, ``beta_bcm`` by 0.1 per dex of
  ``A_SN1`` and of ``A_SN2``). The halo gas follows ``rho_h ∝ (x/x_s)^-g (1 + x/x_s)^-(3-g)``,
  normalised so that the gas mass inside R200c (halo term plus background) is
  ``f_gas M200c``, on top of the mean cosmic baryon density ``Omega_b
  rho_crit0 (1+z)^3`` that it tends to far out; in Msun kpc^-3. Monotonically
  decreasing.
* Temperature ``T = P mu m_p / (rho k_B)`` with ``mu = 0.59``, in K: it rises
  in the core (the gas density is steeper than the pressure there) and falls
  outside, so it is not monotonic.
* Matter power suppression ``P_hydro/P_dmo(k) = 1 - A S(k) [1 - B R(k)]`` with
  sigmoids ``S = 1/(1 + (k_s/k)^2)``, ``R = 1/(1 + (k_r/k)^2)``, on 79 bins
  log-spaced in [0.01, 20] h/Mpc. The amplitude ``A`` grows with the gas
  fraction expelled from 10^13.5 Msun groups (the same ``M_c`` that lowers
  ``f_gas``), ``k_s`` falls as gas is pushed further out, and the ``B`` term is
  a partial recovery at high k; ``P_hydro/P_dmo -> 1`` at low k. Noiseless.
* Noise: every profile element is multiplied by ``10^(noise_dex N(0, 1))``
  (log-normal); ``dataset.noise[field] = noise_dex``; ``truth`` is noiseless.

Parameters: ``"sb35"`` has 35 named parameters like the CAMELS SB sets
(cosmology, the four CAMELS feedback amplitudes, and 26 further IllustrisTNG-like
physics parameters, a few with weak effects and most with none); ``"lh6"`` has
the six CAMELS LH parameters (Omega_b, h, n_s fixed to the CAMELS values) and no
P(k). Which parameters act is listed in :data:`MOCK_PARAMETERS`.

**Hard regime** (:func:`make_hard_mock`): a suite like the CAMELS SB35 single-halo
(zoom-in) sets that a neural emulator finds hardest. The 35 parameters take the names,
ranges and log flags of the CAMELS SB35 "Info" table when its path is given
(:func:`read_camels_parameter_table`; e.g. ``../shared/data/camels_sb35/``), else of
:data:`MOCK_PARAMETERS`; parameters are found by role through
:data:`PARAMETER_ALIASES` (``Omega0``/``Omega_m``, ``OmegaBaryon``/``Omega_b``,
``HubbleParam``/``h``, ...). Only Omega_m, sigma_8, three feedback parameters (with
interactions) and two weak ones act, plus Omega_b and h through the self-similar physics
(:data:`HARD_ROLES`); the other 26 are inert. One halo per row (log10 M200c in 11.5-14),
profiles on *physical* radii (0.01-2 Mpc, 30 bins), log-normal halo-to-halo scatter of
0.2-0.4 dex that grows towards the core and the outskirts, partly shared across radii
and between rho and pth (:func:`hard_mock_scatter`), recorded in ``dataset.noise``.
"""

from __future__ import annotations

from profemu.data.mock.hard import hard_mock_scatter, hard_mock_truth, make_hard_mock
from profemu.data.mock.parameters import (
    HARD_ROLES,
    MOCK_PARAMETERS,
    PARAM_SETS,
    PARAMETER_ALIASES,
    SB35_INFO_FILENAME,
    MockParameter,
    read_camels_parameter_table,
)
from profemu.data.mock.universe import DEFAULT_K as DEFAULT_K
from profemu.data.mock.universe import FIELD_UNITS as FIELD_UNITS
from profemu.data.mock.universe import (
    MockUniverse,
    make_mock_snapshots,
    make_mock_universe,
    mock_pk_ratio,
    mock_truth,
    write_mock,
)
from profemu.physics.cosmology import rho_crit
from profemu.physics.halo import (
    battaglia_parameters,
    gas_fraction,
    gnfw_pressure,
    mean_baryon_density,
    p200c,
    r200c,
)

__all__ = [
    "HARD_ROLES",
    "MOCK_PARAMETERS",
    "PARAMETER_ALIASES",
    "PARAM_SETS",
    "SB35_INFO_FILENAME",
    "MockParameter",
    "MockUniverse",
    "battaglia_parameters",
    "gas_fraction",
    "gnfw_pressure",
    "hard_mock_scatter",
    "hard_mock_truth",
    "make_hard_mock",
    "make_mock_snapshots",
    "make_mock_universe",
    "mean_baryon_density",
    "mock_pk_ratio",
    "mock_truth",
    "p200c",
    "r200c",
    "read_camels_parameter_table",
    "rho_crit",
    "write_mock",
]
