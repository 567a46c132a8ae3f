"""Pictures logged with each run (matplotlib, headless)."""

from __future__ import annotations

import numpy as np


def predicted_vs_actual(predictions, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = predictions["likes"].to_numpy(dtype=float)
    p = np.maximum(predictions["predicted"].to_numpy(dtype=float), 1e-1)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(y, p, s=6, alpha=0.4, label="model")
    lo, hi = max(min(y.min(), p.min()), 1e-1), max(y.max(), p.max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="perfect")
    ax.set(xscale="log", yscale="log", xlabel="actual likes", ylabel="predicted likes",
           title="test posts: predicted vs actual")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
