"""Composite sky130 layouts built from the cells of :mod:`imcpnn.circuits.layout.cells`: the neuron with
its MiM membrane, and the synapse array tiling.

Placement is a single row: every nfet's diffusion starts at y = 0 and every pfet's diffusion ends
at :data:`ROW_TOP_M`, so all p-taps share one y (the ``vss`` met1 rail) and all n-taps another
(``vdd``), and one n-well covers the pfet row. Routing is deliberately simple (no maze router):
a net is a horizontal met2 *track* in the channel between the nfet and pfet gate pads, reached
from each terminal by a vertical met1 jog and a via1; crossings happen only between different
metals. Longer verticals use met3, and the membrane reaches the MiM's met5 top plate through a
via ladder (via1..via4) beside the capacitor, whose met4 bottom plate on ``vss`` shields the
membrane plate from below.
"""

from __future__ import annotations

from imcpnn.circuits.netlist.cells import Inv, Nand2, Neuron, Synapse, TGate, cell_text
from imcpnn.circuits.layout.cells import (
    Label,
    Layout,
    Rect,
    column,
    library_schematic,
    strap,
    um,
    inverter_layout,
    mim_cap_layout,
    mosfet_layout,
    nand2_layout,
    synapse_layout,
    tgate_layout,
    to_grid,
)
from imcpnn.errors import NetlistError

#: y of the pfet diffusion tops in a row (m); the nfet diffusions start at 0. 6.5 um leaves a
#: channel of four met2 tracks between the gate pads of 1 um nfets and 2 um pfets.
ROW_TOP_M = 6.5e-6
#: Centres of the met2 routing tracks in the channel (um).
TRACKS_UM = (1.9, 2.45, 3.0, 3.55)
#: Half widths (um) of each via's cut region as magic draws it and of its lower/upper metal pad
#: (via k joins metal k and metal k + 1); pads meet the enclosure and minimum-area rules
#: (met3/met4 0.24 um^2, met5 1.6 um wide).
_VIAS_UM = {1: (0.13, 0.16, 0.16), 2: (0.14, 0.19, 0.25), 3: (0.16, 0.25, 0.25), 4: (0.59, 0.6, 0.8)}
#: Half width of a met2 track (0.2 um wide: met2.1 is 0.14).
_TRACK_HALF = um(0.1)
#: Gap between neighbouring blocks of a row (um): diffusion/tap and poly spacing with margin.
_BLOCK_GAP_UM = 0.6


def via_stack(xc: int, yc: int, bottom: int, top: int) -> list[Rect]:
    """Vias from ``metal<bottom>`` up to ``metal<top>`` centred at (xc, yc), with square pads on
    every metal in between (each pad the largest its neighbouring vias need)."""
    if not 1 <= bottom < top <= 5:
        raise NetlistError(f"via stack metal{bottom}..metal{top}: need 1 <= bottom < top <= 5")
    pads: dict[int, int] = {}
    rects = []
    for k in range(bottom, top):
        cut, lower, upper = (um(x) for x in _VIAS_UM[k])
        rects.append(Rect(f"via{k}", xc - cut, yc - cut, xc + cut, yc + cut))
        pads[k] = max(pads.get(k, 0), lower)
        pads[k + 1] = max(pads.get(k + 1, 0), upper)
    return [Rect(f"metal{k}", xc - h, yc - h, xc + h, yc + h) for k, h in pads.items()] + rects


def _mid_x(r: Rect) -> int:
    return (r.x0 + r.x1) // 2


def _mid_y(r: Rect) -> int:
    return (r.y0 + r.y1) // 2


def jog(pad: Rect, y: int) -> list[Rect]:
    """A met1 pad's way onto the met2 track at ``y``: a vertical met1 strip over the pad's x span
    from the pad to ``y``, and a via1 there."""
    h = um(0.16)
    strip = Rect("metal1", pad.x0, min(pad.y0, y - h), pad.x1, max(pad.y1, y + h))
    return [strip, *via_stack(_mid_x(pad), y, 1, 2)]


def track(y: int, x0: int, x1: int, layer: str = "metal2") -> Rect:
    """A horizontal routing track on ``layer`` from x0 to x1 centred at ``y``."""
    return Rect(layer, min(x0, x1) - _TRACK_HALF, y - _TRACK_HALF, max(x0, x1) + _TRACK_HALF, y + _TRACK_HALF)


def _pmos_row(model: str, w_m: float, l_m, top: int, **kw) -> Layout:
    """A pfet (stack) mirrored so its diffusion ends at ``top`` (tap above, gate pads below)."""
    return mosfet_layout(model, w_m, l_m, **kw).mirrored_y().moved(0, top)


def _rails(blocks: list[Layout], x0: int, x1: int) -> tuple[Rect, Rect, Rect]:
    """The ``vss`` and ``vdd`` met1 rails over the tap rows of ``blocks`` from x0 to x1, and one
    n-well spanning every block's n-well (so the wells merge instead of needing 1.27 um apart)."""
    taps = [lb.rect for b in blocks for lb in b.labels if lb.text in ("b", "vss", "vdd")]
    low = min(taps, key=lambda r: r.y0)
    high = max(taps, key=lambda r: r.y1)
    wells = [r for b in blocks for r in b.rects if r.layer == "nwell"]
    well = Rect("nwell", min(r.x0 for r in wells), min(r.y0 for r in wells),
                max(r.x1 for r in wells), max(r.y1 for r in wells))
    return Rect("metal1", x0, low.y0, x1, low.y1), Rect("metal1", x0, high.y0, x1, high.y1), well


def neuron_layout(neuron: Neuron = Neuron(), *, name: str = "neuron") -> Layout:
    """The RC-Spike ``neuron`` of ``netlists/neuron.spice`` (its 12 ports, 19 devices).

    Left to right: the cm_w x cm_l MiM (met4 bottom plate on ``vss``, met5 top plate = ``mem``),
    the via ladder from met5 down to the ``mem`` track, then one row of blocks: reset tgate;
    enable+discharger nfet stack (L 0.15 / l_dis) under the enable+bias pfet stack (L 0.15 /
    l_bias); LVT nfet under HVT pfet (gates on ``mem``, drains = ``sense``); the disable pull-down
    nfet; nand2; inv; output tgate. Nets between blocks (``mem``, ``fire``, ``fire_b``,
    ``sense``, ``nb``) are met2 tracks (:func:`track`); ``s2`` is a met1 bridge between the
    neighbouring pfets; the output tgate's ``en``/``en_b`` tie to the rails through a met2 and
    a met3 vertical. The schematic is ``netlists/neuron.spice`` with its leaf cells, sized by
    ``neuron``.
    """
    if to_grid(neuron.w_dis_m) != to_grid(1e-6):
        raise NetlistError(
            f"w_dis_m={neuron.w_dis_m:g} m: the neuron layout stacks the discharger on its 1 um "
            "enable switch, so it draws w_dis_m = 1e-6 only"
        )
    top = to_grid(ROW_TOP_M)
    ty = [um(t) for t in TRACKS_UM]
    t_fire, t_mem, t_sense, t_fireb = ty
    t_nb, t_tie = ty[1], ty[0]
    nfet, pfet = "sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8"
    gap = um(_BLOCK_GAP_UM)

    blocks: list[Layout] = []
    rects: list[Rect] = []
    x = 0

    def place(*parts: Layout) -> list[Layout]:
        nonlocal x
        x0 = min(p.bbox[0] for p in parts)
        placed = [p.moved(x - x0, 0) for p in parts]
        blocks.extend(placed)
        x = max(p.bbox[2] for p in placed) + gap
        return placed

    # MiM first (left); its ladder sits between it and the row.
    cap = mim_cap_layout(neuron.cm_w_m, neuron.cm_l_m)
    cap = cap.moved(-cap.bbox[0], -um(0.8))
    cap_top = cap.port_rect("top")
    ladder_x = cap.bbox[2] + um(0.5) + um(0.6)  # met4.5b: 0.4 um from a wide plate
    rects += list(cap.rects) + via_stack(ladder_x, t_mem, 2, 5)
    rects.append(Rect("metal5", cap_top.x1 - um(0.8), t_mem - um(0.8), ladder_x + um(0.8), t_mem + um(0.8)))
    bot = cap.port_rect("bot")
    vss_ladder_x = _mid_x(bot)
    x = ladder_x + um(0.8) + gap

    (rst,) = place(tgate_layout(height_m=ROW_TOP_M))
    n_stack, p_stack = place(
        mosfet_layout(nfet, 1e-6, (0.15e-6, neuron.l_dis_m), n_gates=2),
        _pmos_row(pfet, 1e-6, (0.15e-6, neuron.l_bias_m), top, n_gates=2),
    )
    nl, ph = place(
        mosfet_layout("sky130_fd_pr__nfet_01v8_lvt", 1e-6, 0.15e-6),
        _pmos_row("sky130_fd_pr__pfet_01v8_hvt", 1e-6, 0.15e-6, top),
    )
    (nr,) = place(mosfet_layout(nfet, 0.42e-6, 0.15e-6))
    (nand,) = place(nand2_layout(height_m=ROW_TOP_M))
    (inv,) = place(inverter_layout(height_m=ROW_TOP_M))
    (tg,) = place(tgate_layout(height_m=ROW_TOP_M))
    x_end = x - gap + um(1.2)

    # Sources to taps, the LVT/HVT pair's shared gate and drain, s2 bridge.
    p = lambda block, port: block.port_rect(port)  # noqa: E731
    rects += [
        strap(p(n_stack, "s"), p(n_stack, "b")),
        strap(p(p_stack, "s"), p(p_stack, "b")),
        strap(p(nl, "s"), p(nl, "b")),
        strap(p(nr, "s"), p(nr, "b")),
    ]
    mem_gate = Rect("metal1", p(nl, "g").x0, p(nl, "g").y0, p(nl, "g").x1, p(ph, "g").y1)
    sense_col = column(p(nl, "d"), p(ph, "d").y1)
    s2 = Rect("metal1", p(p_stack, "d").x1 - um(0.01), p(ph, "s").y0, p(ph, "s").x0 + um(0.01), p(ph, "s").y1)
    rects += [mem_gate, sense_col, s2]

    # Tracks: mem, fire, fire_b, sense, nb (nand2's output met2 reaches it directly).
    mem_col = column(p(n_stack, "d"), t_mem)
    nand_out = [r for r in nand.rects if r.layer == "metal2" and r.y1 - r.y0 > r.x1 - r.x0][0]
    rects += jog(p(rst, "a"), t_mem) + jog(mem_col, t_mem) + jog(mem_gate, t_mem)
    rects.append(track(t_mem, ladder_x, _mid_x(mem_gate)))
    rects += jog(p(n_stack, "g1"), t_fire) + jog(p(nand, "a"), t_fire)
    rects.append(track(t_fire, _mid_x(p(n_stack, "g1")), _mid_x(p(nand, "a"))))
    rects += jog(p(p_stack, "g1"), t_fireb) + jog(p(nr, "g"), t_fireb)
    rects.append(track(t_fireb, _mid_x(p(p_stack, "g1")), _mid_x(p(nr, "g"))))
    sense_nr = column(p(nr, "d"), t_sense)
    rects += jog(sense_col, t_sense) + jog(sense_nr, t_sense) + jog(p(nand, "b"), t_sense)
    rects.append(track(t_sense, _mid_x(sense_col), _mid_x(p(nand, "b"))))
    rects += jog(p(inv, "in"), t_nb) + jog(p(tg, "a"), t_nb)
    rects.append(track(t_nb, nand_out.x0 + _TRACK_HALF, _mid_x(p(tg, "a"))))

    # Output tgate always on: en -> vdd (met2 up on the right), en_b -> vss (met3 straight down).
    vss_rail, vdd_rail, well = _rails(blocks, vss_ladder_x - um(0.3), x_end)
    x_vdd = x_end - um(0.5)
    en, en_b = p(tg, "en"), p(tg, "en_b")
    rects += jog(en, t_tie) + [track(t_tie, _mid_x(en), x_vdd)]
    rects += [Rect("metal2", x_vdd - _TRACK_HALF, t_tie, x_vdd + _TRACK_HALF, _mid_y(vdd_rail))]
    rects += via_stack(x_vdd, _mid_y(vdd_rail), 1, 2)
    rects += via_stack(_mid_x(en_b), _mid_y(en_b), 1, 3) + via_stack(_mid_x(en_b), _mid_y(vss_rail), 1, 3)
    rects.append(Rect("metal3", _mid_x(en_b) - um(0.15), _mid_y(vss_rail), _mid_x(en_b) + um(0.15), _mid_y(en_b)))
    # MiM bottom plate down to the vss rail.
    rects += via_stack(vss_ladder_x, _mid_y(vss_rail), 1, 4)
    rects += [vss_rail, vdd_rail, well]

    for b in blocks:
        rects += b.rects
    pins = (
        ("mem", mem_gate), ("vg_dis", p(n_stack, "g2")), ("vb_sense", p(p_stack, "g2")),
        ("v0", p(rst, "b")), ("rst", p(rst, "en")), ("rst_b", p(rst, "en_b")),
        ("fire", p(n_stack, "g1")), ("fire_b", p(p_stack, "g1")), ("out", p(inv, "out")),
        ("out_b", p(tg, "b")), ("vdd", vdd_rail), ("vss", vss_rail),
    )
    labels = tuple(Label("metal1", r, text, i + 1) for i, (text, r) in enumerate(pins))
    params = {"cm_w": neuron.cm_w_m, "cm_l": neuron.cm_l_m, "w_dis": neuron.w_dis_m,
              "l_dis": neuron.l_dis_m, "l_bias": neuron.l_bias_m}
    schematic = "".join(cell_text(c) for c in (Inv, Nand2, TGate))
    schematic += library_schematic(Neuron, name, params)
    return Layout(name, tuple(rects), labels, schematic)


#: Synapse-array row geometry: pfet diffusion top (m), spike tracks in the channel between the
#: gate pads (um), the y where each membrane column steps out to its met3 dendrite line (um,
#: inside the nfet diffusion height, clear of the tracks), and gaps between cells and rows (um).
ARRAY_ROW_TOP_M = 5.0e-6
_SPK_TRACK_UM, _SPK_B_TRACK_UM, _MEM_STEP_UM = 1.9, 3.1, 0.5
_ARRAY_COL_GAP_UM, _ARRAY_ROW_GAP_UM = 1.0, 1.0


def array_ports(n_in: int, n_out: int) -> tuple[str, ...]:
    """Port order of :func:`synapse_array_layout`: ``mem<j>``, ``spk<i>``, ``spk_b<i>``,
    ``vg_n<i>_<j>``, ``vg_p<i>_<j>``, ``vdd``, ``vss`` (i input row, j output column)."""
    return (
        *(f"mem{j}" for j in range(n_out)),
        *(f"spk{i}" for i in range(n_in)),
        *(f"spk_b{i}" for i in range(n_in)),
        *(f"vg_n{i}_{j}" for i in range(n_in) for j in range(n_out)),
        *(f"vg_p{i}_{j}" for i in range(n_in) for j in range(n_out)),
        "vdd",
        "vss",
    )


def synapse_array_schematic(n_in: int, n_out: int, synapse: Synapse = Synapse(), *, name: str) -> str:
    """The array as ``n_in * n_out`` instances of ``netlists/synapse.spice`` (what LVS compares
    with): synapse (i, j) joins ``mem<j>``, ``spk<i>``, ``spk_b<i>`` and its own biases."""
    lines = [f".subckt {name} {' '.join(array_ports(n_in, n_out))}"]
    lines += [
        f"X{i}_{j} mem{j} spk{i} spk_b{i} vg_n{i}_{j} vg_p{i}_{j} vdd vss synapse"
        for i in range(n_in)
        for j in range(n_out)
    ]
    lines.append(f".ends {name}")
    cell = library_schematic(Synapse, "synapse", {"w": synapse.w_m, "l": synapse.l_m})
    return cell + "\n".join(lines) + "\n"


def synapse_array_layout(n_in: int, n_out: int, synapse: Synapse = Synapse(), *, name: str | None = None) -> Layout:
    """An ``n_in x n_out`` crossbar of :func:`imcpnn.circuits.layout.cells.synapse_layout` cells.

    Row i (bottom to top) holds the synapses of input i; column j those of output neuron j.
    Spike lines ``spk<i>``/``spk_b<i>`` run horizontally on met2 (tracks in each row's gate
    channel); each membrane (dendrite) ``mem<j>`` runs vertically on met3 in the gap right of its
    column; every synapse's own bias gates ``vg_n<i>_<j>``/``vg_p<i>_<j>`` come up through a via
    stack to a met4 pin (the third metal), where a bias line or DAC output lands. Each row has
    ``vss``/``vdd`` met1 rails on its tap rows and one n-well; met3 verticals at the left edge tie
    the rails of all rows. Raises NetlistError for a size below 1 x 1.
    """
    if n_in < 1 or n_out < 1:
        raise NetlistError(f"synapse array {n_in} x {n_out}: need n_in >= 1 and n_out >= 1")
    name = name or f"synapse_array_{n_in}x{n_out}"
    cell = synapse_layout(synapse.w_m, synapse.l_m, height_m=ARRAY_ROW_TOP_M)
    x0c, y0c, x1c, y1c = cell.bbox
    pitch_x = x1c - x0c + um(_ARRAY_COL_GAP_UM)
    pitch_y = y1c - y0c + um(_ARRAY_ROW_GAP_UM)
    x_vss, x_vdd = -um(2.4), -um(1.6)
    x_left = x_vss - um(0.6)
    rects: list[Rect] = []
    labels: list[tuple[str, str, Rect]] = []
    rails = {"vss": [], "vdd": []}
    mem_steps: dict[int, list[int]] = {j: [] for j in range(n_out)}
    for i in range(n_in):
        row = [cell.moved(j * pitch_x - x0c, i * pitch_y) for j in range(n_out)]
        p = lambda block, port: block.port_rect(port)  # noqa: E731
        vss, vdd, well = _rails(row, x_left, row[-1].bbox[2])
        rails["vss"].append(vss)
        rails["vdd"].append(vdd)
        y_spk, y_spk_b = (i * pitch_y + um(t) for t in (_SPK_TRACK_UM, _SPK_B_TRACK_UM))
        spk = track(y_spk, x_left, _mid_x(p(row[-1], "spk")))
        spk_b = track(y_spk_b, x_left, _mid_x(p(row[-1], "spk_b")))
        rects += [vss, vdd, well, spk, spk_b]
        labels += [("metal2", f"spk{i}", spk), ("metal2", f"spk_b{i}", spk_b)]
        for j, syn in enumerate(row):
            rects += list(syn.rects)
            rects += jog(p(syn, "spk"), y_spk) + jog(p(syn, "spk_b"), y_spk_b)
            for port in ("vg_n", "vg_p"):
                pad = p(syn, port)
                stack = via_stack(_mid_x(pad), _mid_y(pad), 1, 4)
                rects += stack
                pin = next(r for r in stack if r.layer == "metal4")
                labels.append(("metal4", f"{port}{i}_{j}", pin))
            mem = p(syn, "mem")
            y_step = i * pitch_y + um(_MEM_STEP_UM)
            x_line = mem.x1 + um(0.5)
            rects.append(Rect("metal1", mem.x0, y_step - um(0.16), x_line, y_step + um(0.16)))
            rects += via_stack(x_line, y_step, 1, 3)
            mem_steps[j].append((x_line, y_step))
    for j, steps in mem_steps.items():
        x_line = steps[0][0]
        line = Rect("metal3", x_line - um(0.15), steps[0][1], x_line + um(0.15), steps[-1][1] + um(0.25))
        rects.append(line)
        labels.append(("metal3", f"mem{j}", line))
    for net, x in (("vss", x_vss), ("vdd", x_vdd)):
        ys = [_mid_y(r) for r in rails[net]]
        for y in ys:
            rects += via_stack(x, y, 1, 3)
        rects.append(Rect("metal3", x - um(0.15), ys[0] - um(0.25), x + um(0.15), ys[-1] + um(0.25)))
        labels.append(("metal1", net, rails[net][0]))
    order = {port: k + 1 for k, port in enumerate(array_ports(n_in, n_out))}
    pins = tuple(Label(layer, r, text, order[text]) for layer, text, r in labels)
    return Layout(name, tuple(rects), pins, synapse_array_schematic(n_in, n_out, synapse, name=name))


def layout_cells(array_size: tuple[int, int] = (5, 5)) -> dict[str, Layout]:
    """Every cell generated in :mod:`imcpnn.circuits.layout.cells` and here, at its default size,
    by short name; ``synapse_array`` is ``array_size`` = (n_in, n_out)."""
    fets = {
        "nfet": "sky130_fd_pr__nfet_01v8",
        "nfet_lvt": "sky130_fd_pr__nfet_01v8_lvt",
        "pfet": "sky130_fd_pr__pfet_01v8",
        "pfet_hvt": "sky130_fd_pr__pfet_01v8_hvt",
    }
    cells = {short: mosfet_layout(m, 1e-6, 0.15e-6, name=short) for short, m in fets.items()}
    cells["mim"] = mim_cap_layout(name="mim")
    cells["inv"] = inverter_layout()
    cells["tgate"] = tgate_layout()
    cells["nand2"] = nand2_layout()
    cells["synapse"] = synapse_layout()
    cells["neuron"] = neuron_layout()
    cells["synapse_array"] = synapse_array_layout(*array_size)
    return cells
