"""Physics-informed neural emulator of halo profiles, end to end, through the Python API.

Run it with ``python examples/physics_neural_demo.py [OUT_DIR]`` (default
``profemu_demo``). It takes one to two minutes on a laptop CPU and writes
``OUT_DIR/run/report.html``. Copy this file and edit the marked places to use
your own data or settings; ``profemu demo`` runs the same steps from the shell.

Steps:

1. data: a mock CAMELS-like universe (35 parameters, P(k) suppression, three
   fields with a known noiseless truth and 0.02 dex noise);
2. config: a ``PhysicsInformedCore`` ensemble with soft physics losses;
3. train: split by simulation, fit transforms on the training rows, train the
   ensemble, calibrate its variance on the validation rows;
4. evaluate on the held-out simulations, against the noisy data and the truth;
5. compare with the PCA+GP and PCA+RBF baselines;
6. write the HTML report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from profemu.baselines import PCAGPBaseline, PCARBFBaseline
from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.metrics import evaluate_predictions, predict_dataset, write_metrics
from profemu.runs.compare import compare, format_table
from profemu.runs.report import write_report
from profemu.runs.training import DataSource, train_emulator

out = Path(sys.argv[1] if len(sys.argv) > 1 else "profemu_demo")
out.mkdir(parents=True, exist_ok=True)

# 1. Data ------------------------------------------------------------------------
# Replace these lines with `dataset = profemu.data.io.load_dataset("my_profiles.npz")`
# to train on your own profiles.
universe = make_mock_universe(3000, seed=0, noise_dex=0.02)
data_file = universe.dataset.save(out / "data.npz")
dataset = universe.dataset.select_fields(["rho", "pth"])
print(dataset.summary())

# 2. Configuration -------------------------------------------------------------------
# Any key of profemu.config.Config can be set here (or in a YAML file read with
# Config.from_yaml); unknown keys and out-of-range values raise ConfigError.
config = Config().updated({
    "data.fields": ["rho", "pth"],
    "model.kind": "physics",              # PhysicsInformedCore: mass scaling, attention, P(k)
    "model.hidden": [128, 128],
    "model.embed_dim": 16,
    "model.attention_heads": 2,
    "loss.likelihood": "nll",             # Gaussian NLL: learns the aleatoric variance
    "loss.physics.monotonic_weight": 1.0,  # density and pressure fall with radius ...
    "loss.physics.monotonic_fields": ["rho", "pth"],
    "loss.physics.smoothness_weight": 0.1,  # ... smoothly
    "train.members": 5,                   # deep ensemble: epistemic uncertainty
    "train.epochs": 60,
    "train.batch_size": 128,
    "train.patience": 20,
    "optim.learning_rate": 3e-3,
    "optim.warmup_epochs": 3,
})

# 3. Train --------------------------------------------------------------------------
run_dir = out / "run"


def show(entry: dict) -> None:
    if (entry["epoch"] + 1) % 10 == 0:
        print(f"epoch {entry['epoch'] + 1}: train {entry['train_loss']:.4f}  val {entry['val_loss']:.4f}")


outcome = train_emulator(
    dataset, config, run_dir=run_dir, source=DataSource(str(data_file.resolve()), "profemu"), progress=show
)
emulator = outcome.emulator
print(f"{emulator} trained in {outcome.fit_seconds:.0f} s")

# 4. Evaluate -----------------------------------------------------------------------
test = outcome.prepared.test
pred = predict_dataset(emulator, test)
held_out = evaluate_predictions(pred, test)
test_rows = outcome.prepared.split.test
truth = {f: universe.truth[f][test_rows] for f in pred}  # only a mock universe has this
print("held-out median fractional error:",
      {f: f"{100 * m['frac_err_median']:.2f}%" for f, m in held_out["fields"].items()})
for f, (mean, _) in pred.items():
    err_vs_truth = np.median(np.abs(10 ** (mean - np.log10(truth[f])) - 1))
    print(f"  {f}: median error against the noiseless truth {100 * err_vs_truth:.2f}%")
write_metrics(held_out, run_dir / "evaluation.json")

# 5. Compare with the classic baselines ------------------------------------------------
# An exact GP costs O(N^3) and, with 115 inputs (parameters, mass, P(k)), minutes at
# N = 500: it is fitted on a random subset of 200 training rows here.
rows = compare(
    emulator,
    [PCAGPBaseline(max_train=200), PCARBFBaseline()],
    outcome.prepared.train,
    test,
    emulator_fit_seconds=outcome.fit_seconds,
)
table = format_table(rows)
(run_dir / "compare.md").write_text(table + "\n")
write_metrics({"rows": rows}, run_dir / "compare.json")  # read by the report
print(table)

# 6. Report -------------------------------------------------------------------------
report = write_report(run_dir, dataset=dataset)
print(f"report: {report}")

# The saved emulator predicts with numpy alone:
#   from profemu.emulator import Emulator
#   emu = Emulator.load(run_dir / "emulator")
#   p = emu.predict(params, log10_mass, pk_ratio)["pth"]   # p.mean, p.var, p.epistemic
