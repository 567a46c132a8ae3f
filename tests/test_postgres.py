"""PostgreSQL behind `mlflow server` (what a shared cluster store runs on), with 3 parallel workers.

The test starts Debian's PostgreSQL (apt-get install postgresql; .ci/run does) on 127.0.0.1 with
a temporary data dir, `mlflow server` on it, runs a 6-job joblib sweep through tracking=server,
finds every run, metric and artifact over REST and in the database itself, and stops both.
"""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from test_sweeps import SUMMARY, TINY, parent_and_children
from test_tracking_server import free_port, mlflow_server

pytestmark = pytest.mark.slow


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    return Path(found[-1]).parent if found[-1] else None


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 (as the 'postgres' user when we are root: initdb refuses root)."""
    pytest.importorskip("psycopg")  # SQLAlchemy 2.1's driver for postgresql:// URLs
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does)")
    as_user = []
    data = Path(tempfile.mkdtemp(prefix="likepred-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user for initdb (Debian's package makes one)")
        os.chown(data, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def pg(*args, timeout=120):
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=timeout)

    init = pg(str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    if init.returncode:
        shutil.rmtree(data, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr[-2000:]}")
    start = pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "postgres.log"), "-w", "-o",
               f"-h 127.0.0.1 -p {port} -k {data}", "start")
    try:
        if start.returncode:
            pytest.fail(f"pg_ctl start failed: {start.stderr[-1000:]} {(data / 'postgres.log').read_text()[-2000:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_six_job_sweep_with_three_workers_on_postgres(postgres, tmp_path, cache_dir):
    import psycopg

    with mlflow_server(postgres, tmp_path) as url:
        sweep_dir = tmp_path / "multi"
        cmd = [sys.executable, "-m", "likepred", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3",
               "model=user_median", "seed=range(0,6)", *TINY, "tracking=server", f"tracking.uri={url}",
               "tracking.experiment=postgres", f"hydra.sweep.dir={sweep_dir}"]
        env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

        client, parent, children = parent_and_children(url, sweep_dir)
        assert parent.info.status == "FINISHED"
        assert [c.data.tags["likepred.job"] for c in children] == [f"seed={i}" for i in range(6)]
        for c in children:
            assert c.info.status == "FINISHED"
            assert {"test_mape", "val_mape", "baseline_user_mean_mape"} <= set(c.data.metrics)
            assert c.data.params["seed"] == c.data.tags["likepred.job"].split("=")[1]
            assert {"config.yaml", "predictions.csv", "predicted_vs_actual.png"} <= {
                a.path for a in client.list_artifacts(c.info.run_id)}
        assert SUMMARY <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    # the rows are in PostgreSQL itself, not in a file beside the server
    with psycopg.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from runs r join experiments e on r.experiment_id = e.experiment_id "
                    "where e.name = 'postgres' and r.status = 'FINISHED'")
        assert cur.fetchone()[0] == 7
        cur.execute("select count(distinct run_uuid) from latest_metrics where key = 'test_mape'")
        assert cur.fetchone()[0] == 6
    assert not list(tmp_path.glob("**/*.db"))
