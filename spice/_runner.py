"""Run ngspice in batch mode in content-addressed run directories; parallel batches of runs.

A run directory ``<cache>/runs/<key>`` is named by a hash of the deck text (its model line
replaced by the sha256 of the model content, so the key holds no path and a moved or copied cache
keeps its entries), the ``.spiceinit`` text and the backend and ngspice version; a finished run
(``done.json`` present) is reused, so an interrupted sweep resumes where it stopped. ``done.json``
records the sha256 of ``out.raw``: a damaged entry (truncated or zeroed raw file, unreadable
``done.json``) is reported once (CacheWarning) and simulated again. A failed run is kept as
``<cache>/runs/<key>.failed`` for inspection; the ``.tmp`` folders of killed processes are removed
by the next run (see ``_cache``).

A run is three steps: ``prepare_run`` (deck and key, on the calling machine), the execution
(``execute_ngspice`` in a ``new_work_dir``) and ``store_run`` (checks, ``done.json``, the entry or
the typed error). ``_distributed`` executes on a Dask worker and stores with the same functions.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from imcpnn.errors import (ConfigError, ConvergenceError, ResultsError, SpiceError, SpiceTimeoutError,
                           ToolNotFoundError)
from imcpnn.progress import progress_bar

from . import _proc
from ._cache import remove_dead_tmp
from ._models import CacheWarning, ModelSource, cache_root, file_digest, find_models
from ._proc import StopFile, StopFlag, Stopped
from ._raw import Plot, RawFile
from ._sim import SPICEINIT, Sim

NGSPICE_FIX = "install it with `sudo apt-get install ngspice` (or put ngspice on PATH / set $NGSPICE)"


# Netlist problems are checked first: a broken deck also ends in "simulation(s) aborted".
_NETLIST_RE = re.compile(
    r"unknown subckt|could not find a valid modelname|can't find model|unknown model|error on line"
    r"|undefined parameter|unimplemented|syntax error|netlist line no|unknown device|fatal error",
    re.IGNORECASE,
)
_NOISE_RE = re.compile(r"simulation interrupted|circuit not parsed|no resource usage|aren't any circuits"
                       r"|no active circuit|cannot compute substitute", re.IGNORECASE)
_CONVERGENCE = (
    ("timestep too small", re.compile(r"timestep too small[^\n]*", re.IGNORECASE)),
    ("singular matrix", re.compile(r"singular matrix[^\n]*", re.IGNORECASE)),
    ("no convergence", re.compile(r"(?:no convergence|iteration limit reached|gmin stepping failed"
                                  r"|source stepping failed)[^\n]*", re.IGNORECASE)),
)
_FAILED_RE = re.compile(r"simulation\(s\) aborted|^\s*error\b|timestep too small|fatal error|"
                        + _NETLIST_RE.pattern, re.IGNORECASE | re.MULTILINE)
_CONVERGENCE_FIX = ("fix: look for floating nodes or voltage-source loops, add initial conditions (.ic / "
                    "Tran(use_initial_conditions=True)) or relax options (reltol, gmin, itl1, itl4, method=gear)")

@functools.lru_cache(maxsize=None)
def _ngspice_version(path: str) -> str:
    out = _proc.run_captured([path, "-v"], timeout_s=30).stdout
    m = re.search(r"ngspice-(\S+)", out)
    return m.group(1) if m else out.strip().splitlines()[0] if out.strip() else "unknown"


def find_ngspice() -> tuple[Path, str]:
    """Path and version of the ngspice binary (``$NGSPICE`` or PATH); ToolNotFoundError if absent."""
    env = os.environ.get("NGSPICE")
    path = env if env and Path(env).is_file() else shutil.which(env or "ngspice")
    if path is None:
        where = f"$NGSPICE={env} does not exist; " if env else ""
        raise ToolNotFoundError(f"ngspice not found ({where}not on PATH): {NGSPICE_FIX}")
    return Path(path), _ngspice_version(str(path))


@dataclass
class SimResult:
    """Result of one ``run``: the raw file's plots plus where and how they were made."""

    raw: RawFile
    deck: str
    models: ModelSource
    ngspice_version: str
    run_dir: Path
    from_cache: bool
    elapsed_s: float = 0.0
    log: str = field(default="", repr=False)

    @property
    def plots(self) -> list[Plot]:
        return self.raw.plots

    def plot(self, key: int | str = 0) -> Plot:
        """Plot by index (file order) or by plotname, e.g. "dc", "tran", "ac", "operating point"."""
        return self.raw.plot(key)

    def trace(self, name: str, plot: int | str | None = None) -> np.ndarray:
        """Vector ``name`` (case-insensitive, ``out`` finds ``v(out)``) of the only or named plot."""
        if plot is None:
            if len(self.plots) != 1:
                names = ", ".join(repr(p.plotname) for p in self.plots)
                raise KeyError(f"{len(self.plots)} plots in this result ({names}): pass plot= a name or index")
            plot = 0
        return self.plot(plot)[name]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.trace(name)


#: Format of run keys and entries: bump it when what a key covers or done.json holds changes.
_KEY_FORMAT = "run-2"


def _run_key(deck: str, model_hash: str, version: str, spiceinit: str = SPICEINIT) -> str:
    """Hash of everything a result depends on: ``deck`` is the key text (no absolute path)."""
    text = f"{_KEY_FORMAT}\n{version}\n{spiceinit}\n{model_hash}\n{deck}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _check_entry(final: Path) -> tuple[dict, RawFile] | str:
    """(done.json, raw file) of an intact finished run, or why it is damaged."""
    try:
        meta = json.loads((final / "done.json").read_text())
        recorded = meta["raw_sha256"]
        if not isinstance(recorded, str):
            raise TypeError(recorded)
    except FileNotFoundError:
        return "it has no done.json"
    except (OSError, ValueError, KeyError, TypeError):
        return "its done.json is unreadable or records no checksum of out.raw"
    raw = final / "out.raw"
    try:
        if file_digest(raw) != recorded:
            return "out.raw does not match the checksum in done.json"
        return meta, RawFile(raw)
    except FileNotFoundError:
        return "out.raw is missing"
    except (OSError, ResultsError) as err:
        return f"out.raw is unreadable ({err})"


#: Cache roots whose dead ``.tmp`` leftovers this process has removed already.
_SWEPT: set[Path] = set()


def _deck_line(deck: str, log: str) -> str | None:
    """The deck line ngspice complains about: by line number, or by the instance it names."""
    lines = deck.splitlines()
    m = re.search(r"(?:error on line|netlist line no\.)\s*(\d+)", log, re.IGNORECASE)
    if m and 0 < int(m.group(1)) <= len(lines):
        return lines[int(m.group(1)) - 1].strip()
    m = re.search(r"unknown subckt:\s*(\S+)|can't find model '[^']*' from line\s*\n\s*(\S+)", log, re.I)
    if m:
        name = (m.group(1) or m.group(2)).lower()
        return next((ln.strip() for ln in lines if ln.split()[:1] and ln.split()[0].lower() == name), None)
    return None


def classify_failure(log: str, deck: str, run_dir: Path) -> SpiceError:
    """The typed error for a failed run, from ngspice's combined stdout and stderr.

    Netlist problems -> SpiceError with the deck line; else the *last* convergence message wins
    (earlier singular-matrix warnings are often recovered by gmin/source stepping) and a
    singular-matrix node is added as a hint; else SpiceError with the log tail.
    """
    problems = [ln.strip() for ln in log.splitlines() if _NETLIST_RE.search(ln) and not _NOISE_RE.search(ln)]
    if problems:
        msg = "; ".join(dict.fromkeys(problems[:4]))
        return SpiceError(f"ngspice rejected the netlist: {msg}\n  fix: correct the netlist line below "
                          "(unknown subckt/model: include its file or add it to Sim.devices)",
                          run_dir=run_dir, log=log, deck_line=_deck_line(deck, log))
    hits = [(m.start(), meaning, m.group(0).strip()) for meaning, rx in _CONVERGENCE for m in rx.finditer(log)]
    if hits:
        _, meaning, text = max(hits)
        singular = re.search(r"singular matrix:\s*check node\s*(\S+)", log, re.I)
        extra = f" (ngspice also reported a singular matrix at node {singular.group(1)})" if (
            singular and meaning != "singular matrix") else ""
        return ConvergenceError(f"ngspice: {meaning}: {text}{extra}\n  {_CONVERGENCE_FIX}",
                                run_dir=run_dir, log=log)
    tail = "\n".join(log.strip().splitlines()[-8:])
    return SpiceError(f"ngspice failed without a known message; last output:\n{tail}", run_dir=run_dir, log=log)


def execute_ngspice(ngspice: Path, work: Path, timeout_s: float, *, own_group: bool = True,
                    stop: StopFlag | None = None) -> tuple[int | None, str]:
    """Run ngspice in ``work``; (returncode or None on timeout, combined output).

    ngspice is stopped (SIGTERM, then SIGKILL) on timeout, when ``stop`` is set, and on any
    exception while it runs (Ctrl-C's KeyboardInterrupt): see ``_proc``.
    """
    with open(work / "ngspice.log", "wb") as log:
        proc = _proc.start(
            [str(ngspice), "-b", "-r", "out.raw", "deck.cir"], cwd=work, stdout=log,
            stderr=subprocess.STDOUT, own_group=own_group,
            env={**os.environ, "HOME": str(work)},  # only the run dir's .spiceinit applies
        )
        rc = _proc.wait(proc, timeout_s, own_group=own_group, stop=stop)
    return rc, (work / "ngspice.log").read_text(errors="replace")


BACKENDS = ("batch", "pyspice")


def run(sim: Sim, *, cache_dir: str | Path | None = None, timeout_s: float = 600.0,
        keep_run_dir: bool = False, backend: str = "batch") -> SimResult:
    """Simulate ``sim`` with ngspice in batch mode, or reuse a finished identical run.

    cache_dir: holds ``models/`` (minimal sets) and ``runs/`` (default ``$IMCPNN_CACHE`` or
        ``~/.cache/imcpnn``); a relative path is taken from the current directory. A path with a
        double quote or a line break raises ConfigError.
    keep_run_dir: keep the scratch files (``.spiceinit``, ngspice log) of a successful run; the
        deck, the raw file and ``done.json`` are always kept (they are the cache entry).
    backend: "batch" (``ngspice -b``, one process per run) or "pyspice" (shared libngspice kept
        loaded in this process; needs the optional PySpice, see ``_pyspice``).
    Raises SpiceError (netlist/model problems, with the deck line), ConvergenceError,
    SpiceTimeoutError; the run directory of a failure is kept and named in the message.
    An interrupt (Ctrl-C, or SIGTERM where a handler turns it into KeyboardInterrupt) stops
    ngspice at once and removes the unfinished run's folder; finished runs stay in the cache.
    """
    return _run(sim, cache_dir=cache_dir, timeout_s=timeout_s, keep_run_dir=keep_run_dir, backend=backend)


def _run(sim: Sim, *, cache_dir: str | Path | None, timeout_s: float, keep_run_dir: bool = False,
         backend: str = "batch", own_group: bool = True, stop: StopFlag | None = None) -> SimResult:
    """``run`` with the batch controls: ``stop`` stops the run (raising Stopped) when set;
    ``own_group=False`` keeps ngspice in this process's group (a pool worker leading its own)."""
    prep = prepare_run(sim, cache_dir, backend)
    hit = cached_result(prep)
    if hit is not None:
        return hit
    work = new_work_dir(prep)
    t0 = time.perf_counter()
    try:
        if stop is not None and stop.is_set():  # queued before its batch was interrupted
            raise Stopped("run not started: its batch was interrupted")
        if prep.ngspice is None:
            from ._pyspice import execute_shared

            rc, log = execute_shared(work, timeout_s)
        else:
            rc, log = execute_ngspice(prep.ngspice, work, timeout_s, own_group=own_group, stop=stop)
    except BaseException:
        # interrupted (ngspice is stopped by then) or could not start: the folder holds no result
        shutil.rmtree(work, ignore_errors=True)
        raise
    return store_run(prep, work, rc, log, time.perf_counter() - t0, timeout_s=timeout_s,
                     keep_run_dir=keep_run_dir)


@dataclass(frozen=True)
class PreparedRun:
    """A sim resolved on this machine, before it runs: its deck, run key and cache entry.

    Split from the execution so that a run made elsewhere (a Dask worker, ``_distributed``)
    is looked up, checked and stored by the same code as a local one.
    ngspice: the batch binary (None for the pyspice backend); version: what the key holds.
    """

    deck: str
    key_text: str
    model_hash: str
    key: str
    backend: str
    version: str
    models: ModelSource
    runs: Path
    ngspice: Path | None

    @property
    def final(self) -> Path:
        """The run's cache entry ``runs/<key>``."""
        return self.runs / self.key

    @property
    def failed(self) -> Path:
        """Where a failure is kept for inspection."""
        return self.runs / f"{self.key}.failed"


def prepare_run(sim: Sim, cache_dir: str | Path | None, backend: str = "batch") -> PreparedRun:
    """Resolve ``sim`` in this process: ngspice and its version, models, deck and run key.

    Also removes the ``.tmp`` leftovers of dead processes (once per process and cache).
    Raises ConfigError (unknown backend, bad cache path) and ToolNotFoundError (no ngspice/models).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}")
    cache = cache_root(cache_dir)
    if backend == "pyspice":
        from ._pyspice import shared_version

        ngspice, version = None, shared_version()
    else:
        ngspice, version = find_ngspice()
    models = find_models()
    deck, key_text, model_hash = sim._deck_parts(cache)
    key = _run_key(key_text.replace(str(cache), "<cache>"), model_hash, f"{backend} {version}")
    if cache not in _SWEPT:
        _SWEPT.add(cache)
        remove_dead_tmp(cache)
    return PreparedRun(deck, key_text, model_hash, key, backend, version, models, cache / "runs", ngspice)


def cached_result(prep: PreparedRun) -> SimResult | None:
    """The finished entry of ``prep`` as a result, or None (absent, or damaged: then it is
    reported once with a CacheWarning and removed, so that the run is simulated again)."""
    final = prep.final
    if not final.exists():
        return None
    entry = _check_entry(final)
    if not isinstance(entry, str):
        meta, raw = entry
        return SimResult(raw, prep.deck, prep.models, prep.version, final, True, meta.get("elapsed_s", 0.0),
                         meta.get("log", ""))
    warnings.warn(f"SPICE cache: entry {final} is damaged ({entry}): simulating it again",
                  CacheWarning, stacklevel=3)
    shutil.rmtree(final, ignore_errors=True)
    return None


def new_work_dir(prep: PreparedRun) -> Path:
    """A fresh ``runs/<key>.tmp<pid>_<thread>`` folder holding the deck and ``.spiceinit``."""
    work = prep.runs / f"{prep.key}.tmp{os.getpid()}_{threading.get_ident()}"  # per process and thread
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "deck.cir").write_text(prep.deck)
    (work / ".spiceinit").write_text(SPICEINIT)
    return work


def store_run(prep: PreparedRun, work: Path, rc: int | None, log: str, elapsed: float, *, timeout_s: float,
              keep_run_dir: bool = False) -> SimResult:
    """Check a finished execution in ``work`` (``out.raw``; ``rc`` None: timed out) and make it
    the cache entry ``runs/<key>`` with ``done.json``, or keep it as ``runs/<key>.failed`` and
    raise the typed error (SpiceError, ConvergenceError, SpiceTimeoutError)."""
    final, failed, deck = prep.final, prep.failed, prep.deck
    error: SpiceError | None = None
    if rc is None:
        error = SpiceTimeoutError(f"ngspice killed after timeout_s={timeout_s} s: raise timeout_s or "
                                  "shorten the simulation", run_dir=failed, log=log)
    elif not log.strip() and rc != 0:  # nothing to classify: say how it ended
        killed = f" (killed by signal {-rc}, from outside ngspice: e.g. out of memory)" if rc < 0 else ""
        error = SpiceError(f"ngspice exited with status {rc}{killed} and printed nothing", run_dir=failed, log=log)
    elif rc != 0 or not (work / "out.raw").is_file() or _FAILED_RE.search(log):
        error = classify_failure(log, deck, failed)
    else:
        try:
            RawFile(work / "out.raw")
        except ResultsError as err:
            error = SpiceError(f"ngspice wrote an unreadable raw file: {err}", run_dir=failed, log=log)
    if error is not None:
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        raise error
    (work / "done.json").write_text(json.dumps({
        "elapsed_s": elapsed, "log": log, "ngspice": prep.version, "models": prep.models.describe(),
        "model_sha256": prep.model_hash, "raw_sha256": file_digest(work / "out.raw"),
        "raw_bytes": (work / "out.raw").stat().st_size, "format": _KEY_FORMAT}))
    if not keep_run_dir:
        for scratch in (".spiceinit", "ngspice.log"):
            (work / scratch).unlink(missing_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(work, final)
    except OSError:
        # another process finished the same deck first: its identical entry wins
        shutil.rmtree(work, ignore_errors=True)
        entry = _check_entry(final)
        if isinstance(entry, str):
            raise SpiceError(f"cannot store the finished run in the SPICE cache: {final} exists and {entry}; "
                             "fix: `imcpnn cache clean` or remove that folder", run_dir=final, log=log) from None
        return SimResult(entry[1], deck, prep.models, prep.version, final, False, elapsed, log)
    return SimResult(RawFile(final / "out.raw"), deck, prep.models, prep.version, final, False, elapsed, log)


def _run_star(sim: Sim, cache_dir, timeout_s: float, backend: str, in_own_worker: bool,
              stop: StopFlag | None) -> SimResult:
    # A worker of run_many's own pool leads its own process group (_own_worker_init): ngspice
    # stays in it, so that killing the group stops the worker and its ngspice together.
    own_group = not (in_own_worker and os.getpgrp() == os.getpid())
    return _run(sim, cache_dir=cache_dir, timeout_s=timeout_s, backend=backend, own_group=own_group, stop=stop)


def _own_worker_init(lead_group: bool) -> None:
    """Initializer of run_many's pool workers: with ``lead_group``, a process group of their own
    and default signals.

    The group keeps the terminal's Ctrl-C away from the workers (the main process stops them)
    and lets one ``killpg`` end a worker with its ngspice. Handlers inherited from the parent
    (a SIGTERM handler that raises KeyboardInterrupt) would let a worker survive that and
    take the next queued sim, so SIGINT and SIGTERM get their default action back. Without
    ``lead_group`` (run_many outside the main thread, which never sees KeyboardInterrupt) the
    workers stay in the caller's group: Ctrl-C reaches them and they stop their ngspice.
    """
    if not lead_group:
        return
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _kill_own_workers(processes: list) -> None:
    """SIGTERM to each worker's process group (worker and its ngspice), SIGKILL after the grace."""
    def send(p, sig: int) -> None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:  # its group is gone (or was never made): the worker alone
            with contextlib.suppress(OSError):
                os.kill(p.pid, sig)
        except PermissionError:
            pass

    for p in processes:
        send(p, signal.SIGTERM)
    deadline = time.monotonic() + _proc.KILL_GRACE_S
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.exitcode is None:
            send(p, signal.SIGKILL)
        else:  # reaped, but an ngspice that ignored SIGTERM keeps its group alive
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
    for p in processes:
        p.join(1.0)


def _abort(pool: cf.Executor, own: bool, futures: dict, stop) -> None:
    """Stop a batch now: no queued sim starts, every running ngspice is killed; finished runs
    stay cached. Interrupts arriving meanwhile are held back until this is done."""
    with _proc.deferred_interrupts():
        if stop is not None:
            stop.set()
        for fut in futures:
            fut.cancel()
        if own:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            _kill_own_workers(processes)
        elif isinstance(pool, cf.ThreadPoolExecutor):
            # the threads stop their ngspice within a poll interval plus the kill grace
            cf.wait([f for f in futures if not f.done()], timeout=_proc.KILL_GRACE_S + 2.0)


def run_many(sims: Sequence[Sim] | Iterable[Sim], *, executor: cf.Executor | None = None,
             max_workers: int | None = None, cache_dir: str | Path | None = None,
             progress: bool = True, desc: str = "ngspice", timeout_s: float = 600.0,
             backend: str = "batch") -> list[SimResult]:
    """Run independent sims in parallel through any ``concurrent.futures.Executor``.

    Default: a ProcessPoolExecutor with ``max_workers`` (None -> CPU count). The result list keeps
    the order of ``sims``. If some sims fail, the others still finish (and are cached); then the
    first failure is raised, its message counting all failures.

    An interrupt of the calling thread (KeyboardInterrupt from Ctrl-C, or from a SIGTERM handler)
    cancels the sims not started and stops every running ngspice at once, then propagates; the
    finished runs stay cached, so running the batch again resumes it. Own pool: its workers are
    killed with their ngspice. A ThreadPoolExecutor: its threads stop their ngspice before this
    returns. Another executor: a stop file tells its runs to stop (within 0.05 s) or not to start.

    progress: a tqdm bar on a terminal; when stderr is not one (a log file), a line
    ``desc: k/n sim`` at most every 10 s and one with the final count (``imcpnn.progress``).
    """
    sims = list(sims)
    cache = cache_root(cache_dir)
    own = executor is None
    in_main = threading.current_thread() is threading.main_thread()
    if own:
        find_models()  # resolved here first: a fallback note is said once, not once per worker
    pool = (cf.ProcessPoolExecutor(max_workers=max_workers, initializer=_own_worker_init, initargs=(in_main,))
            if own else executor)
    stop: threading.Event | StopFile | None = (
        None if own else threading.Event() if isinstance(pool, cf.ThreadPoolExecutor) else StopFile())
    results: list[SimResult | None] = [None] * len(sims)
    errors: list[tuple[int, BaseException]] = []
    futures: dict[cf.Future, int] = {}
    try:
        for i, s in enumerate(sims):
            futures[pool.submit(_run_star, s, cache, timeout_s, backend, own, stop)] = i
        with progress_bar(total=len(sims), desc=desc, enabled=progress, unit="sim") as bar:
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # collected: the other sims must finish first
                    errors.append((i, exc))
                bar.update(1)
    except BaseException:
        _abort(pool, own, futures, stop)  # shuts an own pool down without waiting
        raise
    if own:
        pool.shutdown()
    raise_first_failure(errors, len(sims))
    return results  # type: ignore[return-value]


def raise_first_failure(errors: list[tuple[int, BaseException]], n_sims: int) -> None:
    """Raise the failure of the lowest sim index, its message counting all failures of the
    batch (the others are cached by then); nothing when ``errors`` is empty."""
    if not errors:
        return
    errors.sort(key=lambda e: e[0])
    i, first = errors[0]
    if len(errors) > 1 and isinstance(first, SpiceError):
        first.args = (f"{len(errors)} of {n_sims} sims failed (indices "
                      f"{[j for j, _ in errors]}); the others are cached. First (sim {i}):\n"
                      f"{first.args[0]}",)
    raise first
