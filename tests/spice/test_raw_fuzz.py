"""Fuzzing the raw-file reader: damaged files end in a typed error, never a hang or a wrong array.

Each source file (binary and ASCII; a synthetic one written here, and one ngspice writes, which
is ``slow``) is mutated a few hundred times with a seeded ``numpy`` Generator: cut at a random
byte, one bit flipped in a header or in the data, a byte inserted or deleted in a header, and
wrong headers. Every parse runs under a time limit. What is checked:

- any exception is an ImcpnnError (ResultsError), nothing else (no ValueError/IndexError);
- a cut file raises, unless it was cut between two plots: then it reads as the plots before
  the cut, unchanged (a killed ngspice writes such files; the cache's checksum catches them);
- a header mutation raises, or leaves every plot's size and numbers as they were (a flipped
  letter in a title, a name or a kind cannot be told from a real one);
- a data bit flip raises, or changes at most one number (a binary float with one bit flipped is
  another valid float: only the checksum in the cache's ``done.json`` can catch that).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading

import numpy as np
import pytest

from imcpnn.errors import ImcpnnError
from imcpnn.spice import RawFile

SEED = 20240611
TIME_LIMIT_S = 2.0
N_CUTS, N_HEADER_FLIPS, N_DATA_FLIPS, N_EDITS = 100, 150, 150, 60


# --- sources ----------------------------------------------------------------------------------

def _header(plotname: str, complex_: bool, variables: list[tuple[str, str]], n_points: int, binary: bool) -> bytes:
    lines = ["Title: * fuzz deck", "Date: Mon Jun 10 12:00:00  2024", f"Plotname: {plotname}",
             f"Flags: {'complex' if complex_ else 'real'}", f"No. Variables: {len(variables)}",
             f"No. Points: {n_points:<8d}", "Variables:"]
    lines += [f"\t{i}\t{name}\t{kind}" for i, (name, kind) in enumerate(variables)]
    lines.append("Binary:" if binary else "Values:")
    return ("\n".join(lines) + "\n").encode()


def _values(data: np.ndarray, binary: bool) -> bytes:
    """``data`` (n_points, n_vars) as ngspice writes it."""
    if binary:
        return np.ascontiguousarray(data).tobytes()
    out = []
    for p, row in enumerate(data):
        for j, v in enumerate(row):
            text = f"{v.real:.15e},{v.imag:.15e}" if np.iscomplexobj(data) else f"{v:.15e}"
            out.append(f"{p}\t\t{text}" if j == 0 else f"\t{text}")
    return ("\n".join(out) + "\n").encode()


def synthetic(binary: bool) -> bytes:
    """Three plots like ngspice's: operating point, transient, AC (complex)."""
    rng = np.random.default_rng(1)
    plots = [
        ("Operating Point", False, [("v(a)", "voltage"), ("i(v1)", "current")], rng.normal(size=(1, 2))),
        ("Transient Analysis", False, [("time", "time"), ("v(a)", "voltage"), ("v(b)", "voltage")],
         np.column_stack([np.linspace(0, 1e-6, 6), rng.normal(size=(6, 2))])),
        ("AC Analysis", True, [("frequency", "frequency"), ("v(out)", "voltage")],
         np.column_stack([np.logspace(3, 5, 3) + 0j, rng.normal(size=3) + 1j * rng.normal(size=3)])),
    ]
    return b"".join(_header(name, cplx, variables, len(data), binary) + _values(data, binary)
                    for name, cplx, variables, data in plots)


@pytest.fixture(scope="module")
def ngspice_files(tmp_path_factory):
    """Binary and ASCII raw files of one small deck with every analysis, written by ngspice."""
    from imcpnn.spice import Ac, Dc, Op, Sim, Tran, find_ngspice
    from imcpnn.spice._runner import SPICEINIT

    tmp = tmp_path_factory.mktemp("fuzz")
    circuit = "v1 in 0 pulse(0 1 0 1e-12 1e-12 1 2) ac 1\nv2 b 0 0.5\nr1 in out 1k\nc1 out 0 1n\nr2 out b 2k"
    deck = Sim(circuit, (Op(), Dc("v1", 0.0, 1.0, 0.5, "v2", -0.5, 0.5, 0.5), Tran(1e-7, 5e-7), Ac(1e3, 1e5, 2)),
               devices=()).deck(tmp)
    files = {}
    for kind in ("binary", "ascii"):
        d = tmp / kind
        d.mkdir()
        (d / "deck.cir").write_text(deck)
        (d / ".spiceinit").write_text(SPICEINIT + ("set filetype=ascii\n" if kind == "ascii" else ""))
        subprocess.run([str(find_ngspice()[0]), "-b", "-r", "out.raw", "deck.cir"], cwd=d, check=True,
                       capture_output=True, env={"HOME": str(d), "PATH": "/usr/bin:/bin"})
        files[kind] = (d / "out.raw").read_bytes()
    return files


# --- reading under a time limit ---------------------------------------------------------------

@contextlib.contextmanager
def _time_limit(seconds: float):
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the raw reader ran longer than {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _read(path, content: bytes, what: str):
    """("error", exc) or ("ok", [(n_points, n_vars, data), ...]) for ``content``; any other
    exception fails the test naming the mutation."""
    path.write_bytes(content)
    try:
        with _time_limit(TIME_LIMIT_S):
            raw = RawFile(path)
            plots = []
            for plot in raw.plots:
                data = plot._load()
                for name in plot.names:  # the public path too: shapes, nested-sweep reshape
                    assert plot[name].size == plot.n_points
                plots.append((plot.n_points, len(plot.traces), data))
            return "ok", plots
    except ImcpnnError as err:
        return "error", err
    except Exception as err:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{what}: {type(err).__name__} instead of a typed error: {err}")


def _regions(raw: RawFile, content: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[int]]:
    """(header byte ranges, data byte ranges, plot start offsets) of an intact file."""
    starts = [0] + [content.rfind(b"Title:", 0, p._offset) for p in raw.plots[1:]]
    ends = starts[1:] + [len(content)]
    headers = [(start, p._offset) for start, p in zip(starts, raw.plots)]
    data = [(p._offset, end) for p, end in zip(raw.plots, ends)]
    return headers, data, starts


def _same_numbers(a, b) -> bool:
    return len(a) == len(b) and all(
        pa[:2] == pb[:2] and np.array_equal(pa[2], pb[2], equal_nan=True) for pa, pb in zip(a, b))


def _changed_numbers(a, b) -> int | None:
    """How many numbers differ between two readings of the same structure (None: structure differs)."""
    if len(a) != len(b) or any(pa[:2] != pb[:2] for pa, pb in zip(a, b)):
        return None
    changed = 0
    for pa, pb in zip(a, b):
        x, y = pa[2], pb[2]
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        changed += int((~same).sum())
    return changed


def _fuzz(tmp_path, original: bytes, label: str, seed: int) -> dict[str, int]:
    path = tmp_path / f"{label}.raw"
    status, reference = _read(path, original, f"{label} intact")
    assert status == "ok", reference
    path.write_bytes(original)
    headers, data, starts = _regions(RawFile(path), original)
    rng = np.random.default_rng(seed)
    tally = {"raised": 0, "accepted": 0}

    def record(status):
        tally["raised" if status == "error" else "accepted"] += 1

    # 1. cut at a random byte
    for cut in rng.integers(0, len(original), N_CUTS):
        what = f"{label}: cut at byte {cut}"
        status, got = _read(path, original[:cut], what)
        record(status)
        if status == "ok":
            k = len(got)
            assert cut in starts or original[cut:].lstrip()[:6] == b"Title:", f"{what}: read {k} plots"
            assert _same_numbers(got, reference[:k]), f"{what}: the plots before the cut changed"

    # 2. one bit flipped in a header
    spans = np.array(headers)
    for _ in range(N_HEADER_FLIPS):
        h = spans[rng.integers(len(spans))]
        pos, bit = int(rng.integers(h[0], h[1])), int(rng.integers(8))
        mutated = bytearray(original)
        mutated[pos] ^= 1 << bit
        what = f"{label}: header byte {pos} ({original[pos:pos + 1]!r}) bit {bit}"
        status, got = _read(path, bytes(mutated), what)
        record(status)
        if status == "ok":
            assert _same_numbers(got, reference), f"{what}: read different numbers instead of raising"

    # 3. one bit flipped in the data
    spans = np.array([d for d in data if d[1] > d[0]])
    for _ in range(N_DATA_FLIPS):
        d = spans[rng.integers(len(spans))]
        pos, bit = int(rng.integers(d[0], d[1])), int(rng.integers(8))
        mutated = bytearray(original)
        mutated[pos] ^= 1 << bit
        what = f"{label}: data byte {pos} ({original[pos:pos + 1]!r}) bit {bit}"
        status, got = _read(path, bytes(mutated), what)
        record(status)
        if status == "ok":
            changed = _changed_numbers(got, reference)
            assert changed is not None and changed <= 1, f"{what}: {changed} numbers changed (None: sizes)"

    # 4. a byte inserted or deleted in a header
    spans = np.array(headers)
    for _ in range(N_EDITS):
        h = spans[rng.integers(len(spans))]
        pos = int(rng.integers(h[0], h[1]))
        if rng.random() < 0.5:
            byte = bytes([int(rng.integers(256))])
            mutated, what = original[:pos] + byte + original[pos:], f"{label}: {byte!r} inserted at {pos}"
        else:
            mutated, what = original[:pos] + original[pos + 1:], f"{label}: byte {pos} deleted"
        status, got = _read(path, mutated, what)
        record(status)
        if status == "ok":
            assert _same_numbers(got, reference), f"{what}: read different numbers instead of raising"
    return tally


def _wrong_headers(tmp_path, original: bytes, label: str) -> None:
    """Files that are not (or no longer) raw files at all must raise."""
    path = tmp_path / f"{label}-wrong.raw"
    first_line = original.split(b"\n", 1)[1]
    swapped = (original.replace(b"Binary:", b"Values:", 1) if b"Binary:" in original
               else original.replace(b"Values:", b"Binary:", 1))
    dup = original.replace(b"Flags:", b"Flags: real\nFlags:", 1)
    rng = np.random.default_rng(SEED)
    cases = {
        "Binary/Values swapped": swapped,
        "a header line twice": dup,
        "garbage first line": b"this is not a raw file\n" + first_line,
        "no variables count": original.replace(b"No. Variables:", b"No. Vars:", 1),
        "negative point count": original.replace(b"No. Points: ", b"No. Points: -", 1),
        "huge point count": original.replace(b"No. Points: ", b"No. Points: 99999999999", 1),
        "a CSV file": b"time,v(a)\n0,1\n1,2\n",
        "random bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "random text": bytes(rng.integers(32, 127, 4096, dtype=np.uint8)),
        "only a header": original[: original.index(b"\n", original.index(b"Variables:")) + 1],
        "empty": b"",
        "whitespace": b"\n \n\t\n",
    }
    for what, content in cases.items():
        status, got = _read(path, content, f"{label}: {what}")
        assert status == "error", f"{label}: {what} was read as {len(got)} plots"


@pytest.mark.parametrize("kind", ["binary", "ascii"])
def test_fuzz_synthetic(tmp_path, kind):
    original = synthetic(kind == "binary")
    tally = _fuzz(tmp_path, original, f"synthetic-{kind}", SEED)
    _wrong_headers(tmp_path, original, f"synthetic-{kind}")
    print(f"synthetic-{kind}: {tally}")
    assert tally["raised"] > tally["accepted"] / 4  # the fuzz reaches the checks, not only titles


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "ascii"])
def test_fuzz_ngspice_files(tmp_path, ngspice_files, kind):
    original = ngspice_files[kind]
    tally = _fuzz(tmp_path, original, f"ngspice-{kind}", SEED + 1)
    _wrong_headers(tmp_path, original, f"ngspice-{kind}")
    print(f"ngspice-{kind}: {tally}")
