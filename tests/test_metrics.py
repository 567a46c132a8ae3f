import math

import numpy as np
import pytest

from likepred.evaluation.metrics import all_metrics, spearman_within_user


def test_metrics_against_hand_computed():
    y = np.array([100.0, 200.0, 50.0, 400.0])
    p = np.array([110.0, 150.0, 50.0, 800.0])
    m = all_metrics(y, p, ["a", "a", "b", "b"])
    # |e|/y = 0.1, 0.25, 0, 1.0
    assert m["mape"] == pytest.approx(100 * 1.35 / 4)
    assert m["mdape"] == pytest.approx(100 * (0.1 + 0.25) / 2)
    assert m["mae"] == pytest.approx((10 + 50 + 0 + 400) / 4)
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean((np.log1p(p) - np.log1p(y)) ** 2)))
    # ranks y: 2,3,1,4 ; p: 2,3,1,4 -> perfect
    assert m["spearman"] == pytest.approx(1.0)


def test_spearman_within_user_averages_users():
    y = [1, 2, 3, 1, 2, 3]
    p = [1, 2, 3, 3, 2, 1]
    assert spearman_within_user(y, p, ["a"] * 3 + ["b"] * 3) == pytest.approx(0.0)
    assert math.isnan(spearman_within_user(y, [5] * 6, ["a"] * 3 + ["b"] * 3))


def test_spearman_matches_scipy_with_ties_and_constant_users():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    y = rng.integers(1, 30, 400).astype(float)  # many ties
    p = y + rng.normal(0, 8, 400).round()
    users = rng.integers(0, 60, 400)
    p[users == 5] = 7.0  # a user whose predictions are constant: no rho, not a zero
    assert all_metrics(y, p, users)["spearman"] == pytest.approx(spearmanr(y, p).statistic, abs=1e-12)
    rhos = [spearmanr(y[users == u], p[users == u]).statistic for u in np.unique(users)
            if (users == u).sum() >= 3 and u != 5]
    assert spearman_within_user(y, p, users) == pytest.approx(np.nanmean(rhos), abs=1e-12)
