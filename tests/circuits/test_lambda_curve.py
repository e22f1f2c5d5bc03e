"""lambda against current (bias-dependent channel-length modulation) and the per-synapse E it gives."""

from __future__ import annotations

import numpy as np
import pytest

from imcpnn.circuits import Characterization, LambdaCurve
from imcpnn.errors import ConfigError
from test_operating_point import _char_dict


def test_curve_interpolates_in_log_current_and_holds_its_ends():
    curve = LambdaCurve.from_fits([1e-7, 1e-9, 1e-8], [0.38, 0.42, 0.40])  # any order in
    assert curve.i_a == (1e-9, 1e-8, 1e-7)
    np.testing.assert_allclose(curve(np.array([1e-9, 10 ** -8.5, 1e-8, 1e-7])), [0.42, 0.41, 0.40, 0.38])
    np.testing.assert_allclose(curve(np.array([0.0, 1e-12, 1e-3])), [0.42, 0.42, 0.38])
    assert LambdaCurve.from_dict(curve.to_dict()) == curve


@pytest.mark.parametrize("i_a, lam", [((), ()), ((1e-9, 1e-9), (0.4, 0.4)), ((1e-9,), (0.4, 0.3)),
                                      ((-1e-9,), (0.4,)), ((1e-9,), (float("nan"),))])
def test_bad_curves_are_config_errors(i_a, lam):
    with pytest.raises(ConfigError):
        LambdaCurve(i_a, lam)


def test_synapse_reversal_from_the_curves_and_without_them():
    data = _char_dict()
    plain = Characterization.from_dict(data)
    np.testing.assert_allclose(plain.synapse_reversal(np.ones((2, 3)) * 1e-8, "n"), plain.e_plus)
    np.testing.assert_allclose(plain.synapse_reversal(np.ones(4) * 1e-8, "p"), plain.e_minus)
    data["lambda_vs_current"] = {"n": {"i_a": [1e-9, 1e-7], "lambda_per_v": [0.42, 0.38]},
                                 "p": {"i_a": [1e-9, 1e-7], "lambda_per_v": [0.80, 0.67]},
                                 "dis": {"i_a": [1e-9], "lambda_per_v": [0.4]}}
    char = Characterization.from_dict(data)
    e_n = char.synapse_reversal(np.array([1e-9, 1e-8, 1e-7]), "n")
    np.testing.assert_allclose(e_n, 1 / (char.v_th_circ * np.array([0.42, 0.40, 0.38])))
    e_p = char.synapse_reversal(np.array([[1e-9, 1e-7]]), "p")
    np.testing.assert_allclose(e_p, -1 / (char.v_th_circ * np.array([[0.80, 0.67]])))
    with pytest.raises(ConfigError):
        char.synapse_reversal(np.ones(2), "dis")
