"""Benchmarks as data: the shared result writer (``benchmarks/_record.py``), the README table
generator (``benchmarks/tables.py``), every script's refusal of bad arguments, and the cheapest
real run of the scripts that have one, each into a temporary results folder (never
``benchmarks/results/``)."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = ("demo_fidelity", "dstd_vs_exact", "fashion_mnist_cnn", "fashion_mnist_mlp", "hwa_recipes", "layer_columns",
           "model_vs_ngspice", "network_column_split", "network_tran_settings", "search_vs_grid", "spice_throughput",
           "variation", "variation_fashion_mnist")
#: Fields every result file holds (benchmarks/_record.py's docstring).
FIELDS = {"script", "name", "timestamp", "command", "git_commit", "git_dirty", "machine",
          "load_average_before", "load_average_after", "wall_s", "parameters", "repeats", "headline",
          "results"}


@pytest.fixture
def bench(monkeypatch):
    """``bench(name)``: the module ``benchmarks/<name>.py``, imported as the scripts import each
    other (benchmarks/ on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def run_script(name: str, *args, timeout=600) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<name>.py`` as a user would (from the repository root)."""
    return subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def check_common_fields(data: dict, script: str, name: str) -> None:
    assert FIELDS <= set(data)
    assert (data["script"], data["name"]) == (script, name)
    assert datetime.datetime.fromisoformat(data["timestamp"]).tzinfo is not None
    assert data["command"].startswith(f"benchmarks/{script}.py")
    assert data["git_commit"] is None or len(data["git_commit"]) == 40
    for key in ("load_average_before", "load_average_after"):
        assert len(data[key]) == 3 and all(v >= 0 for v in data[key])
    assert {"cpus", "processor", "python", "platform", "numpy", "imcpnn"} <= set(data["machine"])
    assert data["wall_s"] >= 0


def test_recorder_writes_every_field(bench, tmp_path):
    record = bench("_record")
    parser = record.parser("my_bench.py", "doc")
    parser.add_argument("--repeats", type=record.positive_int, default=2)
    record.add_arguments(parser)
    argv = ["--repeats", "3", "--name", "run-1", "--results-dir", str(tmp_path / "res")]
    args = parser.parse_args(argv)
    recorder = record.Recorder("benchmarks/my_bench.py", args, argv)
    path = recorder.write(machine=record.machine(torch=True), headline={"x / y": 2.0},
                          results={"points": [1, 2]}, repeats={"x": [0.1, 0.3, 0.2]}, note="extra field")
    assert path == tmp_path / "res" / "my_bench_run-1.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temporary left
    data = json.loads(path.read_text())
    check_common_fields(data, "my_bench", "run-1")
    assert data["command"] == "benchmarks/my_bench.py " + " ".join(argv)
    assert data["parameters"] == {"repeats": 3}
    assert data["repeats"] == {"x": [0.1, 0.3, 0.2]}
    assert data["headline"] == {"x / y": 2.0} and data["results"] == {"points": [1, 2]}
    assert data["note"] == "extra field"
    assert {"torch", "torch_threads", "gpu"} <= set(data["machine"])


def test_machine_spice_facts_never_fail(bench):
    """Where a tool is missing its version is None; the record is still written."""
    facts = bench("_record").machine(spice=True)
    assert {"ngspice", "sky130_models", "pyspice"} <= set(facts)


def test_load_1min_reads_both_forms(bench):
    record = bench("_record")
    assert record.load_1min([0.5, 1.0, 2.0]) == 0.5
    assert record.load_1min(0.7) == 0.7 and record.load_1min(None) is None


def _readme(tables, tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n" + "".join(
        f"## {s}\n\nold text\n{tables.begin_marker(s)}\nstale\n{tables.end_marker(s)}\n\nafter {s}\n\n"
        for s in (*tables.SCRIPTS, tables.ENERGY)))
    return readme


def _fake_result(record, results: Path, script: str, name: str, headline: dict) -> Path:
    parser = record.parser(f"{script}.py", None)
    record.add_arguments(parser)
    argv = ["--name", name, "--results-dir", str(results)]
    return record.Recorder(f"{script}.py", parser.parse_args(argv), argv).write(
        machine={"cpus": 2, "processor": "Test CPU", "gpu": None}, headline=headline, results={},
        repeats={"t": [1.0, 2.0]})


def test_tables_regenerate_and_check(bench, tmp_path):
    record, tables = bench("_record"), bench("tables")
    assert set(tables.SCRIPTS) == set(SCRIPTS)
    results = tmp_path / "results"
    _fake_result(record, results, "dstd_vs_exact", "a", {"n_in": 3000, "time exact / DSTD": 41.234})
    _fake_result(record, results, "dstd_vs_exact", "b", {"n_in": 1000, "device": "cuda"})
    # a file in the format recorded before _record (benchmarks/results held it until commit 908e57d)
    old = json.loads((Path(__file__).parent / "data" / "demo_fidelity_old_format.json").read_text())
    (results / "demo_fidelity_old.json").write_text(json.dumps(old))  # recorded before _record
    readme = _readme(tables, tmp_path)

    assert run_script("tables", "--readme", readme, "--results-dir", results, "--check").returncode == 1
    proc = run_script("tables", "--readme", readme, "--results-dir", results)
    assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    assert "stale" not in text and "old text" in text and "after spice_throughput" in text
    block = text.split(tables.begin_marker("dstd_vs_exact"))[1].split(tables.end_marker("dstd_vs_exact"))[0]
    lines = block.strip().splitlines()
    assert lines[0] == ("| result | date | machine | load 1-min before / after | n_in | time exact / DSTD "
                        "| device |")
    assert len(lines) == 4  # header, rule, one row per file
    assert lines[2].startswith("| [a](results/dstd_vs_exact_a.json) | ")
    assert "| Test CPU, 2 cpus |" in lines[2] and lines[2].endswith("| 3000 | 41.2 | - |")
    assert lines[3].endswith("| 1000 | - | cuda |")
    demo = text.split(tables.begin_marker("demo_fidelity"))[1].split(tables.end_marker("demo_fidelity"))[0]
    assert "[default-demo](results/demo_fidelity_old.json) | - | " in demo and "| 24.4 | 1.8 | 2.09 | 13.5 |" in demo
    spice = text.split(tables.begin_marker("spice_throughput"))[1].split(tables.end_marker("spice_throughput"))[0]
    assert spice.strip() == tables.EMPTY == "no result recorded yet"
    assert run_script("tables", "--readme", readme, "--results-dir", results, "--check").returncode == 0

    _fake_result(record, results, "spice_throughput", "latest", {"full / minimal": 30.0})
    proc = run_script("tables", "--readme", readme, "--results-dir", results, "--check")
    assert proc.returncode == 1 and "out of date" in proc.stderr
    assert readme.read_text() == text  # --check writes nothing


def test_table_columns_keep_their_order_when_a_newer_record_sorts_first(bench, tmp_path):
    """Columns come in the order the records first named them, oldest first: a newer record that
    sorts first by name and lacks some keys appends what it adds and moves no column."""
    record, tables = bench("_record"), bench("tables")
    results = tmp_path / "results"
    for name, head, stamp in (("b-old", {"x": 1, "y": 2, "z": 3}, "2026-01-01"),
                              ("a-new", {"x": 4, "z": 5, "w": 6}, "2026-02-01")):
        path = _fake_result(record, results, "dstd_vs_exact", name, head)
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "timestamp": stamp + "T00:00:00+00:00"}))
    lines = tables.table(results, "dstd_vs_exact", tmp_path).splitlines()
    assert lines[0].endswith("| x | y | z | w |")
    assert lines[2].startswith("| [a-new]") and lines[2].endswith("| 4 | - | 5 | 6 |")


def test_tables_refuse_a_readme_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    proc = run_script("tables", "--readme", readme, "--results-dir", tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "table:demo_fidelity" in proc.stderr


def test_benchmarks_readme_is_generated_from_the_results():
    proc = run_script("tables", "--check")
    assert proc.returncode == 0, proc.stderr


def test_demo_fidelity_records_through_the_shared_writer(bench, tmp_path):
    """A new record keeps the fields of the files recorded before (they still load) and adds
    the common ones; both kinds feed the top-level README's table and benchmarks/tables.py."""
    old = json.loads((BENCH / "results" / "demo_fidelity_reduced-ci.json").read_text())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(old["summary"]))
    (run_dir / "config.json").write_text(json.dumps(old["config"]))
    results = tmp_path / "results"
    proc = run_script("demo_fidelity", "record", run_dir, "--name", "new", "--results-dir", results,
                      "--wall-s", "60", "--load-before", "0.5", "--load-after", "1.5", "--note", "test")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((results / "demo_fidelity_new.json").read_text())
    assert set(old) <= set(data) and FIELDS <= set(data)
    assert (data["summary"], data["config"], data["note"]) == (old["summary"], old["config"], "test")
    assert data["wall_s"] == 60 and data["layers"] is None
    assert (data["load_average_before"], data["load_average_after"]) == (0.5, 1.5)  # the run's, not the recording's
    assert data["headline"]["demo wall min"] == 1.0
    (results / "demo_fidelity_reduced-ci.json").write_text(json.dumps(old))
    demo = bench("demo_fidelity")
    fidelity = demo.table(results)  # the top-level README's tables
    assert fidelity.count("| new |") == fidelity.count("| reduced-ci |") > 3  # same summary, one run each
    tables = bench("tables")
    assert tables.table(results, "demo_fidelity", tmp_path).count("\n") == 3


def test_energy_table_puts_measured_runs_beside_the_cited_figures(bench, tmp_path):
    """A demo record with energy gives fJ per synop (all sources, and the core's groups only)
    and pJ per inference and neuron; a published TOPS/W becomes 2000 / (TOPS/W) fJ per MAC."""
    record, tables = bench("_record"), bench("tables")
    results = tmp_path / "results"
    path = _fake_result(record, results, "demo_fidelity", "e", {"bottom-up": 1.0})
    data = json.loads(path.read_text())
    groups = {"array_neurons": 1e-12, "neuron_bias": 3e-12, "synapse_bias": 0.5e-12, "input_drivers": 4.5e-12}
    data["summary"] = {"netlist_kind": "schematic", "energy_per_synop_j": 9e-12 / 30,
                       "energy": {"energy_per_inference_j": 9e-12, "n_synops_per_inference": 30.0,
                                  "per_group": [{"group": g, "energy_j": e} for g, e in groups.items()]}}
    data["config"] = {"hidden": [5], "n_outputs": 5}
    path.write_text(json.dumps(data))
    published = tmp_path / "published.json"
    published.write_text(json.dumps({"entries": [
        {"citation": "A. Author, \"Macro\", 2024", "kind": "SRAM", "precision": "4b", "reported": "50 TOPS/W",
         "node": "65 nm", "evidence": "silicon", "tops_per_w": [40.0, 50.0]},
        {"citation": "B. Author, \"Chip\", 2024", "kind": "TTFS", "precision": "analog", "node": "90 nm",
         "reported": "4.74 pJ/inference/neuron", "evidence": "silicon", "pj_per_inference_per_neuron": 4.74}]}))
    lines = tables.energy_table(results, tmp_path, published).splitlines()
    assert len(lines) == 5  # header, rule, the run, two published
    assert lines[2].startswith("| imcpnn [e](results/demo_fidelity_e.json): schematic |")
    assert lines[2].endswith("| 300 (core 133) | 0.9 |")  # 9 pJ / 30 synops; 4 pJ core / 30; 9 pJ / 10 neurons
    assert lines[3].endswith("| 65 nm | silicon | 40-50 | - |") and lines[4].endswith("| - | 4.74 |")
    assert tables.energy_table(tmp_path / "none", tmp_path, published).count("\n") == 3
    assert "Xuan" in tables.energy_table(tmp_path / "none", tmp_path)  # the shipped file reads


def test_variation_tables_read_only_variation_records(bench, tmp_path):
    """The README's variation tables come from the variation records alone (a
    variation_fashion_mnist file shares the name prefix), one Monte Carlo row per network, one
    corner row per corner; the recovered fraction is the SPICE one."""
    variation, record = bench("variation"), bench("_record")
    shipped = json.loads((BENCH / "results" / "variation_default.json").read_text())
    results = tmp_path / "results"
    results.mkdir()
    (results / "variation_default.json").write_text(json.dumps(shipped))
    _fake_result(record, results, "variation_fashion_mnist", "x", {"recovered": 0.9})
    text = variation.table(results)
    v = shipped["variation"]
    assert text.count("| default | ") == 3 + len(v["corners"]) + len(v["mc"]["term_budget_plain"])
    assert "| x |" not in text
    mc, nominal = v["mc"], variation.nominal_spice_accuracy(v)
    assert variation.recovered_fraction(v) == pytest.approx(
        (mc["mean_accuracy_spice_hwa"] - mc["mean_accuracy_spice_plain"]) / (nominal - mc["mean_accuracy_spice_plain"]))
    assert variation.table(tmp_path / "none") == "No variation run recorded yet."


def test_run_folder_table_check_writes_nothing(bench, tmp_path):
    """``variation.py table --readme F --check`` (benchmarks/_record.run_folder_cli) exits 0 when
    F's block is what the results give, 1 with one line naming the fix when it is not, and never
    writes F; without --check it rewrites the block."""
    variation = bench("variation")
    results = tmp_path / "results"
    results.mkdir()
    (results / "variation_default.json").write_text((BENCH / "results" / "variation_default.json").read_text())
    readme = tmp_path / "README.md"
    stale = f"intro\n{variation.BEGIN}\nold table\n{variation.END}\nafter\n"
    readme.write_text(stale)
    proc = run_script("variation", "table", "--readme", readme, "--results-dir", results, "--check")
    assert proc.returncode == 1 and readme.read_text() == stale
    assert proc.stderr.strip().endswith(f"run variation.py table --readme {readme}") and len(proc.stderr.splitlines()) == 1
    assert run_script("variation", "table", "--readme", readme, "--results-dir", results).returncode == 0
    text = readme.read_text()
    assert "old table" not in text and variation.table(results) in text and text.endswith("after\n")
    assert run_script("variation", "table", "--readme", readme, "--results-dir", results, "--check").returncode == 0


def test_network_tran_settings_reads_ngspice_accounting(bench):
    """The profile's split of ngspice's analysis time, from the lines ``.options acct`` prints (the
    last of each, as in a log of ngspice 39); "Matrix load time" is the whole run's, not read."""
    nts = bench("network_tran_settings")
    log = ("Total iterations = 21806\nTransient iterations = 21776\nTransient timepoints = 6843\n"
           "Accepted timepoints = 4983\nRejected timepoints = 1860\n"
           "Total analysis time (seconds) = 12.275\nMatrix load time = 9.138\n"
           "Transient load time = 9.119\nTransient solve time = 0.739\n"
           "Transient iterations for the last time point = 0\n")
    acct = nts.accounting(log)
    assert acct["load_s"] == 9.119 and acct["solve_s"] == 0.739 and acct["iterations"] == 21776
    assert acct["other_s"] == pytest.approx(12.275 - 9.119 - 0.739)
    assert nts.accounting("no accounting here") == {}
    assert "acct" in nts.SETTINGS[nts.PROFILE][1] and nts.SETTINGS[nts.PROFILE][0] == nts.SETTINGS[nts.DEFAULT][0]


def test_variation_corner_rows_of_both_record_formats(bench):
    """A corner row recorded before the circuit terms were re-measured per point holds the
    devices-only re-mapping under the contract's keys; a newer one holds both variants."""
    variation = bench("variation")
    old = {"accuracy_spice_recharacterized": 0.786, "rmse_bottom_up_ns": 60.6}
    assert variation.corner_variants(old) == ((0.786, 60.6), (None, None))
    new = {**old, "accuracy_spice_devices_only": 0.5, "rmse_bottom_up_devices_only_ns": 70.0}
    assert variation.corner_variants(new) == ((0.5, 70.0), (0.786, 60.6))


#: (script, bad arguments, a word the one error line names)
BAD_ARGS = [
    ("dstd_vs_exact", ["--n-in", "100,x"], "--n-in"),
    ("dstd_vs_exact", ["--repeats", "0"], "--repeats"),
    ("dstd_vs_exact", ["--name", "../up"], "--name"),
    ("fashion_mnist_mlp", [], "--out"),
    ("fashion_mnist_mlp", ["--out", "x", "--e-rev", "2.8"], "--e-rev"),
    ("fashion_mnist_mlp", ["--out", "x", "--time-budget-s", "0"], "--time-budget-s"),
    ("fashion_mnist_mlp", ["--out", "x", "--noise-sigma", "-0.1"], "--noise-sigma"),
    ("fashion_mnist_mlp", ["--out", "x", "--tau-soft", "0"], "--tau-soft"),
    ("fashion_mnist_mlp", ["--out", "x", "--gamma", "-1"], "--gamma"),
    ("fashion_mnist_mlp", ["--out", "x", "--gamma", "inf"], "gamma=inf"),
    ("fashion_mnist_mlp", ["--out", "x", "--lr", "inf"], "lr=inf"),
    ("fashion_mnist_cnn", [], "--out"),
    ("fashion_mnist_cnn", ["--out", "x", "--lr", "-1"], "--lr"),
    ("model_vs_ngspice", ["--characterization", "/nonexistent.json"], "--characterization"),
    ("model_vs_ngspice", ["--n-samples", "-1"], "--n-samples"),
    ("network_tran_settings", ["--settings", "reference,bogus"], "bogus"),
    ("network_tran_settings", ["--jobs", "0"], "--jobs"),
    ("network_tran_settings", ["--n-random", "0"], "--n-random"),
    ("network_tran_settings", ["--demo-dir", "."], "stages/evaluate_bottom_up.json"),
    ("network_column_split", ["--drives", "ramps,sideways"], "--drives"),
    ("network_column_split", ["--drives", "replay:-1"], "--drives"),
    ("network_column_split", ["--n-random", "0"], "--n-random"),
    ("network_column_split", ["--demo-dir", "."], "stages/evaluate_bottom_up.json"),
    ("hwa_recipes", ["--work-dir", "w"], "--run"),
    ("hwa_recipes", ["--run", "/nonexistent", "--work-dir", "w"], "--run"),
    ("hwa_recipes", ["--run", ".", "--work-dir", "w", "--recipes", "[1]"], "--recipes"),
    ("hwa_recipes", ["--run", ".", "--work-dir", "w"], "variation"),
    ("layer_columns", [], "--run"),
    ("layer_columns", ["--run", "/nonexistent"], "--run"),
    ("layer_columns", ["--run", ".", "--workers", "1,0"], "--workers"),
    ("layer_columns", ["--run", "."], "not a finished training run"),
    ("variation_fashion_mnist", ["--work-dir", "x"], "--variation"),
    ("variation_fashion_mnist", ["--variation", "/nonexistent.json", "--work-dir", "x"], "--variation"),
    ("variation_fashion_mnist", ["--variation", __file__, "--work-dir", "x"], "not valid JSON"),
    ("variation_fashion_mnist", ["--variation", __file__], "--work-dir"),
    ("variation_fashion_mnist", ["--variation", __file__, "--work-dir", "x", "--chips", "0"], "--chips"),
    ("variation_fashion_mnist", ["--variation", __file__, "--work-dir", "x", "--hwa-lr", "0"], "--hwa-lr"),
    ("spice_throughput", ["--points", "1"], "--points"),
    ("spice_throughput", ["--results-dir", __file__], "--results-dir"),
    ("demo_fidelity", ["record", "/nonexistent"], "run_dir"),
    ("demo_fidelity", ["table", "--readme", "/nonexistent.md"], "--readme"),
    ("variation", ["table", "--check"], "--check needs --readme"),
    ("tables", ["--results-dir", "/nonexistent"], "--results-dir"),
    ("search_vs_grid", [], "--demo-dir"),
    ("search_vs_grid", ["--demo-dir", "/nonexistent"], "--demo-dir"),
    ("search_vs_grid", ["--demo-dir", "."], "no finished top_down search"),
    ("search_vs_grid", ["--demo-dir", ".", "--pipeline", "sideways"], "--pipeline"),
    ("search_vs_grid", ["--demo-dir", ".", "--half-width", "0"], "--half-width"),
]


@pytest.mark.parametrize(("script", "argv", "word"), BAD_ARGS, ids=[f"{s}:{' '.join(a)}" for s, a, _ in BAD_ARGS])
def test_bad_arguments_are_refused_in_one_line(bench, capsys, script, argv, word):
    with pytest.raises(SystemExit) as exit_info:
        bench(script).main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"{script}.py") and word in err


def test_search_vs_grid_builds_its_box_and_compares(bench):
    """The grid is the box of resolution steps around the search's answer; the comparison says
    where the grid's lowest RMSE lies and how much lower it is (unmappable points ignored)."""
    svg = bench("search_vs_grid")
    box = svg.grid_points((1.33, 1.15), 0.01, 1)
    assert len(box) == 9 and (1.32, 1.14) in box and (1.34, 1.16) in box and (1.33, 1.15) in box
    assert svg.parse_points("1.30,1.12; 1.29,1.11", 2) == [(1.30, 1.12), (1.29, 1.11)]
    with pytest.raises(ValueError, match="2 coordinates"):
        svg.parse_points("1.0,2.0", 1)
    head = svg.compare((1.32, 1.14), 24.25, {(1.31, 1.13): 24.23, (1.32, 1.14): 24.25, (1.5, 1.5): None}, 0.01)
    assert head["grid best"] == [1.31, 1.13] and head["grid steps apart"] == 1
    assert head["search - grid ns"] == pytest.approx(0.02) and head["grid RMSE ns"] == "24.230"


def test_bad_argument_on_the_command_line_has_no_traceback():
    proc = run_script("dstd_vs_exact", "--n-in", "0")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "dstd_vs_exact.py: error: argument --n-in: '0': must be >= 1, got 0\n"


def test_dstd_vs_exact_smallest_run_records_raw_repeats(tmp_path):
    args = ["--n-in", "10", "--n-out", "10", "--batch", "2", "--repeats", "2", "--out", tmp_path / "points.json",
            "--results-dir", tmp_path / "results", "--name", "tiny"]
    proc = run_script("dstd_vs_exact", *args)
    assert proc.returncode == 0, proc.stderr
    assert "time x" in proc.stdout  # the printed table, ratios side by side
    data = json.loads((tmp_path / "results" / "dstd_vs_exact_tiny.json").read_text())
    check_common_fields(data, "dstd_vs_exact", "tiny")
    assert {"torch", "torch_threads", "gpu"} <= set(data["machine"])
    assert set(data["repeats"]) == {"dstd:10", "exact:10", "layer:10", "matmul:10"}
    assert all(len(times) == 2 for times in data["repeats"].values())
    assert data["parameters"]["n_in"] == [10] and data["parameters"]["repeats"] == 2
    points = data["results"]["points"]
    assert points["dstd:10"]["time_s"] == statistics.median(points["dstd:10"]["times_s"])
    assert len(points["exact:10"]["load_average_before"]) == 3
    head = data["headline"]
    assert head["n_in"] == 10 and "time exact / DSTD" in head
    assert head["layer / matmul"] == points["layer:10"]["time_s"] / points["matmul:10"]["time_s"]
    assert data["results"]["resumed_points"] == []

    proc = run_script("dstd_vs_exact", *args)  # resumed: the points come from --out
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "results" / "dstd_vs_exact_tiny.json").read_text())
    assert sorted(again["results"]["resumed_points"]) == ["dstd:10", "exact:10", "layer:10", "matmul:10"]
    assert again["repeats"] == data["repeats"]


@pytest.mark.slow
def test_spice_throughput_smallest_run_records_raw_repeats(tmp_path):
    proc = run_script("spice_throughput", "--points", "2", "--repeats", "2", "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout
    data = json.loads((tmp_path / "spice_throughput_latest.json").read_text())
    check_common_fields(data, "spice_throughput", "latest")
    assert data["machine"]["ngspice"] and data["machine"]["sky130_models"]
    for key in ("full_lib", "minimal_set", "one_deck", "runs_sequential", "run_many"):
        assert len(data["repeats"][key]) == 2 and all(t > 0 for t in data["repeats"][key])
    assert data["headline"]["N"] == 2 and data["headline"]["full / minimal"] > 0
    assert data["parameters"] == {"points": 2, "repeats": 2}


@pytest.fixture
def characterization_json(tmp_path) -> Path:
    """A fresh default sky130 characterization (ngspice, seconds) as a JSON file."""
    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize

    path = tmp_path / "characterization.json"
    path.write_text(json.dumps(characterize(CharacterizationConfig(), cache_dir=tmp_path / "cache",
                                            progress=False)[0]))
    return path


@pytest.mark.slow
def test_model_vs_ngspice_smallest_run_records_raw_repeats(tmp_path, characterization_json):
    proc = run_script("model_vs_ngspice", "--n-samples", "1", "--repeats", "3",
                      "--characterization", characterization_json, "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ngspice / path" in proc.stdout
    data = json.loads((tmp_path / "model_vs_ngspice_latest.json").read_text())
    check_common_fields(data, "model_vs_ngspice", "latest")
    assert {k: len(v) for k, v in data["repeats"].items()} == {
        "model exact": 3, "model DSTD (M = 30)": 3, "ngspice (one batched run)": 1}
    assert data["headline"]["ngspice / exact"] == data["headline"]["ngspice s"] / data["headline"]["exact s"]


def test_network_tran_settings_charges_time_points_to_the_events_before_them(bench):
    """Two phase-edge corners 1 ns apart are one event, an input's lone edge another, a neuron's
    rising output a third; a point before the first event belongs to none, and the points within
    2 ns after an event are counted."""
    nts = bench("network_tran_settings")
    deck = ("Vrst0 rst0 0 PWL(0.0 1.8 1e-06 1.8 1.001e-06 0.0)\n"
            "VIN0 s0_0 0 PWL(0.0 0.0 2e-06 0.0 2.001e-06 1.8)\n")
    time_s = np.array([0.5e-6, 1.0e-6, 1.0005e-6, 1.001e-6, 1.5e-6, 2.0e-6, 2.0005e-6, 2.5e-6, 2.6e-6, 3e-6])
    spike = {"v(s1_0)": np.where(time_s >= 2.6e-6, 1.8, 0.0)}
    out = nts.points_by_event(deck, time_s, spike, 1.8)
    # t = 0 (both sources' first corner) is an event too: it owns the point at 0.5 us
    assert out["phase or input edges"] == {"events": 2, "points": 5, "points_per_event": 2.5}
    assert out["input edges only"] == {"events": 1, "points": 3, "points_per_event": 3.0}
    assert out["neuron spikes"] == {"events": 1, "points": 2, "points_per_event": 2.0}
    assert out["total_points"] == 10 and out["points_within_2ns_of_an_event"] == 6
    totals = nts.event_totals([{"points_by_event": out}, {"setting": "x"}])
    assert totals["events"] == 4 and totals["points_per_event"] == 2.5 and totals["share_within_2ns"] == 0.6


@pytest.mark.slow
def test_network_tran_settings_smallest_run_records_cpu_seconds(tmp_path, characterization_json):
    proc = run_script("network_tran_settings", "--n-random", "1", "--n-samples", "1",
                      "--settings", "reference,5ns (old default),20ns", "--cache", tmp_path / "spice",
                      "--characterization", characterization_json, "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "network_tran_settings_latest.json").read_text())
    check_common_fields(data, "network_tran_settings", "latest")
    assert {k: len(v) for k, v in data["repeats"].items()} == {"reference": 1, "5ns (old default)": 1, "20ns": 1}
    assert [row["setting"] for row in data["results"]["summary"]] == ["reference", "5ns (old default)", "20ns"]
    assert data["headline"]["sets x samples"] == "1 x 1" and "old default CPU s/sample" in data["headline"]


def test_column_split_thins_within_its_tolerance_and_keeps_ramps_increasing(bench):
    """The output columns' drives: a thinned replay stays within its tolerance of the recorded
    trace (0 keeps every point off a straight line); the ramps go through the 10 % and 90 %
    crossings of a trace made of straight edges, extended to the rails; ramps that overlap (a
    spike that runs into the window's end) still give increasing PWL times."""
    ncs = bench("network_column_split")
    t = np.linspace(0.0, 1e-6, 2001)
    v = 0.9 * (1 + np.tanh((t - 0.5e-6) / 20e-9))  # a smooth 0 -> 1.8 V edge
    for tol in (0.05, 0.01, 0.001):
        keep = ncs.thin(t, v, tol)
        assert keep[0] and keep[-1] and keep.sum() < len(t)
        assert np.max(np.abs(np.interp(t, t[keep], v[keep]) - v)) <= tol
    assert ncs.thin(t, v, 0.0).sum() > ncs.thin(t, v, 0.001).sum()
    # straight edges: up over [100, 102] ns, down over [700, 701] ns
    trace = np.interp(t, [0, 100e-9, 102e-9, 700e-9, 701e-9, 1e-6], [0, 0, 1.8, 1.8, 0, 0])
    (up, a0, a1), (down, b0, b1) = ncs.ramp_edges(t, trace, 1.8)
    assert (up, down) == (True, False)
    assert np.allclose([a0, a1, b0, b1], [100e-9, 102e-9, 700e-9, 701e-9], atol=1e-12)
    pts = ncs.ramp_points([(True, 10e-9, 12e-9), (False, 11e-9, 13e-9)], False, 1.8, 0.0)
    assert all(b[0] > a[0] for a, b in zip(pts, pts[1:]))
    assert ncs.parse_drive("replay:0.02") == ("replay", 0.02) and ncs.parse_drive("ramps") == ("ramps", None)


@pytest.mark.slow
def test_column_split_smallest_run_reproduces_the_whole_deck_with_an_exact_replay(tmp_path, characterization_json):
    """One random weight set, one sample. Replaying the hidden neurons' recorded outputs point
    for point (replay:0) leaves the split only what it cannot see (the next layer's membranes
    behind the hidden outputs' load; other decks, so other time steps): its output error against
    the reference may exceed the whole deck's own (the default step control's, 0.05 to 0.2 ns in
    the records) by at most 0.05 ns, half the 0.1 ns budget network_tran_settings.py holds every
    setting to. A wrong shift, load or edge is off by nanoseconds (the ramps' drive: 1.3 ns)."""
    proc = run_script("network_column_split", "--n-random", "1", "--n-samples", "1", "--drives", "ramps,replay:0",
                      "--cache", tmp_path / "spice", "--characterization", characterization_json,
                      "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "network_column_split_latest.json").read_text())
    check_common_fields(data, "network_column_split", "latest")
    assert {k: len(v) for k, v in data["repeats"].items()} == {"whole deck": 1, "ramps": 1, "replay:0": 1}
    by = {row["drive"]: row for row in data["results"]["summary"]}
    assert by["replay:0"]["spiked_mismatch"] == 0
    assert by["replay:0"]["out_rmse_ns"] <= by["whole deck"]["out_rmse_ns"] + 0.05
    assert data["headline"]["sets x samples"] == "1 x 1" and "ramps CPU / whole" in data["headline"]


@pytest.mark.slow
def test_layer_columns_smallest_run_records_cost_ratio_and_projection(tmp_path, characterization_json):
    """On a digits MLP (64 inputs: seconds per deck) rather than Fashion-MNIST's 784."""
    from imcpnn.cli import main

    assert main(["train", "--dataset", "digits", "--arch", "mlp:3", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    proc = run_script("layer_columns", "--run", tmp_path / "run", "--characterization", characterization_json,
                      "--columns", "2", "--samples", "1", "--cluster-cores", "10", "--results-dir", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    assert "projection:" in proc.stdout
    data = json.loads((tmp_path / "res" / "layer_columns_latest.json").read_text())
    check_common_fields(data, "layer_columns", "latest")
    assert set(data["repeats"]) == {"dask_1_workers_wall_s", "dask_2_workers_wall_s"}
    results = data["results"]
    assert results["n_inputs"] == 64 and results["columns"] == [0, 1] and results["same_spike_times_every_run"]
    cost = results["cost_s_per_column_sample"]
    assert cost["ngspice_s"] > cost["ngspice_analysis_s"] > 0 and cost["cpu_s_measured"] > 0
    assert results["wall_ratio_1_to_2_workers"] == data["headline"]["wall 1 / 2 workers"] > 0
    proj = results["projection"]
    assert proj["cluster_cores"] == 10 and proj["wall_h"] >= proj["wall_h_ideal"] > 0
    assert proj["serial_core_h"] == pytest.approx(proj["s_per_column_sample"] * 400 * 10000 / 3600)


@pytest.mark.slow
def test_fashion_mnist_smallest_run_records_every_epoch(tmp_path):
    from imcpnn.pnn.data import FASHION_MNIST_DIR

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR}")
    proc = run_script("fashion_mnist_mlp", "--epochs", "1", "--subset", "64", "--test-subset", "64",
                      "--out", tmp_path / "run", "--results-dir", tmp_path / "results", "--eval-variants")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("SUMMARY ")
    data = json.loads((tmp_path / "results" / "fashion_mnist_mlp_latest.json").read_text())
    check_common_fields(data, "fashion_mnist_mlp", "latest")
    assert len(data["repeats"]["train_seconds_per_epoch"]) == 1
    assert len(data["results"]["history"]) == 1 and data["headline"]["epochs"] == 1
    # the evaluation variants: the training's own evaluation (M = 30, noise, its seed) among them
    summary = data["results"]["summary"]
    variants = summary["evaluation_variants"]
    assert set(variants) == {"dstd M=10, noise", "dstd M=30, noise", "dstd M=100, noise", "dstd M=30, no noise",
                             "exact, no noise"}
    assert variants["dstd M=30, noise"] == summary["test_accuracy"]
    assert all(0 <= a <= 1 for a in variants.values())


@pytest.mark.slow
def test_fashion_mnist_cnn_smallest_run_records_the_vgg(tmp_path):
    from imcpnn.pnn.data import FASHION_MNIST_DIR

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR}")
    proc = run_script("fashion_mnist_cnn", "--epochs", "2", "--subset", "32", "--test-subset", "32",
                      "--time-budget-s", "0.001", "--out", tmp_path / "run", "--results-dir", tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "results" / "fashion_mnist_cnn_latest.json").read_text())
    check_common_fields(data, "fashion_mnist_cnn", "latest")
    summary = data["results"]["summary"]
    assert (summary["arch"], summary["epochs"], summary["epochs_planned"], summary["stopped_by_budget"]) == (
        "vgg7", 1, 2, True)


def test_time_budget_trains_whole_epochs_and_a_rerun_continues(bench, tmp_path):
    """``--time-budget-s``: the first epoch always runs, none after it once the next would end past
    the budget; without a budget the same folder continues to ``--epochs``."""
    from imcpnn.pnn import DataConfig, ModelConfig, OptimConfig, TrainConfig

    mlp = bench("fashion_mnist_mlp")
    config = TrainConfig(data=DataConfig("iris"), model=ModelConfig(arch="mlp:8"),
                         optim=OptimConfig(epochs=3, batch_size=16))
    result, stopped = mlp.train_within(config, str(tmp_path / "run"), 1e-6)
    assert stopped and len(result.history) == 1
    result, stopped = mlp.train_within(config, str(tmp_path / "run"), 3600.0)
    assert not stopped and len(result.history) == 3
    result, stopped = mlp.train_within(config, str(tmp_path / "run"), 1e-6)  # finished: nothing more
    assert not stopped and len(result.history) == 3


def test_dstd_vs_exact_times_cpu_points_with_the_default_allocator(bench, monkeypatch):
    """CPU memory comes from a worker with the fixed mmap threshold, CPU time from one without it
    (the threshold makes every large tensor fresh pages and slows the timed passes); CUDA needs one
    worker for both."""
    dve = bench("dstd_vs_exact")
    calls = []

    def fake_run(cmd, capture_output, text, env):
        measure = cmd[cmd.index("--measure") + 1]
        calls.append((measure, env.get("MALLOC_MMAP_THRESHOLD_")))
        out = {"memory": {"peak_bytes": 5}, "time": {"time_s": 1.0, "times_s": [1.0], "repeats": 1},
               "both": {"peak_bytes": 7, "time_s": 2.0, "times_s": [2.0], "repeats": 1}}[measure]
        return subprocess.CompletedProcess(cmd, 0, json.dumps(out) + "\n", "")

    monkeypatch.setattr(dve.subprocess, "run", fake_run)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    settings = {"n_out": 2, "batch": 1, "steps": 10, "repeats": 1, "device": "cpu"}
    assert dve.measure_point("dstd", 10, settings) == {"peak_bytes": 5, "time_s": 1.0, "times_s": [1.0], "repeats": 1}
    assert calls == [("memory", "65536"), ("time", None)]
    calls.clear()
    assert dve.measure_point("dstd", 10, settings | {"device": "cuda"})["peak_bytes"] == 7
    assert calls == [("both", None)]


@pytest.mark.parametrize("method", ["dstd", "exact", "layer", "matmul"])
def test_dstd_vs_exact_methods_give_finite_weight_gradients(bench, method):
    """Each timed pass is a real forward+backward: a finite, nonzero gradient reaches the inputs
    (the spike times; the floor's soft steps stand in for them) and the weights (the layer's own
    copy for ``layer``). Positive weights make every neuron fire: with signed random weights about
    one draw in 200 left every output silent, and a silent layer rightly passes no gradient."""
    dve = bench("dstd_vs_exact")
    gen = torch.Generator().manual_seed(0)
    t_in = torch.rand(3, 20, generator=gen).requires_grad_(True)
    w = (torch.rand(20, 5, generator=gen) / 5).requires_grad_(True)
    dve.pass_function(method, t_in, w, 10, "cpu")()
    grads = {"layer": [t_in.grad], "matmul": [w.grad]}.get(method, [t_in.grad, w.grad])
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.fixture
def variation_json(tmp_path) -> Path:
    """A variation_model.json as ``imcpnn variation`` writes it (every term nonzero)."""
    from imcpnn.pnn import VariationModel

    path = tmp_path / "variation_model.json"
    path.write_text(json.dumps(VariationModel(
        w_abs=(0.01, 0.1, 1.0), sigma_rel_plus=(0.3, 0.1, 0.03), sigma_rel_minus=(0.35, 0.12, 0.04),
        sigma_e_plus_rel=0.02, sigma_e_minus_rel=0.02, sigma_threshold=0.02, sigma_ramp_rel=0.03,
        source="tests/test_benchmarks.py").to_dict()))  # fmt: skip
    return path


def test_variation_fashion_mnist_refuses_an_arch_with_conv_layers(bench, capsys, variation_json):
    with pytest.raises(SystemExit) as exit_info:
        bench("variation_fashion_mnist").main(["--variation", str(variation_json), "--work-dir", "x",
                                               "--arch", "vgg7"])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "conv layers" in err


@pytest.mark.slow
def test_variation_fashion_mnist_smallest_run_records_three_networks(tmp_path, variation_json):
    from imcpnn.pnn.data import FASHION_MNIST_DIR

    if not Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR}")
    args = ["--variation", variation_json, "--work-dir", tmp_path / "runs", "--subset", "200", "--test-subset", "100",
            "--epochs", "1", "--hwa-epochs", "1", "--chips", "2", "--arch", "mlp:10", "--threads", "1",
            "--results-dir", tmp_path / "results"]  # fmt: skip
    proc = run_script("variation_fashion_mnist", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("SUMMARY ")
    data = json.loads((tmp_path / "results" / "variation_fashion_mnist_latest.json").read_text())
    check_common_fields(data, "variation_fashion_mnist", "latest")
    networks = data["results"]["networks"]
    assert list(networks) == ["plain", "loss_only", "hwa"]
    for name, row in networks.items():
        assert len(row["chip_accuracies"]) == 2 and row["chip_mean"] == statistics.fmean(row["chip_accuracies"])
        assert row["chip_std"] == pytest.approx(statistics.stdev(row["chip_accuracies"]))
        assert row["epochs"] == 1 and row["train_wall_s"] > 0 and row["eval_wall_s"] > 0
        assert (tmp_path / "runs" / name / "checkpoint.pt").is_file()
        assert len(data["repeats"][f"{name} train s / epoch"]) == 1
    head, plain, hwa = data["headline"], networks["plain"], networks["hwa"]
    assert (head["nominal plain"], head["chips mean plain"]) == (plain["nominal_accuracy"], plain["chip_mean"])
    assert (head["chips mean HWA"], head["nominal HWA"]) == (hwa["chip_mean"], hwa["nominal_accuracy"])
    assert head["chips mean loss-only"] == networks["loss_only"]["chip_mean"] and head["n_train"] == 200
    gap = plain["nominal_accuracy"] - plain["chip_mean"]
    assert head["recovered"] == (None if gap <= 0 else pytest.approx((hwa["chip_mean"] - plain["chip_mean"]) / gap))
    hwa_config = json.loads((tmp_path / "runs" / "hwa" / "config.json").read_text())
    assert hwa_config["variation"]["source"] == "tests/test_benchmarks.py"
    assert (hwa_config["loss"]["t_ref"], hwa_config["loss"]["gamma"]) == (0.5, 1.0)
    assert json.loads((tmp_path / "runs" / "loss_only" / "config.json").read_text())["variation"] is None

    proc = run_script("variation_fashion_mnist", *args)  # resumed: every run folder is finished
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "results" / "variation_fashion_mnist_latest.json").read_text())
    assert again["headline"] == data["headline"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_dstd_vs_exact_cuda_records_the_gpu(tmp_path):
    proc = run_script("dstd_vs_exact", "--n-in", "10", "--n-out", "10", "--batch", "2", "--repeats", "2",
                      "--device", "cuda", "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "dstd_vs_exact_latest.json").read_text())
    assert data["machine"]["gpu"] and data["headline"]["device"] == "cuda"
    assert all(len(times) == 2 for times in data["repeats"].values())


def test_runs_that_differ_in_their_seed_alone_get_mean_and_spread(bench, tmp_path):
    """Below a script's table: the mean, standard deviation and range of each accuracy over the
    runs whose parameters differ in their seed (and where they ran) alone; a run with other
    parameters is not pooled, and one seed is no spread. An option added later whose value is its
    None default pools with records from before it."""
    record, tables = bench("_record"), bench("tables")
    results = tmp_path / "results"

    def run(name, seed, epochs, acc, threads, *later_option):
        parser = record.parser("fashion_mnist_mlp.py", None)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--threads", type=int)
        if later_option:
            parser.add_argument("--noise-sigma", type=float, default=None)
        record.add_arguments(parser)
        argv = ["--seed", str(seed), "--epochs", str(epochs), "--threads", str(threads), "--name", name,
                "--results-dir", str(results), *later_option[1:]]
        record.Recorder("fashion_mnist_mlp.py", parser.parse_args(argv), argv).write(
            machine={"cpus": 2}, headline={"test accuracy": acc, "epochs": epochs}, results={}, repeats={})

    run("s0", 0, 50, 0.8966, 2)
    run("s1", 1, 50, 0.8953, 1, "later")
    run("short", 2, 5, 0.85, 2)
    run("noisier", 3, 50, 0.88, 2, "later", "--noise-sigma", "0.02")
    found = tables.records(results, "fashion_mnist_mlp")
    assert tables.seed_lines(found) == [
        "Runs that differ in their seed alone, pooled: mean +- standard deviation (range); every set has epochs 50.",
        "", "| seeds | test accuracy |", "|---|---:|",
        "| 0, 1 | 0.8960 +- 0.0009 (0.8953 to 0.8966) |"]
    assert tables.seed_lines(found[:1]) == []
    assert tables.table(results, "fashion_mnist_mlp", tmp_path).endswith("\n".join(tables.seed_lines(found)))


def test_seed_sets_name_the_parameters_they_differ_in(bench, tmp_path):
    """Two sets of seeds: the table names the parameter they differ in per row and the shared one
    above; an off flag (False) pools with a record from before the flag existed."""
    record, tables = bench("_record"), bench("tables")
    results = tmp_path / "results"

    def run(name, seed, e, acc, *flag):
        parser = record.parser("fashion_mnist_mlp.py", None)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--e", type=float)
        parser.add_argument("--epochs", type=int, default=50)
        if flag:
            parser.add_argument("--silent-gradient", action="store_true")
        record.add_arguments(parser)
        argv = ["--seed", str(seed), "--e", str(e), "--name", name, "--results-dir", str(results)]
        record.Recorder("fashion_mnist_mlp.py", parser.parse_args(argv), argv).write(
            machine={"cpus": 2}, headline={"test accuracy": acc}, results={}, repeats={})

    run("a0", 0, 5.0, 0.90)
    run("a1", 1, 5.0, 0.92, "flag added later, off")
    run("b0", 0, 100.0, 0.91)
    run("b1", 1, 100.0, 0.91)
    lines = tables.seed_lines(tables.records(results, "fashion_mnist_mlp"))
    assert lines[0].endswith("every set has epochs 50; - in a parameter's column: the script's default "
                             "(the option not given, or off).")
    assert lines[2:] == ["| seeds | e | test accuracy |", "|---|---|---:|",
                         "| 0, 1 | 5 | 0.9100 +- 0.0141 (0.9000 to 0.9200) |",
                         "| 0, 1 | 100 | 0.9100 +- 0.0000 (0.9100 to 0.9100) |"]


def test_top_level_readme_quotes_its_records(bench):
    """The top-level README's generated tables are those the records give today (the scripts'
    ``table --readme README.md`` leaves the file unchanged), and the demo output it quotes is the
    headline line (imcpnn.verbs.validate.headline) of the record it names: a README number that
    the records no longer hold fails here."""
    from imcpnn.verbs.validate import headline

    record = bench("_record")
    text = (ROOT / "README.md").read_text()
    for name in ("demo_fidelity", "variation"):
        script = bench(name)
        assert record.replace_block(text, script.BEGIN, script.END, script.table()) == text, (
            f"README.md's {name} tables are out of date: run benchmarks/{name}.py table --readme README.md")
    named = re.search(r"numbers of the recorded run \(`(benchmarks/results/demo_fidelity_[\w.-]+\.json)`", text)
    assert named, "README.md no longer names the record its demo output quotes"
    summary = json.loads((ROOT / named.group(1)).read_text())["summary"]
    assert f"\n    {headline(summary)}\n" in text
