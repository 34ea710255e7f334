"""Simulation design: candidates, scores, greedy batch selection, the hole test, files and CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from profemu.design import (
    DesignSpace,
    candidate_points,
    design_space,
    greedy_batch,
    like_columns,
    read_design_table,
    suggest,
    suggestion_figure,
    write_like_table,
    write_suggestion_csv,
)
from profemu.errors import ConfigError, DataError, FormatError
from tests.conftest import SHARED_DATA
from tests.helpers import stderr_error_lines
from tests.reliability import TinyRun, tiny_run

REPO = Path(__file__).resolve().parents[1]
LH6 = ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.mktemp("tiny"))


def _in_hole(omega_m: np.ndarray, a_agn1: np.ndarray) -> np.ndarray:
    """Omega_m in the lower half of [0.1, 0.5] and A_AGN1 in the top quarter of [0.25, 4] in log10."""
    return (omega_m < 0.3) & (a_agn1 > 2.0)


@pytest.fixture(scope="module")
def hole_emulator():
    """An 8-member ensemble trained on the lh6 mock with every simulation in the hole removed."""
    from profemu.config import Config
    from profemu.data.mock import make_mock_universe
    from profemu.runs.training import train_emulator

    ds = make_mock_universe(n=1200, seed=1, param_set="lh6", n_r=8, n_mass_per_sim=2).dataset
    ds = ds.select_fields(["rho", "pth"])
    hole = _in_hole(ds.params[:, 0], ds.params[:, 3])
    assert 0.08 < hole.mean() < 0.17  # about 1/8 of the prior volume
    cfg = Config().updated({
        "model.hidden": [32, 32], "train.members": 8, "train.epochs": 80, "train.patience": 0,
        "train.batch_size": 64, "optim.warmup_epochs": 2, "data.test_fraction": 0.0,
        "data.val_fraction": 0.15, "train.log_every": 1000,
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = train_emulator(ds.subset(np.flatnonzero(~hole)), cfg, evaluate_test=False)
    return out.emulator


# ---------------------------------------------------------------------- candidates
def _space() -> DesignSpace:
    return DesignSpace(("a", "b", "c"), np.array([0.1, 0.25, -2.0]), np.array([0.5, 4.0, 3.0]),
                       np.array([False, True, False]))


def test_candidates_fill_the_box_in_sampling_space() -> None:
    space = _space()
    x = candidate_points(space, 4096, seed=3)
    assert x.shape == (4096, 3)
    assert (x >= space.lo).all() and (x <= space.hi).all()
    # linear parameters are uniform in value, log parameters uniform in log10 (Sobol: balanced to < 1%)
    assert abs(np.mean(x[:, 0] < 0.3) - 0.5) < 0.01
    assert abs(np.mean(x[:, 1] < 1.0) - 0.5) < 0.01  # geometric midpoint of [0.25, 4]
    assert np.mean(x[:, 1] < 2.125) > 0.7  # not uniform in value
    np.testing.assert_array_equal(x, candidate_points(space, 4096, seed=3))
    assert not np.allclose(x, candidate_points(space, 4096, seed=4))


def test_candidates_pin_fixed_parameters() -> None:
    space = _space()
    x = candidate_points(space, 512, fix={"b": 2.0}, seed=0)
    np.testing.assert_array_equal(x[:, 1], 2.0)
    assert x[:, 0].std() > 0.05 and x[:, 2].std() > 0.5
    with pytest.raises(ConfigError, match=r"fix: b=9.0 is outside the training box \[0.25, 4\]"):
        candidate_points(space, 8, fix={"b": 9.0})
    with pytest.raises(ConfigError, match=r"fix: 'd' is not a parameter"):
        candidate_points(space, 8, fix={"d": 1.0})
    with pytest.raises(ConfigError, match="every parameter is fixed"):
        candidate_points(space, 8, fix={"a": 0.2, "b": 1.0, "c": 0.0})


def test_design_space_is_the_training_box(tiny: TinyRun) -> None:
    space = design_space(tiny.emulator)
    assert space.names == LH6
    box = tiny.emulator.training_box
    np.testing.assert_allclose(space.lo, [box[n][0] for n in LH6])
    assert list(space.is_log) == [n in tiny.emulator.log_params for n in LH6]
    np.testing.assert_allclose(space.width[3], np.log10(box["A_AGN1"][1] / box["A_AGN1"][0]))


# ---------------------------------------------------------------------- greedy batch
def _posterior(kernel: np.ndarray, chosen: list[int], noise: float) -> np.ndarray:
    """Independent reference: GP posterior variance given noisy observations at ``chosen``."""
    if not chosen:
        return np.diag(kernel).copy()
    k_s = kernel[np.ix_(chosen, chosen)] + noise * np.eye(len(chosen))
    k_xs = kernel[:, chosen]
    return np.diag(kernel) - np.einsum("ij,ij->i", k_xs @ np.linalg.inv(k_s), k_xs)


@pytest.mark.parametrize("local", [False, True])
def test_greedy_batch_is_sequential_gaussian_conditioning(local: bool) -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, 5)).astype(np.float32)
    nugget = rng.uniform(0.0, 0.3, 60)
    score = np.sum(feats.astype(np.float64) ** 2, axis=1) + nugget
    coords = rng.uniform(size=(60, 2))
    ell = 0.4
    kernel = feats.astype(np.float64) @ feats.astype(np.float64).T + np.diag(nugget)
    if local:
        d2 = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
        kernel = kernel * np.exp(-0.5 * d2 / ell**2)
    noise = 0.05
    idx, gain = greedy_batch(feats, score, 12, noise=noise, coords=coords if local else None,
                             length_scale=ell if local else None)
    assert len(set(idx.tolist())) == 12
    for j in range(12):
        post = _posterior(kernel, idx[:j].tolist(), noise)
        post[idx[:j]] = -np.inf
        assert idx[j] == int(np.argmax(post))
        np.testing.assert_allclose(gain[j], post[idx[j]], rtol=1e-4, atol=1e-6)


def test_greedy_batch_skips_a_duplicate_of_a_chosen_point() -> None:
    feats = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 2.9], [0.5, 0.5]], dtype=np.float32)
    score = (feats.astype(np.float64) ** 2).sum(axis=1)
    idx, gain = greedy_batch(feats, score, 2, noise=1e-3)
    assert idx.tolist() == [0, 2]  # top-2 by score would take the copy (row 1)
    assert gain[1] == pytest.approx(score[2], rel=1e-5)


def test_greedy_batch_rejects_bad_arguments() -> None:
    feats, score = np.ones((3, 1), dtype=np.float32), np.ones(3)
    with pytest.raises(ConfigError, match="n: 4 points requested from only 3 candidates"):
        greedy_batch(feats, score, 4, noise=0.1)
    with pytest.raises(ConfigError, match="noise"):
        greedy_batch(feats, score, 1, noise=0.0)
    with pytest.raises(ConfigError, match="coords"):
        greedy_batch(feats, score, 1, noise=0.1, length_scale=0.5)


# ---------------------------------------------------------------------- scores
def test_score_is_the_mean_epistemic_variance_of_predict(tiny: TinyRun) -> None:
    emu = tiny.emulator
    pool = np.unique(tiny.dataset.params, axis=0)[:12]
    masses = [11.5, 13.0, 14.2]
    radius = emu.radius
    radii = (radius[2], radius[5])
    s = suggest(emu, 12, pool=pool, fields=["pth"], radii=radii, log10_mass=masses)
    assert sorted(s.index.tolist()) == list(range(12))
    np.testing.assert_array_equal(s.params, pool[s.index])
    # reference: Emulator.predict's epistemic variance, averaged over masses and the radii 2..5
    rows = np.repeat(pool, 3, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epi = emu.predict(rows, np.tile(masses, 12))["pth"].epistemic
    expected = epi[:, 2:6].reshape(12, 3, 4).mean(axis=(1, 2))
    np.testing.assert_allclose(s.score, expected[s.index], rtol=1e-5)
    assert s.fields == ("pth",) and s.radius.size == 4
    np.testing.assert_allclose(s.log10_mass, masses)
    # the first point chosen is the highest score; gains never exceed scores
    assert s.index[0] == int(np.argmax(expected))
    assert np.all(s.gain <= s.score * (1 + 1e-9))


def test_chunks_and_compression_do_not_change_the_result(tiny: TinyRun) -> None:
    emu = tiny.emulator
    a = suggest(emu, 6, candidates=300, seed=2, chunk_size=100_000, rank_tol=0.0)
    b = suggest(emu, 6, candidates=300, seed=2, chunk_size=7, rank_tol=0.0)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-6)
    np.testing.assert_allclose(a.params, b.params)
    c = suggest(emu, 6, candidates=300, seed=2, rank_tol=0.05)
    assert c.rank < a.rank  # a real compression ...
    np.testing.assert_allclose(c.score[0], a.score[0], rtol=1e-6)  # ... with exact scores


def test_default_mass_grid_spans_the_training_range(tiny: TinyRun) -> None:
    s = suggest(tiny.emulator, 2, candidates=64, mass_points=4)
    lo, hi = tiny.emulator.training_box["log10_mass"]
    np.testing.assert_allclose(s.log10_mass, lo + (np.arange(4) + 0.5) * (hi - lo) / 4)
    for name in LH6:
        blo, bhi = tiny.emulator.training_box[name]
        assert np.all((s.points[name] >= blo) & (s.points[name] <= bhi))


def test_suggest_rejects_bad_input_with_one_clear_message(tiny: TinyRun) -> None:
    emu = tiny.emulator
    with pytest.raises(ConfigError, match=r"fields: \['temp'\] are not fields of the emulator; choose from"):
        suggest(emu, 2, candidates=64, fields=["temp"])
    with pytest.raises(ConfigError, match="radii: no radius of the emulator lies in"):
        suggest(emu, 2, candidates=64, radii=(100.0, 200.0))
    with pytest.raises(ConfigError, match=r"fix: Omega_m=2.0 is outside the training box"):
        suggest(emu, 2, candidates=64, fix={"Omega_m": 2.0})
    with pytest.raises(ConfigError, match="n: 65 points requested from only 64 candidates"):
        suggest(emu, 65, candidates=64)
    with pytest.raises(ConfigError, match="cannot pin parameters of a given pool"):
        suggest(emu, 1, pool=tiny.dataset.params[:3], fix={"Omega_m": 0.3})
    with pytest.raises(DataError, match=r"pool: expected an array \[N, 6\]"):
        suggest(emu, 1, pool=np.ones((3, 5)))
    with pytest.raises(DataError, match=r"pool: unknown \['sigma8'\] and missing \['sigma_8'\]"):
        suggest(emu, 1, pool={**{n: [0.3] for n in LH6 if n != "sigma_8"}, "sigma8": [0.8]})
    with pytest.raises(ConfigError, match="pk_ratio: this emulator was trained without P"):
        suggest(emu, 1, candidates=8, pk_ratio=np.ones(3))
    with pytest.raises(ConfigError, match="suggest needs an ensemble"):
        suggest(SimpleNamespace(members=1), 1)


def test_fixed_parameters_stay_fixed(tiny: TinyRun) -> None:
    s = suggest(tiny.emulator, 4, candidates=128, fix={"Omega_m": 0.3, "A_SN1": 1.0})
    np.testing.assert_array_equal(s.points["Omega_m"], 0.3)
    np.testing.assert_array_equal(s.points["A_SN1"], 1.0)
    assert s.fixed == {"Omega_m": 0.3, "A_SN1": 1.0}


# ---------------------------------------------------------------------- the hole
def test_suggested_points_fall_in_a_hole_of_the_design(hole_emulator) -> None:
    n = 16
    s = suggest(hole_emulator, n, candidates=4096, seed=0)
    in_hole = _in_hole(s.points["Omega_m"], s.points["A_AGN1"])
    # random points of the box fall in the hole 1/8 of the time; most suggestions must
    candidates = candidate_points(hole_emulator, 4096, seed=0)
    random_pick = candidates[np.random.default_rng(0).choice(4096, n, replace=False)]
    assert _in_hole(random_pick[:, 0], random_pick[:, 3]).mean() < 0.3
    assert in_hole.mean() >= 0.6, in_hole.mean()
    # and the scores say why: the hole's candidates are the least certain
    all_scores = suggest(hole_emulator, 1, pool=candidates)
    assert all_scores.index[0] in np.flatnonzero(_in_hole(candidates[:, 0], candidates[:, 3]))


# ---------------------------------------------------------------------- files
def test_csv_has_one_column_per_parameter_and_is_not_overwritten(tiny: TinyRun, tmp_path: Path) -> None:
    s = suggest(tiny.emulator, 5, candidates=128)
    out = write_suggestion_csv(s, tmp_path / "next.csv")
    with out.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [*LH6, "score", "gain"]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, :6], s.params, rtol=1e-9)
    np.testing.assert_allclose(table[:, 6], s.score, rtol=1e-5)
    before = out.read_text()
    with pytest.raises(DataError, match="already exists; pass --force"):
        write_suggestion_csv(s, out)
    assert out.read_text() == before
    write_suggestion_csv(s, out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next.csv"]  # no temporary file left


def _lh_table(path: Path, extra: bool = False) -> Path:
    cols = ["A_SN1", "Omega_m", "A_AGN2", "sigma_8", "A_SN2", "A_AGN1"] + (["Extra"] if extra else [])
    rng = np.random.default_rng(0)
    lines = ["#Name " + " ".join(cols) + " seed"]
    for i, seed in enumerate([7, 3, 12, 5]):
        lines.append(f"    LH_{i} " + " ".join(f"{v:.5g}" for v in rng.uniform(0.5, 1.5, len(cols))) + f" {seed}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_like_table_keeps_the_layout_names_and_seeds(tiny: TinyRun, tmp_path: Path) -> None:
    s = suggest(tiny.emulator, 3, candidates=128)
    like = _lh_table(tmp_path / "CosmoAstroSeed_LH.txt")
    out = write_like_table(s, like, tmp_path / "next.txt")
    back = read_design_table(out)
    original = read_design_table(like)
    assert back.header == original.header
    assert back.param_names == original.param_names
    assert back.names == ("LH_4", "LH_5", "LH_6")
    assert back.seeds.tolist() == [13, 14, 15]
    for j, name in enumerate(back.param_names):  # columns by name, not by position
        np.testing.assert_allclose(back.values[:, j], s.points[name], rtol=1e-5)


def test_like_table_columns_must_all_be_covered(tiny: TinyRun, tmp_path: Path) -> None:
    s = suggest(tiny.emulator, 2, candidates=64)
    like = _lh_table(tmp_path / "t.txt", extra=True)
    with pytest.raises(DataError, match=r"column\(s\) \['Extra'\] are not parameters of the emulator; give their "
                                        r"values for the new simulations with --fix NAME=VALUE"):
        write_like_table(s, like, tmp_path / "next.txt")
    assert not (tmp_path / "next.txt").exists()
    write_like_table(s, like, tmp_path / "next.txt", values={"Extra": 0.75})
    back = read_design_table(tmp_path / "next.txt")
    np.testing.assert_array_equal(back.values[:, -1], 0.75)


def test_read_design_table_reports_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("#Name a b seed\n X_0 1 2 3\n X_1 1 oops 4\n")
    with pytest.raises(FormatError, match="line 3: a parameter or seed is not a number"):
        read_design_table(bad)
    bad.write_text("Name a b seed\n")
    with pytest.raises(FormatError, match="the first line must be the header"):
        read_design_table(bad)


def test_real_sb35_table_is_read_and_names_are_matched_exactly() -> None:
    path = SHARED_DATA / "camels_sb35" / "CosmoAstroSeed_IllustrisTNG_L50n512_SB35.txt"
    if not path.is_file():
        pytest.skip(f"SB35 table not found at {path}")
    table = read_design_table(path)
    assert len(table.param_names) == 35 and len(table.names) == 2048
    assert table.names[-1] == "SB35_2047"
    with pytest.raises(DataError, match=r"the emulator's parameter\(s\) \['Omega_m', 'sigma_8'"):
        like_columns(table, LH6)
    assert like_columns(table, table.param_names) == {}


def test_figure_shows_points_over_the_design(tiny: TinyRun) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    s = suggest(tiny.emulator, 5, candidates=128)
    fig = suggestion_figure(s, design=tiny.dataset, parameters=("Omega_m", "A_AGN1"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Omega_m" and ax.get_ylabel() == "A_AGN1"
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [5, tiny.dataset.n]
    assert matplotlib.get_backend() == backend


# ---------------------------------------------------------------------- CLI and imports
def _invoke(*args: str):
    from profemu.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_suggest_writes_the_csv(tiny: TinyRun, tmp_path: Path) -> None:
    out = tmp_path / "next.csv"
    r = _invoke("suggest", tiny.run_dir, "--n", "4", "--candidates", "256", "--fields", "rho",
                "--radii", f"{tiny.emulator.radius[1]},{tiny.emulator.radius[4]}", "--fix", "sigma_8=0.8",
                "--out", out)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "4 simulation(s) suggested from 256 candidates" in r.stdout
    logs = ", ".join(tiny.emulator.log_params)
    assert "parameters in linear units" + (f", log-sampled: {logs}" if logs else "") in r.stdout.replace("\n", " ")
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and all(float(row["sigma_8"]) == 0.8 for row in rows)
    again = _invoke("suggest", tiny.run_dir, "--n", "4", "--candidates", "256", "--out", out)
    assert again.exit_code == 2 and again.stderr.strip().splitlines() == [
        f"error: --out {str(out)!r} already exists; pass --force to overwrite it or choose another --out."]


def test_cli_suggest_like_table(tiny: TinyRun, tmp_path: Path) -> None:
    like = _lh_table(tmp_path / "t.txt", extra=True)
    out = tmp_path / "next.txt"
    r = _invoke("suggest", tiny.run_dir / "emulator", "--n", "2", "--candidates", "64", "--like", like,
                "--fix", "Extra=0.5", "--out", out)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert read_design_table(out).names == ("LH_4", "LH_5")


@pytest.mark.parametrize(("args", "needle"), [
    (["--fix", "Omega_m=9"], "fix: Omega_m=9.0 is outside the training box"),
    (["--fix", "Omega_m"], "--fix 'Omega_m': expected NAME=VALUE"),
    (["--fix", "Nope=1"], "--fix: ['Nope'] are not parameters of the emulator"),
    (["--fields", "rho,temp"], "fields: ['temp'] are not fields of the emulator"),
    (["--radii", "3"], "--radii '3': expected two numbers lo,hi"),
])
def test_cli_suggest_user_errors(tiny: TinyRun, tmp_path: Path, args: list[str], needle: str) -> None:
    r = _invoke("suggest", tiny.run_dir, "--n", "2", "--candidates", "64", "--out", tmp_path / "x.csv", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = stderr_error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not (tmp_path / "x.csv").exists()


def test_cli_rejects_a_folder_without_an_emulator(tmp_path: Path) -> None:
    r = _invoke("suggest", tmp_path, "--n", "2", "--out", tmp_path / "x.csv")
    assert r.exit_code == 2
    assert "neither a run folder (no emulator/manifest.json) nor an emulator folder" in r.stderr


def test_design_modules_and_suggest_do_not_import_jax(tiny: TinyRun) -> None:
    code = (
        "import sys; import profemu.design as d, profemu.design.derivatives, profemu.cli.design; "
        "from profemu.emulator.locate import load_emulator; "
        "assert 'jax' not in sys.modules, 'import'; "
        f"emu = load_emulator({str(tiny.run_dir)!r}); d.suggest(emu, 2, candidates=64); "
        "assert 'jax' not in sys.modules, 'suggest'"
    )
    env = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------- benchmark bookkeeping
def _fake_study(active: list[float], random: list[float]) -> dict:
    sizes = [100, 200, 300]
    def rounds(curve: list[float]) -> list[dict]:
        return [{"n": n, "overall": {"frac_err_median": v, "frac_err_p95": 3 * v}, "picked_edge_mean": 0.4}
                for n, v in zip(sizes, curve, strict=True)]
    return {"seed": 0, "strategies": {"active": rounds(active), "random": rounds(random)}}


def test_benchmark_counts_simulations_needed_to_reach_random_error() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.design import markdown, simulations_to_match, summarise

    assert simulations_to_match([100, 200, 300], [0.10, 0.06, 0.05], 0.08) == pytest.approx(150.0)
    assert simulations_to_match([100, 200, 300], [0.10, 0.06, 0.05], 0.2) == 100.0
    assert simulations_to_match([100, 200, 300], [0.10, 0.06, 0.05], 0.01) is None

    runs = [_fake_study([0.10, 0.06, 0.05], [0.10, 0.08, 0.06]),
            _fake_study([0.10, 0.07, 0.05], [0.10, 0.09, 0.07]),
            _fake_study([0.10, 0.20, 0.05], [0.10, 0.07, 0.065])]
    summ = summarise(runs, [100, 200, 300])
    med = summ["frac_err_median"]
    np.testing.assert_allclose(med["median_over_seeds"]["active"], [0.10, 0.07, 0.05])
    np.testing.assert_allclose(med["median_over_seeds"]["random"], [0.10, 0.08, 0.065])
    assert med["random_last"] == pytest.approx(0.065)
    assert med["n_to_reach_random_last"] == {"active": 300, "random": 300}
    runs[0]["strategies"]["active"][1]["overall"]["frac_err_median"] = 0.01
    runs[1]["strategies"]["active"][1]["overall"]["frac_err_median"] = 0.01
    assert summarise(runs, [100, 200, 300])["frac_err_median"]["n_to_reach_random_last"]["active"] == 200
    study = {"sizes": [100, 200, 300], "summary": summarise(runs, [100, 200, 300]), "runs": runs,
             "n_simulations": 1000, "n_rows": 2000, "fields": ["rho", "pth"], "n_test_simulations": 200,
             "n_pool_simulations": 800, "seeds": [0, 1, 2], "known_truth": False, "pool_edge_mean": 0.42,
             "label": "x"}
    text = markdown({"camels": study, "quick": False, "figures": {}})
    assert "| 200 | 1.0% | 8.0% | 21.0% | 24.0% |" in text
    assert "active: 200; random: 300" in text


def test_cli_suggest_passes_the_redshift(tiny: TinyRun, tmp_path: Path) -> None:
    """--redshift reaches suggest: the tiny emulator's own training redshift is accepted, another is
    refused with the emulator's one-line message (an emulator with a redshift input needs it)."""
    z = tiny.emulator.training_box.get("redshift", (0.0, 0.0))[0]
    ok = _invoke("suggest", tiny.run_dir, "--n", "2", "--candidates", "128", "--redshift", z, "--out",
                 tmp_path / "a.csv")
    assert ok.exit_code == 0, (ok.stdout, ok.stderr)
    bad = _invoke("suggest", tiny.run_dir, "--n", "2", "--candidates", "128", "--redshift", z + 1.5, "--out",
                  tmp_path / "b.csv")
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.exit_code == 2 and len(errors) == 1 and errors[0].startswith(f"error: redshift: {z + 1.5:g}, but this")
    assert not (tmp_path / "b.csv").exists()


def test_a_redshift_outside_the_training_redshifts_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """suggest/sensitivity at a redshift beyond the emulator's training redshifts say the scores
    there are extrapolations (a mass outside the range is flagged too)."""
    import logging

    from profemu.design.space import _extra_inputs

    emu = SimpleNamespace(training_box={"redshift": (0.0, 1.0)}, transforms=SimpleNamespace(k=None))
    with caplog.at_level(logging.WARNING, logger="profemu.design"):
        assert _extra_inputs(emu, None, None, 0.5) == (None, 0.5)
        assert not caplog.records
        assert _extra_inputs(emu, None, None, 5.0) == (None, 5.0)
    assert len(caplog.records) == 1 and "redshift 5 is outside the training redshifts [0, 1]" in caplog.text
