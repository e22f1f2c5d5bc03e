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
                flat = _parse_ascii_values(self._path, self._offset, n * n_vars, self.is_complex)
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


def _parse_ascii_values(path: Path, offset: int, count: int, is_complex: bool) -> np.ndarray:
    with open(path, "rb") as fh:
        fh.seek(offset)
        out: list[complex | float] = []
        for raw in fh:
            line = raw.decode("ascii", errors="replace").strip()
            if not line:
                continue
            if ":" in line and not line[0].isdigit() and line[0] not in "+-.":
                break  # the next plot's header
            token = line.split()[-1]
            if is_complex:
                re_, im = token.split(",")
                out.append(complex(float(re_), float(im)))
            else:
                out.append(float(token))
            if len(out) == count:
                break
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


def _parse_headers(path: Path) -> list[Plot]:
    data = path.read_bytes()
    plots: list[Plot] = []
    pos = 0
    while pos < len(data):
        header: dict[str, str] = {}
        variables: list[Trace] = []
        in_vars = False
        binary = None
        while pos < len(data):
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            line = data[pos:end].decode("ascii", errors="replace")
            pos = end + 1
            stripped = line.strip()
            if stripped.lower() in ("binary:", "values:"):
                binary = stripped.lower() == "binary:"
                break
            if in_vars and line[:1] in ("\t", " ") and stripped:
                parts = stripped.split()
                variables.append(Trace(parts[1], _KINDS.get(parts[2].lower(), "other")))
                continue
            key, _, value = line.partition(":")
            in_vars = key.strip().lower() == "variables"
            if key.strip():
                header[key.strip().lower()] = value.strip()
        if binary is None:
            break
        n_points = int(header.get("no. points", "0"))
        is_complex = "complex" in header.get("flags", "").lower()
        plot = Plot(header.get("title", ""), header.get("plotname", ""), is_complex, tuple(variables),
                    n_points, path, pos, binary)
        plots.append(plot)
        if binary:
            pos += n_points * len(variables) * (16 if is_complex else 8)
        else:
            pos = _skip_ascii(data, pos, n_points * len(variables))
    return plots


def _skip_ascii(data: bytes, pos: int, count: int) -> int:
    """Position after ``count`` ASCII values (one per non-empty line)."""
    seen = 0
    while pos < len(data) and seen < count:
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        if data[pos:end].strip():
            seen += 1
        pos = end + 1
    return pos
