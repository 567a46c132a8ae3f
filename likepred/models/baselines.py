"""Baselines: per-user constants from train likes, same registry as models.

Cold-start users get the estimate `UserStats` regresses on profile counts.
"""

from likepred.models import Estimator, register
from likepred.userstats import UserStats


class UserConstant(Estimator):
    predicts = "likes"

    def __init__(self, stat):
        self.stat = stat

    def fit(self, train, val=None, on_epoch=None):
        self.stats_ = UserStats.of(train.posts)
        return {}

    def predict(self, data):
        return self.stats_.table(data.posts)[self.stat].to_numpy(dtype=float)


@register("user_mean")
def user_mean(cfg):
    return UserConstant("mean")


@register("user_median")
def user_median(cfg):
    return UserConstant("median")


@register("best_constant")
def best_constant(cfg):
    """Per user, the MAPE-optimal constant: the 1/y-weighted median of train likes."""
    return UserConstant("best_constant")


@register("lognormal_constant")
def lognormal_constant(cfg):
    """Per user, exp(log mean - shrunk log variance): the best constant if likes are log-normal."""
    return UserConstant("lognormal")
