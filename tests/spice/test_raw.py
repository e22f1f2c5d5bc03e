"""Raw reader vs ngspice's own ASCII output of the same deck, plus closed forms.

Fixtures are made at test time: the deck from ``Sim.deck()`` is run twice by
``ngspice -b -r out.raw deck.cir``, once with the default binary raw and once with
``set filetype=ascii`` in the run directory's ``.spiceinit``.
"""

import subprocess

import numpy as np
import pytest

from imcpnn.errors import ResultsError
from imcpnn.spice import Ac, Dc, Op, RawFile, Sim, Tran, find_ngspice
from imcpnn.spice._runner import SPICEINIT

R_OHM, C_F = 1e3, 1e-9
TAU_S = R_OHM * C_F
CIRCUIT = f"""
v1 in 0 pulse(0 1 0 1e-12 1e-12 1 2) ac 1
v2 b 0 0.5
r1 in out {R_OHM}
c1 out 0 {C_F}
r2 out b 2k
i1 0 b 1e-4
"""
ANALYSES = (Op(), Dc("v1", 0.0, 1.0, 0.25), Dc("v1", 0.0, 1.0, 0.5, "v2", -0.5, 0.5, 0.25),
            Tran(1e-8, 5e-6, 1e-8), Ac(1e3, 1e8, 5))


def _ngspice_raw(tmp_path, name, deck, ascii_):
    d = tmp_path / name
    d.mkdir()
    (d / "deck.cir").write_text(deck)
    (d / ".spiceinit").write_text(SPICEINIT + ("set filetype=ascii\n" if ascii_ else ""))
    subprocess.run([str(find_ngspice()[0]), "-b", "-r", "out.raw", "deck.cir"], cwd=d, check=True,
                   capture_output=True)
    return RawFile(d / "out.raw")


@pytest.fixture(scope="module")
def raws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("raw")
    deck = Sim(CIRCUIT, ANALYSES, devices=()).deck(tmp)
    return _ngspice_raw(tmp, "bin", deck, False), _ngspice_raw(tmp, "ascii", deck, True)


@pytest.mark.slow
def test_binary_equals_ascii_for_every_analysis(raws):
    binary, ascii_ = raws
    assert [p.plotname for p in binary.plots] == [p.plotname for p in ascii_.plots]
    assert len(binary.plots) == len(ANALYSES)
    for pb, pa in zip(binary.plots, ascii_.plots):
        assert pb.names == pa.names and pb.is_complex == pa.is_complex and pb.shape == pa.shape
        assert pb._binary and not pa._binary
        for name in pb.names:
            np.testing.assert_allclose(pb[name], pa[name], rtol=1e-12, atol=1e-25, err_msg=name)


@pytest.mark.slow
def test_kinds_shapes_and_complex(raws):
    raw = raws[0]
    ac = raw.plot("ac")
    assert ac.is_complex and ac.axis.kind == "frequency" and ac["out"].dtype == np.complex128
    assert raw.plot("transient").axis.kind == "time"
    assert raw.plot("operating point").shape == (1,)
    dc1, dc2 = [p for p in raw.plots if p.plotname.lower().startswith("dc")]
    assert {dc1.shape, dc2.shape} == {(5,), (5, 3)}
    nested = dc1 if dc1.shape == (5, 3) else dc2
    assert {t.kind for t in nested.traces} == {"voltage", "current"}
    np.testing.assert_array_equal(nested["v-sweep"][0], [0.0, 0.5, 1.0])
    # node b is held by v2: each row of the (n2, n1) grid is one v2 value
    np.testing.assert_allclose(nested["v(b)"][:, 0], [-0.5, -0.25, 0.0, 0.25, 0.5], atol=1e-12)
    frame = nested.to_frame()
    assert list(frame.columns) == nested.names and len(frame) == 15


@pytest.mark.slow
def test_operating_point_and_ac_closed_forms(raws):
    raw = raws[0]
    op = raw.plot("operating point")
    # pulse starts at 0 V: v(out) = (0/R1 + vb/R2 + 0) / (1/R1 + 1/R2) with vb = 0.5
    v_out = (0.5 / 2e3) / (1 / R_OHM + 1 / 2e3)
    np.testing.assert_allclose(op["V(OUT)"], [v_out], rtol=1e-9)
    ac = raw.plot("ac")
    f_hz = ac["frequency"]
    assert f_hz.dtype == np.float64
    r_par = 1 / (1 / R_OHM + 1 / 2e3)
    h = (r_par / R_OHM) / (1 + 2j * np.pi * f_hz * r_par * C_F)  # divider into R2 || C
    np.testing.assert_allclose(ac["out"], h, rtol=1e-6)


@pytest.mark.slow
def test_rc_step_response_closed_form(tmp_path):
    """v(out) = 1 - exp(-t / RC) for a 1 V step into R-C (no load), uic from 0 V."""
    sim = Sim(f"v1 in 0 pwl(0 0 1e-12 1)\nr1 in out {R_OHM}\nc1 out 0 {C_F}\n.ic v(out)=0",
              (Tran(1e-9, 5 * TAU_S, 1e-9, use_initial_conditions=True),), devices=())
    raw = _ngspice_raw(tmp_path, "rc", sim.deck(tmp_path), False)
    tran = raw.plot("tran")
    t_s, v = tran["time"], tran["out"]
    late = t_s > 1e-10
    np.testing.assert_allclose(v[late], 1 - np.exp(-(t_s[late] - 1e-12) / TAU_S), atol=2e-3)


def _fake_raw(path, n_points=2, values=(0.0, 1.0, 1.0, 2.0), plotname="Transient Analysis"):
    header = (f"Title: t\nDate: x\nPlotname: {plotname}\nFlags: real\nNo. Variables: 2\n"
              f"No. Points: {n_points}\nVariables:\n\t0\ttime\ttime\n\t1\tv(a)\tvoltage\nBinary:\n")
    path.write_bytes(header.encode() + np.asarray(values, dtype=np.float64).tobytes())
    return path


def test_synthetic_binary_reads_lazily(tmp_path):
    raw = RawFile(_fake_raw(tmp_path / "x.raw"))
    plot = raw.plot(0)
    assert plot._data is None
    np.testing.assert_array_equal(plot["A"], [1.0, 2.0])
    assert raw.plot("tran") is plot and raw.plot(-1) is plot


def test_missing_names_list_the_available(tmp_path):
    raw = RawFile(_fake_raw(tmp_path / "x.raw"))
    with pytest.raises(KeyError, match=r"no trace 'v\(zz\)'.*available: time, v\(a\)"):
        raw.plot(0)["v(zz)"]
    with pytest.raises(KeyError, match=r"no plot named 'ac'.*'Transient Analysis'"):
        raw.plot("ac")
    with pytest.raises(KeyError, match="plot index 3 out of range: 1 plots"):
        raw.plot(3)


def test_ambiguous_plot_name(tmp_path):
    one = _fake_raw(tmp_path / "a.raw").read_bytes()
    (tmp_path / "two.raw").write_bytes(one + one)
    with pytest.raises(KeyError, match="2 plots named 'tran'.*use an index"):
        RawFile(tmp_path / "two.raw").plot("tran")


def test_bad_files_raise_results_error(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        RawFile(tmp_path / "none.raw")
    (tmp_path / "empty.raw").write_text("")
    with pytest.raises(ResultsError, match="holds no plot"):
        RawFile(tmp_path / "empty.raw")
    # found when the file is opened (the runner checks every new raw file that way), not on first read
    with pytest.raises(ResultsError, match="truncated in plot 'Transient Analysis': expected 6 values, found 4"):
        RawFile(_fake_raw(tmp_path / "t.raw", n_points=3))
    raw = RawFile(_fake_raw(tmp_path / "later.raw"))
    _fake_raw(tmp_path / "later.raw", n_points=2, values=(0.0, 1.0, 1.0))  # cut after opening
    with pytest.raises(ResultsError, match="truncated.*expected 4 values, found 3"):
        raw.plot(0)["v(a)"]
