"""Targets (likepred/targets.py): each carries its inverse, so every metric is on likes."""

import numpy as np
import pandas as pd


def test_likes_per_follower_target(make_cfg):
    from likepred.targets import build_target

    t = build_target(make_cfg("target=likes_per_follower").target)
    posts = pd.DataFrame({"likes": [50, 10, 3], "followers": [1000, 200, 0]})
    y = t.fit_transform(posts)
    assert np.allclose(y, [0.05, 0.05, 3.0])  # no followers: divided by 1
    assert np.allclose(t.inverse(y, posts), posts["likes"])
