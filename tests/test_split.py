import numpy as np
import pytest

from likepred.data import load_dataset
from likepred.errors import ConfigError
from likepred.split import make_split


@pytest.fixture
def data(make_cfg):
    return load_dataset(make_cfg().data)


def check_partition(split, n):
    allrows = np.concatenate([split.train, split.val, split.test])
    assert len(allrows) == n and len(np.unique(allrows)) == n


def test_chrono_test_is_each_users_latest(make_cfg, data):
    split = make_split(data.posts, make_cfg("split=chrono").split)
    check_partition(split, len(data.posts))
    p = data.posts
    for alias, g in p.groupby("alias"):
        ix = g.index.to_numpy()
        tr, va, te = (np.intersect1d(ix, s) for s in (split.train, split.val, split.test))
        assert len(te) == int(np.floor(len(ix) * 0.2)) and len(tr) > 0
        assert p.loc[tr, "date"].max() <= p.loc[va, "date"].min() <= p.loc[va, "date"].max() <= p.loc[te, "date"].min()


def test_user_split_holds_out_whole_users(make_cfg, data):
    split = make_split(data.posts, make_cfg("split=user").split)
    check_partition(split, len(data.posts))
    users = [set(data.posts["alias"].iloc[s]) for s in (split.train, split.val, split.test)]
    assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    assert len(users[2]) == round(40 * 0.2)


def test_random_split_is_seeded(make_cfg, data):
    a = make_split(data.posts, make_cfg("split=random", "seed=1").split)
    b = make_split(data.posts, make_cfg("split=random", "seed=1").split)
    c = make_split(data.posts, make_cfg("split=random", "seed=2").split)
    check_partition(a, len(data.posts))
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_legacy_is_file_order(make_cfg, data):
    split = make_split(data.posts, make_cfg("split=legacy").split)
    n = len(data.posts)
    assert split.test.min() == n - len(split.test) and split.train.max() < split.val.min()
    assert np.array_equal(split.train, np.arange(len(split.train)))


def test_bad_fractions_named(make_cfg, data):
    with pytest.raises(ConfigError, match="test_frac"):
        make_split(data.posts, make_cfg("split.test_frac=0.9", "split.val_frac=0.2").split)


def _chrono_by_loop(posts, cfg, fold=None, K=0):
    """The chrono split and its rolling-origin folds user by user (a plain reference for the
    columnar version in likepred.split)."""
    order = posts.assign(_pos=np.arange(len(posts))).sort_values(["alias", "date", "post_index"], kind="stable")
    parts = ([], [], [])
    for _, g in order.groupby("alias", sort=False):
        pos = g["_pos"].to_numpy()
        if fold is None:
            n = len(pos)
            n_test, n_val = int(np.floor(n * cfg.test_frac)), int(np.floor(n * cfg.val_frac))
            if n - n_test - n_val < 1:
                n_test = n_val = 0
            cuts = (pos[: n - n_test - n_val], pos[n - n_test - n_val: n - n_test], pos[n - n_test:])
        else:
            blocks = np.array_split(pos, K + 1)
            before = np.concatenate(blocks[: fold + 1])
            if len(before) == 0 or len(blocks[fold + 1]) == 0:
                continue
            n_val = min(len(before) - 1, max(int(cfg.val_frac > 0), int(round(len(before) * cfg.val_frac))))
            cuts = (before[: len(before) - n_val], before[len(before) - n_val:], blocks[fold + 1])
        for part, rows in zip(parts, cuts):
            part.append(rows)
    return [np.sort(np.concatenate(p)) for p in parts]


@pytest.mark.parametrize("fold,folds", [(None, 0), (0, 2), (1, 3), (2, 3), (4, 5)])
@pytest.mark.parametrize("val_frac", [0.0, 0.15, 0.5])
def test_chrono_split_on_columns_matches_the_per_user_loop(make_cfg, fold, folds, val_frac):
    """Users of 1 to 40 posts (some too short to hold anything out, some shorter than K + 1),
    same-day posts ordered by post_index: the same rows as cutting each timeline in turn."""
    data = load_dataset(make_cfg("data.min_posts=1", "data.n_users=80").data)
    over = [f"split.val_frac={val_frac}", f"split.test_frac={0.3 if val_frac == 0.5 else 0.2}"]
    if fold is not None:
        over += [f"split.folds={folds}", f"split.fold={fold}"]
    cfg = make_cfg("split=chrono", *over).split
    split = make_split(data.posts, cfg)
    want = _chrono_by_loop(data.posts, cfg, fold, folds)
    for got, ref in zip((split.train, split.val, split.test), want):
        np.testing.assert_array_equal(got, ref)
