"""Image models end to end: streaming loader, image extractors, the three nets, the commands."""

import json
import logging
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT
from likepred.errors import ConfigError, DataError
from likepred.synthetic.images import render_images
from test_download import server  # noqa: F401  (the local HTTP server fixture)

SMALL = ["data.image_size=16", "images.workers=1"]  # drawn 16x16: the classes still show


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """48 synthetic 64x64 JPEGs, class i % 8."""
    folder = tmp_path_factory.mktemp("pictures")
    rows = pd.DataFrame({"filename": [f"p{i:03d}.jpg" for i in range(48)], "visual_class": [i % 8 for i in range(48)]})
    rows.to_csv(folder / "latent.csv", index=False)
    render_images(folder / "latent.csv", folder / "img", size=64, progress=False)
    return np.array([str(folder / "img" / f) for f in rows["filename"]], dtype=object)


def batches(paths, **kw):
    from likepred.images.dataset import ImageBatches

    meta = np.arange(len(paths) * 3, dtype=np.float32).reshape(-1, 3)
    return ImageBatches({"image": paths, "meta": meta}, kw.pop("y", np.arange(len(paths), dtype=np.float32)), **kw)


# ---------------------------------------------------------------- the loader


def test_loader_shapes_scaling_and_order(pictures):
    from likepred.images.files import load_image

    ds = batches(pictures, size=32, batch_size=10)
    assert len(ds) == 5
    x, y, w = ds[0]
    assert x["image"].shape == (10, 32, 32, 3) and x["image"].dtype == np.float32
    assert x["meta"].shape == (10, 3) and y.shape == (10,) and w.tolist() == [1.0] * 10
    assert 0.0 <= x["image"].min() and x["image"].max() <= 1.0 and x["image"].std() > 0.05
    np.testing.assert_allclose(x["image"][3], load_image(pictures[3], 32) / 255, atol=1e-6)
    np.testing.assert_array_equal(y, np.arange(10))  # unshuffled: rows in order
    last = ds[4]
    assert last[0]["image"].shape == (8, 32, 32, 3) and last[1].tolist() == list(range(40, 48))

    signed = batches(pictures, size=16, batch_size=4, scale="signed")[0][0]["image"]
    assert signed.min() < -0.5 and signed.max() <= 1.0 and signed.shape == (4, 16, 16, 3)
    (x_only,) = batches(pictures, size=16, batch_size=4, y=None)[1]  # prediction batches: inputs only
    assert set(x_only) == {"image", "meta"}

    shuffled = batches(pictures, size=16, batch_size=16, shuffle=True, seed=3)
    epoch1 = np.concatenate([shuffled[i][1] for i in range(len(shuffled))])
    shuffled.on_epoch_end()
    epoch2 = np.concatenate([shuffled[i][1] for i in range(len(shuffled))])
    assert sorted(epoch1) == sorted(epoch2) == list(range(48))  # every row once per epoch
    assert epoch1.tolist() != list(range(48)) and epoch1.tolist() != epoch2.tolist()

    with pytest.raises(ConfigError, match="images.scale"):
        batches(pictures, scale="bgr")
    with pytest.raises(ConfigError, match="images.on_missing"):
        batches(pictures, on_missing="ignore")


def test_loader_never_holds_the_dataset(pictures):
    paths = np.concatenate([pictures] * 5)  # 240 images
    size, batch = 64, 8
    ds = batches(paths, size=size, batch_size=batch)
    whole = len(paths) * size * size * 3 * 4  # all images as float32: 11.8 MB
    one = batch * size * size * 3 * 4
    tracemalloc.start()
    try:
        for i in range(len(ds)):
            x, _, _ = ds[i]
            assert x["image"].shape[0] <= batch
        del x
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * one < whole / 7, (peak, one, whole)


def test_missing_and_corrupt_images(pictures, tmp_path, caplog):
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(open(pictures[0], "rb").read()[:200])  # a JPEG cut short
    paths = np.array([*pictures[:5], str(tmp_path / "gone.jpg"), str(bad), None], dtype=object)

    with pytest.raises(DataError, match=r"gone.jpg: 2 of 8 images are missing \(gone.jpg, \(a post without"):
        batches(paths, size=16, batch_size=8)
    with pytest.raises(DataError, match="cut.jpg: cannot read the image"):
        batches(np.array([*pictures[:5], str(bad)], dtype=object), size=16, batch_size=8)[0]

    caplog.set_level(logging.WARNING)
    ds = batches(paths, size=16, batch_size=8, on_missing="skip")
    for _ in range(2):  # two epochs: each bad file is still named once
        x, _, w = ds[0]
        ds.on_epoch_end()
    assert w.tolist() == [1] * 5 + [0] * 3
    assert (x["image"][5:] == 0).all() and (x["image"][:5] != 0).any()
    text = caplog.text
    assert text.count("gone.jpg") == 1 and text.count("cut.jpg") == 1, text


# ---------------------------------------------------------------- extractors and data


def test_synthetic_images_drawn_only_when_asked(make_cfg):
    from likepred.data import load_dataset
    from likepred.features import build_features

    cfg = make_cfg("data.image_size=24", "features=metadata_image")
    data = load_dataset(cfg.data)
    folder = data.image_dir
    assert folder.endswith("images_24") and not os.path.exists(folder)  # metadata-only runs draw nothing

    features = build_features(cfg.features, data)
    assert features.needs_images
    data.ensure_images()  # the train step draws them, once, because the features need them
    out = features.fit_transform(data.posts)
    paths = out["image"]
    assert paths.dtype == object and paths.shape == (len(data.posts),) and out["meta"].dtype == np.float32
    assert all(os.path.dirname(p) == folder for p in paths)
    with Image.open(paths[0]) as img:
        assert img.size == (24, 24)
    stamp = os.path.getmtime(paths[0])
    assert data.ensure_images() == folder and os.path.getmtime(paths[0]) == stamp  # drawn once


def test_cnn_features_settings_are_checked(tmp_path):
    from likepred.features.images import CnnFeatures

    posts = pd.DataFrame({"image": ["a.jpg"], "url_image": None})
    with pytest.raises(ConfigError, match="known: vgg16, vgg19"):
        CnnFeatures(network="alexnet")
    with pytest.raises(ConfigError, match="model.weights='imagenet21k'"):
        CnnFeatures(weights="imagenet21k")
    with pytest.raises(ConfigError, match="weights_path=.*nope.h5: file not found"):
        CnnFeatures(dir=str(tmp_path), weights_path=str(tmp_path / "nope.h5"), cache_dir=str(tmp_path)).fit(posts)
    with pytest.raises(ConfigError, match="images.dir=.*not a folder"):
        CnnFeatures(dir=str(tmp_path / "none")).fit(posts)


@pytest.mark.slow
def test_offline_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    """Keras's own download fails as it does offline; nothing is downloaded."""
    import urllib.error

    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    from likepred.features.images import CnnFeatures

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # an empty Keras cache
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    ex = CnnFeatures(network="vgg19", weights="imagenet")
    with pytest.raises(ConfigError) as err:
        ex._build()
    msg = str(err.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels.h5" in msg and "model.weights_path=" in msg
    assert "keras/models" in msg and not list(tmp_path.rglob("*.h5"))


def test_vgg19_without_reachable_weights_stops_before_drawing(tmp_path):
    """Offline, no weights in the Keras cache, no weights_path: one line, before any image is drawn."""
    keras_home, cache = tmp_path / "keras", tmp_path / "cache"
    env = {"KERAS_HOME": str(keras_home), "LIKEPRED_OFFLINE": "1", "LIKEPRED_CACHE": str(cache)}
    proc = run(["model=vgg19_dense", f"hydra.run.dir={tmp_path}/o"], tmp_path, env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()  # one line, printed once
    assert line.startswith("likepred: error: model.weights=imagenet: vgg19_weights_tf_dim_ordering_tf_kernels.h5 ")
    assert f"{keras_home}/models" in line and "https://storage.googleapis.com/" in line
    assert "model.weights_path=" in line and "file " not in line.split("error:")[1][:20]  # no image blamed
    # nothing drawn, not even the profiles (the writability check may have made the empty folder)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_weights_check_finds_the_keras_cache_and_weights_path(tmp_path, monkeypatch):
    from likepred.features.images import check_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("LIKEPRED_OFFLINE", "1")
    with pytest.raises(ConfigError, match="vgg16_weights_tf_dim_ordering_tf_kernels.h5 is not in"):
        check_weights("vgg16", "imagenet", None)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5").write_bytes(b"x")
    check_weights("vgg16", "imagenet", None)  # downloaded once before: fine offline
    check_weights("vgg19", None, None)  # random weights need nothing
    with pytest.raises(ConfigError, match="model.weights_path=.*gone.h5: file not found"):
        check_weights("vgg19", "imagenet", str(tmp_path / "gone.h5"))


def test_onnx_runtime_matches_keras_and_falls_back(caplog):
    pytest.importorskip("onnxruntime")
    import keras

    from likepred.images.runtime import runner

    keras.utils.set_random_seed(0)
    layers = keras.layers
    net = keras.Sequential([keras.Input((20, 20, 3)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                            layers.MaxPooling2D(), layers.Conv2D(6, 3, activation="relu"), layers.Dropout(0.5),
                            layers.Flatten(), layers.Dense(8, activation="relu"), layers.Dense(5)], name="small")
    x = np.random.default_rng(0).normal(size=(3, 20, 20, 3)).astype(np.float32) * 40
    fn, name = runner(net, "auto")
    assert name == "onnx"
    np.testing.assert_allclose(fn(x), net.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    assert fn(x[:1]).shape == (1, 5)  # any batch size
    other = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3), layers.BatchNormalization(),
                              layers.Flatten()], name="with_bn")
    caplog.set_level(logging.INFO, logger="likepred.images.runtime")
    fn, name = runner(other, "auto")
    assert name == "keras" and "with_bn on Keras (the converter does not handle layer" in caplog.text
    assert fn(x[:2, :8, :8]).shape == (2, 72)
    with pytest.raises(ConfigError, match="images.extract_runtime=onnx: the converter does not handle"):
        runner(other, "onnx")
    assert runner(net, "keras")[1] == "keras"


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_int8_network_is_close_to_fp32_built_once_and_rebuilt_when_damaged(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    import keras

    from likepred.images.runtime import calibration_images, runner

    keras.utils.set_random_seed(0)
    layers = keras.layers
    net = keras.Sequential([keras.Input((24, 24, 3)), layers.Conv2D(8, 3, padding="same", activation="relu"),
                            layers.MaxPooling2D(), layers.Conv2D(16, 3, padding="same", activation="relu"),
                            layers.MaxPooling2D(), layers.Flatten(), layers.Dense(32, activation="relu")], name="tiny")
    cal = calibration_images(24) - 128.0
    assert cal.shape == (32, 24, 24, 3) and np.array_equal(cal, calibration_images(24) - 128.0)  # the same every run
    x = calibration_images(24, n=6, seed=5) - 128.0  # other images than the calibration's
    fp32 = runner(net, "onnx")[0](x)
    saved = tmp_path / "tiny.int8.onnx"
    caplog.set_level(logging.INFO, logger="likepred.images.runtime")
    fn, name = runner(net, "auto", "int8", cal, saved)
    assert name == "onnx-int8" and "quantising tiny to int8" in caplog.text and saved.is_file()
    int8 = fn(x)
    assert not np.allclose(int8, fp32, rtol=1e-4, atol=1e-4)  # it is quantised...
    assert _cosines(int8, fp32).min() > 0.99  # ...and close
    raw = saved.read_bytes()
    caplog.clear()
    np.testing.assert_array_equal(runner(net, "auto", "int8", cal, saved)[0](x), int8)  # read back, not rebuilt
    assert "quantising" not in caplog.text
    saved.write_bytes(raw[: len(raw) // 2])  # cut short by a crash or a full disk
    fn, _ = runner(net, "auto", "int8", cal, saved)
    assert "does not load" in caplog.text and "quantising tiny" in caplog.text
    np.testing.assert_array_equal(fn(x), int8)  # the recipe is deterministic: the same network again
    assert saved.read_bytes() == raw


@pytest.mark.slow
def test_cnn_features_same_on_both_runtimes_and_int8_close_under_its_own_key(pictures, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    from likepred.features.images import CnnFeatures

    posts = pd.DataFrame({"image": [os.path.basename(p) for p in pictures[:5]]})
    caplog.set_level(logging.INFO, logger="likepred")
    out, keys = {}, {}
    for runtime, precision in (("keras", "int8"), ("onnx", "fp32"), ("onnx", "int8")):
        ex = CnnFeatures(dir=os.path.dirname(pictures[0]), weights=None, input_size=32, batch_size=4,
                         cache_dir=str(tmp_path / f"{runtime}-{precision}"), runtime=runtime,
                         precision=precision).fit(posts)
        out[runtime, precision] = ex.transform(posts).to_numpy()
        keys[runtime, precision] = ex.cache_.key
        assert ex.runtime_ == ("onnx-int8" if (runtime, precision) == ("onnx", "int8") else runtime)
    assert "fp32, not int8: images.extract_runtime=keras" in caplog.text
    assert "pre-processing" not in caplog.text  # onnxruntime's advice, not for this graph
    assert out["keras", "int8"].shape == (5, 4096)
    np.testing.assert_allclose(out["onnx", "fp32"], out["keras", "int8"], rtol=1e-3, atol=1e-4)
    assert keys["onnx", "fp32"] == keys["keras", "int8"] != keys["onnx", "int8"]  # int8 features: a cache of their own
    assert _cosines(out["onnx", "int8"], out["onnx", "fp32"]).min() > 0.99
    assert not np.allclose(out["onnx", "int8"], out["onnx", "fp32"], rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("command", [["features=metadata_image", "model=cnn_meta"],
                                     ["model=alexnet_cnn", "target=positivity"]])
def test_each_streaming_model_builds_and_trains(make_cfg, command):
    from test_models import prepared

    from likepred.models import build_model

    cfg = make_cfg(*command, "trainer.epochs=1", "trainer.batch_size=1024", *SMALL)  # one step
    data, pipe, train, val, test = prepared(cfg)
    assert train.inputs["image"].dtype == object  # paths: the images stream from disk
    est = build_model(cfg)
    logs = []
    est.fit(train, None, on_epoch=lambda e, log: logs.append(log))
    pred = pipe.predict_likes(est, test)
    assert len(logs) == 1 and np.isfinite(logs[0]["loss"])
    assert pred.shape == (len(test),) and np.isfinite(pred).all()
    assert "image" in [t.name for t in est.model.inputs] and len(est.model.trainable_weights) > 0


@pytest.mark.slow
def test_vgg19_dense_trains_on_cached_features(make_cfg, caplog):
    """`python -m likepred model=vgg19_dense`, shrunk: the second run extracts nothing."""
    from likepred.train import train

    cfg = make_cfg("model=vgg19_dense", "model.weights=null", "model.input_size=32", "data.n_users=6",
                   "trainer.epochs=2", *SMALL)
    assert cfg.features.name == "image_cnn" and cfg.target.name == "positivity"
    caplog.set_level(logging.INFO, logger="likepred.features.images")
    first = train(cfg)
    assert "features: 0 from the cache" in caplog.text and np.isfinite(first["test_mape"])
    caplog.clear()
    again = train(cfg)
    assert again["test_mape"] == first["test_mape"]
    assert " 0 extracted" in caplog.text and "features: 0 from the cache" not in caplog.text, caplog.text


def test_image_model_without_image_block_says_which_features(make_cfg):
    from test_models import prepared

    from likepred.models import build_model

    cfg = make_cfg("model=cnn_meta", "features=metadata")
    _, _, train, val, _ = prepared(cfg)
    with pytest.raises(ConfigError, match="needs the `image` input block.*features=metadata_image"):
        build_model(cfg).fit(train, val)


@pytest.mark.slow
def test_cnn_meta_beats_dense_meta(make_cfg):
    """The synthetic images carry the post's visual class (up to +-0.6 in log likes)."""
    from likepred.train import train

    common = ["trainer.epochs=8", "seed=0", *SMALL]
    dense = train(make_cfg("model=dense_meta", *common))
    cnn = train(make_cfg("features=metadata_image", "model=cnn_meta", *common))
    assert cnn["test_mape"] < dense["test_mape"] - 5, (cnn["test_mape"], dense["test_mape"])
    assert cnn["mape_vs_baseline"] < 0


# ---------------------------------------------------------------- the commands


def run(args, cwd, env_extra=None, module="likepred"):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_commands_compose_what_they_need(make_cfg):
    """The model configs pull their features; the command line and experiments still win."""
    cases = {
        ("model=vgg19_dense",): ("image_cnn", "positivity", "vgg19"),
        ("data=synthetic", "features=metadata_image", "model=cnn_meta"): ("metadata_image", "positivity", None),
        ("data=synthetic", "model=alexnet_cnn", "target=positivity"): ("image", "positivity", None),
        ("model=cnn_meta",): ("metadata_image", "positivity", None),
        ("model=vgg19_dense", "features=image"): ("image", "positivity", None),
        ("+experiment=approach2",): ("metadata_image", "likes", None),
        ("+experiment=approach4",): ("image", "positivity", None),
        ("+experiment=approach4_vgg19",): ("image_cnn", "positivity", "vgg19"),
    }
    for args, (features, target, network) in cases.items():
        cfg = make_cfg(*args, tiny=False)
        assert (cfg.features.name, cfg.target.name) == (features, target), args
        if network:
            ex = cfg.features.extractors.cnn_features
            assert (ex.network, ex.weights, ex.input_size) == (network, "imagenet", None)
    cfg = make_cfg("model=dense_meta", tiny=False)
    assert cfg.features.name == "metadata_history" and cfg.images.size == 64  # synthetic draws 64x64
    assert make_cfg("data=profiles", "data.path=x", tiny=False).images.size == 256  # the study's


@pytest.mark.slow
def test_cnn_meta_command_logs_error_grid(cache_dir, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tiny = ["data.n_users=10", "data.min_posts=10", "data.max_posts=12", "trainer.epochs=1", *SMALL]
    proc = run(["data=synthetic", "features=metadata_image", "model=cnn_meta", *tiny, f"tracking.uri={uri}",
                "tracking.experiment=img", f"tracking.artifact_root={tmp_path}/art", f"hydra.run.dir={tmp_path}/o"],
               tmp_path, {"LIKEPRED_CACHE": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("img").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "cnn_meta-metadata_image-mape-chrono on synthetic"
    assert "test_mape" in found.data.metrics
    (model,) = client.search_logged_models([found.info.experiment_id])  # the packaged model, a logged model
    assert model.source_run_id == found.info.run_id
    assert "features/error_grid.png" in [a.path for a in client.list_artifacts(found.info.run_id, "features")]
    with Image.open(client.download_artifacts(found.info.run_id, "features/error_grid.png", str(tmp_path))) as img:
        assert img.size[0] > 600 and img.size[1] > 200


def _profile(alias, posts):
    return {"alias": alias, "numberPosts": len(posts), "numberFollowers": 100, "numberFollowing": 10,
            "posts": [{"date": f"2017-0{i + 1}-01T10:00:00.000Z", "numberLikes": 5, "tags": [], "mentions": [],
                       **p} for i, p in enumerate(posts)]}


@pytest.mark.slow
def test_download_command(server, tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ann.json").write_text(json.dumps(_profile("ann", [
        {"urlImage": server.url("/img/ann1.jpg"), "filename": "ann_1.jpg"},
        {"urlImage": [server.url("/png/x.png"), server.url("/img/y.jpg")], "multipleImage": True},
    ])))
    (folder / "bob.json").write_text(json.dumps(_profile("bob", [{"urlImage": server.url("/missing/bob.jpg")}])))
    out = tmp_path / "images"
    args = ["download", "data=profiles", f"data.path={folder}", f"images.dir={out}", "images.size=24",
            "images.download.retries=0"]
    proc = run(args, tmp_path, module="likepred.images")
    assert proc.returncode == 1, proc.stderr  # one failed
    assert "3 downloaded, 0 skipped (already complete), 1 failed" in proc.stdout + proc.stderr
    assert sorted(p.name for p in out.glob("*.*g")) == ["ann_1.jpg", "x.png", "y.jpg"]  # every image, own names
    with Image.open(out / "x.png") as img:
        assert (img.format, img.size) == ("JPEG", (24, 24))
    failures = (out / "download_failures.csv").read_text()
    assert "bob.jpg,HTTP 404" in failures

    again = run(args, tmp_path, module="likepred.images")
    assert "0 downloaded, 3 skipped" in again.stdout + again.stderr
    assert server.hits["/img/ann1.jpg"] == 1

    bad = run(["download", "data=profiles", f"data.path={folder}"], tmp_path, module="likepred.images")
    assert bad.returncode == 2 and "images.dir is not set" in bad.stderr and "Traceback" not in bad.stderr
    code = ("import sys, runpy; sys.argv=['x', '--help']\n"
            "try:\n    runpy.run_module('likepred.images', run_name='__main__')\nexcept SystemExit: pass\n"
            "assert 'keras' not in sys.modules and 'hydra' not in sys.modules, 'heavy import'\n")
    helped = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert helped.returncode == 0 and "images.download.workers" in helped.stdout, helped.stderr
