"""Optional backend: ngspice as a shared library (``libngspice``) driven through PySpice.

Install with ``pip install 'imcpnn[pyspice]'`` (PySpice >= 1.5) and Debian's ``libngspice0``.
One shared ngspice lives per process and is reused, so there is no process start per run; the
deck (with its model set) is still parsed on every run. Only ``ngSpice_Circ`` (load a deck),
``bg_run`` and ``write`` of every plot into one raw file are used; that file is read by the same
:class:`RawFile` as batch mode.

Workarounds for PySpice 1.5 (it supports ngspice <= 34 officially; with ngspice 39 it logs
"Unsupported Ngspice version 39" and works for the calls above):

1. Its background-thread callback returns None, which cffi cannot turn into the C int ngspice
   expects: ``_Shared`` overrides it, returns 0 and signals the end of the run.
2. It flags every stderr line that is not a "Warning:" as an error (notes included) and logs it:
   its logger is silenced, command errors are caught (:func:`_quiet`), and the runner classifies
   the log as in batch mode.
3. It drops empty deck lines: they become ``*`` comments, so ngspice's line numbers match the
   deck.
4. ``plot_names`` lists plots newest first: they are written in reverse, i.e. in run order.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import threading
from pathlib import Path

from imcpnn.errors import ToolNotFoundError

PYSPICE_FIX = "install it with `.venv/bin/pip install 'imcpnn[pyspice]'` (PySpice>=1.5)"
LIBNGSPICE_FIX = "install it with `sudo apt-get install libngspice0` (or set $LIBNGSPICE to libngspice.so)"
_LIB_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libngspice.so.0", "/usr/lib/aarch64-linux-gnu/libngspice.so.0",
                   "/usr/lib/libngspice.so.0", "/usr/local/lib/libngspice.so")
_shared = None


def find_libngspice() -> Path:
    """``$LIBNGSPICE``, a Debian/Ubuntu ``libngspice.so.0`` or what the linker finds."""
    env = os.environ.get("LIBNGSPICE")
    candidates = [env] if env else [*_LIB_CANDIDATES, ctypes.util.find_library("ngspice")]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise ToolNotFoundError(f"libngspice not found (tried {', '.join(str(c) for c in candidates)}): "
                            f"{LIBNGSPICE_FIX}")


def pyspice_version() -> str | None:
    """Installed PySpice version, or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version("PySpice")
    except importlib.metadata.PackageNotFoundError:
        return None


def _ngspice_shared():
    global _shared
    if _shared is None:
        try:
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
        except ImportError:
            raise ToolNotFoundError(f"backend='pyspice' needs PySpice: {PYSPICE_FIX}") from None
        class _Shared(NgSpiceShared):
            finished = threading.Event()

            @staticmethod
            def _background_thread_running(not_running, ngspice_id, user_data):
                # ngspice calls this with true when its background run ends (workaround 1).
                if not_running:
                    ffi.from_handle(user_data).finished.set()
                return 0

        _Shared.LIBRARY_PATH = str(find_libngspice())
        # Workaround 2: the runner classifies the log itself.
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        ng = _Shared.new_instance()
        from ._sim import SPICEINIT

        for cmd in (*SPICEINIT.splitlines(), "set appendwrite"):
            ng.exec_command(cmd)
        _shared = ng
    return _shared


def shared_version() -> str:
    """ngspice version of the shared library (starts it)."""
    return str(_ngspice_shared().ngspice_version)


def _quiet(ng, command: str) -> str:
    """Run an ngspice command, returning its output; errors are read from the log, not raised."""
    from PySpice.Spice.NgSpice.Shared import NgSpiceCommandError

    try:
        ng.exec_command(command)
    except NgSpiceCommandError:
        pass
    return "\n".join([ng.stdout, ng.stderr])


def execute_shared(work: Path, timeout_s: float) -> tuple[int | None, str]:
    """Run ``work/deck.cir`` in the shared ngspice; write ``work/out.raw``.

    Returns (0, log) when ngspice finished (the runner classifies the log and checks the raw
    file, as in batch mode), (None, log) on timeout (the background run is halted).
    """
    ng = _ngspice_shared()
    deck = (work / "deck.cir").read_text()
    log = [_quiet(ng, "destroy all"), _quiet(ng, "remcirc")]
    ng.clear_output()
    # Workaround 3: empty lines as comments keep ngspice's line numbers equal to the deck's.
    ng.load_circuit("\n".join(line if line.strip() else "*" for line in deck.splitlines()))
    log.append("\n".join([ng.stdout, ng.stderr]))
    ng.finished.clear()
    log.append(_quiet(ng, "bg_run"))
    try:
        done = ng.finished.wait(timeout_s)
    except BaseException:  # Ctrl-C or SIGTERM while the background thread simulates: stop it too
        _quiet(ng, "bg_halt")
        ng.finished.wait(5.0)
        raise
    if not done:
        log.append(_quiet(ng, "bg_halt"))
        ng.finished.wait(30.0)
        (work / "ngspice.log").write_text("\n".join(log))
        return None, "\n".join(log)
    log.append("\n".join([ng.stdout, ng.stderr]))
    raw = work / "out.raw"
    for plot in reversed(ng.plot_names):  # workaround 4: the raw file keeps run order
        if plot != "const":
            log.append(_quiet(ng, f"setplot {plot}"))
            log.append(_quiet(ng, f"write {raw} all"))
    text = "\n".join(log)
    (work / "ngspice.log").write_text(text)
    return 0, text
