"""An Optuna trial as a job sees it: the study's storage, per-epoch reports, pruning.

The sweeper (hydra_plugins/likepred_plugins) owns the study and tells each trial's result; a
job only reports its val loss per epoch and learns from the study's pruner whether to stop.
It finds its trial through the environment (the sweeper sets LIKEPRED_OPTUNA_STUDY/TRIAL per
job) and the storage named in its own Hydra config, so this works wherever the job runs as long
as that storage is reachable (a database server, or a journal file on a shared filesystem).
"""

from __future__ import annotations

import logging
import math
import os

from likepred.errors import ConfigError, MissingDependencyError
from likepred.tracking.store import store_lock

log = logging.getLogger(__name__)

STUDY_ENV, TRIAL_ENV = "LIKEPRED_OPTUNA_STUDY", "LIKEPRED_OPTUNA_TRIAL"
PRUNED_ATTR = "pruned_at_epoch"  # user attr the job sets before it stops; the sweeper tells PRUNED
_in_memory: dict = {}  # study name -> in-memory storage, for jobs in the sweeper's own process


class Pruned(Exception):
    """The study's pruner stopped this trial: its run ends KILLED and tagged pruned=true."""

    run_status = "KILLED"


def open_storage(url: str | None):
    """An Optuna storage from its URL: sqlite:///…, postgresql://…, or journal:PATH (a file,
    for NFS where no database server is at hand); None stays None (an in-memory study)."""
    if not url:
        return None
    try:
        import optuna
    except ImportError as e:
        raise MissingDependencyError("optuna", "sweep", "hparams_search") from e
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = url[len("journal:"):]
        return JournalStorage(JournalFileBackend(path[2:] if path.startswith("///") else path))
    if "://" not in url:
        raise ConfigError(f"hydra.sweeper.storage={url!r}: expected a database URL (sqlite:///optuna.db, "
                          "postgresql://user@host/db) or journal:PATH")
    # several workers on one SQLite file wait for its lock instead of failing at once
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # a fresh SQLite file gets its tables and alembic stamp on first open, which two processes
    # doing at once break ("UNIQUE constraint failed: alembic_version"): one at a time
    with store_lock(url):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _job_trial():
    """This job's Optuna trial if the sweeper made it one and the study has a pruner, else None."""
    trial_id, study_name = os.environ.get(TRIAL_ENV), os.environ.get(STUDY_ENV)
    if not trial_id or not study_name:
        return None
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    sweeper = HydraConfig.get().sweeper if HydraConfig.initialized() else {}
    if not sweeper.get("pruner"):
        return None
    import optuna

    storage = open_storage(sweeper.get("storage")) or _in_memory.get(study_name)
    if storage is None:
        log.warning("Optuna trial %s: its in-memory study is in another process; no pruning "
                    "(hydra.sweeper.storage shares it)", trial_id)
        return None
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=instantiate(sweeper.pruner))
    return optuna.trial.Trial(study, int(trial_id))


def trial_reporter(on_epoch, monitor: str = "val_loss"):
    """`on_epoch` plus, in an Optuna trial with a pruner, a report of `monitor` per epoch; raises
    Pruned when the pruner says the trial is clearly worse than the others at the same epoch."""
    trial = _job_trial()
    if trial is None:
        return on_epoch

    def report(epoch, logs):
        if on_epoch is not None:
            on_epoch(epoch, logs)
        value = (logs or {}).get(monitor)
        if value is None or not math.isfinite(float(value)):
            return
        trial.report(float(value), int(epoch))
        if trial.should_prune():
            trial.set_user_attr(PRUNED_ATTR, int(epoch))
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.set_tag("pruned", "true")
            raise Pruned(f"Optuna trial {trial.number} pruned after epoch {epoch}: {monitor} {float(value):.4g} "
                         "is worse than the study's other trials at that epoch")

    return report
