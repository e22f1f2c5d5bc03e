"""Layout of a whole feed-forward RC-Spike network: synapse arrays, neuron columns, their wiring.

Floorplan, left to right, for each layer l (n_l inputs, n_{l+1} neurons)::

    [array l: n_l rows x n_{l+1} columns] [dendrite channel] [neuron column l] [spike channel] [array l+1] ...

- **Array l** is :func:`imcpnn.circuits.layout.blocks.synapse_array_layout`: spike lines
  horizontal on met2 (one row per input j), dendrites vertical on met3 (one column per neuron i),
  every synapse's bias gates on a met4 pin.
- **Neuron column l** stacks the n_{l+1} neurons (:func:`neuron_layout`) vertically, neuron 0 at
  the bottom. Its control and bias nets (``vgdis``, ``rst``, ``rstb``, ``fire``, ``fireb``,
  ``vbsense``, ``v0``) and the supplies are vertical **met4** lines over the column, the third
  metal: each neuron reaches a line through a via stack at its pin and, where two pins share an x,
  a short met3 jog (:data:`_CONTROL_TAPS`).
- **Dendrite channel**: array column i's met3 line leaves the array on a met2 level (preferably
  the 1 um gap between two rows nearest neuron i's height, else a level below or above the
  array), crosses to the channel on the array's right, climbs a short met3 vertical to neuron i's
  height and runs on met3 under the neuron's MiM bottom plate to its membrane via ladder
  (:func:`_dendrites`).
- **Spike channel**: neuron i's ``out``/``out_b`` leave on met2 to the right, climb a met3
  vertical and continue as the (extended) met2 spike lines ``spk<i>``/``spk_b<i>`` of array l+1.
  Neurons are placed so that no neuron-side met2 stub lies within :data:`_STUB_CLEAR_UM` of an
  array-side spike line (:func:`_neuron_offsets`).
- **Supplies**: ``vss``/``vdd`` are two met2 buses along the bottom, fed by the arrays' met3 rail
  ties and the neuron columns' met4 supply lines; ``v0``/``vbsense`` (shared by all layers) are
  two met3 buses along the top, fed by each column's met4 line.

Separation of the membranes from the digital lines, what is done and what is not:

- Done: outside the arrays each membrane runs in a channel of its own on the array's right, away
  from the spike channel on the neuron's right, with short verticals that hardly run side by side;
  the entry under the MiM runs below the met4 bottom plate, which is ``vss`` (a grounded plate
  over it); a row-gap level runs between the lower row's vdd and the upper row's vss rail, 3.05 um
  from the nearest spike lines; control lines are on met4 and meet the membrane wiring only in
  perpendicular crossings.
- Not done: inside the array the met3 dendrites cross every row's met2 spike lines one level
  apart (the crossbar itself, no shield layer between); inside each neuron the met4 control lines
  cross the neuron's own met2 membrane track; no grounded shield wires beside the membrane
  wires (magic 8.3.105 does not shield sidewall coupling, so the extraction would not show their
  benefit). The extracted netlist carries every one of these couplings (to vss, the control
  lines, the spike lines and the other membranes of the layer); the post-layout validation
  reports what they add up to.
"""

from __future__ import annotations

from imcpnn.circuits.netlist.cells import Inv, Nand2, Neuron, Synapse, TGate, cell_text
from imcpnn.circuits.layout.cells import Label, Layout, Rect, library_schematic, um
from imcpnn.circuits.layout.blocks import neuron_layout, synapse_array_layout, via_stack
from imcpnn.circuits.netlist.network import Network, network_core_ports, network_core_schematic

#: Pitch (um) of parallel lines in the channels and of the met4 lines of a neuron column: a
#: 0.5 um via pad plus 0.3 um spacing (met3/met4 spacing 0.3).
_PITCH_UM = 0.8
#: Pitch (um) of the membrane verticals in the dendrite channel and of the met2 levels below and
#: above an array (a 0.5 um via pad, 0.3 um spacing and margin; the verticals are short and seldom
#: side by side, so a wider pitch bought no measurable coupling).
_DENDRITE_PITCH_UM = 1.2
#: Margin (um) between a channel's lines and the blocks beside it.
_MARGIN_UM = 1.0
#: Vertical gap (um) between neighbouring neurons of a column (n-well to p-tap with margin).
_NEURON_GAP_UM = 1.2
#: Neuron-local y (um) of the met2 stubs that carry ``out`` and ``out_b`` out of the neuron: both
#: lie between the output tgate's ``en_b`` via on the vss rail (top -0.225) and its ``en`` tie
#: track (bottom 1.74); ``out_b``'s via pad clears the tgate's source pad (top 0.97) by 0.17.
_OUT_Y_UM, _OUT_B_Y_UM = 0.55, 1.3
#: Smallest distance (um) between a neuron-side met2 stub and an array-side spike line (0.1 stub
#: half width + 0.19 via pad half width + 0.14 met2 spacing, rounded up).
_STUB_CLEAR_UM = 0.6
#: How each control net reaches its met4 line, in the column's line order (x = the ``v0`` pin
#: plus k * pitch; the supply lines at the next x where a via fits on their rail, :func:`_free_x`):
#: (net, pin, neuron-local tap y in um or None for the pin's own centre, lowest metal of the via
#: stack at the tap). ``fire``/``fire_b`` tap their met2 tracks (y 1.9 and 3.55)
#: right under their lines; ``vg_dis`` climbs a met1 strip to y 4.2, clear of the met2 tracks;
#: the other pins are tapped at their pads and jog on met3 to their line.
_CONTROL_TAPS: tuple[tuple[str, str, float | None, int], ...] = (
    ("v0", "v0", 0.5, 1),
    ("rst", "rst", None, 1),
    ("rstb", "rst_b", None, 1),
    ("fire", "fire", 1.9, 2),
    ("vgdis", "vg_dis", 4.2, 1),
    ("fireb", "fire_b", 3.55, 2),
    ("vbsense", "vb_sense", None, 1),
    ("vss", "vss", None, 1),
    ("vdd", "vdd", None, 1),
)
#: Half widths (um): met2 signal wires, met3 wires (met3.1 is 0.3 wide), met4 lines (as their via
#: pads), supply buses.
_M2_HALF_UM, _M3_HALF_UM, _M4_HALF_UM, _BUS_HALF_UM = 0.1, 0.15, 0.25, 0.3


def _hwire(layer: str, y: int, x0: int, x1: int, half_um: float) -> Rect:
    """A horizontal wire on ``layer`` from x0 to x1 (either order) centred at ``y``."""
    h = um(half_um)
    return Rect(layer, min(x0, x1) - h, y - h, max(x0, x1) + h, y + h)


def _vwire(layer: str, x: int, y0: int, y1: int, half_um: float) -> Rect:
    """A vertical wire on ``layer`` from y0 to y1 (either order) centred at ``x``."""
    h = um(half_um)
    return Rect(layer, x - h, min(y0, y1) - h, x + h, max(y0, y1) + h)


def _mid(r: Rect) -> tuple[int, int]:
    return (r.x0 + r.x1) // 2, (r.y0 + r.y1) // 2


def network_schematic(network: Network, name: str = "imcpnn_network") -> str:
    """What LVS compares :func:`network_layout` with: the leaf cells (``inv``, ``nand2``,
    ``tgate``), ``synapse`` and ``neuron`` sized by ``network``, then
    :func:`imcpnn.circuits.netlist.network.network_core_schematic` (ports :func:`network_core_ports`)."""
    syn, neu = network.synapse, network.neuron
    text = "".join(cell_text(c) for c in (Inv, Nand2, TGate))
    text += library_schematic(Synapse, "synapse", {"w": syn.w_m, "l": syn.l_m})
    text += library_schematic(
        Neuron, "neuron",
        {"cm_w": neu.cm_w_m, "cm_l": neu.cm_l_m, "w_dis": neu.w_dis_m, "l_dis": neu.l_dis_m,
         "l_bias": neu.l_bias_m},
    )  # fmt: skip
    return text + network_core_schematic(network, name)


def _neuron_template(neuron: Neuron) -> tuple[Layout, dict[str, int], dict[str, Rect]]:
    """One neuron with its taps: (layout without labels, met4 line x per net, pins).

    Neuron-local coordinates: the nfet diffusions start at y = 0. Every net of
    :data:`_CONTROL_TAPS` gets a via stack up to met4 at its line (and a met3 jog from its tap
    when the tap is elsewhere); ``out``/``out_b`` get a via1 at their met2 stub height.
    """
    cell = neuron_layout(neuron)
    pins = {lb.text: lb.rect for lb in cell.labels}
    x_v0 = _mid(pins["v0"])[0]
    rects = list(cell.rects)
    lines: dict[str, int] = {}
    x_line = x_v0 - um(_PITCH_UM)
    for net, pin, tap_y_um, bottom in _CONTROL_TAPS:
        x_line += um(_PITCH_UM)
        px, py = _mid(pins[pin])
        if pin in ("vss", "vdd"):  # tap the rail at the first x clear of the straps that meet it
            x_line = px = _free_x(cell.rects, pins[pin], x_line)
        lines[net] = x_line
        y = py if tap_y_um is None else um(tap_y_um)
        if bottom == 2:  # a met2 track of the net passes under the line: tap it there
            rects += via_stack(x_line, y, 2, 4)
            continue
        if not pins[pin].y0 <= y <= pins[pin].y1:  # climb the pin's x span on met1
            p = pins[pin]
            rects.append(Rect("metal1", p.x0, min(p.y0, y - um(0.16)), p.x1, max(p.y1, y + um(0.16))))
        if px == x_line:
            rects += via_stack(px, y, 1, 4)
        else:
            rects += via_stack(px, y, 1, 3) + via_stack(x_line, y, 3, 4)
            rects.append(_hwire("metal3", y, px, x_line, _M4_HALF_UM))  # as tall as the via pads
    for pin, y_um in (("out", _OUT_Y_UM), ("out_b", _OUT_B_Y_UM)):
        rects += via_stack(_mid(pins[pin])[0], um(y_um), 1, 2)
    return Layout(cell.name, tuple(rects)), lines, pins


def _free_x(rects: tuple[Rect, ...], rail: Rect, x_min: int) -> int:
    """The smallest x >= ``x_min`` where a via1 pad (0.32 um square) centred on ``rail`` keeps
    0.14 um (met1.2) from every other met1 shape reaching within that of the rail's y span."""
    half, space = um(0.16), um(0.14)
    y0, y1 = (rail.y0 + rail.y1) // 2 - half - space, (rail.y0 + rail.y1) // 2 + half + space
    blocks = sorted(
        (r.x0 - space - half, r.x1 + space + half)
        for r in rects
        if r.layer == "metal1" and r != rail and r.y1 > y0 and r.y0 < y1 and r.x1 - r.x0 < rail.x1 - rail.x0
    )
    x = x_min
    for b0, b1 in blocks:
        if b0 < x < b1:
            x = b1
    return x


def _neuron_offsets(n: int, height: int, y_bottom: int, stub_ys: list[int], avoid: list[int]) -> list[int]:
    """Neuron origins (grid y) of a column, bottom up: neuron k at least one neuron height plus
    :data:`_NEURON_GAP_UM` above neuron k-1 (the first at ``y_bottom``), raised in 5 nm steps until
    its ``stub_ys`` (neuron-local) keep :data:`_STUB_CLEAR_UM` from every y in ``avoid``."""
    clear = um(_STUB_CLEAR_UM)
    ys: list[int] = []
    y = y_bottom
    for _ in range(n):
        while any(abs(y + s - a) < clear for s in stub_ys for a in avoid):
            y += 1
        ys.append(y)
        y += height + um(_NEURON_GAP_UM)
    return ys


def _row_gaps(arr: Layout, n_in: int) -> list[int]:
    """y of the met2 routing level between rows k and k+1 of an array (k < n_in - 1): midway
    between row k's ``spk_b`` line and row k+1's ``spk`` line (3.05 um from each in the default
    array), in the gap between row k's vdd and row k+1's vss met1 rails."""
    mid = lambda net: _mid(arr.port_rect(net))[1]  # noqa: E731
    return [(mid(f"spk_b{k}") + mid(f"spk{k + 1}")) // 2 for k in range(n_in - 1)]


def _assign_slots(slots: list[int], targets: list[int]) -> list[int]:
    """Indices of an increasing choice of ``slots`` (sorted y) for ``targets`` (sorted y) that
    minimizes sum |slot - target|: order-preserving, so that no two routes swap sides. Dynamic
    programming over (targets placed, slots used); needs len(slots) >= len(targets)."""
    n, m = len(targets), len(slots)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    cost[0] = [0.0] * (m + 1)
    for i in range(1, n + 1):
        for j in range(i, m + 1):
            cost[i][j] = min(cost[i][j - 1], cost[i - 1][j - 1] + abs(slots[j - 1] - targets[i - 1]))
    chosen, j = [], m
    for i in range(n, 0, -1):
        while cost[i][j] == cost[i][j - 1]:
            j -= 1
        chosen.append(j - 1)
        j -= 1
    return chosen[::-1]


def _dendrites(arr: Layout, y_mems: list[int], x_chan: int, x_ladder: int) -> list[Rect]:
    """Wires from each array column ``mem<i>`` to the via ladder of neuron i (entry at y_mems[i]).

    Column i leaves the array on met2 through a routing level (a gap between two rows, else a
    level below or above the array), crosses into the channel right of the array, climbs a short
    met3 vertical to its neuron's height and runs on met3 under the MiM plate to the ladder.
    Levels are assigned in neuron order to minimize the verticals' length (:func:`_assign_slots`).
    Channel x order: the verticals that go down from their entry (slot below it) first, higher
    neurons left, then those going up, lower neurons left; so an entry, which runs right, never
    meets a vertical on its right (a higher down-going vertical reaching below a lower entry is
    always left of it, and symmetrically for the up-going ones).
    """
    n_out = len(y_mems)
    n_in = sum(1 for lb in arr.labels if lb.text.startswith("spk_b"))
    dpitch, margin = um(_DENDRITE_PITCH_UM), um(_MARGIN_UM)
    columns = [arr.port_rect(f"mem{i}") for i in range(n_out)]
    y_low, y_high = arr.bbox[1], arr.bbox[3]
    below = [y_low - margin - k * dpitch for k in range(n_out)][::-1]
    above = [y_high + margin + k * dpitch for k in range(n_out)]
    slots = below + _row_gaps(arr, n_in) + above
    levels = [slots[j] for j in _assign_slots(slots, y_mems)]
    down = sorted((i for i in range(n_out) if levels[i] < y_mems[i]), key=lambda i: -y_mems[i])
    up = sorted((i for i in range(n_out) if levels[i] >= y_mems[i]), key=lambda i: y_mems[i])
    x_cs = {i: x_chan + k * dpitch for k, i in enumerate(down + up)}
    rects: list[Rect] = []
    for i, (column, y_s, y_m) in enumerate(zip(columns, levels, y_mems)):
        x_col, x_c = _mid(column)[0], x_cs[i]
        if not column.y0 <= y_s <= column.y1:
            rects.append(_vwire("metal3", x_col, y_s, column.y0 if y_s < column.y0 else column.y1, _M3_HALF_UM))
        rects += [
            *via_stack(x_col, y_s, 2, 3),
            _hwire("metal2", y_s, x_col, x_c, _M2_HALF_UM),
            *via_stack(x_c, y_s, 2, 3),
            # A short vertical is as wide as its via pad: no notch between pad and entry.
            _vwire("metal3", x_c, y_s, y_m, _M3_HALF_UM if abs(y_s - y_m) > um(1.0) else _M4_HALF_UM),
            _hwire("metal3", y_m, x_c, x_ladder, _M3_HALF_UM),
        ]
    return rects


def _spike_routes(stubs: list[tuple[int, int, str]], arr: Layout, x_chan: int) -> list[Rect]:
    """A neuron column's outputs into the next array: each (x_start, y, array net) met2 stub runs
    right to its own met3 vertical (at ``x_chan`` + k pitch), which lands on the array's spike line
    ``spk<i>``/``spk_b<i>`` extended left on met2."""
    rects: list[Rect] = []
    for k, (x_start, y_n, net) in enumerate(stubs):
        track = arr.port_rect(net)
        x_s, y_a = x_chan + k * um(_PITCH_UM), _mid(track)[1]
        rects += [
            _hwire("metal2", y_n, x_start, x_s, _M2_HALF_UM),
            *via_stack(x_s, y_n, 2, 3),
            _vwire("metal3", x_s, y_n, y_a, _M3_HALF_UM),
            *via_stack(x_s, y_a, 2, 3),
            _hwire("metal2", y_a, x_s, track.x0, _M2_HALF_UM),
        ]
    return rects


def _buses(
    rects: list[Rect],
    x_end: int,
    power_taps: dict[str, list[tuple[int, int, int]]],
    top_taps: dict[str, list[tuple[int, int]]],
) -> tuple[list[Rect], list[tuple[str, str, Rect]]]:
    """The shared nets' buses around the finished ``rects``: ``vss`` and ``vdd`` on met2 below,
    each fed by its (x, y_top, metal) lines dropped from above; ``v0`` and ``vbsense`` on met3
    above, each fed by its (x, y_bottom) met4 lines from the columns. Returns (rects, labels)."""
    margin = um(_MARGIN_UM)
    out: list[Rect] = []
    labels: list[tuple[str, str, Rect]] = []
    x_start = min(r.x0 for r in rects)
    y = min(r.y0 for r in rects) - margin
    for net in ("vss", "vdd"):
        bus = _hwire("metal2", y, x_start, x_end, _BUS_HALF_UM)
        out.append(bus)
        labels.append(("metal2", net, bus))
        for xt, y_top, top in power_taps[net]:
            out += via_stack(xt, y, 2, top)
            out.append(_vwire(f"metal{top}", xt, y, y_top, _M3_HALF_UM if top == 3 else _M4_HALF_UM))
        y -= um(1.2)
    y = max(r.y1 for r in rects) + margin
    for net in ("v0", "vbsense"):
        taps = top_taps[net]
        bus = _hwire("metal3", y, taps[0][0] - margin, taps[-1][0] + margin, _M3_HALF_UM)
        out.append(bus)
        labels.append(("metal3", net, bus))
        for xt, y_low in taps:
            out += via_stack(xt, y, 3, 4)
            out.append(_vwire("metal4", xt, y_low, y, _M4_HALF_UM))
        y += um(_PITCH_UM)
    return out, labels


def network_layout(network: Network, *, name: str = "imcpnn_network") -> Layout:
    """The layout of ``network``'s core: every layer's synapse array and neuron column, wired.

    One flat cell whose ports are :func:`imcpnn.circuits.netlist.network.network_core_ports` in that
    order (labels: inputs ``s0_<j>``/``sb0_<j>`` and the hidden layers' spike lines on array met2;
    the last layer's outputs on its met2 stubs; membranes ``m<l>_<i>`` on array met3; synapse
    biases ``vn``/``vp`` on array met4 pins; per-layer controls on the column's met4 lines;
    ``v0``/``vbsense`` on the top met3 buses; ``vdd``/``vss`` on the bottom met2 buses). Its
    ``schematic`` is :func:`network_schematic`, so :func:`imcpnn.circuits.layout.flow.run_layout_flow`
    checks it by LVS and its extracted netlist replaces ``network_core_schematic`` in a testbench.
    Floorplan and what shields the membranes: see the module docstring.

    Raises NetlistError for cells the generators cannot draw (:func:`neuron_layout`: ``w_dis_m``
    other than 1 um; :func:`synapse_array_layout`: a synapse too wide for its row).
    """
    widths = network.widths
    n_layers = len(widths) - 1
    tmpl, line_x, pins = _neuron_template(network.neuron)
    tx0, ty0, tx1, ty1 = tmpl.bbox
    pitch, margin, dpitch = um(_PITCH_UM), um(_MARGIN_UM), um(_DENDRITE_PITCH_UM)
    arrays = []
    for l in range(n_layers):
        arr = synapse_array_layout(widths[l], widths[l + 1], network.synapse)
        arrays.append(arr.moved(0, -arr.bbox[1]))  # bottom row's tap at y = 0

    rects: list[Rect] = []
    labels: list[tuple[str, str, Rect]] = []
    power_taps: dict[str, list[tuple[int, int, int]]] = {"vss": [], "vdd": []}  # (x, y_top, layer)
    top_taps: dict[str, list[tuple[int, int]]] = {"v0": [], "vbsense": []}
    x = 0
    out_stubs: list[tuple[int, int, str]] = []  # previous column's (x_start, y, net) stubs
    for l in range(n_layers):
        n_in, n_out = widths[l], widths[l + 1]
        arr = arrays[l]
        rename = {f"mem{i}": f"m{l}_{i}" for i in range(n_out)}
        rename |= {f"spk{j}": f"s{l}_{j}" for j in range(n_in)} | {f"spk_b{j}": f"sb{l}_{j}" for j in range(n_in)}
        rename |= {f"vg_n{j}_{i}": f"vn{l}_{j}_{i}" for j in range(n_in) for i in range(n_out)}
        rename |= {f"vg_p{j}_{i}": f"vp{l}_{j}_{i}" for j in range(n_in) for i in range(n_out)}
        # Spike channel from the previous neuron column into this array's spike lines.
        if out_stubs:
            x_chan = x + margin
            x = x_chan + (len(out_stubs) - 1) * pitch + margin
        arr = arr.moved(x - arr.bbox[0], 0)
        if out_stubs:
            rects += _spike_routes(out_stubs, arr, x_chan)
        rects += arr.rects
        labels += [(lb.layer, rename[lb.text], lb.rect) for lb in arr.labels if lb.text in rename]
        for net in ("vss", "vdd"):
            rail = arr.port_rect(net)  # bottom row's rail; its met3 tie line rises from a via2 on it
            via = next(r for r in arr.rects if r.layer == "via2" and rail.y0 <= _mid(r)[1] <= rail.y1)
            power_taps[net].append((_mid(via)[0], _mid(rail)[1], 3))

        # Neuron column: origins chosen against the next array's spike lines.
        avoid = []
        if l + 1 < n_layers:
            nxt = arrays[l + 1]
            avoid = [_mid(nxt.port_rect(f"{p}{j}"))[1] for p in ("spk", "spk_b") for j in range(n_out)]
        ys = _neuron_offsets(n_out, ty1 - ty0, -ty0, [um(_OUT_Y_UM), um(_OUT_B_Y_UM)], avoid)
        x_chan = arr.bbox[2] + margin
        x_col = x_chan + (n_out - 1) * dpitch + margin - tx0
        y_col0, y_col1 = ys[0] + ty0, ys[-1] + ty1
        ladder = next(r for r in tmpl.rects if r.layer == "via4")  # the membrane's via ladder
        x_ladder, y_ladder = _mid(ladder)
        y_mems = [y + y_ladder for y in ys]
        for y in ys:
            rects += tmpl.moved(x_col, y).rects
        rects += _dendrites(arr, y_mems, x_chan, x_col + x_ladder)
        x_lines = {net: x_col + dx for net, dx in line_x.items()}
        for net, xl in x_lines.items():
            line = _vwire("metal4", xl, y_col0, y_col1, _M4_HALF_UM)
            rects.append(line)
            if net in ("vss", "vdd"):
                power_taps[net].append((xl, y_col0, 4))
            elif net in top_taps:
                top_taps[net].append((xl, y_col1))
            else:
                labels.append(("metal4", f"{net}{l}", line))
        x_out = x_col + tx1
        out_stubs = [
            (x_col + _mid(pins[pin])[0], y + um(y_um), f"{p}{i}")
            for i, y in enumerate(ys)
            for pin, y_um, p in (("out", _OUT_Y_UM, "spk"), ("out_b", _OUT_B_Y_UM, "spk_b"))
        ]
        x = x_out
    # Last layer's outputs: stubs just past the column, labelled.
    for x_start, y_n, net in out_stubs:
        stub = _hwire("metal2", y_n, x_start, x + margin, _M2_HALF_UM)
        rects.append(stub)
        p, i = ("sb", net[5:]) if net.startswith("spk_b") else ("s", net[3:])
        labels.append(("metal2", f"{p}{n_layers}_{i}", stub))
    bus_rects, bus_labels = _buses(rects, x + margin, power_taps, top_taps)
    rects += bus_rects
    labels += bus_labels
    order = {port: k + 1 for k, port in enumerate(network_core_ports(widths))}
    pins_out = tuple(Label(layer, r, text, order[text]) for layer, text, r in labels)
    return Layout(name, tuple(rects), pins_out, network_schematic(network, name))

