"""The config is checked before any data is read: every typo, wrong type or impossible value
stops with one line naming the key, the value and what is allowed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest

from likepred.checks import check
from likepred.errors import ConfigError

# (overrides, what the one-line error must say)
BAD = [
    (["+trainer.epoch=3"], r"trainer.epoch: unknown key \(did you mean 'epochs'\?\)"),
    (["trainer.batch_size=0"], r"trainer.batch_size=0: must be >= 1"),
    (["trainer.epochs=0"], r"trainer.epochs=0: must be >= 1"),
    (["trainer.epochs=abc"], r"trainer.epochs='abc'.*Integer"),
    (["optimizer.lr=-0.01"], r"optimizer.lr=-0.01: must be > 0"),
    (["optimizer.lr=1"], r"optimizer.lr=1.0: must be > 0 and < 1"),
    (["seed=abc"], r"seed='abc'"),
    (["+sede=1"], r"sede: unknown key \(did you mean 'seed'\?\)"),
    (["model.dropout=1.5"], r"model.dropout=1.5: must be >= 0 and < 1"),
    (["+model.dropuot=0.1"], r"model.dropuot: unknown key \(did you mean 'dropout'\?\)"),
    (["model.name=foo"], r"model.name='foo' is unknown; known: .*dense_meta"),
    (["model=gbm", "+model.min_sample_leaf=5"], r"model.min_sample_leaf: unknown key \(did you mean 'min_samples_leaf'\?\)"),
    (["loss.name=MAPE"], r"loss.name='MAPE': not one of mape, mae, mse"),
    (["+data.n_user=5"], r"data.n_user: unknown key \(did you mean 'n_users'\?\)"),
    (["data.source=csv"], r"data.source='csv' is unknown; known: .*profiles"),
    (["data=profiles"], r"data.path: required.*paths.data="),
    # issue 21: the keys that moved to the paths group
    (["+data.images_dir=x"], r"^data.images_dir: renamed to paths.images \(give paths.images=...\)$"),
    (["+data.labels_path=x"], r"^data.labels_path: renamed to paths.labels"),
    (["split.kind=time"], r"split.kind='time' is unknown; known: chrono"),
    (["split.test_frac=0.5", "split.val_frac=0.5"], r"split.test_frac \+ split.val_frac = 1: must be < 1"),
    (["target.name=positivty"], r"target.name='positivty' is unknown \(did you mean 'positivity'\?\)"),
    (["target.base=mode"], r"target.base='mode': not one of mean"),
    (["+features.extractors.colour={}"], r"features.extractors='colour' is unknown"),
    (["+features.extractors.hashtag_score.topk=5"], r"features.extractors.hashtag_score.topk: unknown setting \(did you mean 'top_k'\?\)"),
    (["+tracking.experimnt=x"], r"tracking.experimnt: unknown key \(did you mean 'experiment'\?\)"),
    (["images.download.workers=0"], r"images.download.workers=0: must be >= 1"),
    (["+evaluate.mature=3"], r"evaluate.mature: unknown key"),
    (["features=metadata_leaky"], r"allowed only with split=legacy"),
    (["optimized_metric=test_mape"], r"optimized_metric='test_mape': a sweeper may only optimise a validation metric"),
    (["model=cnn_meta", "features=metadata"], r"model=cnn_meta reads the input block\(s\) image"),
    (["backend=theano"], r"backend='theano': not one of jax"),
    # issue 23: NaN/inf, list items, names, seeds, tracking settings, dates
    (["optimizer.lr=nan"], r"optimizer.lr=nan: must be a finite number"),
    (["data.min_age_days=inf"], r"data.min_age_days=inf: must be a finite number"),
    (["model=ensemble", "+model.overrides.gbm.learning_rate=-inf"], r"model.overrides.gbm.learning_rate=-inf: must be a finite"),
    (["model.layers=[80,0,10]"], r"model.layers\[1\]=0: each item must be >= 1"),
    (["model.layers=[-5]"], r"model.layers\[0\]=-5: each item must be >= 1"),
    (["model.activation=rellu"], r"model.activation='rellu': not one of .*\(did you mean 'relu'\?\)"),
    (["model.output_activation=softplsu"], r"model.output_activation='softplsu'.*did you mean 'softplus'"),
    (["seed=-1"], r"seed=-1: must be >= 0 and <= 4294967295"),
    (["data.seed=4294967296"], r"data.seed=4294967296: must be >= 0 and <= 4294967295"),
    (["split.seed=-3"], r"split.seed=-3: must be >= 0"),
    (["model=ensemble", "model.members=[]"], r"model.members=\[\]: needs at least 1 item"),
    (["tracking.enabled=true", "tracking.register=a/b"], r"tracking.register='a/b': not a registered-model name"),
    (["tracking.enabled=true", "tracking.register=' '"], r"tracking.register=' ': not a registered-model name"),
    (["tracking.enabled=true", "tracking.register=.."], r"tracking.register='..': not a registered-model name"),
    (["tracking.enabled=true", "tracking.experiment=''"], r"tracking.experiment='': give the experiment a name"),
    (["tracking.enabled=true", "tracking.uri=''"], r"tracking.uri='': give a store"),
    (["tracking.enabled=true", "tracking.uri=ftp://host/x"], r"tracking.uri=ftp://host/x: unsupported scheme ftp:"),
    (["tracking.enabled=true", "tracking.uri=sqlit:///m.db"], r"unsupported scheme sqlit:.*did you mean 'sqlite'"),
    (["tracking.enabled=true", "tracking.uri=postgresql+nodriver://h/db"], r"needs a postgresql driver.*pip install nodriver"),
    (["data.scrape_date=2017-13-45"], r"data.scrape_date='2017-13-45': not a date"),
    (["data.scrape_date=yesterday"], r"data.scrape_date='yesterday': not a date"),
    (["data=profiles", "data.path=/no/such/folder"], r"data.path=/no/such/folder: no such file or folder"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_is_refused_naming_the_key(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(make_cfg(*overrides, tiny=not any(o.startswith("data=") for o in overrides)))


def test_activation_names_are_keras_activations():
    import keras

    from likepred.config.schema import ACTIVATIONS

    for name in ACTIVATIONS:
        keras.activations.get(name)  # raises for an unknown one


def test_artifact_root_whose_client_library_is_missing_is_refused(make_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"tracking.artifact_root=s3://bucket/x: needs the package 'boto3'"):
        check(make_cfg("tracking.enabled=true", "tracking.artifact_root=s3://bucket/x"))


def test_missing_extra_is_found_before_any_data(make_cfg, monkeypatch):
    from likepred.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"'sentence_transformers' is needed for features=text"):
        check(make_cfg("features=text"))


def test_absurd_sizes_are_one_line_warnings(make_cfg, caplog):
    check(make_cfg("data.n_users=1000000000", "trainer.epochs=1000000000", "trainer.patience=0"))
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(l.startswith("data.n_users=1000000000:") for l in lines), lines
    assert any(l.startswith("trainer.epochs=1000000000 with trainer.patience=0") for l in lines), lines
    assert all("\n" not in l for l in lines)
    caplog.clear()
    check(make_cfg())
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.fixture
def keras_weights(tmp_path, monkeypatch):
    """A Keras cache holding the VGG19 weights file: the check looks for it (offline machines)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels.h5").write_bytes(b"")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))


@pytest.mark.parametrize("preset", ["approach1", "approach1_mean", "approach2", "approach3", "approach4",
                                    "approach4_vgg19", "approach5", "approach5_leaky", "profiles_best"])
def test_every_preset_passes_the_checks(make_cfg, preset, keras_weights, tmp_path):
    cfg = make_cfg(f"+experiment={preset}", f"data.path={tmp_path}", tiny=False)
    if preset == "profiles_best" and importlib.util.find_spec("sentence_transformers") is None:
        # without the `text` extra (README's plain test install) the check names it, before any data
        from likepred.errors import MissingDependencyError

        with pytest.raises(MissingDependencyError, match=r"sentence_transformers.*pip install -e '\.\[text\]'"):
            check(cfg)
        return
    check(cfg)


@pytest.mark.parametrize("model", ["dense_meta", "gbm", "user_mean", "best_constant", "labels_dense",
                                   "cnn_meta", "alexnet_cnn", "vgg19_dense"])
def test_every_model_default_passes_the_checks(make_cfg, model, keras_weights):
    overrides = [f"model={model}"] + (["features=labels_ae"] if model == "labels_dense" else [])
    check(make_cfg(*overrides, tiny=False))


def test_a_typo_stops_the_app_fast_with_one_line(cache_dir, tmp_path):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "likepred", "+trainer.epoch=3", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                           f"hydra.run.dir={tmp_path}/out"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["likepred: error: trainer.epoch: unknown key (did you mean 'epochs'?); "
                     "known: epochs, batch_size, max_steps_per_epoch, patience, verbose"], proc.stderr
    assert elapsed < 20  # well under 5 s on a quiet machine; generous for a loaded CI
    assert not (tmp_path / "m.db").exists()  # refused before MLflow or any data was touched


def test_a_wrong_data_path_leaves_no_run_behind(cache_dir, tmp_path):
    """A mistyped command is refused before the MLflow run exists: no red FAILED row per typo."""
    db = tmp_path / "m.db"
    proc = subprocess.run([sys.executable, "-m", "likepred", "data=profiles", f"data.path={tmp_path}/profiels",
                           f"tracking.uri=sqlite:///{db}", f"hydra.run.dir={tmp_path}/out"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        f"likepred: error: data.path={tmp_path}/profiels: no such file or folder"], proc.stderr
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
            assert "runs" not in tables or con.execute("select count(*) from runs").fetchone()[0] == 0


@pytest.mark.parametrize("args,message", [
    (["model=gmb"], r"model=gmb: no such option \(did you mean 'gbm'\?\); known: .*dense_meta"),
    (["model.layers=[1,"], r"cannot read the override 'model.layers=\[1,'"),
    (["foo=1"], r"Could not override 'foo'. To append to your config use \+foo=1"),
    (["--multirun", "seed=range(1,5,0)"], r"a sweep override cannot be expanded: range\(\) arg 3 must not be zero"),
    (["--multirun", "optimizer.lr=interval(0.001,0.1)"], r"the basic sweeper takes lists .* need the Optuna sweeper"),
], ids=["group_option", "syntax", "unknown_key", "range_step_0", "interval_on_basic"])
def test_hydra_errors_are_one_line_exit_2(args, message, cache_dir, tmp_path):
    import re

    proc = subprocess.run([sys.executable, "-m", "likepred", *args, "tracking.enabled=false",
                           f"hydra.run.dir={tmp_path}/out", f"hydra.sweep.dir={tmp_path}/multi"],
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("likepred: error: ") and re.search(message, lines[0]), lines[0]


def test_paths_group_names_each_folder_once(make_cfg, tmp_path):
    """issue 21: data.path, images.dir, the caches and the output folders interpolate paths.*."""
    cfg = make_cfg("data=profiles", f"paths.data={tmp_path}", f"paths.images={tmp_path}/img",
                   f"paths.cache={tmp_path}/cache", "tracking.enabled=false", tiny=False)
    assert cfg.data.path == str(tmp_path) and cfg.images.dir == f"{tmp_path}/img"
    assert cfg.images.cache_dir == f"{tmp_path}/cache/features"
    check(cfg)
    assert make_cfg(f"paths.cache={tmp_path}/c").data.path == f"{tmp_path}/c/synthetic"


def test_moved_key_on_the_command_line_is_one_line_naming_the_new_key(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "likepred", "data.images_dir=x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "likepred: error: data.images_dir: renamed to paths.images (give paths.images=...)"], proc.stderr


def test_presets_compose_and_pass_the_checks(make_cfg, tmp_path):
    from likepred.checks import check

    cold = make_cfg("+experiment=cold_start", f"data.path={tmp_path}", tiny=False)
    assert (cold.split.kind, cold.target.name, cold.model.name) == ("user", "likes_per_follower", "gbm")
    check(cold)
    fast = make_cfg("+experiment=profiles_fast", f"data.path={tmp_path}", tiny=False)
    check(fast)
    # no caption embedding: profiles_fast needs no `text` extra
    assert "caption_embedding" not in fast.features.extractors and "caption_stats" in fast.features.extractors
