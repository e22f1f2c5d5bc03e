"""Folders whose names hold spaces and Tcl/shell metacharacters work for the layout tools.

magic runs Tcl scripts and netgen ``eval``s its command line as Tcl, so a path such as
``a b[c]$d`` must never reach them unquoted. The fast tests check the quoting; the slow ones run
the real tools (a PDK from the ``pdk_root`` fixture) into such a folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from imcpnn.circuits.layout.magic import tcl_quote

#: A folder name with a space and Tcl's command, variable and brace characters.
NASTY = "a b[c]$d"

WORDS = ["plain_name.spice", NASTY, "x;y", 'say "hi"', "{open", "close}", "{a} {b}", "back\\slash",
         "end\\", "two\nlines", "tab\tx", "", "#hash", "~home", "é ü", "$HOME/[pwd]"]


@pytest.mark.parametrize("word", WORDS)
def test_tcl_quote_round_trips_through_tcl(word):
    """tclsh reads each quoted word back as exactly the original, as a word and as a list element."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.skip("no tclsh on PATH (it comes with magic/netgen: apt-get install tcl)")
    quoted = tcl_quote(word)
    script = (f"set w {quoted}\n"
              f"set l [list {quoted} cell]\n"
              "fconfigure stdout -encoding utf-8 -translation lf\n"
              "puts -nonewline [string length $w]:$w|[llength $l]|[lindex $l 0]")
    out = subprocess.run([tclsh], input=script.encode(), capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == f"{len(word)}:{word}|2|{word}"


def test_tcl_quote_leaves_plain_words_alone():
    assert tcl_quote("inv_pex_si.spice") == "inv_pex_si.spice"
    assert tcl_quote(NASTY) == "{a b[c]$d}"


@pytest.fixture(scope="module")
def setup(pdk_root):
    from imcpnn.circuits.layout.magic import MagicSetup

    return MagicSetup.discover(pdk_root)


@pytest.mark.slow
def test_layout_flow_and_gds_in_a_nasty_folder(setup, tmp_path):
    """The repro: LVS failed with "Cannot find cell <path> inv" and magic wrote no GDS."""
    from imcpnn.circuits.layout.cells import inverter_layout
    from imcpnn.circuits.layout.flow import run_layout_flow
    from imcpnn.circuits.layout.magic import magic_gds

    out = tmp_path / NASTY
    report = run_layout_flow(inverter_layout(), out, setup=setup)
    assert report.is_clean and report.lvs.is_match
    assert json.loads((out / "inv_layout.json").read_text())["lvs_match"] is True
    gds = magic_gds(inverter_layout(), out / f"{NASTY}.gds", setup=setup, build_dir=out / f"g {NASTY}")
    assert gds == out / f"{NASTY}.gds" and gds.read_bytes()[:4] == b"\x00\x06\x00\x02"


@pytest.mark.slow
def test_layout_verb_out_folder_with_spaces(tmp_path, monkeypatch, pdk_root):
    """`imcpnn layout --out "dir with space"` (and Tcl characters) ends clean."""
    from imcpnn.cli import main

    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    out = tmp_path / f"dir with space {NASTY}"
    assert main(["layout", "--cells", "inv", "--out", str(out)]) == 0
    assert json.loads((out / "inv_layout.json").read_text())["lvs_match"] is True


@pytest.mark.slow
def test_layout_verb_relative_out_folder(tmp_path, monkeypatch, pdk_root):
    """`imcpnn layout --out runs/layout` (relative): magic runs inside its build folder, so the
    tech file it is handed must not be relative to the caller's folder."""
    from imcpnn.cli import main

    monkeypatch.setenv("PDK_ROOT", str(pdk_root))
    monkeypatch.chdir(tmp_path)
    assert main(["layout", "--cells", "inv", "--out", "runs/layout"]) == 0
    assert json.loads((tmp_path / "runs/layout/inv_layout.json").read_text())["lvs_match"] is True
