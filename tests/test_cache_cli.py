"""``imcpnn cache info|clean``: what the SPICE cache holds, removing leftovers, clear errors."""

import os
import subprocess
import sys

import pytest

from imcpnn.cli import build_parser, main


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "cache"
    dead = _dead_pid()
    (root / "runs" / "k1").mkdir(parents=True)
    (root / "runs" / "k1" / "done.json").write_text("{}")
    (root / "runs" / "k1" / "out.raw").write_bytes(b"x" * 4096)
    (root / "runs" / f"k2.tmp{dead}_1").mkdir()
    (root / "runs" / f"k2.tmp{dead}_1" / "out.raw").write_bytes(b"x" * 2048)
    (root / "runs" / f"k3.tmp{os.getpid()}_1").mkdir()
    (root / "runs" / "k4.failed").mkdir()
    (root / "models").mkdir()
    (root / "models" / "sky130_tt_abc.spice").write_text("* set\n")
    return root


def test_info_counts_entries_and_leftovers(cache, capsys):
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"cache:        {cache}" in out
    assert "entries:      1 finished runs, 1 minimal model sets" in out
    assert "leftovers:    2 (2.0 KiB): 1 .tmp of dead processes, 1 .failed, 0 without done.json" in out
    assert "in progress:  1 .tmp folders of running processes" in out
    assert f"imcpnn cache clean --cache-dir {cache}" in out


def test_relative_cache_dir_and_env(cache, capsys, monkeypatch):
    monkeypatch.chdir(cache.parent)
    assert main(["cache", "info", "--cache-dir", "cache"]) == 0
    assert f"cache:        {cache}\n" in capsys.readouterr().out
    monkeypatch.setenv("IMCPNN_CACHE", "cache")
    assert main(["cache", "info"]) == 0
    assert "1 finished runs" in capsys.readouterr().out


def test_clean_removes_leftovers_then_all(cache, capsys):
    assert main(["cache", "clean", "--cache-dir", str(cache)]) == 0
    assert "removed 2 leftovers (2.0 KiB)" in capsys.readouterr().out
    assert sorted(p.name for p in (cache / "runs").iterdir()) == ["k1", f"k3.tmp{os.getpid()}_1"]
    assert main(["cache", "clean", "--all", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "removed 2 runs, model sets and leftovers" in out and "kept 1 .tmp folders of runs still in progress" in out
    assert [p.name for p in (cache / "runs").iterdir()] == [f"k3.tmp{os.getpid()}_1"]
    assert not any((cache / "models").iterdir())


def test_info_of_a_missing_cache(tmp_path, capsys):
    assert main(["cache", "info", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "does not exist yet" in capsys.readouterr().out
    assert main(["cache", "clean", "--cache-dir", str(tmp_path / "none")]) == 0


@pytest.mark.parametrize("bad", ['a"b', "a\nb"])
def test_bad_cache_path_is_one_line_and_exit_2(tmp_path, capsys, bad):
    assert main(["cache", "info", "--cache-dir", str(tmp_path / bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imcpnn cache: error: SPICE cache directory") and "double quote or a line break" in err
    assert "Traceback" not in err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    out = capsys.readouterr().out
    for text in ("info", "clean", "--all", "imcpnn cache clean --all", "$IMCPNN_CACHE", ".failed",
                 "moved or copied", "damaged"):
        assert text in out
    with pytest.raises(SystemExit):
        main(["cache", "clean", "--help"])
    out = capsys.readouterr().out
    assert "--all" in out and "--cache-dir DIR" in out and "Examples:" in out
    assert "cache" in build_parser().format_help()


def test_action_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main(["cache"])
    assert info.value.code == 2 and "<action>" in capsys.readouterr().err
