"""External tools (ngspice, magic, netgen) as children that stop when their caller stops.

A tool runs in its own process group (a new session): a timeout then kills it together with
anything it started, and a terminal's Ctrl-C does not reach it behind the caller's back. The
caller stops it instead, at once, when

- the time limit passes (:func:`wait` returns None),
- any exception interrupts the wait: KeyboardInterrupt from Ctrl-C, or from a SIGTERM handler
  that raises it (the CLI installs one); the exception propagates after the tool is gone,
- a ``stop`` flag (anything with ``is_set()``: a ``threading.Event``, a :class:`StopFile`) is
  set: worker threads never see KeyboardInterrupt, so a batch sets their flag instead;
  :class:`Stopped` is raised then.

Stopping sends SIGTERM to the group and SIGKILL after :data:`KILL_GRACE_S` (ngspice, magic and
netgen exit on SIGTERM within milliseconds). A second Ctrl-C while a tool is being stopped is
held back until it is gone, then delivered.

``own_group=False`` keeps the tool in the caller's process group: for pool workers that lead
their own group, so that killing the worker's group kills the worker and its tool at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol, Sequence

#: Seconds between SIGTERM and SIGKILL when a tool is stopped.
KILL_GRACE_S = 0.5
#: How often a wait looks at its stop flag, seconds.
POLL_S = 0.05


class Stopped(KeyboardInterrupt):
    """A tool was stopped because its stop flag was set (its batch was interrupted)."""


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class StopFile:
    """A stop flag that works across processes: set when its file exists (a picklable path).

    For executors whose workers are other processes the batch does not own: the batch
    creates the file when it is interrupted, and runs still queued there see it before they start.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = str(path) if path is not None else os.path.join(
            tempfile.gettempdir(), f"imcpnn-stop-{os.getpid()}-{time.monotonic_ns()}-{id(self)}")

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def set(self) -> None:
        with contextlib.suppress(OSError):
            Path(self.path).touch()

    def __repr__(self) -> str:
        return f"StopFile({self.path!r})"


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT and SIGTERM back while the block runs (main thread only; elsewhere a no-op).

    A signal that arrives meanwhile is delivered to its own handler when the block ends, so
    cleanup (stopping a tool, killing workers) is never cut in half by a second Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old is None:  # installed outside Python: cannot be restored, so leave it alone
            continue
        saved[sig] = old
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


def _send(pid: int, sig: int, group: bool) -> bool:
    """Signal a process (or the group it leads); False when it no longer exists."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_process(proc: subprocess.Popen, *, own_group: bool = True, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM to ``proc`` (its whole group with ``own_group``), SIGKILL after ``grace_s``; reaps it."""
    with deferred_interrupts():
        if proc.poll() is not None:
            return
        _send(proc.pid, signal.SIGTERM, own_group)
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        _send(proc.pid, signal.SIGKILL, own_group)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


def start(cmd: Sequence[str], *, own_group: bool = True, **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd)`` in a new session (``own_group``), stdin from /dev/null by default."""
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(list(cmd), start_new_session=own_group, **popen_kwargs)


def wait(proc: subprocess.Popen, timeout_s: float, *, own_group: bool = True,
         stop: StopFlag | None = None) -> int | None:
    """The exit code of ``proc``, or None when it ran past ``timeout_s`` (it is stopped then).

    Any exception while waiting (KeyboardInterrupt, SystemExit...) stops the tool first and then
    propagates; a set ``stop`` flag stops it and raises :class:`Stopped`.
    """
    # Polled like Popen.wait(timeout) does (1 ms doubling to POLL_S), but by hand: on
    # KeyboardInterrupt, Popen.wait first waits 0.25 s for a child that shares the terminal's
    # SIGINT, which ours (in their own session) never get.
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    try:
        while True:
            rc = proc.poll()
            if rc is not None:
                return rc
            if stop is not None and stop.is_set():
                raise Stopped(f"{Path(str(proc.args[0])).name} stopped: its batch was interrupted")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop_process(proc, own_group=own_group)
                return None
            delay = min(delay * 2, remaining, POLL_S)
            time.sleep(delay)
    except BaseException:
        stop_process(proc, own_group=own_group)
        raise


def run_captured(cmd: Sequence[str], *, timeout_s: float, cwd: str | Path | None = None,
                 env: dict | None = None, stop: StopFlag | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)`` for a tool that
    stops with its caller (see the module text).

    Output goes through temporary files (no pipe to drain while waiting) and is decoded with
    replacement of undecodable bytes. A timeout raises ``subprocess.TimeoutExpired`` (carrying the
    output so far) after the tool's group is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = start(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        rc = wait(proc, timeout_s, stop=stop)
        texts = []
        for fh in (out, err):
            fh.seek(0)
            texts.append(fh.read().decode(errors="replace"))
    if rc is None:
        raise subprocess.TimeoutExpired(list(cmd), timeout_s, output=texts[0], stderr=texts[1])
    return subprocess.CompletedProcess(list(cmd), rc, texts[0], texts[1])
