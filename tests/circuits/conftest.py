"""Shared fixture: one real sky130 characterization per test session (a few seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spice_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("spice_cache")


@pytest.fixture(scope="session")
def characterization(spice_cache):
    """(summary dict, fits DataFrame, curves) of the default tt characterization."""
    from imcpnn.circuits.characterization.sweeps import CharacterizationConfig, characterize

    return characterize(CharacterizationConfig(), cache_dir=spice_cache, progress=False)
