"""Data sources, each read into the one `Dataset` shape.

`load_dataset(cfg.data)` is the entry: it reads the source named by
`cfg.source` (a reader registered in READERS), validates, joins user counts
onto posts and applies filters. `read_posts` stops before the filters (the
image downloader fetches every post).
"""

from __future__ import annotations

import logging

import pandas as pd

from likepred.data import profiles, study_csv
from likepred.data.filters import apply_filters
from likepred.data.schema import Dataset, posts_and_users, release_unused
from likepred.errors import DataError
from likepred.registry import Registry

log = logging.getLogger(__name__)

# name -> reader(cfg) -> (iterable of (file, profile dict or DataError, last written) or an object with
# .read(on_error, scrape_date) -> (posts, users, Skips), synthetic folder or None)
READERS = Registry("data.source")


@READERS.register("profiles")
def _profiles(cfg):
    from likepred.data.columnar import ProfilesFolder

    return ProfilesFolder(cfg.path), None


@READERS.register("study_csv")
def _study_csv(cfg):
    return study_csv.iter_profiles(cfg.path), None


@READERS.register("synthetic")
def _synthetic(cfg):
    from likepred import synthetic

    folder = synthetic.ensure(cfg.path, cfg.n_users, cfg.min_posts, cfg.max_posts, cfg.seed)
    from likepred.data.columnar import ProfilesFolder

    return ProfilesFolder(folder / "profiles"), folder


def read_posts(cfg):
    """The source's validated posts and users before any filter, what was skipped (Skips) and
    the synthetic folder (None for other sources)."""
    items, folder = READERS.get(cfg.source)(cfg)
    if hasattr(items, "read"):  # a folder read through the columnar cache (likepred.data.columnar)
        posts, users, skips = items.read(cfg.get("on_error", "error"), parse_scrape_date(cfg))
    else:
        posts, users, skips = posts_and_users(items, cfg.get("on_error", "error"), parse_scrape_date(cfg))
    if skips.files or skips.records:
        log.warning("skipped %d bad files and %d bad posts (data.on_error=skip)", skips.files, skips.records)
    if posts.empty:
        raise DataError(f"no posts in {cfg.get('path')} ({len(users)} users read, {skips.files} files and "
                        f"{skips.records} posts skipped as bad)", field="data.path")
    return posts, users, skips, folder


def parse_scrape_date(cfg):
    """data.scrape_date as a UTC Timestamp (None if unset); DataError naming the field if it is no
    date (the config check calls this before any data is read)."""
    if not cfg.get("scrape_date"):
        return None
    try:
        t = pd.Timestamp(str(cfg.scrape_date))
        if pd.isna(t):
            raise ValueError
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    except (ValueError, TypeError):
        raise DataError(f"not a date: {cfg.scrape_date!r} (e.g. 2017-05-01)", field="data.scrape_date") from None


USER_COUNTS = ["followers", "following", "posts_count"]


def join_user_counts(posts: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """`posts` with its user's counts as columns: a left join on alias (NaN where the user has no
    row), adding three columns instead of copying the whole table as a merge does."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not users["alias"].is_unique:  # not from our readers; a merge repeats such a user's posts
        return posts.merge(users[["alias", *USER_COUNTS]], on="alias", how="left")
    at = pc.index_in(pa.array(posts["alias"]), value_set=pa.array(users["alias"])).fill_null(-1).to_numpy()
    found = at >= 0
    out = posts.copy(deep=False)
    for c in USER_COUNTS:
        values = users[c].to_numpy()
        col = values[np.where(found, at, 0)] if len(values) else np.zeros(len(at), dtype=values.dtype)
        if not found.all():
            col = np.where(found, col, np.nan)
        out[c] = col
    return out


def load_dataset(cfg, images: str | None = None, labels: str | None = None) -> Dataset:
    """The data of `cfg` (the data group), filtered; `images`, `labels`: the image folder and label
    file (images.dir, paths.labels; None: the data's own)."""
    posts, users, skips, folder = read_posts(cfg)
    scrape = parse_scrape_date(cfg)
    scrape = posts["date"].max() if scrape is None else scrape
    posts = apply_filters(posts, users, cfg, scrape)
    posts = join_user_counts(posts, users)
    users = users[users["alias"].isin(posts["alias"].unique())].reset_index(drop=True)
    release_unused()
    image_dir, drawn, drawn_labels = images, None, None
    if image_dir is None and cfg.source == "instaloader":
        image_dir = cfg.get("path")  # the pictures lie beside the metadata
    if folder is not None:
        from likepred import synthetic

        # Synthetic images and labels are drawn on first use (the train step asks), so metadata-only
        # runs stay fast.
        drawn = None if image_dir else synthetic.ImageSpec(str(folder), cfg.get("image_size"), cfg.seed)
        image_dir = image_dir or str(synthetic.image_dir(folder, cfg.get("image_size")))
        drawn_labels = None if labels else synthetic.LabelSpec(str(folder), cfg.seed)
        labels = labels or str(drawn_labels.path)
    log.info("data: %d posts from %d users (%s)", len(posts), len(users), cfg.source)
    return Dataset(posts, users, cfg.source, scrape, image_dir, labels, skips, synthetic_images=drawn,
                   synthetic_labels=drawn_labels)


from likepred.data import instaloader as _instaloader  # noqa: E402,F401  registers data=instaloader
