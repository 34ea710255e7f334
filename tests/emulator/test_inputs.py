"""The one check of raw emulator inputs: shapes, broadcasting, numbers, physical ranges."""

from __future__ import annotations

import numpy as np
import pytest

from profemu.emulator.inputs import InputSpec, check_inputs
from profemu.errors import DataError

SPEC = InputSpec(("Omega_m", "sigma_8", "A_SN1"), log_params=("A_SN1",), n_k=4, uses_redshift=False,
                 training_redshift=0.5, log10_mass_box=(11.0, 12.5))
P = np.array([0.3, 0.8, 1.0])
PK = np.ones(4)


def test_broadcasting_and_a_dict_by_name() -> None:
    one = check_inputs(SPEC, P, 12.0, PK)
    assert one.single and one.params.shape == (1, 3) and one.pk_ratio.shape == (1, 4)
    many = check_inputs(SPEC, P, np.linspace(11, 12, 5), PK)
    assert not many.single and many.n == 5 and many.pk_ratio.shape == (5, 4)
    named = check_inputs(SPEC, {"sigma_8": [0.8, 0.9], "A_SN1": [1, 2], "Omega_m": [0.3, 0.3]}, 12.0, PK)
    np.testing.assert_array_equal(named.params[:, 0], [0.3, 0.3])
    one_by_name = check_inputs(SPEC, {"sigma_8": 0.8, "A_SN1": 1.0, "Omega_m": 0.3}, 12.0, PK)
    assert one_by_name.single and one_by_name.params.tolist() == [[0.3, 0.8, 1.0]]  # like one row [p]
    assert check_inputs(SPEC, P, 12.0, PK, redshift=0.5).redshift is None  # the training redshift: fine


@pytest.mark.parametrize(("args", "needle"), [
    ((np.ones((2, 4)), [12.0, 12.0], PK), r"expected 3 parameters"),
    ((P, [12.0, 12.1], None), r"pk_ratio: this emulator needs"),
    ((np.tile(P, (2, 1)), [12.0, 12.1, 12.2], PK), r"log10_mass: 3 values for 2 rows"),
    ((np.array([0.3, 0.8, -0.5]), 12.0, PK), r"params\['A_SN1'\]: -0.5 <= 0.*log-sampled"),
    ((np.array([0.3, 0.8, 1e300]), 12.0, PK), r"params: 1e\+300 at row 0, column 'A_SN1' is not a finite float32"),
    ((P, 3e11, PK), r"log10_mass: 3e\+11 is not a halo mass.*did you pass M instead of log10 M\? log10\(3e\+11\) = 11\.477"),
    ((P, -11.5, PK), r"log10_mass: -11\.5 is not a halo mass.*training range 11\.*12\.5"),
    ((np.array([0.3 + 1j, 0.8, 1.0]), 12.0, PK), r"params: complex values"),
    (([[0.3, 0.8], [0.3, 0.8, 1.0]], 12.0, PK), r"params: ragged"),
    ((P, "heavy", PK), r"log10_mass: expected numbers"),
    ((P, 12.0, np.ones(5)), r"pk_ratio: expected shape \[n, 4\]"),
    (({"Omega_m": 0.3, "sigma8": 0.8, "A_SN1": 1.0}, 12.0, PK), r"unknown \['sigma8'\] and missing \['sigma_8'\]"),
])
def test_bad_inputs_give_one_line_naming_the_value_and_fix(args: tuple, needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        check_inputs(SPEC, *args)


def test_redshift_rules() -> None:
    with pytest.raises(DataError, match=r"trained at the single redshift 0\.5"):
        check_inputs(SPEC, P, 12.0, PK, redshift=1.0)
    no_z = InputSpec(("a",))
    with pytest.raises(DataError, match="trained without a redshift"):
        check_inputs(no_z, [1.0], 12.0, redshift=0.0)
    uses = InputSpec(("a",), uses_redshift=True)
    with pytest.raises(DataError, match="takes the redshift as an input"):
        check_inputs(uses, [1.0], 12.0)
    assert check_inputs(uses, [1.0], [12.0, 12.5], redshift=0.3).redshift.tolist() == [0.3, 0.3]
    with pytest.raises(DataError, match=r"redshift: -1 at row 0 is outside \[0, 20\]"):
        check_inputs(uses, [1.0], 12.0, redshift=-1.0)


def test_a_redshift_known_only_from_meta_is_the_training_redshift() -> None:
    """Transforms whose single redshift came from meta["redshift"] (no redshift array, so no input box
    entry) still give the emulator its training redshift: predict accepts it and refuses others."""
    from types import SimpleNamespace

    t = SimpleNamespace(input_box=lambda: {"log10_mass": (11.0, 12.0)}, input_stats={}, param_names=("Omega_m",),
                        log_params=(), k=None, self_similar=SimpleNamespace(redshift_value=0.25), redshift_column=None)
    spec = InputSpec.from_transforms(t)
    assert spec.training_redshift == 0.25 and not spec.uses_redshift
    assert check_inputs(spec, [0.3], 11.5, redshift=0.25).redshift is None
    with pytest.raises(DataError, match=r"trained at the single redshift 0\.25"):
        check_inputs(spec, [0.3], 11.5, redshift=1.0)
    t.self_similar = None  # nothing known: no redshift may be given
    with pytest.raises(DataError, match=r"trained without a redshift"):
        check_inputs(InputSpec.from_transforms(t), [0.3], 11.5, redshift=0.25)


def test_a_redshift_parameter_column_is_checked_like_the_redshift() -> None:
    """A column ``z``: in [0, 20] (a negative one made NaN predictions), at its training value when it
    was constant (the network saw one value), and equal to the redshift input when both are taken."""
    spec = InputSpec(param_names=("Omega_m", "z"), redshift_column=1)
    assert check_inputs(spec, [0.3, 1.0], 13.0).params[0, 1] == 1.0
    with pytest.raises(DataError, match=r"reads the redshift from its parameter column 'z'; give it there"):
        check_inputs(spec, [0.3, 1.0], 13.0, redshift=1.0)
    with pytest.raises(DataError, match=r"params\['z'\]: -3 at row 0 is outside \[0, 20\]"):
        check_inputs(spec, [0.3, -3.0], 13.0)
    constant = InputSpec(param_names=("Omega_m", "z"), redshift_column=1, column_redshift=0.5)
    assert check_inputs(constant, [0.3, 0.5], 13.0).params[0, 1] == 0.5
    with pytest.raises(DataError, match=r"params\['z'\]: 1 at row 0, but this emulator was trained at the single "
                                        r"redshift 0.5.*pass 0.5"):
        check_inputs(constant, [0.3, 1.0], 13.0)
    both = InputSpec(param_names=("Omega_m", "z"), redshift_column=1, uses_redshift=True)
    assert check_inputs(both, [0.3, 1.0], 13.0, redshift=1.0).redshift[0] == 1.0
    with pytest.raises(DataError, match=r"redshift: 0.25 at row 0, but the parameter column 'z'"):
        check_inputs(both, [0.3, 1.0], 13.0, redshift=0.25)
