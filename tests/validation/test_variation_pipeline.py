"""Variation: config and CLI checks, mismatch -> model units, the variation.json contract, and a
reduced end-to-end run in real ngspice (slow)."""

import json
import subprocess
import sys
import numpy as np
import pytest

from imcpnn.errors import ConfigError, ResultsError
from imcpnn.validation._variation import (TEMP_RANGE_C, VariationConfig, check_variation, parse_list,
                                          variation_model)


@pytest.mark.parametrize("changes, match", [
    ({"corners": ("xx",)}, "corners"),
    ({"corners": ()}, "corners"),
    ({"temps_c": (200.0,)}, r"temps_c.*-40, 125"),
    ({"temps_c": (-41.0,)}, "temps_c"),
    ({"mc": 0}, "mc"),
    ({"n_test": 0}, "n_test"),
    ({"mismatch_instances": 1}, "mismatch_instances"),
    ({"seed": 0}, "seed"),
])
def test_bad_config_names_the_field(changes, match):
    with pytest.raises(ConfigError, match=match):
        VariationConfig(**changes)


@pytest.mark.parametrize("changes, match", [({"epochs": 0}, "epochs"), ({"lr": 2.0}, "lr"),
                                            ({"t_ref": 1.5}, "t_ref"), ({"gamma": -1.0}, "gamma")])
def test_bad_hwa_recipe_names_the_field(changes, match):
    from imcpnn.validation._variation import HwaTraining

    with pytest.raises(ConfigError, match=f"HwaTraining.{match}"):
        HwaTraining(**changes)


def test_single_term_keeps_only_its_spreads():
    from imcpnn.pnn import VariationModel
    from imcpnn.validation._variation import VARIATION_TERMS, single_term

    vm = VariationModel(w_abs=(0.1, 1.0), sigma_rel_plus=(0.3, 0.2), sigma_rel_minus=(0.2, 0.1),
                        sigma_e_plus_rel=0.01, sigma_e_minus_rel=0.02, sigma_threshold=0.015, sigma_ramp_rel=0.3)
    ramp = single_term(vm, VARIATION_TERMS["firing ramp (discharger current)"])
    assert ramp.sigma_ramp_rel == 0.3 and ramp.sigma_threshold == 0 and ramp.sigma_rel_plus == (0.0, 0.0)
    currents = single_term(vm, VARIATION_TERMS["synapse currents"])
    assert currents.sigma_rel_plus == (0.3, 0.2) and currents.sigma_ramp_rel == 0 and currents.sigma_e_plus_rel == 0
    assert currents.w_abs == vm.w_abs


def test_defaults_and_lists():
    cfg = VariationConfig(corners=["tt", "ss"], temps_c=[27, 85.0])
    assert cfg.corners == ("tt", "ss") and cfg.temps_c == (27, 85.0)
    assert TEMP_RANGE_C == (-40.0, 125.0)
    assert parse_list("tt, ss", str, "--corners") == ("tt", "ss")
    assert parse_list("-40,27", float, "--temps") == (-40.0, 27.0)
    with pytest.raises(ConfigError, match="--temps 'hot'"):
        parse_list("hot", float, "--temps")
    with pytest.raises(ConfigError, match="--corners is empty"):
        parse_list(" , ", str, "--corners")


@pytest.mark.parametrize("args, match", [
    (["--corners", "tt,xx"], "corners"),
    (["--temps", "200"], "temps_c"),
    (["--temps", "warm"], "--temps"),
    (["--mc", "0"], "mc"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, match):
    out = subprocess.run([sys.executable, "-m", "imcpnn", "variation", "--out", str(tmp_path / "v"), *args],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and match in lines[0]
    assert not (tmp_path / "v" / "config.json").exists()


def _mismatch():
    return {"corner": "tt", "temp_c": 27.0, "n_instances": 50, "seed": 3,
            "sigma_i_rel": [{"i_a": 1e-9, "nfet": 0.3, "pfet": 0.2, "discharger": 0.25},
                            {"i_a": 1e-7, "nfet": 0.1, "pfet": 0.08, "discharger": 0.09}],
            "e_plus": {"mean": 2.9, "std": 0.058, "sigma_rel": 0.02},
            "e_minus": {"mean": -1.6, "std": 0.048, "sigma_rel": 0.03},
            "v_switch_v": {"mean": 0.5, "std": 0.004}}


def test_variation_model_in_model_units():
    """|w| = I / I_1; threshold sigma over V_th_circ; ramp sigma at the discharger's design
    current, interpolated linearly in log I between the measured currents."""
    unit, i_dis, v_th = 2e-8, 1e-8, 0.8
    vm = variation_model(_mismatch(), unit, i_dis, v_th)
    np.testing.assert_allclose(vm.w_abs, [1e-9 / unit, 1e-7 / unit])
    assert vm.sigma_rel_plus == (0.3, 0.1) and vm.sigma_rel_minus == (0.2, 0.08)
    assert vm.sigma_e_plus_rel == 0.02 and vm.sigma_e_minus_rel == 0.03
    assert vm.sigma_threshold == pytest.approx(0.004 / v_th)
    assert vm.sigma_ramp_rel == pytest.approx(0.25 + (0.09 - 0.25) * 0.5)  # 10 nA: halfway in log I
    assert "tt_mm" in vm.source
    # beyond the measured currents the spread stays at the end values
    assert variation_model(_mismatch(), unit, 1e-12, v_th).sigma_ramp_rel == pytest.approx(0.25)


def test_contract_check_names_what_is_missing():
    good = {"corners": [{k: 0 for k in ("corner", "temp_c", "e_plus", "e_minus",
                                        "accuracy_spice_nominal_mapping", "accuracy_spice_recharacterized",
                                        "rmse_bottom_up_ns")}],
            "mismatch": {"sigma_i_rel": []}, "models": {},
            "mc": {"n": 1, "accuracy_spice_plain": [], "accuracy_model_plain": [], "accuracy_spice_hwa": [],
                   "accuracy_model_hwa": []}}
    check_variation(good, "x")
    bad = json.loads(json.dumps(good))
    del bad["mc"]["accuracy_model_hwa"], bad["corners"][0]["rmse_bottom_up_ns"]
    with pytest.raises(ResultsError, match=r"corners\[\].rmse_bottom_up_ns, mc.accuracy_model_hwa"):
        check_variation(bad, "x")
