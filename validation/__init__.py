"""Model vs SPICE: bottom-up vs top-down vs trace-fitted pipelines, trace fitting, metrics, reports.

Entry points: :func:`run_validation` (the whole experiment, resumable; what ``imcpnn validate`` and
``imcpnn demo`` call), :func:`run_variation` (corners, temperature and Monte Carlo mismatch in SPICE
and in the model; ``imcpnn variation``), :func:`render_report` (``imcpnn report``), :func:`fit_traces` (physical
parameters from transient traces), the pure metrics, and :func:`search` (scale search:
:func:`gauss_newton_search`, :func:`quadratic_search`, or :func:`coarse_to_fine`, the stencil
search they are checked against).
"""

from ._config import DataSection as DataSection
from ._config import SearchConfig as SearchConfig
from ._config import TraceFitConfig as TraceFitConfig
from ._config import ValidationConfig as ValidationConfig
from ._fit import PARAMETER_NAMES as PARAMETER_NAMES
from ._fit import FitResult as FitResult
from ._fit import PhysicalParameters as PhysicalParameters
from ._fit import TraceSet as TraceSet
from ._fit import fit_traces as fit_traces
from ._fit import predict_traces as predict_traces
from ._metrics import accuracy as accuracy
from ._metrics import compare_spike_tables as compare_spike_tables
from ._metrics import effective_spike_time as effective_spike_time
from ._metrics import layer_metrics as layer_metrics
from ._metrics import membrane_rmse_v as membrane_rmse_v
from ._metrics import output_rmse_ns as output_rmse_ns
from ._metrics import model_spike_table as model_spike_table
from ._metrics import spike_time_rmse as spike_time_rmse
from ._metrics import worst_sample as worst_sample
from imcpnn.pnn import predict as predicted_class  # the class decision, defined once in pnn
from ._search import coarse_to_fine as coarse_to_fine
from ._search import gauss_newton_search as gauss_newton_search
from ._search import quadratic_search as quadratic_search
from ._search import search as search
from .report import SUMMARY_KEYS as SUMMARY_KEYS
from .report import load_results as load_results
from .report import render_report as render_report
from ._pipeline import run_validation as run_validation
from ._pipeline import model_layer_times as model_layer_times
from ._layer import calibrate_discharger as calibrate_discharger
from ._layer import calibrate_kick as calibrate_kick
from ._layer import calibrate_layer as calibrate_layer
from ._layer import run_layer as run_layer
from ._variation import VariationConfig as VariationConfig
from ._variation import parse_list as parse_list
from ._variation import run_variation as run_variation
from ._variation import HwaTraining as HwaTraining
from ._variation import score_hwa_recipes as score_hwa_recipes
