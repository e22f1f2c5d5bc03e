"""sky130 circuits as typed Python objects, in four subsystems:

- :mod:`.netlist`: cells, the operating point, the network testbench deck, the extracted-netlist
  reader (pure text);
- :mod:`.characterization`: ngspice sweeps of the devices and the fits to the model's constants;
- :mod:`.simulate`: weights -> gate biases, batched network runs in ngspice, spike tables;
- :mod:`.layout`: sky130 layouts and the magic/netgen flow (DRC, extraction, LVS, GDS).

Imports go netlist <- characterization <- simulate and netlist <- layout; only characterization
and simulate run ngspice (through :mod:`imcpnn.spice`), only layout runs magic and netgen.
The names below are the public API, re-exported from where they are defined.
"""

from imcpnn.circuits.netlist.cells import CELLS as CELLS
from imcpnn.circuits.netlist.cells import Inv as Inv
from imcpnn.circuits.netlist.cells import Nand2 as Nand2
from imcpnn.circuits.netlist.cells import Neuron as Neuron
from imcpnn.circuits.netlist.cells import Synapse as Synapse
from imcpnn.circuits.netlist.cells import TGate as TGate
from imcpnn.circuits.netlist.cells import cell_text as cell_text
from imcpnn.circuits.characterization.sweeps import CharacterizationConfig as CharacterizationConfig
from imcpnn.circuits.characterization.sweeps import characterize as characterize
from imcpnn.circuits.characterization.sweeps import write_outputs as write_outputs
from imcpnn.circuits.characterization.fit import Characterization as Characterization
from imcpnn.circuits.characterization.fit import IdVgTable as IdVgTable
from imcpnn.circuits.characterization.fit import LambdaCurve as LambdaCurve
from imcpnn.circuits.characterization.fit import LambdaFit as LambdaFit
from imcpnn.circuits.characterization.fit import fit_lambda as fit_lambda
from imcpnn.circuits.characterization.fit import model_constants as model_constants
from imcpnn.circuits.simulate.measure import membrane_table as membrane_table
from imcpnn.circuits.simulate.measure import SPIKE_TABLE_COLUMNS as SPIKE_TABLE_COLUMNS
from imcpnn.circuits.simulate.measure import spice_spike_table as spice_spike_table
from imcpnn.circuits.netlist.network import Network as Network
from imcpnn.circuits.netlist.network import NetworkDeck as NetworkDeck
from imcpnn.circuits.netlist.network import NeuronLayer as NeuronLayer
from imcpnn.circuits.netlist.network import ParasiticEstimate as ParasiticEstimate
from imcpnn.circuits.netlist.network import PhaseSchedule as PhaseSchedule
from imcpnn.circuits.netlist.network import PostLayoutCore as PostLayoutCore
from imcpnn.circuits.netlist.network import SynapseArray as SynapseArray
from imcpnn.circuits.netlist.network import network_deck as network_deck
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT as DESIGN_POINT
from imcpnn.circuits.netlist.operating_point import OperatingPoint as OperatingPoint
from imcpnn.circuits.simulate.run import NetworkRun as NetworkRun
from imcpnn.circuits.simulate.run import map_network as map_network
from imcpnn.circuits.simulate.run import simulate_network as simulate_network
from imcpnn.circuits.simulate.run import simulate_scales as simulate_scales
from imcpnn.circuits.sky130 import MODELS as MODELS
from imcpnn.circuits.sky130 import um as um
from imcpnn.circuits.simulate.weights import CurrentScales as CurrentScales
from imcpnn.circuits.simulate.weights import discharger_bias_v as discharger_bias_v
from imcpnn.circuits.simulate.weights import weights_to_biases as weights_to_biases
