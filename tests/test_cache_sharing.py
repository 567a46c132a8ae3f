"""Processes that share one data cache (`LIKEPRED_CACHE`, sweep workers on a shared path) parse a
cold folder once: the first builds the columnar cache under its lock, the others wait and load it.

Each reader is a separate Python process reading a real synthetic profiles folder (aged, so no file
is "just written" and re-read every time); what it parsed is `ProfilesFolder.parsed`, and its log
says whether it parsed ("data: parsed"), waited, or loaded the cache ("from the cache").
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from test_slurm import slurm  # noqa: F401  (fixtures: a local SLURM, a local Ray cluster)

try:
    from test_ray import NO_TOKEN, ray_head  # noqa: F401
except pytest.skip.Exception:  # Ray is not installed
    ray_head = NO_TOKEN = None

# A reader process: imports first, then waits for the start file so that several start together.
# With PAUSE it stops (sleeps) once it has parsed, still holding the build: a holder to kill -9.
READER = r"""
import json, logging, os, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
import pandas, pyarrow, pyarrow.parquet
from likepred.data import columnar

folder, go, out, pause = sys.argv[1:5]
if pause != "-":
    real = columnar._parse_chunk

    def parse_then_stop(*args):
        entries = real(*args)
        open(pause, "w").close()
        time.sleep(600)
        return entries

    columnar._parse_chunk = parse_then_stop
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
f = columnar.ProfilesFolder(folder)
posts, users, skips = f.read()
posts.to_pickle(out)
print(json.dumps({"parsed": len(f.parsed), "users": len(users)}))
"""

WAITING = "waiting for another process to build the cache of"


def aged_synthetic(root: Path, **params) -> Path:
    """A synthetic dataset (likepred.synthetic.ensure) whose files are an hour old (a cache keeps them)."""
    from likepred import synthetic

    folder = synthetic.ensure(root, **params)
    old = time.time() - 3600
    for p in (folder / "profiles").iterdir():
        os.utime(p, (old, old))
    return folder


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    """A real profiles folder: 300 synthetic users (~7 k posts), and its posts read without any cache."""
    from likepred.data.profiles import iter_profiles
    from likepred.data.schema import posts_and_users

    folder = aged_synthetic(tmp_path_factory.mktemp("syn"), n_users=300) / "profiles"
    return folder, posts_and_users(iter_profiles(folder), "error", None)[0]


def start_reader(folder, go, out, cache, pause="-", log=None):
    env = dict(os.environ, LIKEPRED_CACHE=str(cache), PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", READER, str(folder), str(go), str(out), str(pause)],
                            env=env, stdout=subprocess.PIPE, stderr=log or subprocess.PIPE, text=True)


def wait_for(what, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def cache_files(cache: Path):
    """The one table folder under the cache: its index and the Parquet parts on disk."""
    [table] = list((cache / "tables").iterdir())
    index = json.loads((table / "index.json").read_text())
    return index, {p.name for p in table.glob("part-*.parquet")}


def test_two_processes_reading_a_cold_folder_at_once_parse_it_once(profiles, tmp_path):
    folder, expected = profiles
    n_files = len(list(folder.glob("*.json")))
    go, cache = tmp_path / "go", tmp_path / "cache"
    procs = [start_reader(folder, go, tmp_path / f"posts{i}.pkl", cache) for i in range(2)]
    wait_for("both readers to start", lambda: len(list(tmp_path.glob("go.ready.*"))) == 2)
    go.touch()  # both read now, on one cold cache
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    # exactly one parsed every file; the other loaded what it built (without the lock both parse)
    assert sorted(r["parsed"] for r in results) == [0, n_files], results
    logs = [err for _, err in outs]
    assert sum(err.count("data: parsed") for err in logs) == 1, logs
    loader = logs[[r["parsed"] for r in results].index(0)]
    assert "posts from the cache" in loader, loader
    for i in range(2):
        pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / f"posts{i}.pkl"), expected)
    index, parts = cache_files(cache)  # one build's parts, no second set
    assert len(index) == n_files and parts == {e["part"] for e in index.values() if e["part"]}


def test_a_holder_killed_mid_build_leaves_the_next_reader_to_rebuild(profiles, tmp_path, monkeypatch):
    folder, expected = profiles
    n_files = len(list(folder.glob("*.json")))
    go, cache, paused = tmp_path / "go", tmp_path / "cache", tmp_path / "paused"
    go.touch()
    holder = start_reader(folder, go, tmp_path / "holder.pkl", cache, pause=paused)
    try:
        wait_for("the holder to parse (parts written, the build not finished)", paused.exists)
        with open(tmp_path / "waiter.log", "w") as log:
            waiter = start_reader(folder, go, tmp_path / "waiter.pkl", cache, log=log)
            wait_for("the second reader to wait for the build",
                     lambda: WAITING in (tmp_path / "waiter.log").read_text() or waiter.poll() is not None)
            assert waiter.poll() is None, (tmp_path / "waiter.log").read_text()[-2000:]
            assert f"{WAITING} {folder}" in (tmp_path / "waiter.log").read_text()
            holder.kill()  # SIGKILL mid-build: its lock goes with it
            holder.wait(timeout=60)
            out, _ = waiter.communicate(timeout=300)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert waiter.returncode == 0, (tmp_path / "waiter.log").read_text()[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["parsed"] == n_files  # rebuilt, all of it
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "waiter.pkl"), expected)
    index, parts = cache_files(cache)  # the dead holder's part is cleaned away
    assert len(index) == n_files and parts == {e["part"] for e in index.values() if e["part"]}

    from likepred.data.columnar import ProfilesFolder

    monkeypatch.setenv("LIKEPRED_CACHE", str(cache))
    again = ProfilesFolder(folder)
    pd.testing.assert_frame_equal(again.read()[0], expected)
    assert again.parsed == []  # what the waiter built is the warm cache


def test_unlocked_where_flock_is_not_supported(tmp_path, caplog, monkeypatch):
    """A file system without flock (ENOLCK, ...) still runs the block, saying so at DEBUG."""
    import errno
    import logging

    from likepred.files import file_lock

    fcntl = pytest.importorskip("fcntl")

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = []
    with caplog.at_level(logging.DEBUG, logger="likepred.files"), file_lock(tmp_path / "x.lock", "waiting"):
        ran.append(True)
    assert ran == [True] and "flock not supported" in caplog.text and "waiting" not in caplog.text


# ---- sweeps: two jobs on a cold shared cache, on a real local Ray cluster and a real local SLURM


def sweep_on_a_cold_cache(tmp_path, launcher_args, env):
    """A 2-job sweep (data=synthetic: 300 users, ~7 k posts, a parse of a second or two, already
    generated and aged; the table cache cold) with the launcher; the jobs' log lines."""
    from test_sweeps import TINY

    cache = tmp_path / "cache"
    aged_synthetic(cache / "synthetic", n_users=300)
    assert not (cache / "tables").exists()
    sweep_dir = tmp_path / "multi"
    tiny = [o for o in TINY if not o.startswith("data.")] + ["data.n_users=300"]
    cmd = [sys.executable, "-m", "likepred", "--multirun", *launcher_args, "model=user_median", "seed=0,1", *tiny,
           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"hydra.sweep.dir={sweep_dir}"]
    env = dict(env, LIKEPRED_CACHE=str(cache), PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    logs = "".join(p.read_text(errors="replace") for p in sweep_dir.rglob("*.log"))
    return out, logs


def assert_one_parse(logs):
    lines = [ln for ln in logs.splitlines() if "data: parsed" in ln or "posts from the cache" in ln]
    assert sum("data: parsed" in ln for ln in lines) == 1, lines  # one job parsed the folder
    assert sum("posts from the cache" in ln for ln in lines) == 1, lines  # the other loaded its cache


@pytest.mark.slow
def test_a_ray_sweep_on_a_cold_shared_cache_parses_once(tmp_path, request):
    if ray_head is None:
        pytest.skip("Ray is not installed")
    head = request.getfixturevalue("ray_head")
    out, logs = sweep_on_a_cold_cache(tmp_path, ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={head}"],
                                      dict(os.environ, **NO_TOKEN))
    assert f"2 jobs on {head}" in out and "(execute_job pid=" in out  # Ray workers ran them
    assert_one_parse(logs)


@pytest.mark.slow
def test_a_slurm_sweep_on_a_cold_shared_cache_parses_once(tmp_path, request):
    env, _ = request.getfixturevalue("slurm")
    _, logs = sweep_on_a_cold_cache(tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
                                               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null",
                                               "hydra.launcher.timeout_min=10"], env)
    assert_one_parse(logs)
