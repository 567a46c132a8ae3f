import numpy as np
import pytest

from likepred.data import load_dataset
from likepred.evaluation import evaluate
from likepred.features import build_features
from likepred.models import MODELS, build_model
from likepred.pipeline import Pipeline
from likepred.split import make_split
from likepred.targets import build_target

METADATA_MODELS = ["dense_meta", "gbm", "user_mean", "user_median", "best_constant", "lognormal_constant"]


def prepared(cfg):
    from likepred.backend import use_backend

    use_backend(cfg.backend)
    data = load_dataset(cfg.data)
    split = make_split(data.posts, cfg.split)
    features = build_features(cfg.features, data)
    if features.needs_images:
        data.ensure_images()
    pipe = Pipeline(features, build_target(cfg.target))
    return (data, pipe, *pipe.prepare(data.posts, split))


def test_registry_lists_builtins():
    assert set(METADATA_MODELS) <= set(MODELS.names())


@pytest.mark.parametrize("model", METADATA_MODELS)
@pytest.mark.parametrize("loss", ["mape", "mae"])
def test_each_model_builds_and_trains(make_cfg, model, loss):
    cfg = make_cfg(f"model={model}", f"loss={loss}", "trainer.epochs=1", "model.max_iter=5" if model == "gbm" else "seed=0")
    data, pipe, train, val, test = prepared(cfg)
    est = build_model(cfg)
    epochs = []
    est.fit(train, val, on_epoch=lambda e, logs: epochs.append(logs))
    pred = pipe.predict_likes(est, test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()
    if model == "dense_meta":
        assert len(epochs) == 1 and {"loss", "val_loss"} <= set(epochs[0])


def test_unknown_model_lists_known(make_cfg):
    from likepred.errors import ConfigError

    cfg = make_cfg("model.name=nope")
    with pytest.raises(ConfigError, match="model.name='nope' is unknown.*known: .*dense_meta"):
        build_model(cfg)


@pytest.mark.slow
def test_models_learn_beyond_user_median(make_cfg):
    """The synthetic data carries weekday/hashtag signal: a model beats the per-user median."""
    cfg = make_cfg("model=gbm", "data.n_users=150", "data.min_posts=20", "data.max_posts=40", tiny=True)
    data, pipe, train, val, test = prepared(cfg)
    est = build_model(cfg)
    est.fit(train, val)
    median = build_model(make_cfg("model=user_median"))
    median.fit(train, val)
    best = build_model(cfg, "best_constant")
    best.fit(train)
    preds = {"model": pipe.predict_likes(est, test), "user_median": pipe.predict_likes(median, test),
             "best_constant": pipe.predict_likes(best, test)}
    metrics, _ = evaluate(test.posts, preds, data.scrape_date, 7)
    median_mape = metrics["baseline_user_median_mape"]
    assert metrics["test_mape"] < median_mape - 3
    assert metrics["test_mape"] < metrics["baseline_best_constant_mape"]


def test_gbm_leaves_larger_than_half_the_rows_warn_instead_of_learning_a_constant_silently(make_cfg, caplog):
    """+experiment=profiles_fast (min_samples_leaf 300) on a small folder: say so."""
    cfg = make_cfg("model=gbm", "model.min_samples_leaf=300", "model.max_iter=5")
    data, pipe, train, val, test = prepared(cfg)
    assert len(train.y) < 600
    build_model(cfg).fit(train, val)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith(f"model.min_samples_leaf=300 is over half the {len(train.y)} training rows") for w in warned)
    caplog.clear()
    build_model(make_cfg("model=gbm", "model.min_samples_leaf=5", "model.max_iter=5")).fit(train, val)
    assert not [r for r in caplog.records if "min_samples_leaf" in r.getMessage()]


def test_epoch_batch_size_doubles_until_an_epoch_fits_the_step_limit():
    from likepred.models.keras_estimator import epoch_batch_size

    assert epoch_batch_size(4_400, 64, 2000) == 64  # the default command's data: unchanged
    assert epoch_batch_size(128_000, 64, 2000) == 64 and epoch_batch_size(128_001, 64, 2000) == 128
    assert epoch_batch_size(7_000_000, 64, 2000) == 4096
    assert epoch_batch_size(7_000_000, 64, None) == 64


@pytest.mark.parametrize("max_steps", [None, 3])
def test_dense_training_takes_at_most_max_steps_per_epoch(make_cfg, caplog, max_steps):
    """The optimizer's own step count: ceil(rows / 64) without a limit, at most 3 with one."""
    cfg = make_cfg("model=dense_meta", "trainer.epochs=1", f"trainer.max_steps_per_epoch={max_steps or 'null'}")
    _, _, train, val, _ = prepared(cfg)
    est = build_model(cfg)
    with caplog.at_level("INFO", logger="likepred"):
        est.fit(train, val)
    steps = int(est.model.optimizer.iterations.numpy())
    if max_steps is None:
        assert steps == -(-len(train) // 64) > 3
    else:
        assert 0 < steps <= 3 and "training with batches of" in caplog.text


def test_a_trained_dense_net_predicts_with_numpy_as_it_is_served(make_cfg):
    """After fit a dense net predicts through its NumPy form (the packaged model's), close to
    Keras's own predictions; the form is left out of the pickle (it travels as net.npz)."""
    import pickle

    from likepred.models.numpy_net import NumpyNet

    cfg = make_cfg("model=dense_meta", "trainer.epochs=2")
    _, _, train, val, test = prepared(cfg)
    est = build_model(cfg)
    est.fit(train, val)
    assert isinstance(est.served_, NumpyNet)
    ours = est.predict(test)
    theirs = np.asarray(est.model.predict(test.inputs, verbose=0)).reshape(-1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).mean())
    assert "served_" not in pickle.loads(pickle.dumps(est)).__dict__


def test_running_several_steps_a_call_trains_the_same_weights(make_cfg, monkeypatch):
    """STEPS_PER_EXECUTION only changes how often Keras hands back (callbacks, logs): the same
    batches in the same order, so the same weights as one step a call."""
    from likepred.models import keras_estimator

    cfg = make_cfg("model=dense_meta", "trainer.epochs=2")
    _, _, train, val, _ = prepared(cfg)
    weights = {}
    for steps in (1, keras_estimator.STEPS_PER_EXECUTION):
        monkeypatch.setattr(keras_estimator, "STEPS_PER_EXECUTION", steps)
        est = build_model(cfg)
        est.fit(train, val)
        weights[steps] = [np.asarray(w) for w in est.model.get_weights()]
    one, many = weights.values()
    assert keras_estimator.STEPS_PER_EXECUTION > 1 and len(one) == len(many)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
