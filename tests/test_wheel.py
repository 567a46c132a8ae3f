"""The package installs anywhere: its configs ship in the wheel and the app runs from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    return next(out.glob("likepred-*.whl"))


@pytest.mark.slow
def test_wheel_holds_every_config_group(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    conf = ROOT / "likepred" / "conf"
    expected = {f"likepred/conf/{p.relative_to(conf).as_posix()}" for p in conf.rglob("*.yaml")}
    assert expected and expected <= names, sorted(expected - names)
    groups = {p.parent.relative_to(conf).as_posix() for p in conf.rglob("*.yaml") if p.parent != conf}
    assert {"data", "model", "features", "experiment", "hparams_search", "hydra/help"} <= groups


@pytest.mark.slow
def test_installed_wheel_runs_from_another_directory(wheel, tmp_path, cache_dir):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "LIKEPRED_CACHE": str(cache_dir)}
    proc = subprocess.run([sys.executable, "-c", "import likepred, sys; print(likepred.__file__)"], cwd=elsewhere,
                          env=env, capture_output=True, text=True)
    assert proc.stdout.startswith(str(site)), proc.stdout + proc.stderr  # not the source tree
    proc = subprocess.run([sys.executable, "-m", "likepred", "data.n_users=20", "model=gbm", "model.max_iter=20",
                           f"tracking.uri=sqlite:///{tmp_path}/mlruns/m.db", "tracking.artifact_root=mlruns/artifacts"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "baseline best constant" in proc.stdout and (tmp_path / "mlruns" / "m.db").exists()
    help_ = subprocess.run([sys.executable, "-m", "likepred", "--help"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
    assert "experiment: approach1" in help_.stdout and "model: " in help_.stdout
