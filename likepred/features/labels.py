"""Image content labels (the study's approaches 3 and 5).

- `label_vocab`: the labels seen in at least `min_count` train images, one-hot
  or score encoded.
- `label_ae`: those vectors compressed by a dense autoencoder fitted on the
  train images (sigmoid decoder, binary cross-entropy).
- `label_clusters`: k-means on the codes, and per user and cluster the mean
  (positivity - 1) of the user's TRAIN posts in it, mapped to +1/-1/0 by
  `alpha` (leave-one-out for train rows).
- `label_clusters_leaky`: the study's scores, from a random half of ALL the
  user's posts (test posts included); `split=legacy` only.

Posts whose image is not in the label file get zeros and `has_labels` = 0.
The fitted autoencoder is kept as numpy weights: transform needs no Keras
and the extractor pickles.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from likepred.errors import ConfigError, DataError
from likepred.features import Extractor, register

log = logging.getLogger(__name__)

ENCODINGS = ("onehot", "score")
ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "linear": lambda z: z,
}
ANNOTATE_HINT = "create it with: python -m likepred.labels annotate images.dir=DIR labels.path=FILE"


def image_name(value) -> str | None:
    """The post's image file name (the first of a multi-image post): label files key base names."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return os.path.basename(value) if isinstance(value, str) and value else None  # None, NaN: no image


def read_label_file(path) -> dict:
    from likepred.labels.labelfile import load_labels

    if not path:
        raise ConfigError(f"label features need a label file: set paths.labels ({ANNOTATE_HINT})")
    if not Path(path).is_file():
        raise DataError(f"label file not found; {ANNOTATE_HINT} (or set paths.labels)", file=path)
    return load_labels(path)


@register("label_vocab")
class LabelVocab(Extractor):
    """Labels seen in >= `min_count` train images, one-hot or score encoded, plus the face count."""

    uses_labels = True  # and so every label extractor below (they all read context.labels_path)

    def __init__(self, min_count=10, encoding="onehot", faces=True, block="meta"):
        if encoding not in ENCODINGS:
            raise ConfigError(f"features.extractors.{self.name}.encoding: {encoding!r}; choose {' or '.join(ENCODINGS)}")
        self.min_count, self.encoding, self.faces, self.block = int(min_count), encoding, bool(faces), block
        self.labels_ = None

    def _records(self, posts) -> list:
        if self.labels_ is None:
            self.labels_ = read_label_file(self.context.labels_path)
        return [self.labels_.get(image_name(v)) for v in posts["image"]]

    def fit(self, train):
        seen = {}
        for v, rec in zip(train["image"], self._records(train)):
            if rec is not None:
                seen[image_name(v)] = rec
        counts = Counter(d for rec in seen.values() for d in rec["labels"])
        vocab = sorted((d for d, c in counts.items() if c >= self.min_count), key=lambda d: (-counts[d], d))
        if not vocab:
            raise DataError(f"no label appears in {self.min_count} of the {len(seen)} labelled train images; "
                            f"lower features.extractors.{self.name}.min_count", file=self.context.labels_path)
        self.vocab_ = vocab
        self.index_ = {d: i for i, d in enumerate(vocab)}
        self.train_images_ = sorted(seen)
        return self

    def encode(self, posts):
        """(label matrix, has_labels, log1p faces), one row per post."""
        recs = self._records(posts)
        x = np.zeros((len(recs), len(self.vocab_)), dtype=np.float32)
        has = np.array([r is not None for r in recs])
        faces = np.array([np.log1p(r["numFaces"]) if r else 0.0 for r in recs], dtype=np.float32)
        for row, rec in enumerate(recs):
            for d, s in (rec["labels"].items() if rec else ()):
                if d in self.index_:
                    x[row, self.index_[d]] = 1.0 if self.encoding == "onehot" else s
        if not has.all():
            log.info("%s: %d of %d posts have no labels (encoded as zeros, has_labels=0)",
                     self.name, int((~has).sum()), len(has))
        return x, has, faces

    def _frame(self, cols: dict, has, faces) -> pd.DataFrame:
        cols["has_labels"] = has.astype(np.float32)
        if self.faces:
            cols["log_num_faces"] = faces
        return pd.DataFrame(cols)

    def transform(self, posts):
        x, has, faces = self.encode(posts)
        return self._frame({f"label_{d}": x[:, i] for i, d in enumerate(self.vocab_)}, has, faces)

    def report(self, posts):
        return {"labelled_frac": float(np.mean(self.encode(posts)[1])) if len(posts) else float("nan")}


def fit_autoencoder(x, encoding_dim, activation, epochs, batch_size, lr, seed):
    """Dense autoencoder (sigmoid decoder, binary cross-entropy); returns its weights as numpy."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(int(seed))
    inp = keras.Input(shape=(x.shape[1],))
    code = layers.Dense(encoding_dim, activation=activation, name="code")(inp)
    out = layers.Dense(x.shape[1], activation="sigmoid", name="reconstruction")(code)
    ae = keras.Model(inp, out, name="label_autoencoder")
    ae.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="binary_crossentropy")
    hist = ae.fit(x, x, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    log.info("label autoencoder: %d images x %d labels -> %d, train loss %.4f after %d epochs",
             len(x), x.shape[1], encoding_dim, hist.history["loss"][-1], epochs)
    return [np.asarray(w, dtype=np.float64) for layer in ("code", "reconstruction")
            for w in ae.get_layer(layer).get_weights()]


def bce(x, p, eps=1e-7):
    p = np.clip(p, eps, 1 - eps)
    return float(np.mean(-(x * np.log(p) + (1 - x) * np.log(1 - p))))


def symmetric_difference(x, p, threshold):
    """The study's measure: mean size of (input labels) xor (output labels above threshold)."""
    return float(np.mean(np.sum((x > 0) != (p > threshold), axis=1)))


@register("label_ae")
class LabelAutoencoder(LabelVocab):
    """The encoded labels compressed to `encoding_dim` codes by an autoencoder fitted on train images."""

    def __init__(self, encoding_dim=50, activation="relu", epochs=50, batch_size=64, lr=1e-3,
                 threshold=0.5, seed=0, **vocab):
        super().__init__(**vocab)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"features.extractors.{self.name}.activation: {activation!r}; "
                              f"known: {', '.join(ACTIVATIONS)}")
        self.encoding_dim, self.activation, self.epochs = int(encoding_dim), activation, int(epochs)
        self.batch_size, self.lr, self.threshold, self.seed = int(batch_size), float(lr), float(threshold), int(seed)

    def fit(self, train):
        super().fit(train)
        names = pd.Series([image_name(v) for v in train["image"]])
        first = ~names.duplicated().to_numpy()  # each train image once
        x, has, _ = self.encode(train[first])
        self.weights_ = fit_autoencoder(x[has], self.encoding_dim, self.activation, self.epochs,
                                        self.batch_size, self.lr, self.seed)
        return self

    def codes(self, x):
        w, b = self.weights_[:2]
        return ACTIVATIONS[self.activation](x @ w + b)

    def reconstruct(self, x):
        w, b = self.weights_[2:]
        return ACTIVATIONS["sigmoid"](self.codes(x) @ w + b)

    def _codes_of(self, posts):
        x, has, faces = self.encode(posts)
        z = np.where(has[:, None], self.codes(x), 0.0).astype(np.float32)
        return z, has, faces

    def transform(self, posts):
        z, has, faces = self._codes_of(posts)
        return self._frame({f"label_code_{i}": z[:, i] for i in range(z.shape[1])}, has, faces)

    def report(self, posts):
        x, has, _ = self.encode(posts)
        out = {"labelled_frac": float(np.mean(has)) if len(has) else float("nan")}
        if has.any():
            p = self.reconstruct(x[has])
            out["bce"] = bce(x[has], p)
            out["symdiff"] = symmetric_difference(x[has], p, self.threshold)
            out["n_labels"] = float(np.mean(np.sum(x[has] > 0, axis=1)))
        return out


def montage(rows: dict, path, size: int) -> Path:
    """A PNG grid: one row of `size`-pixel thumbnails per title (unreadable files left blank)."""
    from PIL import Image, ImageDraw

    from likepred.images.files import READ_ERRORS, load_image

    label_w, cols = 6 * max(len(t) for t in rows) + 8, max(len(v) for v in rows.values())
    sheet = Image.new("RGB", (label_w + cols * (size + 4), len(rows) * (size + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, files) in enumerate(rows.items()):
        y = r * (size + 4)
        draw.text((4, y + size // 2 - 6), title, fill="black")
        for c, f in enumerate(files):
            try:
                sheet.paste(Image.fromarray(load_image(str(f), size)), (label_w + c * (size + 4), y + 2))
            except READ_ERRORS as e:
                log.warning("cluster montage: skipped %s (%s)", f, e)
    sheet.save(path)
    return Path(path)


def user_scores(likes, clusters, k, alpha, leave_one_out):
    """Per row (LOO) or per user: mean(positivity - 1) per cluster, thresholded to +1/-1/0.

    `likes`, `clusters` are one user's rows (cluster -1: no labels). With
    leave_one_out, row r's scores use the user's other rows only, the
    positivity base (their mean likes) included; else one row of scores.
    """
    n = len(likes)
    if n == 0 or (leave_one_out and n == 1):
        return np.zeros((n if leave_one_out else 1, k))
    onehot = np.zeros((n, k))
    labelled = clusters >= 0
    onehot[np.flatnonzero(labelled), clusters[labelled]] = 1.0
    if leave_one_out:
        keep = 1.0 - np.eye(n)  # keep[r, i]: row i counts for row r
        base = (likes.sum() - likes) / (n - 1)
    else:
        keep, base = np.ones((1, n)), np.array([likes.mean()])
    # positivity - 1 of each counted row; a base of 0 likes says nothing
    pos = np.divide(likes[None, :], base[:, None], out=np.ones((len(base), n)), where=base[:, None] > 0) - 1.0
    sums, counts = (pos * keep) @ onehot, keep @ onehot
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return np.where(mean > alpha, 1.0, np.where(mean < -alpha, -1.0, 0.0))


@register("label_clusters")
class LabelClusters(LabelAutoencoder):
    """Codes, plus the user's +1/-1/0 score on each of `k` k-means clusters of them
    (`user_cluster_J`) and on the post's own cluster (`own_cluster_score`), from
    the user's train posts (leave-one-out on train rows; unseen users: 0)."""

    def __init__(self, k=50, alpha=0.5, montage_clusters=6, montage_images=5, montage_size=64,
                 **ae):
        super().__init__(**ae)
        if int(k) < 1:
            raise ConfigError(f"features.extractors.{self.name}.k: must be >= 1, got {k}")
        self.k, self.alpha = int(k), float(alpha)
        self.montage = (int(montage_clusters), int(montage_images), int(montage_size))

    def fit(self, train):
        from sklearn.cluster import KMeans

        super().fit(train)
        names = pd.Series([image_name(v) for v in train["image"]])
        first = ~names.duplicated().to_numpy()
        z, has, _ = self._codes_of(train[first])
        k = min(self.k, int(has.sum()))
        self.kmeans_ = KMeans(n_clusters=k, random_state=self.seed, n_init=4).fit(z[has])
        self.members_ = {c: sorted(names[first][has][self.kmeans_.labels_ == c]) for c in range(k)}
        self._fit_scores(train)
        return self

    def clusters(self, posts) -> np.ndarray:
        """Each post's cluster, -1 where its image has no labels."""
        z, has, _ = self._codes_of(posts)
        out = np.full(len(posts), -1)
        if has.any():
            out[has] = self.kmeans_.predict(z[has])
        return out

    def _fit_scores(self, train):
        c, likes = self.clusters(train), train["likes"].to_numpy(float)
        groups = train.groupby("alias", sort=False).indices
        self.scores_ = {a: user_scores(likes[ix], c[ix], self.k, self.alpha, False)[0] for a, ix in groups.items()}

    def _with_scores(self, posts, scores, c):
        z, has, faces = self._codes_of(posts)
        cols = {f"label_code_{i}": z[:, i] for i in range(z.shape[1])}
        cols.update({f"user_cluster_{j}": scores[:, j] for j in range(self.k)})
        own = np.where(c >= 0, scores[np.arange(len(c)), np.maximum(c, 0)], 0.0)
        cols["own_cluster_score"] = own
        return self._frame(cols, has, faces)

    def transform(self, posts):
        zero = np.zeros(self.k)
        scores = np.array([self.scores_.get(a, zero) for a in posts["alias"]]).reshape(len(posts), self.k)
        return self._with_scores(posts, scores, self.clusters(posts))

    def fit_transform(self, train):
        self.fit(train)
        c, likes = self.clusters(train), train["likes"].to_numpy(float)
        scores = np.zeros((len(train), self.k))
        for ix in train.groupby("alias", sort=False).indices.values():
            scores[ix] = user_scores(likes[ix], c[ix], self.k, self.alpha, True)
        return self._with_scores(train, scores, c)

    def report(self, posts):
        out = super().report(posts)
        own = self.transform(posts)["own_cluster_score"].to_numpy() if len(posts) else np.zeros(0)
        out["k"] = float(self.kmeans_.n_clusters)
        out["own_score_nonzero_frac"] = float(np.mean(own != 0)) if len(own) else float("nan")
        return out

    def artifacts(self, folder):
        """A montage of `montage_images` random train images from each of the largest clusters."""
        n_clusters, per, size = self.montage
        image_dir = self.context.image_dir
        if not n_clusters or not image_dir or not Path(image_dir).is_dir():
            log.info("%s: no image folder (%s): cluster montage skipped", self.name, image_dir)
            return []
        rng = np.random.default_rng(self.seed)
        biggest = sorted(self.members_, key=lambda c: (-len(self.members_[c]), c))[:n_clusters]
        rows = {}
        for c in biggest:
            files = [Path(image_dir) / f for f in self.members_[c] if (Path(image_dir) / f).is_file()]
            if files:
                rows[f"cluster {c} ({len(self.members_[c])} images)"] = list(
                    rng.choice(files, size=min(per, len(files)), replace=False))
        if not rows:
            log.info("%s: no cluster images found under %s: cluster montage skipped", self.name, image_dir)
            return []
        return [montage(rows, Path(folder) / "label_clusters_montage.png", size)]


@register("label_clusters_leaky")
class LabelClustersLeaky(LabelClusters):
    """The study's cluster scores: from a random half of ALL the user's posts, test
    posts included. A leak kept only to reproduce the study (`split=legacy`)."""

    leaky = True

    def _fit_scores(self, train):
        posts = self.context.all_posts if self.context.all_posts is not None else train
        rng = np.random.default_rng(self.seed)
        c, likes = self.clusters(posts), posts["likes"].to_numpy(float)
        self.scores_ = {}
        for a, ix in posts.groupby("alias", sort=False).indices.items():
            half = rng.permutation(ix)[: max(1, len(ix) // 2)]
            self.scores_[a] = user_scores(likes[half], c[half], self.k, self.alpha, False)[0]

    def fit_transform(self, train):
        return self.fit(train).transform(train)
