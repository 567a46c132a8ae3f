"""hydra/launcher=ray on a real local Ray cluster (`ray start --head` on 127.0.0.1, stopped at the end)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_sweeps import TINY, parent_and_children
from test_tracking_server import free_port

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
# A ~/.ray/auth_token left by another Ray session turns token auth on for the head but not for our
# driver ("InvalidAuthToken"): this throwaway cluster on 127.0.0.1 runs without it, on both sides.
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-node Ray cluster with 2 CPUs; its workers import likepred from this checkout."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               RAY_USAGE_STATS_ENABLED="0", **NO_TOKEN)
    start = subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--include-dashboard=false", "--num-cpus=2", "--disable-usage-stats"],
                           env=env, capture_output=True, text=True, timeout=180)
    if start.returncode:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
        pytest.fail(f"ray start failed:\n{start.stdout[-2000:]}\n{start.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop"], capture_output=True, timeout=120)


def test_four_job_sweep_on_a_ray_cluster(ray_head, tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep_dir = tmp_path / "multi"
    cmd = [sys.executable, "-m", "likepred", "--multirun", "hydra/launcher=ray",
           f"hydra.launcher.ray.init.address={ray_head}", "model=user_median", "seed=0,1,2,3", *TINY,
           f"tracking.uri={uri}", "tracking.experiment=ray", f"hydra.sweep.dir={sweep_dir}"]
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1", **NO_TOKEN)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"4 jobs on {ray_head}" in out and "(execute_job pid=" in out  # Ray workers ran them

    client, parent, children = parent_and_children(uri, sweep_dir)
    assert parent.info.status == "FINISHED" and parent.data.tags["likepred.launcher"] == "RayLauncher"
    assert [c.data.tags["likepred.job"] for c in children] == [f"seed={i}" for i in range(4)]
    assert all(c.info.status == "FINISHED" and "test_mape" in c.data.metrics for c in children)
    assert {c.data.tags["likepred.threads_per_job"] for c in children} == {"1"}  # num_cpus=1 per job
    exp = client.get_experiment_by_name("ray")
    assert len(client.search_runs([exp.experiment_id])) == 5
