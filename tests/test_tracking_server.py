"""A sweep logged to a real MLflow tracking server (as cluster jobs would), read back over REST."""

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import free_port, stop_group

from test_sweeps import SUMMARY, TINY, parent_and_children

pytestmark = pytest.mark.slow


@contextmanager
def mlflow_server(backend_uri: str, root: Path):
    """`mlflow server` on 127.0.0.1 in its own process group, artifacts under root; yields its URL."""
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend_uri, "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc, timeout=15)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a SQLite backend, artifacts in tmp."""
    root = tmp_path_factory.mktemp("server")
    with mlflow_server(f"sqlite:///{root}/mlflow.db", root) as url:
        yield url, root


def test_two_job_sweep_through_tracking_server(server, tmp_path, cache_dir):
    url, root = server
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    sweep_dir = tmp_path / "multi"
    cmd = [sys.executable, "-m", "likepred", "--multirun", "model=user_median,best_constant", *TINY,
           "tracking=server", f"tracking.uri={url}", "tracking.experiment=served", f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    client, parent, children = parent_and_children(url, sweep_dir)  # MlflowClient over REST
    assert parent.info.status == "FINISHED" and parent.data.tags["likepred.tracking.sweep"] == "true"
    assert [c.data.tags["likepred.job"] for c in children] == ["model=user_median", "model=best_constant"]
    assert all(c.info.status == "FINISHED" and "test_mape" in c.data.metrics for c in children)
    assert SUMMARY <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "predictions.csv" in {a.path for a in client.list_artifacts(children[0].info.run_id)}
    # artifacts went through the server into its own store, not a local folder of the client
    assert any((root / "artifacts").rglob("sweep_summary.csv"))
    assert not (tmp_path / "mlruns").exists()
