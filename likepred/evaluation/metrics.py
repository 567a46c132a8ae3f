"""Metrics on likes. Their names are API (DESIGN.md): tests, sweeps, dashboards read them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def mape(y, p):
    return float(100.0 * np.mean(np.abs(y - p) / y))


def mdape(y, p):
    return float(100.0 * np.median(np.abs(y - p) / y))


def mae(y, p):
    return float(np.mean(np.abs(y - p)))


def rmse_log(y, p):
    return float(np.sqrt(np.mean((np.log1p(np.maximum(p, 0)) - np.log1p(y)) ** 2)))


def spearman(y, p):
    if len(y) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(y, p).statistic)


def spearman_within_user(y, p, users, min_posts=3):
    """Mean over users (with >= min_posts rows) of the rank correlation of their posts."""
    frame = pd.DataFrame({"y": y, "p": p, "u": np.asarray(users)})
    rhos = [spearman(g["y"].to_numpy(), g["p"].to_numpy()) for _, g in frame.groupby("u") if len(g) >= min_posts]
    rhos = [r for r in rhos if not np.isnan(r)]
    return float(np.mean(rhos)) if rhos else float("nan")


def all_metrics(y, p, users) -> dict:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {
        "mape": mape(y, p), "mdape": mdape(y, p), "mae": mae(y, p), "rmse_log": rmse_log(y, p),
        "spearman": spearman(y, p), "spearman_within_user": spearman_within_user(y, p, users),
    }
