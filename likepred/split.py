"""Train / val / test row positions, cut so that nothing leaks.

The validation rows are cut the same way as the test rows (by time within
each user for `chrono`, by whole users for `user`): a random validation
split rewards memorising users during early stopping and model selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from likepred.errors import ConfigError
from likepred.registry import Registry


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str

    def sizes(self) -> dict:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _timelines(posts):
    """Each user's posts in time order, on columns: the row positions sorted by (alias, date,
    post_index), and for each of them its rank in its user's timeline and that user's post count."""
    alias = pd.factorize(posts["alias"], sort=True)[0]
    date = pd.DatetimeIndex(posts["date"]).asi8  # its instants as integers (any unit, any zone)
    pos = np.lexsort((posts["post_index"].to_numpy(), date, alias))  # stable, like a stable sort_values
    code = alias[pos]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(pos) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(pos)])
    n = np.repeat(sizes, sizes)
    rank = np.arange(len(pos)) - np.repeat(starts, sizes)
    return pos, rank, n


def _chrono(posts, cfg, rng):
    pos, rank, n = _timelines(posts)
    n_test = np.floor(n * float(cfg.test_frac)).astype(np.int64)
    n_val = np.floor(n * float(cfg.val_frac)).astype(np.int64)
    short = n - n_test - n_val < 1  # too few posts to hold any out
    n_test[short] = n_val[short] = 0
    cut_val, cut_test = n - n_test - n_val, n - n_test
    return [pos[rank < cut_val]], [pos[(rank >= cut_val) & (rank < cut_test)]], [pos[rank >= cut_test]]


def _user(posts, cfg, rng):
    users = np.array(sorted(posts["alias"].unique()))
    rng.shuffle(users)
    n_test = max(1, int(round(len(users) * cfg.test_frac)))
    n_val = max(1, int(round(len(users) * cfg.val_frac)))
    groups = (users[n_test + n_val:], users[n_test: n_test + n_val], users[:n_test])
    alias = posts["alias"].to_numpy()
    return [[np.flatnonzero(np.isin(alias, g))] for g in groups]


def _random(posts, cfg, rng):
    pos = rng.permutation(len(posts))
    n_test = int(round(len(pos) * cfg.test_frac))
    n_val = int(round(len(pos) * cfg.val_frac))
    return [pos[n_test + n_val:]], [pos[n_test: n_test + n_val]], [pos[:n_test]]


def _legacy(posts, cfg, rng):
    # The study: file order, first rows train (its val: Keras' validation_split, the tail of train).
    n = len(posts)
    n_test = int(round(n * cfg.test_frac))
    n_val = int(round(n * cfg.val_frac))
    pos = np.arange(n)
    return [pos[: n - n_test - n_val]], [pos[n - n_test - n_val: n - n_test]], [pos[n - n_test:]]


# ---- cross-validation folds: fold k of K (split.folds=K, split.fold=k). Each returns the
# split's (train, val, test) lists like the splits above; over k = 0..K-1 the test rows of
# `user` cover every user once, of `random` every post once, of `chrono` every post after each
# user's first block once.

def _user_fold(posts, cfg, rng, k, K):
    users = np.array(sorted(posts["alias"].unique()))
    if len(users) < K:
        raise ConfigError(f"split.folds={K} with split=user needs at least {K} users ({len(users)} here)")
    rng.shuffle(users)
    test = np.array_split(users, K)[k]
    rest = users[~np.isin(users, test)]
    rest = rest[np.random.default_rng([cfg.seed, k]).permutation(len(rest))]  # val users: drawn per fold
    n_val = min(len(rest) - 1, max(1, int(round(len(users) * cfg.val_frac)))) if cfg.val_frac > 0 else 0
    alias = posts["alias"].to_numpy()
    return [[np.flatnonzero(np.isin(alias, g))] for g in (rest[n_val:], rest[:n_val], test)]


def _chrono_fold(posts, cfg, rng, k, K):
    """Rolling origin: each user's timeline in K + 1 consecutive blocks; fold k tests block k + 1
    from the posts before it (their last val_frac, at least one post where two or more, the val
    rows); later posts are left out."""
    pos, rank, n = _timelines(posts)
    q, rem = np.divmod(n, K + 1)  # np.array_split(timeline, K + 1): the first rem blocks hold q + 1

    def bound(j):  # where block j starts in each row's timeline
        return j * q + np.minimum(j, rem)

    before, end = bound(k + 1), bound(k + 2)
    kept = (before > 0) & (end > before)
    n_val = np.minimum(before - 1, np.maximum(int(cfg.val_frac > 0), np.round(before * float(cfg.val_frac)).astype(np.int64)))
    cut = before - n_val
    return ([pos[kept & (rank < cut)]], [pos[kept & (rank >= cut) & (rank < before)]],
            [pos[kept & (rank >= before) & (rank < end)]])


def _random_fold(posts, cfg, rng, k, K):
    pos = rng.permutation(len(posts))
    test = np.array_split(pos, K)[k]
    rest = np.setdiff1d(pos, test)
    rest = rest[np.random.default_rng([cfg.seed, k]).permutation(len(rest))]
    n_val = int(round(len(posts) * cfg.val_frac))
    return [rest[n_val:]], [rest[:n_val]], [test]


FOLDS = {"user": _user_fold, "chrono": _chrono_fold, "random": _random_fold}

SPLITS = Registry("split.kind")
for _name, _fn in {"chrono": _chrono, "user": _user, "random": _random, "legacy": _legacy}.items():
    SPLITS.add(_name, _fn)


def make_split(posts: pd.DataFrame, cfg) -> Split:
    if not (0 < cfg.test_frac < 1 and 0 <= cfg.val_frac < 1 and cfg.test_frac + cfg.val_frac < 1):
        raise ConfigError("split.test_frac and split.val_frac must be fractions summing to less than 1")
    rng = np.random.default_rng(cfg.seed)
    fold, folds = cfg.get("fold"), cfg.get("folds") or 0
    if fold is None:
        parts = SPLITS.get(cfg.kind)(posts, cfg, rng)
    else:
        if folds < 2 or not 0 <= fold < folds:
            raise ConfigError(f"split.fold={fold} needs split.folds=K with K >= 2 and 0 <= fold < K (split.folds={folds})")
        if cfg.kind not in FOLDS:
            raise ConfigError(f"split={cfg.kind} has no folds; cross-validation works with split={', split='.join(FOLDS)}")
        parts = FOLDS[cfg.kind](posts, cfg, rng, int(fold), int(folds))
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) if len(p) else np.array([], np.int64) for p in parts)
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(f"split={cfg.kind} left no train or no test rows ({len(posts)} posts); use more data")
    return Split(train, val, test, cfg.kind)
