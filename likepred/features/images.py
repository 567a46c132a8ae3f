"""Image extractors: the post's image file (`image`, streamed to CNNs trained here) and a frozen
pretrained CNN's features of it (`cnn_features`: VGG19 fc2 by default), cached per image content.

Both find a post's image where the downloader puts it: `dir` (`images.dir`; null: the
dataset's image folder, where synthetic data draws its pictures on first use) / the post's
`image` file name (a multi-image post's first), or else the last part of its image URL.
Neither looks at likes.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import ConfigError, LikepredError
from likepred.features import Extractor, register
from likepred.images.download import as_list, clashing_names, distinct_name, is_missing, post_images, safe_name

log = logging.getLogger(__name__)


def image_names(posts: pd.DataFrame, dir=None) -> list:
    """Each post's image file name as the downloader writes it (None: the post names no image).

    A name that different URLs claim is the downloader's `distinct_name` (the URL's hash in it):
    when the clash is among `posts`, or when `dir` holds that file (the clash was with a post
    filtered out of these rows), so every subset of the data finds the picture of its own URL."""
    urls = posts["url_image"] if "url_image" in posts else [None] * len(posts)
    out, pairs = [], []
    for name, url in zip(posts["image"], urls):
        own = post_images(url, name)
        pairs += own
        found = [str(n) for n in as_list(name) if not is_missing(n)]
        if found:  # the post's first name; its URL when the downloader gave that URL this name
            out.append((found[0], own[0][0] if own and own[0][1] == found[0] else None))
            continue
        out.append((own[0][1], own[0][0]) if own else (None, None))
    clashes = clashing_names(pairs)

    def pick(name, url):
        if url is None:
            return name
        distinct = distinct_name(name, url)
        if name in clashes or dir and os.path.isfile(os.path.join(dir, _inside(distinct))):
            return distinct
        return name

    return [pick(name, url) for name, url in out]


class ImageSource(Extractor):
    """Resolves each post's image file; base of the image extractors."""

    uses_images = True

    def __init__(self, dir=None):
        self.dir = dir

    def fit(self, train):
        self.dir_ = self.dir or self.context.image_dir
        if not self.dir_:
            raise ConfigError("images.dir is not set and the data has no image folder: download the images "
                              "(python -m likepred.images download data=... images.dir=DIR) and set images.dir=DIR")
        if not Path(self.dir_).is_dir():
            raise ConfigError(f"images.dir={self.dir_}: not a folder; download the images there with "
                              "`python -m likepred.images download data=... images.dir=...`")
        return self

    def image_paths(self, posts: pd.DataFrame) -> np.ndarray:
        """1-D object array of paths; an absolute name (a planned post's image) is used as is."""
        out = np.empty(len(posts), dtype=object)
        for i, name in enumerate(image_names(posts, self.dir_)):
            if name is None:
                continue
            out[i] = name if os.path.isabs(name) else os.path.join(self.dir_, _inside(name))
        return out


def _inside(name: str) -> str:
    # data names are checked at read time (relative, no '..'; likepred.data.schema): sub-folders
    # are kept (data=instaloader names a profile's folder); anything else is cut to its last part
    parts = name.replace("\\", "/").split("/")
    return os.path.join(*parts) if ".." not in parts and parts[0] != "" else safe_name(name)


@register("image")
class ImageFile(ImageSource):
    """Each post's image file: models that read pixels (cnn_meta, alexnet_cnn) stream them."""

    block = "image"
    paths = True

    def transform(self, posts):
        return pd.DataFrame({"image": self.image_paths(posts)})


# name: (keras.applications class, preprocessing module, feature layer, its width, input side)
NETWORKS = {
    "vgg16": ("VGG16", "vgg16", "fc2", 4096, 224),
    "vgg19": ("VGG19", "vgg19", "fc2", 4096, 224),
    "resnet50": ("ResNet50", "resnet", "avg_pool", 2048, 224),
    "densenet121": ("DenseNet121", "densenet", "avg_pool", 1024, 224),
    "inceptionv3": ("InceptionV3", "inception_v3", "avg_pool", 2048, 299),
    "efficientnetb0": ("EfficientNetB0", "efficientnet", "avg_pool", 1280, 224),
    "efficientnetv2b0": ("EfficientNetV2B0", "efficientnet_v2", "avg_pool", 1280, 224),
    "convnexttiny": ("ConvNeXtTiny", "convnext", "convnext_tiny_head_layernorm", 768, 224),
}


# Networks and layers the ONNX converter handles (plain conv/pool/dense stacks ending in a
# vector): known before the network is built, because the cache key says whether its
# features are int8 and a warm run never builds the network.
PLAIN = {net: ("flatten", "fc1", "fc2", "predictions") for net in ("vgg16", "vgg19")}


def _cache_root(cache_dir) -> Path:
    from likepred.files import cache_root

    return Path(cache_dir) if cache_dir else cache_root() / "features"


@register("cnn_features")
class CnnFeatures(ImageSource):
    """A frozen keras.applications network's `layer` output for each post's image.

    Features are kept in an HDF5 cache keyed by network, layer, weights, input size and the
    image's content hash: a rerun or a sweep extracts nothing twice, and a warm run does not
    even build the network. `weights`: imagenet (Keras downloads them once), null (random,
    seeded: tests); `weights_path`: a local .h5, wins over `weights`. `precision="int8"`: on
    ONNX Runtime, a plain network (PLAIN) runs quantised, ~4x faster on CPUs, under a cache key
    of its own; elsewhere it runs in fp32, with a log line saying so.
    """

    block = "image_features"
    transient = ("model_", "preprocess_", "run_")

    def __init__(self, dir=None, network="vgg19", layer=None, input_size=None, weights="imagenet",
                 weights_path=None, cache_dir=None, batch_size=32, on_missing="error", seed=0, runtime="auto",
                 precision="int8"):
        super().__init__(dir)
        if network not in NETWORKS:
            raise ConfigError(f"model.network={network!r} is not known; known: {', '.join(NETWORKS)}")
        if weights not in ("imagenet", None):
            raise ConfigError(f"model.weights={weights!r}: use imagenet, null (random), or model.weights_path=FILE")
        from likepred.images.files import check_on_missing

        check_on_missing(on_missing)
        self.network, self.weights, self.weights_path = network, weights, weights_path
        _, _, default_layer, width, side = NETWORKS[network]
        self.layer = layer or default_layer
        self.dim = width if self.layer == default_layer else None  # else: known once built
        self.input_size = int(input_size or side)
        self.cache_dir, self.batch_size, self.on_missing, self.seed = cache_dir, int(batch_size), on_missing, seed
        from likepred.images.runtime import PRECISIONS, RUNTIMES

        if runtime not in RUNTIMES:
            raise ConfigError(f"images.extract_runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
        if precision not in PRECISIONS:
            raise ConfigError(f"images.extract_precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.runtime, self.precision = runtime, precision
        self.model_ = self.preprocess_ = self.run_ = self.runtime_ = None

    def _weights_id(self) -> str:
        if self.weights_path:
            from likepred.images.cache import content_hash

            if not Path(self.weights_path).is_file():
                raise ConfigError(f"model.weights_path={self.weights_path}: file not found")
            return "file-" + content_hash(self.weights_path)[:16]
        return "imagenet" if self.weights == "imagenet" else f"random-seed{self.seed}"

    def _int8(self) -> bool:
        """Whether this network runs quantised (decided without building it)."""
        from likepred.images.runtime import available

        if self.precision != "int8":
            return False
        why = ("images.extract_runtime=keras" if self.runtime == "keras" else
               "onnxruntime is not installed" if not available() else
               f"the ONNX converter does not handle {self.network}.{self.layer}"
               if self.layer not in PLAIN.get(self.network, ()) else None)
        if why:
            log.info("image features: fp32, not int8: %s", why)
        return why is None

    def fit(self, train):
        super().fit(train)
        from likepred.images.cache import FeatureCache, extractor_key
        from likepred.images.runtime import QUANTISATION

        self.int8_ = self._int8()
        if self.dim is None:
            self._net()
        key = extractor_key(f"{self.network}.{self.layer}", self._weights_id(), self.input_size)
        self.cache_ = FeatureCache(_cache_root(self.cache_dir), key + (f"|{QUANTISATION}" if self.int8_ else ""),
                                   self.dim)
        return self

    def _net(self):
        """The Keras network up to `layer`, its preprocessing and its output width."""
        import keras

        cls, module, *_ = NETWORKS[self.network]
        weights = self.weights_path or self.weights
        if weights is None:
            keras.utils.set_random_seed(int(self.seed))  # random features, same in every run
        try:
            base = getattr(keras.applications, cls)(weights=weights, include_top=True,
                                                    input_shape=(self.input_size, self.input_size, 3))
        except ValueError as e:  # e.g. imagenet weights with another input size
            raise ConfigError(f"model.network={self.network} (input_size {self.input_size}, "
                              f"weights {weights}): {e}") from None
        except Exception as e:  # the weights download failed (offline?)
            if weights != "imagenet":
                raise
            raise ConfigError(_offline_message(self.network, keras_models_dir(), e)) from None
        try:
            out = base.get_layer(self.layer).output
        except ValueError:
            raise ConfigError(f"model.layer={self.layer!r}: {self.network} has no such layer; "
                              f"its last layers: {', '.join(l.name for l in base.layers[-4:])}") from None
        self.model_ = keras.Model(base.input, out, name=f"{self.network}_{self.layer}")
        self.preprocess_ = getattr(keras.applications, module).preprocess_input
        self.dim = int(np.prod(out.shape[1:]))

    def _build(self):
        """The network on its runtime, ready to extract."""
        from likepred.images.runtime import calibration_images, runner

        if self.model_ is None:
            self._net()
        if not getattr(self, "int8_", False):  # fp32, or a model packaged before int8 existed
            self.run_, self.runtime_ = runner(self.model_, self.runtime)
            return
        cal = self.preprocess_(calibration_images(self.input_size))
        saved = self.cache_.file.with_name(self.cache_.file.stem + ".int8.onnx")
        self.run_, self.runtime_ = runner(self.model_, self.runtime, "int8", cal, saved)
        if self.runtime_ != "onnx-int8":  # PLAIN promised a network the converter handles
            raise LikepredError(f"{self.network}.{self.layer} did not convert for int8: "
                                f"set images.extract_precision=fp32")

    def _extract(self, paths):
        from likepred.images.files import load_image

        if self.run_ is None:
            self._build()
        # Keras pads to one batch shape (a new shape would recompile the network); ONNX Runtime
        # takes any batch as it is.
        n = len(paths) if self.runtime_.startswith("onnx") else max(len(paths), self.batch_size)
        x = np.zeros((n, self.input_size, self.input_size, 3), np.float32)
        for i, p in enumerate(paths):
            x[i] = load_image(p, self.input_size)
        feats = self.run_(self.preprocess_(x))
        return np.asarray(feats)[:len(paths)].reshape(len(paths), -1)

    def transform(self, posts):
        from likepred.images.cache import cached_features
        from likepred.images.files import missing_files, report_once

        paths = self.image_paths(posts)
        missing = missing_files(list(paths), self.on_missing)
        ok = np.array([p not in missing for p in paths], bool)
        feats = np.zeros((len(posts), self.dim), np.float32)
        if ok.any():
            errors = "raise" if self.on_missing == "error" else "nan"
            got = cached_features(paths[ok], self._extract, self.cache_, self.batch_size, errors=errors,
                                  progress=sys.stderr.isatty())  # a bar with its ETA on a terminal
            bad = np.isnan(got).any(axis=1)
            report_once(list(paths[ok][bad]), "unreadable:")
            feats[ok] = np.nan_to_num(got)  # a skipped image: all-zero features
            stats = self.cache_.stats
            log.info("%s features: %d from the cache, %d extracted%s, %d failed (%.1fs)", self.network, stats.hits,
                     stats.computed, f" on {self.runtime_}" if self.runtime_ else "", stats.failed, stats.seconds)
        return pd.DataFrame(feats, columns=[f"{self.network}_{self.layer}_{i}" for i in range(self.dim)])


TFKA = "https://storage.googleapis.com/tensorflow/keras-applications/"
# name: the ImageNet weights file (with the top: the feature layers need it) and where Keras gets it
WEIGHTS = {
    "vgg16": TFKA + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    "vgg19": TFKA + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
    "resnet50": TFKA + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "densenet121": TFKA + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
    "inceptionv3": TFKA + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
    "efficientnetb0": "https://storage.googleapis.com/keras-applications/efficientnetb0.h5",
    "efficientnetv2b0": TFKA + "efficientnet_v2/efficientnetv2-b0.h5",
    "convnexttiny": TFKA + "convnext/convnext_tiny.h5",
}


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models (as Keras picks it)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "models"


def _reachable(url, timeout=3.0) -> bool:
    """Can a TCP connection to the URL's host be opened within `timeout` s (DNS included)?"""
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("LIKEPRED_OFFLINE", "") not in ("", "0"):
        return False
    host, ok = urlparse(url).hostname, []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout)
    return bool(ok)


def check_weights(network, weights, weights_path) -> None:
    """Refuse, before any image is drawn or read, pretrained weights that cannot be had."""
    if weights_path:
        if not Path(weights_path).is_file():
            raise ConfigError(f"model.weights_path={weights_path}: file not found")
        return
    if weights != "imagenet" or network not in WEIGHTS:
        return
    url = WEIGHTS[network]
    where = keras_models_dir()
    if (where / url.rsplit("/", 1)[1]).is_file() or _reachable(url):
        return
    raise ConfigError(_offline_message(network, where, "offline or unreachable"))


def _offline_message(network, where, error) -> str:
    url = WEIGHTS.get(network)
    name = url.rsplit("/", 1)[1] if url else f"the {network} ImageNet weights (.h5)"
    return (f"model.weights=imagenet: {name} is not in {where} and cannot be downloaded ({error}); "
            f"fetch {url or 'it'} on a machine with network and copy it into {where}, or pass "
            f"model.weights_path=/path/to/{name if url else 'weights.h5'} (model.weights=null: random weights, for tests)")


def check_cnn_weights(cfg):
    """The cnn_features extractor's weights, checked before any data is read (likepred.checks runs it)."""
    for name, p in (cfg.features.get("extractors") or {}).items():
        if name == "cnn_features" and p:
            check_weights(p.get("network", "vgg19"), p.get("weights", "imagenet"), p.get("weights_path"))
