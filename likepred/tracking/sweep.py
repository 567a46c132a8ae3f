"""Sweeps: one MLflow parent run per multirun and one child run per job, whatever the launcher.

The parent process (`TrackingCallback`) creates the parent run before any job starts and
writes its id to `likepred_sweep.json` in the sweep dir. Every job (in-process, a joblib
worker, a submitit process, a cluster node) finds it there: Hydra's sweep dir is the one
place all launchers share (submitit needs it on a shared filesystem anyway).

mlflow is imported inside functions so `--help` and config composition stay fast.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from likepred.tracking.alive import process_tags
from likepred.tracking.lineage import code_tags, data_changed
from likepred.tracking.keys import (CONFIG_HASH, LAUNCHER, OPTIMIZED, OVERRIDES, REUSED_TAG, SWEEP_DIR, SWEEP_FILE,
                                   SWEEP_TAG, SWEEPER, config_hash)
from likepred.stores import store_source
from likepred.tracking.store import ensure_experiment

log = logging.getLogger(__name__)

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
_open_parents: dict = {}  # parent run id -> tracking uri, until the sweep's end is logged


@dataclass
class Job:
    """Where a multirun job stands: its number, overrides and the sweep's parent run."""

    num: int
    overrides: list
    sweep_dir: Path
    parent: dict = field(default_factory=dict)
    launcher: dict = field(default_factory=dict)
    threads: int | None = None  # BLAS/XLA threads this job may use (None: no cap)

    @property
    def swept(self) -> list:
        """The overrides this job varies: those not given as such to the whole sweep command
        (compared parsed, since sweepers may re-escape the fixed ones)."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parse = OverridesParser.create().parse_overrides
        common = {(o.key_or_group, str(o.value())) for o in parse(self.parent.get("overrides", []))
                  if not o.is_sweep_override()}
        return [s for s, o in zip(self.overrides, parse(self.overrides))
                if (o.key_or_group, str(o.value())) not in common]


def current_job() -> Job | None:
    """The running multirun job, or None for a single run (or outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(str(hc.sweep.dir)).absolute()
    path = sweep_dir / SWEEP_FILE
    parent = json.loads(path.read_text()) if path.exists() else {}
    launcher = OmegaConf.to_container(hc.launcher, resolve=False)
    return Job(int(hc.job.num), list(hc.overrides.task), sweep_dir, parent, launcher)


# ---- threads: parallel jobs share the cores instead of oversubscribing them

def threads_per_job(launcher: dict, cpus: int, configured=None) -> int | None:
    """Threads for one job: sweep.threads_per_job, else the launcher's CPUs per task (submitit,
    Ray's num_cpus), else the cores divided among joblib's workers; None (no limit) in-process."""
    if configured:
        return int(configured)
    cpus_per_task = launcher.get("cpus_per_task") or ((launcher.get("ray") or {}).get("remote") or {}).get("num_cpus")
    if cpus_per_task:
        return max(1, int(cpus_per_task))
    n_jobs = launcher.get("n_jobs")
    if not n_jobs or not str(n_jobs).lstrip("-").isdigit():
        return None
    n_jobs = int(n_jobs)
    workers = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 all cores, -2 all but one
    return max(1, cpus // workers)


def limit_threads(n: int):
    """Cap BLAS/OpenMP/XLA threads of this process; must run before numpy/jax start their pools."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:  # XLA has no thread-count flag; this is 1
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def usable_cpus() -> int:
    """CPUs this process may run on (taskset, cgroups' cpusets), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prepare_job(cfg, job: Job):
    """Per-job process settings, before Keras/JAX load: thread caps, and JAX's persistent compile
    cache, so jobs with the same architecture (seeds, lrs, losses) skip recompiling the same XLA
    programs; a sweep of small nets otherwise spends about half of each job compiling."""
    job.threads = threads_per_job(job.launcher, usable_cpus(), cfg.get("sweep", {}).get("threads_per_job"))
    if job.threads:
        limit_threads(job.threads)
    from likepred.files import cache_root

    cache = cache_root() / "jax"
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


# ---- parent run (parent process)

def sweep_name(overrides: list) -> str:
    """`sweep ` + what the command varies (its sweep overrides and hparams_search), else all overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [s for s, o in zip(overrides, parsed) if o.is_sweep_override() or o.key_or_group == "hparams_search"]
    return "sweep " + (" ".join(swept or overrides) or "(defaults)")[:200]


def start_sweep(config):
    """Create the sweep's parent run and write its id into the sweep dir; called before any job."""
    from mlflow.tracking import MlflowClient

    from likepred.files import write_atomic
    from likepred.preflight import check_artifact_root

    tcfg = config.tracking
    exp_id = ensure_experiment(tcfg)
    check_artifact_root(tcfg, exp_id)
    overrides = list(config.hydra.overrides.task)
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tcfg.uri)
    run = client.create_run(exp_id, run_name=sweep_name(overrides), tags={
        SWEEP_TAG: "true", OVERRIDES: " ".join(overrides), SWEEP_DIR: str(sweep_dir),
        SWEEPER: str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1],
        LAUNCHER: str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
        OPTIMIZED: str(config.get("optimized_metric") or "val_mape"), **process_tags(), **code_tags()})
    info = {"parent_run_id": run.info.run_id, "experiment_id": exp_id, "tracking_uri": tcfg.uri,
            "overrides": overrides, "optimized_metric": config.get("optimized_metric"),
            "register": tcfg.get("register"), "alias": tcfg.get("alias") or "champion"}
    write_atomic(sweep_dir / SWEEP_FILE, json.dumps(info, indent=1))
    _open_parents[run.info.run_id] = tcfg.uri
    if len(_open_parents) == 1:
        atexit.register(_close_abandoned)
    log.info("sweep parent run %s (experiment %s)", run.info.run_id, tcfg.experiment)
    return info


def close_open_parents(status="FAILED", why="the sweep stopped before its end (see the console log)"):
    """End the parent runs of sweeps that stopped before on_multirun_end (an error, Ctrl-C)."""
    from mlflow.tracking import MlflowClient

    for run_id, uri in list(_open_parents.items()):
        client = MlflowClient(uri)
        client.set_tag(run_id, "error", why)
        client.set_terminated(run_id, status)
        _open_parents.pop(run_id, None)


def _close_abandoned():
    # The sweeper raised before on_multirun_end: do not leave the parent RUNNING forever.
    close_open_parents()


def end_sweep(config):
    """Write the parent's summary, tag the best job, set its status; exit 1 if any job failed."""
    from mlflow.tracking import MlflowClient

    from likepred.tracking.report import DONE, format_table, log_summary

    path = Path(str(config.hydra.sweep.dir)).absolute() / SWEEP_FILE
    if not path.exists():
        print(f"likepred: the sweep's MLflow parent run was not created ({path} is missing; see the "
              "warning from TrackingCallback.on_multirun_start above)", file=sys.stderr, flush=True)
        raise SystemExit(1)
    info = json.loads(path.read_text())
    client = MlflowClient(info["tracking_uri"])
    metric = info.get("optimized_metric") or "val_mape"
    table = log_summary(client, info["parent_run_id"], metric, info.get("register"),
                        info.get("alias") or "champion")
    from likepred.tracking.folds import fold_summary, is_fold_sweep

    folds = ""
    if is_fold_sweep(info.get("overrides", [])):
        ev = config.get("evaluate") or {}
        folds = fold_summary(client, info["parent_run_id"], table, int(ev.get("bootstrap", 1000)),
                             int(ev.get("seed", 0)), info.get("optimized_metric") or "val_mape")
    failed = table[~table["status"].isin(DONE)]
    done = table[table["status"].isin(DONE)]
    why = None  # a sweep that ran nothing or cannot rank its jobs says so and fails
    if table.empty:
        why = ("the sweep ran no job: its sweep settings expand to nothing (a glob(...) matching no option, "
               "an empty range(...), hydra.sweeper.n_trials < 1?)")
    elif len(done) and (metric not in done or done[metric].isna().all()):
        why = (f"optimized_metric={metric}: no job logged it, so the sweep cannot rank its jobs "
               "(val_mape, val_mae, val_mape_calibrated, ... are logged)")
    if why:
        client.set_tag(info["parent_run_id"], "error", why)
    client.set_terminated(info["parent_run_id"], "FAILED" if len(failed) or why else "FINISHED")
    _open_parents.pop(info["parent_run_id"], None)
    table_text = format_table(table, info.get("optimized_metric") or "val_mape")
    print(f"\nSweep {info['parent_run_id']}: {len(table)} jobs (store {info['tracking_uri']}, "
          f"{store_source(info['tracking_uri'])})\n{table_text}", flush=True)
    if folds:
        print(f"\n{folds}", flush=True)
    if len(failed):
        lines = [f"  #{r.job} {r.name}: {r.status} {r.error}".rstrip() for r in failed.itertuples()]
        print(f"likepred: {len(failed)} of {len(table)} jobs did not finish:\n" + "\n".join(lines),
              file=sys.stderr, flush=True)
        raise SystemExit(1)
    if why:
        print(f"likepred: error: {why}", file=sys.stderr, flush=True)
        raise SystemExit(1)


# ---- resume (job side)

def score(metrics: dict, name: str):
    """The optimised metric as a sweeper wants it: a float, or None when undefined (NaN, absent),
    which Optuna records as a failed trial (a NaN would crash hydra-optuna-sweeper)."""
    value = metrics.get(name)
    return None if value is None or value != value else float(value)


def finished_run(cfg, chash: str, exp_id=None):
    """An earlier FINISHED run of the same resolved config in this experiment, or None."""
    from mlflow.tracking import MlflowClient

    exp_id = exp_id or ensure_experiment(cfg.tracking)
    client = MlflowClient(cfg.tracking.uri)
    for key in (CONFIG_HASH, "config_hash"):  # runs logged before the likepred. prefix too
        found = client.search_runs([exp_id], filter_string=f"tags.`{key}` = '{chash}' and attributes.status = 'FINISHED'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        if found:
            return found[0]
    return None


def reuse_finished(cfg, job: Job):
    """Resume: if this job already FINISHED with the same config and the same data (digest of every
    post read: likepred.tracking.lineage), record it on the parent and return (True, its optimised
    metric); else (False, None). sweep.rerun=true disables it."""
    if not cfg.tracking.enabled or cfg.get("sweep", {}).get("rerun", False):
        return False, None
    run = finished_run(cfg, config_hash(cfg), job.parent.get("experiment_id"))
    if run is None:
        return False, None
    # the data is read once per resume pass (per data settings), not once per job checked
    changed = data_changed(run, cfg.data, scope=job.parent.get("parent_run_id") or str(job.sweep_dir))
    if changed:
        print(f"likepred: job #{job.num} {' '.join(job.swept)}: FINISHED as run {run.info.run_id}, but {changed}; "
              "running it again", flush=True)
        return False, None
    if job.parent.get("parent_run_id"):
        from mlflow.tracking import MlflowClient

        MlflowClient(cfg.tracking.uri).set_tag(job.parent["parent_run_id"], f"{REUSED_TAG}{job.num}",
                                               json.dumps({"run_id": run.info.run_id, "job": " ".join(job.swept)}))
    print(f"likepred: job #{job.num} {' '.join(job.swept)}: already FINISHED as run {run.info.run_id} "
          "with the same config; skipped (sweep.rerun=true runs it again)", flush=True)
    return True, score(run.data.metrics, cfg.optimized_metric)
