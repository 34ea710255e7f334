"""The HTML report: sections, embedded images, escaping, robustness to missing pieces."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from profemu.config import Config
from profemu.data.dataset import ProfileDataset
from profemu.data.mock import make_mock_universe
from profemu.errors import DataError
from profemu.metrics import frac_error_by_radius
from profemu.runs.folder import RunFolder
from profemu.runs.report import write_report
from profemu.runs.tables import metrics_table

SECTIONS = ("training-curves", "profiles", "fractional-error", "calibration", "comparison", "metrics",
            "data", "config")


def _images(html_text: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def _section(html_text: str, sid: str) -> str:
    start = html_text.index(f'<section id="{sid}">')
    return html_text[start:html_text.index("</section>", start)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ProfileDataset]:
    from profemu.runs.folder import DataSource
    from profemu.runs.training import train_emulator

    universe = make_mock_universe(120, seed=5, param_set="lh6", n_r=10)
    ds = universe.dataset
    # a unit with markup: it must reach the page escaped
    ds = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                        radius=ds.radius, profiles=ds.profiles, units={"rho": "<b>Msun</b>"},
                        radius_unit=ds.radius_unit, log_params=ds.log_params, groups=ds.groups,
                        noise=ds.noise).select_fields(["rho", "temp"])
    folder = tmp_path_factory.mktemp("report")
    data = ds.save(folder / "data.npz")
    cfg = Config().updated({"model.hidden": [16], "train.members": 2, "train.epochs": 3,
                            "train.batch_size": 64, "data.test_fraction": 0.2})
    run = folder / "run"
    train_emulator(ds, cfg, run_dir=run, source=DataSource(str(data), "profemu"))
    return run, ds


def test_report_has_every_section_and_embedded_pngs(trained: tuple[Path, ProfileDataset]) -> None:
    run, ds = trained
    backend = matplotlib.get_backend()
    path = write_report(run, dataset=ds)
    assert matplotlib.get_backend() == backend
    assert path == run / "report.html"
    text = path.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text, sid
    images = _images(text)
    assert len(images) >= 4  # curves, profiles, fractional error, calibration
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    for sid in ("training-curves", "profiles", "fractional-error", "calibration"):
        assert "data:image/png;base64," in _section(text, sid), sid
    # no external resources: the page is self-contained
    assert not re.search(r'src="(?!data:)', text)
    assert "<b>Msun</b>" not in text and "&lt;b&gt;Msun&lt;/b&gt;" in text
    # the held-out metrics table lists each field and the pooled row
    metrics = _section(text, "metrics")
    for name in ("rho", "temp", "overall", "frac err median [%]"):
        assert name in metrics
    assert "profemu compare" in _section(text, "comparison")
    assert "model:" in _section(text, "config")


def test_report_reloads_the_data_and_draws_baselines(trained: tuple[Path, ProfileDataset]) -> None:
    run, ds = trained
    n_r = ds.n_r
    record = {
        "rows": [{"method": "profemu", "frac_err_median": 0.05}, {"method": "pca_rbf<x>", "frac_err_median": 0.08}],
        "per_radius": {"pca_rbf<x>": {"rho": {"frac_err_median": [0.1] * n_r, "frac_err_p68": [0.2] * n_r}}},
    }
    (run / "compare.json").write_text(json.dumps(record))
    try:
        text = write_report(run).read_text()  # data reloaded from data.json
    finally:
        (run / "compare.json").unlink()
    comparison = _section(text, "comparison")
    assert "pca_rbf&lt;x&gt;" in comparison and "8.00" in comparison
    assert "pca_rbf<x>" not in text
    assert "data:image/png;base64," in _section(text, "profiles")


def test_report_without_emulator_or_data(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "train_monotonic": 0.0,
                "learning_rate": 1e-3, "seconds": 0.1} for e in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(h) for h in history) + "\n{truncated")
    Config().to_yaml(run / "config.yaml")
    text = write_report(run).read_text()
    assert len(_images(text)) == 1  # training curves only
    assert "could not be loaded" in _section(text, "profiles")
    assert "profemu evaluate" in _section(text, "metrics")


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        RunFolder.open(tmp_path / "absent")
    with pytest.raises(DataError, match="no saved emulator"):
        (tmp_path / "config.yaml").write_text("{}\n")
        RunFolder.open(tmp_path)


def test_frac_error_by_radius_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(50, 4))
    offsets = np.array([np.log10(1.1), -np.log10(1.2), 0.0, np.log10(2.0)])
    mean = true + offsets
    mask = np.ones_like(true, dtype=bool)
    mask[:, 3] = False
    mask[0, 0] = False
    mean[0, 0] = 1e3  # masked: must not count
    med, p68 = frac_error_by_radius(mean, true, mask)
    np.testing.assert_allclose(med[:3], [0.1, 1 - 1 / 1.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(p68[:3], med[:3], atol=1e-12)
    assert np.isnan(med[3]) and np.isnan(p68[3])


def test_metrics_table_formats_percent_and_drops_absent_columns() -> None:
    evaluation = {"fields": {"rho": {"frac_err_median": 0.0123, "rmse_dex": 0.01, "nll": None}},
                  "overall": {"frac_err_median": 0.02, "rmse_dex": 0.02, "nll": -1.5}}
    header, rows = metrics_table(evaluation)
    assert header == ["field", "frac err median [%]", "RMSE [dex]", "NLL"]
    assert rows == [["rho", "1.23", "0.0100", "n/a"], ["overall", "2.00", "0.0200", "-1.500"]]
