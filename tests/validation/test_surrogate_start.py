"""The top-down search's model surrogate recovers the scales that generated its target."""

import numpy as np
import torch

from imcpnn.pnn import spike_times
from imcpnn.validation._fit import PhysicalParameters
from imcpnn.validation._pipeline import surrogate_top_down_scales

DC = PhysicalParameters(e_plus=2.9, e_minus=-1.6, e_dis=3.0, current_scale=1.0, v_th_circ_v=0.84)


class _ScaledCircuitModel:
    """Stands in for a trained ideal model whose 'own' spike times are those of the DC-parameter
    network with w+ scaled by a and w- by b: the surrogate must find (a, b) back."""

    def __init__(self, weights, a, b):
        self.weights, self.a, self.b = weights, a, b

    def eval(self):
        return self

    def dense_weights(self):
        return self.weights

    def layer_spike_times(self, x, method, noise):
        times, t = [], x.double()
        for w in self.weights:
            t = spike_times(t, torch.where(w > 0, self.a * w, self.b * w), DC.e_plus, DC.e_minus,
                            e_dis=DC.e_dis)
            times.append(t)
        return times


def test_surrogate_recovers_the_generating_scales_to_the_grid_resolution():
    gen = torch.Generator().manual_seed(3)
    weights = [torch.randn(5, 5, generator=gen, dtype=torch.float64) * 0.5 for _ in range(2)]
    x = np.random.default_rng(3).uniform(0, 1, (40, 5))
    model = _ScaledCircuitModel(weights, 1.27, 0.83)
    a, b = surrogate_top_down_scales(model, x, DC, (0.2, 5.0))
    assert abs(a - 1.27) <= 0.011 and abs(b - 0.83) <= 0.011
