import numpy as np
import pandas as pd
import pytest

from likepred.data import load_dataset
from likepred.errors import ConfigError
from likepred.features import build_features
from likepred.pipeline import Pipeline
from likepred.split import make_split
from likepred.targets import build_target
from likepred.userstats import UserStats, best_constant


def parts(cfg):
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    return data, rows(split.train), rows(split.test)


@pytest.mark.parametrize("split", ["chrono", "user", "random"])
@pytest.mark.parametrize("target", ["positivity", "log_likes"])
def test_features_ignore_test_likes(make_cfg, split, target):
    """Changing the likes of test rows must not move any feature (of any row) or the fit."""
    cfg = make_cfg(f"split={split}", f"target={target}")
    data, train, test = parts(cfg)
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    tr = pipe.fit_transform(train)
    te = pipe.transform(test)
    shuffled = test.assign(likes=np.random.default_rng(0).integers(1, 10**6, len(test)))
    te2 = pipe.transform(shuffled)
    np.testing.assert_array_equal(te.inputs["meta"], te2.inputs["meta"])
    # and the target's inverse (positivity's base) does not read test likes either
    np.testing.assert_allclose(pipe.to_likes(np.ones(len(test)), test), pipe.to_likes(np.ones(len(test)), shuffled))
    # a pipeline fitted on the same train rows gives train rows the same features
    pipe2 = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    np.testing.assert_array_equal(pipe2.fit_transform(train).inputs["meta"], tr.inputs["meta"])


def test_train_rows_get_leave_one_out_history(make_cfg):
    cfg = make_cfg()
    data, train, _ = parts(cfg)
    fs = build_features(cfg.features, data)
    x = fs.fit_transform(train)["meta"]
    col = fs.names_["meta"].index("user_log_mean")
    alias = train["alias"].iloc[0]
    rows = np.flatnonzero(train["alias"].to_numpy() == alias)
    logs = np.log(train["likes"].to_numpy(float))[rows]
    for k, r in enumerate(rows):
        assert x[r, col] == pytest.approx(np.delete(logs, k).mean(), rel=1e-5)
    # changing one train row's likes moves the others' history but not its own
    bumped = train.copy()
    bumped.loc[rows[0], "likes"] *= 50
    x2 = build_features(cfg.features, data).fit_transform(bumped)["meta"]
    assert x2[rows[0], col] == pytest.approx(x[rows[0], col])
    assert x2[rows[1], col] > x[rows[1], col]


def test_loo_table_is_each_rows_stats_without_itself():
    rng = np.random.default_rng(1)  # users of 1, 2, 3 and 9 posts, tied likes included
    alias = np.repeat(["a", "b", "c", "d"], [1, 2, 3, 9])
    train = pd.DataFrame({"alias": alias, "likes": rng.integers(5, 40, len(alias)).astype(float),
                          "followers": 100, "following": 10, "posts_count": 50})
    stats = UserStats().fit(train)
    got = stats.loo_table(train)
    for i in np.flatnonzero(alias != "a"):
        others = train["likes"].to_numpy()[(alias == alias[i]) & (np.arange(len(alias)) != i)]
        want = {"n": len(others), "mean": others.mean(), "median": np.median(others),
                "log_mean": np.log(others).mean(), "best_constant": best_constant(others)}
        if len(others) > 1:
            want["log_std"] = np.log(others).std(ddof=1)
        assert got.iloc[i][list(want)].to_numpy(float) == pytest.approx(list(want.values()), rel=1e-12)
    from likepred.userstats import _loo_stats

    many = rng.integers(5, 400, 50).astype(float)  # laid out a few rows at a time: the same table
    np.testing.assert_array_equal(_loo_stats(many, cells=120), _loo_stats(many))


def test_hashtag_score_from_ranking_file(make_cfg, tmp_path):
    (tmp_path / "top.txt").write_text("love instagood photooftheday")
    cfg = make_cfg(f"features.extractors.hashtag_score.ranking={tmp_path / 'top.txt'}",
                   "features.extractors.hashtag_score.top_k=3")
    fs = build_features(cfg.features)
    posts = pd.DataFrame({"tags": [["love", "nope"], ["photooftheday", "instagood"], []]})
    ex = fs.extractors[[e.name for e in fs.extractors].index("hashtag_score")]
    got = ex.fit(posts).transform(posts)["log_hashtag_score"].to_numpy()
    np.testing.assert_allclose(got, np.log1p([3 - 0, (3 - 2) + (3 - 1), 0]))


def test_leaky_features_need_legacy_split(make_cfg):
    from likepred.checks import check

    with pytest.raises(ConfigError, match="split=legacy"):
        check(make_cfg("features=metadata_leaky", "split=chrono"))
    check(make_cfg("features=metadata_leaky", "split=legacy"))


def test_unknown_extractor_is_named(make_cfg):
    with pytest.raises(ConfigError, match="features.extractors='colour' is unknown.*known"):
        build_features(make_cfg("+features.extractors.colour={}").features)


def test_userstats_cold_start_and_best_constant():
    train = pd.DataFrame({"alias": [u for u in "abcdefg" for _ in range(3)],
                          "likes": [10, 20, 40, 100, 110, 90, 5, 5, 6, 50, 60, 70, 1000, 900, 1100,
                                    300, 200, 250, 30, 25, 20],
                          "followers": [f for f in (100, 1000, 50, 500, 10000, 3000, 200) for _ in range(3)],
                          "following": 10, "posts_count": 5})
    s = UserStats().fit(train)
    t = s.table(pd.DataFrame({"alias": ["a", "zz"], "followers": [100, 10000], "following": 10, "posts_count": 5}))
    assert t.loc[0, "mean"] == pytest.approx(70 / 3) and t.loc[0, "n"] == 3
    assert t.loc[1, "n"] == 0 and 300 < t.loc[1, "median"] < 3000  # regressed on followers
    # weights 1/y = .1, .05, .025: half the total (.0875) is reached at 10; MAPE(10)=41.7% < MAPE(20)=50%
    assert best_constant(np.array([10.0, 20.0, 40.0])) == 10.0
    y = np.random.default_rng(0).lognormal(5, 1, 25)
    grid = np.linspace(y.min(), y.max(), 5000)
    brute = grid[np.argmin([np.mean(np.abs(y - c) / y) for c in grid])]
    c = best_constant(y)
    assert np.mean(np.abs(y - c) / y) <= np.mean(np.abs(y - brute) / y) + 1e-12


def test_lognormal_constant_is_the_best_constant_of_a_lognormal_and_shrinks_small_users():
    rng = np.random.default_rng(1)
    big = rng.lognormal(6, 0.7, 4000)
    small = np.array([100.0, 100.0, 100.0])  # no spread of its own: it borrows the typical user's
    train = pd.DataFrame({"alias": ["big"] * len(big) + ["small"] * 3, "likes": np.r_[big, small],
                          "followers": 1000, "following": 10, "posts_count": 5})
    s = UserStats().fit(train)
    t = s.table_
    # many posts: the prior hardly matters, and exp(mu - sigma^2) is the empirical MAPE optimum
    assert t.loc["big", "lognormal"] == pytest.approx(best_constant(big), rel=0.05)
    assert t.loc["big", "lognormal"] == pytest.approx(np.exp(6 - 0.49), rel=0.05)
    var0 = s.global_log_std_ ** 2
    assert t.loc["small", "lognormal"] == pytest.approx(100 * np.exp(-(10 * var0) / (2 + 10)))


def test_positivity_divides_train_rows_by_their_users_stat_without_themselves(make_cfg):
    cfg = make_cfg("target.base=best_constant")
    _, train, _ = parts(cfg)
    target = build_target(cfg.target)
    y = target.fit_transform(train)
    alias = train["alias"].iloc[0]
    rows = np.flatnonzero(train["alias"].to_numpy() == alias)
    likes = train["likes"].to_numpy(float)[rows]
    for k, r in enumerate(rows[:5]):
        assert y[r] == pytest.approx(likes[k] / best_constant(np.delete(likes, k)), rel=1e-5)


@pytest.mark.parametrize("split", ["chrono", "user"])
def test_user_habits_see_every_earlier_known_post_and_never_likes(make_cfg, split):
    cfg = make_cfg(f"split={split}", "features=text_habits")
    data, train, test = parts(cfg)
    fs = build_features({"extractors": {"user_habits": {}}}, data)
    fs.fit_transform(train)
    names = fs.names_["meta"]
    x = fs.transform(test)["meta"]
    alias = test["alias"].iloc[0]
    rows = test[test["alias"] == alias].sort_values("date", kind="stable").index
    first, last = rows[0], rows[-1]
    # every post of the user dated before this one (val and earlier test posts too), plus itself
    mine = data.posts[data.posts["alias"] == alias]
    n_before = int((mine["date"] < test.loc[first, "date"]).sum())
    assert x[first, names.index("habit_log_n")] == pytest.approx(np.log1p(n_before + 1))
    # a later post's tags move its own habits, never an earlier post's
    later = test.copy()
    later.at[last, "tags"] = [f"t{i}" for i in range(40)]
    x2 = fs.transform(later)["meta"]
    col = names.index("habit_n_tags")
    np.testing.assert_array_equal(np.delete(x2, last, axis=0), np.delete(x, last, axis=0))
    assert x2[last, col] > x[last, col]
    # likes are never read
    np.testing.assert_array_equal(fs.transform(test.assign(likes=1))["meta"], x)
    assert np.isfinite(x).all()


def test_user_habits_of_a_post_do_not_depend_on_its_batch(make_cfg):
    cfg = make_cfg("features=text_habits")
    data, train, test = parts(cfg)
    fs = build_features({"extractors": {"user_habits": {}}}, data)
    whole = fs.fit_transform(train)["meta"]
    np.testing.assert_array_equal(fs.transform(train)["meta"], whole)  # training rows = serving rows
    batch = fs.transform(test)["meta"]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(test), 10, replace=False):
        alone = fs.transform(test.iloc[[i]])["meta"]  # one post, as the predict command sends it
        np.testing.assert_array_equal(alone[0], batch[i])
    shuffled = rng.permutation(len(test))
    np.testing.assert_array_equal(fs.transform(test.iloc[shuffled])["meta"], batch[shuffled])


def test_cold_start_split_describes_train_rows_as_unseen_users(make_cfg):
    cfg = make_cfg("split=user", "target.base=best_constant")
    assert cfg.split.train_as_unseen is False  # the default; this test turns it on
    data, train, _ = parts(cfg)
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target), train_as_unseen=True)
    d = pipe.fit_transform(train)
    names = pipe.names["meta"]
    cold = UserStats().fit(train).cold(train)
    x = d.inputs["meta"]
    assert (x[:, names.index("user_log_n")] == 0).all()
    np.testing.assert_allclose(x[:, names.index("user_log_mean")], cold["log_mean"], rtol=1e-5)
    np.testing.assert_allclose(d.y, train["likes"] / cold["best_constant"], rtol=1e-5)
    assert d.posts["alias"].equals(train["alias"])  # the rows themselves keep their users
    # with the flag off, train rows keep their own (leave-one-out) history
    seen = Pipeline(build_features(cfg.features, data), build_target(cfg.target)).fit_transform(train)
    assert (seen.inputs["meta"][:, names.index("user_log_n")] > 0).mean() > 0.9


def test_unknown_positivity_base_is_named(make_cfg):
    with pytest.raises(ConfigError, match="target.base='mode'.*lognormal"):
        build_target(make_cfg("target.base=mode").target)


def test_profiles_best_takes_another_target_cleanly(make_cfg):
    assert make_cfg("+experiment=profiles_best", "data.path=x", tiny=False).target.base == "lognormal"
    cfg = make_cfg("+experiment=profiles_best", "data.path=x", "target=log_likes", tiny=False)
    assert cfg.target.name == "log_likes" and "base" not in cfg.target


def test_hashtag_score_matches_tags_written_with_hash(tmp_path):
    """Scraped tags keep their '#' (data=profiles): they must still match the ranking list."""
    from likepred.features.metadata import HashtagScore

    ranking = tmp_path / "top.txt"
    ranking.write_text("love instagood photooftheday\n")
    posts = pd.DataFrame({"tags": [["#love"], ["love"], ["#Instagood", "#nope"], []]})
    s = HashtagScore(str(ranking)).fit(posts).transform(posts)["log_hashtag_score"].to_numpy()
    assert s[0] == s[1] == np.log1p(10000) and s[2] == np.log1p(9999) and s[3] == 0
    by_freq = HashtagScore().fit(posts).transform(posts)["log_hashtag_score"].to_numpy()
    assert by_freq[0] == by_freq[1] > 0  # '#love' and 'love' are one tag


def test_user_habits_of_no_rows_and_a_split_without_val_rows(make_cfg):
    """A split with no val rows (split.val_frac=0) transforms an empty frame: no crash, the columns."""
    cfg = make_cfg("split.val_frac=0", "+features.extractors.user_habits={}")
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    assert len(split.val) == 0 and len(split.train) > 0
    fs = build_features({"extractors": {"user_habits": {}}}, data)
    fs.fit_transform(data.posts.iloc[split.train].reset_index(drop=True))
    none = fs.transform(data.posts.iloc[split.val].reset_index(drop=True))["meta"]
    assert none.shape == (0, len(fs.names_["meta"])) and len(fs.names_["meta"]) > 2
    # the default feature set with the habits added, and the target, prepare the three parts
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    tr, va, te = pipe.prepare(data.posts, split)
    assert "habit_log_n" in pipe.names["meta"]
    assert va.inputs["meta"].shape == (0, tr.inputs["meta"].shape[1]) and len(va.y) == 0
    assert np.isfinite(te.inputs["meta"]).all()


def test_fitted_features_forget_the_table_of_every_post_and_transform_the_same(make_cfg):
    """`forget_posts` (train drops the full table once the rows are split and fitted): no extractor
    holds every post any more, and transforms give what they gave before."""
    cfg = make_cfg("+features.extractors.user_habits={}")  # fits on every post; no extra needed
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    features = build_features(cfg.features, data)
    pipe = Pipeline(features, build_target(cfg.target))
    _, _, test = pipe.prepare(data.posts, split)
    assert any(e.context.all_posts is not None for e in features.extractors)  # user_habits fits on them
    features.forget_posts()
    assert all(e.context.all_posts is None for e in features.extractors)
    again = features.transform(test.posts)
    for block, x in test.inputs.items():
        np.testing.assert_array_equal(again[block], x)


def test_fitted_user_stats_pickle_without_the_train_rows(make_cfg):
    """UserStats travels in the packaged pipeline: after its leave-one-out table was made (and
    shared through UserStats.of) it pickles, without the train rows' likes, and predicts the same."""
    import pickle

    cfg = make_cfg()
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    train = data.posts.iloc[split.train].reset_index(drop=True)
    stats = UserStats.of(train)
    assert UserStats.of(train) is stats and stats.loo_table(train) is stats.loo_table(train)
    back = pickle.loads(pickle.dumps(stats))
    assert not hasattr(back, "_likes") and not hasattr(back, "_groups")
    pd.testing.assert_frame_equal(back.table(data.posts), stats.table(data.posts))
