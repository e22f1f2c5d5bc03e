"""Bin pruning of the minimal model sets: which bins are kept, sizes read from netlists, same results."""

import importlib.resources
import re

import numpy as np
import pytest

from imcpnn.errors import ConfigError
from imcpnn.spice import Corner, Dc, DeviceUse, Sim, Tran, device_uses, find_models, run
from imcpnn.spice._models import cut_subckt, model_include, prune_bins

NFET = "sky130_fd_pr__nfet_01v8"
FETS = (NFET, "sky130_fd_pr__pfet_01v8", "sky130_fd_pr__nfet_01v8_lvt", "sky130_fd_pr__pfet_01v8_hvt")


def _nfet_bins_kept(*sizes) -> set[str]:
    block = (find_models().continuous_dir / "models_fet.spice").read_text()
    pruned = prune_bins(cut_subckt(block, NFET), sizes)
    return set(re.findall(r"(?im)^\.model\s+(\S+)", pruned))


@pytest.mark.parametrize(
    "size, kept",
    [
        # limits read in models_fet.spice: .30 = L [0.25, 0.5] um x W [1, 3] um, .31 = L [0.18, 0.25],
        # .38/.39 the same L ranges at W [0.55, 1]; .48 = L [0.15, 0.18] x W [0.42, 0.55]
        ((1.2, 0.3, 1), {"nshort_model.30"}),  # inside one bin
        ((2.4, 0.3, 2), {"nshort_model.30"}),  # 2 fingers of 1.2 um: the per-finger width bins
        ((0.42, 0.15, 1), {"nshort_model.48"}),  # the minimum device: on the outer edges only
        ((1.0, 0.25, 1), {f"nshort_model.{k}" for k in (30, 31, 38, 39)}),  # W and L on boundaries
    ],
)
def test_bins_kept_for_sizes(size, kept):
    assert _nfet_bins_kept(size) == kept


def test_bins_kept_for_several_sizes_is_the_union():
    assert _nfet_bins_kept((1.2, 0.3, 1), (0.42, 0.15, 1)) == {"nshort_model.30", "nshort_model.48"}


BLOCK = """.subckt dev d g s b
.param l=1 w=1
.model dev.1 nmos
+ level=54 lmin=1e-6 lmax=2e-6 wmin=1e-6
+ wmax=2e-6 vth0=0.5
.model dev.2 nmos lmin=2e-6 lmax=4e-6 wmin=1e-6 wmax=2e-6
+ vth0=0.6
.model dev.extra nmos level=54
Mdev d g s b dev l={l} w={w}
.ends dev"""


def test_prune_bins_keeps_unbinned_cards_and_the_rest_of_the_block():
    pruned = prune_bins(BLOCK, ((1.5, 3.0, 1),))
    assert ".model dev.1" not in pruned and "vth0=0.5" not in pruned
    assert "+ vth0=0.6" in pruned and ".model dev.extra" in pruned
    assert pruned.startswith(".subckt dev") and pruned.endswith("Mdev d g s b dev l={l} w={w}\n.ends dev")
    assert prune_bins(BLOCK, ((1.5, 2.0, 1),)) == BLOCK  # on the shared L boundary: both bins stay


def test_size_outside_every_bin_raises():
    with pytest.raises(ConfigError, match=r"dev: no model bin covers W=1.5 um, L=9 um, nf=1"):
        prune_bins(BLOCK, ((1.5, 9.0, 1),))


@pytest.mark.parametrize("size", [(0.0, 0.15, 1), (1.0, -1.0, 1), (1.0, 0.15, 1.5), (1.0,)])
def test_bad_device_use_size_raises(size):
    with pytest.raises(ConfigError, match=r"needs W > 0 and L > 0 in um and an integer nf >= 1"):
        DeviceUse(NFET, (size,))


def test_empty_sizes_raise():
    with pytest.raises(ConfigError, match=r"sizes_um=\(\)\) keeps no model bin.*sizes_um=None for all bins"):
        DeviceUse(NFET, ())


def test_devices_forms():
    assert DeviceUse(NFET, ((1, 0.15), (1, 0.15, 1))).sizes_um == ((1.0, 0.15, 1),)
    sim = Sim("r1 a 0 1", Dc("v1", 0, 1, 1), devices={NFET: [(1, 0.15, 1)], "sky130_fd_pr__cap_mim_m3_2": None})
    assert sim.devices == (DeviceUse(NFET, ((1.0, 0.15, 1),)), DeviceUse("sky130_fd_pr__cap_mim_m3_2"))
    assert Sim("r1 a 0 1", Dc("v1", 0, 1, 1), devices=NFET).devices == (NFET,)
    with pytest.raises(ConfigError, match=r"Sim.devices holds 3: use subckt names or DeviceUse"):
        Sim("r1 a 0 1", Dc("v1", 0, 1, 1), devices=(NFET, 3))


def test_model_include_prunes_and_a_plain_name_keeps_all_bins(tmp_path):
    src = find_models()
    use = DeviceUse(NFET, ((1.2, 0.3, 1),))
    pruned = model_include(src, Corner.TT, (use,), tmp_path)
    full = model_include(src, Corner.TT, (NFET,), tmp_path)
    assert pruned[1] != full[1]
    assert model_include(src, Corner.TT, (use, NFET), tmp_path) == full
    text = re.search(r'"(.*)"', pruned[0]).group(1)
    assert len(re.findall(r"(?im)^\.model\s", open(text).read())) == 1


def test_device_uses_walks_the_hierarchy():
    body = f"""
.subckt cell a b wn=1 l=0.15
XM1 a b 0 0 {NFET} W={{wn}} L={{l}} nf=2
XM2 a b 0 0 sky130_fd_pr__pfet_01v8 W=2
+ L = 0.5
.ends cell
* XC a b cell wn=9
Xa n1 n2 cell wn=3
Xb n1 n2 cell
Xc n1 n2 sky130_fd_pr__cap_mim_m3_2
"""
    assert device_uses(body) == (
        DeviceUse("sky130_fd_pr__cap_mim_m3_2"),
        DeviceUse(NFET, ((1.0, 0.15, 2), (3.0, 0.15, 2))),
        DeviceUse("sky130_fd_pr__pfet_01v8", ((2.0, 0.5, 1),)),
    )


def test_device_uses_unreadable_size_raises():
    with pytest.raises(ConfigError, match=r"cannot read the size '\{2\*wn\}' of x1.*DeviceUse\(name, sizes_um\)"):
        device_uses(f".subckt c a wn=1\nXM a a 0 0 {NFET} W={{2*wn}} L=0.15\n.ends c\nX1 a c\n")


def _cell_sizes_circuit() -> str:
    """One instance of each FET at every size the cells use, drain via its own 0 V source."""
    cells = importlib.resources.files("imcpnn.netlists")
    text = "\n".join(cells.joinpath(f"{c}.spice").read_text() for c in ("inv", "nand2", "tgate", "synapse", "neuron"))
    # the neuron and synapse at their default sizes (the .subckt defaults); ports need no wiring here
    uses = device_uses(text + "\nXN " + " ".join(f"n{k}" for k in range(12)) + " neuron\nXS "
                       + " ".join(f"s{k}" for k in range(7)) + " synapse\n")
    lines = ["vdd vdd 0 1.8", "vd d 0 0.9", "vg g 0 0.9"]
    k = 0
    for use in uses:
        if use.name not in FETS:
            continue
        for w, l, nf in use.sizes_um:
            bulk = "vdd" if "pfet" in use.name else "0"
            lines += [f"vm{k} d d{k} 0", f"XM{k} d{k} g {bulk} {bulk} {use.name} W={w} L={l} nf={nf}"]
            k += 1
    assert k >= len(FETS) + 4  # nfet and pfet at several sizes each
    return "\n".join(lines)


@pytest.mark.slow
def test_pruned_set_gives_identical_results(tmp_path):
    """DC grid and a gate-step transient of every FET at the cells' sizes: pruned vs all bins (~2 s)."""
    circuit = _cell_sizes_circuit()
    step = circuit.replace("vg g 0 0.9", "vg g 0 pulse(0 1.8 0.1n 0.1n 0.1n 1n 2n)")
    analyses = (Dc("vd", 0.0, 1.8, 0.3, "vg", 0.0, 1.8, 0.3),)
    results = {}
    for kind, devices in (("all", FETS), ("pruned", device_uses(circuit))):
        dc = run(Sim(circuit, analyses, devices=devices), cache_dir=tmp_path)
        tr = run(Sim(step, (Tran(1e-11, 2e-9, 1e-11),), devices=devices), cache_dir=tmp_path)
        model_file = re.search(r'\.include "(.*)"', dc.deck).group(1)
        results[kind] = (dc.plot("dc"), tr.plot("tran"), open(model_file).read().lower().count("\n.model "))
    assert results["pruned"][2] < results["all"][2] / 5  # 184 bins -> a handful
    names = [n for n in results["all"][0].names if n.startswith("i(vm")]
    assert len(names) >= 8
    for n in names:
        np.testing.assert_allclose(results["pruned"][0][n], results["all"][0][n], rtol=1e-12, atol=0)
        np.testing.assert_allclose(results["pruned"][1][n], results["all"][1][n], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(results["pruned"][1].axis, results["all"][1].axis)
    # physics bound: some device conducts at V_G = V_D = 1.8 V (tens of uA or more)
    assert max(abs(results["all"][0][n][-1, -1]) for n in names) > 1e-5
