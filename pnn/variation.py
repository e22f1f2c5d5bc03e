"""Device variation (transistor mismatch) of an RC-Spike chip, in model units (method.md section 6).

A fabricated chip differs from the nominal model by random, fixed errors of its transistors. In
the normalized model (weights w = synapse current / unit current, membrane over the threshold
swing, time over the phase) one chip is:

    w_eff_ij   = w_ij (1 + s(|w_ij|, sign w_ij) z_ij)          current-source mismatch
    E+_eff_ij  = E+_ij (1 + sigma_e_plus_rel  z+_ij)           channel-length modulation mismatch
    E-_eff_ij  = E-_ij (1 + sigma_e_minus_rel z-_ij)
    theta_i    = 1 + d_i,       d_i ~ N(0, sigma_threshold)   sensing-inverter threshold
    r_i        = r (1 + sigma_ramp_rel zr_i)                   discharger current

with every z ~ N(0, 1) independent. The relative current spread s depends on the current (Pelgrom:
a small current source in weak inversion spreads more) and on the device: the NMOS source for
w > 0 (``sigma_rel_plus``), the PMOS source for w < 0 (``sigma_rel_minus``), both given on a grid
of |w| and interpolated linearly (constant beyond its ends). A draw is one chip: the errors are
fixed for the life of the chip, so evaluation keeps one draw for a whole test set, while
hardware-aware (HWA) training draws a fresh chip per mini-batch, so that the weights learn to
work on any chip.

Factors are clamped so that the physics keeps its signs: a current source does not reverse
(w factor >= 0), a reversal potential keeps its sign and a discharger its direction (factors >=
the dtype's eps). The clamps matter only for draws beyond 1/sigma standard deviations.

The numbers (the grid and the sigmas) come from Monte Carlo simulations of the circuit, or from a
foundry's mismatch coefficients; :attr:`VariationModel.source` records where. This module holds
no measured values. Randomness comes only from explicit ``torch.Generator`` s.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import Tensor

from imcpnn.config import from_dict, is_real, require, to_dict
from imcpnn.errors import ConfigError
from imcpnn.pnn._api import spike_times_unchecked

#: The form of a variation file, quoted by the error of :meth:`VariationModel.load`.
EXAMPLE_JSON = ('{"w_abs": [0.1, 1.0], "sigma_rel_plus": [0.05, 0.02], "sigma_rel_minus": [0.06, 0.03], '
                '"sigma_e_plus_rel": 0.02, "sigma_e_minus_rel": 0.02, "sigma_threshold": 0.01, '
                '"sigma_ramp_rel": 0.01, "source": "where the numbers come from"}')
_TABLES = ("w_abs", "sigma_rel_plus", "sigma_rel_minus")
_SCALARS = ("sigma_e_plus_rel", "sigma_e_minus_rel", "sigma_threshold", "sigma_ramp_rel")


@dataclasses.dataclass(frozen=True)
class VariationModel:
    """Standard deviations of a chip's mismatch errors, in model units (see the module docstring).

    Attributes:
        w_abs: grid of |w| (ascending, >= 0) on which the current spreads are given.
        sigma_rel_plus: relative spread s of w > 0 (NMOS current source) at each ``w_abs`` point.
        sigma_rel_minus: relative spread s of w < 0 (PMOS current source) at each ``w_abs`` point.
        sigma_e_plus_rel: relative spread of each synapse's E_plus.
        sigma_e_minus_rel: relative spread of each synapse's E_minus.
        sigma_threshold: spread of each neuron's threshold (absolute, normalized: theta = 1 + d).
        sigma_ramp_rel: relative spread of each neuron's discharger current (firing-ramp rate).
        source: free text: where the numbers come from (simulation, corner, seeds, paper).

    The default is no variation (:attr:`is_zero`). JSON form: :meth:`to_dict`, :meth:`from_dict`,
    :meth:`load`. Raises ConfigError on a bad value (tables of unequal lengths, a grid that is not
    strictly ascending, a negative or non-finite sigma).
    """

    w_abs: tuple[float, ...] = (1.0,)
    sigma_rel_plus: tuple[float, ...] = (0.0,)
    sigma_rel_minus: tuple[float, ...] = (0.0,)
    sigma_e_plus_rel: float = 0.0
    sigma_e_minus_rel: float = 0.0
    sigma_threshold: float = 0.0
    sigma_ramp_rel: float = 0.0
    source: str = ""

    def __post_init__(self):
        for name in _TABLES:
            value = getattr(self, name)
            require(self, name, value, isinstance(value, (tuple, list)) and len(value) >= 1
                    and all(is_real(v) for v in value), "a non-empty list of finite numbers")  # fmt: skip
            object.__setattr__(self, name, tuple(float(v) for v in value))  # lists -> hashable tuples
        n = len(self.w_abs)
        require(self, "w_abs", self.w_abs, self.w_abs[0] >= 0 and all(a < b for a, b in zip(self.w_abs, self.w_abs[1:])),
                "strictly ascending values >= 0 (the |w| grid)")  # fmt: skip
        for name in _TABLES[1:]:
            value = getattr(self, name)
            require(self, name, value, len(value) == n, f"{n} values, one per w_abs point")
            require(self, name, value, min(value) >= 0, "values >= 0 (relative standard deviations)")
        for name in _SCALARS:
            value = getattr(self, name)
            require(self, name, value, is_real(value) and value >= 0, "a finite number >= 0 (0 = no variation)")
        require(self, "source", self.source, isinstance(self.source, str), "a string")

    @property
    def is_zero(self) -> bool:
        """True when every spread is 0: every chip is the nominal model."""
        return not any(self.sigma_rel_plus) and not any(self.sigma_rel_minus) and not any(
            getattr(self, name) for name in _SCALARS)

    def to_dict(self) -> dict:
        """Plain JSON data (tables as lists)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VariationModel:
        """From plain data; missing keys keep their defaults. Raises ConfigError (unknown key, bad value)."""
        return from_dict(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> VariationModel:
        """Read a JSON file of :class:`VariationModel` fields.

        Raises:
            ConfigError: one line naming the file, the problem and the expected form.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            problem = "does not exist"
        except IsADirectoryError:
            problem = "is a folder, not a file"
        except OSError as err:
            problem = f"cannot be read ({err.strerror})"
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError and ConfigError are ValueErrors
            kind = "has a bad value" if isinstance(err, ConfigError) else "is not valid JSON"
            problem = f"{kind} ({err})"
        problem = " ".join(problem.split())
        raise ConfigError(f"variation file {path} {problem}; write a JSON object of VariationModel fields, "
                          f"e.g. {EXAMPLE_JSON}")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LayerDraw:
    """The errors of one dense layer on one chip (one draw of a :class:`VariationModel`).

    Attributes:
        w_factor: (n_in, n_out) factors 1 + s z of the synapse currents: w_eff = w * w_factor.
        e_plus_factor: (n_in, n_out) factors of the synapses' E_plus.
        e_minus_factor: (n_in, n_out) factors of the synapses' E_minus.
        threshold: (n_out,) threshold shifts d: the neuron fires at v = 1 + d.
        ramp_factor: (n_out,) factors of the firing-ramp rate (discharger current).
    """

    w_factor: Tensor
    e_plus_factor: Tensor
    e_minus_factor: Tensor
    threshold: Tensor
    ramp_factor: Tensor


def _interp(x: Tensor, grid: Tensor, values: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (grid, values) at x, constant beyond the grid's ends.

    grid (K,) strictly ascending, values (K,), x any shape -> x's shape.
    """
    if grid.numel() == 1:
        return values.expand_as(x)
    right = torch.searchsorted(grid, x.contiguous()).clamp(1, grid.numel() - 1)
    x0, x1, y0, y1 = grid[right - 1], grid[right], values[right - 1], values[right]
    frac = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return y0 + frac * (y1 - y0)


def draw_layer(variation: VariationModel, w: Tensor, generator: torch.Generator) -> LayerDraw:
    """Draw one layer's errors on one chip.

    s_ij = interp(|w_ij|; w_abs, sigma_rel_plus) where w_ij > 0, else the same of sigma_rel_minus;
    w_factor = max(1 + s z, 0); E factors max(1 + sigma_e_rel z, eps); threshold = sigma_threshold z;
    ramp_factor = max(1 + sigma_ramp_rel z, eps); every z ~ N(0, 1) independent.

    **Arguments:** variation; w (n_in, n_out), whose sign and |w| (detached) choose s; generator: a
    ``torch.Generator`` (the draws are made on its device, in w's dtype, then moved to w's device).
    Five normal tensors are always drawn in a fixed order (w, E_plus, E_minus: (n_in, n_out);
    threshold, ramp: (n_out,)), so a chip's draws do not depend on which sigmas are zero; with
    every sigma zero the factors are exactly 1 and the shifts exactly 0.
    **Returns:** :class:`LayerDraw` on w's device and dtype (constants: no gradient flows through them).
    **Raises:** ValueError if w is not 2-D floating or generator is not a torch.Generator.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"draw_layer needs an explicit torch.Generator, got {type(generator).__name__}; "
                         "pass generator=torch.Generator().manual_seed(seed)")  # fmt: skip
    if not isinstance(w, Tensor) or w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"w must be a floating (n_in, n_out) tensor, got {getattr(w, 'shape', type(w))}")
    n_in, n_out = w.shape
    dtype, device = w.dtype, w.device

    def normal(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device).to(device)

    z_w, z_plus, z_minus = normal(n_in, n_out), normal(n_in, n_out), normal(n_in, n_out)
    z_threshold, z_ramp = normal(n_out), normal(n_out)
    eps = torch.finfo(dtype).eps
    w = w.detach()
    grid = torch.tensor(variation.w_abs, dtype=dtype, device=device)
    s_plus = _interp(w.abs(), grid, torch.tensor(variation.sigma_rel_plus, dtype=dtype, device=device))
    s_minus = _interp(w.abs(), grid, torch.tensor(variation.sigma_rel_minus, dtype=dtype, device=device))
    s = torch.where(w > 0, s_plus, s_minus)
    return LayerDraw(
        w_factor=(1 + s * z_w).clamp(min=0),
        e_plus_factor=(1 + variation.sigma_e_plus_rel * z_plus).clamp(min=eps),
        e_minus_factor=(1 + variation.sigma_e_minus_rel * z_minus).clamp(min=eps),
        threshold=variation.sigma_threshold * z_threshold,
        ramp_factor=(1 + variation.sigma_ramp_rel * z_ramp).clamp(min=eps),
    )


def draw_chip(variation: VariationModel, weights: list[Tensor], generator: torch.Generator) -> list[LayerDraw]:
    """One chip: :func:`draw_layer` for each (n_in, n_out) weight of ``weights``, in order, from one generator."""
    return [draw_layer(variation, w, generator) for w in weights]


def chip_spike_times(t_in: Tensor, w: Tensor, e_plus, e_minus, draw: LayerDraw | None, *,
                     method: str = "exact", steps: int | None = None, offset: float | None = None,
                     e_dis=None, dis_rate=None, t_delay=0.0, q_plus=0.0, q_minus=0.0,
                     silent_gradient: bool = False) -> Tensor:  # fmt: skip
    """Output spike times of one RC-Spike layer on the chip ``draw`` (None = the nominal model).

    Accumulation with the chip's synapses, firing with its neurons (see the module docstring):

        dv_i/dt = sum_j w_ij a_ij (1 - v_i / (E_ij e_ij)) H(t - t_j),   v_i(0) = 0
        t_i = first time the ramp dv/dt = r c_i (1 - v/e_dis) from v_i(1) reaches 1 + d_i

    with a = draw.w_factor, e = draw.e_plus_factor (w >= 0) or draw.e_minus_factor (w < 0),
    d = draw.threshold, c = draw.ramp_factor; the crossing time is the exact closed form of
    :func:`imcpnn.pnn.solver.firing_times` for both the ideal and the E_dis ramp.

    **Arguments:** t_in (batch, n_in) in [0, 1]; w (n_in, n_out); e_plus, e_minus: floats, 0-d
    tensors or (n_in, n_out) tensors (one E per synapse); draw: a :class:`LayerDraw` of w's shape,
    or None; the keyword arguments as :func:`imcpnn.pnn.spike_times`. Like the layers' hot path it
    checks no tensor values (no device sync): ``draw=None`` is exactly the nominal
    ``spike_times_unchecked``; use :func:`imcpnn.pnn.spike_times` for a checked nominal call.
    **Returns:** (batch, n_out); differentiable in t_in, w (through w * w_factor, the draw held
    constant) and tensor E values. Cost: that of the nominal layer plus O(n_in n_out).
    **Raises:** ValueError when the draw's shapes do not fit w.
    """
    threshold_shift = rate_factor = None
    if draw is not None:
        n_out = w.shape[1]
        shapes = {"w_factor": tuple(w.shape), "e_plus_factor": tuple(w.shape),
                  "e_minus_factor": tuple(w.shape), "threshold": (n_out,), "ramp_factor": (n_out,)}  # fmt: skip
        for name, shape in shapes.items():
            if tuple(getattr(draw, name).shape) != shape:
                raise ValueError(f"draw.{name} has shape {tuple(getattr(draw, name).shape)} but w {tuple(w.shape)} "
                                 f"needs {shape}; draw the chip for this layer's weights (draw_layer)")  # fmt: skip
        w = w * draw.w_factor
        e_plus, e_minus = e_plus * draw.e_plus_factor, e_minus * draw.e_minus_factor
        threshold_shift, rate_factor = draw.threshold, draw.ramp_factor
    return spike_times_unchecked(t_in, w, e_plus, e_minus, method, steps, offset, e_dis, dis_rate=dis_rate,
                                 t_delay=t_delay, q_plus=q_plus, q_minus=q_minus,
                                 threshold_shift=threshold_shift, rate_factor=rate_factor,
                                 silent_gradient=silent_gradient)  # fmt: skip
