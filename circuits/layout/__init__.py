"""Physical design: sky130 layouts of the cells, synapse arrays and whole networks as rectangles
(:mod:`.cells`, :mod:`.blocks`, :mod:`.network`), and the tool flow around them (:mod:`.flow`):
magic DRC, extraction and GDS (:mod:`.magic`), netgen LVS (:mod:`.lvs`). The tools run only here;
the extracted netlist is read by :mod:`imcpnn.circuits.netlist.extracted`.
"""

from imcpnn.circuits.layout.blocks import layout_cells as layout_cells
from imcpnn.circuits.layout.blocks import neuron_layout as neuron_layout
from imcpnn.circuits.layout.blocks import synapse_array_layout as synapse_array_layout
from imcpnn.circuits.layout.cells import Label as Label
from imcpnn.circuits.layout.cells import Layout as Layout
from imcpnn.circuits.layout.cells import Rect as Rect
from imcpnn.circuits.layout.cells import plot_layout as plot_layout
from imcpnn.circuits.layout.cells import write_mag as write_mag
from imcpnn.circuits.layout.flow import LayoutReport as LayoutReport
from imcpnn.circuits.layout.flow import run_layout_flow as run_layout_flow
from imcpnn.circuits.layout.network import network_layout as network_layout
