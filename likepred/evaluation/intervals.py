"""95% intervals for MAPE from a bootstrap over users (the unit that is independent).

Takes predictions, never a model. Vectorised: per-user sums of absolute percentage errors and
per-user post counts; each resample draws U user indices with replacement (uniform integers, a
block of resamples at a time) and counts them (one bincount: w_b, how often each user is drawn),
so MAPE_b = (w_b @ ape_sum) / (w_b @ n). Drawing indices and counting them is far cheaper than
drawing multinomial counts (2 M test posts: seconds, not minutes); the method is the same. A
paired difference of two predictors on the same rows uses the SAME draws for both. A difference
whose interval contains 0 is a tie: never call it a win.
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


def resample_users(n_users: int, n_boot: int, seed: int, rows: slice | None = None) -> np.ndarray:
    """(n_boot x n_users) user codes: row b lists the users drawn (with replacement) in resample b.
    `rows`: only those resamples (drawn in fixed blocks, so a block is the same however many
    are asked for at once)."""
    rows = rows or slice(0, n_boot)
    start, stop = rows.start or 0, min(rows.stop, n_boot)
    dtype = np.int32 if n_users < 2**31 else np.int64
    if start % BLOCK == 0 and stop == min(start + BLOCK, n_boot):  # exactly one block: no copy
        return np.random.default_rng([seed, start // BLOCK]).integers(0, n_users, (stop - start, n_users), dtype)
    out = np.empty((max(0, stop - start), n_users), dtype)
    for block in range(start // BLOCK, (stop - 1) // BLOCK + 1 if stop > start else 0):
        lo = block * BLOCK
        w = np.random.default_rng([seed, block]).integers(0, n_users, (min(BLOCK, n_boot - lo), n_users), dtype)
        a, b = max(start, lo), min(stop, lo + len(w))
        out[a - start: b - start] = w[a - lo: b - lo]
    return out


BLOCK = 25  # resamples drawn per block: bounds memory (BLOCK x users) however many users


def ape(likes, pred) -> np.ndarray:
    likes, pred = np.asarray(likes, float), np.asarray(pred, float)
    return 100.0 * np.abs(likes - pred) / likes


class UserBootstrap:
    """One set of user resamples (seeded), shared by every predictor scored on the same rows, so
    differences are paired. Each call makes one pass over the resamples, in blocks."""

    def __init__(self, users, n_boot: int = 1000, seed: int = 0):
        self.codes, self.n_users = _user_codes(users)
        self.n_boot, self.seed = n_boot, seed
        self.n = np.bincount(self.codes, minlength=self.n_users).astype(np.float64)

    def _sums(self, values) -> np.ndarray:
        return np.bincount(self.codes, weights=np.asarray(values, float), minlength=self.n_users)

    def means(self, *values) -> list:
        """For each array of per-row values: its mean with its percentile interval over resamples."""
        observed, boots = self._resampled(*values)
        return [_interval(observed[i], boots[:, i]) for i in range(len(values))]

    def _resampled(self, *values, where=None):
        """The means of `values` on the rows as they are, and (n_boot x k) means over resamples.
        `where`: a row mask; then also the means of `values` on those rows only (the same
        resamples of users: one pass), k more columns."""
        cols = [self.n] + [self._sums(v) for v in values]
        if where is not None:
            where = np.asarray(where, bool)
            cols += [self._sums(where)] + [self._sums(np.where(where, v, 0.0)) for v in values]
        S = np.column_stack(cols)  # users x columns
        boots = np.empty((self.n_boot, S.shape[1]))
        W = np.empty((BLOCK, self.n_users))  # how often each user is drawn, per resample of a block
        for lo in range(0, self.n_boot, BLOCK):
            drawn = resample_users(self.n_users, self.n_boot, self.seed, slice(lo, lo + BLOCK))
            for i, row in enumerate(drawn):
                W[i] = np.bincount(row, minlength=self.n_users)
            boots[lo: lo + len(drawn)] = W[:len(drawn)] @ S  # one matrix product per block: S is read once
        k, total = len(values), S.sum(axis=0)
        means = boots[:, 1:k + 1] / boots[:, :1]  # every user has >= 1 row, so no resample is empty
        observed = list(total[1:k + 1] / total[0])
        if where is not None:
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample without such rows: NaN, left out
                means = np.column_stack([means, boots[:, k + 2:] / boots[:, k + 1: k + 2]])
            observed += list(total[k + 2:] / total[k + 1])
        return [float(v) for v in observed], means

    def mean(self, values) -> Interval:
        return self.means(values)[0]

    def mape(self, likes, pred) -> Interval:
        return self.mean(ape(likes, pred))

    def diff(self, likes, pred_a, pred_b) -> Interval:
        """MAPE(a) - MAPE(b) on the same rows, both resampled with the same users (paired)."""
        return self.mean(ape(likes, pred_a) - ape(likes, pred_b))

    def compare(self, likes, pred_a, pred_b) -> tuple:
        """(MAPE a, MAPE b, a - b paired) with intervals, and the two-sided p-value of a - b == 0:
        the bootstrap distribution of the difference, shifted to mean 0 (the null), against the
        observed difference."""
        ea, eb = ape(likes, pred_a), ape(likes, pred_b)
        observed, boots = self._resampled(ea, eb, ea - eb)
        d = boots[:, 2]
        p = float((1 + np.sum(np.abs(d - d.mean()) >= abs(observed[2]))) / (1 + len(d)))
        a, b, diff = (_interval(observed[i], boots[:, i]) for i in range(3))
        return a, b, diff, p


def _interval(value: float, boots: np.ndarray) -> Interval:
    a = (1 - LEVEL) / 2
    low, high = np.nanquantile(boots, [a, 1 - a])
    return Interval(value, float(low), float(high))


def interval_metrics(prefix: str, likes, pred, users, baselines: dict, n_boot: int, seed: int,
                     mature=None) -> dict:
    """`{prefix}_mape_ci_low/high` and, per baseline name, `{prefix}_mape_vs_{name}` (model minus
    baseline, paired on the same users) with its `_ci_low` / `_ci_high`; with a `mature` row mask
    the same for those rows (`{prefix}_mape_mature_ci_low`, `{prefix}_mape_vs_{name}_mature`, ...),
    from the same resamples of users (one pass)."""
    if n_boot <= 0 or len(likes) == 0:
        return {}
    boot = UserBootstrap(users, n_boot, seed)
    model = ape(likes, pred)
    values = [model, *(model - ape(likes, base) for base in baselines.values())]
    has_mature = mature is not None and np.asarray(mature, bool).any()
    observed, boots = boot._resampled(*values, where=mature if has_mature else None)
    out = {}
    for j, suffix in enumerate(["", "_mature"] if has_mature else [""]):
        ci, *diffs = (_interval(observed[i], boots[:, i]) for i in range(j * len(values), (j + 1) * len(values)))
        out.update({f"{prefix}_mape{suffix}_ci_low": ci.low, f"{prefix}_mape{suffix}_ci_high": ci.high})
        for name, d in zip(baselines, diffs):
            key = f"{prefix}_mape_vs_{name}{suffix}"
            out.update({key: d.value, f"{key}_ci_low": d.low, f"{key}_ci_high": d.high})
    return out


def describe(value: float, low: float, high: float, signed: bool = False, digits: int = 1) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def verdict_word(low: float, high: float) -> str:
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "not significant"
