"""Runner: real ngspice runs, content-addressed cache, parallel batches, typed errors."""

import concurrent.futures as cf
import os
import stat

import numpy as np
import pytest

from imcpnn.errors import ConvergenceError, SpiceError, SpiceTimeoutError, ToolNotFoundError
from imcpnn.spice import Dc, Op, Sim, Tran, find_models, find_ngspice, run, run_many
from imcpnn.spice._runner import _ngspice_version

DIVIDER = "v1 a 0 {v}\nr1 a b 1k\nr2 b 0 3k"


def _divider(v):
    return Sim(DIVIDER.format(v=v), (Op(), Dc("v1", 0.0, 1.0, 0.5)), devices=())


@pytest.mark.slow
def test_run_reads_results_and_reuses_cache(tmp_path):
    first = run(_divider(2.0), cache_dir=tmp_path)
    assert not first.from_cache and first.run_dir.parent == tmp_path / "runs"
    assert first.models == find_models() and first.ngspice_version == find_ngspice()[1]
    np.testing.assert_allclose(first.plot("op")["b"], [1.5], rtol=1e-12)  # 2 V x 3k / 4k
    np.testing.assert_allclose(first.trace("v(b)", plot="dc"), [0.0, 0.375, 0.75], rtol=1e-12)
    assert (first.run_dir / "deck.cir").read_text() == first.deck
    assert not (first.run_dir / "ngspice.log").exists()  # scratch dropped unless keep_run_dir
    kept = run(_divider(5.0), cache_dir=tmp_path, keep_run_dir=True)
    assert "set ngbehavior=hsa" in (kept.run_dir / ".spiceinit").read_text()
    assert "Circuit: * imcpnn deck" in (kept.run_dir / "ngspice.log").read_text()
    again = run(_divider(2.0), cache_dir=tmp_path)
    assert again.from_cache and again.run_dir == first.run_dir
    np.testing.assert_array_equal(again.plot("op")["b"], first.plot("op")["b"])
    with pytest.raises(KeyError, match="2 plots in this result.*pass plot="):
        first.trace("v(b)")


@pytest.mark.slow
@pytest.mark.parametrize("executor", [None, "thread"])
def test_run_many_keeps_order(tmp_path, executor):
    volts = [1.0, 2.0, 3.0, 4.0]
    ex = cf.ThreadPoolExecutor(2) if executor else None
    results = run_many([_divider(v) for v in volts], executor=ex, max_workers=2, cache_dir=tmp_path,
                       progress=False)
    if ex:
        ex.shutdown()
    got = [r.plot("operating point")["v(b)"][0] for r in results]
    np.testing.assert_allclose(got, [0.75 * v for v in volts], rtol=1e-12)


@pytest.mark.slow
def test_run_many_progress_in_a_log_is_a_line_not_a_bar(tmp_path, capsys):
    """stderr is not a terminal here (captured): no carriage-return bar updates, the final count."""
    run_many([_divider(v) for v in (1.0, 2.0, 3.0)], executor=cf.ThreadPoolExecutor(2), cache_dir=tmp_path,
             desc="dividers")
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("\n") == 1 and err.startswith("dividers: 3/3 sim (")


@pytest.mark.slow
def test_run_many_failure_raises_after_others_cached(tmp_path):
    sims = [_divider(1.0), Sim("v1 a 0 1\nX1 a 0 nosuchcell", Op(), devices=()), _divider(3.0)]
    with pytest.raises(SpiceError, match="unknown subckt"):
        run_many(sims, max_workers=2, cache_dir=tmp_path, progress=False)
    assert run(sims[0], cache_dir=tmp_path).from_cache and run(sims[2], cache_dir=tmp_path).from_cache
    sims.append(Sim("v1 a 0 1\nX2 a 0 othercell", Op(), devices=()))
    with pytest.raises(SpiceError, match=r"2 of 4 sims failed \(indices \[1, 3\]\)"):
        run_many(sims, executor=cf.ThreadPoolExecutor(2), cache_dir=tmp_path, progress=False)


NETLIST_ERRORS = [
    ("v1 a 0 1\nX1 a 0 nosuchcell", "unknown subckt", "X1 a 0 nosuchcell"),
    ("v1 a 0 1\nD1 a 0 nosuchdiode", "can't find model 'nosuchdiode'", "D1 a 0 nosuchdiode"),
    ("v1 a 0 1\nr1 a 0 {rfoo}", r"Undefined parameter \[rfoo\]", "r1 a 0 {rfoo}"),
    ("v1 a 0 1\nr1 a 0 1k\nb1 a 0 i=v(a)*(", "syntax error", "b1 a 0 i=v(a)*("),
    ("v1 a 0 1\nr1 a 0 1k\n.foo bar", "unimplemented control card", ".foo bar"),
]


@pytest.mark.slow
@pytest.mark.parametrize("circuit, match, line", NETLIST_ERRORS)
def test_netlist_errors_name_the_line_and_keep_the_run_dir(tmp_path, circuit, match, line):
    with pytest.raises(SpiceError, match=match) as info:
        run(Sim(circuit, Op(), devices=()), cache_dir=tmp_path)
    err = info.value
    assert not isinstance(err, ConvergenceError)
    assert err.deck_line == line and f"netlist line: {line}" in str(err)
    assert err.run_dir.name.endswith(".failed") and (err.run_dir / "deck.cir").is_file()
    assert str(err.run_dir) in str(err) and "ngspice.log" in os.listdir(err.run_dir)


CONVERGENCE_ERRORS = [
    # two ideal sources in parallel: no operating point exists
    ("v1 a 0 1\nv2 a 0 2", Op(), r"singular matrix at node v1#branch"),
    # i = v^2 + 1 > 0 into ground can never balance the 0 A it must sink
    ("b1 b 0 i=v(b)*v(b)+1\nr1 b 0 1", Op(), r"trouble with node \"b\""),
    # a capacitor charged by a current while a -v^2 sink runs away to -infinity
    ("i1 0 b pwl(0 0 1n 1)\nb1 b 0 i=-v(b)*v(b)\nc1 b 0 1p", Tran(1e-11, 1e-9), r"timestep too small: Timestep"),
]


@pytest.mark.slow
@pytest.mark.parametrize("circuit, analysis, match", CONVERGENCE_ERRORS)
def test_convergence_errors(tmp_path, circuit, analysis, match):
    with pytest.raises(ConvergenceError, match=match) as info:
        run(Sim(circuit, analysis, devices=()), cache_dir=tmp_path)
    assert "initial conditions" in str(info.value) and info.value.run_dir.is_dir()


@pytest.mark.slow
def test_timeout_kills_ngspice(tmp_path):
    sim = Sim("v1 a 0 sin(0 1 1g)\nr1 a 0 1k", Tran(1e-13, 1e-3), devices=())
    with pytest.raises(SpiceTimeoutError, match=r"killed after timeout_s=0.3 s.*raise timeout_s") as info:
        run(sim, cache_dir=tmp_path, timeout_s=0.3)
    assert info.value.run_dir.is_dir()


def test_missing_ngspice_names_apt(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NGSPICE", raising=False)
    with pytest.raises(ToolNotFoundError, match=r"sudo apt-get install ngspice"):
        find_ngspice()
    monkeypatch.setenv("NGSPICE", str(tmp_path / "nope"))
    with pytest.raises(ToolNotFoundError, match=r"\$NGSPICE=.*nope does not exist"):
        find_ngspice()


def _run_with_fake_ngspice(tmp_path, monkeypatch, script: str, match: str) -> None:
    """Run a divider with a fake ngspice (``script``: its shell lines after answering ``-v``) and
    expect a SpiceError matching ``match``."""
    fake = tmp_path / "ngspice"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = -v ] && echo 'ngspice-99 fake' && exit 0\n{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("NGSPICE", str(fake))
    _ngspice_version.cache_clear()
    with pytest.raises(SpiceError, match=match):
        run(_divider(1.0), cache_dir=tmp_path / "cache")
    _ngspice_version.cache_clear()


def test_unknown_failure_shows_the_log_tail(tmp_path, monkeypatch):
    """A fake ngspice that exits 1 with an unfamiliar message."""
    _run_with_fake_ngspice(tmp_path, monkeypatch, "echo 'odd failure xyz'\nexit 1",
                           "without a known message; last output:\nodd failure xyz")


def test_a_silent_kill_says_the_signal(tmp_path, monkeypatch):
    """An ngspice killed from outside (e.g. out of memory) prints nothing: the error says how it
    ended instead of an empty log tail."""
    _run_with_fake_ngspice(tmp_path, monkeypatch, "kill -9 $$", "exited with status -9 \\(killed by signal 9")
