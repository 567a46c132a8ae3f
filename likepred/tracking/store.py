"""The MLflow store: the one place that turns `tracking.uri` into a ready store and experiment.

Creating a SQLite store runs MLflow's migrations, which are not safe to run twice at once (two
runs started together on a fresh store crashed with "table latest_metrics already exists"), so
the first open, the experiment's creation and the sweep of killed runs hold an exclusive flock
on `<db>.lock` beside the database. Server stores need no lock: the server serialises.

mlflow is imported inside functions so `--help` and config composition stay fast.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from likepred.stores import SET_ENV, sqlite_path, user_store_env

LOCAL_ARTIFACTS = "mlruns/artifacts"  # conf/tracking/local.yaml's: a server named by $MLFLOW_TRACKING_URI keeps its own


def prepare_uri(uri: str) -> str:
    """The URI, with the folder of a SQLite file created."""
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def use_store(uri: str):
    """mlflow.set_tracking_uri(uri), which also writes $MLFLOW_TRACKING_URI: what the user had
    there is kept beside it (likepred.stores.user_store_env) for the run's summary."""
    import mlflow

    uri = prepare_uri(uri)
    os.environ[SET_ENV] = f"{user_store_env() or ''}\n{uri}"
    mlflow.set_tracking_uri(uri)


@contextmanager
def store_lock(uri: str):
    """Hold an exclusive flock beside a SQLite store (a no-op for other stores)."""
    db = sqlite_path(prepare_uri(uri))
    if db is None:
        yield
        return
    try:
        fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        from likepred.errors import ConfigError

        raise ConfigError(f"tracking.uri={uri}: cannot open the store's lock file {db}.lock "
                          f"({e.strerror or e}); remove or fix it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_sqlite(uri: str) -> None:
    """A SQLite store that MLflow can open: a damaged one (garbage, truncated) is one line naming
    the file; one left half-created (its first migration killed: no runs, schema behind MLflow's)
    is set aside and made again. Called under the store lock, before MLflow opens the file."""
    import sqlite3
    from urllib.parse import quote

    from likepred.errors import ConfigError

    db = sqlite_path(uri)
    if db is None or not os.path.lexists(db):
        return
    if not db.is_file():
        raise ConfigError(f"tracking.uri={uri}: {db} is not a file (a folder?); remove it or point tracking.uri elsewhere")
    try:
        con = sqlite3.connect(f"file:{quote(str(db.absolute()))}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
            version = (con.execute("select version_num from alembic_version").fetchone() or [None])[0] \
                if "alembic_version" in tables else None
            runs = con.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"tracking.uri={uri}: {db} is damaged or no SQLite database ({e}); move it away to "
                          "start a new store (its runs are lost) or point tracking.uri elsewhere") from None
    if not tables:
        return  # empty: MLflow creates the tables
    from mlflow.store.db.utils import _get_latest_schema_revision

    if version != _get_latest_schema_revision() and runs == 0:
        aside = db.with_name(f"{db.name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}")
        db.rename(aside)
        for suffix in ("-wal", "-shm", "-journal"):
            if os.path.exists(f"{db}{suffix}"):
                os.rename(f"{db}{suffix}", f"{aside}{suffix}")
        print(f"likepred: {db} was left half-created (its first migration was interrupted; it holds no runs): "
              f"set aside as {aside.name}, making a new store", file=sys.stderr, flush=True)


def ensure_experiment(tcfg) -> str:
    """The experiment's id, created if missing (in the parent process, before any job); its runs
    whose process was killed are ended KILLED on the way (likepred.tracking.alive)."""
    import mlflow

    use_store(tcfg.uri)
    with store_lock(tcfg.uri):
        check_sqlite(tcfg.uri)
        exp = mlflow.get_experiment_by_name(tcfg.experiment)  # the first call creates the store
        if exp is None:
            location = None
            if tcfg.get("artifact_root") and not (tcfg.uri.startswith(("http://", "https://"))
                                                  and tcfg.artifact_root == LOCAL_ARTIFACTS):
                root = tcfg.artifact_root
                location = root if "://" in root else Path(root).resolve().as_uri()
            from likepred.tracking.view import experiment_tags  # the UI opens it on its runs, scores as columns

            try:
                return mlflow.create_experiment(tcfg.experiment, artifact_location=location,
                                                tags=experiment_tags())
            except Exception:  # another process (or a server's other client) created it first
                return mlflow.get_experiment_by_name(tcfg.experiment).experiment_id
        _mark_killed(tcfg.uri, exp.experiment_id)
        return exp.experiment_id


def _mark_killed(uri: str, experiment_id: str):
    from mlflow.tracking import MlflowClient

    from likepred.tracking.alive import mark_killed

    dead = mark_killed(MlflowClient(uri), experiment_id)
    if dead:
        ids = ", ".join(run_id for run_id, _ in dead[:5]) + (f" and {len(dead) - 5} more" if len(dead) > 5 else "")
        print(f"likepred: marked {len(dead)} RUNNING run(s) KILLED, their process is gone "
              f"({dead[0][1]}): {ids}", file=sys.stderr, flush=True)
