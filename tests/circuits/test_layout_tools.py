"""Tool discovery and tool-failure handling of the layout flow (fake executables, no real magic)."""

from __future__ import annotations

import argparse
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from imcpnn.circuits.layout import lvs as lvs_module
from imcpnn.circuits.layout import Layout, Rect, layout_cells
from imcpnn.circuits.layout.flow import run_layout_flow
from imcpnn.circuits.layout.lvs import LvsResult, run_lvs
from imcpnn.circuits.layout.magic import (
    DrcResult,
    MagicSetup,
    find_magic,
    find_netgen,
    find_tech_file,
    magic_drc,
    magic_version,
    run_magic,
)
from imcpnn.errors import ConfigError, NetlistError, ToolNotFoundError

def _fake_tool(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_tech_file_found_below_pdk_root(monkeypatch, pdk_root):
    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    assert find_tech_file().name == "sky130A.tech"
    assert find_tech_file(pdk_root) == pdk_root / "sky130A/libs.tech/magic/sky130A.tech"


def test_missing_pdk_root_says_how_to_set_it(monkeypatch, tmp_path):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    with pytest.raises(ToolNotFoundError, match="PDK_ROOT is not set: point it at an open_pdks install"):
        find_tech_file()
    with pytest.raises(ToolNotFoundError, match=r"magic tech file .* not found: PDK_ROOT=.* must be an open_pdks"):
        find_tech_file(tmp_path)


def test_missing_magic_and_netgen_name_their_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match=r"magic not found on PATH.*apt-get install magic"):
        find_magic()
    with pytest.raises(ToolNotFoundError, match=r"netgen-lvs not found on PATH.*apt-get install netgen-lvs"):
        find_netgen()


def test_discover_without_magic_names_it(monkeypatch, tmp_path, pdk_root):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="magic not found"):
        MagicSetup.discover(pdk_root)


def test_magic_version_without_number(tmp_path):
    fake = _fake_tool(tmp_path, "magic", "echo hello")
    with pytest.raises(ToolNotFoundError, match="printed no version"):
        magic_version(fake)


def _fake_setup(tmp_path: Path, body: str, pdk_root: Path) -> MagicSetup:
    return MagicSetup(_fake_tool(tmp_path, "magic", body), "8.3.105", pdk_root / "sky130A/libs.tech/magic/sky130A.tech")


def test_run_magic_failure_timeout_and_missing_drc_count(tmp_path, pdk_root):
    crash = _fake_setup(tmp_path, "echo 'Segmentation fault'; exit 139", pdk_root)
    with pytest.raises(NetlistError, match=r"magic failed \(exit code 139\)"):
        run_magic(crash, "drc check", tmp_path / "a")
    tcl = _fake_setup(tmp_path, 'echo \'invalid command name "drcx"\'', pdk_root)
    with pytest.raises(NetlistError, match="magic failed"):
        run_magic(tcl, "drcx", tmp_path / "b")
    slow = _fake_setup(tmp_path, "sleep 5", pdk_root)
    with pytest.raises(NetlistError, match="magic ran longer than 0.5 s"):
        run_magic(slow, "drc check", tmp_path / "c", timeout_s=0.5)
    silent = _fake_setup(tmp_path, "true", pdk_root)
    with pytest.raises(NetlistError, match="printed no DRC count"):
        magic_drc(layout_cells()["nfet"], setup=silent, build_dir=tmp_path / "d")
    # The trimmed tech copy is made even for a fake magic: its version line is patched.
    assert "requires magic-8.3.105" in (tmp_path / "d" / "sky130A.tech").read_text()


def test_magic_that_writes_nothing(tmp_path, pdk_root):
    from imcpnn.circuits.layout.magic import magic_extract, magic_gds

    silent = _fake_setup(tmp_path, "true", pdk_root)
    with pytest.raises(NetlistError, match="magic wrote no nfet_lvs_si.spice"):
        magic_extract(layout_cells()["nfet"], setup=silent, build_dir=tmp_path / "x")
    with pytest.raises(NetlistError, match="magic wrote no GDS"):
        magic_gds(layout_cells()["nfet"], tmp_path / "nfet.gds", setup=silent, build_dir=tmp_path / "g")


def test_drc_and_lvs_results_raise_with_details(tmp_path):
    drc = DrcResult("inv", 3, (("Metal1 minimum area < 0.083um^2 (met1.6)", 3),), tmp_path)
    with pytest.raises(NetlistError, match=r"(?s)DRC of inv: 3 errors.*met1\.6"):
        drc.raise_if_errors()
    lvs = LvsResult(False, ("Netlists do not match.",), tmp_path / "r.txt")
    with pytest.raises(NetlistError, match="(?s)LVS mismatch.*do not match"):
        lvs.raise_if_mismatch()


def test_netgen_without_report_or_hanging(tmp_path, monkeypatch):
    monkeypatch.setattr(lvs_module, "find_netgen", lambda: _fake_tool(tmp_path, "netgen", "echo oops"))
    with pytest.raises(NetlistError, match="netgen wrote no report"):
        run_lvs(tmp_path / "a.spice", "a", tmp_path / "b.spice", "b", tmp_path / "lvs")
    monkeypatch.setattr(lvs_module, "find_netgen", lambda: _fake_tool(tmp_path, "netgen2", "sleep 5"))
    with pytest.raises(NetlistError, match="netgen ran longer than"):
        run_lvs(tmp_path / "a.spice", "a", tmp_path / "b.spice", "b", tmp_path / "lvs2", timeout_s=0.5)


def test_flow_needs_a_schematic(tmp_path):
    bare = Layout("bare", (Rect("metal1", 0, 0, 100, 100),))
    with pytest.raises(NetlistError, match="carries no schematic"):
        run_layout_flow(bare, tmp_path)


def test_layout_verb_rejects_unknown_cells(tmp_path):
    from imcpnn.verbs import layout as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    args = parser.parse_args(["--cells", "inv,sram", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match=r"unknown \['sram'\]"):
        verb.run(args)


@pytest.mark.parametrize("size", ["5", "0x3", "ax2"])
def test_layout_verb_rejects_bad_array_size(tmp_path, size):
    from imcpnn.verbs import layout as verb

    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    args = parser.parse_args(["--cells", "synapse_array", "--array-size", size, "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="write N_INxN_OUT with positive integers"):
        verb.run(args)


# A tool that starts a grandchild and waits: an interrupt must stop both (the process group).
_GRANDCHILD = "sleep 30 & echo $! > {pid_file}; wait"


def _interrupt_soon(delay_s: float = 0.7) -> threading.Timer:
    """A real SIGINT to the main thread, as Ctrl-C sends it (interrupts the blocking wait)."""
    timer = threading.Timer(delay_s, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    return timer


def _gone(pid: int, within_s: float = 1.0) -> bool:
    """Has the process ended (or become a zombie) within ``within_s``?"""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in "ZX":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.usefixtures("sigint_raises")
def test_interrupt_stops_magic_and_its_children(tmp_path):
    tech = tmp_path / "sky130A.tech"
    tech.write_text("tech\n  requires magic-8.3.111\nend\n")
    pid_file = tmp_path / "magic_child.pid"
    setup = MagicSetup(_fake_tool(tmp_path, "magic", _GRANDCHILD.format(pid_file=pid_file)), "8.3.105", tech)
    timer = _interrupt_soon()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_magic(setup, "drc check", tmp_path / "build")
    timer.join()
    assert time.monotonic() - t0 < 2.0
    assert _gone(int(pid_file.read_text())), "magic's child survived Ctrl-C"


@pytest.mark.usefixtures("sigint_raises")
def test_interrupt_stops_netgen_and_its_children(tmp_path, monkeypatch):
    pid_file = tmp_path / "netgen_child.pid"
    fake = _fake_tool(tmp_path, "netgen", _GRANDCHILD.format(pid_file=pid_file))
    monkeypatch.setattr(lvs_module, "find_netgen", lambda: fake)
    timer = _interrupt_soon()
    with pytest.raises(KeyboardInterrupt):
        run_lvs(tmp_path / "a.spice", "a", tmp_path / "b.spice", "b", tmp_path / "lvs")
    timer.join()
    assert _gone(int(pid_file.read_text())), "netgen's child survived Ctrl-C"


def test_lvs_names_files_relative_to_its_build_dir(tmp_path, monkeypatch):
    """netgen gets "<file> <cell>" lists of plain names: the netlists are copied beside the report."""
    args_file = tmp_path / "args"
    fake = _fake_tool(tmp_path, "netgen", f'printf "%s\\n" "$@" > {args_file}; echo "Circuits match uniquely." > "$6"')
    monkeypatch.setattr(lvs_module, "find_netgen", lambda: fake)
    src = tmp_path / "in [x] $y"
    src.mkdir()
    (src / "lay out.spice").write_text(".subckt inv a\n.ends\n")
    (src / "sch.spice").write_text(".subckt inv a\n.ends\n")
    build = tmp_path / "a b[c]$d"
    result = run_lvs(src / "lay out.spice", "inv", src / "sch.spice", "inv", build)
    assert result.is_match
    assert args_file.read_text().splitlines() == [
        "-batch", "lvs", "lvs_layout.spice inv", "lvs_schematic.spice inv", "netgen_setup.tcl", "lvs_report.txt"]
    assert (build / "lvs_layout.spice").read_text() == ".subckt inv a\n.ends\n"
