"""A reduced `imcpnn variation` in real ngspice: contract, corners, Monte Carlo chips, resume."""

import json
import time

import numpy as np
import pytest

from imcpnn.validation._variation import check_variation

# The reduced demo's SPICE settings (tests/validation/test_demo.py), 7 test samples, a 10 % scale
# search on 7 held-out training samples, 3 Monte Carlo chips, the tt and ss corners.
REDUCED = {"validation": {"n_test": 7, "epochs": 60, "spice_batch": 7,
                          "fit": {"n_patterns": 14, "n_times": 26},
                          "search": {"steps": [0.1], "max_recentre": 2, "n_samples": 7}},
           "corners": ["tt", "ss"], "temps_c": [27.0], "mc": 3, "n_test": 7,
           "mismatch_instances": 20, "model_chips": 50, "hwa": {"epochs": 200}}

# Same bound as the reduced demo's bottom-up RMSE (tests/validation/test_demo.py explains it):
# at the nominal corner the variation run's plain network is the demo's bottom-up network.
BOTTOM_UP_BOUND_NS = 10.0


@pytest.mark.slow
def test_reduced_variation_run(run_verb):
    # On a local Dask cluster (every SPICE batch through it, results cached here); the resume
    # below runs with the default local pool from the same cache.
    first, out, _ = run_verb("variation", REDUCED, "--executor", "dask", "--workers", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads((out / "variation.json").read_text())
    check_variation(result, "variation.json")
    for name in ("report.html", "report.md", "variation_model.json", "figures/sigma_i.png",
                 "figures/mc_accuracy.png", "figures/mc_spike_times.png"):
        assert (out / name).is_file(), name

    # Corners: the nominal point maps with its own characterization and re-measures its own
    # circuit terms (the nominal stages' SPICE runs again), so all three runs are one deck; the
    # bottom-up model predicts it as in the reduced demo. At ss the devices change: the
    # re-characterization gives other E values, and the testbench another discharger factor.
    tt, ss = result["corners"]
    assert (tt["corner"], ss["corner"]) == ("tt", "ss")
    assert (tt["accuracy_spice_nominal_mapping"] == tt["accuracy_spice_devices_only"]
            == tt["accuracy_spice_recharacterized"])
    assert tt["rmse_bottom_up_ns"] == pytest.approx(tt["rmse_bottom_up_devices_only_ns"])
    assert tt["rmse_bottom_up_ns"] < BOTTOM_UP_BOUND_NS
    assert ss["e_plus"] != pytest.approx(tt["e_plus"], rel=1e-3)
    assert ss["discharger_design"] != pytest.approx(tt["discharger_design"], rel=1e-3)

    mc = result["mc"]
    assert mc["n"] == 3 and len(mc["accuracy_spice_plain"]) == 3 == len(mc["accuracy_spice_hwa"])
    assert len(mc["accuracy_model_plain"]) == 50 == len(mc["accuracy_model_hwa"])
    # Three seeds are three chips: their output spike times differ.
    chips = [json.loads((out / "stages" / f"mc_plain_{s}.json").read_text())["t_out_spice"] for s in (1, 2, 3)]
    assert not np.allclose(chips[0], chips[1]) and not np.allclose(chips[1], chips[2])
    # Mismatch moves the spike times: every chip is off the nominal model by far more than the
    # nominal network's error (the bound above).
    assert min(mc["rmse_spice_chips_vs_nominal_model_plain_ns"]) > BOTTOM_UP_BOUND_NS
    # The check that matters, at this size: the model's chip-to-chip spread of the output spike
    # times agrees with SPICE's (measured 142 vs 117 ns plain, 170 vs 157 ns hardware-aware).
    # Three SPICE chips estimate a spread to tens of percent, so the bound is a factor of 2; a
    # model without the discharger's or the synapses' mismatch falls far outside it.
    for net in ("plain", "hwa"):
        ratio = mc[f"spike_time_spread_model_{net}_ns"] / mc[f"spike_time_spread_spice_{net}_ns"]
        assert 0.5 < ratio < 2.0, (net, ratio)
    # the model-only budget names each device term
    assert [row["term"] for row in mc["term_budget_plain"]][-1].startswith("firing ramp")

    # Resume: every stage is saved, so a rerun (here with the local pool) only reloads and redraws.
    start = time.perf_counter()
    again = run_verb("variation", REDUCED)[0]
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.perf_counter() - start < 90
    assert json.loads((out / "variation.json").read_text())["mc"]["accuracy_spice_hwa"] == mc["accuracy_spice_hwa"]
