"""Inference on CAP observables: the log posterior against an independent numpy Gaussian, its
gradient against finite differences, χ², the YAML spec and the one-unit results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from profemu._files import write_result_folder
from profemu.errors import ConfigError, DataError
from profemu.inference.observables import (
    CAPTerm,
    cap_chi2,
    make_cap_posterior,
    read_observation_spec,
)
from profemu.observables import ForwardModel, PopulationModel
from tests.observables.synthetic import (
    APERTURES,
    DUST,
    TRUTH,
    gaussian_beam,
    mass_distribution,
    measurement,
)
from tests.reliability import TinyRun, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture(scope="module")
def terms(run: TinyRun) -> list[CAPTerm]:
    ell, bl = gaussian_beam()
    out = []
    for kind in ("ksz", "tsz"):
        fm = ForwardModel.build(kind=kind, redshift=0.55, apertures_arcmin=APERTURES, beam_ell=ell, beam_bl=bl,
                                omega_m=0.3, h=0.6711, frequency_ghz=150.0 if kind == "tsz" else None)
        model = PopulationModel.build(run.emulator, fm, mass_distribution())
        values = model.predict(TRUTH).mean[0] * 1.1 + (0.5 * DUST if kind == "tsz" else 0.0)
        out.append(CAPTerm(measurement(kind, values), model, template=DUST if kind == "tsz" else None,
                           template_name="dust"))
    return out


def numpy_loglike(terms: list[CAPTerm], params: np.ndarray, dust_amplitude: float) -> float:
    """Gaussian log likelihood from the numpy prediction path and scipy (independent of the JAX core)."""
    d, m, blocks = [], [], []
    for t in terms:
        pred = t.model.predict(params)
        model = pred.mean[0] + (dust_amplitude * t.template if t.template is not None else 0.0)
        d.append(t.measurement.values)
        m.append(model)
        blocks.append(t.measurement.covariance + pred.linearised[0])
    n = sum(b.shape[0] for b in blocks)
    cov = np.zeros((n, n))
    i = 0
    for b in blocks:
        cov[i:i + b.shape[0], i:i + b.shape[0]] = b
        i += b.shape[0]
    return float(multivariate_normal(np.concatenate(m), cov).logpdf(np.concatenate(d)))


def test_log_likelihood_matches_numpy_gaussian(terms: list[CAPTerm]) -> None:
    post = make_cap_posterior(terms, fix={"Omega_m": 0.3, "sigma_8": 0.8}, geometry="fixed")
    assert post.names == ("A_SN1", "A_AGN1", "A_SN2", "A_AGN2", "A_dust_tsz")
    theta = np.array([np.log10(1.5), np.log10(0.7), np.log10(1.3), np.log10(0.8), 0.9])
    params = np.array([0.3, 0.8, 1.5, 0.7, 1.3, 0.8])
    import jax

    got = float(jax.jit(post.log_likelihood)(theta.astype(np.float32)))
    ref = numpy_loglike(terms, params, 0.9)
    assert got == pytest.approx(ref, rel=2e-4, abs=2e-3)
    # the prior: uniform on the box in sampling space (amplitude prior [0, 5])
    width = np.prod(post.space.upper - post.space.lower)
    fn = jax.jit(post.fn)
    assert float(fn(theta.astype(np.float32))) == pytest.approx(ref - np.log(width), rel=2e-4, abs=2e-3)
    assert float(fn(np.array([*theta[:4], 5.5], np.float32))) == -np.inf


def test_gradient_matches_finite_differences(terms: list[CAPTerm]) -> None:
    """Ω_m free with the geometry following it: ∂ log p / ∂θ within 3% of central differences (float32)."""
    import jax

    post = make_cap_posterior(terms, fix={"sigma_8": 0.8})
    assert post.omega_m_param == "Omega_m" and post.names[0] == "Omega_m"
    theta = np.array([0.32, np.log10(1.5), np.log10(0.7), np.log10(1.3), np.log10(0.8), 0.9])
    grad = np.asarray(jax.jit(jax.grad(post.fn))(theta.astype(np.float32)), dtype=float)
    fn = jax.jit(post.fn)
    step = 3e-3
    fd = np.array([(float(fn((theta + step * e).astype(np.float32))) - float(fn((theta - step * e).astype(np.float32))))
                   / (2 * step) for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=0.03, atol=0.02 * np.abs(fd).max())
    # geometry: moving Omega_m changes the model even with every emulator input else fixed
    fixed = make_cap_posterior(terms, fix={"sigma_8": 0.8}, geometry="fixed")
    assert float(jax.jit(jax.grad(fixed.fn))(theta.astype(np.float32))[0]) != pytest.approx(float(grad[0]), rel=1e-3)


def test_chi2_at_a_point(terms: list[CAPTerm]) -> None:
    post = make_cap_posterior(terms[:1], fix={"Omega_m": 0.3, "sigma_8": 0.8}, geometry="fixed")
    theta = np.log10(TRUTH[2:])
    fit = cap_chi2(post, theta)
    pred = terms[0].model.predict(TRUTH)
    r = terms[0].measurement.values - pred.mean[0]
    ref = r @ np.linalg.solve(terms[0].measurement.covariance + pred.linearised[0], r)
    assert fit["chi2"] == pytest.approx(ref, rel=1e-3)
    assert fit["n_data"] == 9 and fit["dof"] == 5
    from scipy.stats import chi2

    assert fit["p_value"] == pytest.approx(chi2.sf(fit["chi2"], 5), rel=1e-9)


def test_with_values_shares_the_compiled_function(terms: list[CAPTerm]) -> None:
    post = make_cap_posterior(terms[:1], fix={"Omega_m": 0.3, "sigma_8": 0.8})
    other = post.with_values(post.data["d"] * 2.0)
    assert other.structure == post.structure and other._core is post._core
    with pytest.raises(DataError, match="values: shape"):
        post.with_values(np.ones(3))


def test_term_checks(terms: list[CAPTerm]) -> None:
    with pytest.raises(DataError, match="kind"):
        CAPTerm(terms[1].measurement, terms[0].model)
    tsz = terms[1]
    with pytest.raises(DataError, match=r"would share the free amplitude\(s\) \['A_dust_tsz'\]; give each "
                                        r"measurement a label"):
        make_cap_posterior([tsz, tsz])
    labelled = [CAPTerm(tsz.measurement, tsz.model, template=tsz.template, template_name="dust", label=lab)
                for lab in ("f090", "f150")]
    assert make_cap_posterior(labelled).names[-2:] == ("A_dust_tsz_f090", "A_dust_tsz_f150")
    with pytest.raises(DataError, match="two_halo_free"):
        CAPTerm(terms[0].measurement, terms[0].model, two_halo_free=True)
    with pytest.raises(DataError, match="amplitude bounds: unknown"):
        make_cap_posterior(terms, amplitude_bounds={"A_2h_ksz": (0.0, 2.0)})


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "pattern"), [
    ("observable: ksz\nmeasured: a.txt\nbeam: b.txt\nredshift: 0.5\nmass_distribution: m.csv\ncolour: red\n",
     r"unknown key\(s\) \['colour'\]"),
    ("observable: ksz\nmeasured: a.txt\nredshift: 0.5\nmass_distribution: m.csv\n", r"observation.beam: missing"),
    ("observable: ksz\nmeasured: a.txt\nbeam: b.txt\nresponse: r.txt\nredshift: 0.5\nmass_distribution: m.csv\n",
     r"response: a band response applies to tsz only"),
    ("observable: xsz\nmeasured: a.txt\nbeam: b.txt\nredshift: 0.5\nmass_distribution: m.csv\n",
     r"observable: 'xsz'"),
    ("observable: ksz\nmeasured: a.txt\nbeam: b.txt\nredshift: -1\nmass_distribution: m.csv\n",
     r"redshift: -1 must be a finite positive number"),
    ("observations: []\n", r"'observations' must be a non-empty list"),
    ("observable: tsz\nmeasured: a.txt\nbeam: b.txt\nredshift: 0.5\nmass_distribution: m.csv\n",
     r"observation: tsz needs its band: give exactly one of response .* and frequency_ghz"),
    ("observable: tsz\nmeasured: a.txt\nbeam: b.txt\nresponse: r.txt\nfrequency_ghz: 90\nredshift: 0.5\n"
     "mass_distribution: m.csv\n", r"observation: tsz needs its band: give exactly one of"),
    ("observable: ksz\nmeasured: a.txt\nbeam: b.txt\nfrequency_ghz: 90\nredshift: 0.5\nmass_distribution: m.csv\n",
     r"observation.frequency_ghz: the band applies to tsz only"),
    ("observable: tsz\nmeasured: a.txt\nbeam: b.txt\nfrequency_ghz: 90\nv_rms_kms: 300\nredshift: 0.5\n"
     "mass_distribution: m.csv\n", r"observation.v_rms_kms: the rms velocity applies to ksz only"),
    ("observable: ksz\nmeasured: a.txt\nbeam: b.txt\nlabel: f 090\nredshift: 0.5\nmass_distribution: m.csv\n",
     r"observation.label: 'f 090'; use letters, digits and '_'"),
])
def test_spec_errors(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        read_observation_spec(write_spec(tmp_path / "spec.yaml", text))


def test_spec_paths_are_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    spec = read_observation_spec(write_spec(tmp_path / "sub" / "spec.yaml", (
        "observations:\n"
        "  - {observable: ksz, measured: k.txt, covariance: kc.txt, beam: b.txt, redshift: 0.55,"
        " mass_distribution: m.csv}\n"
        "  - {observable: tsz, measured: /abs/t.txt, beam: b.txt, response: r.txt, redshift: 0.55,"
        " mass_distribution: m.csv, template: d.csv}\n"
        "fix: {Omega_m: 0.3}\nchains: 2\n")))
    assert spec.terms[0]["measured"] == tmp_path / "sub" / "k.txt"
    assert spec.terms[1]["measured"] == Path("/abs/t.txt")
    assert spec.fix == {"Omega_m": 0.3} and spec.sampler["chains"] == 2 and spec.geometry == "follow"
    assert spec.input_files()["tsz template"] == tmp_path / "sub" / "d.csv"


def test_fit_folder_is_written_as_one_unit(tmp_path: Path) -> None:
    out = tmp_path / "fit"

    def text(s: str) -> Any:
        return lambda p: p.write_text(s)

    write_result_folder(out, {"a.txt": text("1"), "b.txt": text("2")})
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(DataError, match="not empty; pass --force"):
        write_result_folder(out, {"a.txt": text("3")})

    def broken(p: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_result_folder(out, {"a.txt": text("3"), "b.txt": broken}, force=True)
    assert (out / "a.txt").read_text() == "1"  # the earlier results are untouched
    assert [p.name for p in tmp_path.iterdir()] == ["fit"]  # no temporary folder left
    # --force replaces an earlier result of the same command, not a folder of other files
    with pytest.raises(DataError, match=r"holds a\.txt, b\.txt, which this command does not write"):
        write_result_folder(out, {"c.txt": text("4")}, force=True)
    write_result_folder(out, {"c.txt": text("4")}, force=True, names=("a.txt", "b.txt", "c.txt"))
    assert [p.name for p in out.iterdir()] == ["c.txt"]


def test_with_values_moves_fixed_parameters_and_refuses_scaled_radii(terms: list[CAPTerm]) -> None:
    """Another value of a fixed parameter through the data (same compiled function) matches the
    numpy likelihood at that value; mass bins cannot move for an emulator of r/R200c radii."""
    import jax

    post = make_cap_posterior(terms[:1], fix={"Omega_m": 0.3, "sigma_8": 0.8}, geometry="fixed")
    other = post.with_values(post.data["d"], fixed={"sigma_8": 0.7})
    assert other.space.fixed["sigma_8"] == 0.7 and other._core is post._core
    theta = np.log10(TRUTH[2:]).astype(np.float32)
    got = float(jax.jit(other.log_likelihood)(theta))
    assert got == pytest.approx(numpy_loglike(terms[:1], np.array([0.3, 0.7, *TRUTH[2:]]), 0.0), rel=2e-4, abs=2e-3)
    assert got != pytest.approx(float(jax.jit(post.log_likelihood)(theta)), rel=1e-4)
    with pytest.raises(DataError, match="not fixed parameters"):
        post.with_values(post.data["d"], fixed={"A_SN1": 1.0})
    with pytest.raises(DataError, match="r/R_Delta"):
        post.with_values(post.data["d"], masses=[(np.array([12.6, 13.2, 13.7]), np.full(3, 1 / 3))])


def test_spec_band_velocity_label_and_redshift(run: TinyRun, tmp_path: Path) -> None:
    """Per-measurement frequency, v_rms and label reach the forward models and the amplitudes'
    names; a measurement file's own redshift must agree with the spec's; a profemu-cap file
    with a separate covariance is refused."""
    from profemu.inference.observables import build_terms
    from tests.observables.synthetic import write_beam, write_mass_distribution, write_measurement

    write_beam(tmp_path / "beam.txt")
    write_mass_distribution(tmp_path / "masses.csv")
    zero = np.full(APERTURES.size, 1.0)
    write_measurement(tmp_path / "k.cap", measurement("ksz", zero))
    write_measurement(tmp_path / "t.cap", measurement("tsz", -zero))
    common = "beam: beam.txt, redshift: 0.55, mass_distribution: masses.csv"
    spec = read_observation_spec(write_spec(tmp_path / "spec.yaml", (
        "observations:\n"
        f"  - {{observable: ksz, measured: k.cap, v_rms_kms: 250, {common}}}\n"
        f"  - {{observable: tsz, measured: t.cap, frequency_ghz: 90, label: f090, two_halo_free: false, {common}}}\n"
        f"  - {{observable: tsz, measured: t.cap, frequency_ghz: 220, label: f220, {common}}}\n")))
    ksz, t90, t220 = build_terms(run.emulator, spec)
    assert ksz.model.forward.v_rms_kms == 250.0 and t90.label == "f090"
    assert "90 GHz" in t90.model.forward.angular.response_note
    assert any("band: non-relativistic f(nu) T_CMB at 220 GHz" in n for n in t220.model.notes)
    cap90, cap220 = (t.model.predict(TRUTH).mean[0] for t in (t90, t220))
    assert np.all(cap90 < 0) and np.all(cap220 > 0)  # the tSZ decrement becomes an increment above 217.5 GHz
    (tmp_path / "t.cap").write_text((tmp_path / "t.cap").read_text().replace("# kind: tsz", "# kind: tsz\n# redshift: 0.7"))
    with pytest.raises(DataError, match=r"redshift: the spec says 0.55 but .*t.cap' states '# redshift: 0.7'"):
        build_terms(run.emulator, spec)
    bad = read_observation_spec(write_spec(tmp_path / "bad.yaml", f"observable: ksz\nmeasured: k.cap\n"
                                           f"covariance: k.cap\n{common.replace(', ', chr(10))}\n"))
    with pytest.raises(ConfigError, match=r"covariance: .*k.cap' is a profemu-cap file, which carries its own"):
        build_terms(run.emulator, bad)
