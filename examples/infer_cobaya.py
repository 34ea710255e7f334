"""A short Cobaya MCMC with profemu's Theory and likelihood (needs ``pip install "profemu[cobaya]"``).

    python examples/infer_cobaya.py RUN OBS.csv LOG10_MASS

RUN is a run folder from ``profemu train`` (fields rho and pth); OBS.csv is an
observation in the ``profemu infer`` format. Omega_m and sigma_8 are sampled, the
other parameters are held at the centre of the training box.
"""

from __future__ import annotations

import sys

import numpy as np
from cobaya.run import run

from profemu import Emulator
from profemu.inference.cobaya_theory import ProfemuProfileLikelihood, ProfemuTheory


def main(run_dir: str, observed: str, log10_mass: float) -> None:
    emu = Emulator.load(f"{run_dir}/emulator")
    box = emu.training_box
    free = ("Omega_m", "sigma_8")
    fixed = {n: float(np.mean(box[n])) for n in emu.param_names if n not in free}
    info = {
        "theory": {"profemu": {"external": ProfemuTheory, "emulator": f"{run_dir}/emulator", "fixed": fixed}},
        "likelihood": {"profiles": {"external": ProfemuProfileLikelihood, "observed": observed,
                                    "log10_mass": log10_mass}},
        "params": {n: {"prior": {"min": box[n][0], "max": box[n][1]},
                       "proposal": 0.02 * (box[n][1] - box[n][0])} for n in free},
        "sampler": {"mcmc": {"max_samples": 3000, "Rminus1_stop": 0.02}},
    }
    _, sampler = run(info)
    chain = sampler.products()["sample"]
    w = np.asarray(chain["weight"], dtype=float)
    for n in free:
        x = np.asarray(chain[n], dtype=float)
        mean = np.average(x, weights=w)
        print(f"{n}: {mean:.4g} +- {np.sqrt(np.average((x - mean) ** 2, weights=w)):.3g}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
