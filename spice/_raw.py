"""Reader of ngspice raw files (binary and ASCII): ``RawFile -> plots -> axis, traces``.

Layout of one plot (several plots follow each other in one file)::

    Title: ...            Plotname: DC transfer characteristic     Flags: real|complex
    No. Variables: n_vars   No. Points: n_points
    Variables:  <index> <name> <kind> [extra]      (one line per variable, the axis first)
    Binary:   n_points x n_vars float64 (real) or complex128 (complex), point-major
    | Values: per point "<index> <value>" then one "<value>" per further variable ("re,im")

The header is parsed eagerly (cheap); the numbers are read on first access of a trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imcpnn.errors import ResultsError

_KINDS = {"voltage": "voltage", "current": "current", "time": "time", "frequency": "frequency"}


@dataclass(frozen=True)
class Trace:
    """One saved vector: ``name`` as ngspice writes it (``v(out)``, ``i(vd)``) and its kind."""

    name: str
    kind: str  # voltage | current | time | frequency | other


@dataclass
class Plot:
    """One analysis result. ``shape`` is ``(n2, n1)`` for a nested DC sweep, else ``(n_points,)``."""

    title: str
    plotname: str
    is_complex: bool
    traces: tuple[Trace, ...]
    n_points: int
    _path: Path = field(repr=False)
    _offset: int = field(repr=False)
    _binary: bool = field(repr=False)
    _data: np.ndarray | None = field(default=None, repr=False)

    @property
    def axis(self) -> Trace:
        """The independent variable (time, frequency, sweep); the first vector of the plot."""
        return self.traces[0]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.traces]

    def _load(self) -> np.ndarray:
        """All vectors, shape ``(n_vars, n_points)``, float64 or complex128."""
        if self._data is None:
            n_vars, n = len(self.traces), self.n_points
            if self._binary:
                dtype = np.complex128 if self.is_complex else np.float64
                with open(self._path, "rb") as fh:
                    fh.seek(self._offset)
                    buf = fh.read(n * n_vars * np.dtype(dtype).itemsize)
                flat = np.frombuffer(buf, dtype=dtype)
            else:
                flat = _parse_ascii_values(self._path, self._offset, n, n_vars, self.is_complex)
            if flat.size != n * n_vars:
                raise ResultsError(
                    f"raw file {self._path} is truncated in plot {self.plotname!r}: expected "
                    f"{n * n_vars} values, found {flat.size}; rerun the simulation"
                )
            self._data = flat.reshape(n, n_vars).T.copy()
        return self._data

    @property
    def shape(self) -> tuple[int, ...]:
        return _sweep_shape(self._load()[0].real) if self.plotname.lower().startswith("dc") else (self.n_points,)

    def index(self, name: str) -> int:
        """Index of a vector by name, case-insensitive; ``out`` also finds ``v(out)``."""
        low = name.strip().lower()
        names = [n.lower() for n in self.names]
        for candidate in (low, f"v({low})", f"i({low})"):
            if candidate in names:
                return names.index(candidate)
        raise KeyError(f"no trace {name!r} in plot {self.plotname!r}; available: {', '.join(self.names)}")

    def _vector(self, i: int) -> np.ndarray:
        v = self._load()[i]
        # ngspice 39 writes an uninitialised imaginary part for the frequency axis of complex
        # plots (garbage such as 1e145 in ASCII files): the axis is real by definition.
        return v.real.copy() if self.traces[i].kind == "frequency" else v

    def __getitem__(self, name: str) -> np.ndarray:
        """Vector ``name`` reshaped to ``self.shape`` (nested DC sweeps: ``(n2, n1)``)."""
        return self._vector(self.index(name)).reshape(self.shape)

    def to_frame(self):
        """All vectors as a pandas DataFrame, one column per vector, one row per point."""
        import pandas as pd

        return pd.DataFrame({n: self._vector(i) for i, n in enumerate(self.names)})


def _sweep_shape(axis: np.ndarray) -> tuple[int, ...]:
    """``(n2, n1)`` when the sweep axis restarts every n1 points (``.dc v1 ... v2 ...``)."""
    n = axis.size
    if n < 2:
        return (n,)
    restarts = np.flatnonzero(axis[1:] == axis[0]) + 1
    if restarts.size == 0:
        return (n,)
    n1 = int(restarts[0])
    if n % n1 == 0 and np.array_equal(axis.reshape(-1, n1), np.tile(axis[:n1], (n // n1, 1))):
        return (n // n1, n1)
    return (n,)


def _ascii_number(token: str, is_complex: bool, path: Path) -> complex | float:
    try:
        if is_complex:
            re_, im = token.split(",")
            return complex(float(re_), float(im))
        return float(token)
    except ValueError:
        raise ResultsError(f"raw file {path} holds {token!r} where a number belongs: the file is damaged; "
                           "rerun the simulation") from None


def _parse_ascii_values(path: Path, offset: int, n_points: int, n_vars: int, is_complex: bool) -> np.ndarray:
    """The values of an ASCII plot, point by point: ``<index> <value>`` then ``n_vars - 1`` lines
    ``<value>``. Anything else (a wrong index, two values on a line, a missing line end) raises."""
    count = n_points * n_vars
    out: list[complex | float] = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        for raw in fh:
            if len(out) == count:
                break
            words = raw.decode("ascii", errors="replace").split()
            if not words:
                continue
            point, first = divmod(len(out), n_vars)
            expected = 2 if first == 0 else 1
            if len(words) != expected or (expected == 2 and words[0] != str(point)) or not raw.endswith(b"\n"):
                if ":" in words[0]:
                    break  # the next plot's header: too few values, reported below
                where = f"point {point}" + (f", vector {first}" if first else "")
                raise ResultsError(f"raw file {path} is damaged at {where}: {raw[:60]!r} is not "
                                   f"{'<index> <value>' if first == 0 else 'one value'}; rerun the simulation")
            out.append(_ascii_number(words[-1], is_complex, path))
    if len(out) != count:
        raise ResultsError(f"raw file {path} is truncated: expected {count} values, found {len(out)}; "
                           "rerun the simulation")
    return np.asarray(out, dtype=np.complex128 if is_complex else np.float64)


class RawFile:
    """All plots of one ngspice raw file, binary or ASCII; data read lazily.

    ``raw.plots[i]``, ``raw.plot("tran")`` (case-insensitive prefix of the plotname, or index).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ResultsError(f"raw file {self.path} does not exist: run the simulation first")
        self.plots: list[Plot] = _parse_headers(self.path)
        if not self.plots:
            raise ResultsError(f"raw file {self.path} holds no plot: the simulation produced no output")

    def plot(self, key: int | str = 0) -> Plot:
        if isinstance(key, int):
            if not -len(self.plots) <= key < len(self.plots):
                raise KeyError(f"plot index {key} out of range: {len(self.plots)} plots in {self.path}")
            return self.plots[key]
        low = key.strip().lower()
        hits = [p for p in self.plots if p.plotname.lower() == low] or [
            p for p in self.plots if p.plotname.lower().startswith(low)
        ]
        if len(hits) != 1:
            names = ", ".join(repr(p.plotname) for p in self.plots)
            why = "no plot" if not hits else f"{len(hits)} plots"
            raise KeyError(f"{why} named {key!r} in {self.path}; available: {names} (or use an index)")
        return hits[0]

    def __repr__(self) -> str:
        return f"RawFile({str(self.path)!r}, plots={[p.plotname for p in self.plots]})"


#: Header keys every plot must have (ngspice writes them all, with Title and Date).
_REQUIRED = ("plotname", "flags", "no. variables", "no. points", "variables")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789 ._-")


def _damaged(path: Path, plot_no: int, why: str) -> ResultsError:
    return ResultsError(f"raw file {path} is damaged in the header of plot {plot_no}: {why}; "
                        "rerun the simulation (or `imcpnn cache clean` for a cached run)")


def _count(value: str, what: str, path: Path, plot_no: int) -> int:
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise _damaged(path, plot_no, f"{what} is {value.strip()!r}, not a whole number")
    return int(text)


def _read_header(data: bytes, pos: int, path: Path, plot_no: int) -> tuple[dict[str, str], list[Trace], bool, int]:
    """(header, variables, binary?, position after the Binary:/Values: line) of the plot at ``pos``."""
    header: dict[str, str] = {}
    variables: list[Trace] = []
    in_vars = False
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        raw = data[pos:end]
        pos = end + 1
        if any(b < 0x20 and b not in (0x09, 0x0D) for b in raw) or 0x7F in raw:
            raise _damaged(path, plot_no, f"control characters in the line {raw[:60]!r}")
        line = raw.decode("utf-8", errors="replace")
        stripped = line.strip()
        if stripped.lower() in ("binary:", "values:"):
            return header, variables, stripped.lower() == "binary:", pos
        if not stripped:
            continue
        if in_vars and line[:1] in ("\t", " "):
            parts = stripped.split()
            if len(parts) < 3 or parts[0] != str(len(variables)) or not stripped.isascii():
                raise _damaged(path, plot_no, f"variable line {stripped!r} is not '{len(variables)} <name> <kind>'")
            variables.append(Trace(parts[1], _KINDS.get(parts[2].lower(), "other")))
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or not key or not set(key) <= _KEY_CHARS:
            raise _damaged(path, plot_no, f"unreadable line {stripped[:60]!r}")
        if key in header:
            raise _damaged(path, plot_no, f"{key!r} given twice")
        header[key] = value.strip()
        in_vars = key == "variables"
    raise ResultsError(f"raw file {path} is truncated in the header of plot {plot_no} (no Binary: or Values: "
                       "line): rerun the simulation")


def _parse_headers(path: Path) -> list[Plot]:
    """Every plot's header, checked against the file: counts, flags, and data that fits exactly.

    A damaged or truncated file raises ResultsError here, not when a trace is read: header
    lines must be ``key: value`` or numbered variable lines, the required keys present once,
    ``No. Variables`` equal to the variables listed, and the data of each plot complete (binary:
    by size; ASCII: by lines) with nothing but another plot after it.
    """
    data = path.read_bytes()
    plots: list[Plot] = []
    pos = 0
    while True:
        while pos < len(data) and data[pos] in b" \t\r\n":
            pos += 1
        if pos >= len(data):
            break
        plot_no = len(plots) + 1
        header, variables, binary, pos = _read_header(data, pos, path, plot_no)
        missing = [k for k in _REQUIRED if k not in header]
        if missing:
            raise _damaged(path, plot_no, f"no {', '.join(repr(k) for k in missing)} line")
        n_vars = _count(header["no. variables"], "No. Variables", path, plot_no)
        n_points = _count(header["no. points"], "No. Points", path, plot_no)
        if n_vars != len(variables) or n_vars == 0:
            raise _damaged(path, plot_no, f"No. Variables is {n_vars} but {len(variables)} variables are listed")
        flags = header["flags"].lower().split()
        if "real" not in flags and "complex" not in flags:
            raise _damaged(path, plot_no, f"Flags {header['flags']!r} say neither real nor complex")
        is_complex = "complex" in flags
        plot = Plot(header.get("title", ""), header["plotname"], is_complex, tuple(variables), n_points, path,
                    pos, binary)
        if binary:
            size = n_points * n_vars * (16 if is_complex else 8)
            if pos + size > len(data):
                found = (len(data) - pos) // (16 if is_complex else 8)
                raise ResultsError(
                    f"raw file {path} is truncated in plot {plot.plotname!r}: expected {n_points * n_vars} "
                    f"values, found {found}; rerun the simulation")
            pos += size
        else:
            pos = _skip_ascii(data, pos, n_points * n_vars, path, plot.plotname)
        plots.append(plot)
    return plots


def _skip_ascii(data: bytes, pos: int, count: int, path: Path, plotname: str) -> int:
    """Position after ``count`` ASCII values (one per non-empty line, each ended by a line break)."""
    seen = 0
    while pos < len(data) and seen < count:
        end = data.find(b"\n", pos)
        if end < 0:
            break  # a last line without its line break: cut short
        if data[pos:end].strip():
            seen += 1
        pos = end + 1
    if seen < count:
        raise ResultsError(f"raw file {path} is truncated in plot {plotname!r}: expected {count} values, "
                           f"found {seen}; rerun the simulation")
    return pos
