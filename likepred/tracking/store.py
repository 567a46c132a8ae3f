"""The MLflow store: the one place that turns `tracking.uri` into a ready store and experiment.

mlflow is imported inside functions so `--help` and config composition stay fast.
"""

from __future__ import annotations

from pathlib import Path


def prepare_uri(uri: str) -> str:
    """The URI, with the folder of a SQLite file created."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def ensure_experiment(tcfg) -> str:
    """Create the experiment if missing (in the parent process, before any job)."""
    import mlflow

    mlflow.set_tracking_uri(prepare_uri(tcfg.uri))
    exp = mlflow.get_experiment_by_name(tcfg.experiment)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tcfg.get("artifact_root"):
        root = tcfg.artifact_root
        location = root if "://" in root else Path(root).resolve().as_uri()
    from likepred.tracking.view import experiment_tags  # the UI opens it on its runs, scores as columns

    try:
        return mlflow.create_experiment(tcfg.experiment, artifact_location=location, tags=experiment_tags())
    except Exception:  # another process created it first
        return mlflow.get_experiment_by_name(tcfg.experiment).experiment_id
