"""The reduced end-to-end demo (real ngspice, real training): every artefact, sane summary, resume."""

import json
import math
import subprocess
import sys
import time

import pytest

from imcpnn.validation import ValidationConfig
from imcpnn.validation.report import PIPELINES

# The reduced run CI affords: few samples and patterns, short training, one 10 % search level,
# a loose transient tolerance (it checks artefacts and resumption, not accuracy).
REDUCED = {"n_test": 2, "epochs": 20, "t_step_max_s": 5e-8, "trtol": 1.0, "spice_batch": 2,
           "fit": {"n_patterns": 2, "n_times": 11}, "search": {"steps": [0.1], "max_recentre": 1}}


def run_demo(out, config, cache):
    return subprocess.run([sys.executable, "-m", "imcpnn", "demo", "--out", str(out), "--config",
                           str(config), "--cache-dir", str(cache), "--quiet"],
                          capture_output=True, text=True)


@pytest.mark.slow
def test_reduced_demo_writes_every_artefact_and_resumes(tmp_path):
    config = tmp_path / "reduced.json"
    config.write_text(json.dumps(REDUCED))
    out, cache = tmp_path / "demo", tmp_path / "cache"
    first = run_demo(out, config, cache)
    assert first.returncode == 0, first.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    types = {"rmse_top_down_ns": float, "rmse_bottom_up_ns": float, "rmse_trace_fitted_ns": float,
             "n_test_samples": int, "netlist_kind": str, "e_plus": float, "e_minus": float,
             "e_dis": float, "scale_bottom_up": float, "scale_top_down": list,
             "test_accuracy_model": float, "test_accuracy_spice": float, "models": dict,
             "elapsed_s": float}
    for key, kind in types.items():
        assert isinstance(summary[key], kind), (key, summary[key])
    for key in ("rmse_top_down_ns", "rmse_bottom_up_ns", "rmse_trace_fitted_ns"):
        # Bounded by the window: at worst every output spike is a whole phase (1 us) off.
        assert math.isfinite(summary[key]) and 0 <= summary[key] <= 1000.0
    assert summary["n_test_samples"] == 2
    assert summary["e_plus"] > 0 > summary["e_minus"] and summary["e_dis"] > 1
    assert len(summary["scale_top_down"]) == 2 and all(s > 0 for s in summary["scale_top_down"])
    assert 0 <= summary["test_accuracy_spice"] <= 1 and 0 <= summary["test_accuracy_model"] <= 1
    assert "parasitic" in summary["netlist_kind"]
    # V_th_circ is held at the DC switch point (TraceFitConfig.fit_v_th_circ off), so it has no
    # standard error and equals V0 - V_switch of the characterization.
    char = json.loads((out / "characterization" / "characterization.json").read_text())
    assert summary["trace_fit"]["stderr"]["v_th_circ_v"] == 0.0
    assert summary["trace_fit"]["fitted"]["v_th_circ_v"] == pytest.approx(char["v0"] - char["v_switch"])
    print("measured RMSE (ns): top-down", summary["rmse_top_down_ns"], "bottom-up",
          summary["rmse_bottom_up_ns"], "trace-fitted", summary["rmse_trace_fitted_ns"])

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
    again = run_demo(out, config, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in (cache / "runs").iterdir()) == runs_before  # nothing re-simulated
    assert time.perf_counter() - start < 60


def test_validation_config_rejects_bad_values():
    from imcpnn.errors import ConfigError

    for kwargs, match in (({"n_test": 0}, "n_test"), ({"corner": "xx"}, "corner"),
                          ({"n_outputs": 2}, "n_outputs"), ({"e_ideal": 5.0}, "e_ideal"),
                          ({"lr": 2.0}, "lr"), ({"epochs": 0}, "epochs"), ({"hidden": 0}, "hidden"),
                          ({"batch_size": 0}, "batch_size"), ({"t_step_max_s": 1.0}, "t_step_max_s"),
                          ({"spice_batch": 0}, "spice_batch"), ({"trtol": 0.0}, "trtol"),
                          ({"trtol": 8.0}, "trtol")):
        with pytest.raises(ConfigError, match=match):
            ValidationConfig(**kwargs)
