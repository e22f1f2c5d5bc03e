"""imcpnn: physical neural networks for analog in-memory computing circuits.

The subpackages map one-to-one onto the flow (imports go one way, left to right):

- :mod:`imcpnn.spice`: run ngspice on sky130 models, read raw traces, cache results.
- :mod:`imcpnn.circuits`: sky130 cells and network generators; device characterization.
- :mod:`imcpnn.pnn`: the RC-Spike model with reversal potentials, exact solver, DSTD, training.
- :mod:`imcpnn.validation`: model vs SPICE, bottom-up vs top-down, reports.

The public API below is imported lazily so that ``import imcpnn.spice`` does not load torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> module that defines it.
_PUBLIC = {
    "ImcpnnError": "imcpnn.errors",
    "ConfigError": "imcpnn.errors",
    "NetlistError": "imcpnn.errors",
    "SpiceError": "imcpnn.errors",
    "ConvergenceError": "imcpnn.errors",
    "ToolNotFoundError": "imcpnn.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'imcpnn' has no attribute {name!r}")
