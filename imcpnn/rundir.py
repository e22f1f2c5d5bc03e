"""Result folders of long commands (``imcpnn train``, ``validate``, ``demo``): one writer at a time,
and the wall time summed over the runs that resumed a folder.

- :class:`RunDirLock` (a context manager) keeps a second command off a result folder that another
  one is writing: ``DIR/.imcpnn.lock`` names the owner (PID, host, command, start time) and
  :class:`RunDirBusyError` repeats it. Mutual exclusion is an ``fcntl.flock`` on that file, which
  the kernel drops when its process dies, so a killed run never blocks the next one; where flock
  is unavailable an exclusive create (``O_CREAT | O_EXCL``) with a PID check stands in. A lock file
  left behind (its process gone, or written on another host) is taken over with a
  :class:`RunDirNote`. The lock goes when the block exits, also on an exception or Ctrl-C.
- :class:`RunClock` adds the wall time of the current run to the total of the earlier ones, kept
  in a small JSON file; :meth:`RunClock.save` belongs in a ``finally`` so that an interrupted run
  still counts.
- :func:`write_json_atomic`, :func:`file_sha256`, :func:`holds_results`: small helpers of the
  result folders.

This module is a leaf: standard library and :mod:`imcpnn.errors` only, so every subpackage may
use it. It keeps no global state.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from imcpnn.errors import ConfigError

try:  # POSIX; elsewhere the exclusive-create fallback is used
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

#: Name of the lock file inside a result folder.
LOCK_FILE = ".imcpnn.lock"
#: A lock file that is still empty after this many seconds is a leftover (exclusive-create mode).
_EMPTY_LOCK_GRACE_S = 5.0


class RunDirBusyError(ConfigError):
    """Another imcpnn command is writing into the same result folder (``--out``)."""


class RunDirNote(UserWarning):
    """A result folder was taken over or repaired: a stale lock, a corrupt file recomputed."""


def note(message: str) -> None:
    """Issue a :class:`RunDirNote` (shown once per message by the default warning filter)."""
    warnings.warn(message, RunDirNote, stacklevel=3)


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its owner."""

    pid: int
    host: str
    command: str
    started: str
    """Local start time, ``YYYY-MM-DD HH:MM:SS``."""

    @classmethod
    def current(cls, command: str) -> LockInfo:
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command,
                   started=datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"))

    @classmethod
    def parse(cls, text: str) -> LockInfo | None:
        """The info in ``text``; None when it is empty or unreadable."""
        try:
            data = json.loads(text)
            return cls(pid=int(data["pid"]), host=str(data["host"]), command=str(data["command"]),
                       started=str(data["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on host {self.host}"
        return f"PID {self.pid}{where} ({self.command} started {self.started})"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (unknown -> True: never take over, or clean
    up after, a live process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


class RunDirLock:
    """Exclusive use of the result folder ``directory`` by one command (``command``, e.g.
    "imcpnn train", appears in the message another command gets).

    Use as ``with RunDirLock(out_dir, "imcpnn train"): ...``; the folder is created. Raises
    :class:`RunDirBusyError` when another live process holds it.
    """

    def __init__(self, directory: str | Path, command: str):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.command = command
        self._fd: int | None = None
        self._info: LockInfo | None = None

    # -------------------------------------------------------------------------- public
    def acquire(self) -> RunDirLock:
        if self._fd is not None or self._info is not None:
            raise RuntimeError(f"{self.path} is already held by this RunDirLock")
        self.directory.mkdir(parents=True, exist_ok=True)
        info = LockInfo.current(self.command)
        if fcntl is not None:
            for _ in range(20):
                outcome = self._try_flock(info)
                if outcome == "held":
                    return self
                if outcome == "unsupported":
                    break
        self._acquire_exclusive(info)
        return self

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the lock; safe to call twice."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if _same_file(fd, self.path):
                    self.path.unlink()  # while still locked: a waiter then sees a new inode
            except OSError:
                pass
            finally:
                os.close(fd)  # drops the flock
        elif self._info is not None:
            info, self._info = self._info, None
            try:
                if LockInfo.parse(self.path.read_text()) == info:
                    self.path.unlink()
            except OSError:
                pass

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------------------- private
    def _busy(self, owner: LockInfo | None) -> RunDirBusyError:
        if owner is None:
            who = f"another imcpnn command (lock file {self.path})"
        else:
            who = owner.describe()
            if owner.pid == os.getpid() and owner.host == socket.gethostname():
                who += ", this very process"
        return RunDirBusyError(f"{self.directory} is in use by {who}; wait for it or use another --out")

    def _take_over_note(self, previous: LockInfo | None, reason: str) -> None:
        if previous is None:
            note(f"{self.path}: taking over a leftover lock file ({reason})")
        else:
            note(f"{self.directory}: taking over the stale lock of {previous.describe()} ({reason})")

    def _try_flock(self, info: LockInfo) -> str:
        """'held', 'retry' (the file was replaced under us) or 'unsupported' (no flock here)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = LockInfo.parse(_read_fd(fd))
            os.close(fd)
            if owner is not None and owner.host == info.host and not pid_alive(owner.pid):
                # held through a descriptor that a child forked by the dead owner inherited (a
                # worker outliving its parent): the owner is gone, start on a fresh lock file
                self._take_over_note(owner, "that process is no longer running")
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                return "retry"
            raise self._busy(owner) from None
        except OSError:  # ENOLCK, EOPNOTSUPP, ...: a file system without flock
            os.close(fd)
            return "unsupported"
        if not _same_file(fd, self.path):  # released (unlinked) between our open and flock
            os.close(fd)
            return "retry"
        previous = LockInfo.parse(_read_fd(fd))
        if previous is not None and (previous.pid, previous.host) != (info.pid, info.host):
            reason = ("written on another host, not held" if previous.host != info.host
                      else "that process is no longer running")
            self._take_over_note(previous, reason)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(info)) + "\n").encode(), 0)
        self._fd = fd
        return "held"

    def _acquire_exclusive(self, info: LockInfo) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    text = self.path.read_text()
                    age_s = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile
                owner = LockInfo.parse(text)
                if owner is None:
                    if age_s < _EMPTY_LOCK_GRACE_S:  # being written right now
                        raise self._busy(None) from None
                    reason = "unreadable"
                elif owner.host != info.host:
                    reason = "written on another host"
                elif pid_alive(owner.pid):
                    raise self._busy(owner) from None
                else:
                    reason = "that process is no longer running"
                self._take_over_note(owner, reason)
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            try:
                os.write(fd, (json.dumps(asdict(info)) + "\n").encode())
            finally:
                os.close(fd)
            self._info = info
            return
        raise self._busy(None)


def _read_fd(fd: int) -> str:
    try:
        return os.pread(fd, 65536, 0).decode(errors="replace")
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# ---------------------------------------------------------------------------------- helpers
def write_json_atomic(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file and a rename, so that an
    interruption leaves either the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def holds_results(directory: str | Path, ignore: tuple[str, ...] = ()) -> bool:
    """Whether ``directory`` holds any file besides the lock file and the names in ``ignore``
    (relative paths), e.g. whether a run saved anything beyond its config."""
    directory = Path(directory)
    if not directory.is_dir():
        return False
    skip = {LOCK_FILE, *ignore}
    return any(p.is_file() and str(p.relative_to(directory)) not in skip
               for p in directory.rglob("*"))


class RunClock:
    """Wall time spent on a result folder, summed over the runs that resumed it.

    ``path`` (JSON ``{"elapsed_s": ...}``) holds the total of the earlier runs;
    :meth:`total_s` is that plus the time since ``start_s`` (a ``time.perf_counter()`` value,
    default now); :meth:`save` writes the total (idempotent: call it as often as convenient, and
    in a ``finally`` so that an interrupted or failed run still counts). A corrupt file counts
    as 0 s, with a :class:`RunDirNote`.
    """

    def __init__(self, path: str | Path, start_s: float | None = None):
        self.path = Path(path)
        self.start_s = time.perf_counter() if start_s is None else start_s
        self.before_s = 0.0
        if self.path.is_file():
            try:
                value = json.loads(self.path.read_text())["elapsed_s"]
                if not (isinstance(value, (int, float)) and value >= 0):
                    raise ValueError(f"elapsed_s={value!r}")
                self.before_s = float(value)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
                note(f"{self.path} is corrupt ({err}); the elapsed time counts from this run on")

    def total_s(self) -> float:
        return self.before_s + time.perf_counter() - self.start_s

    def save(self) -> float:
        total = self.total_s()
        write_json_atomic(self.path, {"elapsed_s": total})
        return total
