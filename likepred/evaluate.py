"""Score a model on likes beside the leak-free baselines, on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from likepred.metrics import all_metrics, mape

BASELINES = ("user_mean", "best_constant")


def mature_mask(posts: pd.DataFrame, scrape_date, mature_days: float) -> np.ndarray:
    return (posts["date"] <= scrape_date - pd.Timedelta(days=mature_days)).to_numpy()


def scores(prefix: str, likes, pred, posts, mature) -> dict:
    out = {f"{prefix}_{k}": v for k, v in all_metrics(likes, pred, posts["alias"]).items()}
    if mature.any():
        m = all_metrics(likes[mature], pred[mature], posts["alias"][mature])
        out.update({f"{prefix}_{k}_mature": v for k, v in m.items()})
    return out


def baseline_scores(train, test, mature, likes) -> tuple[dict, dict]:
    """MAPE of each baseline on the test rows; also returns their predictions."""
    from likepred.models.baselines import UserConstant

    stat = {"user_mean": "mean", "best_constant": "best_constant"}
    out, preds = {}, {}
    for name in BASELINES:
        model = UserConstant(stat[name])
        model.fit(train)
        p = model.predict(test)
        preds[name] = p
        out[f"baseline_{name}_mape"] = mape(likes, p)
        if mature.any():
            out[f"baseline_{name}_mape_mature"] = mape(likes[mature], p[mature])
    return out, preds


def evaluate(model, pipeline, train, val, test, scrape_date, mature_days) -> tuple[dict, pd.DataFrame]:
    """All final metrics, and a predictions table for the test rows."""
    metrics = {}
    for prefix, data in (("val", val), ("test", test)):
        if data is None or len(data) == 0:
            continue
        pred = predict_likes(model, pipeline, data)
        likes = data.posts["likes"].to_numpy(dtype=float)
        mature = mature_mask(data.posts, scrape_date, mature_days)
        metrics.update(scores(prefix, likes, pred, data.posts, mature))
        if prefix == "test":
            base, base_preds = baseline_scores(train, data, mature, likes)
            metrics.update(base)
            table = data.posts[["alias", "post_index", "date", "likes"]].copy()
            table["predicted"] = pred
            for k, v in base_preds.items():
                table[f"baseline_{k}"] = v
            table["mature"] = mature
    metrics["mape_vs_baseline"] = metrics["test_mape"] - metrics["baseline_user_mean_mape"]
    return metrics, table


def predict_likes(model, pipeline, data) -> np.ndarray:
    pred = model.predict(data)
    if model.predicts == "target":
        pred = pipeline.to_likes(pred, data.posts)
    return np.asarray(pred, dtype=float) * pipeline.scale_
