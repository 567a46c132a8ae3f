import numpy as np
import pytest

from likepred.data import load_dataset
from likepred.evaluate import evaluate, predict_likes
from likepred.features import build_features
from likepred.models import MODELS, _import_all, build_model
from likepred.pipeline import Pipeline
from likepred.split import make_split
from likepred.targets import build_target

METADATA_MODELS = ["dense_meta", "gbm", "user_mean", "user_median", "best_constant", "lognormal_constant"]


def prepared(cfg):
    from likepred.backend import use_backend

    use_backend(cfg.backend)
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    return data, pipe, pipe.fit_transform(rows(split.train)), pipe.transform(rows(split.val)), pipe.transform(rows(split.test))


def test_registry_lists_builtins():
    _import_all()
    assert set(METADATA_MODELS) <= set(MODELS)


@pytest.mark.parametrize("model", METADATA_MODELS)
@pytest.mark.parametrize("loss", ["mape", "mae"])
def test_each_model_builds_and_trains(make_cfg, model, loss):
    cfg = make_cfg(f"model={model}", f"loss={loss}", "trainer.epochs=1", "model.max_iter=5" if model == "gbm" else "seed=0")
    data, pipe, train, val, test = prepared(cfg)
    est = build_model(cfg)
    epochs = []
    est.fit(train, val, on_epoch=lambda e, logs: epochs.append(logs))
    pred = predict_likes(est, pipe, test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()
    if model == "dense_meta":
        assert len(epochs) == 1 and {"loss", "val_loss"} <= set(epochs[0])


def test_unknown_model_lists_known(make_cfg):
    from likepred.errors import ConfigError

    cfg = make_cfg("model.name=nope")
    with pytest.raises(ConfigError, match="known: .*dense_meta"):
        build_model(cfg)


@pytest.mark.slow
def test_models_learn_beyond_user_median(make_cfg):
    """The synthetic data carries weekday/hashtag signal: a model beats the per-user median."""
    cfg = make_cfg("model=gbm", "data.n_users=150", "data.min_posts=20", "data.max_posts=40", tiny=True)
    data, pipe, train, val, test = prepared(cfg)
    est = build_model(cfg)
    est.fit(train, val)
    metrics, _ = evaluate(est, pipe, train, val, test, data.scrape_date, 7)
    median = build_model(make_cfg("model=user_median"))
    median.fit(train, val)
    median_mape = np.mean(np.abs(test.posts["likes"] - predict_likes(median, pipe, test)) / test.posts["likes"]) * 100
    assert metrics["test_mape"] < median_mape - 3
    assert metrics["test_mape"] < metrics["baseline_best_constant_mape"]
