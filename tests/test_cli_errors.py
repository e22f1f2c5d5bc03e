"""Expected user mistakes end in one line ``imcpnn <verb>: error: ...`` naming the fix, exit code 2,
no traceback; a real bug shows its traceback plus a line saying it is one (exit code 1).

Every case here fails while the arguments are checked: nothing is simulated or trained.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from imcpnn.circuits.characterization.fit import IdVgTable
from imcpnn.circuits.simulate.weights import load_weights
from imcpnn.cli import main
from imcpnn.errors import ConfigError


def _run(argv: list[str]) -> int:
    """Exit code of ``imcpnn argv`` (argparse's errors exit through SystemExit)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def _error(capsys, verb: str, *words: str) -> str:
    """The one error line on stderr; checks it names ``words`` and that no traceback was printed."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"imcpnn {verb}: error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, err)
    return lines[0]


def _expect(capsys, argv, *words: str) -> str:
    assert _run(argv) == 2
    return _error(capsys, argv[0], *words)


@pytest.fixture
def char(tmp_path):
    """A synthetic characterization.json (exponential I_D(V_G) tables, no SPICE)."""
    v = np.linspace(0.0, 1.0, 101)
    tn = IdVgTable(tuple(v), tuple(np.minimum(1e-12 * np.exp(v / 0.05), 1e-3)))
    vp = np.linspace(0.8, 1.8, 101)
    tp = IdVgTable(tuple(vp), tuple(1e-5 * np.exp(-(vp - 0.8) / 0.05)))
    data = dict(v0=1.3, v_switch=0.45, v_th_circ=0.85, lambda_n=0.4, lambda_p=0.8, lambda_dis=0.4,
                e_plus=1 / 0.34, e_minus=-1 / 0.68, e_dis=1 / 0.34,
                id_vg_n=tn.to_dict(), id_vg_p=tp.to_dict(), id_vg_dis=tn.to_dict())  # fmt: skip
    path = tmp_path / "characterization.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def netlist_dir(tmp_path, char, capsys):
    """The folder `imcpnn netlist` wrote (batch_0.cir + mapping.json) for a 5-5 network."""
    out = tmp_path / "net"
    assert main(["netlist", "--random", "5,5", "--samples", "2", "--characterization", str(char),
                 "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    return out


def test_a_good_netlist_run_still_works(netlist_dir):
    assert (netlist_dir / "batch_0.cir").is_file() and (netlist_dir / "mapping.json").is_file()


# ------------------------------------------------------------------------------------ --weights
def _weights_files(tmp_path) -> dict[str, tuple[str, tuple[str, ...]]]:
    (tmp_path / "w.txt").write_text("0.1 0.2\n0.3 0.4\n")
    np.save(tmp_path / "w.npy", np.zeros((5, 5)))
    np.savez(tmp_path / "strings.npz", w0=np.array([["a", "b"]]), w1=np.array([["c"], ["d"]]))
    np.savez(tmp_path / "gap.npz", w0=np.zeros((5, 5)), w2=np.zeros((5, 5)))
    np.savez(tmp_path / "none.npz", a=np.zeros((5, 5)))
    np.savez(tmp_path / "vector.npz", w0=np.zeros(5))
    np.savez(tmp_path / "chain.npz", w0=np.zeros((5, 4)), w1=np.zeros((3, 2)))
    np.savez(tmp_path / "nan.npz", w0=np.full((2, 2), np.nan))
    (tmp_path / "empty.npz").write_bytes(b"")
    return {
        "missing.npz": ("does not exist", ()),
        "w.txt": ("not a numpy .npz", ("numpy.savez",)),
        "w.npy": ("single array", ("numpy.savez",)),
        "strings.npz": ("not numbers", ("w0",)),
        "gap.npz": ("w1", ("gap",)),
        "none.npz": ("no arrays named w0", ()),
        "vector.npz": ("2-d", ("w0",)),
        "chain.npz": ("w1", ("w0",)),
        "nan.npz": ("nan", ()),
        "empty.npz": ("not a numpy .npz", ()),
    }


@pytest.mark.parametrize("verb", ["netlist", "simulate"])
def test_bad_weights_files(tmp_path, char, capsys, verb):
    for name, (word, more) in _weights_files(tmp_path).items():
        out = tmp_path / f"out_{name}"
        _expect(capsys, [verb, "--weights", tmp_path / name, "--characterization", char, "--out", out],
                "weights file", name, word, *more)  # fmt: skip


def test_load_weights_is_typed_and_refuses_gaps(tmp_path):
    _weights_files(tmp_path)
    with pytest.raises(ConfigError, match="w1"):
        load_weights(tmp_path / "gap.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        load_weights(tmp_path / "missing.npz")
    np.savez(tmp_path / "ok.npz", w1=np.ones((4, 3)), w0=np.zeros((5, 4)), bias=np.zeros(3))
    weights = load_weights(tmp_path / "ok.npz")
    assert [w.shape for w in weights] == [(5, 4), (4, 3)] and weights[1].dtype == float


# ------------------------------------------------------------------------------------- --inputs
@pytest.mark.parametrize("verb", ["netlist", "simulate"])
def test_bad_inputs_files(tmp_path, char, capsys, verb):
    base = [verb, "--random", "5,5", "--characterization", char, "--out", tmp_path / "out"]
    _expect(capsys, [*base, "--inputs", tmp_path / "missing.csv"], "--inputs", "missing.csv", "does not exist")
    header = tmp_path / "header.csv"
    header.write_text("a,b,c,d,e\n0.1,0.2,0.3,0.4,0.5\n")
    _expect(capsys, [*base, "--inputs", header], "--inputs", "header.csv", "header")
    words = tmp_path / "words.csv"
    words.write_text("0.1,0.2,0.3,0.4,0.5\n0.1,x,0.3,0.4,0.5\n")
    _expect(capsys, [*base, "--inputs", words], "--inputs", "words.csv", "line 2")
    (tmp_path / "pickled.npy").write_text("not numpy")
    _expect(capsys, [*base, "--inputs", tmp_path / "pickled.npy"], "--inputs", "pickled.npy")


# ---------------------------------------------------------------------------- --characterization
@pytest.mark.parametrize("verb", ["netlist", "simulate", "validate"])
def test_bad_characterization_files(tmp_path, capsys, verb):
    source = [] if verb == "validate" else ["--random", "5,5"]
    base = [verb, *source, "--out", tmp_path / "out"]
    _expect(capsys, [*base, "--characterization", tmp_path / "missing.json"],
            "--characterization", "missing.json", "does not exist", "imcpnn characterize")  # fmt: skip
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"v0": 1.3, "v_sw')
    _expect(capsys, [*base, "--characterization", truncated],
            "--characterization", "truncated.json", "not valid JSON", "imcpnn characterize")  # fmt: skip
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    _expect(capsys, [*base, "--characterization", listed], "--characterization", "list.json")
    partial = tmp_path / "partial.json"
    partial.write_text('{"v0": 1.3}')
    _expect(capsys, [*base, "--characterization", partial], "--characterization", "partial.json", "lacks")
    assert not (tmp_path / "out" / "stages").exists()  # validate stopped before its first stage


# ---------------------------------------------------------------------- simulate --netlist files
def test_corrupt_mapping_json(netlist_dir, tmp_path, capsys):
    mapping = netlist_dir / "mapping.json"
    good = mapping.read_text()
    argv = ["simulate", "--netlist", netlist_dir / "batch_0.cir", "--out", tmp_path / "sim"]
    mapping.write_text(good[: len(good) // 2])
    _expect(capsys, argv, "mapping.json", "not valid JSON", "imcpnn netlist")
    mapping.write_text('{"foo": 1}')
    _expect(capsys, argv, "mapping.json", "widths", "imcpnn netlist")
    mapping.write_text(json.dumps({**json.loads(good), "t_phase_s": "soon"}))
    _expect(capsys, argv, "mapping.json", "t_phase_s")


def test_edited_netlist_header(netlist_dir, tmp_path, capsys):
    deck = netlist_dir / "batch_0.cir"
    text = deck.read_text()
    argv = ["simulate", "--netlist", deck, "--out", tmp_path / "sim"]
    deck.write_text("* my edited header\n" + text.split("\n", 1)[1])
    _expect(capsys, argv, "batch_0.cir", "first line", "imcpnn netlist")
    deck.write_text(text.replace("widths (5, 5)", "widths (5, 4)", 1))
    _expect(capsys, argv, "batch_0.cir", "widths", "mapping.json")
    deck.write_text("")
    _expect(capsys, argv, "batch_0.cir", "first line")


# ------------------------------------------------------------------------------ number arguments
@pytest.mark.parametrize("verb", ["netlist", "simulate"])
def test_random_needs_two_positive_widths(tmp_path, char, capsys, verb):
    base = [verb, "--characterization", char, "--out", tmp_path / "out"]
    _expect(capsys, [*base, "--random", "5"], "--random", "at least 2", "5,5")
    _expect(capsys, [*base, "--random", "5,0"], "--random", "positive")
    _expect(capsys, [*base, "--random", "5,a"], "--random", "5,5")


@pytest.mark.parametrize("verb", ["netlist", "simulate"])
@pytest.mark.parametrize("option,value", [("--samples", "-3"), ("--samples", "0"), ("--batch-size", "0"),
                                          ("--batch-size", "-1"), ("--samples", "two")])
def test_counts_must_be_positive(tmp_path, char, capsys, verb, option, value):
    out = tmp_path / "out"
    _expect(capsys, [verb, "--random", "5,5", "--characterization", char, "--out", out, option, value],
            option, value, ">= 1")  # fmt: skip
    assert not out.exists()  # nothing written, not an empty success


# ----------------------------------------------------------------------------------------- --out
def _out_cases(tmp_path):
    existing = tmp_path / "a_file"
    existing.write_text("x")
    return [(existing, "not a folder"), (existing / "sub", "cannot create"), ("/proc/imcpnn_x", "cannot create")]


@pytest.mark.parametrize("verb", ["netlist", "simulate", "validate", "train", "characterize", "layout"])
def test_out_must_be_a_writable_folder(tmp_path, char, capsys, verb):
    extra = {"netlist": ["--random", "5,5", "--characterization", char],
             "simulate": ["--random", "5,5", "--characterization", char],
             "validate": ["--characterization", char], "train": ["--epochs", "1"],
             "characterize": [], "layout": ["--cells", "inv", "--pdk-root", tmp_path]}[verb]  # fmt: skip
    for out, word in _out_cases(tmp_path):
        _expect(capsys, [verb, *extra, "--out", out], "--out", str(out), word)


def test_characterize_json_path_is_checked_before_simulating(tmp_path, capsys):
    _expect(capsys, ["characterize", "--out", tmp_path / "c", "--json", tmp_path], "--json", "folder")


# -------------------------------------------------------------------------------------- --device
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_on_cuda_without_cuda(tmp_path, capsys):
    _expect(capsys, ["train", "--device", "cuda", "--epochs", "1", "--out", tmp_path / "t"], "cuda", "--device cpu")


# ------------------------------------------------------------------------------- --time-budget-s
@pytest.mark.parametrize("bad", ["0", "-3", "nan", "soon"])
def test_train_time_budget_is_seconds_above_zero(tmp_path, capsys, bad):
    _expect(capsys, ["train", "--epochs", "1", "--out", tmp_path / "t", "--time-budget-s", bad],
            "--time-budget-s", bad, "seconds > 0")
    assert not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------------- --variation
def test_bad_variation_files(tmp_path, capsys):
    base = ["train", "--dataset", "iris", "--epochs", "1", "--out", tmp_path / "run"]
    _expect(capsys, [*base, "--variation", tmp_path / "missing.json"], "--variation", "missing.json",
            "does not exist", "sigma_rel_plus")  # fmt: skip
    cases = {"broken.json": ('{"w_abs": [0.1', "not valid JSON"),
             "typo.json": ('{"sigma_treshold": 0.01}', "did you mean 'sigma_threshold'"),
             "negative.json": ('{"sigma_threshold": -0.01}', "sigma_threshold=-0.01"),
             "lengths.json": ('{"w_abs": [0.1, 1.0], "sigma_rel_plus": [0.1]}', "2 values")}  # fmt: skip
    for name, (text, word) in cases.items():
        (tmp_path / name).write_text(text)
        _expect(capsys, [*base, "--variation", tmp_path / name], "--variation", name, word, "sigma_rel_plus")
    assert not (tmp_path / "run" / "config.json").exists()  # refused before training


# ------------------------------------------------------------------------ corrupt resume files
def test_corrupt_config_json_in_out(tmp_path, char, capsys):
    """A corrupt config.json beside results and no saved copy to repair it from: one line naming it.
    (Training repairs the same case from its checkpoint's copy: tests/pnn/test_train_resume.py.)"""
    out = tmp_path / "run"
    (out / "stages").mkdir(parents=True)
    (out / "config.json").write_text('{"data": ')
    (out / "stages" / "discharger.json").write_text("{}")
    _expect(capsys, ["validate", "--characterization", char, "--out", out], "config.json")


# ------------------------------------------------------------------------------ argparse errors
def test_argparse_errors_are_one_line(tmp_path, capsys):
    _expect(capsys, ["netlist", "--random", "5,5"], "--out", "imcpnn netlist --help")
    _expect(capsys, ["simulate", "--random", "5,5", "--netlist", "x", "--out", tmp_path], "--netlist")


def test_an_unknown_option_is_named_by_its_verb_with_the_closest_known_one(tmp_path, capsys):
    """argparse's top-level parser would say ``imcpnn: error`` and point at ``imcpnn --help``; the
    verb's parser names the verb, its help, and a close spelling of a known option when there is one."""
    _expect(capsys, ["train", "--out", tmp_path, "--seeds", "3"],
            "imcpnn train: error: unrecognized arguments: --seeds 3; did you mean --seed?", "imcpnn train --help")
    _expect(capsys, ["demo", "--out", tmp_path, "--post_layout"], "did you mean --post-layout?")
    _expect(capsys, ["validate", "--run", "x", "--out", tmp_path],
            "imcpnn validate: error: unrecognized arguments: --run x (see `imcpnn validate --help`)")
    assert _run(["--bogus"]) == 2
    assert capsys.readouterr().err == "imcpnn: error: unrecognized arguments: --bogus (see `imcpnn --help`)\n"
    assert not any(tmp_path.iterdir())  # refused before anything ran


# ------------------------------------------------------------------------------- bugs and signals
def test_a_bug_shows_its_traceback_and_says_so(monkeypatch, capsys):
    from imcpnn.verbs import doctor

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(doctor, "run", broken)
    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: boom" in err
    assert "imcpnn doctor: internal error" in err and "bug in imcpnn" in err and "report" in err


def test_sigterm_is_an_interruption_and_the_handler_is_restored(monkeypatch, capsys):
    from imcpnn.verbs import doctor

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(doctor, "run", killed)
    assert main(["doctor"]) == 130
    err = capsys.readouterr().err
    assert "imcpnn doctor: interrupted" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_project_notes_are_one_line_other_warnings_unchanged(monkeypatch, capsys):
    import warnings

    from imcpnn.rundir import RunDirNote
    from imcpnn.verbs import doctor

    def noisy(args):
        warnings.warn("the lock of DIR was stale; taken over", RunDirNote, stacklevel=1)
        warnings.warn("a library's own warning", DeprecationWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(doctor, "run", noisy)
    with pytest.warns(DeprecationWarning, match="a library's own warning"):  # passed on as usual
        assert main(["doctor"]) == 0
    err = capsys.readouterr().err
    assert "imcpnn doctor: note: the lock of DIR was stale; taken over\n" in err
    assert "RunDirNote" not in err and "test_cli_errors.py" not in err


@pytest.mark.parametrize("verb", ["characterize", "netlist", "simulate", "validate"])
def test_corner_option_takes_the_corners_of_the_spice_enum(capsys, tmp_path, verb):
    """--corner is checked against imcpnn.spice.Corner (any case) before anything runs; the error
    and the help list the enum's corners."""
    from imcpnn.cli import build_parser
    from imcpnn.spice import Corner

    names = [c.value for c in Corner]
    source = [] if verb in ("characterize", "validate") else ["--random", "2,2"]
    line = _expect(capsys, [verb, "--out", tmp_path / "o", *source, "--corner", "xx"], "invalid choice: 'xx'")
    assert all(repr(n) in line for n in names)
    assert not (tmp_path / "o").exists()
    args = build_parser().parse_args([verb, "--out", str(tmp_path / "o"), *source, "--corner", " FF"])
    assert args.corner == "ff"
    sub = build_parser()._subparsers._group_actions[0].choices[verb]
    assert ", ".join(names) in " ".join(sub.format_help().split())
