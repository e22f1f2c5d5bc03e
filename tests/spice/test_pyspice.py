"""Optional PySpice backend (shared libngspice): same interface and results as batch mode."""

import sys

import numpy as np
import pytest

from imcpnn.errors import ConfigError, SpiceError, SpiceTimeoutError, ToolNotFoundError
from imcpnn.spice import Dc, Op, Sim, Tran, run
from imcpnn.spice import _pyspice

NFET = "sky130_fd_pr__nfet_01v8"
SIM = Sim(f"vd d 0 1.8\nvg g 0 1.8\nXM1 d g 0 0 {NFET} W=1 L=0.15 nf=1",
          (Op(), Dc("vd", 0.0, 1.8, 0.3, "vg", 0.6, 1.8, 0.6), Tran(1e-11, 2e-10)), devices=(NFET,))


def test_unknown_backend(tmp_path):
    with pytest.raises(ConfigError, match="backend='spectre': use one of batch, pyspice"):
        run(SIM, cache_dir=tmp_path, backend="spectre")


def test_missing_pyspice_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(_pyspice, "_shared", None)
    monkeypatch.setitem(sys.modules, "PySpice.Spice.NgSpice.Shared", None)
    with pytest.raises(ToolNotFoundError, match=r"needs PySpice: .*pip install 'imcpnn\[pyspice\]'"):
        run(SIM, cache_dir=tmp_path, backend="pyspice")


def test_missing_libngspice(monkeypatch, tmp_path):
    monkeypatch.setenv("LIBNGSPICE", str(tmp_path / "libngspice.so"))
    with pytest.raises(ToolNotFoundError, match="sudo apt-get install libngspice0"):
        _pyspice.find_libngspice()


@pytest.mark.slow
def test_pyspice_equals_batch_and_types_errors(tmp_path):
    pytest.importorskip("PySpice")
    batch = run(SIM, cache_dir=tmp_path / "b")
    shared = run(SIM, cache_dir=tmp_path / "p", backend="pyspice")
    assert [p.plotname for p in shared.plots] == [p.plotname for p in batch.plots]
    for pb, ps in zip(batch.plots, shared.plots):
        assert pb.shape == ps.shape
        for name in pb.names:
            np.testing.assert_allclose(ps[name], pb[name], rtol=1e-9, atol=1e-18, err_msg=name)
    assert shared.ngspice_version == batch.ngspice_version
    with pytest.raises(SpiceError, match="unknown subckt") as info:
        run(Sim("v1 a 0 1\nX1 a 0 nosuchcell", Op(), devices=()), cache_dir=tmp_path, backend="pyspice")
    assert info.value.deck_line == "X1 a 0 nosuchcell"
    with pytest.raises(SpiceTimeoutError, match="timeout_s=0.3"):
        run(Sim("v1 a 0 sin(0 1 1g)\nr1 a 0 1k", Tran(1e-13, 1e-3), devices=()), cache_dir=tmp_path,
            backend="pyspice", timeout_s=0.3)
    # the shared instance is still usable after a failure and a halted run
    again = run(SIM, cache_dir=tmp_path / "p2", backend="pyspice")
    np.testing.assert_allclose(again.plot("op")["i(vd)"], batch.plot("op")["i(vd)"], rtol=1e-9)
