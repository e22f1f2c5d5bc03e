"""``imcpnn layer`` and the shared executor options: bad input ends in one ``error:`` line with exit
code 2 before anything is simulated; the help teaches the verb; the executor helper yields None
for the local pool and labels it."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from imcpnn.cli import VERBS, build_parser, main
from imcpnn.verbs._common import add_executor_arguments, executor_label, executor_width, open_executor


def _run(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def _one_error_line(capsys, verb: str, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"imcpnn {verb}: error: "), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, err)
    return lines[0]


@pytest.fixture
def digits_weights(tmp_path):
    """w0 of a 64-input layer (sklearn's 8x8 digits) with 3 columns, and a 10-input one."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w64.npz", w0=rng.normal(0, 0.1, (64, 3)), w1=rng.normal(0, 0.1, (3, 10)))
    np.savez(tmp_path / "w10.npz", w0=rng.normal(0, 0.1, (10, 3)))
    return tmp_path


def test_layer_is_a_verb_with_teaching_help(capsys):
    assert "layer" in VERBS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["layer", "--help"])
    text = capsys.readouterr().out
    for phrase in ("column decomposition", "IR drop", "ONE edge source", "--executor", "--scheduler", "Examples:",
                   "imcpnn layer --run", "layer.json", "resume"):
        assert phrase.lower() in text.lower(), phrase
    assert "imcpnn layer" in build_parser().format_help()


@pytest.mark.parametrize("verb_args", [["layer", "--weights", "w.npz", "--dataset", "digits"],
                                       ["simulate", "--random", "3,2"], ["validate"], ["demo"], ["variation"]],
                         ids=["layer", "simulate", "validate", "demo", "variation"])
def test_scheduler_without_dask_is_refused(capsys, tmp_path, verb_args):
    code = _run([*verb_args, "--scheduler", "tcp://head:8786", "--out", tmp_path / "o"])
    assert code == 2
    _one_error_line(capsys, verb_args[0], "--scheduler", "--executor dask")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("verb", ["validate", "demo", "variation"])
def test_validation_verbs_teach_the_executor(capsys, verb):
    with pytest.raises(SystemExit):
        build_parser().parse_args([verb, "--help"])
    text = capsys.readouterr().out
    for phrase in ("--executor {local,dask}", "--scheduler ADDRESS", "--workers"):
        assert phrase in text, phrase


def test_workers_with_a_running_cluster_is_refused(capsys, tmp_path):
    code = _run(["simulate", "--random", "3,2", "--executor", "dask", "--scheduler", "tcp://head:8786",
                 "--workers", "2", "--out", tmp_path / "o"])
    assert code == 2
    _one_error_line(capsys, "simulate", "--workers")


def test_missing_run_folder(capsys, tmp_path):
    assert _run(["layer", "--run", tmp_path / "nope", "--out", tmp_path / "o"]) == 2
    _one_error_line(capsys, "layer", "--run", "imcpnn train")


def test_a_folder_that_is_not_a_training_run(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert _run(["layer", "--run", tmp_path / "empty", "--out", tmp_path / "o"]) == 2
    _one_error_line(capsys, "layer", "not a finished training run")


def test_wrong_input_size(capsys, digits_weights):
    argv = ["layer", "--weights", digits_weights / "w10.npz", "--dataset", "digits", "--out", digits_weights / "o"]
    assert _run(argv) == 2
    _one_error_line(capsys, "layer", "10 inputs", "64")


def test_columns_beyond_the_layer(capsys, digits_weights):
    argv = ["layer", "--weights", digits_weights / "w64.npz", "--dataset", "digits", "--columns", "4",
            "--out", digits_weights / "o"]
    assert _run(argv) == 2
    _one_error_line(capsys, "layer", "--columns 4", "3 columns")


def test_samples_beyond_the_test_split(capsys, digits_weights):
    argv = ["layer", "--weights", digits_weights / "w64.npz", "--dataset", "digits", "--samples", "100000",
            "--out", digits_weights / "o"]
    assert _run(argv) == 2
    _one_error_line(capsys, "layer", "--samples 100000")


def test_weights_need_a_dataset_and_a_run_names_its_own(capsys, digits_weights, tmp_path):
    assert _run(["layer", "--weights", digits_weights / "w64.npz", "--out", tmp_path / "o"]) == 2
    _one_error_line(capsys, "layer", "--dataset")
    (tmp_path / "run").mkdir()
    assert _run(["layer", "--run", tmp_path / "run", "--dataset", "digits", "--out", tmp_path / "o"]) == 2
    _one_error_line(capsys, "layer", "--dataset")


def test_bad_characterization_file(capsys, digits_weights):
    argv = ["layer", "--weights", digits_weights / "w64.npz", "--dataset", "digits", "--characterization",
            digits_weights / "none.json", "--out", digits_weights / "o"]
    assert _run(argv) == 2
    _one_error_line(capsys, "layer", "--characterization")


def test_local_executor_is_none_and_labelled():
    parser = argparse.ArgumentParser()
    add_executor_arguments(parser)
    args = parser.parse_args(["--workers", "3"])
    with open_executor(args) as executor:
        assert executor is None
    assert executor_label(args, None) == "local (3 processes)" and executor_width(None, 3) == 3


def test_layer_inputs_are_checked():
    from imcpnn.errors import ConfigError
    from imcpnn.validation._layer import check_layer_inputs

    w, x = np.zeros((4, 3)), np.zeros((2, 4))
    assert check_layer_inputs(w, x, None)[2] == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"4 inputs but the samples have shape \(2, 5\)"):
        check_layer_inputs(w, np.zeros((2, 5)), None)
    with pytest.raises(ConfigError, match=r"0 \.\.\. 2 \(the layer has 3 columns\)"):
        check_layer_inputs(w, x, [0, 3])
    with pytest.raises(ConfigError, match="distinct"):
        check_layer_inputs(w, x, [1, 1])
    with pytest.raises(ConfigError, match="finite"):
        check_layer_inputs(np.full((4, 3), np.nan), x, None)

