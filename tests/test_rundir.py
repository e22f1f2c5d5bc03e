"""Result-folder lock (one command per --out), stale-lock takeover, and the resumed-run clock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from imcpnn import rundir
from imcpnn.errors import ConfigError
from imcpnn.rundir import (LOCK_FILE, RunClock, RunDirBusyError, RunDirLock, RunDirNote,
                           holds_results, write_json_atomic)

@pytest.fixture(params=["flock", "exclusive"])
def mode(request, monkeypatch):
    """Both lock mechanisms: flock, and the O_CREAT|O_EXCL fallback for file systems without it."""
    if request.param == "exclusive":
        monkeypatch.setattr(rundir, "fcntl", None)
    return request.param


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(directory, pid, host=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "command": "imcpnn train",
         "started": "2024-01-02 03:04:05"}))


def test_second_command_on_the_same_folder_is_refused_with_owner(tmp_path, mode, lock_holder):
    proc = lock_holder(tmp_path / "run")
    try:
        with pytest.raises(RunDirBusyError) as err:
            RunDirLock(tmp_path / "run", "imcpnn train").acquire()
        message = str(err.value)
        assert f"{tmp_path / 'run'} is in use by PID {proc.pid} (imcpnn validate started " in message
        assert message.endswith("wait for it or use another --out")
        assert isinstance(err.value, ConfigError)
    finally:
        proc.stdin.close()
        proc.wait()
    # released on exit: the folder is free again, and the lock file is gone
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    with RunDirLock(tmp_path / "run", "imcpnn train"):
        assert (tmp_path / "run" / LOCK_FILE).is_file()


def test_killed_holder_does_not_block(tmp_path, mode, lock_holder):
    proc = lock_holder(tmp_path / "run")
    proc.kill()
    proc.wait()
    assert (tmp_path / "run" / LOCK_FILE).is_file()  # left behind by the killed process
    with pytest.warns(RunDirNote, match=f"stale lock of PID {proc.pid}.*no longer running"):
        with RunDirLock(tmp_path / "run", "imcpnn train"):
            info = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
            assert info["pid"] == os.getpid() and info["command"] == "imcpnn train"


def test_lock_inherited_by_a_child_of_a_dead_owner_is_taken_over(tmp_path):
    orphaning = ("import os, sys\nfrom imcpnn.rundir import RunDirLock\n"
                 "RunDirLock(sys.argv[1], 'imcpnn validate').acquire()\n"
                 "if os.fork() == 0:\n    sys.stdin.read()\n    os._exit(0)\n"
                 "print('locked', flush=True)\nos._exit(0)\n")  # the owner dies, its child lives
    proc = subprocess.Popen([sys.executable, "-c", orphaning, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        proc.wait()
        with pytest.warns(RunDirNote, match=f"stale lock of PID {proc.pid}"):
            with RunDirLock(tmp_path, "imcpnn train"):
                assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        proc.stdin.close()


def test_lock_of_a_dead_pid_or_another_host_is_taken_over(tmp_path, mode):
    _write_lock(tmp_path / "a", _dead_pid())
    with pytest.warns(RunDirNote, match="no longer running"):
        RunDirLock(tmp_path / "a", "imcpnn train").acquire().release()
    _write_lock(tmp_path / "b", os.getppid(), host="some-other-host")  # a live PID, elsewhere
    with pytest.warns(RunDirNote, match="on host some-other-host.*another host"):
        RunDirLock(tmp_path / "b", "imcpnn train").acquire().release()
    assert not (tmp_path / "a" / LOCK_FILE).exists() and not (tmp_path / "b" / LOCK_FILE).exists()


def test_live_pid_lock_without_flock_is_respected(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "fcntl", None)
    _write_lock(tmp_path, os.getppid())
    with pytest.raises(RunDirBusyError, match=f"in use by PID {os.getppid()} \\(imcpnn train started "
                                              "2024-01-02 03:04:05\\)"):
        RunDirLock(tmp_path, "imcpnn validate").acquire()
    assert (tmp_path / LOCK_FILE).is_file()  # someone else's: left alone


def test_lock_is_released_on_keyboard_interrupt(tmp_path, mode):
    with pytest.raises(KeyboardInterrupt):
        with RunDirLock(tmp_path, "imcpnn train"):
            raise KeyboardInterrupt
    assert not (tmp_path / LOCK_FILE).exists()
    with pytest.raises(RunDirBusyError, match="this very process"):
        with RunDirLock(tmp_path, "imcpnn train"):
            RunDirLock(tmp_path, "imcpnn train").acquire()


def test_clock_adds_runs_and_counts_an_interrupted_one(tmp_path):
    path = tmp_path / "elapsed.json"
    with pytest.raises(KeyboardInterrupt):
        clock = RunClock(path, start_s=time.perf_counter() - 2.0)  # a run that took 2 s ...
        try:
            raise KeyboardInterrupt  # ... and was interrupted
        finally:
            clock.save()
    assert json.loads(path.read_text())["elapsed_s"] >= 2.0
    second = RunClock(path, start_s=time.perf_counter() - 3.0)
    assert 5.0 <= second.total_s() < 6.0
    assert second.save() == pytest.approx(second.save(), abs=0.1)  # idempotent, no double count
    path.write_text("{trunc")
    with pytest.warns(RunDirNote, match="elapsed.json is corrupt"):
        assert RunClock(path).before_s == 0.0


def test_holds_results_ignores_lock_and_named_files(tmp_path):
    assert not holds_results(tmp_path / "missing")
    write_json_atomic(tmp_path / "config.json", {"a": 1})
    (tmp_path / LOCK_FILE).write_text("")
    assert not holds_results(tmp_path, ignore=("config.json",))
    (tmp_path / "stages").mkdir()
    assert not holds_results(tmp_path, ignore=("config.json",))
    write_json_atomic(tmp_path / "stages" / "x.json", {})
    assert holds_results(tmp_path, ignore=("config.json",))
