"""The physical neural network: RC-Spike neurons with reversal potentials, exact solver, DSTD, training. Pure model math; knows nothing of SPICE."""
