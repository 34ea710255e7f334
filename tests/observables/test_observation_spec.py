"""The observation spec of ``profemu infer --observation``: one halo mass, unknown keys, the
emulator's own h, a P(k) file, and CSV / .npy measurement files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from profemu.errors import ConfigError
from profemu.inference.observables import build_terms, read_observation_spec
from tests.observables.synthetic import APERTURES, measurement, write_beam, write_mass_distribution
from tests.observables.tiny_sb35 import tiny_sb35_run
from tests.reliability import TinyRun, tiny_run

VALUES = np.linspace(-0.5, -4.0, APERTURES.size)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory.getbasetemp() / "tiny_run")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("spec_files")
    write_beam(d / "beam.txt")
    write_mass_distribution(d / "masses.csv")
    meas = measurement("tsz", VALUES)
    (d / "values.csv").write_text("theta_arcmin,value,error\n" + "".join(
        f"{a!r},{v!r},{e!r}\n" for a, v, e in zip(APERTURES.tolist(), VALUES.tolist(), meas.sigma.tolist(),
                                                  strict=True)))
    np.save(d / "cov.npy", meas.covariance)
    return d


def spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    head = ("observable: tsz\nmeasured: values.csv\ncovariance: cov.npy\nunits: muK_arcmin2\nbeam: beam.txt\n"
            "frequency_ghz: 150\nredshift: 0.55\n")
    path = folder / name
    path.write_text(head + text)
    return path


def test_one_halo_mass_and_csv_npy_files(run: TinyRun, folder: Path) -> None:
    """log10_mass: 13.4 is one mass bin (as observe --log10-mass); a CSV with a header and a .npy
    covariance are read."""
    terms = build_terms(run.emulator, read_observation_spec(spec(folder, "log10_mass: 13.4\n")))
    np.testing.assert_allclose(terms[0].model.log10_mass, [13.4])
    np.testing.assert_allclose(terms[0].model.weights, [1.0])
    np.testing.assert_allclose(terms[0].measurement.values, VALUES)
    np.testing.assert_allclose(terms[0].measurement.covariance, measurement("tsz", VALUES).covariance)
    with pytest.raises(ConfigError, match=r"give exactly one of mass_distribution .* and log10_mass"):
        read_observation_spec(spec(folder, "log10_mass: 13.4\nmass_distribution: masses.csv\n"))


def test_unknown_keys_are_named_first(folder: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['log10_mas'\]; valid keys are"):
        read_observation_spec(spec(folder, "log10_mas: 13.4\n"))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['beam'\].*inside each item of 'observations'"):
        path = folder / "several.yaml"
        path.write_text("beam: beam.txt\nobservations:\n  - observable: ksz\n")
        read_observation_spec(path)


def test_h_of_an_emulator_with_an_h_parameter_is_refused(run: TinyRun, folder: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    sb35 = tiny_sb35_run(tmp_path_factory.getbasetemp() / "tiny_sb35", with_pk=False).emulator
    with_h = read_observation_spec(spec(folder, "mass_distribution: masses.csv\nh: 0.674\n"))
    with pytest.raises(ConfigError, match=r"^h: 0.674 in .* the emulator has the parameter 'h'.*drop h from the spec"):
        build_terms(sb35, with_h)
    assert build_terms(run.emulator, with_h)[0].model.forward.h == 0.674  # lh6: h is not a parameter
    terms = build_terms(sb35, read_observation_spec(spec(folder, "mass_distribution: masses.csv\nfix: {h: 0.8}\n")))
    assert terms[0].model.forward.h == 0.8  # a fixed h parameter sets the forward model


def test_pk_ratio_file_in_the_spec(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from profemu.emulator.tables import fiducial_pk_ratio

    root = tmp_path_factory.getbasetemp() / "tiny_sb35"
    emu = tiny_sb35_run(root, with_pk=True).emulator
    default = build_terms(emu, read_observation_spec(spec(folder, "mass_distribution: masses.csv\n")))
    np.testing.assert_array_equal(default[0].model.pk_ratio, fiducial_pk_ratio(emu))
    pk = np.linspace(0.9, 1.0, 79)
    np.savetxt(folder / "pk.txt", pk)
    path = spec(folder, "mass_distribution: masses.csv\npk_ratio: pk.txt\n")
    parsed = read_observation_spec(path)
    assert parsed.input_files()["pk_ratio"] == folder / "pk.txt"
    np.testing.assert_allclose(build_terms(emu, parsed)[0].model.pk_ratio, pk)
    nopk = tiny_sb35_run(root, with_pk=False).emulator
    with pytest.raises(ConfigError, match=r"^pk_ratio: .* this emulator was trained without P\(k\)"):
        build_terms(nopk, parsed)
