"""Shared fixtures. SPICE tests really run ngspice (CI installs it); they are marked ``slow``.

Layout, extraction, LVS and post-layout tests need a sky130A magic tech file: they take the
``pdk_root`` fixture, which finds one the way users install it and skips the test (with the
reason and the fix) where none exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

#: The file the layout flow needs below a PDK root (circuits.magic.find_tech_file).
TECH_SUBPATH = Path("sky130A/libs.tech/magic/sky130A.tech")
#: Set (to anything) to skip the CI lookup of ``<repo>/../shared/pdk`` (the no-PDK test sets it).
NO_SHARED_PDK_ENV = "IMCPNN_TEST_NO_SHARED_PDK"
REPO_ROOT = Path(__file__).resolve().parents[1]
PDK_SKIP_REASON = (
    "no sky130A magic tech file found in $PDK_ROOT, ~/.ciel, ~/.volare or ../shared/pdk; install one "
    "with `ciel enable --pdk-family sky130 <open_pdks hash>` (or `volare enable --pdk sky130 <version>`), "
    "then `export PDK_ROOT=~/.ciel` (or ~/.volare)"
)


def pdk_root_candidates() -> list[Path]:
    """Where a PDK root may be, in order: $PDK_ROOT, ciel's and volare's default roots (the enabled
    version, then their versioned builds, newest first), then CI's ``<repo>/../shared/pdk``."""
    found: list[Path] = []
    if os.environ.get("PDK_ROOT"):
        found.append(Path(os.environ["PDK_ROOT"]).expanduser())
    home = Path.home()  # $HOME on POSIX
    for tool in ("ciel", "volare"):
        base = home / f".{tool}"
        found.append(base)  # `<tool> enable` links <base>/sky130A to the enabled version
        builds = [*base.glob(f"{tool}/sky130/versions/*"), *base.glob("sky130/versions/*")]
        found.extend(sorted(builds, key=lambda p: p.stat().st_mtime, reverse=True))
    if not os.environ.get(NO_SHARED_PDK_ENV):
        found.append(REPO_ROOT.parent / "shared" / "pdk")
    return found


def find_pdk_root() -> Path | None:
    """The first candidate holding ``sky130A/libs.tech/magic/sky130A.tech``, or None."""
    return next((root for root in pdk_root_candidates() if (root / TECH_SUBPATH).is_file()), None)


@pytest.fixture(scope="session")
def pdk_root() -> Path:
    """The PDK root (the folder holding sky130A/); skips the test with the fix where none is found."""
    root = find_pdk_root()
    if root is None:
        pytest.skip(PDK_SKIP_REASON)
    return root


@pytest.fixture
def sigint_raises():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt during the test, as in an interactive session,
    even where pytest was started with SIGINT ignored (a shell's background job inherits that)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


#: A process that takes the result-folder lock of argv[1] as command argv[2] and holds it until
#: its stdin closes.
LOCK_HOLDER = """
import sys
from imcpnn.rundir import RunDirLock
with RunDirLock(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def lock_holder():
    """``hold(folder, command)``: start another process that holds ``folder``'s lock as
    ``command`` (returns its Popen once it holds it); every holder is released at teardown
    (close its stdin to release one earlier)."""
    procs = []

    def hold(folder, command: str = "imcpnn validate") -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(folder), command],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.stdin.close()
        proc.wait()


@pytest.fixture(scope="module")
def client():
    """A Dask LocalCluster of 2 worker processes and its client (skipped without distributed)."""
    pytest.importorskip("distributed")
    from imcpnn.spice import dask_client

    with dask_client(None, n_workers=2) as c:
        c.wait_for_workers(2)
        yield c
