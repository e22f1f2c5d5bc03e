"""sky130 model names by circuit role, and the SI -> micrometre conversion of instance sizes.

sky130 devices are subcircuits whose W and L are given in micrometres (the model set applies
``.option scale=1.0u``)::

    XM1 d g s b sky130_fd_pr__nfet_01v8 W=1 L=0.25 nf=1

Everything else in imcpnn carries SI values (metres); :func:`um` is the single place where they
become PDK units. The process corner comes from :class:`imcpnn.spice.Corner`.
"""

from __future__ import annotations

from types import MappingProxyType

from imcpnn.errors import NetlistError

#: Circuit role -> sky130 model (subcircuit) name. One table, used by cells and characterization.
MODELS = MappingProxyType(
    {
        "syn_n": "sky130_fd_pr__nfet_01v8",  # synapse NMOS current source NM (w > 0)
        "syn_p": "sky130_fd_pr__pfet_01v8",  # synapse PMOS current source PM (w < 0)
        "sel_n": "sky130_fd_pr__nfet_01v8",  # synapse NMOS selector NS
        "sel_p": "sky130_fd_pr__pfet_01v8",  # synapse PMOS selector PS
        "dis_n": "sky130_fd_pr__nfet_01v8",  # neuron discharger current source
        "sense_n": "sky130_fd_pr__nfet_01v8_lvt",  # sensing inverter input NMOS (low V_th)
        "sense_p_hvt": "sky130_fd_pr__pfet_01v8_hvt",  # sensing inverter input PMOS (high V_th)
        "bias_p": "sky130_fd_pr__pfet_01v8",  # sensing inverter bias / enable PMOS
        "logic_n": "sky130_fd_pr__nfet_01v8",  # NAND, inverter, switches
        "logic_p": "sky130_fd_pr__pfet_01v8",
        "cap_mim": "sky130_fd_pr__cap_mim_m3_2",  # membrane capacitor
    }
)

#: MIM capacitance per area (F/m^2) and the edge growth the model adds to W and L (m):
#: C = 2 fF/um^2 (W + 0.15 um)(L + 0.15 um) (the sky130 models' models_capacitors.spice).
MIM_F_PER_M2 = 2.0e-3
MIM_DW_M = 0.15e-6


def model(role: str) -> str:
    """sky130 model name for a circuit role (a key of :data:`MODELS`)."""
    try:
        return MODELS[role]
    except KeyError:
        raise NetlistError(f"unknown device role {role!r}; valid roles: {', '.join(MODELS)}") from None


def um(length_m: float) -> float:
    """Length in metres -> sky130 instance units (micrometres), rounded to 1 pm to keep decks stable."""
    return round(length_m * 1e6, 6)


def fmt_um(length_m: float) -> str:
    """``um`` as compact deck text: 1e-6 -> '1', 2.5e-7 -> '0.25'."""
    return f"{um(length_m):g}"


def mim_capacitance_f(w_m: float, l_m: float) -> float:
    """Capacitance of a sky130_fd_pr__cap_mim_m3_2 plate: C = 2e-3 F/m^2 (W + 0.15 um)(L + 0.15 um)."""
    return MIM_F_PER_M2 * (w_m + MIM_DW_M) * (l_m + MIM_DW_M)
