"""Per-user statistics of likes, fitted on train rows only.

Everything computed from likes (user mean/median, positivity's base, the
baselines) comes from here, so there is one place that decides what a row
may see. `loo_table` gives train rows their own leave-one-out view, so a
train row's features mean what a test row's do. Users unseen in training
(cold start) get estimates regressed on their profile counts.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

STATS = ["mean", "median", "log_mean", "log_std", "best_constant", "lognormal"]
PRIOR_N = 10  # pseudo-posts pulling a user's log variance toward the typical user's
PROFILE = ["followers", "following", "posts_count"]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, cum[-1] / 2.0)])


def best_constant(likes: np.ndarray) -> float:
    """The constant with the least MAPE on `likes`: their 1/y-weighted median."""
    return weighted_median(likes, 1.0 / likes)


def _stats(likes: np.ndarray) -> dict:
    logs = np.log(likes)
    return {
        "n": len(likes), "mean": likes.mean(), "median": float(np.median(likes)),
        "log_mean": logs.mean(), "log_std": logs.std(ddof=1) if len(likes) > 1 else np.nan,
        "best_constant": best_constant(likes),
    }


def _loo_rows(likes: np.ndarray, left: np.ndarray) -> np.ndarray:
    """`_stats` of `likes` without each of `left`, laid out in full (n - 1 values per row)."""
    n = len(likes)
    keep = np.ones((len(left), n), dtype=bool)
    keep[np.arange(len(left)), left] = False
    rows = np.broadcast_to(likes, keep.shape)[keep].reshape(len(left), n - 1)
    logs = np.log(rows)
    v = np.sort(rows, axis=1)  # best_constant's weighted median, row by row
    cum = np.cumsum(1.0 / v, axis=1)
    best = v[np.arange(len(left)), (cum >= cum[:, -1:] / 2.0).argmax(axis=1)]
    log_std = logs.std(axis=1, ddof=1) if n > 2 else np.full(len(left), np.nan)
    return np.column_stack([np.full(len(left), n - 1.0), rows.mean(axis=1), np.median(rows, axis=1),
                            logs.mean(axis=1), log_std, best])


def _loo_stats(likes: np.ndarray, cells: int = 1 << 20) -> np.ndarray:
    """`_stats` of each leave-one-out subset of one user's likes, a row per left-out post.

    From one sort and running sums (n log n: a user with thousands of posts stays small); a row
    whose result a rounding could change (a weighted-median boundary hit exactly, a spread that
    cancels) is laid out in full instead, up to `cells` likes at a time."""
    x = np.asarray(likes, dtype=float)
    n, m = len(x), len(x) - 1
    order = np.argsort(x, kind="stable")
    v, rank = x[order], np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    def kept(i):  # the i-th smallest of the others, for every left-out post
        return np.where(i < rank, v[min(i, n - 1)], v[min(i + 1, n - 1)])

    median = kept(m // 2) if m % 2 else (kept(m // 2 - 1) + kept(m // 2)) / 2
    logs = np.log(x)
    log_mean = (logs.sum() - logs) / m
    mean = (x.sum() - x) / m
    exact = np.zeros(n, dtype=bool)
    if n > 2:
        mu = logs.mean()
        ss = ((logs - mu) ** 2).sum()
        ss_j = ss - (logs - mu) * (logs - log_mean)  # the sum of squares without post j
        exact |= ss_j < 1e-6 * ss  # cancellation: recompute
        log_std = np.sqrt(np.maximum(ss_j, 0.0) / (m - 1))
    else:
        log_std = np.full(n, np.nan)
    # best constant: the 1/y-weighted median of the others; cum' is cum with post j's weight removed
    w = 1.0 / v
    cum = np.cumsum(w)
    w_j = w[rank]
    half = (cum[-1] - w_j) / 2.0
    below = np.searchsorted(cum, half, side="left")  # first sorted position, before j, at or past half
    above = np.maximum(np.searchsorted(cum, half + w_j, side="left"), rank + 1)
    pos = np.where(below < rank, below, np.minimum(above, n - 1))
    best = v[pos]
    # near a boundary the running sums may round the other way from the row's own cumsum: recompute
    c_at = np.where(pos < rank, cum[pos], cum[pos] - w_j)
    prev = pos - 1 - (pos - 1 == rank)
    c_prev = np.where(prev < 0, -np.inf, np.where(prev < rank, cum[np.maximum(prev, 0)], cum[np.maximum(prev, 0)] - w_j))
    exact |= (np.abs(c_at - half) <= 1e-9 * cum[-1]) | (np.abs(c_prev - half) <= 1e-9 * cum[-1])
    out = np.column_stack([np.full(n, m, dtype=float), mean, median, log_mean, log_std, best])
    redo = np.flatnonzero(exact)
    step = max(1, cells // max(n, 1))
    for start in range(0, len(redo), step):
        ix = redo[start:start + step]
        out[ix] = _loo_rows(x, ix)
    return out


def _profile_matrix(frame: pd.DataFrame) -> np.ndarray:
    x = np.log1p(frame[PROFILE].to_numpy(dtype=float))
    return np.column_stack([np.ones(len(x)), x])


# weak references to the last train frame `UserStats.of` fitted and to its stats (nothing is kept alive)
_SHARED: list = [None, None]


class UserStats:
    @classmethod
    def of(cls, train: pd.DataFrame) -> "UserStats":
        """The stats fitted on `train`, shared by everything fitted on that same frame: the target
        and the `user_history` features fit on the same train rows, so one fit and one
        leave-one-out table serve both (the frame is held weakly; any other frame fits anew)."""
        ref, stats_ref = _SHARED
        stats = stats_ref() if stats_ref is not None else None
        if stats is not None and ref() is train and stats.rows_ == len(train):
            return stats
        stats = cls().fit(train)
        _SHARED[:] = [weakref.ref(train), weakref.ref(stats)]
        return stats

    def __getstate__(self):  # what predictions need: not the train rows' likes, groups, leave-one-out table
        return {k: v for k, v in self.__dict__.items() if k not in ("_groups", "_likes", "_loo")}

    def fit(self, train: pd.DataFrame) -> "UserStats":
        likes = train["likes"].to_numpy(dtype=float)
        groups = train.groupby("alias", sort=False).indices
        per_user = [_stats(likes[ix]) for ix in groups.values()]  # columns at once: a frame of dicts took seconds
        cols = list(_stats(np.ones(2)))
        self.table_ = pd.DataFrame(np.array([[d[c] for c in cols] for d in per_user], dtype=float).reshape(-1, len(cols)),
                                   index=pd.Index(list(groups), dtype=train["alias"].dtype), columns=cols)
        self.rows_, self._loo = len(train), None
        self._groups, self._likes = groups, likes
        self.global_log_std_ = float(np.nanmedian(self.table_["log_std"])) if len(self.table_) else 1.0
        self.table_["log_std"] = self.table_["log_std"].fillna(self.global_log_std_)
        self.table_["lognormal"] = self._lognormal(self.table_)
        # Cold start: regress each log-stat on the user's log profile counts.
        users = train.drop_duplicates("alias").set_index("alias").loc[self.table_.index]
        X = _profile_matrix(users)
        Y = np.log(self.table_[["mean", "median", "best_constant"]].to_numpy())
        Y = np.column_stack([Y, self.table_["log_mean"].to_numpy()])
        if len(X) >= X.shape[1] + 2:
            self.coef_ = np.linalg.lstsq(X, Y, rcond=None)[0]
        else:  # too few users to regress: the median user
            self.coef_ = np.zeros((X.shape[1], Y.shape[1]))
            self.coef_[0] = np.median(Y, axis=0) if len(Y) else np.log(1.0)
        return self

    def _lognormal(self, t: pd.DataFrame) -> np.ndarray:
        """The MAPE-optimal constant if likes are log-normal: exp(mu - sigma^2).

        Under MAPE the best constant is the 1/y-weighted median, which for a
        log-normal is exp(mu - sigma^2). With ~10 posts a user's sample sigma is
        noisy, so it is shrunk toward the typical user's (PRIOR_N pseudo-posts);
        a smoother estimate than the empirical weighted median.
        """
        dof = np.maximum(t["n"].to_numpy(dtype=float) - 1, 0)
        var = np.nan_to_num(t["log_std"].to_numpy(dtype=float) ** 2)
        var0 = self.global_log_std_ ** 2
        shrunk = (dof * var + PRIOR_N * var0) / (dof + PRIOR_N)
        return np.exp(t["log_mean"].to_numpy(dtype=float) - shrunk)

    def cold(self, frame: pd.DataFrame) -> pd.DataFrame:
        est = _profile_matrix(frame) @ self.coef_
        out = pd.DataFrame({
            "n": 0.0, "mean": np.exp(est[:, 0]), "median": np.exp(est[:, 1]),
            "best_constant": np.exp(est[:, 2]), "log_mean": est[:, 3],
            "log_std": self.global_log_std_,
        }, index=frame.index)
        # n = 0: the typical user's spread; the regression's own error is left to calibration on val users
        out["lognormal"] = self._lognormal(out)
        return out

    def table(self, posts: pd.DataFrame) -> pd.DataFrame:
        """Stats of each row's user from all train rows (for rows not in train)."""
        at = self.table_.index.get_indexer(posts["alias"])  # -1: a user with no train rows
        known = at >= 0
        out = self.cold(posts)
        if known.any():  # positions, not isin/.loc: those turned every user's name into a Python string per call
            out.loc[known, self.table_.columns] = self.table_.to_numpy()[at[known]]
        return out[["n"] + STATS]

    def loo_table(self, train: pd.DataFrame) -> pd.DataFrame:
        """Stats for the train rows the model was fitted on, each without itself (computed once
        per train frame; callers read it, never write)."""
        loo = getattr(self, "_loo", None)  # (not kept in a pickle)
        if loo is not None and loo[0]() is train:
            return loo[1]
        out = self.cold(train)
        cols = list(_stats(np.ones(2)))
        vals = out[cols].to_numpy(dtype=float, copy=True)  # filled in numpy: a pandas write per user took seconds
        for _, ix in self._groups.items():
            if len(ix) >= 2:
                vals[ix] = _loo_stats(self._likes[ix])
        out[cols] = vals
        out["log_std"] = out["log_std"].fillna(self.global_log_std_)
        out["lognormal"] = self._lognormal(out)
        out = out[["n"] + STATS]
        self._loo = (weakref.ref(train), out)
        return out
