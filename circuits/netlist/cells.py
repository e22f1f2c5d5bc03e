"""Python mirrors of the hand-written cell library in ``netlists/`` (one frozen dataclass per cell).

Each cell names its ``.subckt`` (``subckt``), its port order (``ports``, checked against the file by
a test) and its sizes in SI units; :meth:`Cell.instance` writes the instance line with the sizes
converted to the subckt's micrometre parameters, and :func:`cell_text` reads the file shipped as
package data. Sizes are validated on construction against the sky130 rules they must respect.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import ClassVar

from imcpnn.circuits.sky130 import fmt_um, mim_capacitance_f
from imcpnn.config import is_real, require
from imcpnn.errors import NetlistError

#: Smallest drawn width and length of the 1.8 V devices (m); the MIM plate's smallest side (m).
W_MIN_M = 0.42e-6
L_MIN_M = 0.15e-6
MIM_MIN_M = 1.0e-6


class Cell:
    """Mixin: ``subckt`` name, ``ports``, ``_params`` (field -> subckt parameter in um) and
    ``_minimum_m`` (field -> its sky130 minimum in m, checked on construction)."""

    subckt: ClassVar[str]
    ports: ClassVar[tuple[str, ...]]
    _params: ClassVar[dict[str, str]] = {}
    _minimum_m: ClassVar[dict[str, float]] = {}

    def __post_init__(self) -> None:
        for name, minimum in self._minimum_m.items():
            value = getattr(self, name)
            require(self, name, value, is_real(value) and value >= minimum,
                    f"a size >= {minimum:g} m (sky130 minimum; sizes are in metres, e.g. 1e-6 for 1 um)")

    def params_um(self) -> dict[str, str]:
        """Subckt parameter values as deck text (micrometres)."""
        return {p: fmt_um(getattr(self, f)) for f, p in self._params.items()}

    def instance(self, name: str, nodes: tuple[str, ...] | list[str]) -> str:
        """Instance line ``X<name> <nodes> <subckt> p=v ...``; nodes in ``ports`` order."""
        if len(nodes) != len(self.ports):
            raise NetlistError(
                f"{self.subckt} instance {name!r} got {len(nodes)} nodes, needs {len(self.ports)}: "
                f"{' '.join(self.ports)}"
            )
        params = " ".join(f"{k}={v}" for k, v in self.params_um().items())
        return f"X{name} {' '.join(nodes)} {self.subckt} {params}".rstrip()


@dataclass(frozen=True)
class _LogicCell(Cell):
    """A CMOS logic cell sized by one NMOS width, one PMOS width and one channel length."""

    _params: ClassVar[dict[str, str]] = {"wn_m": "wn", "wp_m": "wp", "l_m": "l"}
    _minimum_m: ClassVar[dict[str, float]] = {"wn_m": W_MIN_M, "wp_m": W_MIN_M, "l_m": L_MIN_M}


@dataclass(frozen=True)
class Inv(_LogicCell):
    """Static CMOS inverter."""

    subckt: ClassVar[str] = "inv"
    ports: ClassVar[tuple[str, ...]] = ("in", "out", "vdd", "vss")
    wn_m: float = 1.0e-6
    wp_m: float = 2.0e-6
    l_m: float = 0.15e-6


@dataclass(frozen=True)
class Nand2(_LogicCell):
    """Two-input static CMOS NAND."""

    subckt: ClassVar[str] = "nand2"
    ports: ClassVar[tuple[str, ...]] = ("a", "b", "out", "vdd", "vss")
    wn_m: float = 1.0e-6
    wp_m: float = 1.0e-6
    l_m: float = 0.15e-6


@dataclass(frozen=True)
class TGate(_LogicCell):
    """CMOS transmission gate, closed while ``en`` is high and ``en_b`` low."""

    subckt: ClassVar[str] = "tgate"
    ports: ClassVar[tuple[str, ...]] = ("a", "b", "en", "en_b", "vdd", "vss")
    wn_m: float = 1.0e-6
    wp_m: float = 1.0e-6
    l_m: float = 0.15e-6


@dataclass(frozen=True)
class Synapse(Cell):
    """4T synapse: NS+NM pull charge from the membrane (w > 0), PS+PM push it in (w < 0)."""

    subckt: ClassVar[str] = "synapse"
    ports: ClassVar[tuple[str, ...]] = ("mem", "spk", "spk_b", "vg_n", "vg_p", "vdd", "vss")
    _params: ClassVar[dict[str, str]] = {"w_m": "w", "l_m": "l"}
    _minimum_m: ClassVar[dict[str, float]] = {"w_m": W_MIN_M, "l_m": L_MIN_M}
    w_m: float = 1.0e-6
    l_m: float = 0.25e-6


@dataclass(frozen=True)
class Neuron(Cell):
    """RC-Spike neuron: MIM membrane, reset to V0, discharger, sensing inverter, spike output.

    ``parasitic_f`` is not a device of the cell: it is the estimated wiring capacitance on the
    membrane that the generator adds beside it (see :mod:`imcpnn.circuits.netlist.network`).
    """

    subckt: ClassVar[str] = "neuron"
    ports: ClassVar[tuple[str, ...]] = (
        "mem", "vg_dis", "vb_sense", "v0", "rst", "rst_b", "fire", "fire_b", "out", "out_b",
        "vdd", "vss",
    )  # fmt: skip
    _params: ClassVar[dict[str, str]] = {
        "cm_w_m": "cm_w", "cm_l_m": "cm_l", "w_dis_m": "w_dis", "l_dis_m": "l_dis",
        "l_bias_m": "l_bias",
    }  # fmt: skip
    _minimum_m: ClassVar[dict[str, float]] = {
        "cm_w_m": MIM_MIN_M, "cm_l_m": MIM_MIN_M, "w_dis_m": W_MIN_M, "l_dis_m": L_MIN_M,
        "l_bias_m": L_MIN_M,
    }  # fmt: skip
    cm_w_m: float = 7.0e-6
    cm_l_m: float = 7.0e-6
    w_dis_m: float = 1.0e-6
    l_dis_m: float = 0.25e-6
    l_bias_m: float = 0.5e-6

    @property
    def c_mim_f(self) -> float:
        """MIM membrane capacitance (F), from the sky130 model's area rule."""
        return mim_capacitance_f(self.cm_w_m, self.cm_l_m)


#: Every cell class, in the order a deck includes them (leaf cells first).
CELLS: tuple[type[Cell], ...] = (Inv, Nand2, TGate, Synapse, Neuron)


def cell_text(cell: type[Cell] | Cell) -> str:
    """Text of the cell's ``.spice`` file, read from the ``imcpnn.netlists`` package data."""
    return importlib.resources.files("imcpnn.netlists").joinpath(f"{cell.subckt}.spice").read_text()
