"""Image content labels: synthetic label file, label encoder and autoencoder, user cluster
scores (no leak), the labels_dense model, the approach presets, and the annotate command."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from likepred.data import load_dataset
from likepred.data.schema import Dataset
from likepred.errors import ConfigError
from likepred.features import EXTRACTORS, FeatureContext, build_features
from likepred.features.labels import symmetric_difference, user_scores
from likepred.labels.labelfile import load_labels, save_labels
from likepred.synthetic.labels import THEMES, write_labels
from likepred.pipeline import Pipeline
from likepred.split import make_split
from likepred.targets import build_target

try:  # the local Cloud Vision gRPC server of test_vision (grpcio, google-cloud-vision: the test extra)
    from test_vision import COLOURS, server  # noqa: F401
except pytest.skip.Exception:
    server = None

FAST = ["trainer.epochs=2"]


def ae_cfg(make_cfg, features="labels_ae", *more):
    ex = {"labels_ae": "label_ae", "labels_clusters": "label_clusters",
          "labels_clusters_leaky": "label_clusters_leaky"}[features]
    return make_cfg(f"features={features}", f"features.extractors.{ex}.epochs=4", f"features.extractors.{ex}.lr=0.01",
                    f"features.extractors.{ex}.min_count=5", *more)


def parts(cfg, with_split=False):
    data = load_dataset(cfg.data)
    data.ensure_labels()  # as the train step does for label features
    split = make_split(data.posts, cfg.split)
    rows = lambda ix: data.posts.iloc[ix].reset_index(drop=True)  # noqa: E731
    return (data, rows(split.train), rows(split.test)) + ((split,) if with_split else ())


# ------------------------------------------------------------------ synthetic labels

def test_synthetic_labels_follow_the_image_class(make_cfg, tmp_path):
    data = load_dataset(make_cfg().data)
    folder = os.path.dirname(data.ensure_labels())
    labels = load_labels(data.labels_path)  # written beside the profiles, in the study's format
    latent = pd.read_csv(os.path.join(folder, "latent.csv"))
    assert 0.95 * len(latent) < len(labels) < len(latent)  # a few images were "not annotated"
    # deterministic: the same bytes again
    write_labels(os.path.join(folder, "latent.csv"), tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == open(data.labels_path, "rb").read()
    # each class's images mostly carry their own theme; faces come with class 7 (people)
    own, faces = {}, {}
    for name, c in zip(latent["filename"], latent["visual_class"]):
        if name in labels and labels[name]["labels"]:
            hits = [len(set(labels[name]["labels"]) & set(t)) for t in THEMES]
            own.setdefault(c, []).append(int(np.argmax(hits)) == c)
            faces.setdefault(c, []).append(labels[name]["numFaces"])
    assert all(np.mean(v) > 0.6 for v in own.values()), {c: np.mean(v) for c, v in own.items()}
    assert np.mean(faces[7]) > 3 * np.mean(faces[0])


def test_synthetic_labels_drawn_only_by_runs_that_read_them(make_cfg, tmp_path):
    """A metadata-only run writes no labels.json; a run with label features draws it (once, reused)."""
    from likepred.train import train

    small = [f"data.path={tmp_path}", "data.n_users=12", "data.min_posts=8", "data.max_posts=12", "trainer.epochs=1"]
    cfg = make_cfg("model=user_median", *small)  # the default features: metadata only
    assert not build_features(cfg.features).needs_labels
    assert np.isfinite(train(cfg)["test_mape"])
    (folder,) = tmp_path.iterdir()
    assert (folder / "latent.csv").is_file() and not (folder / "labels.json").exists()

    cfg = make_cfg("features=labels_ae", "model=user_median", "features.extractors.label_ae.epochs=1",
                   "features.extractors.label_ae.min_count=2", *small)
    assert build_features(cfg.features).needs_labels
    assert np.isfinite(train(cfg)["test_mape"])
    path = folder / "labels.json"
    assert path.is_file() and len(load_labels(path)) > 0.9 * (len(pd.read_csv(folder / "latent.csv")))
    stamp = path.stat().st_mtime_ns
    data = load_dataset(cfg.data)
    assert data.ensure_labels() == str(path) and path.stat().st_mtime_ns == stamp  # reused, not redrawn
    assert load_dataset(cfg.data, labels=str(tmp_path / "mine.json")).synthetic_labels is None  # paths.labels given


# ------------------------------------------------------------------ label encoder

def tiny_dataset(tmp_path, records, images):
    path = tmp_path / "labels.json"
    save_labels(path, records)
    posts = pd.DataFrame({"alias": "u", "image": images, "likes": 10})
    return Dataset(posts, pd.DataFrame(), "test", pd.Timestamp("2017-01-01", tz="UTC"), None, str(path)), posts


def vocab(ds, **settings):
    ex = EXTRACTORS.get("label_vocab")(**settings)
    ex.context = FeatureContext.of(ds)
    return ex


def test_vocabulary_from_train_images_and_unlabelled_posts(tmp_path):
    records = [{"filename": f"{i}.jpg", "numFaces": i % 3,
                "labels": {"dog": 0.9, **({"cat": 0.6} if i < 3 else {}), **({"rare": 0.7} if i == 0 else {})}}
               for i in range(6)] + [{"filename": "t.jpg", "numFaces": 0, "labels": {"dog": 0.8, "testonly": 0.9}}]
    ds, posts = tiny_dataset(tmp_path, records, [f"{i}.jpg" for i in range(6)] + ["t.jpg", "missing.jpg", None])
    train, test = posts.iloc[:6], posts.iloc[6:]
    ex = vocab(ds, min_count=2)
    ex.fit(train)
    assert ex.vocab_ == ["dog", "cat"]  # by train count; "rare" (1 image) and "testonly" are out
    out = ex.transform(test)
    assert list(out.columns) == ["label_dog", "label_cat", "has_labels", "log_num_faces"]
    np.testing.assert_array_equal(out.to_numpy(), [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    score = vocab(ds, min_count=2, encoding="score").fit(train).transform(train)
    np.testing.assert_allclose(score["label_cat"], [0.6, 0.6, 0.6, 0, 0, 0])
    np.testing.assert_allclose(score["log_num_faces"], np.log1p([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ConfigError, match="encoding"):
        vocab(ds, encoding="tfidf")
    with pytest.raises(Exception, match="min_count"):
        vocab(ds, min_count=50).fit(train)


def test_missing_label_file_says_how_to_make_one(tmp_path):
    ds = Dataset(pd.DataFrame(), pd.DataFrame(), "t", None, None, str(tmp_path / "nope.json"))
    with pytest.raises(Exception, match="likepred.labels annotate"):
        vocab(ds).fit(pd.DataFrame({"image": ["a.jpg"]}))


def test_symmetric_difference_measure():
    x = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    p = np.array([[0.9, 0.6, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]])
    assert symmetric_difference(x, p, 0.5) == pytest.approx((2 + 0) / 2)  # row 0: +label 1, -label 2


# ------------------------------------------------------------------ autoencoder

def test_autoencoder_learns_and_fits_on_train_images_only(make_cfg, tmp_path):
    cfg = ae_cfg(make_cfg, "labels_ae", "features.extractors.label_ae.epochs=40",
                 "features.extractors.label_ae.batch_size=32")
    data, train, test = parts(cfg)
    ex = build_features(cfg.features, data).extractors[0]
    ex.fit(train)
    rep = {k: ex.report(p) for k, p in (("train", train), ("test", test))}
    # it reconstructs: far fewer wrong labels than an all-absent output (n_labels per image)
    for r in rep.values():
        assert r["symdiff"] < 0.3 * r["n_labels"] and 0 < r["bce"] < 0.2 and r["labelled_frac"] > 0.9
    # changing the labels of test-only images does not change the fitted autoencoder
    labels = load_labels(data.labels_path)
    for name in set(test["image"]) - set(train["image"]):
        if name in labels:
            labels[name] = {"numFaces": 9, "labels": {"dog": 1.0, "cat": 1.0, "text": 1.0}}
    save_labels(tmp_path / "changed.json", labels)
    data2 = Dataset(data.posts, data.users, data.source, data.scrape_date, None, str(tmp_path / "changed.json"))
    ex2 = build_features(cfg.features, data2).extractors[0].fit(train)
    assert ex2.vocab_ == ex.vocab_
    for w, w2 in zip(ex.weights_, ex2.weights_):
        np.testing.assert_array_equal(w, w2)


# ------------------------------------------------------------------ no leaks

@pytest.mark.parametrize("features, split", [("labels_ae", "chrono"), ("labels_clusters", "chrono"),
                                             ("labels_clusters", "user")])
def test_label_features_ignore_test_likes(make_cfg, features, split):
    """Changing the likes of test rows moves no feature of any row (as tests/test_features.py)."""
    cfg = ae_cfg(make_cfg, features, f"split={split}")
    data, train, test, split = parts(cfg, with_split=True)
    pipe = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    tr, te = pipe.fit_transform(train), pipe.transform(test)
    shuffled = test.assign(likes=np.random.default_rng(0).integers(1, 10**6, len(test)))
    np.testing.assert_array_equal(te.inputs["meta"], pipe.transform(shuffled).inputs["meta"])
    # fitted again on the same train rows, with the test likes changed in the dataset as well
    data.posts.iloc[split.test, data.posts.columns.get_loc("likes")] = shuffled["likes"].to_numpy()
    pipe2 = Pipeline(build_features(cfg.features, data), build_target(cfg.target))
    np.testing.assert_array_equal(pipe2.fit_transform(train).inputs["meta"], tr.inputs["meta"])
    np.testing.assert_array_equal(pipe2.transform(shuffled).inputs["meta"], te.inputs["meta"])
    if features == "labels_clusters":
        names = pipe.names["meta"]
        assert "own_cluster_score" in names and "user_cluster_0" in names and "label_code_0" in names


def test_user_scores_brute_force_and_leave_one_out():
    likes = np.array([10.0, 40.0, 10.0, 10.0, 30.0])
    clusters = np.array([0, 0, 1, -1, 1])  # -1: no labels
    pos = likes / likes.mean() - 1  # mean 20: [-.5, 1, -.5, -.5, .5]
    full = user_scores(likes, clusters, 3, 0.2, False)[0]
    # cluster 0: mean(-.5, 1) = .25 -> +1; cluster 1: mean(-.5, .5) = 0 -> 0; cluster 2: empty -> 0
    np.testing.assert_array_equal(full, [1, 0, 0])
    assert pos[0] == -0.5
    loo = user_scores(likes, clusters, 3, 0.2, True)
    for r in range(len(likes)):
        rest = np.delete(np.arange(len(likes)), r)
        expect = user_scores(likes[rest], clusters[rest], 3, 0.2, False)[0]
        np.testing.assert_array_equal(loo[r], expect)
    # row 1 (the 40-like post) cannot see itself: without it cluster 0 is just row 0, below the mean
    assert loo[1][0] == -1


def test_train_rows_cluster_scores_leave_themselves_out(make_cfg):
    cfg = ae_cfg(make_cfg, "labels_clusters", "features.extractors.label_clusters.alpha=0.1",
                 "features.extractors.label_clusters.k=4")
    data, train, _ = parts(cfg)
    fs = build_features(cfg.features, data)
    x = fs.fit_transform(train)["meta"]
    col = fs.names_["meta"].index("own_cluster_score")
    assert 0.05 < np.mean(x[:, col] != 0) < 0.95  # the scores say something
    # a train row's likes change the features of its user's other rows, never its own
    r = int(np.flatnonzero(x[:, col] != 0)[0])
    bumped = train.copy()
    bumped.loc[r, "likes"] = bumped.loc[r, "likes"] * 1000
    x2 = build_features(cfg.features, data).fit_transform(bumped)["meta"]
    np.testing.assert_array_equal(x2[r], x[r])
    same_user = np.flatnonzero((train["alias"] == train["alias"][r]).to_numpy())
    assert not np.array_equal(x2[same_user], x[same_user])


def test_leaky_clusters_are_labelled_and_do_read_test_likes(make_cfg):
    from likepred.checks import check

    with pytest.raises(ConfigError, match="split=legacy"):
        check(ae_cfg(make_cfg, "labels_clusters_leaky", "split=chrono"))
    cfg = ae_cfg(make_cfg, "labels_clusters_leaky", "split=legacy", "features.extractors.label_clusters_leaky.alpha=0.1")
    data, train, test = parts(cfg)
    fs = build_features(cfg.features, data)
    assert fs.leaky
    fs.fit_transform(train)
    before = fs.transform(test)["meta"]
    data.posts["likes"] = np.random.default_rng(1).integers(1, 10**5, len(data.posts))
    fs2 = build_features(cfg.features, data)
    fs2.fit_transform(train)
    assert not np.array_equal(fs2.transform(test)["meta"], before)  # the study's leak, as labelled


# ------------------------------------------------------------------ models and presets

def test_labels_ae_meta_adds_history_to_the_codes(make_cfg):
    cfg = make_cfg("features=labels_ae_meta")
    names = [e.name for e in build_features(cfg.features).extractors]
    assert names[-1] == "label_ae" and {"user_history", "profile", "hashtag_score"} <= set(names)
    assert cfg.features.name == "labels_ae_meta"


@pytest.mark.slow
def test_approach5_logs_reconstruction_scores_and_montage(make_cfg, tmp_path, cache_dir):
    """`python -m likepred +experiment=approach5`, read back from MLflow."""
    from mlflow.tracking import MlflowClient


    load_dataset(make_cfg().data).ensure_images()  # synthetic images, drawn once
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    from conftest import TINY
    args = [a for a in TINY if not a.startswith("tracking.")] + [
        "+experiment=approach5", "trainer.epochs=2", "features.extractors.label_clusters.epochs=3",
        f"tracking.uri={uri}", "tracking.experiment=labels", f"tracking.artifact_root={tmp_path}/artifacts",
        f"hydra.run.dir={tmp_path}/out"]
    env = dict(os.environ, LIKEPRED_CACHE=str(cache_dir))
    proc = subprocess.run([sys.executable, "-m", "likepred", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("labels").experiment_id])[0]
    assert run.info.run_name == "labels_dense-labels_clusters-mape-chrono on synthetic" and run.data.tags["leaky"] == "false"
    m = run.data.metrics
    for k in ("test_mape", "train_label_clusters_bce", "test_label_clusters_bce", "train_label_clusters_symdiff",
              "test_label_clusters_symdiff", "test_label_clusters_own_score_nonzero_frac"):
        assert k in m, k
    assert m["test_label_clusters_bce"] > 0
    assert [a.path for a in client.list_artifacts(run.info.run_id, "features")] == [
        "features/label_clusters_montage.png", "features/permutation_importance.csv",
        "features/permutation_importance.png"]


# ------------------------------------------------------------------ the annotate command

def labels_cli(*args, cache_dir=None):
    env = dict(os.environ, **({"LIKEPRED_CACHE": str(cache_dir)} if cache_dir else {}))
    return subprocess.run([sys.executable, "-m", "likepred.labels", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_annotate_help_and_dry_run(tmp_path):
    proc = labels_cli("--help")
    assert proc.returncode == 0 and "annotate images.dir=DIR" in proc.stdout and "max_results: 10" in proc.stdout
    from PIL import Image

    for i in range(20):
        Image.new("RGB", (4, 4), (i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    proc = labels_cli("annotate", f"images.dir={tmp_path}", "labels.batch_size=8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "20 images to annotate" in proc.stderr and "in 3 requests" in proc.stderr and "dry run" in proc.stderr
    assert not (tmp_path / "labels.json").exists()
    proc = labels_cli("annotate", f"images.dir={tmp_path / 'nope'}")
    assert proc.returncode == 2 and "images.dir: not a folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = labels_cli("annotate", f"images.dir={tmp_path}", "labels.batch_size=x")
    assert proc.returncode == 2 and "labels.batch_size" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(server is None, reason="grpcio / google-cloud-vision not installed: pip install -e '.[test]'")
def test_annotate_command_against_local_vision_then_train(server, make_cfg, tmp_path):  # noqa: F811
    """The command labels a folder through the local gRPC Vision server; approach 3 trains on that file."""
    from PIL import Image

    from likepred.train import train as run_train
    from likepred.labels.__main__ import main

    cfg = make_cfg("+experiment=approach3", "features.extractors.label_ae.epochs=3",
                   "features.extractors.label_ae.min_count=3", *FAST)
    assert (cfg.features.name, cfg.model.name, cfg.target.name) == ("labels_ae", "labels_dense", "positivity")
    data = load_dataset(cfg.data)
    latent = pd.read_csv(os.path.join(os.path.dirname(data.labels_path), "latent.csv"))
    images = tmp_path / "images"
    images.mkdir()
    colour = ["red", "red", "red", "green", "green", "blue", "blue", "blue"]  # the fake labels by colour
    for name, c in zip(latent["filename"], latent["visual_class"]):
        Image.new("RGB", (1 + c % 3, 1), COLOURS[colour[c]]).save(images / name, format="PNG")
    out = tmp_path / "vision.json"
    assert main(["annotate", f"images.dir={images}", f"labels.path={out}", "labels.max_results=2"],
                client=server.client) == 0
    assert len(server.requests) == -(-len(latent) // 16)
    labels = load_labels(out)
    assert len(labels) == len(latent)
    name, c = latent["filename"][0], latent["visual_class"][0]
    assert labels[name] == {"numFaces": c % 3, "labels": {colour[c]: 0.9, "pixel": 0.8}}
    assert json.loads(out.read_text())[0].keys() == {"filename", "numFaces", "labels"}
    # a rerun sends nothing
    assert main(["annotate", f"images.dir={images}", f"labels.path={out}"], client=server.client) == 0
    assert len(server.requests) == -(-len(latent) // 16)
    cfg.paths.labels = str(out)
    metrics = run_train(cfg)
    assert np.isfinite(metrics["test_mape"])
