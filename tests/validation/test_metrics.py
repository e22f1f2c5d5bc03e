"""Metrics: hand-computed values on small tables."""

import numpy as np
import pandas as pd
import pytest

from imcpnn.errors import ResultsError
from imcpnn.circuits.simulate import SPIKE_TABLE_COLUMNS, spice_spike_table
from imcpnn.validation import (accuracy, compare_spike_tables, layer_metrics, membrane_rmse_v, model_spike_table,
                               output_rmse_ns, predicted_class, spike_time_rmse, worst_sample)
from imcpnn.validation._metrics import output_times, require_columns


def tables():
    model = model_spike_table([np.array([[0.2, 0.5], [0.3, 1.0]]), np.array([[0.4, 0.6], [0.1, 0.9]])])
    spice = model.copy()
    spice["t_spike"] = spice["t_spike"] + np.array([0.0, 0.0, 0.0, 0.0, 0.01, -0.02, 0.03, 0.0])
    spice.loc[(spice.layer == 1) & (spice["sample"] == 1) & (spice.neuron == 1), ["t_spike", "spiked"]] = [np.nan, False]
    return model, spice


def test_model_and_spice_spike_tables_share_one_format():
    from imcpnn.circuits.netlist.network import PhaseSchedule

    model, _ = tables()
    assert tuple(model.columns) == SPIKE_TABLE_COLUMNS
    schedule = PhaseSchedule()
    t = np.linspace(0.0, schedule.t_stop_s(2, 1), 101)
    spice = spice_spike_table(t, {"v(s1_0)": np.zeros_like(t)}, (1, 1), 2, schedule)
    assert tuple(c for c in spice.columns if c in SPIKE_TABLE_COLUMNS) == SPIKE_TABLE_COLUMNS
    assert len(compare_spike_tables(model_spike_table([np.full((2, 1), 0.5)]), spice, 1e-6)) == 2


def test_rmse_of_known_differences():
    assert spike_time_rmse([0.1, 0.2], [0.1, 0.4]) == pytest.approx(np.sqrt(0.02))


def test_rmse_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        spike_time_rmse([0.1], [0.1, 0.2])


def test_rmse_empty():
    with pytest.raises(ValueError, match="nothing to compare"):
        spike_time_rmse([], [])


def test_non_spiking_neuron_counts_at_window_end():
    model, spice = tables()
    cmp = compare_spike_tables(model, spice, t_phase_s=1e-6)
    row = cmp[(cmp.layer == 1) & (cmp["sample"] == 1) & (cmp.neuron == 1)].iloc[0]
    assert row.t_spice == 1.0 and row.err_t_spike_ns == pytest.approx(-100.0)  # 0.9 - 1 of 1 us
    # Model time 1.0 (clipped) is "silent" too.
    assert not cmp[(cmp.layer == 0) & (cmp["sample"] == 1) & (cmp.neuron == 1)].iloc[0].spiked_model


def test_output_and_layer_metrics_by_hand():
    model, spice = tables()
    cmp = compare_spike_tables(model, spice, t_phase_s=1e-6)
    # Output-layer errors (model - SPICE) in ns: -10, +20, -30, -100.
    expected = np.sqrt((10**2 + 20**2 + 30**2 + 100**2) / 4)
    assert output_rmse_ns(cmp) == pytest.approx(expected)
    layers = layer_metrics(cmp).set_index("layer")
    assert layers.loc[0, "rmse_t_spike_ns"] == pytest.approx(0.0, abs=1e-9)
    assert layers.loc[1, "max_abs_err_t_spike_ns"] == pytest.approx(100.0)
    assert layers.loc[1, "n_silent_spice"] == 1 and layers.loc[1, "n_silent_model"] == 0
    assert worst_sample(cmp) == 1
    assert np.allclose(output_times(cmp, "spice"), [[0.41, 0.58], [0.13, 1.0]])


def test_mismatched_tables_are_rejected():
    model, spice = tables()
    with pytest.raises(ValueError, match="present in only one"):
        compare_spike_tables(model, spice[spice["sample"] == 0], 1e-6)


def test_missing_column_is_named():
    model, spice = tables()
    with pytest.raises(ValueError, match="lacks columns"):
        compare_spike_tables(model.drop(columns="spiked"), spice, 1e-6)


def test_accuracy_uses_earliest_of_first_classes():
    t = np.array([[0.5, 0.2, 0.9, 0.0], [0.1, 0.3, 0.2, 0.9]])  # neuron 3 is unused (3 classes)
    assert list(predicted_class(t, 3)) == [1, 0]
    assert accuracy(t, np.array([1, 2]), 3) == 0.5
    with pytest.raises(ValueError, match="cannot decode"):
        predicted_class(t, 5)


def test_membrane_rmse_weighs_every_point_of_every_layer():
    layer0 = np.full((2, 3, 4), 1.3)
    layer1 = np.full((2, 1, 4), 1.0)
    # Offsets 2 mV on 24 points and 10 mV on 8 points: sqrt((24 * 4 + 8 * 100) / 32) mV.
    rmse = membrane_rmse_v([layer0 + 0.002, layer1 + 0.010], [layer0, layer1])
    assert rmse == pytest.approx(np.sqrt((24 * 4e-6 + 8 * 1e-4) / 32))
    with pytest.raises(ValueError, match="model layers vs"):
        membrane_rmse_v([layer0], [layer0, layer1])
    with pytest.raises(ValueError, match="shapes differ"):
        membrane_rmse_v([layer0], [layer1])


def test_require_columns():
    with pytest.raises(ResultsError, match="missing columns"):
        require_columns(pd.DataFrame({"a": [1]}), ("a", "b"), "x.csv")
