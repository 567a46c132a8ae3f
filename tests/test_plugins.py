"""Plugins: a user package (tests/fixtures/likepred_plugin_demo) pip-installed into a throwaway
folder, found through its `likepred.plugins` entry point or the `plugins` key, run locally, in a
joblib sweep, in an ensemble beside a built-in model and on a local Ray cluster."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from test_sweeps import TINY

FIXTURE = ROOT / "tests" / "fixtures" / "likepred_plugin_demo"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The demo plugin pip-installed (with its entry point) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(FIXTURE, src)  # the build leaves files beside the sources: not in the repo
    site = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (next(site.glob("*.dist-info")) / "entry_points.txt").read_text().count("likepred.plugins") == 1
    return site


def env_with(*paths, cache_dir=None):
    path = os.pathsep.join([str(ROOT), *map(str, paths)])
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")
    if cache_dir is not None:
        env["LIKEPRED_CACHE"] = str(cache_dir)
    return env


def likepred(args, tmp_path, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "likepred", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_second_registration_of_a_name_is_refused_naming_both_modules():
    from likepred.errors import ConfigError
    from likepred.registry import Registry

    reg = Registry("model.name")

    def first():
        pass

    def second():
        pass

    second.__module__ = "my_pkg.models"
    reg.add("mean", first)
    reg.add("mean", first)  # the same module again (a reload): allowed
    with pytest.raises(ConfigError) as e:
        reg.add("mean", second)
    assert str(e.value) == (f"model.name='mean' is registered twice: by {__name__} and by my_pkg.models; "
                            "rename one of them")
    assert reg.get("mean") is first


def test_a_plugin_cannot_take_a_built_in_name(tmp_path):
    (tmp_path / "takes_gbm.py").write_text("from likepred.models import register\n\n"
                                           "@register('gbm')\ndef gbm(cfg):\n    return None\n")
    proc = likepred(["plugins=[takes_gbm]", *TINY], tmp_path, env_with(tmp_path))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "likepred: error: model.name='gbm' is registered twice: by likepred.models.gbm and by takes_gbm; "
        "rename one of them")


def test_an_unknown_plugin_is_one_line(tmp_path):
    proc = likepred(["plugins=[no_such_plugin_pkg]", *TINY], tmp_path, env_with())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "likepred: error: plugins: cannot import 'no_such_plugin_pkg' (No module named 'no_such_plugin_pkg')")


def test_help_lists_the_installed_plugins_options(plugin_site, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "likepred", "--help"], cwd=tmp_path, env=env_with(plugin_site),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    model_line = next(line for line in proc.stdout.splitlines() if line.startswith("model: "))
    features_line = next(line for line in proc.stdout.splitlines() if line.startswith("features: "))
    assert "demo_mean" in model_line.split() or "demo_mean," in model_line.split()
    assert "demo_caption," in features_line.split() or "demo_caption" in features_line.split()
    code = ("import sys, runpy; sys.argv=['likepred','--help']\n"
            "try:\n    runpy.run_module('likepred', run_name='__main__')\nexcept SystemExit: pass\n"
            "assert 'likepred_plugin_demo' not in sys.modules, 'the plugin was imported for --help'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env_with(plugin_site),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "demo_mean" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow
def test_plugin_model_and_extractor_run_and_serve_without_pickle(plugin_site, tmp_path, cache_dir):
    """Entry point only: no plugins key, no hydra.searchpath; the served model names the plugin's class."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = env_with(plugin_site, cache_dir=cache_dir)
    proc = likepred(["model=demo_mean", "features=demo_caption", "model.shrink=0.9", *TINY, "tracking.enabled=true",
                     f"tracking.uri={uri}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = textwrap.dedent(f"""
        import pathlib, mlflow
        from likepred.serving.locate import model_artifacts, model_folder
        from likepred.serving.predictor import read_model_files
        client = mlflow.MlflowClient({uri!r})
        run = client.search_runs([client.get_experiment_by_name("likepred").experiment_id])[0]
        uri = f"runs:/{{run.info.run_id}}/model"
        files = model_artifacts(model_folder(uri, {uri!r})[0], uri)
        print(sorted(p.name for p in pathlib.Path(files["predictor"]).iterdir()))
        p = read_model_files(files, trust_pickle=False)  # the state format: no pickle read
        est = p.estimator
        print(type(est).__module__, type(est).__name__, est.shrink, est.mean_ > 0)
    """)
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["['arrays.npz', 'state.json']", "likepred_plugin_demo DemoMean 0.9 True"]


@pytest.mark.slow
def test_plugins_key_in_a_joblib_sweep_and_an_ensemble(tmp_path, cache_dir):
    """The `plugins` key (no entry point): imported in each joblib worker; an ensemble holds the
    plugin's model beside gbm, its member config read from the plugin's conf/ on the search path."""
    env = env_with(FIXTURE, cache_dir=cache_dir)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["plugins=[likepred_plugin_demo]", "hydra.searchpath=[pkg://likepred_plugin_demo/conf]",
              "features=demo_caption", *TINY, "tracking.enabled=true", f"tracking.uri={uri}"]
    proc = likepred(["--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=demo_mean",
                     "model.shrink=0.5,1.0", "tracking.experiment=sweep", *common], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = likepred(["model=ensemble", "model.members=[gbm,demo_mean]", "model.step=0.5",
                     "tracking.experiment=ens", *common], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    import mlflow

    client = mlflow.MlflowClient(uri)
    sweep = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    children = [r for r in sweep if "likepred.job" in r.data.tags]  # tracking.keys.JOB
    assert sorted(r.data.params["model.shrink"] for r in children) == ["0.5", "1.0"]
    assert all(r.info.status == "FINISHED" and "test_mape" in r.data.metrics for r in children)
    ens = client.search_runs([client.get_experiment_by_name("ens").experiment_id])[0]
    assert ens.info.status == "FINISHED" and ens.data.params["model.members"] == "['gbm', 'demo_mean']"
    assert "test_mape" in ens.data.metrics


@pytest.fixture(scope="module")
def plugin_on_workers_path(plugin_site):
    """Ray workers start with the PYTHONPATH of `ray start`: put the plugin there first."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_site), old]))
    yield plugin_site
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def plugin_ray_head(plugin_on_workers_path, tmp_path_factory):
    pytest.importorskip("ray")
    from test_ray import ray_head

    gen = ray_head.__wrapped__(tmp_path_factory)
    address = next(gen)
    yield address
    next(gen, None)


@pytest.mark.slow
def test_plugin_model_on_a_ray_cluster(plugin_ray_head, plugin_site, tmp_path, cache_dir):
    from test_ray import NO_TOKEN

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = dict(env_with(plugin_site, cache_dir=cache_dir), **NO_TOKEN)
    proc = likepred(["--multirun", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={plugin_ray_head}",
                     "model=demo_mean", "features=demo_caption", "model.shrink=0.5,1.0", *TINY,
                     "tracking.enabled=true", f"tracking.uri={uri}"], tmp_path, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "(execute_job pid=" in out  # Ray workers ran them
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("likepred").experiment_id])
    children = [r for r in runs if "likepred.job" in r.data.tags]  # tracking.keys.JOB
    assert len(children) == 2 and all(r.info.status == "FINISHED" and "test_mape" in r.data.metrics
                                      for r in children)
