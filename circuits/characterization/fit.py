"""Pure characterization math: traces in, numbers out (no simulation here).

The bottom-up mapping (method section 5) needs, per current-source device, the channel-length
modulation coefficient lambda and an invertible table I_D(V_G) at V_D = V0, plus the sensing
inverter's switching point. The sweeps that produce the traces live in
:mod:`imcpnn.circuits.characterization.sweeps`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imcpnn.circuits.netlist.operating_point import OperatingPoint
from imcpnn.errors import ConfigError


@dataclass(frozen=True)
class LambdaFit:
    """Result of :func:`fit_lambda` (units in the names)."""

    lambda_per_v: float
    i_v0_a: float
    slope_a_per_v: float
    rms_rel_residual: float


def fit_lambda(
    v_ds_v: np.ndarray, i_d_a: np.ndarray, v_fit_range_v: tuple[float, float], v0_v: float
) -> LambdaFit:
    """Least-squares fit of I_D = I0 (1 + lambda (V_DS - V0)) over ``v_fit_range_v``.

    Fits the line I_D = a + b V_DS to the points with V_DS inside the window, then
    I0 = a + b V0 and lambda = b / I0 (1/V). ``v_ds_v`` is the magnitude of the drain-source
    voltage and ``i_d_a`` the magnitude of the drain current, so a PMOS is passed as
    V_SD = V_dd - V_drain with its window and V0 mapped the same way. ``rms_rel_residual`` is the
    RMS of the fit residual divided by I0 (shape of inputs: (n_points,)).
    """
    v = np.asarray(v_ds_v, dtype=float)
    i = np.asarray(i_d_a, dtype=float)
    if v.shape != i.shape or v.ndim != 1:
        raise ConfigError(f"fit_lambda needs two 1-D arrays of equal length, got {v.shape} and {i.shape}")
    lo, hi = sorted(v_fit_range_v)
    inside = (v >= lo - 1e-12) & (v <= hi + 1e-12)
    if inside.sum() < 3:
        raise ConfigError(
            f"fit_lambda: only {int(inside.sum())} points in the fit window [{lo}, {hi}] V "
            f"(data spans [{v.min():.3g}, {v.max():.3g}] V); widen the sweep or the window"
        )
    b, a = np.polyfit(v[inside], i[inside], 1)
    i0 = a + b * v0_v
    resid = i[inside] - (a + b * v[inside])
    return LambdaFit(
        lambda_per_v=float(b / i0),
        i_v0_a=float(i0),
        slope_a_per_v=float(b),
        rms_rel_residual=float(np.sqrt(np.mean(resid**2)) / abs(i0)),
    )


def crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """x at the first crossing of ``y`` through ``level`` (linear interpolation), NaN if none."""
    x = np.asarray(x, dtype=float)
    d = np.asarray(y, dtype=float) - level
    idx = np.nonzero(np.signbit(d[:-1]) != np.signbit(d[1:]))[0]
    if idx.size == 0:
        return float("nan")
    k = idx[0]
    return float(x[k] + (x[k + 1] - x[k]) * d[k] / (d[k] - d[k + 1]))


@dataclass(frozen=True)
class LambdaCurve:
    """Channel-length modulation against the device's current: lambda (1/V) of the fit at each
    swept gate bias, keyed by its current at V_D = V0 (A), ascending.

    lambda is not one number: it changes with the bias (the characterization's single lambda is
    the median of this curve). A synapse biased for weight w
    carries a known current, so the curve gives it its own lambda, hence its own reversal
    potential E = +-1 / (V_th_circ lambda). Between points the curve is linear in log(current);
    outside them it holds the end values.
    """

    i_a: tuple[float, ...]
    lambda_per_v: tuple[float, ...]

    def __post_init__(self):
        i, lam = np.asarray(self.i_a, float), np.asarray(self.lambda_per_v, float)
        if i.ndim != 1 or i.shape != lam.shape or len(i) < 1:
            raise ConfigError("LambdaCurve needs equally long, non-empty i_a and lambda_per_v")
        if not (np.all(i > 0) and np.all(np.diff(i) > 0) and np.all(lam > 0) and np.all(np.isfinite(lam))):
            raise ConfigError("LambdaCurve needs currents > 0 in ascending order and finite lambdas > 0")

    def __call__(self, i_a) -> np.ndarray:
        """lambda (1/V) at currents ``i_a`` (A, any shape; values <= 0 take the lowest point)."""
        i = np.log(np.maximum(np.asarray(i_a, float), self.i_a[0]))
        return np.interp(i, np.log(self.i_a), self.lambda_per_v)

    @classmethod
    def from_fits(cls, i_a, lambda_per_v) -> "LambdaCurve":
        """From the per-gate-bias fits in any order (sorted by current here)."""
        order = np.argsort(np.asarray(i_a, float))
        return cls(tuple(float(np.asarray(i_a)[k]) for k in order),
                   tuple(float(np.asarray(lambda_per_v)[k]) for k in order))

    @classmethod
    def from_dict(cls, data: dict) -> "LambdaCurve":
        """From its JSON form ``{"i_a": [...], "lambda_per_v": [...]}``."""
        return cls(tuple(map(float, data["i_a"])), tuple(map(float, data["lambda_per_v"])))

    def to_dict(self) -> dict:
        """The JSON form read by :meth:`from_dict`."""
        return {"i_a": list(self.i_a), "lambda_per_v": list(self.lambda_per_v)}


@dataclass(frozen=True)
class IdVgTable:
    """I_D(V_G) of one device at V_D = V0, strictly monotone, inverted by log-linear interpolation.

    ``v_g_v`` ascending (n,), ``i_d_a`` magnitudes (n,): increasing in V_G for an NMOS,
    decreasing for a PMOS. Interpolation is linear in log(I_D), which follows the exponential
    subthreshold region and stays monotone.
    """

    v_g_v: tuple[float, ...]
    i_d_a: tuple[float, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.v_g_v)
        i = np.asarray(self.i_d_a)
        if v.shape != i.shape or v.size < 2:
            raise ConfigError("IdVgTable: v_g_v and i_d_a need equal length >= 2")
        if np.any(np.diff(v) <= 0):
            raise ConfigError("IdVgTable: v_g_v must be strictly ascending")
        if np.any(i <= 0):
            raise ConfigError("IdVgTable: i_d_a must be positive current magnitudes")
        di = np.diff(i)
        if not (np.all(di > 0) or np.all(di < 0)):
            raise ConfigError(
                "IdVgTable: I_D is not strictly monotone in V_G; restrict the gate range to "
                "where the device is on (above the leakage floor)"
            )

    @property
    def i_range_a(self) -> tuple[float, float]:
        """(smallest, largest) tabulated current (A)."""
        return float(min(self.i_d_a)), float(max(self.i_d_a))

    def current_a(self, v_g_v: np.ndarray | float) -> np.ndarray:
        """I_D at the given gate voltages (A), log-linear interpolation."""
        return np.exp(np.interp(v_g_v, self.v_g_v, np.log(self.i_d_a)))

    def gate_v(self, i_a: np.ndarray | float) -> np.ndarray:
        """Gate voltage giving current ``i_a`` (A): the inverse of :meth:`current_a`.

        Currents outside :attr:`i_range_a` are clipped to the table's ends; callers check the
        range first (see :func:`imcpnn.circuits.simulate.weights.weights_to_biases`).
        """
        log_i = np.log(np.asarray(self.i_d_a))
        v = np.asarray(self.v_g_v)
        if log_i[0] > log_i[-1]:
            log_i, v = log_i[::-1], v[::-1]
        return np.interp(np.log(i_a), log_i, v)

    @classmethod
    def from_dict(cls, data: dict) -> "IdVgTable":
        """From the ``{"v_g_v": [...], "i_d_a": [...]}`` of the characterization JSON."""
        return cls(tuple(map(float, data["v_g_v"])), tuple(map(float, data["i_d_a"])))

    def to_dict(self) -> dict:
        """The JSON form read by :meth:`from_dict`."""
        return {"v_g_v": list(self.v_g_v), "i_d_a": list(self.i_d_a)}


def model_constants(
    v0_v: float, v_switch_v: float, lambda_n: float, lambda_p: float, lambda_dis: float
) -> dict[str, float]:
    """E values of the model from the circuit (method section 5).

    V_th_circ = V0 - V_switch;  E_plus = 1/(V_th_circ lam_N);  E_minus = -1/(V_th_circ lam_P);
    E_dis = 1/(V_th_circ lam_dis).
    """
    v_th = v0_v - v_switch_v
    if v_th <= 0:
        raise ConfigError(
            f"switching point {v_switch_v:.3f} V is not below V0 = {v0_v} V: the neuron could "
            "never fire; check the sensing inverter bias"
        )
    return {
        "v_th_circ": v_th,
        "e_plus": 1.0 / (v_th * lambda_n),
        "e_minus": -1.0 / (v_th * lambda_p),
        "e_dis": 1.0 / (v_th * lambda_dis),
    }


#: Float keys every characterization JSON holds (the CLI contract of ``imcpnn characterize``).
CONTRACT_KEYS = (
    "lambda_n", "lambda_p", "lambda_dis", "v0", "v_switch", "v_th_circ", "e_plus", "e_minus", "e_dis",
)  # fmt: skip


@dataclass(frozen=True)
class Characterization:
    """What the circuit generators need from ``characterization.json`` (V, 1/V, A).

    Build it with :meth:`from_dict` from the JSON written by ``imcpnn characterize``; the
    I_D(V_G) tables at V_D = V0 map weights to gate biases.

    Conditions of the characterization (its JSON ``settings``): ``corner``, ``temp_c``, and the
    operating point ``v0``, ``vdd_v``, ``vb_sense_v`` (:meth:`operating_point`). None = not
    recorded (data built by hand, without settings): the network run that uses it supplies the
    value. A recorded value must equal the network run's, see
    :func:`imcpnn.circuits.simulate.run.check_operating_point`.
    """

    v0: float
    v_switch: float
    v_th_circ: float
    lambda_n: float
    lambda_p: float
    lambda_dis: float
    e_plus: float
    e_minus: float
    e_dis: float
    id_vg_n: IdVgTable
    id_vg_p: IdVgTable
    id_vg_dis: IdVgTable
    corner: str | None = None
    temp_c: float | None = None
    vdd_v: float | None = None
    vb_sense_v: float | None = None
    lambda_curves: dict[str, LambdaCurve] | None = None
    """lambda against current per device ("n", "p", "dis"); None in files written before it."""

    def synapse_reversal(self, i_a, device: str) -> np.ndarray:
        """Reversal potential of each synapse from its current ``i_a`` (A, any shape):
        E = 1 / (V_th_circ lambda_n(I)) for "n" (excitatory), -1 / (V_th_circ lambda_p(I)) for "p".
        Without recorded curves, the characterization's single E for every synapse."""
        if device not in ("n", "p"):
            raise ConfigError(f"synapse device {device!r} is not 'n' or 'p'")
        sign = 1.0 if device == "n" else -1.0
        if not self.lambda_curves:
            return np.full(np.shape(i_a), self.e_plus if device == "n" else self.e_minus)
        return sign / (self.v_th_circ * self.lambda_curves[device](i_a))

    def operating_point(self, unrecorded: OperatingPoint) -> OperatingPoint:
        """The operating point the tables were measured at; a value not recorded (None) is taken
        from ``unrecorded`` (the run's own point, so that it compares equal)."""
        return OperatingPoint(
            vdd_v=unrecorded.vdd_v if self.vdd_v is None else self.vdd_v,
            v0_v=self.v0,
            vb_sense_v=unrecorded.vb_sense_v if self.vb_sense_v is None else self.vb_sense_v,
        )

    @classmethod
    def from_dict(cls, data: dict) -> "Characterization":
        """From the characterization JSON dict (extra keys such as ``models`` are ignored).

        Raises:
            ConfigError: ``data`` is not a dict, lacks a key or holds a malformed value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"characterization data is a {type(data).__name__}, not a JSON object; "
                              "regenerate it with `imcpnn characterize --out DIR`")
        missing = [k for k in (*CONTRACT_KEYS, "id_vg_n", "id_vg_p", "id_vg_dis") if k not in data]
        if missing:
            raise ConfigError(
                f"characterization data lacks {', '.join(missing)}; regenerate it with "
                "`imcpnn characterize --out DIR`"
            )
        try:
            return cls._from_checked_dict(data)
        except (TypeError, ValueError, AttributeError, KeyError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"characterization data holds a malformed value ({err}); regenerate it "
                              "with `imcpnn characterize --out DIR`") from err

    @classmethod
    def _from_checked_dict(cls, data: dict) -> "Characterization":
        settings = data.get("settings") or {}
        return cls(
            **{k: float(data[k]) for k in CONTRACT_KEYS},
            id_vg_n=IdVgTable.from_dict(data["id_vg_n"]),
            id_vg_p=IdVgTable.from_dict(data["id_vg_p"]),
            id_vg_dis=IdVgTable.from_dict(data["id_vg_dis"]),
            corner=None if settings.get("corner") is None else str(settings["corner"]),
            temp_c=None if settings.get("temp_c") is None else float(settings["temp_c"]),
            vdd_v=None if settings.get("vdd_v") is None else float(settings["vdd_v"]),
            vb_sense_v=None if settings.get("vb_sense_v") is None else float(settings["vb_sense_v"]),
            lambda_curves=({d: LambdaCurve.from_dict(c) for d, c in data["lambda_vs_current"].items()}
                           if data.get("lambda_vs_current") else None),
        )


#: How to get a characterization file, for the messages of :func:`read_characterization`.
CHARACTERIZATION_FIX = ("write it with `imcpnn characterize --out DIR` (DIR/characterization.json), "
                        "or leave the option out to characterize on the fly")


def read_characterization(path, label: str = "characterization file") -> dict:
    """The dict of a characterization JSON file a user gave, checked the way
    :meth:`Characterization.from_dict` reads it (the dict itself is returned: its other keys, such
    as ``models`` and ``settings``, travel on).

    Raises:
        ConfigError: the file is missing, a folder, unreadable, not JSON, or not a
            characterization; the message names ``label`` (e.g. the CLI option), the path and the fix.
    """
    path = Path(path)
    where = f"{label} {path}"
    if not path.exists():
        raise ConfigError(f"{where} does not exist; {CHARACTERIZATION_FIX}")
    if path.is_dir():
        raise ConfigError(f"{where} is a folder, not a JSON file; {CHARACTERIZATION_FIX}")
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"{where} cannot be read ({err.strerror or err}); {CHARACTERIZATION_FIX}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{where} is not valid JSON (truncated or corrupt: {err}); "
                          f"{CHARACTERIZATION_FIX}") from None
    try:
        Characterization.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return data
