"""Faults as they happen: a run SIGKILLed mid-way, runs started at once on a fresh store,
read-only and full filesystems, damaged caches. Real processes (`python -m likepred`), real
mounts (a tmpfs, as root; skipped where mount is not allowed), real MLflow stores.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import free_port

from likepred.errors import DataError
from likepred.images.cache import FeatureCache, cached_features, content_hash

TINY = ["data.n_users=30", "data.min_posts=10", "data.max_posts=15", "trainer.verbose=0"]
LONG = ["model=dense_meta", "trainer.epochs=5000", "trainer.patience=0"]  # killed long before its end


def command(args, tmp_path, uri, experiment="faults", extra=()):
    return [sys.executable, "-m", "likepred", *args, *TINY, f"tracking.uri={uri}",
            f"tracking.experiment={experiment}", f"hydra.run.dir={tmp_path}/out/${{now:%H-%M-%S-%f}}",
            f"hydra.sweep.dir={tmp_path}/multi/${{now:%H-%M-%S-%f}}", *extra]


def start(args, tmp_path, cache_dir, uri, **kw):
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    return subprocess.Popen(command(args, tmp_path, uri, **kw), cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(args, tmp_path, cache_dir, uri, timeout=300, **kw):
    proc = start(args, tmp_path, cache_dir, uri, **kw)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def runs(uri, experiment="faults"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def wait_running(uri, pred, timeout=180):
    """The runs that match `pred` once one is RUNNING."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [r for r in runs(uri) if r.info.status == "RUNNING" and pred(r)]
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError("no RUNNING run appeared")


# ---- a run killed with SIGKILL

@pytest.mark.slow
def test_sigkilled_run_and_sweep_are_marked_killed_by_the_next_run(tmp_path, cache_dir, capsys):
    from omegaconf import OmegaConf

    from likepred.commands import report
    from likepred.tracking.store import ensure_experiment

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ensure_experiment(OmegaConf.create({"uri": uri, "experiment": "faults"}))  # the store, before polling it
    single = start(LONG + ["seed=1"], tmp_path, cache_dir, uri)
    sweep = start(["--multirun", *LONG, "seed=2,3"], tmp_path, cache_dir, uri)
    try:
        [victim] = wait_running(uri, lambda r: "seed=1" in r.data.tags.get("likepred.overrides", "").split())
        wait_running(uri, lambda r: "mlflow.parentRunId" in r.data.tags)
    finally:
        for proc in (single, sweep):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert single.returncode == sweep.returncode == -signal.SIGKILL
    left = {r.info.run_id: r for r in runs(uri) if r.info.status == "RUNNING"}
    assert victim.info.run_id in left and len(left) == 3  # the run, the sweep's parent and its first job
    tags = victim.data.tags
    assert tags["likepred.pid"] == str(single.pid) and tags["likepred.host"] and tags["likepred.pid_start"]

    # the report reads the killed sweep as KILLED already (it writes nothing)
    sweep_dir = next((tmp_path / "multi").iterdir())
    capsys.readouterr()
    assert report.main([str(sweep_dir)]) == 0
    table = capsys.readouterr().out
    assert "KILLED" in table and "RUNNING" not in table and f"killed: process {sweep.pid} on " in table
    assert all(r.info.status == "RUNNING" for r in runs(uri) if r.info.run_id in left)

    # the next run in the experiment ends the three KILLED, in one line
    rc, _, err = run(["model=user_median"], tmp_path, cache_dir, uri)
    assert rc == 0, err[-3000:]
    lines = [l for l in err.splitlines() if "KILLED" in l]
    assert len(lines) == 1 and "marked 3 RUNNING run(s) KILLED, their process is gone" in lines[0], err[-2000:]
    after = {r.info.run_id: r for r in runs(uri)}
    assert {after[i].info.status for i in left} == {"KILLED"}
    assert after[victim.info.run_id].data.tags["error"].startswith(f"killed: process {single.pid} on ")
    assert sum(r.info.status == "FINISHED" for r in after.values()) == 1


def test_gone_tells_dead_processes_from_live_and_unknown_ones():
    """Dead: no such pid, or the pid reused. Unknown (left alone): another host, another container."""
    from likepred.tracking.alive import START, gone, process_tags

    mine = process_tags()
    assert gone(mine) is None  # this process is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert gone(mine | {"likepred.pid": str(dead.pid)}).endswith("is gone")
    assert "newer process" in gone(mine | {START: str(int(mine[START]) - 1)})  # the pid reused
    assert gone(mine | {"likepred.host": "another-host"}) is None  # not ours to judge
    assert gone(mine | {"likepred.pidns": "pid:[1]"}) is None  # another container
    assert gone({}) is None  # runs of other tools


def test_a_run_that_finishes_between_the_listing_and_the_write_is_not_marked_killed(tmp_path):
    """The race of issue 23: mark_killed lists RUNNING runs, then writes. Two runs of dead
    processes are listed; one of them finishes (a real write by a second client, as its own
    process would do before exiting) right after the listing. Only the other ends KILLED."""
    from mlflow.tracking import MlflowClient

    from likepred.tracking.alive import PID, mark_killed, process_tags

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tags = process_tags() | {PID: str(dead.pid)}
    other = MlflowClient(uri)  # the run's own process
    exp = other.create_experiment("race")
    late, lost = (other.create_run(exp, tags=tags).info.run_id for _ in range(2))

    class Interleaved(MlflowClient):
        def search_runs(self, *args, **kw):
            found = super().search_runs(*args, **kw)
            assert {r.info.run_id for r in found} == {late, lost}  # both listed as RUNNING
            other.set_terminated(late, "FINISHED")  # ... and one finishes right then
            return found

    marked = mark_killed(Interleaved(uri), exp)
    assert [run_id for run_id, _ in marked] == [lost]
    assert other.get_run(late).info.status == "FINISHED" and "error" not in other.get_run(late).data.tags
    assert other.get_run(lost).info.status == "KILLED"


# ---- unreachable servers: one line within the configured timeout, never minutes of retries

@pytest.mark.parametrize("case", ["http_silent", "postgres_refused", "ray_refused"])
def test_unreachable_server_is_one_line_within_its_timeout(case, tmp_path, cache_dir):
    import socket

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    uri, extra, args = f"sqlite:///{tmp_path}/m.db", [], ["model=user_median"]
    if case == "http_silent":
        uri, extra, option = f"http://127.0.0.1:{port}", ["tracking.connect_timeout=1"], "tracking.uri="
    elif case == "postgres_refused":
        uri, option = f"postgresql://u@127.0.0.1:{free_port()}/db", "tracking.uri="
    else:
        extra = ["hydra/launcher=ray", f"hydra.launcher.ray.init.address=127.0.0.1:{free_port()}",
                 "hydra.launcher.ray.connect_timeout=1"]
        option, args = "hydra.launcher.ray.init.address=", ["--multirun", *args]
    started = time.monotonic()
    try:
        rc, _, err = run(args, tmp_path, cache_dir, uri, timeout=120, extra=extra)
    finally:
        silent.close()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err[-2000:]
    assert lines[0].startswith(f"likepred: error: {option}"), lines[0]
    assert ("no tracking server answers within 1 s" if case == "http_silent" else "cannot reach") in lines[0], lines[0]
    assert time.monotonic() - started < 60  # seconds of Python start-up on a loaded CI, not minutes


@pytest.mark.slow
def test_runs_started_in_the_same_second_get_their_own_output_folders(tmp_path, cache_dir):
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, "-m", "likepred", "model=user_median", f"seed={i}", *TINY,
                               "tracking.enabled=false"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errs
    folders = sorted((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(folders) == 4, folders
    seeds = sorted(next(o for o in (f / ".hydra" / "overrides.yaml").read_text().splitlines() if "seed=" in o)
                   for f in folders)
    assert seeds == [f"- seed={i}" for i in range(4)]


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_run_is_killed(tmp_path, cache_dir):
    from omegaconf import OmegaConf

    from likepred.tracking.store import ensure_experiment

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    ensure_experiment(OmegaConf.create({"uri": uri, "experiment": "faults"}))  # the store, before polling it
    proc = start(LONG, tmp_path, cache_dir, uri)
    try:
        run_ = wait_running(uri, lambda r: True)[0]
        time.sleep(2)  # into training
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == "likepred: interrupted (Ctrl-C); the run is marked KILLED in MLflow"
    after = {r.info.run_id: r for r in runs(uri)}[run_.info.run_id]
    assert after.info.status == "KILLED" and after.data.tags["error"] == "interrupted (Ctrl-C)"


# ---- damaged and half-created stores

def half_created_store(uri):
    """What a process killed inside MLflow's first migration leaves: the schema part-way (the
    revision before latest_metrics) and that migration's table already made, no runs."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = create_sqlalchemy_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "7ac759974ad8")
    with engine.begin() as conn:
        conn.exec_driver_sql("create table latest_metrics (key varchar(250))")
    engine.dispose()


def test_store_interrupted_in_its_first_migration_is_set_aside_and_made_again(tmp_path, capsys):
    import mlflow
    from omegaconf import OmegaConf

    from likepred.tracking.store import ensure_experiment

    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    (tmp_path / "store").mkdir()
    half_created_store(uri)
    alone = subprocess.run([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
                           capture_output=True, text=True, timeout=120)  # what MLflow alone makes of it
    assert alone.returncode != 0 and "latest_metrics already exists" in alone.stderr
    exp_id = ensure_experiment(OmegaConf.create({"uri": uri, "experiment": "x", "artifact_root": None}))
    assert "was left half-created" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "store").glob("mlflow.db.unfinished-*")]
    client = mlflow.MlflowClient(uri)
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "lock_is_a_folder", "db_is_a_folder"])
def test_damaged_store_is_one_line_naming_the_file(damage, tmp_path, cache_dir):
    from omegaconf import OmegaConf

    from likepred.errors import ConfigError
    from likepred.tracking.store import ensure_experiment

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tcfg = OmegaConf.create({"uri": uri, "experiment": "x", "artifact_root": None})
    if damage == "garbage":
        db.write_bytes(os.urandom(50_000))
    elif damage == "truncated":
        ensure_experiment(tcfg)
        db.write_bytes(db.read_bytes()[:len(db.read_bytes()) // 3])
    elif damage == "lock_is_a_folder":
        Path(f"{db}.lock").mkdir()
    else:
        db.mkdir()
    with pytest.raises(ConfigError) as e:
        ensure_experiment(tcfg)
    assert str(db) in str(e.value) and "\n" not in str(e.value)


# ---- runs started at once on a fresh store

@pytest.mark.slow
def test_four_processes_at_once_on_a_fresh_store_all_finish(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    procs = [start(["model=user_median", f"seed={i}"], tmp_path, cache_dir, uri) for i in range(2)]
    procs += [start(["--multirun", "model=user_median", f"seed={i}"], tmp_path, cache_dir, uri) for i in (2, 3)]
    try:
        results = [(p.communicate(timeout=900)[1], p.returncode)[::-1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [rc for rc, _ in results] == [0] * 4, "\n".join(err[-1500:] for _, err in results)
    found = runs(uri)
    jobs = [r for r in found if "likepred.tracking.sweep" not in r.data.tags]
    parents = [r for r in found if "likepred.tracking.sweep" in r.data.tags]
    assert len(jobs) == 4 and {r.info.status for r in jobs} == {"FINISHED"}
    assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}


# ---- writability, before any data is read

@pytest.fixture
def mount(tmp_path):
    """mount(name, options) -> a fresh tmpfs folder; skipped where mounting is not allowed."""
    made = []

    def _mount(name, options):
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        made.append(folder)
        return folder

    yield _mount
    for folder in reversed(made):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder):
    """Write into `folder` until its filesystem is full."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_full_disk_leaves_no_half_written_model_file(mount):
    """Every model file is written then renamed: a full disk raises naming the file and leaves
    neither a truncated arrays.npz nor a state.json that points at one."""
    from likepred.serving import state

    folder = mount("full_model", "size=256k")
    fill(folder)
    (folder / "filler").unlink()
    fill(folder)  # now ~0 bytes free, and the folder is writable
    model = folder / "model"
    model.mkdir()
    with pytest.raises(OSError) as e:
        state.dump({"weights": np.ones(200_000)}, model)
    assert e.value.filename == str(model / "arrays.npz") and e.value.strerror
    assert sorted(p.name for p in model.iterdir()) == []  # no truncated file, no temp file left


def leave_free(folder, kib):
    """Fill `folder`'s filesystem, then free `kib` KiB: the preflight's probe (64 KiB) passes, a run's
    model files do not fit."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - kib * 1024))


@pytest.mark.slow
def test_full_disk_in_a_sweep_ends_its_runs_failed_in_one_line(tmp_path, cache_dir, mount):
    """The artifact root fills up during a sweep: the jobs and the parent end FAILED naming the disk's
    error, the sweep's end is one line naming the file (exit 2, not Hydra's warning and exit 0)."""
    art = mount("art", "size=512k")
    leave_free(art, 100)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    rc, out, err = run(["--multirun", "model=user_median,user_mean"], tmp_path, cache_dir, uri,
                       extra=[f"tracking.artifact_root={art}"])
    assert rc == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"likepred: error: {art}/") and "No space left on device; free some space" in last, last
    found = runs(uri)
    parents = [r for r in found if "likepred.tracking.sweep" in r.data.tags]
    jobs = [r for r in found if r not in parents]
    assert len(parents) == 1 and parents[0].info.status == "FAILED", [r.info for r in found]
    assert "No space left on device" in parents[0].data.tags["error"]
    assert jobs and all(r.info.status == "FAILED" and "No space left on device" in r.data.tags["error"] for r in jobs)
    assert "Traceback" not in out + err  # the job's full disk is one line too (runner.run_job)


def one_line_error(rc, err, option, path, started):
    assert rc == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert lines[0].startswith(f"likepred: error: {option}") and str(path) in lines[0], lines[0]
    assert time.monotonic() - started < 60  # not minutes of retries


@pytest.mark.parametrize("case", ["store_read_only", "store_full", "output_read_only", "cache_read_only",
                                  "store_under_a_file"])
def test_unwritable_folders_stop_the_run_in_one_line(case, tmp_path, cache_dir, mount):
    uri, extra, env_cache = f"sqlite:///{tmp_path}/store/mlflow.db", [], cache_dir
    if case == "store_read_only":
        where = mount("ro", "ro,size=1m")
        uri, option = f"sqlite:///{where}/mlflow.db", "tracking.uri"
    elif case == "store_full":
        where = mount("full", "size=256k")
        fill(where)
        uri, option = f"sqlite:///{where}/db/mlflow.db", "tracking.uri"
    elif case == "output_read_only":
        where = mount("ro", "ro,size=1m") / "out"
        extra, option = [f"hydra.run.dir={where}"], "hydra.run.dir"
    elif case == "cache_read_only":
        env_cache = mount("ro", "ro,size=1m")
        where, option = env_cache / "synthetic", "data.path"
    else:  # no mount needed: a folder under a regular file cannot be made, even by root
        (tmp_path / "afile").write_text("x")
        where = tmp_path / "afile" / "store"
        uri, option = f"sqlite:///{where}/mlflow.db", "tracking.uri"
    started = time.monotonic()
    env = dict(os.environ, LIKEPRED_CACHE=str(env_cache))
    cmd = command(["model=user_median"], tmp_path, uri, extra=extra)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    one_line_error(proc.returncode, proc.stderr, option, where, started)


@pytest.mark.slow
def test_read_only_artifact_root_is_found_before_training(tmp_path, cache_dir, mount):
    """An experiment whose artifact root turned read-only: stopped before the data is read."""
    from omegaconf import OmegaConf

    from likepred.tracking.store import ensure_experiment

    art = mount("art", "size=1m")
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ensure_experiment(OmegaConf.create({"uri": uri, "experiment": "faults", "artifact_root": str(art)}))
    subprocess.run(["mount", "-o", "remount,ro", str(art)], check=True)
    started = time.monotonic()
    rc, out, err = run(["model=user_median"], tmp_path, cache_dir, uri)
    one_line_error(rc, err, "the artifact root of experiment 'faults'", art, started)
    assert "Loading" not in out and not runs(uri)  # no run was opened


# ---- caches: a damaged entry is rebuilt, with a log line, never trusted

DIM = 8


def images(folder, n):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:03d}.jpg"
        p.write_bytes(np.random.default_rng(i).integers(0, 256, 64, dtype=np.uint8).tobytes())
        paths.append(p)
    return paths


def byte_features(paths):
    """Features from each file's first bytes (a real, cheap extractor)."""
    return np.stack([np.frombuffer(open(p, "rb").read()[:DIM], np.uint8) for p in paths]).astype(np.float32)


def test_truncated_feature_cache_is_set_aside_and_rebuilt(tmp_path, caplog):
    paths = images(tmp_path / "img", 20)
    first = cached_features(paths, byte_features, FeatureCache(tmp_path / "c", "bytes|8", DIM), progress=False)
    cache_file = FeatureCache(tmp_path / "c", "bytes|8", DIM).file
    raw = cache_file.read_bytes()
    cache_file.write_bytes(raw[: len(raw) // 2])
    with caplog.at_level(logging.WARNING):
        cache = FeatureCache(tmp_path / "c", "bytes|8", DIM)
        again = cached_features(paths, byte_features, cache, progress=False)
    assert "is damaged" in caplog.text and "will be recomputed" in caplog.text
    np.testing.assert_array_equal(again, first)
    assert cache.stats.computed == 20 and cache_file.with_name(cache_file.name + ".bad").exists()
    assert FeatureCache(tmp_path / "c", "bytes|8", DIM).get_many([])[1].size == 0  # sound again


def test_nan_rows_in_the_feature_cache_are_recomputed(tmp_path, caplog):
    paths = images(tmp_path / "img", 10)
    first = cached_features(paths, byte_features, FeatureCache(tmp_path / "c", "bytes|8", DIM), progress=False)
    cache_file = FeatureCache(tmp_path / "c", "bytes|8", DIM).file
    with h5py.File(cache_file, "r+") as f:
        f["features"][2:5] = np.nan
    with caplog.at_level(logging.WARNING):
        cache = FeatureCache(tmp_path / "c", "bytes|8", DIM)
        again = cached_features(paths, byte_features, cache, progress=False)
    assert "3 cached row(s) hold NaN or inf; recomputing them" in caplog.text
    np.testing.assert_array_equal(again, first)
    assert (cache.stats.hits, cache.stats.computed) == (7, 3)
    with h5py.File(cache_file, "r") as f:  # the merged file holds the fresh rows, no NaN
        assert len(f["hashes"]) == 10 and np.isfinite(f["features"][()]).all()


def test_nan_from_the_extractor_names_the_image_and_is_not_cached(tmp_path):
    paths = images(tmp_path / "img", 4)

    def some_nan(batch):
        out = byte_features(batch)
        out[[Path(p).name == "img002.jpg" for p in batch]] = np.nan
        return out

    cache = FeatureCache(tmp_path / "c", "bytes|8", DIM)
    with pytest.raises(DataError, match=r"img002\.jpg.*NaN or inf features") as e:
        cached_features(paths, some_nan, cache, progress=False)
    assert "on_missing=skip" not in str(e.value)
    got = cached_features(paths, some_nan, cache, progress=False, errors="nan")
    assert np.isnan(got[2]).all() and np.isfinite(got[[0, 1, 3]]).all() and cache.stats.failed == 1
    assert not cache.get_many([content_hash(paths[2])])[1][0]


def test_deleted_or_changed_synthetic_profile_is_written_again(tmp_path, caplog):
    from likepred.synthetic import ensure

    folder = ensure(tmp_path, n_users=6, min_posts=3, max_posts=5)
    profile = folder / "profiles" / "user0002.json"
    original = profile.read_bytes()
    profile.unlink()
    with caplog.at_level(logging.WARNING):
        assert ensure(tmp_path, n_users=6, min_posts=3, max_posts=5) == folder
    assert "profiles/user0002.json is missing; writing it again" in caplog.text
    assert profile.read_bytes() == original
    profile.write_text(json.dumps({"alias": "user0002", "posts": []}))  # edited (or cut short)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ensure(tmp_path, n_users=6, min_posts=3, max_posts=5)
    assert "user0002.json was changed" in caplog.text and profile.read_bytes() == original
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ensure(tmp_path, n_users=6, min_posts=3, max_posts=5)
    assert not caplog.text  # sound: reused as is


def test_garbled_feature_cache_found_while_reading_is_set_aside(tmp_path, caplog):
    """Bytes garbled inside the file (it opens fine): the chunk checksum fails on reading."""
    paths = images(tmp_path / "img", 12)
    first = cached_features(paths, byte_features, FeatureCache(tmp_path / "c", "bytes|8", DIM), progress=False)
    cache = FeatureCache(tmp_path / "c", "bytes|8", DIM)
    with h5py.File(cache.file, "r") as f:
        chunk = f["features"].id.get_chunk_info(0)
    with open(cache.file, "r+b") as f:
        f.seek(chunk.byte_offset + 8)
        f.write(b"\x7f" * 16)
    with caplog.at_level(logging.WARNING):
        cache = FeatureCache(tmp_path / "c", "bytes|8", DIM)
        again = cached_features(paths, byte_features, cache, progress=False)
    np.testing.assert_array_equal(again, first)
    assert "is damaged (unreadable:" in caplog.text and cache.stats.computed == 12
