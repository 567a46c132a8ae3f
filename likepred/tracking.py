"""MLflow tracking: one run per job, experiment created before jobs start.

mlflow is imported inside functions so `--help` and config composition
stay fast.
"""

from __future__ import annotations

import logging
import os
import tempfile
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

    def __init__(self, run_id=None):
        self.run_id = run_id

    def log_epoch(self, epoch, logs):
        if self.run_id:
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=int(epoch))

    def log_results(self, metrics, predictions, model, cfg, plot):
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
            if cfg.tracking.get("log_model", True) and hasattr(model, "save"):
                (tmp / "model").mkdir()
                mlflow.log_artifact(model.save(str(tmp / "model" / "model")), "model")


@contextmanager
def start_run(cfg, tags: dict):
    """Open the job's MLflow run; it ends FAILED if the block raises."""
    if not cfg.tracking.enabled:
        yield Run()
        return
    import mlflow

    exp_id = ensure_experiment(cfg.tracking)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name(cfg), tags=tags) as active:
        mlflow.log_params(flat_params(cfg))
        yield Run(active.info.run_id)


class TrackingCallback(Callback):
    """Hydra callback: create the experiment before any job starts (no SQLite race)."""

    def _ensure(self, config):
        if config.get("tracking") and config.tracking.get("enabled", True):
            ensure_experiment(config.tracking)

    def on_run_start(self, config, **kwargs):
        self._ensure(config)

    def on_multirun_start(self, config, **kwargs):
        self._ensure(config)
