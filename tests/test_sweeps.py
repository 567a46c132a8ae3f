"""Sweeps as a user runs them: `python -m likepred --multirun ...` in a subprocess, read back from MLflow.

A sweep is one parent run with one child run per job (whatever the launcher), a summary on the
parent, failed jobs recorded without sinking the sweep, resume by config hash, and Optuna.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import ROOT

TINY = ["data.n_users=30", "data.min_posts=10", "data.max_posts=15", "trainer.epochs=1", "trainer.verbose=0"]
SUMMARY = {"sweep_summary.csv", "sweep_summary.txt", "sweep_test_mape.png"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # One MLflow database for the module: creating one costs seconds of migrations.
    return tmp_path_factory.mktemp("mlruns")


def sweep(args, tmp_path, cache_dir, store, name="multi", experiment=None):
    """Run `python -m likepred` with args; return (process, uri, sweep dir)."""
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    uri = f"sqlite:///{store}/mlflow.db"
    sweep_dir = tmp_path / name
    cmd = [sys.executable, "-m", "likepred", *args, *TINY, f"tracking.uri={uri}",
           f"tracking.experiment={experiment or tmp_path.name}", f"tracking.artifact_root={store}/artifacts",
           f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return proc, uri, sweep_dir


def parent_and_children(uri, sweep_dir):
    """The sweep's parent run (named in its sweep dir) and its child runs, via the MLflow client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent_id = json.loads((sweep_dir / "likepred_sweep.json").read_text())["parent_run_id"]
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return client, parent, sorted(children, key=lambda r: int(r.data.tags["likepred.job_num"]))


def summary(client, parent, tmp_path) -> pd.DataFrame:
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert SUMMARY <= arts, arts
    path = client.download_artifacts(parent.info.run_id, "sweep_summary.csv", str(tmp_path))
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def mlflow_client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def sweep_parents(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.`likepred.tracking.sweep` = 'true'")


# ---- units: pure functions, real configs

def test_threads_per_job_share_the_cores():
    from likepred.tracking.sweep import threads_per_job

    assert threads_per_job({}, 8) is None  # in-process launcher: one job at a time
    assert threads_per_job({"n_jobs": 2}, 8) == 4
    assert threads_per_job({"n_jobs": 2}, 2) == 1
    assert threads_per_job({"n_jobs": -1}, 8) == 1  # joblib: one worker per core
    assert threads_per_job({"n_jobs": 4, "cpus_per_task": 3}, 8) == 3  # submitit says it
    assert threads_per_job({"n_jobs": 2}, 8, configured=2) == 2  # sweep.threads_per_job wins
    assert threads_per_job({"ray": {"remote": {"num_cpus": 2}}}, 8) == 2  # Ray's CPUs per task


def test_config_hash_ignores_bookkeeping_but_not_settings(make_cfg):
    from likepred.tracking.keys import config_hash

    base = config_hash(make_cfg())
    assert config_hash(make_cfg("tracking.experiment=other", "sweep.rerun=true", "trainer.verbose=2")) == base
    assert config_hash(make_cfg("optimizer.lr=0.0005")) != base
    assert config_hash(make_cfg("model=gbm")) != base


def test_tuning_on_test_rows_is_refused(make_cfg):
    from likepred.errors import ConfigError
    from likepred.checks import check_optimized_metric

    check_optimized_metric(make_cfg())
    with pytest.raises(ConfigError, match="optimized_metric='test_mape'"):
        check_optimized_metric(make_cfg("optimized_metric=test_mape"))


def test_launcher_and_search_configs_compose(cache_dir):
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        slurm = compose("config", ["hydra/launcher=slurm", "hydra.launcher.partition=cpu"], return_hydra_config=True)
        optuna = compose("config", ["hparams_search=dense_meta_optuna"], return_hydra_config=True)
        ray = compose("config", ["hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.1:6379"],
                      return_hydra_config=True)
    launcher = slurm.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "cpu"
    assert launcher.cpus_per_task and launcher.array_parallelism and launcher.timeout_min and launcher.mem_gb
    assert optuna.hydra.sweeper._target_.endswith("OptunaSweeper") and optuna.hydra.sweeper.sampler.seed == 0
    assert optuna.optimized_metric == "val_mape" and optuna.model.name == "dense_meta"
    assert optuna.hydra.sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert ray.hydra.launcher._target_.endswith("RayLauncher") and ray.hydra.launcher.ray.init.address == "10.0.0.1:6379"
    assert ray.hydra.launcher.ray.remote.num_cpus == 1


def test_optuna_search_space_from_hydra_sweep_syntax():
    pytest.importorskip("optuna", minversion="4")
    from hydra_plugins.likepred_plugins._optuna_core import search_space
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, fixed = search_space(["optimizer.lr=tag(log, interval(0.0001, 0.01))", "model.dropout=interval(0.0, 0.5)",
                                 "trainer.batch_size=choice(32, 64)", "seed=range(0,10,2)", "model=dense_meta",
                                 "model.layers=choice([80,30,10], [40,20,10])", "trainer.epochs=3"])
    assert space["optimizer.lr"] == FloatDistribution(0.0001, 0.01, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["seed"] == IntDistribution(0, 8, step=2)  # Hydra's range excludes its stop
    assert isinstance(space["trainer.batch_size"], CategoricalDistribution)
    assert space["model.layers"].choices == ("[80,30,10]", "[40,20,10]")  # override syntax, passed back as is
    assert fixed == {"model": "dense_meta", "trainer.epochs": "3"}


# ---- whole sweeps

@pytest.mark.slow
def test_failing_job_does_not_sink_the_sweep_and_resume_skips_finished(tmp_path, cache_dir, store):
    args = ["--multirun", "model=user_median", "split.test_frac=0.1,0.2,0.3,0.9"]  # 0.9 + val 0.15 > 1
    proc, uri, sweep_dir = sweep(args, tmp_path, cache_dir, store)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 of 4 jobs did not finish" in proc.stderr and "#3 split.test_frac=0.9: FAILED ConfigError" in proc.stderr

    client, parent, children = parent_and_children(uri, sweep_dir)
    assert len(sweep_parents(client, tmp_path.name)) == 1
    assert parent.info.status == "FAILED" and parent.info.run_name == "sweep split.test_frac=0.1,0.2,0.3,0.9"
    assert [c.info.status for c in children] == ["FINISHED"] * 3 + ["FAILED"]
    assert [c.data.tags["likepred.job"] for c in children] == [f"split.test_frac={f}" for f in (0.1, 0.2, 0.3, 0.9)]
    ok, bad = children[0], children[3]
    assert ok.data.params["split.test_frac"] == "0.1" and ok.data.params["model.name"] == "user_median"
    assert "model=user_median" in ok.data.tags["likepred.overrides"] and ok.data.tags["likepred.config_hash"]
    assert "test_mape" in ok.data.metrics and "baseline_user_mean_mape" in ok.data.metrics
    assert bad.data.tags["error"].startswith("ConfigError: split.test_frac + split.val_frac")
    trace = Path(client.download_artifacts(bad.info.run_id, "traceback.txt", str(tmp_path))).read_text()
    assert "Traceback" in trace and "check_fractions" in trace

    table = summary(client, parent, tmp_path)
    assert list(table["status"]) == ["FINISHED"] * 3 + ["FAILED"]
    assert list(table["name"]) == [c.data.tags["likepred.job"] for c in children]
    finished = table[table.status == "FINISHED"]
    assert finished["test_mape"].notna().all() and finished["baseline_user_mean_mape"].notna().all()
    best = finished.loc[finished["val_mape"].idxmin()]
    assert parent.data.tags["best_run_id"] == best.run_id
    assert parent.data.metrics["best_val_mape"] == pytest.approx(best.val_mape)
    assert parent.data.metrics["jobs_failed"] == 1

    # the same command again: finished jobs are skipped, the failed one runs (and fails) again
    proc2, _, sweep_dir2 = sweep(args, tmp_path, cache_dir, store, name="again")
    assert proc2.returncode == 1 and proc2.stdout.count("already FINISHED as run") == 3
    client, parent2, children2 = parent_and_children(uri, sweep_dir2)
    assert [c.info.status for c in children2] == ["FAILED"]
    reused = {k: json.loads(v)["run_id"] for k, v in parent2.data.tags.items() if k.startswith("likepred.reused.")}
    assert reused == {f"likepred.reused.{i}": children[i].info.run_id for i in range(3)}
    table2 = summary(client, parent2, tmp_path / "again")
    assert list(table2["status"]) == ["REUSED"] * 3 + ["FAILED"]
    assert list(table2["test_mape"][:3]) == pytest.approx(list(table["test_mape"][:3]))

    # sweep.rerun=true trains again
    proc3, _, sweep_dir3 = sweep(["--multirun", "model=user_median", "split.test_frac=0.1", "sweep.rerun=true"],
                                 tmp_path, cache_dir, store, name="rerun")
    assert proc3.returncode == 0, proc3.stderr[-3000:]
    _, parent3, children3 = parent_and_children(uri, sweep_dir3)
    assert [c.info.status for c in children3] == ["FINISHED"] and parent3.info.status == "FINISHED"
    assert children3[0].data.tags["likepred.config_hash"] == children[0].data.tags["likepred.config_hash"]

    # the report command reads the same table back
    rep = subprocess.run([sys.executable, "-m", "likepred.cli", "report", str(sweep_dir), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rep.returncode == 0, rep.stderr
    assert "split.test_frac=0.9  FAILED" in rep.stdout and "#3 FAILED: ConfigError" in rep.stdout
    assert SUMMARY <= {p.name for p in (tmp_path / "rep").iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"],
], ids=["joblib", "submitit_local"])
def test_parallel_launchers_log_children_of_one_parent(launcher, tmp_path, cache_dir, store):
    from likepred.tracking.sweep import usable_cpus

    proc, uri, sweep_dir = sweep(["--multirun", *launcher, "model=user_median,best_constant"],
                                 tmp_path, cache_dir, store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, children = parent_and_children(uri, sweep_dir)
    assert len(sweep_parents(client, tmp_path.name)) == 1 and parent.info.status == "FINISHED"
    assert [c.data.tags["likepred.job"] for c in children] == ["model=user_median", "model=best_constant"]
    assert all(c.info.status == "FINISHED" and "test_mape" in c.data.metrics for c in children)
    threads = "1" if "submitit" in launcher[0] else str(max(1, usable_cpus() // 2))
    assert {c.data.tags["likepred.threads_per_job"] for c in children} == {threads}
    table = summary(client, parent, tmp_path)
    assert list(table["status"]) == ["FINISHED", "FINISHED"]
    exp = client.get_experiment_by_name(tmp_path.name)
    assert len(client.search_runs([exp.experiment_id])) == 3  # the parent and its two children, nothing else


@pytest.mark.slow
def test_optuna_search_records_failed_trials_and_tags_the_best(tmp_path, cache_dir, store):
    # split.test_frac=0.9 cannot work, so trials that draw it fail; the seeded sampler draws both
    proc, uri, sweep_dir = sweep(["hparams_search=dense_meta_optuna", "hydra.sweeper.n_trials=3",
                                  "split.test_frac=choice(0.2,0.9)", "tracking.register=optuna_best",
                                  "tracking.alias=best"], tmp_path, cache_dir, store)
    client, parent, children = parent_and_children(uri, sweep_dir)
    assert len(children) == 3 and parent.data.tags["likepred.sweeper"] == "OptunaSweeper"
    fails = [c.data.params["split.test_frac"] == "0.9" for c in children]
    assert any(fails) and not all(fails), "the seeded sampler should draw both values in 3 trials"
    assert [c.info.status for c in children] == ["FAILED" if f else "FINISHED" for f in fails]
    # Optuna saw failed trials as failed, not as numbers, and the sweep exits 1 naming them
    assert proc.stdout.count("Failed experiment") + proc.stderr.count("Failed experiment") == sum(fails)
    assert proc.returncode == 1 and f"{sum(fails)} of 3 jobs did not finish" in proc.stderr
    finished = [c for c in children if c.info.status == "FINISHED"]
    best = min(finished, key=lambda c: c.data.metrics["val_mape"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    # tracking.register: the best trial's version gets the alias (tracking.alias), set by the parent
    assert client.get_model_version_by_alias("optuna_best", "best").run_id == best.info.run_id
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")  # Optuna's value; MLflow's has 6 digits
    assert results.best_value == pytest.approx(best.data.metrics["val_mape"], rel=1e-5)
    # Optuna's own figures on the parent: the history always, parameter importance from 2 finished trials
    client = mlflow_client(uri)
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "optuna")}
    assert plots == {"optuna/optimization_history.png"} | (
        {"optuna/param_importances.png"} if len(finished) >= 2 else set())
    assert len({c.data.params["optimizer.lr"] for c in children}) == 3


@pytest.mark.slow
def test_study_approaches_in_one_command(tmp_path, cache_dir, store):
    """Every preset in experiments/ is one job and one row. The presets' own models (CNNs, VGG19,
    label autoencoders) are tested by their owners; here each job swaps in a fast model (the dense
    net, which takes approach 1's `model.dropout`; the config check refuses it for others) so the
    test checks what the sweep adds: every preset composes, runs and lands in the parent's table."""
    presets = sorted(p.stem for p in (ROOT / "experiments").glob("approach*.yaml"))
    assert "approach1" in presets and "approach1_mean" in presets
    proc, uri, sweep_dir = sweep(["--multirun", "+experiment=glob(approach*)", "model=dense_meta",
                                  "trainer.epochs=1", "features=metadata"], tmp_path, cache_dir, store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, children = parent_and_children(uri, sweep_dir)
    table = summary(client, parent, tmp_path)
    assert sorted(table["name"]) == [f"+experiment={p}" for p in presets]
    # presets that differ only in the swapped-out parts are one config: the later ones reuse the first
    assert set(table["data"]) == {"synthetic"} and set(table["status"]) <= {"FINISHED", "REUSED"}
    assert {c.data.params["split.kind"] for c in children if c.data.tags["likepred.job"] == "+experiment=approach1"} == {"legacy"}
    assert "+experiment=approach1 " in proc.stdout and "43% MAPE" in proc.stdout


# ---- sweeps that would run nothing or cannot rank say so and fail (issue 23)

@pytest.mark.slow
@pytest.mark.parametrize("args,rc,message", [
    (["model=glob(nosuch*)"], 1, "likepred: error: the sweep ran no job: its sweep settings expand to nothing"),
    (["seed=range(5,1)"], 1, "likepred: error: the sweep ran no job"),
    (["seed=1,2", "optimized_metric=val_mpae"], 1,
     "likepred: error: optimized_metric=val_mpae: no job logged it, so the sweep cannot rank its jobs"),
    (["hparams_search=dense_meta_optuna", "hydra.sweeper.n_trials=0"], 2,
     "likepred: error: hydra.sweeper.n_trials=0: must be >= 1 (the sweep would run nothing)"),
], ids=["glob", "empty_range", "unknown_metric", "no_trials"])
def test_sweep_that_runs_nothing_or_cannot_rank_fails_saying_why(args, rc, message, tmp_path, cache_dir, store):
    proc, uri, sweep_dir = sweep(["--multirun", "model=user_median", *args], tmp_path, cache_dir, store)
    assert proc.returncode == rc, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("likepred: error:")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if rc == 1:  # the parent run says so too
        _, parent, _ = parent_and_children(uri, sweep_dir)
        assert parent.info.status == "FAILED" and parent.data.tags["error"] in errors[0]


@pytest.mark.parametrize("args,message", [
    (["data=profiles", "data.path=/nope", "model=gbm,user_mean"], "likepred: error: data.path=/nope: no such file"),
    (["model=user_median", "split.test_frac=0.9,0.95"], "likepred: error: split.test_frac + split.val_frac"),
    (["model=user_median", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"],
     "likepred: error: hydra.launcher.n_jobs=0: must be a whole number of parallel jobs, not 0"),
], ids=["data_path", "every_value_bad", "joblib_no_jobs"])
def test_mistyped_sweep_is_one_line_and_leaves_no_run(args, message, tmp_path, cache_dir):
    """A setting that fails every job is refused by the parent before the sweep's parent run (and
    any job's run) exists; a bad swept value fails only its own jobs (test above)."""
    uri, sweep_dir = f"sqlite:///{tmp_path}/store/mlflow.db", tmp_path / "multi"
    proc = subprocess.run([sys.executable, "-m", "likepred", "--multirun", *args, f"tracking.uri={uri}",
                           f"tracking.artifact_root={tmp_path}/store/artifacts", f"hydra.sweep.dir={sweep_dir}"],
                          cwd=tmp_path, env=dict(os.environ, LIKEPRED_CACHE=str(cache_dir)), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(message) and "Traceback" not in proc.stderr
    assert not (sweep_dir / "likepred_sweep.json").exists()
    db = tmp_path / "store" / "mlflow.db"
    assert not db.exists() or not mlflow_client(uri).search_runs(
        [e.experiment_id for e in mlflow_client(uri).search_experiments()])


def test_fold_sweep_with_no_finished_fold_fails_naming_its_jobs(tmp_path, cache_dir, store):
    """Its summary had nothing to pool: Hydra turned the summary's KeyError into a warning, exit 0."""
    proc, uri, sweep_dir = sweep(["--multirun", "model=user_median", "split.fold=0,1"], tmp_path, cache_dir, store)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "likepred: 2 of 2 jobs did not finish" in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-2000:]
    _, parent, children = parent_and_children(uri, sweep_dir)
    assert parent.info.status == "FAILED" and [c.info.status for c in children] == ["FAILED", "FAILED"]
