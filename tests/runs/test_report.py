"""The HTML report: sections in reading order, residual bands, plain axes, legends off the
curves, sensitivity and suggestions computed independently, escaping, missing pieces."""

from __future__ import annotations

import base64
import json
import logging
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
from profemu.runs import report
from profemu.runs.folder import RunFolder
from profemu.runs.report import write_report
from profemu.runs.tables import (
    baseline_settings_table,
    comparison_table,
    method_label,
    metrics_table,
)

SECTIONS = ("metrics", "residuals", "profiles", "fractional-error", "calibration", "comparison", "physics",
            "sensitivity", "suggestions", "training-curves", "data", "config")
"""Every section, in the order a reader meets them: science first, the optimiser's internals last."""


def _images(html_text: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def _section(html_text: str, sid: str) -> str:
    start = html_text.index(f'<section id="{sid}">')
    return html_text[start:html_text.index("</section>", start)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ProfileDataset]:
    """A tiny run on mock data with P(k) (so the suggestions need a P(k) suppression)."""
    from profemu.runs.folder import DataSource
    from profemu.runs.training import train_emulator

    ds = make_mock_universe(120, seed=5, param_set="sb35", n_r=10).dataset
    # a unit with markup: it must reach the page escaped
    ds = ProfileDataset(params=ds.params, param_names=ds.param_names, log10_mass=ds.log10_mass,
                        radius=ds.radius, profiles=ds.profiles, units={"rho": "<b>Msun</b>"},
                        radius_unit=ds.radius_unit, log_params=ds.log_params, groups=ds.groups,
                        noise=ds.noise, pk_ratio=ds.pk_ratio, k=ds.k, redshift=ds.redshift,
                        meta=ds.meta).select_fields(["rho", "temp"])
    folder = tmp_path_factory.mktemp("report")
    data = ds.save(folder / "data.npz")
    cfg = Config().updated({"model.hidden": [16], "train.members": 2, "train.epochs": 3,
                            "train.batch_size": 64, "data.test_fraction": 0.2, "data.input_relevance": "off"})
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
    positions = [text.index(f'<section id="{sid}">') for sid in SECTIONS]
    assert positions == sorted(positions)  # science first, the optimiser's internals after it
    # this 35-parameter suite blends a GP: the page says the CV table is the network's and gives the blend's errors
    metrics = " ".join(_section(text, "metrics").split())
    assert "blends a Gaussian process into the network" in metrics and "(train.gp_blend), so this table is the " \
           "network" in metrics and "(blend)" in metrics
    images = _images(text)
    assert len(images) == 7  # one per figure section
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    for sid in ("residuals", "profiles", "fractional-error", "calibration", "sensitivity", "suggestions",
                "training-curves"):
        assert "data:image/png;base64," in _section(text, sid), sid
    assert "68% and 95% of the rows" in _section(text, "residuals")
    # the emulator takes P(k): the suggestions assume the training rows' median instead of failing
    assert "median P(k)" in _section(text, "suggestions")
    assert "could not" not in text and "skipped" not in text
    # the physics are wrapped lines, not one preformatted block running off the page
    assert '<ul class="physics">' in _section(text, "physics")
    assert "white-space:pre-wrap" in text
    # no external resources: the page is self-contained
    assert not re.search(r'(?:src|href)="(?!data:|#)', text)
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
        "rows": [{"method": "profemu", "frac_err_median": 0.05}, {"method": "pca_rbf<x>", "frac_err_median": 0.08},
                 {"method": "gp", "frac_err_median": 0.07}],
        "per_radius": {"pca_rbf<x>": {"rho": {"frac_err_median": [0.1] * n_r, "frac_err_p68": [0.2] * n_r}}},
        "baseline_settings": {"baselines": ["gp", "pca_rbf"], "n_train": 80, "n_test": 24, "gp_max_train": None},
    }
    (run / "compare.json").write_text(json.dumps(record))
    try:
        text = write_report(run).read_text()  # data reloaded from data.json
    finally:
        (run / "compare.json").unlink()
    comparison = _section(text, "comparison")
    assert "pca_rbf&lt;x&gt;" in comparison and "8.00" in comparison
    # the CLI's names shown by readable name, the settings as a table rather than a Python dict
    assert "<td>ARD GP</td>" in comparison and "<td>gp</td>" not in comparison
    assert "<td>ARD GP (gp), PCA+RBF (pca_rbf)</td>" in comparison and "<td>80</td>" in comparison
    assert "{" not in comparison and "PCA+GP" not in comparison
    assert "pca_rbf<x>" not in text
    assert "data:image/png;base64," in _section(text, "profiles")


def test_report_without_emulator_or_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "partial"
    run.mkdir()
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "train_monotonic": 0.0,
                "learning_rate": 1e-3, "seconds": 0.1} for e in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(h) for h in history) + "\n{truncated")
    Config().to_yaml(run / "config.yaml")
    with caplog.at_level(logging.WARNING, logger="profemu.runs.report"):
        text = write_report(run).read_text()
    assert "the report shows the run's data and training curves only" in caplog.text
    assert len(_images(text)) == 1  # training curves only
    assert "could not be loaded" in _section(text, "profiles")
    assert "profemu evaluate" in _section(text, "metrics")


def test_an_unfinished_run_still_reports_its_data(trained: tuple[Path, ProfileDataset], tmp_path: Path) -> None:
    """A run stopped before its emulator was saved: the report shows the run's data (from data.json)."""
    import shutil

    run, _ = trained
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    shutil.rmtree(partial / "emulator")
    text = write_report(partial).read_text()
    assert "ProfileDataset:" in _section(text, "data") and "could not be loaded" in _section(text, "profiles")


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


def test_residual_quantiles_are_per_radius_over_the_valid_rows() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(400, 3))
    ratio = rng.uniform(0.8, 1.25, size=(400, 3))
    mean = true + np.log10(ratio)
    mask = np.ones_like(true, dtype=bool)
    mask[:, 2] = False
    mask[:200, 1] = False
    mean[:200, 1] = 1e3  # masked: must not count
    q = report._residual_quantiles(mean, true, mask)
    assert q.shape == (5, 3)
    expected0 = np.quantile(ratio[:, 0] - 1, report.RESIDUAL_QUANTILES)
    expected1 = np.quantile(ratio[200:, 1] - 1, report.RESIDUAL_QUANTILES)
    np.testing.assert_allclose(q[:, 0], expected0, rtol=1e-12)
    np.testing.assert_allclose(q[:, 1], expected1, rtol=1e-12)
    assert np.isnan(q[:, 2]).all()
    assert np.all(np.diff(q[:, 0]) > 0) and q[0, 0] < 0 < q[4, 0]


def test_mass_label_names_the_unit_and_the_definition() -> None:
    assert report._mass_label({"mass_definition": "M200c [Msun]"}) == "log10 M200c/Msun"
    assert report._mass_label({"mass_definition": "500c"}) == "log10 M500c/Msun"
    assert report._mass_label({"mass_definition": "M200m [Msun/h]"}) == "log10 M200m/(Msun/h)"
    assert report._mass_label({}) == "log10 M/Msun"


def _overlaps(fig: matplotlib.figure.Figure) -> list[str]:
    """Legends whose box overlaps the plotting area of an axes of ``fig``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    assert legends
    return [str(leg) for leg in legends for ax in fig.axes
            if leg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))]


def test_error_axes_read_in_plain_percent_and_legends_stay_off_the_curves() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    radius = np.geomspace(0.02, 4.0, 12)
    curves = {f: {"profemu": (np.linspace(0.03, 0.6, 12), np.linspace(0.05, 0.9, 12)),
                  "pca_rbf": (np.full(12, 0.1), None)} for f in ("rho", "pth")}
    floor = {"rho": np.full(12, 0.02)}
    fig = report._frac_error_figure(curves, radius, "R200c", floor)
    FigureCanvasAgg(fig)
    assert not _overlaps(fig)
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) >= 3 and all(lb.endswith("%") and "^" not in lb and "times" not in lb
                                        for lb in labels), labels
    legend_text = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    assert {"profemu", "PCA+RBF", "noise floor (median)"} <= legend_text
    bands = {"rho": np.array([[-0.2] * 12, [-0.05] * 12, [0.01] * 12, [0.06] * 12, [0.3] * 12])}
    fig = report._residual_figure(bands, radius, "R200c", floor)
    FigureCanvasAgg(fig)
    assert not _overlaps(fig)
    assert all(t.get_text().endswith("%") for t in fig.axes[0].get_yticklabels() if t.get_text())
    cal = {"rho": (np.linspace(0.05, 0.95, 10), np.linspace(0.0, 1.0, 10))}
    fig = report._calibration_figure(cal)
    FigureCanvasAgg(fig)
    assert not _overlaps(fig)


def test_sensitivity_stands_when_the_suggestions_cannot_be_made(
    trained: tuple[Path, ProfileDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    import profemu.design

    run, ds = trained
    folder = RunFolder.open(run)
    emulator = folder.emulator()
    # without the training rows there is no P(k) to assume: said precisely, sensitivity still shown
    parts = report._design_parts(folder, emulator, None)
    assert "data:image/png;base64," in parts["sensitivity"]
    assert "centre of its training range" in parts["sensitivity"]
    assert "Suggestions skipped" in parts["suggestions"] and "P(k)" in parts["suggestions"]
    assert "data:image/png;base64," not in parts["suggestions"]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom<1>")

    monkeypatch.setattr(profemu.design, "suggest", broken)
    parts = report._design_parts(folder, emulator, ds)
    assert "data:image/png;base64," in parts["sensitivity"] and "median" in parts["sensitivity"]
    assert "could not be computed: RuntimeError: boom&lt;1&gt;" in parts["suggestions"]


def test_method_names_and_baseline_settings_tables() -> None:
    assert [method_label(m) for m in ("profemu", "gp", "pca_rbf", "pca_gp", "new")] == [
        "profemu", "ARD GP", "PCA+RBF", "PCA+GP", "new"]
    assert method_label("gp", with_key=True) == "ARD GP (gp)"
    rows = [{"method": "gp", "frac_err_median": 0.1}]
    assert comparison_table(rows)[1][0][0] == "gp"  # the terminal table keeps the CLI's names
    assert comparison_table(rows, labels=True)[1][0][0] == "ARD GP"
    header, body = baseline_settings_table({"baselines": ["gp", "pca_rbf"], "n_train": None, "n_test": 12})
    assert header == ["setting", "value"]
    assert body == [["baselines", "ARD GP (gp), PCA+RBF (pca_rbf)"], ["training rows", "n/a"],
                    ["held-out rows", "12"]]


def test_design_sections_of_an_emulator_with_a_redshift_input(tmp_path: Path) -> None:
    """An emulator taking the redshift as an input gets its sensitivity and suggestions at the
    training rows' median redshift (said in the text), not an error asking for a --redshift the
    report has no option for."""
    from profemu.data.mock.universe import make_mock_snapshots
    from profemu.runs.folder import DataSource
    from profemu.runs.training import train_emulator

    ds = make_mock_snapshots((0.0, 0.5, 1.0), 40, seed=3, param_set="lh6", n_r=6, with_pk=False)
    ds = ds.select_fields(["rho"])
    cfg = Config().updated({"model.hidden": [16], "train.members": 2, "train.epochs": 2, "train.batch_size": 64,
                            "data.test_fraction": 0.0, "train.cv_folds": 0, "data.input_relevance": "off",
                            "train.extrapolation_variance": "off", "train.gp_blend": "off"})
    run = tmp_path / "run"
    train_emulator(ds, cfg, run_dir=run, source=DataSource(str(ds.save(tmp_path / "d.npz")), "profemu"))
    folder = RunFolder.open(run)
    emulator = folder.emulator()
    assert emulator.input_spec.uses_redshift
    parts = report._design_parts(folder, emulator, ds)
    for key in ("sensitivity", "suggestions"):
        assert "data:image/png;base64," in parts[key], parts[key][:300]
        assert "median, z = 0.5" in parts[key]


def test_the_physics_section_says_what_the_structure_applies(trained: tuple[Path, ProfileDataset]) -> None:
    """The physics lines name a monotone head only when there is one, and the gas-fraction bound and
    the ideal-gas temperature exactly where the transforms apply them."""
    run, _ = trained
    emulator = RunFolder.open(run).emulator()
    t = emulator.transforms
    text = "\n".join(report._physics_lines(emulator))
    assert not emulator.model_config.monotone_head and "monotone fields: none built in" in text
    gas = "gas-fraction bound: " + (", ".join(t.gas_fraction_fields) if t.gas_fraction_fields else "not applied")
    assert gas in text
    assert ("ideal-gas temperature: temp predicted as pth / rho" in text) == bool(t.ideal_gas)
