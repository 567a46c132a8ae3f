"""MLflow tracking: one run per job (a child of the sweep's parent run in a multirun), experiment
created before jobs start.

mlflow is imported inside functions so `--help` and config composition
stay fast.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def _prepare_uri(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def ensure_experiment(tcfg) -> str:
    """Create the experiment if missing (in the parent process, before any job)."""
    import mlflow

    mlflow.set_tracking_uri(_prepare_uri(tcfg.uri))
    exp = mlflow.get_experiment_by_name(tcfg.experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tcfg.get("artifact_root"):
        root = tcfg.artifact_root
        location = root if "://" in root else Path(root).resolve().as_uri()
    try:
        return mlflow.create_experiment(tcfg.experiment, artifact_location=location)
    except Exception:  # another process created it first
        return mlflow.get_experiment_by_name(tcfg.experiment).experiment_id


def flat_params(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = str(node)[:6000]

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def run_name(cfg) -> str:
    return f"{cfg.model.name}-{cfg.features.name}-{cfg.loss.name}-{cfg.split.kind}"


class Run:
    """The open MLflow run of a job (a no-op one when tracking is disabled)."""

    FLUSH_S = 10.0  # per-epoch metrics are written in batches: one DB write per epoch cost ~15 ms

    def __init__(self, run_id=None):
        self.run_id = run_id
        self._pending, self._flushed = [], time.monotonic()

    def log_epoch(self, epoch, logs):
        if self.run_id:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._pending += [Metric(k, float(v), now, int(epoch)) for k, v in (logs or {}).items()]
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

    def log_extras(self, metrics: dict, write_files=None):
        """Figures and files from outside the model (feature extractors); files go under `features/`."""
        if not self.run_id:
            return
        import mlflow

        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})
        if write_files is not None:
            with tempfile.TemporaryDirectory() as tmp:
                if write_files(tmp):
                    mlflow.log_artifacts(tmp, "features")

    def log_results(self, metrics, predictions, model, cfg, plot, pipeline=None, train=None, val=None):
        if not self.run_id:
            return
        import mlflow

        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # NaN: undefined, not logged
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            predictions.to_csv(tmp / "predictions.csv", index=False)
            plot(predictions, tmp / "predicted_vs_actual.png")
            mlflow.log_artifacts(str(tmp))
            if cfg.tracking.get("log_model", True) and pipeline is not None:
                from likepred.packaging import save_pyfunc  # the model with its fitted pipeline, as a pyfunc

                save_pyfunc(tmp / "model", model, pipeline, train, val, cfg)
                mlflow.log_artifacts(str(tmp / "model"), "model")
                if cfg.tracking.get("register"):  # in a sweep every job registers a version, tagged with its score
                    score = metrics.get(cfg.optimized_metric)
                    mlflow.register_model(f"runs:/{self.run_id}/model", cfg.tracking.register,
                                          tags={cfg.optimized_metric: str(score)} if score is not None else None)


@contextmanager
def start_run(cfg, tags: dict):
    """Open the job's MLflow run (or join the one `job_run` opened); it ends FAILED if the block raises."""
    if not cfg.tracking.enabled:
        yield Run()
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars per artifact are noise
    import mlflow

    joined = mlflow.active_run()  # the job's run, opened by job_run; else open one here
    if joined is not None:
        mlflow.set_tags(tags)
        active = joined
    else:
        active = mlflow.start_run(experiment_id=ensure_experiment(cfg.tracking), run_name=run_name(cfg), tags=tags)
        mlflow.log_params(flat_params(cfg))
    run = Run(active.info.run_id)
    try:
        yield run
    except BaseException:
        try:
            run.flush()  # the epochs so far, for the failed run
        finally:
            if joined is None:
                mlflow.end_run("FAILED")
        raise
    run.flush()
    if joined is None:
        mlflow.end_run()


def _task_overrides(job) -> list:
    from hydra.core.hydra_config import HydraConfig

    if job is not None:
        return job.overrides
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@contextmanager
def job_run(cfg, job=None):
    """The job's MLflow run, opened before any work so that a failure is recorded too: the run
    ends FAILED with the error as a tag and the traceback as an artifact. In a sweep it is a
    child of the sweep's parent run. `start_run` (inside `train`) joins it."""
    if not cfg.tracking.enabled:
        yield None
        return
    import traceback

    import mlflow

    from likepred.sweep import config_hash

    parent = job.parent if job is not None else {}
    exp_id = parent.get("experiment_id") or ensure_experiment(cfg.tracking)
    mlflow.set_tracking_uri(_prepare_uri(cfg.tracking.uri))
    tags = {"config_hash": config_hash(cfg), "overrides": " ".join(_task_overrides(job))}
    if job is not None:
        tags.update({"job": " ".join(job.swept), "job_num": str(job.num), "threads_per_job": str(job.threads)})
    if parent.get("parent_run_id"):
        tags["mlflow.parentRunId"] = parent["parent_run_id"]
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name(cfg), tags=tags)
    try:
        mlflow.log_params(flat_params(cfg))
        yield run.info.run_id
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        try:
            mlflow.set_tag("error", f"{type(e).__name__}: {e}"[:4000])
            mlflow.log_text(traceback.format_exc(), "traceback.txt")
        finally:
            mlflow.end_run("KILLED" if interrupted else "FAILED")
        raise
    mlflow.end_run()


class TrackingCallback(Callback):
    """Hydra callback: create the experiment (and a sweep's parent run) before any job starts,
    so jobs only create their own runs (no SQLite race); summarise the sweep when it ends."""

    @staticmethod
    def _enabled(config):
        return bool(config.get("tracking")) and config.tracking.get("enabled", True)

    def on_run_start(self, config, **kwargs):
        if self._enabled(config):
            ensure_experiment(config.tracking)

    def on_multirun_start(self, config, **kwargs):
        if self._enabled(config):
            from likepred.sweep import start_sweep

            start_sweep(config)

    def on_multirun_end(self, config, **kwargs):
        if self._enabled(config):
            from likepred.sweep import end_sweep

            end_sweep(config)
