"""Transient step control of the network testbench: PhaseSchedule.trtol reaches ngspice, and the
default settings resolve spike times as well as a much tighter solve (real ngspice, slow)."""

from __future__ import annotations

import numpy as np
import pytest

from imcpnn.circuits.netlist.network import Network, ParasiticEstimate, PhaseSchedule, network_deck
from imcpnn.circuits.simulate.run import network_sim, simulate_network
from imcpnn.errors import ConfigError
from imcpnn.spice import Corner, Tran


@pytest.mark.parametrize("trtol", [0, -1.0, 8.0, float("nan"), True])
def test_trtol_out_of_range_is_refused(trtol):
    with pytest.raises(ConfigError, match="PhaseSchedule.trtol"):
        PhaseSchedule(trtol=trtol)


def test_sim_carries_step_and_trtol_of_the_schedule():
    schedule = PhaseSchedule(t_step_max_s=2e-8, trtol=0.5)
    net = Network((2, 2))
    tb = network_deck(net, [(np.full((2, 2), 0.6), np.full((2, 2), 1.8))], [0.5], np.array([[0.1, 0.4]]), schedule)
    sim = network_sim(tb, Corner.TT, 27.0, schedule.trtol)
    assert dict(sim.options) == {"trtol": 0.5}
    (tran,) = sim.analyses
    assert tran == Tran(2e-8, schedule.t_stop_s(1, 1), 2e-8)
    assert ".options" not in tb.text  # the testbench text itself does not change with the solver settings


@pytest.mark.slow
def test_default_settings_agree_with_a_tight_solve(characterization, spice_cache):
    """Default step control vs a 25x smaller max step with a 10x tighter local error, 5-5-5 network.

    The spike times are set by charge that the phase and spike edges couple into the membranes;
    a solver that steps over those edges moves spikes by many ns (ngspice's own trtol 7 with a
    5 ns max step: 14 ns RMSE on the demo network). The default must agree with the tight solve
    within 1 ns (0.1 % of T) on every spike, hidden and output layer, with the same neurons spiking.
    """
    rng = np.random.default_rng(0)
    w = [rng.uniform(-0.3, 0.6, (5, 5)) for _ in range(2)]
    t_in = np.column_stack([np.zeros(2), rng.uniform(0, 1, (2, 4))])  # bias at t = 0
    kw = dict(network=Network((5, 5, 5), parasitic=ParasiticEstimate()), save_membranes=False,
              cache_dir=spice_cache, progress=False)
    default = simulate_network(w, t_in, characterization[0], **kw).spikes
    tight = PhaseSchedule(t_step_max_s=PhaseSchedule().t_step_max_s / 25, trtol=PhaseSchedule().trtol / 10)
    ref = simulate_network(w, t_in, characterization[0], schedule=tight, **kw).spikes
    assert (default.spiked == ref.spiked).all()
    assert default.spiked.sum() >= 6  # enough spikes to compare, in both layers
    assert set(default[default.spiked].layer) == {0, 1}
    err_ns = (default.t_spike_s - ref.t_spike_s)[default.spiked].abs() * 1e9
    assert err_ns.max() < 1.0
