"""The Ray launcher's work (ray is imported here only, when a sweep uses it)."""

import logging
import os
from pathlib import Path

import ray
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import open_dict

log = logging.getLogger(__name__)

# The driver's settings that a job needs wherever it runs (cache folder, backend, tracking).
FORWARD = ("LIKEPRED_", "KERAS_", "MLFLOW_")


def connect(launcher):
    if not ray.is_initialized():
        ray.init(**{k: v for k, v in launcher.init.items() if v is not None or k == "address"},
                 ignore_reinit_error=True)


def parallelism(launcher) -> int:
    connect(launcher)
    per_job = float(launcher.remote.get("num_cpus") or 1)
    return max(1, int(ray.cluster_resources().get("CPU", 1) // per_job))


def execute_job(idx, overrides, hydra_context, config, task_function, singleton_state, cwd, env) -> JobReturn:
    """One job in a Ray worker: Hydra's per-job config, the driver's folder and settings, then the task."""
    os.environ.update(env)
    if cwd and Path(cwd).is_dir():  # same machine or a shared filesystem: relative paths mean the same
        os.chdir(cwd)
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def launch(launcher, job_overrides, initial_job_idx):
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    connect(launcher)
    log.info("Ray launcher: %d jobs on %s (%s CPUs), task options %s, sweep dir %s", len(job_overrides),
             launcher.init.get("address") or "a local Ray", ray.cluster_resources().get("CPU"),
             launcher.remote, sweep_dir)
    for i, overrides in enumerate(job_overrides):
        log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(overrides)))
    task = ray.remote(**launcher.remote)(execute_job)
    state = Singleton.get_state()
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARD)}
    refs = [task.remote(initial_job_idx + i, list(o), launcher.hydra_context, launcher.config,
                        launcher.task_function, state, os.getcwd(), env)
            for i, o in enumerate(job_overrides)]
    return ray.get(refs)
