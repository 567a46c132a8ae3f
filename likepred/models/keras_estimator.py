"""Compile and train a Keras functional model built by a registered builder."""

from __future__ import annotations

import numpy as np

from likepred.errors import ConfigError
from likepred.models import Estimator

KERAS_LOSSES = {"mape": "mean_absolute_percentage_error", "mae": "mean_absolute_error", "mse": "mean_squared_error"}


def make_optimizer(cfg):
    import keras

    kinds = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
             "adamw": keras.optimizers.AdamW}
    if cfg.name not in kinds:
        raise ConfigError(f"optimizer={cfg.name!r} is unknown; known: {', '.join(kinds)}")
    kw = {k: v for k, v in cfg.items() if k not in ("name", "lr")}
    return kinds[cfg.name](learning_rate=cfg.lr, **kw)


def keras_loss(name):
    if name not in KERAS_LOSSES:
        raise ConfigError(f"loss={name!r} is unknown; known: {', '.join(KERAS_LOSSES)}")
    return KERAS_LOSSES[name]


def block_stats(inputs: dict) -> dict:
    """Mean and variance of each tabular block, for the model's Normalization layer."""
    return {k: (v.mean(axis=0), np.maximum(v.var(axis=0), 1e-6)) for k, v in inputs.items()
            if isinstance(v, np.ndarray) and v.ndim == 2}


def start_at_median(model, y):
    """Set the output bias so training starts at the target's median, not at 0.

    Raw likes are in the hundreds: from 0 a MAPE-trained net spends many
    epochs just climbing to the right scale.
    """
    out = model.layers[-1]
    act = getattr(getattr(out, "activation", None), "__name__", "")
    if getattr(out, "bias", None) is None or act not in ("linear", "exponential", "relu"):
        return
    m = float(np.median(y))
    if act == "exponential":
        m = float(np.log(max(m, 1e-6)))
    out.bias.assign(np.full(out.bias.shape, m, dtype="float32"))


def _fmt_logs(logs) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))


def epoch_progress(epochs: int, stream=None):
    """A Keras callback: one tqdm bar over epochs on a terminal; off one, one plain line per
    epoch (Keras's own bar rewrites itself many times an epoch: a flood in a log file)."""
    import sys
    import time

    import keras

    stream = stream or sys.stderr

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = None
            if stream.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=epochs, unit="epoch", desc="training", file=stream)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.set_postfix_str(_fmt_logs(logs), refresh=False)
                self.bar.update(1)
            else:
                now = time.perf_counter()
                print(f"epoch {epoch + 1}/{epochs}: {_fmt_logs(logs)} ({now - self.start:.1f}s)", file=stream,
                      flush=True)
                self.start = now

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return EpochProgress()


# Batches a Keras call runs before handing back (callbacks and logs once per call, not per step):
# the same steps and weights, ~35% less time an epoch at 256 rows a batch on a CPU
STEPS_PER_EXECUTION = 16
NUMPY_ROWS = 1 << 18  # rows a NumPy pass takes at a time (its layer outputs stay small at millions of rows)
PREDICT_BATCH = 16384  # rows per prediction step of in-memory inputs (permutation importance predicts val ~100 times)


def _numpy_form(model):
    """The net as NumpyNet (None when a layer is not one NumPy runs, or the two disagree)."""
    import logging

    from likepred.models.numpy_net import NotDense, NumpyNet

    try:
        return NumpyNet.from_keras(model)
    except NotDense as e:
        logging.getLogger(__name__).debug("net run by Keras: %s", e)
        return None


def epoch_batch_size(rows: int, batch_size: int, max_steps: int | None) -> int:
    """`batch_size`, doubled until an epoch over `rows` takes at most `max_steps` steps
    (trainer.max_steps_per_epoch; None: no limit): a step costs about the same at 64 rows as at
    a few thousand on a CPU, so at millions of rows the number of steps is the cost."""
    batch = int(batch_size)
    if not max_steps:
        return batch
    while -(-rows // batch) > max_steps:
        batch *= 2
    if batch != batch_size:
        import logging

        logging.getLogger("likepred").info(
            "training with batches of %d rows (trainer.batch_size=%d): %d train rows in at most %d steps an epoch "
            "(trainer.max_steps_per_epoch)", batch, batch_size, rows, max_steps)
    return batch


class KerasEstimator(Estimator):
    weights = ("model", "served_")  # the net travels as a .keras file (and NumPy weights) beside the pipeline
    served_ = None  # after fit: the net's NumPy form (all dense layers), which predicts as the package will

    def __init__(self, builder, cfg):
        self.builder, self.cfg = builder, cfg

    def fit(self, train, val=None, on_epoch=None):
        import keras

        from likepred.images.dataset import has_images, image_batches, input_specs

        keras.utils.set_random_seed(int(self.cfg.seed))
        t = self.cfg.trainer
        streamed = has_images(train.inputs)  # image paths: decoded batch by batch, never all at once
        specs = input_specs(train.inputs, self.cfg.images.size if streamed else None)
        self.model = self.builder(specs, self.cfg.model, block_stats(train.inputs))
        start_at_median(self.model, train.y)
        self.model.compile(optimizer=make_optimizer(self.cfg.optimizer), loss=keras_loss(self.cfg.loss.name),
                           steps_per_execution=STEPS_PER_EXECUTION)
        callbacks = []
        has_val = val is not None and len(val) > 0
        if has_val and t.patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=t.patience, restore_best_weights=True))
        if on_epoch is not None:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, logs)))
        verbose = t.verbose
        if verbose == "auto":  # ours: one bar on a terminal, one line per epoch otherwise
            callbacks.append(epoch_progress(t.epochs))
            verbose = 0
        if streamed:  # ImageBatches reshuffles its rows each epoch (seeded)
            data = {"x": image_batches(train, self.cfg.images, t.batch_size, shuffle=True, seed=int(self.cfg.seed)),
                    "validation_data": image_batches(val, self.cfg.images, t.batch_size) if has_val else None,
                    "shuffle": False}
        else:
            batch = epoch_batch_size(len(train), t.batch_size, t.get("max_steps_per_epoch"))
            data = {"x": train.inputs, "y": train.y, "validation_data": (val.inputs, val.y) if has_val else None,
                    "batch_size": batch, "validation_batch_size": batch, "shuffle": True}
        history = self.model.fit(**data, epochs=t.epochs, verbose=verbose, callbacks=callbacks)
        self.served_ = None if streamed else _numpy_form(self.model)
        return history.history

    def predict(self, data):
        from likepred.models.numpy_net import NumpyNet

        # a dense net runs as NumPy: as it is served (no Keras import, see load), and in the run's
        # evaluation without Keras's per-call cost (permutation importance predicts ~100 times)
        net = self.model if isinstance(self.model, NumpyNet) else self.served_
        if net is not None:
            n = len(next(iter(data.inputs.values()))) if data.inputs else 0
            parts = [np.asarray(net.predict({b: x[i:i + NUMPY_ROWS] for b, x in data.inputs.items()})).reshape(-1)
                     for i in range(0, n, NUMPY_ROWS)]
            return np.concatenate(parts) if parts else np.zeros(0)
        from likepred.images.dataset import has_images, image_batches

        if has_images(data.inputs):
            x, kw = image_batches(data, self.cfg.images, self.cfg.trainer.batch_size, targets=False), {}
        else:
            x, kw = data.inputs, {"batch_size": PREDICT_BATCH}
        return np.asarray(self.model.predict(x, verbose=0, **kw)).reshape(-1)

    def save(self, folder):
        """The net as a .keras file and, when it is all dense layers, as weights NumPy runs
        (likepred.models.numpy_net: no Keras import to serve it)."""
        self.model.save(str(folder / "model.keras"))
        net = self.served_ if self.served_ is not None else _numpy_form(self.model)
        if net is not None:
            net.save(folder)

    def load(self, folder, backend=None):
        """The net: its NumPy form when there is one, else the .keras file (in Keras's safe mode,
        which refuses code in the file), with the training backend when Keras is not imported yet."""
        import sys

        from likepred.models.numpy_net import NumpyNet

        if (folder / "net.json").is_file():
            self.model = NumpyNet.load(folder)
            return
        if "keras" not in sys.modules and backend:
            from likepred.backend import use_backend
            from likepred.errors import MissingDependencyError

            try:
                use_backend(backend)
            except MissingDependencyError:
                import logging

                logging.getLogger(__name__).warning(
                    "the model was trained on Keras backend %r, which is not installed; loading it with "
                    "the default backend", backend)
        import keras

        self.model = keras.saving.load_model(str(folder / "model.keras"), compile=False, safe_mode=True)

    def requirements(self, backend=None):
        return ["keras", *([backend] if backend else [])]
