"""Acceptance on real ngspice: single-neuron behaviour, a batched 5-5-5 network, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imcpnn.circuits.netlist.network import PhaseSchedule
from imcpnn.circuits.simulate.run import simulate_network
from imcpnn.cli import main
from imcpnn.errors import ConfigError, NetlistError

pytestmark = pytest.mark.slow

#: Coarser max step than the default: these tests check orderings and windows, not 1 % timing.
FAST = PhaseSchedule(t_step_max_s=25e-9)


def test_single_neuron_orderings(characterization, spice_cache):
    """One layer, 2 inputs x 5 neurons; each neuron isolates one case (all in one ngspice run).

    n0..n2: one excitatory input of growing weight; n3: as n1 plus an inhibitory input;
    n4: no input. Sample 0: both inputs at t = 0; sample 1: input 0 arrives at t = 0.3.
    """
    w = np.array([[0.3, 0.6, 0.9, 0.6, 0.0], [0.0, 0.0, 0.0, -0.4, 0.0]])
    t_in = np.array([[0.0, 0.0], [0.3, 0.0]])
    # the discharger near its design bias on tt (1.35 x the unit current: a neuron with no input
    # then fires at the window end, see validation's stage_discharger); at the unit current the
    # weakest neuron here would not reach threshold inside the window
    res = simulate_network([w], t_in, characterization[0], schedule=FAST, cache_dir=spice_cache, progress=False,
                           discharger_scales=[1.35])
    t = res.spikes.pivot(index="sample", columns="neuron", values="t_spike")
    assert t.loc[0, 0] > t.loc[0, 1] > t.loc[0, 2]  # larger weight -> earlier spike
    assert t.loc[1, 1] > t.loc[0, 1]  # later input -> later spike
    assert t.loc[0, 3] > t.loc[0, 1]  # inhibition delays
    assert math.isnan(t.loc[0, 4]) or t.loc[0, 4] > 0.95  # no input: no early spike
    # membranes: reset at V0 (v = 0) at the start of accumulation, excitatory input raises v
    m = res.membranes
    first = m[(m["sample"] == 0) & (m.neuron == 2)]
    assert abs(first.v.iloc[0]) < 0.02
    assert first[first.t <= 1.0].v.iloc[-1] > 0.3


def test_5_5_5_network_batched_in_one_run(characterization, spice_cache):
    n_samples = 50  # the acceptance size: one ngspice run, model load paid once
    # ngspice's loose default trtol: this test checks the batch's structure, not ns accuracy
    rng = np.random.default_rng(3)
    w = [rng.uniform(-0.6, 1.0, (5, 5)), rng.uniform(-0.6, 1.0, (5, 5))]
    t_in = np.column_stack([rng.uniform(0, 1, (n_samples, 4)), np.zeros(n_samples)])  # + bias at t = 0
    res = simulate_network(w, t_in, characterization[0], schedule=PhaseSchedule(t_step_max_s=50e-9, t_grid=0.01, trtol=7.0),
                           batch_size=n_samples, save_membranes=False, cache_dir=spice_cache, progress=False)  # fmt: skip
    assert len(res.netlists) == 1  # one ngspice run for the whole batch
    sp = res.spikes
    assert sp.shape == (n_samples * 2 * 5, 6)
    assert sorted(sp.groupby(["sample", "layer", "neuron"]).size().unique()) == [1]
    fired = sp[sp.spiked]
    assert len(fired) > 0
    assert ((fired.t_spike >= 0) & (fired.t_spike <= 1)).all()
    assert sp[~sp.spiked].t_spike.isna().all()


def test_bad_inputs_raise_and_run_nothing(characterization, tmp_path):
    char = characterization[0]
    cache = tmp_path / "cache"
    kw = dict(cache_dir=cache, progress=False)
    with pytest.raises(NetlistError, match=r"characterized range .* current scale between"):
        simulate_network([np.full((2, 2), 1e5)], np.zeros((1, 2)), char, **kw)
    with pytest.raises(NetlistError, match=r"shape \(1, 3\)"):
        simulate_network([np.ones((2, 2))], np.zeros((1, 3)), char, **kw)
    with pytest.raises(ConfigError, match="Neuron.cm_w_m"):
        from imcpnn.circuits.netlist.cells import Neuron

        Neuron(cm_w_m=-1e-6)
    with pytest.raises(ConfigError, match="c_m_f"):
        from imcpnn.circuits.characterization.fit import Characterization
        from imcpnn.circuits.simulate.weights import weights_to_biases

        weights_to_biases(np.ones((2, 2)), Characterization.from_dict(char), -1e-13, 1e-6)
    with pytest.raises(ConfigError, match="not one of|unknown corner|valid"):
        simulate_network([np.ones((2, 2))], np.zeros((1, 2)), char, corner="zz", **kw)
    with pytest.raises(ConfigError, match="batch_size"):
        simulate_network([np.ones((2, 2))], np.zeros((1, 2)), char, batch_size=0, **kw)
    with pytest.raises(ConfigError, match="weights is empty"):
        simulate_network([], np.zeros((1, 2)), char, **kw)
    assert not cache.exists() or not any(cache.rglob("*.raw"))


def test_netlist_and_simulate_cli(characterization, tmp_path, spice_cache):
    import json

    cj = tmp_path / "char.json"
    cj.write_text(json.dumps(characterization[0]))
    out = tmp_path / "net"
    args = ["--random", "2,2", "--samples", "2", "--characterization", str(cj), "--cache-dir", str(spice_cache)]
    assert main(["netlist", *args, "--out", str(out)]) == 0
    mapping = json.loads((out / "mapping.json").read_text())
    assert mapping["widths"] == [2, 2] and len(mapping["layers"]) == 1
    assert (out / "batch_0.cir").read_text().count(" synapse w=") == 4
    sim_out = tmp_path / "sim"
    assert main(["simulate", "--netlist", str(out / "batch_0.cir"), "--out", str(sim_out), "--cache-dir", str(spice_cache)]) == 0
    import pandas as pd

    tab = pd.read_csv(sim_out / "spikes.csv")
    assert list(tab.columns) == ["sample", "layer", "neuron", "t_spike_s", "t_spike", "spiked"]
    assert len(tab) == 2 * 2
    assert (sim_out / "membranes.png").stat().st_size > 0
    assert main(["netlist", "--random", "2,x", "--out", str(out), "--characterization", str(cj)]) == 2
