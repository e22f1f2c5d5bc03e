"""Pipeline plumbing that needs no SPICE: resumable stages, guards, CLI option parsing."""

import argparse

import numpy as np
import pandas as pd
import pytest

from imcpnn.config import to_json
from imcpnn.errors import ConfigError, ResultsError
from imcpnn.rundir import RunDirNote
from imcpnn.validation import ValidationConfig, run_validation
from imcpnn.pnn import DataConfig, LayerPhysics, ModelConfig, OptimConfig, TrainConfig
from imcpnn.validation._config import DataSection
from imcpnn.validation._pipeline import (cached_stage, _train_config, accumulation_traces,
                                         fit_testbench, load_data, network_widths,
                                         stage_characterization)
from imcpnn.verbs.validate import add_arguments, config_from_args


def test_stage_runs_once_then_reads_back(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 1.5}

    assert cached_stage(tmp_path, "demo", compute, False) == {"value": 1.5}
    assert cached_stage(tmp_path, "demo", compute, False) == {"value": 1.5}
    assert len(calls) == 1


def test_corrupt_stage_file_is_named_and_redone(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "demo.json").write_text("{broken")
    with pytest.warns(RunDirNote, match="demo.json is corrupt"):
        assert cached_stage(tmp_path, "demo", dict, False) == {}


def test_run_refuses_folder_of_another_config(tmp_path):
    to_json(ValidationConfig(n_test=7), tmp_path / "config.json")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "dynamics.json").write_text("{}")  # a result of that config
    with pytest.raises(ConfigError, match=r"different config .*config.json: n_test 7 -> 50\)"):
        run_validation(ValidationConfig(), tmp_path)


def test_missing_characterization_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.json does not exist"):
        stage_characterization(ValidationConfig(), tmp_path, tmp_path / "nope.json", None, False)


def test_accumulation_traces_interpolate_and_detect_gaps():
    t = np.linspace(0.0, 2.0, 21)
    table = pd.DataFrame({"sample": 0, "layer": 0, "neuron": 0, "t": t, "v_mem_v": 1.3 - 0.1 * t})
    out = accumulation_traces(table, np.array([0.0, 0.25, 1.0]), 0, 1, 1)
    assert np.allclose(out[0, 0], [1.3, 1.275, 1.2])
    with pytest.raises(ResultsError, match="lacks some"):
        accumulation_traces(table, np.array([0.0, 1.0]), 0, 1, 2)


def test_fit_testbench_has_bias_and_mixed_weights():
    t_in, w = fit_testbench(ValidationConfig())
    assert t_in.shape == (14, 5) and np.all(t_in[:, 0] == 0) and np.all((t_in >= 0) & (t_in <= 1))
    assert w.shape == (5, 4) and (w > 0).any() and (w < 0).any()
    # the count of active (spiking) inputs varies per pattern: it pins the end-of-phase kick
    active = (t_in < 1).sum(axis=1)
    assert active.min() < active.max() == 5


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(["--out", "x", *argv]))


def test_cli_options_override_defaults_and_config_file(tmp_path):
    to_json(ValidationConfig(epochs=7, n_test=9), tmp_path / "c.json")
    config = parse("--config", str(tmp_path / "c.json"), "--n-test", "3", "--coarse")
    assert (config.epochs, config.n_test, config.search.steps) == (7, 3, (0.1,))
    assert parse("--search-steps", "0.2,0.05").search.steps == (0.2, 0.05)
    assert parse().search.method == "gauss-newton"
    assert parse("--search-method", "stencil").search.method == "stencil"
    assert parse("--search-method", "quadratic").search.method == "quadratic"
    assert parse().search.model_guide and not parse("--no-model-guide").search.model_guide
    assert parse().fit.source == "network"
    assert parse("--trace-fit-source", "testbench").fit.source == "testbench"
    assert parse().fit.refit and not parse("--no-trace-refit").fit.refit


def test_cli_search_methods_are_the_configs():
    from imcpnn.validation._config import SEARCH_METHODS
    from imcpnn.verbs.validate import SEARCH_METHOD_CHOICES

    assert SEARCH_METHOD_CHOICES == SEARCH_METHODS


def test_cli_rejects_malformed_search_steps():
    with pytest.raises(ConfigError, match="comma-separated"):
        parse("--search-steps", "0.1;0.01")


# ------------------------------------------------------------------- data set and network shape
def test_default_data_is_iris_as_the_paper_and_the_models_train_on_it():
    """The default run loads and trains on exactly what it did when Iris was built in: the saved
    train_<pipeline> folders of earlier runs resume (their TrainConfig is the same)."""
    physics = LayerPhysics(e_plus=3.0, e_minus=-1.5)
    for n_test, test_subset in ((50, None), (7, 7)):  # the whole test split is not cut
        config = ValidationConfig(n_test=n_test)
        data_config, splits = load_data(config)
        assert data_config == DataConfig(dataset="iris", seed=0, test_subset=test_subset)
        assert splits.x_test.shape == (n_test, 5) and splits.n_classes == 3
        assert _train_config(config, data_config, physics) == TrainConfig(
            data=DataConfig(dataset="iris", seed=0, test_subset=test_subset),
            model=ModelConfig(arch="mlp:5", n_outputs=5, physics=physics),
            optim=OptimConfig(lr=0.01, batch_size=16, epochs=100), seed=0)
    assert network_widths(ValidationConfig(), 5) == (5, 5, 5)


def test_data_set_and_hidden_widths_come_from_the_config():
    config = ValidationConfig(data=DataSection(dataset="digits"), n_test=20, hidden=(6, 4),
                              n_outputs=10, seed=3)
    data_config, splits = load_data(config)
    assert (data_config.dataset, data_config.seed, data_config.test_subset) == ("digits", 3, 20)
    assert len(splits.y_test) == 20 and splits.n_classes == 10
    assert _train_config(config, data_config, LayerPhysics()).model.arch == "mlp:6,4"
    assert network_widths(config, 64) == (64, 6, 4, 10)
    assert ValidationConfig(hidden=5).hidden == (5,)  # config.json of earlier versions
    with pytest.raises(ConfigError, match="ValidationConfig.data: .*'mnist' is invalid: allowed one of"):
        DataSection(dataset="mnist")


@pytest.mark.parametrize("kwargs, match", [
    ({"n_test": 51}, "n_test=51 is more than the 50 test samples of iris"),
    ({"n_outputs": 2}, "n_outputs=2 is fewer than the 3 classes of iris")])
def test_data_set_that_does_not_fit_the_network_is_refused_before_any_write(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_validation(ValidationConfig(**kwargs), tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


def test_summary_has_every_key_in_the_order_it_always_had():
    from imcpnn.circuits.netlist.network import Network, ParasiticEstimate, PhaseSchedule
    from imcpnn.validation import _pipeline as pipe
    from imcpnn.validation.report import PIPELINES, check_summary

    results = {p: {"rmse_t_spike_ns": 2.0 + i, "scale": 1.0, "scale_plus": 1.1, "scale_minus": 0.9,
                   "accuracy_model": 0.5, "accuracy_spice": 0.25, "discharger_scale": 1.0,
                   "rmse_spiking_ns": float("nan") if i == 2 else 1.0, "bias_ns": 0.1,
                   "n_silent_mismatch": i, "mapping": {"pipeline": p}}
               for i, p in enumerate(PIPELINES)}
    char = {"e_plus": 2.9, "e_minus": -1.6, "e_dis": 3.0}
    ctx = pipe.Context(config=ValidationConfig(), out_dir=None, cache_dir=None, progress=False,
                       char=char, network=Network((5, 5, 5), parasitic=ParasiticEstimate()),
                       fit_network=None, schedule=PhaseSchedule(), x_test=np.zeros((7, 5)),
                       y_test=np.zeros(7), x_cal=np.zeros((14, 5)), n_classes=3,
                       data_config=DataConfig())
    stages = {"discharger": {"factor": 1.3}, "dynamics": {"c_eff_f": 1e-12},
              "trace_fit": {"fitted": {}}, "error_budget": [{"term": "x", "rmse_bottom_up_ns": 3.0}]}
    summary = pipe.build_summary(ctx, results, stages, ["characterization/a.png"], 12.5)
    check_summary(summary, "summary")
    per = [f"{k}_{p}{u}" for k, u in (("rmse_spiking", "_ns"), ("bias", "_ns"), ("n_silent_mismatch", ""))
           for p in PIPELINES]
    assert list(summary) == [
        "rmse_top_down_ns", "rmse_bottom_up_ns", "rmse_trace_fitted_ns", "n_test_samples",
        "netlist_kind", "e_plus", "e_minus", "e_dis", "scale_bottom_up", "scale_top_down",
        "scale_trace_fitted", "test_accuracy_model", "test_accuracy_spice",
        "test_accuracy_by_pipeline", "search_starts", "calibration", "discharger",
        "discharger_design", "discharger_scale", *per, "error_budget", "dynamics", "protocol",
        "models", "elapsed_s", "ratio_bottom_up_over_top_down", "trace_fit", "mapping", "versions",
        "characterization_figures", "energy_per_inference_j", "energy_per_synop_j", "energy"]
    # these results predate the energy accounting: energy reads as not measured
    assert summary["energy_per_inference_j"] is None and summary["energy"] is None
    energy = {"energy_per_inference_j": 2e-12, "energy_per_synop_j": 1e-13, "table": []}
    results["bottom_up"] |= {"energy_per_inference_j": 2e-12, "energy_per_synop_j": 1e-13, "energy": energy}
    summary = pipe.build_summary(ctx, results, stages, ["characterization/a.png"], 12.5)
    check_summary(summary, "summary")
    assert (summary["energy_per_inference_j"], summary["energy_per_synop_j"]) == (2e-12, 1e-13)
    assert summary["energy"] is energy
    assert (summary["rmse_top_down_ns"], summary["rmse_bottom_up_ns"]) == (2.0, 3.0)
    assert summary["ratio_bottom_up_over_top_down"] == 1.5
    assert summary["scale_top_down"] == [1.1, 0.9] and summary["n_test_samples"] == 7
    assert summary["rmse_spiking_trace_fitted_ns"] is None
    assert summary["calibration"] == {"source": "train", "n_samples": 14}
    assert summary["search_starts"] == {"top_down": [1.0, 1.0], "bottom_up": [1.0], "trace_fitted": [1.0]}
    assert summary["mapping"]["bottom_up"] == {"pipeline": "bottom_up"}
    assert summary["mapping"]["parasitic_method"].startswith("wire capacitance per line")


def test_every_network_batch_goes_to_the_context_executor(monkeypatch):
    """The executor (a Dask client, or None for the local pool) is a Context field, not config:
    the searches, evaluations and Monte Carlo chips (simulate_candidates), the testbench traces
    and the load-delay run all hand it, with the pool size, to the SPICE runner."""
    from imcpnn.circuits.netlist.network import Network, PhaseSchedule
    from imcpnn.circuits.simulate import run as run_module
    from imcpnn.validation import _pipeline as pipe

    seen = []

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.append((kwargs.get("executor"), kwargs.get("max_workers"), kwargs.get("cache_dir")))
        raise Stop

    monkeypatch.setattr(run_module, "simulate_scales", spy)
    executor = object()
    ctx = pipe.Context(config=ValidationConfig(), out_dir=None, cache_dir="c", progress=False, char={},
                       network=Network((5, 5, 5)), fit_network=Network((5, 5)), schedule=PhaseSchedule(),
                       x_test=np.zeros((7, 5)), y_test=np.zeros(7), x_cal=np.zeros((14, 5)), n_classes=3,
                       data_config=DataConfig(), executor=executor, max_workers=3)
    assert ctx.runner() == {"cache_dir": "c", "executor": executor, "max_workers": 3}
    for call in (lambda: pipe.simulate_candidates(ctx, [np.zeros((5, 5))] * 2, ctx.x_test, [None], False),
                 lambda: pipe.testbench_traces(ctx)):
        with pytest.raises(Stop):
            call()
    assert seen == [(executor, 3, "c")] * 2
    # the default is the local pool
    assert pipe.Context(**{**ctx.__dict__, "executor": None, "max_workers": None}).runner()["executor"] is None


def test_discharger_design_extends_its_grid_when_the_firing_path_is_slow(monkeypatch, tmp_path):
    """At a cold corner the firing path takes half the window (measured at tt -40 C: t_0 = 0.55),
    so a neuron without input fires inside the window only at factors above the grid's: the
    extension is simulated then, and only then, and k* = K / (1 - t_0) comes from the fit."""
    from types import SimpleNamespace

    from imcpnn.circuits.netlist.network import Network, PhaseSchedule
    from imcpnn.circuits.simulate import run as run_module
    from imcpnn.validation import _pipeline as pipe

    def fake_simulate(weights, t_in, char, scales, *, discharger_scales, **kwargs):
        calls.append(list(discharger_scales))
        out = []
        for k in discharger_scales:
            t = t0 + big_k / k
            spikes = pd.DataFrame({"layer": [0] * 4, "neuron": range(4),
                                   "t_spike": [t] * 4 if t < 1 else [np.nan] * 4, "spiked": [t < 1] * 4})
            out.append(SimpleNamespace(spikes=spikes))
        return out

    monkeypatch.setattr(run_module, "simulate_scales", fake_simulate)
    monkeypatch.setattr(pipe, "mappable", lambda *a, **k: True)
    for (t0, big_k), expected_calls in (((0.55, 1.3), 2), ((0.11, 1.2), 1)):
        calls = []
        ctx = pipe.Context(config=ValidationConfig(), out_dir=tmp_path / f"{t0}", cache_dir=None, progress=False,
                           char={}, network=Network((5, 5, 5)), fit_network=Network((5, 4)),
                           schedule=PhaseSchedule(), x_test=np.zeros((1, 5)), y_test=np.zeros(1),
                           x_cal=np.zeros((1, 5)), n_classes=3, data_config=DataConfig())
        result = pipe.stage_discharger(ctx)
        assert len(calls) == expected_calls and calls[0] == list(pipe.DISCHARGER_GRID)
        assert result["factor"] == pytest.approx(big_k / (1 - t0)) and result["t_0"] == pytest.approx(t0)
