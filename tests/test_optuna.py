"""Optuna searches on a persistent study (hydra/sweeper=likepred_optuna, Optuna >= 4), as users run them:
`python -m likepred --multirun ...` in subprocesses, read back from the study's storage and MLflow.

Resume after a SIGKILL, two workers sharing one study, pruning of a clearly worse Keras trial.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from likepred.tracking.trial import open_storage
from test_sweeps import TINY, parent_and_children

optuna = pytest.importorskip("optuna", minversion="4")
pytestmark = pytest.mark.slow

# Cheap jobs (a baseline model) where the test is about the study, not the model.
SEARCH = ["--multirun", "hydra/sweeper=likepred_optuna", "model=user_median", "split.val_frac=interval(0.1,0.2)",
          "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"]


def command(args, tmp_path, cache_dir, name, experiment):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    flags = [a for a in args if a.startswith("--")]  # argparse: flags before the overrides; ours win over TINY's
    cmd = [sys.executable, "-m", "likepred", *flags, *TINY, *[a for a in args if a not in flags],
           f"tracking.uri={uri}", f"tracking.experiment={experiment}",
           f"tracking.artifact_root={tmp_path}/artifacts", f"hydra.sweep.dir={tmp_path / name}"]
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    return cmd, env, uri


def start(args, tmp_path, cache_dir, name, experiment="optuna"):
    cmd, env, uri = command(args, tmp_path, cache_dir, name, experiment)
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), uri


def finish(proc, tmp_path, name, timeout=600):
    proc.wait(timeout=timeout)
    return (tmp_path / f"{name}.log").read_text()


def states(study):
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_killed_search_resumes_from_its_storage(tmp_path, cache_dir):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    args = [*SEARCH, "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=resume"]
    proc, uri = start(args, tmp_path, cache_dir, "first")
    study, deadline = None, time.monotonic() + 400
    while True:  # kill -9 while a trial runs, after one finished
        if study is None and (tmp_path / "optuna.db").exists():
            try:
                study = optuna.load_study(study_name="resume", storage=open_storage(storage))
            except KeyError:
                pass
        s = states(study) if study else []
        if "COMPLETE" in s and "RUNNING" in s:
            break
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = {t.number: (t.state.name, t.value) for t in study.get_trials()}
    killed = [n for n, (state, _) in before.items() if state == "RUNNING"]
    assert killed

    proc, _ = start(args, tmp_path, cache_dir, "again")
    log = finish(proc, tmp_path, "again")
    assert proc.returncode == 0, log[-3000:]
    assert "was RUNNING with no heartbeat" in log
    trials = study.get_trials()
    for n, (state, value) in before.items():  # finished trials kept, the killed one failed
        assert trials[n].state.name == ("FAIL" if n in killed else state)
        if state == "COMPLETE":
            assert trials[n].value == value
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3
    assert [t.number for t in trials] == list(range(len(trials)))
    # the second command's parent run holds the trials it ran
    _, parent, children = parent_and_children(uri, tmp_path / "again")
    assert parent.info.status == "FINISHED"
    assert len(children) == 3 - sum(state == "COMPLETE" for state, _ in before.values())
    assert all(c.info.status == "FINISHED" for c in children)


def test_two_workers_share_one_study(tmp_path, cache_dir):
    # a journal file: what workers on several machines share over NFS; the second worker uses joblib
    storage = f"journal:{tmp_path}/optuna.journal"
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()  # two processes must not both create it
    common = [*SEARCH, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared"]
    a, _ = start([*common, "hydra.sweeper.sampler={_target_:optuna.samplers.RandomSampler,seed:1}"],
                 tmp_path, cache_dir, "a")
    b, uri = start([*common, "hydra.sweeper.sampler={_target_:optuna.samplers.RandomSampler,seed:2}",
                    "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], tmp_path, cache_dir, "b")
    logs = finish(a, tmp_path, "a"), finish(b, tmp_path, "b")
    assert (a.returncode, b.returncode) == (0, 0), logs[0][-2000:] + logs[1][-2000:]
    trials = optuna.load_study(study_name="shared", storage=open_storage(storage)).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len(trials)
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4
    assert all(t.state.name == "COMPLETE" or t.user_attrs.get("likepred:surplus") for t in trials)
    runs = [parent_and_children(uri, tmp_path / name)[2] for name in ("a", "b")]
    assert len(runs[0]) + len(runs[1]) == 4 and runs[0] and runs[1]  # both did work
    assert "batches of 2" in logs[1]  # joblib's parallelism sizes the batches


def test_pruner_stops_a_clearly_worse_trial(tmp_path, cache_dir):
    # the seeded random sampler draws lr 0.01, 0.01, then 1e-7 (a net that cannot learn in 4 epochs)
    args = ["--multirun", "hydra/sweeper=likepred_optuna", "model=dense_meta", "trainer.epochs=4", "trainer.patience=0",
            "optimizer.lr=choice(0.01,1e-7)", "seed=range(0,100)", "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db", "hydra.sweeper.study_name=prune",
            "hydra.sweeper.sampler={_target_:optuna.samplers.RandomSampler,seed:2}",
            "hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:2,n_warmup_steps:1}"]
    proc, uri = start(args, tmp_path, cache_dir, "prune")
    log = finish(proc, tmp_path, "prune")
    assert proc.returncode == 0, log[-3000:]
    trials = optuna.load_study(study_name="prune", storage=f"sqlite:///{tmp_path}/optuna.db").get_trials()
    assert [float(t.params["optimizer.lr"]) for t in trials] == [0.01, 0.01, 1e-7]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert len(trials[0].intermediate_values) == 4 and len(trials[2].intermediate_values) < 4
    _, parent, children = parent_and_children(uri, tmp_path / "prune")
    bad = children[2]
    assert bad.info.status == "KILLED" and bad.data.tags["pruned"] == "true"
    assert [c.info.status for c in children[:2]] == ["FINISHED", "FINISHED"] and parent.info.status == "FINISHED"
    assert "PRUNED" in log  # the sweep's table


def test_fresh_sqlite_study_opened_by_six_processes_at_once(tmp_path):
    # a sweeper and its jobs (or two sweepers) opening a new study file together raced on its
    # alembic stamp; all six must get a working storage on the same study
    code = ("import sys, optuna; from likepred.tracking.trial import open_storage; "
            "optuna.create_study(study_name='s', storage=open_storage(sys.argv[1]), load_if_exists=True)")
    url = f"sqlite:///{tmp_path}/optuna.db"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)[-3000:]
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["s"]
