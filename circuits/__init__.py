"""sky130 circuits as typed Python objects: cells, synapse arrays, networks, device characterization."""
