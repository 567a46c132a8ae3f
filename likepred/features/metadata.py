"""The study's post and user metadata features, and user history."""

from __future__ import annotations

from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import ConfigError
from likepred.features import Extractor, register
from likepred.userstats import UserStats


def post_days(posts: pd.DataFrame) -> np.ndarray:
    """Each post's date as days since 2010: the one time axis of every date feature."""
    return ((posts["date"] - pd.Timestamp("2010-01-01", tz="UTC")).dt.total_seconds() / 86400.0).to_numpy()


@register("profile")
class Profile(Extractor):
    """Followers, following and post count of the user (log scale)."""

    def transform(self, posts):
        return pd.DataFrame({
            f"log_{c}": np.log1p(posts[c].to_numpy(dtype=float)) for c in ("followers", "following", "posts_count")
        })


@register("post_time")
class PostTime(Extractor):
    """Date as days since 2010 and the weekday one-hot."""

    def transform(self, posts):
        d = posts["date"]
        out = {"days": post_days(posts)}
        wd = d.dt.weekday.to_numpy()
        for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun")):
            out[f"weekday_{name}"] = (wd == i).astype(float)
        return pd.DataFrame(out)


@register("post_counts")
class PostCounts(Extractor):
    """Number of mentions and of hashtags."""

    def transform(self, posts):
        return pd.DataFrame({
            "n_mentions": posts["mentions"].map(len).to_numpy(dtype=float),
            "n_tags": posts["tags"].map(len).to_numpy(dtype=float),
        })


def bare_tag(tag: str) -> str:
    """A hashtag as ranking lists write it: no leading '#', lower case (scraped tags keep their '#')."""
    return tag.lstrip("#").lower()


def read_ranking(path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"features.extractors.hashtag_score.ranking: file not found: {p}")
    return [bare_tag(t) for t in p.read_text(encoding="utf-8").split()]


@register("hashtag_score")
class HashtagScore(Extractor):
    """The study's popularity score: sum of (top_k - rank) over a post's ranked tags.

    The ranking comes from a file (whitespace-separated, most popular first,
    like the study's top-10k list) or, when `ranking` is null, from tag
    frequency in the train rows.
    """

    def __init__(self, ranking: str | None = None, top_k: int = 10000):
        self.ranking, self.top_k = ranking, int(top_k)

    def fit(self, train):
        if self.ranking:
            tags = read_ranking(self.ranking)
        else:  # counted on columns: each distinct tag is made bare once, not once per use
            _, codes, uniques = tag_codes(train["tags"])
            counts = pd.Series(np.bincount(codes, minlength=len(uniques))).groupby(
                [bare_tag(t) for t in uniques]).sum()
            tags = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.rank_ = {t: r for r, t in enumerate(tags[: self.top_k])}
        return self

    def transform(self, posts):
        k, rank = self.top_k, self.rank_
        rows, codes, uniques = tag_codes(posts["tags"])
        value = np.array([k - rank.get(bare_tag(t), k) for t in uniques], dtype=float)
        score = np.bincount(rows, weights=value[codes], minlength=len(posts)) if len(codes) else np.zeros(len(posts))
        return pd.DataFrame({"log_hashtag_score": np.log1p(score)})


def tag_codes(tags: pd.Series):
    """A column of tag lists as flat arrays: each tag's row, its code, and the distinct tags
    (code -> tag): per-row work in C, Python once per distinct tag."""
    lists = tags.tolist()
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = np.fromiter(chain.from_iterable(lists), dtype=object, count=int(lengths.sum()))
    codes, uniques = pd.factorize(flat) if len(flat) else (np.zeros(0, dtype=np.int64), np.array([], dtype=object))
    return np.repeat(np.arange(len(lists)), lengths), codes, list(uniques)


@register("user_history")
class UserHistory(Extractor):
    """The user's train-only like statistics (leave-one-out on train rows)."""

    def fit(self, train):
        self.stats_ = UserStats.of(train)
        return self

    @staticmethod
    def _frame(t):
        return pd.DataFrame({
            "user_log_mean": t["log_mean"].to_numpy(),
            "user_log_median": np.log(t["median"].to_numpy()),
            "user_log_best_constant": np.log(t["best_constant"].to_numpy()),
            "user_log_std": t["log_std"].to_numpy(),
            "user_log_n": np.log1p(t["n"].to_numpy()),
        })

    def transform(self, posts):
        return self._frame(self.stats_.table(posts))

    def fit_transform(self, train):
        return self._frame(self.fit(train).stats_.loo_table(train))


@register("user_mean_leaky")
class UserMeanLeaky(Extractor):
    """The study's user mean: over ALL the user's posts, the predicted one included.

    A leak kept only to reproduce the study (`split=legacy`); runs using it
    are tagged leaky=true.
    """

    leaky = True

    def fit(self, train):
        posts = self.context.all_posts if self.context.all_posts is not None else train
        self.mean_ = posts.groupby("alias")["likes"].mean()
        return self

    def transform(self, posts):
        return pd.DataFrame({"log_user_mean_all": np.log(posts["alias"].map(self.mean_).to_numpy(dtype=float))})
