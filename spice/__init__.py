"""Run ngspice on sky130 models, read its raw traces, cache and parallelize runs. Knows nothing of the other subpackages."""
