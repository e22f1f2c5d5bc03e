"""Simulations as data: deck rendering and input validation (no ngspice needed)."""

import pickle

import pytest

from imcpnn.errors import ConfigError
from imcpnn.spice import Ac, Corner, Dc, Op, Sim, Tran

RC = "v1 in 0 1\nr1 in out 1k\nc1 out 0 1n"


@pytest.mark.parametrize("name, corner", [("tt", Corner.TT), ("FF", Corner.FF), (" ss ", Corner.SS),
                                          ("sf", Corner.SF), ("fs", Corner.FS), (Corner.TT, Corner.TT)])
def test_corner_parse(name, corner):
    assert Corner.parse(name) is corner
    assert corner.lib_section == corner.value


def test_corner_unknown_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown corner 'xx'.*" + ", ".join(c.value for c in Corner)):
        Corner.parse("xx")


def test_deck_holds_models_temp_options_saves_and_analyses(tmp_path):
    sim = Sim(RC, (Op(), Dc("v1", 0, 1, 0.5, "v2", 0.0, 1.0, 0.25), Tran(1e-9, 1e-6, 1e-10, True),
                   Ac(1e3, 1e6, 5)), corner="ss", temp_c=85.0, devices=("sky130_fd_pr__nfet_01v8",),
              save=("v(out)", "i(v1)"), options={"reltol": 1e-4, "klu": None})
    deck = sim.deck(tmp_path)
    lines = deck.splitlines()
    assert lines[0].startswith("*") and lines[-1] == ".end"
    assert ".temp 85.0" in lines and ".options reltol=0.0001 klu" in lines
    assert ".save v(out) i(v1)" in lines
    assert ".op" in lines and ".dc v1 0.0 1.0 0.5 v2 0.0 1.0 0.25" in lines
    assert ".tran 1e-09 1e-06 0 1e-10 uic" in lines and ".ac dec 5 1000.0 1000000.0" in lines
    include = next(ln for ln in lines if ln.startswith(".include"))
    assert "_ss_" in include and str(tmp_path) in include
    assert sim.corner is Corner.SS


def test_full_library_when_devices_none(tmp_path):
    deck = Sim(RC, (Op(),), corner=Corner.FF).deck(tmp_path)
    assert any(ln.startswith(".lib ") and ln.endswith(" ff") for ln in deck.splitlines())


def test_sim_pickles_and_hashes():
    sim = Sim(RC, Op(), options={"reltol": 1e-4})
    assert pickle.loads(pickle.dumps(sim)) == sim
    assert hash(sim) == hash(Sim(RC, (Op(),), options={"reltol": 1e-4}))


@pytest.mark.parametrize("make, match", [
    (lambda: Dc("v1", 0, 1, 0), r"Dc.step_v=0 is invalid: allowed a finite number other than 0"),
    (lambda: Dc("v1", 0, 1, -0.1), r"Dc.step_v=-0.1 is invalid: allowed a step with the sign of stop_v - start_v"),
    (lambda: Dc("v1", 0, 1, 0.1, start2_v=0.0), "without source2"),
    (lambda: Dc("v1", 0, 1, 0.1, "v2", 0.0), "needs start2_v, stop2_v and step2_v"),
    (lambda: Dc("v1", 0, 1, 0.1, "v2", 0.0, 1.0, -1.0), r"Dc.step2_v=-1.0 is invalid: allowed a step with the sign"),
    (lambda: Tran(0, 1e-6), r"Tran.t_step_s=0 is invalid: allowed a finite number > 0 s"),
    (lambda: Tran(1e-9, float("nan")), "Tran.t_stop_s=nan is invalid"),
    (lambda: Tran(1e-9, 1e-6, -1.0), "Tran.t_max_step_s=-1.0 is invalid"),
    (lambda: Ac(0, 1e6), "Ac.f_start_hz=0 is invalid"),
    (lambda: Ac(1, -1), "Ac.f_stop_hz=-1 is invalid"),
    (lambda: Ac(1, 1e6, variation="log"), "Ac.variation='log' is invalid: allowed 'dec', 'oct' or 'lin'"),
    (lambda: Ac(1, 1e6, points=0), "Ac.points=0"),
    (lambda: Sim(RC, ()), "Sim.analyses is empty"),
    (lambda: Sim(RC, ("op",)), "Sim.analyses holds 'op'"),
    (lambda: Sim(RC, Op(), temp_c=-300.0), "temp_c=-300.0"),
    (lambda: Sim(RC + "\n.tran 1n 1u", Op()), r"contains '.tran 1n 1u'"),
    (lambda: Sim(RC + "\n.end", Op()), r"contains '.end'"),
    (lambda: Sim(RC, Op(), corner="xx"), "unknown corner"),
])
def test_bad_inputs_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
