"""MLflow as its users know it: the store named by MLFLOW_TRACKING_URI, runs told apart by their
names, bookkeeping under `likepred.`, a sweep's champion alias, `models:/NAME/latest`, `likepred
report` with no argument, and a model served by MLflow's own scoring server."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from helpers import free_port, stop_group


TINY = ["data.n_users=30", "data.min_posts=10", "data.max_posts=15", "trainer.epochs=1", "trainer.verbose=0"]
POST = {"alias": "someone_new", "numberFollowers": 900, "numberFollowing": 120, "numberPosts": 40,
        "date": "2017-06-03T18:00:00", "caption": "sun #beach", "tags": ["beach"], "mentions": []}


def py(args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_store_and_run_names_without_mlflow():
    """Run names carry the data; old runs' bare bookkeeping tags are still read."""
    from omegaconf import OmegaConf

    from likepred.tracking.keys import CONFIG_HASH, JOB_NUM, data_name, tag

    assert data_name(OmegaConf.create({"source": "synthetic", "path": None})) == "synthetic"
    assert data_name(OmegaConf.create({"source": "profiles", "path": "/data/instagram-profiles/"})) == "instagram-profiles"
    assert data_name(OmegaConf.create({"source": "study_csv", "path": "x/study.csv"})) == "study_csv:study.csv"
    assert tag({"config_hash": "abc"}, CONFIG_HASH) == "abc"  # logged before the prefix
    assert tag({CONFIG_HASH: "new", "config_hash": "old"}, CONFIG_HASH) == "new"
    assert tag({}, JOB_NUM, "-1") == "-1"


def test_the_users_variable_is_seen_through_mlflows_overwrite(monkeypatch, tmp_path):
    """mlflow.set_tracking_uri writes $MLFLOW_TRACKING_URI (here and in job processes): the run's
    summary still says where the store came from."""
    import mlflow

    from likepred.stores import default_store, store_source, user_store_env
    from likepred.tracking.store import use_store

    given, mine = f"sqlite:///{tmp_path}/given.db", f"sqlite:///{tmp_path}/mine.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mine)
    monkeypatch.delenv("LIKEPRED_SET_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    try:
        use_store(given)  # tracking.uri=given beside the variable
        assert os.environ["MLFLOW_TRACKING_URI"] == given  # what MLflow does
        assert user_store_env() == mine == default_store()
        assert store_source(given) == "tracking.uri" and store_source(mine) == "$MLFLOW_TRACKING_URI"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/later.db")  # set again by a user
        assert user_store_env() == f"sqlite:///{tmp_path}/later.db"
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        monkeypatch.setenv("LIKEPRED_SET_TRACKING_URI", "")
        assert store_source("sqlite:///mlruns/mlflow.db") == "the default local store"
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.slow
def test_sweep_in_the_environments_store_sets_the_champion(tmp_path, cache_dir):
    """MLFLOW_TRACKING_URI picks the store of a grid sweep with tracking.register; the best job's
    version gets @champion; predict follows models:/NAME@champion and models:/NAME/latest;
    `likepred report` with no argument shows this sweep."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/env-store/mlflow.db"
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1", MLFLOW_TRACKING_URI=uri)
    proc = py(["-m", "likepred", "--multirun", "model=user_median,gbm", *TINY,
               "tracking.register=lp_test", f"tracking.artifact_root={tmp_path}/artifacts",
               f"hydra.sweep.dir={tmp_path}/multi"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "mlruns").exists()  # nothing in the default local store
    assert "(the store: $MLFLOW_TRACKING_URI)" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("likepred")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("likepred.tracking.sweep") == "true")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["gbm-metadata_history-mape-chrono on synthetic",
                                                         "user_median-metadata_history-mape-chrono on synthetic"]
    for r in children:  # bookkeeping under likepred., what users compare by left bare
        assert {"likepred.config_hash", "likepred.job", "likepred.job_num", "likepred.dataset_hash"} <= set(r.data.tags)
        assert not {"config_hash", "job", "job_num", "overrides", "dataset_hash"} & set(r.data.tags)
        assert r.data.tags["data_source"] == "synthetic"
    assert parent.data.tags["likepred.optimized_metric"] == "val_mape"

    # the alias: on the version the best job (lowest val_mape) registered
    best = min(children, key=lambda r: r.data.metrics["val_mape"])
    champion = client.get_model_version_by_alias("lp_test", "champion")
    assert champion.run_id == best.info.run_id == parent.data.tags["best_run_id"]
    assert f"models:/lp_test@champion is version {champion.version}" in proc.stdout
    latest = max(int(v.version) for v in client.search_model_versions("name = 'lp_test'"))
    assert latest == 2

    posts = tmp_path / "post.json"
    posts.write_text(json.dumps(POST))
    outs = {}
    for model in ("models:/lp_test@champion", "models:/lp_test/latest", f"models:/lp_test/{champion.version}",
                  "models:/lp_test/2"):
        out = py(["-m", "likepred.predict", "--model", model, str(posts)], tmp_path, env, timeout=300)
        assert out.returncode == 0, (model, out.stderr[-2000:])
        outs[model] = out.stdout
    assert outs["models:/lp_test@champion"] == outs[f"models:/lp_test/{champion.version}"]
    assert outs["models:/lp_test/latest"] == outs["models:/lp_test/2"]  # as MLflow resolves it

    # `likepred report` with no argument: the sweep started last in the environment's store
    rep = py(["-m", "likepred.cli", "report"], tmp_path, env)
    assert rep.returncode == 0, rep.stderr
    assert f"Sweep {parent.info.run_id} (store {uri})" in rep.stdout and "model=gbm" in rep.stdout
    assert not re.search(r"\d\.\d{5,}", rep.stdout)  # metrics for people: never a float's 16 digits

def test_the_store_rule_in_help_and_report(tmp_path):
    """--help of the app and of `likepred ui` names the store the variable picks; `likepred report`
    with no argument on a store that does not exist is one line (and creates nothing)."""
    uri = f"sqlite:///{tmp_path}/none/mlflow.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    app = py(["-m", "likepred", "--help"], tmp_path, env)
    assert app.returncode == 0 and "else $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db" in app.stdout
    assert f"(without tracking.uri now: {uri})" in app.stdout
    ui = py(["-m", "likepred.cli", "ui", "--help"], tmp_path, env)
    assert ui.returncode == 0 and f"(now:{uri})" in "".join(ui.stdout.split())  # argparse wraps long words
    rep = py(["-m", "likepred.cli", "report"], tmp_path, env)
    assert rep.returncode == 2 and rep.stdout == ""
    assert rep.stderr.count("\n") == 1 and f"likepred report: error: no store {uri}" in rep.stderr
    assert not (tmp_path / "none").exists()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_mlflow_scoring_server_turns_a_bad_field_into_invalid_parameter_value(tmp_path, make_cfg, capsys, monkeypatch):
    """`mlflow models serve --env-manager local` and `mlflow.pyfunc.load_model(...).predict`: a
    good record is predicted, a bad one is MLflow's INVALID_PARAMETER_VALUE with likepred's line."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from likepred.train import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = make_cfg("model=user_median", "tracking.enabled=true", f"tracking.uri={uri}",
                   f"tracking.artifact_root={tmp_path}/artifacts", "tracking.experiment=serve")
    train(cfg)
    assert "(the store: tracking.uri)" in capsys.readouterr().out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("serve").experiment_id])
    model_uri = f"runs:/{run.info.run_id}/model"
    bad = dict(POST, date="not a date")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # put back after the test (mlflow.set_tracking_uri writes it)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    assert model.predict(pd.DataFrame([POST]))["likes"].iloc[0] > 0
    with pytest.raises(MlflowException) as e:
        model.predict(pd.DataFrame([POST, bad]))
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert e.value.message == "likepred: row 1, field date: unparseable date 'not a date'"

    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONUNBUFFERED="1",  # uvicorn: from the venv, as activated
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local",
                               "-m", model_uri, "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the scoring server did not answer in 240 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/invocations"
        status, body = post(url, {"dataframe_records": [POST]})
        assert status == 200 and body["predictions"][0]["likes"] > 0, body
        status, body = post(url, {"dataframe_records": [POST, bad]})
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
        assert body["message"].endswith("likepred: row 1, field date: unparseable date 'not a date'"), body
        assert "stack_trace" not in body and "Traceback" not in json.dumps(body)
    finally:
        stop_group(server)
        log.close()


@pytest.mark.slow
def test_runs_logged_before_the_prefix_are_still_read(tmp_path, make_cfg):
    """Resume finds a FINISHED run tagged with the bare `config_hash`; the sweep table reads bare
    `job`/`job_num` tags and `reused.N` on the parent, as older likepred logged them."""
    from mlflow.tracking import MlflowClient

    from likepred.tracking.keys import config_hash
    from likepred.tracking.report import sweep_table
    from likepred.tracking.sweep import finished_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = make_cfg("tracking.enabled=true", f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/a")
    client = MlflowClient(uri)
    exp = client.create_experiment("old", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(exp, tags={"likepred.tracking.sweep": "true"}).info.run_id
    old = client.create_run(exp, tags={"config_hash": config_hash(cfg), "job": "seed=0", "job_num": "0",
                                       "mlflow.parentRunId": parent}).info.run_id
    client.log_metric(old, "test_mape", 42.0)
    client.set_terminated(old, "FINISHED")
    earlier = client.create_run(exp, tags={"config_hash": "x", "job": "seed=1", "job_num": "1"}).info.run_id
    client.set_terminated(earlier, "FINISHED")
    client.set_tag(parent, "reused.1", json.dumps({"run_id": earlier, "job": "seed=1"}))

    assert finished_run(cfg, config_hash(cfg), exp).info.run_id == old
    assert finished_run(cfg, "no-such-hash", exp) is None
    table = sweep_table(client, parent)
    assert table[["job", "name", "status"]].values.tolist() == [[0, "seed=0", "FINISHED"], [1, "seed=1", "REUSED"]]
    assert table["test_mape"].iloc[0] == 42.0
