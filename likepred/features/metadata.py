"""The study's post and user metadata features, and user history."""

from __future__ import annotations

from collections import Counter
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


def read_ranking(path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"features.extractors.hashtag_score.ranking: file not found: {p}")
    return [t.lstrip("#").lower() for t in p.read_text(encoding="utf-8").split()]


@register("hashtag_score")
class HashtagScore(Extractor):
    """The study's popularity score: sum of (top_k - rank) over a post's ranked tags.

    The ranking comes from a file (whitespace-separated, most popular first,
    like the study's top-10k list) or, when `ranking` is null, from tag
    frequency in the train rows.
    """

    def __init__(self, dataset=None, ranking=None, top_k=10000):
        super().__init__(dataset)
        self.ranking, self.top_k = ranking, int(top_k)

    def fit(self, train):
        if self.ranking:
            tags = read_ranking(self.ranking)
        else:
            counts = Counter(t for tags in train["tags"] for t in tags)
            tags = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.rank_ = {t: r for r, t in enumerate(tags[: self.top_k])}
        return self

    def transform(self, posts):
        k, rank = self.top_k, self.rank_
        score = posts["tags"].map(lambda ts: sum(k - rank[t] for t in ts if t in rank))
        return pd.DataFrame({"log_hashtag_score": np.log1p(score.to_numpy(dtype=float))})


@register("user_history")
class UserHistory(Extractor):
    """The user's train-only like statistics (leave-one-out on train rows)."""

    def fit(self, train):
        self.stats_ = UserStats().fit(train)
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
        posts = self.dataset.posts if self.dataset is not None else train
        self.mean_ = posts.groupby("alias")["likes"].mean()
        return self

    def transform(self, posts):
        return pd.DataFrame({"log_user_mean_all": np.log(posts["alias"].map(self.mean_).to_numpy(dtype=float))})


@register("post_age")
class PostAge(Extractor):
    """Days between the post and the scrape: young posts have not collected their likes.

    Posts dated after the scrape (a post being planned) are scored as if
    `future_age_days` old, the horizon the prediction is for.
    """

    def __init__(self, dataset=None, future_age_days=30):
        super().__init__(dataset)
        self.future_age_days = float(future_age_days)

    def fit(self, train):
        self.scrape_date_ = self.dataset.scrape_date if self.dataset is not None else train["date"].max()
        return self

    def transform(self, posts):
        age = (self.scrape_date_ - posts["date"]).dt.total_seconds().to_numpy() / 86400.0
        age = np.where(age < 0, self.future_age_days, age)
        return pd.DataFrame({"log_age_days": np.log1p(age)})


def _trend(days, logs, shrink):
    """Ridge slope of log likes on days, shrunk toward flat for short histories."""
    dt = days - days.mean()
    return float((dt * (logs - logs.mean())).sum() / ((dt * dt).sum() + shrink))


@register("user_trend")
class UserTrend(Extractor):
    """The user's train-only trend in log likes, extrapolated to the post's date.

    Followings grow, so a user's recent posts get more likes than the mean of
    older ones. Train rows get leave-one-out fits.
    """

    def __init__(self, dataset=None, shrink_days2=2000.0):
        super().__init__(dataset)
        self.shrink = float(shrink_days2)

    def _fit_one(self, days, logs):
        if len(days) == 0:
            return np.nan, 0.0, np.nan
        return logs.mean(), _trend(days, logs, self.shrink), days.mean()

    def fit(self, train):
        days, logs = post_days(train), np.log(train["likes"].to_numpy(float))
        self.groups_ = train.groupby("alias", sort=False).indices
        self.fits_ = {a: self._fit_one(days[ix], logs[ix]) for a, ix in self.groups_.items()}
        self._train = (days, logs)
        return self

    @staticmethod
    def _frame(level, slope, at, days):
        known = ~np.isnan(level)
        pred = np.where(known, level + slope * (days - np.nan_to_num(at)), np.nan)
        return pd.DataFrame({"user_trend_slope": np.where(known, slope * 30.0, 0.0),
                             "user_trend_shift": np.nan_to_num(pred - level)})

    def transform(self, posts):
        f = np.array([self.fits_.get(a, (np.nan, 0.0, np.nan)) for a in posts["alias"]]).reshape(-1, 3)
        return self._frame(f[:, 0], f[:, 1], f[:, 2], post_days(posts))

    def fit_transform(self, train):
        self.fit(train)
        days, logs = self._train
        f = np.full((len(train), 3), np.nan)
        f[:, 1] = 0.0
        for ix in self.groups_.values():
            for k, r in enumerate(ix):
                rest = np.delete(ix, k)
                f[r] = self._fit_one(days[rest], logs[rest])
        return self._frame(f[:, 0], f[:, 1], f[:, 2], days)


@register("user_past")
class UserPast(Extractor):
    """The user's train posts strictly before this post: what was known when it went up.

    The same definition serves train and test rows, so train rows need no
    leave-one-out and recent history (a time-weighted mean, the last post)
    means the same for both. Rows with no earlier train post get the
    cold-start estimate from profile counts and `past_n` = 0.
    """

    def __init__(self, dataset=None, half_life_days=30.0, last_k=5):
        super().__init__(dataset)
        self.half_life, self.last_k = float(half_life_days), int(last_k)

    def fit(self, train):
        self.stats_ = UserStats().fit(train)
        order = train.sort_values("date", kind="stable")
        days = post_days(order)
        logs = np.log(order["likes"].to_numpy(float))
        self.hist_ = {a: (days[ix], logs[ix]) for a, ix in order.groupby("alias", sort=False).indices.items()}
        return self

    def transform(self, posts):
        cold = np.log(self.stats_.cold(posts)["median"].to_numpy())
        days = post_days(posts)
        cols = ["past_log_n", "past_log_mean", "past_log_ewm", "past_log_last_k", "past_log_last",
                "past_log_days_since_last", "past_log_std"]
        out = np.zeros((len(posts), len(cols)))
        tau = self.half_life / np.log(2)
        for r, (alias, t) in enumerate(zip(posts["alias"], days)):
            d, lg = self.hist_.get(alias, (np.empty(0), np.empty(0)))
            k = np.searchsorted(d, t, side="left")
            if k == 0:
                out[r] = [0, cold[r], cold[r], cold[r], cold[r], np.log1p(365.0), self.stats_.global_log_std_]
                continue
            d, lg = d[:k], lg[:k]
            w = np.exp(-(t - d) / tau)
            out[r] = [np.log1p(k), lg.mean(), (w * lg).sum() / w.sum(), lg[-self.last_k:].mean(), lg[-1],
                      np.log1p(max(t - d[-1], 0.0)), lg.std() if k > 1 else self.stats_.global_log_std_]
        return pd.DataFrame(out, columns=cols)
