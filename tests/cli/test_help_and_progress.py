"""What the command line shows: help texts with their units, tables with units, honest progress lines."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from pathlib import Path

import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from profemu.cli import app, commands

#: Commands whose help texts live in other modules of the command line (cli/inference.py).
OTHERS = {"infer", "fisher", "observe"}
_UNIT = re.compile(r"\\?\[([^\]\[]+)\]")


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, highlight=False, soft_wrap=True), buffer


@pytest.mark.parametrize("name", sorted(set(typer.main.get_command(app).commands) - OTHERS))  # type: ignore[attr-defined]
def test_help_keeps_units_and_shows_no_raw_backticks(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stdout
    shown = " ".join(result.stdout.split())
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for unit in _UNIT.findall(text):
            if not unit.startswith(("default", "n,", "n ")):
                assert f"[{unit}]" in shown, (name, unit)
    assert "``" not in result.stdout, name


def test_tables_show_their_units() -> None:
    console, buffer = _console()
    commands._print_metrics(console, {"fields": {"rho": {"rmse_dex": 0.01, "frac_err_median": 0.02}}},
                            "test split [10 rows]")
    commands._print_comparison(console, [{"method": "profemu", "rmse_dex": 0.01, "fit_seconds": 3.0,
                                          "predict_seconds_per_1000": 0.1}])
    text = buffer.getvalue()
    for unit in ("RMSE [dex]", "fit [s]", "predict [s/1000 rows]", "frac err median [%]", "test split [10 rows]"):
        assert unit in text, (unit, text)


def test_a_test_split_with_cross_validation_is_not_contradicted() -> None:
    console, buffer = _console()
    cv = {"metrics": {"fields": {}, "overall": {"rmse_dex": 0.01}}, "folds": 3, "n_rows": 90, "refit_epochs": 7}
    commands._print_cross_validation(console, cv, test_split=True)
    assert "no test split was held out" not in buffer.getvalue()
    assert "test split's metrics follow" in buffer.getvalue()
    console, buffer = _console()
    commands._print_cross_validation(console, cv)
    assert "no test split was held out" in buffer.getvalue()
    assert "out-of-fold predictions of an ensemble per fold" in buffer.getvalue()  # a cv.json without the count
    console, buffer = _console()
    commands._print_cross_validation(console, {**cv, "networks_per_fold": 1})
    assert "out-of-fold predictions of one network per fold" in " ".join(buffer.getvalue().split())
    # an Emulator that blends a GP: the table is the network's; the blend's own errors are said
    console, buffer = _console()
    report = {"fields": {"rho": {"weight": 0.0, "variance_factor": 1.0, "network_error": 0.046, "gp_error": 0.032,
                                 "blend_error": 0.032}}}
    commands._print_cross_validation(console, cv, blend=report)
    text = " ".join(buffer.getvalue().split())
    assert "blends a GP into the network's prediction (train.gp_blend), so the table is the network's alone" in text
    assert "rho: network weight 0.00, out-of-sample median error 4.60% (network) / 3.20% (GP) -> 3.20% (blend)" in text
    assert "these numbers are cross-validation estimates of its error" not in text


def test_epoch_lines_count_each_stage_and_its_own_seconds(tmp_path: Path) -> None:
    (tmp_path / "cv.json").write_text(json.dumps({"refit_epochs": 4}))
    console, buffer = _console()
    progress = commands._TrainingProgress(console, epochs=20, log_every=1, run=tmp_path)
    time.sleep(0.6)  # data loading and compilation before the first epoch: not epoch time
    with progress:
        progress({"epoch": 0, "train_loss": 1.0, "val_loss": 1.0, "seconds": 0.01, "stage": "cv"})
        progress({"epoch": 0, "train_loss": 1.0, "val_loss": 1.0, "seconds": 0.01, "stage": "refit"})
        progress({"epoch": 3, "train_loss": 1.0, "val_loss": 1.0, "seconds": 0.01, "stage": "refit"})
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("[cv] epoch 1/20") and lines[1].startswith("[refit] epoch 1/4"), lines
    assert lines[2].startswith("[refit] epoch 4/4"), lines
    seconds = [float(re.search(r"  (\d+\.\d) s", ln).group(1)) for ln in lines]  # type: ignore[union-attr]
    assert max(seconds) < 0.5, lines


def test_long_fits_log_a_line_now_and_then(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="profemu.cli"), commands._heartbeat("fitting gp", every=0.05):
        time.sleep(0.3)
    beats = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert beats and beats[0].startswith("fitting gp: still running ("), beats


def test_logged_warnings_print_as_warning_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A warning logged by the library prints as the ``warning: ...`` line the errors catalogue
    promises (progress lines stay bare), on the command line's handler and on the inference one."""
    from profemu.cli import commands, inference
    from profemu.cli.common import LineFormatter

    def line(level: int, msg: str) -> str:
        return LineFormatter().format(logging.LogRecord("profemu.x", level, __file__, 1, msg, None, None))

    assert line(logging.WARNING, "mass bin outside") == "warning: mass bin outside"
    assert line(logging.INFO, "training on 3 rows") == "training on 3 rows"
    assert line(logging.WARNING, "warning: once") == "warning: once"
    assert isinstance(commands._CLI_HANDLER.formatter, LineFormatter)
    if not logging.getLogger("profemu").handlers:
        with inference._progress_lines():
            logging.getLogger("profemu.inference.test").warning("the chains did not mix")
        assert "warning: the chains did not mix" in capsys.readouterr().err
