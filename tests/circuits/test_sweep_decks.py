"""Characterization decks as text (no ngspice): the synapse sources sit behind their switch."""

import dataclasses

from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, fet_sweep_sim, fet_sweeps


def _deck_lines(cfg, device, **kw):
    sweep = {f.device: f for f in fet_sweeps(cfg)}[device]
    return [line for line in fet_sweep_sim(sweep, cfg, **kw).circuit.splitlines() if line.startswith("X")]


def test_in_situ_sources_sit_behind_an_on_switch_like_the_synapse():
    cfg = CharacterizationConfig()
    # NMOS: NM's source on the switch, the switch's gate at V_dd and source on ground (synapse NS)
    nm, ns = _deck_lines(cfg, "n")
    assert nm.split()[:5] == ["XM", "d", "g", "s", "0"] and ns.split()[:5] == ["XS", "s", "vdd", "0", "0"]
    # PMOS: PM's source on the switch, the switch's gate at 0 V and source on V_dd (synapse PS)
    pm, ps = _deck_lines(cfg, "p")
    assert pm.split()[:5] == ["XM", "d", "g", "s", "vdd"] and ps.split()[:5] == ["XS", "s", "0", "vdd", "vdd"]
    # same model and size for source and switch (the synapse cell's four devices share W/L)
    assert nm.split()[5:] == ns.split()[5:] and pm.split()[5:] == ps.split()[5:]
    # the discharger is swept bare: its design current is placed by a SPICE run of the neuron
    assert len(_deck_lines(cfg, "dis")) == 1


def test_bare_sources_and_monte_carlo_copies():
    bare = dataclasses.replace(CharacterizationConfig(), in_situ=False)
    assert [line.split()[:5] for line in _deck_lines(bare, "n")] == [["XM", "d", "g", "0", "0"]]
    # K copies: each source with its own switch node behind its own ammeter
    lines = _deck_lines(CharacterizationConfig(), "n", n_instances=3)
    assert [line.split()[:4] for line in lines] == [
        ["XM0", "d0", "g", "s0"], ["XS0", "s0", "vdd", "0"], ["XM1", "d1", "g", "s1"],
        ["XS1", "s1", "vdd", "0"], ["XM2", "d2", "g", "s2"], ["XS2", "s2", "vdd", "0"]]
