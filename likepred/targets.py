"""What a model learns to predict, with the inverse back to likes.

Every metric is reported on likes, so each target carries its inverse.
`positivity` (the study's likes / user mean) takes the user mean from train
rows only; unseen users get the cold-start estimate from `UserStats`.
"""

from __future__ import annotations

import numpy as np

from likepred.errors import ConfigError
from likepred.registry import Registry
from likepred.userstats import UserStats


class Likes:
    def __init__(self):
        pass

    def fit(self, train):
        return self

    def transform(self, posts):
        return posts["likes"].to_numpy(dtype=np.float32)

    def fit_transform(self, train):
        return self.fit(train).transform(train)

    def inverse(self, y, posts):
        return np.asarray(y, dtype=float)


class LogLikes(Likes):
    def transform(self, posts):
        return np.log(posts["likes"].to_numpy(dtype=np.float32))

    def inverse(self, y, posts):
        return np.exp(np.asarray(y, dtype=float))


BASES = ("mean", "median", "best_constant", "lognormal")


class Positivity(Likes):
    """likes / the user's train `base` statistic (the study: mean)."""

    def __init__(self, base="mean"):
        if base not in BASES:
            raise ConfigError(f"target.base={base!r} is unknown; known: {', '.join(BASES)}")
        self.base_stat = base

    def fit(self, train):
        self.stats_ = UserStats.of(train)
        return self

    def base(self, posts):
        return self.stats_.table(posts)[self.base_stat].to_numpy(dtype=float)

    def fit_transform(self, train):
        # Train rows are divided by their user's statistic *without themselves*,
        # as test rows are: an in-sample base would make train targets tighter
        # than test targets, and a MAPE-trained model would lean too high.
        self.fit(train)
        return self._divide(train, self.stats_.loo_table(train))

    def transform(self, posts):
        return self._divide(posts, self.stats_.table(posts))

    def _divide(self, posts, stats):
        return (posts["likes"].to_numpy(dtype=float) / stats[self.base_stat].to_numpy(dtype=float)).astype(np.float32)

    def inverse(self, y, posts):
        return np.asarray(y, dtype=float) * self.base(posts)


class LikesPerFollower(Likes):
    """likes / the user's followers: needs no like history, so it suits cold start (a new user's
    scale comes from its follower count, which the post table carries)."""

    @staticmethod
    def followers(posts):
        return np.maximum(posts["followers"].to_numpy(dtype=float), 1.0)

    def transform(self, posts):
        return (posts["likes"].to_numpy(dtype=float) / self.followers(posts)).astype(np.float32)

    def inverse(self, y, posts):
        return np.asarray(y, dtype=float) * self.followers(posts)


TARGETS = Registry("target.name")
for _name, _cls in {"likes": Likes, "log_likes": LogLikes, "positivity": Positivity,
                    "likes_per_follower": LikesPerFollower}.items():
    TARGETS.add(_name, _cls)


def build_target(cfg):
    params = {k: v for k, v in cfg.items() if k != "name"}
    try:
        return TARGETS.get(cfg.name)(**params)
    except TypeError as e:
        raise ConfigError(f"target={cfg.name}: {e}") from None
