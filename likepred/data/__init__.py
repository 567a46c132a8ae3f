"""Data sources, each read into the one `Dataset` shape.

`load_dataset(cfg.data)` is the entry: it reads the source named by
`cfg.source`, validates, joins user counts onto posts and applies filters.
`read_posts` stops before the filters (the image downloader fetches every post).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pandas as pd

from likepred.data import profiles, study_csv, synthetic
from likepred.data.filters import apply_filters
from likepred.data.schema import Dataset, posts_and_users
from likepred.errors import ConfigError

log = logging.getLogger(__name__)


def _synthetic_profiles(cfg):
    folder = Path(cfg.path) / synthetic.params_key(cfg.n_users, cfg.min_posts, cfg.max_posts, cfg.seed)
    synthetic.generate(folder, cfg.n_users, cfg.min_posts, cfg.max_posts, cfg.seed)
    from likepred.labels.synthetic import ensure_labels

    ensure_labels(folder, cfg.seed)  # Vision-style labels.json beside the profiles (written once)
    return profiles.iter_profiles(folder / "profiles"), folder


READERS = {
    "profiles": lambda cfg: (profiles.iter_profiles(cfg.path), None),
    "study_csv": lambda cfg: (study_csv.iter_profiles(cfg.path), None),
    "synthetic": _synthetic_profiles,
}


def read_posts(cfg):
    """The source's validated posts and users before any filter, the bad-record count and
    the synthetic folder (None for other sources)."""
    if cfg.source not in READERS:
        raise ConfigError(f"data.source={cfg.source!r} is unknown; known: {', '.join(READERS)}")
    items, folder = READERS[cfg.source](cfg)
    posts, users, skipped = posts_and_users(items, cfg.get("on_error", "error"))
    if skipped:
        log.warning("skipped %d bad records (data.on_error=skip)", skipped)
    return posts, users, skipped, folder


def load_dataset(cfg) -> Dataset:
    posts, users, skipped, folder = read_posts(cfg)
    scrape = pd.Timestamp(cfg.scrape_date, tz="UTC") if cfg.get("scrape_date") else posts["date"].max()
    posts = apply_filters(posts, users, cfg, scrape)
    posts = posts.merge(users[["alias", "followers", "following", "posts_count"]], on="alias", how="left")
    users = users[users["alias"].isin(posts["alias"])].reset_index(drop=True)
    image_dir = cfg.get("images_dir") or (str(synthetic.image_dir(folder, cfg.get("image_size"))) if folder else None)
    # Synthetic images are drawn on first use (ensure_images), so metadata-only runs stay fast.
    draw = partial(synthetic.draw_images, folder, cfg.get("image_size"), cfg.seed) if folder and not cfg.get(
        "images_dir") else None
    labels = cfg.get("labels_path") or (str(folder / "labels.json") if folder else None)
    log.info("data: %d posts from %d users (%s)", len(posts), len(users), cfg.source)
    return Dataset(posts, users, cfg.source, scrape, image_dir, labels, skipped,
                   extras={"folder": str(folder) if folder else None, "draw_images": draw})


def ensure_images(dataset: Dataset):
    """The dataset's image folder, after drawing synthetic images there if not done yet."""
    draw = dataset.extras.get("draw_images")
    if draw is not None:
        draw()
    return dataset.image_dir
