"""Device characterization on sky130 (method section 5): sweeps -> lambda, I_D(V_G) tables, V_switch.

Four small decks per corner, run in parallel by :func:`imcpnn.spice.run_many`, each loading only
the models it uses (a fraction of a second each):

- synapse NMOS (NM) and PMOS (PM) and the discharger NMOS: one nested DC sweep each, I_D vs drain
  (membrane) voltage at several gate biases, plus a fine gate sweep at V_D = V0 for the weight ->
  gate-bias table. A synapse current source is measured as it sits in the synapse, behind its
  spike switch (NS, PS) turned on: the switch's on-resistance degenerates the source, by a
  fraction that grows with the current (about 0.4 % at 100 nA for the NMOS, 1.1 % for the PMOS
  at the method's sizes), so a bare-device table would give large weights too much current
  (``CharacterizationConfig.in_situ = False`` sweeps the bare device, as the method does);
- the neuron cell itself with its firing phase enabled, membrane swept 0 -> V0: the output
  switches where the real sensing stage (LVT NMOS, HVT PMOS, bias PMOS) does.

The deck builders also take a copy count and a mismatch seed: :mod:`.mismatch` runs the same
sweeps on many Monte Carlo copies. The fitting is pure and lives in
:mod:`imcpnn.circuits.characterization.fit`. The lambda used for each
device is the **median** over its swept gate biases (each bias's value is kept in the table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imcpnn.circuits.netlist.cells import CELLS, Neuron, Synapse, cell_text
from imcpnn.circuits.netlist.operating_point import DESIGN_POINT, OperatingPoint
from imcpnn.circuits.characterization.fit import (
    CONTRACT_KEYS,
    IdVgTable,
    LambdaCurve,
    crossing,
    fit_lambda,
    model_constants,
)
from imcpnn.circuits.sky130 import fmt_um, model
from imcpnn.config import is_real, require, to_dict
from imcpnn.errors import ConfigError
from imcpnn.spice import Corner, Dc, Sim, device_uses, run_many

#: Leakage floor (A) below which an I_D(V_G) table is cut: under it the current is junction and
#: gmin leakage, not controlled by the gate, and no longer monotone.
I_FLOOR_A = 1e-12


@dataclass(frozen=True)
class CharacterizationConfig:
    """What to sweep. Sizes live in the cell dataclasses (m), voltages in V, temperature in deg C.

    ``vdd_v``, ``v0_v``, ``vb_sense_v``: the operating point the devices are measured at (see
    :class:`~imcpnn.circuits.netlist.operating_point.OperatingPoint`, also :attr:`operating_point`;
    saved in the characterization JSON's ``settings``, which the network run is checked against).
    ``vg_n_v``/``vg_p_v``/``vg_dis_v``: gate biases of the I_D-V_D families; ``window_v``: membrane
    window of the lambda fit; ``vg_table_n_v``/``vg_table_p_v``: gate ranges tabulated at
    V_D = V0 in steps of ``vg_table_step_v``. ``in_situ``: the synapse current sources are swept
    behind their spike switch, turned on, as they sit in the synapse (the current the membrane
    really gets); False sweeps the bare devices (the method's section 5). The discharger is swept
    bare either way: its one design current is placed by a SPICE run of the whole neuron.
    """

    synapse: Synapse = field(default_factory=Synapse)
    neuron: Neuron = field(default_factory=Neuron)
    vdd_v: float = DESIGN_POINT.vdd_v
    v0_v: float = DESIGN_POINT.v0_v
    vb_sense_v: float = DESIGN_POINT.vb_sense_v
    window_v: tuple[float, float] = (0.46, 1.36)
    vg_n_v: tuple[float, ...] = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65)
    vg_p_v: tuple[float, ...] = (1.05, 1.10, 1.15, 1.20, 1.25, 1.30)
    vg_dis_v: tuple[float, ...] = (0.45, 0.50, 0.55, 0.60, 0.65)
    vd_step_v: float = 0.01
    vg_table_n_v: tuple[float, float] = (0.0, 1.0)
    vg_table_p_v: tuple[float, float] = (0.8, 1.8)
    vg_table_step_v: float = 0.002
    vsw_step_v: float = 0.001
    corner: str = "tt"
    temp_c: float = 27.0
    in_situ: bool = True

    def __post_init__(self) -> None:
        Corner.parse(self.corner)  # unknown corner -> ConfigError listing the valid ones
        OperatingPoint.check(self)
        lo, hi = self.window_v
        require(self, "window_v", self.window_v, 0 <= lo < hi <= self.vdd_v,
                f"(lo, hi) with 0 <= lo < hi <= vdd_v={self.vdd_v} V")
        require(self, "v0_v", self.v0_v, lo <= self.v0_v <= hi, f"a voltage inside window_v={self.window_v} V")
        for name in ("vd_step_v", "vg_table_step_v", "vsw_step_v"):
            value = getattr(self, name)
            require(self, name, value, is_real(value) and 0 < value <= 0.1, "(0, 0.1] V")
        for name in ("vg_n_v", "vg_p_v", "vg_dis_v"):
            values = getattr(self, name)
            require(self, name, values, len(values) >= 1 and all(0 <= v <= self.vdd_v for v in values),
                    f">= 1 gate voltage in [0, vdd_v={self.vdd_v}] V")

    @property
    def operating_point(self) -> OperatingPoint:
        """Supply, reset voltage and sensing bias as one :class:`OperatingPoint`."""
        return OperatingPoint.of(self)


def _step(values: tuple[float, ...]) -> float:
    return float(np.diff(values).mean()) if len(values) > 1 else 1.0


@dataclass(frozen=True)
class FetSweep:
    """What is swept of one characterized FET: ``device`` ("n", "p", "dis": the suffix of its
    summary keys), its sky130 ``role`` (:data:`imcpnn.circuits.sky130.MODELS`), size ``w_m`` x
    ``l_m`` (m), the gate biases ``vg_family`` of its I_D-V_D family (V), the gate range
    ``vg_table`` (lo, hi) of its I_D(V_G) table at V_D = V0 (V), and ``switch``: whether its
    source sits behind a switch of the same model and size, turned on (the synapse's NS / PS)."""

    device: str
    role: str
    w_m: float
    l_m: float
    vg_family: tuple[float, ...]
    vg_table: tuple[float, float]
    switch: bool = False

    @property
    def pmos(self) -> bool:
        """True for a PMOS (fitted in V_SD = V_dd - V_D)."""
        return model(self.role).startswith("sky130_fd_pr__pfet")


def fet_sweeps(cfg: CharacterizationConfig) -> tuple[FetSweep, ...]:
    """The three characterized FETs: synapse NMOS ("n") and PMOS ("p") current sources at the
    synapse's size (behind their switch when ``cfg.in_situ``), and the neuron's discharger NMOS
    ("dis") at its own size."""
    syn, neu = cfg.synapse, cfg.neuron
    return (
        FetSweep("n", "syn_n", syn.w_m, syn.l_m, cfg.vg_n_v, cfg.vg_table_n_v, cfg.in_situ),
        FetSweep("p", "syn_p", syn.w_m, syn.l_m, cfg.vg_p_v, cfg.vg_table_p_v, cfg.in_situ),
        FetSweep("dis", "dis_n", neu.w_dis_m, neu.l_dis_m, cfg.vg_dis_v, cfg.vg_table_n_v),
    )


def fet_sweep_sim(sweep: FetSweep, cfg: CharacterizationConfig, *, n_instances: int | None = None,
                  mismatch_seed: int | None = None) -> Sim:
    """Nested I_D-V_D sweep (drain 0 -> V_dd over ``sweep.vg_family``) and I_D(V_G) table (gate over
    ``sweep.vg_table`` at V_D = V0) of one FET, drain on ``vd``, gate on ``vg``.

    ``n_instances`` None: one device (behind its switch when ``sweep.switch``) with its drain on
    the source ``vd`` (current ``i(vd)``), the nominal characterization's deck. An integer K: K
    copies sharing gate and drain source, copy k behind its own 0-V ammeter ``va<k>`` (current
    ``i(va<k>)``), so one deck measures K devices; with ``mismatch_seed`` each copy draws its own
    mismatch (see :class:`imcpnn.spice.Sim`).
    """
    fam = sweep.vg_family
    rail, on = ("vdd", "0") if sweep.pmos else ("0", "vdd")  # source rail; the switch's on-gate
    size = f"{model(sweep.role)} W={fmt_um(sweep.w_m)} L={fmt_um(sweep.l_m)} nf=1"

    def device(name: str, drain: str) -> str:
        # the source, and behind it the switch turned on (its bulk on the rail, as in the synapse)
        if not sweep.switch:
            return f"XM{name} {drain} g {rail} {rail} {size}"
        return f"XM{name} {drain} g s{name} {rail} {size}\nXS{name} s{name} {on} {rail} {rail} {size}"

    if n_instances is None:
        devices, save = [device("", "d")], ("i(vd)",)
    else:
        devices = [f"VA{k} d d{k} 0\n{device(str(k), f'd{k}')}" for k in range(n_instances)]
        save = tuple(f"i(va{k})" for k in range(n_instances))
    body = "\n".join([f"VDD vdd 0 {cfg.vdd_v}", f"VD d 0 {cfg.v0_v}", f"VG g 0 {fam[0]}", *devices])
    analyses = (
        Dc("vd", 0.0, cfg.vdd_v, cfg.vd_step_v, "vg", fam[0], fam[-1], _step(fam)),
        Dc("vg", sweep.vg_table[0], sweep.vg_table[1], cfg.vg_table_step_v),
    )
    return Sim(body, analyses, corner=Corner.parse(cfg.corner), temp_c=cfg.temp_c, devices=device_uses(body),
               save=save, mismatch_seed=mismatch_seed)  # fmt: skip


def switch_sweep_sim(cfg: CharacterizationConfig, *, n_instances: int | None = None,
                     v_range_v: tuple[float, float] | None = None, mismatch_seed: int | None = None) -> Sim:
    """The neuron cell in its firing phase (discharger off), membrane forced and swept 0 -> V0.

    ``n_instances`` None: one cell, output ``v(out)``, the nominal characterization's deck. An
    integer K: K cells on the one swept membrane source, cell k driving its own ``out<k>``
    (``v(out<k>)``), solved with KLU (a deck of many cells solves faster with it); with
    ``mismatch_seed`` each cell's devices draw their own mismatch. ``v_range_v`` (lo, hi) narrows
    the sweep (V); None sweeps 0 -> V0. The step is ``cfg.vsw_step_v`` either way.
    """
    lo, hi = (0.0, cfg.v0_v) if v_range_v is None else v_range_v
    nodes = ("mem", "0", "vbs", "v0", "0", "vdd", "vdd", "0")
    if n_instances is None:
        cells, save, options = [cfg.neuron.instance("N", (*nodes, "out", "outb", "vdd", "0"))], ("v(out)",), {}
    else:
        cells = [cfg.neuron.instance(f"N{k}", (*nodes, f"out{k}", f"outb{k}", "vdd", "0")) for k in range(n_instances)]
        save, options = tuple(f"v(out{k})" for k in range(n_instances)), {"klu": None}
    body = "\n".join(
        [cell_text(c).strip() for c in CELLS]
        + [f"VDD vdd 0 {cfg.vdd_v}", "VM mem 0 0", f"VBS vbs 0 {cfg.vb_sense_v}", f"VV0 v0 0 {cfg.v0_v}", *cells]
    )  # fmt: skip
    return Sim(body, (Dc("vm", lo, hi, cfg.vsw_step_v),), corner=Corner.parse(cfg.corner),
               temp_c=cfg.temp_c, devices=device_uses(body), save=save, options=options,
               mismatch_seed=mismatch_seed)  # fmt: skip


def monotone_table(v_g: np.ndarray, i_d: np.ndarray) -> IdVgTable:
    """Keep the part of I_D(V_G) above the leakage floor where it is strictly monotone."""
    keep = i_d > I_FLOOR_A
    v_g, i_d = v_g[keep], i_d[keep]
    increasing = i_d[-1] > i_d[0]
    d = np.diff(i_d) if increasing else -np.diff(i_d)
    bad = np.nonzero(d <= 0)[0]
    if increasing and bad.size:  # cut the low-current end up to the last non-monotone step
        v_g, i_d = v_g[bad[-1] + 1 :], i_d[bad[-1] + 1 :]
    elif bad.size:
        v_g, i_d = v_g[: bad[0] + 1], i_d[: bad[0] + 1]
    return IdVgTable(tuple(map(float, v_g)), tuple(map(float, i_d)))


def fet_sweep_results(res, cfg: CharacterizationConfig, sweep: FetSweep, current: str = "i(vd)"):
    """Lambda fits per bias (rows), the I_D(V_G) table and the I_D-V_D curves of one FET from the
    result of :func:`fet_sweep_sim`; ``current`` names the device's current trace (``i(va<k>)`` for
    copy k of a multi-copy deck)."""
    family = next(p for p in res.plots if len(p.shape) == 2)
    table = next(p for p in res.plots if len(p.shape) == 1)
    v_d = np.asarray(family[family.names[0]])[0]
    i_d = np.abs(np.asarray(family[current]))  # (n_bias, n_vd)
    # a PMOS is fitted in V_SD = V_dd - V_D, where its current grows like an NMOS's in V_DS
    to_ds = (lambda v: cfg.vdd_v - np.asarray(v)) if sweep.pmos else np.asarray
    window = tuple(sorted(to_ds(np.asarray(cfg.window_v))))
    rows = []
    for k, vg in enumerate(sweep.vg_family):
        fit = fit_lambda(to_ds(v_d), i_d[k], window, float(to_ds(cfg.v0_v)))
        rows.append({"device": sweep.device, "v_g_v": float(vg), "i_v0_a": fit.i_v0_a, "lambda_per_v": fit.lambda_per_v,
                     "rms_rel_residual": fit.rms_rel_residual})  # fmt: skip
    tab = monotone_table(np.asarray(table[table.names[0]]), np.abs(np.asarray(table[current])))
    curves = {"v_d_v": v_d, "i_d_a": i_d}
    return rows, tab, curves


def characterize(cfg: CharacterizationConfig = CharacterizationConfig(), *, cache_dir=None, progress: bool = True):
    """Run the four decks and return ``(summary dict, fits DataFrame, curves dict)``.

    The summary holds the contract keys (lambda_n, lambda_p, lambda_dis, v0, v_switch, v_th_circ,
    e_plus, e_minus, e_dis), the I_D(V_G) tables (id_vg_n, id_vg_p, id_vg_dis), models,
    ngspice_version and the settings.
    """
    import pandas as pd

    fets = fet_sweeps(cfg)
    sims = [*(fet_sweep_sim(f, cfg) for f in fets), switch_sweep_sim(cfg)]
    results = run_many(sims, cache_dir=cache_dir, progress=progress, desc=f"characterize {cfg.corner}")
    rows, tables, curves = [], {}, {}
    for res, fet in zip(results, fets):
        r, tables[fet.device], curves[fet.device] = fet_sweep_results(res, cfg, fet)
        rows += r
    fits = pd.DataFrame(rows)
    sw = results[3].plot(0)
    v_m, v_out = np.asarray(sw[sw.names[0]]), np.asarray(sw["v(out)"])
    curves["switch"] = {"v_mem_v": v_m, "v_out_v": v_out}
    v_switch = crossing(v_m, v_out, cfg.vdd_v / 2)
    if not np.isfinite(v_switch):
        raise ConfigError(
            f"the sensing stage never switched for a membrane in [0, {cfg.v0_v}] V; check vb_sense_v={cfg.vb_sense_v}"
        )
    lam = {d: float(fits.loc[fits.device == d, "lambda_per_v"].median()) for d in ("n", "p", "dis")}
    summary = {
        "lambda_n": lam["n"], "lambda_p": lam["p"], "lambda_dis": lam["dis"],
        "v0": cfg.v0_v, "v_switch": v_switch,
        **model_constants(cfg.v0_v, v_switch, lam["n"], lam["p"], lam["dis"]),
        "lambda_statistic": "median over the swept gate biases",
        "lambda_vs_current": {d: LambdaCurve.from_fits(fits.loc[fits.device == d, "i_v0_a"],
                                                       fits.loc[fits.device == d, "lambda_per_v"]).to_dict()
                              for d in ("n", "p", "dis")},
        "id_vg_n": tables["n"].to_dict(), "id_vg_p": tables["p"].to_dict(), "id_vg_dis": tables["dis"].to_dict(),
        "models": {"source": results[0].models.kind, "version": results[0].models.version,
                   "path": str(results[0].models.lib_path)},
        "ngspice_version": results[0].ngspice_version,
        "settings": to_dict(cfg),
    }  # fmt: skip
    assert all(k in summary for k in CONTRACT_KEYS)
    return summary, fits, curves


def write_outputs(out_dir: Path, summary: dict, fits, curves: dict, cfg: CharacterizationConfig,
                  json_path: Path | None = None) -> Path:
    """characterization.json (or ``json_path``), lambda_fits.csv, id_vg.csv and three PNG plots.

    The plots are bare Figures on Agg canvases: no pyplot, no ``matplotlib.use`` (the caller's
    backend and open figures stay untouched).
    """
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = Path(json_path) if json_path else out_dir / "characterization.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    fits.to_csv(out_dir / "lambda_fits.csv", index=False)
    pd.concat(
        [pd.DataFrame({"device": d, **summary[f"id_vg_{d}"]}) for d in ("n", "p", "dis")]
    ).to_csv(out_dir / "id_vg.csv", index=False)

    fig = agg_figure(figsize=(13, 4))
    axes = fig.subplots(1, 3)
    for ax, d, fam in zip(axes, ("n", "p", "dis"), (cfg.vg_n_v, cfg.vg_p_v, cfg.vg_dis_v)):
        for k, vg in enumerate(fam):
            ax.plot(curves[d]["v_d_v"], curves[d]["i_d_a"][k] * 1e9, label=f"V_G={vg:.2f} V")
        ax.axvspan(*cfg.window_v, color="0.9", label="fit window")
        ax.axvline(cfg.v0_v, color="k", lw=0.5)
        ax.set(title=f"{d}: |I_D| vs V_D ({cfg.corner}, {cfg.temp_c} C)", xlabel="V_D (V)", ylabel="|I_D| (nA)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "id_vd.png", dpi=120)

    fig = agg_figure(figsize=(5, 4))
    ax = fig.subplots()
    for d in ("n", "p", "dis"):
        sel = fits[fits.device == d]
        ax.semilogx(sel.i_v0_a, sel.lambda_per_v, "o-", label=f"{d} (median {summary['lambda_' + d]:.3f} 1/V)")
    ax.set(xlabel="I_D(V0) (A)", ylabel="lambda (1/V)", title="lambda vs current")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "lambda_vs_current.png", dpi=120)

    fig = agg_figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.plot(curves["switch"]["v_mem_v"], curves["switch"]["v_out_v"])
    ax.axvline(summary["v_switch"], color="r", ls="--", label=f"V_switch = {summary['v_switch']:.3f} V")
    ax.set(xlabel="membrane V (V)", ylabel="neuron output (V)", title="sensing stage transfer (firing phase)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "switch_transfer.png", dpi=120)
    return json_path


def agg_figure(**kwargs):
    """A matplotlib Figure on its own Agg canvas (no pyplot state, no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
