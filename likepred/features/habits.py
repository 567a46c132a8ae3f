"""The user's posting habits: averages over the user's posts up to this one.

No likes are read. For an unseen user (cold start) the habits are the
strongest signal after the profile counts: how often they post, how many
tags and mentions they use, the script they write in. Only posts up to the
row's date count, so nothing from the future is used; the train rows are
remembered at fit so that a later row sees its user's earlier posts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from likepred.features import Extractor, register
from likepred.features.metadata import post_days
from likepred.features.text import SCRIPTS, caption_stats

PER_POST = ["n_tags", "n_mentions", "log_caption_chars", "caption_emoji", *(f"script_{s}" for s in SCRIPTS)]


def _per_post(posts: pd.DataFrame) -> pd.DataFrame:
    caps = pd.DataFrame([caption_stats(c or "") for c in posts["caption"]])
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
        self.fit_transform(train)
        return self

    def fit_transform(self, train):
        known = _per_post(train)
        self.history_ = {a: g.drop(columns="alias") for a, g in known.groupby("alias", sort=False)}
        out = self._habits(known, {})
        rates = out["habit_log_posts_per_day"]
        self.median_rate_ = float(np.nanmedian(rates)) if np.isfinite(rates).any() else 0.0
        return self._fill(out)

    def transform(self, posts):
        return self._fill(self._habits(_per_post(posts), self.history_))

    def _fill(self, out):
        out["habit_log_posts_per_day"] = out["habit_log_posts_per_day"].fillna(self.median_rate_)
        return out

    @staticmethod
    def _habits(rows: pd.DataFrame, history: dict) -> pd.DataFrame:
        cols = ["habit_log_n", "habit_log_posts_per_day", *(f"habit_{c}" for c in PER_POST)]
        out = np.full((len(rows), len(cols)), np.nan)
        for alias, ix in rows.groupby("alias", sort=False).indices.items():
            own = rows.iloc[ix].drop(columns="alias")
            past = history.get(alias)
            pool = own if past is None else pd.concat([past, own], ignore_index=True)
            pool = pool.sort_values("days", kind="stable")
            days = pool["days"].to_numpy()
            vals = np.cumsum(pool[PER_POST].to_numpy(), axis=0)
            # Each row sees every pooled post dated up to its own date (same-day posts included).
            k = np.searchsorted(days, own["days"].to_numpy(), side="right")
            span = own["days"].to_numpy() - days[0]
            rate = np.where(k > 1, np.log(np.maximum(k - 1, 1) / np.maximum(span, 0.5)), np.nan)
            out[ix] = np.column_stack([np.log1p(k), rate, vals[k - 1] / k[:, None]])
        return pd.DataFrame(out, columns=cols)
