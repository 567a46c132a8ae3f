"""The study's filters plus the maturity filter, all from config."""

import logging

import pandas as pd

from likepred.errors import DataError

log = logging.getLogger(__name__)


def apply_filters(posts: pd.DataFrame, users: pd.DataFrame, cfg, scrape_date) -> pd.DataFrame:
    """Drop what the config says to drop; log how many rows each filter took.

    When they leave nothing, DataError says which filter took the last posts and how many each took.
    """
    steps = []  # (what, its option, rows it drops)
    if cfg.get("drop_multi_image", True):
        steps.append(("multi-image posts", "data.drop_multi_image", posts["multiple_image"]))
    if cfg.get("drop_videos", False):
        steps.append(("videos", "data.drop_videos", posts["is_video"]))
    max_f = cfg.get("max_followers")
    if max_f:
        big = set(users.loc[users["followers"] >= max_f, "alias"])
        steps.append((f"posts of users with >= {max_f} followers", "data.max_followers", posts["alias"].isin(big)))
    if cfg.get("drop_zero_likes", True):
        steps.append(("posts with 0 likes", "data.drop_zero_likes", posts["likes"] <= 0))
    min_age = cfg.get("min_age_days", 0) or 0
    if min_age:
        young = posts["date"] > scrape_date - pd.Timedelta(days=min_age)
        steps.append((f"posts younger than {min_age} days at {scrape_date:%Y-%m-%d}", "data.min_age_days", young))
    keep, taken, last = pd.Series(True, index=posts.index), [], None
    for what, option, drop in steps:
        n = int((keep & drop).sum())
        if n:
            log.info("filter: dropped %d %s", n, what)
            taken.append(f"{n} {what} ({option})")
            last = option
        keep &= ~drop
    if len(posts) and not keep.any():
        raise DataError(f"the filters left none of the {len(posts)} posts; they dropped {', '.join(taken)}: "
                        f"{last} took the last ones", field=last)
    return posts[keep].reset_index(drop=True)
