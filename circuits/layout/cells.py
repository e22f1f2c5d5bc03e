"""sky130 layout as plain Python data: rectangles on magic layers, written as magic ``.mag`` files.

Why ``.mag`` and not GDS: magic reads ``.mag`` natively (no CIF input style, no layer mapping, no
GDS library to depend on), the format is plain text a reviewer can diff, and magic's own device
types (``nfet``, ``ndc``, ``mimcap2``...) carry the device identity that DRC and extraction need.
GDS for KLayout users comes from magic's ``gds write`` on the same cell (:func:`imcpnn.circuits.layout.magic.
magic_gds`), so there is one source of geometry.

Coordinates are integers on the 5 nm grid that sky130 ``.mag`` files use (``magscale 1 2`` over
the tech file's 10 nm lambda), so layout arithmetic is exact; :data:`GRID_M` converts to metres.

Design rules used below (sky130 names, um): licon 0.17, licon-to-gate 0.055, diff enclosure of
licon 0.06, li enclosure of licon 0.08 on one side, mcon 0.17, met1 enclosure of mcon 0.03/0.06,
poly endcap 0.13, poly enclosure of licon 0.05/0.08, licon-on-poly to diff 0.19, diff/tap spacing
0.27, nwell enclosure of diff/tap 0.18; MiM (cap2m): met4 enclosure 0.14, contact 1.18 wide.
magic's DRC (:func:`imcpnn.circuits.layout.magic.magic_drc`) is the judge; these numbers only aim at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from imcpnn.circuits.netlist.cells import L_MIN_M, W_MIN_M, Inv, Nand2, Synapse, TGate, cell_text
from imcpnn.circuits.sky130 import fmt_um, model
from imcpnn.errors import NetlistError

#: Size of one layout coordinate unit: 5 nm (``magscale 1 2`` on sky130's 10 nm lambda).
GRID_M = 5e-9

#: sky130 MOSFET models this generator draws, mapped to (magic gate type, diffusion, contact,
#: body tap, body-tap contact, needs n-well).
MOSFET_TYPES: dict[str, tuple[str, str, str, str, str, bool]] = {
    "sky130_fd_pr__nfet_01v8": ("nmos", "ndiff", "ndiffc", "psubdiff", "psubdiffcont", False),
    "sky130_fd_pr__nfet_01v8_lvt": ("nmoslvt", "ndiff", "ndiffc", "psubdiff", "psubdiffcont", False),
    "sky130_fd_pr__pfet_01v8": ("pmos", "pdiff", "pdiffc", "nsubdiff", "nsubdiffcont", True),
    "sky130_fd_pr__pfet_01v8_hvt": ("pmoshvt", "pdiff", "pdiffc", "nsubdiff", "nsubdiffcont", True),
}

#: magic contact types (a cut plus the layers it joins); written after the plain layers.
CONTACT_LAYERS = frozenset(
    {"ndiffc", "pdiffc", "psubdiffcont", "nsubdiffcont", "polycont", "viali", "via1", "via2",
     "via3", "via4", "mimcap2contact"}
)

#: Smallest MiM side drawn here (m): the contact needs 1.18 um plus 0.2 um inset on each side.
MIN_MIM_SIDE_M = 2.0e-6
#: met1 minimum area 0.083 um^2 (met1.6) plus margin, in grid units squared.
MIN_MET1_AREA_GRID2 = round(0.09e-12 / GRID_M**2)


def to_grid(x_m: float) -> int:
    """Metres -> 5 nm grid units, rejecting off-grid values (sky130 manufactures on 5 nm)."""
    units = x_m / GRID_M
    n = round(units)
    if abs(units - n) > 1e-6:
        raise NetlistError(
            f"{x_m:g} m is not on the 5 nm manufacturing grid; round it to a multiple of 5e-9 m"
        )
    return n


def um(x_um: float) -> int:
    """Micrometres (rule values) -> grid units."""
    return round(x_um * 200)


@dataclass(frozen=True)
class Rect:
    """One rectangle of a magic layer, corners in 5 nm grid units (x0 < x1, y0 < y1)."""

    layer: str
    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self):
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise NetlistError(
                f"empty {self.layer} rectangle ({self.x0}, {self.y0}, {self.x1}, {self.y1}): "
                "need x0 < x1 and y0 < y1"
            )

    def moved(self, dx: int, dy: int) -> Rect:
        return replace(self, x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx, y1=self.y1 + dy)


@dataclass(frozen=True)
class Label:
    """A port label: text on a rectangle of a conducting layer; ``port_index`` orders the ports."""

    layer: str
    rect: Rect
    text: str
    port_index: int

    def moved(self, dx: int, dy: int) -> Label:
        return replace(self, rect=self.rect.moved(dx, dy))


@dataclass(frozen=True)
class Layout:
    """A flat cell: named rectangles and port labels. ``ports`` lists label texts in port order."""

    name: str
    rects: tuple[Rect, ...]
    labels: tuple[Label, ...] = field(default=())
    #: The cell's schematic ``.subckt`` (W/L in um, as ``netlists/``): what LVS compares against.
    schematic: str = ""

    @property
    def ports(self) -> tuple[str, ...]:
        return tuple(lb.text for lb in sorted(self.labels, key=lambda lb: lb.port_index))

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) over all rectangles, grid units."""
        return (
            min(r.x0 for r in self.rects),
            min(r.y0 for r in self.rects),
            max(r.x1 for r in self.rects),
            max(r.y1 for r in self.rects),
        )

    def moved(self, dx: int, dy: int) -> Layout:
        return replace(
            self,
            rects=tuple(r.moved(dx, dy) for r in self.rects),
            labels=tuple(lb.moved(dx, dy) for lb in self.labels),
        )

    def mirrored_y(self) -> Layout:
        """The cell flipped about the x axis (y -> -y)."""
        flip = lambda r: replace(r, y0=-r.y1, y1=-r.y0)  # noqa: E731
        return replace(
            self,
            rects=tuple(flip(r) for r in self.rects),
            labels=tuple(replace(lb, rect=flip(lb.rect)) for lb in self.labels),
        )

    def port_rect(self, text: str) -> Rect:
        """The rectangle carrying port ``text``; NetlistError listing the ports if absent."""
        for lb in self.labels:
            if lb.text == text:
                return lb.rect
        raise NetlistError(f"cell {self.name} has no port {text!r}; ports: {self.ports}")

    def area_m2(self, layer: str) -> float:
        """Summed area of one layer's rectangles (they must not overlap), m^2."""
        return sum((r.x1 - r.x0) * (r.y1 - r.y0) for r in self.rects if r.layer == layer) * GRID_M**2


def to_mag(layout: Layout) -> str:
    """The magic ``.mag`` text of ``layout`` (rects grouped by layer, ports as ``rlabel``+``port``)."""
    lines = ["magic", "tech sky130A", "magscale 1 2", "timestamp 0"]
    # Contacts last: painting a routing layer over a contact would erase the cut.
    layers = dict.fromkeys(r.layer for r in layout.rects)
    for layer in sorted(layers, key=lambda name: name in CONTACT_LAYERS):
        lines.append(f"<< {layer} >>")
        lines += [f"rect {r.x0} {r.y0} {r.x1} {r.y1}" for r in layout.rects if r.layer == layer]
    if layout.labels:
        lines.append("<< labels >>")
        for lb in sorted(layout.labels, key=lambda lb: lb.port_index):
            r = lb.rect
            lines.append(f"rlabel {lb.layer} s {r.x0} {r.y0} {r.x1} {r.y1} 0 {lb.text}")
            lines.append(f"port {lb.port_index} nsew")
    lines.append("<< end >>")
    return "\n".join(lines) + "\n"


def write_mag(layout: Layout, directory: Path) -> Path:
    """Write ``<directory>/<name>.mag`` and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{layout.name}.mag"
    path.write_text(to_mag(layout))
    return path


def _terminal(x0: int, y0: int, x1: int, y1: int, contact: str) -> list[Rect]:
    """A column of licons (``contact``, x0..x1 by y0..y1) strapped by li, mcon and met1.

    li extends 0.08 um past the licons along y (li.5); met1 encloses the mcons by 0.03 um across
    and at least 0.06 um along (m1.4, m1.5), more where needed for the 0.083 um^2 area (met1.6).
    """
    m1_w = x1 - x0 + 2 * um(0.03)
    m1_h = max(y1 - y0 + 2 * um(0.06), -(-MIN_MET1_AREA_GRID2 // m1_w))
    extra = (m1_h - (y1 - y0)) // 2
    return [
        Rect(contact, x0, y0, x1, y1),
        Rect("locali", x0, y0 - um(0.08), x1, y1 + um(0.08)),
        Rect("viali", x0, y0, x1, y1),
        Rect("metal1", x0 - um(0.03), y0 - extra, x1 + um(0.03), y0 - extra + m1_h),
    ]


def mosfet_layout(
    model: str,
    w_m: float,
    l_m: float | tuple[float, ...],
    *,
    n_gates: int = 1,
    parallel: bool = False,
    name: str | None = None,
) -> Layout:
    """A sky130 MOSFET, or ``n_gates`` sharing one diffusion (series stack, or with ``parallel``
    contacted fingers), with body tap.

    Geometry (um, origin at the first gate's lower-left corner): gates [x_k, x_k + L] x [0, W]
    at pitch L + 0.33 (0.33 of uncontacted diffusion between gates keeps the 0.27 um poly pads
    0.21 apart); source and drain diffusion 0.29 wide outside (0.055 licon-to-gate + 0.17 licon +
    0.065 enclosure); a poly contact above each gate; a body tap strip 0.27 below the diffusion.
    Terminals are met1 pads labelled, in port order, ``d``, the gates (``g`` for one gate, else
    ``g1``..``gN`` from the source side), ``s``, ``b``; a stack's inner nodes are ``n1``... in
    the schematic. With ``parallel`` every inner diffusion is contacted too and the diffusions
    alternate source/drain from the left: ports ``d``, ``d2``.., gates, ``s``, ``s2``.., ``b``
    (device k between diffusions k and k + 1). P-type devices sit in an n-well enclosing
    diffusion and tap by 0.18 um.

    ``l_m`` may give one length per gate (a stack of devices of different L, e.g. a discharger
    L = 0.25 um over its 0.15 um enable switch); the pitch then follows each gate's own L.

    Raises NetlistError for an unknown model, W/L below the sky130 minimum or off the 5 nm grid,
    ``n_gates < 1``, or a length tuple whose size differs from ``n_gates``.
    """
    if model not in MOSFET_TYPES:
        raise NetlistError(f"no layout generator for model {model!r}; known: {sorted(MOSFET_TYPES)}")
    if n_gates < 1:
        raise NetlistError(f"n_gates={n_gates}: a MOSFET stack needs at least one gate")
    ls_m = tuple(l_m) if isinstance(l_m, tuple) else (l_m,) * n_gates
    if len(ls_m) != n_gates:
        raise NetlistError(f"l_m has {len(ls_m)} lengths for n_gates={n_gates}: give one per gate")
    if w_m < W_MIN_M or min(ls_m) < L_MIN_M:
        raise NetlistError(
            f"w_m={w_m:g} m, l_m={l_m} m: below the sky130 minimum W >= {W_MIN_M:g} m, "
            f"L >= {L_MIN_M:g} m"
        )
    gate, diff, contact, tap, tap_contact, needs_nwell = MOSFET_TYPES[model]
    w, ls = to_grid(w_m), [to_grid(x) for x in ls_m]
    sd, gap, enc, inner = um(0.29), um(0.055), um(0.06), um(0.33)
    xs = [sum(ls[:k]) + k * inner for k in range(n_gates)]
    right = xs[-1] + ls[-1]
    rects = [Rect(diff, -sd, 0, 0, w), Rect(diff, right, 0, right + sd, w)]
    rects += [Rect(diff, x + l, 0, x + l + inner, w) for x, l in zip(xs[:-1], ls)]
    # Contact columns of the diffusions from left to right (inner ones only when parallel).
    columns = [-gap - um(0.17)]
    if parallel:
        columns += [x + l + um(0.08) for x, l in zip(xs[:-1], ls)]
    columns.append(right + gap)
    pads = [_terminal(x, enc, x + um(0.17), w - enc, contact) for x in columns]
    gate_pins = []
    for x, l in zip(xs, ls):
        # Poly: endcap below, up to a 0.27 x 0.33 pad holding the gate licon 0.28 above the
        # diffusion; poly stops at the gate (painting poly over e.g. nfetlvt would replace it).
        xc = x + l // 2
        pad = Rect("poly", xc - um(0.135), w + um(0.20), xc - um(0.135) + um(0.27), w + um(0.53))
        rects += [
            Rect(gate, x, 0, x + l, w),
            Rect("poly", x, -um(0.13), x + l, 0),
            Rect("poly", x, w, x + l, pad.y0),
            pad,
        ]
        gate_pins.append(_terminal(xc - um(0.085), w + um(0.28), xc + um(0.085), w + um(0.45), "polycont"))
    # Body tap: 0.29-high strip 0.27 below the diffusion with a row of licons.
    ty1 = -um(0.27)
    ty0 = ty1 - um(0.29)
    rects.append(Rect(tap, -sd, ty0, right + sd, ty1))
    body = _terminal_row(-sd + um(0.12), ty0 + enc, right + sd - um(0.12), ty1 - enc, tap_contact)
    rects += [r for pin in pads + gate_pins for r in pin] + body
    if needs_nwell:
        grow = um(0.18)
        rects.insert(0, Rect("nwell", -sd - grow, ty0 - grow, right + sd + grow, w + grow + um(0.53)))
    gate_names = ["g"] if n_gates == 1 else [f"g{k + 1}" for k in range(n_gates)]
    if parallel:
        nodes = [("s", "d")[k % 2] + ("" if k < 2 else str(k // 2 + 1)) for k in range(n_gates + 1)]
    else:
        nodes = ["s", *(f"n{k}" for k in range(1, n_gates)), "d"]
    pins = dict(zip(nodes if parallel else ["s", "d"], pads))
    order = sorted((n for n in pins if n[0] == "d"), key=len) + gate_names
    order += sorted((n for n in pins if n[0] == "s"), key=len)
    terminals = [(n, pins.get(n) or gate_pins[gate_names.index(n)]) for n in order] + [("b", body)]
    labels = tuple(Label("metal1", pin[-1], text, i + 1) for i, (text, pin) in enumerate(terminals))
    kind = "" if n_gates == 1 else f"_{'p' if parallel else 'x'}{n_gates}"
    lens = "_".join(f"{l * 5}n" for l in dict.fromkeys(ls))
    name = name or f"{model.removeprefix('sky130_fd_pr__')}_w{w * 5}n_l{lens}{kind}"
    devices = ""
    for k, g in enumerate(gate_names):
        # Series: source on the left of each gate; parallel: sources on even diffusions.
        d, s = (nodes[k + 1], nodes[k]) if not parallel or k % 2 == 0 else (nodes[k], nodes[k + 1])
        devices += f"X{k} {d} {g} {s} b {model} W={fmt_um(w_m)} L={fmt_um(ls_m[k])} nf=1\n"
    schematic = f".subckt {name} {' '.join(order)} b\n{devices}.ends {name}\n"
    return Layout(name, tuple(rects), labels, schematic)


def _terminal_row(x0: int, y0: int, x1: int, y1: int, contact: str) -> list[Rect]:
    """A row of licons (x0..x1 by y0..y1) strapped by li (0.08 past along x), mcon and met1."""
    return [
        Rect(contact, x0, y0, x1, y1),
        Rect("locali", x0 - um(0.08), y0, x1 + um(0.08), y1),
        Rect("viali", x0, y0, x1, y1),
        Rect("metal1", x0 - um(0.06), y0 - um(0.03), x1 + um(0.06), y1 + um(0.03)),
    ]


def mim_cap_layout(w_m: float = 7e-6, l_m: float = 7e-6, *, name: str | None = None) -> Layout:
    """sky130 ``cap_mim_m3_2``: met4 bottom plate, ``mimcap2`` W x L, contact, met5 top plate.

    C ~= 2 fF/um^2 * (W + 0.15 um)(L + 0.15 um) for the plate (the sky130 models'
    models_capacitors.spice: 102.2 fF at 7x7).
    The contact (``mimcap2contact``) sits 0.2 um inside the cap edge; met5 covers it by 0.12 um;
    met4 extends 0.14 um around the cap and 1 um to the left as the bottom-plate terminal.
    Ports: ``top`` (met5), ``bot`` (met4).
    """
    if w_m < MIN_MIM_SIDE_M or l_m < MIN_MIM_SIDE_M:
        raise NetlistError(
            f"MiM cap {w_m:g} x {l_m:g} m: each side must be >= {MIN_MIM_SIDE_M:g} m "
            "(below that the contact rule via4 + 2 * enclosure cannot fit)"
        )
    w, l = to_grid(w_m), to_grid(l_m)
    inset, m5_over, m4_over = um(0.2), um(0.12), um(0.14)
    bot = Rect("metal4", -m4_over - um(1.0), -m4_over, w + m4_over, l + m4_over)
    top = Rect("metal5", inset - m5_over, inset - m5_over, w - inset + m5_over, l - inset + m5_over)
    rects = (
        bot,
        Rect("mimcap2", 0, 0, w, l),
        Rect("mimcap2contact", inset, inset, w - inset, l - inset),
        top,
    )
    bot_pin = Rect("metal4", bot.x0, bot.y0, bot.x0 + um(0.8), bot.y1)
    labels = (Label("metal5", top, "top", 1), Label("metal4", bot_pin, "bot", 2))
    name = name or f"cap_mim_m3_2_w{w * 5}n_l{l * 5}n"
    schematic = (
        f".subckt {name} top bot\nX0 top bot {model('cap_mim')} W={fmt_um(w_m)} L={fmt_um(l_m)}\n"
        f".ends {name}\n"
    )
    return Layout(name, rects, labels, schematic)


def pfet_top(wn_m: float, wp_m: float, gap_um: float, height_m: float | None) -> int:
    """Grid y of the top edge of a mirrored pfet's diffusion above an nfet whose diffusion starts
    at y = 0: ``height_m`` when given (cells of one row share it so their taps line up on common
    rails), else Wn + Wp + ``gap_um``, the closest the gate pads may face each other.

    Raises NetlistError when ``height_m`` is below that minimum.
    """
    closest = to_grid(wn_m) + to_grid(wp_m) + um(gap_um)
    if height_m is None:
        return closest
    height = to_grid(height_m)
    if height < closest:
        raise NetlistError(
            f"height_m={height_m:g} m: the pfet diffusion top must be at least Wn + Wp + "
            f"{gap_um} um = {closest * GRID_M:g} m above the nfet diffusion bottom"
        )
    return height


def _facing_pair(
    wn_m: float, wp_m: float, l_m: float, gap_um: float, n_gates: int = 1, height_m: float | None = None
) -> tuple[Layout, Layout]:
    """An nfet (stack) and a pfet (stack) mirrored above it, gate pads facing; ``gap_um`` between
    gate edges beyond Wn + Wp (or the pfet top at ``height_m``, :func:`pfet_top`). Every port
    keeps its name (``d g s b``) on its own device."""
    nmos = mosfet_layout("sky130_fd_pr__nfet_01v8", wn_m, l_m, n_gates=n_gates)
    pmos = mosfet_layout("sky130_fd_pr__pfet_01v8", wp_m, l_m, n_gates=n_gates)
    pmos = pmos.mirrored_y().moved(0, pfet_top(wn_m, wp_m, gap_um, height_m))
    return nmos, pmos


def strap(a: Rect, b: Rect) -> Rect:
    """A met1 rectangle over the x span of ``a`` reaching from ``a`` to ``b`` vertically."""
    return Rect("metal1", a.x0, min(a.y0, b.y0), a.x1, max(a.y1, b.y1))


def column(right_of: Rect, y_to: int) -> Rect:
    """A 0.23 um met1 column abutting the right edge of ``right_of``, stretched from it to ``y_to``."""
    return Rect("metal1", right_of.x1, min(right_of.y0, y_to), right_of.x1 + um(0.23), max(right_of.y1, y_to))


def inverter_layout(
    wn_m: float = 1e-6,
    wp_m: float = 2e-6,
    l_m: float = 0.15e-6,
    *,
    name: str = "inv",
    height_m: float | None = None,
) -> Layout:
    """Static CMOS inverter ``inv`` (ports ``in out vdd vss``; schematic ``netlists/inv.spice``).

    The nfet (body tap at the bottom = ``vss`` rail) and the pfet mirrored above it (n-well,
    tap at the top = ``vdd`` rail) face each other with their gate pads, which poly, li and met1
    bridges join into ``in``. Both drains join on a vertical met1 column right of the diffusions
    (``out``); each source drops to its own tap on met1. Vertical offset: the pfet's gate edge sits
    Wn + Wp + 1.2 um above the nfet's, which keeps the n-well 0.49 um from the n-diffusion
    (rule 0.34) and the two gate licons 0.3 um apart (rule 0.17); ``height_m`` raises the pfet
    (here and in the other cells) so cells of one row share tap rails (:func:`pfet_top`).
    """
    nmos, pmos = _facing_pair(wn_m, wp_m, l_m, 1.2, height_m=height_m)
    gn, gp = nmos.port_rect("g"), pmos.port_rect("g")
    in_pin = Rect("metal1", gn.x0, gn.y0, gn.x1, gp.y1)
    out_pin = column(nmos.port_rect("d"), pmos.port_rect("d").y1)
    vss, vdd = nmos.port_rect("b"), pmos.port_rect("b")
    rects = nmos.rects + pmos.rects + (
        Rect("poly", gn.x0 - um(0.02), gn.y1 - um(0.05), gn.x1 + um(0.02), gp.y0 + um(0.05)),
        Rect("locali", gn.x0 + um(0.03), gn.y1 - um(0.1), gn.x1 - um(0.03), gp.y0 + um(0.1)),
        in_pin,
        out_pin,
        strap(nmos.port_rect("s"), vss),
        strap(pmos.port_rect("s"), vdd),
    )
    labels = (
        Label("metal1", in_pin, "in", 1),
        Label("metal1", out_pin, "out", 2),
        Label("metal1", vdd, "vdd", 3),
        Label("metal1", vss, "vss", 4),
    )
    schematic = library_schematic(Inv, name, {"wn": wn_m, "wp": wp_m, "l": l_m})
    return Layout(name, rects, labels, schematic)


def tgate_layout(
    wn_m: float = 1e-6,
    wp_m: float = 1e-6,
    l_m: float = 0.15e-6,
    *,
    name: str = "tgate",
    height_m: float | None = None,
) -> Layout:
    """CMOS transmission gate ``tgate`` (ports ``a b en en_b vdd vss``; ``netlists/tgate.spice``).

    Same facing pair as :func:`inverter_layout` but 1.3 um apart so the two gate pads stay
    separate (met1 0.175 um apart, rule 0.14): ``en`` on the nfet, ``en_b`` on the pfet. Drains
    join on a met1 column on the right (``a``), sources on one on the left (``b``).
    """
    nmos, pmos = _facing_pair(wn_m, wp_m, l_m, 1.3, height_m=height_m)
    sn, sp = nmos.port_rect("s"), pmos.port_rect("s")
    a_pin = column(nmos.port_rect("d"), pmos.port_rect("d").y1)
    b_pin = Rect("metal1", sn.x0 - um(0.23), sn.y0, sn.x0, sp.y1)
    rects = nmos.rects + pmos.rects + (a_pin, b_pin)
    labels = (
        Label("metal1", a_pin, "a", 1),
        Label("metal1", b_pin, "b", 2),
        Label("metal1", nmos.port_rect("g"), "en", 3),
        Label("metal1", pmos.port_rect("g"), "en_b", 4),
        Label("metal1", pmos.port_rect("b"), "vdd", 5),
        Label("metal1", nmos.port_rect("b"), "vss", 6),
    )
    schematic = library_schematic(TGate, name, {"wn": wn_m, "wp": wp_m, "l": l_m})
    return Layout(name, rects, labels, schematic)


def _via1(xc: int, yc: int) -> list[Rect]:
    """A via1 (magic region 0.26 um: one 0.15 cut + 0.055 border) centred at (xc, yc) with met1
    and met2 pads 0.32 um square (0.03 more enclosure on every side, via.5a / m2.5)."""
    h, p = um(0.13), um(0.16)
    return [
        Rect("metal1", xc - p, yc - p, xc + p, yc + p),
        Rect("metal2", xc - p, yc - p, xc + p, yc + p),
        Rect("via1", xc - h, yc - h, xc + h, yc + h),
    ]


def nand2_layout(
    wn_m: float = 1e-6,
    wp_m: float = 1e-6,
    l_m: float = 0.15e-6,
    *,
    name: str = "nand2",
    height_m: float | None = None,
) -> Layout:
    """Two-input NAND ``nand2`` (ports ``a b out vdd vss``; ``netlists/nand2.spice``).

    A 2-gate nfet stack (``b`` on the source side, ``a`` on the drain side) below, a 2-finger
    parallel pfet (sources outside, shared drain in the middle) mirrored above, gates bridged
    pairwise as in :func:`inverter_layout`. The pfet's middle drain reaches the nfet drain on
    met2 (two via1), over the pfet's right source; both pfet sources drop to the ``vdd`` tap.
    """
    nmos = mosfet_layout("sky130_fd_pr__nfet_01v8", wn_m, l_m, n_gates=2)
    pmos = mosfet_layout("sky130_fd_pr__pfet_01v8", wp_m, l_m, n_gates=2, parallel=True)
    pmos = pmos.mirrored_y().moved(0, pfet_top(wn_m, wp_m, 1.2, height_m))
    rects = list(nmos.rects + pmos.rects)
    bridges = {}
    for g in ("g1", "g2"):
        gn, gp = nmos.port_rect(g), pmos.port_rect(g)
        bridges[g] = Rect("metal1", gn.x0, gn.y0, gn.x1, gp.y1)
        rects += [
            Rect("poly", gn.x0 - um(0.02), gn.y1 - um(0.05), gn.x1 + um(0.02), gp.y0 + um(0.05)),
            Rect("locali", gn.x0 + um(0.03), gn.y1 - um(0.1), gn.x1 - um(0.03), gp.y0 + um(0.1)),
            bridges[g],
        ]
    vss, vdd = nmos.port_rect("b"), pmos.port_rect("b")
    rects += [strap(nmos.port_rect("s"), vss), strap(pmos.port_rect("s"), vdd), strap(pmos.port_rect("s2"), vdd)]
    dn, dp = nmos.port_rect("d"), pmos.port_rect("d")
    xn, yn = dn.x1 + um(0.16), dn.y0 + um(0.16)
    xp, yp = (dp.x0 + dp.x1) // 2, (dp.y0 + dp.y1) // 2
    rects += _via1(xn, yn) + _via1(xp, yp) + [
        Rect("metal2", xp - um(0.13), yp - um(0.13), xn + um(0.13), yp + um(0.13)),
        Rect("metal2", xn - um(0.13), yn - um(0.13), xn + um(0.13), yp + um(0.13)),
    ]
    out_pin = Rect("metal1", dn.x1 - um(0.01), yn - um(0.16), xn + um(0.16), yn + um(0.16))
    rects.append(out_pin)
    pins = (("a", bridges["g2"]), ("b", bridges["g1"]), ("out", out_pin), ("vdd", vdd), ("vss", vss))
    labels = tuple(Label("metal1", rect, text, i + 1) for i, (text, rect) in enumerate(pins))
    schematic = library_schematic(Nand2, name, {"wn": wn_m, "wp": wp_m, "l": l_m})
    return Layout(name, tuple(rects), labels, schematic)


def synapse_layout(
    w_m: float = 1e-6, l_m: float = 0.25e-6, *, name: str = "synapse", height_m: float | None = None
) -> Layout:
    """4T synapse ``synapse`` (ports ``mem spk spk_b vg_n vg_p vdd vss``; ``netlists/synapse.spice``).

    Two 2-gate stacks facing each other 1.3 um apart (as :func:`tgate_layout`): NS (gate ``spk``,
    source side) + NM (gate ``vg_n``, drain side) below, PS (``spk_b``) + PM (``vg_p``) in the
    n-well above. Their drains (NM, PM) join on a met1 column on the right: the membrane ``mem``;
    the sources drop to the ``vss``/``vdd`` taps.
    """
    nmos, pmos = _facing_pair(w_m, w_m, l_m, 1.3, n_gates=2, height_m=height_m)
    vss, vdd = nmos.port_rect("b"), pmos.port_rect("b")
    mem = column(nmos.port_rect("d"), pmos.port_rect("d").y1)
    rects = nmos.rects + pmos.rects + (
        mem, strap(nmos.port_rect("s"), vss), strap(pmos.port_rect("s"), vdd)
    )
    pins = (
        ("mem", mem), ("spk", nmos.port_rect("g1")), ("spk_b", pmos.port_rect("g1")),
        ("vg_n", nmos.port_rect("g2")), ("vg_p", pmos.port_rect("g2")), ("vdd", vdd), ("vss", vss),
    )
    labels = tuple(Label("metal1", rect, text, i + 1) for i, (text, rect) in enumerate(pins))
    schematic = library_schematic(Synapse, name, {"w": w_m, "l": l_m})
    return Layout(name, rects, labels, schematic)


def library_schematic(cell: type, name: str, params_m: dict[str, float]) -> str:
    """The library netlist of ``cell`` (``netlists/<subckt>.spice``) renamed to ``name``, with
    the parameter defaults on its ``.subckt`` line set to ``params_m`` (m, written in um)."""
    lines = cell_text(cell).splitlines()
    head = next(i for i, line in enumerate(lines) if line.lower().startswith(".subckt"))
    end = head + 1
    while end < len(lines) and lines[end].startswith("+"):
        end += 1  # parameters may continue on `+` lines
    for key, value_m in params_m.items():
        n = 0
        for i in range(head, end):
            lines[i], k = re.subn(rf"(?<=\s){key}=\S+", f"{key}={fmt_um(value_m)}", lines[i])
            n += k
        if n != 1:
            raise NetlistError(f"{cell.subckt}.spice has no parameter {key!r} on its .subckt line")
    text = "\n".join(lines) + "\n"
    text = re.sub(rf"^(\.subckt\s+){cell.subckt}\b", rf"\g<1>{name}", text, flags=re.M | re.I)
    return re.sub(rf"^(\.ends\s+){cell.subckt}\b", rf"\g<1>{name}", text, flags=re.M | re.I)


#: Plot colour and drawing order of each layer (lower first); contacts drawn as dark squares.
LAYER_STYLE: dict[str, tuple[str, int]] = {
    "nwell": ("#c8e6c9", 0),
    "ndiff": ("#43a047", 1), "pdiff": ("#fb8c00", 1),
    "psubdiff": ("#8d6e63", 1), "nsubdiff": ("#26a69a", 1),
    "nmos": ("#c62828", 2), "nmoslvt": ("#ad1457", 2), "pmos": ("#c62828", 2), "pmoshvt": ("#6a1b9a", 2),
    "poly": ("#e53935", 2),
    "locali": ("#7e57c2", 3),
    "metal1": ("#1e88e5", 4), "metal2": ("#f06292", 5), "metal3": ("#9e9e9e", 5),
    "metal4": ("#00897b", 5), "mimcap2": ("#fdd835", 6), "metal5": ("#5d4037", 7),
}


def plot_layout(layout: Layout, path: Path, *, title: str | None = None) -> Path:
    """Save a PNG of ``layout``: layers as translucent coloured rectangles, contacts dark, ports named.

    Axes in um. A bare Figure on an Agg canvas (no display needed; no pyplot, no
    ``matplotlib.use``: the caller's backend and open figures stay untouched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    unit_um = GRID_M * 1e6
    x0, y0, x1, y1 = layout.bbox
    aspect = (x1 - x0) / (y1 - y0)
    # Wide blocks (the neuron) get a wide figure, tall ones (arrays) a tall one.
    fig = Figure(figsize=(min(16.0, 3 + 6 * max(aspect, 0.5)), min(12.0, 6 / min(aspect, 1.0))))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    seen: dict[str, str] = {}
    for r in sorted(layout.rects, key=lambda r: LAYER_STYLE.get(r.layer, ("", 9))[1]):
        if r.layer in CONTACT_LAYERS:
            color, alpha, fill = "#212121", 0.8, True
        else:
            color, alpha, fill = LAYER_STYLE.get(r.layer, ("#9e9e9e", 9))[0], 0.45, True
            seen.setdefault(r.layer, color)
        ax.add_patch(Rectangle((r.x0 * unit_um, r.y0 * unit_um), (r.x1 - r.x0) * unit_um, (r.y1 - r.y0) * unit_um,
                               facecolor=color, edgecolor=color, alpha=alpha, fill=fill, lw=0.5))
    fontsize = 9 if len(layout.labels) <= 16 else 5
    for lb in layout.labels:
        r = lb.rect
        ax.text((r.x0 + r.x1) / 2 * unit_um, (r.y0 + r.y1) / 2 * unit_um, lb.text, ha="center", va="center",
                fontsize=fontsize, weight="bold", color="black")
    ax.set_xlim(x0 * unit_um - 0.2, x1 * unit_um + 0.2)
    ax.set_ylim(y0 * unit_um - 0.2, y1 * unit_um + 0.2)
    ax.set_aspect("equal")
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    ax.set_title(title or layout.name)
    handles = [Patch(color=c, alpha=0.6, label=name) for name, c in seen.items()]
    handles.append(Patch(color="#212121", label="contact/via"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
