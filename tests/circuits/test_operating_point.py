"""One operating point: the network run must be at the characterization's V0, VDD, sense bias, corner and
temperature; plus the circuit plots without pyplot or a backend switch."""

from __future__ import annotations

import importlib
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, write_outputs
from imcpnn.circuits.characterization.fit import Characterization
from imcpnn.circuits.layout import layout_cells, plot_layout
from imcpnn.circuits.netlist.network import Network
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT, OperatingPoint
from imcpnn.config import from_dict, to_dict
from imcpnn.circuits.simulate.run import check_operating_point, simulate_network
from imcpnn.errors import ConfigError
from imcpnn.spice import Corner
from test_cells_and_mapping import _char  # a synthetic characterization (exponential tables)

simulate_module = importlib.import_module("imcpnn.circuits.simulate.run")
SETTINGS = {"vdd_v": 1.8, "v0_v": 1.3, "vb_sense_v": 0.95, "corner": "tt", "temp_c": 27.0}


class _ReachedSpice(Exception):
    pass


@pytest.fixture
def no_spice(monkeypatch):
    """Stop at the ngspice call: a run that gets there passed every check."""

    def stop(*args, **kwargs):
        raise _ReachedSpice

    monkeypatch.setattr(simulate_module, "run_many", stop)


def _simulate(char, **kw):
    return simulate_network([np.full((2, 2), 0.1)], np.zeros((1, 2)), char, network=Network((2, 2)),
                            progress=False, **kw)  # fmt: skip


@pytest.mark.parametrize(
    "over, kw, named",
    [
        ({"v0": 1.2}, {}, ["V0 1.3 V (network.v0_v) vs 1.2 V (characterization)", "Network(..., v0_v=1.2)"]),
        ({"settings": {**SETTINGS, "corner": "ff"}}, {}, ["corner tt (run) vs ff (characterization)", "corner='ff'"]),
        ({"settings": {**SETTINGS, "temp_c": 85.0}}, {}, ["temperature 27 C (run) vs 85 C", "temp_c=85"]),
        ({"settings": {**SETTINGS, "vdd_v": 1.62}}, {}, ["VDD 1.8 V (network.vdd_v) vs 1.62 V", "vdd_v=1.62"]),
        ({"settings": {**SETTINGS, "vb_sense_v": 0.9}}, {}, ["sense bias 0.95 V (network.vb_sense_v) vs 0.9 V",
                                                             "vb_sense_v=0.9"]),
        ({}, {"corner": "ss"}, None),  # settings-less characterization: takes the run's corner
        ({"settings": SETTINGS}, {"corner": "SS"}, ["corner ss (run) vs tt (characterization)"]),
    ],
)
def test_network_run_must_match_the_characterization(no_spice, over, kw, named):
    char = _char(**over)
    if named is None:
        with pytest.raises(_ReachedSpice):
            _simulate(char, **kw)
        return
    with pytest.raises(ConfigError, match="operating point mismatch") as info:
        _simulate(char, **kw)
    for text in named:
        assert text in str(info.value)


def test_matching_and_settings_less_characterizations_run(no_spice):
    for char in (_char(), _char(settings=SETTINGS), _char(settings={"corner": "tt"})):
        with pytest.raises(_ReachedSpice):
            _simulate(char)
    with pytest.raises(_ReachedSpice):  # a dict straight from the JSON
        _simulate({**_char_dict(), "settings": {**SETTINGS, "corner": "ff", "temp_c": 85.0}},
                  corner="ff", temp_c=85.0)  # fmt: skip


def _char_dict() -> dict:
    c = _char()
    return {"v0": c.v0, "v_switch": c.v_switch, "v_th_circ": c.v_th_circ, "lambda_n": c.lambda_n,
            "lambda_p": c.lambda_p, "lambda_dis": c.lambda_dis, "e_plus": c.e_plus, "e_minus": c.e_minus,
            "e_dis": c.e_dis, "id_vg_n": c.id_vg_n.to_dict(), "id_vg_p": c.id_vg_p.to_dict(),
            "id_vg_dis": c.id_vg_dis.to_dict()}  # fmt: skip


def test_mapping_network_is_checked_too(no_spice):
    with pytest.raises(ConfigError, match=r"V0 1.25 V \(mapping_network.v0_v\) vs 1.3 V"):
        _simulate(_char(), mapping_network=Network((2, 2), v0_v=1.25))


def test_from_dict_reads_the_operating_point_and_defaults_to_none():
    char = _char(settings={**SETTINGS, "corner": "ff", "temp_c": -40})
    assert (char.corner, char.temp_c, char.vdd_v, char.vb_sense_v) == ("ff", -40.0, 1.8, 0.95)
    bare = _char()
    assert (bare.corner, bare.temp_c, bare.vdd_v, bare.vb_sense_v) == (None, None, None, None)
    check_operating_point(Network((2, 2)), bare, "ff", -40.0)  # nothing recorded: nothing to refuse
    check_operating_point(Network((2, 2)), char, Corner.FF, -40.0)
    assert isinstance(char, Characterization)


def test_one_operating_point_for_characterization_and_network():
    """Both configs default to the design point, validate through OperatingPoint and keep their
    flat JSON keys (saved characterization settings and configs still load)."""
    assert Network((2, 2)).operating_point == CharacterizationConfig().operating_point == DESIGN_POINT
    point = OperatingPoint(vdd_v=1.62, v0_v=1.2, vb_sense_v=0.9)
    assert Network((2, 2), vdd_v=1.62, v0_v=1.2, vb_sense_v=0.9).operating_point == point
    settings = to_dict(CharacterizationConfig(vdd_v=1.62, v0_v=1.2, vb_sense_v=0.9))
    assert {k: settings[k] for k in ("vdd_v", "v0_v", "vb_sense_v")} == {"vdd_v": 1.62, "v0_v": 1.2, "vb_sense_v": 0.9}
    assert from_dict(CharacterizationConfig, settings).operating_point == point
    assert _char(settings=settings).operating_point(unrecorded=DESIGN_POINT) == OperatingPoint(1.62, 1.3, 0.9)
    assert _char().operating_point(unrecorded=point) == OperatingPoint(1.62, 1.3, 0.9)  # v0 is always recorded


@pytest.mark.parametrize("make", [OperatingPoint, lambda **kw: Network((2, 2), **kw),
                                  lambda **kw: CharacterizationConfig(window_v=(0.1, 1.8), **kw)])
@pytest.mark.parametrize("kw, named", [
    ({"v0_v": 1.9}, r"\.v0_v=1.9 is invalid: allowed a voltage below vdd_v=1.8 V"),
    ({"vdd_v": -1.0}, r"\.vdd_v=-1.0 is invalid: allowed a finite number > 0 V"),
    ({"vb_sense_v": float("nan")}, r"\.vb_sense_v=nan is invalid"),
])
def test_operating_point_is_validated_once_for_every_holder(make, kw, named):
    with pytest.raises(ConfigError, match=named):
        make(**kw)


def test_operating_point_mismatches_name_the_fields_beyond_the_tolerance():
    assert DESIGN_POINT.mismatches(OperatingPoint(1.8, 1.3 + 1e-9, 0.95), 1e-6) == ()
    assert DESIGN_POINT.mismatches(OperatingPoint(1.62, 1.2, 0.95), 1e-6) == ("v0_v", "vdd_v")


# --- plots without pyplot or matplotlib.use ---------------------------------------------------


@pytest.fixture
def no_pyplot(monkeypatch):
    backend = matplotlib.get_backend()

    def refuse(*args, **kwargs):
        raise AssertionError("library code called matplotlib.use")

    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # any `import matplotlib.pyplot` fails
    yield
    assert matplotlib.get_backend() == backend


def test_characterization_plots_need_no_pyplot(tmp_path, no_pyplot):
    cfg = CharacterizationConfig()
    char = _char()
    v_d = np.linspace(0, 1.8, 10)
    curves = {d: {"v_d_v": v_d, "i_d_a": [np.full(10, 1e-8 * (k + 1)) for k in range(len(fam))]}
              for d, fam in (("n", cfg.vg_n_v), ("p", cfg.vg_p_v), ("dis", cfg.vg_dis_v))}  # fmt: skip
    curves["switch"] = {"v_mem_v": np.linspace(0, 1.3, 5), "v_out_v": np.array([1.8, 1.8, 0.9, 0, 0])}
    fits = pd.DataFrame({"device": ["n", "p", "dis"], "i_v0_a": [1e-8, 2e-8, 3e-8], "lambda_per_v": [0.4, 0.8, 0.4]})
    summary = {"lambda_n": 0.4, "lambda_p": 0.8, "lambda_dis": 0.4, "v_switch": 0.45,
               "id_vg_n": char.id_vg_n.to_dict(), "id_vg_p": char.id_vg_p.to_dict(),
               "id_vg_dis": char.id_vg_dis.to_dict()}  # fmt: skip
    write_outputs(tmp_path, summary, fits, curves, cfg)
    for name in ("id_vd.png", "lambda_vs_current.png", "switch_transfer.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_layout_plot_needs_no_pyplot(tmp_path, no_pyplot):
    assert plot_layout(layout_cells()["inv"], tmp_path / "inv.png").stat().st_size > 1000


@pytest.mark.parametrize("data, named", [
    ([1, 2], "not a JSON object"),
    ({"lambda_n": 1.0}, "lacks"),
    ("mangled", "not a JSON object"),
])
def test_malformed_characterization_data_is_a_config_error(data, named):
    with pytest.raises(ConfigError, match=named):
        Characterization.from_dict(data)


def test_malformed_characterization_values_are_a_config_error():
    data = _char_dict()
    data["e_plus"] = "abc"
    with pytest.raises(ConfigError, match="malformed value"):
        Characterization.from_dict(data)
    data = _char_dict()
    data["id_vg_n"] = 3
    with pytest.raises(ConfigError, match="malformed value"):
        Characterization.from_dict(data)
