"""Exception hierarchy of imcpnn.

Every error the toolkit raises on purpose derives from :class:`ImcpnnError`, so a caller (or the
CLI) can catch the whole family in one place. Messages say what happened, why, and the command or
argument that fixes it.

This module is a leaf: it imports nothing from the toolkit, so every subpackage may use it.
"""

from __future__ import annotations


class ImcpnnError(Exception):
    """Root of all errors raised by imcpnn."""


class ConfigError(ImcpnnError, ValueError):
    """A configuration value or file is wrong: unknown key, wrong type, unit or range."""


class NetlistError(ImcpnnError, ValueError):
    """A netlist or circuit description is malformed or inconsistent."""


class ToolNotFoundError(ImcpnnError, FileNotFoundError):
    """An external tool or data set (ngspice, sky130 models, magic, a data set) is missing."""


class SpiceError(ImcpnnError, RuntimeError):
    """ngspice failed. Carries the ngspice message, the offending deck line and the run directory."""

    def __init__(self, message: str, *, run_dir=None, log: str = "", deck_line: str | None = None):
        details = [message]
        if deck_line:
            details.append(f"  netlist line: {deck_line}")
        if run_dir is not None:
            details.append(f"  run directory kept for inspection: {run_dir}")
        super().__init__("\n".join(details))
        self.run_dir = run_dir
        self.log = log
        self.deck_line = deck_line


class ConvergenceError(SpiceError):
    """ngspice did not converge (no DC solution, timestep too small, singular matrix)."""


class SpiceTimeoutError(SpiceError):
    """ngspice ran longer than its time limit and was killed."""


class TrainingError(ImcpnnError, RuntimeError):
    """Training stopped (e.g. a NaN loss); the last good checkpoint is kept."""


class ResultsError(ImcpnnError, ValueError):
    """A result folder is missing files or holds corrupt ones."""
