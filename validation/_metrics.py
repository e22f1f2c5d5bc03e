"""Model-vs-SPICE comparison metrics: pure functions on arrays and tidy tables.

Times are compared in normalized units (one phase window = 1) and reported in ns via the phase
length ``t_phase_s``; column names carry their unit (``rmse_t_spike_ns``, ``rmse_v_membrane_mv``).

**Non-spiking rule.** A neuron that does not spike inside its firing window is counted at the
window's end, t = 1. This is exactly where the model puts a neuron whose membrane never reaches
threshold (t = clip(1 - v(1), 0, 1)), so "both silent" is a zero error and "one silent" an error of
1 - t_other: large, finite, and visible in the RMSE. The number of silent neurons is reported
separately (``n_silent_model``, ``n_silent_spice``) so that the rule never hides them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imcpnn.circuits.simulate.measure import SPIKE_TABLE_COLUMNS, SPIKE_TABLE_KEYS
from imcpnn.errors import ResultsError
from imcpnn.pnn import predict


def _check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, model {a.shape} vs SPICE {b.shape}; "
                         "compare the same samples and neurons")
    if a.size == 0:
        raise ValueError(f"{what}: nothing to compare (empty arrays)")


def effective_spike_time(t_spike: np.ndarray, spiked: np.ndarray) -> np.ndarray:
    """Normalized spike time with the non-spiking rule applied: t if spiked else 1, clipped to [0, 1]."""
    t = np.where(np.asarray(spiked, dtype=bool), np.asarray(t_spike, dtype=float), 1.0)
    return np.clip(np.nan_to_num(t, nan=1.0), 0.0, 1.0)


def spike_time_rmse(t_model: np.ndarray, t_spice: np.ndarray) -> float:
    """RMSE = sqrt(mean((t_model - t_spice)^2)) of normalized spike times, any equal shapes."""
    t_model, t_spice = np.asarray(t_model, float), np.asarray(t_spice, float)
    _check_same_shape(t_model, t_spice, "spike_time_rmse")
    return float(np.sqrt(np.mean((t_model - t_spice) ** 2)))


def model_spike_table(layer_times: list[np.ndarray]) -> pd.DataFrame:
    """The spike table (:data:`~imcpnn.circuits.simulate.measure.SPIKE_TABLE_COLUMNS`, the format
    of the SPICE side's :func:`~imcpnn.circuits.simulate.measure.spice_spike_table`) of the model's
    normalized spike times, one (batch, n_out) array per layer (layer numbered from 0).

    A model time of exactly 1 (clipped: the membrane never reached threshold) is marked ``spiked=False``.
    """
    frames = []
    for layer, t in enumerate(layer_times):
        t = np.asarray(t, dtype=float)
        sample, neuron = np.meshgrid(np.arange(t.shape[0]), np.arange(t.shape[1]), indexing="ij")
        frames.append(pd.DataFrame({"sample": sample.ravel(), "layer": layer,
                                    "neuron": neuron.ravel(), "t_spike": t.ravel(),
                                    "spiked": t.ravel() < 1.0}, columns=list(SPIKE_TABLE_COLUMNS)))
    return pd.concat(frames, ignore_index=True)


def compare_spike_tables(model: pd.DataFrame, spice: pd.DataFrame, t_phase_s: float) -> pd.DataFrame:
    """Join model and SPICE spike tables on (sample, layer, neuron); add errors in ns.

    Columns out: sample, layer, neuron, t_model, t_spice (normalized, non-spiking rule applied),
    spiked_model, spiked_spice, err_t_spike_ns = (t_model - t_spice) * t_phase_s * 1e9.

    Raises:
        ValueError: a table lacks a column, or the two tables do not cover the same neurons.
    """
    for name, table in (("model", model), ("SPICE", spice)):
        missing = [c for c in SPIKE_TABLE_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"{name} spike table lacks columns {missing}; "
                             f"expected {list(SPIKE_TABLE_COLUMNS)}")
    keys = list(SPIKE_TABLE_KEYS)
    joined = model[list(SPIKE_TABLE_COLUMNS)].merge(
        spice[list(SPIKE_TABLE_COLUMNS)], on=keys, how="outer", suffixes=("_model", "_spice"),
        indicator=True)
    unmatched = joined[joined["_merge"] != "both"]
    if len(unmatched):
        row = unmatched.iloc[0]
        raise ValueError(f"spike tables do not match: {len(unmatched)} neurons present in only one, "
                         f"e.g. sample {row['sample']} layer {row['layer']} neuron {row['neuron']} "
                         f"({row['_merge']}); simulate the same samples and network in both")
    out = joined[keys].copy()
    for side in ("model", "spice"):
        out[f"spiked_{side}"] = joined[f"spiked_{side}"].astype(bool).to_numpy()
        out[f"t_{side}"] = effective_spike_time(joined[f"t_spike_{side}"], out[f"spiked_{side}"])
    out["err_t_spike_ns"] = (out["t_model"] - out["t_spice"]) * t_phase_s * 1e9
    return out.sort_values(keys, ignore_index=True)


def layer_metrics(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per-layer spike-time metrics of a :func:`compare_spike_tables` result.

    Columns: layer, n_neurons, rmse_t_spike_ns = sqrt(mean(err^2)), max_abs_err_t_spike_ns,
    mean_err_t_spike_ns (bias), rmse_spiking_ns (over neurons that spike on both sides: NaN when
    none does), n_silent_mismatch (silent on one side only), n_silent_model, n_silent_spice.
    """
    rows = []
    for layer, group in comparison.groupby("layer"):
        err = group["err_t_spike_ns"].to_numpy()
        both = (group["spiked_model"] & group["spiked_spice"]).to_numpy()
        rows.append({"layer": int(layer), "n_neurons": len(group),
                     "rmse_t_spike_ns": float(np.sqrt(np.mean(err ** 2))),
                     "rmse_spiking_ns": float(np.sqrt(np.mean(err[both] ** 2))) if both.any() else float("nan"),
                     "n_silent_mismatch": int((group["spiked_model"] != group["spiked_spice"]).sum()),
                     "max_abs_err_t_spike_ns": float(np.max(np.abs(err))),
                     "mean_err_t_spike_ns": float(np.mean(err)),
                     "n_silent_model": int((~group["spiked_model"]).sum()),
                     "n_silent_spice": int((~group["spiked_spice"]).sum())})
    return pd.DataFrame(rows)


def output_errors_ns(comparison: pd.DataFrame) -> np.ndarray:
    """(n_samples * n_out,) spike-time errors (ns) of the output (last) layer, ordered by sample
    then neuron: the residual vector the scale searches fit."""
    last = comparison[comparison["layer"] == comparison["layer"].max()]
    return last.sort_values(["sample", "neuron"])["err_t_spike_ns"].to_numpy(dtype=float)


def output_rmse_ns(comparison: pd.DataFrame) -> float:
    """The headline metric: spike-time RMSE (ns) of the output (last) layer over all samples."""
    return float(np.sqrt(np.mean(output_errors_ns(comparison) ** 2)))


def worst_sample(comparison: pd.DataFrame) -> int:
    """Sample with the largest output-layer squared spike-time error (ties: lowest index)."""
    last = comparison[comparison["layer"] == comparison["layer"].max()]
    per_sample = (last["err_t_spike_ns"] ** 2).groupby(last["sample"]).sum()
    return int(per_sample.idxmax())


def output_times(comparison: pd.DataFrame, side: str) -> np.ndarray:
    """(n_samples, n_out) output-layer times of one side (``"model"`` or ``"spice"``)."""
    last = comparison[comparison["layer"] == comparison["layer"].max()]
    wide = last.pivot(index="sample", columns="neuron", values=f"t_{side}")
    return wide.sort_index().to_numpy()


def accuracy(t_out: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Fraction of samples whose class decision (:func:`imcpnn.pnn.predict`: the earliest output
    spike among ``n_classes``) is the label; the model's and SPICE's times are decoded alike."""
    return float(np.mean(predict(t_out, n_classes) == np.asarray(labels)))


def membrane_rmse_v(v_model_v: list[np.ndarray], v_spice_v: list[np.ndarray]) -> float:
    """Membrane RMSE (V) over the accumulation window: sqrt(mean over all points of (V_m - V_s)^2).

    One (n_samples, n_out, n_times) array per layer on both sides, SPICE already resampled onto
    the model's time grid (see ``validation._pipeline.accumulation_traces``); every layer's
    points weigh the same.
    """
    if len(v_model_v) != len(v_spice_v) or not v_model_v:
        raise ValueError(f"membrane_rmse_v: {len(v_model_v)} model layers vs {len(v_spice_v)} "
                         "SPICE layers; give one array per layer on both sides")
    sq = []
    for layer, (m, s) in enumerate(zip(v_model_v, v_spice_v)):
        m, s = np.asarray(m, float), np.asarray(s, float)
        _check_same_shape(m, s, f"membrane_rmse_v layer {layer}")
        sq.append(((m - s) ** 2).ravel())
    return float(np.sqrt(np.mean(np.concatenate(sq))))


def require_columns(table: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Raise ResultsError naming ``source`` when a saved table lacks expected columns."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ResultsError(f"{source} is corrupt: missing columns {missing}; rerun the stage that "
                           "wrote it")
