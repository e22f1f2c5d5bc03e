"""Weights -> synapse currents -> gate biases (method section 5), and the discharger bias.

A normalized weight w becomes the current that moves the normalized membrane v by w per unit time:

    I = C_m V_th_circ |w| / T_circ * scale * (scale_plus if w > 0 else scale_minus)

drawn by the NMOS current source (w > 0, pulls charge out) or pushed by the PMOS one (w < 0). The
gate bias is the inverse of the characterized I_D(V_G) at V_D = V0. ``scale`` absorbs what the
model misses (parasitic capacitance, device capacitances on the membrane); the validation stage
tunes it (bottom-up) or ``scale_plus`` / ``scale_minus`` (top-down).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imcpnn.circuits.characterization.fit import Characterization, IdVgTable
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT
from imcpnn.config import is_real, require, require_positive
from imcpnn.errors import ConfigError, NetlistError


@dataclass(frozen=True)
class CurrentScales:
    """Current scale factors (dimensionless, > 0): global, and extra ones for w > 0 and w < 0."""

    scale: float = 1.0
    scale_plus: float = 1.0
    scale_minus: float = 1.0

    def __post_init__(self) -> None:
        require_positive(self, "scale", "scale_plus", "scale_minus")


_SAVE_HINT = "save the weights with numpy.savez(path, w0=W0, w1=W1, ...), each W (n_in, n_out)"


def load_weights(path: str | os.PathLike) -> list[np.ndarray]:
    """Weight matrices from an .npz holding w0, w1, ... (float arrays (n_in, n_out), chained).

    Arrays not named w<k> are ignored. Raises ConfigError naming the file and the fix when it is
    missing, is not an .npz of numbers (a text file, a single .npy array, strings), when the layer
    keys have a gap (w0, w2: no w1), or when a matrix is not 2-D, not finite, or does not chain
    (w<k> has as many columns as w<k+1> has rows).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"weights file {path} {what}; {_SAVE_HINT}")
    try:
        data = np.load(path, allow_pickle=False)  # allow_pickle=False: loading runs no code
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ConfigError(f"weights file {path} holds a single array, not one array per layer; "
                              f"{_SAVE_HINT}")
        with data:
            found = list(data.files)
            names = sorted((k for k in found if re.fullmatch(r"w\d+", k)), key=lambda k: int(k[1:]))
            arrays = {k: data[k] for k in names}
    except ConfigError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):  # text, pickle, truncated archive
        raise ConfigError(f"weights file {path} is not a numpy .npz archive of numbers; {_SAVE_HINT}") from None
    if not arrays:
        raise ConfigError(f"weights file {path} holds no arrays named w0, w1, ... (found "
                          f"{', '.join(found) or 'none'}); {_SAVE_HINT}")
    expected = [f"w{k}" for k in range(int(names[-1][1:]) + 1)]
    if names != expected:
        missing = [k for k in expected if k not in names]
        raise ConfigError(f"weights file {path} holds {', '.join(names)}: "
                          f"the layer keys must be w0, w1, ... without a gap or duplicate "
                          f"(missing {', '.join(missing) or 'none'}); {_SAVE_HINT}")
    weights = []
    for k, name in enumerate(expected):
        w = arrays[name]
        if w.dtype.kind not in "biuf":
            raise ConfigError(f"weights file {path}: {name} holds {w.dtype} values, not numbers; {_SAVE_HINT}")
        if w.ndim != 2 or 0 in w.shape:
            raise ConfigError(f"weights file {path}: {name} has shape {w.shape}, need a 2-D (n_in, n_out) "
                              f"matrix; {_SAVE_HINT}")
        w = w.astype(float)
        if not np.all(np.isfinite(w)):
            raise ConfigError(f"weights file {path}: {name} holds NaN or inf; give finite weights")
        if weights and weights[-1].shape[1] != w.shape[0]:
            raise ConfigError(f"weights file {path}: w{k - 1} has shape {weights[-1].shape} but {name} has "
                              f"{w.shape}: the columns of w{k - 1} must equal the rows of {name}")
        weights.append(w)
    return weights


def unit_current_a(c_m_f: float, v_th_circ_v: float, t_phase_s: float) -> float:
    """Current for |w| = 1: I_1 = C_m V_th_circ / T_circ (A)."""
    if not c_m_f > 0:
        raise ConfigError(f"membrane capacitance c_m_f={c_m_f!r} F must be > 0")
    if not t_phase_s > 0:
        raise ConfigError(f"phase length t_phase_s={t_phase_s!r} s must be > 0")
    return c_m_f * v_th_circ_v / t_phase_s


def weight_currents_a(
    w: np.ndarray, i_unit_a: float, scales: CurrentScales
) -> tuple[np.ndarray, np.ndarray]:
    """(I_N, I_P) in A, both shaped like ``w`` (n_in, n_out): I_N for w > 0, I_P for w < 0, else 0."""
    w = np.asarray(w, dtype=float)
    i_n = np.where(w > 0, w * i_unit_a * scales.scale * scales.scale_plus, 0.0)
    i_p = np.where(w < 0, -w * i_unit_a * scales.scale * scales.scale_minus, 0.0)
    return i_n, i_p


def _gate_or_raise(i_a: np.ndarray, table: IdVgTable, what: str, unit_a: float, sign: str) -> np.ndarray:
    on = i_a > 0
    lo, hi = table.i_range_a
    bad = on & ((i_a < lo) | (i_a > hi))
    if np.any(bad):
        worst = float(i_a[bad].max()) if np.any(i_a[bad] > hi) else float(i_a[bad].min())
        w_max = float(i_a[on].max()) / unit_a
        w_min = float(i_a[on].min()) / unit_a
        raise NetlistError(
            f"{int(bad.sum())} {what} current(s) fall outside the characterized range "
            f"[{lo:.3g}, {hi:.3g}] A (e.g. {worst:.3g} A). Scaled |w| spans [{w_min:.3g}, {w_max:.3g}] "
            f"with 1 unit = {unit_a:.3g} A; use a current scale between {lo / (unit_a * w_min):.3g} "
            f"and {hi / (unit_a * w_max):.3g} times the present one (scale_{sign}), or widen "
            "the characterized gate range"
        )
    return np.where(on, table.gate_v(np.where(on, i_a, lo)), np.nan)


def switch_off_unmappable(w: np.ndarray, char: Characterization, c_m_f: float, t_phase_s: float,
                          scales: CurrentScales) -> tuple[np.ndarray, int]:
    """``w`` (n_in, n_out) with the weights whose current falls below the characterized table's
    lowest current set to 0 (the synapse switched off), and how many they are.

    A trained 784-input layer holds weights down to ~1e-6, whose currents (|w| C_m V_th_circ / T,
    times the scale) lie below the leakage floor where the I_D(V_G) tables are cut: no gate bias
    gives them. Each such synapse would add less than the floor (about 1 pA, about 1e-5 of the
    unit current) to its membrane, so switching it off is the mapping's nearest realizable weight.
    Weights above the table's highest current are left to the mapping's own error
    (:func:`weights_to_biases`), which names the scale that fits.
    """
    w = np.asarray(w, dtype=float)
    i_n, i_p = weight_currents_a(w, unit_current_a(c_m_f, char.v_th_circ, t_phase_s), scales)
    low = ((w > 0) & (i_n < char.id_vg_n.i_range_a[0])) | ((w < 0) & (i_p < char.id_vg_p.i_range_a[0]))
    return np.where(low, 0.0, w), int(low.sum())


def weights_to_biases(
    w: np.ndarray,
    char: Characterization,
    c_m_f: float,
    t_phase_s: float,
    scales: CurrentScales = CurrentScales(),
    vdd_v: float = DESIGN_POINT.vdd_v,
) -> tuple[np.ndarray, np.ndarray]:
    """Gate biases (V_N, V_P), each (n_in, n_out), for a weight matrix ``w`` (n_in, n_out).

    I = C_m V_th_circ |w| / T_circ * scale * scale_(plus|minus); V_N = I_D,N^-1(I) for w > 0 and
    V_P = I_D,P^-1(I) for w < 0 (characterized tables at V_D = V0). A source that is not used is
    switched off: V_N = 0 V, V_P = V_dd, and so is a near-zero weight whose current is below the
    table (:func:`switch_off_unmappable`). Raises NetlistError naming the characterized current
    range and the scale that would fit when a current is above the table, or every current of a
    sign below it (a scale far too small, not a few near-zero weights).
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 2:
        raise NetlistError(f"weights must be a 2-D (n_in, n_out) array, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise NetlistError("weights contain NaN or inf")
    kept, _ = switch_off_unmappable(w, char, c_m_f, t_phase_s, scales)
    w = np.where(((w > 0) & ~np.any(kept > 0)) | ((w < 0) & ~np.any(kept < 0)), w, kept)
    unit = unit_current_a(c_m_f, char.v_th_circ, t_phase_s)
    i_n, i_p = weight_currents_a(w, unit, scales)
    vg_n = _gate_or_raise(i_n, char.id_vg_n, "NMOS (w > 0)", unit * scales.scale * scales.scale_plus, "plus")
    vg_p = _gate_or_raise(i_p, char.id_vg_p, "PMOS (w < 0)", unit * scales.scale * scales.scale_minus, "minus")
    return np.where(w > 0, vg_n, 0.0), np.where(w < 0, vg_p, vdd_v)


def discharger_current_a(char: Characterization, c_m_f: float, t_phase_s: float, scale: float = 1.0) -> float:
    """Discharger current at V = V0 (A): I_dis = C_m V_th_circ / T times ``scale``.

    The unit is the ideal ramp's current (dv/dt = 1 at v = 0). The real current falls as the
    membrane discharges and the firing path adds a delay, so the validation places the design
    factor by simulation (a neuron with no input fires exactly at the window end); the function
    itself reads only design data (C_m, V_th_circ, T), no fitted model parameter.
    """
    require("discharger", "scale", scale, is_real(scale) and scale > 0, "a finite number > 0")
    return unit_current_a(c_m_f, char.v_th_circ, t_phase_s) * scale


def discharger_bias_v(char: Characterization, c_m_f: float, t_phase_s: float, scale: float = 1.0) -> float:
    """Gate bias of the discharger NMOS giving :func:`discharger_current_a` (V)."""
    i = discharger_current_a(char, c_m_f, t_phase_s, scale)
    lo, hi = char.id_vg_dis.i_range_a
    if not lo <= i <= hi:
        raise NetlistError(
            f"discharger current {i:.3g} A is outside its characterized range [{lo:.3g}, {hi:.3g}] A; "
            "widen the tabulated NMOS gate range (CharacterizationConfig.vg_table_n_v) or change the "
            "discharger size, C_m or the phase length"
        )
    return float(char.id_vg_dis.gate_v(i))
