"""The user's posting habits: averages over the user's posts up to this one.

No likes are read. For an unseen user (cold start) the habits are the
strongest signal after the profile counts: how often they post, how many
tags and mentions they use, the script they write in. A row sees every post
of its user known at fit time (any split: no likes are read, and an earlier
post was public when this one went up) dated strictly before it, plus
itself: the same in training, evaluation and serving, whatever else is in
the batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from likepred.features import Extractor, register
from likepred.features.metadata import post_days
from likepred.features.text import SCRIPTS, caption_stats

PER_POST = ["n_tags", "n_mentions", "log_caption_chars", "caption_emoji", *(f"script_{s}" for s in SCRIPTS)]
COLUMNS = ["habit_log_n", "habit_log_posts_per_day", *(f"habit_{c}" for c in PER_POST)]


def _per_post(posts: pd.DataFrame) -> pd.DataFrame:
    # the columns named: no rows (a split without val rows) gives empty columns, not a KeyError
    caps = pd.DataFrame([caption_stats(c or "") for c in posts["caption"]], columns=PER_POST[2:])
    return pd.DataFrame({
        "alias": posts["alias"].to_numpy(),
        "days": post_days(posts),
        "n_tags": posts["tags"].map(len).to_numpy(dtype=float),
        "n_mentions": posts["mentions"].map(len).to_numpy(dtype=float),
        **{c: caps[c].to_numpy(dtype=float) for c in PER_POST[2:]},
    })


@register("user_habits")
class UserHabits(Extractor):
    """Per row: log number of the user's posts so far, their posting rate
    (log posts per day; the train median when there is one post) and the
    mean of each per-post count (tags, mentions, caption length, emoji,
    script) over those posts, this one included."""

    def fit(self, train):
        posts = self.context.all_posts if self.context.all_posts is not None else train
        self.history_ = {}
        for alias, g in _per_post(posts).groupby("alias", sort=False):
            g = g.sort_values("days", kind="stable")
            self.history_[alias] = (g["days"].to_numpy(), np.cumsum(g[PER_POST].to_numpy(), axis=0))
        self.median_rate_ = 0.0
        rates = self._habits(_per_post(train))["habit_log_posts_per_day"]
        self.median_rate_ = float(np.nanmedian(rates)) if np.isfinite(rates).any() else 0.0
        return self

    def transform(self, posts):
        out = self._habits(_per_post(posts))
        out["habit_log_posts_per_day"] = out["habit_log_posts_per_day"].fillna(self.median_rate_)
        return out

    def _habits(self, rows: pd.DataFrame) -> pd.DataFrame:
        out = np.full((len(rows), len(COLUMNS)), np.nan)
        empty = (np.empty(0), np.zeros((0, len(PER_POST))))
        for alias, ix in rows.groupby("alias", sort=False).indices.items():
            days, cum = self.history_.get(alias, empty)
            own_days, own = rows["days"].to_numpy()[ix], rows[PER_POST].to_numpy()[ix]
            k = np.searchsorted(days, own_days, side="left")  # known posts strictly before the row
            before = np.where(k[:, None] > 0, cum[np.maximum(k - 1, 0)] if len(days) else 0.0, 0.0)
            n = k + 1
            first = np.where(k > 0, days[0] if len(days) else 0.0, own_days)
            span = own_days - first
            rate = np.where(n > 1, np.log(np.maximum(n - 1, 1) / np.maximum(span, 0.5)), np.nan)
            out[ix] = np.column_stack([np.log1p(n), rate, (before + own) / n[:, None]])
        return pd.DataFrame(out, columns=COLUMNS)
