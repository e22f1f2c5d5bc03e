"""Netlist generation: sky130 cells as typed dataclasses, the circuit's operating point, the
network testbench deck (synapse arrays, neurons, phase schedule, parasitic estimate) and the
reader of extracted netlists.

Pure text and numbers: nothing here runs a tool.
"""

from imcpnn.circuits.netlist.cells import CELLS as CELLS
from imcpnn.circuits.netlist.cells import Inv as Inv
from imcpnn.circuits.netlist.cells import Nand2 as Nand2
from imcpnn.circuits.netlist.cells import Neuron as Neuron
from imcpnn.circuits.netlist.cells import Synapse as Synapse
from imcpnn.circuits.netlist.cells import TGate as TGate
from imcpnn.circuits.netlist.cells import cell_text as cell_text
from imcpnn.circuits.netlist.extracted import ExtractedNetlist as ExtractedNetlist
from imcpnn.circuits.netlist.extracted import parse_extracted as parse_extracted
from imcpnn.circuits.netlist.network import Network as Network
from imcpnn.circuits.netlist.network import NetworkDeck as NetworkDeck
from imcpnn.circuits.netlist.network import NeuronLayer as NeuronLayer
from imcpnn.circuits.netlist.network import ParasiticEstimate as ParasiticEstimate
from imcpnn.circuits.netlist.network import PhaseSchedule as PhaseSchedule
from imcpnn.circuits.netlist.network import PostLayoutCore as PostLayoutCore
from imcpnn.circuits.netlist.network import PwlSource as PwlSource
from imcpnn.circuits.netlist.network import SUPPLY_GROUPS as SUPPLY_GROUPS
from imcpnn.circuits.netlist.network import Supply as Supply
from imcpnn.circuits.netlist.network import SynapseArray as SynapseArray
from imcpnn.circuits.netlist.network import network_deck as network_deck
from imcpnn.circuits.netlist.network import pwl_sources as pwl_sources
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT as DESIGN_POINT
from imcpnn.circuits.netlist.operating_point import OperatingPoint as OperatingPoint
