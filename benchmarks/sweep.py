"""Sweeps: parallel speedup of the joblib and Ray launchers, and the per-job overhead.

For each model (gbm, dense_meta), on the same N jobs (seed=0..N-1, default synthetic data):
  bare        train() on each config in one process, tracking off: the work itself;
  sequential  python -m likepred --multirun (basic launcher, jobs in-process, MLflow child runs);
  joblib      the same with hydra/launcher=joblib hydra.launcher.n_jobs=WORKERS;
  ray         the same with hydra/launcher=ray on a local Ray of WORKERS CPUs, started by the
              launcher (its start is part of the wall time; a running cluster would not pay it).
All share one JAX compile cache, warmed by job 0 of `bare`.
Reports each launcher's speedup over sequential (target >= 1.6x with 2 workers on 2 cores) and the
per-job overhead: sequential seconds per job (gaps between its child runs' starts) minus bare
seconds per job (target < 1 s). Job 0 of each is left out of per-job figures (imports, first compile).
It also reports the machine's parallel capacity (how many cores two busy processes really get):
on a shared or throttled machine the speedup cannot exceed it.

    python benchmarks/sweep.py [--jobs 8] [--workers 2] [--models gbm,dense_meta] [--launchers joblib,ray] [overrides...]
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
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`likepred.job_num` != ''")
    return wall, sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs)


LAUNCHERS = {
    "joblib": lambda w: ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={w}"],
    "ray": lambda w: ["hydra/launcher=ray", f"+hydra.launcher.ray.init.num_cpus={w}",
                      "+hydra.launcher.ray.init.include_dashboard=false"],
}


def bench_model(model, a, tmp, uri):
    overrides = [f"model={model}", *a.overrides]
    bare = bare_seconds(a.jobs, overrides)
    walls, runs = {}, {}
    walls["sequential"], runs["sequential"] = sweep_seconds(a.jobs, overrides, tmp, f"{model}-sequential", uri)
    for name in a.launchers:
        walls[name], runs[name] = sweep_seconds(a.jobs, overrides, tmp, f"{model}-{name}", uri,
                                                LAUNCHERS[name](a.workers))
    starts = [s for s, _ in runs["sequential"]]
    gaps = [b - s for s, b in zip(starts[1:], starts[2:])]
    per_job_seq, per_job_bare = statistics.median(gaps), statistics.median(bare[1:])
    print(f"{model}: {a.jobs} jobs ({' '.join(WORK + overrides)})")
    print(f"  bare train() per job           {per_job_bare:7.2f} s  (median of jobs 1..{a.jobs - 1})")
    print(f"  sequential sweep per job       {per_job_seq:7.2f} s  (median gap between child-run starts)")
    print(f"  overhead per job (Hydra+MLflow){per_job_seq - per_job_bare:7.2f} s  (target < 1 s)")
    print(f"  sequential sweep wall          {walls['sequential']:7.1f} s")
    for name in a.launchers:
        run_s = statistics.median(e - s for s, e in runs[name][a.workers:])
        print(f"  {name:6s} {a.workers} workers wall         {walls[name]:7.1f} s  speedup "
              f"{walls['sequential'] / walls[name]:5.2f} x  (child run median {run_s:.2f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default="gbm,dense_meta", help="comma-separated")
    ap.add_argument("--launchers", default=",".join(LAUNCHERS), help="comma-separated: " + ",".join(LAUNCHERS))
    ap.add_argument("overrides", nargs="*", help="extra overrides for every job, e.g. data.n_users=100")
    a = ap.parse_args()
    a.models, a.launchers = a.models.split(","), a.launchers.split(",")
    unknown = set(a.launchers) - set(LAUNCHERS)
    if unknown:
        ap.error(f"--launchers: unknown {sorted(unknown)}; known: {', '.join(LAUNCHERS)}")
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("LIKEPRED_CACHE", str(tmp / "cache"))
    # bare train() gets the compile cache that sweep jobs use (likepred.tracking.sweep.prepare_job)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(tmp / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    uri = f"sqlite:///{tmp}/mlflow.db"
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()  # create the database now: its migrations are not a sweep's cost

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs, load average {os.getloadavg()[0]:.1f}, parallel capacity {parallel_capacity():.2f} cores")
    for model in a.models:
        bench_model(model, a, tmp, uri)
    print(f"load average {os.getloadavg()[0]:.1f}, parallel capacity {parallel_capacity():.2f} cores after")


if __name__ == "__main__":
    main()
