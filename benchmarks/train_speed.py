"""Training time: the whole ``train_emulator`` with defaults against an ARD GP fit on the same rows.

What is timed
    * ``profemu``: :func:`profemu.runs.training.train_emulator` with the default
      :class:`~profemu.config.Config` (5-fold cross-validation by simulation, one network per
      fold, the five trained as one compiled program; then the 5 members continue those
      networks on every row for 20 epochs in the same program; the extrapolation variance's
      held-out training, on a thread of its own beside the cross-validation; input
      relevance ``auto``), in memory (no run folder), wall
      time of the whole call [s]; its cross-validated median fractional error is reported
      so a faster run cannot hide a worse emulator. Timed twice: the first call of the process
      (compiling its programs) and ``again``, a second call on the same rows (compiled programs
      reused, as in a notebook or a sweep).
    * ``GP``: :class:`profemu.baselines.GPBaseline` (defaults) fitted on the same rows,
      wall time of ``fit`` [s].
    * ``profemu train`` (1,600 TNG rows): the command with its defaults on those rows written
      to a file, twice, each a fresh process timed from start to exit (the run folder with its
      metrics, curves and emulator included); the second loads the compiled programs the first
      kept (the command's compilation cache, :mod:`profemu.cli.cache`).

    The two are run one after the other for each size (interleaved: profemu, GP, next
    size), so a load change of the shared machine hits both; the ratio profemu / GP of
    the same size is the number to read, not the absolute seconds.

Sets
    * CAMELS LH IllustrisTNG ``rho_mean`` (``camels_lh_tng.npz``, mass bins 11-11.5 and
      11.5-12, 6 parameters): 300, 600 and 1,600 rows (whole simulations, seeded choice);
    * ``mock 10,000`` (full mode only): :func:`profemu.data.mock.make_mock_universe`
      ``lh6``, rho; the GP is fitted only where ``GPBaseline`` keeps at most 3,000 rows;
    * ``smoke``: 300 TNG rows with ``train.epochs: 2`` (target <= 10 s);
    * ``mock 600``: the 35-parameter hard mock (:func:`profemu.data.mock.make_hard_mock`,
      seed 0) with ``train.epochs: 2`` (target <= 20 s; it fits the input-relevance GP once).

Targets: 1,600 TNG rows <= 0.3 x the GP's fit time; mock 600 <= 20 s; smoke <= 10 s.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, status

__all__ = ["TARGETS", "markdown", "run"]

TARGETS: dict[str, float] = {"tng1600_ratio": 0.3, "mock600_seconds": 20.0, "smoke_seconds": 10.0}
SHARED = Path(os.environ.get("PROFEMU_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CAMELS = SHARED / "camels_lh_tng.npz"
SB35 = SHARED / "camels_sb35" / "Info_IllustrisTNG_L50n512_35params.csv"
logger = logging.getLogger("profemu.benchmarks.train_speed")


def _note(message: str) -> None:
    print(f"[train_speed] {message}", flush=True)


def _tng(n: int) -> Any:
    """``n`` rows of whole TNG simulations (seeded choice), rho only."""
    from profemu.data.camels import load_camels_lh

    ds = load_camels_lh(CAMELS, fields=("rho",), statistic="mean", mass_bins=("11-11.5", "11.5-12"), verbose=False)
    sims = np.unique(ds.groups)
    np.random.default_rng(0).shuffle(sims)
    rows: list[int] = []
    for sim in sims:
        rows.extend(np.flatnonzero(ds.groups == sim).tolist())
        if len(rows) >= n:
            break
    return ds.subset(np.sort(np.asarray(rows[:n])))


def _hard(n: int) -> Any:
    from profemu.data.mock import make_hard_mock

    return make_hard_mock(n, seed=0, parameter_table=SB35 if SB35.is_file() else None).dataset.select_fields(["rho"])


def _lh6(n: int) -> Any:
    from profemu.data.mock import make_mock_universe

    return make_mock_universe(n=n, seed=0, param_set="lh6", with_pk=False).dataset.select_fields(["rho"])


def _profemu(ds: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Seconds of the whole ``train_emulator`` and its cross-validated median error."""
    from profemu.config import Config
    from profemu.runs.training import train_emulator

    t0 = time.perf_counter()
    result = train_emulator(ds, Config().updated(changes))
    seconds = time.perf_counter() - t0
    cv = result.cross_validation
    median = None if cv is None else float(cv["metrics"]["overall"]["frac_err_median"])
    return {"seconds": seconds, "cv_frac_err_median": median, "fit_seconds": float(result.fit_seconds)}


def _gp(ds: Any) -> dict[str, Any]:
    """Seconds of ``GPBaseline().fit`` on ``ds``."""
    from profemu.baselines import GPBaseline

    t0 = time.perf_counter()
    GPBaseline().fit(ds)
    return {"seconds": time.perf_counter() - t0}


def _command_line_runs(ds: Any, runs: int = 2) -> list[float]:
    """Wall seconds of ``runs`` runs of the ``profemu train`` command (defaults) on ``ds``, one after
    the other, each a fresh process: start, imports, reading the file, the training, the run folder.
    They share a new compilation-cache folder (``PROFEMU_COMPILATION_CACHE``): the first compiles
    and fills it, the later ones load the compiled programs, as a repeated run does."""
    import shutil
    import subprocess
    import tempfile

    from profemu.data.io import save_dataset

    command = shutil.which("profemu")
    if command is None:
        raise RuntimeError("the profemu command is not installed (pip install -e .)")
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        data = save_dataset(ds, Path(tmp) / "rows.npz")
        env = {**os.environ, "PROFEMU_COMPILATION_CACHE": str(Path(tmp) / "cache")}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        for i in range(runs):
            t0 = time.perf_counter()
            subprocess.run([command, "--quiet", "train", "--data", str(data), "--out", str(Path(tmp) / f"run{i}")],
                           env=env, capture_output=True, text=True, check=True, cwd=tmp)
            seconds.append(time.perf_counter() - t0)
    return seconds


def _ensemble_width(ds: Any, widths: tuple[int, ...] = (5, 25), epochs: int = 40) -> dict[str, Any]:
    """Milliseconds per compiled epoch of ``M`` networks trained together on the first CV fold.

    25 networks is what one vmapped program for the 5 folds x 5 members of a cross-validation
    would train at once; if the epoch of 25 costs about 5x the epoch of 5, the hardware is
    already busy and batching the folds saves only their compilations.
    """
    from profemu.config import Config
    from profemu.train.builder import fold_problems
    from profemu.train.loop import fit
    from profemu.train.setup import prepare, training_problem

    cfg = Config().updated({"train.cv_folds": 5})
    fold = fold_problems(prepare(ds, cfg.updated({"data.val_fraction": 0.0})), cfg, 5)[0]
    out: dict[str, Any] = {}
    for m in widths:
        history = fit(training_problem(fold, cfg), members=m, epochs=epochs).history[5:]  # after compiling
        out[str(m)] = 1000.0 * float(np.median([e["seconds"] for e in history]))
    out["ratio"] = out[str(widths[-1])] / out[str(widths[0])]
    out["ideal"] = widths[-1] / widths[0]
    return out


def run(*, quick: bool, out_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Interleaved profemu / GP timings at each size, the smoke run and the 600-row mock.

    Quick and smoke skip the 10,000-row mock; smoke also stops after 300 TNG rows.
    """
    del out_dir
    tng = (300,) if smoke else (1600, 300, 600)  # the size of the target first
    sizes: list[tuple[str, Any, bool]] = [(f"TNG rho {n}", lambda n=n: _tng(n), True) for n in tng]
    if not quick and not smoke:
        sizes.append(("mock lh6 10000", lambda: _lh6(10_000), False))  # GPBaseline keeps <= 3,000 rows
    results: dict[str, Any] = {"quick": quick, "smoke": smoke, "sizes": {}}
    _note("smoke (300 TNG rows, 2 epochs) ...")
    results["smoke_run"] = {"rows": 300, **_profemu(_tng(300), {"train.epochs": 2})}
    _note(f"smoke: {results['smoke_run']}")
    for label, load, with_gp in sizes:
        ds = load()
        _note(f"{label}: profemu train_emulator (defaults) ...")
        entry = {"rows": int(ds.n), "profemu": _profemu(ds, {})}
        _note(f"{label}: profemu train_emulator again (its programs compiled) ...")
        entry["profemu_again"] = _profemu(ds, {})
        if with_gp:
            _note(f"{label}: GP fit ...")
            entry["gp"] = _gp(ds)
            entry["ratio"] = entry["profemu"]["seconds"] / entry["gp"]["seconds"]
            entry["ratio_again"] = entry["profemu_again"]["seconds"] / entry["gp"]["seconds"]
        results["sizes"][label] = entry
        _note(f"{label}: {entry}")
        if label == "TNG rho 1600":
            _note("TNG rho 1600: the profemu train command, twice (compiling, then from the cache) ...")
            entry["command_line"] = _command_line_runs(ds)
            if "gp" in entry:
                entry["command_line_ratios"] = [t / entry["gp"]["seconds"] for t in entry["command_line"]]
            _note(f"command line: {entry['command_line']}")
            _note("ensemble width: one compiled epoch of 5 and of 25 networks ...")
            results["ensemble_width"] = _ensemble_width(ds)
            _note(f"ensemble width: {results['ensemble_width']}")
        if label == "TNG rho 1600" or smoke:
            _note("600-row hard mock (2 epochs) ...")
            results["mock600"] = {"rows": 600, **_profemu(_hard(600), {"train.epochs": 2})}
            _note(f"mock600: {results['mock600']}")
    return results


def markdown(results: dict[str, Any]) -> str:
    """The training-time section of BENCHMARKS.md."""
    lines = ["## Training time: `train_emulator` (defaults) against the ARD GP fit on the same rows", "",
             "Interleaved in one run on a shared machine: compare the ratios, not the seconds. "
             "profemu: 5-fold CV by simulation (one network per fold, the five trained as one compiled "
             "program) + the refit, whose 5 members continue those networks on every row for 20 epochs "
             "(`train.warm_refit_epochs`) in the same program + the extrapolation variance's held-out "
             "training (where `train.extrapolation_variance: auto` fits it).", "",
             "The first call of a process compiles the training programs; `again` is a second call "
             "on the same rows in the same process (a notebook, a sweep, a cross-validated benchmark: the "
             "compiled programs are reused).", "",
             "| set | rows | profemu [s] | again [s] | GP [s] | profemu / GP | again / GP | CV median error "
             "(one network per fold) |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(x: Any, fmt: str = "{:.1f}") -> str:
        return "—" if x is None else fmt.format(x)

    for label, e in results.get("sizes", {}).items():
        med = e["profemu"].get("cv_frac_err_median")
        lines.append(f"| {label} | {e['rows']} | {e['profemu']['seconds']:.1f} | "
                     f"{cell(e.get('profemu_again', {}).get('seconds'))} | {cell(e.get('gp', {}).get('seconds'))} | "
                     f"{cell(e.get('ratio'), '{:.2f}')} | {cell(e.get('ratio_again'), '{:.2f}')} | "
                     f"{cell(None if med is None else 100 * med, '{:.2f}%')} |")
    for key, name, target in (("smoke_run", "smoke: 300 TNG rows, 2 epochs", TARGETS["smoke_seconds"]),
                              ("mock600", "hard mock 600 rows, 2 epochs", TARGETS["mock600_seconds"])):
        if key in results:
            lines.append(f"| {name} | {results[key]['rows']} | {results[key]['seconds']:.1f} | — | — | "
                         f"target <= {target:.0f} s | — | — |")
    lines.append("")
    tng_entry = results.get("sizes", {}).get("TNG rho 1600", {})
    runs, ratios = tng_entry.get("command_line"), tng_entry.get("command_line_ratios")
    if runs and ratios:
        lines += [f"The `profemu train` command on the same 1,600 rows (a fresh process each time, timed from start to "
                  f"exit: imports, reading the file, the training, the run folder with its metrics, curves and "
                  f"emulator): {runs[0]:.1f} s the first time, {ratios[0]:.2f} x the GP's fit above; "
                  f"{runs[-1]:.1f} s when run again, {ratios[-1]:.2f} x, because the command keeps compiled "
                  "programs between runs (JAX's persistent compilation cache in `~/.cache/profemu/jax`; "
                  "`PROFEMU_COMPILATION_CACHE=off` turns it off, a folder path moves it). The GP's time excludes "
                  "its process start and data loading.", ""]
    width = results.get("ensemble_width")
    if width:
        lines += [f"One compiled epoch of 25 networks (the 5 folds x 5 members that one vmapped cross-validation "
                  f"would train together) on the first fold of the 1,600 TNG rows: {width['25']:.0f} ms, against "
                  f"{width['5']:.0f} ms for 5 networks: {width['ratio']:.1f}x for {width['ideal']:.0f}x the work. "
                  "On these cores training is compute-bound: the cost is the number of networks times their "
                  "epochs, so the cross-validation trains one network per fold (`train.cv_members: 1`; the five "
                  "run in the refit's compiled program) instead of an ensemble per fold.", ""]
    tng = results.get("sizes", {}).get("TNG rho 1600", {})
    again = (tng.get("command_line_ratios") or [None])[-1]
    lines.append(f"Target: 1,600 TNG rows <= {TARGETS['tng1600_ratio']} x the GP's fit time: "
                 f"{status(tng.get('ratio'), TARGETS['tng1600_ratio'], higher_is_better=False)} (train_emulator); "
                 f"{status(tng.get('ratio_again'), TARGETS['tng1600_ratio'], higher_is_better=False)} "
                 "(train_emulator again); "
                 f"{status(again, TARGETS['tng1600_ratio'], higher_is_better=False)} (the command run again, "
                 "from start to exit); "
                 f"smoke {status(results.get('smoke_run', {}).get('seconds'), TARGETS['smoke_seconds'], higher_is_better=False)}; "
                 f"mock 600 {status(results.get('mock600', {}).get('seconds'), TARGETS['mock600_seconds'], higher_is_better=False)}.")
    return "\n".join(lines) + "\n"
