"""Device characterization: ngspice sweeps of the synapse and discharger transistors and the
sensing inverter (:mod:`.sweeps`), and the fits that turn them into the model's constants:
lambda, V_switch, E_plus, E_minus, E_dis and the I_D(V_G) tables of the weight mapping (:mod:`.fit`);
device mismatch from Monte Carlo runs of the same sweeps (:mod:`.mismatch`).
"""

from imcpnn.circuits.characterization.fit import Characterization as Characterization
from imcpnn.circuits.characterization.fit import IdVgTable as IdVgTable
from imcpnn.circuits.characterization.fit import LambdaCurve as LambdaCurve
from imcpnn.circuits.characterization.fit import LambdaFit as LambdaFit
from imcpnn.circuits.characterization.fit import fit_lambda as fit_lambda
from imcpnn.circuits.characterization.fit import model_constants as model_constants
from imcpnn.circuits.characterization.sweeps import CharacterizationConfig as CharacterizationConfig
from imcpnn.circuits.characterization.sweeps import agg_figure as agg_figure
from imcpnn.circuits.characterization.sweeps import characterize as characterize
from imcpnn.circuits.characterization.sweeps import write_outputs as write_outputs
from imcpnn.circuits.characterization.mismatch import DEVICES as MISMATCH_DEVICES
from imcpnn.circuits.characterization.mismatch import MismatchConfig as MismatchConfig
from imcpnn.circuits.characterization.mismatch import MismatchResult as MismatchResult
from imcpnn.circuits.characterization.mismatch import Spread as Spread
from imcpnn.circuits.characterization.mismatch import characterize_mismatch as characterize_mismatch
from imcpnn.circuits.characterization.mismatch import mismatch_figure as mismatch_figure
from imcpnn.circuits.characterization.mismatch import write_mismatch as write_mismatch
