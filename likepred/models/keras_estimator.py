"""Compile and train a Keras functional model built by a registered builder."""

from __future__ import annotations

import numpy as np

from likepred.errors import ConfigError

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


class KerasEstimator:
    predicts = "target"

    def __init__(self, builder, cfg):
        self.builder, self.cfg = builder, cfg

    def fit(self, train, val=None, on_epoch=None):
        import keras

        keras.utils.set_random_seed(int(self.cfg.seed))
        t = self.cfg.trainer
        specs = {k: v.shape[1:] for k, v in train.inputs.items()}
        self.model = self.builder(specs, self.cfg.model, block_stats(train.inputs))
        self.model.compile(optimizer=make_optimizer(self.cfg.optimizer), loss=keras_loss(self.cfg.loss.name))
        callbacks = []
        has_val = val is not None and len(val) > 0
        if has_val and t.patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=t.patience, restore_best_weights=True))
        if on_epoch is not None:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, logs)))
        history = self.model.fit(
            train.inputs, train.y, validation_data=(val.inputs, val.y) if has_val else None,
            epochs=t.epochs, batch_size=t.batch_size, verbose=t.verbose, callbacks=callbacks, shuffle=True,
        )
        return history.history

    def predict(self, data):
        return np.asarray(self.model.predict(data.inputs, batch_size=1024, verbose=0)).reshape(-1)

    def save(self, path):
        self.model.save(f"{path}.keras")
        return f"{path}.keras"
