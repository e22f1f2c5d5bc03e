"""Hand-written sky130 cell library (one .subckt per .spice file), shipped as package data."""
