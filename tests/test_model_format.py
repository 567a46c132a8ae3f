"""The packaged model's non-executable formats: the state format, the GBM's arrays, the dense net's weights."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from likepred.errors import ConfigError
from likepred.serving import state
from likepred.userstats import UserStats


def test_state_round_trips_fitted_tables(tmp_path):
    posts = pd.DataFrame({
        "alias": pd.array(["a", "b", None], dtype="string"), "likes": [1.0, np.nan, 3.0],
        "date": pd.to_datetime(["2017-01-01T10:00", "2018-02-03T00:00", "2019-12-31T23:59"], utc=True),
        "tags": [["x"], [], ["y", "z"]], "n": np.array([1, 2, 3], dtype=np.int64),
    }, index=pd.Index(["p", "q", "r"], name="post"))
    from collections import Counter, defaultdict

    stats = UserStats()
    stats.extra = {"frame": posts, "series": posts["likes"], ("k", 1): {1, 2}, "nan": float("nan"),
                   "when": pd.Timestamp("2019-05-01", tz="UTC"), "counts": Counter("aab"),
                   "groups": defaultdict(list, {"a": [1]}), "cfg": OmegaConf.create({"x": {"y": [1, 2]}}),
                   "scalar": np.float32(2.5), "range": pd.RangeIndex(0, 5, 2)}
    state.dump(stats, tmp_path)
    back = state.load(tmp_path)
    assert type(back) is UserStats
    pd.testing.assert_frame_equal(back.extra["frame"], posts)
    pd.testing.assert_series_equal(back.extra["series"], posts["likes"])
    assert back.extra[("k", 1)] == {1, 2} and np.isnan(back.extra["nan"])
    assert back.extra["when"] == stats.extra["when"] and back.extra["counts"] == Counter("aab")
    assert back.extra["groups"]["new"] == [] and back.extra["cfg"].x.y[1] == 2
    assert back.extra["scalar"].dtype == np.float32 and list(back.extra["range"]) == [0, 2, 4]


@pytest.mark.parametrize("node", [
    {"t": "obj", "m": "os", "n": "system", "s": {}},  # not likepred
    {"t": "func", "m": "likepred.files", "n": "os.system"},  # reached through a likepred module
    {"t": "obj", "m": "likepred.__main__", "n": "main", "s": {}},  # a module that runs on import
    {"t": "func", "m": "likepred.serving.state", "n": "Unsupported.__init__.__globals__"},
    {"t": "obj", "m": "likepred.errors", "n": "DataError", "s": {}},  # a class with its own __new__
])
def test_state_refuses_references_outside_likepreds_own_classes(tmp_path, node):
    (tmp_path / state.STATE).write_text(json.dumps({"format": state.FORMAT, "root": node}))
    np.savez(tmp_path / state.ARRAYS)
    with pytest.raises(ConfigError, match="not a readable likepred model state"):
        state.load(tmp_path)


def test_state_refuses_to_write_what_it_cannot_read_back(tmp_path):
    class Foreign:  # defined outside likepred
        pass

    stats = UserStats()
    stats.model = Foreign()
    with pytest.raises(state.Unsupported, match=r"root.model: .*Foreign"):
        state.dump(stats, tmp_path)
    stats.model = [stats]
    with pytest.raises(state.Unsupported, match=r"root.model\[0\]: refers back to itself"):
        state.dump(stats, tmp_path)


def test_state_arrays_are_read_without_pickle(tmp_path):
    (tmp_path / state.STATE).write_text(json.dumps({"format": state.FORMAT, "root": {"t": "nd", "a": "a0"}}))
    np.savez(tmp_path / state.ARRAYS, a0=np.array([{"x": 1}], dtype=object))  # an object array is a pickle
    with pytest.raises(ConfigError, match="allow_pickle"):
        state.load(tmp_path)


def test_forest_predicts_as_scikit_learn(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from likepred.models.forest import Forest

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values follow each split's learned side
    y = np.exp(np.nan_to_num(X[:, 0]) * 0.5 + np.nan_to_num(X[:, 1])) * 100 + rng.random(400)
    for loss in ("absolute_error", "squared_error"):
        model = HistGradientBoostingRegressor(loss=loss, max_iter=30, random_state=0).fit(X, y)
        Forest.from_sklearn(model).save(tmp_path / "forest.npz")
        forest = Forest.load(tmp_path / "forest.npz")
        Xt = rng.normal(size=(300, 6)).astype(np.float32)
        Xt[::7, 2] = np.nan
        np.testing.assert_allclose(forest.predict(Xt), model.predict(Xt), rtol=1e-12)
        np.testing.assert_allclose(forest.predict(Xt[:1]), model.predict(Xt[:1]), rtol=1e-12)


@pytest.mark.slow
def test_numpy_net_matches_keras_and_refuses_other_layers(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    from omegaconf import OmegaConf

    from likepred.models.labels_dense import labels_dense
    from likepred.models.numpy_net import NotDense, NumpyNet

    rng = np.random.default_rng(1)
    specs = {"labels": (7,), "meta": (4,)}
    stats = {k: (rng.normal(size=s[0]), rng.random(s[0]) + 0.5) for k, s in specs.items()}
    cfg = OmegaConf.create({"layers": [8, 4], "l1": [0.01, 0.0], "dropout": [0.2, 0.0], "activation": "relu",
                            "output_activation": "exponential"})
    model = labels_dense(specs, cfg, stats)  # two blocks, Concatenate, Dropout, L1 activity, exp output
    net = NumpyNet.from_keras(model)
    net.save(tmp_path)
    x = {k: rng.normal(size=(50, s[0])).astype(np.float32) for k, s in specs.items()}
    np.testing.assert_allclose(NumpyNet.load(tmp_path).predict(x).reshape(-1),
                               np.asarray(model.predict(x, verbose=0)).reshape(-1), rtol=1e-5)

    inp = keras.Input((4, 4, 1), name="image")
    conv = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))))
    with pytest.raises(NotDense, match="Conv2D"):
        NumpyNet.from_keras(conv)


def test_state_keeps_the_fitted_scikit_learn_parts_of_extractors(tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.random.default_rng(2).normal(size=(60, 5))
    stats = UserStats()
    stats.pca_, stats.kmeans_ = PCA(3).fit(x), KMeans(4, n_init=2, random_state=0).fit(x)
    state.dump(stats, tmp_path)
    back = state.load(tmp_path)
    np.testing.assert_array_equal(back.pca_.transform(x), stats.pca_.transform(x))
    np.testing.assert_array_equal(back.kmeans_.predict(x), stats.kmeans_.predict(x))


def test_a_damaged_state_is_one_clear_error(tmp_path):
    stats = UserStats()
    stats.x = np.arange(1000)
    state.dump(stats, tmp_path)
    doc = json.loads((tmp_path / state.STATE).read_text())
    (tmp_path / state.STATE).write_text(json.dumps(doc | {"root": doc["root"] | {"m": "likepred.no_such_module"}}))
    with pytest.raises(ConfigError, match="not a readable likepred model state"):
        state.load(tmp_path)
    (tmp_path / state.STATE).write_text(json.dumps(doc))
    (tmp_path / state.ARRAYS).write_bytes((tmp_path / state.ARRAYS).read_bytes()[:30])  # a cut zip
    with pytest.raises(ConfigError, match="not a readable likepred model state"):
        state.load(tmp_path)


def test_saving_checks_pins_by_name_and_puts_mlflows_module_map_back():
    from mlflow.utils import requirements_utils as ru

    from likepred.serving.pyfunc import requirements, saving

    ru._MODULES_TO_PACKAGES = ru._PACKAGES_TO_MODULES = None
    with saving():
        # MLflow's check still finds a pin this environment does not meet, without the module scan
        assert ru._check_requirement_satisfied("numpy==0.0.1").installed_version == np.__version__
        assert all(ru._check_requirement_satisfied(r) is None for r in requirements(_NoExtras(), None))
        assert ru._MODULES_TO_PACKAGES == {}
    assert ru._MODULES_TO_PACKAGES is None  # inference elsewhere in the process maps modules again


class _NoExtras:
    def requirements(self, backend):
        return []
