"""Data sources, each read into the one `Dataset` shape.

`load_dataset(cfg.data)` is the only entry: it reads the source named by
`cfg.source`, validates, joins user counts onto posts and applies filters.
"""

from __future__ import annotations

import logging
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
    return profiles.iter_profiles(folder / "profiles"), folder


READERS = {
    "profiles": lambda cfg: (profiles.iter_profiles(cfg.path), None),
    "study_csv": lambda cfg: (study_csv.iter_profiles(cfg.path), None),
    "synthetic": _synthetic_profiles,
}


def load_dataset(cfg) -> Dataset:
    if cfg.source not in READERS:
        raise ConfigError(f"data.source={cfg.source!r} is unknown; known: {', '.join(READERS)}")
    items, folder = READERS[cfg.source](cfg)
    posts, users, skipped = posts_and_users(items, cfg.get("on_error", "error"))
    if skipped:
        log.warning("skipped %d bad records (data.on_error=skip)", skipped)
    scrape = pd.Timestamp(cfg.scrape_date, tz="UTC") if cfg.get("scrape_date") else posts["date"].max()
    posts = apply_filters(posts, users, cfg, scrape)
    posts = posts.merge(users[["alias", "followers", "following", "posts_count"]], on="alias", how="left")
    users = users[users["alias"].isin(posts["alias"])].reset_index(drop=True)
    image_dir = cfg.get("images_dir") or (str(folder / "images") if folder else None)
    labels = cfg.get("labels_path") or (str(folder / "labels.json") if folder else None)
    log.info("data: %d posts from %d users (%s)", len(posts), len(users), cfg.source)
    return Dataset(posts, users, cfg.source, scrape, image_dir, labels, skipped,
                   extras={"folder": str(folder) if folder else None})
