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
