"""Scale: each stage's wall time and peak memory per data size, beside a plain pandas/pyarrow peer.

    nice -n 10 python benchmarks/scale.py [--users 300 3000 30000] [--posts 8 40] [--stages ...]
    nice -n 10 python benchmarks/scale.py --users 34000 --posts 300 300   # ~10 M posts, once

Every stage runs in its own process (peak memory is that process's max RSS, from wait4):
  generate    the synthetic folder written (skipped when it exists: "(exists)")
  read_cold   likepred's read with the columnar cache emptied: parallel parse + Parquet parts
  read_warm   the same read again: the assembled table from the cache
  peer_cold   plain script: json.load every file in a process pool, posts flattened into a pandas
              DataFrame (no validation, no error reporting), written to Parquet
  peer_warm   plain script: that Parquet read back into pandas
  command     the default command (`python -m likepred data.n_users=N ...`), cache warm
  command_gbm the same with model=gbm
Caches go under $LIKEPRED_CACHE (default /tmp/lpcache-scale); runs log to a throwaway MLflow store.
Report the load beside the figures (`uptime`): the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["generate", "read_cold", "read_warm", "peer_cold", "peer_warm", "command", "command_gbm"]


def _folder(users, lo, hi, seed=0):
    from likepred.synthetic.profiles import params_key

    return Path(os.environ["LIKEPRED_CACHE"]) / "synthetic" / params_key(users, lo, hi, seed)


def stage(name, users, lo, hi):
    """Run one stage in this process; print the number of posts it saw."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    folder = _folder(users, lo, hi)
    if name == "generate":
        from likepred import synthetic

        synthetic.ensure(folder.parent, users, lo, hi, 0)
        return 0
    if name.startswith("read"):
        from likepred.data.columnar import ProfilesFolder
        from likepred.files import cache_root

        if name == "read_cold":
            shutil.rmtree(cache_root() / "tables", ignore_errors=True)
        posts, _, _ = ProfilesFolder(folder / "profiles").read()
        return len(posts)
    if name.startswith("peer"):
        return peer(folder / "profiles", Path(os.environ["LIKEPRED_CACHE"]) / "peer" / folder.name, name == "peer_cold")
    raise SystemExit(f"unknown stage {name}")


def _peer_file(path):
    import json

    with open(path, "rb") as f:
        p = json.load(f)
    return [(p["alias"], i, q["date"], q["numberLikes"], q["tags"], q["mentions"], q.get("description"),
             q.get("filename"), bool(q.get("multipleImage"))) for i, q in enumerate(p["posts"])]


def peer(folder, out, cold):
    """The same read as plain pandas/pyarrow: a pool of json.load, one DataFrame, Parquet."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    parquet = out / "posts.parquet"
    if cold:
        from concurrent.futures import ProcessPoolExecutor

        files = sorted(folder.glob("*.json"))
        rows = []
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            for r in pool.map(_peer_file, files, chunksize=64):
                rows += r
        df = pd.DataFrame(rows, columns=["alias", "post_index", "date", "likes", "tags", "mentions", "caption",
                                         "image", "multiple_image"])
        df["date"] = pd.to_datetime(df["date"], utc=True, format="ISO8601")
        df.to_parquet(parquet)
        return len(df)
    return len(pd.read_parquet(parquet))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[300, 3000, 30000])
    ap.add_argument("--posts", type=int, nargs=2, default=[8, 40], metavar=("MIN", "MAX"),
                    help="posts per user (data.min_posts, data.max_posts); 300 300 for influencer scale")
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("LIKEPRED_CACHE", "/tmp/lpcache-scale")
    if args.stage:
        t = time.time()
        n = stage(args.stage, args.users[0], *args.posts)
        print(f"posts={n} seconds={time.time() - t:.2f}")
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores, load at start: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    # wall: the whole process (interpreter start and imports included); work: the stage alone
    # cpu: user + system seconds of the stage's process and the pool workers it waited for (on a
    # shared machine wall time is mostly waiting; posts per CPU second is what a quiet core gives)
    print(f"{'users':>7} {'posts':>10} {'stage':<12} {'wall s':>8} {'work s':>8} {'cpu s':>8} {'peak GB':>8} "
          f"{'posts/s':>9} {'posts/cpu s':>11}")
    for users in args.users:
        posts = None
        for name in args.stages:
            if name == "generate" and (_folder(users, *args.posts) / "COMPLETE").exists():
                print(f"{users:>7} {'':>10} {name:<12} {'(exists)':>8}", flush=True)
                continue
            wall, cpu, peak, out, err, rc = _run(name, users, args.posts, env)
            work = None
            for line in out.splitlines():
                if line.startswith("posts="):
                    fields = dict(kv.split("=") for kv in line.split())
                    posts, work = int(fields["posts"]) or posts, float(fields["seconds"])
            reads = posts and work and name.startswith(("read", "peer"))
            rate = f"{posts / work:>9.0f} {posts / cpu:>11.0f}" if reads else ""
            work = f"{work:>8.1f}" if work is not None else f"{'':>8}"
            flag = "" if rc == 0 else f"  FAILED rc={rc}: {err.strip().splitlines()[-1] if err.strip() else ''}"
            print(f"{users:>7} {posts or '':>10} {name:<12} {wall:>8.1f} {work} {cpu:>8.1f} {peak:>8.2f} {rate}{flag}",
                  flush=True)
    print(f"# load at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _run(name, users, posts, env):
    """Run a stage in a child process: (wall s, CPU s (user + system, the child and the children it
    waited for), peak GB: the largest max RSS of the child and the children it waited for, e.g.
    pool workers; not their sum), stdout, stderr, rc)."""
    lo, hi = posts
    if name.startswith("command"):
        cmd = [sys.executable, "-m", "likepred", f"data.n_users={users}", f"data.min_posts={lo}",
               f"data.max_posts={hi}", f"tracking.uri=sqlite:///{env['LIKEPRED_CACHE']}/mlflow.db"]
        cmd += ["model=gbm"] if name == "command_gbm" else []
    else:
        cmd = [sys.executable, __file__, "--stage", name, "--users", str(users), "--posts", str(lo), str(hi)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.time()
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.time() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, out.read(), err.read(), p.returncode


if __name__ == "__main__":
    main()
