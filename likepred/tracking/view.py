"""How the MLflow UI opens a likepred experiment: on its runs, the scores beside the baselines.

What MLflow 3's UI reads (checked in the 3.17 bundle):
- `workflowType=machine_learning` in the URL: the runs view instead of the GenAI overview, the
  UI's default. The experiment tag `mlflow.experimentKind` says the same to UIs that go by it.
- an experiment tag `mlflow.sharedViewState.KEY` holding the runs table's state as JSON
  (`selectedColumns`: "metrics.`NAME`", ..., `columnOrder`, `columnWidths`: pixels by column),
  loaded by `viewStateShareKey=KEY` in the URL.
  Without it the table shows no metric or param column at all.
A leaf: no mlflow import, so `likepred ui` can use it before the server is up.
"""

from __future__ import annotations

import json

VIEW_KEY = "likepred"
KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# The model's test score first, then the two leak-free baselines on the same rows.
# Each score's 95% interval (bootstrap over users) right after it.
METRICS = ("test_mape", "test_mape_ci_low", "test_mape_ci_high", "test_mape_mature", "baseline_user_mean_mape",
           "baseline_best_constant_mape", "test_mape_vs_best_constant", "test_mape_vs_best_constant_ci_low",
           "test_mape_vs_best_constant_ci_high", "mape_vs_baseline", "val_mape", "val_mape_ci_low", "val_mape_ci_high")


def view_state() -> str:
    metrics = [f"metrics.`{m}`" for m in METRICS]
    # In this order right after the run name, each wide enough for its name (the default cuts it).
    widths = {c: max(150, 8 * len(m) + 40) for c, m in zip(metrics, METRICS)}
    return json.dumps({"selectedColumns": metrics + ["attributes.`Models`"], "columnOrder": metrics,
                       "columnWidths": widths})


def experiment_tags() -> dict:
    """Tags a new likepred experiment gets (tracking/store.py)."""
    return {KIND_TAG: KIND, VIEW_TAG: view_state()}


def runs_url(base: str, experiment_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


def experiments_url(base: str) -> str:
    return f"{base}/#/experiments?workflowType=machine_learning"
