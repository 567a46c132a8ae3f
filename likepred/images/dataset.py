"""Stream (image batch, metadata batch) -> target to Keras, one batch at a time.

Only the image paths, the small tabular blocks and the targets stay in
memory; each batch's images are decoded, resized and scaled when Keras asks
for that batch (in `images.workers` threads). A missing or unreadable image
is reported once, by file name: `images.on_missing=error` stops,
`skip` trains without the post (sample weight 0) and predicts it from a
blank image, so every test post still gets a prediction.

Imports Keras: import this module only after the backend is chosen.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from likepred.errors import ConfigError
from likepred.images.files import READ_ERRORS, check_on_missing, load_image, missing_files, unreadable

SCALES = {"unit": (1 / 255, 0.0), "signed": (2 / 255, -1.0), "raw": (1.0, 0.0)}  # pixel * a + b


def is_path_block(block) -> bool:
    """A block of image file paths (1-D object array) rather than numbers."""
    return isinstance(block, np.ndarray) and block.dtype == object


def has_images(inputs: dict) -> bool:
    return any(is_path_block(v) for v in inputs.values())


def input_specs(inputs: dict, size) -> dict:
    """Input shape per block: (size, size, 3) for image paths, the row shape otherwise."""
    if size is None and has_images(inputs):
        raise ConfigError("images.size is null: image models need a side in pixels, e.g. images.size=64")
    return {k: (int(size), int(size), 3) if is_path_block(v) else v.shape[1:] for k, v in inputs.items()}


class ImageBatches(keras.utils.PyDataset):
    """Batches of `inputs`, image-path blocks decoded per batch, with `y`.

    Training batches are (x, y, sample_weight), the weight 0 where a post's
    image could not be read; prediction batches (y=None) are (x,).
    """

    def __init__(self, inputs: dict, y=None, size=64, batch_size=64, scale="unit", on_missing="error",
                 shuffle=False, seed=0, workers=1, max_queue_size=8):
        super().__init__(workers=int(workers), use_multiprocessing=False, max_queue_size=int(max_queue_size))
        if scale not in SCALES:
            raise ConfigError(f"images.scale={scale!r} is unknown; choose one of: {', '.join(SCALES)}")
        check_on_missing(on_missing)
        if int(size) < 1 or int(batch_size) < 1:
            raise ConfigError(f"images.size and trainer.batch_size must be positive, got {size}, {batch_size}")
        self.inputs, self.y = inputs, None if y is None else np.asarray(y, np.float32)
        self.size, self.batch_size, self.on_missing = int(size), int(batch_size), on_missing
        self.scale = SCALES[scale]
        self.n = len(next(iter(inputs.values())))
        self.shuffle, self.rng = shuffle, np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n) if shuffle else np.arange(self.n)
        # Missing files are cheap to find up front: with on_missing=error, stop before training.
        paths = [p for v in inputs.values() if is_path_block(v) for p in v]
        self.bad = missing_files(paths, on_missing)  # blank image, weight 0

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def _images(self, paths):
        a, b = (np.float32(v) for v in self.scale)
        out = np.zeros((len(paths), self.size, self.size, 3), np.float32)
        ok = np.ones(len(paths), bool)
        for j, p in enumerate(paths):
            if p not in self.bad:
                try:
                    out[j] = load_image(p, self.size) * a + b
                    continue
                except READ_ERRORS as e:
                    unreadable(p, e, self.on_missing)
                    self.bad.add(p)
            ok[j] = False
        return out, ok

    def __getitem__(self, i):
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x, weight = {}, np.ones(len(rows), np.float32)
        for k, v in self.inputs.items():
            if is_path_block(v):
                x[k], ok = self._images(v[rows])
                weight[~ok] = 0.0
            else:
                x[k] = v[rows]
        if self.y is None:
            return (x,)
        return x, self.y[rows], weight

    def on_epoch_end(self):
        # Keras calls this once the epoch's batches are all built (its
        # enqueuer has stopped), so reordering cannot mix two epochs.
        if self.shuffle:
            self.rng.shuffle(self.order)


def image_batches(data, images_cfg, batch_size, targets=True, shuffle=False, seed=0) -> ImageBatches:
    """An `ImageBatches` over a `ModelData`, set up as `cfg.images` says."""
    return ImageBatches(data.inputs, data.y if targets else None, size=images_cfg.size, batch_size=batch_size,
                        scale=images_cfg.get("scale", "unit"), on_missing=images_cfg.get("on_missing", "error"),
                        shuffle=shuffle, seed=seed, workers=images_cfg.get("workers", 1))
