"""RC-Spike network as typed objects, and its transient testbench as netlist text.

Timing (``PhaseSchedule``, T = ``t_phase_s``): every layer cycles reset -> accumulation -> firing,
one T each, and layer l runs one T behind layer l-1, so layer l+1 accumulates while layer l fires
(the pipelining of the method, section 4). A layer is busy every T of its 3T cycle, so successive
samples follow each other every 3T: sample s, layer l has

    reset [o_s + l T, o_s + (l+1) T],  accumulation [.. + T, .. + 2T],  firing [.. + 2T, .. + 3T]

with o_s = 3 T s. Each layer gets its two digital signals (``rst<l>``, ``fire<l>``, with
complements), the same waveform shifted by l T. Input spikes of sample s rise at
o_s + T + t_j T and stay high to the end of layer 0's accumulation window.

Node names: membrane ``m<l>_<i>``, spike lines into layer l ``s<l>_<j>`` / ``sb<l>_<j>``
(layer 0: the PWL inputs; layer l > 0: outputs of layer l-1), gate biases ``vn<l>_<j>_<i>`` /
``vp<l>_<j>_<i>``; an unused current source has its gate on ``0`` (NMOS) or ``vdd`` (PMOS).

Supplies (``network_deck(..., save_supplies=True)``, the default): so that a transient can say
which source spent what energy, every source that feeds the circuit is a :class:`Supply` whose
branch current the deck saves. The shared rails ``vdd``, ``v0``, ``vbsense`` (sources ``VDD``,
``VV0``, ``VBS``) feed layer l through 0 V ammeters ``VI_<node>`` onto the layer's own nodes
``vdd<l>``, ``v0_<l>``, ``vbsense<l>`` (its cells and its off PMOS gates hang there); every
other source already belongs to one layer (gate biases, discharger bias, phase drivers) or to
the inputs (``VIN<j>``, ``VINB<j>``). A 0 V source carries the current without changing a node
voltage, so the circuit is the same; the matrix grows by two unknowns per ammeter, and its
different rounding moves ngspice's accepted time steps, so spike times move slightly: the
step control's choices change, not the circuit (extra saved vectors alone change nothing). With
``save_supplies=False`` the deck is the one without ammeters. A post-layout core has one port
per rail: there ``VDD``, ``VV0``, ``VBS`` are supplies shared by every layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from imcpnn.circuits.netlist.cells import CELLS, Neuron, Synapse, cell_text
from imcpnn.circuits.netlist.extracted import ExtractedNetlist, net_base, parse_extracted
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT, OperatingPoint
from imcpnn.config import is_real, require, require_positive
from imcpnn.errors import ConfigError, NetlistError

NETLIST_KINDS = ("schematic", "schematic+parasitic-estimate", "post-layout")

#: Energy groups of the testbench's sources (:attr:`Supply.group`): the synapse array and the
#: neurons (their VDD); the neurons' reset and bias sources (V0, the sensing bias, the
#: discharger gate bias); the synapses' gate-bias sources; the input spike drivers; the phase
#: signal drivers (reset and firing, with complements).
SUPPLY_GROUPS = ("array_neurons", "neuron_bias", "synapse_bias", "input_drivers", "phase_drivers")


@dataclass(frozen=True)
class PhaseSchedule:
    """Phase length T (s), digital edge time (s), transient step control and input time grid.

    ``t_grid`` (normalized, 0 = exact) rounds input spike times to a shared grid: shared edge
    times make large transients much cheaper (cost about N^2 -> N in the number of inputs:
    :mod:`imcpnn.circuits.simulate.column`).

    Step control: ``t_step_max_s`` caps the step, ``trtol`` is ngspice's truncation-error factor
    (``.options trtol``, ngspice's default 7; smaller = steps chosen by a tighter local error).
    The spike times hinge on edges (phase signals, spikes) that couple charge into the
    membranes; only a tight local error resolves them, while the smooth ramps between edges
    tolerate long steps. Hence the defaults: a long maximum step with a tight trtol, which keeps
    the spike times close to a converged transient at a small CPU cost
    (benchmarks/network_tran_settings.py measures the trade-off; its numbers live in
    benchmarks/README.md and benchmarks/results/, not here).
    """

    t_phase_s: float = 1.0e-6
    t_edge_s: float = 1.0e-9
    t_step_max_s: float = 50.0e-9
    t_grid: float = 0.0
    trtol: float = 0.05

    def __post_init__(self) -> None:
        require_positive(self, "t_phase_s", "t_edge_s", "t_step_max_s", unit="s")
        require(self, "trtol", self.trtol, is_real(self.trtol) and 0 < self.trtol <= 7,
                "(0, 7] (ngspice's default 7 is the loosest useful value; smaller values resolve "
                "the spike edges)")
        require(self, "t_edge_s", self.t_edge_s, self.t_edge_s < self.t_phase_s / 10,
                f"< t_phase_s/10 = {self.t_phase_s / 10:g} s")
        require(self, "t_grid", self.t_grid, is_real(self.t_grid) and 0 <= self.t_grid < 1, "[0, 1)")

    def sample_offset_s(self, sample: int) -> float:
        """Start o_s of sample ``sample`` (s): 3 T s."""
        return 3 * self.t_phase_s * sample

    def window_start_s(self, sample: int, layer: int, phase: str) -> float:
        """Start of a phase ('reset', 'accumulation', 'firing') of ``layer`` for ``sample`` (s)."""
        k = {"reset": 0, "accumulation": 1, "firing": 2}[phase]
        return self.sample_offset_s(sample) + (layer + k) * self.t_phase_s

    def t_stop_s(self, n_samples: int, n_layers: int) -> float:
        """End of the last firing window, plus one edge time (s)."""
        return self.window_start_s(n_samples - 1, n_layers - 1, "firing") + self.t_phase_s + self.t_edge_s


@dataclass(frozen=True)
class ParasiticEstimate:
    """Wire capacitance estimate for the membrane and spike lines of a crossbar (no layout).

    Assumed geometry: each synapse occupies a ``pitch_m`` square; a neuron's membrane line runs
    over its column of n_in synapses, a spike line over its row of n_out synapses, both in one
    metal layer of width ``wire_w_m``. A line of length L has
    C = c_area L w + c_fringe 2 L (area to substrate plus fringe of both edges). Defaults: met1,
    25.8 aF/um^2 and 40.6 aF/um (the sky130 PDK's typical met1 values), 0.14 um wide, 5 um pitch.
    """

    pitch_m: float = 5.0e-6
    wire_w_m: float = 0.14e-6
    c_area_f_per_m2: float = 25.8e-18 / 1e-12
    c_fringe_f_per_m: float = 40.6e-18 / 1e-6

    def __post_init__(self) -> None:
        require_positive(self, "pitch_m", "wire_w_m", "c_area_f_per_m2", "c_fringe_f_per_m")

    def line_f(self, n_cells: int) -> float:
        """Capacitance (F) of a line crossing ``n_cells`` cells: L = n pitch, C = c_a L w + 2 c_f L."""
        length = n_cells * self.pitch_m
        return self.c_area_f_per_m2 * length * self.wire_w_m + 2 * self.c_fringe_f_per_m * length


@dataclass(frozen=True)
class SynapseArray:
    """An n_in x n_out crossbar of identical synapses."""

    n_in: int
    n_out: int
    cell: Synapse = field(default_factory=Synapse)

    def __post_init__(self) -> None:
        for name in ("n_in", "n_out"):
            value = getattr(self, name)
            require(self, name, value, isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    "an integer >= 1")


@dataclass(frozen=True)
class NeuronLayer:
    """A layer of n identical neurons fed by a synapse array (n_in inputs)."""

    synapses: SynapseArray
    cell: Neuron = field(default_factory=Neuron)

    @property
    def n(self) -> int:
        """Number of neurons: one per column of the synapse array."""
        return self.synapses.n_out


@dataclass(frozen=True)
class PostLayoutCore:
    """A network core given as netlist text (the extracted layout), instantiated once by the deck.

    ``text``: the ``.subckt <name>`` (with any subcircuits it uses besides the cell library) in the
    runner's units (:func:`imcpnn.circuits.netlist.extracted.to_runner_units`; the layout flow's
    ``<name>_pex.spice`` already is); its ports are :func:`network_core_ports` in any order, each
    connected to the testbench node of the same name. ``membrane_f_per_layer``: the membrane
    capacitance per layer (F, mean over its neurons) that the weight mapping uses.
    """

    text: str
    name: str
    membrane_f_per_layer: tuple[float, ...]
    ports: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", parse_extracted(self.text, self.name).ports)
        c = tuple(float(x) for x in self.membrane_f_per_layer)
        require(self, "membrane_f_per_layer", self.membrane_f_per_layer, bool(c) and all(0 < x < 1e-9 for x in c),
                "one capacitance in (0, 1 nF) per layer, in F")
        object.__setattr__(self, "membrane_f_per_layer", c)

    @classmethod
    def extracted(cls, text: str, netlist: ExtractedNetlist, widths: tuple[int, ...]) -> PostLayoutCore:
        """Core from an extraction: ``text`` in runner units, ``netlist`` its parsed SI twin."""
        return cls(text, netlist.subckt, extracted_membrane_f(netlist, widths))

    @classmethod
    def schematic(cls, network: Network, name: str = "imcpnn_network") -> PostLayoutCore:
        """The schematic core (:func:`network_core_schematic`) in the extracted core's place, with
        the MIM as membrane: the post-layout path without layout tools (a stand-in for tests)."""
        n_layers = len(network.widths) - 1
        return cls(network_core_schematic(network, name), name, (network.neuron.c_mim_f,) * n_layers)


def membrane_coupling(netlist: ExtractedNetlist, layer: int, width: int, mim_f: float | None = None) -> np.ndarray:
    """K (width, width) of the membranes ``m<layer>_<i>`` of an extraction, the matrix of
    M dv/dt = (uncoupled drives), M = 1 + K (:mod:`imcpnn.pnn.coupling`).

    c_ij: the capacitors joining m_i and m_j (a resistor-split node counts as one); C_i: the
    node's capacitance to everything else (MiM plus every other parasitic on it), the one its own
    charge sees when its neighbours move with it. K_ij = -c_ij / C_i, K_ii = sum_j c_ij / C_i.
    The devices on the membrane (junctions, the sensing gate; a few per cent of C_i) are not in
    the extraction's C_i, so |K| comes out that much larger than the circuit's. ``mim_f``: the
    MiM capacitance of each membrane, where the netlist's MiM sizes are not SI (None: from them).
    """
    names = [f"m{layer}_{i}" for i in range(width)]
    index = {name: i for i, name in enumerate(names)}
    mutual = np.zeros((width, width))
    for cap in netlist.capacitors:
        a, b = (index.get(net_base(n)) for n in cap.nodes[:2])
        if a is not None and b is not None and a != b:
            mutual[a, b] += cap.value
            mutual[b, a] += cap.value
    own = np.array([netlist.node_capacitance_f(name, include_mim=mim_f is None) + (mim_f or 0.0)
                    for name in names]) - mutual.sum(axis=1)
    k = -mutual / own[:, None]
    k[np.diag_indices(width)] = mutual.sum(axis=1) / own
    return k


def extracted_membrane_f(netlist: ExtractedNetlist, widths: tuple[int, ...]) -> tuple[float, ...]:
    """Per layer l, the mean over its neurons i of the total capacitance on ``m<l>_<i>`` (F):
    MiM plus every parasitic capacitor touching the membrane node."""
    return tuple(
        float(np.mean([netlist.node_capacitance_f(f"m{l}_{i}") for i in range(n_out)]))
        for l, n_out in enumerate(widths[1:])
    )


@dataclass(frozen=True)
class Network:
    """Feed-forward RC-Spike network; ``widths`` = (n_in, n_hidden..., n_out), any depth >= 1 layer.

    ``vdd_v``, ``v0_v``, ``vb_sense_v``: the operating point the deck applies (V; see
    :class:`~imcpnn.circuits.netlist.operating_point.OperatingPoint`, also :attr:`operating_point`);
    ``parasitic`` adds wire capacitance estimates (``netlist_kind`` then reads
    "schematic+parasitic-estimate"); ``core`` replaces the cell instances by one post-layout core
    subcircuit ("post-layout").
    """

    widths: tuple[int, ...]
    synapse: Synapse = field(default_factory=Synapse)
    neuron: Neuron = field(default_factory=Neuron)
    vdd_v: float = DESIGN_POINT.vdd_v
    v0_v: float = DESIGN_POINT.v0_v
    vb_sense_v: float = DESIGN_POINT.vb_sense_v
    parasitic: ParasiticEstimate | None = None
    core: PostLayoutCore | None = None

    def __post_init__(self) -> None:
        widths = tuple(self.widths)
        require(self, "widths", self.widths, len(widths) >= 2 and all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in widths),
            ">= 2 integers >= 1 (n_in, ..., n_out)")
        object.__setattr__(self, "widths", tuple(int(n) for n in widths))
        OperatingPoint.check(self)
        if self.core is not None:
            self._check_core(self.core)

    @property
    def operating_point(self) -> OperatingPoint:
        """Supply, reset voltage and sensing bias as one :class:`OperatingPoint`."""
        return OperatingPoint.of(self)

    def _check_core(self, core: PostLayoutCore) -> None:
        """The core must be an extraction of this very network: its ports are the testbench nodes
        of these widths and it gives one membrane capacitance per layer."""
        if self.parasitic is not None:
            raise ConfigError("Network has both a post-layout core and a parasitic estimate: the "
                              "core already holds the extracted parasitics; leave parasitic=None")
        expected = network_core_ports(self.widths)
        missing, extra = set(expected) - set(core.ports), set(core.ports) - set(expected)
        if missing or extra or len(core.ports) != len(expected):
            raise NetlistError(
                f"core {core.name} does not fit widths {self.widths}: missing ports "
                f"{sorted(missing)[:6]}, unexpected {sorted(extra)[:6]} ({len(core.ports)} ports, "
                f"need {len(expected)}); lay out and extract this very network"
            )
        if len(core.membrane_f_per_layer) != len(self.widths) - 1:
            raise NetlistError(f"core {core.name} gives {len(core.membrane_f_per_layer)} membrane "
                               f"capacitances for {len(self.widths) - 1} layers")

    @property
    def layers(self) -> tuple[NeuronLayer, ...]:
        """One :class:`NeuronLayer` per pair of consecutive widths, input side first."""
        return tuple(
            NeuronLayer(SynapseArray(a, b, self.synapse), self.neuron)
            for a, b in zip(self.widths[:-1], self.widths[1:])
        )

    @property
    def netlist_kind(self) -> str:
        """Which of :data:`NETLIST_KINDS` the deck is: what the SPICE side of a comparison models."""
        return NETLIST_KINDS[2 if self.core is not None else int(self.parasitic is not None)]

    def membrane_f(self, layer: int) -> float:
        """Modelled membrane capacitance of ``layer`` (F): MIM plus the wire estimate if any, or
        the extracted one of a post-layout core."""
        if self.core is not None:
            return self.core.membrane_f_per_layer[layer]
        c = self.neuron.c_mim_f
        if self.parasitic is not None:
            c += self.parasitic.line_f(self.widths[layer])
        return c

    def membrane_coupling(self, layer: int) -> np.ndarray:
        """The coupling matrix K (n, n) of ``layer``'s membranes that the model's coupled neurons
        take (:mod:`imcpnn.pnn.coupling`): the post-layout core's extracted mutual capacitances
        (:func:`membrane_coupling`); zeros for the schematic, whose parasitic estimate puts
        each wire's capacitance to ground only."""
        n = self.widths[layer + 1]
        if self.core is None:
            return np.zeros((n, n))
        # the core's text is in the runner's units, where the MiM's w, l are not SI: its
        # capacitance comes from the layer's extracted mean (the same MiM under every neuron)
        netlist = parse_extracted(self.core.text, self.core.name)
        wiring = [netlist.node_capacitance_f(f"m{layer}_{i}", include_mim=False) for i in range(n)]
        return membrane_coupling(netlist, layer, n, self.core.membrane_f_per_layer[layer] - float(np.mean(wiring)))


def check_weights(network: Network, weights: list[np.ndarray]) -> list[np.ndarray]:
    """Weights as float arrays, checked against ``network.widths`` (layer l: (n_l, n_{l+1}))."""
    if len(weights) != len(network.widths) - 1:
        raise NetlistError(
            f"got {len(weights)} weight matrices for a network with {len(network.widths) - 1} "
            f"layers (widths {network.widths})"
        )
    out = []
    for l, (w, shape) in enumerate(zip(weights, zip(network.widths[:-1], network.widths[1:]))):
        w = np.asarray(w, dtype=float)
        if w.shape != shape:
            raise NetlistError(f"weights[{l}] has shape {w.shape}, network widths need {shape} (n_in, n_out)")
        out.append(w)
    return out


def num(x: float) -> str:
    """A number for a deck, written exactly (shortest repr that reads back to the same float):
    a PWL time at 150 us written with 6 digits would move an edge by up to 0.5 ns."""
    return repr(float(x))


def _pwl(points: list[tuple[float, float]]) -> str:
    """A PWL source value from (time s, voltage V) points, written exactly (:func:`num`)."""
    return "PWL(" + " ".join(f"{num(t)} {num(v)}" for t, v in points) + ")"


#: A voltage source from a node to ground with a PWL value: ``V<name> <node> 0 PWL(...)``.
_PWL_SOURCE = re.compile(r"(?P<name>[Vv]\S*)\s+(?P<node>\S+)\s+0\s+(?P<value>PWL\(.*\))\s*")


@dataclass(frozen=True)
class PwlSource:
    """A PWL voltage source to ground as a deck writes it: ``<name> <node> 0 <value>``."""

    name: str
    node: str
    value: str  # the value text, ``PWL(t0 v0 t1 v1 ...)``

    @property
    def points(self) -> list[tuple[float, float]]:
        """(time s, voltage V) corners of the waveform."""
        numbers = [float(v) for v in self.value[4:-1].split()]
        return list(zip(numbers[0::2], numbers[1::2]))


def parse_pwl_source(line: str) -> PwlSource | None:
    """The PWL source to ground that a deck line holds, else None."""
    m = _PWL_SOURCE.fullmatch(line.strip())
    return None if m is None else PwlSource(m.group("name"), m.group("node"), m.group("value"))


def deck_lines(text: str) -> list[tuple[str, bool]]:
    """(line, is it inside a ``.subckt`` definition) for every line of a deck's ``text``."""
    out, inside = [], False
    for line in text.split("\n"):
        low = line.strip().lower()
        inside = inside or low.startswith(".subckt")
        out.append((line, inside))
        inside = inside and not low.startswith(".ends")
    return out


def pwl_sources(text: str) -> list[PwlSource]:
    """The PWL sources to ground of a deck's ``text`` outside ``.subckt`` definitions (the phase
    signals and input spikes of :func:`network_deck`), in deck order."""
    sources = (parse_pwl_source(line) for line, inside in deck_lines(text) if not inside)
    return [src for src in sources if src is not None]


def pulse_points(windows: list[tuple[float, float]], high_v: float, t_edge_s: float) -> list[tuple[float, float]]:
    """PWL points of a signal high on each (start, end) window (s), edges ``t_edge_s`` wide."""
    pts = [(0.0, 0.0)]
    for start, end in windows:
        if start <= 0:
            pts = [(0.0, high_v)]
        else:
            pts += [(start, 0.0), (start + t_edge_s, high_v)]
        pts += [(end - t_edge_s, high_v), (end, 0.0)]
    return pts


def _complement(points: list[tuple[float, float]], high_v: float) -> list[tuple[float, float]]:
    """The complementary signal (high where ``points`` is low) on the same edges."""
    return [(t, high_v - v) for t, v in points]


def _deck_input_times(t_in: np.ndarray, schedule: PhaseSchedule) -> np.ndarray:
    """Input spike times as the deck applies them: rounded to ``schedule.t_grid`` if set."""
    t_in = np.asarray(t_in, dtype=float)
    return np.round(t_in / schedule.t_grid) * schedule.t_grid if schedule.t_grid > 0 else t_in


def input_spiked(t_in: np.ndarray, schedule: PhaseSchedule) -> np.ndarray:
    """Which inputs the deck drives with a spike, (n_samples, n_in) bool: finite times whose
    pulse is at least two edges long (:func:`input_windows`)."""
    t = _deck_input_times(t_in, schedule)
    with np.errstate(invalid="ignore"):
        return np.isfinite(t) & (t * schedule.t_phase_s < schedule.t_phase_s - 2 * schedule.t_edge_s)


def input_windows(
    t_in: np.ndarray, schedule: PhaseSchedule
) -> list[list[tuple[float, float]]]:
    """Per input j, the (rise, end) windows in s of its spikes over all samples.

    ``t_in`` (n_samples, n_in), normalized in [0, 1]: the spike rises at o_s + T + t T and stays
    high until layer 0's accumulation ends. NaN, or t so late that the pulse would be shorter
    than two edges, means no spike (:func:`input_spiked`).
    """
    t_in, spiked = _deck_input_times(t_in, schedule), input_spiked(t_in, schedule)
    T = schedule.t_phase_s
    out: list[list[tuple[float, float]]] = [[] for _ in range(t_in.shape[1])]
    for s, row in enumerate(t_in):
        acc = schedule.window_start_s(s, 0, "accumulation")
        for j, t in enumerate(row):
            if spiked[s, j]:
                out[j].append((acc + max(t, 0.0) * T, acc + T))
    return out


def check_inputs(network: Network, t_in: np.ndarray) -> np.ndarray:
    """Input spike times (n_samples, n_in), normalized; values in [0, 1] or NaN (no spike)."""
    t_in = np.asarray(t_in, dtype=float)
    if t_in.ndim != 2 or t_in.shape[1] != network.widths[0] or t_in.shape[0] < 1:
        raise NetlistError(
            f"input spike times have shape {t_in.shape}, need (n_samples >= 1, {network.widths[0]})"
        )
    finite = t_in[np.isfinite(t_in)]
    if np.any((finite < 0) | (finite > 1)):
        raise NetlistError("input spike times must be normalized to [0, 1] (NaN = no spike)")
    return t_in


@dataclass(frozen=True)
class Supply:
    """A voltage source of the testbench whose energy a transient accounts for.

    ``source``: its SPICE name; ``node``: the node it holds, its + node (the - node is ground or,
    for a 0 V ammeter, the shared rail behind it); ``group``: one of :data:`SUPPLY_GROUPS`;
    ``layer``: the layer it feeds, None when shared by every layer (the post-layout core's
    ``vdd``, ``v0``, ``vbsense``); ``voltage_v``: its DC voltage (V), or None for a PWL driver,
    whose node voltage :attr:`voltage` the deck saves. ngspice's branch current
    :attr:`current` flows from the + node through the source, so the power the source (or, for
    an ammeter, the rail behind it) delivers is p = -v(node) i(source).
    """

    source: str
    node: str
    group: str
    layer: int | None
    voltage_v: float | None = None

    def __post_init__(self) -> None:
        require(self, "group", self.group, self.group in SUPPLY_GROUPS, f"one of {SUPPLY_GROUPS}")

    @property
    def current(self) -> str:
        """Name of the saved branch current (A)."""
        return f"i({self.source.lower()})"

    @property
    def voltage(self) -> str:
        """Name of the saved node voltage (V) of a PWL driver."""
        return f"v({self.node})"


def supply_saves(supplies: tuple[Supply, ...]) -> tuple[str, ...]:
    """Vectors the energy accounting needs: every supply's current, every PWL driver's voltage."""
    return tuple(s.current for s in supplies) + tuple(s.voltage for s in supplies if s.voltage_v is None)


def _dc_source(source: str, node: str, value_v: float, group: str, layer: int | None) -> tuple[str, Supply]:
    """(netlist line, Supply) of a DC source from ``node`` to ground."""
    return f"{source} {node} 0 {num(value_v)}", Supply(source, node, group, layer, float(value_v))


@dataclass(frozen=True)
class NetworkDeck:
    """Netlist text of a batched transient testbench and what the measurement needs.

    ``supplies``: the sources the energy accounting integrates (empty: supplies not saved).
    """

    text: str
    saves: tuple[str, ...]
    t_stop_s: float
    t_step_max_s: float
    n_samples: int
    widths: tuple[int, ...]
    netlist_kind: str
    supplies: tuple[Supply, ...] = ()


#: The shared rails: node -> (its source, the Network field of its voltage, energy group). Layer
#: l's own node of a rail is :func:`layer_rail`, fed through the 0 V ammeter ``VI_<node>``.
SHARED_RAILS = {"vdd": ("VDD", "vdd_v", "array_neurons"), "v0": ("VV0", "v0_v", "neuron_bias"),
                "vbsense": ("VBS", "vb_sense_v", "neuron_bias")}


def layer_rail(rail: str, layer: int) -> str:
    """Layer ``layer``'s own node of shared rail ``rail`` (behind its ammeter): ``vdd<l>``,
    ``v0_<l>``, ``vbsense<l>``."""
    return f"{rail}_{layer}" if rail == "v0" else f"{rail}{layer}"


def _layer_instances(network: Network, layer: int, gate_n, gate_p, vss: str, sources=lambda j, i: [],
                     rail: Callable[[str], str] = lambda name: name) -> list[str]:
    """Synapse and neuron instance lines of one layer; ``gate_n(j, i)``/``gate_p(j, i)`` name the
    bias nodes of synapse (input j, neuron i), ``sources(j, i)`` the lines that follow it,
    ``rail(name)`` the node the layer's cells use for shared rail ``name`` (vdd, v0, vbsense)."""
    syn, neu = network.synapse, network.neuron
    syn_par = " ".join(f"{k}={v}" for k, v in syn.params_um().items())
    vdd = rail("vdd")
    lines = []
    for i in range(network.widths[layer + 1]):
        for j in range(network.widths[layer]):
            lines.append(f"XS{layer}_{j}_{i} m{layer}_{i} s{layer}_{j} sb{layer}_{j} {gate_n(j, i)} "
                         f"{gate_p(j, i)} {vdd} {vss} synapse {syn_par}")
            lines += sources(j, i)
        lines.append(
            neu.instance(
                f"N{layer}_{i}",
                (f"m{layer}_{i}", f"vgdis{layer}", rail("vbsense"), rail("v0"), f"rst{layer}", f"rstb{layer}",
                 f"fire{layer}", f"fireb{layer}", f"s{layer + 1}_{i}", f"sb{layer + 1}_{i}", vdd, vss),
            )  # fmt: skip
        )
    return lines


def _gate_biases(network: Network, layer: int, vg_n: np.ndarray, vg_p: np.ndarray, vdd: str = "vdd",
                 supplies: list[Supply] | None = None):
    """(gate_n, gate_p, sources) of one layer: ``gate_*(j, i)`` the node of synapse (j, i)'s gate,
    ``sources(j, i)`` its bias source lines (each source also appended to ``supplies`` if
    given). Off sources (vg_n <= 0, vg_p >= vdd) are tied to the rails (``0``, node ``vdd``) so
    that they need no source."""
    off_n, off_p = vg_n <= 0, vg_p >= network.vdd_v
    gate_n = lambda j, i: "0" if off_n[j, i] else f"vn{layer}_{j}_{i}"  # noqa: E731
    gate_p = lambda j, i: vdd if off_p[j, i] else f"vp{layer}_{j}_{i}"  # noqa: E731

    def sources(j: int, i: int) -> list[str]:
        made = ([] if off_n[j, i] else [_dc_source(f"VN{layer}_{j}_{i}", f"vn{layer}_{j}_{i}", vg_n[j, i],
                                                   "synapse_bias", layer)]) + (
            [] if off_p[j, i] else [_dc_source(f"VP{layer}_{j}_{i}", f"vp{layer}_{j}_{i}", vg_p[j, i],
                                               "synapse_bias", layer)])
        if supplies is not None:
            supplies.extend(supply for _, supply in made)
        return [line for line, _ in made]

    return gate_n, gate_p, sources


def core_netlist(network: Network, biases: list[tuple[np.ndarray, np.ndarray]], vg_dis_v: list[float],
                 supplies: list[Supply] | None = None) -> list[str]:
    """The post-layout core's text, its bias sources and its one instance ``XCORE``.

    Every core port is the testbench node of its name, except the gate ports of off sources
    (tied to ``0`` / ``vdd`` by naming, as the schematic deck does) and ``vss`` (ground). The
    bias sources are appended to ``supplies`` if given (the core's rails stay shared).
    """
    core = network.core
    nodes = {"vss": "0"}
    lines = [f"* post-layout core {core.name}", core.text.strip()]
    for l, ((vg_n, vg_p), vg_dis) in enumerate(zip(biases, vg_dis_v)):
        gate_n, gate_p, sources = _gate_biases(network, l, vg_n, vg_p, supplies=supplies)
        for j, i in np.ndindex(vg_n.shape):
            nodes[f"vn{l}_{j}_{i}"], nodes[f"vp{l}_{j}_{i}"] = gate_n(j, i), gate_p(j, i)
            lines += sources(j, i)
        lines.append(_bias_source(f"VGDIS{l}", f"vgdis{l}", vg_dis, l, supplies))
    lines.append(f"XCORE {' '.join(nodes.get(p, p) for p in core.ports)} {core.name}")
    return lines


def _bias_source(source: str, node: str, value_v: float, layer: int, supplies: list[Supply] | None) -> str:
    """The line of a neuron bias source (appended to ``supplies`` if given)."""
    line, supply = _dc_source(source, node, value_v, "neuron_bias", layer)
    if supplies is not None:
        supplies.append(supply)
    return line


def _layer_rails(network: Network, layer: int, supplies: list[Supply]) -> tuple[Callable[[str], str], list[str]]:
    """(rail, lines): layer ``layer``'s node of each shared rail (:func:`layer_rail`) and the 0 V
    ammeters that feed them from the shared rail, appended to ``supplies`` with the rail's
    voltage and group (:data:`SHARED_RAILS`)."""
    lines = []
    for rail, (source, field_name, group) in SHARED_RAILS.items():
        node = layer_rail(rail, layer)
        ammeter = f"VI_{node}"
        lines.append(f"{ammeter} {node} {rail} 0")
        supplies.append(Supply(ammeter, node, group, layer, float(getattr(network, field_name))))
    return (lambda name: layer_rail(name, layer)), lines


def layer_netlist(network: Network, layer: int, vg_n: np.ndarray, vg_p: np.ndarray, vg_dis_v: float,
                  supplies: list[Supply] | None = None) -> list[str]:
    """Instance and bias-source lines of one layer (synapses, neurons, wire caps).

    ``vg_n``, ``vg_p`` (n_in, n_out) gate biases in V; off sources (vg_n = 0, vg_p = vdd) are
    tied to the rails so that they need no source. With ``supplies`` (a list), the layer's cells
    hang on their own rail nodes behind 0 V ammeters and every source of the layer is appended
    to it (see the module docstring); without, they use the shared rails directly.
    """
    n_in, n_out = network.widths[layer], network.widths[layer + 1]
    lines = [f"* layer {layer}: {n_in} x {n_out} synapses, {n_out} neurons"]
    rail = lambda name: name  # noqa: E731
    if supplies is not None:
        rail, ammeters = _layer_rails(network, layer, supplies)
        lines += ammeters
    gate_n, gate_p, sources = _gate_biases(network, layer, vg_n, vg_p, rail("vdd"), supplies)
    lines += _layer_instances(network, layer, gate_n, gate_p, "0", sources, rail)
    lines.append(_bias_source(f"VGDIS{layer}", f"vgdis{layer}", vg_dis_v, layer, supplies))
    if network.parasitic is not None:
        c_mem = network.parasitic.line_f(n_in)
        c_spk = network.parasitic.line_f(n_out)
        lines += [f"CPM{layer}_{i} m{layer}_{i} 0 {num(c_mem)}" for i in range(n_out)]
        for j in range(n_in):
            lines += [f"CPS{layer}_{j} s{layer}_{j} 0 {num(c_spk)}", f"CPSB{layer}_{j} sb{layer}_{j} 0 {num(c_spk)}"]
    return lines


def network_core_ports(widths: tuple[int, ...]) -> tuple[str, ...]:
    """Port order of the network core subcircuit (schematic or extracted from the layout).

    The names are the testbench's node names, so a core drops into the testbench unchanged:
    input spike lines ``s0_<j>``/``sb0_<j>``; every layer's output spike lines ``s<l+1>_<i>``/
    ``sb<l+1>_<i>`` and membranes ``m<l>_<i>`` (ports so that they can be probed); every synapse's
    gate biases ``vn<l>_<j>_<i>``/``vp<l>_<j>_<i>``; per layer ``vgdis<l>``, ``rst<l>``,
    ``rstb<l>``, ``fire<l>``, ``fireb<l>``; shared ``vbsense``, ``v0``, ``vdd``, ``vss``.
    """
    n_layers = len(widths) - 1
    ports = [f"{p}0_{j}" for p in ("s", "sb") for j in range(widths[0])]
    for l in range(n_layers):
        ports += [f"{p}{l + 1}_{i}" for p in ("s", "sb") for i in range(widths[l + 1])]
        ports += [f"m{l}_{i}" for i in range(widths[l + 1])]
    for l in range(n_layers):
        ports += [f"{p}{l}_{j}_{i}" for p in ("vn", "vp") for i in range(widths[l + 1]) for j in range(widths[l])]
    for l in range(n_layers):
        ports += [f"{p}{l}" for p in ("vgdis", "rst", "rstb", "fire", "fireb")]
    return (*ports, "vbsense", "v0", "vdd", "vss")


def network_core_schematic(network: Network, name: str = "imcpnn_network") -> str:
    """The network core as a subcircuit of cell instances (every bias a port): what LVS compares
    the layout with, and what a post-layout core replaces. Cell definitions are not included."""
    lines = [f".subckt {name} {' '.join(network_core_ports(network.widths))}"]
    for l in range(len(network.widths) - 1):
        lines += _layer_instances(network, l, lambda j, i: f"vn{l}_{j}_{i}", lambda j, i: f"vp{l}_{j}_{i}", "vss")
    lines.append(f".ends {name}")
    return "\n".join(lines) + "\n"


def network_saves(widths: tuple[int, ...], membranes: bool = True) -> tuple[str, ...]:
    """Vectors a network transient keeps: every neuron's spike line ``s<l+1>_<i>`` and, with
    ``membranes``, its membrane ``m<l>_<i>`` (the measurement needs nothing else)."""
    neurons = [(l, i) for l in range(len(widths) - 1) for i in range(widths[l + 1])]
    return tuple(f"v(s{l + 1}_{i})" for l, i in neurons) + (
        tuple(f"v(m{l}_{i})" for l, i in neurons) if membranes else ())


def _pwl_pair(names: tuple[str, str], nodes: tuple[str, str], points: list[tuple[float, float]], high_v: float,
              group: str, layer: int) -> tuple[list[str], list[Supply]]:
    """(lines, supplies) of a digital driver and its complement: sources ``names`` on ``nodes``,
    the first following ``points``, the second its complement."""
    (source, source_b), (node, node_b) = names, nodes
    return ([f"{source} {node} 0 {_pwl(points)}", f"{source_b} {node_b} 0 {_pwl(_complement(points, high_v))}"],
            [Supply(source, node, group, layer), Supply(source_b, node_b, group, layer)])


def network_deck(
    network: Network,
    biases: list[tuple[np.ndarray, np.ndarray]],
    vg_dis_v: list[float],
    t_in: np.ndarray,
    schedule: PhaseSchedule = PhaseSchedule(),
    save_membranes: bool = True,
    save_supplies: bool = True,
) -> NetworkDeck:
    """Whole batched testbench: cells, supplies, phase signals, input PWLs, every layer.

    ``biases[l]`` = (vg_n, vg_p) of layer l, (n_l, n_{l+1}) each; ``vg_dis_v[l]`` the discharger
    gate of layer l; ``t_in`` (n_samples, n_in) normalized input spike times (NaN = none).
    ``save_supplies``: separate the supplies per layer and save what the energy accounting needs
    (:class:`Supply`, :func:`supply_saves`; see the module docstring); False gives the deck
    without ammeters and without those saves. The saves grow with the array (one current per
    gate-bias source): runs that need spike times only are cheaper without them.
    """
    t_in = check_inputs(network, t_in)
    n_samples, n_layers = t_in.shape[0], len(network.widths) - 1
    vdd, te = network.vdd_v, schedule.t_edge_s
    supplies: list[Supply] = []
    lines = [f"* imcpnn RC-Spike testbench: widths {network.widths}, {n_samples} samples, {network.netlist_kind}"]
    for cell in CELLS:
        lines.append(cell_text(cell).strip())
    lines += [f"VDD vdd 0 {vdd}", f"VV0 v0 0 {network.v0_v}", f"VBS vbsense 0 {network.vb_sense_v}"]
    if network.core is not None:  # the core's rails are single ports: shared by every layer
        supplies += [Supply(source, rail, group, None, float(getattr(network, field_name)))
                     for rail, (source, field_name, group) in SHARED_RAILS.items()]
    for l in range(n_layers):
        rst = [(schedule.window_start_s(s, l, "reset"), schedule.window_start_s(s, l, "accumulation")) for s in range(n_samples)]
        rst[0] = (0.0, rst[0][1])  # hold every layer in reset until its first accumulation
        fire = [(schedule.window_start_s(s, l, "firing"), schedule.window_start_s(s, l, "firing") + schedule.t_phase_s) for s in range(n_samples)]
        for name, windows in (("rst", rst), ("fire", fire)):
            more, made = _pwl_pair((f"V{name}{l}", f"V{name}b{l}"), (f"{name}{l}", f"{name}b{l}"),
                                   pulse_points(windows, vdd, te), vdd, "phase_drivers", l)
            lines += more
            supplies += made
    for j, windows in enumerate(input_windows(t_in, schedule)):
        more, made = _pwl_pair((f"VIN{j}", f"VINB{j}"), (f"s0_{j}", f"sb0_{j}"), pulse_points(windows, vdd, te),
                               vdd, "input_drivers", 0)
        lines += more
        supplies += made
    if network.core is not None:
        lines += core_netlist(network, biases, vg_dis_v, supplies)
    else:
        for l in range(n_layers):
            lines += layer_netlist(network, l, *biases[l], vg_dis_v[l], supplies if save_supplies else None)
    supplies_kept = tuple(supplies) if save_supplies else ()
    return NetworkDeck(
        text="\n".join(lines) + "\n",
        saves=network_saves(network.widths, save_membranes) + supply_saves(supplies_kept),
        t_stop_s=schedule.t_stop_s(n_samples, n_layers),
        t_step_max_s=schedule.t_step_max_s,
        n_samples=n_samples,
        widths=network.widths,
        netlist_kind=network.netlist_kind,
        supplies=supplies_kept,
    )
