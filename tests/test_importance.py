"""Permutation importance over a data set (likepred/evaluation/importance.py) and its logging."""

import numpy as np
import pandas as pd
import pytest


def test_a_feature_the_prediction_uses_matters_and_one_it_ignores_does_not(tmp_path):
    from likepred.evaluation.importance import permutation_importance, write_importance

    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=(n, 4)).astype(np.float32)  # columns: strong, weak, ignored, one-hot pair
    hot = rng.integers(0, 2, n)
    x[:, 3] = hot
    meta = np.column_stack([x, 1 - hot]).astype(np.float32)
    likes = np.exp(3 + 0.8 * meta[:, 0] + 0.1 * meta[:, 1] + 0.3 * meta[:, 3])

    def predict(inputs):
        m = inputs["meta"]
        return np.exp(3 + 0.8 * m[:, 0] + 0.1 * m[:, 1] + 0.3 * m[:, 3])

    groups = [("strong", {"meta": [0]}), ("weak", {"meta": [1]}), ("ignored", {"meta": [2]}),
              ("script", {"meta": [3, 4]})]
    table = permutation_importance(predict, {"meta": meta}, likes, groups, repeats=4, seed=0)
    assert list(table["feature"]) == ["strong", "script", "weak", "ignored"]
    assert table["base_mape"].iloc[0] == pytest.approx(0.0, abs=1e-3)  # the predictor is exact
    row = table.set_index("feature")
    assert row.loc["ignored", "mape_increase"] == 0 and row.loc["ignored", "mape_increase_sd"] == 0
    assert row.loc["strong", "mape_increase"] > 10 * row.loc["weak", "mape_increase"] > 0
    assert (table["repeats"] == 4).all() and (row.loc[["strong", "weak"], "mape_increase_sd"] > 0).all()
    again = permutation_importance(predict, {"meta": meta}, likes, groups, repeats=4, seed=0)
    pd.testing.assert_frame_equal(table, again)  # seeded
    files = write_importance(table, tmp_path)
    assert [p.name for p in files] == ["permutation_importance.csv", "permutation_importance.png"]
    assert pd.read_csv(files[0])["feature"].tolist() == list(table["feature"])


def test_path_blocks_are_left_out():
    from likepred.evaluation.importance import permutation_importance

    inputs = {"meta": np.ones((5, 1), np.float32), "images": np.array(["a.jpg"] * 5, dtype=object)}
    table = permutation_importance(lambda x: np.full(5, 2.0), inputs, np.full(5, 2.0),
                                   [("one", {"meta": [0]}), ("images", {"images": [0]})], repeats=2)
    assert list(table["feature"]) == ["one"]


def test_importance_rows_are_a_seeded_sample_with_inputs_targets_and_posts_aligned():
    """evaluate.importance_max_rows: permutation importance on a sample of the val rows
    (ModelData.sample), each row's inputs, target and post kept together."""
    from likepred.pipeline import ModelData

    n = 1000
    posts = pd.DataFrame({"alias": [f"u{i % 7}" for i in range(n)], "likes": np.arange(n) + 1})
    data = ModelData({"meta": np.arange(n, dtype=np.float32)[:, None] * [1, 2]}, np.arange(n) * 10.0, posts)
    assert data.sample(None) is data and data.sample(n) is data
    rows = data.sample(100, seed=3)
    assert len(rows) == 100 and rows.inputs["meta"].shape == (100, 2)
    ix = rows.inputs["meta"][:, 0].astype(int)
    assert (np.diff(ix) > 0).all()  # in their order, no row twice
    np.testing.assert_array_equal(rows.y, ix * 10.0)
    np.testing.assert_array_equal(rows.posts["likes"], ix + 1)
    np.testing.assert_array_equal(rows.inputs["meta"][:, 1], ix * 2)
    np.testing.assert_array_equal(data.sample(100, seed=3).inputs["meta"], rows.inputs["meta"])  # seeded
    assert not np.array_equal(data.sample(100, seed=4).inputs["meta"], rows.inputs["meta"])
