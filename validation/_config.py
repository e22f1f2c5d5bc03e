"""Configuration of a validation run (the demo's embedded default is ``ValidationConfig()``).

The data set and the network shape are part of the config (:class:`DataSection`,
``ValidationConfig.hidden`` and ``n_outputs``): Iris on a 5-5-5 network by default, the paper's
circuit experiment. Class counts, feature counts and the size of the test split come from the
data set when the run loads it, not from constants here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imcpnn.circuits.netlist.network import NETLIST_KINDS
from imcpnn.config import is_real, require
from imcpnn.errors import ConfigError
from imcpnn.pnn.data import DataConfig
from imcpnn.spice import Corner


#: Scale search methods (SearchConfig.method).
SEARCH_METHODS = ("gauss-newton", "quadratic", "stencil")


@dataclass(frozen=True)
class SearchConfig:
    """Current-scale search against SPICE (one batched ngspice run per candidate)."""

    method: str = "gauss-newton"
    """"gauss-newton": a trust-region search on a linear model of every spike-time error (the
    Gauss-Newton model of the MSE), its slope the pipeline's own model's corrected by the SPICE
    candidates (fewest candidates); "quadratic": a trust-region search on a
    quadratic model of the MSE itself; "stencil": the coarse-to-fine compass search both are
    checked against (:mod:`imcpnn.validation._search`)."""
    model_guide: bool = True
    """Gauss-Newton search: take the slope of the errors from the pipeline's own model, corrected
    by the SPICE candidates, and start from one candidate
    (:func:`imcpnn.validation.gauss_newton_search`); False: the slope from the candidates alone
    (n + 1 to start)."""
    steps: tuple[float, ...] = (0.1, 0.03, 0.01)
    """Relative steps, coarse to fine; the last one is the search resolution (the grid every
    candidate lies on). The trust-region searches use the first as their initial design's step and
    trust radius, the stencil search each one as a level."""
    tol_ns: float = 0.1
    """Trust-region searches: stop once the model predicts less RMSE than this to gain (and the
    best point is a local minimum of the grid)."""
    max_candidates: int = 60
    """Trust-region searches: at most this many candidates."""
    half_width: int = 1
    """Stencil search: stencil of each level: centre +- 1..half_width steps along each axis."""
    max_recentre: int = 3
    """Stencil search: times a level may recentre its grid when the best candidate lies on the grid's edge."""
    scale_range: tuple[float, ...] = (0.2, 5.0)
    """Candidates outside [low, high] are not simulated."""
    ray_levels: int = 1
    """Stencil search: coarse levels at which a 2-D search (scale_plus, scale_minus) first moves both scales by one
    common factor, along the ray from the origin through its start, then along each axis: the
    overall current level is the first thing to find, the ratio of the two scales the second."""
    n_samples: int = 14
    """Calibration samples each candidate simulates (the first n of the calibration pool, see
    ``ValidationConfig.calibration``; 0 = all of it). A multiple of
    ``ValidationConfig.spice_batch`` keeps every deck full."""

    def __post_init__(self):
        require(self, "method", self.method, self.method in SEARCH_METHODS,
                f"one of {', '.join(SEARCH_METHODS)}")
        require(self, "tol_ns", self.tol_ns, is_real(self.tol_ns) and self.tol_ns >= 0, "a number >= 0")
        require(self, "max_candidates", self.max_candidates,
                isinstance(self.max_candidates, int) and self.max_candidates >= 3, "an integer >= 3")
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


#: What the trace fit can fit (:attr:`TraceFitConfig.source`).
TRACE_FIT_SOURCES = ("network", "testbench")


@dataclass(frozen=True)
class TraceFitConfig:
    """What the trace fit fits, and its weighting (trace-fitted pipeline)."""

    source: str = "network"
    """The traces the trace-fitted parameters are fitted to. "network": the membranes and spike
    times of every layer of the bottom-up network on the calibration samples, at the scales its
    search found (runs the search already made: cache hits). They cover the network's own
    operating range: its trained weights, its hidden layer driven by the input edges and every
    later layer by the real neurons before it. "testbench": the single-layer characterization
    testbench of designed weights and ideal input edges (the bottom-up terms' testbench)."""
    refit: bool = True
    """Refit the parameters, from the fitted ones, to the trace-fitted network's own traces (every
    layer, the calibration samples, at the scale its search found: the runs its search made)
    before its evaluation predicts the test run. The network trained with the fitted parameters
    has other weights than the one they were fitted to, so it is another circuit; its own
    calibration runs say how the parameters carry over to it. The circuit is not changed (mapped
    as searched); the test samples stay unseen. False: predict with the parameters it trained
    with."""
    n_patterns: int = 14
    """Input patterns (samples) of the single-layer characterization testbench (the bottom-up
    terms are measured on it, and the trace fit too with ``source="testbench"``)."""
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
        require(self, "source", self.source, self.source in TRACE_FIT_SOURCES,
                f"one of {', '.join(TRACE_FIT_SOURCES)}")
        require(self, "n_patterns", self.n_patterns, 1 <= self.n_patterns <= 200,
                "an integer in [1, 200]")
        require(self, "n_times", self.n_times, 3 <= self.n_times <= 1000,
                "an integer in [3, 1000]")
        for name in ("sigma_v_v", "sigma_t"):
            value = getattr(self, name)
            require(self, name, value, value > 0, "a number > 0")


@dataclass(frozen=True)
class DataSection:
    """The data set of a validation run: which one, where it lives, how it is split.

    These are the fields of pnn's :class:`imcpnn.pnn.DataConfig` (same defaults, same checks:
    :meth:`loader_config` builds one) less its ``seed`` and ``test_subset``: a validation run has
    one seed for split, initialisation and testbench (``ValidationConfig.seed``, the CLI's
    ``--seed``), and ``ValidationConfig.n_test`` sets the test subset. Embedding DataConfig whole
    would put a second, unread seed and test subset into every config.json.
    """

    dataset: str = DataConfig.dataset
    """One of :data:`imcpnn.pnn.DATASETS` ("iris", the default: the paper's circuit experiment)."""
    data_dir: str | None = DataConfig.data_dir
    """Folder of the data files where the data set needs one (see ``DataConfig.data_dir``)."""
    test_fraction: float = DataConfig.test_fraction
    """Share held out for testing (data sets without their own test split; 1/3: Iris' 50)."""
    train_subset: int | None = DataConfig.train_subset
    """Keep only this many (seeded, random) training samples; None = all."""

    def __post_init__(self):
        try:  # pnn's checks: a known data set, test_fraction, train_subset, data_dir
            self.loader_config(seed=0)
        except ConfigError as err:
            raise ConfigError(f"ValidationConfig.data: {err}") from None

    def loader_config(self, seed: int, test_subset: int | None = None) -> DataConfig:
        """pnn's DataConfig of this section, split by ``seed``, test split cut to ``test_subset``."""
        return DataConfig(dataset=self.dataset, data_dir=self.data_dir,
                          test_fraction=self.test_fraction, train_subset=self.train_subset,
                          test_subset=test_subset, seed=seed)


@dataclass(frozen=True)
class ValidationConfig:
    """One validation run: data set, network shape, training, SPICE settings, searches, trace fit.

    The default is the paper's circuit experiment: Iris on a 5-5-5 network (4 features + bias ->
    5 hidden -> 5 outputs) at sky130 tt, 27 C.
    """

    n_test: int = 50
    """Test samples simulated in SPICE: the whole test split when it has no more (Iris' has 50),
    else a seeded random subset of it. The run refuses more than the test split holds."""
    epochs: int = 100
    """Training epochs of each model (Iris is tiny: one epoch is milliseconds)."""
    hidden: tuple[int, ...] | int = (5,)
    """Hidden-layer widths, input side first; the network is (inputs, *hidden, n_outputs). A
    single integer (as config.json files of earlier versions hold it) is one hidden layer."""
    n_outputs: int = 5
    """Output neurons: at least the data set's classes, which use the first ones (as in the paper,
    Iris' 3 classes on 5 outputs)."""
    lr: float = 0.01
    """Adam learning rate (Iris, 100 training samples: larger than the paper's 1e-4 for MNIST)."""
    batch_size: int = 16
    """Training mini-batch."""
    e_ideal: float = 100.0
    """|E| of the top-down 'ideal ANN' model."""
    corner: str = "tt"
    """sky130 process corner, a value of :class:`imcpnn.spice.Corner` (tt, ff, ss, sf, fs)."""
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
    data: DataSection = field(default_factory=DataSection)
    """The data set; split by ``seed``, test split cut to ``n_test``."""

    def __post_init__(self):
        if isinstance(self.hidden, int) and not isinstance(self.hidden, bool):
            object.__setattr__(self, "hidden", (self.hidden,))
        elif isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        require(self, "n_test", self.n_test, self.n_test >= 1,
                "an integer >= 1 (at most the test split's size)")
        require(self, "epochs", self.epochs, self.epochs >= 1, "an integer >= 1")
        require(self, "hidden", self.hidden,
                isinstance(self.hidden, tuple) and len(self.hidden) >= 1
                and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.hidden),
                "one or more integer widths >= 1")
        require(self, "n_outputs", self.n_outputs, self.n_outputs >= 1,
                "an integer >= 1 (at least the data set's classes)")
        require(self, "lr", self.lr, 0 < self.lr < 1, "a number in (0, 1)")
        require(self, "batch_size", self.batch_size, self.batch_size >= 1, "an integer >= 1")
        require(self, "t_step_max_s", self.t_step_max_s, 1e-11 <= self.t_step_max_s <= 1e-7,
                "a step in [1e-11, 1e-7] s")
        require(self, "trtol", self.trtol, 0 < self.trtol <= 7, "a number in (0, 7]")
        require(self, "spice_batch", self.spice_batch, self.spice_batch >= 1, "an integer >= 1")
        require(self, "e_ideal", self.e_ideal, self.e_ideal >= 10,
                "a number >= 10 (it stands for the ideal, E -> infinity)")
        require(self, "netlist_kind", self.netlist_kind, self.netlist_kind in NETLIST_KINDS,
                "one of " + ", ".join(NETLIST_KINDS))
        require(self, "calibration", self.calibration, self.calibration in ("train", "test"),
                "train or test")
        require(self, "discharger", self.discharger, self.discharger in ("fixed", "searched"),
                "fixed or searched")
        corners = [c.value for c in Corner]
        require(self, "corner", self.corner, self.corner in corners, "one of " + ", ".join(corners))


def upgrade_config_data(data):
    """Config data read from a config.json of an earlier version, with the meaning it had then:
    a search without a ``method`` was the stencil search (the quadratic one became the default
    later, then the Gauss-Newton one; a config that names its method keeps it), and one without
    ``model_guide`` was not model-guided (so a resumed search walks on as it began). Anything
    else, including data that is not a dict, is returned as it is."""
    if not (isinstance(data, dict) and isinstance(data.get("search"), dict)):
        return data
    search = dict(data["search"])
    search.setdefault("method", "stencil")
    search.setdefault("model_guide", False)
    return {**data, "search": search}
