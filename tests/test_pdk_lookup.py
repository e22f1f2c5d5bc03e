"""The ``pdk_root`` fixture of tests/conftest.py: where it looks, and that layout tests skip (not
error) on a fresh clone without any PDK."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

# By path: `import conftest` may find tests/circuits/conftest.py, which pytest imported under that name too.
_spec = importlib.util.spec_from_file_location("_tests_conftest", Path(__file__).with_name("conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
NO_SHARED_PDK_ENV, PDK_SKIP_REASON = _conftest.NO_SHARED_PDK_ENV, _conftest.PDK_SKIP_REASON
REPO_ROOT, TECH_SUBPATH, find_pdk_root = _conftest.REPO_ROOT, _conftest.TECH_SUBPATH, _conftest.find_pdk_root


def _pdk(root: Path) -> Path:
    tech = root / TECH_SUBPATH
    tech.parent.mkdir(parents=True)
    tech.write_text("tech\n  sky130A\nend\n")
    return root


def test_lookup_order_pdk_root_then_ciel_then_volare(monkeypatch, tmp_path):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(NO_SHARED_PDK_ENV, "1")
    monkeypatch.setenv("PDK_ROOT", str(tmp_path / "empty"))
    assert find_pdk_root() is None
    build = _pdk(home / ".volare" / "volare" / "sky130" / "versions" / "abc123")  # not enabled
    assert find_pdk_root() == build
    assert find_pdk_root() == build
    _pdk(home / ".ciel")  # enabled: ~/.ciel/sky130A
    assert find_pdk_root() == home / ".ciel"
    mine = _pdk(tmp_path / "mine")
    monkeypatch.setenv("PDK_ROOT", str(mine))
    assert find_pdk_root() == mine


def test_layout_tests_skip_with_the_fix_without_any_pdk(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "pdk").mkdir()
    env = os.environ | {"HOME": str(tmp_path / "home"), "PDK_ROOT": str(tmp_path / "pdk"), NO_SHARED_PDK_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/circuits/test_layout_tools.py", "-rs", "-q", "-p", "no:cacheprovider",
         "-k", "tech_file_found or missing_pdk_root or discover_without_magic"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "2 skipped" in out and "1 passed" in out and not re.search(r"\d+ (errors?|failed)", out), out[-3000:]
    assert out.count(PDK_SKIP_REASON) == 2, out[-3000:]
