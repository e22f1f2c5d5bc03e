"""Reading magic's extracted SPICE netlists: counts, node capacitance, plausibility, unit change.

Pure text functions (no tools run here), so every check is testable on a literal netlist. The
point of counting: a wrong ``ext2spice`` command order silently drops all parasitics, and
extraction with an incomplete tech file silently drops devices; :func:`check_extraction` turns
both into a loud NetlistError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imcpnn.circuits.sky130 import mim_capacitance_f
from imcpnn.errors import NetlistError

#: sky130 MiM capacitor models: ideal plates, C = 2 fF/um^2 (W + 0.15 um)(L + 0.15 um)
#: (:func:`imcpnn.circuits.sky130.mim_capacitance_f`; 102.2 fF at 7 um x 7 um).
MIM_MODELS = frozenset({"sky130_fd_pr__cap_mim_m3_1", "sky130_fd_pr__cap_mim_m3_2"})

#: Instance parameters holding lengths (m) or areas (m^2) in magic's ``ngspice(si)`` output.
_LENGTH_PARAMS = frozenset({"w", "l", "pd", "ps"})
#: MOSFET drain/source junction areas and perimeters.
_JUNCTION_PARAMS = ("ad", "as", "pd", "ps")

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9,
           "p": 1e-12, "f": 1e-15, "a": 1e-18}
_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)(meg|[tgkmunpfa])?[a-z]*$", re.I)


def parse_spice_number(token: str) -> float:
    """SPICE number with optional scale suffix and unit letters: ``0.19fF`` -> 1.9e-16."""
    match = _NUMBER.match(token.strip())
    if match is None:
        raise NetlistError(f"{token!r} is not a SPICE number (expected e.g. 1.5, 2u, 0.19fF)")
    value = float(match.group(1))
    suffix = (match.group(2) or "").lower()
    return value * _SUFFIX.get(suffix, 1.0)


@dataclass(frozen=True)
class Element:
    """One netlist line: name (``X0``, ``C3``, ``R1``), nodes, model (X only), value (R, C), params."""

    name: str
    nodes: tuple[str, ...]
    model: str | None
    value: float | None
    params: tuple[tuple[str, str], ...]

    def param(self, key: str) -> float:
        for k, v in self.params:
            if k.lower() == key:
                return parse_spice_number(v)
        raise NetlistError(f"{self.name} has no parameter {key!r}: {dict(self.params)}")


@dataclass(frozen=True)
class ExtractedNetlist:
    """The top ``.subckt`` of an extracted netlist, element by element."""

    subckt: str
    ports: tuple[str, ...]
    elements: tuple[Element, ...]

    @property
    def device_counts(self) -> dict[str, int]:
        """Model name -> number of ``X`` instances."""
        counts: dict[str, int] = {}
        for e in self.elements:
            if e.model is not None:
                counts[e.model] = counts.get(e.model, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def capacitors(self) -> tuple[Element, ...]:
        return tuple(e for e in self.elements if e.name[0].upper() == "C")

    @property
    def resistors(self) -> tuple[Element, ...]:
        return tuple(e for e in self.elements if e.name[0].upper() == "R")

    def node_capacitance_f(self, node: str, *, include_mim: bool = True) -> float:
        """Total capacitance on ``node``, F: every parasitic C touching it, plus MiM devices.

        A resistor-split node (``top``, ``top.t0``, ``top.n1``...) counts as one node. MiM
        devices add their model capacitance (:func:`imcpnn.circuits.sky130.mim_capacitance_f`).
        Raises NetlistError naming the nodes when ``node`` is not in the netlist.
        """
        def same(n: str) -> bool:
            return n == node or n.startswith(node + ".")

        nodes = {n for e in self.elements for n in e.nodes} | set(self.ports)
        if not any(same(n) for n in nodes):
            raise NetlistError(f"node {node!r} not in {self.subckt}; nodes: {sorted(nodes)}")
        total = sum(c.value for c in self.capacitors if any(same(n) for n in c.nodes[:2]))
        if include_mim:
            for e in self.elements:
                if e.model in MIM_MODELS and any(same(n) for n in e.nodes[:2]):
                    total += mim_capacitance_f(e.param("w"), e.param("l"))
        return total


def _logical_lines(text: str) -> list[str]:
    """Lines with ``+`` continuations joined and comments dropped."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("*"):
            continue
        if line.startswith("+") and lines:
            lines[-1] += " " + line[1:].strip()
        else:
            lines.append(line)
    return lines


def parse_extracted(text: str, subckt: str | None = None) -> ExtractedNetlist:
    """Parse the ``.subckt`` named ``subckt`` (default: the last one) of a magic netlist."""
    blocks: list[tuple[str, tuple[str, ...], list[str]]] = []
    current: list[str] | None = None
    for line in _logical_lines(text):
        words = line.split()
        head = words[0].lower()
        if head == ".subckt":
            current = []
            ports = tuple(w for w in words[2:] if "=" not in w)
            blocks.append((words[1], ports, current))
        elif head == ".ends":
            current = None
        elif current is not None:
            current.append(line)
    if not blocks:
        raise NetlistError("no .subckt in the extracted netlist: magic wrote an empty cell")
    if subckt is None:
        name, ports, body = blocks[-1]
    else:
        found = [b for b in blocks if b[0] == subckt]
        if not found:
            raise NetlistError(f"no .subckt {subckt!r}; found {[b[0] for b in blocks]}")
        name, ports, body = found[0]
    return ExtractedNetlist(name, ports, tuple(_element(line) for line in body))


def _element(line: str) -> Element:
    words = line.split()
    name, kind = words[0], words[0][0].upper()
    params = tuple(tuple(w.split("=", 1)) for w in words[1:] if "=" in w)
    positional = [w for w in words[1:] if "=" not in w]
    if kind == "X":
        return Element(name, tuple(positional[:-1]), positional[-1], None, params)
    if kind in "CR" and len(positional) >= 3:
        return Element(name, tuple(positional[:2]), None, parse_spice_number(positional[2]), params)
    raise NetlistError(f"unexpected line in extracted netlist: {line!r}")


def check_extraction(
    netlist: ExtractedNetlist,
    expected_devices: dict[str, int] | None = None,
    *,
    require_capacitors: bool = True,
    require_resistors: bool = False,
) -> None:
    """Fail loudly on an extraction that lost devices or parasitics.

    Checks: device counts per model equal ``expected_devices`` (when given); at least one parasitic
    capacitor (``require_capacitors``) with a positive total; at least one resistor
    (``require_resistors``), all resistances positive; no capacitor beyond 1 nF (a unit slip).
    """
    counts = netlist.device_counts
    if expected_devices is not None and counts != dict(sorted(expected_devices.items())):
        raise NetlistError(
            f"extracted {netlist.subckt} has devices {counts}, the schematic {expected_devices}: "
            "a device type was not recognized (layer/tech file) or a device was drawn twice"
        )
    caps = netlist.capacitors
    if require_capacitors and (not caps or sum(c.value for c in caps) <= 0):
        raise NetlistError(
            f"extracted {netlist.subckt} has {len(caps)} parasitic capacitors (total "
            f"{sum(c.value for c in caps):.3g} F): parasitics were dropped; run `ext2spice cthresh 0` "
            "after `ext2spice lvs` (which resets the thresholds)"
        )
    big = [c for c in caps if abs(c.value) > 1e-9]
    if big:
        raise NetlistError(f"implausible capacitors above 1 nF in {netlist.subckt}: {big[:3]} (unit slip?)")
    res = netlist.resistors
    if require_resistors and not res:
        raise NetlistError(
            f"extracted {netlist.subckt} has no parasitic resistors although R extraction was on: "
            "check that `extresist all` ran after `extract all` and `ext2spice extresist on` before output"
        )
    bad = [r for r in res if r.value <= 0]
    if bad:
        raise NetlistError(f"non-positive resistances in {netlist.subckt}: {bad[:3]}")
    # Bounds far outside any sky130 cell: 1000 um^2 junction area, 1 mm perimeter.
    limits = {"ad": 1e-9, "as": 1e-9, "pd": 1e-3, "ps": 1e-3}
    for e in netlist.elements:
        for key, value in e.params:
            limit = limits.get(key.lower())
            if limit is not None and not 0 <= parse_spice_number(value) < limit:
                raise NetlistError(
                    f"{e.name} ({e.model}) has {key}={value}: junction area/perimeter outside "
                    f"[0, {limit:g}) (SI), garbage from ext2spice"
                )


def to_runner_units(text: str) -> str:
    """Rewrite MOSFET/MiM instance geometry from SI to the sky130 model units (um, um^2).

    The sky130 model files set ``.option scale=1.0u`` and the cell netlists of ``netlists/`` give
    W/L in um; magic's ``ngspice(si)`` gives ``w=1u``. This turns ``w=1u l=0.15u ad=0.29p`` into
    ``w=1 l=0.15 ad=0.29`` so the netlist drops into the same runner; R and C values stay SI.
    (The ``ngspice(si)`` area unit ``p`` reads as 1e-12 m^2 = 1 um^2.)
    ``$SUB`` (magic's name for an unconnected substrate; ``$`` starts a comment in ngspice)
    becomes ``0``: the p-substrate is the chip's ground.
    """
    def convert(match: re.Match) -> str:
        key, value = match.group(1), match.group(2)
        scale = 1e6 if key.lower() in _LENGTH_PARAMS else 1e12
        return f"{key}={parse_spice_number(value) * scale:.6g}"

    out = []
    for line in text.splitlines():
        if line[:1].upper() == "X":
            line = re.sub(r"\b(w|l|pd|ps|ad|as)=(\S+)", convert, line, flags=re.I)
        out.append(line.replace("$SUB", "0"))
    return "\n".join(out) + "\n"


def schematic_device_counts(text: str, subckt: str) -> dict[str, int]:
    """Primitive device counts (model -> n) of ``subckt`` in a schematic, hierarchy flattened.

    An ``X`` line whose model is another ``.subckt`` of ``text`` counts that cell's devices; any
    other ``X`` model (a sky130 primitive) counts once (``m=`` multipliers are not expanded).
    """
    bodies: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _logical_lines(text):
        words = line.split()
        if words[0].lower() == ".subckt":
            current = bodies.setdefault(words[1], [])
        elif words[0].lower() == ".ends":
            current = None
        elif current is not None:
            current.append(line)
    if subckt not in bodies:
        raise NetlistError(f"schematic has no .subckt {subckt!r}; found {sorted(bodies)}")

    def count(name: str, depth: int) -> dict[str, int]:
        if depth > 20:
            raise NetlistError(f"subcircuit {name!r} instantiates itself")
        total: dict[str, int] = {}
        for line in bodies[name]:
            if line[0].upper() != "X":
                continue
            positional = [w for w in line.split()[1:] if "=" not in w]
            inner = positional[-1]
            sub = count(inner, depth + 1) if inner in bodies else {inner: 1}
            for k, v in sub.items():
                total[k] = total.get(k, 0) + v
        return total

    return dict(sorted(count(subckt, 0).items()))



def net_base(node: str) -> str:
    """A node name without extresist's ``.t0``/``.n1`` split suffixes and magic's ``#`` mark."""
    return re.sub(r"(\.[tn]\d+)+$", "", node).rstrip("#")


def _device_key(e: Element) -> tuple:
    """Model, gate net and the unordered drain/source nets of a MOSFET (its identity across the
    flat, R-split and LVS netlists, whose instance numbering can differ)."""
    base = [net_base(n) for n in e.nodes]
    return (e.model, base[1] if len(base) > 1 else "", frozenset(base[::2][:2]))


def take_junction_params(parasitic_text: str, device_text: str) -> str:
    """Copy ``ad as pd ps`` of each ``X`` line from ``device_text`` into ``parasitic_text``.

    magic 8.3.105's flat ``ext2spice`` (the only mode that keeps capacitances to a named
    substrate) writes garbage drain/source areas and perimeters (e.g. ``ad=-40453.3p``), while the
    hierarchical LVS mode writes them right but drops those capacitances. Devices are matched by
    instance name, else (extresist renumbers them) by model, gate net and drain/source nets; the
    twin must agree on model, W and L; otherwise NetlistError.
    """
    def x_lines(text: str) -> dict[str, Element]:
        return {e.name: e for e in (_element(l) for l in _logical_lines(text) if l[0].upper() == "X")}

    good = x_lines(device_text)
    by_key: dict[tuple, list[Element]] = {}
    for e in good.values():
        by_key.setdefault(_device_key(e), []).append(e)

    def same(a: Element, b: Element) -> bool:
        return a.model == b.model and all(abs(a.param(k) - b.param(k)) <= 1e-12 for k in ("w", "l"))

    out = []
    for line in parasitic_text.splitlines():
        if line[:1].upper() == "X":
            e = _element(line)
            ref = good.get(e.name)
            if ref is None or not same(ref, e) or _device_key(ref) != _device_key(e):
                twins = [g for g in by_key.get(_device_key(e), []) if same(g, e)]
                ref = twins[0] if len(twins) == 1 else None
            if ref is None:
                raise NetlistError(
                    f"device {e.name} ({e.model}) of the parasitic netlist has no twin with equal "
                    "model, W and L in the LVS netlist: cannot take its junction areas"
                )
            for key in _JUNCTION_PARAMS:
                if any(k.lower() == key for k, _ in ref.params):
                    line = re.sub(rf"\b{key}=\S+", f"{key}={dict(ref.params)[key]}", line)
        out.append(line)
    return "\n".join(out) + "\n"
