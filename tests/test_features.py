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
    from likepred.app import train

    with pytest.raises(ConfigError, match="split=legacy"):
        train(make_cfg("features=metadata_leaky", "split=chrono"))


def test_unknown_extractor_is_named(make_cfg):
    with pytest.raises(ConfigError, match="features.extractors.colour.*known"):
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


RECENCY = ["+features.extractors.user_past={}", "+features.extractors.user_trend={}",
           "+features.extractors.post_age={}"]


@pytest.mark.parametrize("split", ["chrono", "user"])
def test_recency_features_ignore_test_likes(make_cfg, split):
    cfg = make_cfg(f"split={split}", *RECENCY)
    data, train, test = parts(cfg)
    fs = build_features(cfg.features, data)
    fs.fit_transform(train)
    before = fs.transform(test)["meta"]
    after = fs.transform(test.assign(likes=test["likes"] * 7 + 1))["meta"]
    np.testing.assert_array_equal(before, after)


def test_user_past_sees_only_earlier_posts(make_cfg):
    cfg = make_cfg(*RECENCY)
    data, train, _ = parts(cfg)
    x = build_features(cfg.features, data)
    a = x.fit_transform(train)["meta"]
    names = x.names_["meta"]
    alias = train["alias"].iloc[0]
    rows = train.index[train["alias"] == alias].to_numpy()
    order = rows[np.argsort(train.loc[rows, "date"].to_numpy())]
    first, last = order[0], order[-1]
    bumped = train.copy()
    bumped.loc[last, "likes"] *= 100  # the user's latest train post
    b = build_features(cfg.features, data).fit_transform(bumped)["meta"]
    col = names.index("past_log_mean")
    second = order[1]
    # the second post's past is the first post alone, whatever later posts got
    assert a[second, col] == pytest.approx(np.log(train.loc[first, "likes"]), rel=1e-5)
    assert a[second, col] == b[second, col]
    assert a[first, names.index("past_log_n")] == 0  # the first post has no past
    assert b[order[-2], col] == a[order[-2], col] and b[last, col] == a[last, col]
