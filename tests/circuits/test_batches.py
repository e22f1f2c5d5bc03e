"""Samples split into ngspice decks: the fewest decks of at most batch_size, sizes even, order kept."""

from __future__ import annotations

import math

import numpy as np

from imcpnn.circuits.netlist.network import Network, PhaseSchedule
from imcpnn.circuits.simulate.run import batch_starts, build_testbenches


def test_batches_are_the_fewest_and_even():
    for n in range(1, 61):
        for size in range(1, 11):
            starts = batch_starts(n, size)
            sizes = np.diff(starts + [n])
            assert starts[0] == 0 and len(starts) == math.ceil(n / size)
            assert sizes.max() <= size and sizes.max() - sizes.min() <= 1, (n, size, sizes)


def test_fifty_by_seven_is_not_seven_full_decks_and_a_straggler():
    assert np.diff(batch_starts(50, 7) + [50]).tolist() == [7, 7, 6, 6, 6, 6, 6, 6]


def test_decks_hold_the_samples_in_order():
    net = Network((2, 2))
    mapping = {"layers": [{"vg_n_v": np.full((2, 2), 0.6).tolist(), "vg_p_v": np.full((2, 2), 1.8).tolist(),
                           "vg_dis_v": 0.5}]}
    t_in = np.linspace(0.05, 0.9, 16).reshape(8, 2)
    decks = build_testbenches(net, mapping, t_in, PhaseSchedule(), 3, save_membranes=False)
    assert [tb.n_samples for tb in decks] == [3, 3, 2]
    alone = [build_testbenches(net, mapping, t_in[a:b], PhaseSchedule(), 3, save_membranes=False)[0].text
             for a, b in ((0, 3), (3, 6), (6, 8))]
    assert [tb.text for tb in decks] == alone
