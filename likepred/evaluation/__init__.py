"""Score predictions on likes: the model's beside the baselines', on the same rows.

`evaluate` takes predictions, never models: the train step builds the baselines from the model
registry, fits them on the same train rows and hands their predictions in with the model's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from likepred.evaluation.metrics import all_metrics, mape

BASELINES = ("user_mean", "best_constant")  # registered models, shown beside every run


def mature_mask(posts: pd.DataFrame, scrape_date, mature_days: float) -> np.ndarray:
    return (posts["date"] <= scrape_date - pd.Timedelta(days=mature_days)).to_numpy()


def scores(prefix: str, likes, pred, posts, mature) -> dict:
    out = {f"{prefix}_{k}": v for k, v in all_metrics(likes, pred, posts["alias"]).items()}
    if mature.any():
        m = all_metrics(likes[mature], pred[mature], posts["alias"][mature])
        out.update({f"{prefix}_{k}_mature": v for k, v in m.items()})
    return out


def evaluate(posts: pd.DataFrame, predictions: dict, scrape_date, mature_days, prefix: str = "test",
             bootstrap: int = 0, seed: int = 0, mature=None):
    """Metrics of `predictions` ({"model": likes, baseline name: likes, ...}) on `posts`, and a
    table of the rows with every prediction. Baselines give `baseline_{name}_mape` (+ `_mature`).
    bootstrap > 0: 95% intervals over users (likepred.evaluation.intervals), `{prefix}_mape_ci_low`
    / `_ci_high` and the paired `{prefix}_mape_vs_{baseline}` with its interval (+ `_mature`).
    `mature`: the rows' mature mask where known (pooled folds), else from scrape_date."""
    likes = posts["likes"].to_numpy(dtype=float)
    mature = mature_mask(posts, scrape_date, mature_days) if mature is None else np.asarray(mature, bool)
    metrics = scores(prefix, likes, predictions["model"], posts, mature)
    table = posts[["alias", "post_index", "date", "likes"]].copy()
    table["predicted"] = np.asarray(predictions["model"], float)
    for name, pred in predictions.items():
        if name == "model":
            continue
        metrics[f"baseline_{name}_mape"] = mape(likes, pred)
        if mature.any():
            metrics[f"baseline_{name}_mape_mature"] = mape(likes[mature], pred[mature])
        table[f"baseline_{name}"] = pred
    if bootstrap > 0:
        from likepred.evaluation.intervals import interval_metrics

        users = posts["alias"].to_numpy()
        bases = {k: np.asarray(v, float) for k, v in predictions.items() if k != "model"}
        model = np.asarray(predictions["model"], float)
        metrics.update(interval_metrics(prefix, likes, model, users, bases, bootstrap, seed, mature))
    if "baseline_user_mean_mape" in metrics:
        metrics["mape_vs_baseline"] = metrics[f"{prefix}_mape"] - metrics["baseline_user_mean_mape"]
    table["mature"] = mature
    return metrics, table
