"""The whole app, as a user runs it: `python -m likepred ...` in a subprocess."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
TINY = ["data.n_users=30", "data.min_posts=10", "data.max_posts=15", "trainer.epochs=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # One MLflow database for the module: creating one costs seconds of migrations.
    return tmp_path_factory.mktemp("mlruns")


def run_app(args, tmp_path, cache_dir, check=True, store=None):
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    store = store or tmp_path
    uri = f"sqlite:///{store}/mlflow.db"
    cmd = [sys.executable, "-m", "likepred", *args, f"tracking.uri={uri}",
           f"tracking.experiment={tmp_path.name}", f"tracking.artifact_root={store}/artifacts",
           f"hydra.run.dir={tmp_path}/out", f"hydra.sweep.dir={tmp_path}/multi"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, uri


def runs(uri, experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_full_run_logged_to_mlflow(tmp_path, cache_dir, store):
    proc, uri = run_app(TINY, tmp_path, cache_dir, store=store)
    assert "MAPE %" in proc.stdout and "baseline best constant" in proc.stdout
    client, found = runs(uri, tmp_path.name)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "dense_meta-metadata_history-mape-chrono on synthetic"
    for m in ("test_mape", "test_mdape", "test_mae", "test_rmse_log", "test_spearman", "test_mape_mature",
              "baseline_user_mean_mape", "baseline_best_constant_mape", "mape_vs_baseline", "val_mape"):
        assert m in run.data.metrics, m
    assert run.data.metrics["mape_vs_baseline"] == pytest.approx(  # each logged to 6 significant digits
        run.data.metrics["test_mape"] - run.data.metrics["baseline_user_mean_mape"], abs=1e-3)
    assert all(v == float(f"{v:.6g}") for v in run.data.metrics.values())  # the UI shows no float's 16 digits
    assert run.data.params["model.layers"] == "[80, 30, 10]" and run.data.params["split.kind"] == "chrono"
    assert run.data.tags["leaky"] == "false" and run.data.tags["data_source"] == "synthetic"
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "predictions.csv", "predicted_vs_actual.png"} <= arts
    (model,) = client.search_logged_models([run.info.experiment_id])  # the packaged model, a logged model
    assert model.name == "model" and model.source_run_id == run.info.run_id


def test_two_job_multirun(tmp_path, cache_dir, store):
    proc, uri = run_app(["--multirun", "model=user_median,gbm", *TINY], tmp_path, cache_dir, store=store)
    _, found = runs(uri, tmp_path.name)
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.info.run_name for r in children) == ["gbm-metadata_history-mape-chrono on synthetic",
                                                         "user_median-metadata_history-mape-chrono on synthetic"]
    assert len(parents) == 1 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in found)


def test_study_approach1_preset_is_labelled(tmp_path, cache_dir, store):
    proc, uri = run_app(["+experiment=approach1_mean", *TINY], tmp_path, cache_dir, store=store)
    assert "LEAKY" in proc.stdout
    _, found = runs(uri, tmp_path.name)
    assert found[0].data.tags["leaky"] == "true" and found[0].data.params["split.kind"] == "legacy"


def test_bad_input_is_one_clear_line(tmp_path, cache_dir, store):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "eve.json").write_text('{"alias": "eve", "numberPosts": 1, "numberFollowers": 5, '
                                     '"numberFollowing": 1, "posts": [{"date": "soon", "numberLikes": 3, '
                                     '"tags": [], "mentions": []}]}')
    proc, _ = run_app(["data=profiles", f"data.path={folder}"], tmp_path, cache_dir, check=False)
    assert proc.returncode == 2
    assert "eve.json, post 0, field date: unparseable date 'soon'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_does_not_import_keras(tmp_path):
    code = ("import sys, runpy; sys.argv=['likepred','--help']\n"
            "try:\n    runpy.run_module('likepred', run_name='__main__')\nexcept SystemExit: pass\n"
            "assert 'keras' not in sys.modules and 'mlflow' not in sys.modules, 'heavy import'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Config groups" in proc.stdout and "model: " in proc.stdout
