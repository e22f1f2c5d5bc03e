"""DSTD: differentiable spike-time discretization of the RC-Spike layer (method.md section 2).

Grid (our reading of the method's T_m = m dt - t_off with T_M pinned at 1): dt = 1/steps,
0 <= offset < dt, points

    T_m = m dt - offset,  m = 0..steps,   plus T_{steps+1} = 1 when offset > 0.

So the grid starts at -offset <= 0 and ends exactly at 1; every spike time in [0, 1] lies between two
grid points. With offset > 0 the *last* interval [1 - offset, 1] is the shorter one; with offset = 0
the grid is the plain uniform one (steps + 1 points). A spike at t in [T_m, T_{m+1}] is spread over
its two neighbours by linear interpolation (the hat kernel max(0, 1 - |T - t|/dt) on the uniform
part; the short last interval uses its own length so the two weights still sum to 1):

    s_m = (T_{m+1} - t)/(T_{m+1} - T_m),   s_{m+1} = (t - T_m)/(T_{m+1} - T_m).

The cumulative sum S_jm = sum_{q<=m} s_jq is a soft step H(T_m - t_j). The drives are held at their
left-grid-point value on each interval: f_m = sum_j beta_ij w_ij S_jm, g_m = sum_j w_ij S_jm (two
matrix products). With this choice input j injects exactly w (T_{m+1} - t_j) charge on the interval
holding its spike, so only the exponential's curvature is approximated: |v - v_DSTD| = O(steps^-2 |E|^-1).
The membrane is then integrated exactly on the grid (same closed form as the exact solver).
Cost O(batch steps n_in n_out) time, O(batch (n_in + n_out) steps) memory; plain autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .solver import first_crossing, integrate_intervals


def sample_offset(steps: int, generator: torch.Generator | None = None) -> float:
    """Random grid offset, uniform in [0, 1/steps): draw once per layer and per mini-batch in training.

    The number is drawn on the generator's own device (a CUDA generator draws on the GPU, as training
    passes one; None = the global CPU generator) and returned as a Python float, since the grid is
    built from it on the host. The same generator state gives the same offset. On CUDA the
    ``.item()`` is one host sync per layer and mini-batch (training syncs once per batch anyway to
    check the loss), and sharing the generator with the spike-time noise keeps a run reproducible
    from one seed and one saved generator state.
    """
    device = generator.device if generator is not None else None
    return torch.rand((), generator=generator, dtype=torch.float64, device=device).item() / steps


def dstd_grid(steps: int, offset: float, dtype: torch.dtype, device) -> Tensor:
    """Grid points T (n_points,), n_points = steps + 1 (offset 0) or steps + 2; T[0] = -offset, T[-1] = 1."""
    points = torch.arange(steps + 1, dtype=torch.float64) / steps - offset
    if offset > 0:
        points = torch.cat([points, torch.ones(1, dtype=torch.float64)])
    return points.to(dtype=dtype, device=device)


def soft_steps(t_in: Tensor, grid: Tensor) -> Tensor:
    """Cumulative hat weights S (batch, n_points, n_in): S_mj = 0 before t_j's interval, 1 after it,
    and the left hat weight s_m = (T_{m+1} - t_j)/(T_{m+1} - T_m) at the left point m of that interval.
    Piecewise linear in t_j, hence differentiable almost everywhere.

    Grid points run along dim 1 so that ``S @ w`` folds (batch, n_points) into one matrix without
    a copy, and the left weights are scattered in: autograd keeps only their int index, not a
    (batch, n_points, n_in) mask.
    """
    n_points = grid.shape[0]
    left = (torch.searchsorted(grid, t_in.detach().contiguous(), right=True) - 1).clamp(0, n_points - 2)
    t_left, t_right = grid[left], grid[left + 1]
    left_weight = (t_right - t_in) / (t_right - t_left)
    m = torch.arange(n_points, device=t_in.device)[:, None]
    after = (m > left.unsqueeze(1)).to(t_in.dtype)
    return after.scatter(1, left.unsqueeze(1), left_weight.unsqueeze(1))


def grid_drives(t_in: Tensor, w: Tensor, beta: Tensor, steps: int, offset: float) -> tuple[Tensor, ...]:
    """Grid interval starts (1, K) and durations (1, K), and drives f, g (batch, K, n_out), K = n_points - 1."""
    grid = dstd_grid(steps, offset, t_in.dtype, t_in.device)
    s_cum = soft_steps(t_in, grid)  # the last point (S = 1) drives nothing: its rows are dropped
    return grid[None, :-1], torch.diff(grid)[None], (s_cum @ (beta * w))[:, :-1], (s_cum @ w)[:, :-1]


def dstd_membrane(t_in: Tensor, w: Tensor, beta: Tensor, steps: int, offset: float = 0.0) -> Tensor:
    """DSTD estimate of v(1): (batch, n_in), (n_in, n_out), (n_in, n_out) -> (batch, n_out)."""
    _, durations, f, g = grid_drives(t_in, w, beta, steps, offset)
    return integrate_intervals(f, g, durations.unsqueeze(-1))


def dstd_ttfs(t_in: Tensor, w: Tensor, beta: Tensor, steps: int, offset: float = 0.0, v_th: float = 1.0) -> Tensor:
    """DSTD TTFS: first threshold crossing of the grid-interval membrane, continuous in time.

    Same drives as :func:`dstd_membrane`; the crossing time inside the first grid interval whose end
    value reaches v_th is the closed form of :func:`first_crossing`. Cost O(batch steps n_in n_out)
    (a loop over the grid instead of the method's O(steps^2) formulation). Grid limitation: the
    drive of an input is smeared over its whole grid interval, so a crossing in the interval that
    holds the causing spike may be shifted by O(dt).
    """
    return first_crossing(*grid_drives(t_in, w, beta, steps, offset), v_th)
