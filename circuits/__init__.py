"""sky130 circuits as typed Python objects: cells, synapse arrays, networks, device characterization.

Import note: :mod:`imcpnn.circuits.characterize` and :mod:`imcpnn.circuits.simulate` run ngspice
through :mod:`imcpnn.spice`; everything else here is pure (netlist text and numbers).
"""

from imcpnn.circuits.cells import CELLS as CELLS
from imcpnn.circuits.cells import Inv as Inv
from imcpnn.circuits.cells import Nand2 as Nand2
from imcpnn.circuits.cells import Neuron as Neuron
from imcpnn.circuits.cells import Synapse as Synapse
from imcpnn.circuits.cells import TGate as TGate
from imcpnn.circuits.cells import cell_text as cell_text
from imcpnn.circuits.characterize import CharacterizationConfig as CharacterizationConfig
from imcpnn.circuits.characterize import characterize as characterize
from imcpnn.circuits.characterize import write_outputs as write_outputs
from imcpnn.circuits.characterize_fit import Characterization as Characterization
from imcpnn.circuits.characterize_fit import IdVgTable as IdVgTable
from imcpnn.circuits.characterize_fit import LambdaFit as LambdaFit
from imcpnn.circuits.characterize_fit import fit_lambda as fit_lambda
from imcpnn.circuits.characterize_fit import model_constants as model_constants
from imcpnn.circuits.measure import membrane_table as membrane_table
from imcpnn.circuits.measure import spike_table as spike_table
from imcpnn.circuits.network import Network as Network
from imcpnn.circuits.network import NetworkDeck as NetworkDeck
from imcpnn.circuits.network import NeuronLayer as NeuronLayer
from imcpnn.circuits.network import ParasiticEstimate as ParasiticEstimate
from imcpnn.circuits.network import PhaseSchedule as PhaseSchedule
from imcpnn.circuits.network import PostLayoutCore as PostLayoutCore
from imcpnn.circuits.network import SynapseArray as SynapseArray
from imcpnn.circuits.network import network_deck as network_deck
from imcpnn.circuits.simulate import NetworkRun as NetworkRun
from imcpnn.circuits.simulate import map_network as map_network
from imcpnn.circuits.simulate import simulate_network as simulate_network
from imcpnn.circuits.simulate import simulate_scales as simulate_scales
from imcpnn.circuits.sky130 import MODELS as MODELS
from imcpnn.circuits.sky130 import um as um
from imcpnn.circuits.weights import CurrentScales as CurrentScales
from imcpnn.circuits.weights import discharger_bias_v as discharger_bias_v
from imcpnn.circuits.weights import weights_to_biases as weights_to_biases
