"""The model registry: one builder per architecture, looked up by name.

A builder takes the run config and returns an estimator with
`fit(train, val, on_epoch=None) -> history dict` and `predict(data)`, where
`data` is a `likepred.pipeline.ModelData`. `estimator.predicts` says whether
predictions are in target space ("target") or already likes ("likes").
Keras builders are short functional model builders registered with
`keras=True`; the shared `KerasEstimator` compiles and trains them.
`conf/model/NAME.yaml` holds each builder's hyperparameters.
Adding a model = one module in this package + one YAML.
"""

from __future__ import annotations

import importlib
import pkgutil

from likepred.errors import ConfigError

MODELS: dict = {}


def register(name: str, keras: bool = False):
    def deco(fn):
        if keras:
            from likepred.models.keras_estimator import KerasEstimator

            MODELS[name] = lambda cfg: KerasEstimator(fn, cfg)
        else:
            MODELS[name] = fn
        return fn
    return deco


def _import_all():
    # Every module in this package registers its builders on import.
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def build_model(cfg):
    """cfg: the whole run config (model, loss, optimizer, trainer, seed)."""
    _import_all()
    name = cfg.model.name
    if name not in MODELS:
        raise ConfigError(f"model={name!r} is not registered; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](cfg)
