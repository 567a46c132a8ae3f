"""The study's filters plus the maturity filter, all from config."""

import logging

import pandas as pd

log = logging.getLogger(__name__)


def apply_filters(posts: pd.DataFrame, users: pd.DataFrame, cfg, scrape_date) -> pd.DataFrame:
    """Drop what the config says to drop; log how many rows each filter took."""
    steps = []
    if cfg.get("drop_multi_image", True):
        steps.append(("multi-image posts", posts["multiple_image"]))
    if cfg.get("drop_videos", False):
        steps.append(("videos", posts["is_video"]))
    max_f = cfg.get("max_followers")
    if max_f:
        big = set(users.loc[users["followers"] >= max_f, "alias"])
        steps.append((f"users with >= {max_f} followers", posts["alias"].isin(big)))
    if cfg.get("drop_zero_likes", True):
        steps.append(("posts with 0 likes", posts["likes"] <= 0))
    min_age = cfg.get("min_age_days", 0) or 0
    if min_age:
        young = posts["date"] > scrape_date - pd.Timedelta(days=min_age)
        steps.append((f"posts younger than {min_age} days", young))
    keep = pd.Series(True, index=posts.index)
    for what, drop in steps:
        n = int((keep & drop).sum())
        if n:
            log.info("filter: dropped %d %s", n, what)
        keep &= ~drop
    return posts[keep].reset_index(drop=True)
