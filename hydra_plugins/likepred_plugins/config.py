"""Structured configs of the plugins, registered in Hydra's ConfigStore (read by `--cfg hydra`)."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.likepred_plugins.ray_launcher.RayLauncher"
    # init: keyword arguments of ray.init (address: null starts a local Ray in the process,
    # "auto" or HOST:PORT joins a running cluster); remote: options of each job's task.
    # max_calls=1: every job gets a fresh worker process, so its thread caps take effect and no
    # Keras/JAX state leaks from one job into the next (costs ~1 s of worker start per job).
    ray: Dict[str, Any] = field(default_factory=lambda: {
        "init": {"address": None},
        "remote": {"num_cpus": 1, "max_calls": 1},
        "connect_timeout": 5,  # seconds the head has to answer (likepred.preflight.check_ray)
    })


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.likepred_plugins.optuna_sweeper.OptunaSweeper"
    # instantiated with hydra.utils.instantiate, e.g. {_target_: optuna.samplers.TPESampler, seed: 0}
    sampler: Any = None            # null: Optuna's default (TPE)
    pruner: Any = None             # e.g. {_target_: optuna.pruners.MedianPruner}; null: never prune
    direction: Any = "minimize"    # or a list for several objectives
    # sqlite:///optuna.db, postgresql://user@host/db, journal:/shared/optuna.journal (a file
    # on NFS); null: in memory, lost at the end. A persistent study resumes and can be shared.
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_trials: int = 20             # trials the study should hold (finished, pruned, running)
    n_jobs: Optional[int] = None   # trials per batch; null: the launcher's parallelism
    max_failure_rate: float = 1.0  # stop when a batch has more failed trials than this fraction
    heartbeat_interval: float = 10.0  # seconds between "still running" marks of a sweep's trials
    grace_period: Optional[float] = None  # a RUNNING trial silent this long was killed (null: 3x interval)
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/launcher", name="likepred_ray", node=RayLauncherConf, provider="likepred")
ConfigStore.instance().store(group="hydra/sweeper", name="likepred_optuna", node=OptunaSweeperConf,
                             provider="likepred")
