"""Shared fixtures: real configs composed with Hydra, shrunk to tiny data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "likepred" / "conf")
REAL_DATA_ENV = "LIKEPRED_REAL_DATA"

# Tests never touch the user's cache or mlruns, and use the default backend.
os.environ.setdefault("KERAS_BACKEND", "jax")

TINY = ["data.n_users=40", "data.min_posts=10", "data.max_posts=20", "trainer.epochs=3",
        "trainer.verbose=0", "tracking.enabled=false"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    os.environ["LIKEPRED_CACHE"] = str(d)
    return d


@pytest.fixture
def make_cfg(cache_dir):
    """Compose the real config with overrides (tiny synthetic data by default)."""

    def _make(*overrides, tiny=True):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose("config", overrides=(TINY if tiny else []) + list(overrides))

    return _make


@pytest.fixture(scope="session")
def real_data_dir():
    path = os.environ.get(REAL_DATA_ENV)
    if not path:
        pytest.skip(f"set {REAL_DATA_ENV} to the instagram-profiles folder to run real-data tests (.ci/run does)")
    if not Path(path).is_dir():
        pytest.fail(f"{REAL_DATA_ENV}={path} is not a folder")
    return Path(path)
