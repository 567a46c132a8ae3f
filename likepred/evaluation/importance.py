"""Permutation importance over a data set: how much worse the predictions get (MAPE, points) when
one feature's values are shuffled across the rows, breaking its link to likes.

It takes a predict function and arrays, never a model: `predict(inputs) -> likes` on the same rows
with some columns shuffled. A feature is a group of columns (a one-hot set, an embedding, a whole
image block) shuffled together with one permutation, so a row keeps a valid one-hot; the groups
and their names are those of `--explain` (likepred.serving.predictor.feature_groups). Each group is
shuffled `repeats` times with seeded permutations; the table has the mean increase and its sd.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.evaluation.metrics import mape

COLUMNS = ["feature", "mape_increase", "mape_increase_sd", "base_mape", "repeats"]
PROGRESS_S = 10.0  # a long pass logs how many features are done this often
log = logging.getLogger(__name__)


def permutation_importance(predict, inputs: dict, likes, groups: list, repeats: int = 5, seed: int = 0,
                           score=mape) -> pd.DataFrame:
    """One row a feature group, largest `mape_increase` first.

    predict: {block: array} -> predicted likes (one a row); inputs: {block: array (rows x columns)};
    likes: the true likes; groups: [(label, {block: column indices})]. Blocks of file paths
    (1-D object arrays) are not shuffled (their groups are skipped)."""
    likes = np.asarray(likes, dtype=float)
    n = len(likes)
    base = score(likes, np.asarray(predict(inputs), float))
    rng = np.random.default_rng(seed)
    rows = []
    started = said = time.monotonic()
    for done, (label, cols) in enumerate(groups):
        if time.monotonic() - said > PROGRESS_S:
            said = time.monotonic()
            log.info("permutation importance: %d of %d features (%.0f s)", done, len(groups), said - started)
        if any(inputs[b].ndim != 2 or inputs[b].dtype == object for b in cols):
            continue
        increases = []
        for _ in range(repeats):
            order = rng.permutation(n)
            shuffled = dict(inputs)
            for block, idx in cols.items():
                x = inputs[block].copy()
                x[:, idx] = inputs[block][order][:, idx]
                shuffled[block] = x
            increases.append(score(likes, np.asarray(predict(shuffled), float)) - base)
        rows.append([label, float(np.mean(increases)), float(np.std(increases, ddof=1)) if repeats > 1 else 0.0,
                     base, repeats])
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values("mape_increase", ascending=False, kind="stable").reset_index(drop=True)


def write_importance(table: pd.DataFrame, folder, top: int = 25) -> list:
    """`permutation_importance.csv` and a bar chart `.png` (mean increase +- sd, the top features)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    csv, png = folder / "permutation_importance.csv", folder / "permutation_importance.png"
    table.to_csv(csv, index=False)
    shown = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["mape_increase"], xerr=shown["mape_increase_sd"], color="#4c72b0", capsize=2)
    ax.axvline(0, color="black", lw=0.8)
    reps = int(table["repeats"].iloc[0]) if len(table) else 0
    base = float(table["base_mape"].iloc[0]) if len(table) else float("nan")
    ax.set_xlabel(f"val MAPE increase when shuffled (points; mean +- sd of {reps}; base {base:.1f}%)")
    ax.set_title("permutation importance on the val rows")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return [csv, png]
