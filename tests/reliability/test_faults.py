"""Fault injection: NaN data, exploding steps, crashing members, SIGKILL mid-write, full disks.

Training runs use the 300-row lh6 mock universe and a tiny 2-member MLP. The NaN
tests share one compiled setup (same model, transforms and configuration), so they
compile once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profemu.data.dataset import ProfileDataset
from profemu.data.transforms import Transforms
from profemu.emulator import Emulator
from profemu.errors import ExtrapolationError, TrainingError
from profemu.runs import cluster
from profemu.runs.folder import DataSource
from profemu.train.checkpoint import load_latest
from profemu.train.loop import fit
from profemu.train.setup import prepare, training_problem
from tests.reliability import TinyRun, tiny_config, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


def finite_tree(tree: Any) -> bool:
    return all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(tree))


# --------------------------------------------------------------------------- NaN data
@dataclasses.dataclass
class Setup:
    """One training set-up (the problem of a prepared split), fitted on other arrays."""

    problem: Any
    transforms: Transforms
    cfg: Any

    def fit(self, train: Any, val: Any) -> Any:
        return fit(dataclasses.replace(self.problem, train=train, val=val))

    def emulator(self, params: Any) -> Emulator:
        return Emulator(self.transforms, self.cfg.model, params)


def _poison(ds: ProfileDataset, rows: np.ndarray, cols: np.ndarray, values: dict[str, float],
            explicit_mask: bool) -> ProfileDataset:
    """Replace profile entries; without ``explicit_mask`` the dataset masks them itself."""
    profiles, mask = {}, {}
    for f in ds.fields:
        arr = np.array(ds.profiles[f])
        arr[rows, cols] = values[f]
        profiles[f] = arr
        m = np.array(ds.mask[f])
        m[rows, cols] = False
        mask[f] = m
    return ProfileDataset(
        params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass, radius=ds.radius,
        profiles=profiles, units=ds.units, radius_unit=ds.radius_unit, log_params=ds.log_params,
        mask=mask if explicit_mask else None, redshift=ds.redshift, groups=ds.groups,
        noise=ds.noise, meta=ds.meta,
    )


@pytest.fixture(scope="module")
def nan_data(run: TinyRun) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    ds = run.dataset.select_fields(["rho", "pth"])
    rows = rng.choice(ds.n, size=60, replace=False)
    cols = rng.integers(0, ds.n_r, size=60)
    # NaN, inf and negative values are invalid in log10: the dataset masks them itself
    poisoned = _poison(ds, rows, cols, {"rho": np.nan, "pth": -np.inf}, explicit_mask=False)
    # the same entries set to arbitrary valid values and masked by the user
    garbage = _poison(ds, rows, cols, {"rho": 1e30, "pth": 1e-30}, explicit_mask=True)
    cfg = tiny_config()
    prep = prepare(poisoned, cfg)
    setup = Setup(training_problem(prep, cfg), prep.transforms, cfg)
    return {"poisoned": poisoned, "garbage": garbage, "prep": prep, "setup": setup}


def test_masked_nan_and_inf_never_propagate(nan_data: dict[str, Any]) -> None:
    poisoned, garbage, prep, setup = (nan_data[k] for k in ("poisoned", "garbage", "prep", "setup"))
    assert not all(m.all() for m in poisoned.mask.values())
    for f in poisoned.fields:
        np.testing.assert_array_equal(poisoned.mask[f], garbage.mask[f])
    # the statistics ignore masked entries, whatever their value
    other = Transforms.fit(garbage.subset(prep.split.train), setup.cfg.data)
    assert json.dumps(other.to_dict()) == json.dumps(setup.transforms.to_dict())

    t = setup.transforms
    arrays = {}
    for name, ds in (("poisoned", poisoned), ("garbage", garbage)):
        train = t.transform(ds.subset(prep.split.train))
        assert np.all(np.isfinite(train.target))
        arrays[name] = train
    # bypass the transform's zeroing too: NaN/inf targets and noise under mask 0 reach the loop
    raw = arrays["poisoned"]
    hidden = raw.mask == 0
    raw = dataclasses.replace(raw, target=np.where(hidden, np.nan, raw.target).astype(np.float32),
                              noise_var=np.where(hidden, np.inf, raw.noise_var).astype(np.float32))
    val = t.transform(poisoned.subset(prep.split.val))
    a = setup.fit(raw, val)
    b = setup.fit(arrays["garbage"], val)
    assert a.counters["skipped_steps"] == [0, 0] and a.counters["rollbacks"] == [0, 0]
    assert b.counters["compilations"] == 0  # same setup: compiled once
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    test = poisoned.subset(prep.split.test)
    pred = setup.emulator(a.params).predict(test.params, test.log10_mass, redshift=test.redshift,
                                               on_extrapolation="ignore")
    assert all(np.isfinite(p.mean).all() and np.isfinite(p.var).all() for p in pred.values())


def test_nan_in_unmasked_training_arrays_skips_steps(nan_data: dict[str, Any]) -> None:
    prep, setup = nan_data["prep"], nan_data["setup"]
    t = setup.transforms
    train = t.transform(prep.train)
    val = t.transform(prep.val)
    row = int(np.flatnonzero(train.mask.all(axis=1))[0])
    target, noise_var = train.target.copy(), train.noise_var.copy()
    target[row, 3] = np.nan  # an entry the mask says is valid: the dataset check is bypassed
    noise_var[row, 5] = np.inf
    bad = dataclasses.replace(train, target=target, noise_var=noise_var)
    result = setup.fit(bad, val)
    epochs = setup.cfg.train.epochs
    # the row sits in exactly one batch per epoch (padding rows carry zero weight)
    skipped = result.counters["skipped_steps"]
    assert all(0 < s <= epochs for s in skipped), skipped
    assert result.history[-1]["skipped_steps_members"] == skipped
    assert result.counters["rollbacks"] == [0, 0]
    assert finite_tree(result.params)
    assert all(np.isfinite(h["val_loss"]) for h in result.history)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]  # the other steps still learn


# ----------------------------------------------------------------- exploding steps
def test_exploding_learning_rate_rolls_back_and_keeps_a_finite_best_model(nan_data: dict[str, Any]) -> None:
    # lr = 10 alone never produces a non-finite step with this MLP (Adam steps are bounded and
    # the variance head is a softplus): the model only trains badly. A corrupt row makes steps
    # fail, and max_consecutive_failures=1 turns every failure into a rollback.
    prep, base = nan_data["prep"], nan_data["setup"]
    cfg = tiny_config(**{
        "optim.learning_rate": 10.0, "optim.warmup_epochs": 0, "optim.schedule": "constant",
        "train.max_consecutive_failures": 1, "train.max_rollbacks": 3,
    })
    setup = Setup(base.problem.with_config(cfg), base.transforms, cfg)
    train = setup.transforms.transform(prep.train)
    row = int(np.flatnonzero(train.mask.all(axis=1))[0])
    target = train.target.copy()
    target[row, 0] = np.nan  # (an inf target is clipped by the likelihood and trains on)
    result = setup.fit(dataclasses.replace(train, target=target), setup.transforms.transform(prep.val))
    counters = result.counters
    assert all(s > 0 for s in counters["skipped_steps"]), counters
    assert all(0 < r <= 3 for r in counters["rollbacks"]), counters
    assert result.history[-1]["rollbacks"] == sum(counters["rollbacks"])
    # each rollback halves the member's learning rate
    assert result.history[-1]["learning_rate"] < 10.0 * 0.5 ** (min(counters["rollbacks"]) - 1)
    assert finite_tree(result.params)
    for m, best in enumerate(result.best_val):
        seen = [h["val_loss_members"][m] for h in result.history if h["val_loss_members"][m] is not None]
        assert np.isfinite(best) and best <= min(seen) + 1e-6
    ds = prep.test
    pred = setup.emulator(result.params).predict(ds.params, ds.log10_mass, redshift=ds.redshift,
                                                    on_extrapolation="ignore")
    assert all(np.isfinite(p.mean).all() and np.all(np.isfinite(p.var) & (p.var > 0)) for p in pred.values())


# ------------------------------------------------------------------ crashing member
def test_member_whose_training_raises_is_reported_and_the_others_merged(
    run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cluster_run"
    cfg = tiny_config(**{"train.members": 3, "train.epochs": 2})
    cluster.prepare_run(folder, run.dataset, cfg, DataSource(str(run.data_path)))
    assert cluster.train_members(folder, [0, 2])

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("simulated out-of-memory in member 1")

    monkeypatch.setattr("profemu.train.loop.fit", crash)
    with pytest.raises(MemoryError):
        cluster.train_members(folder, [1])
    monkeypatch.undo()
    states = {s.member: s for s in cluster.run_status(folder)}
    assert [states[i].state for i in range(3)] == ["completed", "failed", "completed"]
    assert "MemoryError: simulated out-of-memory" in (states[1].error or "")
    with pytest.raises(TrainingError) as info:
        cluster.merge(folder)
    msg = str(info.value)
    assert "member 1 (failed: MemoryError: simulated out-of-memory" in msg
    assert "member 0" not in msg and "member 2" not in msg
    emu = cluster.merge(folder, allow_partial=True)
    assert emu.members == 2
    assert emu.metadata["members_merged"] == [0, 2] and emu.metadata["members_missing"] == [1]
    loaded = Emulator.load(folder / "emulator")
    assert loaded.members == 2 and finite_tree(loaded.weights)


# ----------------------------------------------------------- SIGKILL during writes
_CHECKPOINT_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from profemu.train.checkpoint import save_checkpoint
    folder, epoch = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    while True:
        epoch += 1
        save_checkpoint(folder, epoch, {"x": np.full(400_000, float(epoch)), "y": np.arange(1000) * epoch},
                        {"epoch": epoch, "history": [{"loss": 1.0 / epoch}]})
""")

_EMULATOR_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from profemu._files import flatten_tree as _flatten
    from profemu._files import unflatten_tree as _unflatten
    from profemu.emulator import Emulator
    emu = Emulator.load(sys.argv[1])
    base = _flatten(emu.weights)
    generation = 0
    print("ready", flush=True)
    while True:
        generation += 1
        emu.weights = _unflatten({k: (v * np.float32(1 + 1e-3 * generation)) for k, v in base.items()})
        emu.metadata["generation"] = generation
        emu.save(sys.argv[2])
""")


def _kill_at_random(code: str, args: list[str], delay: float, ready_when: Any) -> None:
    """Start a writer process, wait until ``ready_when()`` holds, sleep ``delay`` s, SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", proc.stderr
        deadline = time.monotonic() + 60
        while not ready_when():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_during_checkpoint_writes_leaves_a_valid_latest(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    folder = tmp_path / "checkpoints"
    last = 0
    for _ in range(4):
        start = last
        _kill_at_random(_CHECKPOINT_WRITER, [str(folder), str(start)], float(rng.uniform(0.0, 0.4)),
                        lambda start=start: (c := load_latest(folder)) is not None and c.epoch > start)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the newest manifest must never point at a damaged file
            ckpt = load_latest(folder)
        assert ckpt is not None and ckpt.epoch > last
        np.testing.assert_array_equal(ckpt.arrays["x"], np.full(400_000, float(ckpt.epoch)))
        np.testing.assert_array_equal(ckpt.arrays["y"], np.arange(1000) * ckpt.epoch)
        assert ckpt.meta == {"epoch": ckpt.epoch, "history": [{"loss": 1.0 / ckpt.epoch}]}
        last = ckpt.epoch
    finals = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    assert all(name.startswith("ckpt-") and name.endswith((".npz", ".json")) for name in finals), finals


def test_sigkill_during_emulator_save_always_leaves_a_loadable_folder(run: TinyRun, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    src = run.run_dir / "emulator"
    base = {k: np.asarray(v) for k, v in _flat(Emulator.load(src).weights).items()}
    dst = tmp_path / "emulator"
    outcomes = []
    for _ in range(4):
        _kill_at_random(_EMULATOR_WRITER, [str(src), str(dst)], float(rng.uniform(0.0, 0.3)),
                        lambda: (dst / "manifest.json").is_file())
        # the manifest rename is the commit point: once a manifest exists, the folder
        # always loads, as one generation or another, never a mix
        emu = Emulator.load(dst)
        generation = emu.metadata["generation"]
        for k, v in _flat(emu.weights).items():  # the weights belong to the manifest's generation
            np.testing.assert_array_equal(v, base[k] * np.float32(1 + 1e-3 * generation))
        outcomes.append("loaded")
    assert outcomes == ["loaded"] * 4, outcomes


def _flat(tree: Any) -> dict[str, np.ndarray]:
    from profemu._files import flatten_tree as _flatten

    return _flatten(tree)


# --------------------------------------------------------------------- full disk
_FULL_DISK = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    import numpy as np
    out, limit, which = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if which == "checkpoint":
        from profemu.train.checkpoint import save_checkpoint
        write = lambda: save_checkpoint(out / "checkpoints", 1, {"x": np.zeros(100_000)}, {})
    elif which == "emulator":
        from profemu.emulator import Emulator
        emu = Emulator.load(sys.argv[4])
        emu.metadata["generation"] = "new"
        write = lambda: emu.save(out / "emulator")
    else:
        from profemu.data.io import load_dataset
        ds = load_dataset(sys.argv[4])
        write = lambda: ds.save(out / "data" / f"mock.{which}")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit raise OSError(EFBIG)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash of the HDF5 library leaves no core file
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        write()
        result = None
    except Exception as exc:
        result = [type(exc).__name__, getattr(exc, "errno", None), str(exc)]
    print(json.dumps(result), flush=True)
""")


def _write_with_full_disk(out: Path, which: str, source: Path | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", _FULL_DISK, str(out), "4096", which, *([str(source)] if source else [])]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_full_disk_gives_a_clear_error_and_no_half_written_files(run: TinyRun, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    previous = run.emulator
    previous.save(out / "emulator")  # an older emulator already in place must survive
    for which, source in (("checkpoint", None), ("emulator", run.run_dir / "emulator"),
                          ("npz", run.data_path)):
        proc = _write_with_full_disk(out, which, source)
        assert proc.returncode == 0, (which, proc.stderr)
        error = json.loads(proc.stdout.strip().splitlines()[-1])
        assert error is not None, f"{which}: the write succeeded despite the file-size limit"
        # one line naming the path and the reason (EFBIG: File too large)
        assert error[0] == "DataError" and "cannot write (File too large)" in error[2], (which, error)
    # nothing under the final names, no temporary files left behind
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == []
    assert sorted(p.name for p in (out / "data").iterdir()) == []
    assert sorted(p.name for p in (out / "emulator").iterdir()) == [
        "manifest.json", Emulator.weights_file(out / "emulator").name]
    kept = Emulator.load(out / "emulator")
    assert "generation" not in kept.metadata
    for k, v in _flat(kept.weights).items():
        np.testing.assert_array_equal(v, _flat(previous.weights)[k])


def test_full_disk_while_writing_hdf5_never_creates_the_final_name(run: TinyRun, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = _write_with_full_disk(tmp_path, "h5", run.data_path)
    # The HDF5 library may crash the process outright (SIGSEGV while closing a file whose
    # writes failed); an exception is the better outcome. Either way the final name never
    # appears: the file is written under a temporary name and renamed only when complete.
    if proc.returncode == 0:
        error = json.loads(proc.stdout.strip().splitlines()[-1])
        assert error is not None and error[0] in ("OSError", "RuntimeError", "FormatError", "DataError"), error
        assert [p.name for p in (tmp_path / "data").iterdir()] == []
    assert not (tmp_path / "data" / "mock.h5").exists()


# ----------------------------------------------------------------------- prediction
@pytest.fixture(scope="module")
def box(run: TinyRun) -> dict[str, Any]:
    emu = run.emulator
    limits = emu.transforms.input_box()
    names = [*emu.param_names, "log10_mass"]
    lo = np.array([float(limits[n][0]) for n in names])
    hi = np.array([float(limits[n][1]) for n in names])
    return {"emu": emu, "lo": lo, "hi": hi, "jax_fn": jax.jit(emu.predict_fn)}


_UNIT = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))  # corners, faces, interior


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_UNIT, min_size=7, max_size=7), min_size=4, max_size=4))
def test_predictions_inside_the_box_are_finite(box: dict[str, Any], unit: list[list[float]]) -> None:
    u = np.asarray(unit)
    x = box["lo"] + u * (box["hi"] - box["lo"])
    x = np.where(u == 0.0, box["lo"], np.where(u == 1.0, box["hi"], x))  # exactly min / max
    emu = box["emu"]
    pred = emu.predict(x[:, :6], x[:, 6], redshift=0.0, on_extrapolation="error")
    for p in pred.values():
        assert np.all(np.isfinite(p.mean))
        assert np.all(np.isfinite(p.var) & (p.var > 0))
    mean, var = box["jax_fn"](x[:, :6], x[:, 6], None, np.zeros(4))
    assert np.all(np.isfinite(np.asarray(mean))) and np.all(np.asarray(var) > 0)
    np.testing.assert_allclose(np.asarray(mean)[:, 0], pred["rho"].mean, rtol=1e-4, atol=1e-4)


def test_outside_the_box_error_and_warn_name_the_input(box: dict[str, Any]) -> None:
    emu = box["emu"]
    x = (box["lo"] + box["hi"])[None, :] / 2
    with pytest.raises(ExtrapolationError, match="log10_mass"):
        emu.predict(x[:, :6], box["hi"][6] + 0.5, redshift=0.0, on_extrapolation="error")
    params = x[:, :6].copy()
    params[0, 3] = box["hi"][3] * 2  # A_AGN1
    with pytest.warns(UserWarning, match="A_AGN1") as record:
        pred = emu.predict(params, x[:, 6], redshift=0.0, on_extrapolation="warn")
    assert not any("log10_mass" in str(w.message) for w in record)
    assert all(np.isfinite(p.mean).all() for p in pred.values())
