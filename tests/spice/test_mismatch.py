"""Monte Carlo device mismatch: the ``*_mm`` model sections and ngspice's seed (real ngspice)."""

import numpy as np
import pytest

from imcpnn.errors import ConfigError
from imcpnn.spice import Corner, DeviceUse, Op, Sim, run, run_many
from imcpnn.spice._models import lib_section, model_include, find_models

#: Four identical NMOS current sources at a synapse-like bias (subthreshold, tens of nA), each
#: with its own zero-volt ammeter.
N_DEV = 4
FOUR = "\n".join(["vg g 0 {vg}", "vd d 0 1.3"] + [
    f"vm{k} d d{k} 0\nX{k} d{k} g 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.25 nf=1" for k in range(N_DEV)])
DEVICES = (DeviceUse("sky130_fd_pr__nfet_01v8", ((1.0, 0.25, 1),)),)


def _currents(tmp_path, seed, vg=0.5):
    sim = Sim(FOUR.format(vg=vg), Op(), devices=DEVICES, mismatch_seed=seed)
    res = run(sim, cache_dir=tmp_path)
    return np.array([res.trace(f"i(vm{k})")[0] for k in range(N_DEV)])


def test_sections_and_deck_lines(tmp_path):
    assert lib_section(Corner.SS) == "ss" and lib_section(Corner.SS, mismatch=True) == "ss_mm"
    deck = Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES, mismatch_seed=7).deck(tmp_path)
    assert ".options seed=7" in deck.splitlines()
    assert "_tt_mm_" in deck.splitlines()[1]
    nominal = Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES).deck(tmp_path)
    assert "seed" not in nominal and "_tt_mm_" not in nominal
    # The full library loads the corner's own mismatch section.
    line, _ = model_include(find_models(), Corner.FF, None, tmp_path, mismatch=True)
    assert line.endswith(" ff_mm")
    text = (tmp_path / "models").glob("sky130_tt_mm_*.spice")
    assert "MC_MM_SWITCH=1" in next(text).read_text()


@pytest.mark.parametrize("seed", [0, -1, 1.5, True, 2**31])
def test_bad_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="mismatch_seed"):
        Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES, mismatch_seed=seed)


def test_seed_as_an_option_points_to_mismatch_seed():
    with pytest.raises(ConfigError, match="mismatch_seed=N"):
        Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES, options={"seed": 3})


def test_the_mm_section_is_really_used(tmp_path):
    """Nominal: four identical devices carry identical currents. Mismatch on: they differ, by the
    tens of percent that sky130's Pelgrom coefficient gives a 1 x 0.25 um device in subthreshold
    (the issue measured 27.5-36.2 nA); a spread under 2 % would mean the switch is not on."""
    nominal = run(Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES), cache_dir=tmp_path)
    i_nom = np.array([nominal.trace(f"i(vm{k})")[0] for k in range(N_DEV)])
    assert np.ptp(i_nom) == 0.0
    i_mc = _currents(tmp_path, seed=1)
    assert np.std(i_mc) / np.mean(np.abs(i_mc)) > 0.02
    assert 1e-9 < np.mean(np.abs(i_mc)) < 1e-6


def test_same_seed_same_chip_other_seed_other_chip(tmp_path):
    a = _currents(tmp_path / "a", seed=11)
    b = _currents(tmp_path / "b", seed=11)  # another cache: really simulated again
    np.testing.assert_array_equal(a, b)
    c = _currents(tmp_path / "a", seed=12)
    assert not np.allclose(a, c, rtol=1e-3)


def test_one_seed_is_one_chip_under_another_stimulus(tmp_path):
    """Batches of one network are decks of one structure with other sources: with one seed they
    must see the same devices. Ratio of currents at two gate biases: the same per device when each
    device keeps its threshold offset (subthreshold I ~ exp((V_G - V_th)/(n U_T)), so the offset
    cancels in the ratio), scattered by the offsets when the draws changed."""
    low, high = _currents(tmp_path, 5, vg=0.45), _currents(tmp_path, 5, vg=0.5)
    ratio = high / low
    assert np.std(ratio) / np.mean(ratio) < 0.02
    other = _currents(tmp_path, 6, vg=0.5) / low
    assert np.std(other) / np.mean(other) > 2 * np.std(ratio) / np.mean(ratio)


def test_mismatch_runs_cache_by_seed(tmp_path):
    sims = [Sim(FOUR.format(vg=0.5), Op(), devices=DEVICES, mismatch_seed=s) for s in (21, 22, 21)]
    first = run_many(sims, cache_dir=tmp_path, max_workers=2)
    assert [r.from_cache for r in first][:2] == [False, False]
    again = run_many(sims, cache_dir=tmp_path)
    assert all(r.from_cache for r in again)
    np.testing.assert_array_equal(first[0].trace("i(vm0)"), first[2].trace("i(vm0)"))
