"""The MLflow run of one job: opened before any work (so failures are recorded), per-epoch
metrics in batches, final metrics and files. It logs what it is given; it never packages,
predicts or computes features.

mlflow is imported inside functions so `--help` and config composition stay fast.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from likepred.errors import check_interrupted
from likepred.preflight import check_artifact_root, local_path
from likepred.tracking.alive import process_tags
from likepred.tracking.lineage import code_tags
from likepred.tracking.keys import (CONFIG_HASH, JOB, JOB_NUM, OVERRIDES, THREADS, config_hash, flat_params, for_people,
                                   run_name)
from likepred.tracking.store import ensure_experiment, use_store

log = logging.getLogger(__name__)


class Run:
    """The open MLflow run of a job (a no-op one when tracking is disabled)."""

    FLUSH_S = 10.0  # per-epoch metrics are written in batches: one DB write per epoch cost ~15 ms

    def __init__(self, run_id=None):
        self.run_id = run_id
        self.folder: Path | None = None  # the job's results (likepred.train writes them there)
        self._pending, self._flushed = [], time.monotonic()

    def log_epoch(self, epoch, logs):
        check_interrupted()  # a Ctrl-C swallowed inside a library callback stops here
        if self.run_id:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._pending += [Metric(k, for_people(v), now, int(epoch)) for k, v in (logs or {}).items()]
            if time.monotonic() - self._flushed > self.FLUSH_S:
                self.flush()

    def flush(self):
        """Write the buffered per-epoch metrics (the UI shows curves at most FLUSH_S late)."""
        if self.run_id and self._pending:
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
            for i in range(0, len(self._pending), 1000):  # MLflow's batch limit
                client.log_batch(self.run_id, metrics=self._pending[i:i + 1000])
        self._pending, self._flushed = [], time.monotonic()

    def log_metrics(self, metrics: dict):
        if self.run_id:
            import mlflow

            mlflow.log_metrics({k: for_people(v) for k, v in metrics.items() if v == v})  # NaN: undefined, not logged

    def set_tags(self, tags: dict):
        if self.run_id:
            import mlflow

            mlflow.set_tags(tags)

    def log_folder(self):
        """Log the files in `self.folder` (the job's results, written there by the train step) as
        the run's artifacts, once."""
        if self.run_id and self.folder is not None and any(self.folder.iterdir()):
            import mlflow

            started = time.monotonic()
            files = [f for f in self.folder.rglob("*") if f.is_file()]
            mlflow.log_artifacts(str(self.folder))
            log.info("MLflow: logged %d result files (%.1f MB) in %.1f s", len(files),
                     sum(f.stat().st_size for f in files) / 1e6, time.monotonic() - started)

    def log_model(self, pyfunc_kwargs: dict, register: str | None = None, tags: dict | None = None):
        """Log a packaged model (the keyword arguments of `mlflow.pyfunc.log_model`) as the run's
        logged model `model` (MLflow 3: it shows on the experiment's Models page, `runs:/RUN_ID/model`
        finds it), and register it as a version of `register` (in a sweep every job registers a
        version, tagged with its score)."""
        if not self.run_id:
            return
        import mlflow.pyfunc

        started = time.monotonic()
        try:
            mlflow.pyfunc.log_model(name="model", registered_model_name=register, tags=tags, **pyfunc_kwargs)
        except OSError as e:  # a full disk: no half-copied model stays behind
            model = mlflow.last_logged_model()
            where = model.artifact_location if model is not None and model.source_run_id == self.run_id else None
            local = local_path(where) if where else None
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)
            raise OSError(e.errno, e.strerror, e.filename2 or where or e.filename or "the run's model artifacts") from None
        log.info("MLflow: logged the model in %.1f s%s", time.monotonic() - started,
                 f" (registered as {register})" if register else "")


def _task_overrides(job) -> list:
    from hydra.core.hydra_config import HydraConfig

    if job is not None:
        return job.overrides
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def results_folder() -> Path | None:
    """Where a job writes its results: `results/` in Hydra's output folder of the job (None outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    out = Path(HydraConfig.get().runtime.output_dir) / "results"
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def open_run(cfg, job=None):
    """The job's MLflow run (a no-op `Run` when tracking is disabled), opened before any work so
    that a failure is recorded too: the run ends FAILED with the error as a tag and the traceback
    as an artifact. In a sweep it is a child of the sweep's parent run. `run.folder` is where the
    train step writes its results (the job's output folder; outside Hydra a temporary one while
    the run is open), logged once with `run.log_folder`."""
    folder = results_folder()
    if not cfg.tracking.enabled:
        run = Run()
        run.folder = folder
        yield run
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars per artifact are noise
    import traceback

    import mlflow

    parent = job.parent if job is not None else {}
    exp_id = parent.get("experiment_id") or ensure_experiment(cfg.tracking)
    use_store(cfg.tracking.uri)
    check_artifact_root(cfg.tracking, exp_id)  # a read-only one is found now, not after training
    tags = {CONFIG_HASH: config_hash(cfg), OVERRIDES: " ".join(_task_overrides(job)), **process_tags(),
            **code_tags()}
    if job is not None:
        tags.update({JOB: " ".join(job.swept), JOB_NUM: str(job.num), THREADS: str(job.threads)})
    if parent.get("parent_run_id"):
        tags["mlflow.parentRunId"] = parent["parent_run_id"]
    active = mlflow.start_run(experiment_id=exp_id, run_name=run_name(cfg), tags=tags)
    run = Run(active.info.run_id)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run.folder = folder or Path(tmp)
            mlflow.log_params(flat_params(cfg))
            yield run
            run.flush()
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        try:
            run.flush()  # the epochs so far, for the failed run
            mlflow.set_tag("error", "interrupted (Ctrl-C)" if interrupted else f"{type(e).__name__}: {e}"[:4000])
            mlflow.log_text(traceback.format_exc(), "traceback.txt")
        finally:
            mlflow.end_run(getattr(e, "run_status", "KILLED" if interrupted else "FAILED"))  # Pruned: KILLED
        raise
    mlflow.end_run()
