"""Device mismatch from SPICE Monte Carlo: how far the copies of one device differ on one chip.

The nominal characterization (:mod:`.sweeps`) measures one ideal device of each kind. Here the
same sweeps run on K copies per deck with sky130's mismatch models on
(``Sim(mismatch_seed=...)``): every FET instance draws its own threshold offset, Pelgrom-scaled
as sigma_Vth ~ A_Vt / sqrt(W L).

- Current sources (synapse NMOS "nfet", synapse PMOS "pfet", neuron discharger NMOS
  "discharger"): one deck each, :func:`~.sweeps.fet_sweep_sim` with K copies, each drain behind
  its own 0-V ammeter. For each target current I the nominal gate bias V_G(I) comes from the
  nominal I_D(V_G) table at V_D = V0; each copy's current at that bias (its own table,
  log-linear in V_G) gives sigma(I)/I = std_k I_k / mean_k I_k. Each copy's lambda is fitted as
  the nominal one is (:func:`~.fit.fit_lambda` over the window at every family bias, median over
  the biases); E_plus, E_minus, E_dis follow from those lambdas by :func:`~.fit.model_constants`
  at the nominal V_th_circ, so their spread is what the synapse's or discharger's own device
  adds (the neuron's threshold spread is reported apart, as ``v_th_circ_v``).
- Switching point: K neuron cells in the firing phase on one swept membrane source, each with its
  own output; V_switch is each output's crossing of V_dd / 2 (as in the nominal deck), and
  V_th_circ = V0 - V_switch. The cells are split over several decks (``neurons_per_deck``), as a
  deck's cost grows faster than its cell count.

Seeds: decks of one structure with one ngspice seed draw the same offsets, and the three FET decks
differ only in their models, so each deck runs with its own ngspice seed derived from
``MismatchConfig.seed`` (:func:`deck_seed`): the decks are disjoint groups of devices of one chip,
and the same config gives the same numbers on any machine.

Spreads are sample statistics over the K copies (mean, standard deviation with ddof = 1). The
threshold spread the data imply is kept too: per current, the std of the gate-voltage shift that
restores each copy's current (sigma_Vth for a pure threshold mismatch, the same at every current),
and g_m/I_D of the nominal device there; sigma_Vth g_m/I_D is the first-order Pelgrom estimate of
sigma(I)/I, which in weak inversion is sigma_Vth / (n U_T).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from imcpnn.circuits.characterization.fit import Characterization, IdVgTable, crossing, model_constants
from imcpnn.circuits.characterization.sweeps import (
    CharacterizationConfig,
    agg_figure,
    characterize,
    fet_sweep_results,
    fet_sweep_sim,
    fet_sweeps,
    switch_sweep_sim,
)
from imcpnn.config import is_real, require, to_dict
from imcpnn.errors import ConfigError
from imcpnn.spice import run_many

#: The measured current sources, by their JSON name, and the characterization device ("n", "p",
#: "dis") each one is.
DEVICES: Mapping[str, str] = {"nfet": "n", "pfet": "p", "discharger": "dis"}

#: Target drain currents (A): 1 nA .. 1 uA, 9 points log-spaced. The network's unit current
#: I_1 = C_m V_th_circ / T (:func:`imcpnn.circuits.simulate.weights.unit_current_a`) is of order
#: 0.1 pF x 1 V / 1 us = 0.1 uA for the design's membrane and phase, so this spans weights of
#: |w| ~ 0.01 .. 10 units and the discharger's current of about one unit.
DEFAULT_CURRENTS_A: tuple[float, ...] = tuple(float(f"{i:.4g}") for i in np.geomspace(1e-9, 1e-6, 9))


@dataclass(frozen=True)
class MismatchConfig:
    """What the Monte Carlo measures. Currents in A, voltages in V.

    ``n_instances`` (K): device copies per device kind (and neuron cells), each drawing its own
    mismatch; >= 2. ``seed``: the chip, in [1, 2**31); decks derive their ngspice seeds from it.
    ``currents_a``: target drain currents, ascending, inside the nominal I_D(V_G) tables.
    ``neurons_per_deck``: neuron cells per switching-point deck (the K cells are split over
    ceil(K / neurons_per_deck) decks). ``vsw_margin_v``: the membrane is swept over the nominal
    V_switch +- this margin (clipped to [0, V0]); every cell must cross inside it.
    ``characterization``: sizes, operating point, sweeps, corner and temperature, as for the
    nominal characterization (whose tables give the nominal gate biases).
    """

    n_instances: int = 200
    seed: int = 1
    currents_a: tuple[float, ...] = DEFAULT_CURRENTS_A
    neurons_per_deck: int = 25
    vsw_margin_v: float = 0.15
    characterization: CharacterizationConfig = field(default_factory=CharacterizationConfig)

    def __post_init__(self) -> None:
        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        require(self, "characterization", self.characterization,
                isinstance(self.characterization, CharacterizationConfig), "a CharacterizationConfig")
        require(self, "n_instances", self.n_instances, is_int(self.n_instances) and self.n_instances >= 2,
                "an integer >= 2 (a spread needs two copies)")
        require(self, "seed", self.seed, is_int(self.seed) and 1 <= self.seed < 2**31,
                "an integer in [1, 2**31)")
        cur = self.currents_a
        require(self, "currents_a", cur, isinstance(cur, tuple) and len(cur) >= 1
                and all(is_real(i) and i > 0 for i in cur) and all(a < b for a, b in zip(cur, cur[1:])),
                "a tuple of >= 1 current in A, each > 0, strictly ascending (e.g. (1e-9, 1e-8, 1e-7))")
        require(self, "neurons_per_deck", self.neurons_per_deck,
                is_int(self.neurons_per_deck) and self.neurons_per_deck >= 1, "an integer >= 1")
        require(self, "vsw_margin_v", self.vsw_margin_v,
                is_real(self.vsw_margin_v) and 0 < self.vsw_margin_v <= self.characterization.v0_v,
                f"a voltage in (0, v0_v={self.characterization.v0_v}] V")


def deck_seed(seed: int, deck: int) -> int:
    """ngspice seed of deck number ``deck`` of the chip ``seed``: 1 + (first 8 bytes of
    sha256("imcpnn mismatch <seed> <deck>") mod (2**31 - 1)), in [1, 2**31)."""
    digest = hashlib.sha256(f"imcpnn mismatch {seed} {deck}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % (2**31 - 1)


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (ddof = 1) of one quantity over the copies, in its unit."""

    mean: float
    std: float

    @property
    def sigma_rel(self) -> float:
        """std / |mean| (dimensionless)."""
        return self.std / abs(self.mean)

    @classmethod
    def of(cls, values) -> "Spread":
        """From the per-copy values (K,), K >= 2."""
        v = np.asarray(values, dtype=float)
        return cls(float(v.mean()), float(v.std(ddof=1)))

    def to_dict(self) -> dict:
        """``{"mean", "std", "sigma_rel"}``."""
        return {"mean": self.mean, "std": self.std, "sigma_rel": self.sigma_rel}

    @classmethod
    def from_dict(cls, data: dict) -> "Spread":
        """From :meth:`to_dict`'s form (``sigma_rel`` is recomputed)."""
        return cls(float(data["mean"]), float(data["std"]))


#: Scalar spreads of a :class:`MismatchResult`: lambdas (1/V), reversal potentials (normalized),
#: switching point and circuit threshold (V).
SPREADS = ("lambda_n", "lambda_p", "lambda_dis", "e_plus", "e_minus", "e_dis", "v_switch_v", "v_th_circ_v")


@dataclass(frozen=True)
class MismatchResult:
    """Mismatch of one chip (one seed) at one corner and temperature.

    ``currents_a`` (n_i,): target currents (A), ascending. Per device name of :data:`DEVICES`
    (mappings device -> tuple of n_i values): ``sigma_i_rel`` sigma(I)/I at the nominal gate bias
    of each current; ``v_gate_v`` that nominal bias (V); ``sigma_v_gate_v`` the std of the gate
    shift that restores each copy's current (V); ``gm_over_i_per_v`` the nominal |d ln I_D / d V_G|
    (1/V). The :data:`SPREADS` are :class:`Spread` fields; ``nominal`` holds the nominal
    characterization's lambdas, V_switch, V_th_circ and E values (its contract keys).
    """

    corner: str
    temp_c: float
    seed: int
    n_instances: int
    currents_a: tuple[float, ...]
    sigma_i_rel: Mapping[str, tuple[float, ...]]
    v_gate_v: Mapping[str, tuple[float, ...]]
    sigma_v_gate_v: Mapping[str, tuple[float, ...]]
    gm_over_i_per_v: Mapping[str, tuple[float, ...]]
    lambda_n: Spread
    lambda_p: Spread
    lambda_dis: Spread
    e_plus: Spread
    e_minus: Spread
    e_dis: Spread
    v_switch_v: Spread
    v_th_circ_v: Spread
    nominal: Mapping[str, float]
    models: Mapping[str, str]
    ngspice_version: str
    settings: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        i = np.asarray(self.currents_a, dtype=float)
        if i.ndim != 1 or i.size < 1 or not np.all(i > 0) or np.any(np.diff(i) <= 0):
            raise ConfigError(f"MismatchResult.currents_a={self.currents_a!r} must hold >= 1 current > 0 A, "
                              "strictly ascending")
        for name in ("sigma_i_rel", "v_gate_v", "sigma_v_gate_v", "gm_over_i_per_v"):
            per = getattr(self, name)
            if set(per) != set(DEVICES) or any(len(per[d]) != i.size for d in DEVICES):
                raise ConfigError(f"MismatchResult.{name} needs one value per current ({i.size}) for each of "
                                  f"{', '.join(DEVICES)}; got {dict(per)!r}")

    def _device(self, device: str) -> str:
        if device not in DEVICES:
            raise ConfigError(f"unknown device {device!r}: use one of {', '.join(map(repr, DEVICES))}")
        return device

    def sigma_rel_at(self, device: str, i_a):
        """sigma(I)/I of ``device`` ("nfet", "pfet", "discharger") at currents ``i_a`` (A, > 0, any
        shape): linear in log(I) between the measured currents, the end values outside them.
        A float for a scalar ``i_a``, else an array shaped like it."""
        curve = self.sigma_i_rel[self._device(device)]
        i = np.asarray(i_a, dtype=float)
        if not np.all(i > 0):  # NaN fails too
            raise ConfigError(f"sigma_rel_at needs currents > 0 A, got {i_a!r}")
        out = np.interp(np.log(i), np.log(self.currents_a), curve)
        return float(out) if out.ndim == 0 else out

    def sigma_vth_v(self, device: str) -> float:
        """The threshold spread of ``device`` seen in the data (V): the median over the currents of
        ``sigma_v_gate_v`` (a pure threshold mismatch shifts the gate by the same amount at every
        current)."""
        return float(np.median(self.sigma_v_gate_v[self._device(device)]))

    def to_dict(self) -> dict:
        """JSON form: corner, temp_c, seed, n_instances, ``sigma_i_rel`` as a list of
        ``{"i_a", "nfet", "pfet", "discharger"}`` (one per current), v_gate_v, sigma_v_gate_v,
        gm_over_i_per_v (device -> list), sigma_vth_v (device -> V), the :data:`SPREADS` as
        ``{"mean", "std", "sigma_rel"}``, nominal, models, ngspice_version, settings."""
        return {
            "corner": self.corner, "temp_c": self.temp_c, "seed": self.seed, "n_instances": self.n_instances,
            "sigma_i_rel": [{"i_a": i, **{d: self.sigma_i_rel[d][k] for d in DEVICES}}
                            for k, i in enumerate(self.currents_a)],
            **{name: {d: list(getattr(self, name)[d]) for d in DEVICES}
               for name in ("v_gate_v", "sigma_v_gate_v", "gm_over_i_per_v")},
            "sigma_vth_v": {d: self.sigma_vth_v(d) for d in DEVICES},
            **{name: getattr(self, name).to_dict() for name in SPREADS},
            "nominal": dict(self.nominal), "models": dict(self.models), "ngspice_version": self.ngspice_version,
            "settings": dict(self.settings),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> "MismatchResult":
        """From :meth:`to_dict`'s form (derived keys such as ``sigma_vth_v`` are recomputed).

        Raises:
            ConfigError: a key is missing or a value malformed.
        """
        try:
            rows = data["sigma_i_rel"]
            return cls(
                corner=str(data["corner"]), temp_c=float(data["temp_c"]), seed=int(data["seed"]),
                n_instances=int(data["n_instances"]), currents_a=tuple(float(r["i_a"]) for r in rows),
                sigma_i_rel={d: tuple(float(r[d]) for r in rows) for d in DEVICES},
                **{name: {d: tuple(map(float, data[name][d])) for d in DEVICES}
                   for name in ("v_gate_v", "sigma_v_gate_v", "gm_over_i_per_v")},
                **{name: Spread.from_dict(data[name]) for name in SPREADS},
                nominal={k: float(v) for k, v in data["nominal"].items()}, models=dict(data["models"]),
                ngspice_version=str(data["ngspice_version"]), settings=dict(data.get("settings") or {}),
            )  # fmt: skip
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"mismatch data is malformed or lacks a key ({err!r}); regenerate it with "
                              "characterize_mismatch(MismatchConfig(...)).to_dict()") from err

    def plot(self, ax) -> None:
        """sigma(I)/I against I (log x) for the three devices on the matplotlib Axes ``ax``, each
        with its first-order Pelgrom estimate sigma_Vth g_m/I_D dashed (sigma_Vth from the data)."""
        for n, d in enumerate(DEVICES):
            color = f"C{n}"
            ax.plot(self.currents_a, self.sigma_i_rel[d], "o-", color=color, label=d)
            ref = self.sigma_vth_v(d) * np.asarray(self.gm_over_i_per_v[d])
            ax.plot(self.currents_a, ref, "--", color=color, lw=1,
                    label=f"{d}: sigma_Vth g_m/I (sigma_Vth = {self.sigma_vth_v(d) * 1e3:.1f} mV)")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set(xlabel="I_D (A)", ylabel="sigma(I) / I",
               title=f"current mismatch ({self.corner}, {self.temp_c} C, {self.n_instances} copies)")
        ax.legend(fontsize=7)


def mismatch_figure(result: MismatchResult):
    """A matplotlib Figure (own Agg canvas, no pyplot state) with :meth:`MismatchResult.plot`."""
    fig = agg_figure(figsize=(6, 4.5))
    result.plot(fig.subplots())
    fig.tight_layout()
    return fig


def write_mismatch(out_dir, result: MismatchResult) -> Path:
    """``mismatch.json`` (:meth:`MismatchResult.to_dict`) and ``mismatch_sigma_i.png`` in
    ``out_dir`` (created); returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mismatch.json"
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    mismatch_figure(result).savefig(out_dir / "mismatch_sigma_i.png", dpi=120)
    return path


def _nominal_gates(cfg: MismatchConfig, char: Characterization) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per device: (nominal gate bias (n_i,) in V, nominal g_m/I_D there (n_i,) in 1/V)."""
    i = np.asarray(cfg.currents_a)
    out = {}
    for name, dev in DEVICES.items():
        table: IdVgTable = getattr(char, f"id_vg_{dev}")
        lo, hi = table.i_range_a
        outside = [c for c in cfg.currents_a if not lo <= c <= hi]
        if outside:
            raise ConfigError(f"MismatchConfig.currents_a holds {outside} A, outside the {name}'s nominal "
                              f"I_D(V_G) table [{lo:.3g}, {hi:.3g}] A: choose currents inside it, or widen "
                              "the characterization's vg_table_n_v / vg_table_p_v")
        v_g = np.asarray(table.v_g_v)
        slope = np.abs(np.gradient(np.log(table.i_d_a), v_g))
        gate = table.gate_v(i)
        out[name] = (gate, np.interp(gate, v_g, slope))
    return out


def _check_copy_table(table: IdVgTable, name: str, k: int, gate_v: np.ndarray, i_a: np.ndarray) -> None:
    """ConfigError unless copy k's table covers the nominal gate biases and the target currents."""
    lo, hi = table.i_range_a
    if not (table.v_g_v[0] <= gate_v.min() and gate_v.max() <= table.v_g_v[-1] and lo <= i_a.min()
            and i_a.max() <= hi):
        raise ConfigError(f"copy {k} of the {name} does not reach the target currents inside its gate sweep "
                          f"(its table spans [{lo:.3g}, {hi:.3g}] A, V_G [{table.v_g_v[0]}, {table.v_g_v[-1]}] V): "
                          "narrow MismatchConfig.currents_a or widen the characterization's gate ranges")


def characterize_mismatch(cfg: MismatchConfig = MismatchConfig(), *, cache_dir=None,
                          progress: bool = True, executor=None, max_workers: int | None = None) -> MismatchResult:
    """Monte Carlo mismatch of the synapse and discharger current sources and of the neuron's
    switching point (see the module text for the method).

    Runs the nominal characterization of ``cfg.characterization`` (cached like any run), then
    3 + ceil(K / neurons_per_deck) mismatch decks in parallel (:func:`imcpnn.spice.run_many`).

    **Arguments:** ``cfg``: :class:`MismatchConfig`; ``cache_dir``: SPICE run cache (None: the
    default); ``progress``: show progress bars; ``executor``/``max_workers``: where the mismatch
    decks run (:func:`imcpnn.spice.run_many`: a local pool, or a ``distributed.Client``).

    **Returns:** a :class:`MismatchResult`.

    Raises:
        ConfigError: a target current lies outside the nominal or a copy's I_D(V_G) table, or a
            neuron copy does not switch inside V_switch +- ``vsw_margin_v``.
        SpiceError: from ngspice (see :func:`imcpnn.spice.run_many`).
    """
    ch = cfg.characterization
    summary, _, _ = characterize(ch, cache_dir=cache_dir, progress=progress)
    char = Characterization.from_dict(summary)
    nominal_gates = _nominal_gates(cfg, char)
    v_switch_nom = float(summary["v_switch"])
    v_range = (max(0.0, v_switch_nom - cfg.vsw_margin_v), min(ch.v0_v, v_switch_nom + cfg.vsw_margin_v))

    K = cfg.n_instances
    fets = {f.device: f for f in fet_sweeps(ch)}
    chunks = [range(a, min(a + cfg.neurons_per_deck, K)) for a in range(0, K, cfg.neurons_per_deck)]
    sims = [fet_sweep_sim(fets[dev], ch, n_instances=K, mismatch_seed=deck_seed(cfg.seed, n))
            for n, dev in enumerate(DEVICES.values())]
    sims += [switch_sweep_sim(ch, n_instances=len(c), v_range_v=v_range,
                              mismatch_seed=deck_seed(cfg.seed, len(DEVICES) + n)) for n, c in enumerate(chunks)]
    results = run_many(sims, cache_dir=cache_dir, progress=progress, desc=f"mismatch {ch.corner} seed {cfg.seed}",
                       executor=executor, max_workers=max_workers)

    i_target = np.asarray(cfg.currents_a)
    sigma_i, sigma_vg, lam = {}, {}, {}
    for res, (name, dev) in zip(results, DEVICES.items()):
        gate, _ = nominal_gates[name]
        i_at, shift, lam[dev] = np.empty((K, i_target.size)), np.empty((K, i_target.size)), np.empty(K)
        for k in range(K):
            rows, table, _ = fet_sweep_results(res, ch, fets[dev], current=f"i(va{k})")
            _check_copy_table(table, name, k, gate, i_target)
            lam[dev][k] = np.median([r["lambda_per_v"] for r in rows])
            i_at[k] = table.current_a(gate)
            shift[k] = table.gate_v(i_target) - gate
        sigma_i[name] = tuple(map(float, i_at.std(axis=0, ddof=1) / i_at.mean(axis=0)))
        sigma_vg[name] = tuple(map(float, shift.std(axis=0, ddof=1)))

    v_switch = []
    for res, c in zip(results[len(DEVICES):], chunks):
        sw = res.plot(0)
        v_m = np.asarray(sw[sw.names[0]])
        for j in range(len(c)):
            v = crossing(v_m, np.asarray(sw[f"v(out{j})"]), ch.vdd_v / 2)
            if not np.isfinite(v):
                raise ConfigError(f"neuron copy {c[j]} did not switch for a membrane in [{v_range[0]:.3f}, "
                                  f"{v_range[1]:.3f}] V (nominal V_switch {v_switch_nom:.3f} V +- vsw_margin_v="
                                  f"{cfg.vsw_margin_v} V): raise MismatchConfig.vsw_margin_v")
            v_switch.append(v)
    v_switch = np.asarray(v_switch)

    e = [model_constants(ch.v0_v, v_switch_nom, lam["n"][k], lam["p"][k], lam["dis"][k]) for k in range(K)]
    return MismatchResult(
        corner=ch.corner, temp_c=float(ch.temp_c), seed=cfg.seed, n_instances=K, currents_a=cfg.currents_a,
        sigma_i_rel=sigma_i, v_gate_v={d: tuple(map(float, nominal_gates[d][0])) for d in DEVICES},
        sigma_v_gate_v=sigma_vg, gm_over_i_per_v={d: tuple(map(float, nominal_gates[d][1])) for d in DEVICES},
        lambda_n=Spread.of(lam["n"]), lambda_p=Spread.of(lam["p"]), lambda_dis=Spread.of(lam["dis"]),
        e_plus=Spread.of([x["e_plus"] for x in e]), e_minus=Spread.of([x["e_minus"] for x in e]),
        e_dis=Spread.of([x["e_dis"] for x in e]),
        v_switch_v=Spread.of(v_switch), v_th_circ_v=Spread.of(ch.v0_v - v_switch),
        nominal={k: float(summary[k]) for k in ("lambda_n", "lambda_p", "lambda_dis", "v_switch", "v_th_circ",
                                                "e_plus", "e_minus", "e_dis")},
        models={"source": results[0].models.kind, "version": results[0].models.version,
                "path": str(results[0].models.lib_path)},
        ngspice_version=results[0].ngspice_version, settings=to_dict(cfg),
    )  # fmt: skip
