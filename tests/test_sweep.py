"""Hyper-parameter sweeps: space validation, encoding of list choices, inline and SLURM sweeps."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import optuna
import pytest

from profemu.config import Config
from profemu.data.io import save_dataset
from profemu.data.mock import make_mock_universe
from profemu.errors import ConfigError
from profemu.runs.cluster import ExecutorOptions
from profemu.runs.folder import DataSource
from profemu.runs.sweep import decode_params, load_space, run_sweep, suggest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

SPACE = {
    # a wide learning-rate range makes some trials clearly worse, so the median rule prunes
    "optim.learning_rate": {"low": 1e-6, "high": 3e-2, "log": True},
    "model.hidden": {"choices": [[8], [16, 16]]},
    "loss.physics.smoothness_weight": {"low": 0, "high": 1},
    "optim.warmup_epochs": {"low": 0, "high": 2},
}


@pytest.fixture
def slurm() -> None:
    if shutil.which("sbatch") is None:
        msg = "sbatch is not on PATH: start the one-node cluster with `bash ../shared/tools/slurm-local.sh`"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mock.npz"
    save_dataset(make_mock_universe(n=64, seed=5, n_r=6, with_pk=False, param_set="lh6").dataset, path)
    return path


def base_config() -> Config:
    return Config().updated({
        "model.hidden": [8], "train.members": 3, "train.epochs": 6, "train.batch_size": 32,
        "train.patience": 0, "data.fields": ["rho"],
    })


def test_space_validation(tmp_path) -> None:
    space = load_space(SPACE)
    assert space["optim.warmup_epochs"].kind == "int"
    assert space["loss.physics.smoothness_weight"].kind == "float"  # float key, integer bounds
    assert space["model.hidden"].kind == "categorical"
    with pytest.raises(ConfigError, match=r"valid keys here: \[.*'optim.learning_rate'"):
        load_space({"optim.learnig_rate": {"low": 1e-4, "high": 1e-3}})
    with pytest.raises(ConfigError, match="is a section"):
        load_space({"loss.physics": {"choices": [{}]}})
    with pytest.raises(ConfigError, match="low"):
        load_space({"optim.learning_rate": {"low": 0, "high": 1e-3, "log": True}})
    with pytest.raises(ConfigError, match="smaller"):
        load_space({"optim.clip_norm": {"low": 2, "high": 1}})
    with pytest.raises(ConfigError, match="integer"):
        load_space({"train.batch_size": {"low": 8.5, "high": 64}})
    with pytest.raises(ConfigError, match=r"model\.kind"):
        load_space({"model.kind": {"choices": ["mlp", "transformer"]}})
    with pytest.raises(ConfigError, match="unknown field"):
        load_space({"optim.clip_norm": {"low": 1, "high": 2, "logscale": True}})
    path = tmp_path / "space.yaml"
    path.write_text("model.kind: {choices: [mlp, physics]}\noptim.weight_decay: {low: 0.0, high: 0.01}\n")
    assert set(load_space(path)) == {"model.kind", "optim.weight_decay"}


def test_suggest_decodes_list_choices() -> None:
    space = load_space(SPACE)
    trial = optuna.trial.FixedTrial({
        "optim.learning_rate": 1e-3, "model.hidden": "[16, 16]",
        "loss.physics.smoothness_weight": 0.5, "optim.warmup_epochs": 2,
    })
    overrides = suggest(trial, space)
    assert overrides["model.hidden"] == [16, 16]
    cfg = base_config().updated(overrides)
    assert cfg.model.hidden == (16, 16) and cfg.optim.warmup_epochs == 2
    assert decode_params({"model.hidden": "[8]"}, space) == {"model.hidden": [8]}


def _check_outputs(out: Path, best: Config, trials: int) -> dict:
    record = json.loads((out / "trials.json").read_text())
    assert len(record["trials"]) == trials
    assert {t["state"] for t in record["trials"]} <= {"COMPLETE", "PRUNED"}
    complete = [t for t in record["trials"] if t["state"] == "COMPLETE"]
    winner = min(complete, key=lambda t: t["value"])
    assert best.optim.learning_rate == pytest.approx(winner["params"]["optim.learning_rate"])
    assert list(best.model.hidden) == winner["params"]["model.hidden"]
    assert best.train.members == 3  # trials ran one member; the ensemble keeps the base size
    reloaded = Config.from_yaml(out / "best_config.yaml")
    assert reloaded.to_dict() == best.to_dict()
    return record


def test_inline_sweep_prunes_and_writes_best_config(data_path, tmp_path) -> None:
    out = tmp_path / "sweep"
    # seed 4: the two random start-up trials have learning rates 2e-2 and 1e-5, so the second is pruned
    best = run_sweep(DataSource(str(data_path)), base_config(), SPACE, 4, ExecutorOptions(executor="inline"),
                     out_dir=out, seed=4)
    record = _check_outputs(out, best, 4)
    pruned = [t for t in record["trials"] if t["state"] == "PRUNED"]
    assert pruned and all(t["last_epoch_reported"] < 5 for t in pruned)
    assert (out / "optuna.journal").stat().st_size > 0


def test_sweep_accepts_sqlite_storage(data_path, tmp_path) -> None:
    out = tmp_path / "sweep"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run_sweep(DataSource(str(data_path)), base_config().updated({"train.epochs": 2}),
              {"optim.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}, 1,
              ExecutorOptions(executor="inline"), out_dir=out, storage=url, study_name="s")
    assert optuna.load_study(study_name="s", storage=url).trials[0].state.name == "COMPLETE"


@pytest.mark.parametrize("case", ["space file", "data file", "text file", "folder", "scheme", "sqlite folder",
                                  "memory"])
def test_sweep_refuses_a_storage_it_cannot_use_or_would_change(data_path, tmp_path, case) -> None:
    import yaml

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    (tmp_path / "folder").mkdir()
    storage, needle = {
        "space file": (space, "is the space file"), "data file": (data_path, "is the data file"),
        "text file": (notes, "is not an Optuna journal"), "folder": (tmp_path / "folder", "is a folder"),
        "scheme": ("foo://bar", "'foo' is not a database"),
        "sqlite folder": (f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "does not exist"),
        "memory": ("sqlite://", "in-memory database"),
    }[case]
    before = {p: p.read_bytes() for p in (space, notes, Path(data_path))}
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=needle):
        run_sweep(DataSource(str(data_path)), base_config(), space, 1, ExecutorOptions(executor="inline"),
                  out_dir=out, storage=storage)
    assert {p: p.read_bytes() for p in before} == before
    assert not (out / "sweep.json").exists()


@pytest.mark.slurm
def test_slurm_sweep_shares_journal_and_prunes(slurm, data_path, tmp_path, monkeypatch, caplog) -> None:
    import logging

    import profemu.runs.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "WAIT_NOTE_SECONDS", 5.0)  # the progress lines while the jobs run
    out = tmp_path / "sweep"
    # one array task at a time: the second task's trials see the first's, so which trials the
    # median rule prunes does not depend on how the two tasks interleave
    options = ExecutorOptions(executor="slurm", partition="debug", time_min=10, slurm_signal_delay_s=30,
                              array_parallelism=1)
    with caplog.at_level(logging.INFO, logger="profemu.runs.sweep"):
        best = run_sweep(DataSource(str(data_path)), base_config(), SPACE, 6, options, out_dir=out, seed=2,
                         trials_per_job=3)
    assert any(r.getMessage().startswith("sweep: waiting for the trial jobs") for r in caplog.records)
    record = _check_outputs(out, best, 6)
    assert not record["job_errors"]
    assert any(t["state"] == "PRUNED" for t in record["trials"])
    assert len(list((out / "submitit").glob("*_log.out"))) == 2  # two array tasks shared one journal


def test_a_continued_study_must_share_the_data_and_the_space(data_path, tmp_path) -> None:
    """Trials of one study are ranked together: continuing it on other data or another space is
    refused with one line (and sweep.json keeps the first sweep's record); the same settings continue."""
    out = tmp_path / "sweep"
    space = {"optim.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    cfg = base_config().updated({"train.epochs": 2})
    run_sweep(DataSource(str(data_path)), cfg, space, 1, ExecutorOptions(executor="inline"), out_dir=out)
    before = (out / "sweep.json").read_text()
    other = tmp_path / "other.npz"
    other.write_bytes(data_path.read_bytes())
    with pytest.raises(ConfigError, match=r"holds study 'profemu-sweep' run with another data, data_sha256|"
                                          r"holds study 'profemu-sweep' run with another data"):
        run_sweep(DataSource(str(other)), cfg, space, 1, ExecutorOptions(executor="inline"), out_dir=out)
    wider = {"optim.learning_rate": {"low": 1e-5, "high": 1e-2, "log": True}}
    with pytest.raises(ConfigError, match=r"run with another space; its trials would be ranked with the new ones"):
        run_sweep(DataSource(str(data_path)), cfg, wider, 1, ExecutorOptions(executor="inline"), out_dir=out)
    assert (out / "sweep.json").read_text() == before
    run_sweep(DataSource(str(data_path)), cfg, space, 2, ExecutorOptions(executor="inline"), out_dir=out)
    assert len(optuna.load_study(study_name="profemu-sweep",
                                 storage=optuna.storages.JournalStorage(
                                     optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal")))
                                 ).trials) == 3


def test_cli_sweep_takes_set_and_names_the_best_trials_parameters(data_path, tmp_path) -> None:
    """`profemu sweep --set` changes the base config like `train --set`; the last lines name the
    best trial and every parameter it swept."""
    import yaml
    from typer.testing import CliRunner

    from profemu.cli import app

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                                     "model.hidden": {"choices": [[8], [16, 16]]}}))
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", "--data", str(data_path), "--space", str(space), "--trials", "2",
                                   "--executor", "inline", "--out", str(out), "--set", "train.epochs=2",
                                   "--set", "data.fields=[rho]", "--set", "train.members=1"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "sweep.json").read_text())["base_config"]["train"]["epochs"] == 2
    line = next(x for x in res.output.splitlines() if x.startswith("best config: "))
    assert " from trial " in line and "optim.learning_rate=" in line and "model.hidden=" in line
