"""compare_run on the rows the run was judged on: its test split, or its own CV folds by simulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from profemu.baselines import PCARBFBaseline
from profemu.config import Config
from profemu.data.mock import make_mock_universe
from profemu.errors import DataError
from profemu.metrics import evaluate_predictions
from profemu.runs.compare import compare_run
from profemu.runs.folder import RunFolder
from profemu.runs.training import train_emulator

_TINY = {"train.epochs": 3, "train.members": 2, "model.hidden": [16], "data.input_relevance": "off",
         "train.cv_folds": 3}


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    ds = make_mock_universe(n=96, seed=3, param_set="lh6", with_pk=False).dataset
    run = tmp_path_factory.mktemp("cvrun") / "run"
    out = train_emulator(ds, Config().updated(_TINY), run_dir=run)
    return run, ds, out


def test_a_cross_validated_run_is_compared_on_its_own_folds(cv_run) -> None:
    run, ds, out = cv_run
    folder = RunFolder.open(run)
    assert folder.split_rows("test", ds.n).size == 0  # the default keeps no test split
    record = compare_run(folder, folder.emulator(), [PCARBFBaseline()], dataset=ds)
    assert record["estimate"].startswith("cross-validation") and record["folds"] == [0, 1, 2]
    rows = {r["method"]: r for r in record["rows"]}
    assert set(rows) == {"profemu", "pca_rbf"} and rows["profemu"]["n_test"] == rows["pca_rbf"]["n_test"]
    # profemu's row is the training's own out-of-fold estimate, with the run's variance scale
    assert rows["profemu"]["frac_err_median"] == pytest.approx(out.metrics.frac_err_median, rel=1e-9)
    # the baseline's row: fitted on the other folds of the same split by simulation
    cv = json.loads((run / "cv.json").read_text())
    order, fold = np.asarray(cv["rows"]), np.asarray(cv["fold_of_row"])
    fields = tuple(out.emulator.field_names)
    parts = []
    for k in range(3):
        b = PCARBFBaseline().fit(ds.subset(order[fold != k]), fields=fields)
        parts.append((order[fold == k], b.predict(*(lambda t: (t.params, t.log10_mass))(ds.subset(order[fold == k])))))
    rows_all = np.concatenate([r for r, _ in parts])
    pred = {f: (np.concatenate([p[f][0] for _, p in parts]), np.concatenate([p[f][1] for _, p in parts]))
            for f in fields}
    expected = evaluate_predictions(pred, ds.subset(rows_all))["overall"]["frac_err_median"]
    assert rows["pca_rbf"]["frac_err_median"] == pytest.approx(expected, rel=1e-6)
    assert json.loads((run / "compare.json").read_text())["folds"] == [0, 1, 2]
    # the Emulator (96 rows: train.gp_blend auto) blends a GP: the table says its row is the networks'
    assert out.emulator.blend is not None
    assert record["note"].startswith("the profemu row is the cross-validation's networks alone")
    assert "out-of-sample median error" in record["note"]
    assert "Note: the profemu row is" in (run / "compare.md").read_text()


def test_folds_can_be_chosen_and_are_checked(cv_run) -> None:
    run, ds, _ = cv_run
    folder = RunFolder.open(run)
    one = compare_run(folder, folder.emulator(), [PCARBFBaseline()], dataset=ds, folds=[0])
    cv = json.loads((run / "cv.json").read_text())
    assert one["folds"] == [0] and one["rows"][0]["n_test"] == int(np.sum(np.asarray(cv["fold_of_row"]) == 0))
    with pytest.raises(DataError, match=r"--folds: folds \[7\] are not folds of the run"):
        compare_run(folder, folder.emulator(), [PCARBFBaseline()], dataset=ds, folds=[7])
