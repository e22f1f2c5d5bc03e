"""RC-Spike layers as ``torch.nn.Module`` s and a network builder from an architecture string.

The modules only hold parameters and choose the solver settings (method, grid size M, grid
offset, noise); the neuron math is :func:`imcpnn.pnn._api.spike_times` (method.md sections 1-2),
called without its per-call input validation (each check of tensor values is a device sync per
layer): the physics is validated when built (:class:`LayerPhysics`), the method when a layer fires.

Per layer and mode:

- training: DSTD with ``train_steps`` grid points; a fresh random grid offset t_off ~ U[0, dt) per
  layer and per call (= per mini-batch) unless ``random_offset`` is False (t_off = 0);
- evaluation: DSTD with ``test_steps`` (offset 0), or ``method="exact"`` (the oracle);
- both: Gaussian spike-time noise N(0, noise_sigma^2) on every layer's output spike times (finite
  timing precision of the circuit), drawn from an explicit ``torch.Generator``, clipped back to
  [0, 1]; ``noise=False`` or ``noise_sigma=0`` disables it;
- with ``silent_gradient``, the clips at the window end pass a silent neuron the gradient that
  would make it fire (same values: a training choice, :func:`imcpnn.pnn.solver.to_window`);
- optionally a chip with device variation (:mod:`imcpnn.pnn.variation`, dense layers only): a fixed
  chip (``chips``, one :class:`~imcpnn.pnn.variation.LayerDraw` per dense layer: evaluation of one
  chip) or a fresh chip per call (``variation``: hardware-aware training, one chip per mini-batch).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imcpnn.config import is_real, require
from imcpnn.errors import ConfigError
from imcpnn.pnn._api import METHODS, sample_offset
from imcpnn.pnn.solver import to_window
from imcpnn.pnn.variation import LayerDraw, VariationModel, chip_spike_times, draw_chip

#: Layers of the VGG-like CNN of the paper (method.md section 3): conv widths, "pool", fc widths.
VGG7: tuple = (("conv", 64), ("conv", 64), ("pool", 2), ("conv", 128), ("conv", 128), ("pool", 2),
               ("conv", 256), ("conv", 256), ("pool", 2), ("dense", 512))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LayerPhysics:
    """Physical parameters and solver settings shared by the layers of a network.

    Attributes:
        e_plus: excitatory reversal potential E_plus > 0 (normalised; 100 ~ ideal ANN).
        e_minus: inhibitory reversal potential E_minus < 0.
        e_dis: discharge non-ideality E_dis > 1 of the firing phase; None = ideal linear ramp.
        train_steps: DSTD grid size M in training (>= 1; paper: 10).
        test_steps: DSTD grid size M in evaluation (>= 1; paper: 30 for RC-Spike).
        random_offset: random grid offset per layer and mini-batch in training (else t_off = 0).
        noise_sigma: standard deviation of the Gaussian spike-time noise (>= 0; paper: 0.01).
        dis_rate: measured discharge rate at v = 0 (> 0); None = a discharger designed to reach
            threshold from v = 0 in exactly one window (method section 1).
        t_delay: firing-path delay added to every spike time (normalized, in (-1, 1)).
        q_plus, q_minus: membrane step per active excitatory / inhibitory synapse at the end of
            accumulation (normalized; charge sharing with the synapses' internal nodes).
        dq_plus_driven, dq_minus_driven: what a layer whose inputs are other neurons' spikes
            (every neuron layer after the first) adds to q_plus, q_minus: a neuron's output stage
            drives the synapse switches with slower edges than the input encoder, and the share
            of the switches' channel charge that reaches the membrane depends on the edge
            (normalized; 0 = the same step for every layer). See :meth:`for_layer`.
        silent_gradient: a one-sided straight-through gradient at the window end: a neuron that
            stays silent (t = 1) still passes to its membrane the part of its time's gradient that
            would make it fire, so a neuron silent on every sample can come back
            (:func:`imcpnn.pnn.solver.to_window`). It changes no spike time, only what training
            does with silent neurons; False = the method's clip. A :class:`PNN` applies it to its
            output layer only, where a neuron silent on every sample is a class never predicted:
            a hidden neuron's silence is its nonlinearity (the hard-sigmoid's flat end), and
            reviving every silent hidden neuron left almost none silent and trained worse
            (measured on Fashion-MNIST; see benchmarks/README.md).
    """

    e_plus: float = 2.8
    e_minus: float = -1.53
    e_dis: float | None = None
    train_steps: int = 10
    test_steps: int = 30
    random_offset: bool = True
    noise_sigma: float = 0.01
    dis_rate: float | None = None
    t_delay: float = 0.0
    q_plus: float = 0.0
    q_minus: float = 0.0
    dq_plus_driven: float = 0.0
    dq_minus_driven: float = 0.0
    silent_gradient: bool = False

    def __post_init__(self):
        require(self, "e_plus", self.e_plus, is_real(self.e_plus) and self.e_plus > 0,
                "a finite value > 0 (e.g. 2.8; 100 = ideal)")
        require(self, "e_minus", self.e_minus, is_real(self.e_minus) and self.e_minus < 0,
                "a finite value < 0 (e.g. -1.53)")
        require(self, "e_dis", self.e_dis, self.e_dis is None or (is_real(self.e_dis) and self.e_dis > 1),
                "a finite value > 1, or None (ideal ramp)")
        for name in ("train_steps", "test_steps"):
            require(self, name, getattr(self, name), getattr(self, name) >= 1, "an integer >= 1 (DSTD grid size M)")
        require(self, "noise_sigma", self.noise_sigma, is_real(self.noise_sigma) and self.noise_sigma >= 0,
                "a finite value >= 0 (0 disables noise)")
        require(self, "dis_rate", self.dis_rate,
                self.dis_rate is None or (is_real(self.dis_rate) and self.dis_rate > 0),
                "a finite value > 0, or None (designed ramp)")
        require(self, "t_delay", self.t_delay, is_real(self.t_delay) and abs(self.t_delay) < 1,
                "a value in (-1, 1) (a fraction of the phase)")
        for name in ("q_plus", "q_minus", "dq_plus_driven", "dq_minus_driven"):
            require(self, name, getattr(self, name), is_real(getattr(self, name)), "a finite value")
        require(self, "silent_gradient", self.silent_gradient, isinstance(self.silent_gradient, bool),
                "true or false")

    def for_layer(self, index: int) -> "LayerPhysics":
        """The physics of the ``index``-th neuron layer (0 = the first, fed by the input encoder):
        from the second on, the kick is q + dq_driven (its inputs come from neurons' output
        stages); the returned physics has no driven term left, so it can be applied once only."""
        if index == 0 or (self.dq_plus_driven == 0 and self.dq_minus_driven == 0):
            return self
        return dataclasses.replace(self, q_plus=self.q_plus + self.dq_plus_driven,
                                   q_minus=self.q_minus + self.dq_minus_driven,
                                   dq_plus_driven=0.0, dq_minus_driven=0.0)


def add_spike_noise(t: Tensor, sigma: float, generator: torch.Generator | None = None,
                    silent_gradient: bool = False) -> Tensor:
    """clip(t + sigma * n, 0, 1) with n ~ N(0, 1) drawn from ``generator`` (on its device); the clip
    is :func:`imcpnn.pnn.solver.to_window`'s (``silent_gradient``: past the window end it passes the
    gradient that lowers t)."""
    if sigma == 0:
        return t
    device = generator.device if generator is not None else t.device
    noise = torch.randn(t.shape, generator=generator, device=device, dtype=t.dtype).to(t.device)
    return to_window(t + sigma * noise, silent_gradient)


def init_weights(n_in: int, n_out: int, generator: torch.Generator | None = None) -> Tensor:
    """w ~ N(1/n_in, 1/n_in) (mean 1/n_in, std 1/sqrt(n_in)), shape (n_in, n_out), on the CPU.

    Drawn from ``generator`` (a CPU one; None = the global torch RNG).

    With activations 1 - t in [0, 1] the membrane v = sum_j w_j (1 - t_j) then starts with a small
    positive mean and O(1) spread, so most neurons fire inside (0, 1) where the hard-sigmoid has a
    gradient, rather than all silent (v <= 0) or all saturated (v >= 1).
    """
    return torch.randn(n_in, n_out, generator=generator) / math.sqrt(n_in) + 1.0 / n_in


class RCSpikeDense(nn.Module):
    """Dense RC-Spike layer: (batch, n_in) spike times -> (batch, n_out), weights (n_in, n_out).

    Inputs of more than two dimensions are flattened (an image into a vector).
    """

    def __init__(self, n_in: int, n_out: int, physics: LayerPhysics, generator: torch.Generator | None = None):
        super().__init__()
        self.physics = physics
        self.weight = nn.Parameter(init_weights(n_in, n_out, generator))

    def fire(self, t_in: Tensor, *, method=None, steps=None, noise=True, generator=None,
             chip: LayerDraw | None = None) -> Tensor:
        """Output spike times of (rows, n_in) inputs with this layer's solver settings, on the chip
        ``chip`` (this layer's draw, see :func:`imcpnn.pnn.variation.chip_spike_times`; None = nominal)."""
        p = self.physics
        method = method or "dstd"
        if method not in METHODS:
            raise ConfigError(f"method={method!r} is unknown; use one of {', '.join(METHODS)}")
        offset = None
        if method == "dstd":
            steps = steps or (p.train_steps if self.training else p.test_steps)
            if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
                raise ConfigError(f"steps={steps!r} must be an integer >= 1 (DSTD grid size M)")
            if self.training and p.random_offset:
                offset = sample_offset(steps, generator=generator)
        t_out = chip_spike_times(
            t_in, self.weight, p.e_plus, p.e_minus, chip, method=method,
            steps=steps if method == "dstd" else None, offset=offset, e_dis=p.e_dis,
            dis_rate=p.dis_rate, t_delay=p.t_delay, q_plus=p.q_plus, q_minus=p.q_minus,
            silent_gradient=p.silent_gradient,
        )  # fmt: skip
        return add_spike_noise(t_out, p.noise_sigma, generator, p.silent_gradient) if noise else t_out

    def forward(self, t_in: Tensor, **solver) -> Tensor:
        return self.fire(t_in.flatten(1), **solver)


class RCSpikeConv2d(RCSpikeDense):
    """Convolutional RC-Spike layer: the dense math on unfolded k x k patches.

    (batch, C, H, W) -> (batch, n_out, H, W) ("same" padding, stride 1). The weight has the dense
    layout (C k k, n_out), rows in ``torch.nn.functional.unfold`` order (channel, row, column).
    Padding uses t = 1: a pixel outside the image never spikes (contributes no charge), whereas
    unfold's zero padding would mean "spikes first".
    """

    def __init__(self, in_channels: int, out_channels: int, physics: LayerPhysics, kernel_size=3,
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__(in_channels * kernel_size**2, out_channels, physics, generator)
        self.kernel_size = kernel_size

    def forward(self, t_in: Tensor, **solver) -> Tensor:
        batch, _, height, width = t_in.shape
        pad = self.kernel_size // 2
        padded = F.pad(t_in, (pad, pad, pad, pad), value=1.0)
        patches = F.unfold(padded, self.kernel_size)  # (batch, C k k, H W)
        rows = patches.transpose(1, 2).reshape(batch * height * width, -1)
        t_out = self.fire(rows, **solver)  # (batch H W, n_out)
        return t_out.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


class MinPool2d(nn.Module):
    """Min-pooling of spike times over k x k windows (stride k).

    The earliest spike carries the largest activation (t = 1 - x), so min-pooling spike times is
    exactly max-pooling activations: min_k t_k = 1 - max_k (1 - t_k). It is the natural choice for a
    time-coded circuit (an OR of the input spikes: the window fires with its first input) and keeps
    the output a single spike time. Solver arguments are accepted and ignored (no neuron here).
    """

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, t_in: Tensor, **solver) -> Tensor:
        return -F.max_pool2d(-t_in, self.kernel_size)


def parse_arch(arch: str) -> tuple:
    """Hidden layers of an architecture string: ``mlp:400,400``, ``mlp:`` (none) or ``vgg7``.

    Returns a tuple of (kind, size) with kind in conv/pool/dense; the output layer is not included.
    """
    if arch == "vgg7":
        return VGG7
    if arch.startswith("mlp:"):
        widths = [w.strip() for w in arch[4:].split(",") if w.strip()]
        if all(w.isdigit() and int(w) > 0 for w in widths):
            return tuple(("dense", int(w)) for w in widths)
    raise ConfigError(
        f"arch={arch!r} is unknown; use 'mlp:W1,W2,...' (hidden widths, e.g. mlp:400,400), "
        "'mlp:' (no hidden layer) or 'vgg7'"
    )


class PNN(nn.Module):
    """A feed-forward RC-Spike network: spike times in, output-layer spike times out.

    Args:
        arch: architecture string (see :func:`parse_arch`).
        input_shape: per-sample input shape, (n_in,) or (C, H, W) (conv layers need the latter).
        n_outputs: output neurons (may exceed the number of classes).
        physics: E values and solver settings shared by all layers (each neuron layer takes
            :meth:`LayerPhysics.for_layer` of its index: layers after the first add the driven kick;
            ``silent_gradient`` reaches the output layer only).
        generator: CPU generator of the initial weights (None = the global torch RNG).
    """

    def __init__(self, arch: str, input_shape: tuple[int, ...], n_outputs: int, physics: LayerPhysics,
                 generator: torch.Generator | None = None):  # fmt: skip
        super().__init__()
        self.arch = arch
        self.physics = physics
        self.input_shape = tuple(input_shape)
        self.n_outputs = n_outputs
        shape = self.input_shape
        layers: list[nn.Module] = []
        hidden = dataclasses.replace(physics, silent_gradient=False)  # the output layer's alone
        for kind, size in parse_arch(arch):
            if kind == "dense":
                layers.append(RCSpikeDense(math.prod(shape), size, hidden.for_layer(self._neuron_layers(layers)),
                                           generator))
                shape = (size,)
                continue
            if len(shape) != 3:
                raise ConfigError(f"arch={arch!r} needs image inputs (C, H, W), got shape {shape}")
            if kind == "conv":
                layers.append(RCSpikeConv2d(shape[0], size, hidden.for_layer(self._neuron_layers(layers)),
                                            generator=generator))
                shape = (size, shape[1], shape[2])
            else:
                if min(shape[1:]) < size:
                    raise ConfigError(f"arch={arch!r}: image {shape[1:]} too small to pool again")
                layers.append(MinPool2d(size))
                shape = (shape[0], shape[1] // size, shape[2] // size)
        layers.append(RCSpikeDense(math.prod(shape), n_outputs, physics.for_layer(self._neuron_layers(layers)),
                                   generator))
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def _neuron_layers(layers: list) -> int:
        """How many of ``layers`` have neurons (dense, conv; not pooling): the next one's index."""
        return sum(isinstance(layer, RCSpikeDense) for layer in layers)

    def forward(self, t_in: Tensor, **solver) -> Tensor:
        """Output spike times (batch, n_outputs); ``solver`` as :meth:`layer_spike_times`."""
        return self.layer_spike_times(t_in, **solver)[-1]

    def layer_spike_times(
        self, t_in: Tensor, method: str | None = None, steps: int | None = None,
        noise: bool = True, generator: torch.Generator | None = None, *,
        variation: VariationModel | None = None, chips: list[LayerDraw] | None = None,
        chip_generator: torch.Generator | None = None,
    ) -> list[Tensor]:  # fmt: skip
        """Output spike times of every layer with neurons (dense, conv; pooling layers skipped).

        ``method`` None = DSTD; ``steps`` None = the layer's train/test M by mode; ``generator``
        draws the grid offsets and the noise. Device variation (dense networks only): ``chips`` is
        one fixed chip (a :class:`LayerDraw` per dense layer, e.g. from
        :func:`imcpnn.pnn.variation.draw_chip` of :meth:`dense_weights`); ``variation`` draws a
        fresh chip for this call from ``chip_generator`` (None = ``generator``; one of them is
        needed). A zero variation gives exactly the nominal times.

        Raises:
            ConfigError: both ``variation`` and ``chips``; a variation on a network with conv
                layers; ``chips`` of the wrong length; ``variation`` without a generator.
        """
        dense = [layer for layer in self.layers if type(layer) is RCSpikeDense]
        if variation is not None or chips is not None:
            if variation is not None and chips is not None:
                raise ConfigError("pass either variation (a fresh chip per call) or chips (a fixed chip), not both")
            if any(isinstance(layer, RCSpikeConv2d) for layer in self.layers):
                raise ConfigError(f"variation is supported for dense layers; arch={self.arch!r} has conv "
                                  "layers (use an mlp: architecture)")  # fmt: skip
            if variation is not None:
                chip_generator = generator if chip_generator is None else chip_generator
                if chip_generator is None:
                    raise ConfigError("variation needs an explicit generator to draw the chip from; pass "
                                      "chip_generator=torch.Generator().manual_seed(seed)")  # fmt: skip
                chips = draw_chip(variation, [layer.weight for layer in dense], chip_generator)
            if len(chips) != len(dense):
                raise ConfigError(f"chips holds {len(chips)} layer draws but the network has {len(dense)} "
                                  "dense layers; draw it with draw_chip(variation, model.dense_weights(), gen)")  # fmt: skip
        chip_of = {id(layer): chip for layer, chip in zip(dense, chips or [])}
        out = []
        t = t_in
        for layer in self.layers:
            extra = {"chip": chip_of[id(layer)]} if id(layer) in chip_of else {}
            t = layer(t, method=method, steps=steps, noise=noise, generator=generator, **extra)
            if not isinstance(layer, MinPool2d):
                out.append(t)
        return out

    def dense_weights(self) -> list[Tensor]:
        """The (n_in, n_out) weights of every dense layer, input to output (detached)."""
        return [m.weight.detach() for m in self.layers if type(m) is RCSpikeDense]
