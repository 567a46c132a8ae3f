"""95% intervals for MAPE from a bootstrap over users (the unit that is independent).

Takes predictions, never a model. Vectorised: per-user sums of absolute percentage errors and
per-user post counts, then a (B x U) matrix W of multinomial resample counts (how often each
user is drawn in resample b), so MAPE_b = (W @ ape_sum) / (W @ n). A paired difference of two
predictors on the same rows uses the SAME W for both. A difference whose interval contains 0 is
a tie: never call it a win.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass
class Interval:
    value: float  # on the rows as they are
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """For a difference: does the interval exclude 0?"""
        return bool(self.low > 0 or self.high < 0)


def _user_codes(users) -> tuple[np.ndarray, int]:
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(users), sort=False)
    return codes, len(uniques)


def resample_counts(n_users: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot x n_users) counts: row b says how often each user is drawn in resample b."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_boot).astype(np.float64)


def ape(likes, pred) -> np.ndarray:
    likes, pred = np.asarray(likes, float), np.asarray(pred, float)
    return 100.0 * np.abs(likes - pred) / likes


class UserBootstrap:
    """One set of user resamples, shared by every predictor scored on the same rows (paired)."""

    def __init__(self, users, n_boot: int = 1000, seed: int = 0):
        self.codes, self.n_users = _user_codes(users)
        self.n = np.bincount(self.codes, minlength=self.n_users).astype(np.float64)
        self.W = resample_counts(self.n_users, n_boot, seed)
        self.Wn = self.W @ self.n  # posts in each resample (> 0: every user has >= 1 post)

    def _sums(self, values) -> np.ndarray:
        return np.bincount(self.codes, weights=np.asarray(values, float), minlength=self.n_users)

    def mean(self, values) -> Interval:
        """The mean of per-row values (e.g. APE) with its percentile interval over user resamples."""
        s = self._sums(values)
        boots = (self.W @ s) / self.Wn
        return _interval(float(s.sum() / self.n.sum()), boots)

    def mape(self, likes, pred) -> Interval:
        return self.mean(ape(likes, pred))

    def diff(self, likes, pred_a, pred_b) -> Interval:
        """MAPE(a) - MAPE(b) on the same rows, both resampled with the same users (paired)."""
        return self.mean(ape(likes, pred_a) - ape(likes, pred_b))

    def p_value(self, likes, pred_a, pred_b) -> float:
        """Two-sided p-value for MAPE(a) == MAPE(b): the bootstrap distribution of the difference,
        shifted to mean 0 under the null, against the observed difference."""
        d = ape(likes, pred_a) - ape(likes, pred_b)
        s = self._sums(d)
        obs = s.sum() / self.n.sum()
        boots = (self.W @ s) / self.Wn
        null = boots - boots.mean()
        return float((1 + np.sum(np.abs(null) >= abs(obs))) / (1 + len(boots)))


def _interval(value: float, boots: np.ndarray) -> Interval:
    a = (1 - LEVEL) / 2
    low, high = np.quantile(boots, [a, 1 - a])
    return Interval(value, float(low), float(high))


def mape_interval(likes, pred, users, n_boot: int = 1000, seed: int = 0) -> Interval:
    return UserBootstrap(users, n_boot, seed).mape(likes, pred)


def paired_interval(likes, pred_a, pred_b, users, n_boot: int = 1000, seed: int = 0) -> Interval:
    return UserBootstrap(users, n_boot, seed).diff(likes, pred_a, pred_b)


def interval_metrics(prefix: str, likes, pred, users, baselines: dict, n_boot: int, seed: int,
                     suffix: str = "") -> dict:
    """`{prefix}_mape{suffix}_ci_low/high` and, per baseline name, `{prefix}_mape_vs_{name}{suffix}`
    (model minus baseline, paired on the same users) with its `_ci_low` / `_ci_high`."""
    if n_boot <= 0 or len(likes) == 0:
        return {}
    boot = UserBootstrap(users, n_boot, seed)
    ci = boot.mape(likes, pred)
    out = {f"{prefix}_mape{suffix}_ci_low": ci.low, f"{prefix}_mape{suffix}_ci_high": ci.high}
    for name, base in baselines.items():
        d = boot.diff(likes, pred, base)
        key = f"{prefix}_mape_vs_{name}{suffix}"
        out.update({key: d.value, f"{key}_ci_low": d.low, f"{key}_ci_high": d.high})
    return out


def describe(value: float, low: float, high: float, signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def verdict_word(low: float, high: float) -> str:
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "not significant"
