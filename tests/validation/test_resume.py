"""The validation result folder: one writer, a failed run blocks nothing, repairs, the
characterization's identity, total time. No SPICE: the runs stop at a stage replaced by a stub."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from imcpnn.config import to_dict
from imcpnn.errors import ConfigError, ResultsError, ToolNotFoundError
from imcpnn.rundir import LOCK_FILE, RunDirBusyError, RunDirNote
from imcpnn.validation import ValidationConfig, run_validation
from imcpnn.validation import _pipeline as pipe

SMALL = ValidationConfig(n_test=1, epochs=1)


class Stop(Exception):
    """Raised by the stub that stands in for the first SPICE stage."""


def char_file(path, e_plus=2.94):
    v = np.linspace(0.0, 1.0, 21).tolist()
    table = {"v_g_v": v, "i_d_a": [1e-12 * np.exp(x / 0.04) for x in v]}
    data = dict(v0=1.3, v_switch=0.4575, v_th_circ=0.8425, lambda_n=0.40, lambda_p=0.76,
                lambda_dis=0.40, e_plus=e_plus, e_minus=-1.56, e_dis=2.97,
                id_vg_n=table, id_vg_p=table, id_vg_dis=table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def stop_at_spice(monkeypatch):
    """The first SPICE stage (the discharger) raises Stop: the run got past every check."""

    def stub(ctx):
        raise Stop

    monkeypatch.setattr(pipe, "stage_discharger", stub)


def run(out, config=SMALL, **kwargs):
    kwargs.setdefault("progress", False)
    with pytest.raises(Stop):
        run_validation(config, out, **kwargs)


# ---------------------------------------------------------------- a failed run blocks nothing
def test_post_layout_without_tools_does_not_block_the_schematic_rerun(tmp_path, monkeypatch,
                                                                     stop_at_spice):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    out = tmp_path / "run"
    with pytest.raises(ToolNotFoundError):
        run_validation(ValidationConfig(netlist_kind="post-layout", n_test=1, epochs=1), out,
                       characterization=char_file(tmp_path / "c.json"), progress=False)
    assert not (out / "config.json").exists()
    run(out, characterization=tmp_path / "c.json")  # no "different config"
    assert json.loads((out / "config.json").read_text())["netlist_kind"] == SMALL.netlist_kind


def test_bad_characterization_file_is_refused_before_anything_is_written(tmp_path, stop_at_spice):
    bad = tmp_path / "bad.json"
    bad.write_text('{"e_plus": 2.9,')
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=f"{bad}.*not valid JSON"):
        run_validation(SMALL, out, characterization=bad, progress=False)
    partial = tmp_path / "partial.json"
    partial.write_text('{"e_plus": 2.9}')
    with pytest.raises(ConfigError, match=f"{partial}.*lacks"):
        run_validation(SMALL, out, characterization=partial, progress=False)
    assert not (out / "config.json").exists() and not (out / "stages").exists()
    run(out, characterization=char_file(tmp_path / "good.json"))  # the corrected rerun
    saved = json.loads((out / "characterization" / "characterization.json").read_text())
    assert saved["e_plus"] == 2.94


def test_leftover_config_of_a_run_that_saved_nothing_is_replaced(tmp_path, stop_at_spice):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"n_test": 7}))
    with pytest.warns(RunDirNote, match="saved no result"):
        run(out, characterization=char_file(tmp_path / "c.json"))
    assert json.loads((out / "config.json").read_text())["n_test"] == 1


def test_deleted_or_corrupt_config_json_is_checked_against_its_copy(tmp_path, stop_at_spice):
    out, char = tmp_path / "run", char_file(tmp_path / "c.json")
    run(out, characterization=char)
    config = out / "config.json"
    config.unlink()
    with pytest.raises(ConfigError, match="different config .*n_test 1 -> 2"):
        run_validation(ValidationConfig(n_test=2, epochs=1), out, characterization=char, progress=False)
    config.write_text("{trunc")
    with pytest.warns(RunDirNote, match=f"{config} is corrupt .*rewriting it from stages/run_config.json"):
        run(out, characterization=char)
    assert json.loads(config.read_text())["n_test"] == 1
    config.write_text("{trunc")
    (out / "stages" / "run_config.json").unlink()  # no copy left (a folder of an older imcpnn)
    with pytest.raises(ResultsError, match=f"{config} is corrupt .*restore {config}"):
        run_validation(SMALL, out, characterization=char, progress=False)


def old_config(config: ValidationConfig) -> dict:
    """``config`` as config.json held it before the data section: no ``data``, ``hidden`` an int."""
    data = to_dict(config)
    del data["data"]
    data["hidden"] = data["hidden"][0]
    return data


def test_folder_of_an_earlier_version_resumes_despite_new_default_fields(tmp_path, stop_at_spice):
    out, char = tmp_path / "run", char_file(tmp_path / "c.json")
    run(out, characterization=char)
    for rel in ("config.json", "stages/run_config.json"):
        (out / rel).write_text(json.dumps(old_config(SMALL)))
    run(out, characterization=char)  # the same config: no refusal, no note
    written = json.loads((out / "config.json").read_text())
    assert written == to_dict(SMALL) and written["data"]["dataset"] == "iris"
    # a real difference is still refused, and named alone (not the fields added since)
    for rel in ("config.json", "stages/run_config.json"):
        (out / rel).write_text(json.dumps(old_config(ValidationConfig(n_test=7, epochs=1))))
    with pytest.raises(ConfigError, match=r"different config .*config.json: n_test 7 -> 1\)"):
        run_validation(SMALL, out, characterization=char, progress=False)


def test_folder_of_an_earlier_model_revision_is_refused_by_name(tmp_path, stop_at_spice, capsys):
    """Saved stages are reused as they are: results of an earlier model revision (a folder
    without stages/model_revision.json, or with another number) would mix with this version's,
    so the run stops before writing, naming the folder and the fix; a folder that saved no
    result yet, or this revision's, runs."""
    from imcpnn.cli import main

    out, char = tmp_path / "run", char_file(tmp_path / "c.json")
    run(out, characterization=char)  # the characterization stage is saved: the folder holds results
    assert json.loads((out / pipe.REVISION_FILE).read_text()) == {"model_revision": pipe.MODEL_REVISION}
    run(out, characterization=char)  # this revision's folder resumes
    (out / pipe.REVISION_FILE).unlink()  # as an older imcpnn left it
    config_before = (out / "config.json").read_text()
    with pytest.raises(ResultsError, match=r"model revision 1 .*give another --out, or delete"):
        run_validation(SMALL, out, characterization=char, progress=False)
    assert not (out / pipe.REVISION_FILE).exists() and (out / "config.json").read_text() == config_before
    code = main(["validate", "--out", str(out), "--n-test", "1", "--epochs", "1", "--characterization",
                 str(char), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model revision 1" in err[0], err


# ------------------------------------------------------------------ characterization identity
def test_changed_characterization_is_refused(tmp_path, stop_at_spice):
    a = char_file(tmp_path / "a" / "characterization.json")
    b = char_file(tmp_path / "b" / "characterization.json", e_plus=3.5)
    out = tmp_path / "run"
    run(out, characterization=a)
    with pytest.raises(ConfigError, match=f"--characterization {b} .*differs from the "
                                          "characterization the results in"):
        run_validation(SMALL, out, characterization=b, progress=False)
    with pytest.raises(ConfigError, match=f"was run with --characterization {a}"):
        run_validation(SMALL, out, progress=False)
    same = tmp_path / "copy.json"
    shutil.copy(a, same)
    run(out, characterization=same)  # same content, other path: fine


def test_characterization_copy_in_the_folder_is_restored(tmp_path, stop_at_spice):
    a = char_file(tmp_path / "a" / "characterization.json")
    out = tmp_path / "run"
    run(out, characterization=a)
    copy = out / "characterization" / "characterization.json"
    copy.unlink()
    with pytest.warns(RunDirNote, match="characterization/characterization.json is missing"):
        run(out, characterization=a)
    assert copy.read_bytes() == a.read_bytes()
    char_file(copy, e_plus=9.9)  # edited: valid JSON, other content
    with pytest.warns(RunDirNote, match="characterization.json differs from the one"):
        run(out, characterization=a)
    assert copy.read_bytes() == a.read_bytes()


def test_folder_own_characterization_given_back_after_a_corrupt_stage_file(tmp_path, stop_at_spice):
    out = tmp_path / "run"
    run(out, characterization=char_file(tmp_path / "a.json"))
    own = out / "characterization" / "characterization.json"
    (out / "stages" / "characterization.json").write_text("{trunc")
    with pytest.warns(RunDirNote, match="stages/characterization.json is corrupt"):
        run(out, characterization=own)  # copied onto itself: no SameFileError
    assert json.loads(own.read_text())["e_plus"] == 2.94


# -------------------------------------------------------------------------- stage repairs
def test_corrupt_stage_file_is_recomputed_with_a_note(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "demo.json").write_text("{broken")
    with pytest.warns(RunDirNote, match="stages/demo.json is corrupt.*redoing stage 'demo'"):
        assert pipe.cached_stage(tmp_path, "demo", lambda: {"x": 1}, False) == {"x": 1}
    assert json.loads((tmp_path / "stages" / "demo.json").read_text()) == {"x": 1}


def test_deleted_or_corrupt_table_redoes_its_stage(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        pipe.write_csv(tmp_path / "tables" / "t.csv", pd.DataFrame({"a": [1, 2]}))
        return {"n": len(calls)}

    outputs = ["tables/t.csv"]
    assert pipe.cached_stage(tmp_path, "s", compute, False, outputs=outputs) == {"n": 1}
    assert pipe.cached_stage(tmp_path, "s", compute, False, outputs=outputs) == {"n": 1}
    (tmp_path / "tables" / "t.csv").unlink()
    with pytest.warns(RunDirNote, match="tables/t.csv is missing.*redoing stage 's'"):
        assert pipe.cached_stage(tmp_path, "s", compute, False, outputs=outputs) == {"n": 2}
    (tmp_path / "tables" / "t.csv").write_text("")
    with pytest.warns(RunDirNote, match="tables/t.csv is corrupt"):
        assert pipe.cached_stage(tmp_path, "s", compute, False, outputs=outputs) == {"n": 3}
    assert (tmp_path / "tables" / "t.csv").is_file() and len(calls) == 3


# --------------------------------------------------------------------- lock and elapsed time
def test_folder_in_use_is_refused_before_any_write(tmp_path, stop_at_spice, lock_holder):
    proc = lock_holder(tmp_path, "imcpnn demo")
    with pytest.raises(RunDirBusyError, match=f"{tmp_path} is in use by PID {proc.pid} "
                                              r"\(imcpnn demo started .*use another --out"):
        run_validation(SMALL, tmp_path, characterization=char_file(tmp_path / "c" / "c.json"),
                       progress=False)
    assert not (tmp_path / "config.json").exists()


def test_interrupted_runs_count_their_time_and_release_the_lock(tmp_path, monkeypatch):
    def interrupted(ctx):
        time.sleep(0.3)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipe, "stage_discharger", interrupted)
    char = char_file(tmp_path / "c" / "c.json")
    elapsed = tmp_path / "run" / "stages" / "elapsed.json"
    for n in (1, 2):
        with pytest.raises(KeyboardInterrupt):
            run_validation(SMALL, tmp_path / "run", characterization=char, progress=False)
        assert not (tmp_path / "run" / LOCK_FILE).exists()
        assert json.loads(elapsed.read_text())["elapsed_s"] >= 0.3 * n
