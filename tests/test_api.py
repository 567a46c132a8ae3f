"""likepred.api: compose, run, runs, load, on tiny synthetic data."""

import numpy as np
import pytest

from conftest import TINY


def test_compose_is_the_command_lines_config(cache_dir):
    from likepred import api

    cfg = api.compose(["model=gbm", "model.learning_rate=0.2"])
    assert cfg.model.name == "gbm" and cfg.model.learning_rate == 0.2 and cfg.plugins == []
    with pytest.raises(Exception, match="learning_rat"):
        api.compose(["model.learning_rat=0.2"])


@pytest.mark.slow
def test_run_then_runs_and_load(tmp_path, cache_dir):
    from likepred import api
    from likepred.data import load_dataset
    from likepred.errors import ConfigError

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    small = [t for t in TINY if not t.startswith("tracking.")] + ["tracking.experiment=api"]
    first = api.run(["model=user_median", *small], tracking_uri=uri)
    second = api.run(["model=gbm", *small], tracking_uri=uri)
    assert first.metrics["test_mape"] > 0 and first.run_id != second.run_id
    assert first.config.model.name == "user_median"
    low, high = second.intervals["test_mape"]  # logged with the run: a bootstrap over users
    assert low < second.metrics["test_mape"] < high
    paired = api.compare(second.run_id, first.run_id, tracking_uri=uri)  # same data, same test rows
    assert paired["diff"].value == pytest.approx(second.metrics["test_mape"] - first.metrics["test_mape"])
    assert paired["diff"].low < paired["diff"].value < paired["diff"].high and 0 <= paired["p"] <= 1

    table = api.runs("api", tracking_uri=uri)
    assert len(table) == 2 and set(table["run_id"]) == {first.run_id, second.run_id}
    row = table.set_index("run_id").loc[second.run_id]
    assert row["params.model.name"] == "gbm" and row["metrics.test_mape"] == pytest.approx(second.metrics["test_mape"])
    assert row["tags.likepred.version"] and len(row["tags.likepred.data_digest"]) == 16
    assert list(api.runs("api", filter="params.`model.name` = 'gbm'", tracking_uri=uri)["run_id"]) == [second.run_id]
    with pytest.raises(ConfigError, match="experiment='apj': not in .* \\(did you mean 'api'\\?\\)"):
        api.runs("apj", tracking_uri=uri)

    posts = load_dataset(second.config.data).posts.tail(4)
    loaded = api.load(second.run_id, tracking_uri=uri)
    np.testing.assert_allclose(loaded.predict_likes(posts), second.predictor.predict_likes(posts))
    assert (loaded.predict_likes(posts) > 0).all()

    # the run's permutation importance names the features as --explain does
    import mlflow
    import pandas as pd

    from likepred.serving.predictor import feature_groups

    path = mlflow.artifacts.download_artifacts(run_id=second.run_id, tracking_uri=uri,
                                               artifact_path="features/permutation_importance.csv")
    imp = pd.read_csv(path)
    assert set(imp["feature"]) == {label for label, _ in feature_groups(loaded.pipeline.names)}
    assert "weekday" in set(imp["feature"]) and (imp["repeats"] == 5).all() and (imp["mape_increase_sd"] >= 0).all()
    explained = {c[0] for e in loaded.explain(posts) for c in e["contributions"]}
    assert explained <= set(imp["feature"])
