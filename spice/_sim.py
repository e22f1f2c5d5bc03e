"""Simulations as data: analyses and a ``Sim`` that renders a complete ngspice deck.

Callers give the netlist body (instances, sources, ``.subckt`` definitions, ``.include`` of cell
files by absolute path, ``.ic``); models, temperature, options, saves and analyses are added here.
Several analyses in one ``Sim`` become several plots of one raw file: that is how many points
share one ngspice start (and one model load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

from imcpnn.config import is_real, require, require_positive
from imcpnn.errors import ConfigError

from ._models import Corner, Devices, cache_root, find_models, model_include, normalize_devices


#: sky130 needs hsa and nomodcheck; ``filetype`` stays binary. One OpenMP thread per ngspice:
#: parallelism comes from running decks side by side (run_many), and ngspice's default OpenMP
#: threads spin against each other and against the other decks on a machine with few cores,
#: which slows even a tiny deck by orders of magnitude.
SPICEINIT = "set ngbehavior=hsa\nset ng_nomodcheck\nset num_threads=1\n"


def _fmt(x: float) -> str:
    """Shortest exact text of a float for a deck (``repr`` round-trips)."""
    return repr(float(x))


#: What ngspice reads as the start of a comment anywhere on a line, quotes or not: ";", and "$"
#: after a blank (measured with ngspice 39: `.include "/x/a;b/m.spice"` -> ".include filename
#: missing"). A path holding one cannot be included; spaces, "[]{}*'\\$~#" and a "$" after
#: another character are fine.
_NGSPICE_COMMENT = re.compile(r";|\s\$")


def _check_includable(path: str, what: str, fix: str) -> None:
    """ConfigError when ngspice would cut ``path`` short in an ``.include``/``.lib`` line."""
    m = _NGSPICE_COMMENT.search(path)
    if m:
        raise ConfigError(f"{what} {path!r} contains {m.group(0)!r}, which ngspice reads as the start of a "
                          f"comment even inside quotes, so a deck cannot include files from it: {fix}")


def _check_sweep(owner: object, prefix: str, start: float, stop: float, step: float) -> None:
    """The step ``step<prefix>_v`` of a sweep: finite, not 0, and toward ``stop`` from ``start``."""
    require(owner, f"step{prefix}_v", step, is_real(step) and step != 0, "a finite number other than 0")
    require(owner, f"step{prefix}_v", step, (stop - start) * step >= 0,
            f"a step with the sign of stop{prefix}_v - start{prefix}_v (start {start!r}, stop {stop!r})")


@dataclass(frozen=True)
class Op:
    """Operating point (``.op``); one plot 'Operating Point' with one point per trace."""

    def line(self) -> str:
        return ".op"


@dataclass(frozen=True)
class Dc:
    """DC sweep of a voltage or current source (``.dc``), optionally nested over a second source.

    ``source`` is swept fastest; with ``source2`` the traces reshape to ``(n2, n1)``. Values are
    volts for a V source and amperes for an I source (the ``_v`` names follow the common case).
    """

    source: str
    start_v: float
    stop_v: float
    step_v: float
    source2: str | None = None
    start2_v: float | None = None
    stop2_v: float | None = None
    step2_v: float | None = None

    def __post_init__(self) -> None:
        _check_sweep(self, "", self.start_v, self.stop_v, self.step_v)
        second = (self.start2_v, self.stop2_v, self.step2_v)
        if self.source2 is None and any(v is not None for v in second):
            raise ConfigError("Dc: start2_v/stop2_v/step2_v given without source2: name the second source")
        if self.source2 is not None:
            if any(v is None for v in second):
                raise ConfigError(f"Dc: source2={self.source2!r} needs start2_v, stop2_v and step2_v")
            _check_sweep(self, "2", *second)  # type: ignore[arg-type]

    def line(self) -> str:
        s = f".dc {self.source} {_fmt(self.start_v)} {_fmt(self.stop_v)} {_fmt(self.step_v)}"
        if self.source2 is not None:
            s += f" {self.source2} {_fmt(self.start2_v)} {_fmt(self.stop2_v)} {_fmt(self.step2_v)}"
        return s


@dataclass(frozen=True)
class Tran:
    """Transient (``.tran tstep tstop 0 tmax [uic]``)."""

    t_step_s: float
    t_stop_s: float
    t_max_step_s: float | None = None
    use_initial_conditions: bool = False

    def __post_init__(self) -> None:
        require_positive(self, "t_step_s", "t_stop_s", unit="s")
        if self.t_max_step_s is not None:
            require_positive(self, "t_max_step_s", unit="s")

    def line(self) -> str:
        s = f".tran {_fmt(self.t_step_s)} {_fmt(self.t_stop_s)}"
        if self.t_max_step_s is not None:
            s += f" 0 {_fmt(self.t_max_step_s)}"
        return s + (" uic" if self.use_initial_conditions else "")


@dataclass(frozen=True)
class Ac:
    """Small-signal AC sweep (``.ac dec|oct|lin n f_start f_stop``); traces are complex."""

    f_start_hz: float
    f_stop_hz: float
    points: int = 10
    variation: str = "dec"

    def __post_init__(self) -> None:
        require_positive(self, "f_start_hz", "f_stop_hz", unit="Hz")
        require(self, "variation", self.variation, self.variation in ("dec", "oct", "lin"), "'dec', 'oct' or 'lin'")
        require(self, "points", self.points, isinstance(self.points, int) and not isinstance(self.points, bool)
                and self.points >= 1, "an integer >= 1")

    def line(self) -> str:
        return f".ac {self.variation} {self.points} {_fmt(self.f_start_hz)} {_fmt(self.f_stop_hz)}"


Analysis = Union[Op, Dc, Tran, Ac]

_DEFAULT_OPTIONS: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Sim:
    """One ngspice deck: netlist body + analyses + models (corner, devices) + temperature.

    circuit: the netlist body, without models and analyses.
    analyses: one or more of Op, Dc, Tran, Ac; each becomes one plot of the raw file.
    devices: the sky130 subcircuits the circuit instantiates (a minimal model set is built for
        them, which loads in a small fraction of the full library's time); None loads the full
        library. Entries are names (all model bins) or ``DeviceUse(name, sizes_um=((W, L, nf),
        ...))`` (only the bins covering those sizes: much faster subckt expansion); a mapping
        ``{name: sizes or None}`` works too, and ``device_uses(circuit)`` reads the sizes from
        the circuit.
    save: node/branch vectors to save (``.save``), e.g. ("v(out)", "i(vd)"); empty saves all.
    options: ``.options`` entries, e.g. {"reltol": 1e-4, "klu": None} (None -> bare flag).
    mismatch_seed: None (nominal devices) or an integer >= 1: Monte Carlo device mismatch on (the
        corner's ``*_mm`` model section) with ngspice's random seed set to it (``.options
        seed=N``). One seed is one chip: a deck of the same structure (instances in the same order)
        draws the same offsets per instance whatever its sources, so batches of one network run
        with one seed see one chip. The seed is part of the deck, hence of the run key.
    """

    circuit: str
    analyses: tuple[Analysis, ...]
    corner: Corner = Corner.TT
    temp_c: float = 27.0
    devices: Devices | None = None
    save: tuple[str, ...] = ()
    options: Mapping[str, object] = field(default_factory=lambda: _DEFAULT_OPTIONS)
    mismatch_seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "corner", Corner.parse(self.corner))
        if isinstance(self.analyses, (Op, Dc, Tran, Ac)):
            object.__setattr__(self, "analyses", (self.analyses,))
        object.__setattr__(self, "analyses", tuple(self.analyses))
        if not self.analyses:
            raise ConfigError("Sim.analyses is empty: give at least one of Op(), Dc(...), Tran(...), Ac(...)")
        for a in self.analyses:
            if not isinstance(a, (Op, Dc, Tran, Ac)):
                raise ConfigError(f"Sim.analyses holds {a!r}: use Op(), Dc(...), Tran(...) or Ac(...)")
        if self.devices is not None:
            object.__setattr__(self, "devices", normalize_devices(self.devices))
        if isinstance(self.save, str):
            object.__setattr__(self, "save", (self.save,))
        object.__setattr__(self, "save", tuple(self.save))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        require(self, "mismatch_seed", self.mismatch_seed, self.mismatch_seed is None or (
            isinstance(self.mismatch_seed, int) and not isinstance(self.mismatch_seed, bool)
            and 1 <= self.mismatch_seed < 2**31), "None or an integer in [1, 2**31) (ngspice's seed)")
        if "seed" in {str(k).lower() for k in self.options}:
            raise ConfigError("Sim.options sets 'seed': give Sim(mismatch_seed=N) instead, which also loads "
                              "the mismatch models")
        require(self, "temp_c", self.temp_c, is_real(self.temp_c) and self.temp_c >= -273.15,
                "a finite temperature >= -273.15 C")
        for line in self.circuit.splitlines():
            card = line.strip().lower().split()[:1]
            if card and card[0] in (".end", ".control", ".endc", ".op", ".dc", ".tran", ".ac", ".lib"):
                raise ConfigError(
                    f"Sim.circuit contains {line.strip()!r}: give only the netlist body; models "
                    "(Sim.devices/corner) and analyses (Sim.analyses) are added by Sim"
                )

    def __hash__(self) -> int:
        return hash((self.circuit, self.analyses, self.corner, self.temp_c, self.devices, self.save,
                     tuple(sorted(self.options.items(), key=str)), self.mismatch_seed))

    def __reduce__(self):
        # MappingProxyType does not pickle; rebuild from a plain dict (process pools pickle Sims).
        return (_rebuild_sim, (self.circuit, self.analyses, self.corner, self.temp_c, self.devices,
                               self.save, dict(self.options), self.mismatch_seed))

    def deck_and_model_hash(self, cache_dir: Path | None = None) -> tuple[str, str]:
        """The full deck text and the hash of the model content it loads."""
        deck, _, model_hash = self._deck_parts(cache_dir)
        return deck, model_hash

    def _deck_parts(self, cache_dir: Path | None = None) -> tuple[str, str, str]:
        """(deck, key text, model hash). The key text is the deck with the model line replaced by
        the hash of the model content: it holds no path of the models or of the cache."""
        _check_includable(str(cache_root(cache_dir)), "SPICE cache directory",
                          "choose another --cache-dir / $IMCPNN_CACHE")
        models, model_hash = model_include(find_models(), self.corner, self.devices, cache_dir,
                                           mismatch=self.mismatch_seed is not None)
        included = re.search(r'"([^"]*)"', models)
        if included:
            _check_includable(included.group(1), "model file", "move the PDK (PDK_ROOT) or the cache")
        return self._render(models), self._render(f"* models sha256 {model_hash}"), model_hash

    def _render(self, models: str) -> str:
        lines = ["* imcpnn deck", models, f".temp {_fmt(self.temp_c)}"]
        if self.options:
            opts = " ".join(k if v is None else f"{k}={v}" for k, v in self.options.items())
            lines.append(f".options {opts}")
        if self.mismatch_seed is not None:
            lines.append(f".options seed={self.mismatch_seed}")
        lines += ["", self.circuit.strip(), ""]
        if self.save:
            lines.append(".save " + " ".join(self.save))
        lines += [a.line() for a in self.analyses]
        lines.append(".end")
        return "\n".join(lines) + "\n"

    def deck(self, cache_dir: Path | None = None) -> str:
        """The complete ngspice deck (models, temperature, options, circuit, saves, analyses)."""
        return self.deck_and_model_hash(cache_dir)[0]


def _rebuild_sim(*args) -> Sim:
    return Sim(*args)
