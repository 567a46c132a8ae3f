"""The model registry: one builder per architecture, looked up by name, and the Estimator protocol.

A builder takes the run config and returns an `Estimator`. Keras builders are short
functional model builders registered with `keras=True`; the shared `KerasEstimator` compiles
and trains them. `conf/model/NAME.yaml` holds each builder's hyperparameters and the
dataclass registered with it (`schema=`) types them. Adding a model = one module in this
package + one YAML.
"""

from __future__ import annotations

from pathlib import Path

from likepred.registry import Registry

MODELS = Registry("model.name", package=__name__)


class Estimator:
    """What the train step, evaluation and packaging rely on; every model implements it.

    `predicts`: "target" (the pipeline's target space) or "likes". `fit` returns a dict of
    figures; `predict(data)` returns one value per row of `data` (a ModelData). A packaged
    estimator is pickled *without* what `save` writes (its weights, in their own format), and
    `load` restores that from the same folder.
    """

    predicts = "target"
    weights: tuple = ()  # attributes written by save() and left out of the pickle

    def fit(self, train, val=None, on_epoch=None) -> dict:
        raise NotImplementedError

    def predict(self, data):
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """Write the weights into `folder` (nothing to write: state travels in the pickle)."""

    def load(self, folder: Path, backend: str | None = None) -> None:
        """Restore what `save` wrote."""

    def requirements(self, backend: str | None = None) -> list[str]:
        """Packages needed to predict, beyond likepred's own."""
        return []

    def __getstate__(self):
        state = dict(self.__dict__)
        for k in self.weights:
            state.pop(k, None)
        return state


def register(name: str, keras: bool = False, schema: type | None = None):
    """Decorator: `@register("gbm", schema=GBMConfig)` on a builder `cfg -> Estimator`
    (with keras=True: on a Keras builder `(input specs, model cfg, block stats) -> keras.Model`)."""
    def deco(fn):
        if keras:
            from likepred.models.keras_estimator import KerasEstimator

            def build(cfg):
                return KerasEstimator(fn, cfg)

            build.__wrapped__ = fn  # the builder's module is the registration's origin
            MODELS.add(name, build, schema)
        else:
            MODELS.add(name, fn, schema)
        return fn
    return deco


def build_model(cfg, name: str | None = None) -> Estimator:
    """cfg: the whole run config (model, loss, optimizer, trainer, seed); `name` overrides
    cfg.model.name (the train step builds its baselines so)."""
    return MODELS.get(name or cfg.model.name)(cfg)
