"""Shared by the reduced end-to-end runs: a verb run as a user runs it, on a config file."""

import json
import subprocess
import sys

import pytest


@pytest.fixture
def run_verb(tmp_path):
    """``run_verb(verb, config, *options)``: write ``config`` (a dict) as JSON and run ``imcpnn
    <verb> --out tmp/<verb> --config FILE --cache-dir tmp/cache --quiet [options]``; returns
    (process, out, cache). Call it again to rerun the same folder (resume)."""
    cache = tmp_path / "cache"

    def run(verb: str, config: dict, *options: str):
        path, out = tmp_path / f"{verb}.json", tmp_path / verb
        path.write_text(json.dumps(config))
        proc = subprocess.run([sys.executable, "-m", "imcpnn", verb, "--out", str(out), "--config", str(path),
                               "--cache-dir", str(cache), "--quiet", *options], capture_output=True, text=True)
        return proc, out, cache

    return run
