"""Network simulation: trained weights -> gate biases through a characterization
(:mod:`.weights`), batched ngspice runs of the network deck (:mod:`.run`), spike and membrane
tables measured from the raw traces (:mod:`.measure`), and the energy the supplies delivered
(:mod:`.energy`).
"""

from imcpnn.circuits.simulate.energy import count_synops as count_synops
from imcpnn.circuits.simulate.energy import energy_summary as energy_summary
from imcpnn.circuits.simulate.energy import spiked_inputs as spiked_inputs
from imcpnn.circuits.simulate.energy import supply_energy as supply_energy
from imcpnn.circuits.simulate.measure import membrane_table as membrane_table
from imcpnn.circuits.simulate.measure import SPIKE_TABLE_COLUMNS as SPIKE_TABLE_COLUMNS
from imcpnn.circuits.simulate.measure import spice_spike_table as spice_spike_table
from imcpnn.circuits.simulate.run import NetworkRun as NetworkRun
from imcpnn.circuits.simulate.run import map_network as map_network
from imcpnn.circuits.simulate.run import simulate_network as simulate_network
from imcpnn.circuits.simulate.run import simulate_scales as simulate_scales
from imcpnn.circuits.simulate.weights import CurrentScales as CurrentScales
from imcpnn.circuits.simulate.weights import discharger_bias_v as discharger_bias_v
from imcpnn.circuits.simulate.weights import load_weights as load_weights
from imcpnn.circuits.simulate.weights import weights_to_biases as weights_to_biases
