"""Sweeps: parallel speedup and the per-job overhead of Hydra + MLflow.

On the same N dense_meta jobs (seed=0..N-1, default synthetic data):
  bare        train() on each config in one process, tracking off: the work itself;
  sequential  python -m likepred --multirun (basic launcher, jobs in-process, MLflow child runs);
  joblib      the same with hydra/launcher=joblib hydra.launcher.n_jobs=WORKERS.
All three share one JAX compile cache, warmed by job 0 of `bare`.
Reports the joblib speedup over sequential (target >= 1.6x with 2 workers on 2 cores) and the
per-job overhead: sequential seconds per job (gaps between its child runs' starts) minus bare
seconds per job (target < 1 s). Job 0 of each is left out of per-job figures (imports, first compile).
It also reports the machine's parallel capacity (how many cores two busy processes really get):
on a shared or throttled machine the speedup cannot exceed it.

    python benchmarks/sweep.py [--jobs 8] [--workers 2] [overrides...]
"""

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
from hydra import compose, initialize_config_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ["data.n_users=800", "trainer.epochs=30", "trainer.patience=0", "trainer.verbose=0"]  # ~5-10 s of work a job


def _spin(n):
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t0


def parallel_capacity(n=10_000_000) -> float:
    """Cores that two CPU-bound processes get together (2.0 on two idle cores)."""
    one = _spin(n)
    with multiprocessing.Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_spin, [n, n])
        both = time.perf_counter() - t0
    return 2 * one / both


def bare_seconds(n, overrides):
    """Seconds of train() per config, in one process, tracking off (job 0 included, for warm-up)."""
    from likepred.train import train

    out = []
    for seed in range(n):
        with initialize_config_dir(config_dir=str(ROOT / "likepred" / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[*WORK, *overrides, f"seed={seed}", "tracking.enabled=false"])
        t0 = time.perf_counter()
        train(cfg)
        out.append(time.perf_counter() - t0)
    return out


def sweep_seconds(n, overrides, tmp, name, uri, launcher=()):
    """Wall seconds of the whole multirun command, and its child runs' (start, end) times (s)."""
    from mlflow.tracking import MlflowClient

    cmd = [sys.executable, "-m", "likepred", "--multirun", *launcher, f"seed=range(0,{n})", *WORK, *overrides,
           f"tracking.uri={uri}", f"tracking.experiment={name}", f"tracking.artifact_root={tmp}/artifacts",
           "sweep.rerun=true", f"hydra.sweep.dir={tmp}/{name}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{name} sweep failed:\n{proc.stderr[-3000:]}")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.job_num != ''")
    return wall, sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="extra overrides for every job, e.g. data.n_users=100")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("LIKEPRED_CACHE", str(tmp / "cache"))
    # bare train() gets the compile cache that sweep jobs use (likepred.tracking.sweep.prepare_job)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(tmp / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    uri = f"sqlite:///{tmp}/mlflow.db"
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()  # create the database now: its migrations are not a sweep's cost

    capacity = parallel_capacity()
    bare = bare_seconds(a.jobs, a.overrides)
    seq_wall, seq_runs = sweep_seconds(a.jobs, a.overrides, tmp, "sequential", uri)
    par_wall, par_runs = sweep_seconds(a.jobs, a.overrides, tmp, "joblib", uri,
                                       ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={a.workers}"])
    starts = [s for s, _ in seq_runs]
    gaps = [b - s for s, b in zip(starts[1:], starts[2:])]
    run_s = {name: statistics.median(e - s for s, e in runs[a.workers:])
             for name, runs in (("sequential", seq_runs), ("joblib", par_runs))}
    per_job_seq, per_job_bare = statistics.median(gaps), statistics.median(bare[1:])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{a.jobs} dense_meta jobs ({' '.join(WORK + a.overrides)}), {cpus} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, parallel capacity {capacity:.2f} cores before, "
          f"{parallel_capacity():.2f} after")
    print(f"  bare train() per job           {per_job_bare:7.2f} s  (median of jobs 1..{a.jobs - 1})")
    print(f"  sequential sweep per job       {per_job_seq:7.2f} s  (median gap between child-run starts)")
    print(f"  overhead per job (Hydra+MLflow){per_job_seq - per_job_bare:7.2f} s  (target < 1 s)")
    print(f"  child run, median              {run_s['sequential']:7.2f} s sequential, {run_s['joblib']:.2f} s "
          f"in joblib (equal when each worker really gets a core)")
    print(f"  sequential sweep wall          {seq_wall:7.1f} s")
    print(f"  joblib {a.workers} workers wall         {par_wall:7.1f} s")
    print(f"  speedup                        {seq_wall / par_wall:7.2f} x  (target >= 1.6x with 2 workers)")


if __name__ == "__main__":
    main()
