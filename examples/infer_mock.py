"""From a trained emulator to a posterior on the mock universe (a few minutes on 2 cores).

    python examples/infer_mock.py [--out runs/infer_mock]

1. trains a small emulator on a mock universe (6 parameters, rho and pth);
2. estimates its cross-validated model-error covariance and stores it with the emulator;
3. observes the 4 mass bins of one held-out mock simulation with its known noise;
4. fits the MAP point, samples the posterior with NUTS, computes the Fisher matrix;
5. writes the posterior's samples, summary and a corner plot.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from profemu import Config
from profemu import inference as inf
from profemu.data.mock import make_mock_universe
from profemu.inference.plots import corner_plot
from profemu.runs.training import train_emulator
from profemu.train.cv import fit_residual_covariance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/infer_mock"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("profemu.train").setLevel(logging.WARNING)

    data = make_mock_universe(n=1200, seed=0, param_set="lh6", n_r=12).dataset.select_fields(("rho", "pth"))
    cfg = Config().updated({"train.members": 3, "train.epochs": 150, "data.fields": ["rho", "pth"]})
    out = train_emulator(data, cfg, run_dir=args.out / "run")
    emu = out.emulator

    # model-error covariance between fields, radii and mass bins, from 3-fold CV by simulation
    train = data.subset(out.prepared.split.train)
    inf.attach_residual_covariance(emu, fit_residual_covariance(train, cfg, k=3))
    emu.save(args.out / "run" / "emulator")

    sim = int(data.groups[out.prepared.split.test[0]])
    rows = np.flatnonzero(data.groups == sim)
    obs = inf.Observation.from_dataset(data, rows, ("rho", "pth"))     # 4 bins x 2 fields x 12 radii
    post = inf.make_log_posterior(emu, obs)                             # residual covariance is used
    start = inf.find_map(post)
    samples = inf.sample_posterior(post, chains=4, warmup=500, draws=500)  # random starts per chain
    fisher = inf.fisher_matrix(post, start.theta)

    truth = dict(zip(data.param_names, data.params[rows[0]], strict=True))
    print(f"{'parameter':>10} {'truth':>8} {'MAP':>8} {'median':>8} {'68% interval':>20} {'Fisher 1σ':>10}")
    summary = samples.summary()
    for j, name in enumerate(post.names):
        s = summary[name]
        print(f"{name:>10} {truth[name]:8.3g} {start.values[name]:8.3g} {s['q50']:8.3g} "
              f"{s['q16']:9.3g}–{s['q84']:<9.3g} {fisher.errors_physical[j]:10.3g}")
    args.out.mkdir(parents=True, exist_ok=True)
    samples.to_csv(args.out / "samples.csv")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    labels = [f"log10 {n}" if lg else n for n, lg in zip(post.names, post.space.is_log, strict=True)]
    corner_plot(samples.flat, labels, args.out / "corner.png", truths=post.space.to_sampling(truth))
    print(f"wrote {args.out / 'samples.csv'}, {args.out / 'summary.json'}, {args.out / 'corner.png'}")


if __name__ == "__main__":
    main()
