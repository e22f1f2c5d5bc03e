"""Process variation: corners and temperature, Monte Carlo mismatch in SPICE and in the model.

What a designer asks of a trained network is how it survives the silicon. :func:`run_variation`
answers for the validation's network (Iris 5-5-5 by default), bottom-up model, stage by stage in
``out_dir`` (each saved when it finishes, so a rerun resumes):

1. nominal   the validation's characterization, discharger design, bottom-up circuit terms
             (:func:`._pipeline.stage_dynamics`), the plainly trained bottom-up model and its
             current-scale search on held-out calibration samples (``plain/``);
2. mismatch  SPICE Monte Carlo of the synapse, discharger and sensing devices at the nominal
             point (:func:`imcpnn.circuits.characterization.characterize_mismatch`): sigma(I)/I
             against the current, the spread of lambda (hence E) and of V_switch;
3. variation_model  those spreads in model units (:class:`imcpnn.pnn.VariationModel`): the
             current spread against |w| through the bottom-up mapping's unit current, the
             threshold spread over V_th_circ, the ramp spread at the discharger's current;
             written as ``variation_model.json`` (``imcpnn train --variation`` reads it);
4. hwa       the same network trained hardware-aware (a fresh chip per mini-batch) and its own
             scale search on the nominal chip (``hwa/``);
5. mc_<net>_<seed>  SPICE of the test samples on Monte Carlo chip ``seed`` (the sky130 ``*_mm``
             models, ngspice's seed; one seed is one chip for both networks), for the plain and
             the hardware-aware network; the model's prediction is a distribution over
             ``model_chips`` chips drawn from the variation model (no SPICE chip is fitted);
6. corner_<corner>_<temp>  per corner and temperature: the plain network in SPICE with the
             nominal gate biases (a chip mapped at the nominal point, operated at this one), re-mapped
             with the devices re-characterized there, and re-mapped with everything the bottom-up
             pipeline measures (devices, discharger design, circuit terms) measured there; the
             bottom-up model against both re-mapped runs (:func:`stage_corner`).

``variation.json`` (contract keys :data:`VARIATION_KEYS`), figures and report.md/.html follow.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imcpnn.config import require, to_dict
from imcpnn.errors import ConfigError, NetlistError, ResultsError
from imcpnn.rundir import RunDirLock, write_json_atomic
from imcpnn.spice import Corner
from imcpnn.validation._config import ValidationConfig
from imcpnn.validation._document import Heading, Image, Paragraph, Table, to_html, to_markdown
from imcpnn.validation._fit import PhysicalParameters
from imcpnn.validation._metrics import (accuracy, compare_spike_tables, model_spike_table,
                                        output_rmse_ns, output_times)

#: Temperatures (deg C) the variation sweep accepts: the range the sky130 device models are used
#: over in practice (industrial junction range); outside it their temperature coefficients are
#: extrapolated and a result would mean little.
TEMP_RANGE_C = (-40.0, 125.0)

#: Keys of variation.json a checker reads.
VARIATION_KEYS = ("corners", "mismatch", "mc", "models")
CORNER_KEYS = ("corner", "temp_c", "e_plus", "e_minus", "accuracy_spice_nominal_mapping",
               "accuracy_spice_recharacterized", "rmse_bottom_up_ns")
#: Columns of the report's corner table: the contract's, and the devices-only re-mapping beside.
CORNER_COLUMNS = (*CORNER_KEYS[:5], "accuracy_spice_devices_only", "rmse_bottom_up_devices_only_ns",
                  *CORNER_KEYS[5:])
MC_KEYS = ("n", "accuracy_spice_plain", "accuracy_model_plain", "accuracy_spice_hwa", "accuracy_model_hwa")

#: The two networks of the Monte Carlo comparison.
NETWORKS = ("plain", "hwa")


@dataclass(frozen=True)
class HwaTraining:
    """The hardware-aware training recipe: a fresh chip from the variation model per mini-batch.

    Attributes:
        from_plain: fine-tune the plainly trained network (else start from a random
            initialisation with the plain network's seed).
        epochs, lr: Adam schedule of the hardware-aware run. lr 0.01 is the recipe that won back
            most in the model on the training samples (benchmarks/hwa_recipes.py, which scores
            recipes without SPICE and without test samples; the earlier default was 0.003).
        t_ref, gamma: the loss's temporal penalty gamma * sum_i (t_i - t_ref)^2. An earlier
            t_ref than the plain network's keeps the outputs mid-window, where a per-neuron
            error of the firing ramp (a gain on the crossing time) shifts them less; the plain
            network trained with this loss alone is reported too, so that the loss's share of
            the recovery is visible.
    """

    from_plain: bool = True
    epochs: int = 600
    lr: float = 0.01
    t_ref: float = 0.5
    gamma: float = 1.0

    def __post_init__(self):
        require(self, "epochs", self.epochs, isinstance(self.epochs, int) and self.epochs >= 1, "an integer >= 1")
        require(self, "lr", self.lr, isinstance(self.lr, (int, float)) and 0 < self.lr < 1, "a number in (0, 1)")
        require(self, "t_ref", self.t_ref, isinstance(self.t_ref, (int, float)) and 0 <= self.t_ref <= 1, "[0, 1]")
        require(self, "gamma", self.gamma, isinstance(self.gamma, (int, float)) and self.gamma >= 0, "a number >= 0")


@dataclass(frozen=True)
class VariationConfig:
    """What :func:`run_variation` sweeps (saved as config.json in the result folder).

    Attributes:
        validation: the experiment the network comes from (data, network, training, search,
            SPICE settings); its corner and temperature are the nominal point.
        corners, temps_c: the corner x temperature grid of the sweep.
        mc: Monte Carlo chips simulated in SPICE per network (>= 1).
        n_test: test samples simulated per chip and per corner point.
        seed: first Monte Carlo seed (chip k has seed ``seed + k``) and seed of the model's chips.
        mismatch_instances: device copies per Monte Carlo deck of the mismatch characterization.
        model_chips: chips drawn from the variation model for the predicted distribution.
        hwa: the hardware-aware training recipe.
    """

    validation: ValidationConfig = field(default_factory=ValidationConfig)
    corners: tuple[str, ...] = ("tt", "ss", "ff", "sf", "fs")
    temps_c: tuple[float, ...] = (27.0,)
    mc: int = 20
    n_test: int = 30
    seed: int = 1
    mismatch_instances: int = 100
    model_chips: int = 200
    hwa: HwaTraining = field(default_factory=HwaTraining)

    def __post_init__(self):
        for name in ("corners", "temps_c"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        valid = [c.value for c in Corner]
        require(self, "corners", self.corners, len(self.corners) >= 1 and all(c in valid for c in self.corners),
                "one or more of " + ", ".join(valid))
        lo, hi = TEMP_RANGE_C
        require(self, "temps_c", self.temps_c, len(self.temps_c) >= 1 and all(
            isinstance(t, (int, float)) and math.isfinite(t) and lo <= t <= hi for t in self.temps_c),
            f"one or more temperatures in [{lo:g}, {hi:g}] C (the models' range)")
        for name in ("mc", "n_test", "mismatch_instances", "model_chips"):
            value = getattr(self, name)
            require(self, name, value, isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    "an integer >= 1")
        require(self, "mismatch_instances", self.mismatch_instances, self.mismatch_instances >= 2,
                "an integer >= 2 (a spread needs two devices)")
        require(self, "seed", self.seed, isinstance(self.seed, int) and 1 <= self.seed < 2**31 - self.mc,
                f"an integer in [1, 2**31 - mc) (ngspice seeds are >= 1)")


def parse_list(text: str, kind, option: str) -> tuple:
    """``"tt,ss"`` -> ("tt", "ss"); ``kind`` converts each item; ConfigError naming ``option``."""
    items = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = tuple(kind(p) for p in items)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give a comma-separated list, e.g. "
                          f"{'tt,ss,ff' if kind is str else '-40,27,85'}") from None
    if not values:
        raise ConfigError(f"{option} is empty: give at least one value")
    return values


# ------------------------------------------------------------------------------ nominal network
@dataclass(frozen=True)
class Nominal:
    """The nominal point's context, bottom-up parameters and the two trained networks."""

    ctx: object
    params: PhysicalParameters
    models: dict
    """network name (plain, hwa) -> trained PNN."""
    searches: dict
    """network name -> its scale-search stage result."""


def _contexts(ctx, out_dir: Path) -> dict:
    """One Context per network: the same one, writing its stages into ``out_dir/<network>``."""
    return {net: dataclasses.replace(ctx, out_dir=out_dir / net) for net in NETWORKS}


def nominal_context(config: VariationConfig, out_dir: Path, cache_dir, progress: bool, **runner):
    """The validation Context of the nominal point (characterization, discharger design) with the
    test samples cut to ``config.n_test``; ``runner``: ``executor``/``max_workers``
    (:attr:`imcpnn.validation._pipeline.Context.executor`)."""
    from imcpnn.validation._pipeline import prepare_context, load_data, stage_discharger

    vcfg = dataclasses.replace(config.validation, n_test=config.n_test)
    ctx = prepare_context(vcfg, out_dir, None, cache_dir, progress, load_data(vcfg), **runner)[0]
    discharger = stage_discharger(ctx)
    return dataclasses.replace(ctx, discharger_design=discharger["factor"])


def bottom_up_parameters(ctx) -> PhysicalParameters:
    from imcpnn.validation._pipeline import stage_dynamics

    return PhysicalParameters(**stage_dynamics(ctx)["parameters"])


def train_and_search(ctx, params: PhysicalParameters, variation=None, hwa: HwaTraining | None = None,
                     plain=None):
    """(model, search stage) of the bottom-up network in ``ctx.out_dir``: trained plainly, or
    with the recipe ``hwa`` (hardware-aware when ``variation`` is given; from the weights of
    ``plain`` with ``hwa.from_plain``); its scale searched on the nominal chip."""
    from imcpnn.validation._pipeline import SEARCH_STARTS, stage_search, train_pipeline_model

    model = train_pipeline_model(ctx, "bottom_up", params, **_recipe(variation, hwa, plain))
    weights = [w.double().numpy() for w in model.dense_weights()]
    search = stage_search(ctx, "bottom_up", weights, params, model, SEARCH_STARTS["bottom_up"])
    return model, search


def _recipe(variation, hwa: HwaTraining | None, plain) -> dict:
    """Keyword arguments of :func:`._pipeline.train_pipeline_model` for the recipe ``hwa``."""
    if hwa is None:
        return {"variation": variation}
    return {"variation": variation, "epochs": hwa.epochs, "lr": hwa.lr,
            "loss": {"t_ref": hwa.t_ref, "gamma": hwa.gamma},
            "init_weights": plain.dense_weights() if hwa.from_plain and plain is not None else None}


# ------------------------------------------------------------------------ mismatch -> model units
def stage_mismatch(ctx, config: VariationConfig) -> dict:
    """SPICE Monte Carlo of the devices at the nominal point (stage ``mismatch``)."""
    from imcpnn.circuits.characterization import CharacterizationConfig, MismatchConfig, characterize_mismatch
    from imcpnn.validation._pipeline import cached_stage

    def compute():
        char_cfg = CharacterizationConfig(corner=ctx.config.corner, temp_c=ctx.config.temp_c)
        cfg = MismatchConfig(characterization=char_cfg, n_instances=config.mismatch_instances,
                             seed=config.seed)
        return characterize_mismatch(cfg, progress=ctx.progress, **ctx.runner()).to_dict()

    return cached_stage(ctx.out_dir, "mismatch", compute, ctx.progress)


def _sigma_at(rows: list[dict], device: str, i_a: np.ndarray) -> np.ndarray:
    """sigma(I)/I of ``device`` at the currents ``i_a``: linear in log I between the measured
    currents of ``rows`` (the mismatch stage's ``sigma_i_rel``), constant beyond them."""
    i = np.array([r["i_a"] for r in rows], float)
    s = np.array([r[device] for r in rows], float)
    order = np.argsort(i)
    return np.interp(np.log(np.asarray(i_a, float)), np.log(i[order]), s[order])


def unit_current_a(ctx, params: PhysicalParameters, search: dict, layer: int = 0) -> float:
    """Current (A) of |w| = 1 in the bottom-up mapping at the searched scale k: the unit
    C_m V_th_circ / T times k / s (C_eff = C_m / s)."""
    from imcpnn.circuits.simulate.weights import unit_current_a as design_unit
    from imcpnn.validation._pipeline import mapping_scales

    scales = mapping_scales("bottom_up", params, tuple(search["best"]))
    unit = design_unit(ctx.network.membrane_f(layer), ctx.char["v_th_circ"], ctx.schedule.t_phase_s)
    return unit * scales.scale * scales.scale_plus


def variation_model(mismatch: dict, unit_a: float, i_dis_a: float, v_th_circ_v: float):
    """The mismatch stage's spreads in the model's units (:class:`imcpnn.pnn.VariationModel`).

    Weights: |w| = I / ``unit_a`` (the current of |w| = 1, :func:`unit_current_a`), so sigma(I)/I
    at each measured current becomes sigma at that |w|. E: the relative spread of the Monte Carlo
    E values. Threshold: sigma(V_switch) / V_th_circ (the membrane is normalized to V_th_circ).
    Ramp: sigma(I)/I of the discharger at its design current ``i_dis_a``.
    """
    from imcpnn.pnn import VariationModel

    rows = sorted(mismatch["sigma_i_rel"], key=lambda r: r["i_a"])
    return VariationModel(
        w_abs=tuple(r["i_a"] / unit_a for r in rows),
        sigma_rel_plus=tuple(float(r["nfet"]) for r in rows),
        sigma_rel_minus=tuple(float(r["pfet"]) for r in rows),
        sigma_e_plus_rel=float(mismatch["e_plus"]["sigma_rel"]),
        sigma_e_minus_rel=float(mismatch["e_minus"]["sigma_rel"]),
        sigma_threshold=float(mismatch["v_switch_v"]["std"]) / v_th_circ_v,
        sigma_ramp_rel=float(_sigma_at(rows, "discharger", np.array([i_dis_a]))[0]),
        source=(f"SPICE Monte Carlo ({mismatch['corner']}_mm, {mismatch['temp_c']:g} C, "
                f"{mismatch['n_instances']} devices, seed {mismatch['seed']}); |w| = 1 is {unit_a:.4g} A"),
    )


def network_variation_model(mismatch: dict, ctx, params: PhysicalParameters, search: dict):
    """:func:`variation_model` of the validated network: its unit current at the searched scale
    (the first layer's membrane; the layers of the validated network share its size) and its
    discharger's design current."""
    from imcpnn.circuits.simulate.weights import discharger_current_a

    i_dis = discharger_current_a(_char(ctx.char), ctx.network.membrane_f(0), ctx.schedule.t_phase_s,
                                 ctx.discharger_design)
    return variation_model(mismatch, unit_current_a(ctx, params, search), i_dis, ctx.char["v_th_circ"])


def _char(char: dict):
    from imcpnn.circuits.characterization.fit import Characterization

    return Characterization.from_dict(char)


# ---------------------------------------------------------------------------- Monte Carlo
def model_chip_times(model, x: np.ndarray, physics, reversal, variation, n_chips: int,
                     seed: int) -> np.ndarray:
    """Output spike times (n_chips, n_samples, n_out) of the bottom-up model on ``n_chips`` chips
    drawn from ``variation`` (chip k from a generator seeded with seed * 1_000_003 + k: chip k is
    the same whatever ``n_chips``); exact solver, no spike-time noise, float64."""
    from imcpnn.pnn import chip_spike_times, draw_chip
    from imcpnn.validation._pipeline import layer_reversal

    weights = [w.detach().double() for w in model.dense_weights()]
    out = []
    with torch.no_grad():
        for k in range(n_chips):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
            draws = draw_chip(variation, weights, gen)
            t = torch.as_tensor(x, dtype=torch.float64)
            for layer, (w, draw) in enumerate(zip(weights, draws)):
                p = physics.for_layer(layer)
                e_plus, e_minus = layer_reversal(p, reversal, layer)
                t = chip_spike_times(t, w, e_plus, e_minus, draw, method="exact", e_dis=p.e_dis,
                                     dis_rate=p.dis_rate, t_delay=p.t_delay, q_plus=p.q_plus, q_minus=p.q_minus)
            out.append(t.numpy())
    return np.stack(out)


def stage_mc_chip(ctx, net: str, model, params: PhysicalParameters, search: dict, seed: int) -> dict:
    """SPICE of the test samples on Monte Carlo chip ``seed``: output times, accuracy and the
    RMSE against the nominal bottom-up model (stage ``mc_<net>_<seed>`` in the nominal folder)."""
    from imcpnn.validation._pipeline import (cached_stage, simulate_candidates, layer_physics, mapping_scales,
                                             model_layer_times, synapse_reversals)

    def compute():
        weights = [w.double().numpy() for w in model.dense_weights()]
        scales = mapping_scales("bottom_up", params, tuple(search["best"]))
        run = simulate_candidates(ctx, weights, ctx.x_test, [scales], ctx.progress, mismatch_seed=seed)[0]
        reversal = synapse_reversals(ctx, "bottom_up", params, weights)
        nominal = model_spike_table(model_layer_times(model, ctx.x_test, layer_physics("bottom_up", params),
                                                      reversal))
        cmp = compare_spike_tables(nominal, run.spikes, ctx.schedule.t_phase_s)
        t_spice = output_times(cmp, "spice")
        return {"seed": seed, "network": net, "t_out_spice": t_spice.tolist(),
                "accuracy_spice": accuracy(t_spice, ctx.y_test, ctx.n_classes),
                "rmse_vs_nominal_model_ns": output_rmse_ns(cmp)}

    return cached_stage(ctx.out_dir, f"mc_{net}_{seed}", compute, ctx.progress)


#: The variation model's terms, each alone, for the model-only mismatch budget.
VARIATION_TERMS = {
    "synapse currents": ("sigma_rel_plus", "sigma_rel_minus"),
    "synapse E (lambda)": ("sigma_e_plus_rel", "sigma_e_minus_rel"),
    "neuron threshold (V_switch)": ("sigma_threshold",),
    "firing ramp (discharger current)": ("sigma_ramp_rel",),
}


def single_term(variation, fields: tuple[str, ...]):
    """``variation`` with every spread but ``fields`` set to zero."""
    zero = {"sigma_rel_plus": tuple(0.0 for _ in variation.sigma_rel_plus),
            "sigma_rel_minus": tuple(0.0 for _ in variation.sigma_rel_minus),
            "sigma_e_plus_rel": 0.0, "sigma_e_minus_rel": 0.0, "sigma_threshold": 0.0, "sigma_ramp_rel": 0.0}
    return dataclasses.replace(variation, **{k: v for k, v in zero.items() if k not in fields})


def mc_comparison(ctx, config: VariationConfig, nominal: Nominal, variation) -> tuple[dict, dict]:
    """(mc section of variation.json, per-network arrays for the figures)."""
    from imcpnn.validation._pipeline import layer_physics, model_layer_times, synapse_reversals

    section, arrays = {"n": config.mc, "seeds": [config.seed + k for k in range(config.mc)],
                       "model_chips": config.model_chips}, {}
    for net in NETWORKS:
        model, search = nominal.models[net], nominal.searches[net]
        chips = [stage_mc_chip(nominal.ctx, net, model, nominal.params, search, config.seed + k)
                 for k in range(config.mc)]
        t_spice = np.array([c["t_out_spice"] for c in chips], float)  # (mc, n, n_out)
        weights = [w.double().numpy() for w in model.dense_weights()]
        physics = layer_physics("bottom_up", nominal.params)
        reversal = synapse_reversals(ctx, "bottom_up", nominal.params, weights)
        t_model = model_chip_times(model, ctx.x_test, physics, reversal, variation, config.model_chips,
                                   config.seed)
        t_nominal = model_layer_times(model, ctx.x_test, physics, reversal)[-1]
        acc_model = [accuracy(t, ctx.y_test, ctx.n_classes) for t in t_model]
        acc_spice = [c["accuracy_spice"] for c in chips]
        T_ns = ctx.schedule.t_phase_s * 1e9
        section |= {
            f"accuracy_spice_{net}": acc_spice, f"accuracy_model_{net}": acc_model,
            f"accuracy_nominal_model_{net}": accuracy(t_nominal, ctx.y_test, ctx.n_classes),
            f"mean_accuracy_spice_{net}": float(np.mean(acc_spice)),
            f"mean_accuracy_model_{net}": float(np.mean(acc_model)),
            f"std_accuracy_spice_{net}": float(np.std(acc_spice, ddof=1)) if len(acc_spice) > 1 else 0.0,
            f"std_accuracy_model_{net}": float(np.std(acc_model, ddof=1)),
            # chip-to-chip spread of each output spike time, averaged over samples and neurons
            f"spike_time_spread_spice_{net}_ns": float(np.mean(np.std(t_spice, axis=0, ddof=1)) * T_ns)
            if len(chips) > 1 else 0.0,
            f"spike_time_spread_model_{net}_ns": float(np.mean(np.std(t_model, axis=0, ddof=1)) * T_ns),
            f"rmse_spice_chips_vs_nominal_model_{net}_ns": [c["rmse_vs_nominal_model_ns"] for c in chips],
        }
        arrays[net] = {"err_spice_ns": ((t_spice - t_nominal) * T_ns).ravel(),
                       "err_model_ns": ((t_model - t_nominal) * T_ns).ravel()}
    for net in NETWORKS:
        section[f"accuracy_gap_{net}"] = section[f"mean_accuracy_model_{net}"] - section[f"mean_accuracy_spice_{net}"]
    # model only: which device costs the plain network its accuracy (each term alone)
    model, weights = nominal.models["plain"], [w.double().numpy() for w in nominal.models["plain"].dense_weights()]
    physics = layer_physics("bottom_up", nominal.params)
    reversal = synapse_reversals(ctx, "bottom_up", nominal.params, weights)
    section["term_budget_plain"] = [
        {"term": term, "mean_accuracy_model": float(np.mean([
            accuracy(t, ctx.y_test, ctx.n_classes) for t in model_chip_times(
                model, ctx.x_test, physics, reversal, single_term(variation, fields), config.model_chips,
                config.seed)]))}
        for term, fields in VARIATION_TERMS.items()]
    ablation = nominal.models.get("loss_only")
    if ablation is not None:  # model only: the hardware-aware recipe's loss without the chips
        weights = [w.double().numpy() for w in ablation.dense_weights()]
        physics = layer_physics("bottom_up", nominal.params)
        reversal = synapse_reversals(ctx, "bottom_up", nominal.params, weights)
        t_model = model_chip_times(ablation, ctx.x_test, physics, reversal, variation, config.model_chips,
                                   config.seed)
        acc = [accuracy(t, ctx.y_test, ctx.n_classes) for t in t_model]
        section["accuracy_model_loss_only"] = acc
        section["mean_accuracy_model_loss_only"] = float(np.mean(acc))
        section["accuracy_nominal_model_loss_only"] = accuracy(
            model_layer_times(ablation, ctx.x_test, physics, reversal)[-1], ctx.y_test, ctx.n_classes)
    return section, arrays


# --------------------------------------------------------------------------------- corners
#: Keys of a corner row for the bottom-up model against each re-mapped run: (model accuracy,
#: output spike-time RMSE in ns).
MODEL_KEYS = {"recharacterized": ("accuracy_model_recharacterized", "rmse_bottom_up_ns"),
              "devices_only": ("accuracy_model_devices_only", "rmse_bottom_up_devices_only_ns")}


def stage_corner(ctx, nominal: Nominal, corner: str, temp_c: float) -> dict:
    """One corner x temperature point (stage ``corner_<corner>_<temp>``): the plain network in
    SPICE three ways, and the bottom-up model against the re-mapped runs.

    - nominal mapping: the gate biases, current scale and discharger bias of the nominal point (a
      chip mapped there, operated here);
    - devices only: re-mapped with the devices re-characterized here (DC sweeps: E, V_switch, the
      I_D(V_G) tables), the circuit terms (C_eff, discharger design factor, delay, kick) and the
      scale of the nominal point; the model with this point's E values and threshold;
    - re-characterized: everything the bottom-up pipeline measures, measured here (the devices,
      then the discharger's design factor and the circuit terms on the testbench, in
      ``corner_<corner>_<temp>/stages``); mapped with this C_eff and discharger bias and the
      nominal global factor k (no network sample is simulated to calibrate anything here). This
      is the contract's ``accuracy_spice_recharacterized`` and ``rmse_bottom_up_ns``.
    """
    from imcpnn.circuits.characterization import CharacterizationConfig, characterize
    from imcpnn.validation._pipeline import (cached_stage, layer_physics, mapping_scales,
                                             model_layer_times, stage_discharger, stage_dynamics,
                                             synapse_reversals)

    name = f"corner_{corner}_{temp_c:g}C"

    def compute():
        summary = characterize(CharacterizationConfig(corner=corner, temp_c=temp_c), cache_dir=ctx.cache_dir,
                               progress=ctx.progress)[0]
        model, search = nominal.models["plain"], nominal.searches["plain"]
        weights = [w.double().numpy() for w in model.dense_weights()]
        k = tuple(search["best"])
        T = ctx.schedule.t_phase_s
        row = {"corner": corner, "temp_c": float(temp_c), "e_plus": summary["e_plus"],
               "e_minus": summary["e_minus"], "e_dis": summary["e_dis"], "v_switch": summary["v_switch"],
               "lambda_n": summary["lambda_n"], "lambda_p": summary["lambda_p"], "notes": []}
        device_params = dataclasses.replace(nominal.params, e_plus=summary["e_plus"], e_minus=summary["e_minus"],
                                            e_dis=summary["e_dis"], v_th_circ_v=summary["v_th_circ"])
        here = dataclasses.replace(ctx, char=summary, out_dir=ctx.out_dir / name,
                                   config=dataclasses.replace(ctx.config, corner=corner, temp_c=temp_c))
        measured = None
        try:
            here = dataclasses.replace(here, discharger_design=stage_discharger(here)["factor"])
            dynamics = stage_dynamics(here)
            measured = PhysicalParameters(**dynamics["parameters"])
            row.update(discharger_design=here.discharger_design, c_eff_f=dynamics["c_eff_f"],
                       t_delay=measured.t_delay, q_plus=measured.q_plus, q_minus=measured.q_minus)
        except (NetlistError, ConfigError) as err:
            row["notes"].append(f"circuit terms not measurable here ({str(err)[:200]})")
        variants = {  # kind: (characterization, parameters of the mapping and the model, discharger)
            "nominal_mapping": (ctx.char, nominal.params, ctx.discharger_design, ctx),
            "devices_only": (summary, device_params, ctx.discharger_design, here),
            "recharacterized": (summary, measured, here.discharger_design, here),
        }
        for kind, (char, params, k_dis, point_ctx) in variants.items():
            if params is None:
                row[f"accuracy_spice_{kind}"] = None
                continue
            try:
                run = _corner_run(ctx, weights, char, mapping_scales("bottom_up", params, k), k_dis,
                                  corner, temp_c, mapping_point=kind == "nominal_mapping")
            except (NetlistError, ConfigError) as err:
                row["notes"].append(f"{kind}: not mappable ({str(err)[:200]})")
                row[f"accuracy_spice_{kind}"] = None
                continue
            reversal = synapse_reversals(point_ctx, "bottom_up", params, weights)
            t_pred = model_layer_times(model, ctx.x_test, layer_physics("bottom_up", params), reversal)
            cmp = compare_spike_tables(model_spike_table(t_pred), run.spikes, T)
            row[f"accuracy_spice_{kind}"] = accuracy(output_times(cmp, "spice"), ctx.y_test, ctx.n_classes)
            if kind in MODEL_KEYS:
                accuracy_key, rmse_key = MODEL_KEYS[kind]
                row[accuracy_key] = accuracy(t_pred[-1], ctx.y_test, ctx.n_classes)
                row[rmse_key] = output_rmse_ns(cmp)
        for accuracy_key, rmse_key in MODEL_KEYS.values():
            row.setdefault(accuracy_key, None)
            row.setdefault(rmse_key, None)
        return row

    return cached_stage(ctx.out_dir, name, compute, ctx.progress)


def _corner_run(ctx, weights, char: dict, scales, k_dis: float, corner: str, temp_c: float, mapping_point: bool):
    """The plain network's SPICE run on the test samples at a corner point, mapped with ``char``
    (``mapping_point``: its gate biases are those of the nominal point, operated at this one)."""
    from imcpnn.circuits.simulate.run import simulate_scales

    return simulate_scales(weights, ctx.x_test, char, [scales], network=ctx.network, schedule=ctx.schedule,
                           corner=corner, temp_c=temp_c, batch_size=ctx.config.spice_batch,
                           discharger_scales=[k_dis], **ctx.runner(), progress=ctx.progress,
                           save_membranes=False, mapping_point=mapping_point)[0]


# ------------------------------------------------------------------ hardware-aware recipes
def score_hwa_recipes(run_dir: str | Path, recipes: dict, work_dir: str | Path, *, n_chips: int = 200,
                      seed: int = 7, cache_dir=None, progress: bool = False) -> list[dict]:
    """The model's verdict on hardware-aware recipes, on a finished ``imcpnn variation`` folder.

    Each recipe (name -> :class:`HwaTraining`) fine-tunes (or trains) the folder's network with
    its variation model into ``work_dir/<name>``; every network, the plain one first, is scored
    on the **training** samples of the run's data split: the model's mean accuracy over
    ``n_chips`` chips drawn from the variation model (chip seeds from ``seed``, other than the
    report's) and its nominal accuracy. Nothing here simulates SPICE or reads a test sample, so
    a recipe chosen by this score is not chosen on what the variation report measures. Each
    recipe's training resumes from its folder; ``progress`` prints a line per recipe and the
    training's own progress.
    **Returns:** rows {"recipe", HwaTraining's fields, "mean_accuracy_model_train",
    "accuracy_nominal_model_train", "train_s"} (the plain network's with recipe "plain").
    """
    from imcpnn.config import load_json
    from imcpnn.pnn import VariationModel
    from imcpnn.validation._pipeline import (layer_physics, load_data, model_layer_times, synapse_reversals,
                                             train_pipeline_model)

    run_dir, work_dir = Path(run_dir), Path(work_dir)
    for name in (CONFIG_FILE, "variation_model.json"):
        if not (run_dir / name).is_file():
            raise ConfigError(f"{run_dir} holds no {name}: give the folder of a finished `imcpnn variation` run")
    config = load_json(VariationConfig, run_dir / CONFIG_FILE)
    ctx = nominal_context(config, run_dir, cache_dir, progress)
    params = bottom_up_parameters(ctx)
    plain = train_pipeline_model(dataclasses.replace(ctx, out_dir=run_dir / "plain"), "bottom_up", params)
    variation = VariationModel.load(run_dir / "variation_model.json")
    _, splits = load_data(ctx.config)
    x = splits.x_train.double().numpy().reshape(len(splits.x_train), -1)
    y = splits.y_train.numpy()
    physics = layer_physics("bottom_up", params)

    def scores(model) -> dict:
        weights = [w.double().numpy() for w in model.dense_weights()]
        reversal = synapse_reversals(ctx, "bottom_up", params, weights)
        chips = model_chip_times(model, x, physics, reversal, variation, n_chips, seed)
        return {"mean_accuracy_model_train": float(np.mean([accuracy(t, y, ctx.n_classes) for t in chips])),
                "accuracy_nominal_model_train": accuracy(model_layer_times(model, x, physics, reversal)[-1], y,
                                                         ctx.n_classes)}

    rows = [{"recipe": "plain", **scores(plain), "train_s": None}]
    for k, (name, hwa) in enumerate(recipes.items(), 1):
        if progress:
            print(f"[imcpnn] recipe {k}/{len(recipes)}: {name} ...", flush=True)
        start = time.perf_counter()
        model = train_pipeline_model(dataclasses.replace(ctx, out_dir=work_dir / name), "bottom_up", params,
                                     **_recipe(variation, hwa, plain))
        rows.append({"recipe": name, **to_dict(hwa), **scores(model), "train_s": time.perf_counter() - start})
    return rows


# --------------------------------------------------------------------------------- the run
#: The run's VariationConfig in its folder.
CONFIG_FILE = "config.json"


def _check_folder_config(path: Path, config: dict) -> None:
    """ConfigError when ``path`` holds another config than ``config`` (a rerun must resume the
    same experiment), naming the first differing field and the fix."""
    import json

    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return  # a damaged config of an interrupted first write: rewritten
    if old != json.loads(json.dumps(config)):
        diff = next((k for k in sorted(set(old) | set(config)) if old.get(k) != config.get(k)), "?")
        raise ConfigError(f"{path.parent} holds a variation run with another config ({diff}: "
                          f"{old.get(diff)!r} there, {config.get(diff)!r} now): give another --out, or "
                          "the same options to resume it")


def run_variation(config: VariationConfig, out_dir: str | Path, *, cache_dir=None, progress: bool = True,
                  command: str = "imcpnn variation", executor=None, max_workers: int | None = None) -> dict:
    """Run (or resume) every stage, write variation.json, the figures and the report; returns
    variation.json's content. A folder holding another config is refused (ConfigError).
    ``executor``: where the SPICE batches run (None: a local pool of ``max_workers`` processes,
    or a ``distributed.Client``; the per-corner device characterizations always run here)."""
    from imcpnn.validation._pipeline import train_pipeline_model

    start = time.perf_counter()
    out_dir = Path(out_dir)
    with RunDirLock(out_dir, command):
        _check_folder_config(out_dir / CONFIG_FILE, to_dict(config))
        write_json_atomic(out_dir / CONFIG_FILE, to_dict(config))
        ctx = nominal_context(config, out_dir, cache_dir, progress, executor=executor, max_workers=max_workers)
        params = bottom_up_parameters(ctx)
        contexts = _contexts(ctx, out_dir)
        plain = train_and_search(contexts["plain"], params)
        mismatch = stage_mismatch(ctx, config)
        variation = network_variation_model(mismatch, ctx, params, plain[1])
        write_json_atomic(out_dir / "variation_model.json", variation.to_dict())
        hwa = train_and_search(contexts["hwa"], params, variation=variation, hwa=config.hwa, plain=plain[0])
        loss_only = train_pipeline_model(dataclasses.replace(ctx, out_dir=out_dir / "loss_only"), "bottom_up",
                                         params, **_recipe(None, config.hwa, plain[0]))
        nominal = Nominal(ctx=ctx, params=params,
                          models={"plain": plain[0], "hwa": hwa[0], "loss_only": loss_only},
                          searches={"plain": plain[1], "hwa": hwa[1]})
        mc, arrays = mc_comparison(ctx, config, nominal, variation)
        corners = [stage_corner(ctx, nominal, c, t) for c in config.corners for t in config.temps_c]
        result = {
            "corners": corners,
            "mismatch": mismatch,
            "variation_model": variation.to_dict(),
            "mc": mc,
            "models": mismatch.get("models"),
            "ngspice_version": mismatch.get("ngspice_version"),
            "nominal": {"corner": ctx.config.corner, "temp_c": ctx.config.temp_c,
                        "scale_plain": plain[1]["best"], "scale_hwa": hwa[1]["best"],
                        "n_test": len(ctx.x_test)},
            "config": to_dict(config),
            "elapsed_s": time.perf_counter() - start,
        }
        check_variation(result, str(out_dir / "variation.json"))
        write_json_atomic(out_dir / "variation.json", result)
        render_variation_report(out_dir, result, arrays)
        return result


def check_variation(result: dict, source: str) -> None:
    """ResultsError naming the first contract key missing from ``result``."""
    missing = [k for k in VARIATION_KEYS if k not in result]
    missing += [f"corners[].{k}" for row in result.get("corners", []) for k in CORNER_KEYS if k not in row]
    missing += [f"mc.{k}" for k in MC_KEYS if k not in result.get("mc", {})]
    if "sigma_i_rel" not in result.get("mismatch", {}):
        missing.append("mismatch.sigma_i_rel")
    if missing:
        raise ResultsError(f"{source} lacks {', '.join(sorted(set(missing)))}")


# --------------------------------------------------------------------------------- report
def _figure(path: Path, draw, size=(6.0, 3.2)) -> str:
    """Draw on a bare Agg Figure (no pyplot state) and save to ``path``; returns the path
    relative to the report folder."""
    from imcpnn.circuits.characterization import agg_figure

    fig = agg_figure(figsize=size)
    draw(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return f"figures/{path.name}"


def _mismatch_figure(path: Path, mismatch: dict) -> str:
    """The mismatch characterization's own figure (sigma(I)/I with its Pelgrom estimate)."""
    from imcpnn.circuits.characterization import MismatchResult, mismatch_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    mismatch_figure(MismatchResult.from_dict(mismatch)).savefig(path, dpi=110, bbox_inches="tight")
    return f"figures/{path.name}"


def _draw_accuracy(mc: dict):
    def draw(fig):
        axes = fig.subplots(1, 2, sharey=True)
        for ax, net in zip(axes, NETWORKS):
            bins = np.linspace(0, 1, 31)
            ax.hist(mc[f"accuracy_model_{net}"], bins=bins, density=True, alpha=0.5, label="model")
            ax.hist(mc[f"accuracy_spice_{net}"], bins=bins, density=True, alpha=0.5, label="SPICE MC")
            ax.set(title={"plain": "plain training", "hwa": "hardware-aware"}[net], xlabel="test accuracy")
        axes[0].set_ylabel("density over chips")
        axes[0].legend(fontsize=8)
    return draw


def _draw_errors(arrays: dict):
    def draw(fig):
        axes = fig.subplots(1, 2, sharey=True)
        for ax, net in zip(axes, NETWORKS):
            ax.hist(arrays[net]["err_model_ns"], bins=40, density=True, alpha=0.5, label="model chips")
            ax.hist(arrays[net]["err_spice_ns"], bins=40, density=True, alpha=0.5, label="SPICE MC")
            ax.set(title={"plain": "plain training", "hwa": "hardware-aware"}[net],
                   xlabel="t(chip) - t(nominal model) (ns)")
        axes[0].legend(fontsize=8)
    return draw


def render_variation_report(out_dir: Path, result: dict, arrays: dict) -> Path:
    """report.md and report.html of a variation run (figures under ``out_dir/figures``)."""
    figs = out_dir / "figures"
    mc = result["mc"]
    corners = pd.DataFrame([{k: r.get(k) for k in CORNER_COLUMNS} for r in result["corners"]])
    summary = pd.DataFrame([{
        "network": net,
        "nominal model accuracy": mc[f"accuracy_nominal_model_{net}"],
        "SPICE MC mean": mc[f"mean_accuracy_spice_{net}"], "SPICE MC std": mc[f"std_accuracy_spice_{net}"],
        "model mean": mc[f"mean_accuracy_model_{net}"], "model std": mc[f"std_accuracy_model_{net}"],
        "spike-time spread SPICE (ns)": mc[f"spike_time_spread_spice_{net}_ns"],
        "spike-time spread model (ns)": mc[f"spike_time_spread_model_{net}_ns"],
    } for net in NETWORKS])
    if "mean_accuracy_model_loss_only" in mc:
        summary.loc[len(summary)] = {"network": "plain + hardware-aware loss, no chips (model only)",
                                     "nominal model accuracy": mc["accuracy_nominal_model_loss_only"],
                                     "model mean": mc["mean_accuracy_model_loss_only"]}
    summary = summary.astype(object).where(summary.notna(), "-")
    vm = result["variation_model"]
    blocks = [
        Heading("Variation", 1),
        Paragraph(f"Network trained and calibrated at {result['nominal']['corner']}, "
                  f"{result['nominal']['temp_c']:g} C; {result['nominal']['n_test']} test samples per chip "
                  "and per corner point. SPICE Monte Carlo: the sky130 *_mm models, one ngspice seed per "
                  "chip, the same chips for both networks. Model: the bottom-up model on chips drawn "
                  "from the variation model below, which comes from the device Monte Carlo only "
                  "(nothing is fitted to the network runs)."),
        Heading("Device mismatch"),
        Image(_mismatch_figure(figs / "sigma_i.png", result["mismatch"]),
              "sigma(I)/I against the drain current (SPICE Monte Carlo); dashed: sigma_Vth g_m / I"),
        Table(pd.DataFrame(result["mismatch"]["sigma_i_rel"]), "relative current spread"),
        Paragraph(f"Model units: threshold sigma {vm['sigma_threshold']:.4g} (of V_th_circ), ramp "
                  f"sigma {vm['sigma_ramp_rel']:.4g}, E_plus sigma {vm['sigma_e_plus_rel']:.4g}, E_minus "
                  f"sigma {vm['sigma_e_minus_rel']:.4g} (relative); {vm['source']}."),
        Heading("Monte Carlo: model vs SPICE"),
        Table(summary, f"{mc['n']} SPICE chips, {mc['model_chips']} model chips"),
        Image(_figure(figs / "mc_accuracy.png", _draw_accuracy(mc), (7.0, 3.0)), "accuracy over chips"),
        Image(_figure(figs / "mc_spike_times.png", _draw_errors(arrays), (7.0, 3.0)),
              "output spike time on a chip minus the nominal model's"),
        Table(pd.DataFrame(mc["term_budget_plain"]),
              "plain network, model only: mean accuracy over the chips with one term of the variation "
              "model at a time"),
        Heading("Corners and temperature"),
        Table(corners, "plain network; nominal mapping = gate biases from the nominal point; devices "
                       "only = re-mapped with the devices re-characterized here, circuit terms of the "
                       "nominal point; re-characterized = devices, discharger design and circuit terms "
                       "all measured here"),
    ]
    md, html = out_dir / "report.md", out_dir / "report.html"
    for path, text in ((md, to_markdown(blocks)), (html, to_html(blocks, out_dir, "imcpnn variation report"))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return md
