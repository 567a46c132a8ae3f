"""Intervals from a bootstrap over users, and cross-validation folds."""

import numpy as np
import pandas as pd
import pytest

from likepred.data import load_dataset
from likepred.errors import ConfigError
from likepred.evaluation import evaluate
from likepred.evaluation.intervals import UserBootstrap, interval_metrics, resample_users
from likepred.evaluation.summary import interval_line
from likepred.split import make_split


def toy(n_users=12, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_users)
    users = np.repeat([f"u{i}" for i in range(n_users)], sizes)
    likes = rng.integers(1, 500, len(users)).astype(float)
    a = likes * rng.lognormal(0, 0.5, len(users))
    b = likes * rng.lognormal(0.1, 0.6, len(users))
    return users, likes, a, b


def slow_reference(users, likes, a, b, n_boot, seed, mask=None):
    """A plain loop: for each resample, draw users with replacement (the same draws as the fast code:
    its user indices, one by one), stack their posts (those in `mask`), compute both MAPEs."""
    mask = np.ones(len(users), bool) if mask is None else mask
    order = list(dict.fromkeys(users))  # first-appearance order, as the fast code codes users
    drawn = resample_users(len(order), n_boot, seed)
    ma, diff = [], []
    for row in drawn:
        ya, yb, yy = [], [], []
        for code in row:
            for i in range(len(users)):
                if users[i] == order[code] and mask[i]:
                    yy.append(likes[i]), ya.append(a[i]), yb.append(b[i])
        yy, ya, yb = map(np.array, (yy, ya, yb))
        if len(yy) == 0:  # no such rows drawn: that resample says nothing
            ma.append(np.nan), diff.append(np.nan)
            continue
        mape_a = 100 * np.mean(np.abs(yy - ya) / yy)
        mape_b = 100 * np.mean(np.abs(yy - yb) / yy)
        ma.append(mape_a), diff.append(mape_a - mape_b)
    return np.nanquantile(ma, [0.025, 0.975]), np.nanquantile(diff, [0.025, 0.975])


def test_bootstrap_matches_a_slow_loop_over_users():
    users, likes, a, b = toy()
    boot = UserBootstrap(users, 200, seed=3)
    ci, d = boot.mape(likes, a), boot.diff(likes, a, b)
    ref_ci, ref_d = slow_reference(users, likes, a, b, 200, 3)
    np.testing.assert_allclose([ci.low, ci.high], ref_ci, rtol=1e-10)
    np.testing.assert_allclose([d.low, d.high], ref_d, rtol=1e-10)
    assert ci.low < ci.value < ci.high
    assert ci.value == pytest.approx(100 * np.mean(np.abs(likes - a) / likes))


def test_resamples_are_over_users_seeded_and_paired():
    drawn = resample_users(7, 50, seed=1)
    assert drawn.shape == (50, 7) and drawn.min() == 0 and drawn.max() == 6
    assert len({tuple(r) for r in drawn}) > 45  # rows differ: each is its own resample
    np.testing.assert_array_equal(drawn, resample_users(7, 50, seed=1))
    assert not np.array_equal(drawn, resample_users(7, 50, seed=2))
    np.testing.assert_array_equal(resample_users(7, 120, 1)[60:110], resample_users(7, 120, 1, slice(60, 110)))
    # with replacement and uniform: over many resamples each user is drawn about equally often, and a
    # resample usually repeats some users (P(all 7 distinct) = 7!/7^7 ~ 0.6%)
    many = resample_users(7, 2000, seed=3)
    np.testing.assert_allclose(np.bincount(many.ravel(), minlength=7) / many.size, 1 / 7, atol=0.01)
    assert np.mean([len(set(r)) < 7 for r in many]) > 0.98
    users, likes, a, _ = toy()
    same = UserBootstrap(users, 300, 0).diff(likes, a, a)  # paired: a model against itself is exactly 0
    assert same.value == same.low == same.high == 0
    # a clearly better predictor is significantly better; a model against a noisy copy of itself is a tie
    better = UserBootstrap(users, 300, 0).diff(likes, likes * 1.01, a)
    assert better.high < 0 and better.significant
    a_ci, b_ci, d, p = UserBootstrap(users, 300, 0).compare(likes, likes * 1.01, a)
    assert p < 0.01 and d.value == pytest.approx(a_ci.value - b_ci.value) and (d.low, d.high) == (better.low, better.high)
    assert UserBootstrap(users, 300, 0).compare(likes, a, a)[3] == 1.0


def test_interval_metrics_names_and_summary_line():
    users, likes, a, b = toy(30)
    m = interval_metrics("test", likes, a, users, {"best_constant": b, "user_mean": b}, 500, 0)
    assert {"test_mape_ci_low", "test_mape_ci_high", "test_mape_vs_best_constant",
            "test_mape_vs_best_constant_ci_low", "test_mape_vs_best_constant_ci_high",
            "test_mape_vs_user_mean_ci_high"} <= set(m)
    m["test_mape"] = 100 * np.mean(np.abs(likes - a) / likes)
    line = interval_line(m)
    assert line.startswith(f"test MAPE {m['test_mape']:.1f} [") and "vs best constant" in line
    lo, hi = m["test_mape_vs_best_constant_ci_low"], m["test_mape_vs_best_constant_ci_high"]
    word = "not significant" if lo <= 0 <= hi else "better" if hi < 0 else "worse"
    assert line.split("; ")[1].endswith(word)
    assert interval_metrics("test", likes, a, users, {}, 0, 0) == {}  # bootstrap=0: off


def test_mature_rows_use_the_same_user_resamples_as_a_slow_loop():
    users, likes, a, b = toy(15, seed=4)
    mature = np.random.default_rng(1).random(len(users)) < 0.7
    m = interval_metrics("test", likes, a, users, {"best_constant": b}, 200, 5, mature)
    ref_ci, ref_d = slow_reference(users, likes, a, b, 200, 5, mature)
    np.testing.assert_allclose([m["test_mape_mature_ci_low"], m["test_mape_mature_ci_high"]], ref_ci, rtol=1e-10)
    np.testing.assert_allclose([m["test_mape_vs_best_constant_mature_ci_low"],
                                m["test_mape_vs_best_constant_mature_ci_high"]], ref_d, rtol=1e-10)
    ref_ci, _ = slow_reference(users, likes, a, b, 200, 5)
    np.testing.assert_allclose([m["test_mape_ci_low"], m["test_mape_ci_high"]], ref_ci, rtol=1e-10)


def test_evaluate_logs_intervals_for_all_and_mature_rows():
    users, likes, a, b = toy(20)
    posts = pd.DataFrame({"alias": users, "post_index": np.arange(len(users)), "likes": likes,
                          "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(users)), "D")})
    metrics, _ = evaluate(posts, {"model": a, "best_constant": b, "user_mean": b}, posts["date"].max(), 7,
                          bootstrap=200, seed=0)
    assert metrics["test_mape_ci_low"] <= metrics["test_mape"] <= metrics["test_mape_ci_high"]
    assert metrics["test_mape_vs_user_mean"] == pytest.approx(metrics["mape_vs_baseline"])
    assert "test_mape_mature_ci_low" in metrics and "test_mape_vs_best_constant_mature_ci_high" in metrics
    off, _ = evaluate(posts, {"model": a, "best_constant": b}, posts["date"].max(), 7)
    assert not any("_ci_" in k for k in off)


# ---- folds

@pytest.fixture
def data(make_cfg):
    return load_dataset(make_cfg().data)


def folds(make_cfg, data, kind, k=3, *extra):
    return [make_split(data.posts, make_cfg(f"split={kind}", f"split.folds={k}", f"split.fold={i}", *extra).split)
            for i in range(k)]


@pytest.mark.parametrize("kind", ["user", "random", "chrono"])
def test_folds_test_every_user_or_post_exactly_once(make_cfg, data, kind):
    splits = folds(make_cfg, data, kind)
    posts = data.posts
    tested = np.concatenate([s.test for s in splits])
    assert len(tested) == len(np.unique(tested))  # no row tested twice
    for s in splits:
        parts = [s.train, s.val, s.test]
        assert len(np.unique(np.concatenate(parts))) == sum(map(len, parts))  # disjoint within a fold
        assert len(s.train) and len(s.test)
    if kind == "random":
        assert len(tested) == len(posts)
    if kind == "user":
        assert sorted(posts["alias"].iloc[tested].unique()) == sorted(posts["alias"].unique())
        assert len(tested) == len(posts)
        for s in splits:
            u = [set(posts["alias"].iloc[ix]) for ix in (s.train, s.val, s.test)]
            assert not (u[0] & u[2]) and not (u[1] & u[2]) and not (u[0] & u[1]) and u[1]
    if kind == "chrono":
        for s in splits:  # train < val < test in each user's time; nothing after the test block used
            for alias, g in posts.groupby("alias"):
                ix = g.index.to_numpy()
                tr, va, te = (np.intersect1d(ix, p) for p in (s.train, s.val, s.test))
                if len(te):
                    last = max(posts.loc[tr, "date"].max(), posts.loc[va, "date"].max() if len(va) else posts.loc[tr, "date"].max())
                    assert last <= posts.loc[te, "date"].min()
        # every post after each user's first block is tested once
        first_blocks = sum(len(np.array_split(np.arange(n), 4)[0]) for n in posts.groupby("alias").size())
        assert len(tested) == len(posts) - first_blocks


def test_fold_needs_folds_and_a_kind_with_folds(make_cfg, data):
    with pytest.raises(ConfigError, match="split.folds"):
        make_split(data.posts, make_cfg("split.fold=3", "split.folds=3").split)
    with pytest.raises(ConfigError, match="has no folds"):
        make_split(data.posts, make_cfg("split=legacy", "+split.folds=3", "+split.fold=0").split)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["chrono", "user"])
def test_fold_predictions_ignore_test_fold_and_later_likes(make_cfg, data, kind):
    """Each fold refits on its own train rows: changing the likes of every row outside the
    fold's train and val rows (its test rows, later posts, other folds' users) moves no prediction."""
    from likepred.features import FeatureContext, build_features
    from likepred.models import build_model
    from likepred.pipeline import Pipeline
    from likepred.targets import build_target

    cfg = make_cfg(f"split={kind}", "split.folds=3", "split.fold=1", "model=gbm")
    split = make_split(data.posts, cfg.split)

    def predict(posts):
        pipe = Pipeline(build_features(cfg.features, FeatureContext.of(data)), build_target(cfg.target))
        tr, va, te = pipe.prepare(posts, split)
        out = {}
        for name in ("gbm", "user_mean"):
            model = build_model(cfg, name)
            model.fit(tr, va)
            out[name] = pipe.predict_likes(model, te)
        return out, te.inputs["meta"]

    before, meta = predict(data.posts)
    seen = np.concatenate([split.train, split.val])
    changed = data.posts.copy()
    other = np.setdiff1d(np.arange(len(changed)), seen)
    changed.loc[changed.index[other], "likes"] = np.random.default_rng(0).integers(1, 10**6, len(other))
    after, meta2 = predict(changed)
    np.testing.assert_array_equal(meta, meta2)
    for name in before:
        np.testing.assert_allclose(before[name], after[name], rtol=1e-9, err_msg=name)
