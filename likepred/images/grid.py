"""A run artifact: the test images whose likes the model over- and under-predicted most."""

from __future__ import annotations

from pathlib import Path

import numpy as np

THUMB = 96  # pixels per tile


def error_grid(features, posts, predictions, n=8):
    """A writer `fn(folder) -> [paths]` of `error_grid.png`, or None when no extractor reads images.

    `posts` and `predictions` (evaluate's test table: likes, predicted) are the same rows in
    the same order. Top row: largest predicted/actual; bottom row: smallest.
    """
    source = next((e for e in features.extractors if hasattr(e, "image_paths")), None)
    if source is None or len(posts) == 0:
        return None

    def write(folder):
        likes = predictions["likes"].to_numpy(dtype=float)
        pred = predictions["predicted"].to_numpy(dtype=float)
        ratio = np.log(np.maximum(pred, 1e-3) / np.maximum(likes, 1e-3))
        order = np.argsort(ratio, kind="stable")
        k = min(n, len(order) // 2 or 1)
        rows = [("over-predicted", order[::-1][:k]), ("under-predicted", order[:k])]
        path = Path(folder) / "error_grid.png"
        _draw(rows, source.image_paths(posts), likes, pred, path)
        return [str(path)]

    return write


def _draw(rows, paths, likes, pred, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from likepred.images.files import READ_ERRORS, load_image

    k = max(len(ix) for _, ix in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(1.6 * k, 2.3 * len(rows)), dpi=100, squeeze=False)
    for r, (title, ix) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(ix):
                continue
            i = ix[c]
            try:
                ax.imshow(load_image(str(paths[i]), THUMB))
            except READ_ERRORS:
                ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"pred {pred[i]:.0f}\nactual {likes[i]:.0f}", fontsize=8)
        axes[r, 0].text(-0.1, 0.5, title, rotation=90, ha="right", va="center", transform=axes[r, 0].transAxes,
                        fontsize=9)
    fig.suptitle("test posts the model missed most", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
