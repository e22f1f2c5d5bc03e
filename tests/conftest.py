"""Shared fixtures. SPICE tests really run ngspice (CI installs it); they are marked ``slow``."""
