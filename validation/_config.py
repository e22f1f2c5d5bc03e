"""Configuration of a validation run (the demo's embedded default is ``ValidationConfig()``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imcpnn.circuits.netlist.network import NETLIST_KINDS
from imcpnn.config import require


@dataclass(frozen=True)
class SearchConfig:
    """Coarse-to-fine current-scale search against SPICE (one batched ngspice run per candidate)."""

    steps: tuple[float, ...] = (0.1, 0.03, 0.01)
    """Relative step of each level, coarse to fine; the last one is the search resolution."""
    half_width: int = 1
    """Stencil of each level: centre +- 1..half_width steps along each axis."""
    max_recentre: int = 3
    """Times a level may recentre its grid when the best candidate lies on the grid's edge."""
    scale_range: tuple[float, ...] = (0.2, 5.0)
    """Candidates outside [low, high] are not simulated."""
    ray_levels: int = 1
    """Coarse levels at which a 2-D search (scale_plus, scale_minus) first moves both scales by one
    common factor, along the ray from the origin through its start, then along each axis: the
    overall current level is the first thing to find, the ratio of the two scales the second."""
    n_samples: int = 14
    """Calibration samples each candidate simulates (the first n of the calibration pool, see
    ``ValidationConfig.calibration``; 0 = all of it). A multiple of
    ``ValidationConfig.spice_batch`` keeps every deck full."""

    def __post_init__(self):
        require(self, "steps", self.steps,
                len(self.steps) >= 1 and all(0 < s < 1 for s in self.steps)
                and list(self.steps) == sorted(self.steps, reverse=True),
                "one or more relative steps in (0, 1), decreasing")
        require(self, "half_width", self.half_width,
                isinstance(self.half_width, int) and 1 <= self.half_width <= 10,
                "an integer in [1, 10]")
        require(self, "max_recentre", self.max_recentre, 0 <= self.max_recentre <= 20,
                "an integer in [0, 20]")
        require(self, "ray_levels", self.ray_levels,
                isinstance(self.ray_levels, int) and 0 <= self.ray_levels <= len(self.steps),
                "an integer from 0 to the number of steps")
        require(self, "n_samples", self.n_samples,
                isinstance(self.n_samples, int) and self.n_samples >= 0, "an integer >= 0 (0 = all)")
        ok = len(self.scale_range) == 2 and 0 < self.scale_range[0] <= 1 < self.scale_range[1]
        require(self, "scale_range", self.scale_range, ok,
                "(low, high) with 0 < low <= 1 < high")


@dataclass(frozen=True)
class TraceFitConfig:
    """Testbench and weighting of the trace fit (trace-fitted pipeline)."""

    n_patterns: int = 14
    """Input patterns (samples) of the single-layer characterization testbench."""
    n_times: int = 26
    """Membrane samples per pattern over the accumulation window."""
    sigma_v_v: float = 2e-3
    """Membrane residual weight (V): about the model-vs-SPICE agreement one hopes for."""
    sigma_t: float = 1e-2
    """Spike-time residual weight (normalized; 10 ns at T = 1 us)."""
    fit_v_th_circ: bool = False
    """Fit V_th_circ too; by default it is held at the DC switch point V0 - V_switch, which the
    characterization measures directly. Free, it joins the membrane's (V_th, s, E) degeneracy:
    the fit can trade V_th_circ against the current scale and the E values, which then no longer
    mean what the circuit's lambdas say, and the trace-fitted network predicts SPICE worse than
    with V_th_circ held."""

    def __post_init__(self):
        require(self, "n_patterns", self.n_patterns, 1 <= self.n_patterns <= 200,
                "an integer in [1, 200]")
        require(self, "n_times", self.n_times, 3 <= self.n_times <= 1000,
                "an integer in [3, 1000]")
        for name in ("sigma_v_v", "sigma_t"):
            value = getattr(self, name)
            require(self, name, value, value > 0, "a number > 0")


@dataclass(frozen=True)
class ValidationConfig:
    """One validation run: Iris, 5-5-5 (4 features + bias -> 5 hidden -> 5 outputs), sky130 tt."""

    n_test: int = 50
    """Test samples simulated in SPICE (Iris' held-out third has 50)."""
    epochs: int = 100
    """Training epochs of each model (Iris is tiny: one epoch is milliseconds)."""
    hidden: int = 5
    """Hidden-layer width."""
    n_outputs: int = 5
    """Output neurons (3 classes use the first three, as in the paper)."""
    lr: float = 0.01
    """Adam learning rate (Iris, 100 training samples: larger than the paper's 1e-4 for MNIST)."""
    batch_size: int = 16
    """Training mini-batch."""
    e_ideal: float = 100.0
    """|E| of the top-down 'ideal ANN' model."""
    corner: str = "tt"
    """sky130 corner: tt, ff, ss, sf, fs."""
    temp_c: float = 27.0
    """Temperature (deg C)."""
    seed: int = 0
    """Seed of data split, initialisation and testbench patterns."""
    t_step_max_s: float = 5e-8
    """Largest ngspice transient step (s); edges get small steps from the truncation-error control
    (``PhaseSchedule.trtol``), see benchmarks/network_tran_settings.py."""
    trtol: float = 0.05
    """ngspice truncation-error factor (``.options trtol``; ngspice's default is 7). The large
    max step relies on it: a tight trtol keeps spike times close to a converged transient, where
    ngspice's default leaves them far off (benchmarks/network_tran_settings.py measures both)."""
    spice_batch: int = 7
    """Test samples per ngspice run. Runs go in parallel, one per core, so small decks keep the
    cores busy when a search round has fewer candidates than cores or an odd number of them; a
    deck's fixed cost is small against its per-sample cost (benchmarks/spice_throughput.py)."""
    netlist_kind: str = "schematic+parasitic-estimate"
    """SPICE netlist of every pipeline: "schematic", "schematic+parasitic-estimate" (wire C
    estimate on membrane and spike lines) or "post-layout" (the generated layout's extracted
    netlist: needs magic, netgen-lvs and PDK_ROOT with the sky130A tech file)."""
    calibration: str = "train"
    """Samples the scale searches simulate: "train" (the first ``search.n_samples`` training
    samples, held out from the reported test metrics) or "test" (the first test samples:
    in-sample, the method's reference protocol)."""
    discharger: str = "fixed"
    """"fixed": the discharger sits at its design current for every pipeline (the method's
    choice); "searched": every pipeline also searches one factor on it."""
    search: SearchConfig = field(default_factory=SearchConfig)
    fit: TraceFitConfig = field(default_factory=TraceFitConfig)

    def __post_init__(self):
        require(self, "n_test", self.n_test, 1 <= self.n_test <= 50,
                "an integer in [1, 50] (Iris' test split has 50 samples)")
        require(self, "epochs", self.epochs, self.epochs >= 1, "an integer >= 1")
        require(self, "hidden", self.hidden, self.hidden >= 1, "an integer >= 1")
        require(self, "n_outputs", self.n_outputs, self.n_outputs >= 3,
                "an integer >= 3 (Iris has 3 classes)")
        require(self, "lr", self.lr, 0 < self.lr < 1, "a number in (0, 1)")
        require(self, "batch_size", self.batch_size, self.batch_size >= 1,
                "an integer >= 1")
        require(self, "t_step_max_s", self.t_step_max_s,
                1e-11 <= self.t_step_max_s <= 1e-7, "a step in [1e-11, 1e-7] s")
        require(self, "trtol", self.trtol, 0 < self.trtol <= 7, "a number in (0, 7]")
        require(self, "spice_batch", self.spice_batch, self.spice_batch >= 1,
                "an integer >= 1")
        require(self, "e_ideal", self.e_ideal, self.e_ideal >= 10,
                "a number >= 10 (it stands for the ideal, E -> infinity)")
        require(self, "netlist_kind", self.netlist_kind,
                self.netlist_kind in NETLIST_KINDS, "one of " + ", ".join(NETLIST_KINDS))
        require(self, "calibration", self.calibration,
                self.calibration in ("train", "test"), "train or test")
        require(self, "discharger", self.discharger,
                self.discharger in ("fixed", "searched"), "fixed or searched")
        require(self, "corner", self.corner,
                self.corner in ("tt", "ff", "ss", "sf", "fs"), "one of tt, ff, ss, sf, fs")
